"""TLS test material: certificates made with the openssl CLI in a temp dir, `openssl s_server`
on 127.0.0.1, and the flaky server (tls_flaky.py). Imported by test_tls_*.py."""
import os
import shutil
import subprocess
import time

import cglib

HERE = os.path.dirname(os.path.abspath(__file__))
FLAKY = os.path.join(HERE, "tls_flaky.py")
NAME = "cg.test"          # the name every good certificate is issued for

_CA_CONF = """
[ca]
default_ca = cgca
[cgca]
dir = {dir}
database = {dir}/index-{ca}.txt
serial = {dir}/serial-{ca}
new_certs_dir = {dir}/newcerts
default_md = sha256
policy = anything
unique_subject = no
copy_extensions = copy
email_in_dn = no
[anything]
commonName = supplied
organizationName = optional
"""


def _sh(args, cwd):
    p = subprocess.run(args, cwd=cwd, capture_output=True, timeout=60)
    if p.returncode != 0:
        raise cglib.TestFailure("%s failed: %s" % (" ".join(args), p.stderr.decode()))


def _utc(offset_days):
    t = time.gmtime(time.time() + offset_days * 86400)
    return time.strftime("%Y%m%d%H%M%SZ", t)


class Certs:
    """A CA, an unrelated CA and leaf certificates in a temp dir:
    valid, expired, future (not yet valid), wronghost, selfsigned, unknownca.
    Attributes: dir, ca (path of the trusted CA file), and for each leaf NAME.pem / NAME.key."""

    def __init__(self):
        self.dir = cglib.tmpdir()
        d = self.dir
        os.mkdir(os.path.join(d, "newcerts"))
        for ca in ("ca", "otherca"):
            _sh(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                 "-nodes", "-keyout", ca + ".key", "-out", ca + ".pem", "-days", "30",
                 "-subj", "/O=connguard tests/CN=connguard test " + ("CA" if ca == "ca" else "other CA"),
                 "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign"], d)
            with open(os.path.join(d, "index-%s.txt" % ca), "w"):
                pass
            with open(os.path.join(d, "serial-%s" % ca), "w") as f:
                f.write("1000\n")
            with open(os.path.join(d, ca + ".cnf"), "w") as f:
                f.write(_CA_CONF.format(dir=d, ca=ca))
        self.ca = os.path.join(d, "ca.pem")
        san = "subjectAltName=DNS:%s,DNS:www.%s,IP:127.0.0.1" % (NAME, NAME)
        self._leaf("valid", "ca", NAME, san, -1, 30)
        self._leaf("expired", "ca", NAME, san, -400, -35)
        self._leaf("future", "ca", NAME, san, 365, 730)
        self._leaf("wronghost", "ca", "other.test", "subjectAltName=DNS:other.test,DNS:*.other.test", -1, 30)
        self._leaf("unknownca", "otherca", NAME, san, -1, 30)
        _sh(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", "selfsigned.key", "-out", "selfsigned.pem", "-days", "30",
             "-subj", "/O=Interceptor Inc/CN=" + NAME, "-addext", san], d)
        # Self-signed, without subjectAltName (-addext none: openssl req adds no SAN by default).
        _sh(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", "nosan.key", "-out", "nosan.pem", "-days", "30",
             "-subj", "/O=Interceptor Inc/CN=" + NAME], d)

    def _leaf(self, name, ca, cn, san, start_days, end_days):
        d = self.dir
        _sh(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", name + ".key", "-out", name + ".csr", "-subj", "/O=connguard tests/CN=" + cn,
             "-addext", san], d)
        _sh(["openssl", "ca", "-batch", "-config", ca + ".cnf", "-cert", ca + ".pem", "-keyfile", ca + ".key",
             "-in", name + ".csr", "-out", name + ".pem", "-notext",
             "-startdate", _utc(start_days), "-enddate", _utc(end_days)], d)

    def pem(self, name):
        return os.path.join(self.dir, name + ".pem")

    def key(self, name):
        return os.path.join(self.dir, name + ".key")

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


_certs = None


def certs():
    """Generated once per test run (a few openssl calls), removed at exit."""
    global _certs
    if _certs is None:
        _certs = Certs()
        import atexit
        atexit.register(_certs.cleanup)
    return _certs


def s_server(cert, extra=(), port=None):
    """`openssl s_server` on 127.0.0.1 with a generated certificate; answers GET / (-www).
    Returns (process, port). Stopped by pid after the test (cglib.stop_all)."""
    c = certs()
    port = port or cglib.free_port()
    p = cglib.spawn(["openssl", "s_server", "-accept", "127.0.0.1:%d" % port, "-cert", c.pem(cert),
                     "-key", c.key(cert), "-www", "-quiet"] + list(extra),
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cglib.wait_listening(port)
    return p, port


def flaky(mode, n, cert="valid", port=None, count=10):
    """tls_flaky.py: the first n connections fail during the handshake (mode reset | eof |
    hang | close), then it serves TLS normally. Returns (process, port)."""
    c = certs()
    port = port or cglib.free_port()
    p = cglib.spawn([cglib.PYTHON, FLAKY, str(port), mode, str(n), c.pem(cert), c.key(cert), str(count)],
                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    cglib.wait_listening(port)
    return p, port


def flaky_stats(p):
    """Stops the flaky server and returns the line it printed: 'failed=N served=M'."""
    cglib.stop(p)
    out = p.stdout.read().decode() if p.stdout else ""
    return out.strip().splitlines()[-1] if out.strip() else ""


def cert_info(name):
    """What the shim must report about certificate NAME, read with the openssl CLI:
    subject, issuer (certificate order, "CN=x, O=y"), san ("DNS:a, IP:b"), not_before/after (ISO)."""
    pem = certs().pem(name)
    opt = "sep_comma_plus_space,esc_2253,esc_ctrl,utf8,dump_unknown,dump_der,sname"
    p = subprocess.run(["openssl", "x509", "-in", pem, "-noout", "-subject", "-issuer", "-startdate",
                        "-enddate", "-nameopt", opt, "-ext", "subjectAltName"],
                       capture_output=True, text=True, timeout=30)
    info = {}
    lines = p.stdout.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("subject="):
            info["subject"] = line[len("subject="):].strip()
        elif line.startswith("issuer="):
            info["issuer"] = line[len("issuer="):].strip()
        elif line.startswith("notBefore="):
            info["not_before"] = _iso(line.split("=", 1)[1])
        elif line.startswith("notAfter="):
            info["not_after"] = _iso(line.split("=", 1)[1])
        elif "Subject Alternative Name" in line and i + 1 < len(lines):
            info["san"] = lines[i + 1].strip().replace("IP Address:", "IP:")
    return info


def _iso(openssl_date):
    t = time.strptime(openssl_date.strip(), "%b %d %H:%M:%S %Y GMT")
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", t)


PYCLIENT = os.path.join(HERE, "tls_pyclient.py")


def pyclient(mode, port, env=None, preload=True, extra=(), timeout=60):
    """tls_pyclient.py under the shim (JSON log on stderr unless env says otherwise)."""
    e = {"CONNGUARD_LOG_FORMAT": "json"}
    e.update(env or {})
    return cglib.run([cglib.PYTHON, PYCLIENT, mode, str(port), certs().ca] + list(extra), env=e,
                     preload=preload, timeout=timeout)


def cclient(port, args=(), env=None, preload=True, timeout=60):
    """build/clients/tls_client under the shim (JSON log)."""
    e = {"CONNGUARD_LOG_FORMAT": "json"}
    e.update(env or {})
    return cglib.run([os.path.join(cglib.CLIENTS, "tls_client"), str(port)] + list(args), env=e,
                     preload=preload, timeout=timeout)


def curl(port, args=(), env=None, preload=True, timeout=60):
    """curl https://cg.test:PORT/ (cg.test pinned to 127.0.0.1, trusting the test CA)."""
    e = {"CONNGUARD_LOG_FORMAT": "json"}
    e.update(env or {})
    return cglib.run(["curl", "-sS", "-o", "/dev/null", "--cacert", certs().ca, "--resolve",
                      "%s:%d:127.0.0.1" % (NAME, port)] + list(args) + ["https://%s:%d/" % (NAME, port)],
                     env=e, preload=preload, timeout=timeout)


def tls_records(p, event="tls_failed"):
    return cglib.json_records(p.err, event)
