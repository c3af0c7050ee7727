"""Dual-stack fallback: a client with another address to try must not be held back retrying
the first one. The backoff here is 3 s, so one retry would cost seconds; the clients must
finish well under that. Names resolving to both ::1 and 127.0.0.1 come from curl's own
"localhost" handling, curl --resolve, or a private /etc/hosts in a mount namespace (unshare)."""
import os
import shutil
import subprocess

import cglib
import cgconn
from cglib import check
from cgconn import LogDir

SLOW = {"CONNGUARD_BACKOFF_MS": 3000, "CONNGUARD_BACKOFF_MAX_MS": 3000}
BOUND = 1.5   # seconds; a single retry would take 3


def _need_curl():
    if not shutil.which("curl"):
        raise cglib.Skip("curl not installed")


def _fallback_record(recs, dst):
    check(len(recs) == 1, "expected exactly one record (the failed first address)", got=recs)
    r = recs[0]
    check(r["event"] == "connect_failed" and r["dst"] == dst and r["attempt"] == 1 and r["action"] == "give_up"
          and r["reason"] == "fallback_address" and r["errno"] == "ECONNREFUSED", "fallback record", got=r)
    check(set(cgconn._no_pystack(r, None)) == cgconn.GIVEUP_KEYS, "record keys", got=sorted(r))
    cgconn.check_stack(r)


def test_curl_localhost_server_on_ipv6_only():
    """curl resolves "localhost" itself (127.0.0.1, then ::1): with the server on ::1 only,
    the refused 127.0.0.1 attempt is handed back at once and curl moves on to ::1."""
    _need_curl()
    cgconn.need_ipv6()
    port = cglib.free_port(cgconn.socket.AF_INET6)
    cgconn.server_now(port, mode="http", host="::1", count=2)
    bare = cglib.run(["curl", "-sS", "http://localhost:%d/" % port], preload=False)
    check(bare.out == "ok\n", "curl does not fall back by itself here", got=bare.err)
    with LogDir() as lg:
        p = cgconn.timed_run(["curl", "-sS", "http://localhost:%d/" % port], env=lg.env(**SLOW))
        check(p.returncode == 0 and p.out == "ok\n" and p.err == "", "curl result", got=p.out + p.err)
        check(p.elapsed < BOUND, "the shim slowed down curl's fallback: %.2fs" % p.elapsed)
        _fallback_record(lg.records(), "127.0.0.1:%d" % port)


def test_curl_resolve_ipv6_first_server_on_ipv4_only():
    _need_curl()
    cgconn.need_ipv6()
    port = cglib.free_port()
    cgconn.server_now(port, mode="http", count=1)
    cmd = ["curl", "-sS", "--resolve", "dual.test:%d:[::1],127.0.0.1" % port, "http://dual.test:%d/" % port]
    with LogDir() as lg:
        p = cgconn.timed_run(cmd, env=lg.env(**SLOW))
        check(p.returncode == 0 and p.out == "ok\n", "curl result", got=p.out + p.err)
        check(p.elapsed < BOUND, "the shim slowed down curl's fallback: %.2fs" % p.elapsed)
        _fallback_record(lg.records(), "[::1]:%d" % port)


def test_curl_localhost_nothing_listening():
    """Neither family listens: both addresses are retried in full (curl runs them side by side)
    and curl fails exactly as without the shim."""
    _need_curl()
    cgconn.need_ipv6()
    port = cglib.free_port()
    while cglib.is_listening(port):
        port = cglib.free_port()
    bare = cglib.run(["curl", "-sS", "http://localhost:%d/" % port], preload=False)
    with LogDir() as lg:
        p = cgconn.timed_run(["curl", "-sS", "http://localhost:%d/" % port], env=lg.env(), timeout=30)
        check(p.returncode == bare.returncode == 7, "curl result", got=p.err)
        recs = lg.records()
        for dst in ("127.0.0.1:%d" % port, "[::1]:%d" % port):
            cgconn.check_never([r for r in recs if r["dst"] == dst], dst, module="libcurl")


# ---- a private /etc/hosts where dual.test is ::1 then 127.0.0.1 ----

def _hosts_cmd(lg, cmd):
    hosts = os.path.join(lg.path, "hosts")
    with open(hosts, "w") as f:
        f.write("::1 dual.test\n127.0.0.1 dual.test\n")
    return ["unshare", "-m", "sh", "-c", 'mount --bind "$0" /etc/hosts && exec "$@"', hosts] + cmd


def _need_unshare():
    if not shutil.which("unshare"):
        raise cglib.Skip("unshare not installed")
    try:
        r = subprocess.run(["unshare", "-m", "true"], capture_output=True, timeout=10)
    except OSError:
        r = None
    if r is None or r.returncode != 0:
        raise cglib.Skip("no mount namespaces here (needs root): cannot give the test its own /etc/hosts")


PY = "import socket,sys\ns=socket.create_connection(('dual.test',int(sys.argv[1])))\nprint(s.getpeername()[0], s.recv(100).decode().strip())\n"


def test_python_dual_name_server_on_ipv4_only():
    """python create_connection walks getaddrinfo's list (::1, 127.0.0.1): the refused ::1 is
    handed back at once because the lookup listed another address after it."""
    _need_unshare()
    cgconn.need_ipv6()
    port = cglib.free_port()
    cgconn.server_now(port, mode="line", count=2)
    with LogDir() as lg:
        bare = cglib.run(_hosts_cmd(lg, [cglib.PYTHON, "-c", PY, str(port)]), preload=False)
        check(bare.out == "127.0.0.1 hello\n", "python without the shim", got=bare.out + bare.err)
        p = cgconn.timed_run(_hosts_cmd(lg, [cglib.PYTHON, "-c", PY, str(port)]), env=lg.env(**SLOW))
        check(p.returncode == 0 and p.out == "127.0.0.1 hello\n", "python result", got=p.out + p.err)
        check(p.elapsed < BOUND + 0.5, "the shim slowed down python's fallback: %.2fs" % p.elapsed)
        _fallback_record(lg.records(), "[::1]:%d" % port)


def test_python_dual_name_late_server():
    """Nothing listens yet: the first address, ::1 (loopback), is held and retried; once the
    server listens on the other family (127.0.0.1), the next failure on ::1 is handed back
    (fallback_address) and python connects to 127.0.0.1 at once."""
    _need_unshare()
    cgconn.need_ipv6()
    port = cglib.free_port()
    with LogDir() as lg:
        cgconn.trigger_server(port, lg, after=2)
        p = cglib.run(_hosts_cmd(lg, [cglib.PYTHON, "-c", PY, str(port)]), env=lg.env(**cgconn.LATE_ENV), timeout=30)
        check(p.returncode == 0 and p.out == "127.0.0.1 hello\n", "python result", got=p.out + p.err)
        recs = lg.records()
        check(len(recs) == 3 and all(r["dst"] == "[::1]:%d" % port for r in recs), "records", got=recs)
        check([(r["attempt"], r["action"], r.get("reason")) for r in recs] ==
              [(1, "retry", None), (2, "retry", None), (3, "give_up", "fallback_address")], "held, then handed back", got=recs)


def test_python_dual_name_late_server_on_the_first_address():
    """The server comes up late on ::1, the first address: held and retried, ::1 is reached
    (under the old rule, ::1 was handed back at once and python waited on 127.0.0.1 for ever)."""
    _need_unshare()
    cgconn.need_ipv6()
    port = cglib.free_port(cgconn.socket.AF_INET6)
    with LogDir() as lg:
        cgconn.trigger_server(port, lg, after=2, host="::1")
        p = cglib.run(_hosts_cmd(lg, [cglib.PYTHON, "-c", PY, str(port)]), env=lg.env(**cgconn.LATE_ENV), timeout=30)
        check(p.returncode == 0 and p.out == "::1 hello\n", "python result", got=p.out + p.err)
        cgconn.check_late(lg.records(), 2, "[::1]:%d" % port, module="python3")


def test_python_dual_name_never_up_one_deadline_for_both():
    """Nothing ever listens: ::1 is retried until the deadline; 127.0.0.1, tried by python right
    after, shares the name's deadline and is handed back at once: one deadline, not two."""
    _need_unshare()
    cgconn.need_ipv6()
    port = cglib.free_port()
    with LogDir() as lg:
        bare = cglib.run(_hosts_cmd(lg, [cglib.PYTHON, "-c", PY, str(port)]), preload=False)
        p = cgconn.timed_run(_hosts_cmd(lg, [cglib.PYTHON, "-c", PY, str(port)]),
                             env=lg.env(CONNGUARD_DEADLINE_MS=1000, CONNGUARD_RETRIES=None), timeout=30)
        check(p.returncode == bare.returncode == 1 and "ConnectionRefusedError" in p.err, "python result", got=p.err)
        recs = lg.records()
        v6 = [r for r in recs if r["dst"] == "[::1]:%d" % port]
        v4 = [r for r in recs if r["dst"] == "127.0.0.1:%d" % port]
        check(len(v6) >= 3 and v6[-1]["action"] == "give_up" and v6[-1]["reason"] == "deadline", "::1 retried to the deadline", got=recs)
        check(len(v4) == 1 and v4[0]["attempt"] == 1 and v4[0]["action"] == "give_up" and v4[0]["reason"] == "deadline",
              "127.0.0.1 handed back at once", got=recs)
        check(p.elapsed < 2.5, "took %.1fs for a 1 s deadline" % p.elapsed)
