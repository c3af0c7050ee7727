"""A well-behaved client: every socket it opens is closed (with-statements, urllib).
usage: good_client.py PORT   (an http server that answers N requests)"""
import socket
import sys
import urllib.request

port = int(sys.argv[1])
with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
    s.sendall(b"GET / HTTP/1.0\r\n\r\n")
    while s.recv(4096):
        pass
with urllib.request.urlopen("http://127.0.0.1:%d/" % port, timeout=10) as r:
    body = r.read()
a, b = socket.socketpair()
a.close()
b.close()
print(body.decode().strip())
