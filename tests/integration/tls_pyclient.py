"""A python TLS client for the tests (ssl module, as applications use it).

usage: tls_pyclient.py MODE PORT CAFILE [--name NAME] [--timeout S] [--tls-max 1.2]
  MODE wrap:   socket.create_connection + SSLContext.wrap_socket(server_hostname=NAME), then GET /
       urllib: urllib.request.urlopen("https://127.0.0.1:PORT/")  (the certificate's IP name)
Prints "ok <status line>" or "error <ExceptionClass> <verify_code|errno> <message>"; exit 0 / 1."""
import socket
import ssl
import sys
import urllib.request

mode, port, cafile = sys.argv[1], int(sys.argv[2]), sys.argv[3]
opts = dict(zip(sys.argv[4::2], sys.argv[5::2]))
name = opts.get("--name", "cg.test")
timeout = float(opts["--timeout"]) if "--timeout" in opts else None
ctx = ssl.create_default_context(cafile=cafile)
if opts.get("--tls-max") == "1.2":
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
try:
    if mode == "wrap":
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        t = ctx.wrap_socket(s, server_hostname=name)
        t.sendall(b"GET / HTTP/1.0\r\n\r\n")
        data = b""
        while b"\r\n" not in data:
            chunk = t.recv(4096)
            if not chunk:
                break
            data += chunk
        line = data.split(b"\r\n")[0].decode()
    else:
        with urllib.request.urlopen("https://127.0.0.1:%d/" % port, context=ctx, timeout=timeout) as r:
            line = "HTTP %d" % r.status
    print("ok", line)
except Exception as e:  # noqa: BLE001 - the test compares whatever the program saw
    code = getattr(e, "verify_code", None)
    if code is None:
        code = getattr(e, "errno", None)
    reason = getattr(e, "reason", None)
    if isinstance(e, urllib.error.URLError) and isinstance(reason, Exception):
        e = reason
        code = getattr(e, "verify_code", None) or getattr(e, "errno", None)
    print("error", type(e).__name__, code, str(e).replace("\n", " "))
    sys.exit(1)
