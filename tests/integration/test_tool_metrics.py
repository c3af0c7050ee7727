"""`connguard metrics PID...`: Prometheus text exposition format, exact values."""
import math
import os
import re
import shutil
import subprocess

import cglib
import toolutil as tu
from cglib import check

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\\\|\\"|\\n)*"'
SAMPLE = re.compile(r"^(%s)(\{(?:%s)(?:,%s)*\})? (\S+)$" % (NAME, LABEL, LABEL))
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


def strict_check(text):
    """The rules promtool's `check metrics` applies, and a few of the format's own: returns
    {(name, frozenset(labels)): value}. Raises TestFailure on the first problem."""
    check(text.endswith("\n"), "must end with a newline")
    families = {}
    current = None
    seen_families = []
    samples = {}
    for n, line in enumerate(text.splitlines(), 1):
        where = "line %d: %r" % (n, line)
        check(line.strip() != "", "blank line: " + where)
        if line.startswith("# HELP "):
            name, _, help_ = line[7:].partition(" ")
            check(re.fullmatch(NAME, name) and help_, "bad HELP: " + where)
            check(name not in seen_families, "family listed twice: " + where)
            seen_families.append(name)
            families[name] = {"help": help_, "type": None}
            current = name
            continue
        if line.startswith("# TYPE "):
            name, _, typ = line[7:].partition(" ")
            check(name == current and families[name]["type"] is None and typ in TYPES, "bad TYPE: " + where)
            families[name]["type"] = typ
            continue
        check(not line.startswith("#"), "stray comment: " + where)
        m = SAMPLE.match(line)
        check(m, "bad sample syntax: " + where)
        name, labels, value = m.group(1), m.group(2) or "", m.group(3)
        base = current
        typ = families[base]["type"] if base else None
        check(base and typ, "sample before its HELP/TYPE: " + where)
        if typ == "histogram":
            check(name in (base + "_bucket", base + "_sum", base + "_count"), "histogram sample name: " + where)
        else:
            check(name == base, "sample outside its family: " + where)
        if typ == "counter":
            check(name.endswith("_total"), "counter without _total: " + where)
        check(not base.endswith("_total") or typ == "counter", "_total on a non-counter: " + where)
        v = float(value)  # raises on garbage
        check(not math.isnan(v), "NaN: " + where)
        if typ in ("counter", "histogram"):
            check(v >= 0, "negative counter: " + where)
        lab = frozenset(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', labels))
        check(len(lab) == labels.count('="'), "duplicate label: " + where)
        key = (name, lab)
        check(key not in samples, "duplicate series: " + where)
        samples[key] = v
    # Histograms: cumulative buckets ending at +Inf == _count, with a _sum.
    for base, f in families.items():
        if f["type"] != "histogram":
            continue
        series = {}
        for (name, lab), v in samples.items():
            if name == base + "_bucket":
                d = dict(lab)
                le = d.pop("le")
                series.setdefault(frozenset(d.items()), []).append((math.inf if le == "+Inf" else float(le), v))
        for lab, buckets in series.items():
            buckets.sort()
            check(buckets[-1][0] == math.inf, "no +Inf bucket for %s %s" % (base, lab))
            vals = [v for _, v in buckets]
            check(vals == sorted(vals), "buckets not cumulative for %s" % base)
            check(samples.get((base + "_count", lab)) == vals[-1], "_count != +Inf bucket for %s" % base)
            check((base + "_sum", lab) in samples, "no _sum for %s" % base)
    return samples


def _value(samples, name, **labels):
    want = {k: str(v) for k, v in labels.items()}
    got = [v for (n, lab), v in samples.items() if n == name and all(dict(lab).get(k) == x for k, x in want.items())]
    check(len(got) == 1, "one sample of %s %s" % (name, labels), got=sorted(samples))
    return got[0]


def test_metrics_exact_values_and_format():
    p, _ = tu.start_closed_client()
    q, _ = tu.start_closed_client(["--retries", "0"])
    r = tu.tool(["metrics", str(p.pid), str(q.pid)])
    check(r.returncode == 0 and r.err == "", "metrics failed", got=r.err)
    s = strict_check(r.out)
    for pid, tries, retries, gave, waited in ((p.pid, 3, 2, 1, 0.03), (q.pid, 1, 0, 1, 0.0)):
        check(_value(s, "connguard_connect_attempts_total", pid=pid) == tries, "attempts", got=r.out)
        check(_value(s, "connguard_connect_failures_total", pid=pid, errno="ECONNREFUSED") == tries, "by errno", got=r.out)
        check(_value(s, "connguard_retries_total", pid=pid) == retries, "retries", got=r.out)
        check(_value(s, "connguard_recoveries_total", pid=pid) == 0, "recoveries", got=r.out)
        check(_value(s, "connguard_give_ups_total", pid=pid) == gave, "give-ups", got=r.out)
        check(abs(_value(s, "connguard_backoff_seconds_total", pid=pid) - waited) < 1e-9, "backoff", got=r.out)
        check(_value(s, "connguard_leaked_sockets", pid=pid) == 0, "leaks", got=r.out)
        check(_value(s, "connguard_tls_handshakes_total", pid=pid) == 0, "tls", got=r.out)
        check(_value(s, "connguard_tls_handshake_seconds_count", pid=pid) == 0, "histogram count", got=r.out)
        check(_value(s, "connguard_tls_handshake_seconds_bucket", pid=pid, le="+Inf") == 0, "+Inf bucket", got=r.out)
        check(_value(s, "connguard_open_sockets", pid=pid) >= 0, "open sockets", got=r.out)
    check('exe="/usr/bin/python3' in r.out, "exe label", got=r.out)
    # Every family the issue names is there, with HELP and TYPE.
    for fam, typ in (("connguard_connect_attempts_total", "counter"), ("connguard_connect_failures_total", "counter"),
                     ("connguard_retries_total", "counter"), ("connguard_recoveries_total", "counter"),
                     ("connguard_give_ups_total", "counter"), ("connguard_backoff_seconds_total", "counter"),
                     ("connguard_open_sockets", "gauge"), ("connguard_leaked_sockets", "gauge"),
                     ("connguard_tls_handshakes_total", "counter"), ("connguard_tls_failures_total", "counter"),
                     ("connguard_tls_handshake_seconds", "histogram")):
        check("# TYPE %s %s\n" % (fam, typ) in r.out and "# HELP %s " % fam in r.out, "family " + fam, got=r.out)
    # The histogram buckets are the ones stats.h defines.
    les = re.findall(r'connguard_tls_handshake_seconds_bucket\{pid="%d",exe="[^"]*",le="([^"]+)"\}' % p.pid, r.out)
    check(les == ["0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "+Inf"],
          "bucket bounds", got=les)
    promtool = shutil.which("promtool")
    if promtool:
        pr = subprocess.run([promtool, "check", "metrics"], input=r.out.encode(), capture_output=True, timeout=60)
        check(pr.returncode == 0, "promtool check metrics", got=(pr.stdout + pr.stderr).decode())
    cglib.stop(p)
    cglib.stop(q)


def test_histogram_from_a_segment_with_tls_handshakes():
    # The shim's TLS counters are fed through a segment written like the shim writes it:
    # per-bucket counts (each handshake in exactly one bucket), sum in microseconds.
    sleeper = cglib.spawn(["sleep", "60"])
    buckets = [0, 2, 0, 0, 1, 0, 0, 0, 0, 3, 0, 1]
    L = tu.layout()
    counters = {"tls_handshakes": 7, "tls_failures": 2, "tls_hs_sum_us": 9_000_123}
    path = tu.fake_segment(sleeper.pid, counters=counters)
    with open(path, "r+b") as f:
        for i, v in enumerate(buckets):
            f.seek(L["tls_hs_bucket"] + 8 * i)
            f.write(v.to_bytes(8, "little"))
    try:
        # The file is not mapped by the sleeper, so it counts as the sleeper's only while young:
        # metrics treats it as live for 2 s after creation (a process may still be publishing).
        r = tu.tool(["metrics", str(sleeper.pid)])
        check(r.returncode == 0, "metrics", got=r.err)
        s = strict_check(r.out)
        cum = 0
        for le, v in zip(["0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "+Inf"], buckets):
            cum += v
            check(_value(s, "connguard_tls_handshake_seconds_bucket", pid=sleeper.pid, le=le) == cum, "bucket " + le, got=r.out)
        check(_value(s, "connguard_tls_handshake_seconds_count", pid=sleeper.pid) == 7, "count", got=r.out)
        check(abs(_value(s, "connguard_tls_handshake_seconds_sum", pid=sleeper.pid) - 9.000123) < 1e-9, "sum", got=r.out)
        check(_value(s, "connguard_tls_failures_total", pid=sleeper.pid) == 2, "tls failures", got=r.out)
        check('exe="/usr/bin/fake-program"' in r.out, "exe label", got=r.out)
    finally:
        tu.remove(path)
        cglib.stop(sleeper)


def test_metrics_label_escaping():
    sleeper = cglib.spawn(["sleep", "60"])
    path = tu.fake_segment(sleeper.pid, exe='/opt/we"ird\\name\nx', counters={"connect_attempts": 1})
    try:
        r = tu.tool(["metrics", str(sleeper.pid)])
        check(r.returncode == 0, "metrics", got=r.err)
        strict_check(r.out)
        check('exe="/opt/we\\"ird\\\\name\\nx"' in r.out, "escaped label", got=r.out)
    finally:
        tu.remove(path)
        cglib.stop(sleeper)


def test_metrics_without_pids_lists_every_live_process():
    p, _ = tu.start_closed_client()
    r = tu.tool(["metrics"])
    check(r.returncode == 0, "metrics", got=r.err)
    s = strict_check(r.out)
    check(_value(s, "connguard_connect_attempts_total", pid=p.pid) == 3, "our process is in", got=r.out)
    cglib.stop(p)


def test_metrics_bad_input():
    r = tu.tool(["metrics", "12x"])
    check(r.returncode == 2 and "'12x' is not a process id" in r.err and r.out == "", "garbage pid", got=r.err)
    p, _ = tu.start_closed_client()
    dead = tu.dead_pid()
    r = tu.tool(["metrics", str(dead), str(p.pid)])
    check(r.returncode == 1 and ("no process with pid %d" % dead) in r.err, "unknown pid reported", got=r.err)
    s = strict_check(r.out)
    check(_value(s, "connguard_retries_total", pid=p.pid) == 2, "the good pid is still exported", got=r.out)
    cglib.stop(p)
