"""Issue 13: leak reports that mean "leak", with real runtimes. A clean run (a healthy
connection held by a pool to the end, the runtime's own socketpairs) reports nothing and keeps
the exit status under CONNGUARD_LEAK_EXITCODE; a run with one planted leak (a connection whose
peer closed and that the program never closes) reports exactly that one. CONNGUARD_LEAKS=all
shows what was left out, so that "nothing reported" cannot come from broken tracking."""
import os
import shutil
import socket
import threading

import cglib
import leaklib
from cglib import check


class Servers:
    """Two loopback listeners in this (unpreloaded) process: `hold` keeps every connection
    open until stopped, `close` closes each one as soon as it is accepted."""

    def __init__(self):
        self.held, self.socks = [], []
        self.hold = self._listen(False)
        self.close = self._listen(True)

    def _listen(self, close):
        l = socket.socket()
        l.bind(("127.0.0.1", 0))
        l.listen(16)
        self.socks.append(l)

        def loop():
            while True:
                try:
                    c, _ = l.accept()
                except OSError:
                    return
                if close:
                    c.close()
                else:
                    self.held.append(c)
        threading.Thread(target=loop, daemon=True).start()
        return l.getsockname()[1]

    def __enter__(self):
        return self

    def __exit__(self, *a):
        for s in self.socks + self.held:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


def _run(cmd, mode, leaks="exit", timeout=90):
    with Servers() as srv:
        p = leaklib.run(cmd + [str(srv.hold), str(srv.close), mode], timeout=timeout,
                        env={"CONNGUARD_LEAKS": leaks, "CONNGUARD_LEAK_EXITCODE": "23"})
        p.close_port = srv.close
    return p


def _clean(cmd, ok_out):
    p = _run(cmd, "clean")
    check(p.returncode == 0 and p.out.endswith(ok_out), "clean run: result and exit status kept", got=p.out + p.err)
    check(p.err == "", "clean run: nothing reported", got=p.err)
    a = _run(cmd, "clean", leaks="all")
    check(a.returncode == 0 and a.leaks == [], "CONNGUARD_LEAKS=all: still no leak", got=a.err)
    held = [x for r in a.held for x in r["reason"]]
    check("connected" in held, "CONNGUARD_LEAKS=all lists the pool's healthy connection", got=a.err)
    check(a.sums and a.sums[0]["not_reported"] == sum(r["sockets"] for r in a.held), "summary counts them", got=a.err)
    return a


def _planted(cmd, ok_out, fd_from_output=True):
    p = _run(cmd, "plant")
    check(p.returncode == 23 and p.out.endswith(ok_out), "a real leak: CONNGUARD_LEAK_EXITCODE applies", got=p.out + p.err)
    check(len(p.leaks) == 1, "exactly one leak record", got=p.err)
    r = p.leaks[0]
    check(r["sockets"] == 1 and r["state"] == ["CLOSE_WAIT"] and r["reason"] == ["peer_closed"], "the planted one", got=p.err)
    check(r["peer"][0].endswith(":%d" % p.close_port), "its peer", got=p.err)
    if fd_from_output:
        check(r["fds"] == [int(p.out.split()[0])], "its fd", got=p.out + p.err)
    s = p.sums[0]
    check((s["groups"], s["sockets"]) == (1, 1) and s["not_reported"] >= 1, "summary", got=p.err)
    check("open socket" in s["hint"] and "not reported" in s["hint"] and "CONNGUARD_LEAKS=all lists them" in s["hint"],
          "the summary says what it left out", got=p.err)


def test_python_clean_and_planted():
    cmd = [cglib.PYTHON, leaklib.prog("runtime_client.py")]
    _clean(cmd, "ok\n")
    _planted(cmd, "ok\n")


def _node():
    node = shutil.which("node") or shutil.which("nodejs")
    if not node:
        raise cglib.Skip("node not installed")
    return [node, leaklib.prog("runtime_client.js")]


def test_node_clean_and_planted():
    cmd = _node()
    _clean(cmd, "ok\n")
    _planted(cmd, "ok\n")


def _java():
    java = shutil.which("java")
    if not java:
        raise cglib.Skip("java not installed")
    return [java, "-Xshare:auto", leaklib.prog("RuntimeClient.java")]


def test_java_clean_and_planted():
    """The JVM keeps one end of a socketpair for good (its pre-close descriptor): not a leak."""
    cmd = _java()
    a = _clean(cmd, "ok\n")
    check(any("socketpair_end" in r["reason"] for r in a.held), "java's own socketpair end is listed, not reported",
          got=a.err)
    _planted(cmd, "ok\n", fd_from_output=False)
test_java_clean_and_planted.timeout = 240


def _http_server():
    """A loopback HTTP server (python's http.server, an empty directory): git and socat talk to it."""
    port = cglib.free_port()
    d = cglib.tmpdir()
    srv = cglib.spawn([cglib.PYTHON, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", d],
                      stdout=cglib.subprocess.DEVNULL, stderr=cglib.subprocess.DEVNULL)
    cglib.wait_listening(port)
    return srv, port


def _plant_env(close_port):
    """The program's environment with cgplant preloaded after the shim: one CLOSE_WAIT socket
    made in a library constructor, never closed."""
    lib = os.path.join(cglib.BUILD, "clients", "libcgplant.so")
    return {"LD_PRELOAD": cglib.env_for()["LD_PRELOAD"] + " " + lib, "CG_PLANT_PORT": close_port,
            "CONNGUARD_LEAK_EXITCODE": "23"}


def _planted_in(cmd, ok, rc=0, **kw):
    """cmd with one leak planted in each of its processes (git runs helpers, which inherit the
    preload): in each, that one is reported, with its peer, and nothing of the program's own;
    an exit status of 0 (rc, the program's own) becomes CONNGUARD_LEAK_EXITCODE's, another stays."""
    with Servers() as srv:
        p = leaklib.run(cmd, env=_plant_env(srv.close), **kw)
    check(ok(p), "the program's own result", got="rc=%d out=%r err=%r" % (p.returncode, p.out[:200], p.err))
    check(p.returncode == (23 if rc == 0 else rc), "CONNGUARD_LEAK_EXITCODE applies to a 0 status only", got=p.err)
    pids = sorted({r["pid"] for r in p.leaks})
    check(pids and len(p.leaks) == len(pids), "exactly one leak record per process", got=p.err)
    for r in p.leaks:
        check(r["sockets"] == 1 and r["state"] == ["CLOSE_WAIT"] and r["reason"] == ["peer_closed"],
              "the planted one", got=p.err)
        check(r["peer"][0].endswith(":%d" % srv.close), "its peer", got=p.err)
    check(sorted(s["pid"] for s in p.sums) == pids and all((s["groups"], s["sockets"]) == (1, 1) for s in p.sums),
          "one summary per process, one socket each", got=p.err)


def test_git_clean_and_planted():
    """git over http (libcurl): its socketpair is held at both ends to the end."""
    if not shutil.which("git"):
        raise cglib.Skip("git not installed")
    try:
        cglib._san_probe(["curl"])
    except cglib.Skip:
        raise cglib.Skip("git's http transport is libcurl, which hangs with the sanitizer runtime preloaded")
    srv, port = _http_server()
    url = "http://127.0.0.1:%d/none.git" % port
    bare = cglib.run(["git", "ls-remote", url], preload=False)
    p = leaklib.run(["git", "ls-remote", url], env={"CONNGUARD_LEAK_EXITCODE": "23"})
    check(p.returncode == bare.returncode and p.out == bare.out, "git's own result", got=p.err)
    check(p.leaks == [] and p.sums == [] and "connguard" not in p.err, "nothing reported", got=p.err)
    a = leaklib.run(["git", "ls-remote", url], env={"CONNGUARD_LEAKS": "all"})
    check(a.leaks == [] and any("socketpair" in r["reason"] for r in a.held),
          "CONNGUARD_LEAKS=all lists the socketpair", got=a.err)
    _planted_in(["git", "ls-remote", url], lambda p: p.out == bare.out, rc=bare.returncode)
    cglib.stop(srv)


def test_socat_clean_and_planted():
    """socat keeps its own socketpair and, after the exchange, a connection both sides ended."""
    if not shutil.which("socat"):
        raise cglib.Skip("socat not installed")
    srv, port = _http_server()
    req = b"GET / HTTP/1.0\r\n\r\n"
    cmd = ["socat", "-", "TCP:127.0.0.1:%d" % port]
    p = cglib.run(cmd, env={"CONNGUARD_LEAK_EXITCODE": "23"}, input=req)
    check(p.returncode == 0 and p.out.startswith("HTTP/1.0 200"), "socat's own result",
          got="rc=%d out=%r err=%r" % (p.returncode, p.out[:200], p.err))
    check(p.err == "", "nothing reported", got=p.err)
    a = cglib.run(cmd, env={"CONNGUARD_LEAKS": "all"}, input=req)
    recs, sums = leaklib.report(a.err, held=True)
    check(recs and all(r["event"] == "open_at_exit" for r in recs), "CONNGUARD_LEAKS=all: listed, none a leak", got=a.err)
    check(any("socketpair" in r["reason"] for r in recs), "socat's socketpair", got=a.err)
    _planted_in(cmd, lambda p: p.out.startswith("HTTP/1.0 200"), input=req)
    cglib.stop(srv)
