"""`connguard [options] -- CMD`: runs CMD with the shim preloaded and the options as variables."""
import os
import shutil
import subprocess

import cglib
import toolutil as tu
from cglib import check

SHOW_ENV = ("import os, json; print(json.dumps({k: v for k, v in os.environ.items() "
            "if k.startswith('CONNGUARD_') or k == 'LD_PRELOAD'}))")


def _env_of(args, env=None):
    r = tu.tool(list(args) + ["--", cglib.PYTHON, "-c", SHOW_ENV], env=env)
    check(r.returncode == 0, "run failed", got=r.err)
    return __import__("json").loads(r.out)


def test_options_become_variables():
    shim = os.path.realpath(cglib.SHIM)
    e = _env_of(["--retries", "5", "--backoff", "50ms", "--backoff-max", "1s", "--timeout", "2s",
                 "--deadline", "7s", "--jitter", "equal", "--retry-on", "refused,reset", "--only", "127.0.0.1:*",
                 "--skip", "*:25", "--log", "/tmp/cg-%p.log", "--json", "--stack-depth", "8", "--leaks=exit",
                 "--leak-exitcode", "3", "--leak-age", "5s", "--no-stats", "--no-tls", "--no-watchdog", "--set", "retries=6"])
    want = {"LD_PRELOAD": shim, "CONNGUARD_RETRIES": "6", "CONNGUARD_BACKOFF_MS": "50ms",
            "CONNGUARD_BACKOFF_MAX_MS": "1s", "CONNGUARD_CONNECT_TIMEOUT_MS": "2s", "CONNGUARD_DEADLINE_MS": "7s",
            "CONNGUARD_JITTER": "equal", "CONNGUARD_RETRY_ON": "refused,reset", "CONNGUARD_ONLY": "127.0.0.1:*",
            "CONNGUARD_SKIP": "*:25", "CONNGUARD_LOG": "/tmp/cg-%p.log", "CONNGUARD_LOG_FORMAT": "json",
            "CONNGUARD_STACK_DEPTH": "8", "CONNGUARD_LEAKS": "exit", "CONNGUARD_LEAK_EXITCODE": "3",
            "CONNGUARD_LEAK_AGE_MS": "5s", "CONNGUARD_STATS": "0", "CONNGUARD_TLS": "0",
            "CONNGUARD_WATCHDOG": "0"}
    check(e == want, "environment of the command", got=e)
    e = _env_of(["--disable", "--no-leaks"])
    check(e.get("CONNGUARD_DISABLE") == "1" and e.get("CONNGUARD_LEAKS") == "off", "flags", got=e)


def test_preload_is_prepended_and_not_doubled():
    if cglib.SAN_PRELOAD:
        raise cglib.Skip("puts another library before the shim: a sanitizer runtime must come first")
    shim = os.path.realpath(cglib.SHIM)
    other = "/lib/x86_64-linux-gnu/libm.so.6"
    if not os.path.exists(other):
        raise cglib.Skip("no %s" % other)
    e = _env_of([], env={"LD_PRELOAD": other})
    check(e["LD_PRELOAD"] == shim + ":" + other, "prepended", got=e)
    e = _env_of([], env={"LD_PRELOAD": other + " " + shim})
    check(e["LD_PRELOAD"] == other + " " + shim, "already there: unchanged", got=e)
    # Variables already set and not given as options pass through.
    e = _env_of(["--retries", "1"], env={"CONNGUARD_JITTER": "none", "CONNGUARD_RETRIES": "9"})
    check(e["CONNGUARD_JITTER"] == "none" and e["CONNGUARD_RETRIES"] == "1", "options override, others kept", got=e)


def test_retries_happen_with_the_given_options():
    d = cglib.tmpdir()
    log = os.path.join(d, "cg.log")
    port = cglib.free_port()
    r = tu.tool(["--retries", "2", "--backoff", "10ms", "--jitter", "none", "--json", "--log", log, "--",
                 cglib.PYTHON, "-c", tu.CLOSED_CLIENT, str(port), "0"])
    check(r.returncode == 0 and r.out.strip() == "ready 111", "client result unchanged", got=r.out + r.err)
    recs = cglib.json_records(open(log).read(), "connect_failed")
    check([(x["attempt"], x["action"], x.get("delay_ms"), x.get("reason")) for x in recs]
          == [(1, "retry", 10, None), (2, "retry", 20, None), (3, "give_up", None, "retries_exhausted")],
          "records", got=recs)
    check(all(x["dst"] == "127.0.0.1:%d" % port and x["errno"] == "ECONNREFUSED" for x in recs), "fields", got=recs)
    shutil.rmtree(d)


def test_exit_status_is_the_commands():
    r = tu.tool(["--", "sh", "-c", "exit 7"])
    check(r.returncode == 7, "exit status passed through", got=r.err)
    r = tu.tool(["--retries", "1", "sh", "-c", "echo out; echo err >&2"])
    check(r.returncode == 0 and r.out == "out\n" and r.err == "err\n", "stdout/stderr untouched, no -- needed after options",
          got=r.out + r.err)
    r = tu.tool(["--", "/nonexistent/program"])
    check(r.returncode == 127 and "cannot run '/nonexistent/program'" in r.err, "missing command", got=r.err)
    r = tu.tool(["--", "/tmp"])
    check(r.returncode == 126 and "cannot run '/tmp': Permission denied" in r.err, "not executable", got=r.err)


def test_bad_option_values_stop_before_anything_runs():
    d = cglib.tmpdir()
    marker = os.path.join(d, "ran")
    cmd = ["--", "sh", "-c", "touch " + marker]
    cases = [
        (["--retries", "abc"], "--retries 'abc': expected a count from 0 to 1000"),
        (["--retries", "1001"], "--retries '1001': expected a count from 0 to 1000"),
        (["--backoff", "5 minutes"], "--backoff '5 minutes': expected a duration"),
        (["--timeout", "0"], "--timeout '0': expected a positive duration"),
        (["--deadline", "-1"], "--deadline '-1'"),
        (["--jitter", "sometimes"], "--jitter 'sometimes': expected full, equal, decorrelated or none"),
        (["--retry-on", "refused,bogus"], "--retry-on 'refused,bogus'"),
        (["--only", "999.1.1.1:80"], "--only '999.1.1.1:80': expected patterns"),
        (["--skip", "[::1:80"], "--skip '[::1:80'"),
        (["--log-format", "xml"], "--log-format 'xml': expected text or json"),
        (["--stack-depth", "65"], "--stack-depth '65': expected a count from 0 to 64"),
        (["--leaks=sometimes"], "--leaks 'sometimes': expected off, exit or all"),
        (["--leak-exitcode", "256"], "--leak-exitcode '256'"),
        (["--leak-age", "soon"], "--leak-age 'soon'"),
        (["--backoff", "3s", "--backoff-max", "1s"], "the backoff cap (1000ms, --backoff-max) is below the first backoff (3000ms, --backoff)"),
        (["--backoff", "5s"], "the backoff cap (2000ms, the default) is below the first backoff (5000ms, --backoff)"),
        (["--suppressions", os.path.join(d, "missing.supp")], "--suppressions"),
        (["--log", "/nonexistent-dir/x.log"], "directory '/nonexistent-dir' does not exist"),
        (["--set", "NOPE=1"], "no variable CONNGUARD_NOPE"),
        (["--set", "RETRIES"], "expected NAME=VALUE"),
        (["--set", "RETRIES=x"], "--set RETRIES 'x': expected a count"),
        (["--frobnicate"], "unknown option '--frobnicate'"),
        (["--library", "/nonexistent/libconnguard.so"], "--library '/nonexistent/libconnguard.so'"),
    ]
    for opts, msg in cases:
        r = tu.tool(opts + cmd)
        check(r.returncode == 125 and msg in r.err, "refused: %s" % opts, got=r.err)
        check(len(r.err.strip().splitlines()) == 1, "one clear line: %s" % opts, got=r.err)
        check(not os.path.exists(marker), "the command must not run: %s" % opts)
    r = tu.tool(["--retries"])
    check(r.returncode == 125 and "option --retries needs a value" in r.err, "missing value", got=r.err)
    r = tu.tool(["--retries", "2"])
    check(r.returncode == 125 and "no command to run" in r.err, "no command", got=r.err)
    shutil.rmtree(d)


def test_unknown_subcommand_and_usage():
    r = tu.tool(["stats", "1"])
    check(r.returncode == 2 and "unknown subcommand 'stats'" in r.err and "connguard [OPTIONS] -- stats" in r.err,
          "typo refused, not run", got=r.err)
    r = tu.tool([])
    check(r.returncode == 2 and "usage: connguard" in r.err, "usage on no arguments", got=r.err)
    r = tu.tool(["--help"])
    check(r.returncode == 0 and "connguard stat" in r.out and "--retries N" in r.out, "help", got=r.out)
    r = tu.tool(["--dry-run", "--retries", "2", "--", "echo", "a b"])
    check(r.returncode == 0 and r.out.strip() == "LD_PRELOAD=%s CONNGUARD_RETRIES=2 echo 'a b'" % os.path.realpath(cglib.SHIM),
          "dry run", got=r.out + r.err)


def test_library_found_beside_the_binary_or_in_the_prefix():
    d = cglib.tmpdir()
    # Installed layout: PREFIX/bin/connguard and PREFIX/lib/libconnguard.so, via `make install`.
    r = subprocess.run(["make", "-s", "install", "DESTDIR=" + d, "PREFIX=/usr/local", "BUILD=" + cglib.BUILD],
                       cwd=cglib.ROOT, capture_output=True, timeout=300)
    check(r.returncode == 0, "make install", got=r.stderr.decode())
    prefix = os.path.join(d, "usr/local")
    for f in ("bin/connguard", "lib/libconnguard.so", "share/man/man1/connguard.1", "share/man/man7/libconnguard.7"):
        check(os.path.exists(os.path.join(prefix, f)), "installed: " + f)
    r = cglib.run([os.path.join(prefix, "bin/connguard"), "--", cglib.PYTHON, "-c", SHOW_ENV], preload=False)
    check(r.returncode == 0, "installed tool runs", got=r.err)
    got = __import__("json").loads(r.out)["LD_PRELOAD"]
    check(got == os.path.join(prefix, "lib/libconnguard.so"), "prefix library used", got=got)
    # A copy with no library anywhere near it says where it looked.
    lone = os.path.join(d, "lone")
    os.makedirs(lone)
    shutil.copy(tu.TOOL, lone)
    r = cglib.run([os.path.join(lone, "connguard"), "--", "true"], preload=False)
    check(r.returncode == 125 and "cannot find libconnguard.so: looked in %s/ and %s/../lib/" % (lone, lone) in r.err,
          "missing library", got=r.err)
    r = cglib.run([os.path.join(lone, "connguard"), "--library", cglib.SHIM, "--", "sh", "-c", "echo $LD_PRELOAD"], preload=False)
    check(r.returncode == 0 and r.out.strip() == os.path.realpath(cglib.SHIM), "--library", got=r.out + r.err)
    shutil.rmtree(d)


def test_warns_when_preload_cannot_reach_the_command():
    d = cglib.tmpdir()
    src = os.path.join(d, "st.c")
    with open(src, "w") as f:
        f.write("int main(void) { return 4; }\n")
    static = os.path.join(d, "static-prog")
    c = subprocess.run(["cc", "-static", "-o", static, src], capture_output=True, timeout=120)
    if c.returncode != 0:
        raise cglib.Skip("no static libc to build a static program")
    r = tu.tool(["--", static])
    check(r.returncode == 4, "it still runs", got=r.err)
    check(r.err == "connguard: warning: %s is statically linked: LD_PRELOAD cannot reach it, it runs without "
          "connguard (see docs/limits.md)\n" % static, "one warning line", got=r.err)
    r = tu.tool(["--", "sh", "-c", "exit 0"])
    check(r.err == "", "a dynamic program gets no warning", got=r.err)
    if os.getuid() == 0:
        prog = os.path.join(d, "suid-true")
        shutil.copy("/bin/true", prog)
        os.chown(prog, 65534, 65534)
        os.chmod(prog, 0o4755)
        r = tu.tool(["--", prog])
        check(r.returncode == 0 and "is setuid: the loader ignores LD_PRELOAD" in r.err, "setuid warning", got=r.err)
    shutil.rmtree(d)


FORKER = r"""
import os, signal, socket, sys, time
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
def fail(port):
    s = socket.socket()
    try:
        s.connect(("127.0.0.1", port))
    except OSError:
        pass
    s.close()
port = int(sys.argv[1])
fail(port)
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    fail(port); fail(port)
    os.write(w, b"x")
    time.sleep(60)
    os._exit(0)
os.read(r, 1)
print("ready", os.getpid(), pid, flush=True)
try:
    time.sleep(60)
finally:
    os.kill(pid, 15)
"""


def test_a_forked_child_has_its_own_counters():
    port = cglib.free_port()
    p, line = tu.start(["--retries", "0", "--log", os.devnull, "--", cglib.PYTHON, "-c", FORKER, str(port)])
    parent, child = int(line.split()[1]), int(line.split()[2])
    try:
        a, b = tu.stat_json(parent), tu.stat_json(child)
        check(a["connect_attempts"] == 1 and a["give_ups"] == 1, "parent: its own connect only", got=a)
        check(b["connect_attempts"] == 2 and b["give_ups"] == 2 and b["failures_by_errno"] == {"ECONNREFUSED": 2},
              "child: fresh counters", got=b)
    finally:
        try:
            os.kill(child, 15)
        except ProcessLookupError:
            pass
        cglib.stop(p)
