# bench/lib.sh — what the benchmark scripts share; sourced, never run.
#
# The script that sources it sets first: ROOT (the repository), WORK (its
# scratch directory), BIN (where the binaries are, or go), UUID and TOKEN
# (the sandbox's one user) and, for start_sandbox, DATA_ROOT (where sandbox
# data directories are made).

log() { printf '%s\n' "$*" >&2; }

# cpu PID: the CPU seconds (user+system) the process has used.
cpu() {
	awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "%.2f", ($12 + $13) / hz }' "/proc/$1/stat"
}

# stop_pids PID…: SIGTERM each and wait for it to exit.
stop_pids() {
	local p
	for p in "$@"; do
		kill "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
}

# need_gnu_time: peak RSS is GNU time's "Maximum resident set size"; this
# installs GNU time if it is missing and sets TIME to it.
need_gnu_time() {
	TIME=/usr/bin/time
	if [[ ! -x $TIME ]]; then
		log "== installing GNU time"
		apt-get install -y time >/dev/null || { apt-get update >/dev/null && apt-get install -y time >/dev/null; }
	fi
}

# build PKG…: builds each main package (./cmd/syncd, ./bench/cmd/upload…)
# into BIN, unless BIN holds every one of them already.
build() {
	local p missing=
	for p in "$@"; do [[ -x $BIN/${p##*/} ]] || missing=1; done
	[[ -n $missing ]] || return 0
	log "== building ${*##*/} (into $BIN)"
	(cd "$ROOT" && go build -o "$BIN/" "$@")
}

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# start_redis: a redis-server of the script's own on a free loopback port,
# keeping nothing on disk; sets REDIS_PORT and REDIS_PID.
start_redis() {
	REDIS_PORT=$(free_port)
	redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$WORK" >"$WORK/redis.log" 2>&1 &
	REDIS_PID=$!
	for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
	redis-cli -p "$REDIS_PORT" ping >/dev/null || { cat "$WORK/redis.log" >&2; log "redis-server did not start"; exit 1; }
}

# start_sandbox: snf-sandbox on a free loopback port, with a fresh data
# directory under DATA_ROOT and the one user bench:UUID:TOKEN, in place of
# the one this script runs; sets SANDBOX_PID, SANDBOX_DATA_DIR, BASE and
# URL (the Pithos+ root).
start_sandbox() {
	stop_sandbox
	sync # the previous sandbox's blocks must not be written back meanwhile
	SANDBOX_DATA_DIR=$(mktemp -d "$DATA_ROOT/sandbox-data.XXXXXX")
	"$BIN/snf-sandbox" --listen 127.0.0.1:0 --data "$SANDBOX_DATA_DIR" --user "bench:$UUID:$TOKEN" >"$WORK/sandbox.log" 2>&1 &
	SANDBOX_PID=$!
	BASE=
	for _ in $(seq 100); do
		BASE=$(sed -n 's/^snf-sandbox listening on \(http:[^ ]*\).*/\1/p' "$WORK/sandbox.log")
		[[ -n $BASE ]] && break
		sleep 0.1
	done
	[[ -n $BASE ]] || { cat "$WORK/sandbox.log" >&2; log "sandbox did not start"; exit 1; }
	URL=$BASE/object-store/v1
}

# stop_sandbox: stops the sandbox, noting the CPU seconds it used in
# SANDBOX_CPU, and removes its data.
stop_sandbox() {
	if [[ -n ${SANDBOX_PID:-} ]]; then
		SANDBOX_CPU=$(cpu "$SANDBOX_PID")
		stop_pids "$SANDBOX_PID"
		SANDBOX_PID=
	fi
	if [[ -n ${SANDBOX_DATA_DIR:-} ]]; then
		rm -rf "$SANDBOX_DATA_DIR"
		SANDBOX_DATA_DIR=
	fi
}

# wait_syncd_running LOG PID: waits for syncd's "syncd running" line.
wait_syncd_running() {
	for _ in $(seq 300); do
		grep -q '"syncd running"' "$1" 2>/dev/null && return 0
		kill -0 "$2" 2>/dev/null || { cat "$1" >&2; log "syncd exited"; exit 1; }
		sleep 0.1
	done
	cat "$1" >&2
	log "syncd did not start"
	exit 1
}

# redis_calls: the commands REDIS_PORT's server has run so far, not
# counting INFO itself.
redis_calls() {
	redis-cli -p "$REDIS_PORT" info commandstats | tr -d '\r' |
		awk -F'[:,=]' '/^cmdstat_/ && $1 != "cmdstat_info" { for (i = 2; i <= NF; i++) if ($i == "calls") s += $(i + 1) } END { print s + 0 }'
}

# hops LOG: the seconds each job queued by another job waited to start: the
# "hop" of its "job done" line, or, for a syncd that does not log it, its
# start ("job done" minus "took") minus the "… queued" line naming it.
hops() {
	jq -rs '
		(map(select(.msg == "registration queued" or .msg == "publish queued") | {key: .task, value: .ts}) | from_entries) as $queued
		| .[] | select(.msg == "job done" and (.type == "image:register" or .type == "image:publish"))
		| if .hop != null then .hop
		  elif $queued[.job] != null then
			((.ts | sub("\\.[0-9]+Z$"; "Z") | fromdateiso8601) + (.ts | capture("(?<f>\\.[0-9]+)Z$").f | tonumber) - .took)
			- (($queued[.job] | sub("\\.[0-9]+Z$"; "Z") | fromdateiso8601) + ($queued[.job] | capture("(?<f>\\.[0-9]+)Z$").f | tonumber))
		  else empty end' "$1"
}

# pct P: the P-th percentile of the seconds on stdin (sorted), in ms.
pct() { awk -v p="$1" '{ v[NR] = $1 } END { if (NR == 0) { print "-"; exit } i = int(NR * p / 100 + 0.999); if (i < 1) i = 1; printf "%.1f", v[i] * 1000 }'; }

# write_syncd_config FILE NODE SETTLE REDIS: a syncd config with default
# settings but for: node NODE, the sandbox (BASE, TOKEN), REDIS (the lines
# under "redis:", each after two spaces of indent, e.g. "addr: embedded"),
# state in $WORK/state, settle SETTLE, metrics on a free port, and one watch
# root, $WORK/images, into container "images".
write_syncd_config() {
	mkdir -p "$WORK/images" "$WORK/state"
	chmod 700 "$WORK/state"
	cat >"$1" <<CONFIG
node: $2
cloud:
  auth_url: $BASE/identity/v2.0
  token: $TOKEN
redis:
  $4
state_dir: $WORK/state
settle: $3
http:
  listen: 127.0.0.1:0
watch:
  - dir: $WORK/images
    container: images
CONFIG
	chmod 600 "$1"
}

# start_syncd_timed CONFIG LOG: syncd under GNU time -v (need_gnu_time),
# whose report goes to $WORK/time.txt; sets TIME_PID, and SYNCD_PID (time's
# child: SIGTERM must reach syncd itself, time would die of it) once syncd
# is running.
start_syncd_timed() {
	"$TIME" -v -o "$WORK/time.txt" "$BIN/syncd" --config "$1" 2>"$2" &
	TIME_PID=$!
	for _ in $(seq 600); do
		SYNCD_PID=$(pgrep -P "$TIME_PID" || true)
		[[ -n $SYNCD_PID ]] && grep -q '"syncd running"' "$2" && return 0
		sleep 0.1
	done
	tail -20 "$2" >&2
	log "syncd did not start"
	exit 1
}

# stop_syncd_timed: SIGTERM to syncd; sets RSS_MIB from time's report.
stop_syncd_timed() {
	kill -TERM "$SYNCD_PID"
	wait "$TIME_PID" || log "syncd exited with status $? after SIGTERM"
	TIME_PID= SYNCD_PID=
	local kb
	kb=$(sed -n 's/.*Maximum resident set size (kbytes): *//p' "$WORK/time.txt")
	[[ -n $kb ]] || { cat "$WORK/time.txt" >&2; log "no RSS figure"; exit 1; }
	RSS_MIB=$(awk -v k="$kb" 'BEGIN { printf "%.1f", k / 1024 }')
}
