"""`connguard leaks PID`: leak candidates of a running program, joined with /proc."""
import os
import re
import shutil
import signal
import subprocess
import time

import cglib
import toolutil as tu
from cglib import check


def _start_leaky(extra=(), prefix=()):
    p, line = tu.start(["--log", os.devnull] + list(extra) + ["--", tu.LEAKY, "0"], prefix=prefix)
    info = dict(kv.split("=") for kv in line.split()[1:])
    return p, {k: (int(v) if v.isdigit() else v) for k, v in info.items()}


def _blocks(out):
    """fd -> the text of its entry."""
    blocks = {}
    for b in re.split(r"\n(?=LEAK\? |ok    )", out):
        m = re.match(r"^(?:LEAK\?|ok   ) fd (\d+): ", b)
        if m:
            blocks[int(m.group(1))] = b
    return blocks


def _secs(txt):
    """Seconds in one of the tool's durations ("850ms", "2.5s", "1m05s")."""
    m = re.fullmatch(r"(\d+)ms", txt)
    if m:
        return int(m.group(1)) / 1000
    m = re.fullmatch(r"(\d+\.\d)s", txt)
    if m:
        return float(m.group(1))
    m = re.fullmatch(r"(\d+)m(\d\d)s", txt)
    check(m, "a duration", got=txt)
    return int(m.group(1)) * 60 + int(m.group(2))


def _leaks_until(pid, args, pred, timeout=10):
    """Runs `leaks ARGS PID` until pred(blocks) holds (bounded); returns the last result."""
    end = time.time() + timeout
    while True:
        r = tu.tool(["leaks"] + list(args) + [str(pid)])
        check(r.returncode in (0, 4), "leaks failed", got=r.err)
        b = _blocks(r.out)
        if pred(b) or time.time() > end:
            return r, b
        time.sleep(0.05)


def test_close_wait_socket_is_a_candidate_with_its_stack():
    # A has been in CLOSE_WAIT since the start: a candidate once that is longer than the
    # process's CONNGUARD_LEAK_AGE_MS.
    p, fds = _start_leaky(["--leak-age", "300ms"])
    r, b = _leaks_until(p.pid, [], lambda b: fds["A"] in b)
    a = b.get(fds["A"], "")
    check(re.search(r"^LEAK\? fd %d: tcp CLOSE_WAIT 127\.0\.0\.1:\d+ -> 127\.0\.0\.1:%d, open \S+ \(socket:\[\d+\]\)$"
                    % (fds["A"], fds["port"]), a, re.M), "fd, state, peer, age", got=r.out)
    check(re.search(r"^  CLOSE_WAIT for \S+ \(longer than 300ms\): the peer closed the connection", a, re.M), "why", got=a)
    # The creation stack, resolved to this test client's function and line (built with -g).
    check(re.search(r"#\d+ 0x[0-9a-f]+ in open_leaky_pair \S*tests/clients/leaky\.c:\d+ \(%s\+0x[0-9a-f]+\)"
                    % re.escape(os.path.realpath(tu.LEAKY)), a), "creation stack", got=a)
    # C and D are as old as A, open longer than the threshold too; the listener never counts.
    check({fds["A"], fds["C"]} <= set(b) <= {fds["A"], fds["C"], fds["D"]}, "candidates", got=r.out)
    check("open longer than the age threshold" in b[fds["C"]], "C's why", got=r.out)
    n = len(b)
    check(re.match(r"pid %d \(leaky\): \d+ tracked sockets? open, %d leak candidates \(CLOSE_WAIT or open longer than 300ms\)\n"
                   % (p.pid, n), r.out), "summary", got=r.out)
    # stat and metrics count the same candidates.
    check(tu.stat_json(p.pid)["leak_candidates"] == n, "stat leak_candidates")
    r = tu.tool(["leaks", "--fail", str(p.pid)])
    check(r.returncode == 4, "--fail: exit 4 with a candidate", got=r.err)
    m = tu.tool(["metrics", str(p.pid)])
    check(re.search(r'^connguard_leaked_sockets\{pid="%d",[^}]*\} %d$' % (p.pid, n), m.out, re.M), "metrics", got=m.out)
    cglib.stop(p)


def test_close_wait_counts_from_the_peers_fin():
    """The rule: in CLOSE_WAIT for longer than the threshold. The time counts from the peer's
    FIN (sock_diag), not from the socket's creation."""
    p, fds = _start_leaky(["--leak-age", "2s"])
    t0 = time.time()
    # Younger than the threshold: not a candidate, and --all says how long it has waited.
    r = tu.tool(["leaks", "--all", "--fail", "--age", "60s", str(p.pid)])
    check(r.returncode == 0, "no candidate under a 60s threshold", got=r.out + r.err)
    b = _blocks(r.out)
    m = re.search(r"^  CLOSE_WAIT for (\S+), not longer than 1m00s yet: the peer closed", b[fds["A"]], re.M)
    check(b[fds["A"]].startswith("ok   ") and m, "A is not a candidate yet", got=r.out)
    check(_secs(m.group(1)) <= time.time() - t0 + 1, "A's time in CLOSE_WAIT is about its age", got=r.out)
    check("note:" not in r.out, "sock_diag answered", got=r.out)
    # C has been open since the start; its peer closes only now, well after the start.
    time.sleep(max(0.0, t0 + 2.5 - time.time()))
    os.kill(p.pid, signal.SIGUSR1)
    t_fin = time.time()
    r, b = _leaks_until(p.pid, ["--all"], lambda b: " CLOSE_WAIT " in b.get(fds["C"], ""))
    t_end = time.time()
    # A: in CLOSE_WAIT for about 2.5s, longer than the process's 2s.
    m = re.search(r"^  CLOSE_WAIT for (\S+) \(longer than 2\.0s\): the peer closed the connection", b[fds["A"]], re.M)
    check(b[fds["A"]].startswith("LEAK?") and m, "A is a candidate for its time in CLOSE_WAIT", got=r.out)
    check(2.0 < _secs(m.group(1)) <= t_end - t0 + 0.1, "A's time in CLOSE_WAIT", got=r.out)
    # C: in CLOSE_WAIT for less than the threshold; a candidate for its age only, and said so.
    c = b[fds["C"]]
    m = re.search(r"^  open longer than the age threshold; CLOSE_WAIT for (\S+), not longer than 2\.0s yet", c, re.M)
    check(c.startswith("LEAK? fd %d: tcp CLOSE_WAIT " % fds["C"]) and m, "C: open too long, CLOSE_WAIT recent", got=r.out)
    check(_secs(m.group(1)) <= t_end - t_fin + 0.1, "C's time in CLOSE_WAIT counts from the FIN", got=r.out)
    cglib.stop(p)


def test_age_threshold_and_all():
    p, fds = _start_leaky()
    r = tu.tool(["leaks", "--age", "1ms", str(p.pid)])
    check(r.returncode == 0, "leaks failed", got=r.err)
    b = _blocks(r.out)
    # A (CLOSE_WAIT) and C (ESTABLISHED, old enough now); D when the shim tracks accepted
    # sockets itself; never the listener.
    check({fds["A"], fds["C"]} <= set(b) <= {fds["A"], fds["C"], fds["D"]}, "candidates by age", got=r.out)
    check(fds["L"] not in b, "a listening socket is never a candidate", got=r.out)
    c = b[fds["C"]]
    check(re.search(r"^LEAK\? fd %d: tcp ESTABLISHED 127\.0\.0\.1:\d+ -> 127\.0\.0\.1:%d," % (fds["C"], fds["port"]), c, re.M)
          and "open longer than the age threshold" in c, "C entry", got=c)
    r = tu.tool(["leaks", "--all", "--fail", "--age", "3600s", str(p.pid)])
    check(r.returncode == 0, "CLOSE_WAIT for less than the threshold is no candidate", got=r.out + r.err)
    b = _blocks(r.out)
    check(all(x.startswith("ok   ") for x in b.values()) and set(b) >= {fds["A"], fds["C"], fds["L"]},
          "--all lists the others as ok", got=r.out)
    # The process's own CONNGUARD_LEAK_AGE_MS is the default threshold.
    cglib.stop(p)
    p, fds = _start_leaky(["--leak-age", "1ms"])
    r = tu.tool(["leaks", str(p.pid)])
    check(fds["C"] in _blocks(r.out) and "open longer than 1ms" in r.out, "process's own threshold", got=r.out)
    cglib.stop(p)


def test_close_wait_time_unknown_falls_back_on_the_age():
    """In another network namespace sock_diag cannot see the socket: the tool says so and
    bounds the time in CLOSE_WAIT by the socket's age."""
    if not shutil.which("unshare") or not shutil.which("ip"):
        raise cglib.Skip("unshare or ip not installed")
    probe = subprocess.run(["unshare", "-n", "ip", "link", "set", "lo", "up"], capture_output=True, timeout=10)
    if probe.returncode != 0:
        raise cglib.Skip("no permission for a network namespace: %s" % probe.stderr.decode().strip())
    p, fds = _start_leaky(["--leak-age", "200ms"], prefix=["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh"])
    r, b = _leaks_until(p.pid, ["--all"], lambda b: b.get(fds["A"], "").startswith("LEAK?"))
    check(re.search(r"^note: time in CLOSE_WAIT unknown for 1 socket \(the process is in another network namespace\): "
                    r"the socket's age is used instead$", r.out, re.M), "the output says the time is unknown", got=r.out)
    check(re.search(r"^  CLOSE_WAIT for at most \S+, its age \(longer than 200ms; time since the peer's FIN unknown: "
                    r"the process is in another network namespace\): the peer closed", b[fds["A"]], re.M), "A's why", got=r.out)
    cglib.stop(p)


def test_no_symbols_and_bad_input():
    p, fds = _start_leaky()
    r = tu.tool(["leaks", "--all", "--no-symbols", str(p.pid)])
    check(r.returncode == 0 and re.search(r"#\d+ 0x[0-9a-f]+ in \?\? \(%s\+0x[0-9a-f]+\)" % re.escape(os.path.realpath(tu.LEAKY)), r.out),
          "module+offset only", got=r.out)
    for args, rc, msg in ((["leaks"], 2, "expected exactly one PID"),
                          (["leaks", "x1"], 2, "'x1' is not a process id"),
                          (["leaks", "--age", "old", str(p.pid)], 2, "--age 'old'"),
                          (["leaks", str(tu.dead_pid())], 1, "no process with pid")):
        r = tu.tool(args)
        check(r.returncode == rc and msg in r.err, "bad input %s" % args, got=r.err)
    cglib.stop(p)


def test_candidates_grouped_by_creation_stack():
    """5 sockets in CLOSE_WAIT from one call site: one entry with the 5 sockets and the stack
    once, as the exit report groups them (it listed 5 identical stacks one by one)."""
    port = cglib.free_port()
    srv = cglib.late_server(port, 0, mode="line", count=5)
    cglib.wait_listening(port)
    prog = cglib.spawn([cglib.PYTHON, os.path.join(os.path.dirname(__file__), "leakprogs", "live_leak.py"), str(port), "5"],
                       preload=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    fds = [int(x) for x in prog.stdout.readline().split()[1:]]
    check(len(fds) == 6, "5 clients and a listener", got=fds)
    want = "LEAK? 5 sockets from one creation stack:"
    end = time.time() + 10
    while True:
        r = tu.tool(["leaks", "--age", "1ms", str(prog.pid)])
        if want in r.out or time.time() > end:
            break
        time.sleep(0.05)
    check(r.returncode == 0 and want in r.out, "one group", got=r.out + r.err)
    lines = [l for l in r.out.splitlines() if re.match(r"^  fd \d+: tcp CLOSE_WAIT 127\.0\.0\.1:\d+ -> 127\.0\.0\.1:%d, " % port, l)]
    check(sorted(int(l.split()[1][:-1]) for l in lines) == sorted(fds[:5]), "each socket on its own line", got=r.out)
    check(r.out.count("created at:") == 1 and r.out.count("    CLOSE_WAIT for ") == 5, "the stack once, each reason", got=r.out)
    check(re.search(r'^    File ".*live_leak\.py", line \d+', r.out, re.M) or "python" in r.out, "the stack", got=r.out)
    prog.stdin.write(b"exit\n")
    prog.stdin.flush()
    prog.wait(10)
    cglib.stop(srv)
