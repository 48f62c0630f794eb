#!/usr/bin/env bash
# The README's test command (make test) and what .ci/run calls: lint, then
# every test tier. Tests that need Kafka or ClickHouse run against real
# servers that this script starts (or reuses); they fail, never skip, when a
# service is missing.
#
# To test against servers of your own instead, set ATLAS_KAFKA_BROKERS and
# the ATLAS_CLICKHOUSE_* variables (see README.md) and ATLAS_EXTERNAL_SERVICES=1.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ATLAS_ROOT"

start=$SECONDS
scripts/lint.sh

if [[ ${ATLAS_EXTERNAL_SERVICES:-0} != 1 ]]; then
	scripts/kafka.sh start
	scripts/clickhouse.sh start
	eval "$(scripts/kafka.sh env)"
	eval "$(scripts/clickhouse.sh env)"
fi
: "${ATLAS_KAFKA_BROKERS:?ATLAS_KAFKA_BROKERS is not set: run scripts/kafka.sh start or point it at a broker}"
: "${ATLAS_CLICKHOUSE_ADDR:?ATLAS_CLICKHOUSE_ADDR is not set: run scripts/clickhouse.sh start or point it at a server}"

log "unit tests and fuzz seed corpora (no services)"
go test -count=1 -timeout 10m ./...

# Packages with tests against the real services, found by their build tag.
mapfile -t pkgs < <(grep -rl --include='*_test.go' '^//go:build integration' . | xargs -n1 dirname | sort -u)
log "integration tests against Kafka at $ATLAS_KAFKA_BROKERS and ClickHouse at $ATLAS_CLICKHOUSE_ADDR: ${pkgs[*]}"
# -p 1: the packages share one broker and one server on a 2-core machine.
# -v: the output shows what each test did against the real services.
go test -tags integration -count=1 -p 1 -v -timeout 40m "${pkgs[@]}"

log "all tests passed in $((SECONDS - start))s; Kafka and ClickHouse keep running for the next run (make down stops them)"
