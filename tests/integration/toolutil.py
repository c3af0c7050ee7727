"""Helpers for the `connguard` tool tests (tests/integration/test_tool_*.py)."""
import json
import os
import select
import struct
import subprocess
import time

import cglib
from cglib import check

TOOL = cglib.TOOL
LEAKY = os.path.join(cglib.CLIENTS, "leaky")
LAYOUT = os.path.join(cglib.CLIENTS, "stats_layout")

# A program that fails one connect (closed port), then waits: its counters are known exactly.
# argv: PORT [SECONDS]
CLOSED_CLIENT = r"""
import signal, socket, sys, time
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))   # a normal exit removes the segment
s = socket.socket()
try:
    s.connect(("127.0.0.1", int(sys.argv[1])))
    print("connected", flush=True)
except OSError as e:
    print("ready", e.errno, flush=True)
s.close()
time.sleep(float(sys.argv[2]) if len(sys.argv) > 2 else 60)
"""


def tool(args, env=None, timeout=30, input=None):
    """Runs the tool (no preload in its own environment)."""
    return cglib.run([TOOL] + list(args), env=env, preload=False, timeout=timeout, input=input)


def start(args, env=None, ready="ready", timeout=20, prefix=()):
    """Starts `connguard ARGS` in the background (after PREFIX, a command that ends by exec'ing
    its arguments) and waits (bounded) for a stdout line starting with `ready`. Returns
    (process, that line)."""
    p = cglib.spawn(list(prefix) + [TOOL] + list(args), env=env, preload=False,
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    end = time.time() + timeout
    buf = b""
    while time.time() < end:
        r, _, _ = select.select([p.stdout], [], [], 0.2)
        if r:
            chunk = os.read(p.stdout.fileno(), 4096)
            if not chunk:
                break
            buf += chunk
            for line in buf.decode("utf-8", "replace").splitlines(True):
                if line.endswith("\n") and line.startswith(ready):
                    return p, line.rstrip("\n")
        elif p.poll() is not None:
            break
    err = p.stderr.read().decode("utf-8", "replace") if p.poll() is not None else ""
    cglib.stop(p)
    raise cglib.TestFailure("no '%s' line from %s within %ss; stdout %r stderr %r"
                            % (ready, args, timeout, buf, err))


def start_closed_client(extra_opts=(), seconds=60, port=None):
    """A python client under connguard that fails one connect to a closed port and waits."""
    port = port or cglib.free_port()
    opts = ["--retries", "2", "--backoff", "10ms", "--jitter", "none", "--log", os.devnull]
    p, line = start(opts + list(extra_opts) + ["--", cglib.PYTHON, "-c", CLOSED_CLIENT, str(port), str(seconds)])
    check(line == "ready 111", "the client must see ECONNREFUSED", got=line)
    return p, port


def stat_json(pid):
    r = tool(["stat", "--json", str(pid)])
    check(r.returncode == 0, "stat --json failed", got=r.err)
    return json.loads(r.out)


def segment_path(pid, uid=None):
    return "/dev/shm/connguard.%d.%d" % (os.getuid() if uid is None else uid, pid)


def wait_segment(pid, timeout=10):
    end = time.time() + timeout
    while time.time() < end:
        if os.path.exists(segment_path(pid)):
            return
        time.sleep(0.02)
    raise cglib.TestFailure("no counters segment for pid %d" % pid)


_layout = None


def layout():
    global _layout
    if _layout is None:
        r = cglib.run([LAYOUT], preload=False)
        check(r.returncode == 0, "stats_layout failed", got=r.err)
        _layout = json.loads(r.out)
    return _layout


def dead_pid():
    """The pid of a process that has just exited (reuse right away is unlikely)."""
    p = subprocess.Popen(["/bin/true"])
    p.wait()
    return p.pid


def fake_segment(pid, uid=None, magic=None, version=None, size=None, hdr_pid=None, counters=None,
                 truncate_to=None, exe="/usr/bin/fake-program"):
    """Writes /dev/shm/connguard.<uid>.<pid> as a process would have left it."""
    L = layout()
    uid = os.getuid() if uid is None else uid
    buf = bytearray(L["size"])
    struct.pack_into("<IIII", buf, 0, L["magic"] if magic is None else magic,
                     L["version"] if version is None else version, L["size"] if size is None else size, 0)
    struct.pack_into("<iI", buf, L["pid"], pid if hdr_pid is None else hdr_pid, uid)
    struct.pack_into("<q", buf, L["start_ns"], int(time.time() * 1e9) - 5 * 10**9)
    e = exe.encode()
    buf[L["exe"]:L["exe"] + len(e)] = e
    for name, val in (counters or {}).items():
        if name.startswith("errno:"):
            off = L["failures_by_errno"] + 8 * int(name[6:])
        else:
            off = L[name]
        struct.pack_into("<Q", buf, off, val)
    if truncate_to is not None:
        buf = buf[:truncate_to]
    path = segment_path(pid, uid)
    # Shim processes of other tests remove the segments of dead processes as they start; they
    # leave a file whose modification time is in the future alone (cg_stats_reap), so the
    # planted segment stays until the tool under test has looked at it. Dated before it
    # appears under its name.
    tmp = path + ".plant"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, bytes(buf))
    os.close(fd)
    future = time.time() + 86400
    os.utime(tmp, (future, future))
    os.rename(tmp, path)
    return path


def remove(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
