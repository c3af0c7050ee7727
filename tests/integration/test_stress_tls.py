"""TLS handshake storms: 32 threads handshaking at once against a server that resets every
handshake, or only the first ones. Same view of each failure as without the shim, exact record
counts, whole records (TLS records carry the most text)."""
import tlsutil
from cglib import check
from stresslib import client, run_pair, LogDir, FAST

import cglib

THREADS, PER = 32, 2


def test_tls_storm_every_handshake_reset():
    srv, port = tlsutil.flaky("reset", 100000, count=100000)
    p, logs, base, shim = run_pair([client("tls_stress"), str(THREADS), str(PER), str(port)], {})
    n = THREADS * PER
    check(base == {"fail:ret=-1:ssl_error=5:errno=ECONNRESET": n}, "without the shim: every handshake reset", got=base)
    recs = logs.all_records()
    got = {}
    for r in recs:
        check(r["event"] == "tls_failed" and r["cause"] == "reset", "record", got=r)
        k = (r["action"], r["attempt"])
        got[k] = got.get(k, 0) + 1
    check(got == {("retry", 1): n, ("retry", 2): n, ("give_up", 3): n}, "two retries and a give-up per handshake", got=got)
    logs.remove()
    cglib.stop(srv)


def test_tls_storm_first_handshakes_reset():
    # The first 32 connections are reset, whichever threads make them; retries recover all.
    # Exact: one retry record per reset, and the recoveries account for every one of them.
    resets = 32
    srv, port = tlsutil.flaky("reset", resets, count=100000)
    logs = LogDir()
    p = cglib.run([client("tls_stress"), str(THREADS), str(PER), str(port)],
                  env=dict(FAST, CONNGUARD_RETRIES="40", CONNGUARD_LOG=logs.template), timeout=120)
    check(p.returncode == 0 and p.err == "", "client", got=p.err)
    check(p.out == "result ok %d\n" % (THREADS * PER), "every handshake succeeds", got=p.out)
    recs = logs.all_records()
    failed = [r for r in recs if r["event"] == "tls_failed"]
    recovered = [r for r in recs if r["event"] == "tls_recovered"]
    check(len(failed) == resets and all(r["action"] == "retry" and r["cause"] == "reset" for r in failed),
          "one retry per reset", got=len(failed))
    check(len(failed) + len(recovered) == len(recs), "no other record", got=len(recs))
    check(sum(r["attempts"] - 1 for r in recovered) == resets, "recoveries account for every reset",
          got=[r["attempts"] for r in recovered])
    logs.remove()
    cglib.stop(srv)
