#!/usr/bin/env bash
# bench-ingest.sh — the ingest gateway's end-to-end benchmark: gateway
# events/s over loopback (signed msgpack batches of 100, per-batch p50/p99)
# beside the raw kafka-go Writer's events/s, medians of interleaved
# repetitions, one table per concurrency level. It starts (or reuses) the
# local Kafka broker unless ATLAS_EXTERNAL_SERVICES=1, in which case it uses
# ATLAS_KAFKA_BROKERS. Extra arguments go to the benchmark, e.g.
#
#   scripts/bench-ingest.sh -reps 7 -duration 10s -concurrency 16,32,64
#
# (go run ./producers/ingest/bench -h lists them.)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ATLAS_ROOT"

if [[ ${ATLAS_EXTERNAL_SERVICES:-0} != 1 ]]; then
	scripts/kafka.sh start
	eval "$(scripts/kafka.sh env)"
fi
: "${ATLAS_KAFKA_BROKERS:?ATLAS_KAFKA_BROKERS is not set: run scripts/kafka.sh start or point it at a broker}"
log "ingest gateway vs raw kafka-go Writer on $ATLAS_KAFKA_BROKERS (load average: $(cut -d' ' -f1-3 /proc/loadavg))"
go run ./producers/ingest/bench "$@"
