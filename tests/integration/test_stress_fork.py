"""Fork storms: children (and grandchildren) forked while the parent's threads are inside
connect retries and log writes must not deadlock, must log to their own %p file (or append
whole records to a shared one), and must see the errno they would see without the shim."""
import json
import os

import cglib
import stresslib
from cglib import check
from stresslib import client, run_pair, summary

CHILDREN, THREADS, PER = 48, 8, 10


def _shm_path(pid):
    return "/dev/shm/connguard.%d.%d" % (os.getuid(), pid)


def _per_connect(n):
    return {("connect_failed", "retry", "ECONNREFUSED", 1): n,
            ("connect_failed", "retry", "ECONNREFUSED", 2): n,
            ("connect_failed", "give_up", "ECONNREFUSED", 3): n}


def _storm(how, leak=False):
    port = cglib.free_port()
    argv = [client("stress_fork"), str(CHILDREN), str(THREADS), str(PER), str(port), how] + (["leak"] if leak else [])
    p, logs, base, shim = run_pair(argv, {}, timeout=120)
    check(base == {"parent:ECONNREFUSED": THREADS * PER, "child:ECONNREFUSED": CHILDREN,
                   "grandchild:ECONNREFUSED": CHILDREN, "status:0": CHILDREN}, "base run", got=base)
    by_pid = logs.records()
    try:
        check(len(by_pid) == 1 + 2 * CHILDREN, "one log file per process", got=sorted(by_pid))
        parent = [pid for pid, recs in by_pid.items()
                  if len([r for r in recs if r["event"] == "connect_failed"]) == 3 * THREADS * PER]
        check(len(parent) == 1, "the parent's file holds its %d records" % (3 * THREADS * PER),
              got={pid: len(r) for pid, r in by_pid.items()})
        for pid, recs in by_pid.items():
            mine = THREADS * PER if pid == parent[0] else 1
            conn = [r for r in recs if r["event"] == "connect_failed"]
            check(summary(conn) == _per_connect(mine), "%d: connect records" % pid, got=summary(conn))
            leaks = [(r["event"], r.get("sockets"), r.get("kind")) for r in recs if r["event"] != "connect_failed"]
            if not leak:
                want = []
            elif pid == parent[0]:
                want = [("leak", THREADS, "tcp"), ("leak_summary", THREADS, None)]
            else:
                want = [("leak", 1, "tcp6"), ("leak_summary", 1, None)]
            check(leaks == want, "%d: exactly its own leaked sockets" % pid, got=leaks)
        return by_pid
    finally:
        logs.remove()


def test_fork_storm_exit():
    by_pid = _storm("exit")
    # exit() runs the shim's destructor: no counter segment is left behind.
    left = [pid for pid in by_pid if os.path.exists(_shm_path(pid))]
    check(left == [], "counter segments left in /dev/shm by exited processes", got=left)


def test_fork_storm_with_leaks():
    # Leak tracking under the same storm: every process reports exactly the sockets it left
    # open itself (never its parent's, which it inherited), in its own %p file.
    by_pid = _storm("exit", leak=True)
    left = [pid for pid in by_pid if os.path.exists(_shm_path(pid))]
    check(left == [], "counter segments left in /dev/shm by exited processes", got=left)


def test_fork_storm_underscore_exit():
    by_pid = _storm("_exit")
    # _exit() skips destructors: each child leaves its counter segment for `connguard clean`
    # (a documented limit). Remove them here so the suite leaves nothing behind.
    for pid in by_pid:
        try:
            os.unlink(_shm_path(pid))
        except FileNotFoundError:
            pass


def test_fork_storm_shared_log_file():
    # Every process appends to one file (no %p): O_APPEND and one write() per record keep
    # records whole across processes and threads.
    port = cglib.free_port()
    d = cglib.tmpdir()
    log = os.path.join(d, "shared.log")
    env = dict(stresslib.FAST, CONNGUARD_LOG=log)
    p = cglib.run([client("stress_fork"), str(CHILDREN), str(THREADS), str(PER), str(port), "exit"], env=env, timeout=120)
    check(p.returncode == 0 and p.err == "", "client under the shim", got=p.out + p.err)
    data = open(log, "rb").read()
    check(data.endswith(b"\n"), "log ends with a whole record", got=data[-200:])
    recs = []
    for line in data.split(b"\n")[:-1]:
        try:
            recs.append(json.loads(line))
        except ValueError:
            raise cglib.TestFailure("torn or interleaved record: %r" % line[:300])
    n = THREADS * PER + 2 * CHILDREN
    check(summary(recs) == _per_connect(n), "records", got=summary(recs))
    check(len({r["pid"] for r in recs}) == 1 + 2 * CHILDREN, "records from every process")
    os.unlink(log)
    os.rmdir(d)
