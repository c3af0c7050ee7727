#!/usr/bin/env python3
"""Overhead of leak tracking: the two figures issue 3 bounds.

  open/close of regular files (close() of a non-socket must cost ~nothing)   limit 1.02x
  socket + connect + close on loopback with an accepting thread (tracking)  limit 1.03x

Each program times every iteration and prints the median and the mean ns per iteration; the
median is what counts (a preempted iteration on a shared machine is an outlier, not a cost).
Runs alternate (base, shim, base, shim...) so that drift hits both sides alike; the figure is
the ratio of the medians over all rounds, with the ratio of the means beside it.
usage: bench_leaks.py [--rounds N] [--quick]
Exit status 0 always: figures are for people and `make bench`, not a test (see DEVELOPERS.md).
"""
import os
import statistics
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
BUILD = os.path.join(ROOT, os.environ.get("BUILD", "build"))
SHIM = os.path.join(BUILD, "libconnguard.so")


def env(preload, extra=None):
    e = {k: v for k, v in os.environ.items() if not k.startswith("CONNGUARD_") and k != "LD_PRELOAD"}
    if preload:
        e["LD_PRELOAD"] = SHIM
    e.update(extra or {})
    return e


def one(prog, n, preload, extra=None):
    out = subprocess.run([os.path.join(BUILD, "clients", prog), str(n)], env=env(preload, extra),
                         capture_output=True, timeout=600, check=True)
    median, mean = out.stdout.split()[:2]
    return float(median), float(mean)


def bench(name, prog, n, rounds, limit, extra=None):
    base, shim = [], []
    one(prog, max(n // 10, 1), False)          # warm caches, page in binaries
    one(prog, max(n // 10, 1), True, extra)
    for _ in range(rounds):
        base.append(one(prog, n, False))
        shim.append(one(prog, n, True, extra))
    mb = statistics.median(b[0] for b in base)
    ms = statistics.median(s[0] for s in shim)
    ratio = ms / mb
    rmean = statistics.median(s[1] for s in shim) / statistics.median(b[1] for b in base)
    verdict = "ok" if ratio <= limit else "OVER"
    print("%-34s base %9.1f  shim %9.1f ns/iter (median)  ratio %.3fx (means %.3fx)  limit %.2fx  %s"
          % (name, mb, ms, ratio, rmean, limit, verdict), flush=True)
    return ratio


def main(argv):
    rounds = 11
    quick = "--quick" in argv
    if "--rounds" in argv:
        rounds = int(argv[argv.index("--rounds") + 1])
    if quick:
        rounds = 5
    bench("open/close /dev/null (leaks on)", "bench_openclose", 50000 if quick else 200000, rounds, 1.02)
    bench("socket+connect+close (leaks on)", "bench_connect", 2000 if quick else 5000, rounds, 1.03)
    bench("socket+connect+close (leaks off)", "bench_connect", 2000 if quick else 5000, rounds, 1.03,
          {"CONNGUARD_LEAKS": "off"})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
