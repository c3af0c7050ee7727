"""Helpers for the leak tests: run a program under the shim and read its leak report in
either log format, normalised to the same dicts."""
import os
import re
import subprocess

import cglib
from cglib import check

HERE = os.path.dirname(os.path.abspath(__file__))
PROGS = os.path.join(HERE, "leakprogs")
FRAME = re.compile(r"^#(\d+) (0x[0-9a-f]+) in (\S+) \((.*)\+(0x[0-9a-f]+)\)$")


def prog(name):
    return os.path.join(PROGS, name)


def client(name):
    return os.path.join(cglib.CLIENTS, name)


def _list(v):
    if isinstance(v, list):
        return v
    return [x for x in v.split(",") if x] if v else []


def _norm_text(rec):
    out = dict(rec)
    for k in ("sockets", "groups", "suppressed", "not_reported", "age_ms", "exit_code", "pid"):
        if k in out:
            out[k] = int(out[k])
    for k in ("fds", "state", "reason", "local", "peer", "suppressions", "not_reported_as"):
        if k in out:
            out[k] = _list(out[k])
    if "fds" in out:
        out["fds"] = [int(x) for x in out["fds"]]
    frames = []
    for line in rec.get("stack", []):
        m = FRAME.match(line)
        check(m, "malformed frame line %r" % line)
        sym = m.group(3)
        frames.append({"pc": m.group(2), "symbol": None if sym == "??" else sym.rsplit("+", 1)[0],
                       "module": m.group(4), "offset": m.group(5)})
    out["stack"] = frames
    return out


def _norm_json(rec):
    out = dict(rec)
    out["stack"] = [{"pc": f["pc"], "symbol": f.get("symbol"), "module": f["module"],
                     "offset": f["offset"]} for f in rec.get("stack", [])]
    return out


def report(text, fmt="text", pid=None, held=False):
    """(leak records, summary records) found in a log, optionally of one pid only. held: the
    "open_at_exit" records (sockets open at exit that are not leaks, CONNGUARD_LEAKS=all)
    count as leak records too."""
    if fmt == "json":
        recs = [_norm_json(r) for r in cglib.json_records(text)]
    else:
        recs = [_norm_text(r) for r in cglib.text_records(text)]
    if pid is not None:
        recs = [r for r in recs if r["pid"] == pid]
    leaks = [r for r in recs if r["event"] == "leak" or (held and r["event"] == "open_at_exit")]
    sums = [r for r in recs if r["event"] == "leak_summary"]
    return leaks, sums


def run(cmd, env=None, fmt="text", timeout=60, input=None):
    """p.leaks: the leak records; p.held: the open_at_exit ones (CONNGUARD_LEAKS=all)."""
    e = dict(env or {})
    if fmt == "json":
        e["CONNGUARD_LOG_FORMAT"] = "json"
    p = cglib.run(cmd, env=e, timeout=timeout, input=input)
    p.leaks, p.sums = report(p.err, fmt)
    allrecs, _ = report(p.err, fmt, held=True)
    p.held = [r for r in allrecs if r["event"] == "open_at_exit"]
    return p


def by_via(leaks):
    out = {}
    for r in leaks:
        check(r["via"] not in out, "two groups obtained by %s" % r["via"], got=leaks)
        out[r["via"]] = r
    return out


def addr2line(binary, offset):
    """Function name at a return address offset (minus one: inside the call)."""
    off = int(offset, 16) - 1
    p = subprocess.run(["addr2line", "-f", "-e", binary, hex(off)], capture_output=True, timeout=30)
    return p.stdout.decode().split("\n")[0]
