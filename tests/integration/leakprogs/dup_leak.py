"""Two sockets leaked plus one os.dup() of a third (whose original is closed).
usage: dup_leak.py   prints "ok" """
import os
import socket
import threading

keep = [socket.socket(), socket.socket()]
s = socket.socket()
keep.append(os.dup(s.fileno()))
s.close()
threading.Thread(target=lambda k: threading.Event().wait(), args=(keep,), daemon=True).start()
print("ok")
