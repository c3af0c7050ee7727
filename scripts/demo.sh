#!/usr/bin/env bash
# make demo: a loopback server that starts late, an unmodified client (curl) failing without
# connguard and recovering with it, and the log it wrote. Loopback only; bounded; ~5 s.
set -u
BUILD=${BUILD:-build}
SHIM=$(cd "$BUILD" && pwd)/libconnguard.so
PY=/usr/bin/python3
HERE=$(cd "$(dirname "$0")/.." && pwd)
port=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
log=$(mktemp -d)/connguard.log
srv=""
cleanup() { [ -n "$srv" ] && kill "$srv" 2>/dev/null; wait 2>/dev/null; }
trap cleanup EXIT

say() { printf '\n\033[1m%s\033[0m\n' "$*"; }

say "1. Without connguard: the server on 127.0.0.1:$port starts 1.5 s late, curl gives up at once"
$PY "$HERE/tests/integration/servers.py" http 127.0.0.1 "$port" 1.5 1 >/dev/null & srv=$!
curl -sS "http://127.0.0.1:$port/"; echo "curl exit status: $?"
kill "$srv" 2>/dev/null; wait "$srv" 2>/dev/null; srv=""

say "2. With connguard: the same unmodified curl, LD_PRELOAD=libconnguard.so"
$PY "$HERE/tests/integration/servers.py" http 127.0.0.1 "$port" 1.5 1 >/dev/null & srv=$!
echo "\$ CONNGUARD_RETRIES=8 CONNGUARD_LOG=$log LD_PRELOAD=$SHIM curl -sS http://127.0.0.1:$port/"
start=$(date +%s.%N)
CONNGUARD_RETRIES=8 CONNGUARD_STACK_DEPTH=4 CONNGUARD_LOG="$log" LD_PRELOAD="$SHIM" \
  curl -sS "http://127.0.0.1:$port/"
rc=$?
end=$(date +%s.%N)
printf 'curl exit status: %s after %.1f s\n' "$rc" "$(echo "$end - $start" | bc 2>/dev/null || echo 0)"
wait "$srv" 2>/dev/null; srv=""

say "3. The log connguard wrote ($log):"
cat "$log"
say "Done: every failed attempt is one record with errno, backoff, hint and stack;"
echo "CONNGUARD_LOG_FORMAT=json gives one JSON object per line. See README.md and docs/."
exit "$rc"
