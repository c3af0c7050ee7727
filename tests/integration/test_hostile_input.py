"""Hostile input: every CONNGUARD_* variable empty, huge, negative, non-numeric and as long as
the kernel lets an environment string be (128 KiB: execve refuses longer ones, so the 1 MB case
is a unit test of the parser); log paths that are symlinks, in read-only directories, on a full
device, FIFOs without a reader, directories. The program always runs as it does without the
shim, and each problem is reported in exactly one short warning line."""
import os
import re
import shutil
import subprocess

import cglib
from cglib import check
from stresslib import client

VARS_H = os.path.join(cglib.ROOT, "shim", "cg_vars.h")
MAX_ENV_STRING = 131071          # MAX_ARG_STRLEN (32 pages) minus the NUL, measured here


def _vars():
    """(name, kind) of every variable, read from shim/cg_vars.h: new ones are covered as added."""
    text = open(VARS_H).read()
    return [(n, k) for n, k in re.findall(r"X\((\w+),\s*(\w+),", text) if n.isupper()]


def _warnings(err):
    return [l for l in err.splitlines() if l.startswith("connguard: warning:")]


def _stderr_records(err):
    """Records (text format) that reached stderr instead of the refused log path."""
    return len(re.findall(r"^==\d+== connguard connect_failed ", err, re.M))


def _base(port):
    p = cglib.run([client("stress_connect"), "block", "1", "1", str(port)], preload=False)
    check(p.returncode == 0 and p.out == "result ECONNREFUSED 1\n", "base run", got=p.out + p.err)
    return p


def _values(name):
    room = MAX_ENV_STRING - len("CONNGUARD_%s=" % name)
    return [("empty", ""), ("huge", "9" * 30), ("negative", "-1"), ("non-numeric", "abc"),
            ("long digits", "9" * room), ("long text", "x" * room)]


def _expected(name, kind, label):
    """How many warnings a value must give: 1, or None when either 0 or 1 is right."""
    if name == "RETRIES" and label == "empty":
        return 0                                # empty = no cap, like unset
    if kind in ("COUNT", "MS", "BOOL", "ENUM") or name == "RETRY_ON":
        return 1
    if name in ("ONLY", "SKIP"):
        return None if label == "empty" else 1   # a blank list may mean "no restriction"
    if label in ("long digits", "long text"):
        return 1                                # longer than a path can be
    if name == "LOG":
        return 1 if label == "empty" else 0     # anything else is a (relative) file name
    return None                                 # SUPPRESSIONS: a file that may not exist


def test_every_variable_with_bad_values():
    port = cglib.free_port()
    base = _base(port)
    d = cglib.tmpdir()
    try:
        for name, kind in _vars():
            for label, value in _values(name):
                env = {"CONNGUARD_RETRIES": "1", "CONNGUARD_BACKOFF_MS": "1", "CONNGUARD_JITTER": "none",
                       "CONNGUARD_LOG": os.path.join(d, "cg.log")}
                env["CONNGUARD_" + name] = value
                # cwd: a LOG value like "abc" is a file created there.
                p = cglib.run([client("stress_connect"), "block", "1", "1", str(port)], env=env, cwd=d, timeout=60)
                what = "CONNGUARD_%s %s (%d bytes)" % (name, label, len(value))
                check(p.returncode == base.returncode and p.out == base.out,
                      "%s: the program must run as without the shim" % what, got=p.out + p.err[:2000])
                warns = _warnings(p.err)
                want = _expected(name, kind, label)
                check(len(warns) <= 1 and (want is None or len(warns) == want),
                      "%s: %s warning line(s), want %s" % (what, len(warns), want), got=p.err[:3000])
                for w in warns:
                    check(("CONNGUARD_%s=" % name) in w and len(w) < 300, "%s: one short line naming it" % what, got=w)
                others = [l for l in p.err.splitlines() if l not in warns and not l.startswith("==")]
                check(others == [], "%s: nothing else on stderr" % what, got=p.err[:2000])
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_all_variables_bad_at_once():
    # Every variable at 64 KiB of text (all of them at 128 KiB would pass ARG_MAX): one warning
    # per variable, no more, and the program runs.
    port = cglib.free_port()
    base = _base(port)
    env = {"CONNGUARD_" + n: "y" * 65536 for n, _ in _vars()}
    p = cglib.run([client("stress_connect"), "block", "1", "1", str(port)], env=env, timeout=60)
    check(p.returncode == 0 and p.out == base.out, "program unchanged", got=p.out)
    warns = _warnings(p.err)
    named = sorted(re.match(r"connguard: warning: CONNGUARD_(\w+)=", w).group(1) for w in warns)
    # DISABLE=yyy... is bad and falls back to 0: the shim stays on and parses the rest.
    check(named == sorted(n for n, _ in _vars()), "exactly one warning per variable", got="\n".join(warns))


def _refused_run(env, n=4, timeout=60):
    """A client whose n connects are all refused (2 records each with RETRIES=1)."""
    port = cglib.free_port()
    argv = [client("stress_connect"), "block", str(n), "1", str(port)]
    base = cglib.run(argv, preload=False)
    e = {"CONNGUARD_RETRIES": "1", "CONNGUARD_BACKOFF_MS": "1", "CONNGUARD_JITTER": "none"}
    e.update(env)
    p = cglib.run(argv, env=e, timeout=timeout)
    check(p.returncode == base.returncode == 0 and p.out == base.out == "result ECONNREFUSED %d\n" % n,
          "the program sees what it sees without the shim", got=p.out + p.err)
    return p


def test_log_symlink_is_not_followed():
    d = cglib.tmpdir()
    target = os.path.join(d, "target")
    open(target, "w").close()
    link = os.path.join(d, "cg.log")
    os.symlink(target, link)
    p = _refused_run({"CONNGUARD_LOG": link})
    check(os.path.getsize(target) == 0, "nothing written through the symlink")
    check(_warnings(p.err) == ["connguard: warning: CONNGUARD_LOG file %s is a symbolic link: refused; records go to stderr" % link],
          "one warning for all 8 records", got=p.err)
    check(_stderr_records(p.err) == 8, "the records went to stderr", got=p.err)
    shutil.rmtree(d)


def test_log_in_read_only_directory():
    # Root ignores directory permissions: run the client as nobody.
    if os.getuid() != 0 or not shutil.which("setpriv"):
        raise cglib.Skip("needs root and setpriv to run the client as another user")
    d = cglib.tmpdir()
    os.chmod(d, 0o755)
    ro = os.path.join(d, "ro")
    os.mkdir(ro, 0o555)
    log = os.path.join(ro, "cg.log")
    p = cglib.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", client("stress_connect"),
                   "block", "1", "1", "1"], preload=False)
    if p.returncode != 0:
        raise cglib.Skip("the client cannot run as nobody here: %s" % p.err.strip()[:200])
    port = cglib.free_port()
    argv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
            client("stress_connect"), "block", "4", "1", str(port)]
    base = cglib.run(argv, preload=False)
    p = cglib.run(argv, env={"CONNGUARD_LOG": log, "CONNGUARD_RETRIES": "1", "CONNGUARD_BACKOFF_MS": "1"})
    check(p.returncode == 0 and p.out == base.out == "result ECONNREFUSED 4\n", "program unchanged", got=p.out + p.err)
    check(_warnings(p.err) == ["connguard: warning: CONNGUARD_LOG file %s cannot be opened: EACCES; records go to stderr" % log],
          "one warning", got=p.err)
    check(_stderr_records(p.err) == 8, "the records went to stderr", got=p.err)
    check(not os.path.exists(log), "no file created")
    shutil.rmtree(d)


def test_log_on_a_full_device():
    # Every write fails with ENOSPC: the program's connects are not affected, one warning.
    p = _refused_run({"CONNGUARD_LOG": "/dev/full"})
    check(_warnings(p.err) == ["connguard: warning: cannot write a whole record to the CONNGUARD_LOG file (disk full?); records may be lost"],
          "one warning for all 8 records", got=p.err)


def test_log_fifo_without_reader():
    # Opening a FIFO for writing blocks until a reader comes: the shim must not wait for one.
    d = cglib.tmpdir()
    fifo = os.path.join(d, "cg.log")
    os.mkfifo(fifo)
    p = _refused_run({"CONNGUARD_LOG": fifo}, timeout=20)
    check(_warnings(p.err) == ["connguard: warning: CONNGUARD_LOG file %s is a FIFO with no reader: ENXIO; records go to stderr" % fifo],
          "one warning", got=p.err)
    check(_stderr_records(p.err) == 8, "the records went to stderr", got=p.err)
    shutil.rmtree(d)


def test_log_path_is_a_directory():
    d = cglib.tmpdir()
    p = _refused_run({"CONNGUARD_LOG": d})
    check(_warnings(p.err) == ["connguard: warning: CONNGUARD_LOG file %s cannot be opened: EISDIR; records go to stderr" % d],
          "one warning", got=p.err)
    check(_stderr_records(p.err) == 8, "the records went to stderr", got=p.err)
    shutil.rmtree(d)


def test_log_warning_never_written_into_a_reused_fd2():
    # The program closes every fd, puts its own file on fd 2 and on the shim's old numbers, and
    # the log file has been replaced by a symlink: the reopen fails, and the warning about it
    # must not land in the program's file.
    d = cglib.tmpdir()
    log = os.path.join(d, "cg.log")
    sentinel = os.path.join(d, "sentinel")
    port = cglib.free_port()
    p = cglib.run([client("stress_closeall"), "loop", "4", str(port), sentinel, "stderr", "breaklog=" + log],
                  env={"CONNGUARD_LOG": log, "CONNGUARD_RETRIES": "1", "CONNGUARD_BACKOFF_MS": "1",
                       "CONNGUARD_LOG_FORMAT": "json"})
    check(p.returncode == 0, "client", got=p.err)
    res = {l.split()[1]: int(l.split()[2]) for l in p.out.splitlines()}
    check(res == {"before:ECONNREFUSED": 4, "after:ECONNREFUSED": 4, "sentinel_bytes:0": 1},
          "nothing written into the program's file", got=p.out + open(sentinel, errors="replace").read())
    check(p.err == "", "the warning had nowhere safe to go", got=p.err)
    shutil.rmtree(d)
