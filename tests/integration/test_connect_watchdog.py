"""The watchdog that bounds the first attempt of a blocking connect (CONNGUARD_WATCHDOG, on by
default) and its fallback, a temporary SO_SNDTIMEO (CONNGUARD_WATCHDOG=0): same results and
records either way; the thread exists only from a process's second blocking connect that needs
a bound (the first uses SO_SNDTIMEO), blocks signals, and a fork child gets its own."""
import os
import shutil
import subprocess

import cglib
import cgconn
from cglib import check
from cgconn import LogDir

SYN_ENV = {"CONNGUARD_CONNECT_TIMEOUT_MS": 200, "CONNGUARD_RETRIES": 2}

# Prints the names of the process's threads after the given steps.
PY_THREADS = r"""
import os, socket, sys
def names():
    out = []
    for t in sorted(os.listdir("/proc/self/task")):
        with open("/proc/self/task/%s/comm" % t) as f:
            out.append(f.read().strip())
    return out
open("/proc/self/status").read()
print("before", ",".join(names()))
# "blocking": two blocking connects (the second starts the thread); "blocking1": one.
for i in range(0 if sys.argv[1] == "none" else 2 if sys.argv[1] == "blocking" else 1):
    s = socket.socket()
    if sys.argv[1] == "nonblocking":
        s.setblocking(False)
        try:
            s.connect(("127.0.0.1", int(sys.argv[2])))
        except BlockingIOError:
            pass
    else:
        s.connect(("127.0.0.1", int(sys.argv[2])))
    s.close()
print("after", ",".join(names()))
"""


def _threads(lines):
    d = dict(l.split(" ", 1) if " " in l else (l, "") for l in lines.splitlines())
    return d["before"].split(","), d["after"].split(",")


def test_thread_starts_at_the_second_blocking_connect_only():
    """The first blocking connect of a process is bounded by SO_SNDTIMEO (a process that makes
    one never pays for a thread); the second starts the thread. Never for non-blocking connects,
    with CONNGUARD_WATCHDOG=0, or when timeouts are not retried."""
    with cglib.FullBacklog() as fb:   # a live listener: the connect succeeds at once
        port = fb.port
        fb.listener.listen(8)
        p = cglib.run([cglib.PYTHON, "-c", PY_THREADS, "blocking", str(port)], timeout=30)
        check(p.returncode == 0, "python", got=p.err)
        before, after = _threads(p.out)
        check("connguard-wd" not in before, "no thread before any connect", got=before)
        check(after.count("connguard-wd") == 1, "one watchdog thread after a blocking connect", got=after)
        for mode, env in (("none", None), ("nonblocking", None), ("blocking1", None),
                          ("blocking", {"CONNGUARD_WATCHDOG": "0"}),
                          ("blocking", {"CONNGUARD_RETRY_ON": "refused"})):
            p = cglib.run([cglib.PYTHON, "-c", PY_THREADS, mode, str(port)], env=env, timeout=30)
            check(p.returncode == 0, "python", got=p.err)
            _, after = _threads(p.out)
            check("connguard-wd" not in after, "no thread: %s %s" % (mode, env), got=after)


def _syn_drop_blocking(extra):
    with cglib.FullBacklog() as fb, LogDir() as lg:
        cmd = [cgconn.client("conn_blocking"), "127.0.0.1", str(fb.port)]
        env = lg.env(**SYN_ENV)
        env.update(extra)
        p = cgconn.timed_run(cmd, env=env, timeout=30)
        check(p.out.splitlines()[0] == "error ETIMEDOUT via connect", "client result", got=(p.out, p.err))
        recs = lg.records()
        cgconn.check_failures(recs, 3, errno="ETIMEDOUT", dst="127.0.0.1:%d" % fb.port, last="give_up")
        # Attempt 1 was cut at its 200 ms bound, not later.
        check(180 <= recs[0]["elapsed_ms"] < 1500, "first attempt bounded at 200 ms", got=recs[0])
        check(p.elapsed < 5, "took %.1fs" % p.elapsed)
        return recs


def test_syn_drop_blocking_first_connect():
    """A process's first blocking connect: its first attempt is bounded by SO_SNDTIMEO."""
    _syn_drop_blocking({})


# A healthy blocking connect first, then one to a SYN dropper: the second connect of the
# process starts the watchdog, which cuts its first attempt.
PY_SECOND = r"""
import os, socket, sys
s = socket.socket(); s.connect(("127.0.0.1", int(sys.argv[1]))); s.close()
try:
    socket.socket().connect(("127.0.0.1", int(sys.argv[2])))
    print("connected")
except TimeoutError:
    print("timeout")
names = []
for t in os.listdir("/proc/self/task"):
    with open("/proc/self/task/%s/comm" % t) as f:
        names.append(f.read().strip())
print("threads", ",".join(sorted(names)))
"""


def test_syn_drop_blocking_with_watchdog():
    with cglib.FullBacklog() as live, cglib.FullBacklog() as fb, LogDir() as lg:
        live.listener.listen(8)
        p = cgconn.timed_run([cglib.PYTHON, "-c", PY_SECOND, str(live.port), str(fb.port)], env=lg.env(**SYN_ENV),
                             timeout=30)
        lines = p.out.splitlines()
        check(p.returncode == 0 and lines[:1] == ["timeout"], "python got ETIMEDOUT", got=(p.out, p.err))
        check("connguard-wd" in lines[1].split(" ", 1)[1].split(","), "the watchdog thread runs", got=p.out)
        recs = lg.records()
        cgconn.check_failures(recs, 3, errno="ETIMEDOUT", dst="127.0.0.1:%d" % fb.port, last="give_up")
        check(180 <= recs[0]["elapsed_ms"] < 1500, "first attempt cut at its 200 ms bound", got=recs[0])
        check(p.elapsed < 5, "took %.1fs" % p.elapsed)


def test_syn_drop_blocking_with_sndtimeo_fallback():
    _syn_drop_blocking({"CONNGUARD_WATCHDOG": "0"})


def test_bad_watchdog_value_warns_once_and_keeps_the_default():
    with cglib.FullBacklog() as fb:
        fb.listener.listen(8)
        p = cglib.run([cglib.PYTHON, "-c", PY_THREADS, "blocking", str(fb.port)],
                      env={"CONNGUARD_WATCHDOG": "banana"}, timeout=30)
        check(p.returncode == 0, "python", got=p.err)
        warns = [l for l in p.err.splitlines() if "CONNGUARD_WATCHDOG" in l]
        check(len(warns) == 1 and "banana" in warns[0] and "1" in warns[0], "one warning", got=p.err)
        _, after = _threads(p.out)
        check("connguard-wd" in after, "default kept", got=after)


# A blocking connect to a SYN-dropping listener, cut by SIGALRM after 1 s: the watchdog
# thread (started by this second connect of the process) must not take the signal, or the main thread's connect
# would run on until the shim's 5 s bound.
PY_ALARM = r"""
import signal, socket, sys, time
class Alarm(Exception): pass
def on_alarm(sig, frm): raise Alarm()
signal.signal(signal.SIGALRM, on_alarm)
s = socket.socket(); s.connect(("127.0.0.1", int(sys.argv[1]))); s.close()
t0 = time.monotonic()
signal.alarm(1)
try:
    socket.socket().connect(("127.0.0.1", int(sys.argv[2])))
    print("connected")
except Alarm:
    print("alarm after %.1f" % (time.monotonic() - t0))
"""


def test_signals_reach_the_program_not_the_thread():
    with cglib.FullBacklog() as live, cglib.FullBacklog() as fb, LogDir() as lg:
        live.listener.listen(8)
        env = lg.env(CONNGUARD_CONNECT_TIMEOUT_MS=5000, CONNGUARD_DEADLINE_MS=20000)
        p = cgconn.timed_run([cglib.PYTHON, "-c", PY_ALARM, str(live.port), str(fb.port)], env=env, timeout=30)
        check(p.returncode == 0 and p.out.startswith("alarm after"), "python result", got=(p.out, p.err))
        took = float(p.out.split()[-1])
        check(0.9 <= took < 2.5, "SIGALRM cut the connect at 1 s", got=p.out)


# A fork child (no watchdog thread of its own yet) makes a blocking connect to a SYN dropper:
# its first attempt is bounded as well.
PY_FORK = r"""
import os, socket, sys
s = socket.socket(); s.connect(("127.0.0.1", int(sys.argv[1]))); s.close()
pid = os.fork()
if pid == 0:
    try:
        socket.socket().connect(("127.0.0.1", int(sys.argv[2])))
        os._exit(0)
    except TimeoutError:
        os._exit(7)
_, st = os.waitpid(pid, 0)
print("child", os.waitstatus_to_exitcode(st))
"""


def test_fork_child_is_bounded_too():
    with cglib.FullBacklog() as live, cglib.FullBacklog() as fb, LogDir() as lg:
        live.listener.listen(8)
        p = cgconn.timed_run([cglib.PYTHON, "-c", PY_FORK, str(live.port), str(fb.port)], env=lg.env(**SYN_ENV),
                             timeout=30)
        check(p.returncode == 0 and p.out.strip() == "child 7", "child got ETIMEDOUT", got=(p.out, p.err))
        by_pid = lg.by_pid()
        check(len(by_pid) == 1, "only the child logged", got=by_pid)
        recs = [r for r in list(by_pid.values())[0] if r["event"] == "connect_failed"]
        cgconn.check_failures(recs, 3, errno="ETIMEDOUT", dst="127.0.0.1:%d" % fb.port, last="give_up")
        check(180 <= recs[0]["elapsed_ms"] < 1500, "child's first attempt bounded", got=recs[0])
        check(p.elapsed < 5, "took %.1fs" % p.elapsed)


def test_syn_drop_blocking_with_leaks_off():
    """Without leak tracking, socket() still notes what the bound needs (TCP, made here)."""
    _syn_drop_blocking({"CONNGUARD_LEAKS": "off"})


def _syscalls_of_healthy_connects(extra):
    """System calls of bench_connect: 200 connects through libc, 200 raw. Returns {name: count}."""
    if not shutil.which("strace"):
        raise cglib.Skip("strace not installed")
    if cglib.SAN_PRELOAD:
        raise cglib.Skip("a sanitizer runtime makes system calls of its own")
    d = cglib.tmpdir()
    try:
        out = os.path.join(d, "strace")
        env = cglib.env_for(extra)
        subprocess.run(["strace", "-f", "-qq", "-o", out, "-e", "trace=setsockopt,getsockopt,fcntl,fstat,newfstatat,futex",
                        cgconn.client("bench_connect"), "200"], env=env, capture_output=True, timeout=60, check=True)
        counts = {}
        with open(out) as f:
            for line in f:
                parts = line.split(None, 1)
                if len(parts) < 2 or "(" not in parts[1]:
                    continue
                name = parts[1].split("(", 1)[0]
                if name.isidentifier():   # not "<... futex resumed>"
                    counts[name] = counts.get(name, 0) + 1
        return counts
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_healthy_connect_costs_no_system_call_for_its_bound():
    """The design this file is about: a healthy blocking connect makes no setsockopt or
    getsockopt, and no futex call once the watchdog runs; nor does leak tracking (a socket's
    identity is taken only if it is still open when the thread makes its next one). With CONNGUARD_WATCHDOG=0, the SO_SNDTIMEO
    bound makes its two setsockopt calls per connect."""
    c = _syscalls_of_healthy_connects({})
    # The process's first blocking connect is bounded by SO_SNDTIMEO (set, restored): two calls
    # in all, none for the 199 that follow.
    check(c.get("setsockopt", 0) == 2 and c.get("getsockopt", 0) == 0, "no socket option calls after the first connect", got=c)
    # The thread's own sleeps and its start-up handshake are a few; a wake-up per connect
    # would be 200 more.
    check(c.get("futex", 0) < 20, "connects did not wake the watchdog", got=c)
    # Leak tracking takes a socket's identity only if it outlives the next one (docs/leaks.md):
    # these are closed first, so no fstat per socket.
    check(c.get("newfstatat", 0) + c.get("fstat", 0) < 40, "no fstat per tracked socket", got=c)
    c = _syscalls_of_healthy_connects({"CONNGUARD_WATCHDOG": "0"})
    check(c.get("setsockopt", 0) == 400, "two setsockopt per connect without the watchdog", got=c)
    c = _syscalls_of_healthy_connects({"CONNGUARD_LEAKS": "off"})
    check(c.get("setsockopt", 0) == 2 and c.get("getsockopt", 0) == 0, "leaks off: no socket option calls after the first connect", got=c)
    check(c.get("newfstatat", 0) + c.get("fstat", 0) < 40, "leaks off: no fstat per socket", got=c)
