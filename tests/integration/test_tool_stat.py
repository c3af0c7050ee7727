"""`connguard stat PID`, `top` and `clean` against real running processes."""
import os
import re
import stat as st
import subprocess
import time

import cglib
import toolutil as tu
from cglib import check


def _human_values(text):
    """'  connect attempts     3' -> {'connect attempts': '3'}"""
    out = {}
    for line in text.splitlines():
        m = re.match(r"^ {2,4}(\S.*?)\s{2,}(\S.*)$", line)
        if m:
            out[m.group(1)] = m.group(2)
    return out


def test_stat_counts_a_failed_connect_exactly():
    p, port = tu.start_closed_client()
    s = tu.stat_json(p.pid)
    # Three attempts (1 + 2 retries), all refused; waits of 10 and 20 ms (jitter none).
    check(s["pid"] == p.pid and s["state"] == "live", "header", got=s)
    check(s["exe"].startswith("/usr/bin/python3"), "exe", got=s)
    check(s["connect_attempts"] == 3, "attempts", got=s)
    check(s["connect_failures"] == 3 and s["failures_by_errno"] == {"ECONNREFUSED": 3}, "failures", got=s)
    check(s["retries"] == 2 and s["give_ups"] == 1 and s["recoveries"] == 0, "retries/give-ups", got=s)
    check(s["backoff_wait_ns"] == 30 * 10**6, "backoff time", got=s)
    check(s["leak_candidates"] == 0, "no leak candidates", got=s)
    check(s["tls_handshakes"] == 0 and s["tls_failures"] == 0, "tls", got=s)
    # The human form says the same.
    r = tu.tool(["stat", str(p.pid)])
    check(r.returncode == 0, "stat failed", got=r.err)
    v = _human_values(r.out)
    check(v.get("connect attempts") == "3" and v.get("connect failures") == "3"
          and v.get("ECONNREFUSED") == "3" and v.get("retries") == "2" and v.get("give-ups") == "1"
          and v.get("recoveries") == "0" and v.get("time waiting") == "30ms", "human stat", got=r.out)
    check(v.get("state", "").startswith("live"), "live state", got=r.out)
    cglib.stop(p)


def test_stat_counts_a_recovery():
    port = cglib.free_port()
    srv = cglib.late_server(port, 0.6)
    p, line = tu.start(["--retries", "20", "--backoff", "100ms", "--backoff-max", "100ms", "--jitter", "none",
                        "--log", os.devnull, "--", cglib.PYTHON, "-c", tu.CLOSED_CLIENT, str(port)],
                       ready="connected")
    s = tu.stat_json(p.pid)
    n = s["retries"]
    check(s["recoveries"] == 1 and s["give_ups"] == 0, "one recovery, no give-up", got=s)
    check(n >= 1 and s["connect_attempts"] == n + 1 and s["connect_failures"] == n, "attempts = retries + 1", got=s)
    check(s["failures_by_errno"] == {"ECONNREFUSED": n}, "all refused", got=s)
    check(s["backoff_wait_ns"] == n * 100 * 10**6, "100 ms per retry", got=s)
    cglib.stop(p)
    cglib.stop(srv)


def test_stat_several_pids_and_counters_of_two_processes():
    a, _ = tu.start_closed_client()
    b, _ = tu.start_closed_client(["--retries", "0"])
    r = tu.tool(["stat", "--json", str(a.pid), str(b.pid)])
    check(r.returncode == 0, "stat of two pids", got=r.err)
    lines = [__import__("json").loads(x) for x in r.out.splitlines()]
    check([x["pid"] for x in lines] == [a.pid, b.pid], "one line per pid", got=r.out)
    check(lines[0]["retries"] == 2 and lines[1]["retries"] == 0 and lines[1]["give_ups"] == 1, "own counters", got=r.out)
    cglib.stop(a)
    cglib.stop(b)


def test_segment_is_private_and_removed_at_exit():
    p, _ = tu.start_closed_client(seconds=1.5)
    path = tu.segment_path(p.pid)
    info = os.stat(path)
    check(st.S_IMODE(info.st_mode) == 0o600 and info.st_uid == os.getuid(), "0600, owned by the user",
          got=oct(info.st_mode))
    p.wait(10)
    check(not os.path.exists(path), "segment removed at exit")
    r = tu.tool(["stat", str(p.pid)])
    check(r.returncode == 1 and "no process with pid %d" % p.pid in r.err, "gone process", got=r.err)


def test_top_once_lists_the_process():
    p, _ = tu.start_closed_client()
    r = tu.tool(["top", "--once"])
    check(r.returncode == 0, "top failed", got=r.err)
    check(r.out.startswith("connguard top - "), "header", got=r.out)
    rows = [l.split() for l in r.out.splitlines() if l.split() and l.split()[0] == str(p.pid)]
    check(len(rows) == 1, "one row for the pid", got=r.out)
    row = rows[0]
    # PID COMMAND CONNECTS FAILED RETRIES RECOV GIVEUP WAITED OPEN LEAKS TLS TLSFAIL TOP-ERRNO STATE
    check(row[1] == "python3" and row[2:8] == ["3", "3", "2", "0", "1", "30ms"], "counters", got=r.out)
    check(row[12] == "ECONNREFUSED" and row[13] == "live", "errno and state", got=r.out)
    # Iterations: -n 2 -d 0.2 prints two tables when not on a terminal.
    r = tu.tool(["top", "-n", "2", "-d", "0.2"])
    check(r.returncode == 0 and r.out.count("connguard top - ") == 2, "two refreshes", got=r.out + r.err)
    cglib.stop(p)


def test_stale_segment_of_a_dead_process_is_reported_and_cleaned():
    pid = tu.dead_pid()
    path = tu.fake_segment(pid, counters={"connect_attempts": 42, "connect_failures": 5, "errno:111": 5})
    try:
        r = tu.tool(["stat", "--json", str(pid)])
        check(r.returncode == 3, "stale: exit 3", got=r.out + r.err)
        s = __import__("json").loads(r.out)
        check(s["state"] == "gone" and s["connect_attempts"] == 42 and s["failures_by_errno"] == {"ECONNREFUSED": 5},
              "last counters shown", got=r.out)
        r = tu.tool(["stat", str(pid)])
        check(r.returncode == 3 and "stale (process gone)" in r.out and "connguard clean" in r.err, "human stale", got=r.out + r.err)
        r = tu.tool(["top", "--once", "--all"])
        check(re.search(r"^\s*%d .* stale:gone$" % pid, r.out, re.M), "top --all shows it", got=r.out)
        r = tu.tool(["top", "--once"])
        check(not re.search(r"^\s*%d " % pid, r.out, re.M) and "stale segment" in r.out, "top hides it", got=r.out)
        r = tu.tool(["metrics", str(pid)])
        check(r.returncode == 1 and "stale" in r.err and "connguard_" not in r.out, "no metrics for the dead", got=r.out + r.err)
        r = tu.tool(["clean", "--dry-run"])
        check(path in r.out and os.path.exists(path), "dry run keeps it", got=r.out)
        r = tu.tool(["clean"])
        check(r.returncode == 0 and ("removed %s" % path) in r.out, "clean removes it", got=r.out + r.err)
        check(not os.path.exists(path), "file gone")
    finally:
        tu.remove(path)


def test_pid_reused_by_a_process_without_the_shim():
    sleeper = cglib.spawn(["sleep", "60"])
    path = tu.fake_segment(sleeper.pid, counters={"connect_attempts": 7})
    try:
        # A segment younger than 2 s may belong to a process that is starting: wait that out.
        time.sleep(2.2)
        r = tu.tool(["stat", "--json", str(sleeper.pid)])
        check(r.returncode == 3 and '"state":"reused"' in r.out, "reused pid detected", got=r.out + r.err)
        r = tu.tool(["clean"])
        check(("removed %s" % path) in r.out and not os.path.exists(path), "cleaned", got=r.out + r.err)
        check(sleeper.poll() is None, "the process itself is untouched")
    finally:
        tu.remove(path)
        cglib.stop(sleeper)


def test_bad_pids_and_processes_without_the_shim():
    r = tu.tool(["stat", "abc"])
    check(r.returncode == 2 and "'abc' is not a process id" in r.err, "garbage pid", got=r.err)
    r = tu.tool(["stat"])
    check(r.returncode == 2 and "expected a PID" in r.err, "missing pid", got=r.err)
    r = tu.tool(["stat", "99999999999"])
    check(r.returncode == 2, "absurd pid", got=r.err)
    pid = tu.dead_pid()
    r = tu.tool(["stat", str(pid)])
    check(r.returncode == 1 and r.err.strip() == "connguard: no process with pid %d (and no connguard counters for it)" % pid,
          "unknown pid", got=r.err)
    plain = cglib.spawn(["sleep", "60"])
    r = tu.tool(["stat", str(plain.pid)])
    check(r.returncode == 1 and "is not running under connguard (libconnguard.so is not loaded)" in r.err,
          "process without the shim", got=r.err)
    nostats, _ = tu.start(["--no-stats", "--", cglib.PYTHON, "-c", "print('ready', flush=True); import time; time.sleep(60)"])
    r = tu.tool(["stat", str(nostats.pid)])
    check(r.returncode == 1 and "libconnguard.so loaded but publishes no counters" in r.err, "stats off", got=r.err)
    r = tu.tool(["metrics", str(plain.pid)])
    check(r.returncode == 1 and "not running under connguard" in r.err and r.out == "", "metrics: same", got=r.err)
    r = tu.tool(["leaks", str(plain.pid)])
    check(r.returncode == 1 and "not running under connguard" in r.err, "leaks: same", got=r.err)
    cglib.stop(plain)
    cglib.stop(nostats)


def test_corrupt_segments_are_refused_clearly():
    cases = [
        (dict(magic=0x12345678), "not connguard counters (bad magic)"),
        (dict(version=99), "counters layout version 99, this connguard reads version"),
        (dict(size=1234), "counters of 1234 bytes"),
        (dict(truncate_to=100), "counters of"),
        (dict(truncate_to=8), "empty or truncated"),
        (dict(hdr_pid=1), "the file names pid 1"),
    ]
    for kw, msg in cases:
        pid = tu.dead_pid()
        path = tu.fake_segment(pid, **kw)
        try:
            for sub in (["stat"], ["metrics"], ["leaks"]):
                r = tu.tool(sub + [str(pid)])
                check(r.returncode == 1 and msg in r.err and "Traceback" not in r.err, "%s: %s" % (sub, kw), got=r.err)
            # `clean` removes what cannot be read once its process is gone.
            r = tu.tool(["clean"])
            check(not os.path.exists(path), "unreadable segment of a dead process cleaned: %s" % kw, got=r.out + r.err)
        finally:
            tu.remove(path)


def _as_nobody():
    def drop():
        os.setgid(65534)
        os.setuid(65534)
    return drop


def test_another_users_process_is_refused():
    if os.getuid() != 0:
        raise cglib.Skip("needs root to start a process as another user")
    port = cglib.free_port()
    env = cglib.env_for(None, preload=False)
    p = subprocess.Popen([tu.TOOL, "--log", os.devnull, "--", cglib.PYTHON, "-c", tu.CLOSED_CLIENT, str(port)],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=_as_nobody())
    cglib._children.append(p)
    line = p.stdout.readline().decode()
    check(line.startswith("ready"), "nobody's client started", got=line)
    path = tu.segment_path(p.pid, 65534)
    check(os.path.exists(path) and os.stat(path).st_uid == 65534, "segment owned by nobody", got=path)
    for sub in (["stat"], ["metrics"], ["leaks"]):
        r = tu.tool(sub + [str(p.pid)])
        check(r.returncode == 1 and ("pid %d runs under connguard as uid 65534" % p.pid) in r.err
              and "only that user can read its counters" in r.err, "root is refused too: %s" % sub, got=r.err)
    # And nobody cannot read root's counters.
    mine, _ = tu.start_closed_client()
    q = subprocess.run([tu.TOOL, "stat", str(mine.pid)], env=env, capture_output=True, preexec_fn=_as_nobody(), timeout=30)
    err = q.stderr.decode()
    check(q.returncode == 1 and ("runs under connguard as uid %d" % os.getuid()) in err, "nobody refused", got=err)
    # A file of someone else's planted under our own name is refused as well.
    pid = tu.dead_pid()
    path = tu.fake_segment(pid)
    os.chown(path, 65534, 65534)
    try:
        r = tu.tool(["stat", str(pid)])
        check(r.returncode == 1 and "belongs to uid 65534, not to you" in r.err, "foreign file refused", got=r.err)
    finally:
        tu.remove(path)
    cglib.stop(p)
    cglib.stop(mine)
