"""Helpers for the stress tests (test_stress_*.py): run a stress client with and without the
shim, compare what it printed, and read per-process JSON logs strictly (a torn or interleaved
record fails the parse)."""
import collections
import glob
import json
import os
import re
import shutil
import socket
import threading
import time

import cglib
from cglib import check

# Small, exact retry settings: counts of records are predictable and runs stay short.
FAST = {
    "CONNGUARD_LOG_FORMAT": "json",
    "CONNGUARD_JITTER": "none",
    "CONNGUARD_RETRIES": "2",
    "CONNGUARD_BACKOFF_MS": "10",
}


# Sanitizer runs are several times slower: program-side timeouts that must outlast the shim's
# retries are multiplied by this (mk/sanitize.mk sets it).
SLOW = float(os.environ.get("CG_TEST_SLOW", "1"))


def client(name):
    return os.path.join(cglib.CLIENTS, name)


def results(text, prefix="result"):
    """The client's "PREFIX NAME COUNT" lines as {NAME: COUNT}."""
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == prefix:
            out[parts[1]] = int(parts[2])
    return out


class LogDir:
    """A fresh directory for CONNGUARD_LOG=DIR/cg.%p.log (one file per process)."""

    def __init__(self):
        self.path = cglib.tmpdir()

    @property
    def template(self):
        return os.path.join(self.path, "cg.%p.log")

    def files(self):
        return sorted(glob.glob(os.path.join(self.path, "cg.*.log")))

    def records(self):
        """{pid: [record, ...]} from every file. Every line must be one complete JSON object
        with the pid of the file it is in: a torn, interleaved or misplaced record fails."""
        by_pid = {}
        for f in self.files():
            pid = int(re.search(r"cg\.(\d+)\.log$", f).group(1))
            with open(f, "rb") as fh:
                data = fh.read()
            if not data:
                continue
            check(data.endswith(b"\n"), "%s does not end with a newline (torn record)" % f, got=data[-300:])
            recs = []
            for n, line in enumerate(data.split(b"\n")[:-1], 1):
                try:
                    rec = json.loads(line)
                except ValueError:
                    raise cglib.TestFailure("%s:%d is not one JSON object: %r" % (f, n, line[:300]))
                check(isinstance(rec, dict) and {"ts", "pid", "event"} <= set(rec),
                      "%s:%d lacks ts/pid/event" % (f, n), got=line[:300])
                check(rec["pid"] == pid, "%s:%d: record of pid %s in the file of pid %d" % (f, n, rec["pid"], pid))
                if rec["event"] not in cglib.COORD_EVENTS:
                    recs.append(rec)
            by_pid[pid] = recs
        return by_pid

    def all_records(self):
        return [r for recs in self.records().values() for r in recs]

    def wait_for(self, pred, count, timeout=20):
        """Waits (bounded) until `count` records satisfy pred; the files may be half written,
        so only complete lines are parsed."""
        end = time.time() + timeout
        n = 0
        while time.time() < end:
            n = 0
            for f in self.files():
                with open(f, "rb") as fh:
                    for line in fh.read().split(b"\n")[:-1]:
                        if pred(json.loads(line)):
                            n += 1
            if n >= count:
                return n
            time.sleep(0.02)
        raise cglib.TestFailure("only %d of %d awaited records after %ss" % (n, count, timeout))

    def remove(self):
        shutil.rmtree(self.path, ignore_errors=True)


def summary(recs):
    """Counter of (event, action, errno, attempt) tuples: what tests compare exactly. The
    breaker_open/breaker_closed records of coordinated retries (test_coord.py checks those) are
    left out: they depend on how the threads' attempts interleave."""
    return collections.Counter((r["event"], r.get("action"), r.get("errno"), r.get("attempt", r.get("attempts")))
                               for r in recs if not r["event"].startswith("breaker_"))


def run_pair(argv, env, timeout=90, compare=True):
    """Runs argv without the shim, then with it (env added, JSON log per process).
    Returns (shim_process, logdir, base_results, shim_results). Both runs must exit 0 and the
    shim run must write nothing of its own to stderr."""
    base = cglib.run(argv, preload=False, timeout=timeout)
    check(base.returncode == 0, "%s failed without the shim (rc %d)" % (argv, base.returncode), got=base.err)
    logs = LogDir()
    e = dict(FAST)
    e.update(env)
    e["CONNGUARD_LOG"] = logs.template
    p = cglib.run(argv, env=e, timeout=timeout)
    check(p.returncode == 0, "%s failed under the shim (rc %d)" % (argv, p.returncode), got=p.out + p.err)
    check(p.err == "", "the shim wrote to stderr although it logs to a file", got=p.err)
    b, s = results(base.out), results(p.out)
    if compare:
        check(b == s, "results differ: without the shim %s, with it %s" % (b, s))
    return p, logs, b, s


class LateListener:
    """A bound socket that refuses connects until listen() is called; then accepts and closes."""

    def __init__(self):
        self.s = socket.socket()
        self.s.bind(("127.0.0.1", 0))
        self.port = self.s.getsockname()[1]
        self.accepted = 0
        self.t = None

    def start(self):
        self.s.listen(128)
        self.s.settimeout(0.2)
        self.stop_flag = False
        self.t = threading.Thread(target=self._loop, daemon=True)
        self.t.start()

    def _loop(self):
        while not self.stop_flag:
            try:
                c, _ = self.s.accept()
            except OSError:
                continue
            self.accepted += 1
            c.close()

    def close(self):
        if self.t:
            self.stop_flag = True
            self.t.join(5)
        self.s.close()
