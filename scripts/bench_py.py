#!/usr/bin/env python3
"""Cost of leak tracking with Python stacks (issue 15): a Python program makes 2,000 loopback
connections in a loop (socket, connect, close). Limit: 1.05x with Python stacks on, against
the same loop without the shim.

Three runs per round, in alternating order: without the shim, with the shim and
CONNGUARD_PYSTACK=off, with the shim and Python stacks on (the default); leak tracking is on
in both shim runs. Each run times its loop in-process in CPU time (time.process_time: what other sessions on a shared machine do to the wall clock stays out; interpreter start-up excluded) and
the figure is the ratio of medians over --rounds rounds. The listener is a separate process
without the shim. usage: bench_py.py [--rounds N] [--python PATH]
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
import socket, sys, time
port = int(sys.argv[1])
n = int(sys.argv[2])

def open_one(addr):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.connect(addr)
    s.close()

def run(addr, n):
    for _ in range(n):
        open_one(addr)

addr = ("127.0.0.1", port)
run(addr, 50)                       # warm-up: call sites known, caches warm
t0 = time.process_time_ns()
run(addr, n)
print((time.process_time_ns() - t0) / n)
"""


def one(python, port, n, mode):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONNGUARD_") and k != "LD_PRELOAD"}
    if mode != "none":
        env["LD_PRELOAD"] = SHIM
        env["CONNGUARD_LEAKS"] = "exit"
        env["CONNGUARD_PYSTACK"] = "off" if mode == "pystack-off" else "on"
    out = subprocess.run([python, "-c", PROG, port, str(n)], env=env, capture_output=True, timeout=300, check=True)
    return float(out.stdout.split()[0])


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
    med = {m: statistics.median(v) for m, v in res.items()}
    print("python loop, %d x (socket, connect, close) on loopback, %s, median of %d rounds:" % (n, python, rounds))
    print("  without the shim %8.0f ns/connection" % med["none"])
    print("  shim, leaks on, CONNGUARD_PYSTACK=off %8.0f ns  ratio %.3f" % (med["pystack-off"], med["pystack-off"] / med["none"]))
    print("  shim, leaks on, Python stacks on      %8.0f ns  ratio %.3f (limit 1.05)   Python stacks alone: %+.0f ns/connection"
          % (med["pystack-on"], med["pystack-on"] / med["none"], med["pystack-on"] - med["pystack-off"]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
