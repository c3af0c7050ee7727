"""`connguard leaks PID`: leak candidates of a running program, joined with /proc."""
import json
import os
import re

import cglib
import toolutil as tu
from cglib import check


def _start_leaky(extra=()):
    p, line = tu.start(["--log", os.devnull] + list(extra) + ["--", tu.LEAKY, "0"])
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


def test_close_wait_socket_is_a_candidate_with_its_stack():
    p, fds = _start_leaky()
    r = tu.tool(["leaks", str(p.pid)])
    check(r.returncode == 0, "leaks failed", got=r.err)
    b = _blocks(r.out)
    check(list(b) == [fds["A"]], "only the CLOSE_WAIT socket is a candidate by default", got=r.out)
    a = b[fds["A"]]
    check(re.search(r"^LEAK\? fd %d: tcp CLOSE_WAIT 127\.0\.0\.1:\d+ -> 127\.0\.0\.1:%d, open \S+ \(socket:\[\d+\]\)$"
                    % (fds["A"], fds["port"]), a, re.M), "fd, state, peer, age", got=a)
    check("CLOSE_WAIT: the peer closed the connection" in a, "why", got=a)
    # The creation stack, resolved to this test client's function and line (built with -g).
    check(re.search(r"#\d+ 0x[0-9a-f]+ in open_leaky_pair \S*tests/clients/leaky\.c:\d+ \(%s\+0x[0-9a-f]+\)"
                    % re.escape(os.path.realpath(tu.LEAKY)), a), "creation stack", got=a)
    check(re.match(r"pid %d \(leaky\): \d+ tracked sockets? open, 1 leak candidate " % p.pid, r.out), "summary", got=r.out)
    # stat and metrics count the same candidate.
    check(tu.stat_json(p.pid)["leak_candidates"] == 1, "stat leak_candidates")
    r = tu.tool(["leaks", "--fail", str(p.pid)])
    check(r.returncode == 4, "--fail: exit 4 with a candidate", got=r.err)
    m = tu.tool(["metrics", str(p.pid)])
    check(re.search(r'^connguard_leaked_sockets\{pid="%d",[^}]*\} 1$' % p.pid, m.out, re.M), "metrics", got=m.out)
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
    check(r.returncode == 4, "CLOSE_WAIT is a candidate whatever the age", got=r.err)
    b = _blocks(r.out)
    check(b[fds["A"]].startswith("LEAK?") and b[fds["C"]].startswith("ok   "), "--all marks the others ok", got=r.out)
    # The process's own CONNGUARD_LEAK_AGE_MS is the default threshold.
    cglib.stop(p)
    p, fds = _start_leaky(["--leak-age", "1ms"])
    r = tu.tool(["leaks", str(p.pid)])
    check(fds["C"] in _blocks(r.out) and "open longer than 1ms" in r.out, "process's own threshold", got=r.out)
    cglib.stop(p)


def test_no_symbols_and_bad_input():
    p, fds = _start_leaky()
    r = tu.tool(["leaks", "--no-symbols", str(p.pid)])
    check(r.returncode == 0 and re.search(r"#\d+ 0x[0-9a-f]+ in \?\? \(%s\+0x[0-9a-f]+\)" % re.escape(os.path.realpath(tu.LEAKY)), r.out),
          "module+offset only", got=r.out)
    for args, rc, msg in ((["leaks"], 2, "expected exactly one PID"),
                          (["leaks", "x1"], 2, "'x1' is not a process id"),
                          (["leaks", "--age", "old", str(p.pid)], 2, "--age 'old'"),
                          (["leaks", str(tu.dead_pid())], 1, "no process with pid")):
        r = tu.tool(args)
        check(r.returncode == rc and msg in r.err, "bad input %s" % args, got=r.err)
    cglib.stop(p)
