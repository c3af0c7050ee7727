"""An unmodified-style python program that leaks: N client connections and M accepted ones,
kept alive by a pool thread that never lets go (daemon threads are not cleaned up at
interpreter exit, so these sockets are still open when the process exits).
usage: pool_leak.py N M [subprocess]   prints "ok"; with "subprocess" it also runs `true`
through subprocess (vfork + close_range in the child) before exiting."""
import socket
import subprocess
import sys
import threading

n, m = int(sys.argv[1]), int(sys.argv[2])
pool = []
never = threading.Event()


def keeper(conns):
    never.wait()


lst = socket.socket()
lst.bind(("127.0.0.1", 0))
lst.listen(16)
addr = lst.getsockname()
for _ in range(n):
    pool.append(socket.create_connection(addr))
for _ in range(m):
    pool.append(lst.accept()[0])
lst.close()
threading.Thread(target=keeper, args=(pool,), daemon=True).start()
if "subprocess" in sys.argv[3:]:
    subprocess.run(["true"], check=True)
print("ok")
