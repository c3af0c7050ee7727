"""Python program for test_python_stacks: each mode fails or leaks at a line marked `# AT:name`
(the test reads the line numbers from this file), one function deep so that frames can be
checked by function name too. Runs unchanged on CPython 3.9 to 3.13.
usage: pystack_app.py MODE PORT [DELAY]"""
import os
import socket
import ssl
import sys
import threading
import time

mode, port = sys.argv[1], int(sys.argv[2])


def open_conn(port):
    s = socket.socket()
    try:
        s.connect(("127.0.0.1", port))  # AT:connect
        print("connected")
    except OSError as e:
        print("client: %s" % e.strerror)
    s.close()


def handshake(port):
    ctx = ssl.create_default_context()
    raw = socket.create_connection(("127.0.0.1", port))
    try:
        ctx.wrap_socket(raw, server_hostname="localhost")  # AT:handshake
    except (ssl.SSLError, OSError) as e:
        print("client: %s" % type(e).__name__)
    raw.close()


def eof_server(l):
    """Accepts and closes: every handshake meets EOF."""
    while True:
        try:
            c, _ = l.accept()
        except OSError:
            return
        c.close()


def leak_pool(n):
    held = []
    for _ in range(n):
        held.append(socket.socket().detach())  # AT:leak_pool
    return held


def leak_one():
    return socket.socket().detach()  # AT:leak_one


async def aio_fetch(port):
    import asyncio
    await asyncio.open_connection("127.0.0.1", port)  # AT:aio


async def aio_main(port):
    try:
        await aio_fetch(port)
    except OSError:
        print("client: refused")


def late_listener(port, delay):
    time.sleep(delay)
    l = socket.socket()
    l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind(("127.0.0.1", port))
    l.listen(8)
    return l


if mode == "refused":
    open_conn(port)
elif mode == "late":
    box = []
    t = threading.Thread(target=lambda: box.append(late_listener(port, float(sys.argv[3]))))
    t.start()
    open_conn(port)
    t.join()
    box[0].close()
elif mode == "tls":
    l = socket.socket()
    l.bind(("127.0.0.1", 0))
    l.listen(8)
    threading.Thread(target=eof_server, args=(l,), daemon=True).start()
    handshake(l.getsockname()[1])
elif mode == "asyncio":
    import asyncio
    asyncio.run(aio_main(port))
elif mode == "leak":
    leak_pool(3)
    leak_one()
    s = socket.socket()
    s.close()
print("done")
