#!/usr/bin/env bash
# make demo: start real Kafka and ClickHouse, create Atlas's topics and
# tables, run the three consumer roles, simulate about a minute of traffic
# (5,000 viewers' last few hours, ending now, with planted fraud and
# quality incidents), print what content strategy, trust & safety,
# personalization and ops would look at, and leave the dashboard running
# until Ctrl-C, which stops the roles and the dashboard cleanly.
#
# Safe to run again: each run has its own topics (prefix demo-<time>.),
# because its simulated hour ends now and would be "late" on the topics of a
# run that ended minutes ago. The previous run's topics are deleted; the rows
# it wrote to ClickHouse stay (they name their source topic).
#
#   ATLAS_DEMO_EXIT=1                  stop after printing (for scripts)
#   ATLAS_DEMO_RATE, ATLAS_DEMO_SECONDS  events/s and wall seconds of traffic (3000, 60)
#   ATLAS_DEMO_SEED                    the simulator's seed (7: the same catalog every run)
#   ATLAS_DEMO_PROFILES                viewer profiles (5000: a few plays each, and hours of
#                                      simulated time, enough for the slowest detectors)
#   ATLAS_DEMO_EPOCH                   simulated start instead of "ends now", e.g. 00:00 UTC,
#                                      when the degraded US cells have prime-time viewers
#                                      (the dashboard then needs ?period=24h)
#   ATLAS_DEMO_OPS_ADDR, ATLAS_DEMO_RECS_ADDR, ATLAS_DEMO_DASHBOARD_ADDR
#                                      metrics, recommendations API and dashboard
#                                      (default: 127.0.0.1:9464, :9470, :8080, or
#                                      another port when one is taken)
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
rate=${ATLAS_DEMO_RATE:-3000}
seconds=${ATLAS_DEMO_SECONDS:-60}
seed=${ATLAS_DEMO_SEED:-7}
profiles=${ATLAS_DEMO_PROFILES:-5000}
events=$((rate * seconds))

# free_addr PORT...: 127.0.0.1 and the first of the ports nobody listens on.
free_addr() {
	local p
	for p in "$@"; do
		port_open 127.0.0.1 "$p" || { echo "127.0.0.1:$p"; return 0; }
	done
	die "ports $* are all taken: set ATLAS_DEMO_*_ADDR"
}
ops=${ATLAS_DEMO_OPS_ADDR:-$(free_addr 9464 19464 29464)}
recs=${ATLAS_DEMO_RECS_ADDR:-$(free_addr 9470 19470 29470)}
dash=${ATLAS_DEMO_DASHBOARD_ADDR:-$(free_addr 8080 18080 28080)}

run_id=$(date -u +%s)
if [[ -s $demo_dir/prefix ]]; then
	old=$(cat "$demo_dir/prefix")
	log "deleting the topics of the previous demo run (${old})"
	ATLAS_TOPIC_PREFIX=$old $atlas demo clean || log "could not delete them (continuing)"
fi
export ATLAS_TOPIC_PREFIX="demo-$run_id."
echo "$ATLAS_TOPIC_PREFIX" >"$demo_dir/prefix"

log "creating topics (atlas topology apply, prefix $ATLAS_TOPIC_PREFIX)"
$atlas topology apply >/dev/null
log "applying ClickHouse migrations (atlas clickhouse migrate)"
$atlas clickhouse migrate
$atlas doctor

log "starting the consumer roles (atlas run all): metrics on http://$ops/metrics, recommendations on http://$recs"
ATLAS_EMBEDDINGS_ADDR=$recs $atlas run all --ops-addr "$ops" >"$demo_dir/run.log" 2>&1 &
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
wait_until 90 "the consumers to join their groups" curl -fsS "http://$ops/readyz" ||
	{ tail -20 "$demo_dir/run.log"; die "the consumers did not become ready"; }

# The simulated period should end about now. How much simulated time the
# events cover depends on the hour (viewers sleep), so measure it with runs
# to nowhere (a second or two each), start that long ago, and stop at now
# (--span) in case the estimate was short.
simulate=($atlas simulate --seed "$seed" --events "$events" --profiles "$profiles")
sim_span() { # EPOCH: seconds of simulated time the events cover from EPOCH
	"${simulate[@]}" --epoch "$1" --no-kafka --out /dev/null --log-every 0 2>/dev/null |
		awk '/^simulated time/ {sub(",", "", $5); print $3, $5}' |
		{ read -r first last && echo $(($(date -d "$last" +%s) - $(date -d "$first" +%s))); }
}
ago() { date -u -d "@$(($(date +%s) - $1))" +%Y-%m-%dT%H:%M:00Z; }
span_flag=()
if [[ -n ${ATLAS_DEMO_EPOCH:-} ]]; then
	epoch=$ATLAS_DEMO_EPOCH
else
	span=$(sim_span "$(ago 5400)")
	span=$(sim_span "$(ago "$span")")
	epoch=$(ago "$span")
	span_flag=(--span "$(($(date +%s) - $(date -d "$epoch" +%s)))s")
fi

# Keep the previous run's ground truth, not older ones (15 MB each).
ls -t "$demo_dir"/truth-*.json 2>/dev/null | tail -n +2 | xargs -r rm -f
truth="$demo_dir/truth-$run_id.json"
log "simulating $events events at $rate/s ($profiles profiles, seed $seed, simulated time from $epoch)"
started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
"${simulate[@]}" "${span_flag[@]}" --epoch "$epoch" --rate "$rate" --truth "$truth" --log-every 10s

status=0
$atlas demo report --truth "$truth" --since "$started" --ops-addr "$ops" --embeddings-api "$recs" || status=$?

$atlas dashboard --listen "$dash" >"$demo_dir/dashboard.log" 2>&1 &
dash_pid=$!
wait_until 30 "the dashboard" curl -fsS "http://$dash/healthz" ||
	{ tail -20 "$demo_dir/dashboard.log"; die "the dashboard did not start"; }

# The page shows the last hour unless its URL asks for more.
age=$(($(date +%s) - $(date -d "$epoch" +%s)))
period=6h
((age <= 6 * 3600)) || period=24h
((age <= 24 * 3600)) || period=7d
# What the page will draw: each panel's API answer has rows (the quality
# panel: lines) or none.
filled=() empty=()
for panel in trending completion genre-gap funnel quality alerts; do
	body=$(curl -fsS "http://$dash/api/$panel?period=$period") || body='"rows":null'
	if grep -q '"rows":\(null\|\[\]\|{}\)' <<<"$body" && ! grep -q '"lines":\[{' <<<"$body"; then
		empty+=("$panel")
	else
		filled+=("$panel")
	fi
done
echo
echo "Dashboard panels with data over the last $period: ${filled[*]:-none}${empty[*]:+; empty: ${empty[*]}}"
echo "Ground truth: $truth. Logs: $demo_dir/run.log, $demo_dir/dashboard.log."
echo "Kafka and ClickHouse keep running (make down stops them)."
((status == 0)) || log "the report found problems (exit $status): see above"
echo
echo "Dashboard: http://$dash/?period=$period   (Ctrl-C stops the roles and the dashboard)"
if [[ ${ATLAS_DEMO_EXIT:-0} != 1 ]]; then
	wait "$dash_pid"
fi
