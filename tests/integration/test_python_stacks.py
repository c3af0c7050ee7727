"""Python frames in records (issue 15): every record kind, against every CPython installed here
(/usr/bin/python3 and pyenv's 3.9 to 3.13; a version that is absent is skipped with a message),
a requests program against a late server, leaks grouped by Python line, suppressions naming
Python frames, and the states an interpreter can be in: many threads, daemon threads connecting
while the main thread exits, os.fork() during connects, sub-interpreters, threads Python does
not know, a C program embedding Python (and connecting after Py_FinalizeEx), versions this code
does not read (native frames only), CONNGUARD_PYSTACK=off."""
import glob
import os
import re
import shutil
import subprocess

import cglib
from cglib import check

HERE = os.path.dirname(os.path.abspath(__file__))
APP = os.path.join(HERE, "pyprogs", "pystack_app.py")
PYENV = "/root/.pyenv/versions"
FAST = {"CONNGUARD_BACKOFF_MS": "20", "CONNGUARD_BACKOFF_MAX_MS": "50", "CONNGUARD_STACK_DEPTH": "4"}


def _lines(path):
    at = {}
    with open(path) as f:
        for i, line in enumerate(f, 1):
            m = re.search(r"# AT:(\w+)", line)
            if m:
                at[m.group(1)] = i
    return at


AT = _lines(APP)


def _python(minor):
    """The interpreter for a minor version ("3.11" also has Debian's), or Skip."""
    if minor == "deb":
        return cglib.PYTHON
    found = sorted(glob.glob(os.path.join(PYENV, minor + ".*", "bin", "python" + minor)))
    if not found:
        raise cglib.Skip("CPython %s not installed (looked in %s)" % (minor, PYENV))
    return found[-1]


def _env(**kw):
    e = dict(FAST)
    e.update({"CONNGUARD_" + k: str(v) for k, v in kw.items()})
    return e


def _frame(f, file, line, function):
    return f.get("file") == file and f.get("line") == line and f.get("function") == function


def _text_pystack(err, event):
    """Per text record of event: its `File "...", line N, in F` lines, and whether they all come
    before the first native frame."""
    out = []
    cur = None
    for line in err.splitlines():
        m = re.match(r"^==(\d+)== connguard (\S+) ", line)
        if m:
            cur = {"event": m.group(2), "py": [], "native_seen": False, "order_ok": True} if m.group(2) == event else None
            if cur:
                out.append(cur)
            continue
        if cur is None:
            continue
        m = re.match(r'^==\d+==     File "(.*)", line (\d+), in (.*)$', line)
        if m:
            cur["py"].append((m.group(1), int(m.group(2)), m.group(3)))
            if cur["native_seen"]:
                cur["order_ok"] = False
        elif re.match(r"^==\d+==     #\d+ ", line):
            cur["native_seen"] = True
    return out


def _records_all_kinds(minor):
    py = _python(minor)
    # connect_failed, text: innermost frame is the line that called connect().
    p = cglib.run([py, APP, "refused", str(cglib.free_port())], env=_env(RETRIES=0), timeout=60)
    check(p.returncode == 0 and "client: Connection refused" in p.out, "refused as without the shim", got=p.out + p.err)
    recs = _text_pystack(p.err, "connect_failed")
    check(len(recs) == 1, "one connect_failed record", got=p.err)
    check(recs[0]["py"][0] == (APP, AT["connect"], "open_conn") and recs[0]["py"][-1][2] == "<module>",
          "File lines: open_conn at the connect line first, <module> last", got=p.err)
    check(recs[0]["order_ok"] and recs[0]["native_seen"], "Python frames before the native ones", got=p.err)

    # connect_failed (retry) then connect_recovered, JSON, against a listener that comes late.
    port = cglib.free_port()
    p = cglib.run([py, APP, "late", str(port), "0.4"], env=_env(RETRIES=60, BACKOFF_MS=50, BACKOFF_MAX_MS=50, JITTER="none", LOG_FORMAT="json"), timeout=60)
    check(p.returncode == 0 and "connected" in p.out, "connects once the listener is up", got=p.out + p.err)
    failed = cglib.json_records(p.err, "connect_failed")
    rec = cglib.json_records(p.err, "connect_recovered")
    check(failed and len(rec) == 1, "retries then one connect_recovered", got=p.err)
    for r in failed + rec:
        ps = r.get("pystack", [])
        check(ps and _frame(ps[0], APP, AT["connect"], "open_conn") and ps[-1]["function"] == "<module>",
              "pystack: open_conn at the connect line, innermost first", got=r)
        check(list(r).index("pystack") < list(r).index("stack") if "stack" in r else True,
              "pystack before stack", got=r)

    # asyncio: the failure is seen in the event loop's callback, the frames are those of the
    # coroutine that asked for the connection (taken at connect()).
    p = cglib.run([py, APP, "asyncio", str(cglib.free_port())], env=_env(RETRIES=1, LOG_FORMAT="json"), timeout=60)
    recs = cglib.json_records(p.err, "connect_failed")
    check(p.returncode == 0 and "client: refused" in p.out and len(recs) == 2, "refused twice, as without retries", got=p.out + p.err)
    for r in recs:
        check(any(_frame(f, APP, AT["aio"], "aio_fetch") for f in r["pystack"]), "the coroutine's line", got=r)
        check(not any(f["function"] == "_sock_connect_cb" for f in r["pystack"]), "not the loop's callback", got=r)

    # tls_failed: the handshake line of the program, below ssl.py's own frames.
    p = cglib.run([py, APP, "tls", "0"], env=_env(RETRIES=1, LOG_FORMAT="json", LEAKS="off"), timeout=60)
    check(p.returncode == 0 and re.search(r"client: (SSL\w*Error|ConnectionResetError)", p.out), "handshake fails (EOF or reset)", got=p.out + p.err)
    tls = cglib.json_records(p.err, "tls_failed")
    check(len(tls) == 2, "two tls_failed records (one retry)", got=p.err)
    for r in tls:
        ps = r.get("pystack", [])
        check(ps and ps[0]["file"].endswith("ssl.py") and ps[0]["function"] == "do_handshake",
              "innermost: ssl.py do_handshake", got=r)
        check(any(_frame(f, APP, AT["handshake"], "handshake") for f in ps), "the program's handshake line", got=r)

    # leak: one group per Python line although the native stacks are the same.
    p = cglib.run([py, APP, "leak", "0"], env=_env(LOG_FORMAT="json"), timeout=60)
    check(p.returncode == 0 and "done" in p.out, "runs as without the shim", got=p.out + p.err)
    leaks = cglib.json_records(p.err, "leak")
    check(len(leaks) == 2, "two leak groups", got=p.err)
    by = {r["sockets"]: r for r in leaks}
    check(set(by) == {3, 1}, "3 sockets from leak_pool's line, 1 from leak_one's", got=p.err)
    for n, name in ((3, "leak_pool"), (1, "leak_one")):
        ps = by[n]["pystack"]
        check(ps[0]["file"].endswith("socket.py") and ps[0]["function"] == "__init__", "socket.socket() first", got=by[n])
        check(_frame(ps[1], APP, AT[name], name), "then the program's line", got=by[n])
    check(by[3]["stack"] == by[1]["stack"], "native stacks alike: only the Python line tells them apart", got=p.err)


for _minor in ("deb", "3.9", "3.10", "3.11", "3.12", "3.13"):
    def _t(minor=_minor):
        _records_all_kinds(minor)
    _t.__name__ = "test_records_python_" + _minor.replace(".", "")
    globals()[_t.__name__] = _t
del _t


def test_pystack_off_native_frames_only():
    p = cglib.run([cglib.PYTHON, APP, "leak", "0"], env=_env(LOG_FORMAT="json", PYSTACK="off"))
    leaks = cglib.json_records(p.err, "leak")
    check(p.returncode == 0 and len(leaks) == 1 and leaks[0]["sockets"] == 4 and "pystack" not in leaks[0],
          "no Python frames: the four sockets share their native stack, one group", got=p.err)
    p = cglib.run([cglib.PYTHON, "-c", "pass"], env={"CONNGUARD_PYSTACK": "sometimes"})
    check(p.returncode == 0 and p.err.count("CONNGUARD_PYSTACK") == 1 and "sometimes" in p.err and "on" in p.err,
          "a bad value: one warning naming it and the value used", got=p.err)


def test_unsupported_versions_native_frames_only():
    found = [p for m in ("3.6", "3.7", "3.8") for p in glob.glob(os.path.join(PYENV, m + ".*", "bin", "python" + m))]
    if not found:
        raise cglib.Skip("no CPython older than 3.9 installed")
    for py in found:
        p = cglib.run([py, APP, "refused", str(cglib.free_port())], env=_env(RETRIES=0, LOG_FORMAT="json"))
        recs = cglib.json_records(p.err, "connect_failed")
        check(p.returncode == 0 and "client: Connection refused" in p.out and len(recs) == 1
              and "pystack" not in recs[0] and recs[0].get("stack"), "%s: native frames only" % py, got=p.out + p.err)


REQ_APP = '''import sys
import requests


def fetch_status(url):
    return requests.get(url, timeout=10).text  # AT:get


print(fetch_status(sys.argv[1]).strip())
'''


def test_requests_late_server():
    try:
        subprocess.run([cglib.PYTHON, "-c", "import requests"], check=True, capture_output=True)
    except subprocess.CalledProcessError:
        raise cglib.Skip("python3-requests not installed")
    d = cglib.tmpdir()
    app = os.path.join(d, "status.py")
    with open(app, "w") as f:
        f.write(REQ_APP)
    for fmt in ("json", "text"):
        port = cglib.free_port()
        log = os.path.join(d, "cg.%s.log" % fmt)
        # Listens once two attempts have failed (importing requests may take longer than any delay).
        cglib.late_server(port, "after:%s:2" % log)
        p = cglib.run([cglib.PYTHON, app, "http://127.0.0.1:%d/" % port],
                      env=_env(RETRIES=200, BACKOFF_MS=20, BACKOFF_MAX_MS=20, LOG_FORMAT=fmt, LOG=log), timeout=60)
        with open(log) as f:
            p.err = f.read()
        check(p.returncode == 0 and p.out == "ok\n", "requests succeeds", got=p.out + p.err)
        if fmt == "json":
            recs = cglib.json_records(p.err, "connect_failed") + cglib.json_records(p.err, "connect_recovered")
            check(len(recs) >= 2, "failures and a recovery", got=p.err)
            for r in recs:
                ps = r["pystack"]
                check(ps[0]["file"].endswith("urllib3/util/connection.py") and ps[0]["function"] == "create_connection",
                      "innermost: urllib3's sock.connect", got=r)
                check(any(f["file"].endswith("requests/adapters.py") for f in ps), "through requests' adapter", got=r)
                check(_frame(ps[-2], app, 6, "fetch_status") and ps[-1]["function"] == "<module>",
                      "the program's own line", got=r)
        else:
            recs = _text_pystack(p.err, "connect_failed")
            check(recs and all((app, 6, "fetch_status") in r["py"] and r["order_ok"] for r in recs),
                  "text: File lines with the program's line, before the native frames", got=p.err)


def test_suppressions_name_python_frames():
    d = cglib.tmpdir()
    for pat, left in (("leak:leak_pool", 1), ("leak:pyprogs/pystack_app.py", 0), ("leak:leak_one", 3), ("leak:nomatch", None)):
        path = os.path.join(d, "supp")
        with open(path, "w") as f:
            f.write(pat + "\n")
        p = cglib.run([cglib.PYTHON, APP, "leak", "0"], env=_env(LOG_FORMAT="json", SUPPRESSIONS=path))
        leaks = cglib.json_records(p.err, "leak")
        summ = cglib.json_records(p.err, "leak_summary")
        if left is None:
            check(len(leaks) == 2 and summ[0]["suppressed"] == 0, "nothing matched", got=p.err)
        else:
            check(sum(r["sockets"] for r in leaks) == left and summ[0]["suppressed"] == 4 - left,
                  "%s suppresses %d sockets" % (pat, 4 - left), got=p.err)


STRESS = r'''
import os, socket, sys, threading, time
port = int(sys.argv[1])
mode = sys.argv[2]

def hammer():
    while True:
        s = socket.socket()
        try:
            s.connect(("127.0.0.1", port))
        except OSError:
            pass
        s.close()
        t = socket.socket()
        t.close()

threads = [threading.Thread(target=hammer, daemon=True) for _ in range(16)]
for t in threads:
    t.start()
if mode == "exit":
    time.sleep(0.3)
    print("done", flush=True)
    sys.exit(0)           # daemon threads are in connect(), in our backoff, or making sockets
kids = 0
end = time.time() + 1.5
while time.time() < end:
    pid = os.fork()
    if pid == 0:
        s = socket.socket()
        try:
            s.connect(("127.0.0.1", port))
        except OSError as e:
            os.write(1, b"child refused\n")
        os._exit(0)
    _, st = os.waitpid(pid, 0)
    if st != 0:
        print("child status", st)
    kids += 1
print("forked", kids > 0, flush=True)
'''


def _stress(mode, minors, rounds):
    ran = 0
    for minor in minors:
        try:
            py = _python(minor)
        except cglib.Skip:
            continue
        for _ in range(rounds):
            p = cglib.run([py, "-c", STRESS, str(cglib.free_port()), mode],
                          env=_env(RETRIES=2, BACKOFF_MS=5, BACKOFF_MAX_MS=10, LOG="/dev/null"), timeout=60)
            want = "done\n" if mode == "exit" else None
            check(p.returncode == 0, "%s %s: exit status 0 (not a crash)" % (py, mode), got="%d\n%s%s" % (p.returncode, p.out, p.err[-3000:]))
            if want:
                check(p.out == want, "%s: output unchanged" % py, got=p.out + p.err[-2000:])
            else:
                check(p.out.endswith("forked True\n") and "child status" not in p.out and "child refused" in p.out,
                      "%s: every child exits 0" % py, got=p.out + p.err[-2000:])
            ran += 1
    if not ran:
        raise cglib.Skip("no interpreter")


def test_stress_daemon_threads_at_exit():
    _stress("exit", ("deb", "3.9", "3.10", "3.11", "3.12", "3.13"), 4)


test_stress_daemon_threads_at_exit.timeout = 400


def test_stress_fork_during_connects():
    _stress("fork", ("deb", "3.9", "3.12", "3.13"), 1)


test_stress_fork_during_connects.timeout = 300


def test_fork_child_has_its_own_frames():
    prog = ("import os, socket, sys\nport = int(sys.argv[1])\n"
            "def in_child():\n    s = socket.socket()\n    try:\n        s.connect(('127.0.0.1', port))\n"
            "    except OSError:\n        pass\n"
            "pid = os.fork()\nif pid == 0:\n    in_child()\n    os._exit(0)\nos.waitpid(pid, 0)\n")
    p = cglib.run([cglib.PYTHON, "-c", prog, str(cglib.free_port())], env=_env(RETRIES=0, LOG_FORMAT="json", LEAKS="off"))
    recs = cglib.json_records(p.err, "connect_failed")
    check(p.returncode == 0 and len(recs) == 1 and recs[0]["pid"] != p.pid if hasattr(p, "pid") else True, "one record", got=p.err)
    check(recs[0]["pystack"][0]["function"] == "in_child" and recs[0]["pystack"][0]["line"] == 6,
          "the child's frames", got=p.err)


SUBINTERP = r'''
import socket, sys
port = int(sys.argv[1])
try:
    import _interpreters as I
except ImportError:
    import _xxsubinterpreters as I
code = "import socket\ns = socket.socket()\ntry:\n    s.connect(('127.0.0.1', %d))\nexcept OSError:\n    print('sub refused')\n" % port
def in_main():
    interp = I.create()
    I.run_string(interp, code)
    I.destroy(interp)
in_main()
print("done")
'''


def test_subinterpreters():
    ran = 0
    for minor in ("3.9", "3.10", "3.11", "3.12", "3.13"):
        try:
            py = _python(minor)
        except cglib.Skip:
            continue
        p = cglib.run([py, "-c", SUBINTERP, str(cglib.free_port())], env=_env(RETRIES=0, LOG_FORMAT="json"))
        check(p.returncode == 0 and p.out == "sub refused\ndone\n", "%s: the sub-interpreter runs as without the shim" % py,
              got=p.out + p.err)
        recs = cglib.json_records(p.err, "connect_failed")
        check(len(recs) == 1, "one record", got=p.err)
        ran += 1
    if not ran:
        raise cglib.Skip("no pyenv interpreter")


EMBED = r'''
#include <Python.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

static int port;

static void refused(void)
{
  int s = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(s, (struct sockaddr *)&a, sizeof a) != 0) printf("refused\n");
  close(s);
}

static void *unknown_thread(void *arg) { (void)arg; refused(); return NULL; }

int main(int argc, char **argv)
{
  port = atoi(argv[1]);
  Py_Initialize();
  char code[512];
  snprintf(code, sizeof code, "import socket\ndef embedded():\n    s = socket.socket()\n    try:\n"
           "        s.connect(('127.0.0.1', %d))\n    except OSError:\n        print('py refused', flush=True)\nembedded()\n", port);
  PyRun_SimpleString(code);
  Py_BEGIN_ALLOW_THREADS
  pthread_t t;                       /* a thread Python does not know */
  pthread_create(&t, NULL, unknown_thread, NULL);
  pthread_join(t, NULL);
  Py_END_ALLOW_THREADS
  Py_FinalizeEx();
  refused();                         /* after the interpreter is gone */
  fflush(stdout);
  return 0;
}
'''


def test_embedded_python_unknown_threads_and_after_finalize():
    cfg = shutil.which("python3-config") or "/usr/bin/python3-config"
    if not os.path.exists(cfg) or not shutil.which("gcc"):
        raise cglib.Skip("python3-config (python3-dev) or gcc missing")
    d = cglib.tmpdir()
    src, exe = os.path.join(d, "embed.c"), os.path.join(d, "embed")
    with open(src, "w") as f:
        f.write(EMBED)
    flags = subprocess.run([cfg, "--cflags", "--embed", "--ldflags"], capture_output=True, text=True)
    if flags.returncode != 0:
        raise cglib.Skip("python3-config --embed failed: %s" % flags.stderr.strip())
    b = subprocess.run("gcc -o %s %s %s -pthread" % (exe, src, flags.stdout.replace("\n", " ")), shell=True,
                       capture_output=True, text=True)
    if b.returncode != 0:
        raise cglib.Skip("cannot build an embedding program: %s" % b.stderr[-300:])
    p = cglib.run([exe, str(cglib.free_port())], env=_env(RETRIES=0, LOG_FORMAT="json", LEAKS="off"))
    check(p.returncode == 0 and p.out == "py refused\nrefused\nrefused\n", "the program runs as without the shim",
          got=p.out + p.err)
    recs = cglib.json_records(p.err, "connect_failed")
    check(len(recs) == 3, "three records", got=p.err)
    check(recs[0]["pystack"][0]["function"] == "embedded" and recs[0]["pystack"][0]["file"] == "<string>",
          "Python code run by the C program: its frames", got=recs[0])
    check("pystack" not in recs[1] and recs[1].get("stack"), "a thread Python does not know: native frames only", got=recs[1])
    check("pystack" not in recs[2] and recs[2].get("stack"), "after Py_FinalizeEx: native frames only", got=recs[2])


def test_layout_rows_match_headers():
    """pystack.c's offsets are those offsetof() gives with each installed interpreter's headers."""
    if not shutil.which("gcc"):
        raise cglib.Skip("gcc missing")
    with open(os.path.join(cglib.ROOT, "shim", "core", "pystack.c")) as f:
        table = f.read()
    d = cglib.tmpdir()
    ran = 0
    incs = sorted(glob.glob(os.path.join(PYENV, "3.*", "include", "python3.*"))) + ["/usr/include/python3.11"]
    for inc in incs:
        if not os.path.exists(os.path.join(inc, "internal", "pycore_runtime.h")):
            continue
        minor = int(os.path.basename(inc).split(".")[1])
        if minor < 9:
            continue
        exe = os.path.join(d, "off%d" % ran)
        extra = ["-I/usr/include/x86_64-linux-gnu/" + os.path.basename(inc)] if inc.startswith("/usr/") else []
        b = subprocess.run(["gcc", "-I", inc] + extra + ["-o", exe, os.path.join(cglib.ROOT, "scripts", "pyoffsets.c")],
                           capture_output=True, text=True)
        check(b.returncode == 0, "pyoffsets builds against %s" % inc, got=b.stderr[-2000:])
        row = subprocess.run([exe], capture_output=True, text=True).stdout.strip()
        check(row and row in table, "the row for %s is in pystack.c" % inc, got=row)
        ran += 1
    if not ran:
        raise cglib.Skip("no interpreter headers")


def test_report_groups_by_python_call_site():
    """connguard report: failures by the program's own innermost frame (requests' and the
    standard library's frames skipped), leaks by Python line, text and JSON logs alike."""
    d = cglib.tmpdir()
    log = os.path.join(d, "cg.log")
    for mode, fmt in (("refused", "text"), ("refused", "json"), ("leak", "text"), ("tls", "json")):
        cglib.run([cglib.PYTHON, APP, mode, str(cglib.free_port())],
                  env=_env(RETRIES=1, LOG=log, LOG_FORMAT=fmt, LEAKS="off" if mode == "tls" else "exit"))
    r = cglib.run([cglib.TOOL, "report", log], preload=False)
    check(r.returncode == 0, "report runs", got=r.out + r.err)
    sec = r.out.split("Failures by Python call site")[1].split("\n\n")[0]
    rows = {}
    for line in sec.splitlines()[2:]:
        parts = line.split()
        rows[" ".join(parts[:-3])] = tuple(int(x) for x in parts[-3:])
    want = {"%s:%d in open_conn" % (APP, AT["connect"]): (4, 2, 0),
            "%s:%d in handshake" % (APP, AT["handshake"]): (0, 0, 2)}
    check(rows == want, "two call sites: 4 failed attempts and 2 give-ups at the connect line, 2 TLS failures "
          "at the handshake line (ssl.py's frames skipped)", got=r.out)
    for name, n in (("leak_pool", 3), ("leak_one", 1)):
        check("%d socket%s (leak, 1 record)" % (n, "s" if n > 1 else "") in r.out and
              "created at: %s:%d in %s (Python)" % (APP, AT[name], name) in r.out, "leak group of %s" % name, got=r.out)


LIVE = r'''
import socket, sys, time
def keep_a():
    return socket.socket().detach()
def keep_b():
    return socket.socket().detach()
held = [keep_a(), keep_a(), keep_b()]
print("ready", flush=True)
sys.stdin.readline()
'''


def test_live_leaks_show_python_frames():
    """connguard leaks PID: each live candidate with its Python frames, before the native ones,
    read from the stats segment (published Python stacks); the two sockets of keep_a's line are
    one group (the stack listed once), keep_b's its own."""
    p = cglib.spawn([cglib.PYTHON, "-c", LIVE], env=_env(LEAK_AGE_MS=0), preload=True,
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    check(p.stdout.readline() == b"ready\n", "program started")
    r = cglib.run([cglib.TOOL, "leaks", "--no-symbols", str(p.pid)], preload=False)
    p.stdin.close()
    p.wait(10)
    blocks = [b for b in r.out.split("\n\n") if b.startswith("LEAK?")]
    check(len(blocks) == 2, "two candidate groups: one per Python line", got=r.out + r.err)
    seen = []
    for b in blocks:
        lines = [l.strip() for l in b.splitlines()]
        py = [l for l in lines if l.startswith("File ")]
        first_native = next(i for i, l in enumerate(lines) if l.startswith("#0 "))
        check(py and lines.index(py[-1]) < first_native, "Python frames before the native ones", got=b)
        check(py[0].endswith("in __init__") and "socket.py" in py[0], "socket.socket() innermost", got=b)
        seen.append((py[1], "2 sockets" in lines[0]))
    check(sorted(seen) == [('File "<string>", line 4, in keep_a', True), ('File "<string>", line 6, in keep_b', False)],
          "each socket's own Python line", got=r.out)


REUSE = r'''
import gc, socket
held = []
for i in range(60):
    src = "import socket\ndef make_%d():\n%s    return socket.socket().detach()\n" % (i, "\n" * i)
    ns = {}
    exec(compile(src, "gen%d.py" % i, "exec"), ns)
    held.append(ns["make_%d" % i]())
    del ns
    gc.collect()
print("done")
'''


def test_reused_code_addresses_keep_their_own_lines():
    """Code objects (and their names and line tables) freed and allocated again at the same
    addresses: the cached call sites must not give one function's line to another."""
    ran = 0
    for minor in ("deb", "3.9", "3.10", "3.11", "3.12", "3.13"):
        try:
            py = _python(minor)
        except cglib.Skip:
            continue
        p = cglib.run([py, "-c", REUSE], env=_env(LOG_FORMAT="json", STACK_DEPTH=1))
        leaks = cglib.json_records(p.err, "leak")
        check(p.returncode == 0 and len(leaks) == 60, "%s: 60 groups, one per generated function" % py, got=p.err[-3000:])
        for r in leaks:
            f = r["pystack"][1]
            i = int(f["file"][3:-3])
            check(f["function"] == "make_%d" % i and f["line"] == i + 3, "%s: its own name and line" % py, got=r)
        ran += 1
    if not ran:
        raise cglib.Skip("no interpreter")
