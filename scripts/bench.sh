#!/usr/bin/env bash
# make bench: benchmarks that print numbers (never pass/fail on speed).
# Go benchmarks run -count 5 (repetitions back to back; read the medians).
# The gateway-vs-raw-Writer comparison runs its own interleaved
# repetitions (scripts/bench-ingest.sh) and prints one table.
# Starts (or reuses) Kafka and ClickHouse for the benchmarks that need them.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ATLAS_ROOT"

count=${ATLAS_BENCH_COUNT:-5}
scripts/kafka.sh start
scripts/clickhouse.sh start
eval "$(scripts/kafka.sh env)"
eval "$(scripts/clickhouse.sh env)"

run() {
	log "$1"
	shift
	go test -run '^$' -benchmem -count "$count" "$@" 2>&1 | grep -E '^(Benchmark|ok|FAIL|---)' || true
}

run "codec: decode, encode, validate (per event)" -bench . ./schemas/
run "aggregates processor (per event, no decode)" -bench Process ./consumers/aggregates/
run "simulator: 1M events generated (and encoded)" -bench Generate1M -benchtime 1x ./producers/sim/
run "replay: MovieLens generator and reader" -bench . ./producers/replay/
run "ClickHouse sink vs a plain clickhouse-go batch insert (100k rows)" -tags integration -bench 'Writer|PlainBatch' ./consumers/aggregates/chsink/
log "ingest gateway (batches of 100 over loopback) vs the raw kafka-go Writer, 5 interleaved repetitions"
scripts/bench-ingest.sh
run "embeddings: learn a play, top-10 over 10k titles (p99 reported), state bytes per profile" -bench 'Play|Recommend|RestoreProfiles' ./consumers/embeddings/
run "embeddings: restore of 1M profiles from the changelog on the real broker" -tags integration -bench RestoreAMillionProfiles -benchtime 1x ./consumers/embeddings/changelog/
run "anomaly: detector state bytes per account (1M accounts), the role offline per event" -bench 'StateBytesPerAccount|RoleOffline' ./consumers/anomaly/
log "anomaly: event → alert-on-topic latency at half the sustainable load (about three minutes)"
ATLAS_BENCH=1 go test -tags integration -count=1 -run TestAnomalyAlertLatencyAtHalfTheSustainableLoad -v ./e2e/ 2>&1 |
	grep -E '^\s+anomaly_latency_test.go|^(--- |ok|FAIL)' || true
