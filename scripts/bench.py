#!/usr/bin/env python3
"""make bench: what the shim costs a healthy program, in one run and one table.

Every row runs its workload without and with the shim in the same run, alternating round by
round (so a noisy neighbour hits both sides alike), and compares medians with the row's target
(issue 12). Rows:

  in-process loops (tests/clients/bench_connect, bench_openclose; the method of bench_leaks.py):
      one process alternates, call by call, the libc calls (hooked under LD_PRELOAD) with the same
      system calls made raw; ratio = (hooked/raw with the shim) / (hooked/raw without it). This is
      stable to about 1% on a shared 2-CPU machine, where whole-process times move by tens of %.
      Configurations: defaults, CONNGUARD_LEAKS=off, CONNGUARD_STACK_DEPTH=0, and
      CONNGUARD_COORDINATE=off against on when shim/cg_vars.h has that variable.
  whole programs: ab -n 5000 -c 8 requests/s (shim in ab only) against tests/clients/bench_httpd
      (twice the rounds); curl fetching 200 URLs in one process (wall; 4 x the rounds); /usr/bin/python3 making
      2,000 connections (timed by the script itself in two interpreters that stay up, one with
      the shim, asked in turn for one loop each: 3 x rounds pairs); start-up of /bin/true
      (tests/clients/bench_spawn, median of 300 pairs); bytes per open socket
      (tests/clients/bench_sockmem: RSS growth over 10,000 connected sockets); TLS handshakes
      (bench_tls.py's in-process method).
  system calls per connect: strace -f -c of bench_loop's blocking and non-blocking (epoll)
      connect loops at two lengths, so start-up cancels out; target: none added.
  anchors: the same whole-process connect loop under strace -f -e connect,close and valgrind
      --tool=none --track-fds=yes, beside the shim, for scale.

A missing tool (ab, curl, strace, valgrind) skips its row with the reason; a row that breaks says
ERROR and the others go on. Exit status 0 (figures are for people), unless --strict and a row broke.
The listeners run without the shim: only the client's cost is measured.

usage: bench.py [--quick] [--rounds N] [--write FILE] [--only SUBSTR[,SUBSTR]] [--strict]
  BENCH_ROUNDS=N in the environment is --rounds N. --write appends a dated section (machine,
  kernel, commit, table) to FILE, e.g. docs/benchmarks.md.
"""
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
BUILD = os.path.join(ROOT, os.environ.get("BUILD", "build"))
SHIM = os.path.join(BUILD, "libconnguard.so")
CLIENTS = os.path.join(BUILD, "clients")
PYTHON = "/usr/bin/python3"
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


class Skip(Exception):
    pass


def clean_env(preload=False, extra=None):
    """The caller's environment without any CONNGUARD_*, LD_PRELOAD or proxy setting."""
    e = {k: v for k, v in os.environ.items()
         if not k.startswith("CONNGUARD_") and k != "LD_PRELOAD" and not k.lower().endswith("_proxy")}
    if preload:
        e["LD_PRELOAD"] = SHIM
    e.update(extra or {})
    return e


def run(argv, preload=False, extra=None, timeout=300, **kw):
    p = subprocess.run(argv, env=clean_env(preload, extra), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout, **kw)
    if p.returncode != 0:
        raise RuntimeError("%s exited %d%s: %s" % (os.path.basename(argv[0]), p.returncode,
                           " (with the shim)" if preload else "", p.stderr.decode(errors="replace")[-300:].strip()))
    return p.stdout.decode(errors="replace")


def run_cpu(argv, preload=False, extra=None, timeout=300):
    """run(), and the child's CPU time (user + system) in s: the kernel's exact run time, which,
    unlike wall time, waiting for a CPU on a loaded machine does not inflate."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = run(argv, preload, extra, timeout)
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return out, (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)


def need(tool):
    path = shutil.which(tool)
    if not path:
        raise Skip("%s not installed (scripts/deps.sh bench installs it)" % tool)
    return path


def ns(v):
    return "%.0f ns" % v if v < 100000 else "%.0f us" % (v / 1e3) if v < 1e8 else "%.0f ms" % (v / 1e6)


def iqr_half(values):
    """Half the interquartile range relative to the median: the noise of a series of ratios."""
    if len(values) < 4:
        return (max(values) - min(values)) / 2 / statistics.median(values)
    q = statistics.quantiles(values, n=4)
    return (q[2] - q[0]) / 2 / statistics.median(values)


class Server:
    """A listener from tests/clients (no shim): prints its port, stops when its stdin closes."""

    def __init__(self, argv):
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=clean_env())
        line = self.p.stdout.readline().decode().strip()
        if not line.isdigit():
            self.stop()
            raise RuntimeError("%s did not start" % argv[0])
        self.port = line

    def stop(self):
        try:
            self.p.stdin.close()
            self.p.wait(10)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait(10)


class Bench:
    def __init__(self, rounds, quick):
        self.rounds, self.quick = rounds, quick
        self.rows = []      # dicts: name, without, with, ratio, noise, target, verdict
        self.notes = []
        self.servers = {}

    # ---- plumbing -------------------------------------------------------------------------
    def server(self, prog, *args):
        if prog not in self.servers:
            self.servers[prog] = Server([os.path.join(CLIENTS, prog)] + list(args))
        return self.servers[prog].port

    def stop(self):
        for s in self.servers.values():
            s.stop()

    def add(self, name, without, with_, ratio, noise, target, verdict, cpu=""):
        row = dict(name=name, without=without, with_=with_, ratio=ratio, noise=noise, cpu=cpu, target=target,
                   verdict=verdict)
        self.rows.append(row)
        print(ROWFMT % (name, without, with_, ratio, noise, cpu, target, verdict), flush=True)

    def skip(self, name, why, error=False):
        self.add(name, "-", "-", "-", "", "-", ("ERROR: " if error else "skipped: ") + why)

    def guarded(self, names, fn):
        """Runs one group of rows; a missing tool or a failure becomes a row, not an exception."""
        t0, before = time.monotonic(), len(self.rows)
        try:
            fn()
        except Skip as e:
            for n in names[len(self.rows) - before:]:
                self.skip(n, str(e))
        except Exception as e:   # noqa: BLE001 -- every row must be printed, whatever breaks
            why = "%s: %s" % (type(e).__name__, str(e).splitlines()[0] if str(e) else "")
            for n in names[len(self.rows) - before:]:
                self.skip(n, why, True)
        return time.monotonic() - t0

    @staticmethod
    def verdict(value, target, noise=0.0, higher_is_better=False):
        if higher_is_better:
            ok, close = value >= target, value * (1 + noise) >= target
        else:
            ok, close = value <= target, value * (1 - noise) <= target
        if ok:
            return "met"
        return "not met (within noise)" if close else "NOT MET"

    # ---- in-process loops -----------------------------------------------------------------
    def inproc(self, prog, n, configs):
        """{config: [(hooked_ns, raw_ns), ...]} with the configurations interleaved round by round."""
        out = {name: [] for name, _, _ in configs}
        path = os.path.join(CLIENTS, prog)

        def one(cnt, pre, extra):
            f = run([path, str(cnt)], pre, extra, timeout=600).split()
            return float(f[0]), float(f[1])
        for _, pre, extra in configs:          # warm-up: page in, first-use costs
            one(max(n // 20, 10), pre, extra)
        for _ in range(self.rounds):
            for name, pre, extra in configs:
                out[name].append(one(n, pre, extra))
        return out

    def inproc_row(self, name, s, cfg, base_cfg, target):
        per = [h / r for h, r in s[cfg]]
        base = statistics.median(h / r for h, r in s[base_cfg])
        ratio = statistics.median(per) / base
        noise = iqr_half(per)
        # Same-process figures: the hooked calls, and the raw calls scaled by the base's ratio
        # (what the hooked calls would cost in this process without the shim / the knob).
        self.add(name, ns(statistics.median(r for _, r in s[cfg]) * base),
                 ns(statistics.median(h for h, _ in s[cfg])), "%.3fx" % ratio,
                 "±%.1f%%" % (100 * noise), "<= %.2fx" % target, self.verdict(ratio, target, noise))

    def connect_loop(self):
        with open(os.path.join(ROOT, "shim", "cg_vars.h")) as f:
            coord = re.search(r"X\(\s*COORDINATE\s*,", f.read()) is not None
        cfg = [("none", False, None), ("on", True, None), ("leaks_off", True, {"CONNGUARD_LEAKS": "off"}),
               ("depth0", True, {"CONNGUARD_STACK_DEPTH": "0"})]
        if coord:
            cfg.append(("coord_off", True, {"CONNGUARD_COORDINATE": "off"}))
        s = self.inproc("bench_connect", 4000 if self.quick else 20000, cfg)
        self.inproc_row("connect loop, in-process, defaults", s, "on", "none", 1.03)
        self.inproc_row("connect loop, in-process, CONNGUARD_LEAKS=off", s, "leaks_off", "none", 1.03)
        self.inproc_row("connect loop, in-process, CONNGUARD_STACK_DEPTH=0", s, "depth0", "none", 1.03)
        name = "connect loop, coordination on vs CONNGUARD_COORDINATE=off"
        if coord:
            self.inproc_row(name, s, "on", "coord_off", 1.01)
        else:
            self.skip(name, "CONNGUARD_COORDINATE not in shim/cg_vars.h yet (issue 14)")

    def openclose_loop(self):
        s = self.inproc("bench_openclose", 50000 if self.quick else 200000,
                        [("none", False, None), ("on", True, None)])
        self.inproc_row("open/close loop, in-process, defaults", s, "on", "none", 1.02)

    # ---- whole programs -------------------------------------------------------------------
    def paired(self, fn, rounds=None):
        """fn(preload) -> value (or (value, cpu seconds)), alternated (and alternating which side
        goes first) for rounds; returns (without values, with values)."""
        fn(False)
        fn(True)                               # warm-up
        a, b = [], []
        for i in range(rounds or self.rounds):
            if i % 2:
                a.append(fn(False))
                b.append(fn(True))
            else:
                b.append(fn(True))
                a.append(fn(False))
        return a, b

    def ratio_row(self, name, a, b, unit, fmt, target, higher_is_better=False, scale=1.0, judged=None):
        """judged: (target text, verdict text) for a row shown for reference only."""
        cpu = ""
        if a and isinstance(a[0], tuple):
            cpu = "%.3fx" % statistics.median(y[1] / x[1] for x, y in zip(a, b))
            a, b = [x[0] for x in a], [y[0] for y in b]
        per = [y / x for x, y in zip(a, b)]
        ratio = statistics.median(per)
        noise = iqr_half(per)
        self.add(name, fmt % (statistics.median(a) * scale) + unit, fmt % (statistics.median(b) * scale) + unit,
                 "%.3fx" % ratio, "±%.1f%%" % (100 * noise),
                 judged[0] if judged else ("%s %.2fx" % (">=" if higher_is_better else "<=", target)),
                 judged[1] if judged else self.verdict(ratio, target, noise, higher_is_better), cpu)

    def ab(self):
        ab = need("ab")
        port = self.server("bench_httpd")
        url = "http://127.0.0.1:%s/" % port

        def one(pre):
            out, cpu = run_cpu([ab, "-q", "-n", "5000", "-c", "8", url], pre)
            failed = re.search(r"Failed requests:\s+(\d+)", out)
            if failed and int(failed.group(1)):
                raise RuntimeError("ab: %s failed requests" % failed.group(1))
            # ab's CPU time for a fixed 5000 requests: its ratio reads like the others' (higher = worse).
            return float(re.search(r"Requests per second:\s+([\d.]+)", out).group(1)), cpu
        a, b = self.paired(one, rounds=2 * self.rounds)
        self.ratio_row("ab -n 5000 -c 8, requests/s (shim in ab only)", a, b, " req/s", "%.0f", 0.97, True)

    def curl(self):
        curl = need("curl")
        port = self.server("bench_httpd")
        urls = ["http://127.0.0.1:%s/%d" % (port, i) for i in range(200)]

        def one(pre):
            t = time.perf_counter()
            _, cpu = run_cpu([curl, "-q", "-s", "-S", "--fail"] + urls, pre)
            return time.perf_counter() - t, cpu
        a, b = self.paired(one, rounds=4 * self.rounds)
        self.ratio_row("curl, 200 URLs in one process, wall", a, b, " ms", "%.1f", 1.03, scale=1e3)

    def python(self):
        """Two python processes stay up, one under the shim; the driver asks them in turn (order
        alternating) for one timed loop of 2,000 connections each. Pairs a fraction of a second
        apart see the same machine, which whole processes started seconds apart do not."""
        if not os.access(PYTHON, os.X_OK):
            raise Skip("%s missing" % PYTHON)
        port = self.server("bench_loop", "serve")
        code = ("import socket,sys,time\n"
                "n=int(sys.argv[1]); a=('127.0.0.1',int(sys.argv[2]))\n"
                "for line in sys.stdin:\n"
                "    t=time.perf_counter(); c=time.process_time()\n"
                "    for _ in range(n):\n"
                "        s=socket.create_connection(a); s.close()\n"
                "    print(time.perf_counter()-t, time.process_time()-c, flush=True)\n")
        procs = {}
        try:
            for pre in (False, True):
                procs[pre] = subprocess.Popen([PYTHON, "-c", code, "2000", port], env=clean_env(pre),
                                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

            def one(pre):
                p = procs[pre]
                p.stdin.write(b"go\n")
                p.stdin.flush()
                line = p.stdout.readline().split()
                if len(line) < 2:
                    p.kill()
                    raise RuntimeError("python3%s stopped: %s" % (" (with the shim)" if pre else "",
                                       p.stderr.read().decode(errors="replace")[-300:].strip()))
                return float(line[0]), float(line[1])
            a, b = self.paired(one, rounds=3 * self.rounds)
        finally:
            for p in procs.values():
                try:
                    p.stdin.close()
                    p.wait(30)
                except (OSError, subprocess.TimeoutExpired):
                    p.kill()
                    p.wait(10)
        self.ratio_row("python3, 2,000 connections (create_connection+close)", a, b, " ms", "%.1f", 1.05, scale=1e3)

    def startup(self):
        n = 100 if self.quick else 300
        prog = "/bin/true"
        empty = os.path.join(CLIENTS, "libcgempty.so")
        ref = ["-r", empty] if os.path.exists(empty) else []
        out = run([os.path.join(CLIENTS, "bench_spawn")] + ref + [str(n), SHIM, prog]).split()
        a, b, ca, cb = (float(x) for x in out[:4])
        delta = (b - a) / 1e3
        self.add("start-up of /bin/true, median of %d each" % n, "%.0f us" % (a / 1e3), "%.0f us" % (b / 1e3),
                 "%+.0f us" % delta, "", "<= +100 us", self.verdict(delta, 100.0), "%+.0f us" % ((cb - ca) / 1e3))
        if len(out) >= 6:
            r, cr = float(out[4]), float(out[5])
            self.notes.append("start-up floor: an empty library preloaded instead (libcgempty.so, same rotation) costs "
                      "%+.0f us wall, %+.0f us CPU; the shim costs %+.0f us wall, %+.0f us CPU over it"
                      % ((r - a) / 1e3, (cr - ca) / 1e3, (b - r) / 1e3, (cb - cr) / 1e3))

    def sockmem(self):
        n = 10000
        prog = os.path.join(CLIENTS, "bench_sockmem")
        a, b = self.paired(lambda pre: int(run([prog, str(n)], pre).split()[0]), rounds=min(self.rounds, 3))
        per = (statistics.median(b) - statistics.median(a)) / n
        self.add("memory per open socket (RSS over %d connected)" % n, "%.0f B" % (statistics.median(a) / n),
                 "%.0f B" % (statistics.median(b) / n), "%+.0f B" % per, "", "<= 256 B", self.verdict(per, 256.0))

    def tls(self):
        import bench_tls
        prog = os.path.join(CLIENTS, "tls_bench")
        srv = Server([prog, "serve"])
        try:
            n = 60 if self.quick else 200
            bench_tls.one(srv.port, n // 4, False, {})
            s = {"none": [], "on": []}
            for _ in range(self.rounds):
                for name, pre in (("none", False), ("on", True)):
                    s[name].append(bench_tls.one(srv.port, n, pre, {}))
        finally:
            srv.stop()
        self.inproc_row("TLS handshake, in-process (SSL_connect hooked/direct)", s, "on", "none", 1.03)

    # ---- system calls and anchors ---------------------------------------------------------
    def strace_counts(self, strace, mode, n, pre, port):
        with tempfile.NamedTemporaryFile(prefix="cgbench-strace-") as f:
            run([strace, "-f", "-c", "-o", f.name, os.path.join(CLIENTS, "bench_loop"), mode, str(n), port], pre)
            counts = {}
            for line in open(f.name):
                p = line.split()
                if len(p) >= 5 and p[0][0].isdigit() and p[-1] != "total":
                    counts[p[-1]] = int(p[3])
            return counts

    def syscalls(self):
        strace = need("strace")
        port = self.server("bench_loop", "serve")
        n1, n2 = 200, 1200
        for mode, label in (("connect", "blocking"), ("connect-nb", "non-blocking, epoll")):
            per = {}
            for pre in (False, True):
                c1 = self.strace_counts(strace, mode, n1, pre, port)
                c2 = self.strace_counts(strace, mode, n2, pre, port)
                per[pre] = {k: (c2.get(k, 0) - c1.get(k, 0)) / (n2 - n1) for k in set(c1) | set(c2)}
            a, b = sum(per[False].values()), sum(per[True].values())
            extra = sorted(((k, per[True].get(k, 0) - per[False].get(k, 0)) for k in set(per[False]) | set(per[True])),
                           key=lambda kv: -abs(kv[1]))
            extra = [(k, v) for k, v in extra if abs(v) >= 0.05]
            name = "system calls per %s connect (strace -f -c)" % label
            self.add(name, "%.2f" % a, "%.2f" % b, "%+.2f" % (b - a), "", "+0", self.verdict(b - a, 0.05))
            if extra:
                self.notes.append("%s: %s" % (name, ", ".join("%s %+.2f" % kv for kv in extra)))

    def anchors(self):
        port = self.server("bench_loop", "serve")
        loop = [os.path.join(CLIENTS, "bench_loop"), "connect", "2000" if self.quick else "5000", port]
        tools = {}
        for t in ("strace", "valgrind"):
            tools[t] = shutil.which(t)
        cases = [("bare", [], False), ("shim", [], True)]
        if tools["strace"]:
            cases.append(("strace", [tools["strace"], "-f", "-o", "/dev/null", "-e", "trace=connect,close"], False))
        if tools["valgrind"]:
            cases.append(("valgrind", [tools["valgrind"], "-q", "--tool=none", "--track-fds=yes",
                                       "--log-file=/dev/null"], False))
        res = {c[0]: [] for c in cases}
        wall = {c[0]: [] for c in cases}
        cpu = {c[0]: [] for c in cases}
        rounds = max(3, min(self.rounds, 5))
        for _ in range(rounds):
            for name, prefix, pre in cases:
                t = time.perf_counter()
                out, c = run_cpu(prefix + loop, pre, timeout=600)
                wall[name].append(time.perf_counter() - t)
                cpu[name].append(c)
                res[name].append(float(re.search(r"ns_per_op ([\d.]+)", out).group(1)))
        self.notes.append("anchors, whole-process wall time of the %s-connect loop (start-up included): %s" % (
            loop[2], ", ".join("%s %.0f ms (%.2fx)" % (k, 1e3 * statistics.median(v),
                                                       statistics.median(v) / statistics.median(wall["bare"]))
                               for k, v in wall.items())))
        self.ratio_row("connect loop, whole process, shim (beside the anchors)", list(zip(res["bare"], cpu["bare"])),
                       list(zip(res["shim"], cpu["shim"])),
                       " ns", "%.0f", 1.03, judged=("reference", "- (judged in-process above)"))
        for t, label in (("strace", "anchor: strace -f -e connect,close, connect loop"),
                         ("valgrind", "anchor: valgrind --tool=none --track-fds=yes, connect loop")):
            if not tools[t]:
                self.skip(label, "%s not installed (scripts/deps.sh bench installs it)" % t)
                continue
            per = [y / x for x, y in zip(res["bare"], res[t])]
            self.add(label, ns(statistics.median(res["bare"])), ns(statistics.median(res[t])),
                     "%.2fx" % statistics.median(per), "±%.0f%%" % (100 * iqr_half(per)), "anchor", "-",
                     "%.2fx" % statistics.median(y / x for x, y in zip(cpu["bare"], cpu[t])))


ROWFMT = "  %-58s %12s %12s %9s %7s %9s %11s  %s"
LEGEND = ("in-process rows: ratio = (hooked/raw with the shim) / (hooked/raw without it, or with the"
          " knob's other value); with = median time of the hooked calls, without = the same processes' raw"
          " system calls times the base's hooked/raw ratio. Whole-program rows: median of the per-round"
          " with/without ratios. noise: half the interquartile range of the per-round ratios, relative;"
          " 'within noise' = misses the target by less than that. CPU time: the same with/without ratio"
          " (delta for start-up) of the client's user + system time, which waiting for a CPU does not"
          " inflate: on a loaded machine it shows the shim's own cost where wall time is noise.")

GROUPS = [
    ("connect", ["connect loop, in-process, defaults", "connect loop, in-process, CONNGUARD_LEAKS=off",
                 "connect loop, in-process, CONNGUARD_STACK_DEPTH=0",
                 "connect loop, coordination on vs CONNGUARD_COORDINATE=off"], "connect_loop"),
    ("openclose", ["open/close loop, in-process, defaults"], "openclose_loop"),
    ("ab", ["ab -n 5000 -c 8, requests/s (shim in ab only)"], "ab"),
    ("curl", ["curl, 200 URLs in one process, wall"], "curl"),
    ("python", ["python3, 2,000 connections (create_connection+close)"], "python"),
    ("startup", ["start-up of /bin/true"], "startup"),
    ("memory", ["memory per open socket"], "sockmem"),
    ("tls", ["TLS handshake, in-process (SSL_connect hooked/direct)"], "tls"),
    ("syscalls", ["system calls per blocking connect (strace -f -c)",
                  "system calls per non-blocking, epoll connect (strace -f -c)"], "syscalls"),
    ("anchors", ["connect loop, whole process, shim (beside the anchors)",
                 "anchor: strace -f -e connect,close, connect loop",
                 "anchor: valgrind --tool=none --track-fds=yes, connect loop"], "anchors"),
]


def machine():
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return "%d CPUs (%s), Linux %s" % (os.cpu_count() or 0, cpu, platform.release())


def commit():
    try:
        c = subprocess.run(["git", "-C", ROOT, "log", "-1", "--format=%h (%cd)", "--date=short"],
                           capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return (c + (" + uncommitted changes" if dirty else "")) if c else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def write(path, b, elapsed):
    lines = ["", "## `make bench`, %s (%s rounds%s)" % (time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                                                      b.rounds, ", --quick" if b.quick else ""), "",
             "Machine: %s. Commit: %s. Load average at the end: %s. Run time %.0f s." % (
                 machine(), commit(), " ".join("%.2f" % x for x in os.getloadavg()), elapsed), "",
             "| workload | without | with | ratio / delta | noise | CPU time | target | verdict |",
             "|---|---|---|---|---|---|---|---|"]
    for r in b.rows:
        lines.append("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
            r["name"], r["without"], r["with_"], r["ratio"], r["noise"], r["cpu"], r["target"], r["verdict"]))
    lines += ["", LEGEND, ""]
    for n in b.notes:
        lines.append("- " + n)
    if b.notes:
        lines.append("")
    with open(path, "a") as f:
        f.write("\n".join(lines) + "\n")
    print("appended to %s" % path)


def main(argv):
    quick = "--quick" in argv
    rounds = int(os.environ.get("BENCH_ROUNDS") or (3 if quick else 7))
    if "--rounds" in argv:
        rounds = int(argv[argv.index("--rounds") + 1])
    rounds = max(rounds, 1)
    out = argv[argv.index("--write") + 1] if "--write" in argv else None
    only = argv[argv.index("--only") + 1].split(",") if "--only" in argv else None
    if not os.path.exists(SHIM):
        print("bench: %s not built (run make bench)" % SHIM, file=sys.stderr)
        return 1
    b = Bench(rounds, quick)
    t0 = time.monotonic()
    print("connguard bench: %d alternating rounds%s; %s; load average %s" % (
        rounds, " (--quick)" if quick else "", machine(), " ".join("%.2f" % x for x in os.getloadavg())), flush=True)
    print(ROWFMT % ("workload", "without", "with", "ratio", "noise", "CPU time", "target", "verdict"), flush=True)
    timings = []
    try:
        for key, names, meth in GROUPS:
            if only and not any(o in key for o in only):
                continue
            timings.append("%s %.0fs" % (key, b.guarded(names, getattr(b, meth))))
    finally:
        b.stop()
    elapsed = time.monotonic() - t0
    for n in b.notes:
        print("  note: " + n)
    print(LEGEND)
    print("time: %s; total %.0f s" % (", ".join(timings), elapsed))
    if out:
        write(out, b, elapsed)
    errors = [r for r in b.rows if r["verdict"].startswith("ERROR")]
    return 1 if errors and "--strict" in argv else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
