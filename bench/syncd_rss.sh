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

log() { printf '%s\n' "$*" >&2; }

cleanup() {
	if [[ -n $SYNCD_PID ]]; then kill "$SYNCD_PID" 2>/dev/null || true; fi
	if [[ -n $TIME_PID ]]; then wait "$TIME_PID" 2>/dev/null || true; fi
	if [[ -n $SANDBOX_PID ]]; then
		kill "$SANDBOX_PID" 2>/dev/null || true
		wait "$SANDBOX_PID" 2>/dev/null || true
	fi
	[[ -n $SANDBOX_DATA_DIR ]] && rm -rf "$SANDBOX_DATA_DIR"
	rm -rf "$WORK"
}
trap cleanup EXIT

TIME=/usr/bin/time
if [[ ! -x $TIME ]]; then
	log "== installing GNU time"
	apt-get install -y time >/dev/null || { apt-get update >/dev/null && apt-get install -y time >/dev/null; }
fi

BIN=${BIN_DIR:-}
if [[ -z $BIN || ! -x $BIN/snf-sandbox ]]; then
	BIN=$WORK
	log "== building snf-sandbox (into $BIN)"
	(cd "$ROOT" && go build -o "$BIN/snf-sandbox" ./cmd/snf-sandbox)
fi
if [[ ! -x $BIN/syncd ]]; then
	log "== building syncd (into $BIN)"
	(cd "$ROOT" && go build -o "$BIN/syncd" ./cmd/syncd)
fi

WATCH=$WORK/images
mkdir -p "$WATCH" "$WORK/state"
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

CONFIG=$WORK/syncd.yaml
# redis.embedded_listen and http.listen on port 0: the kernel picks free
# ports, so this never collides with a running syncd or another benchmark.
cat >"$CONFIG" <<EOF
node: bench-rss
cloud:
  auth_url: $BASE/identity/v2.0
  token: $TOKEN
redis:
  addr: embedded
  embedded_listen: 127.0.0.1:0
state_dir: $WORK/state
settle: 1s
http:
  listen: 127.0.0.1:0
watch:
  - dir: $WATCH
    container: images
EOF
chmod 600 "$CONFIG"

log "== starting syncd under $TIME -v"
"$TIME" -v -o "$WORK/time.txt" "$BIN/syncd" --config "$CONFIG" 2>"$WORK/syncd.log" &
TIME_PID=$!
# SIGTERM must reach syncd itself (GNU time would die of it): syncd is the
# child of this time process.
for _ in $(seq 100); do
	SYNCD_PID=$(pgrep -P "$TIME_PID" || true)
	[[ -n $SYNCD_PID ]] && grep -q '"syncd running"' "$WORK/syncd.log" && break
	sleep 0.1
done
grep -q '"syncd running"' "$WORK/syncd.log" || { cat "$WORK/syncd.log" >&2; log "syncd did not start"; exit 1; }

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

kill -TERM "$SYNCD_PID"
wait "$TIME_PID" || log "syncd exited with status $? after SIGTERM"
TIME_PID= SYNCD_PID=
RSS_KB=$(sed -n 's/.*Maximum resident set size (kbytes): *//p' "$WORK/time.txt")
[[ -n $RSS_KB ]] || { cat "$WORK/time.txt" >&2; log "no RSS figure"; exit 1; }
RSS_MIB=$(awk -v k="$RSS_KB" 'BEGIN { printf "%.1f", k / 1024 }')
OK=$(awk -v v="$RSS_MIB" 'BEGIN { print (v <= 100) ? "PASS" : "FAIL" }')
printf '(e) syncd peak RSS, %d MiB image:        %8s MiB   (upload %s MB/s, drop to registered %ss)   target <= 100 MiB  %s\n' \
	"$RSS_MB" "$RSS_MIB" "$UP_MBPS" "$SECS" "$OK"
