"""A late loopback server for the zero-configuration tests, stopped by pid.

usage: server.py MODE HOST PORT DELAY
Sleeps DELAY seconds, then listens on HOST:PORT and answers every connection. DELAY may be
"after:FILE:SECS": SECS seconds after FILE (the client's stderr, where the shim logs by default)
first holds a connect_failed record (waited for at most 30 s), so that the server is late for the
client's first connect however long the client takes to start (a JVM).
  http   an HTTP/1.0 response with body "ok\n"
  line   "hello\n", then close
  redis  "+PONG\r\n" to the first command (what redis-cli PING needs)
  pg     an ErrorResponse after the startup packet (after "N" to an SSLRequest): proof that
         psql connected, and an error message psql prints as it is
Exits after 60 s in any case.
"""
import socket
import sys
import time

mode, host, port, delay = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
end = time.time() + 60
if delay.startswith("after:"):
    path, secs = delay[6:].rsplit(":", 1)
    limit = time.time() + 30
    while time.time() < limit:
        try:
            with open(path, "rb") as f:
                if b"connect_failed" in f.read():
                    break
        except OSError:
            pass
        time.sleep(0.01)
    delay = secs
time.sleep(float(delay))
s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((host, port))
s.listen(64)
while time.time() < end:
    s.settimeout(max(0.1, end - time.time()))
    try:
        c, _ = s.accept()
    except OSError:
        break
    c.settimeout(10)
    try:
        data = c.recv(4096)
        if mode == "http":
            while data and b"\r\n\r\n" not in data:
                more = c.recv(4096)
                if not more:
                    break
                data += more
            c.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n")
        elif mode == "line":
            c.sendall(b"hello\n")
        elif mode == "redis":
            c.sendall(b"+PONG\r\n")
        elif mode == "pg":
            if data[4:8] == b"\x04\xd2\x16\x2f":        # SSLRequest: no TLS here
                c.sendall(b"N")
                data = c.recv(4096)
            body = b"SFATAL\0VFATAL\0C28000\0Mconnguard test server\0\0"
            c.sendall(b"E" + (len(body) + 4).to_bytes(4, "big") + body)
            c.recv(4096)
    except OSError:
        pass
    finally:
        c.close()
s.close()
