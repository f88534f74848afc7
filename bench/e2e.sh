#!/usr/bin/env bash
# bench/e2e.sh — what users feel: how fast an image dropped into a watched
# folder is published, next to what the wire allows, in one run.
#
#   (1) syncd: drop → published, end to end (upload, register, publish),
#       minus the settle: from syncd's "image ready" (the file has been
#       stable for the settle time) to its "image published";
#   (2) wire: one single-stream PUT of the same file to the same sandbox
#       with Go's HTTP client (bench/cmd/upload -put): the server hashes and
#       stores it, with none of the hashmap protocol's round trips;
#   (3) engine: the upload engine alone (bench/cmd/upload).
#
# Each is the best of RUNS runs, each against a fresh sandbox (blocks are
# de-duplicated account-wide) with its data under SANDBOX_DATA, and the
# image under BENCH_TMP. syncd runs with default settings (settle 1s) and a
# redis-server this script starts. It prints the rates, the ratios (1)/(2)
# and (3)/(2), the hop latency (a job queueing the next → the next
# starting) over every run, the Redis commands per second of the idle
# daemon, syncd's peak RSS, and the load average.
#
# Environment: SIZE_MB (default 1024), RUNS (default 3), BENCH_TMP (default
# $TMPDIR or /tmp), SANDBOX_DATA (default under BENCH_TMP), BIN_DIR (holding
# snf-sandbox, syncd and upload; default: build them), MODES (default
# "wire engine syncd"), IDLE_SECS (default 10), SETTLE (default 1s),
# PUT_UPLOAD (the upload binary that has -put, default $BIN_DIR/upload; to
# measure an older build's syncd and engine against the same wire).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SIZE_MB=${SIZE_MB:-1024}
RUNS=${RUNS:-3}
MODES=${MODES:-wire engine syncd}
IDLE_SECS=${IDLE_SECS:-10}
SETTLE=${SETTLE:-1s}
TMP=${BENCH_TMP:-${TMPDIR:-/tmp}}
WORK=$(mktemp -d "$TMP/imagesync-e2e.XXXXXX")
DATA_ROOT=${SANDBOX_DATA:-$WORK}
UUID=bench0000-0000-4000-8000-000000000004
TOKEN=bench-token-$RANDOM$RANDOM$RANDOM
SANDBOX_PID= SYNCD_PID= REDIS_PID= SANDBOX_DATA_DIR=

. "$ROOT/bench/lib.sh"

stop_syncd() {
	if [[ -n $SYNCD_PID ]]; then
		stop_pids "$SYNCD_PID"
		SYNCD_PID=
	fi
}

per_gib() { awk -v c="$1" -v mb="$SIZE_MB" 'BEGIN { printf "%.2f", c * 1024 / mb }'; }

cleanup() {
	stop_syncd
	stop_sandbox
	stop_pids $REDIS_PID
	rm -rf "$WORK"
}
trap cleanup EXIT

BIN=${BIN_DIR:-$WORK/bin}
build ./cmd/snf-sandbox ./cmd/syncd ./bench/cmd/upload
PUT_UPLOAD=${PUT_UPLOAD:-$BIN/upload}
start_redis

FILE=$WORK/bench-$SIZE_MB.diskdump
log "== creating a $SIZE_MB MiB random file in $TMP"
head -c "$((SIZE_MB << 20))" /dev/urandom >"$FILE"
sync
BYTES=$((SIZE_MB << 20))
field() { jq -r ".$1" <<<"$2"; }
best() { awk -v a="$1" -v b="$2" 'BEGIN { print (a > b) ? a : b }'; }
mbps() { awk -v b="$BYTES" -v s="$1" 'BEGIN { printf "%.0f", b / 1e6 / s }'; }

WATCH=$WORK/images
CONFIG=$WORK/syncd.yaml
IDLE_OPS=-
RSS_MAX=0
: >"$WORK/hops"
# run_syncd: drop the file into a fresh syncd's watched folder, wait until
# it is published, and set RUN_SECS to the seconds from "image ready" to
# "image published". The file is moved back out afterwards.
run_syncd() {
	local n=$1
	rm -rf "$WATCH" "$WORK/state" && mkdir -p "$WATCH" "$WORK/state"
	redis-cli -p "$REDIS_PORT" flushall >/dev/null
	write_syncd_config "$CONFIG" bench-e2e "$SETTLE" "addr: 127.0.0.1:$REDIS_PORT"
	"$BIN/syncd" --config "$CONFIG" 2>"$WORK/syncd-$n.log" &
	SYNCD_PID=$!
	wait_syncd_running "$WORK/syncd-$n.log" "$SYNCD_PID"
	if [[ $IDLE_OPS == - ]]; then
		log "== idle daemon: Redis commands over ${IDLE_SECS}s"
		sleep 2
		local i0 i1
		i0=$(redis_calls)
		sleep "$IDLE_SECS"
		i1=$(redis_calls)
		IDLE_OPS=$(awk -v a="$i0" -v b="$i1" -v s="$IDLE_SECS" 'BEGIN { printf "%.1f", (b - a) / s }')
	fi
	local c0
	c0=$(cpu "$SYNCD_PID")
	mv "$FILE" "$WATCH/img.diskdump"
	local ok=
	for _ in $(seq 36000); do
		kill -0 "$SYNCD_PID" 2>/dev/null || { tail -20 "$WORK/syncd-$n.log" >&2; log "syncd exited"; exit 1; }
		if grep -q '"image published"' "$WORK/syncd-$n.log" 2>/dev/null; then ok=1; break; fi
		sleep 0.05
	done
	[[ -n $ok ]] || { tail -20 "$WORK/syncd-$n.log" >&2; log "not published"; exit 1; }
	local rss
	SYNCD_CPU=$(awk -v a="$c0" -v b="$(cpu "$SYNCD_PID")" 'BEGIN { printf "%.2f", b - a }')
	rss=$(awk '/^VmHWM:/ { print $2 }' "/proc/$SYNCD_PID/status")
	RSS_MAX=$(best "$rss" "$RSS_MAX")
	stop_syncd
	mv "$WATCH/img.diskdump" "$FILE"
	hops "$WORK/syncd-$n.log" >>"$WORK/hops"
	local ready pub
	ready=$(jq -r 'select(.msg == "image ready") | .ts' "$WORK/syncd-$n.log" | head -1)
	pub=$(jq -r 'select(.msg == "image published") | .ts' "$WORK/syncd-$n.log" | head -1)
	jq -c 'select(.msg == "image uploaded") | {took, blocks_sent}' "$WORK/syncd-$n.log" >&2
	RUN_SECS=$(awk -v a="$(date -d "$ready" +%s.%N)" -v b="$(date -d "$pub" +%s.%N)" 'BEGIN { printf "%.3f", b - a }')
}

WIRE=0 ENGINE=0 E2E=0 SANDBOX_CPU=0 SYNCD_CPU=0
declare -A CPU_LINE=([wire]=- [engine]=- [syncd]=-)
for run in $(seq "$RUNS"); do
	for mode in $MODES; do
		start_sandbox
		case $mode in
		wire)
			if ((SIZE_MB > 5120)); then
				log "run $run (2) wire: skipped: Pithos+ refuses a request body over 5 GiB (MAX_UPLOAD_SIZE)"
				continue
			fi
			r=$(IMAGESYNC_TOKEN=$TOKEN "$PUT_UPLOAD" -put -url "$URL" -account "$UUID" -object wire.diskdump "$FILE")
			log "run $run (2) wire:   $r"
			WIRE=$(best "$(field mb_per_s "$r")" "$WIRE")
			;;
		engine)
			r=$(IMAGESYNC_TOKEN=$TOKEN "$BIN/upload" -url "$URL" -account "$UUID" -object engine.diskdump "$FILE")
			log "run $run (3) engine: $r"
			[[ $(field blocks_sent "$r") == $(field blocks_total "$r") ]] || { log "the engine did not send every block"; exit 1; }
			ENGINE=$(best "$(field mb_per_s "$r")" "$ENGINE")
			;;
		syncd)
			run_syncd "$run"
			log "run $run (1) syncd:  ready → published ${RUN_SECS}s ($(mbps "$RUN_SECS") MB/s)"
			E2E=$(best "$(mbps "$RUN_SECS")" "$E2E")
			;;
		esac
		stop_sandbox
		CPU_LINE[$mode]="sandbox $(per_gib "$SANDBOX_CPU") s"
		if [[ $mode == syncd ]]; then CPU_LINE[$mode]+=", syncd $(per_gib "$SYNCD_CPU") s"; fi
		log "run $run ($mode): CPU per GiB: ${CPU_LINE[$mode]}"
	done
done

HOPS=$(sort -g "$WORK/hops")
HOP_N=$(grep -c . <<<"$HOPS" || true)
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
cat <<EOF

imagesync: what users feel — $SIZE_MB MiB random image (in $TMP), sandbox data in $DATA_ROOT, best of $RUNS; $(nproc) CPUs; load average $(cut -d' ' -f1-3 /proc/loadavg)
  (1) syncd, ready → published:        $(printf '%6.0f' "$E2E") MB/s
  (2) wire, one PUT (Go net/http):      $(printf '%6.0f' "$WIRE") MB/s
  (3) upload engine alone:              $(printf '%6.0f' "$ENGINE") MB/s
  (1)/(2) = $(ratio "$E2E" "$WIRE")    (3)/(2) = $(ratio "$ENGINE" "$WIRE")
  hop latency (job → next job):         p50 $(pct 50 <<<"$HOPS") ms, p99 $(pct 99 <<<"$HOPS") ms over $HOP_N hops
  Redis, idle daemon:                   $IDLE_OPS commands/s
  syncd peak RSS (VmHWM):               $(awk -v k="$RSS_MAX" 'BEGIN { printf "%.1f", k / 1024 }') MiB
  CPU seconds per GiB (last run):       (1) ${CPU_LINE[syncd]}; (2) ${CPU_LINE[wire]}; (3) ${CPU_LINE[engine]}
EOF
