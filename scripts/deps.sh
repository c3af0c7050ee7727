#!/bin/sh
# Checks the Debian packages a stage needs; installs the missing ones when run as root,
# otherwise names them all in one error. Stages: build (compile the shim and tools),
# test (the programs the tests drive, g++ for the C++ test library; groff-base ships groff
# with the man macros and the utf8 device, without the X11 libraries of package groff),
# hostile (make fuzz, check-valgrind: clang with libFuzzer, valgrind).
set -e
stage=${1:-build}
build_pkgs="gcc make libc6-dev pkg-config libunwind-dev libssl-dev check binutils"
test_pkgs="python3 curl netcat-openbsd openssl procps iproute2 g++ strace groff-base"
hostile_pkgs="clang libclang-rt-14-dev valgrind"
case "$stage" in
  build) want=$build_pkgs ;;
  test)  want="$build_pkgs $test_pkgs" ;;
  hostile) want="$build_pkgs $test_pkgs $hostile_pkgs" ;;
  *) echo "deps.sh: unknown stage '$stage'" >&2; exit 2 ;;
esac
missing=""
for p in $want; do
  st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  case "$st" in *" installed") ;; *) missing="$missing $p" ;; esac
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "connguard: installing missing Debian packages:$missing" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
  exit 0
fi
echo "connguard: missing Debian packages:$missing -- install them with: sudo apt-get install$missing" >&2
exit 1
