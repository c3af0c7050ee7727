"""Leave no trace (issue 11): a program, and every other user, cannot tell the shim is there
until it helps. Descriptors (/proc/self/fd listed with and without the shim), /dev/shm hygiene
(counted in a private /dev/shm: `unshare -m` and a tmpfs of the test's own), a full or squatted
/dev/shm, log paths another user prepared, a log torn by a full disk."""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import textwrap
import threading
import time

import cglib
from cglib import check
from stresslib import client

UID = os.geteuid()


class Acceptor:
    """Accepts and closes connections on a loopback port (a thread of the test)."""

    def __init__(self):
        self.s = socket.socket()
        self.s.bind(("127.0.0.1", 0))
        self.s.listen(64)
        self.port = self.s.getsockname()[1]
        self.stop = False
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        self.s.settimeout(0.2)
        while not self.stop:
            try:
                c, _ = self.s.accept()
                c.close()
            except OSError:
                pass

    def close(self):
        self.stop = True
        self.t.join(5)
        self.s.close()


def _stderr_records(err, event="connect_failed"):
    return len(re.findall(r"^==\d+== connguard %s " % event, err, re.M))


def _warnings(err):
    return [l for l in err.splitlines() if l.startswith("connguard: warning:")]


# ---------------------------------------------------------------- descriptors

PY_FDS = r"""
import os, socket, ssl, sys, threading
ok, bad = int(sys.argv[1]), int(sys.argv[2])
def listing(tag):
    d = os.open("/proc/self/fd", os.O_RDONLY | os.O_DIRECTORY)
    for fd in sorted(int(x) for x in os.listdir(d)):
        if fd != d:
            try:
                print(tag, fd, os.readlink("/proc/self/fd/%d" % fd).split(":[")[0])
            except OSError:
                pass
    os.close(d)
listing("start")
socket.create_connection(("127.0.0.1", ok)).close()
listing("healthy")
for i in range(2):
    try:
        socket.create_connection(("127.0.0.1", bad), timeout=(None if i == 0 else 5)).close()
    except ConnectionRefusedError:
        pass
listing("refused")
t = threading.Thread(target=lambda: listing("thread")); t.start(); t.join()
ctx = ssl.create_default_context()
s = socket.create_connection(("127.0.0.1", ok))
try:
    ctx.wrap_socket(s, server_hostname="localhost")
except (OSError, ssl.SSLError):
    pass
s.close()
listing("tls")
kept = socket.socket()
listing("kept")
kept.close()
"""


def _compare_listings(cmd, env, what, skip=()):
    acc = Acceptor()
    try:
        bad = cglib.free_port()
        bare = cglib.run(cmd + [str(acc.port), str(bad)], preload=False)
        check(bare.returncode == 0, "%s without the shim" % what, got=bare.out + bare.err)
        p = cglib.run(cmd + [str(acc.port), str(bad)], env=env)
        check(p.returncode == 0, "%s under the shim" % what, got=p.out + p.err)
        check(p.out == bare.out, "%s: /proc/self/fd differs under the shim" % what,
              got="with:\n%s\nwithout:\n%s" % (p.out, bare.out))
        return p
    finally:
        acc.close()


ENVS = [
    ("log on stderr", {"CONNGUARD_RETRIES": "2", "CONNGUARD_BACKOFF_MS": "5"}),
    ("log file, json", {"CONNGUARD_RETRIES": "2", "CONNGUARD_BACKOFF_MS": "5", "CONNGUARD_LOG_FORMAT": "json"}),
    ("leaks off, stats off", {"CONNGUARD_RETRIES": "1", "CONNGUARD_BACKOFF_MS": "5", "CONNGUARD_LEAKS": "off",
                              "CONNGUARD_STATS": "0"}),
]


def _env_for(label, env, d):
    e = dict(env)
    if "file" in label:
        e["CONNGUARD_LOG"] = os.path.join(d, "cg.%p.log")
    return e


def test_fd_listing_same_c_client():
    # Healthy connect, refused and retried (blocking, non-blocking with poll), a socket held
    # by leak tracking, and the listing inside an exit handler after fclose(stderr).
    d = cglib.tmpdir()
    try:
        for label, env in ENVS:
            p = _compare_listings([client("trace_fds")], _env_for(label, env, d), "trace_fds, " + label)
            if "file" in label:
                recs = [json.loads(l) for f in os.listdir(d) for l in open(os.path.join(d, f))]
                check(len([r for r in recs if r["event"] == "connect_failed"]) >= 3, "records in the file", got=recs)
                for f in os.listdir(d):
                    os.unlink(os.path.join(d, f))
            elif "stderr" in label:
                check(_stderr_records(p.err) >= 3, "records on stderr", got=p.err)
    finally:
        shutil.rmtree(d)


def test_fd_listing_same_python_with_tls():
    # python3 loads libssl: the shim's TLS hooks are live; the handshake fails (the server
    # closes), retried and diagnosed.
    d = cglib.tmpdir()
    try:
        for label, env in ENVS:
            _compare_listings([cglib.PYTHON, "-c", PY_FDS], _env_for(label, env, d), "python3, " + label)
    finally:
        shutil.rmtree(d)


def test_exit_report_survives_stderr_closed_in_an_exit_handler():
    # gnulib's close_stdout (coreutils, wget) closes stderr in an exit handler, before the
    # shim's exit report: a copy of stderr is taken at that moment only.
    acc = Acceptor()
    try:
        p = cglib.run([client("trace_fds"), str(acc.port), str(cglib.free_port()), "leak"],
                      env={"CONNGUARD_RETRIES": "0"})
    finally:
        acc.close()
    check(p.returncode == 0, "client", got=p.out + p.err)
    check(_stderr_records(p.err, "leak") == 1 and "SUMMARY: connguard: 1 socket leaked" in p.err,
          "the leak report reached the closed stderr", got=p.err)
    before = [l.split(" ", 1)[1] for l in p.out.splitlines() if l.startswith("L5 ")]
    at_exit = [l.split(" ", 1)[1] for l in p.out.splitlines() if l.startswith("L6 ")]
    check([l for l in at_exit if not l.startswith("2 ")] and not any(l.startswith("2 ") for l in at_exit),
          "fd 2 closed in the exit handler", got=p.out)
    extra = [l for l in at_exit if l not in before]
    check(len(extra) == 1, "one copy of stderr, taken inside exit() only", got=p.out)


def test_cpython_pass_fds_test_passes():
    # CPython's own suite lists the descriptors a child inherits (it failed on libunwind's pipe).
    p = cglib.run([cglib.PYTHON, "-m", "test", "test_subprocess", "-m", "test_pass_fds_redirected"], timeout=300)
    if "No module named test" in p.err or "No module named test" in p.out:
        raise cglib.Skip("CPython's test package is not installed")
    check(p.returncode == 0 and "SUCCESS" in p.out, "test_pass_fds_redirected under the shim", got=p.out[-2000:] + p.err[-2000:])


# ---------------------------------------------------------------- /dev/shm

SHM_HELPERS = """
def segs():
    return sorted(n for n in os.listdir("/dev/shm") if n.startswith("connguard.%d." % UID) and n.split(".")[-1].isdigit())
def env(**kw):
    e = {k: v for k, v in os.environ.items() if not k.startswith("CONNGUARD_")}
    e["LD_PRELOAD"] = SHIM
    e.update({k: str(v) for k, v in kw.items()})
    return e
"""


def _private_shm(script, size="4m", timeout=300, **consts):
    """Runs the Python script (without the shim; it starts shim processes itself, SHIM in its
    globals) in a private mount namespace with a fresh tmpfs on /dev/shm. Returns its stdout
    parsed as JSON."""
    if UID != 0 or not shutil.which("unshare"):
        raise cglib.Skip("needs root and unshare for a private /dev/shm")
    pre = "import json, os, signal, socket, subprocess, sys, time\nSHIM = %r\nPYTHON = %r\nUID = %d\n" % (
        cglib.SHIM, cglib.PYTHON, UID) + "".join("%s = %r\n" % kv for kv in consts.items())
    cmd = ["unshare", "-m", "--", "sh", "-c",
           'mount --make-rprivate / && mount -t tmpfs -o size=%s,mode=1777 cgtest /dev/shm && exec "$@"' % size,
           "sh", cglib.PYTHON, "-c", pre + SHM_HELPERS + textwrap.dedent(script)]
    p = cglib.run(cmd, preload=False, timeout=timeout)
    if p.returncode != 0 and ("Operation not permitted" in p.err or "permission denied" in p.err.lower()) \
            and "Traceback" not in p.err:
        raise cglib.Skip("no private mount namespace here: %s" % p.err.strip()[:200])
    check(p.returncode == 0 and p.out.strip(), "driver in the private /dev/shm", got=p.out + p.err)
    return json.loads(p.out.splitlines()[-1])




FORK_PROG = """
import os, socket
seen = 0
for i in range(200):
    pid = os.fork()
    if pid == 0:
        s = socket.socket()
        os._exit(0 if os.path.exists("/dev/shm/connguard.%d.%d" % (os.geteuid(), os.getpid())) else 3)
    _, st = os.waitpid(pid, 0)
    seen += os.WEXITSTATUS(st) == 0
print(seen)
"""

EXEC_PROG = """
import os, socket
s = socket.socket()
me = "/dev/shm/connguard.%d.%d" % (os.geteuid(), os.getpid())
print(os.path.exists(me), flush=True)
try:
    os.execv("/nonexistent/x", ["x"])
except OSError:
    pass
print(os.path.exists(me), flush=True)
socket.socket()
print(os.path.exists(me), flush=True)
os.execv("/bin/sh", ["sh", "-c", "test -e " + me + " && echo True || echo False"])
"""


def test_shm_no_file_from_shells_sleep_or_exited_children():
    r = _private_shm(r"""
    out = {}
    # 1,000 shells: dash execs nothing here and ends with _exit.
    subprocess.run(["/bin/sh", "-c", "i=0; while [ $i -lt 1000 ]; do /bin/sh -c true; i=$((i+1)); done"],
                   env=env(), check=True)
    out["sh"] = segs()
    # A running sleep has made no socket.
    s = subprocess.Popen(["sleep", "30"], env=env())
    time.sleep(0.5)
    out["sleep"] = segs()
    s.kill(); s.wait()
    # 200 forked children each open a socket (their own segment appears) and _exit.
    p = subprocess.run([PYTHON, "-c", FORK_PROG], env=env(), capture_output=True, text=True, check=True)
    out["children_had_one"] = int(p.stdout)
    out["children"] = segs()
    # exec: the old image's segment goes; a failed exec brings it back.
    p = subprocess.run([PYTHON, "-c", EXEC_PROG], env=env(), capture_output=True, text=True, check=True)
    out["exec"] = p.stdout.split()
    out["after_exec"] = segs()
    print(json.dumps(out))
    """, FORK_PROG=FORK_PROG, EXEC_PROG=EXEC_PROG)
    check(r["sh"] == [], "1,000 runs of sh -c true left files", got=r["sh"])
    check(r["sleep"] == [], "a running sleep has a file", got=r["sleep"])
    check(r["children_had_one"] == 200, "each child had its segment while it lived", got=r)
    check(r["children"] == [], "200 children that _exit left files", got=r["children"])
    check(r["exec"] == ["True", "False", "True", "False"],
          "segment: present, gone during a failed exec, back at the next socket, gone in the new image", got=r["exec"])
    check(r["after_exec"] == [], "nothing left after exec", got=r["after_exec"])


def test_shm_dead_processes_reaped_by_the_next_one():
    r = _private_shm(r"""
    out = {}
    procs = []
    for i in range(5):
        p = subprocess.Popen([PYTHON, "-c", "import socket,sys,time; s=socket.socket(); print(1, flush=True); time.sleep(60)"],
                             env=env(), stdout=subprocess.PIPE)
        p.stdout.readline()
        procs.append(p)
    for p in procs:
        p.kill(); p.wait()
    killed = [p.pid for p in procs]
    out["killed_left"] = segs()
    # Someone else's file with our name pattern, and a file of a live process of ours: kept.
    fake = "/dev/shm/connguard.%d.%d" % (UID, killed[0] + 100000)
    fd = os.open(fake, os.O_CREAT | os.O_WRONLY, 0o600); os.close(fd); os.chown(fake, 65534, 65534)
    live = subprocess.Popen([PYTHON, "-c", "import socket,sys,time; s=socket.socket(); print(1, flush=True); time.sleep(60)"],
                            env=env(), stdout=subprocess.PIPE)
    live.stdout.readline()
    subprocess.run([PYTHON, "-c", "import socket; socket.socket()"], env=env(), check=True)
    out["after"] = segs()
    out["live"] = "connguard.%d.%d" % (UID, live.pid)
    out["fake"] = os.path.basename(fake)
    live.kill(); live.wait()
    print(json.dumps(out))
    """)
    check(len(r["killed_left"]) == 5, "SIGKILLed processes leave their file (nothing can run)", got=r["killed_left"])
    check(sorted(r["after"]) == sorted([r["live"], r["fake"]]),
          "the next process removed the dead ones, kept the live one and another user's file", got=r)


MANY_SOCKETS = """
import resource, socket
resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))
s = [socket.socket() for i in range(3000)]
print(len(s), len(set(x.fileno() for x in s)))
for x in s: x.close()
"""


def test_full_shm_is_harmless():
    # /dev/shm full before the program starts, and full after the segment's head was reserved
    # (leak slots cannot get their pages): 3,000 sockets, same output as without the shim.
    r = _private_shm(r"""
    prog = MANY_SOCKETS
    def fill(leave):
        try:
            os.unlink("/dev/shm/fill")
        except FileNotFoundError:
            pass
        fd = os.open("/dev/shm/fill", os.O_CREAT | os.O_WRONLY, 0o600)
        try:
            while True:
                os.write(fd, b"x" * 4096)
        except OSError:
            pass
        os.ftruncate(fd, os.fstat(fd).st_size - leave)
        os.close(fd)
    out = {}
    bare = subprocess.run([PYTHON, "-c", prog], capture_output=True, text=True)
    out["bare"] = [bare.returncode, bare.stdout, bare.stderr]
    for label, leave in (("full", 0), ("nearly", 8192)):
        fill(leave)
        p = subprocess.run([PYTHON, "-c", prog], env=env(), capture_output=True, text=True)
        out[label] = [p.returncode, p.stdout, p.stderr, segs()]
        for n in segs():
            os.unlink("/dev/shm/" + n)
    print(json.dumps(out))
    """, size="1m", MANY_SOCKETS=MANY_SOCKETS)
    bare = r["bare"]
    check(bare[0] == 0 and bare[1] == "3000 3000\n", "bare run", got=bare)
    rc, out, err, left = r["full"]
    check(rc == 0 and out == bare[1], "full /dev/shm: same result", got=r["full"])
    w = _warnings(err)
    check(len(w) == 1 and "no room in /dev/shm (ENOSPC)" in w[0] and "live counters stay private" in w[0]
          and err == w[0] + "\n", "one warning, nothing else", got=err)
    check(left == [], "no file left", got=left)
    rc, out, err, left = r["nearly"]
    check(rc == 0 and out == bare[1] and err == "", "head reserved, slots without room: same result, silent",
          got=r["nearly"])


def test_squatted_segment_name():
    # Another user (and a symlink) took the name the program will use: one warning, private
    # counters, the file untouched.
    r = _private_shm(r"""
    out = {}
    for kind in ("file", "symlink"):
        p = subprocess.Popen([PYTHON, "-c", "import socket,sys; sys.stdin.readline(); s=[socket.socket() for i in range(3)]; print(len(s))"],
                             env=env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        name = "/dev/shm/connguard.%d.%d" % (UID, p.pid)
        if kind == "file":
            fd = os.open(name, os.O_CREAT | os.O_WRONLY, 0o666); os.close(fd); os.chown(name, 65534, 65534); os.chmod(name, 0o666)
        else:
            os.symlink("/dev/shm/target", name)
        o, e = p.communicate("go\n", timeout=60)
        st = os.lstat(name)
        out[kind] = [p.returncode, o, e, st.st_uid, st.st_size, os.path.islink(name), os.path.exists("/dev/shm/target")]
        os.unlink(name)
    print(json.dumps(out))
    """)
    for kind in ("file", "symlink"):
        rc, o, e, uid, size, islink, target = r[kind]
        check(rc == 0 and o == "3\n", "%s: program unaffected" % kind, got=r[kind])
        w = _warnings(e)
        check(len(w) == 1 and "exists and is not ours" in w[0] and "live counters stay private" in w[0] and e == w[0] + "\n",
              "%s: one warning" % kind, got=e)
        if kind == "file":
            check(uid == 65534 and size == 0, "the other user's file untouched", got=r[kind])
        else:
            check(islink and not target, "the symlink neither followed nor removed", got=r[kind])


# ---------------------------------------------------------------- log paths

def _refused(env, n=2):
    port = cglib.free_port()
    argv = [client("stress_connect"), "block", str(n), "1", str(port)]
    e = {"CONNGUARD_RETRIES": "1", "CONNGUARD_BACKOFF_MS": "1", "CONNGUARD_JITTER": "none"}
    e.update(env)
    p = cglib.run(argv, env=e)
    check(p.returncode == 0 and p.out == "result ECONNREFUSED %d\n" % n, "program unaffected", got=p.out + p.err)
    return p


def test_log_path_prepared_by_another_user_is_refused():
    d = cglib.tmpdir()
    os.chmod(d, 0o1777)
    try:
        # Another user's file, writable by everyone (he would read our records).
        log = os.path.join(d, "app.log")
        fd = os.open(log, os.O_CREAT | os.O_WRONLY, 0o666)
        os.close(fd)
        os.chown(log, 65534, 65534)
        os.chmod(log, 0o666)
        p = _refused({"CONNGUARD_LOG": log})
        check(os.path.getsize(log) == 0, "nothing written into the other user's file")
        check(_warnings(p.err) == ["connguard: warning: CONNGUARD_LOG file %s belongs to another user: refused; records go to stderr" % log],
              "one warning", got=p.err)
        check(_stderr_records(p.err) == 4, "records on stderr instead", got=p.err)
        # Another user's FIFO: nothing opened for writing.
        fifo = os.path.join(d, "fifo.log")
        os.mkfifo(fifo, 0o666)
        os.chown(fifo, 65534, 65534)
        rd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        p = _refused({"CONNGUARD_LOG": fifo})
        try:
            got = os.read(rd, 65536)
        except BlockingIOError:
            got = b""
        os.close(rd)
        check(got == b"", "nothing written into the other user's FIFO", got=got)
        check(_warnings(p.err) == ["connguard: warning: CONNGUARD_LOG file %s is another user's FIFO: refused; records go to stderr" % fifo],
              "one warning", got=p.err)
        # Our own file that others may write: refused as well.
        own = os.path.join(d, "own.log")
        fd = os.open(own, os.O_CREAT | os.O_WRONLY, 0o600)
        os.close(fd)
        os.chmod(own, 0o622)
        p = _refused({"CONNGUARD_LOG": own})
        check(os.path.getsize(own) == 0 and _warnings(p.err) == [
            "connguard: warning: CONNGUARD_LOG file %s is writable by group or others: refused; records go to stderr" % own],
            "group/other-writable file refused", got=p.err)
    finally:
        shutil.rmtree(d)


def test_log_path_ours_created_exclusively_and_reused():
    d = cglib.tmpdir()
    try:
        old = os.umask(0)
        try:
            p = _refused({"CONNGUARD_LOG": os.path.join(d, "cg.%p.log"), "CONNGUARD_LOG_FORMAT": "json"})
        finally:
            os.umask(old)
        files = os.listdir(d)
        check(len(files) == 1 and p.err == "", "one file, no warning", got=(files, p.err))
        st = os.stat(os.path.join(d, files[0]))
        check(st.st_mode & 0o777 == 0o600 and st.st_uid == UID, "created owner-only", got=oct(st.st_mode))
        lines = open(os.path.join(d, files[0])).read().splitlines()
        recs = [json.loads(l) for l in lines]
        check(len([r for r in recs if r["event"] == "connect_failed"]) == 4,
              "every record in our file (not refused after the first)", got=lines)
        # An existing file of ours, a FIFO of ours with a reader, /dev/null: used, silently.
        own = os.path.join(d, "own.log")
        with open(own, "w") as f:
            f.write("earlier line\n")
        os.chmod(own, 0o644)
        p = _refused({"CONNGUARD_LOG": own})
        check(p.err == "" and open(own).read().startswith("earlier line\n") and _stderr_records(open(own).read()) == 4,
              "appended to our own file", got=p.err + open(own).read())
        fifo = os.path.join(d, "fifo")
        os.mkfifo(fifo, 0o600)
        rd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        p = _refused({"CONNGUARD_LOG": fifo})
        got = os.read(rd, 1 << 20).decode()
        os.close(rd)
        check(p.err == "" and _stderr_records(got) == 4, "records through our FIFO", got=p.err + got)
        p = _refused({"CONNGUARD_LOG": "/dev/null"})
        check(p.err == "", "/dev/null accepted silently", got=p.err)
    finally:
        shutil.rmtree(d)


def test_log_torn_by_a_full_disk_loses_one_line():
    # The log's filesystem fills in the middle of a record; space comes back; the next record
    # starts on a fresh line: a JSON-lines reader loses exactly the cut record.
    if UID != 0 or not shutil.which("unshare"):
        raise cglib.Skip("needs root and unshare for a private tmpfs")
    d = cglib.tmpdir()
    try:
        port = cglib.free_port()
        driver = textwrap.dedent(r"""
        import json, os, subprocess, sys
        d, shim, py, port = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
        log = os.path.join(d, "log.json")
        # Our own log file, ending 100 bytes before a page boundary; then the disk is full.
        pad = '{"pad":"' + "x" * (4096 - 100 - 12) + '"}\n'
        with open(log, "w") as f:
            f.write(pad)
        os.chmod(log, 0o600)
        fd = os.open(os.path.join(d, "fill"), os.O_CREAT | os.O_WRONLY, 0o600)
        try:
            while True:
                os.write(fd, b"x" * 4096)
        except OSError:
            pass
        os.close(fd)
        prog = ("import socket, sys\n"
                "def once():\n"
                "    try: socket.create_connection(('127.0.0.1', %s))\n"
                "    except ConnectionRefusedError: pass\n"
                "once(); print('one', flush=True); sys.stdin.readline(); once(); once()\n" % port)
        env = dict(os.environ, LD_PRELOAD=shim, CONNGUARD_LOG=log, CONNGUARD_LOG_FORMAT="json", CONNGUARD_RETRIES="0")
        p = subprocess.Popen([py, "-c", prog], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        p.stdout.readline()
        os.unlink(os.path.join(d, "fill"))
        out, err = p.communicate("go\n", timeout=60)
        print(json.dumps([p.returncode, err, open(log).read()]))
        """)
        cmd = ["unshare", "-m", "--", "sh", "-c",
               'mount --make-rprivate / && mount -t tmpfs -o size=64k cgtest "$1" && shift && exec "$@"', "sh", d,
               cglib.PYTHON, "-c", driver, d, cglib.SHIM, cglib.PYTHON, str(port)]
        p = cglib.run(cmd, preload=False, timeout=120)
        if p.returncode != 0 and "Traceback" not in p.err:
            raise cglib.Skip("no private mount namespace here: %s" % p.err.strip()[:200])
        check(p.returncode == 0, "driver", got=p.out + p.err)
        rc, err, text = json.loads(p.out.splitlines()[-1])
        check(rc == 0, "program unaffected", got=err)
        check(_warnings(err) == ["connguard: warning: cannot write a whole record to the CONNGUARD_LOG file (disk full?); records may be lost"],
              "one warning", got=err)
        lines = text.split("\n")
        check(lines[-1] == "", "ends with a whole line", got=text[-300:])
        bad = []
        good = []
        for l in lines[1:-1]:
            try:
                good.append(json.loads(l))
            except ValueError:
                bad.append(l)
        check(len(bad) == 1 and len(bad[0]) == 4096 - len(lines[0]) - 1 and bad[0].startswith('{"ts":'),
              "one cut record, on its own line", got=lines)
        check([r["event"] for r in good] == ["connect_failed", "connect_failed"], "the next records whole", got=good)
    finally:
        subprocess.run(["umount", d], capture_output=True)
        shutil.rmtree(d, ignore_errors=True)
