"""Helpers for the connect tests: log files per process, exact record checks, servers that
start listening after a known number of failed attempts.

The tests run with CONNGUARD_JITTER=none so that every delay is known: delay of retry n is
min(BACKOFF_MS * 2^(n-1), BACKOFF_MAX_MS).
"""
import datetime
import glob
import json
import os
import re
import select
import shutil
import socket
import subprocess
import time

import cglib
from cglib import check

BACKOFF = 100          # ms: first delay; the trigger server has >= 100 ms to start listening
BACKOFF_MAX = 400
RETRIES = 3
# Late-server tests: the server must start listening between a failure record and the next
# attempt. The machine may be busy (load average above the core count): leave it 300 ms.
LATE_BACKOFF = 300
LATE_ENV = {"CONNGUARD_BACKOFF_MS": LATE_BACKOFF, "CONNGUARD_BACKOFF_MAX_MS": LATE_BACKOFF}

RETRY_KEYS = {"ts", "pid", "event", "fd", "dst", "errno", "attempt", "action", "delay_ms", "elapsed_ms", "hint", "stack"}
GIVEUP_KEYS = {"ts", "pid", "event", "fd", "dst", "errno", "attempt", "action", "reason", "elapsed_ms", "hint", "stack"}
RECOVERED_KEYS = {"ts", "pid", "event", "fd", "dst", "attempts", "elapsed_ms"}

HINTS = {
    "ECONNREFUSED": "nothing is listening on this address and port",
    "ETIMEDOUT": "no answer to the SYN",
}


def client(name):
    return os.path.join(cglib.CLIENTS, name)


def delay_of(n, backoff=BACKOFF, cap=BACKOFF_MAX):
    return min(backoff * 2 ** (n - 1), cap)


class LogDir:
    """A temporary directory for CONNGUARD_LOG=<dir>/log.%p; removed by close()."""

    def __init__(self):
        self.path = cglib.tmpdir()

    def env(self, **extra):
        e = {"CONNGUARD_LOG": os.path.join(self.path, "log.%p"), "CONNGUARD_LOG_FORMAT": "json",
             "CONNGUARD_JITTER": "none", "CONNGUARD_BACKOFF_MS": BACKOFF,
             "CONNGUARD_BACKOFF_MAX_MS": BACKOFF_MAX, "CONNGUARD_RETRIES": RETRIES}
        e.update(extra)
        if "CONNGUARD_BACKOFF_MAX_MS" not in extra:
            try:   # a larger first delay raises our cap too, rather than draw a warning
                e["CONNGUARD_BACKOFF_MAX_MS"] = max(int(e["CONNGUARD_BACKOFF_MS"]), BACKOFF_MAX)
            except ValueError:
                pass
        return e

    def glob(self):
        return os.path.join(self.path, "log.*")

    def files(self):
        return sorted(glob.glob(self.glob()))

    def by_pid(self):
        """{pid: [records]} from log.<pid> files. Every line must be one whole JSON object."""
        out = {}
        for f in self.files():
            pid = int(f.rsplit(".", 1)[1])
            with open(f, "rb") as fh:
                data = fh.read()
            check(data == b"" or data.endswith(b"\n"), "log %s does not end with a newline" % f, got=data[-200:])
            recs = []
            for line in data.decode("utf-8").splitlines():
                try:
                    rec = json.loads(line)
                except ValueError:
                    raise cglib.TestFailure("not a JSON line in %s: %r" % (f, line[:300]))
                check(isinstance(rec, dict), "record is not an object", got=line)
                check(rec.get("pid") == pid, "record pid %s in log of pid %d" % (rec.get("pid"), pid), got=line)
                if rec.get("event") not in cglib.COORD_EVENTS:
                    recs.append(rec)
            out[pid] = recs
        return out

    def records(self):
        """All records of the one process that logged; fails when several did."""
        d = self.by_pid()
        check(len(d) == 1, "expected one log file, got %d" % len(d), got=self.files())
        return list(d.values())[0]

    def close(self):
        shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


def trigger_server(port, logdir, after, mode="line", host="127.0.0.1", count=1):
    """A server that starts listening once `after` connect_failed records are in the logs:
    attempt after+1 is the first to find it. Returns once the server is watching."""
    cmd = [cglib.PYTHON, cglib.SERVERS, mode, host, str(port), "after:%s:%d" % (logdir.glob(), after), str(count)]
    p = cglib.spawn(cmd, stdout=subprocess.PIPE)
    r, _, _ = select.select([p.stdout], [], [], 10)
    # host "unix:/path": a unix stream socket at that path
    check(r and p.stdout.readline().strip() == b"waiting", "trigger server did not start")
    return p


def server_now(port, mode="line", host="127.0.0.1", count=1):
    p = cglib.spawn([cglib.PYTHON, cglib.SERVERS, mode, host, str(port), "0", str(count)], stdout=subprocess.DEVNULL)
    cglib.wait_listening(port, host)
    return p


_TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def check_ts(rec):
    ts = rec["ts"]
    check(_TS.match(ts), "bad ts %r" % ts)
    t = datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)
    skew = abs((datetime.datetime.now(datetime.timezone.utc) - t).total_seconds())
    check(skew < 120, "ts %s is %ds away from now" % (ts, skew))


def check_stack(rec, want_module=None):
    st = rec["stack"]
    check(isinstance(st, list) and st, "empty stack", got=rec)
    base = {}
    for f in st:
        check(set(f) <= {"pc", "module", "offset", "symbol"} and {"pc", "module", "offset"} <= set(f),
              "bad frame keys", got=f)
        check(re.match(r"^0x[0-9a-f]+$", f["pc"]) and re.match(r"^0x[0-9a-f]+$", f["offset"]), "bad pc/offset", got=f)
        check(isinstance(f["module"], str) and f["module"], "bad module", got=f)
        check("libconnguard" not in f["module"], "our own frame in the stack", got=st)
        pc, off = int(f["pc"], 16), int(f["offset"], 16)
        if f["module"] != "?":
            # One load base per module: pc - offset must agree across its frames.
            b = base.setdefault(f["module"], pc - off)
            check(b == pc - off, "inconsistent offsets for %s" % f["module"], got=st)
    if want_module:
        check(any(want_module in f["module"] for f in st), "no frame in %s" % want_module, got=st)


def check_failures(recs, n, errno="ECONNREFUSED", dst=None, last="retry", reason="retries_exhausted",
                   backoff=BACKOFF, cap=BACKOFF_MAX, module=None, fd=None, first_attempt=1):
    """recs are exactly n connect_failed records, attempts first_attempt.., every one but the
    last with action retry and the exact delay; the last with `last` (retry or give_up)."""
    check(len(recs) == n, "expected %d connect_failed records, got %d" % (n, len(recs)), got=recs)
    prev = None
    for i, r in enumerate(recs):
        attempt = first_attempt + i
        check(r["event"] == "connect_failed", "not connect_failed", got=r)
        check_ts(r)
        check(r["attempt"] == attempt, "attempt %s, want %d" % (r["attempt"], attempt), got=r)
        check(r["errno"] == errno, "errno %s, want %s" % (r["errno"], errno), got=r)
        if dst:
            check(r["dst"] == dst, "dst %s, want %s" % (r["dst"], dst), got=r)
        if fd is not None:
            check(r["fd"] == fd, "fd %s, want %s" % (r["fd"], fd), got=r)
        check(isinstance(r["fd"], int) and r["fd"] >= 0, "bad fd", got=r)
        if errno in HINTS:
            check(HINTS[errno] in r["hint"], "hint does not explain %s" % errno, got=r)
        action = last if i == n - 1 else "retry"
        r = _no_pystack(r, module)
        check(r["action"] == action, "action %s, want %s" % (r["action"], action), got=r)
        if action == "retry":
            check(set(r) == RETRY_KEYS, "retry record keys", got=sorted(r))
            check(r["delay_ms"] == delay_of(attempt, backoff, cap), "delay %s for attempt %d" % (r["delay_ms"], attempt), got=r)
        else:
            check(set(r) == GIVEUP_KEYS, "give_up record keys", got=sorted(r))
            if reason:
                check(r["reason"] == reason, "reason %s, want %s" % (r["reason"], reason), got=r)
        if prev is not None:
            check(r["fd"] == prev["fd"] and r["dst"] == prev["dst"], "fd/dst changed between attempts", got=recs)
            # The next attempt starts only after the announced delay.
            check(r["elapsed_ms"] >= prev["elapsed_ms"] + prev["delay_ms"] - 2, "retried before its delay", got=recs)
        check_stack(r, module)
        prev = r


def _no_pystack(r, module):
    """A Python client's records carry its Python frames (test_python_stacks checks them): the
    record without them, after checking that they are there exactly for python."""
    py = "pystack" in r
    if module is not None:
        check(py == (module == "python3"), "pystack exactly in a Python program's records", got=r)
    if py:
        check(isinstance(r["pystack"], list) and r["pystack"], "pystack: a list of frames", got=r)
        r = {k: v for k, v in r.items() if k != "pystack"}
    return r


def check_recovered(rec, attempts, dst=None, fd=None):
    check(rec["event"] == "connect_recovered", "not connect_recovered", got=rec)
    rec = _no_pystack(rec, None)
    check(set(rec) == RECOVERED_KEYS, "recovered record keys", got=sorted(rec))
    check_ts(rec)
    check(rec["attempts"] == attempts, "attempts %s, want %d" % (rec["attempts"], attempts), got=rec)
    if dst:
        check(rec["dst"] == dst, "dst", got=rec)
    if fd is not None:
        check(rec["fd"] == fd, "fd", got=rec)


def check_late(recs, failed, dst, errno="ECONNREFUSED", module=None, backoff=LATE_BACKOFF, cap=LATE_BACKOFF):
    """`failed` retried failures, then one connect_recovered with attempts = failed + 1.
    The trigger server starts listening after the `failed`-th record; on a machine loaded far
    beyond its cores it may miss the next attempt by a few hundred ms, never be early: one or
    two more failures are accepted, and the records must then agree with that count exactly."""
    n = len(recs) - 1
    check(failed <= n <= failed + 2, "expected %d failures + 1 recovery, got %d records" % (failed, len(recs)), got=recs)
    failed = n
    check_failures(recs[:-1], failed, errno=errno, dst=dst, last="retry", module=module, backoff=backoff, cap=cap)
    check_recovered(recs[-1], failed + 1, dst=dst, fd=recs[0]["fd"])
    check(recs[-1]["elapsed_ms"] >= recs[-2]["elapsed_ms"] + recs[-2]["delay_ms"] - 2, "recovered too early", got=recs)


def check_never(recs, dst, errno="ECONNREFUSED", module=None):
    """RETRIES + 1 failures, the last one a give_up."""
    check_failures(recs, RETRIES + 1, errno=errno, dst=dst, last="give_up", module=module)


def dst_of(host, port):
    return "[%s]:%d" % (host, port) if ":" in host else "%s:%d" % (host, port)


def timed_run(cmd, **kw):
    t = time.monotonic()
    p = cglib.run(cmd, **kw)
    p.elapsed = time.monotonic() - t
    return p


def have_ipv6():
    try:
        s = socket.socket(socket.AF_INET6)
        s.bind(("::1", 0))
        s.close()
        return True
    except OSError:
        return False


def need_ipv6():
    if not have_ipv6():
        raise cglib.Skip("no IPv6 loopback")
