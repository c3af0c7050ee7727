"""Real, unmodified programs under LD_PRELOAD (set only in the child's environment): curl,
/usr/bin/python3 (blocking socket, socket with a timeout, urllib) and nc (openbsd), against a
server that starts late, one that never starts, and a listener that drops SYNs."""
import re
import shutil

import cglib
import cgconn
from cglib import check
from cgconn import LogDir

PY_BLOCKING = "import socket,sys\ns=socket.create_connection((sys.argv[1],int(sys.argv[2])))\nprint(s.recv(100).decode().strip())\n"
PY_TIMEOUT = "import socket,sys\ns=socket.create_connection((sys.argv[1],int(sys.argv[2])),timeout=float(sys.argv[3]))\nprint(s.recv(100).decode().strip())\n"
PY_ASYNCIO = ("import asyncio,sys\nasync def main():\n    r,w=await asyncio.open_connection(sys.argv[1],int(sys.argv[2]))\n"
              "    print((await r.readline()).decode().strip())\n    w.close()\nasyncio.run(main())\n")
PY_URLLIB = "import sys,urllib.request\nprint(urllib.request.urlopen(sys.argv[1]).read().decode().strip())\n"


def _need(prog):
    if not shutil.which(prog):
        raise cglib.Skip("%s not installed" % prog)


def _url(host, port):
    return "http://%s/" % cgconn.dst_of(host, port)


def _cmd(kind, host, port, timeout=5):
    if kind == "curl":
        return ["curl", "-sS", "-g", _url(host, port)]
    if kind == "curl_timeout":
        return ["curl", "-sS", "-g", "--connect-timeout", str(timeout), _url(host, port)]
    if kind == "py_blocking":
        return [cglib.PYTHON, "-c", PY_BLOCKING, host, str(port)]
    if kind == "py_timeout":
        return [cglib.PYTHON, "-c", PY_TIMEOUT, host, str(port), str(timeout)]
    if kind == "py_asyncio":
        return [cglib.PYTHON, "-c", PY_ASYNCIO, host, str(port)]
    if kind == "py_urllib":
        return [cglib.PYTHON, "-c", PY_URLLIB, _url(host, port)]
    if kind == "nc":
        return ["nc", host, str(port)]
    if kind == "nc_z":
        return ["nc", "-z", "-v", host, str(port)]
    raise ValueError(kind)


SERVER_MODE = {"curl": "http", "curl_timeout": "http", "py_urllib": "http"}
OUTPUT = {"curl": "ok\n", "curl_timeout": "ok\n", "py_urllib": "ok\n", "py_blocking": "hello\n",
          "py_timeout": "hello\n", "py_asyncio": "hello\n", "nc": "hello\n", "nc_z": ""}
MODULE = {"curl": "libcurl", "curl_timeout": "libcurl", "py_blocking": "python3", "py_timeout": "python3",
          "py_urllib": "python3", "py_asyncio": "python3", "nc": "nc", "nc_z": "nc"}
PROG = {"curl": "curl", "curl_timeout": "curl", "nc": "nc", "nc_z": "nc"}


def _normalize(text):
    # curl reports how long it tried: "after 352 ms" / "after 2001 milliseconds".
    return re.sub(r"after \d+ (ms|milliseconds)", "after N \\1", text)


def _fam(host):
    return cgconn.socket.AF_INET6 if ":" in host else cgconn.socket.AF_INET


def _late(kind, host):
    _need(PROG.get(kind, "true"))
    port = cglib.free_port(_fam(host))
    with LogDir() as lg:
        cgconn.trigger_server(port, lg, after=2, host=host, mode=SERVER_MODE.get(kind, "line"))
        p = cglib.run(_cmd(kind, host, port), env=lg.env(**cgconn.LATE_ENV), input=b"", timeout=30)
        check(p.returncode == 0 and p.out == OUTPUT[kind], "%s did not recover" % kind, got=p.out + p.err)
        if kind == "nc_z":
            check(re.match(r"^Connection to \S+ %d port \[tcp/\*\] succeeded!\n$" % port, p.err), "nc -v output", got=p.err)
        else:
            check(p.err == "", "stderr must stay the program's own", got=p.err)
        cgconn.check_late(lg.records(), 2, cgconn.dst_of(host, port), module=MODULE[kind])


def _never(kind, host):
    _need(PROG.get(kind, "true"))
    port = cglib.free_port(_fam(host))
    bare = cglib.run(_cmd(kind, host, port), preload=False, input=b"")
    check(bare.returncode != 0, "%s connected to a closed port?" % kind, got=bare.out + bare.err)
    with LogDir() as lg:
        p = cgconn.timed_run(_cmd(kind, host, port), env=lg.env(), input=b"", timeout=30)
        check(p.returncode == bare.returncode and p.out == bare.out and _normalize(p.err) == _normalize(bare.err),
              "%s must fail exactly as without the shim" % kind,
              got="with shim rc=%d:\n%s%s\nwithout rc=%d:\n%s%s" % (p.returncode, p.out, p.err, bare.returncode, bare.out, bare.err))
        cgconn.check_never(lg.records(), cgconn.dst_of(host, port), module=MODULE[kind])
        check(p.elapsed < 10, "took %.1fs" % p.elapsed)


def _make(fn, kind, host):
    def t():
        if ":" in host:
            cgconn.need_ipv6()
        fn(kind, host)
    t.timeout = 60
    return t


for _kind in ("curl", "py_blocking", "py_timeout", "py_urllib", "py_asyncio", "nc", "nc_z"):
    globals()["test_late_%s" % _kind] = _make(_late, _kind, "127.0.0.1")
    globals()["test_never_%s" % _kind] = _make(_never, _kind, "127.0.0.1")
for _kind in ("curl", "py_blocking", "py_timeout", "nc_z"):
    globals()["test_late_ipv6_%s" % _kind] = _make(_late, _kind, "::1")
    globals()["test_never_ipv6_%s" % _kind] = _make(_never, _kind, "::1")


SYN_ENV = {"CONNGUARD_CONNECT_TIMEOUT_MS": 200, "CONNGUARD_RETRIES": 2}


def test_syn_drop_py_blocking():
    """python without a timeout blocks in connect(): each attempt is cut at 200 ms, retried,
    and python gets ETIMEDOUT from connect() when the retries run out."""
    with cglib.FullBacklog() as fb, LogDir() as lg:
        p = cgconn.timed_run(_cmd("py_blocking", "127.0.0.1", fb.port), env=lg.env(**SYN_ENV), timeout=30)
        check(p.returncode == 1 and p.err.splitlines()[-1] == "TimeoutError: [Errno 110] Connection timed out",
              "python result", got=p.err)
        cgconn.check_failures(lg.records(), 3, errno="ETIMEDOUT", dst="127.0.0.1:%d" % fb.port, last="give_up",
                              module="python3")
        check(p.elapsed < 5, "took %.1fs" % p.elapsed)


def test_syn_drop_ipv6_py_blocking():
    cgconn.need_ipv6()
    with cglib.FullBacklog("::1") as fb, LogDir() as lg:
        p = cgconn.timed_run(_cmd("py_blocking", "::1", fb.port), env=lg.env(**SYN_ENV), timeout=30)
        check(p.returncode == 1 and p.err.splitlines()[-1] == "TimeoutError: [Errno 110] Connection timed out",
              "python result", got=p.err)
        cgconn.check_failures(lg.records(), 3, errno="ETIMEDOUT", dst="[::1]:%d" % fb.port, last="give_up")
        check(p.elapsed < 5, "took %.1fs" % p.elapsed)


def test_syn_drop_py_timeout():
    """python with timeout=1.5 waits in poll(): attempts 1 and 2 are cut and retried inside
    it; python's own timer ends the last one, with the error it gives without the shim."""
    with cglib.FullBacklog() as fb, LogDir() as lg:
        p = cgconn.timed_run(_cmd("py_timeout", "127.0.0.1", fb.port, timeout=1.5), env=lg.env(**SYN_ENV), timeout=30)
        check(p.returncode == 1 and p.err.splitlines()[-1] == "TimeoutError: timed out", "python result", got=p.err)
        cgconn.check_failures(lg.records(), 2, errno="ETIMEDOUT", dst="127.0.0.1:%d" % fb.port, last="retry",
                              module="python3")
        check(1.4 < p.elapsed < 5, "python's own timeout must decide: %.1fs" % p.elapsed)


def test_syn_drop_curl():
    """curl --connect-timeout 1.5: curl's own timer ends the last attempt, exactly as without
    the shim (error 28); the attempts before it were cut at 200 ms and retried."""
    _need("curl")
    with cglib.FullBacklog() as fb, LogDir() as lg:
        bare = cglib.run(_cmd("curl_timeout", "127.0.0.1", fb.port, timeout=1.5), preload=False)
        p = cgconn.timed_run(_cmd("curl_timeout", "127.0.0.1", fb.port, timeout=1.5), env=lg.env(**SYN_ENV), timeout=30)
        check(bare.returncode == 28, "curl without the shim", got=bare.err)
        check(p.returncode == 28 and _normalize(p.err) == _normalize(bare.err), "curl result", got=p.err)
        cgconn.check_failures(lg.records(), 2, errno="ETIMEDOUT", dst="127.0.0.1:%d" % fb.port, last="retry",
                              module="libcurl")
        check(p.elapsed < 5, "took %.1fs" % p.elapsed)


PY_RECONNECT = (
    "import ctypes,socket,struct,sys\n"
    "s=socket.socket()\n"
    "s.settimeout(10)\n"
    "s.connect(('127.0.0.1',int(sys.argv[1])))\n"
    "unspec=struct.pack('H14x',socket.AF_UNSPEC)\n"
    "libc=ctypes.CDLL(None,use_errno=True)\n"
    "assert libc.connect(s.fileno(),unspec,len(unspec))==0,ctypes.get_errno()\n"
    "s.connect(('127.0.0.1',int(sys.argv[2])))\n"
    "print(s.recv(100).decode().strip())\n")


def test_late_after_disconnect_py_timeout():
    """A TCP socket that connected (non-blocking, through poll), was disconnected with
    connect(AF_UNSPEC), and connects again to a server that starts late: the second connect is
    retried like a first one (not taken for a status check on a connected socket, which the
    kernel answers at once)."""
    first = cglib.socket.socket()
    first.bind(("127.0.0.1", 0))
    first.listen(4)
    port = cglib.free_port()
    with LogDir() as lg:
        srv = cgconn.trigger_server(port, lg, after=2, mode="line")
        p = cglib.run([cglib.PYTHON, "-c", PY_RECONNECT, str(first.getsockname()[1]), str(port)],
                      env=lg.env(**cgconn.LATE_ENV), timeout=30)
        check(p.returncode == 0 and p.out == "hello\n", "python did not recover", got=p.out + p.err)
        cgconn.check_late(lg.records(), 2, cgconn.dst_of("127.0.0.1", port), module="python3")
        cglib.stop(srv)
    first.close()


test_late_after_disconnect_py_timeout.timeout = 60
