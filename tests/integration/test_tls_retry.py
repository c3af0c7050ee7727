"""TLS handshake retries: a flaky server (tls_flaky.py) resets or closes its first connections
during the handshake; blocking clients ride through it on the same fd, non-blocking ones see
the failure as they would without the shim; when retries run out the program sees what it would
have seen without the shim."""
import cglib
import tlsutil
from cglib import check
from tlsutil import NAME

FAST = {"CONNGUARD_BACKOFF_MS": "20", "CONNGUARD_BACKOFF_MAX_MS": "50", "CONNGUARD_STACK_DEPTH": "4"}


def _env(**kw):
    e = dict(FAST)
    e.update({"CONNGUARD_" + k: str(v) for k, v in kw.items()})
    return e


def _check_retries(p, cause, n, port, call, fd=3):
    """n failed attempts, each logged as a retry, then one tls_recovered."""
    recs = tlsutil.tls_records(p)
    check(len(recs) == n, "expected %d tls_failed records" % n, got=p.err)
    for i, r in enumerate(recs):
        want = {"cause": cause, "attempt": i + 1, "action": "retry", "dst": "127.0.0.1:%d" % port,
                "fd": fd, "call": call, "stage": "handshake"}
        for k, v in want.items():
            check(r.get(k) == v, "record %d field %s: want %r" % (i + 1, k, v), got=r)
        check(isinstance(r.get("delay_ms"), int) and r["delay_ms"] <= 50, "delay within the policy", got=r)
        check(len(r.get("stack", [])) > 0, "a stack trace", got=r)
    rec = tlsutil.tls_records(p, "tls_recovered")
    check(len(rec) == 1 and rec[0]["attempts"] == n + 1 and rec[0]["dst"] == "127.0.0.1:%d" % port,
          "one tls_recovered record", got=p.err)
    return recs


def test_python_reset_then_recovers():
    srv, port = tlsutil.flaky("reset", 2)
    p = tlsutil.pyclient("wrap", port, env=_env())
    check(p.returncode == 0 and p.out == "ok HTTP/1.0 200 OK\n", "python succeeds once the server recovers",
          got=p.out + p.err)
    recs = _check_retries(p, "reset", 2, port, "SSL_do_handshake")
    check(recs[0]["errno"] == "ECONNRESET" and recs[0]["ssl_error"] == "SSL_ERROR_SYSCALL"
          and recs[0]["sni"] == NAME and recs[0]["host"] == NAME, "reset details", got=recs[0])
    check(tlsutil.flaky_stats(srv) == "failed=2 served=1 sni=%s" % NAME,
          "three connections reached the server, the served one with the same SNI", got=tlsutil.flaky_stats(srv))


def test_python_eof_then_recovers():
    # python sets SSL_OP_IGNORE_UNEXPECTED_EOF: a bare EOF comes back as SSL_ERROR_ZERO_RETURN.
    srv, port = tlsutil.flaky("eof", 2)
    p = tlsutil.pyclient("wrap", port, env=_env())
    check(p.returncode == 0 and p.out.startswith("ok HTTP/1.0 200"), "python succeeds", got=p.out + p.err)
    recs = _check_retries(p, "eof", 2, port, "SSL_do_handshake")
    check(recs[0]["ssl_error"] == "SSL_ERROR_ZERO_RETURN", "python's EOF", got=recs[0])
    check(tlsutil.flaky_stats(srv).startswith("failed=2 served=1"), "attempts at the server")


def test_python_urllib_recovers():
    srv, port = tlsutil.flaky("reset,eof", 2)
    p = tlsutil.pyclient("urllib", port, env=_env())
    check(p.returncode == 0 and p.out == "ok HTTP 200\n", "urllib succeeds", got=p.out + p.err)
    recs = tlsutil.tls_records(p)
    check([r["cause"] for r in recs] == ["reset", "eof"] and [r["action"] for r in recs] == ["retry", "retry"],
          "one record per failed attempt", got=p.err)
    check(len(tlsutil.tls_records(p, "tls_recovered")) == 1, "recovered", got=p.err)


def test_c_client_recovers_and_keeps_host_check():
    srv, port = tlsutil.flaky("reset,eof", 2)
    p = tlsutil.cclient(port, ["--sni", NAME, "--host", NAME, "--ca", tlsutil.certs().ca, "--request", "--cloexec",
                               "--stats"], env=_env())
    check(p.returncode == 0, "C client succeeds", got=p.out + p.err)
    lines = p.out.splitlines()
    check(lines[0] == "ok TLSv1.3 fd=3 cloexec=1" and lines[1] == "reply HTTP/1.0 200 OK",
          "same fd number, close-on-exec kept, the connection works", got=p.out)
    check(lines[2] == "stats handshakes=3 failures=2 retries=2 count=3 in_buckets=3 sum_positive=1",
          "handshake counters and timings", got=p.out)
    recs = tlsutil.tls_records(p)
    check([r["cause"] for r in recs] == ["reset", "eof"] and all(r["call"] == "SSL_connect" for r in recs),
          "one record per failure even though SSL_connect calls SSL_do_handshake", got=p.err)
    check(tlsutil.flaky_stats(srv) == "failed=2 served=1 sni=%s" % NAME, "SNI survives the reset")


def test_retry_still_verifies_the_host_name():
    # The retried handshake must verify the same host name: a certificate for another name
    # behind the flaky start is refused on the second attempt, and that is not retried.
    srv, port = tlsutil.flaky("reset", 1, cert="wronghost")
    base_srv, base_port = tlsutil.s_server("wronghost")
    args = ["--sni", NAME, "--host", NAME, "--ca", tlsutil.certs().ca]
    base = tlsutil.cclient(base_port, args, preload=False)
    p = tlsutil.cclient(port, args, env=_env())
    check(p.returncode == 1 and p.out == base.out, "fails like a direct connection to that server",
          got="with: %s\nwithout: %s" % (p.out, base.out))
    recs = tlsutil.tls_records(p)
    check(len(recs) == 2, "two records", got=p.err)
    check(recs[0]["cause"] == "reset" and recs[0]["action"] == "retry", "first: reset, retried", got=recs[0])
    check(recs[1]["cause"] == "hostname_mismatch" and recs[1]["attempt"] == 2 and recs[1]["action"] == "give_up"
          and recs[1]["reason"] == "not_retryable" and recs[1]["host"] == NAME, "second: name refused", got=recs[1])
    check(tlsutil.flaky_stats(srv).startswith("failed=1 served=0"), "no third attempt")


def test_retries_exhausted_same_result_as_without_shim():
    srv, port = tlsutil.flaky("reset", 10)
    args = ["--sni", NAME, "--ca", tlsutil.certs().ca]
    base = tlsutil.cclient(port, args, preload=False)
    p = tlsutil.cclient(port, args, env=_env(RETRIES=2))
    check(p.returncode == 1 and p.out == base.out, "the program sees exactly what it saw without the shim",
          got="with: %s\nwithout: %s" % (p.out, base.out))
    check(base.out.startswith("fail ret=-1 ssl_error=5 errno=104"), "a reset", got=base.out)
    recs = tlsutil.tls_records(p)
    check([(r["attempt"], r["action"]) for r in recs] == [(1, "retry"), (2, "retry"), (3, "give_up")]
          and recs[2]["reason"] == "retries_exhausted", "2 retries then give up", got=p.err)
    check(tlsutil.tls_records(p, "tls_recovered") == [], "no recovery", got=p.err)
    check(tlsutil.flaky_stats(srv).startswith("failed=4 served=0"), "1 + 3 attempts (one without the shim)")


def test_server_gone_reconnect_refused():
    # The server resets the only connection it accepts and exits: reconnecting is refused.
    srv, port = tlsutil.flaky("reset", 1, count=1)
    args = ["--sni", NAME, "--ca", tlsutil.certs().ca]
    p = tlsutil.cclient(port, args, env=_env(RETRIES=2))
    check(p.returncode == 1 and p.out.startswith("fail ret=-1 ssl_error=5 errno=104 verify=0"),
          "the program sees the reset of its own attempt", got=p.out)
    recs = tlsutil.tls_records(p)
    check([r["cause"] for r in recs] == ["reset", "reconnect_failed", "reconnect_failed"], "causes", got=p.err)
    check(recs[1]["errno"] == "ECONNREFUSED" and recs[2]["action"] == "give_up"
          and recs[2]["reason"] == "retries_exhausted", "refused reconnects", got=p.err)
    cglib.stop(srv)


def test_deadline_bounds_retries():
    srv, port = tlsutil.flaky("reset", 50, count=60)
    p = tlsutil.pyclient("wrap", port, env=_env(RETRIES=100, BACKOFF_MS=100, BACKOFF_MAX_MS=100, JITTER="none",
                                                DEADLINE_MS=600))
    check(p.returncode == 1 and "ConnectionResetError" in p.out, "gives up with the reset", got=p.out)
    recs = tlsutil.tls_records(p)
    check(recs and recs[-1]["action"] == "give_up" and recs[-1]["reason"] == "deadline"
          and 3 <= len(recs) <= 8, "the deadline stops it", got=p.err)
    cglib.stop(srv)


def test_timeout_of_a_retry_is_retried():
    # Second connection hangs after the ClientHello: our per-attempt limit ends it.
    srv, port = tlsutil.flaky("reset,hang", 2)
    p = tlsutil.pyclient("wrap", port, env=_env(CONNECT_TIMEOUT_MS=500))
    check(p.returncode == 0 and p.out.startswith("ok HTTP/1.0 200"), "python succeeds", got=p.out + p.err)
    recs = tlsutil.tls_records(p)
    check([r["cause"] for r in recs] == ["reset", "timeout"], "reset then timeout", got=p.err)
    check(recs[1]["elapsed_ms"] >= 450, "the attempt limit was waited for", got=recs[1])
    check(len(tlsutil.tls_records(p, "tls_recovered")) == 1, "recovered", got=p.err)
    cglib.stop(srv)


def test_nonblocking_python_not_retried():
    # python with a timeout drives a non-blocking handshake: passed through, logged once.
    srv, port = tlsutil.flaky("reset", 1)
    base = tlsutil.pyclient("wrap", port, preload=False, extra=["--timeout", "5"])
    srv2, port2 = tlsutil.flaky("reset", 1)
    p = tlsutil.pyclient("wrap", port2, extra=["--timeout", "5"], env=_env())
    check(p.returncode == 1 and p.out == base.out.replace(str(port), str(port2)), "same failure as without the shim",
          got="with: %s\nwithout: %s" % (p.out, base.out))
    recs = tlsutil.tls_records(p)
    check(len(recs) == 1 and recs[0]["action"] == "give_up" and recs[0]["reason"] == "nonblocking"
          and recs[0]["cause"] == "reset" and recs[0]["dst"] == "127.0.0.1:%d" % port2, "one give_up record",
          got=p.err)
    check(tlsutil.flaky_stats(srv2).startswith("failed=1 served=0"), "no retry reached the server")


def test_nonblocking_c_client_not_retried():
    srv, port = tlsutil.flaky("eof", 1)
    p = tlsutil.cclient(port, ["--nonblock", "--entry", "handshake", "--stats"], env=_env())
    check(p.returncode == 1 and p.out.startswith("fail ret=-1 ssl_error=1"), "fails", got=p.out)
    recs = tlsutil.tls_records(p)
    check(len(recs) == 1 and recs[0]["reason"] == "nonblocking" and recs[0]["cause"] == "eof"
          and recs[0]["call"] == "SSL_do_handshake", "one record", got=p.err)
    check("stats handshakes=1 failures=1 retries=0 count=1 in_buckets=1" in p.out,
          "the handshake spanning several calls is timed once", got=p.out)
    check(tlsutil.flaky_stats(srv).startswith("failed=1 served=0"), "not retried")


def test_nonblocking_success_is_silent_and_timed():
    srv, port = tlsutil.s_server("valid")
    p = tlsutil.cclient(port, ["--nonblock", "--sni", NAME, "--ca", tlsutil.certs().ca, "--stats"])
    check(p.returncode == 0 and p.err == "", "silent", got=p.err)
    check("stats handshakes=1 failures=0 retries=0 count=1 in_buckets=1 sum_positive=1" in p.out, "timed", got=p.out)
    cglib.stop(srv)


def test_retries_zero_logs_give_up():
    srv, port = tlsutil.flaky("reset", 1)
    p = tlsutil.pyclient("wrap", port, env=_env(RETRIES=0))
    check(p.returncode == 1 and "ConnectionResetError" in p.out, "fails", got=p.out)
    recs = tlsutil.tls_records(p)
    check(len(recs) == 1 and recs[0]["action"] == "give_up" and recs[0]["reason"] == "retries_exhausted",
          "logged as give_up", got=p.err)
    check(tlsutil.flaky_stats(srv).startswith("failed=1 served=0"), "no retry")


def test_skip_pattern_leaves_destination_alone():
    srv, port = tlsutil.flaky("reset", 1)
    p = tlsutil.pyclient("wrap", port, env=_env(SKIP="127.0.0.1:%d" % port))
    check(p.returncode == 1 and p.err == "", "skipped destination: no retry, no record", got=p.err)
    check(tlsutil.flaky_stats(srv).startswith("failed=1 served=0"), "no retry")


def test_curl_reset_not_retried():
    # curl drives a non-blocking handshake through its own BIO: no retry, one record, fd and
    # peer found through curl's connect.
    srv, port = tlsutil.flaky("reset", 1)
    base_srv, base_port = tlsutil.flaky("reset", 1)
    base = tlsutil.curl(base_port, preload=False)
    p = tlsutil.curl(port, env=_env())
    check(p.returncode == base.returncode == 35, "curl fails as without the shim", got=p.err)
    recs = tlsutil.tls_records(p)
    check(len(recs) == 1, "exactly one record for SSL_connect + its inner SSL_do_handshake", got=p.err)
    r = recs[0]
    check(r["cause"] == "reset" and r["reason"] == "nonblocking" and r["call"] == "SSL_connect"
          and r["dst"] == "127.0.0.1:%d" % port and isinstance(r.get("fd"), int), "record", got=r)
    check(tlsutil.flaky_stats(srv).startswith("failed=1 served=0"), "not retried")


_THREADS = '''
import ssl, socket, sys, threading
ctx = ssl.create_default_context(cafile=sys.argv[2])
res = []
def go():
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
    t = ctx.wrap_socket(s, server_hostname="cg.test")
    t.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n")
    res.append(t.recv(100).split(b"\\r\\n")[0].decode())
th = [threading.Thread(target=go) for _ in range(4)]
for x in th: x.start()
for x in th: x.join()
print(sorted(res))
'''


def test_threads_retry_independently():
    srv, port = tlsutil.flaky("reset", 4, count=20)
    p = cglib.run([cglib.PYTHON, "-c", _THREADS, str(port), tlsutil.certs().ca],
                  env=dict(_env(), CONNGUARD_LOG_FORMAT="json"))
    check(p.out.strip() == str(["HTTP/1.0 200 OK"] * 4), "all four threads succeed", got=p.out + p.err)
    recs = tlsutil.tls_records(p)
    check(len(recs) == 4 and all(r["cause"] == "reset" and r["action"] == "retry" for r in recs),
          "one retry record per reset", got=p.err)
    # A fast retry may overtake another thread's first connection: count per connection (fd).
    rec = tlsutil.tls_records(p, "tls_recovered")
    check(sorted(r["fd"] for r in rec) == sorted({r["fd"] for r in recs}),
          "every connection that failed recovered, once", got=p.err)
    check(tlsutil.flaky_stats(srv) == "failed=4 served=4 sni=" + ",".join([NAME] * 4), "server side")


def test_last_attempt_timeout_continues_on_program_terms():
    # Reset, then a server that never answers: our limit ends the retried attempt, and with no
    # retry left the handshake goes on as the program asked (blocking, no timeout) until the
    # server goes away; the shim does not turn its own limit into the program's failure.
    import subprocess
    import time
    srv, port = tlsutil.flaky("reset,hang", 3)
    cli = cglib.spawn([cglib.PYTHON, tlsutil.PYCLIENT, "wrap", str(port), tlsutil.certs().ca],
                      env=dict(_env(RETRIES=1, CONNECT_TIMEOUT_MS=400), CONNGUARD_LOG_FORMAT="json"),
                      preload=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(1.5)
    check(cli.poll() is None, "still waiting for the server, as without the shim")
    check(tlsutil.flaky_stats(srv).startswith("failed=2 served=0"), "two attempts reached the server")
    out, err = cli.communicate(timeout=20)
    out, err = out.decode(), err.decode()
    check(cli.returncode == 1 and out.startswith("error "), "fails once the server is gone", got=out + err)
    recs = cglib.json_records(err, "tls_failed")
    check([(r["cause"], r["action"]) for r in recs] == [("reset", "retry"), ("timeout", "give_up")]
          and recs[1]["reason"] == "retries_exhausted", "records", got=err)


def test_c_client_do_handshake_entry_recovers():
    # The same through SSL_do_handshake after SSL_set_connect_state (python's way, from C).
    srv, port = tlsutil.flaky("eof", 1)
    p = tlsutil.cclient(port, ["--entry", "handshake", "--sni", NAME, "--host", NAME, "--ca", tlsutil.certs().ca,
                               "--request"], env=_env())
    check(p.returncode == 0 and p.out.splitlines()[1] == "reply HTTP/1.0 200 OK", "recovers", got=p.out + p.err)
    recs = tlsutil.tls_records(p)
    check(len(recs) == 1 and recs[0]["cause"] == "eof" and recs[0]["call"] == "SSL_do_handshake"
          and recs[0]["error"] == "unexpected eof while reading", "one eof record", got=p.err)
    check(tlsutil.flaky_stats(srv) == "failed=1 served=1 sni=" + NAME, "server side")
