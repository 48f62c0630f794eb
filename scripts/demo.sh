#!/usr/bin/env bash
# make demo: start real Kafka and ClickHouse, create Atlas's topics and
# tables, run the consumer roles, simulate about 30 s of traffic (about half
# an hour of simulated viewing ending now), print what content strategy and
# ops would look at, and leave the dashboard running until Ctrl-C, which
# stops the roles and the dashboard cleanly. Safe to run again: each run adds
# new traffic. ATLAS_DEMO_EXIT=1 stops right after printing (for scripts).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ATLAS_ROOT"

scripts/kafka.sh start
scripts/clickhouse.sh start
eval "$(scripts/kafka.sh env)"
eval "$(scripts/clickhouse.sh env)"

atlas=bin/atlas
[[ -x $atlas ]] || die "bin/atlas is missing: run make build"
demo_dir="$ATLAS_RUN_DIR/demo"
mkdir -p "$demo_dir"

log "creating topics (atlas topology apply)"
$atlas topology apply >/dev/null
log "applying ClickHouse migrations (atlas clickhouse migrate)"
$atlas clickhouse migrate
$atlas doctor

ops=${ATLAS_DEMO_OPS_ADDR:-127.0.0.1:9464}
log "starting the consumer roles (atlas run all), metrics on http://$ops/metrics"
$atlas run all --ops-addr "$ops" >"$demo_dir/run.log" 2>&1 &
run_pid=$!
dash_pid=
stop_all() {
	for pid in $dash_pid $run_pid; do
		if kill -0 "$pid" 2>/dev/null; then
			kill -TERM "$pid"
			wait "$pid" || true
		fi
	done
	log "stopped the consumer roles and the dashboard"
}
trap stop_all EXIT
trap 'exit 0' INT TERM
wait_until 60 "the consumers to join their groups" curl -fsS "http://$ops/readyz" ||
	{ tail -20 "$demo_dir/run.log"; die "the consumers did not become ready"; }

# 60,000 events at 2,000/s cover about 30 minutes of simulated viewing;
# start the simulated clock 30 minutes ago so the data ends about now.
epoch=$(date -u -d '-30 min' +%Y-%m-%dT%H:%M:00Z)
seed=$(( $(date +%s) % 100000 ))
log "simulating traffic (seed $seed, from $epoch)"
$atlas simulate --seed "$seed" --epoch "$epoch" --rate 2000 --duration 30s \
	--truth "$demo_dir/truth-$seed.json" --log-every 5s

lag() { curl -fsS "http://$ops/metrics" | awk '/^atlas_engine_lag_records/ {s += $2} END {print s + 0}'; }
caught_up() { [[ $(lag) == 0 ]]; }
log "waiting for the consumers to catch up"
wait_until 60 "consumer lag 0" caught_up
sleep 2
events=$(curl -fsS "http://$ops/metrics" | awk '/^atlas_engine_events_total/ {s += $2} END {printf "%d", s}')

for q in trending completion funnel quality; do
	echo
	echo "== atlas query $q --from -2h --limit 8"
	$atlas query "$q" --from -2h --limit 8
done
echo
echo "== atlas query genre-gap --from -2h --country US --limit 5"
$atlas query genre-gap --from -2h --country US --limit 5
dash=${ATLAS_DEMO_DASHBOARD_ADDR:-127.0.0.1:8080}
$atlas dashboard --listen "$dash" >"$demo_dir/dashboard.log" 2>&1 &
dash_pid=$!
wait_until 30 "the dashboard" curl -fsS "http://$dash/healthz" ||
	{ tail -20 "$demo_dir/dashboard.log"; die "the dashboard did not start"; }

echo
echo "Consumers processed $events records; lag $(lag). Ground truth: $demo_dir/truth-$seed.json"
echo "Logs: $demo_dir/run.log, $demo_dir/dashboard.log. Kafka and ClickHouse keep running (make down stops them)."
echo
echo "Dashboard: http://$dash/   (Ctrl-C stops the roles and the dashboard)"
if [[ ${ATLAS_DEMO_EXIT:-0} != 1 ]]; then
	wait "$dash_pid"
fi
