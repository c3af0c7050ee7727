"""The tool on real TLS: `report` on tls_failed / tls_recovered records, `stat` and `metrics`
(handshake counters and the duration histogram) of a live TLS client."""
import json
import os
import re
import shutil

import cglib
import tlsutil
import toolutil as tu
from cglib import check
from test_tool_metrics import _value, strict_check

FAST = {"CONNGUARD_BACKOFF_MS": "20", "CONNGUARD_BACKOFF_MAX_MS": "50"}

# One handshake with the test CA, then waits (a live process whose TLS counters are known).
TLS_CLIENT = r"""
import signal, socket, ssl, sys, time
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
ctx = ssl.create_default_context(cafile=sys.argv[2])
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
t = ctx.wrap_socket(s, server_hostname="cg.test")
print("ready", t.version(), flush=True)
time.sleep(60)
"""


def test_report_on_real_tls_failures():
    d = cglib.tmpdir()
    log = os.path.join(d, "tls.json")
    env = dict(FAST, CONNGUARD_LOG=log)
    bad, bad_port = tlsutil.s_server("expired")
    p = tlsutil.pyclient("wrap", bad_port, env=env)
    check(p.returncode != 0, "expired certificate refused", got=p.out + p.err)
    flaky, port = tlsutil.flaky("reset", 2)
    p = tlsutil.pyclient("wrap", port, env=env)
    check(p.returncode == 0, "recovered after two resets", got=p.out + p.err)
    recs = cglib.json_records(open(log).read())
    check([x["event"] for x in recs].count("tls_failed") == 3, "three tls_failed records", got=recs)
    r = tu.tool(["report", log])
    check(r.returncode == 0, "report", got=r.err)
    check(re.search(r"^  reset\s+2\s+2\s+0  127\.0\.0\.1:%d sni=cg\.test$" % port, r.out, re.M), "reset row", got=r.out)
    check(re.search(r"^  expired\s+1\s+0\s+1  127\.0\.0\.1:%d sni=cg\.test \(certificate has expired\)$" % bad_port,
                    r.out, re.M), "expired row", got=r.out)
    check("  handshakes recovered by retrying: 1\n" in r.out, "recovered", got=r.out)
    # The same log, symbolized, is still the same records.
    s = tu.tool(["symbolize", log])
    check(s.returncode == 0 and len(cglib.json_records(s.out)) == len(recs), "symbolize keeps TLS records", got=s.err)
    cglib.stop(bad)
    cglib.stop(flaky)
    shutil.rmtree(d)


def test_stat_and_metrics_of_a_live_tls_client():
    srv, port = tlsutil.s_server("valid")
    p, line = tu.start(["--log", os.devnull, "--", cglib.PYTHON, "-c", TLS_CLIENT, str(port), tlsutil.certs().ca])
    check(line.startswith("ready TLS"), "handshake done", got=line)
    s = tu.stat_json(p.pid)
    check(s["tls_handshakes"] == 1 and s["tls_failures"] == 0 and s["tls_retries"] == 0, "tls counters", got=s)
    check(sum(s["tls_handshake_buckets"]) == 1 and s["tls_handshake_sum_us"] > 0, "one duration", got=s)
    m = tu.tool(["metrics", str(p.pid)])
    check(m.returncode == 0, "metrics", got=m.err)
    v = strict_check(m.out)
    check(_value(v, "connguard_tls_handshakes_total", pid=p.pid) == 1, "handshakes", got=m.out)
    check(_value(v, "connguard_tls_failures_total", pid=p.pid) == 0, "failures", got=m.out)
    check(_value(v, "connguard_tls_handshake_seconds_count", pid=p.pid) == 1, "histogram count", got=m.out)
    check(_value(v, "connguard_tls_handshake_seconds_bucket", pid=p.pid, le="+Inf") == 1, "+Inf", got=m.out)
    total = _value(v, "connguard_tls_handshake_seconds_sum", pid=p.pid)
    check(abs(total - s["tls_handshake_sum_us"] / 1e6) < 1e-6, "sum in seconds", got=m.out)
    # The one observation sits in the first bucket whose bound is at least its duration.
    les = [(float(dict(lab)["le"]), val) for (n, lab), val in v.items()
           if n == "connguard_tls_handshake_seconds_bucket" and dict(lab)["pid"] == str(p.pid) and dict(lab)["le"] != "+Inf"]
    les.sort()
    first = [le for le, val in les if val == 1]
    check(not first or first[0] >= total, "bucket bound >= duration", got=les)
    r = tu.tool(["top", "--once"])
    row = [l.split() for l in r.out.splitlines() if l.split()[:1] == [str(p.pid)]]
    check(row and row[0][10:12] == ["1", "0"], "top shows TLS 1, TLSFAIL 0", got=r.out)
    cglib.stop(p)
    cglib.stop(srv)
