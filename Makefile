# Atlas — see README.md. Every target that needs Kafka or ClickHouse starts
# them through scripts/ (and reuses them when they already run).
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
BIN     := bin/atlas

.PHONY: help build test unit integration lint demo bench up down env clean dashboard assets

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

build: ## build bin/atlas
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/atlas

test: ## everything CI runs: lint, unit tests, fuzz seeds, tests against real Kafka and ClickHouse
	scripts/test.sh

unit: ## fast tests only (no services)
	$(GO) test -count=1 ./...

lint: ## go vet, gofmt
	scripts/lint.sh

demo: build ## Kafka, ClickHouse and the roles over a minute of simulated traffic: queries, alerts vs planted incidents, recommendations, throughput; then the dashboard
	scripts/demo.sh

bench: ## one table: raw Kafka vs atlas run all (exact totals), CPU per event, sink, latency, gateway, state (ATLAS_BENCH_COUNT, ATLAS_BENCH_EVENTS)
	scripts/bench.sh

dashboard: build ## serve the dashboard on 127.0.0.1:8080 (read-only ClickHouse user)
	scripts/clickhouse.sh start
	eval "$$(scripts/clickhouse.sh env)" && $(BIN) dashboard

assets: ## refresh the vendored Chart.js from npm (pinned version, checksums recorded)
	scripts/dashboard-assets.sh update

up: ## start (or reuse) Kafka and ClickHouse
	scripts/kafka.sh start
	scripts/clickhouse.sh start

down: ## stop Kafka (and the secure broker, if it runs) and ClickHouse
	scripts/kafka.sh stop || true
	scripts/kafka.sh --secure stop || true
	scripts/clickhouse.sh stop || true

env: ## print the ATLAS_* variables that point Atlas at the local services
	@scripts/kafka.sh env
	@scripts/clickhouse.sh env

clean: ## remove build output (not the Kafka jar cache)
	rm -rf bin
