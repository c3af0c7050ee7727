"""Reads one line from each of N connections to a server that then closes, and never closes
its own end: the sockets sit in CLOSE_WAIT until exit. usage: closewait_leak.py PORT N"""
import socket
import sys
import threading

port, n = int(sys.argv[1]), int(sys.argv[2])
conns = []
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    f = s.makefile("rb")
    f.readline()
    f.read()          # EOF: the server closed
    conns.append((s, f))
# Held by a thread that never ends: daemon threads are not cleaned up at interpreter exit.
threading.Thread(target=lambda c: threading.Event().wait(), args=(conns,), daemon=True).start()
print("ok")
