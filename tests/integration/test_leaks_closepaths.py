"""Issue 3: sockets closed through paths the close() hook does not see are not leaks."""
import cglib
import leaklib
from cglib import check

MODES = ["fclose", "close_range", "closefrom", "sysclose", "dup2", "rawdup2", "rawsock", "exec"]


def _one(mode):
    b = leaklib.client("leak_closepaths")
    p = leaklib.run([b, mode])
    check(p.returncode == 0, "%s: program failed" % mode, got=p.err)
    control = int(p.out.split()[1])
    # Exactly the control leak: tracking works in this process, and the three sockets closed
    # through `mode` are not reported.
    check(len(p.leaks) == 1, "%s: only the control socket may be reported" % mode, got=p.err)
    r = p.leaks[0]
    check(r["fds"] == [control] and r["sockets"] == 1 and r["kind"] == "tcp", "%s: control" % mode, got=p.err)
    check(leaklib.addr2line(b, r["stack"][0]["offset"]) == "control_leak", "%s: control stack" % mode, got=p.err)
    s = p.sums[0]
    check((s["groups"], s["sockets"]) == (1, 1), "%s: summary" % mode, got=p.err)


def test_fclose_of_fdopen():
    _one("fclose")


def test_close_range():
    _one("close_range")


def test_closefrom():
    _one("closefrom")


def test_syscall_close():
    _one("sysclose")


def test_dup2_over():
    _one("dup2")


def test_raw_dup3_over():
    _one("rawdup2")


def test_raw_dup3_of_another_socket_over():
    # The numbers are sockets again at exit, but other sockets: only the inode tells.
    _one("rawsock")


def test_exec_with_cloexec():
    _one("exec")
