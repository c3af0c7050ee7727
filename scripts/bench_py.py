#!/usr/bin/env python3
"""Cost of leak tracking with Python stacks (issue 15): a Python program makes 2,000 loopback
connections in a loop (socket, connect, close). Limit: 1.05x with Python stacks on, against
the same loop without the shim.

Whole-process times move by 10% and more from run to run on a shared 2-core VM, so the figure is
taken in-process, as bench_leaks.py does for C: each iteration of the loop is followed by the same
three system calls made raw through ctypes (socket, connect, close with syscall(2): no hook sees
them), and the program prints the median time of each kind. Their ratio, divided by the same
ratio without the shim, is the shim's cost on the Python loop; both kinds share the process, its
caches and its noisy neighbours. Three configurations, alternating: without the shim, the shim
with CONNGUARD_PYSTACK=off, the shim with Python stacks on (leak tracking on in both). Figures
are medians over --rounds rounds. The listener is a separate process without the shim.
usage: bench_py.py [--rounds N] [--python PATH]
Exit status 0 always: figures are for people and `make bench`, not a pass/fail test."""
import os
import statistics
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
BUILD = os.path.join(ROOT, os.environ.get("BUILD", "build"))
SHIM = os.path.join(BUILD, "libconnguard.so")
LOOP = os.path.join(BUILD, "clients", "bench_loop")

PROG = r"""
import ctypes, socket, statistics, struct, sys, time
port = int(sys.argv[1])
n = int(sys.argv[2])
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
sa = struct.pack("<HH4s8x", socket.AF_INET, socket.htons(port), socket.inet_aton("127.0.0.1"))
SYS_socket, SYS_connect, SYS_close = 41, 42, 3

def open_one(addr):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.connect(addr)
    s.close()

def open_raw():
    fd = libc.syscall(SYS_socket, socket.AF_INET, socket.SOCK_STREAM, 0)
    libc.syscall(SYS_connect, fd, sa, len(sa))
    libc.syscall(SYS_close, fd)

addr = ("127.0.0.1", port)
for _ in range(50):                 # warm-up: call sites known, caches warm
    open_one(addr)
    open_raw()
a, b = [], []
clock = time.perf_counter_ns
for _ in range(n):
    t0 = clock()
    open_one(addr)
    t1 = clock()
    open_raw()
    t2 = clock()
    a.append(t1 - t0)
    b.append(t2 - t1)
print(statistics.median(a), statistics.median(b))
"""


def one(python, port, n, mode):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONNGUARD_") and k != "LD_PRELOAD"}
    if mode != "none":
        env["LD_PRELOAD"] = SHIM
        env["CONNGUARD_LEAKS"] = "exit"
        env["CONNGUARD_PYSTACK"] = "off" if mode == "pystack-off" else "on"
    out = subprocess.run([python, "-c", PROG, port, str(n)], env=env, capture_output=True, timeout=300, check=True)
    lib, raw = (float(x) for x in out.stdout.split()[:2])
    return lib, raw


def main(argv):
    rounds = int(argv[argv.index("--rounds") + 1]) if "--rounds" in argv else 9
    python = argv[argv.index("--python") + 1] if "--python" in argv else "/usr/bin/python3"
    n = 2000
    server = subprocess.Popen([LOOP, "serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    port = server.stdout.readline().decode().strip()
    modes = ["none", "pystack-off", "pystack-on"]
    res = {m: [] for m in modes}
    try:
        for m in modes:
            one(python, port, 200, m)
        for r in range(rounds):
            order = modes if r % 2 == 0 else modes[::-1]
            for m in order:
                res[m].append(one(python, port, n, m))
    finally:
        server.stdin.close()
        server.wait(10)
    ratio = {m: statistics.median(l / r for l, r in v) for m, v in res.items()}
    loop = {m: statistics.median(l for l, _ in v) for m, v in res.items()}
    print("python loop, %d x (socket, connect, close) on loopback, %s, median of %d rounds "
          "(in-process: each iteration against the same calls made raw):" % (n, python, rounds))
    print("  without the shim                      %8.0f ns/connection (python / raw %.3f)" % (loop["none"], ratio["none"]))
    for m, name in (("pystack-off", "shim, leaks on, CONNGUARD_PYSTACK=off"), ("pystack-on", "shim, leaks on, Python stacks on")):
        print("  %-37s %8.0f ns/connection  cost %.3fx%s" % (name, loop[m], ratio[m] / ratio["none"],
              "  (limit 1.05)" if m == "pystack-on" else ""))
    print("  Python stacks alone: %.3fx (on / off), %+.0f ns per connection"
          % (ratio["pystack-on"] / ratio["pystack-off"],
             (ratio["pystack-on"] - ratio["pystack-off"]) * statistics.median(r for _, r in res["pystack-on"])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
