# shellcheck shell=bash
# Common helpers for the service scripts. Source it; do not run it.
#
# ATLAS_RUN_DIR is where services keep their data, logs, pids and the env
# file that tells Atlas how to reach them. It defaults to a folder under the
# system temporary directory so that data never lands in the checkout.

ATLAS_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ATLAS_RUN_DIR="${ATLAS_RUN_DIR:-${TMPDIR:-/tmp}/atlas-$(id -u)}"
export ATLAS_ROOT ATLAS_RUN_DIR

log() { printf '[%s] %s\n' "$(basename "$0")" "$*" >&2; }
die() { printf '[%s] error: %s\n' "$(basename "$0")" "$*" >&2; exit 1; }

# CLOSE_INHERITED_FDS is bash code, run first by the inner shell that
# becomes a long-running server (Kafka, ClickHouse): it closes every
# descriptor above stderr. Started from a command that runs under
# `flock FILE …`, the server would otherwise hold that lock until it stops.
# shellcheck disable=SC2016,SC2034 # expanded by the inner shell of the scripts that source this
CLOSE_INHERITED_FDS='for fd in /proc/$$/fd/*; do fd=${fd##*/}; if ((fd > 2)); then eval "exec $fd>&-"; fi; done 2>/dev/null;'

# need CMD HINT: fail with a message that names the missing prerequisite and
# says how to use existing servers instead.
need() {
	command -v "$1" >/dev/null 2>&1 && return 0
	die "$1 is not installed. $2"
}

# wait_until SECONDS DESCRIPTION CMD...: retry CMD every 0.5 s; fail loudly.
wait_until() {
	local secs=$1 what=$2
	shift 2
	local deadline=$((SECONDS + secs))
	until "$@" >/dev/null 2>&1; do
		if ((SECONDS >= deadline)); then
			log "timed out after ${secs}s waiting for ${what}"
			return 1
		fi
		sleep 0.5
	done
}

# pid_alive FILE: true when FILE names a running process.
pid_alive() {
	[[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null
}

# port_open HOST PORT: true when something accepts TCP connections there.
port_open() {
	(exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}
