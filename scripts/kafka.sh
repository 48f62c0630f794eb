#!/usr/bin/env bash
# kafka.sh — run one real Apache Kafka 4.x node (KRaft, broker and controller
# in one JVM) on 127.0.0.1 for the demo, the integration tests and CI.
#
#   scripts/kafka.sh start    resolve the jars (first run only), format the
#                             storage (first run only), start the node and
#                             wait until it answers a metadata request;
#                             reuse a node that already runs
#   scripts/kafka.sh stop     SIGTERM, wait up to 30 s, then SIGKILL
#   scripts/kafka.sh status   exit 0 when the node runs and answers
#   scripts/kafka.sh env      print `export ATLAS_KAFKA_BROKERS=...`
#   scripts/kafka.sh logs     print the end of the server log (-f follows it)
#   scripts/kafka.sh reset    stop the node and delete its data
#
#   scripts/kafka.sh --secure start|stop|status|env|logs|reset
#                             the same for a second, separate node that only
#                             speaks SASL/SCRAM-SHA-512 over TLS, on ports
#                             9094 (clients) and 9095 (controller, TLS with
#                             client certificates), data in
#                             $ATLAS_RUN_DIR/kafka-secure. Its first start
#                             makes a CA and a certificate for 127.0.0.1
#                             (openssl), random passwords (files of mode 600
#                             in kafka-secure/secrets) and the SCRAM users
#                             `atlas` (clients) and `atlas-broker` (the node
#                             itself) when formatting the storage. `env`
#                             prints what a client needs: brokers, TLS, the
#                             CA file, the mechanism, the user and the
#                             password file. The plain node is not touched.
#
# Environment (defaults in brackets):
#   ATLAS_KAFKA_VERSION          org.apache.kafka:kafka_2.13 version [4.1.1]
#   ATLAS_KAFKA_PORT             broker port [9092]
#   ATLAS_KAFKA_CONTROLLER_PORT  KRaft controller port [9093]
#   ATLAS_KAFKA_HEAP             JVM heap flags [-Xms512m -Xmx1g]
#   ATLAS_KAFKA_START_TIMEOUT    seconds to wait for the node [90]
#   ATLAS_KAFKA_SECURE_PORT      --secure: SASL_SSL port [9094]
#   ATLAS_KAFKA_SECURE_CONTROLLER_PORT  --secure: controller port [9095]
#   ATLAS_KAFKA_SECURE_HEAP      --secure: JVM heap flags [-Xms256m -Xmx512m]
#   ATLAS_RUN_DIR                data, logs and pid go to $ATLAS_RUN_DIR/kafka
#                                (--secure: $ATLAS_RUN_DIR/kafka-secure)
#
# The jars come from Maven Central through scripts/kafka/pom.xml and are kept
# in $ATLAS_ROOT/.cache/kafka/<version>/libs, so only the first start needs
# mvn. To use a broker that runs elsewhere, skip this script and set
# ATLAS_KAFKA_BROKERS=host:port.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# --secure, anywhere among the arguments, selects the secure instance.
SECURE=0
args=()
for a in "$@"; do
	if [[ $a == --secure ]]; then SECURE=1; else args+=("$a"); fi
done
set -- "${args[@]}"

KAFKA_VERSION=${ATLAS_KAFKA_VERSION:-4.1.1}
KAFKA_HOST=127.0.0.1
if ((SECURE)); then
	KAFKA_PORT=${ATLAS_KAFKA_SECURE_PORT:-9094}
	KAFKA_CONTROLLER_PORT=${ATLAS_KAFKA_SECURE_CONTROLLER_PORT:-9095}
	KAFKA_HEAP=${ATLAS_KAFKA_SECURE_HEAP:--Xms256m -Xmx512m}
	KAFKA_NAME="secure Kafka"
else
	KAFKA_PORT=${ATLAS_KAFKA_PORT:-9092}
	KAFKA_CONTROLLER_PORT=${ATLAS_KAFKA_CONTROLLER_PORT:-9093}
	KAFKA_HEAP=${ATLAS_KAFKA_HEAP:--Xms512m -Xmx1g}
	KAFKA_NAME=Kafka
fi
KAFKA_START_TIMEOUT=${ATLAS_KAFKA_START_TIMEOUT:-90}
KAFKA_STOP_TIMEOUT=30

KAFKA_SRC=$ATLAS_ROOT/scripts/kafka
KAFKA_CACHE=$ATLAS_ROOT/.cache/kafka/$KAFKA_VERSION
KAFKA_LIBS=$KAFKA_CACHE/libs
# Written only after a complete copy, so an interrupted mvn run is redone.
KAFKA_LIBS_MARKER=$KAFKA_CACHE/libs.complete

KAFKA_DIR=$ATLAS_RUN_DIR/kafka
KAFKA_ENV=$ATLAS_RUN_DIR/kafka.env
if ((SECURE)); then
	KAFKA_DIR=$ATLAS_RUN_DIR/kafka-secure
	KAFKA_ENV=$ATLAS_RUN_DIR/kafka-secure.env
fi
KAFKA_TLS=$KAFKA_DIR/tls
KAFKA_SECRETS=$KAFKA_DIR/secrets
# The SCRAM users of the secure instance: Atlas's clients and the node's own
# inter-broker connection.
KAFKA_CLIENT_USER=atlas
KAFKA_BROKER_USER=atlas-broker
KAFKA_DATA=$KAFKA_DIR/data
KAFKA_LOGS=$KAFKA_DIR/logs
KAFKA_LOG=$KAFKA_LOGS/server.log
KAFKA_STDOUT=$KAFKA_LOGS/stdout.log
KAFKA_CONFIG=$KAFKA_DIR/server.properties
KAFKA_PID=$KAFKA_DIR/kafka.pid

BROKERS=$KAFKA_HOST:$KAFKA_PORT
ELSEWHERE="To use a Kafka broker that runs elsewhere instead, skip scripts/kafka.sh and set ATLAS_KAFKA_BROKERS=host:port."

usage() {
	sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2
	exit 2
}

# kafka_answers HOST PORT: true when a Kafka broker there answers a Metadata
# (v4) request and lists at least one live broker. An open port is not
# enough: the socket opens before the broker has joined the KRaft quorum and
# been unfenced, and clients that connect then get errors.
kafka_answers() {
	local out
	local -a b
	# Request: size 26 | api key 3 (Metadata) | version 4 | correlation id 7 |
	# client id "atlas-probe" | topics null (-1) | allow auto-creation false.
	# shellcheck disable=SC2016 # $1 and $2 expand in the inner bash.
	out=$(timeout 3 bash -c '
		exec 3<>"/dev/tcp/$1/$2"
		printf "\x00\x00\x00\x1a\x00\x03\x00\x04\x00\x00\x00\x07\x00\x0batlas-probe\xff\xff\xff\xff\x00" >&3
		head -c 16 <&3
	' _ "$1" "$2" 2>/dev/null | od -An -v -tu1) || return 1
	read -r -a b <<<"$out"
	# Response: size | correlation id | throttle ms | broker count.
	((${#b[@]} == 16)) || return 1
	((b[4] == 0 && b[5] == 0 && b[6] == 0 && b[7] == 7)) || return 1
	(((b[12] << 24 | b[13] << 16 | b[14] << 8 | b[15]) >= 1))
}

# kafka_tls_answers HOST PORT: true when a broker there completes a TLS
# handshake with a certificate for HOST signed by the secure instance's CA
# and answers an ApiVersions request, which Kafka serves before SASL
# authentication once the node processes requests (it starts to after it
# joined the quorum and was unfenced). Takes about a second.
kafka_tls_answers() {
	local out
	local -a b
	# Request: size 21 | api key 18 (ApiVersions) | version 0 |
	# correlation id 7 | client id "atlas-probe". stdin stays open for a
	# second so that s_client reads the answer before it hangs up.
	out=$({
		printf '\x00\x00\x00\x15\x00\x12\x00\x00\x00\x00\x00\x07\x00\x0batlas-probe'
		sleep 1
	} | timeout 5 openssl s_client -quiet -no_ign_eof -connect "$1:$2" -CAfile "$KAFKA_TLS/ca.pem" \
		-verify_return_error -verify_ip "$1" 2>/dev/null | head -c 10 | od -An -v -tu1) || true
	read -r -a b <<<"$out"
	# Response: size | correlation id | error code 0.
	((${#b[@]} == 10)) || return 1
	((b[4] == 0 && b[5] == 0 && b[6] == 0 && b[7] == 7 && b[8] == 0 && b[9] == 0))
}

# answers: true when this script's node (plain or secure) answers.
answers() {
	if ((SECURE)); then
		kafka_tls_answers "$KAFKA_HOST" "$KAFKA_PORT"
	else
		kafka_answers "$KAFKA_HOST" "$KAFKA_PORT"
	fi
}

# our_pid: print the pid of the node this script started, if it still runs.
# The command line is checked so that a recycled pid is never signalled.
our_pid() {
	pid_alive "$KAFKA_PID" || return 1
	local pid
	pid=$(cat "$KAFKA_PID")
	tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "kafka.Kafka $KAFKA_DIR/" || return 1
	echo "$pid"
}

need_java() {
	need java "Kafka $KAFKA_VERSION needs a JDK 17 or newer on the PATH (Debian: apt-get install openjdk-17-jdk-headless). $ELSEWHERE"
	local major
	major=$(java -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')
	major=${major#1.}
	[[ $major =~ ^[0-9]+$ ]] || die "cannot read the Java version of $(command -v java). $ELSEWHERE"
	((major >= 17)) || die "java $major is too old: Kafka $KAFKA_VERSION needs Java 17 or newer. $ELSEWHERE"
}

# resolve_jars: copy kafka_2.13 and its runtime class path into the cache,
# once per version.
resolve_jars() {
	if [[ -f $KAFKA_LIBS_MARKER ]]; then
		log "using cached Kafka $KAFKA_VERSION jars in ${KAFKA_LIBS#"$ATLAS_ROOT"/}"
		return 0
	fi
	need mvn "The first start resolves the Kafka $KAFKA_VERSION jars from Maven Central with Maven (Debian: apt-get install maven). $ELSEWHERE"
	log "resolving org.apache.kafka:kafka_2.13:$KAFKA_VERSION and its dependencies with Maven (first start only)"
	mkdir -p "$KAFKA_CACHE"
	local tmp=$KAFKA_CACHE/libs.tmp.$$ mvn_log=$KAFKA_CACHE/mvn.log
	rm -rf "$tmp"
	if ! mvn -B -Dstyle.color=never -f "$KAFKA_SRC/pom.xml" \
		-Dkafka.version="$KAFKA_VERSION" \
		-DoutputDirectory="$tmp" \
		-DincludeScope=runtime \
		dependency:copy-dependencies >"$mvn_log" 2>&1; then
		rm -rf "$tmp"
		tail -n 40 "$mvn_log" >&2
		die "cannot resolve Kafka $KAFKA_VERSION with Maven (the end of its output is above, all of it in $mvn_log). $ELSEWHERE"
	fi
	[[ -f $tmp/kafka_2.13-$KAFKA_VERSION.jar ]] || die "cannot find kafka_2.13-$KAFKA_VERSION.jar in what Maven copied to $tmp"
	rm -rf "$KAFKA_LIBS"
	mv "$tmp" "$KAFKA_LIBS"
	touch "$KAFKA_LIBS_MARKER"
	log "cached $(find "$KAFKA_LIBS" -name '*.jar' | wc -l) jars ($(du -sh "$KAFKA_LIBS" | cut -f1)) in ${KAFKA_LIBS#"$ATLAS_ROOT"/}"
}

# render TEMPLATE: print TEMPLATE with the @...@ values of this node.
render() {
	sed -e "s|@PORT@|$KAFKA_PORT|g" \
		-e "s|@CONTROLLER_PORT@|$KAFKA_CONTROLLER_PORT|g" \
		-e "s|@DATA_DIR@|$KAFKA_DATA|g" \
		"$1"
}

write_config() {
	mkdir -p "$KAFKA_DATA" "$KAFKA_LOGS"
	if ((SECURE)); then
		ensure_secrets
		ensure_tls
		write_secure_config
		return 0
	fi
	render "$KAFKA_SRC/server.properties.in" >"$KAFKA_CONFIG"
}

# ---------------------------------------------------------- secure instance

new_secret() {
	# 128 random bits as hex: safe in properties files, SCRAM specs and shell.
	head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n'
}

# secret NAME: print the password kept in secrets/NAME.password.
secret() {
	local f=$KAFKA_SECRETS/$1.password
	[[ -s $f ]] || die "BUG: $f is missing"
	head -n 1 "$f"
}

# ensure_secrets: random passwords of the client user, the broker user and
# the keystore, made once, one file each (mode 600) in a folder of mode 700.
ensure_secrets() {
	local name f
	if [[ -f $KAFKA_DATA/meta.properties && ! -s $KAFKA_SECRETS/$KAFKA_CLIENT_USER.password ]]; then
		die "$KAFKA_DATA holds SCRAM users whose passwords are gone from $KAFKA_SECRETS: run scripts/kafka.sh --secure reset to start afresh"
	fi
	mkdir -p "$KAFKA_SECRETS"
	chmod 700 "$KAFKA_SECRETS"
	for name in "$KAFKA_CLIENT_USER" "$KAFKA_BROKER_USER" keystore; do
		f=$KAFKA_SECRETS/$name.password
		if [[ ! -s $f ]]; then
			log "generating the $name password in $f"
			(
				umask 077
				new_secret >"$f.tmp"
				echo >>"$f.tmp"
				mv "$f.tmp" "$f"
			)
		fi
		chmod 600 "$f"
	done
}

# ensure_tls: a CA and a certificate for 127.0.0.1 and localhost signed by
# it, in tls/ (ca.pem for clients, broker.p12 for the node), made when
# missing or when the certificate expires within a day. The CA's key is
# deleted once it has signed, so nothing else can be signed with it.
ensure_tls() {
	if [[ -s $KAFKA_TLS/ca.pem && -s $KAFKA_TLS/broker.p12 ]] &&
		openssl x509 -checkend 86400 -noout -in "$KAFKA_TLS/broker.pem" >/dev/null 2>&1; then
		return 0
	fi
	need openssl "The secure Kafka instance makes its certificates with openssl (Debian: apt-get install openssl)."
	log "making a CA and a certificate for $KAFKA_HOST in $KAFKA_TLS"
	local tmp=$KAFKA_TLS.tmp.$$
	rm -rf "$tmp"
	mkdir -p "$tmp"
	chmod 700 "$tmp"
	if ! (
		# set -e does not apply inside `if !`: each step is chained.
		cd "$tmp" && umask 077 &&
			openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
				-keyout ca.key -out ca.pem -days 3650 -subj "/CN=Atlas local Kafka CA $(new_secret | head -c 8)" \
				-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign &&
			openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
				-keyout broker.key -out broker.csr -subj "/CN=$KAFKA_HOST" &&
			printf '%s\n' "subjectAltName=IP:$KAFKA_HOST,DNS:localhost" \
				"basicConstraints=critical,CA:FALSE" \
				"keyUsage=critical,digitalSignature,keyEncipherment" \
				"extendedKeyUsage=serverAuth,clientAuth" >broker.ext &&
			openssl x509 -req -in broker.csr -CA ca.pem -CAkey ca.key -set_serial "0x$(new_secret)" \
				-days 825 -extfile broker.ext -out broker.pem &&
			openssl pkcs12 -export -in broker.pem -inkey broker.key -certfile ca.pem -name broker \
				-out broker.p12 -passout "file:$KAFKA_SECRETS/keystore.password" &&
			rm -f ca.key broker.key broker.csr broker.ext &&
			chmod 644 ca.pem broker.pem
	) >>"$KAFKA_STDOUT" 2>&1; then
		rm -rf "$tmp"
		tail -n 20 "$KAFKA_STDOUT" >&2
		die "cannot make the certificates of the secure Kafka instance (openssl's output above)"
	fi
	chmod 755 "$tmp"
	rm -rf "$KAFKA_TLS"
	mv "$tmp" "$KAFKA_TLS"
}

# write_secure_config: the plain template without the keys the secure
# overlay sets, then the overlay with the paths and passwords filled in;
# mode 600, since it holds the keystore and broker passwords.
write_secure_config() {
	local overlay=$KAFKA_SRC/server-secure.properties.in
	(
		umask 077
		{
			render "$KAFKA_SRC/server.properties.in" |
				awk -F= 'NR == FNR { if ($0 ~ /^[a-z]/) drop[$1] = 1; next } !($1 in drop)' "$overlay" -
			echo
			render "$overlay" | sed \
				-e "s|@TLS_DIR@|$KAFKA_TLS|g" \
				-e "s|@BROKER_USER@|$KAFKA_BROKER_USER|g" \
				-e "s|@BROKER_PASSWORD@|$(secret "$KAFKA_BROKER_USER")|g" \
				-e "s|@KEYSTORE_PASSWORD@|$(secret keystore)|g"
		} >"$KAFKA_CONFIG.tmp"
	)
	if grep -q '@[A-Z_]*@' "$KAFKA_CONFIG.tmp"; then
		die "BUG: a placeholder of $overlay was not replaced: $(grep -o '@[A-Z_]*@' "$KAFKA_CONFIG.tmp" | head -n 1)"
	fi
	mv "$KAFKA_CONFIG.tmp" "$KAFKA_CONFIG"
}

# format_storage: give a new data folder a cluster id; keep an existing one,
# so topics survive a stop and start.
format_storage() {
	if [[ -f $KAFKA_DATA/meta.properties ]]; then
		return 0
	fi
	local cluster_id
	# A Kafka Uuid is 16 random bytes in unpadded URL-safe base64; making it
	# here saves a JVM start (`StorageTool random-uuid`).
	# One starting with '-' would be read as an option, so draw again.
	cluster_id=-
	while [[ $cluster_id == -* ]]; do
		cluster_id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
	done
	# The secure instance's SCRAM users go into the metadata log at format
	# time, so they exist before any client or the node itself connects.
	local -a users=()
	if ((SECURE)); then
		users=(--add-scram "SCRAM-SHA-512=[name=$KAFKA_CLIENT_USER,password=$(secret "$KAFKA_CLIENT_USER")]"
			--add-scram "SCRAM-SHA-512=[name=$KAFKA_BROKER_USER,password=$(secret "$KAFKA_BROKER_USER")]")
	fi
	log "formatting $KAFKA_DATA (cluster id $cluster_id)"
	if ! java -cp "$KAFKA_LIBS/*" \
		-Dlog4j2.configurationFile="$KAFKA_SRC/log4j2.xml" \
		-Dkafka.logs.dir="$KAFKA_LOGS" \
		-Dkafka.log.file=format.log \
		kafka.tools.StorageTool format \
		--cluster-id "$cluster_id" \
		--config "$KAFKA_CONFIG" "${users[@]}" >>"$KAFKA_STDOUT" 2>&1; then
		tail -n 50 "$KAFKA_STDOUT" >&2
		die "cannot format the Kafka storage in $KAFKA_DATA (output above)"
	fi
}

print_failure() {
	if [[ -s $KAFKA_LOG ]]; then
		log "last 50 lines of $KAFKA_LOG:"
		tail -n 50 "$KAFKA_LOG" >&2
	fi
	if [[ -s $KAFKA_STDOUT ]]; then
		log "last 20 lines of $KAFKA_STDOUT:"
		tail -n 20 "$KAFKA_STDOUT" >&2
	fi
}

# wait_ready PID: wait until the node answers; fail as soon as it exits.
wait_ready() {
	local pid=$1 deadline=$((SECONDS + KAFKA_START_TIMEOUT))
	until answers; do
		if ! kill -0 "$pid" 2>/dev/null; then
			print_failure
			rm -f "$KAFKA_PID"
			die "$KAFKA_NAME exited during start (logs above, all of them in $KAFKA_LOGS)"
		fi
		if ((SECONDS >= deadline)); then
			print_failure
			log "stopping the $KAFKA_NAME that did not become ready (pid $pid)"
			kill -KILL "$pid" 2>/dev/null || true
			rm -f "$KAFKA_PID"
			die "timed out after ${KAFKA_START_TIMEOUT}s waiting for $KAFKA_NAME on $BROKERS to answer a request"
		fi
		sleep 0.5
	done
}

cmd_start() {
	local pid
	if pid=$(our_pid); then
		if answers; then
			log "$KAFKA_NAME already runs on $BROKERS (pid $pid); reusing it"
			write_env
			return 0
		fi
		log "$KAFKA_NAME (pid $pid) runs but does not answer yet; waiting"
		wait_ready "$pid"
		log "$KAFKA_NAME is ready on $BROKERS (pid $pid)"
		write_env
		return 0
	fi
	rm -f "$KAFKA_PID"
	for port in "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"; do
		if port_open "$KAFKA_HOST" "$port"; then
			((SECURE)) && die "port $port on $KAFKA_HOST is taken by another process. Stop it, or choose other ports with ATLAS_KAFKA_SECURE_PORT and ATLAS_KAFKA_SECURE_CONTROLLER_PORT."
			die "port $port on $KAFKA_HOST is taken by another process. Stop it, choose other ports with ATLAS_KAFKA_PORT and ATLAS_KAFKA_CONTROLLER_PORT, or, if it is a Kafka broker you want to use, set ATLAS_KAFKA_BROKERS=$KAFKA_HOST:$port and skip scripts/kafka.sh."
		fi
	done

	need_java
	resolve_jars
	write_config
	format_storage

	log "starting $KAFKA_NAME $KAFKA_VERSION on $BROKERS (controller :$KAFKA_CONTROLLER_PORT, data in $KAFKA_DIR)"
	# In a session of its own, so that ^C in the caller's terminal or the end
	# of the caller's process group does not stop it. The inner bash writes
	# its own pid and becomes java, so the pid file is right even if setsid
	# had to fork. It closes every descriptor it inherited beyond stdio: a
	# lock the caller holds (flock) would otherwise be held by the broker
	# for as long as it runs.
	# shellcheck disable=SC2086,SC2016 # KAFKA_HEAP is a list of flags; $$ is the inner bash's.
	setsid nohup bash -c "$CLOSE_INHERITED_FDS"' echo $$ >"$0.tmp" && mv "$0.tmp" "$0" && exec "$@"' "$KAFKA_PID" \
		java \
		$KAFKA_HEAP \
		-XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError \
		-Djava.awt.headless=true \
		-Dlog4j2.configurationFile="$KAFKA_SRC/log4j2.xml" \
		-Dkafka.logs.dir="$KAFKA_LOGS" \
		-cp "$KAFKA_LIBS/*" \
		kafka.Kafka "$KAFKA_CONFIG" \
		>>"$KAFKA_STDOUT" 2>&1 </dev/null &
	local i
	for ((i = 0; i < 50; i++)); do
		[[ -s $KAFKA_PID ]] && break
		sleep 0.1
	done
	[[ -s $KAFKA_PID ]] || die "cannot start Kafka: no pid in $KAFKA_PID after 5 s (see $KAFKA_STDOUT)"
	pid=$(cat "$KAFKA_PID")
	wait_ready "$pid"
	log "$KAFKA_NAME is ready on $BROKERS (pid $pid) after ${SECONDS}s"
	write_env
}

write_env() {
	cmd_env >"$KAFKA_ENV"
}

cmd_stop() {
	local pid
	if ! pid=$(our_pid); then
		rm -f "$KAFKA_PID" "$KAFKA_ENV"
		log "$KAFKA_NAME is not running"
		return 0
	fi
	log "stopping $KAFKA_NAME (pid $pid)"
	kill -TERM "$pid" 2>/dev/null || true
	local deadline=$((SECONDS + KAFKA_STOP_TIMEOUT))
	while kill -0 "$pid" 2>/dev/null; do
		if ((SECONDS >= deadline)); then
			log "$KAFKA_NAME did not stop within ${KAFKA_STOP_TIMEOUT}s of SIGTERM; sending SIGKILL (the next start recovers its logs)"
			kill -KILL "$pid" 2>/dev/null || true
			break
		fi
		sleep 0.5
	done
	# A killed process can take a moment to go away.
	local i
	for ((i = 0; i < 20; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.25
	done
	kill -0 "$pid" 2>/dev/null && die "cannot stop $KAFKA_NAME (pid $pid)"
	rm -f "$KAFKA_PID" "$KAFKA_ENV"
	log "$KAFKA_NAME stopped"
}

cmd_status() {
	local pid
	if ! pid=$(our_pid); then
		echo "$KAFKA_NAME is not running"
		return 1
	fi
	if ! answers; then
		echo "$KAFKA_NAME (pid $pid) runs but does not answer on $BROKERS"
		return 1
	fi
	echo "$KAFKA_NAME $KAFKA_VERSION runs on $BROKERS (pid $pid, data in $KAFKA_DIR)"
}

cmd_env() {
	if ((!SECURE)); then
		echo "export ATLAS_KAFKA_BROKERS=$BROKERS"
		return 0
	fi
	[[ -s $KAFKA_SECRETS/$KAFKA_CLIENT_USER.password && -s $KAFKA_TLS/ca.pem ]] ||
		die "the secure Kafka instance has no credentials yet: run scripts/kafka.sh --secure start"
	printf 'export ATLAS_KAFKA_BROKERS=%q\n' "$BROKERS"
	echo "export ATLAS_KAFKA_TLS=true"
	printf 'export ATLAS_KAFKA_CA_FILE=%q\n' "$KAFKA_TLS/ca.pem"
	echo "export ATLAS_KAFKA_SASL_MECHANISM=SCRAM-SHA-512"
	printf 'export ATLAS_KAFKA_SASL_USER=%q\n' "$KAFKA_CLIENT_USER"
	printf 'export ATLAS_KAFKA_SASL_PASSWORD_FILE=%q\n' "$KAFKA_SECRETS/$KAFKA_CLIENT_USER.password"
	echo "unset ATLAS_KAFKA_SASL_PASSWORD"
}

cmd_logs() {
	[[ -f $KAFKA_LOG ]] || die "no $KAFKA_NAME log yet at $KAFKA_LOG"
	if [[ ${1:-} == -f ]]; then
		exec tail -n 100 -F "$KAFKA_LOG"
	fi
	tail -n "${1:-100}" "$KAFKA_LOG"
}

cmd_reset() {
	cmd_stop
	log "deleting $KAFKA_DIR"
	rm -rf "$KAFKA_DIR"
}

# serialize: one start, stop or reset of this broker at a time. Two
# concurrent starts raced once: the second did not recognise the first's
# broker while it was still coming up, removed its pid file and started
# another. The broker does not inherit the lock (CLOSE_INHERITED_FDS).
serialize() {
	mkdir -p "$(dirname "$KAFKA_DIR")"
	exec 9>"$KAFKA_DIR.lock"
	if ! flock -n 9; then
		log "another start or stop of $KAFKA_NAME is running; waiting for it"
		flock -w 300 9 || die "another start or stop of $KAFKA_NAME held $KAFKA_DIR.lock for 5 minutes"
	fi
}

case ${1:-} in
start) serialize; cmd_start ;;
stop) serialize; cmd_stop ;;
status) cmd_status ;;
env) cmd_env ;;
logs) shift; cmd_logs "$@" ;;
reset) serialize; cmd_reset ;;
*) usage ;;
esac
