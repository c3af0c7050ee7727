"""How the shim finds OpenSSL: never loads it into a program that does not use it, finds the
copy python loaded privately, and leaves server-side handshakes alone."""
import socket
import subprocess

import cglib
import tlsutil
from cglib import check


def _maps_libs(out):
    return sorted({l.split()[-1] for l in out.splitlines() if "libssl" in l or "libcrypto" in l})


def test_program_without_openssl_gets_no_libssl():
    p = cglib.run(["cat", "/proc/self/maps"])
    check(p.returncode == 0 and "libconnguard.so" in p.out, "the shim is loaded", got=p.out[:300])
    check(_maps_libs(p.out) == [], "no libssl/libcrypto in a program without OpenSSL", got=_maps_libs(p.out))
    # A connect failure runs the engine (and the TLS bookkeeping of connect) without loading anything.
    port = cglib.free_port()
    code = ("import socket\ns=socket.socket()\ntry: s.connect(('127.0.0.1',%d))\nexcept OSError: pass\n"
            "print(open('/proc/self/maps').read())" % port)
    p = cglib.run([cglib.PYTHON, "-c", code], env={"CONNGUARD_RETRIES": "0", "LD_DEBUG": "files"})
    check("connect_failed" in p.err, "the engine ran", got=p.err[-500:])
    check(_maps_libs(p.out) == [], "still no libssl/libcrypto", got=_maps_libs(p.out))
    check("libssl" not in p.err and "libcrypto" not in p.err, "the loader never opened them (LD_DEBUG=files)")
    # Control: the same check does see them when the program itself uses TLS.
    q = cglib.run([cglib.PYTHON, "-c", "import ssl; print(open('/proc/self/maps').read())"])
    check(any("libssl" in l for l in _maps_libs(q.out)), "control: python's ssl loads libssl", got=q.out[:300])


def test_python_private_libssl_is_found():
    # python's _ssl is dlopen()ed RTLD_LOCAL: its libssl is invisible to dlsym(RTLD_NEXT).
    code = ("import ssl, ctypes\n"
            "try:\n    ctypes.CDLL(None).SSL_get_error\n    print('global')\n"
            "except AttributeError:\n    print('private')\n")
    p = cglib.run([cglib.PYTHON, "-c", code])
    check(p.out.strip() == "private", "premise: python loads libssl privately", got=p.out)
    srv, port = tlsutil.s_server("selfsigned")
    p = tlsutil.pyclient("wrap", port)
    recs = tlsutil.tls_records(p)
    check(len(recs) == 1 and recs[0]["cause"] == "self_signed" and recs[0]["cert_issuer"],
          "the private copy was found and used for the diagnosis", got=p.err)
    cglib.stop(srv)


def test_server_side_handshakes_untouched():
    # A python TLS server under the shim: a client that is not speaking TLS makes its
    # handshake fail; that is the server's peer's business, not a tls_failed record.
    port = cglib.free_port()
    c = tlsutil.certs()
    srv = cglib.spawn([cglib.PYTHON, tlsutil.FLAKY, str(port), "reset", "0", c.pem("valid"), c.key("valid"), "2"],
                      env={"CONNGUARD_LOG_FORMAT": "json"}, preload=True,
                      stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    cglib.wait_listening(port)
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"GET / HTTP/1.0\r\n\r\n")
    try:
        s.recv(100)
    except OSError:
        pass
    s.close()
    p = tlsutil.curl(port)
    check(p.returncode == 0, "the server still serves", got=p.err)
    cglib.stop(srv)
    err = srv.stderr.read().decode()
    check("tls_failed" not in err and "tls_recovered" not in err, "no record from the server", got=err)
