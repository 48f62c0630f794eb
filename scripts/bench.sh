#!/usr/bin/env bash
# make bench: the pipeline benchmark's one table (bench/pipeline, issue 8):
# raw kafka-go drain vs `atlas run all` with exact ClickHouse totals, their
# ratio, per-event CPU and allocations, sink vs plain clickhouse-go, latency
# at 25/50/75 % of the sustainable rate, gateway vs raw Writer, embeddings
# state and restore. Every row is measured in this one run, as medians of
# interleaved repetitions with min–max, beside its target. It prints
# numbers; it fails only when (b)'s ClickHouse totals are not exact or a
# part cannot run, never on speed.
#
# Knobs (environment):
#   ATLAS_BENCH_COUNT    repetitions of every row (default 5)
#   ATLAS_BENCH_EVENTS   simulated events preloaded for (a) and (b) (default 200000)
#   ATLAS_BENCH_ROWS     rows to measure, e.g. "abc" (default abcdefgh)
#   ATLAS_BENCH_DETAIL=1 afterwards, the per-package micro-benchmarks too
#                        (codec per schema, simulator, replay, embeddings,
#                        anomaly state per account)
# Extra arguments go to the pipeline benchmark (go run ./bench/pipeline -h).
#
# Starts (or reuses) Kafka and ClickHouse. About 12 minutes on the 2-core
# development machine with the defaults.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ATLAS_ROOT"

if [[ ${ATLAS_EXTERNAL_SERVICES:-0} != 1 ]]; then
	scripts/kafka.sh start
	scripts/clickhouse.sh start
	eval "$(scripts/kafka.sh env)"
	eval "$(scripts/clickhouse.sh env)"
fi
log "pipeline benchmark: ${ATLAS_BENCH_COUNT:-5} interleaved repetitions, ${ATLAS_BENCH_EVENTS:-200000} events (load average: $(cut -d' ' -f1-3 /proc/loadavg))"
go run ./bench/pipeline "$@"

if [[ ${ATLAS_BENCH_DETAIL:-0} == 1 ]]; then
	count=${ATLAS_BENCH_COUNT:-5}
	detail() {
		log "$1"
		shift
		go test -run '^$' -benchmem -count "$count" "$@" 2>&1 | grep -E '^(Benchmark|ok|FAIL|---)' || true
	}
	detail "codec: decode, encode, validate (per event, one golden record)" -bench . ./schemas/
	detail "simulator: 1M events generated (and encoded)" -bench Generate1M -benchtime 1x ./producers/sim/
	detail "replay: MovieLens generator and reader" -bench . ./producers/replay/
	detail "embeddings: learn a play, top-10 over 10k titles (p99 reported)" -bench 'Play|Recommend' ./consumers/embeddings/
	detail "anomaly: detector state bytes per account (1M accounts), the role offline" -bench 'StateBytesPerAccount|RoleOffline' ./consumers/anomaly/
	log "anomaly alone: event → alert on the topic at half its sustainable load, default lateness and lateness 0 (about 3 minutes)"
	ATLAS_BENCH=1 go test -tags integration -count=1 -run TestAnomalyAlertLatencyAtHalfTheSustainableLoad -v ./e2e/ 2>&1 |
		grep -E '^\s+anomaly_latency_test.go|^(--- |ok|FAIL)' || true
fi
