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
DATA_ROOT=$WORK
UUID=bench0000-0000-4000-8000-000000000003
TOKEN=bench-token-$RANDOM$RANDOM$RANDOM
SANDBOX_PID= TIME_PID= SYNCD_PID= REDIS_PID= SANDBOX_DATA_DIR=

. "$ROOT/bench/lib.sh"

cleanup() {
	if [[ -n $SYNCD_PID ]]; then kill "$SYNCD_PID" 2>/dev/null || true; fi
	if [[ -n $TIME_PID ]]; then wait "$TIME_PID" 2>/dev/null || true; fi
	stop_sandbox
	stop_pids $REDIS_PID
	rm -rf "$WORK"
}
trap cleanup EXIT

need_gnu_time
BIN=${BIN_DIR:-$WORK/bin}
build ./cmd/snf-sandbox ./cmd/syncd

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

start_sandbox
REDIS_CFG="addr: embedded
  embedded_listen: 127.0.0.1:0"
if [[ $REDIS == server ]]; then
	start_redis
	REDIS_CFG="addr: 127.0.0.1:$REDIS_PORT"
fi
CONFIG=$WORK/syncd.yaml
write_syncd_config "$CONFIG" bench-files 1s "$REDIS_CFG"

log "== starting syncd under $TIME -v (redis: $REDIS)"
T0=$(date +%s.%N)
start_syncd_timed "$CONFIG" "$WORK/syncd.log"

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
stop_syncd_timed
printf '(g) syncd peak RSS, %d files (*%s, redis %s): %8s MiB   (start to all queued %ss; %d uploads done by SIGTERM)\n' \
	"$FILES" "$SUFFIX" "$REDIS" "$RSS_MIB" "$SECS" "$DONE"
