"""Stack capture holds no descriptor (issue 11 item 1): after connects that fail, are retried
and logged with stacks (from the main thread and from other threads), /proc/self/fd of the
program lists exactly what it lists without the shim. (libunwind kept a pipe for its memory
probe; libgcc's unwinder opens nothing.)"""
import cglib
import cgconn
from cglib import check
from cgconn import LogDir, client

PY_FDS = r"""
import os, socket, sys, threading
port, n = int(sys.argv[1]), int(sys.argv[2])
def once():
    s = socket.socket()
    try:
        s.connect(("127.0.0.1", port))
        sys.exit("connected?")
    except ConnectionRefusedError:
        pass
    s.close()
for i in range(n):
    if i % 2:
        t = threading.Thread(target=once); t.start(); t.join()
    else:
        once()
d = os.open("/proc/self/fd", os.O_RDONLY | os.O_DIRECTORY)
for fd in sorted(int(x) for x in os.listdir(d)):
    if fd == d:
        continue
    try:
        print(fd, os.readlink("/proc/self/fd/%d" % fd).split(":[")[0])
    except OSError:
        pass
"""

N = 4
RETRIES = 2


def _compare(args, what):
    port = cglib.free_port()
    bare = cglib.run(args + [str(port), str(N)], preload=False)
    check(bare.returncode == 0, "%s without the shim" % what, got=bare.out + bare.err)
    with LogDir() as lg:
        p = cglib.run(args + [str(port), str(N)],
                      env=lg.env(CONNGUARD_RETRIES=RETRIES, CONNGUARD_STACK_DEPTH=64, CONNGUARD_LEAKS="exit"))
        check(p.returncode == 0, "%s under the shim" % what, got=p.out + p.err)
        # The log file's own descriptor is the log's business (the general listing test covers
        # it); every other line must be the same.
        out = "".join(l + "\n" for l in p.out.splitlines() if not l.split(" ", 1)[-1].startswith(lg.path + "/"))
        check(out == bare.out, "%s lists other descriptors under the shim" % what,
              got="with:\n%s\nwithout:\n%s" % (p.out, bare.out))
        recs = [r for r in lg.records() if r["event"] == "connect_failed"]
        check(len(recs) == N * (RETRIES + 1), "one record per attempt", got=recs)
        for r in recs:
            cgconn.check_stack(r)


def test_c_client_fds_same_after_failed_connects_with_stacks():
    _compare([client("rb_stack_fds")], "rb_stack_fds")


def test_python_fds_same_after_failed_connects_with_stacks():
    _compare([cglib.PYTHON, "-c", PY_FDS], "python3")
