#!/usr/bin/env bash
# make demo: a loopback server that starts late, an unmodified client (curl) failing without
# connguard and recovering with it, and the log it wrote. Loopback only; bounded; ~5 s.
# Every command the demo runs on its client is printed as it is run ("$ ..."), variables
# included. Bold headings only when stdout is a terminal.
set -u
BUILD=${BUILD:-build}
SHIM=$(cd "$BUILD" && pwd)/libconnguard.so
PY=/usr/bin/python3
HERE=$(cd "$(dirname "$0")/.." && pwd)
port=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
tmp=$(mktemp -d)
log=$tmp/connguard.log
srv=""
cleanup() { [ -n "$srv" ] && kill "$srv" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

if [ -t 1 ]; then bold=$'\033[1m' plain=$'\033[0m'; else bold="" plain=""; fi
say() { printf '\n%s%s%s\n' "$bold" "$*" "$plain"; }
# Prints "$ VAR=value ... command args" (quoted where the shell needs it), then runs exactly that.
run() {
  local out="\$" a
  for a in "$@"; do
    case "$a" in *[!A-Za-z0-9_./:=,+-]*|"") out+=" $(printf '%q' "$a")" ;; *) out+=" $a" ;; esac
  done
  printf '%s\n' "$out"
  env "$@"
}
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
server() { $PY "$HERE/tests/integration/servers.py" http 127.0.0.1 "$port" 1.5 1 >/dev/null & srv=$!; }

say "1. Without connguard: the server on 127.0.0.1:$port starts 1.5 s late, curl gives up at once"
server
run curl -sS "http://127.0.0.1:$port/"; echo "curl exit status: $?"
kill "$srv" 2>/dev/null; wait "$srv" 2>/dev/null; srv=""

say "2. With connguard: the same unmodified curl, LD_PRELOAD=libconnguard.so"
server
start=$(now_ms)
run CONNGUARD_STACK_DEPTH=4 CONNGUARD_LOG="$log" LD_PRELOAD="$SHIM" curl -sS "http://127.0.0.1:$port/"
rc=$?
end=$(now_ms)
printf 'curl exit status: %s after %d.%d s\n' "$rc" $(( (end - start) / 1000 )) $(( (end - start) % 1000 / 100 ))
wait "$srv" 2>/dev/null; srv=""

say "3. The log connguard wrote ($log, removed when the demo ends):"
cat "$log"
say "Done: every failed attempt is one record with errno, backoff, hint and stack;"
echo "CONNGUARD_LOG_FORMAT=json gives one JSON object per line. See README.md and docs/."
exit "$rc"
