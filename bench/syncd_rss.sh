#!/usr/bin/env bash
# bench/syncd_rss.sh — SPEC §7's memory bar as the SPEC states it: peak RSS
# *of syncd* (not of an upload tool) while it uploads and registers a RSS_MB
# image with default settings, against snf-sandbox on loopback.
#
# It starts snf-sandbox with a fixed user, writes a syncd config (embedded
# Redis, settle 1s, one watch root, everything else default: upload.files 2,
# upload.blocks 8, hash_workers GOMAXPROCS), runs syncd under /usr/bin/time -v,
# moves the image into the watched folder, polls Plankton
# (GET /image/v1.0/images/detail) until the image is registered, then sends
# syncd SIGTERM and reads "Maximum resident set size".
#
# Prints one summary line on stdout (logs go to stderr):
#   (e) syncd peak RSS, RSS_MB MiB image: N MiB (upload MB/s, drop to registered S s) target <= 100 MiB PASS|FAIL
#
# Environment: RSS_MB (default 4096), BENCH_TMP (default $TMPDIR or /tmp),
# SANDBOX_DATA (where the sandbox keeps its blocks, default under BENCH_TMP),
# BIN_DIR (a directory already holding snf-sandbox and syncd binaries; default:
# build them), IMAGE (an existing file to move into the watched folder, which
# consumes it; default: a fresh random file), TIMEOUT (seconds to wait for the
# registration, default 900).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
RSS_MB=${RSS_MB:-4096}
TMP=${BENCH_TMP:-${TMPDIR:-/tmp}}
TIMEOUT=${TIMEOUT:-900}
WORK=$(mktemp -d "$TMP/imagesync-syncd-rss.XXXXXX")
DATA_ROOT=${SANDBOX_DATA:-$WORK}
UUID=bench0000-0000-4000-8000-000000000002
TOKEN=bench-token-$RANDOM$RANDOM$RANDOM
SANDBOX_PID= TIME_PID= SYNCD_PID= SANDBOX_DATA_DIR=

. "$ROOT/bench/lib.sh"

cleanup() {
	if [[ -n $SYNCD_PID ]]; then kill "$SYNCD_PID" 2>/dev/null || true; fi
	if [[ -n $TIME_PID ]]; then wait "$TIME_PID" 2>/dev/null || true; fi
	stop_sandbox
	rm -rf "$WORK"
}
trap cleanup EXIT

need_gnu_time
BIN=${BIN_DIR:-$WORK}
build ./cmd/snf-sandbox ./cmd/syncd

WATCH=$WORK/images
NAME=rss-$RSS_MB.diskdump
if [[ -n ${IMAGE:-} ]]; then
	SRC=$IMAGE
	RSS_MB=$(($(stat -c %s "$SRC") >> 20))
else
	SRC=$WORK/$NAME.tmp
	log "== creating a $RSS_MB MiB random file"
	head -c "$((RSS_MB << 20))" /dev/urandom >"$SRC"
	sync
fi

start_sandbox
CONFIG=$WORK/syncd.yaml
# redis.embedded_listen and http.listen on port 0: the kernel picks free
# ports, so this never collides with a running syncd or another benchmark.
write_syncd_config "$CONFIG" bench-rss 1s "addr: embedded
  embedded_listen: 127.0.0.1:0"

log "== starting syncd under $TIME -v"
start_syncd_timed "$CONFIG" "$WORK/syncd.log"

images() { curl -fsS -H "X-Auth-Token: $TOKEN" "$BASE/image/v1.0/images/detail"; }

log "== moving the $RSS_MB MiB image into the watched folder; waiting for its registration"
T0=$(date +%s.%N)
mv "$SRC" "$WATCH/$NAME"
REGISTERED=
for _ in $(seq $((TIMEOUT * 5))); do
	kill -0 "$SYNCD_PID" 2>/dev/null || { cat "$WORK/syncd.log" >&2; log "syncd exited"; exit 1; }
	# The sandbox is fresh: the first image listed is this one.
	if images | jq -e '(.images | length) > 0' >/dev/null 2>&1; then
		REGISTERED=yes
		break
	fi
	sleep 0.2
done
T1=$(date +%s.%N)
[[ -n $REGISTERED ]] || { tail -20 "$WORK/syncd.log" >&2; log "no registration after ${TIMEOUT}s"; exit 1; }
SECS=$(awk -v a="$T0" -v b="$T1" 'BEGIN { printf "%.1f", b - a }')
log "$(images | jq -c '.images[0] | {name, size, status, checksum}')"
UPLOADED=$(grep '"image uploaded"' "$WORK/syncd.log" | head -1)
log "$UPLOADED"
UP_MBPS=$(jq -r --argjson b "$((RSS_MB << 20))" '$b / 1e6 / .took | floor' <<<"$UPLOADED")

stop_syncd_timed
OK=$(awk -v v="$RSS_MIB" 'BEGIN { print (v <= 100) ? "PASS" : "FAIL" }')
printf '(e) syncd peak RSS, %d MiB image:        %8s MiB   (upload %s MB/s, drop to registered %ss)   target <= 100 MiB  %s\n' \
	"$RSS_MB" "$RSS_MIB" "$UP_MBPS" "$SECS" "$OK"
