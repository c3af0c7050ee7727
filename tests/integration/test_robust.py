"""Robustness (issue 2, item 5): errno on every path, many threads, fork and exec, connects
before the shim's constructor, close() in signal handlers, programs that close every fd,
socket flags and options after retries, and no recursion into the shim's own hooks."""
import glob
import json
import os
import re
import socket

import cglib
import cgconn
from cglib import check
from cgconn import LogDir, client


def _listener(host="127.0.0.1"):
    """An in-process listener with a deep backlog: connects complete without accept()."""
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    s.bind((host, 0))
    s.listen(64)
    return s


# ---- errno ----

def test_errno_preserved_on_every_path():
    """Failures the shim never retries (EAFNOSUPPORT, EINVAL, EFAULT, EBADF, ENOTSOCK,
    EADDRNOTAVAIL, EISCONN, ENETUNREACH, EALREADY) keep the kernel's errno, and successful
    calls (connect, poll, select, epoll, getsockopt, close) leave errno as the program had it,
    also while a connect is under the engine's care. Same output as without the shim."""
    live = _listener()
    try:
        with cglib.FullBacklog() as fb, LogDir() as lg:
            closed = cglib.free_port()
            args = [client("rb_errno"), str(live.getsockname()[1]), str(closed), str(fb.port)]
            bare = cglib.run(args, preload=False)
            p = cglib.run(args, env=lg.env())
            check(bare.returncode == 0 and p.returncode == 0, "rb_errno failed", got=bare.out + p.out + p.err)
            check(p.out == bare.out, "the program saw something else under the shim",
                  got="with:\n%s\nwithout:\n%s" % (p.out, bare.out))
            for line in ("eaddrnotavail: ret=-1 errno=EADDRNOTAVAIL", "nonblocking_ealready: ret=-1 errno=EALREADY",
                         "poll_with_connecting_ok: ret=1 errno=EBADMSG", "epoll_wait_ok: ret=1 errno=EBADMSG",
                         "blocking_connect_ok: ret=0 errno=EBADMSG", "so_error_connected_ok: ret=0 errno=EBADMSG"):
                check(line in p.out.splitlines(), "missing: " + line, got=p.out)
            # The failures are explained once each, never retried.
            recs = lg.records()
            got = [(r["errno"], r["attempt"], r["action"], r["reason"]) for r in recs]
            want = [(e, 1, "give_up", "not_retryable") for e in ("EAFNOSUPPORT", "EINVAL", "EADDRNOTAVAIL", "ENETUNREACH")]
            check(got == want, "records for failures that are not retried", got=got)
    finally:
        live.close()


# ---- threads ----

def test_many_threads_against_a_late_server():
    """16 threads (half blocking, half poll) released together against a server that starts
    after every thread's second failure: all connect, each fd has exactly 2 failures and one
    recovery, and every line of the shared log is one whole JSON record."""
    n = 16
    port = cglib.free_port()
    with LogDir() as lg:
        cgconn.trigger_server(port, lg, after=2 * n, count=n)
        # Each thread's own schedule is checked here: with a shared one (test_coord.py) the
        # threads make fewer attempts and most never reach their second failure.
        p = cglib.run([client("rb_threads"), str(port), str(n)],
                      env=lg.env(CONNGUARD_COORDINATE="off", **cgconn.LATE_ENV), timeout=60)
        check(p.returncode == 0 and p.out == "connected %d/%d\n" % (n, n), "threads", got=p.out + p.err)
        recs = lg.records()
        by_fd = {}
        for r in recs:
            by_fd.setdefault(r["fd"], []).append(r)
        check(len(by_fd) == n, "one record series per thread", got=sorted(by_fd))
        for fd, rs in by_fd.items():
            cgconn.check_late(rs, 2, "127.0.0.1:%d" % port, module="rb_threads")


def test_more_connects_in_flight_than_the_engine_holds():
    """1100 non-blocking connects to a closed port in flight at once, waited for with poll()
    and with epoll: the engine's active set holds 1024. Those it holds are retried (one retry,
    200 ms backoff) and logged; the rest are left to the kernel, with one warning. Every socket
    ends ECONNREFUSED exactly as without the shim (none reads SO_ERROR 0), and no getsockopt or
    wait call is held up by a backoff (an fd that epoll's lookup or the time-driven work missed
    used to be retried synchronously inside getsockopt: ~100 ms per call)."""
    closed = cglib.free_port()
    for mode in ("poll", "epoll"):
        args = [client("rb_many"), mode, str(closed), "1100"]
        bare = cglib.run(args, preload=False)
        want = "refused=1100 zero=0 other=0 pending=0 slow_calls=0\n"
        check(bare.out == want, "%s: bare run" % mode, got=bare.out + bare.err)
        with LogDir() as lg:
            p = cglib.run(args, env=lg.env(CONNGUARD_RETRIES="1", CONNGUARD_BACKOFF_MS="200"), timeout=60)
            check(p.out == want, "%s: the program saw something else under the shim" % mode, got=p.out + p.err)
            warns = [l for l in p.err.splitlines() if "more than 1024" in l]
            check(len(warns) == 1, "%s: one warning for the connects left to the kernel" % mode, got=p.err)
            recs = [r for r in lg.records() if r["event"] == "connect_failed"]
            got = sorted((r["attempt"], r["action"]) for r in recs)
            check(got == [(1, "retry")] * 1024 + [(2, "give_up")] * 1024,
                  "%s: 1024 connects retried once, each attempt one record" % mode,
                  got={k: got.count(k) for k in set(got)})
            check(all(r["errno"] == "ECONNREFUSED" and r["dst"] == "127.0.0.1:%d" % closed for r in recs),
                  "%s: records" % mode, got=recs[:2])
            check(len({r["fd"] for r in recs}) == 1024, "%s: 1024 distinct fds" % mode)


def test_connect_finished_unseen_is_left_alone():
    """A non-blocking connect the program completes without a hooked wait (it clears O_NONBLOCK
    and writes), then a poll() on a pipe longer than the shim's attempt timeout: the shim finds
    the connection established and leaves it alone. It used to reset it and connect again: the
    listener got two connections, "hello" on one and "again" on the other, and the log a false
    ETIMEDOUT."""
    args = [client("rb_unseen"), "800"]
    bare = cglib.run(args, preload=False)
    check(bare.out.endswith('conn 1 read "helloagain"\nconnections=1\n'), "bare run", got=bare.out)
    with LogDir() as lg:
        p = cglib.run(args, env=lg.env(CONNGUARD_CONNECT_TIMEOUT_MS=300, CONNGUARD_LEAKS="off"))
        check(p.out == bare.out, "the program saw something else under the shim", got=p.out + p.err)
        check(lg.files() == [], "nothing failed", got=[open(f).read() for f in lg.files()])


def test_many_threads_text_on_stderr_never_interleaved():
    """16 threads failing at once, text records to stderr: every line belongs to a whole
    record (header, hint, frames, in order)."""
    n = 16
    port = cglib.free_port()
    p = cglib.run([client("rb_threads"), str(port), str(n)],
                  env={"CONNGUARD_JITTER": "none", "CONNGUARD_BACKOFF_MS": 20, "CONNGUARD_RETRIES": 2})
    check(p.out.endswith("connected 0/%d\n" % n), "threads", got=p.out)
    recs = cglib.text_records(p.err)
    check(len(recs) == 3 * n, "expected %d text records" % (3 * n), got=p.err[-2000:])
    for r in recs:
        check(r["event"] == "connect_failed" and r["hint"].startswith("nothing is listening") and r["stack"], "record", got=r)
        check([int(f.split()[0][1:]) for f in r["stack"]] == list(range(len(r["stack"]))), "frames out of order", got=r)
    pid = recs[0]["pid"]
    for line in p.err.splitlines():
        check(line.startswith("==%d== " % pid), "a torn or stray line", got=line)


# ---- fork and exec ----

def _fork_env(lg, per_process=True):
    e = lg.env(CONNGUARD_RETRIES=1, CONNGUARD_BACKOFF_MS=2)
    if not per_process:
        e["CONNGUARD_LOG"] = os.path.join(lg.path, "log.shared")
    return e


def test_fork_and_exec_one_log_per_process():
    port = cglib.free_port()
    bare = cglib.run([client("rb_fork"), str(port)], preload=False)
    m = re.search(r"pipes=(\d+)", bare.out)
    check(bare.returncode == 0 and m, "rb_fork without the shim", got=bare.out + bare.err)
    bare_pipes = int(m.group(1))
    with LogDir() as lg:
        p = cglib.run([client("rb_fork"), str(port)], env=_fork_env(lg), timeout=60)
        # The children print in the order their retries end (random backoff); the parent, after
        # reaping all three, last.
        lines = p.out.splitlines()
        check(p.returncode == 0 and any(re.match(r"exec-child pid=\d+ ", x) for x in lines) and
              lines[-1].startswith("parent pid="), "rb_fork", got="rc=%d\n%s%s" % (p.returncode, p.out, p.err))
        pids = {int(m) for m in re.findall(r"pid=(\d+)", p.out)}
        parent = int(re.search(r"parent pid=(\d+)", p.out).group(1))
        exec_child = int(re.search(r"exec-child pid=(\d+)", p.out).group(1))
        check(len(pids) == 4, "parent + 3 children", got=p.out)
        m = re.search(r"inherited_logs=(\d+) pipes=(\d+)", p.out)
        check(m.group(1) == "0", "the exec'd program inherited the shim's log fd", got=p.out)
        check(int(m.group(2)) - bare_pipes in (0, 2), "the exec'd program inherited the shim's pipe", got=p.out)
        logs = lg.by_pid()       # each line whole JSON, pid = the file's pid
        check(set(logs) == pids, "one log file per process", got=sorted(logs))
        for pid, recs in logs.items():
            check(all(r["event"] == "connect_failed" and r["errno"] == "ECONNREFUSED" for r in recs), "records", got=recs)
            if pid == exec_child:
                check(len(recs) == 4, "exec'd child: 2 records before exec, 2 after", got=recs)
            elif pid != parent:
                check(len(recs) == 2, "child: one failed connect, retried once", got=recs)
        check(len(logs[parent]) >= 4, "parent records", got=len(logs[parent]))


def test_fork_shared_log_whole_records():
    port = cglib.free_port()
    with LogDir() as lg:
        p = cglib.run([client("rb_fork"), str(port)], env=_fork_env(lg, per_process=False), timeout=60)
        check(p.returncode == 0, "rb_fork", got=p.out + p.err)
        pids = {int(m) for m in re.findall(r"pid=(\d+)", p.out)}
        with open(os.path.join(lg.path, "log.shared")) as f:
            lines = f.read().splitlines()
        seen = set()
        for line in lines:
            r = json.loads(line)
            seen.add(r["pid"])
        check(seen == pids, "records from every process", got=(seen, pids))


# ---- before the constructor ----

def test_connect_from_a_library_constructor():
    """libcgctor.so (DT_NEEDED) connects from its constructor, which runs before the
    preloaded shim's: the connect is still retried and logged."""
    # The premise: the loader runs libcgctor's constructor before the shim's.
    order = cglib.run([client("rb_ctor")], env={"LD_DEBUG": "files"})
    inits = [l.split("calling init: ")[1] for l in order.err.splitlines() if "calling init: " in l]
    ctor = [i for i, m in enumerate(inits) if m.endswith("/libcgctor.so")]
    shim = [i for i, m in enumerate(inits) if m.endswith("/libconnguard.so")]
    check(ctor and shim and ctor[0] < shim[0], "libcgctor's constructor does not run first here", got=inits)
    port = cglib.free_port()
    with LogDir() as lg:
        cgconn.trigger_server(port, lg, after=2)
        p = cglib.run([client("rb_ctor")], env=lg.env(CG_CTOR_PORT=port, **cgconn.LATE_ENV), timeout=30)
        check(p.out == "ctor connected got hello\n", "constructor connect", got=p.out + p.err)
        cgconn.check_late(lg.records(), 2, "127.0.0.1:%d" % port, module="libcgctor")
    port = cglib.free_port()
    bare = cglib.run([client("rb_ctor")], env={"CG_CTOR_PORT": port}, preload=False)
    with LogDir() as lg:
        p = cglib.run([client("rb_ctor")], env=lg.env(CG_CTOR_PORT=port))
        check(p.out == bare.out == "ctor error ECONNREFUSED via connect\n", "constructor connect, never", got=p.out)
        cgconn.check_never(lg.records(), "127.0.0.1:%d" % port, module="libcgctor")


# ---- signals ----

def test_close_in_signal_handlers_while_connects_retry():
    """A 200 us timer whose handler closes fds (sometimes the socket being retried) while two
    threads connect: no hang, no crash, no stray errno (EINTR from an SA_RESTART handler, a
    stale state on a reused fd number)."""
    port = cglib.free_port()
    for _ in range(3):
        p = cglib.run([client("rb_signal"), str(port), "700"],
                      env={"CONNGUARD_LOG": "/dev/null", "CONNGUARD_BACKOFF_MS": 5, "CONNGUARD_RETRIES": 2}, timeout=60)
        check(p.returncode == 0 and re.match(r"^loops=\d+ signals_ok=1 stolen_ok=1 other=0\n$", p.out),
              "rb_signal", got=p.out + p.err)
test_close_in_signal_handlers_while_connects_retry.timeout = 90


# ---- closing every fd ----

def test_program_closes_every_fd():
    """closefrom / close_range / close() loop, then decoy files on every number that was open
    (the shim's log included): the next failures are logged to the real
    log file, reopened, and not one byte lands in a decoy."""
    port = cglib.free_port()
    for mode in ("closefrom", "close_range", "loop"):
        with LogDir() as lg:
            p = cglib.run([client("rb_closeall"), str(port), lg.path, mode], env=lg.env(CONNGUARD_RETRIES=0))
            check(p.returncode == 0 and re.match(r"^decoys=\d+ written=0\n$", p.out), mode, got=p.out + p.err)
            n = int(p.out.split()[0].split("=")[1])
            check(n >= 1, "%s: the shim's own fds (log) were not among the closed ones?" % mode, got=p.out)
            recs = lg.records()
            check(len(recs) == 3 and all(r["action"] == "give_up" for r in recs), "%s: records" % mode, got=recs)


def test_program_closes_stdio_too():
    """closefrom(0) with the log on stderr: the program's new fd 2 is a file of its own, and
    the shim never writes into it."""
    port = cglib.free_port()
    with LogDir() as lg:
        p = cglib.run([client("rb_closeall"), str(port), lg.path, "all"], env={"CONNGUARD_RETRIES": 0})
        with open(os.path.join(lg.path, "result")) as f:
            res = f.read()
        check(p.returncode == 0 and re.match(r"^decoys=\d+ written=0\n$", res), "decoys written", got=res)
        recs = cglib.text_records(p.err)
        check(len(recs) == 1, "the record before closefrom went to the real stderr", got=p.err)


PY_CLOSERANGE = r"""
import os, socket, sys
port, d = int(sys.argv[1]), sys.argv[2]
def fail():
    s = socket.socket()
    try: s.connect(("127.0.0.1", port))
    except OSError: pass
    s.close()
fail()
fds = [int(x) for x in os.listdir("/proc/self/fd") if int(x) > 2]
os.closerange(3, 1 << 20)
decoys = []
for fd in fds:
    f = os.open("%s/decoy.%d" % (d, fd), os.O_RDWR | os.O_CREAT)
    if f != fd:
        os.dup2(f, fd); os.close(f)
    decoys.append(fd)
fail(); fail()
print("decoys=%d written=%d" % (len(decoys), sum(os.fstat(fd).st_size > 0 for fd in decoys)))
"""


def test_python_closerange():
    port = cglib.free_port()
    with LogDir() as lg:
        p = cglib.run([cglib.PYTHON, "-c", PY_CLOSERANGE, str(port), lg.path], env=lg.env(CONNGUARD_RETRIES=0))
        check(p.returncode == 0 and re.match(r"^decoys=\d+ written=0\n$", p.out), "python closerange", got=p.out + p.err)
        check(len(lg.records()) == 3, "records", got=lg.records())


# ---- socket flags and options ----

def test_socket_flags_and_options_after_retries():
    """O_NONBLOCK, FD_CLOEXEC, SO_SNDTIMEO, SO_RCVBUF, SO_KEEPALIVE, TCP_NODELAY and an
    explicitly bound local port read back after two failed attempts exactly as without the
    shim against a live server."""
    live_port = cglib.free_port()
    cgconn.server_now(live_port, mode="line", count=10)
    for name, extra in (("conn_blocking", ["-s", "7000"]), ("conn_poll", []), ("conn_epoll", ["-e"]),
                        ("conn_select", []), ("conn_status", [])):
        bare = cglib.run([client(name), "127.0.0.1", str(live_port), "-o", "-b"] + extra, preload=False)
        want = [l for l in bare.out.splitlines() if l.startswith(("opts", "local_port"))]
        check(len(want) == 2 and want[1] == "local_port_kept", "bare run", got=bare.out)
        port = cglib.free_port()
        with LogDir() as lg:
            cgconn.trigger_server(port, lg, after=2)
            p = cglib.run([client(name), "127.0.0.1", str(port), "-o", "-b"] + extra, env=lg.env(**cgconn.LATE_ENV))
            got = [l for l in p.out.splitlines() if l.startswith(("opts", "local_port"))]
            check(p.out.startswith("connected") and got == want, "%s: flags/options changed by retries" % name,
                  got="with:\n%s\nwithout:\n%s" % (p.out, bare.out))
            cgconn.check_late(lg.records(), 2, "127.0.0.1:%d" % port, module=name)


# ---- secure-execution mode ----

SECURE_ENV = {"CONNGUARD_RETRIES": "0", "CONNGUARD_LOG_FORMAT": "json", "CONNGUARD_STACK_DEPTH": "banana",
              "CONNGUARD_JITTER": "none", "CONNGUARD_BACKOFF_MS": "10"}


def _segment_lines(out, uid):
    """rb_secure's segment line: one segment, owned by uid and named by it (that is where
    `connguard stat` run by that user looks)."""
    segs = [l for l in out.splitlines() if l.startswith("segment=")]
    m = re.match(r"^segment=connguard\.(\d+)\.(\d+) owner=(\d+) pid=(\d+)$", segs[0]) if len(segs) == 1 else None
    return bool(m) and int(m.group(1)) == uid and int(m.group(3)) == uid and m.group(2) == m.group(4)


def test_secure_execution_ignores_the_environment():
    """In a setuid program (AT_SECURE) the shim reads no CONNGUARD_* variable: secure_getenv
    returns nothing there, so a user cannot redirect a privileged program's log to a file of
    their choosing or change its behaviour. ld.so ignores LD_PRELOAD paths in that mode, so
    rb_secure dlopen()s the shim and connects to a closed port through the shim's connect().
    The same copy without the setuid bit is the control: the variables then take effect
    (one attempt, JSON to the named file, one warning for the bad depth). Setuid: built defaults
    (retries until the 10 s deadline, text on stderr), no file, no warning."""
    if os.geteuid() != 0:
        raise cglib.Skip("needs root to make a setuid program")
    if cglib.SAN_PRELOAD:
        raise cglib.Skip("a sanitizer runtime cannot be preloaded into a setuid program")
    import pwd
    import shutil
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        raise cglib.Skip("no user nobody to run as")
    d = cglib.tmpdir()
    try:
        os.chmod(d, 0o755)   # the setuid program runs as nobody and loads its copy of the shim
        shim = os.path.join(d, "libconnguard.so")
        shutil.copy(cglib.SHIM, shim)
        plain = os.path.join(d, "rb_secure")
        shutil.copy(client("rb_secure"), plain)
        suid = os.path.join(d, "rb_secure_suid")
        shutil.copy(client("rb_secure"), suid)
        os.chown(suid, nobody.pw_uid, nobody.pw_gid)
        os.chmod(suid, 0o4755)
        closed = cglib.free_port()
        logs = os.path.join(d, "log.%p")
        env = dict(SECURE_ENV, CONNGUARD_LOG=logs)

        ctl = cglib.run([plain, shim, str(closed)], env=env, preload=False, timeout=30)
        check(ctl.out.splitlines()[:2] == ["secure=0", "connect=-1 errno=ECONNREFUSED"], "control run",
              got=ctl.out + ctl.err)
        check(_segment_lines(ctl.out, 0), "control run: segment", got=ctl.out)
        warns = [l for l in ctl.err.splitlines() if "warning" in l]
        check(len(warns) == 1 and "CONNGUARD_STACK_DEPTH" in warns[0], "control: one warning for the bad depth",
              got=ctl.err)
        files = glob.glob(os.path.join(d, "log.*"))
        check(len(files) == 1, "control: the named log file", got=files)
        with open(files[0]) as f:
            recs = cglib.json_records(f.read(), "connect_failed")
        check([(r["attempt"], r["action"]) for r in recs] == [(1, "give_up")], "control: CONNGUARD_RETRIES=0",
              got=recs)
        os.unlink(files[0])

        p = cglib.run([suid, shim, str(closed)], env=env, preload=False, timeout=30)
        if p.out.startswith("secure=0"):
            raise cglib.Skip("setuid has no effect here (filesystem mounted nosuid?)")
        # The live-counter segment is named by the uid that owns it, as `connguard stat` run by
        # that user looks for it.
        check(p.out.splitlines()[:2] == ["secure=1", "connect=-1 errno=ECONNREFUSED"], "setuid run: same result",
              got=p.out + p.err)
        check(_segment_lines(p.out, nobody.pw_uid), "setuid run: the segment is named by the uid that owns it",
              got=p.out)
        check(not glob.glob(os.path.join(d, "log.*")), "setuid run wrote the file CONNGUARD_LOG named",
              got=os.listdir(d))
        check("warning" not in p.err, "setuid run read CONNGUARD_STACK_DEPTH", got=p.err)
        recs = cglib.text_records(p.err, "connect_failed")
        check(len(recs) >= 8 and [(r["attempt"], r["action"]) for r in recs] ==
              [(str(i + 1), "retry") for i in range(len(recs) - 1)] + [(str(len(recs)), "give_up")] and
              recs[-1]["reason"] == "deadline" and 9000 <= int(recs[-1]["elapsed_ms"]) <= 10000,
              "setuid run: the built-in defaults (retries until the 10 s deadline, text on stderr)", got=p.err)
        check(all(r["errno"] == "ECONNREFUSED" and r["dst"] == "127.0.0.1:%d" % closed for r in recs),
              "setuid run: records", got=recs)
    finally:
        shutil.rmtree(d, ignore_errors=True)


# ---- recursion ----

def test_no_recursion_into_own_hooks():
    """libcgspy.so, preloaded before the shim, wraps every name the shim exports and counts
    calls made from inside libconnguard.so: the shim must reach libc through its table of real
    functions or raw system calls, so the count is 0 (and the spy did see the program's calls)."""
    spy = os.path.join(cglib.CLIENTS, "libcgspy.so")
    with LogDir() as lg:
        out = os.path.join(lg.path, "spy")
        env = lg.env(LD_PRELOAD="%s:%s" % (spy, cglib.SHIM), CG_SPY_OUT=out, CONNGUARD_BACKOFF_MS=20)
        closed = cglib.free_port()
        runs = [[client(n), "127.0.0.1", str(closed)] + x for n, x in
                (("conn_blocking", []), ("conn_poll", []), ("conn_epoll", []), ("conn_epoll", ["-e"]),
                 ("conn_select", []), ("conn_status", []))]
        runs.append(["curl", "-sS", "http://localhost:%d/" % closed])
        runs.append([cglib.PYTHON, "-c", "import socket\ntry: socket.create_connection(('127.0.0.1',%d),timeout=5)\nexcept OSError: pass" % closed])
        for cmd in runs:
            cglib.run(cmd, env=env, timeout=30)
        with FullBacklogPort() as fbport:
            cglib.run([client("conn_poll"), "127.0.0.1", str(fbport), "-t", "600"],
                      env=dict(env, CONNGUARD_CONNECT_TIMEOUT_MS=100), timeout=30)
        with open(out) as f:
            lines = f.read().splitlines()
        check(len(lines) == len(runs) + 1, "one spy report per program", got=lines)
        for line in lines:
            m = re.match(r"^calls=(\d+) from_shim=(\d+)(.*)$", line)
            check(m and int(m.group(1)) > 0, "the spy saw nothing: not interposed?", got=line)
            check(m.group(2) == "0", "the shim called its own exported names:%s" % m.group(3), got=line)
        check(len([r for pid, rs in lg.by_pid().items() for r in rs]) > 0, "no records: nothing was exercised")


class FullBacklogPort:
    def __enter__(self):
        self.fb = cglib.FullBacklog()
        return self.fb.port

    def __exit__(self, *a):
        self.fb.close()
