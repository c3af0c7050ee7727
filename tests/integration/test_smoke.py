"""The shim loads into real programs and stays silent when nothing fails."""
import cglib
from cglib import check


def test_healthy_run_is_silent():
    port = cglib.free_port()
    srv = cglib.late_server(port, 0)
    cglib.wait_listening(port)
    p = cglib.run(["curl", "-sS", "http://127.0.0.1:%d/" % port])
    check(p.returncode == 0 and p.out == "ok\n", "curl failed under the shim", got=p.err)
    check(p.err == "", "a healthy run must write nothing", got=p.err)
    cglib.stop(srv)
