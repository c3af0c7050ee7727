"""A TLS server on 127.0.0.1 whose first N connections fail during the handshake.

usage: tls_flaky.py PORT MODES N CERT KEY [COUNT]
  MODES is a comma-separated list, used in turn by the first N connections:
       reset: read the ClientHello, then reset the connection (RST)
       eof:   read the ClientHello, then close (FIN)
       close: close right after accept, before reading anything
       hang:  read the ClientHello and never answer (the connection stays open)
Connections after the first N get a normal TLS handshake and a one-line HTTP reply "ok".
Serves COUNT connections in all, then exits (60 s at most). On SIGTERM it prints
"failed=F served=S sni=NAME,..." (the SNI names of the served handshakes) so that tests can
check how many attempts reached it and what the retried handshakes asked for."""
import signal
import socket
import ssl
import struct
import sys
import time

port, modes, n, cert, key = int(sys.argv[1]), sys.argv[2].split(","), int(sys.argv[3]), sys.argv[4], sys.argv[5]
count = int(sys.argv[6]) if len(sys.argv) > 6 else 10
failed = served = 0
hung = []
snis = []


def report(*_):
    print("failed=%d served=%d sni=%s" % (failed, served, ",".join(snis)), flush=True)
    sys.exit(0)


signal.signal(signal.SIGTERM, report)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
ctx.sni_callback = lambda sock, name, c: snis.append(name or "-")
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", port))
s.listen(16)
s.settimeout(60)
end = time.time() + 60
for i in range(count):
    if time.time() > end:
        break
    try:
        c, _ = s.accept()
    except OSError:
        break
    c.settimeout(10)
    if i < n:
        mode = modes[i % len(modes)]
        failed += 1
        try:
            if mode != "close":
                c.recv(4096)          # the ClientHello
            if mode == "reset":
                c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            if mode == "hang":
                hung.append(c)
                continue
        except OSError:
            pass
        if i == count - 1:
            s.close()   # the last one: stop listening first, so a reconnect is refused, not queued
        c.close()
        continue
    try:
        t = ctx.wrap_socket(c, server_side=True)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = t.recv(4096)
            if not chunk:
                break
            data += chunk
        t.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n")
        served += 1
        t.close()
    except (OSError, ssl.SSLError):
        c.close()
report()
