"""Exec chains: execv of itself (same pid), posix_spawn and vfork+exec. Every image connects,
and reports the fds it inherited: the shim's log fd and stderr copy are close-on-exec, so an
image never inherits them, and a new image logs (to its own %p file, or appended to the same
pid's file) exactly its own records."""
import json

import cglib
from cglib import check
from stresslib import FAST, client, run_pair, summary

DEPTH = 5


def _per_connect(n):
    return {("connect_failed", "retry", "ECONNREFUSED", 1): n,
            ("connect_failed", "retry", "ECONNREFUSED", 2): n,
            ("connect_failed", "give_up", "ECONNREFUSED", 3): n}


def _chain(mode):
    port = cglib.free_port()
    p, logs, base, shim = run_pair([client("stress_spawn"), mode, str(DEPTH), str(port)], {})
    check(len(base) == DEPTH + 1 and all(":ECONNREFUSED:" in k and "stderr_dups=0:log_fds=0" in k for k in base),
          "every level refused, nothing unexpected inherited", got=base)
    by_pid = logs.records()
    logs.remove()
    return by_pid


def test_exec_chain_same_pid():
    by_pid = _chain("exec")
    check(len(by_pid) == 1, "execv keeps the pid: one file", got=sorted(by_pid))
    recs = list(by_pid.values())[0]
    check(summary(recs) == _per_connect(DEPTH + 1), "records of every image", got=summary(recs))


def test_posix_spawn_chain():
    by_pid = _chain("spawn")
    check(len(by_pid) == DEPTH + 1, "one file per spawned process", got=sorted(by_pid))
    for pid, recs in by_pid.items():
        check(summary(recs) == _per_connect(1), "records of %d" % pid, got=summary(recs))


def test_vfork_exec_chain():
    by_pid = _chain("vfork")
    check(len(by_pid) == DEPTH + 1, "one file per process", got=sorted(by_pid))
    for pid, recs in by_pid.items():
        check(summary(recs) == _per_connect(1), "records of %d" % pid, got=summary(recs))


def test_exec_chains_log_to_stderr():
    # The stderr copy the shim writes through is close-on-exec: no image sees an extra fd on
    # its stderr, and stderr holds nothing but whole records.
    for mode in ("exec", "spawn", "vfork"):
        port = cglib.free_port()
        argv = [client("stress_spawn"), mode, str(DEPTH), str(port)]
        base = cglib.run(argv, preload=False)
        p = cglib.run(argv, env=FAST)
        check(p.returncode == 0 and p.out == base.out, "%s: same output as without the shim" % mode,
              got=base.out + "\n---\n" + p.out + p.err)
        recs = []
        for line in p.err.splitlines():
            try:
                recs.append(json.loads(line))
            except ValueError:
                raise cglib.TestFailure("%s: stderr line is not a whole record: %r" % (mode, line[:300]))
        check(summary(recs) == _per_connect(DEPTH + 1), "%s: records" % mode, got=summary(recs))
