"""Opens N connections to PORT (a server that closes them: CLOSE_WAIT) and one listener, prints
"ready FD..." and then obeys stdin lines: "close FD" closes one, "exit" ends.
usage: live_leak.py PORT N"""
import socket
import sys

port, n = int(sys.argv[1]), int(sys.argv[2])
socks = {}
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    socks[s.fileno()] = s
lst = socket.socket()
lst.bind(("127.0.0.1", 0))
lst.listen(1)
socks[lst.fileno()] = lst
print("ready", " ".join(str(fd) for fd in socks), flush=True)
for line in sys.stdin:
    cmd = line.split()
    if cmd and cmd[0] == "close":
        socks.pop(int(cmd[1])).close()
        print("closed", flush=True)
    elif cmd and cmd[0] == "exit":
        break
for s in socks.values():
    s.close()
