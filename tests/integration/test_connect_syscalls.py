"""Healthy non-blocking connects add no system call (issue 12 item 1): a C client makes N
connects to its own listener, waited for in poll() or epoll, with O_NONBLOCK set at socket(),
through fcntl(F_SETFL) or through ioctl(FIONBIO); strace counts every system call with and
without the shim, and the per-connect counts must agree (start-up is taken out by running N1
and N2 connects and dividing the difference). Also: the O_NONBLOCK the shim remembers follows
fcntl and ioctl both ways, so the engine retries non-blocking and blocking connects correctly
whichever call set the mode."""
import os
import re
import shutil

import cglib
import cgconn
from cglib import check
from cgconn import LogDir

N1, N2 = 20, 220
# A few one-off calls may land in either run (a lazily loaded unwinder, a page first touched):
# not per connect.
SLACK = 3


def _strace():
    s = shutil.which("strace")
    if not s:
        raise cglib.Skip("strace not installed (scripts/deps.sh test)")
    return s


# The stats segment's start-up clean-up of other processes' files in /dev/shm (one fstatat and
# one kill per live process of ours, more for dead ones): start-up work whose amount depends on
# what else runs on the machine, told apart by its arguments.
REAP = re.compile(r'^(?:newfstatat|fstatat64|unlinkat)\(\d+, "connguard\.|^kill\(\d+, 0\)|^getdents64\(')
CALL = re.compile(r"^\d+\s+(\w+)\((.*)")


def _counts(n, mode, how, preload, env):
    d = cglib.tmpdir()
    try:
        out = os.path.join(d, "c")
        cmd = [_strace(), "-f", "-qq", "-o", out, cgconn.client("nb_many"), str(n), mode, how]
        p = cglib.run(cmd, env=env, preload=preload, timeout=120)
        check(p.returncode == 0 and p.out == "ok %d\n" % n, "client", got=(p.out, p.err))
        counts = {}
        with open(out) as f:
            for line in f:
                m = CALL.match(line)
                if not m or REAP.match("%s(%s" % (m.group(1), m.group(2))):
                    continue
                counts[m.group(1)] = counts.get(m.group(1), 0) + 1
        return counts
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _per_connect(mode, how, preload, env):
    a, b = _counts(N1, mode, how, preload, env), _counts(N2, mode, how, preload, env)
    return a, b, {k: b.get(k, 0) - a.get(k, 0) for k in set(a) | set(b)}


def _compare(mode, how, env=None, ignore=()):
    _, bare_b, bare = _per_connect(mode, how, False, env)
    _, shim_b, shim = _per_connect(mode, how, True, env)
    for k in sorted(set(bare) | set(shim)):
        if k in ignore:
            continue
        check(abs(shim.get(k, 0) - bare.get(k, 0)) <= SLACK,
              "%s %s: %s per %d connects: %d with the shim, %d without" %
              (mode, how, k, N2 - N1, shim.get(k, 0), bare.get(k, 0)), got=(shim, bare))
    # The mode the shim remembers: no watchdog thread for a non-blocking connect.
    for k in ("clone", "clone3"):
        check(shim_b.get(k, 0) == bare_b.get(k, 0), "a thread started: %s" % k, got=shim_b)
    return shim, bare


def test_healthy_nonblocking_connects_add_no_system_call_leaks_off():
    for mode in ("poll", "epoll"):
        for how in ("sock", "fcntl", "ioctl"):
            _compare(mode, how, {"CONNGUARD_LEAKS": "off"})


def test_healthy_nonblocking_connects_defaults():
    """Leak tracking on: the same counts of every call, fstat included (issue 12 item 2: a
    socket's identity is taken only if it outlives the next socket its thread makes; these,
    client and accepted ends, are closed first)."""
    for mode in ("poll", "epoll"):
        for how in ("sock", "fcntl", "ioctl"):
            _compare(mode, how, None)


def test_udp_connects_add_no_system_call():
    """A UDP connect() never waits (DNS clients make one per query): no bound armed on it, so
    not the two setsockopt(SO_SNDTIMEO) calls a blocking TCP connect's first attempt may get."""
    for env in (None, {"CONNGUARD_LEAKS": "off"}):
        _compare("udp", "-", env)


test_healthy_nonblocking_connects_add_no_system_call_leaks_off.timeout = 300
test_healthy_nonblocking_connects_defaults.timeout = 300


def _closed_port(mode, how):
    port = cglib.free_port()
    cmd = [cgconn.client("nb_many"), "1", mode, how, str(port)]
    bare = cglib.run(cmd, preload=False)
    want = "ECONNREFUSED via getsockopt\nblocking ECONNREFUSED\n"
    check(bare.out == want and bare.returncode == 1, "without the shim", got=(bare.out, bare.err))
    with LogDir() as lg:
        p = cglib.run(cmd, env=lg.env(), timeout=60)
        check(p.out == bare.out and p.returncode == bare.returncode and p.err == "", "%s %s: as without the shim" %
              (mode, how), got=(p.out, p.err))
        recs = [r for r in lg.records() if r["event"] == "connect_failed"]
        n = cgconn.RETRIES + 1
        check(len(recs) == 2 * n, "two connects retried", got=recs)
        dst = "127.0.0.1:%d" % port
        # The non-blocking connect, retried in the program's poll/epoll; then the blocking one,
        # retried inside connect().
        cgconn.check_failures(recs[:n], n, dst=dst, last="give_up")
        cgconn.check_failures(recs[n:], n, dst=dst, last="give_up")


def test_nonblock_set_by_fcntl_or_ioctl_retries_both_ways():
    for mode in ("poll", "epoll"):
        for how in ("fcntl", "ioctl"):
            _closed_port(mode, how)


def test_blocking_again_after_ioctl_or_fcntl_keeps_the_first_attempt_bounded():
    """A socket made with SOCK_NONBLOCK, then blocking (FIONBIO or F_SETFL): its connect to
    a listener that drops SYNs is cut at CONNGUARD_CONNECT_TIMEOUT_MS (the shim knows it
    blocks) and retried, not left to the kernel's two minutes."""
    for how in ("fcntl", "ioctl"):
        with cglib.FullBacklog() as fb, LogDir() as lg:
            env = lg.env(CONNGUARD_CONNECT_TIMEOUT_MS=200, CONNGUARD_RETRIES=2)
            p = cgconn.timed_run([cgconn.client("nb_many"), "0", "poll", how, str(fb.port)], env=env, timeout=30)
            check(p.out == "blocking ETIMEDOUT\n", "%s: blocking connect result" % how, got=(p.out, p.err))
            recs = lg.records()
            cgconn.check_failures(recs, 3, errno="ETIMEDOUT", dst="127.0.0.1:%d" % fb.port, last="give_up")
            check(180 <= recs[0]["elapsed_ms"] < 1500, "first attempt bounded at 200 ms", got=recs[0])
            check(p.elapsed < 5, "took %.1fs" % p.elapsed)


PY_DUP = r"""
import errno, os, socket, sys
s = socket.socket()
s.setblocking(False)              # ioctl(FIONBIO) on the socket the shim saw made
d = os.dup(s.fileno())            # fcntl(F_DUPFD_CLOEXEC): one file description, two numbers
os.set_blocking(d, True)          # through the copy: the original blocks now too
try:
    s.connect(("127.0.0.1", int(sys.argv[1])))
    print("connected")
except OSError as e:
    print(errno.errorcode[e.errno])
"""


def test_mode_changed_through_a_dup_is_not_taken_from_memory():
    """O_NONBLOCK belongs to the file description: cleared through a dup() of the socket, the
    original blocks, and the shim (which remembered "non-blocking") must find that out: the
    connect is bounded and retried, not left to the kernel's two minutes."""
    with cglib.FullBacklog() as fb, LogDir() as lg:
        env = lg.env(CONNGUARD_CONNECT_TIMEOUT_MS=200, CONNGUARD_RETRIES=2)
        p = cgconn.timed_run([cglib.PYTHON, "-c", PY_DUP, str(fb.port)], env=env, timeout=30)
        check(p.out == "ETIMEDOUT\n", "python's result", got=(p.out, p.err))
        recs = [r for r in lg.records() if r["event"] == "connect_failed"]   # and the leak report
        cgconn.check_failures(recs, 3, errno="ETIMEDOUT", dst="127.0.0.1:%d" % fb.port, last="give_up")
        check(p.elapsed < 5, "took %.1fs" % p.elapsed)
