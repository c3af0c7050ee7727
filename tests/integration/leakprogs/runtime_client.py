"""A python program with a connection pool: one healthy connection held to the end (HOLD_PORT
keeps it open), one connection used and closed (CLOSE_PORT closes it). With "plant", one more
connection whose peer closed (CLOSE_PORT) and that the program never closes: the one leak.
usage: runtime_client.py HOLD_PORT CLOSE_PORT clean|plant   prints the planted fd (or -1), "ok"."""
import socket
import sys
import threading

hold, close, plant = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "plant"
pool = [socket.create_connection(("127.0.0.1", hold))]
used = socket.create_connection(("127.0.0.1", close))
used.recv(1)
used.close()
fd = -1
if plant:
    leaked = socket.create_connection(("127.0.0.1", close))
    leaked.recv(1)                     # EOF: the peer closed; the program never closes it
    pool.append(leaked)
    fd = leaked.fileno()
# Daemon threads are not cleaned up at interpreter exit: the pool is still open at exit.
threading.Thread(target=lambda p: threading.Event().wait(), args=(pool,), daemon=True).start()
print(fd)
print("ok")
