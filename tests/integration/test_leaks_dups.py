"""Sockets obtained by socketpair() (both ends) and by copies of a tracked socket: dup2(),
dup3(), dup(), fcntl(F_DUPFD_CLOEXEC). None is a leak (a socketpair held at both ends, a
connectionless socket): by default nothing is printed; CONNGUARD_LEAKS=all lists each at exit,
one group per creation site, with its exact count, fds, kind, via, why it is not a leak and the
stack of the function that obtained it (client tests/clients/leak_dups.c, JSON log in a file
per process)."""
import re

import cglib
import cgconn
import leaklib
from cglib import check
from cgconn import LogDir

LEAK_KEYS = {"ts", "pid", "event", "sockets", "fds", "kind", "via", "state", "reason", "age_ms", "local", "peer", "hint",
             "stack"}
SUMMARY_KEYS = {"ts", "pid", "event", "groups", "sockets", "suppressed", "not_reported", "not_reported_as", "hint"}
OUT = re.compile(r"^source=(\d+) pair=([\d,]+) dup2=(\d+) dup3=(\d+) dup=(\d+) fcntl=(\d+)\n$")


def _run(n, leaks="all", **env):
    """Runs leak_dups N under the shim, JSON log to <dir>/log.%p: (binary, fds it printed,
    open_at_exit records and summaries as leaklib normalises them, the records as written)."""
    b = leaklib.client("leak_dups")
    with LogDir() as lg:
        p = cglib.run([b, str(n)], env=lg.env(CONNGUARD_LEAKS=leaks, **env))
        check(p.returncode == 0 and p.err == "", "leak_dups: exit status and stderr", got=p.out + p.err)
        m = OUT.match(p.out)
        check(m, "leak_dups output", got=p.out)
        fds = {"source": int(m.group(1)), "pair": [int(x) for x in m.group(2).split(",")],
               "dup2": int(m.group(3)), "dup3": int(m.group(4)), "dup": int(m.group(5)), "fcntl": int(m.group(6))}
        check(fds["dup2"] == 300 and fds["dup3"] == 301 and fds["fcntl"] >= 400 and len(fds["pair"]) == 2 * n,
              "the client's fds", got=p.out)
        logs = lg.by_pid()            # every line one whole JSON object of the file's pid
        if leaks == "exit":
            check(not any(logs.values()), "not a leak among them: nothing written", got=logs)
            return b, fds, [], [], []
        check(len(logs) == 1, "one process, one log", got=logs)
        pid, recs = list(logs.items())[0]
        with open(lg.files()[0]) as f:
            leaks, sums = leaklib.report(f.read(), "json", pid=pid, held=True)
        check(len(leaks) + len(sums) == len(recs), "nothing but the leak report in the log", got=recs)
    stacks = env.get("CONNGUARD_STACK_DEPTH", 1) != 0
    for r in recs:   # as written, before leaklib's normalisation
        keys = (LEAK_KEYS if stacks else LEAK_KEYS - {"stack"}) if r["event"] == "open_at_exit" else SUMMARY_KEYS
        check(set(r) == keys, "%s record keys" % r["event"], got=sorted(r))
        cgconn.check_ts(r)
    check(recs and recs[-1]["event"] == "leak_summary", "the summary is the last record", got=recs)
    return b, fds, leaks, sums, recs


def _frames(r):
    # Under make check-asan the preloaded ASan runtime intercepts socketpair(): its frame comes first.
    return [f for f in r["stack"] if not (cglib.SAN_PRELOAD and "libasan" in f["module"])]


def test_socketpair_and_copies_are_not_leaks():
    _run(3, leaks="exit")


def test_socketpair_and_dup_copies_listed_per_site():
    n = 3
    b, fds, leaks, sums, recs = _run(n)
    src_addr = None
    want = {   # creation site: (via, kind, fds)
        "leak_pair": ("socketpair", "unix-stream", fds["pair"]),
        "open_source": ("socket", "udp", [fds["source"]]),
        "leak_dup2": ("dup", "udp", [fds["dup2"]]),
        "leak_dup3": ("dup", "udp", [fds["dup3"]]),
        "leak_dup": ("dup", "udp", [fds["dup"]]),
        "leak_fcntl": ("dup", "udp", [fds["fcntl"]]),
    }
    got = {}
    for r in leaks:
        frames = _frames(r)
        check(len(frames) >= 2 and frames[0]["module"] == b, "frame #0 is in the program", got=r)
        site = leaklib.addr2line(b, frames[0]["offset"])
        check(site in want and site not in got, "one group per creation site (frame #0 %s)" % site, got=leaks)
        check(leaklib.addr2line(b, frames[1]["offset"]) == "main", "frame #1 of %s is main()" % site, got=r)
        got[site] = r
    check(set(got) == set(want), "a group for every creation site", got=sorted(got))
    check(leaks[0] is got["leak_pair"], "the largest group (socketpair) first", got=[r["via"] for r in leaks])
    for site, (via, kind, fl) in want.items():
        r = got[site]
        what = "%s: " % site
        check(r["via"] == via and r["kind"] == kind, what + "via and kind", got=r)
        check(r["sockets"] == len(fl) and sorted(r["fds"]) == sorted(fl), what + "count and fds", got=r)
        check(r["state"] == ["CONNECTED"], what + "state", got=r)
        check(isinstance(r["age_ms"], int) and 0 <= r["age_ms"] < 60000, what + "age", got=r)
        noun = "socket" if len(fl) == 1 else "sockets"
        why = ("%d socketpair ends held with their other ends" % len(fl) if via == "socketpair"
               else "1 connectionless socket")
        check(r["event"] == "open_at_exit" and r["reason"] == (["socketpair"] if via == "socketpair" else ["connectionless"]),
              what + "not a leak, and why", got=r)
        check(r["hint"] == "%d %s open at exit, not counted as leaked (CONNGUARD_LEAKS=all): %s; obtained at:"
              % (len(fl), noun, why), what + "hint", got=r)
        if via == "socketpair":
            check(r["local"] == ["unix:(unnamed)"] and r["peer"] == ["unix:(unnamed)"], what + "addresses", got=r)
        else:
            # The source is bound to 127.0.0.1 and connected to itself; its copies are the same socket.
            check(len(r["local"]) == 1 and re.match(r"^127\.0\.0\.1:\d+$", r["local"][0]) and r["peer"] == r["local"],
                  what + "addresses", got=r)
            src_addr = src_addr or r["local"]
            check(r["local"] == src_addr, what + "the same socket as the source", got=r)
    # Not reported: the copy onto stdin (fd 0) and the dup of /dev/null.
    reported = sorted(fd for r in leaks for fd in r["fds"])
    check(reported == sorted([fds["source"]] + fds["pair"] + [fds[k] for k in ("dup2", "dup3", "dup", "fcntl")]),
          "exactly the leaked sockets are reported", got=reported)
    check(len(sums) == 1, "one summary", got=recs)
    s = sums[0]
    check((s["groups"], s["sockets"], s["suppressed"], s["not_reported"]) == (0, 0, 0, 2 * n + 5), "summary counts", got=s)
    check(s["not_reported_as"] == ["socketpair=%d" % (2 * n), "connectionless=5"], "summary: why", got=s)
    check(s["hint"] == "SUMMARY: connguard: 0 sockets leaked in 0 groups; %d open sockets at exit not reported: "
          "%d socketpair ends held with their other ends, 5 connectionless sockets (listed above)" % (2 * n + 5, 2 * n),
          "summary hint", got=s)


def test_without_stacks_copies_group_by_how_obtained():
    """CONNGUARD_STACK_DEPTH=0: the four copies (dup2, dup3, dup, fcntl) are one group, via=dup."""
    n = 1
    b, fds, leaks, sums, recs = _run(n, CONNGUARD_STACK_DEPTH=0)
    g = leaklib.by_via(leaks)
    check(set(g) == {"socket", "socketpair", "dup"}, "groups by how the sockets were obtained", got=leaks)
    check(sorted(g["dup"]["fds"]) == sorted(fds[k] for k in ("dup2", "dup3", "dup", "fcntl")) and g["dup"]["sockets"] == 4,
          "every copy", got=g["dup"])
    check(sorted(g["socketpair"]["fds"]) == sorted(fds["pair"]) and g["socketpair"]["sockets"] == 2, "both ends", got=g["socketpair"])
    check(g["socket"]["fds"] == [fds["source"]], "the source", got=g["socket"])
    check(all(r["stack"] == [] for r in leaks), "no frames", got=leaks)
    s = sums[0]
    check((s["groups"], s["sockets"], s["suppressed"], s["not_reported"]) == (0, 0, 0, 7), "summary counts", got=s)
