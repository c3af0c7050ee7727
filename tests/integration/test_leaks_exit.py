"""Issue 3: leaked sockets reported at exit, grouped by creation stack (LeakSanitizer-like)."""
import os
import re

import cglib
import leaklib
from cglib import check

PY = os.path.realpath(cglib.PYTHON)


def _pool_checks(p, n, m, all_mode):
    """pool_leak.py N M: a pool thread holds N client connections to the program's own
    listener and M accepted ones; the listener was closed with N - M connections never
    accepted, which the kernel reset. Leaks: the N - M reset clients (dead, their error never
    read). Not leaks: the M established clients and the M accepted sockets, held by the pool,
    counted in the summary and listed with CONNGUARD_LEAKS=all."""
    check(p.returncode == 0 and p.out == "ok\n", "the program's own result changed", got=p.err)
    dead = n - m
    if dead:
        check(len(p.leaks) == 1, "one group of leaks: the reset clients", got=p.err)
        r = p.leaks[0]
        check(r["via"] == "socket" and r["kind"] == "tcp" and r["sockets"] == dead and len(r["fds"]) == dead,
              "reset clients", got=p.err)
        check(r["state"] == ["CLOSED"] and r["reason"] == ["error"] and "reset or failed to connect" in r["hint"],
              "why they are leaks", got=p.err)
        check(len(r["peer"]) == 1 and re.match(r"^127\.0\.0\.1:\d+$", r["peer"][0]), "where they went", got=p.err)
    else:
        check(p.leaks == [], "no leak", got=p.err)
    if not all_mode:
        check(p.held == [], "held sockets are not listed by default", got=p.err)
        if not dead:
            check(p.err == "", "nothing at all when nothing leaked", got=p.err)
            return
    else:
        check(len(p.held) == 2, "CONNGUARD_LEAKS=all: one group of clients and one of accepted sockets", got=p.err)
        g = leaklib.by_via(p.held)
        cl, ac = g["socket"], g["accept"]
        check(cl["sockets"] == m and len(cl["fds"]) == m and ac["sockets"] == m and len(ac["fds"]) == m,
              "held counts", got=p.err)
        fds = cl["fds"] + ac["fds"] + [fd for r in p.leaks for fd in r["fds"]]
        check(len(set(fds)) == n + m and min(fds) >= 3, "fds must be distinct program fds", got=p.err)
        check(cl["kind"] == "tcp" and ac["kind"] == "tcp", "kind", got=p.err)
        check(set(cl["state"]) == set(ac["state"]) == {"ESTABLISHED"} and cl["reason"] == ac["reason"] == ["connected"],
              "held: established", got=p.err)
        # The clients went to the program's own listener: their peer is the accepted side's local.
        check(len(ac["local"]) == 1 and cl["peer"] == ac["local"], "addresses", got=p.err)
        check(len(ac["peer"]) == m and all(x in cl["local"] for x in ac["peer"]), "accepted peers are the clients", got=p.err)
        check(all(r["peer"] == ac["local"] for r in p.leaks), "the reset clients went to the same listener", got=p.err)
        for r in (cl, ac):
            check(0 <= r["age_ms"] < 60000, "age", got=p.err)
            check("open at exit, not counted as leaked" in r["hint"] and "established" in r["hint"], "hint", got=p.err)
            check(len(r["stack"]) >= 5, "a creation stack", got=p.err)
            # Under make check-asan the preloaded ASan runtime intercepts accept(): its frame comes first.
            frames = [f for f in r["stack"] if not (cglib.SAN_PRELOAD and "libasan" in f["module"])]
            check(os.path.realpath(frames[0]["module"]) == PY, "the stack must point into the program (python3)", got=p.err)
        check(cl["stack"] != ac["stack"], "different call sites, different stacks", got=p.err)
    check(len(p.sums) == 1, "one summary", got=p.err)
    s = p.sums[0]
    check((s["groups"], s["sockets"], s["suppressed"], s["not_reported"]) == (1 if dead else 0, dead, 0, 2 * m),
          "summary counts", got=p.err)
    check(s["not_reported_as"] == ["connected=%d" % (2 * m)], "why not reported", got=p.err)
    check("exit_code" not in s, "no exit status change was asked for", got=p.err)


def test_python_pool_leak_text():
    p = leaklib.run([cglib.PYTHON, leaklib.prog("pool_leak.py"), "3", "2"])
    _pool_checks(p, 3, 2, False)
    check("SUMMARY: connguard: 1 socket leaked in 1 group; 4 open sockets at exit not reported: "
          "4 established connections (CONNGUARD_LEAKS=all lists them)" in p.err, "sanitizer-like summary", got=p.err)
    # Text layout: header, hint, frames, all prefixed with ==PID==.
    pid = p.leaks[0]["pid"]
    for line in p.err.splitlines():
        check(line.startswith("==%d== " % pid), "every report line carries the pid prefix", got=p.err)


def test_python_pool_leak_json_all():
    p = leaklib.run([cglib.PYTHON, leaklib.prog("pool_leak.py"), "4", "1"], fmt="json",
                    env={"CONNGUARD_LEAKS": "all"})
    _pool_checks(p, 4, 1, True)
    for r in p.leaks + p.held:
        check(all(isinstance(x, int) for x in r["fds"]), "fds is a JSON array of numbers", got=p.err)
        check(isinstance(r["sockets"], int) and isinstance(r["state"], list), "types", got=p.err)
        for f in r["stack"]:
            check(re.match(r"^0x[0-9a-f]+$", f["pc"]) and re.match(r"^0x[0-9a-f]+$", f["offset"]), "frame fields", got=p.err)
    check(all(line.startswith("{") for line in p.err.splitlines()), "only JSON lines", got=p.err)
    check(p.sums[0]["hint"].endswith("2 established connections (listed above)"), "summary hint", got=p.err)


def test_python_pool_held_only_is_silent():
    # Every connection accepted: nothing is dead, nothing is reported, nothing printed.
    p = leaklib.run([cglib.PYTHON, leaklib.prog("pool_leak.py"), "2", "2"], env={"CONNGUARD_LEAK_EXITCODE": "23"})
    _pool_checks(p, 2, 2, False)


def test_python_subprocess_keeps_parent_tracking():
    # subprocess vfork()s; the child closes every fd >= 3 with close_range before exec. It
    # shares the parent's memory: the parent must still know its sockets.
    p = leaklib.run([cglib.PYTHON, leaklib.prog("pool_leak.py"), "3", "2", "subprocess"], env={"CONNGUARD_LEAKS": "all"})
    _pool_checks(p, 3, 2, True)
    check(len({r["pid"] for r in p.leaks + p.held + p.sums}) == 1, "only the parent reports", got=p.err)


def test_python_close_wait_leak():
    port = cglib.free_port()
    srv = cglib.late_server(port, 0, mode="line", count=2)
    cglib.wait_listening(port)
    p = leaklib.run([cglib.PYTHON, leaklib.prog("closewait_leak.py"), str(port), "2"])
    cglib.stop(srv)
    check(p.returncode == 0 and p.out == "ok\n", "program result", got=p.err)
    check(len(p.leaks) == 1, "one group", got=p.err)
    r = p.leaks[0]
    check(r["sockets"] == 2 and r["via"] == "socket" and r["kind"] == "tcp", "group", got=p.err)
    check(r["state"] == ["CLOSE_WAIT"], "the peer closed: CLOSE_WAIT", got=p.err)
    check(r["peer"] == ["127.0.0.1:%d" % port], "peer", got=p.err)
    check("CLOSE_WAIT" in r["hint"], "the hint explains CLOSE_WAIT", got=p.err)


def _c_checks(p, binary, n, m):
    check(p.returncode == 0 and p.out == "leaked", "program result and its stdout (flushed)", got=p.err)
    g = leaklib.by_via(p.leaks)
    check(set(g) == {"socket", "accept"}, "two groups", got=p.err)
    check(g["socket"]["sockets"] == n and g["accept"]["sockets"] == m, "counts", got=p.err)
    for via, fn in (("socket", "open_client"), ("accept", "take_conn")):
        st = g[via]["stack"]
        check(st[0]["module"] == binary, "frame #0 is in the program", got=p.err)
        check(leaklib.addr2line(binary, st[0]["offset"]) == fn, "frame #0 is %s()" % fn, got=p.err)
        check(leaklib.addr2line(binary, st[1]["offset"]) == "main", "frame #1 is main()", got=p.err)
    s = p.sums[0]
    check((s["groups"], s["sockets"], s["suppressed"]) == (2, n + m, 0), "summary", got=p.err)


def test_c_leaks_return_from_main():
    b = leaklib.client("leak_clients")
    _c_checks(leaklib.run([b, "3", "2"]), b, 3, 2)


def test_c_leaks_exit_call_json():
    b = leaklib.client("leak_clients")
    _c_checks(leaklib.run([b, "2", "2", "exit"], fmt="json"), b, 2, 2)


def test_fork_child_reports_only_its_own():
    p = leaklib.run([leaklib.client("leak_fork")])
    check(p.returncode == 0, "program result", got=p.err)
    lines = dict((l.split()[0], l.split()[1:]) for l in p.out.splitlines())
    ppid, a, b = (int(x) for x in lines["parent"])
    cpid, x = (int(v) for v in lines["child"])
    pl, ps = leaklib.report(p.err, pid=ppid)
    cl, cs = leaklib.report(p.err, pid=cpid)
    check(len(cl) == 1 and cl[0]["fds"] == [x] and cl[0]["kind"] == "tcp6", "the child reports its own socket only", got=p.err)
    check(cs and cs[0]["sockets"] == 1, "child summary", got=p.err)
    check(len(pl) == 1 and pl[0]["fds"] == [a] and pl[0]["kind"] == "tcp", "the parent reports its remaining socket", got=p.err)
    check(ps and ps[0]["sockets"] == 1, "parent summary", got=p.err)
    check(b != a, "sanity")


def test_threads_exact_count():
    # 4 threads x 2000 rounds of socket/dup/socketpair/close while each leaks 5 sockets.
    b = leaklib.client("leak_threads")
    p = leaklib.run([b, "4", "2000", "5"], fmt="json")
    check(p.returncode == 0 and p.out == "done\n", "program result", got=p.err)
    check(len(p.leaks) == 1, "only the deliberate leaks", got=p.err)
    r = p.leaks[0]
    check(r["sockets"] == 20 and len(set(r["fds"])) == 20 and r["kind"] == "tcp", "exact count", got=p.err)
    check(leaklib.addr2line(b, r["stack"][0]["offset"]) == "leak_here", "stack", got=p.err)
    check(p.sums[0]["sockets"] == 20, "summary", got=p.err)


def test_no_stacks_still_reports():
    p = leaklib.run([leaklib.client("leak_clients"), "2", "1"], env={"CONNGUARD_STACK_DEPTH": "0"})
    check(p.returncode == 0 and p.out == "leaked", "program result", got=p.err)
    g = leaklib.by_via(p.leaks)
    check(set(g) == {"socket", "accept"} and g["socket"]["sockets"] == 2 and g["accept"]["sockets"] == 1,
          "without stacks, leaks are grouped by how they were obtained", got=p.err)
    check(all(r["stack"] == [] for r in p.leaks), "no frames", got=p.err)


def test_disable_means_nothing():
    p = leaklib.run([leaklib.client("leak_clients"), "2", "1"],
                    env={"CONNGUARD_DISABLE": "1", "CONNGUARD_LEAK_EXITCODE": "23"})
    check(p.returncode == 0 and p.err == "" and p.out == "leaked", "CONNGUARD_DISABLE=1: no tracking", got=p.err)
