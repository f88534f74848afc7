#!/usr/bin/env bash
# bench/small.sh — many small images at once, with a real Redis.
#
# COUNT images of SIZE_KB KiB of random data, each with its own metafile,
# are staged outside the watched folder and renamed into it as one folder
# while syncd runs (default settings, settle 1s) against snf-sandbox on
# loopback and a redis-server this script starts. It reports:
#   - drop → every image registered, and → every image published (its
#     publish job done), with images/s and milliseconds per image;
#   - syncd's peak RSS (VmHWM);
#   - the slowest `syncctl status --json`, run back to back throughout;
#   - Redis: commands per second of the idle daemon before the drop, and
#     the commands that cost most during the run (INFO commandstats);
#   - hop latency p50/p99 (a job queueing the next → the next starting),
#     from syncd's "job done" log lines.
#
# Environment: COUNT (default 1000), SIZE_KB (default 64), BENCH_TMP (where
# the images and state go; default $TMPDIR or /tmp), SANDBOX_DATA (where the
# sandbox keeps its data; default under BENCH_TMP), BIN_DIR (a directory
# holding snf-sandbox, syncd and syncctl; default: build them), IDLE_SECS
# (the idle Redis measurement, default 10), TIMEOUT (seconds, default 900),
# KEEP (1 keeps the work directory and prints it).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
COUNT=${COUNT:-1000}
SIZE_KB=${SIZE_KB:-64}
IDLE_SECS=${IDLE_SECS:-10}
TIMEOUT=${TIMEOUT:-900}
TMP=${BENCH_TMP:-${TMPDIR:-/tmp}}
WORK=$(mktemp -d "$TMP/imagesync-small.XXXXXX")
DATA_ROOT=${SANDBOX_DATA:-$WORK}
UUID=bench0000-0000-4000-8000-000000000003
TOKEN=bench-token-$RANDOM$RANDOM$RANDOM
SANDBOX_PID= SYNCD_PID= REDIS_PID= STATUS_PID= SANDBOX_DATA_DIR=

. "$ROOT/bench/lib.sh"

cleanup() {
	stop_pids $STATUS_PID $SYNCD_PID
	stop_sandbox
	stop_pids $REDIS_PID
	if [[ ${KEEP:-0} == 1 ]]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

BIN=${BIN_DIR:-$WORK/bin}
build ./cmd/snf-sandbox ./cmd/syncd ./cmd/syncctl
start_redis
start_sandbox

WATCH=$WORK/images
mkdir -p "$WATCH" "$WORK/state"
CONFIG=$WORK/syncd.yaml
write_syncd_config "$CONFIG" bench-small "1s" "addr: 127.0.0.1:$REDIS_PORT"

log "== staging $COUNT images of $SIZE_KB KiB, each with a metafile"
STAGE=$WORK/staging/batch
mkdir -p "$STAGE"
head -c "$((COUNT * SIZE_KB * 1024))" /dev/urandom | (cd "$STAGE" && split -b "$((SIZE_KB * 1024))" -a 6 -d --additional-suffix=.diskdump - img-)
for f in "$STAGE"/img-*.diskdump; do
	n=${f##*/img-}
	printf '{"name": "small %s", "properties": {"OSFAMILY": "linux", "ROOT_PARTITION": "1", "DESCRIPTION": "bench image %s"}}\n' \
		"${n%.diskdump}" "${n%.diskdump}" >"$f.meta"
done
sync

"$BIN/syncd" --config "$CONFIG" 2>"$WORK/syncd.log" &
SYNCD_PID=$!
wait_syncd_running "$WORK/syncd.log" "$SYNCD_PID"
METRICS=$(grep '"syncd running"' "$WORK/syncd.log" | head -1 | jq -r .metrics)
[[ -n $METRICS && $METRICS != null ]] || { cat "$WORK/syncd.log" >&2; log "syncd did not start"; exit 1; }

log "== idle daemon: Redis commands over ${IDLE_SECS}s"
sleep 2
I0=$(redis_calls)
sleep "$IDLE_SECS"
I1=$(redis_calls)
IDLE_OPS=$(awk -v a="$I0" -v b="$I1" -v s="$IDLE_SECS" 'BEGIN { printf "%.1f", (b - a) / s }')
redis-cli -p "$REDIS_PORT" config resetstat >/dev/null

# All the work is done when no queue holds a pending, active, scheduled or
# retrying task and at least 3 tasks per image (upload, register, publish)
# have completed, whichever queues they ran in (asynq keeps completed tasks
# for the retention time). Extra work an older syncd queued (registrations
# for the new metafiles) is waited for too. One EVAL answers: 1 when done.
all_done() {
	redis-cli -p "$REDIS_PORT" eval 'local done, left = 0, 0
for _, q in ipairs(redis.call("SMEMBERS", "asynq:queues")) do
	local k = "asynq:{" .. q .. "}:"
	done = done + redis.call("ZCARD", k .. "completed")
	left = left + redis.call("LLEN", k .. "pending") + redis.call("LLEN", k .. "active") + redis.call("ZCARD", k .. "scheduled") + redis.call("ZCARD", k .. "retry")
end
if left == 0 and done >= tonumber(ARGV[1]) then return 1 end
return 0' 0 "$((3 * COUNT))"
}

# syncctl status --json back to back, each call timed, until stopped.
# Each line of status.times: wall seconds, CPU seconds of syncctl itself.
(
	while :; do
		if ! /usr/bin/time -f '%e %U %S' -a -o "$WORK/status.times" "$BIN/syncctl" --config "$CONFIG" status --json >/dev/null 2>>"$WORK/status.err"; then
			echo "status failed at $(date +%s.%N)" >>"$WORK/status.err"
		fi
		sleep 0.2
	done
) &
STATUS_PID=$!

C0_SYNCD=$(cpu "$SYNCD_PID") C0_SANDBOX=$(cpu "$SANDBOX_PID") C0_REDIS=$(cpu "$REDIS_PID")
sandbox_requests() { curl -fsS "$BASE/_sandbox/stats" | jq .requests; }
R0=$(sandbox_requests)

log "== dropping the folder into the watched folder"
T0=$(date +%s.%N)
mv "$WORK/staging/batch" "$WATCH/batch"
TPUB=
for _ in $(seq $((TIMEOUT * 4))); do
	kill -0 "$SYNCD_PID" 2>/dev/null || { tail -20 "$WORK/syncd.log" >&2; log "syncd exited"; exit 1; }
	if (($(all_done) == 1)); then
		TPUB=$(date +%s.%N)
		break
	fi
	sleep 0.25
done
kill "$STATUS_PID" 2>/dev/null || true
wait "$STATUS_PID" 2>/dev/null || true
STATUS_PID=
[[ -n $TPUB ]] || { tail -20 "$WORK/syncd.log" >&2; log "not every image published after ${TIMEOUT}s"; exit 1; }

RSS_KB=$(awk '/^VmHWM:/ { print $2 }' "/proc/$SYNCD_PID/status")
cpu_ms() { awk -v a="$1" -v b="$2" -v n="$COUNT" 'BEGIN { printf "%.2f", (b - a) * 1000 / n }'; }
CPU_SYNCD=$(cpu_ms "$C0_SYNCD" "$(cpu "$SYNCD_PID")")
CPU_SANDBOX=$(cpu_ms "$C0_SANDBOX" "$(cpu "$SANDBOX_PID")")
CPU_REDIS=$(cpu_ms "$C0_REDIS" "$(cpu "$REDIS_PID")")
REQS=$(awk -v a="$R0" -v b="$(sandbox_requests)" -v n="$COUNT" 'BEGIN { printf "%.1f", (b - a - 1) / n }')
# The sandbox must hold every image.
IMAGES=$(curl -fsS -H "X-Auth-Token: $TOKEN" "$BASE/image/v1.0/images/" | jq '.images | length')

# When the last image was registered, from the log.
last_ts() { jq -r --arg m "$1" 'select(.msg == $m) | .ts' "$WORK/syncd.log" | sort | tail -1 | xargs -I{} date -d {} +%s.%N; }
REG_S=$(awk -v a="$T0" -v b="$(last_ts "image registered")" 'BEGIN { printf "%.1f", b - a }')
PUB_S=$(awk -v a="$T0" -v b="$(last_ts "image published")" 'BEGIN { printf "%.1f", b - a }')
PER_IMAGE_MS=$(awk -v s="$PUB_S" -v n="$COUNT" 'BEGIN { printf "%.2f", s * 1000 / n }')
RATE=$(awk -v s="$PUB_S" -v n="$COUNT" 'BEGIN { printf "%.0f", n / s }')
STATUS_N=$(grep -c '^[0-9]' "$WORK/status.times" 2>/dev/null || echo 0)
STATUS_MAX=$(awk '$1 ~ /^[0-9.]+$/ { d = $1 * 1000; if (d > m) m = d } END { printf "%.0f", m }' "$WORK/status.times" 2>/dev/null || echo -)
STATUS_CPU=$(awk '$1 ~ /^[0-9.]+$/ { c = ($2 + $3) * 1000; if (c > m) m = c } END { printf "%.0f", m }' "$WORK/status.times" 2>/dev/null || echo -)
STATUS_FAILS=$(grep -c 'status failed' "$WORK/status.err" 2>/dev/null || true)
HOPS=$(hops "$WORK/syncd.log" | sort -g || true)
HOP_N=$(grep -c . <<<"$HOPS" || true)
HOP_P50=$(pct 50 <<<"$HOPS")
HOP_P99=$(pct 99 <<<"$HOPS")
TOP=$(redis-cli -p "$REDIS_PORT" info commandstats | tr -d '\r' | awk -F'[:,=]' '/^cmdstat_/ {
	for (i = 2; i <= NF; i++) { if ($i == "calls") c = $(i + 1); if ($i == "usec") u = $(i + 1) }
	printf "%s %d %d\n", substr($1, 9), c, u }' | sort -k3 -n -r | head -8 |
	awk -v n="$COUNT" '{ printf "    %-14s %9d calls %6.1f/image  %8.0f ms\n", $1, $2, $2 / n, $3 / 1000 }')

cat <<EOF

imagesync many small images — $COUNT × $SIZE_KB KiB, each with a metafile, one folder renamed in; real Redis; $(nproc) CPUs; load average $(cut -d' ' -f1-3 /proc/loadavg)
  drop → all registered:   $(printf '%7s' "$REG_S") s
  drop → all published:    $(printf '%7s' "$PUB_S") s   ($RATE images/s, $PER_IMAGE_MS ms per image)
  images in Plankton:      $(printf '%7s' "$IMAGES")
  CPU per image:           syncd $CPU_SYNCD ms, sandbox $CPU_SANDBOX ms, redis-server $CPU_REDIS ms (Redis's includes the status polling)
  cloud requests per image:$(printf '%7s' "$REQS")
  syncd peak RSS (VmHWM):  $(awk -v k="$RSS_KB" 'BEGIN { printf "%7.1f", k / 1024 }') MiB
  syncctl status --json:   slowest $STATUS_MAX ms over $STATUS_N calls ($STATUS_FAILS failed); at most $STATUS_CPU ms of its own CPU
  hop latency:             p50 $HOP_P50 ms, p99 $HOP_P99 ms over $HOP_N hops
  Redis, idle daemon:      $IDLE_OPS commands/s
  Redis, the run's costliest commands (by server time):
$TOP
EOF
