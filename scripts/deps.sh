#!/bin/sh
# Checks the Debian packages a stage needs; installs the missing ones when run as root,
# otherwise names them all in one error. Stages: build (compile the shim and tools),
# demo (make demo: the build plus python3 and curl),
# test (the programs the tests drive, g++ for the C++ test library; groff-base ships groff
# with the man macros and the utf8 device, without the X11 libraries of package groff;
# python3-requests and python3-dev: the Python stack tests, a requests program and a C program
# embedding Python; wget, redis-tools, nodejs, postgresql-client, default-jdk-headless (java and
# javac) and util-linux (unshare): the clients of the zero-configuration tests;
# libpython3.11-testsuite: CPython's own test suite, run without and with the shim by
# test_transparency_cpython and make check-cpython, and test_subprocess by test_hostile_trace),
# hostile (make fuzz, check-valgrind: clang with libFuzzer, valgrind), bench (make bench: ab from
# apache2-utils, curl, strace, valgrind for the anchors); lockwait: only wait for the package
# manager's locks (tests).
set -e
stage=${1:-build}

# Another apt-get or dpkg (unattended-upgrades, a second build) may hold the package locks:
# wait for them, bounded, rather than fail at once. dpkg and apt take fcntl() locks, which
# /proc/locks lists by inode (fuser is in psmisc, not always installed).
LOCK_WAIT=${DEPS_LOCK_WAIT:-300}
# DEPS_LOCKS: other lock files to watch instead (tests).
locks=${DEPS_LOCKS:-"/var/lib/dpkg/lock-frontend /var/lib/dpkg/lock /var/lib/apt/lists/lock /var/cache/apt/archives/lock"}
lock_held() {
  for f in $locks; do
    [ -e "$f" ] || continue
    ino=$(stat -c %i "$f" 2>/dev/null) || continue
    grep -q ":$ino " /proc/locks 2>/dev/null && return 0
  done
  return 1
}
waited=0
wait_locks() {
  while lock_held; do
    if [ "$waited" -ge "$LOCK_WAIT" ]; then
      echo "connguard: the package manager is still busy after ${LOCK_WAIT} s (dpkg/apt lock held); try again later" >&2
      exit 1
    fi
    [ "$waited" = 0 ] && echo "connguard: another package manager holds the dpkg/apt lock; waiting for it (up to ${LOCK_WAIT} s)" >&2
    sleep 1
    waited=$((waited + 1))
  done
}

build_pkgs="gcc make libc6-dev pkg-config libssl-dev check binutils"
demo_pkgs="python3 curl"
test_pkgs="python3 curl netcat-openbsd openssl procps iproute2 g++ strace groff-base python3-requests python3-dev
  wget redis-tools nodejs postgresql-client default-jdk-headless util-linux libpython3.11-testsuite"
# socat and git: real runtimes of the leak tests (tests/integration/test_leaks_runtimes.py).
leak_test_pkgs="socat git"
hostile_pkgs="clang libclang-rt-14-dev valgrind"
bench_pkgs="python3 apache2-utils curl strace valgrind"
case "$stage" in
  build) want=$build_pkgs ;;
  demo)  want="$build_pkgs $demo_pkgs" ;;
  test)  want="$build_pkgs $test_pkgs $leak_test_pkgs" ;;
  hostile) want="$build_pkgs $test_pkgs $hostile_pkgs" ;;
  bench) want="$build_pkgs $bench_pkgs" ;;
  lockwait) wait_locks; exit 0 ;;   # only the wait (tests)
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
  # The lock can be taken between our check and apt-get's: apt-get also waits for the dpkg
  # lock itself (DPkg::Lock::Timeout), within what is left of the same bound.
  wait_locks
  apt-get -o DPkg::Lock::Timeout=$((LOCK_WAIT - waited)) update -qq >/dev/null
  wait_locks
  # shellcheck disable=SC2086
  apt-get -o DPkg::Lock::Timeout=$((LOCK_WAIT - waited)) install -y -qq --no-install-recommends $missing >/dev/null
  exit 0
fi
echo "connguard: missing Debian packages:$missing -- install them with: sudo apt-get install$missing" >&2
exit 1
