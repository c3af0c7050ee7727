"""scripts/deps.sh waits, bounded and with one message, for a package manager that holds the
dpkg/apt locks instead of failing at once (issue 13 item 5). The lock files are our own
(DEPS_LOCKS), held with fcntl() as dpkg and apt hold theirs, so the test never touches the
machine's package manager."""
import fcntl
import os
import subprocess
import threading
import time

import cglib
from cglib import check

DEPS = os.path.join(cglib.ROOT, "scripts", "deps.sh")


def _held_lock(release_after=None):
    path = os.path.join(cglib.tmpdir(), "lock-frontend")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.lockf(fd, fcntl.LOCK_EX)
    if release_after is not None:
        threading.Timer(release_after, lambda: os.close(fd)).start()
    return path, fd


def _lockwait(path, bound):
    env = dict(os.environ, DEPS_LOCKS=path + " /nonexistent/lock", DEPS_LOCK_WAIT=str(bound))
    t0 = time.monotonic()
    p = subprocess.run(["sh", DEPS, "lockwait"], env=env, capture_output=True, text=True, timeout=60)
    return p, time.monotonic() - t0


def test_deps_waits_for_a_held_lock_then_goes_on():
    path, _ = _held_lock(release_after=1.5)
    p, took = _lockwait(path, 20)
    check(p.returncode == 0, "goes on once the lock is released", got=p.stderr)
    check(1.0 <= took < 10, "waited for the release, not for the bound", got=took)
    check(p.stderr.count("waiting for it (up to 20 s)") == 1 and p.stderr.count("\n") == 1, "one message", got=p.stderr)


def test_deps_gives_up_after_its_bound():
    path, fd = _held_lock()
    try:
        p, took = _lockwait(path, 2)
    finally:
        os.close(fd)
    check(p.returncode == 1, "fails once the bound is spent", got=p.stderr)
    check(2 <= took < 15, "after the bound", got=took)
    check("still busy after 2 s" in p.stderr and p.stderr.count("\n") == 2, "says why, once", got=p.stderr)


def test_deps_no_wait_when_nothing_holds_the_lock():
    path = os.path.join(cglib.tmpdir(), "lock-frontend")
    open(path, "w").close()
    p, took = _lockwait(path, 20)
    check(p.returncode == 0 and p.stderr == "" and took < 5, "no wait, no message", got=(p.stderr, took))
