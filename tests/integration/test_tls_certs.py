"""TLS failure diagnosis against `openssl s_server` on 127.0.0.1 with certificates the test
generates: every failed handshake gives exactly one tls_failed record with the certificate's
facts and a hint that names the cause; the client's own result is the same as without the shim."""
import cglib
import tlsutil
from cglib import check
from tlsutil import NAME


def _one(p, what):
    recs = tlsutil.tls_records(p)
    check(len(recs) == 1, "%s: expected exactly one tls_failed record" % what, got=p.err)
    return recs[0]


def _check_cert_record(rec, cert, cause, verify_result, verify_error, call, what):
    info = tlsutil.cert_info(cert)
    want = {
        "sni": NAME, "call": call, "stage": "handshake", "cause": cause, "ssl_error": "SSL_ERROR_SSL",
        "error": "certificate verify failed", "verify_result": verify_result, "verify_error": verify_error,
        "attempt": 1, "action": "give_up", "reason": "not_retryable",
        "cert_subject": info["subject"], "cert_issuer": info["issuer"], "cert_san": info.get("san"),
        "cert_not_before": info["not_before"], "cert_not_after": info["not_after"],
    }
    for k, v in want.items():
        check(rec.get(k) == v, "%s: field %s: want %r" % (what, k, v), got=rec)
    check(rec.get("dst", "").startswith("127.0.0.1:"), "%s: dst" % what, got=rec)
    check(isinstance(rec.get("fd"), int), "%s: fd" % what, got=rec)
    check(len(rec.get("stack", [])) > 0, "%s: a stack trace" % what, got=rec)
    check("errno" not in rec and "delay_ms" not in rec, "%s: no errno/delay for a certificate failure" % what, got=rec)
    return rec


def _py_case(cert, cause, code, text, hint_words):
    srv, port = tlsutil.s_server(cert)
    base = tlsutil.pyclient("wrap", port, preload=False)
    p = tlsutil.pyclient("wrap", port)
    check(p.returncode == 1 and p.out == base.out, "python must fail exactly as without the shim",
          got="with: %s\nwithout: %s\n%s" % (p.out, base.out, p.err))
    check(p.out.startswith("error SSLCertVerificationError %d " % code), "python's verify error", got=p.out)
    rec = _one(p, cert)
    _check_cert_record(rec, cert, cause, code, text, "SSL_do_handshake", cert)
    check(rec.get("host") == NAME, "python asks OpenSSL to check the host name", got=rec)
    check(any("_ssl" in f.get("module", "") for f in rec["stack"]), "the stack shows python's _ssl", got=rec)
    for w in hint_words:
        check(w in rec.get("hint", ""), "hint must mention %r" % w, got=rec.get("hint"))
    cglib.stop(srv)
    return rec


def test_python_expired():
    rec = _py_case("expired", "expired", 10, "certificate has expired", ["expired on", "days ago"])
    check(tlsutil.cert_info("expired")["not_after"] in rec["hint"], "hint gives the expiry date", got=rec["hint"])


def test_python_not_yet_valid():
    rec = _py_case("future", "not_yet_valid", 9, "certificate is not yet valid",
                   ["is valid only from", "local clock looks plausible"])
    check(tlsutil.cert_info("future")["not_before"] in rec["hint"], "hint gives the start date", got=rec["hint"])


def test_python_wrong_host():
    rec = _py_case("wronghost", "hostname_mismatch", 62, "hostname mismatch",
                   ["asked for 'cg.test'", "DNS:other.test, DNS:*.other.test"])
    check(rec["cert_san"] == "DNS:other.test, DNS:*.other.test", "SANs", got=rec)


def test_python_self_signed():
    _py_case("selfsigned", "self_signed", 18, "self-signed certificate", ["self-signed", "intercept", "Interceptor Inc"])


def test_no_san_no_field():
    """A certificate without subjectAltName: no cert_san field at all (JSON) and no empty
    "cert_san:" line (text), rather than an empty value."""
    check("san" not in tlsutil.cert_info("nosan"), "the test certificate has no SAN")
    rec = _py_case("nosan", "self_signed", 18, "self-signed certificate", ["self-signed"])
    check("cert_san" not in rec and rec.get("cert_subject"), "no cert_san in JSON", got=rec)
    srv, port = tlsutil.s_server("nosan")
    p = tlsutil.pyclient("wrap", port, env={"CONNGUARD_LOG_FORMAT": "text"})
    recs = cglib.text_records(p.err, "tls_failed")
    check(len(recs) == 1 and "cert_subject" in recs[0], "one text record", got=p.err)
    check("cert_san" not in p.err, "no cert_san line in text", got=p.err)
    cglib.stop(srv)


def test_python_unknown_ca():
    _py_case("unknownca", "unknown_issuer", 20, "unable to get local issuer certificate",
             ["connguard test other CA", "CA file"])


def test_python_urllib_expired():
    srv, port = tlsutil.s_server("expired")
    p = tlsutil.pyclient("urllib", port)
    check(p.returncode == 1 and p.out.startswith("error SSLCertVerificationError 10 "), "urllib fails", got=p.out + p.err)
    rec = _one(p, "urllib")
    check(rec["cause"] == "expired" and rec["sni"] == "" and rec.get("host") is None,
          "urllib to an IP: no SNI, OpenSSL checks the IP", got=rec)
    cglib.stop(srv)


def _curl_case(cert, rc, cause, code, text):
    srv, port = tlsutil.s_server(cert)
    base = tlsutil.curl(port, preload=False)
    p = tlsutil.curl(port)
    check(p.returncode == rc == base.returncode, "curl exit status unchanged", got=p.err)
    curl_lines = [l for l in p.err.splitlines() if not l.startswith("{")]
    check(curl_lines == base.err.splitlines(), "curl's own messages unchanged", got=p.err)
    rec = _one(p, "curl " + cert)
    _check_cert_record(rec, cert, cause, code, text, "SSL_connect", "curl " + cert)
    check(rec["dst"] == "127.0.0.1:%d" % port, "curl's fd found through its connect", got=rec)
    cglib.stop(srv)
    return rec


def test_curl_expired():
    _curl_case("expired", 60, "expired", 10, "certificate has expired")


def test_curl_self_signed():
    _curl_case("selfsigned", 60, "self_signed", 18, "self-signed certificate")


def test_curl_unknown_ca():
    _curl_case("unknownca", 60, "unknown_issuer", 20, "unable to get local issuer certificate")


def test_curl_wrong_host_checked_by_curl():
    # curl checks the name itself after a successful handshake: the record says so.
    srv, port = tlsutil.s_server("wronghost")
    p = tlsutil.curl(port)
    check(p.returncode == 60 and "no alternative certificate subject name" in p.err, "curl refuses the name", got=p.err)
    rec = _one(p, "curl wronghost")
    want = {"stage": "after_handshake", "cause": "hostname_mismatch", "verify_result": 62, "sni": NAME,
            "call": "SSL_connect", "action": "give_up", "dst": "127.0.0.1:%d" % port,
            "cert_san": "DNS:other.test, DNS:*.other.test", "cert_subject": tlsutil.cert_info("wronghost")["subject"]}
    for k, v in want.items():
        check(rec.get(k) == v, "field %s: want %r" % (k, v), got=rec)
    check("asked for 'cg.test'" in rec["hint"] and "compares the name itself" in rec["hint"],
          "hint names the host asked for, and who checks it", got=rec["hint"])
    cglib.stop(srv)


def test_curl_insecure_is_silent():
    # -k: no verification asked, nothing failed, nothing to say.
    srv, port = tlsutil.s_server("wronghost")
    p = tlsutil.curl(port, ["-k"])
    check(p.returncode == 0 and p.err == "", "curl -k succeeds silently", got=p.err)
    cglib.stop(srv)


def test_protocol_mismatch_alert():
    srv, port = tlsutil.s_server("valid", ["-tls1_3"])
    p = tlsutil.curl(port, ["--tls-max", "1.2"])
    check(p.returncode == 35, "curl fails the handshake", got=p.err)
    rec = _one(p, "curl tls1.2 vs 1.3")
    check(rec["cause"] == "alert" and rec["alert"] == "protocol_version" and rec["ssl_error"] == "SSL_ERROR_SSL"
          and rec["error"] == "tlsv1 alert protocol version" and rec["action"] == "give_up"
          and rec["reason"] == "not_retryable" and rec["verify_result"] == 0, "alert record", got=rec)
    check("protocol or cipher mismatch" in rec["hint"], "hint", got=rec["hint"])
    check("cert_subject" not in rec, "no certificate facts for an alert", got=rec)
    q = tlsutil.pyclient("wrap", port, extra=["--tls-max", "1.2"])
    check(q.returncode == 1 and "TLSV1_ALERT_PROTOCOL_VERSION" in q.out, "python fails too", got=q.out)
    rec = _one(q, "python tls1.2 vs 1.3")
    check(rec["cause"] == "alert" and rec["alert"] == "protocol_version" and rec["call"] == "SSL_do_handshake",
          "python alert record", got=rec)
    cglib.stop(srv)


def test_valid_handshakes_are_silent():
    srv, port = tlsutil.s_server("valid")
    p = tlsutil.curl(port)
    check(p.returncode == 0 and p.err == "", "curl: a healthy handshake prints nothing", got=p.err)
    q = tlsutil.pyclient("wrap", port)
    check(q.returncode == 0 and q.out.startswith("ok HTTP/1.0 200") and q.err == "", "python: silent", got=q.out + q.err)
    cglib.stop(srv)


def test_text_format_record():
    srv, port = tlsutil.s_server("expired")
    p = tlsutil.pyclient("wrap", port, env={"CONNGUARD_LOG_FORMAT": "text"})
    recs = cglib.text_records(p.err, "tls_failed")
    check(len(recs) == 1, "one text record", got=p.err)
    r = recs[0]
    info = tlsutil.cert_info("expired")
    check(r["cause"] == "expired" and r["verify_result"] == "10" and r["verify_error"] == "certificate has expired"
          and r["cert_not_after"] == info["not_after"] and r["cert_subject"] == info["subject"]
          and r["cert_san"] == info["san"] and "hint" in r and r["stack"], "text fields", got=p.err)
    cglib.stop(srv)


def test_tls_disabled():
    srv, port = tlsutil.s_server("expired")
    p = tlsutil.pyclient("wrap", port, env={"CONNGUARD_TLS": "0"})
    check(p.returncode == 1 and tlsutil.tls_records(p) == [] and p.err == "", "CONNGUARD_TLS=0: no record", got=p.err)
    cglib.stop(srv)
