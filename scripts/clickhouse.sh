#!/usr/bin/env bash
# Start, stop and inspect a real ClickHouse server for Atlas on this machine.
#
#   scripts/clickhouse.sh start    install if needed, start (or reuse), wait until it answers
#   scripts/clickhouse.sh stop     SIGTERM, wait up to 30 s, then SIGKILL
#   scripts/clickhouse.sh status   exit 0 when our server is running
#   scripts/clickhouse.sh env      print export lines for Atlas and the tests
#   scripts/clickhouse.sh logs [-f] show (or follow) the server log
#   scripts/clickhouse.sh client [USER] [ARGS...]
#                                  clickhouse-client as admin|writer|reader
#
# The server is Debian's clickhouse-server package (18.16 on bookworm), run
# as a plain background process with the project's own config rendered from
# scripts/clickhouse/*.tmpl; the system service is never used. Everything it
# writes lives in $ATLAS_RUN_DIR/clickhouse.
#
# Settings (environment):
#   ATLAS_CLICKHOUSE_PORT       native protocol port (default 9000)
#   ATLAS_CLICKHOUSE_HTTP_PORT  HTTP port (default 8123)
#
# Passwords for atlas_admin, atlas_writer and atlas_reader are generated at
# the first start, kept in $ATLAS_RUN_DIR/clickhouse/passwords.env (mode 600)
# and reused; users.xml holds only their SHA-256.
#
# To use an existing server instead, do not run this script: export
# ATLAS_CLICKHOUSE_ADDR, ATLAS_CLICKHOUSE_HTTP_ADDR, ATLAS_CLICKHOUSE_DATABASE,
# ATLAS_CLICKHOUSE_ADMIN_USER/_PASSWORD, ATLAS_CLICKHOUSE_USER/_PASSWORD and
# ATLAS_CLICKHOUSE_READER_USER/_PASSWORD yourself.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

TCP_PORT="${ATLAS_CLICKHOUSE_PORT:-9000}"
HTTP_PORT="${ATLAS_CLICKHOUSE_HTTP_PORT:-8123}"
DATABASE=atlas
START_TIMEOUT=60
STOP_TIMEOUT=30

for port in "$TCP_PORT" "$HTTP_PORT"; do
	if ! [[ $port =~ ^[0-9]{1,5}$ ]] || ((10#$port < 1 || 10#$port > 65535)); then
		die "ATLAS_CLICKHOUSE_PORT and ATLAS_CLICKHOUSE_HTTP_PORT must be numbers from 1 to 65535 (got $port)"
	fi
done
[[ $TCP_PORT != "$HTTP_PORT" ]] || die "ATLAS_CLICKHOUSE_PORT and ATLAS_CLICKHOUSE_HTTP_PORT must differ (both are $TCP_PORT)"

CH_DIR="$ATLAS_RUN_DIR/clickhouse"
TEMPLATE_DIR="$ATLAS_ROOT/scripts/clickhouse"
PID_FILE="$CH_DIR/clickhouse.pid"
PASSWORDS_FILE="$CH_DIR/passwords.env"
# Ports of the running server, so that `env` and a reusing `start` report
# what is actually listening even when ATLAS_CLICKHOUSE_PORT changed since.
PORTS_FILE="$CH_DIR/ports.env"
LOG_DIR="$CH_DIR/log"
SERVER_LOG="$LOG_DIR/clickhouse-server.log"
ERROR_LOG="$LOG_DIR/clickhouse-server.err.log"
STDOUT_LOG="$LOG_DIR/stdout.log"

USE_EXISTING_HINT="To use an existing ClickHouse server instead, export
  ATLAS_CLICKHOUSE_ADDR=host:9000 ATLAS_CLICKHOUSE_HTTP_ADDR=host:8123 ATLAS_CLICKHOUSE_DATABASE=atlas
  ATLAS_CLICKHOUSE_ADMIN_USER=… ATLAS_CLICKHOUSE_ADMIN_PASSWORD=…   (a user allowed to run DDL)
  ATLAS_CLICKHOUSE_USER=… ATLAS_CLICKHOUSE_PASSWORD=…               (the consumers' writer)
  ATLAS_CLICKHOUSE_READER_USER=… ATLAS_CLICKHOUSE_READER_PASSWORD=… (a readonly user)
and do not run scripts/clickhouse.sh."

usage() {
	sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2
	exit 2
}

# now_us prints the wall clock in microseconds; since START prints the
# seconds elapsed since now_us printed START, to the millisecond.
now_us() { echo "${EPOCHREALTIME/./}"; }
since() {
	local us=$(($(now_us) - $1))
	printf '%d.%03ds' $((us / 1000000)) $((us / 1000 % 1000))
}

# ---------------------------------------------------------------- install

# ensure_installed installs Debian's clickhouse-server and clickhouse-client
# when either binary is missing. apt-get update runs only when the install
# fails without it, because an update costs tens of seconds.
ensure_installed() {
	if command -v clickhouse-server >/dev/null 2>&1 && command -v clickhouse-client >/dev/null 2>&1; then
		return 0
	fi
	command -v apt-get >/dev/null 2>&1 ||
		die "clickhouse-server and clickhouse-client are not installed and apt-get is missing, so they cannot be installed here (Debian package names: clickhouse-server clickhouse-client).
$USE_EXISTING_HINT"

	local -a sudo=()
	if ((EUID != 0)); then
		command -v sudo >/dev/null 2>&1 ||
			die "clickhouse-server is not installed, and installing it needs root but sudo is missing. Run as root: apt-get install -y clickhouse-server clickhouse-client
$USE_EXISTING_HINT"
		sudo=(sudo)
	fi

	local started
	started=$(now_us)
	log "installing clickhouse-server and clickhouse-client with apt-get (first run only)"
	if ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q clickhouse-server clickhouse-client >&2; then
		log "apt-get install failed; running apt-get update and trying once more"
		"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 ||
			die "apt-get update failed; cannot install clickhouse-server.
$USE_EXISTING_HINT"
		"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q clickhouse-server clickhouse-client >&2 ||
			die "apt-get install clickhouse-server clickhouse-client failed (see above).
$USE_EXISTING_HINT"
	fi
	command -v clickhouse-server >/dev/null 2>&1 ||
		die "apt-get installed the packages but clickhouse-server is still not on PATH ($PATH)."
	log "installed $(clickhouse-client --version 2>/dev/null | head -n 1) in $(since "$started")"
}

# ---------------------------------------------------------------- passwords

new_secret() {
	# 128 random bits as hex: safe in XML, URLs and shell without quoting.
	head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n'
}

sha256_hex() {
	printf '%s' "$1" | sha256sum | cut -d' ' -f1
}

# ensure_passwords creates passwords.env once (mode 600) and loads it.
ensure_passwords() {
	if [[ ! -s $PASSWORDS_FILE ]]; then
		log "generating passwords in $PASSWORDS_FILE"
		(
			umask 077
			{
				echo "# Generated by scripts/clickhouse.sh on $(date -u +%FT%TZ); reused by every start."
				echo "ATLAS_CLICKHOUSE_ADMIN_PASSWORD=$(new_secret)"
				echo "ATLAS_CLICKHOUSE_WRITER_PASSWORD=$(new_secret)"
				echo "ATLAS_CLICKHOUSE_READER_PASSWORD=$(new_secret)"
			} >"$PASSWORDS_FILE.tmp"
			mv "$PASSWORDS_FILE.tmp" "$PASSWORDS_FILE"
		)
	fi
	chmod 600 "$PASSWORDS_FILE"
	load_passwords
}

load_passwords() {
	[[ -s $PASSWORDS_FILE ]] ||
		die "$PASSWORDS_FILE does not exist: run scripts/clickhouse.sh start first."
	# shellcheck disable=SC1090
	source "$PASSWORDS_FILE"
	: "${ATLAS_CLICKHOUSE_ADMIN_PASSWORD:?missing in $PASSWORDS_FILE}"
	: "${ATLAS_CLICKHOUSE_WRITER_PASSWORD:?missing in $PASSWORDS_FILE}"
	: "${ATLAS_CLICKHOUSE_READER_PASSWORD:?missing in $PASSWORDS_FILE}"
}

# ---------------------------------------------------------------- config

xml_escape() {
	local s=$1
	s=${s//&/&amp;}
	s=${s//</&lt;}
	s=${s//>/&gt;}
	printf '%s' "$s"
}

# render TEMPLATE OUT MODE KEY=VALUE...: replace @KEY@ with VALUE, XML-escaped
# unless KEY ends in _XML, and write OUT atomically with MODE.
render() {
	local tpl=$1 out=$2 mode=$3
	shift 3
	local text kv key value
	text=$(<"$tpl")
	for kv in "$@"; do
		key=${kv%%=*}
		value=${kv#*=}
		[[ $key == *_XML ]] || value=$(xml_escape "$value")
		text=${text//"@$key@"/"$value"}
	done
	if [[ $text =~ @[A-Z_0-9]+@ ]]; then
		die "BUG: $tpl has a placeholder that was not replaced: ${BASH_REMATCH[0]}"
	fi
	(
		umask 077
		printf '%s\n' "$text" >"$out.tmp"
	)
	chmod "$mode" "$out.tmp"
	mv "$out.tmp" "$out"
}

write_config() {
	mkdir -p "$CH_DIR"/{data,tmp,user_files,format_schemas,log}
	render "$TEMPLATE_DIR/config.xml.tmpl" "$CH_DIR/config.xml" 644 \
		"LOG_DIR=$LOG_DIR" \
		"TCP_PORT=$TCP_PORT" \
		"HTTP_PORT=$HTTP_PORT" \
		"DATA_DIR=$CH_DIR/data" \
		"TMP_DIR=$CH_DIR/tmp" \
		"USER_FILES_DIR=$CH_DIR/user_files" \
		"FORMAT_SCHEMAS_DIR=$CH_DIR/format_schemas"
	# allow_ddl = 0 alone can be lifted by a per-query setting (measured on
	# 18.16); a settings constraint pins it, but 18.16 rejects the element.
	local constraints=""
	if (($(server_major) >= 20)); then
		constraints="<constraints><allow_ddl><readonly/></allow_ddl></constraints>"
	fi
	render "$TEMPLATE_DIR/users.xml.tmpl" "$CH_DIR/users.xml" 600 \
		"WRITER_CONSTRAINTS_XML=$constraints" \
		"DEFAULT_SHA256=$(sha256_hex "$(new_secret)")" \
		"ADMIN_SHA256=$(sha256_hex "$ATLAS_CLICKHOUSE_ADMIN_PASSWORD")" \
		"WRITER_SHA256=$(sha256_hex "$ATLAS_CLICKHOUSE_WRITER_PASSWORD")" \
		"READER_SHA256=$(sha256_hex "$ATLAS_CLICKHOUSE_READER_PASSWORD")"
	write_client_configs
	printf 'TCP_PORT=%s\nHTTP_PORT=%s\n' "$TCP_PORT" "$HTTP_PORT" >"$PORTS_FILE"
}

# server_major prints the major version of the installed ClickHouse, from
# the client of the same package ("ClickHouse client version 18.16.1.").
server_major() {
	local v
	v=$(clickhouse-client --version 2>/dev/null | grep -oE '[0-9]+\.[0-9]+' | head -n 1 || true)
	v=${v%%.*}
	echo "${v:-0}"
}

write_client_configs() {
	local role user password
	for role in admin writer reader; do
		user=$(user_for "$role")
		password=$(password_for "$role")
		render "$TEMPLATE_DIR/client.xml.tmpl" "$CH_DIR/client-$role.xml" 600 \
			"TCP_PORT=$TCP_PORT" "USER=$user" "PASSWORD=$password"
	done
}

user_for() {
	case $1 in
	admin | writer | reader) echo "atlas_$1" ;;
	*) die "unknown user role $1 (want admin, writer or reader)" ;;
	esac
}

password_for() {
	case $1 in
	admin) echo "$ATLAS_CLICKHOUSE_ADMIN_PASSWORD" ;;
	writer) echo "$ATLAS_CLICKHOUSE_WRITER_PASSWORD" ;;
	reader) echo "$ATLAS_CLICKHOUSE_READER_PASSWORD" ;;
	*) die "unknown user role $1 (want admin, writer or reader)" ;;
	esac
}

# ---------------------------------------------------------------- process

# running_pid prints the pid of our server and succeeds when it runs. A pid
# file whose process is gone, or was reused by another program, is ignored.
running_pid() {
	pid_alive "$PID_FILE" || return 1
	local pid
	pid=$(<"$PID_FILE")
	grep -q clickhouse "/proc/$pid/cmdline" 2>/dev/null || return 1
	echo "$pid"
}

load_running_ports() {
	if [[ -s $PORTS_FILE ]]; then
		# shellcheck disable=SC1090
		source "$PORTS_FILE"
	fi
}

# answers succeeds when the server runs a real query as atlas_admin.
answers() {
	clickhouse-client --config-file="$CH_DIR/client-admin.xml" \
		--connect_timeout=2 -q 'SELECT 1' 2>/dev/null | grep -qx 1
}

# ready_or_dead lets wait_until stop early when the server exits.
ready_or_dead() {
	answers || ! running_pid >/dev/null
}

show_error_log() {
	local f
	for f in "$ERROR_LOG" "$STDOUT_LOG"; do
		if [[ -s $f ]]; then
			log "last lines of $f:"
			tail -n 30 "$f" >&2
		fi
	done
}

wait_ready() {
	local started=$1
	if ! wait_until "$START_TIMEOUT" "ClickHouse on 127.0.0.1:$TCP_PORT to answer SELECT 1" ready_or_dead; then
		show_error_log
		die "ClickHouse did not answer within ${START_TIMEOUT}s; it is still running (pid $(running_pid || echo '?')): scripts/clickhouse.sh stop"
	fi
	if ! running_pid >/dev/null; then
		show_error_log
		die "ClickHouse exited during start-up"
	fi
	log "ClickHouse $(server_version) ready on 127.0.0.1:$TCP_PORT (http $HTTP_PORT) in $(since "$started"); data in $CH_DIR"
}

server_version() {
	clickhouse-client --config-file="$CH_DIR/client-admin.xml" -q 'SELECT version()' 2>/dev/null || echo '?'
}

cmd_start() {
	local started
	started=$(now_us)
	ensure_installed
	mkdir -p "$CH_DIR"

	local pid
	if pid=$(running_pid); then
		load_passwords
		load_running_ports
		log "ClickHouse is already running (pid $pid); reusing it"
		wait_ready "$started"
		return 0
	fi

	local port
	for port in "$TCP_PORT" "$HTTP_PORT"; do
		if port_open 127.0.0.1 "$port"; then
			die "port $port on 127.0.0.1 is taken by another process (the system clickhouse-server service? stop it with 'systemctl stop clickhouse-server'), or choose other ports with ATLAS_CLICKHOUSE_PORT / ATLAS_CLICKHOUSE_HTTP_PORT.
$USE_EXISTING_HINT"
		fi
	done

	ensure_passwords
	write_config
	: >"$STDOUT_LOG"
	log "starting clickhouse-server with $CH_DIR/config.xml"
	# setsid: the server outlives this script and its terminal, and a ^C
	# in the caller's shell does not reach it. Descriptors inherited beyond
	# stdio are closed, so that the server does not keep a caller's lock.
	# shellcheck disable=SC2016 # $@ is the inner bash's.
	setsid nohup bash -c "$CLOSE_INHERITED_FDS"' exec "$@"' clickhouse-server clickhouse-server --config-file="$CH_DIR/config.xml" \
		</dev/null >>"$STDOUT_LOG" 2>&1 &
	echo $! >"$PID_FILE"
	wait_ready "$started"
}

cmd_stop() {
	local pid
	if ! pid=$(running_pid); then
		log "ClickHouse is not running"
		rm -f "$PID_FILE"
		return 0
	fi
	log "stopping ClickHouse (pid $pid)"
	kill -TERM "$pid"
	local deadline=$((SECONDS + STOP_TIMEOUT))
	while kill -0 "$pid" 2>/dev/null; do
		if ((SECONDS >= deadline)); then
			log "ClickHouse (pid $pid) did not stop within ${STOP_TIMEOUT}s of SIGTERM; sending SIGKILL"
			kill -KILL "$pid" 2>/dev/null || true
			wait_until 10 "pid $pid to exit after SIGKILL" bash -c "! kill -0 $pid" ||
				die "ClickHouse (pid $pid) survived SIGKILL"
			break
		fi
		sleep 0.2
	done
	rm -f "$PID_FILE"
	log "stopped"
}

cmd_status() {
	local pid
	if pid=$(running_pid); then
		load_running_ports
		if [[ -s $CH_DIR/client-admin.xml ]] && answers; then
			log "running (pid $pid) on 127.0.0.1:$TCP_PORT, http $HTTP_PORT, version $(server_version)"
		else
			log "running (pid $pid) on 127.0.0.1:$TCP_PORT but not answering queries yet"
		fi
		return 0
	fi
	log "not running"
	return 1
}

cmd_env() {
	load_passwords
	if running_pid >/dev/null; then
		load_running_ports
	else
		log "warning: ClickHouse is not running; start it with scripts/clickhouse.sh start"
	fi
	cat <<EOF
export ATLAS_CLICKHOUSE_ADDR=127.0.0.1:$TCP_PORT
export ATLAS_CLICKHOUSE_HTTP_ADDR=127.0.0.1:$HTTP_PORT
export ATLAS_CLICKHOUSE_DATABASE=$DATABASE
export ATLAS_CLICKHOUSE_ADMIN_USER=atlas_admin
export ATLAS_CLICKHOUSE_ADMIN_PASSWORD=$ATLAS_CLICKHOUSE_ADMIN_PASSWORD
export ATLAS_CLICKHOUSE_USER=atlas_writer
export ATLAS_CLICKHOUSE_PASSWORD=$ATLAS_CLICKHOUSE_WRITER_PASSWORD
export ATLAS_CLICKHOUSE_READER_USER=atlas_reader
export ATLAS_CLICKHOUSE_READER_PASSWORD=$ATLAS_CLICKHOUSE_READER_PASSWORD
EOF
}

cmd_logs() {
	[[ -f $SERVER_LOG ]] || die "no log yet at $SERVER_LOG: run scripts/clickhouse.sh start first."
	if [[ ${1:-} == -f ]]; then
		exec tail -n 50 -F "$SERVER_LOG" "$ERROR_LOG"
	fi
	tail -n 200 "$SERVER_LOG"
}

cmd_client() {
	local role=${1:-admin}
	(($# == 0)) || shift
	user_for "$role" >/dev/null
	running_pid >/dev/null || die "ClickHouse is not running: scripts/clickhouse.sh start"
	[[ -s $CH_DIR/client-$role.xml ]] || die "no client config for $role: scripts/clickhouse.sh start"
	exec clickhouse-client --config-file="$CH_DIR/client-$role.xml" "$@"
}

case ${1:-} in
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
env) cmd_env ;;
logs) cmd_logs "${@:2}" ;;
client) cmd_client "${@:2}" ;;
*) usage ;;
esac
