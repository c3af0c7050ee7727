"""A program that closes every fd (close() loop, close_range, closefrom, raw SYS_close that no
hook sees), puts its own file on every number that was open, and goes on connecting: the shim
never writes into the program's file, and its log carries on (reopened) with whole records."""
import json
import os

import cglib
from cglib import check
from stresslib import FAST, client, run_pair, summary

THREADS = 8


def _per_connect(n):
    return {("connect_failed", "retry", "ECONNREFUSED", 1): n,
            ("connect_failed", "retry", "ECONNREFUSED", 2): n,
            ("connect_failed", "give_up", "ECONNREFUSED", 3): n}


def _closeall(mode):
    port = cglib.free_port()
    d = cglib.tmpdir()
    sentinel = os.path.join(d, "sentinel")
    p, logs, base, shim = run_pair([client("stress_closeall"), mode, str(THREADS), str(port), sentinel], {})
    check(base == {"before:ECONNREFUSED": THREADS, "after:ECONNREFUSED": THREADS, "sentinel_bytes:0": 1},
          "base run", got=base)
    by_pid = logs.records()
    check(len(by_pid) == 1, "one file", got=logs.files())
    recs = list(by_pid.values())[0]
    check(summary(recs) == _per_connect(2 * THREADS), "records before and after the close-all", got=summary(recs))
    logs.remove()
    os.unlink(sentinel)
    os.rmdir(d)


def test_closeall_close_loop():
    _closeall("loop")


def test_closeall_close_range():
    _closeall("close_range")


def test_closeall_closefrom():
    _closeall("closefrom")


def test_closeall_raw_syscall():
    _closeall("syscall")


def test_closeall_and_stderr_replaced():
    # CONNGUARD_LOG=stderr and the program puts its own file on fd 2 too: the shim's copy of
    # the old stderr is gone, and fd 2 is not the stderr it saw: records after that are
    # dropped, never written into the program's file.
    for mode in ("loop", "syscall"):
        port = cglib.free_port()
        d = cglib.tmpdir()
        sentinel = os.path.join(d, "sentinel")
        p = cglib.run([client("stress_closeall"), mode, str(THREADS), str(port), sentinel, "stderr"], env=FAST)
        check(p.returncode == 0, "client under the shim", got=p.err)
        res = {l.split()[1]: int(l.split()[2]) for l in p.out.splitlines()}
        check(res == {"before:ECONNREFUSED": THREADS, "after:ECONNREFUSED": THREADS, "sentinel_bytes:0": 1},
              "%s: results" % mode, got=p.out)
        recs = [json.loads(l) for l in p.err.splitlines()]
        check(summary(recs) == _per_connect(THREADS), "%s: only the records from before" % mode, got=summary(recs))
        os.unlink(sentinel)
        os.rmdir(d)
