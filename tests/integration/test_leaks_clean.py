"""Issue 3: well-behaved programs report nothing; fds from before the shim are not leaks."""
import os
import socket
import subprocess

import cglib
import leaklib
from cglib import check


def test_curl_reports_nothing():
    port = cglib.free_port()
    srv = cglib.late_server(port, 0)
    cglib.wait_listening(port)
    p = leaklib.run(["curl", "-sS", "http://127.0.0.1:%d/" % port])
    cglib.stop(srv)
    check(p.returncode == 0 and p.out == "ok\n", "curl result", got=p.err)
    check(p.err == "", "a program that closes its sockets prints nothing", got=p.err)


def test_python_client_that_closes_reports_nothing():
    port = cglib.free_port()
    srv = cglib.late_server(port, 0, count=2)
    cglib.wait_listening(port)
    p = leaklib.run([cglib.PYTHON, leaklib.prog("good_client.py"), str(port)], env={"CONNGUARD_LEAK_EXITCODE": "23"})
    cglib.stop(srv)
    check(p.returncode == 0 and p.out == "ok\n", "client result", got=p.err)
    check(p.err == "", "nothing printed", got=p.err)


def test_sockets_open_before_the_shim_are_not_leaks():
    # This process (no shim) hands an open socket to a child running under the shim; the
    # child dup()s it and leaks one socket of its own as a control.
    s = socket.socket()
    s.set_inheritable(True)
    code = ("import os, socket, sys, threading\n"
            "fd = int(sys.argv[1]); d = os.dup(fd)\n"
            "c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)\n"
            "threading.Thread(target=lambda k: threading.Event().wait(), args=([c, d],), daemon=True).start()\n"
            "print(fd, d, c.fileno())\n")
    env = cglib.env_for({})
    p = subprocess.run([cglib.PYTHON, "-c", code, str(s.fileno())], env=env, pass_fds=[s.fileno()],
                       capture_output=True, timeout=60)
    s.close()
    err = p.stderr.decode()
    fd, d, c = (int(x) for x in p.stdout.split())
    leaks, sums = leaklib.report(err)
    check(p.returncode == 0, "child result", got=err)
    check(len(leaks) == 1 and leaks[0]["fds"] == [c] and leaks[0]["kind"] == "tcp",
          "only the control socket; the inherited one (%d) and its dup (%d) are not leaks" % (fd, d), got=err)
