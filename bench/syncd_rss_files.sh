#!/usr/bin/env bash
# bench/syncd_rss_files.sh — syncd's peak RSS with a watch root holding FILES
# files (issue 13: a hostile writer can drop any number of files into a
# folder). It starts snf-sandbox, creates FILES one-byte files named
# NAME-%06d$SUFFIX in 100 subdirectories of the root, starts syncd (default
# settings, settle 1s) under /usr/bin/time -v, waits until syncd has queued an
# upload for every image (its "image ready" log lines) or, for files that are
# no images, until its first scan is done, lets it work HOLD more seconds,
# stops it with SIGTERM and prints GNU time's "Maximum resident set size".
#
#   (g) syncd peak RSS, 100000 files (.diskdump, redis embedded): N MiB (scan+queue S s)
#
# Environment: FILES (default 100000), SUFFIX (default .diskdump; e.g. .txt
# for files that are no images), REDIS (embedded, the default, which keeps
# the queue inside syncd's memory; or server: a redis-server of this script's
# own on a free port, so the figure is syncd's alone), HOLD (default 30),
# BENCH_TMP (default /dev/shm if present, else $TMPDIR or /tmp), BIN_DIR (a
# directory holding snf-sandbox and syncd; default: build them).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
FILES=${FILES:-100000}
SUFFIX=${SUFFIX:-.diskdump}
REDIS=${REDIS:-embedded}
HOLD=${HOLD:-30}
if [[ -z ${BENCH_TMP:-} && -d /dev/shm ]]; then BENCH_TMP=/dev/shm; fi
TMP=${BENCH_TMP:-${TMPDIR:-/tmp}}
WORK=$(mktemp -d "$TMP/imagesync-rss-files.XXXXXX")
UUID=bench0000-0000-4000-8000-000000000003
TOKEN=bench-token-$RANDOM$RANDOM$RANDOM
SANDBOX_PID= TIME_PID= SYNCD_PID= REDIS_PID=

log() { printf '%s\n' "$*" >&2; }

cleanup() {
	if [[ -n $SYNCD_PID ]]; then kill "$SYNCD_PID" 2>/dev/null || true; fi
	if [[ -n $TIME_PID ]]; then wait "$TIME_PID" 2>/dev/null || true; fi
	for pid in $SANDBOX_PID $REDIS_PID; do
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	rm -rf "$WORK"
}
trap cleanup EXIT

TIME=/usr/bin/time
if [[ ! -x $TIME ]]; then
	log "== installing GNU time"
	apt-get install -y time >/dev/null || { apt-get update >/dev/null && apt-get install -y time >/dev/null; }
fi
BIN=${BIN_DIR:-}
if [[ -z $BIN || ! -x $BIN/snf-sandbox || ! -x $BIN/syncd ]]; then
	BIN=$WORK/bin
	log "== building snf-sandbox and syncd (into $BIN)"
	(cd "$ROOT" && go build -o "$BIN/" ./cmd/snf-sandbox ./cmd/syncd)
fi

WATCH=$WORK/images
log "== creating $FILES files (*$SUFFIX) under $WATCH"
python3 - "$WATCH" "$FILES" "$SUFFIX" <<'EOF'
import os, sys
root, n, suffix = sys.argv[1], int(sys.argv[2]), sys.argv[3]
for d in range(100):
    os.makedirs(os.path.join(root, "d%02d" % d), exist_ok=True)
for i in range(n):
    with open(os.path.join(root, "d%02d" % (i % 100), "f-%06d%s" % (i, suffix)), "wb") as f:
        f.write(b"x")
EOF

mkdir -p "$WORK/sandbox" "$WORK/state"
chmod 700 "$WORK/state"
"$BIN/snf-sandbox" --listen 127.0.0.1:0 --data "$WORK/sandbox" --user "bench:$UUID:$TOKEN" >"$WORK/sandbox.log" 2>&1 &
SANDBOX_PID=$!
BASE=
for _ in $(seq 100); do
	BASE=$(sed -n 's/^snf-sandbox listening on \(http:[^ ]*\).*/\1/p' "$WORK/sandbox.log")
	[[ -n $BASE ]] && break
	sleep 0.1
done
[[ -n $BASE ]] || { cat "$WORK/sandbox.log" >&2; log "sandbox did not start"; exit 1; }

REDIS_CFG="addr: embedded
  embedded_listen: 127.0.0.1:0"
if [[ $REDIS == server ]]; then
	PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$WORK" >"$WORK/redis.log" 2>&1 &
	REDIS_PID=$!
	for _ in $(seq 50); do redis-cli -p "$PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
	REDIS_CFG="addr: 127.0.0.1:$PORT"
fi

CONFIG=$WORK/syncd.yaml
cat >"$CONFIG" <<EOF
node: bench-files
cloud:
  auth_url: $BASE/identity/v2.0
  token: $TOKEN
redis:
  $REDIS_CFG
state_dir: $WORK/state
settle: 1s
http:
  listen: 127.0.0.1:0
watch:
  - dir: $WATCH
    container: images
EOF
chmod 600 "$CONFIG"

log "== starting syncd under $TIME -v (redis: $REDIS)"
T0=$(date +%s.%N)
"$TIME" -v -o "$WORK/time.txt" "$BIN/syncd" --config "$CONFIG" 2>"$WORK/syncd.log" &
TIME_PID=$!
for _ in $(seq 600); do
	SYNCD_PID=$(pgrep -P "$TIME_PID" || true)
	[[ -n $SYNCD_PID ]] && grep -q '"syncd running"' "$WORK/syncd.log" && break
	sleep 0.1
done
grep -q '"syncd running"' "$WORK/syncd.log" || { tail "$WORK/syncd.log" >&2; log "syncd did not start"; exit 1; }

if [[ $SUFFIX == .diskdump ]]; then
	log "== waiting for an upload to be queued for each of the $FILES images"
	until (($(grep -c '"image ready"' "$WORK/syncd.log" || true) >= FILES)); do
		kill -0 "$SYNCD_PID" 2>/dev/null || { tail "$WORK/syncd.log" >&2; log "syncd exited"; exit 1; }
		sleep 1
	done
else
	log "== waiting for the first scan to finish"
	sleep 5
fi
T1=$(date +%s.%N)
SECS=$(awk -v a="$T0" -v b="$T1" 'BEGIN { printf "%.0f", b - a }')
log "== all queued after ${SECS}s; letting syncd work ${HOLD}s more"
sleep "$HOLD"
DONE=$(grep -c '"image uploaded"' "$WORK/syncd.log" || true)
kill -TERM "$SYNCD_PID"
wait "$TIME_PID" || log "syncd exited with status $? after SIGTERM"
TIME_PID= SYNCD_PID=
RSS_KB=$(sed -n 's/.*Maximum resident set size (kbytes): *//p' "$WORK/time.txt")
[[ -n $RSS_KB ]] || { cat "$WORK/time.txt" >&2; log "no RSS figure"; exit 1; }
RSS_MIB=$(awk -v k="$RSS_KB" 'BEGIN { printf "%.1f", k / 1024 }')
printf '(g) syncd peak RSS, %d files (*%s, redis %s): %8s MiB   (start to all queued %ss; %d uploads done by SIGTERM)\n' \
	"$FILES" "$SUFFIX" "$REDIS" "$RSS_MIB" "$SECS" "$DONE"
