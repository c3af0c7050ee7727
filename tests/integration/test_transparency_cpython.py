"""Transparency against software we did not write: CPython 3.11's own test suite (Debian's
/usr/bin/python3 with libpython3.11-testsuite), run once without and once with the shim
(defaults: no CONNGUARD_* set), must give every test case the same outcome (passed, failure,
error, skipped) and every test module the same regrtest result.

`make check` runs a subset (CHECK_SET); `make check-cpython` (mk/cpython.mk, CG_CPYTHON=full)
runs FULL_SET. Per-case results come from regrtest's --junit-xml; module results ("passed",
"failed (env changed)", "crashed", a worker whose output could not be parsed...) from its
progress lines. The shim's records go to the workers' stderr, which regrtest -jN merges into
the stdout it parses: a record printed after a worker's final JSON line (a leak report at exit)
would turn its module into "Failed to parse worker JSON", a module-level difference here.

Only loopback: regrtest runs without -u, so tests needing the 'network' resource (the Internet)
are skipped in both runs; test_socketserver, which needs that resource but only talks to
localhost, gets its own run with -u network (FULL_SET)."""
import collections
import glob
import os
import re
import shutil
import time
import xml.etree.ElementTree as ET

import cglib
from cglib import check

TESTDIR = "/usr/lib/python3.11/test"

# Test cases left out of both runs (regrtest -i, a glob on any dotted part of the case id).
IGNORE = [
    # Hangs on this machine with or without the shim (no vsock transport in these VMs).
    "ThreadedVSOCKSocketStreamTest",
]

# (modules, extra regrtest arguments). Each entry is one regrtest run per mode.
CHECK_SET = [
    (["test_socket", "test_subprocess", "test_selectors", "test_httplib", "test_ssl",
      "test_asyncio.test_sock_lowlevel"], []),
]


def _asyncio_parts():
    # test_asyncio as its submodules: regrtest -jN spreads them over its workers.
    return sorted("test_asyncio." + os.path.basename(p)[:-3]
                  for p in glob.glob(os.path.join(TESTDIR, "test_asyncio", "test_*.py")))


FULL_SET = [
    (["test_socket", "test_selectors", "test_poll", "test_epoll", "test_select",
      "test_subprocess", "test_httplib", "test_urllib2_localnet", "test_ssl", "test_fcntl",
      "test_os", "test_signal", "test_threading"] + _asyncio_parts(), []),
    (["test_socketserver"], ["-u", "network"]),
]

JOBS = os.environ.get("CG_CPYTHON_JOBS", "0")   # regrtest -j: 0 = 2 + number of CPUs (4 here)
MODULE_TIMEOUT = 420   # regrtest --timeout: per test module (test_ssl takes ~60 s under the shim)

PROGRESS = re.compile(r"^\d+:\d\d:\d\d (?:load avg: [\d.]+ )?\[\s*\d+/\d+(?:/\d+)?\] (\S+) (.*)$")


def _outcome(tc):
    # regrtest's junit: <error>/<failure> (message attribute), <skipped> (the reason as text),
    # <output> for an expected failure; nothing for a pass.
    kids = {k.tag: k for k in tc}
    for tag, name in (("error", "error"), ("failure", "failure"), ("skipped", "skipped"),
                      ("output", "expected_failure")):
        if tag in kids:
            return name, (kids[tag].get("message") or kids[tag].text or "").strip()
    return "passed", ""


def _cases(path):
    out = {}
    for tc in ET.parse(path).getroot().iter("testcase"):
        out[tc.get("name")] = _outcome(tc) + (float(tc.get("time") or 0),)
    return out


def _modules(text):
    """Module -> result from regrtest's progress lines ("passed", "failed (env changed)"...)."""
    out = {}
    for line in text.splitlines():
        m = PROGRESS.match(line)
        if m:
            res = m.group(2).split(" -- ")[0]
            res = re.sub(r" \((?:[\d.]+ (?:sec|ms)|\d+ min(?: \d+ sec)?)\)$", "", res).strip()
            out[m.group(1)] = res
    return out


def _regrtest(tmp, tag, modules, extra, preload):
    xml = os.path.join(tmp, "%s.xml" % tag)
    cmd = [cglib.PYTHON, "-m", "test", "-j", JOBS, "--timeout", str(MODULE_TIMEOUT),
           "--junit-xml", xml]
    for pat in IGNORE:
        cmd += ["-i", pat]
    cmd += extra + modules
    t0 = time.time()
    p = cglib.run(cmd, preload=preload, timeout=MODULE_TIMEOUT * 2 + 60, cwd=tmp)
    took = time.time() - t0
    text = p.out + p.err
    check(os.path.exists(xml), "regrtest (%s) wrote no junit XML" % tag, got=text[-4000:])
    return _cases(xml), _modules(text), text, took, p.returncode


def _records(text):
    return collections.Counter(re.findall(r"^==\d+== connguard (\w+) ", text, re.M))


def test_cpython_suite_same_results():
    if not os.path.isdir(TESTDIR):
        raise cglib.Skip("CPython's test package is not installed (libpython3.11-testsuite)")
    full = os.environ.get("CG_CPYTHON") == "full"
    runs = FULL_SET if full else CHECK_SET
    tmp = cglib.tmpdir()
    diffs = []
    ncases = 0
    try:
        for i, (modules, extra) in enumerate(runs):
            bare = _regrtest(tmp, "bare%d" % i, modules, extra, preload=False)
            shim = _regrtest(tmp, "shim%d" % i, modules, extra, preload=True)
            (bc, bm, btext, btook, brc), (sc, sm, stext, stook, src) = bare, shim
            print("regrtest %s%s: %d cases without the shim in %.0f s (exit %d), %d with it in %.0f s (exit %d)"
                  % (" ".join(extra + [""]), " ".join(modules), len(bc), btook, brc, len(sc), stook, src))
            print("  outcomes without: %s" % dict(collections.Counter(o[0] for o in bc.values())))
            print("  outcomes with:    %s" % dict(collections.Counter(o[0] for o in sc.values())))
            print("  shim records on the tests' stderr: %s" % dict(_records(stext)))
            check(len(bc) > 0, "regrtest without the shim ran no test case", got=btext[-4000:])
            ncases += len(bc)
            for mod in sorted(set(bm) | set(sm)):
                if bm.get(mod) != sm.get(mod):
                    diffs.append("module %s: without the shim %r, with it %r" % (mod, bm.get(mod), sm.get(mod)))
            for case in sorted(set(bc) | set(sc)):
                b = bc.get(case, ("missing", "", 0))
                s = sc.get(case, ("missing", "", 0))
                if b[0] != s[0]:
                    diffs.append("case %s: without the shim %s%s, with it %s%s" % (
                        case, b[0], " (%s)" % b[1][:200] if b[1] else "",
                        s[0], " (%s)" % s[1][:200] if s[1] else ""))
                elif b[0] == "skipped" and b[1] != s[1]:
                    print("  note: %s skipped for another reason: %r / %r" % (case, b[1][:200], s[1][:200]))
            slower = sorted(((sc[c][2] - bc[c][2], c) for c in set(bc) & set(sc)), reverse=True)[:8]
            print("  slowest under the shim (extra seconds): " +
                  ", ".join("%s +%.1f" % (c.split(".", 1)[-1], d) for d, c in slower if d > 0.5))
            repro = set()
            for case in (c for c in set(bc) | set(sc) if bc.get(c, ("missing",))[0] != sc.get(c, ("missing",))[0]):
                parts = case.split(".")
                repro.add("LD_PRELOAD=%s %s -m test %s %s-m %s -v"
                          % (cglib.SHIM, cglib.PYTHON, ".".join(parts[1:-2]), " ".join(extra + [""]), parts[-1]))
            for r in sorted(repro):
                print("  reproduce: " + r)
        print("%d test cases compared" % ncases)
        check(not diffs, "CPython's test suite: %d differences with the shim:\n  %s" % (len(diffs), "\n  ".join(diffs)))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# Both runs one after the other on the shared 2-core machine: ~3 minutes for CHECK_SET (1,505
# cases), ~6 for FULL_SET (4,465 cases; make check-cpython). Most of the shimmed run's extra time
# is the ~10 s that each test expecting a refused connect spends in the default retries.
test_cpython_suite_same_results.timeout = 1800
