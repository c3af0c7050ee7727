"""Loopback test servers, run as separate processes so tests can stop them by pid.

usage: servers.py MODE HOST PORT DELAY COUNT [ARGS...]
  http   answer COUNT HTTP/1.0 requests with "ok\n", then exit
  echo   echo one line per connection, COUNT connections
  line   send "hello\n" and close, COUNT connections
Starts listening only after DELAY seconds (a late server). Exits after 60 s in any case.
DELAY may also be "after:GLOB:N": start listening as soon as the log files matching GLOB hold
N connect_failed records (at most 30 s), so that a test knows exactly how many attempts fail.
"""
import glob
import socket
import sys
import time

mode, host, port, delay, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5])


def failed_records(pattern):
    n = 0
    for path in glob.glob(pattern):
        try:
            with open(path, "rb") as f:
                n += f.read().count(b"connect_failed")
        except OSError:
            pass
    return n


if delay.startswith("after:"):
    pattern, want = delay[6:].rsplit(":", 1)
    print("waiting", flush=True)
    end = time.time() + 30
    while failed_records(pattern) < int(want) and time.time() < end:
        time.sleep(0.005)
else:
    time.sleep(float(delay))
if host.startswith("unix:"):           # HOST unix:/path (PORT ignored): a unix stream socket
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(host[5:])
else:
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port))
s.listen(64)
s.settimeout(60)
print("listening", flush=True)
for _ in range(count):
    c, _ = s.accept()
    c.settimeout(10)
    try:
        if mode == "http":
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = c.recv(4096)
                if not chunk:
                    break
                data += chunk
            c.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n")
        elif mode == "echo":
            data = c.recv(4096)
            c.sendall(data)
        elif mode == "line":
            c.sendall(b"hello\n")
    except OSError:
        pass
    finally:
        c.close()
s.close()
