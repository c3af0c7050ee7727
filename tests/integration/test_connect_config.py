"""The CONNGUARD_* variables as real programs see them: DISABLE, ONLY/SKIP, RETRY_ON,
RETRIES, DEADLINE_MS, STACK_DEPTH, LOG/LOG_FORMAT, silence when healthy, and bad values
(exactly one warning line, the program runs on)."""
import os
import re
import shutil

import cglib
import cgconn
from cglib import check
from cgconn import LogDir, client

BLOCKING = client("conn_blocking")
POLL = client("conn_poll")


def _closed_port():
    return cglib.free_port()


def test_disable_is_pass_through():
    """CONNGUARD_DISABLE=1: no retry, no record, no warning even for bad values, and the
    program's result exactly as without the shim."""
    port = _closed_port()
    for prog in ([BLOCKING, "127.0.0.1", str(port)], [POLL, "127.0.0.1", str(port)],
                 ["curl", "-sS", "http://127.0.0.1:%d/" % port]):
        if not shutil.which(prog[0]) and not os.path.exists(prog[0]):
            continue
        bare = cglib.run(prog, preload=False)
        with LogDir() as lg:
            p = cgconn.timed_run(prog, env=lg.env(CONNGUARD_DISABLE=1, CONNGUARD_RETRIES="banana",
                                                  CONNGUARD_BACKOFF_MS=3000, CONNGUARD_LOG_FORMAT="xml"))
            check(p.returncode == bare.returncode and p.out == bare.out, "result differs", got=p.out + p.err)
            check(re.sub(r"after \d+ ms", "", p.err) == re.sub(r"after \d+ ms", "", bare.err), "stderr differs", got=p.err)
            check(lg.files() == [], "DISABLE=1 wrote a log", got=lg.files())
            check(p.elapsed < 2.5, "DISABLE=1 retried: %.1fs" % p.elapsed)


def test_healthy_runs_write_nothing():
    """Successful connects under every client: no log file is even created, stderr is empty."""
    port = cglib.free_port()
    cgconn.server_now(port, mode="line", count=8)
    with LogDir() as lg:
        for name in ("conn_blocking", "conn_poll", "conn_epoll", "conn_select", "conn_status"):
            p = cglib.run([client(name), "127.0.0.1", str(port), "-r"], env=lg.env())
            lines = p.out.splitlines()
            check(p.returncode == 0 and lines[0] == "connected" and "got hello" in lines and p.err == "", name,
                  got=p.out + p.err)
        p = cglib.run(["nc", "127.0.0.1", str(port)], env=lg.env(), input=b"")
        check(p.out == "hello\n" and p.err == "", "nc", got=p.err)
        p = cglib.run([cglib.PYTHON, "-c", "import socket;print(socket.create_connection(('127.0.0.1',%d)).recv(9).decode().strip())" % port],
                      env=lg.env())
        check(p.out == "hello\n" and p.err == "", "python", got=p.err)
        check(lg.files() == [], "a healthy run wrote a log", got=lg.files())
    # Default destination (stderr) and format (text): still nothing.
    port = cglib.free_port()
    cgconn.server_now(port, mode="http", count=1)
    p = cglib.run(["curl", "-sS", "http://127.0.0.1:%d/" % port])
    check(p.out == "ok\n" and p.err == "", "curl with default settings", got=p.err)


def _never_blocking(env, lg):
    port = _closed_port()
    p = cgconn.timed_run([BLOCKING, "127.0.0.1", str(port)], env=lg.env(**env))
    check(p.out == "error ECONNREFUSED via connect\n" and p.returncode == 1, "client result", got=p.out + p.err)
    return port, p


def test_only_other_destination_not_retried():
    with LogDir() as lg:
        port, p = _never_blocking({"CONNGUARD_ONLY": "127.0.0.1:1,[::1]:*", "CONNGUARD_BACKOFF_MS": 3000}, lg)
        check(lg.files() == [] and p.elapsed < 1, "a destination outside ONLY was retried", got=lg.files())


def test_only_matching_destination_retried():
    with LogDir() as lg:
        port = _closed_port()
        lo, hi = max(1, port - 5), min(65535, port + 5)
        p = cglib.run([BLOCKING, "127.0.0.1", str(port)], env=lg.env(CONNGUARD_ONLY="10.0.0.0/8:*, *:%d-%d" % (lo, hi)))
        check(p.out == "error ECONNREFUSED via connect\n", "client result", got=p.out)
        cgconn.check_never(lg.records(), "127.0.0.1:%d" % port)


def test_skip_matching_destination_not_retried():
    with LogDir() as lg:
        port = _closed_port()
        p = cgconn.timed_run([POLL, "127.0.0.1", str(port)],
                             env=lg.env(CONNGUARD_SKIP="127.0.0.0/8:%d" % port, CONNGUARD_BACKOFF_MS=3000))
        check(p.out.startswith("error ECONNREFUSED via getsockopt\n"), "client result", got=p.out)
        check(lg.files() == [] and p.elapsed < 1, "a SKIPped destination was retried", got=lg.files())


def test_skip_other_family_still_retried():
    with LogDir() as lg:
        port = _closed_port()
        cglib.run([POLL, "127.0.0.1", str(port)], env=lg.env(CONNGUARD_SKIP="[::1]:*"))
        cgconn.check_never(lg.records(), "127.0.0.1:%d" % port, module="conn_poll")


def test_retry_on_without_refused():
    """RETRY_ON=timeout: a refusal is logged once (give_up, not_retryable) and seen at once."""
    for prog, name in ((BLOCKING, "conn_blocking"), (POLL, "conn_poll")):
        with LogDir() as lg:
            port = _closed_port()
            p = cgconn.timed_run([prog, "127.0.0.1", str(port)], env=lg.env(CONNGUARD_RETRY_ON="timeout", CONNGUARD_BACKOFF_MS=3000))
            check(p.out.startswith("error ECONNREFUSED via"), "client result", got=p.out)
            check(p.elapsed < 1, "not retryable, yet it took %.1fs" % p.elapsed)
            cgconn.check_failures(lg.records(), 1, last="give_up", reason="not_retryable", module=name)


def test_retry_on_without_timeout_leaves_syn_alone():
    """RETRY_ON=refused: a SYN drop is not the shim's business, so no per-attempt timer cuts
    it: the program's own timer (SO_SNDTIMEO 800 ms here) acts as without the shim."""
    with cglib.FullBacklog() as fb, LogDir() as lg:
        env = lg.env(CONNGUARD_RETRY_ON="refused", CONNGUARD_CONNECT_TIMEOUT_MS=100)
        p = cgconn.timed_run([BLOCKING, "127.0.0.1", str(fb.port), "-s", "800"], env=env)
        check(p.out == "error EINPROGRESS via connect\n", "the program's own timeout must act", got=p.out + p.err)
        check(0.7 < p.elapsed < 3, "took %.2fs" % p.elapsed)
        p = cgconn.timed_run([POLL, "127.0.0.1", str(fb.port), "-t", "800"], env=env)
        check(p.out == "timeout via poll\n", "the program's own timeout must act", got=p.out + p.err)
        check(lg.files() == [], "nothing to log", got=lg.files())


def test_retry_on_reset_and_unreach_accepted():
    with LogDir() as lg:
        port = _closed_port()
        p = cglib.run([BLOCKING, "127.0.0.1", str(port)], env=lg.env(CONNGUARD_RETRY_ON="reset,unreach,refused"))
        check(p.err == "", "a valid list warns", got=p.err)
        cgconn.check_never(lg.records(), "127.0.0.1:%d" % port)


def test_retries_zero():
    with LogDir() as lg:
        port = _closed_port()
        cglib.run([BLOCKING, "127.0.0.1", str(port)], env=lg.env(CONNGUARD_RETRIES=0))
        cgconn.check_failures(lg.records(), 1, last="give_up", reason="retries_exhausted")


def test_deadline_ends_retries():
    """DEADLINE_MS=250 with delays of 100 then 200 ms: the second delay would run into the last
    slot of the deadline (25 ms, a tenth of it), so it is cut to start the third and last attempt
    at 225 ms; its failure gives up with reason deadline."""
    for prog in (BLOCKING, POLL):
        with LogDir() as lg:
            port = _closed_port()
            p = cgconn.timed_run([prog, "127.0.0.1", str(port)], env=lg.env(CONNGUARD_DEADLINE_MS=250, CONNGUARD_RETRIES=10))
            check(p.out.startswith("error ECONNREFUSED via"), "client result", got=p.out)
            recs = lg.records()
            check(len(recs) == 3, "three failures", got=recs)
            cgconn.check_failures(recs[:1], 1, last="retry")
            got = [(r["attempt"], r["action"], r.get("delay_ms"), r.get("reason"), r["elapsed_ms"]) for r in recs]
            check([g[:2] + g[3:4] for g in got] == [(1, "retry", None), (2, "retry", None), (3, "give_up", "deadline")] and
                  recs[0]["delay_ms"] == 100 and 100 <= recs[1]["delay_ms"] <= 125, "the second delay cut to the last slot",
                  got=got)
            check(recs[2]["elapsed_ms"] >= recs[1]["elapsed_ms"] + recs[1]["delay_ms"] - 2 and
                  220 <= recs[2]["elapsed_ms"] < 250, "the last attempt in the last slot", got=got)
            check(p.elapsed < 2, "took %.1fs" % p.elapsed)


def test_stack_depth():
    with LogDir() as lg:
        port = _closed_port()
        cglib.run([BLOCKING, "127.0.0.1", str(port)], env=lg.env(CONNGUARD_STACK_DEPTH=0, CONNGUARD_RETRIES=1))
        recs = lg.records()
        check(len(recs) == 2 and all("stack" not in r for r in recs), "STACK_DEPTH=0 still gave stacks", got=recs)
    with LogDir() as lg:
        cglib.run([BLOCKING, "127.0.0.1", str(port)], env=lg.env(CONNGUARD_STACK_DEPTH=2, CONNGUARD_RETRIES=1))
        recs = lg.records()
        check(all(len(r["stack"]) == 2 for r in recs), "STACK_DEPTH=2", got=recs)
        # Innermost first: the client's own connect call site, in its executable.
        check(recs[0]["stack"][0]["module"].endswith("/conn_blocking"), "innermost frame", got=recs[0]["stack"])
        check(recs[0]["stack"][1].get("symbol") in ("__libc_start_call_main", None) or
              "libc" in recs[0]["stack"][1]["module"], "second frame", got=recs[0]["stack"])


def test_stack_depth_above_16():
    """CONNGUARD_STACK_DEPTH=32 with a connect made 40 calls deep: blocking and non-blocking
    (poll) failures both carry 32 frames, all in the client (a non-blocking connect's stack is
    kept with the fd until its failure is seen, and was cut at 16)."""
    port = _closed_port()
    for name in ("conn_blocking", "conn_poll"):
        with LogDir() as lg:
            cglib.run([cgconn.client(name), "127.0.0.1", str(port), "-d", "40"],
                      env=lg.env(CONNGUARD_STACK_DEPTH=32, CONNGUARD_RETRIES=0))
            recs = lg.records()
            check(len(recs) == 1 and len(recs[0]["stack"]) == 32, "%s: 32 frames" % name,
                  got=[len(r.get("stack", [])) for r in recs])
            check(all(f["module"].endswith("/" + name) for f in recs[0]["stack"]), "%s: the client's frames" % name,
                  got=recs[0]["stack"])


def test_text_log_on_stderr():
    """The default format and destination: sanitizer-style text records on stderr, and stdout
    untouched."""
    port = _closed_port()
    p = cglib.run([BLOCKING, "127.0.0.1", str(port)],
                  env={"CONNGUARD_JITTER": "none", "CONNGUARD_BACKOFF_MS": 50, "CONNGUARD_RETRIES": 2})
    check(p.out == "error ECONNREFUSED via connect\n", "stdout must be the program's only", got=p.out)
    recs = cglib.text_records(p.err)
    check(len(recs) == 3, "three text records", got=p.err)
    for i, r in enumerate(recs):
        check(r["event"] == "connect_failed" and r["dst"] == "127.0.0.1:%d" % port and r["errno"] == "ECONNREFUSED"
              and r["attempt"] == str(i + 1), "text record fields", got=p.err)
        check(r["action"] == ("give_up" if i == 2 else "retry"), "action", got=p.err)
        check(r["hint"].startswith("nothing is listening"), "hint line", got=p.err)
        check(r["stack"] and all(re.match(r"^#\d+ 0x[0-9a-f]+ in \S+ \(.+\+0x[0-9a-f]+\)$", s) for s in r["stack"]),
              "stack lines", got=r["stack"])
        check(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", r["ts"]), "ts", got=r["ts"])
    check(recs[0]["delay_ms"] == "50" and recs[1]["delay_ms"] == "100" and recs[2]["reason"] == "retries_exhausted",
          "delays", got=p.err)
    # Nothing but whole records on stderr: every line belongs to one.
    for line in p.err.splitlines():
        check(line.startswith("==%d== " % recs[0]["pid"]), "stray line on stderr", got=line)


VARS_BAD = {
    "RETRIES": ("banana", "none"), "BACKOFF_MS": ("-5", "100"), "BACKOFF_MAX_MS": ("1.5", "2000"),
    "JITTER": ("banana", "equal"), "CONNECT_TIMEOUT_MS": ("", "5000"), "DEADLINE_MS": ("0", "10000"),
    "RETRY_ON": ("sometimes", "refused,timeout"), "ONLY": ("localhost:80", "no restriction"),
    "SKIP": ("*", "nothing skipped"), "LOG_FORMAT": ("xml", "text"), "STACK_DEPTH": ("65", "16"),
    "LEAKS": ("maybe", "exit"), "LEAK_EXITCODE": ("-1", "0"), "LEAK_AGE_MS": ("soon", "30000"),
    "STATS": ("2", "1"), "TLS": ("yes please", "1"), "DISABLE": ("banana", "0"), "LOG": ("", "stderr"),
}


def test_bad_values_one_warning_each():
    """Each bad value, alone: exactly one warning line on stderr naming the variable, the value
    and what is used instead; the program runs normally."""
    port = cglib.free_port()
    cgconn.server_now(port, mode="line", count=len(VARS_BAD) + 1)
    for var, (val, used) in sorted(VARS_BAD.items()):
        p = cglib.run([BLOCKING, "127.0.0.1", str(port), "-r"], env={"CONNGUARD_" + var: val})
        check(p.returncode == 0 and p.out == "connected\ngot hello\n", "%s=%r broke the program" % (var, val), got=p.out + p.err)
        lines = p.err.splitlines()
        check(len(lines) == 1, "%s=%r: expected exactly one warning line" % (var, val), got=p.err)
        check(lines[0].startswith('connguard: warning: CONNGUARD_%s="%s"' % (var, val)) and lines[0].endswith("; using " + used),
              "warning text for %s" % var, got=lines[0])


def test_bad_huge_value_one_short_warning():
    """A 100 KB value (execve refuses a 1 MB one; the unit tests cover 1 MB): one short line."""
    port = cglib.free_port()
    cgconn.server_now(port, mode="line", count=1)
    p = cglib.run([BLOCKING, "127.0.0.1", str(port), "-r"], env={"CONNGUARD_JITTER": "x" * 100000})
    check(p.out == "connected\ngot hello\n", "program", got=p.out)
    lines = p.err.splitlines()
    check(len(lines) == 1 and len(lines[0]) < 400 and "(truncated)" in lines[0] and lines[0].endswith("; using equal"),
          "one short warning", got=p.err[:1000])


def test_bad_value_warns_once_even_when_log_is_a_file():
    with LogDir() as lg:
        port = _closed_port()
        p = cglib.run([BLOCKING, "127.0.0.1", str(port)], env=lg.env(CONNGUARD_JITTER="banana", CONNGUARD_RETRIES=1))
        lines = p.err.splitlines()
        check(len(lines) == 1 and 'CONNGUARD_JITTER="banana"' in lines[0], "one warning on stderr", got=p.err)
        recs = lg.records()
        check(len(recs) == 2 and all(r["event"] == "connect_failed" for r in recs), "records in the file", got=recs)


def test_unwritable_log_path():
    """CONNGUARD_LOG in a directory that does not exist: one warning, the records go to stderr
    instead, the program's result unchanged."""
    port = _closed_port()
    p = cglib.run([BLOCKING, "127.0.0.1", str(port)],
                  env={"CONNGUARD_LOG": "/nonexistent-cg/dir/log.%p", "CONNGUARD_BACKOFF_MS": 10, "CONNGUARD_RETRIES": 2})
    check(p.out == "error ECONNREFUSED via connect\n", "program", got=p.out)
    lines = p.err.splitlines()
    warn = [l for l in lines if l.startswith("connguard: warning:")]
    check(len(warn) == 1 and warn[0].startswith("connguard: warning: CONNGUARD_LOG file /nonexistent-cg/dir/log.")
          and warn[0].endswith(" cannot be opened: ENOENT; records go to stderr") and lines[0] == warn[0],
          "one warning, first", got=p.err)
    check(len(re.findall(r"^==\d+== connguard connect_failed .*action=(retry|give_up)", p.err, re.M)) == 3,
          "the three records on stderr", got=p.err)


PY_UNIX = "import socket,sys\ns=socket.socket(socket.AF_UNIX)\ns.connect(sys.argv[1])\nprint(s.recv(100).decode().strip())\n"


def test_unix_socket_retried_when_only_names_it():
    """A unix socket whose server is not up yet: ENOENT, retried because CONNGUARD_ONLY names
    it (here through a wildcard), and recovered."""
    with LogDir() as lg:
        path = os.path.join(lg.path, "app.sock")
        cgconn.trigger_server(0, lg, after=2, host="unix:" + path)
        env = lg.env(CONNGUARD_ONLY="unix:%s/*.sock" % lg.path, **cgconn.LATE_ENV)
        p = cglib.run([cglib.PYTHON, "-c", PY_UNIX, path], env=env, timeout=30)
        check(p.returncode == 0 and p.out == "hello\n", "python unix client", got=p.out + p.err)
        recs = lg.records()
        cgconn.check_late(recs, 2, "unix:" + path, errno="ENOENT")
        check("does not exist" in recs[0]["hint"], "hint", got=recs[0])


def test_unix_socket_left_alone_by_default():
    """Without a unix: pattern in ONLY, unix sockets are not the shim's business (glibc's nscd
    probes fail all the time): no retry, no record, the same error as without the shim."""
    with LogDir() as lg:
        path = os.path.join(lg.path, "missing.sock")
        bare = cglib.run([cglib.PYTHON, "-c", PY_UNIX, path], preload=False)
        p = cgconn.timed_run([cglib.PYTHON, "-c", PY_UNIX, path], env=lg.env(CONNGUARD_BACKOFF_MS=3000))
        check(p.returncode == bare.returncode == 1 and p.err == bare.err, "result", got=p.err)
        check(p.err.splitlines()[-1] == "FileNotFoundError: [Errno 2] No such file or directory", "error", got=p.err)
        check(lg.files() == [] and p.elapsed < 2, "retried a unix socket", got=lg.files())
