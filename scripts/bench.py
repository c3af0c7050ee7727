"""make bench: cost of the shim when nothing fails, measured in one run.

Each loop runs ROUNDS times without and with LD_PRELOAD, alternating, so machine noise hits both
alike; the ratio of the minimums (and of the medians) is printed. `--write FILE` also writes a
markdown table with the machine and date.
"""
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
BUILD = os.path.join(ROOT, os.environ.get("BUILD", "build"))
SHIM = os.path.join(BUILD, "libconnguard.so")
LOOP = os.path.join(BUILD, "clients", "bench_loop")
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "9"))

# name, argv, extra environment for the shim run, target ratio
CASES = [
    ("connect/close loop (loopback, no failures)", ["connect", "3000", "PORT"], {}, 1.03),
    ("open/close loop (regular file)", ["open", "100000", None], {}, 1.02),
]


def one(argv, preload, extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONNGUARD_") and k != "LD_PRELOAD"}
    env["CONNGUARD_LEAKS"] = "exit"
    if preload:
        env["LD_PRELOAD"] = SHIM
        env.update(extra)
    out = subprocess.run([LOOP] + argv, env=env, capture_output=True, timeout=300, check=True).stdout
    return float(out.split()[1])


def main(argv):
    write = None
    if "--write" in argv:
        write = argv[argv.index("--write") + 1]
    # The listener is a separate process without the shim: the client's cost alone is measured.
    server = subprocess.Popen([LOOP, "serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    port = server.stdout.readline().decode().strip()
    tmp = tempfile.NamedTemporaryFile(prefix="cgbench-", delete=False)
    tmp.write(b"x" * 4096)
    tmp.close()
    rows = []
    worst = 0.0
    print("whole processes, %d alternating rounds (on a shared VM these move by tens of percent from run"
          " to run; the limits are judged on bench-leaks' in-process ratios):" % ROUNDS, flush=True)
    for name, args, extra, target in CASES:
        args = [tmp.name if a is None else port if a == "PORT" else a for a in args]
        one(args, False, extra)  # warm caches
        base, shim = [], []
        for _ in range(ROUNDS):
            base.append(one(args, False, extra))
            shim.append(one(args, True, extra))
        rmin = min(shim) / min(base)
        rmed = statistics.median(shim) / statistics.median(base)
        worst = max(worst, rmin)
        rows.append((name, min(base), min(shim), rmin, statistics.median(base),
                     statistics.median(shim), rmed, target))
        print("%-44s without %8.0f ns/op  with %8.0f ns/op  ratio(min) %.3f  ratio(median) %.3f"
              % (name, min(base), min(shim), rmin, rmed), flush=True)
    os.unlink(tmp.name)
    server.stdin.close()
    server.wait(10)
    if write:
        with open(write, "w") as f:
            f.write("| loop | without (min ns/op) | with (min ns/op) | ratio of minimums | "
                    "ratio of medians | target |\n|---|---|---|---|---|---|\n")
            for r in rows:
                f.write("| %s | %.0f | %.0f | %.3f | %.3f | <= %.2f |\n" % (r[0], r[1], r[2], r[3], r[6], r[7]))
            f.write("\n%d rounds each, alternating; %s, %s, %d CPUs, %s.\n" % (
                ROUNDS, platform.platform(), platform.processor() or platform.machine(),
                os.cpu_count(), time.strftime("%Y-%m-%d")))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
