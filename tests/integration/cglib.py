"""Shared helpers for connguard integration tests.

Rules (DEVELOPERS.md): traffic only to 127.0.0.1 / ::1; LD_PRELOAD only in the child's
environment; every server started here is stopped by pid; every wait is bounded.
"""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.path.join(ROOT, os.environ.get("BUILD", "build"))
SHIM = os.path.join(BUILD, "libconnguard.so")
CLIENTS = os.path.join(BUILD, "clients")
TOOL = os.path.join(BUILD, "connguard")
PYTHON = "/usr/bin/python3"
SERVERS = os.path.join(os.path.dirname(__file__), "servers.py")

_children = []


class TestFailure(AssertionError):
    pass


def check(cond, msg="check failed", *, got=None):
    if not cond:
        if got is not None:
            msg = "%s\n--- got ---\n%s" % (msg, got)
        raise TestFailure(msg)


def free_port(family=socket.AF_INET):
    """A loopback port with nothing listening on it (closed: connects are refused)."""
    host = "::1" if family == socket.AF_INET6 else "127.0.0.1"
    s = socket.socket(family, socket.SOCK_STREAM)
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return port


# Sanitizer runs (make check-asan / check-tsan, mk/sanitize.mk). CG_SAN_PRELOAD: a sanitizer
# runtime that must come before an instrumented shim in LD_PRELOAD; CG_SAN_ENV: "K=V ..." given
# to every preloaded run (a test's own settings win).
SAN_PRELOAD = os.environ.get("CG_SAN_PRELOAD", "")
SAN_ENV = dict(kv.split("=", 1) for kv in os.environ.get("CG_SAN_ENV", "").split() if "=" in kv)
_san_ok = {}


def _san_probe(cmd):
    """Some programs hang with a sanitizer runtime preloaded even without the shim (curl,
    wget and psql deadlock in setlocale under a preloaded ASan runtime): skip those tests."""
    if not SAN_PRELOAD or not cmd:
        return
    prog = cmd[0]
    if os.sep in prog and os.path.abspath(prog).startswith(ROOT + os.sep):
        return   # our own clients: built with the sanitizer themselves (and --version means nothing to them)
    if prog not in _san_ok:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONNGUARD_")}
        env["LD_PRELOAD"] = SAN_PRELOAD
        try:
            subprocess.run([prog, "--version"], env=env, capture_output=True, timeout=5)
            _san_ok[prog] = True
        except subprocess.TimeoutExpired:
            _san_ok[prog] = False
        except OSError:
            _san_ok[prog] = True   # not runnable at all: the test itself will say so
    if not _san_ok[prog]:
        raise Skip("%s hangs with %s preloaded, even without the shim" % (os.path.basename(prog), SAN_PRELOAD))


def env_for(extra=None, preload=True):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("CONNGUARD_") and k != "LD_PRELOAD"}
    if preload:
        env["LD_PRELOAD"] = (SAN_PRELOAD + " " + SHIM) if SAN_PRELOAD else SHIM
        env.update(SAN_ENV)
    for k, v in (extra or {}).items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = str(v)
    return env


def run(cmd, env=None, preload=True, timeout=60, input=None, cwd=None):
    """Runs cmd (a list) to completion. env: extra variables for the child only."""
    if preload:
        _san_probe(cmd)
    p = subprocess.run(cmd, env=env_for(env, preload), capture_output=True, timeout=timeout,
                       input=input, cwd=cwd)
    p.out = p.stdout.decode("utf-8", "replace")
    p.err = p.stderr.decode("utf-8", "replace")
    return p


def spawn(cmd, env=None, preload=False, **kw):
    """Starts a background process; stopped by pid in stop_all() after each test."""
    if preload:
        _san_probe(cmd)
    p = subprocess.Popen(cmd, env=env_for(env, preload), **kw)
    _children.append(p)
    return p


def stop(p, timeout=5):
    if p.poll() is None:
        try:
            os.kill(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(p.pid, signal.SIGKILL)
            p.wait(timeout)


def stop_all():
    while _children:
        stop(_children.pop())


def is_listening(port):
    """Whether a socket is in LISTEN on port (read from /proc/net/tcp{,6}: no connection made)."""
    for f in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(f) as fh:
                next(fh)
                for line in fh:
                    parts = line.split()
                    if parts[3] == "0A" and int(parts[1].rsplit(":", 1)[1], 16) == port:
                        return True
        except OSError:
            pass
    return False


def wait_listening(port, host="127.0.0.1", timeout=10):
    """Waits (bounded) until something listens on port. Makes no connection, so one-shot
    servers are not used up."""
    end = time.time() + timeout
    while time.time() < end:
        if is_listening(port):
            return True
        time.sleep(0.02)
    raise TestFailure("nothing listening on %s:%d after %ss" % (host, port, timeout))


def late_server(port, delay, host="127.0.0.1", mode="http", count=1, extra=()):
    """A server process that starts listening after `delay` seconds (see servers.py)."""
    cmd = [PYTHON, SERVERS, mode, host, str(port), str(delay), str(count)] + list(extra)
    return spawn(cmd, stdout=subprocess.DEVNULL)   # its "listening" line is not the test's output


class FullBacklog:
    """A listener whose accept queue is full: further SYNs are dropped, so connects time out."""

    def __init__(self, host="127.0.0.1"):
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.listener = socket.socket(fam, socket.SOCK_STREAM)
        self.listener.bind((host, 0))
        self.listener.listen(0)
        self.port = self.listener.getsockname()[1]
        self.fillers = []
        # One connection completes and sits in the queue, never accepted.
        c = socket.socket(fam, socket.SOCK_STREAM)
        c.settimeout(2)
        c.connect((host, self.port))
        self.fillers.append(c)

    def close(self):
        for c in self.fillers:
            c.close()
        self.listener.close()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


def tmpdir():
    return tempfile.mkdtemp(prefix="cgtest-")


# ---- log parsing ----

TEXT_HEAD = re.compile(r"^==(\d+)== connguard (\S+) ts=(\S+)(.*)$")

# Records of coordinated retries (CONNGUARD_COORDINATE): one per destination and outage, from
# whichever process's failure opened it, so they depend on how the processes' and threads'
# attempts interleave. The readers leave them out unless asked for by name; test_coord.py
# checks them.
COORD_EVENTS = ("breaker_open", "breaker_closed")


def json_records(text, event=None):
    """Parses a JSON log (one object per line). Every line must be valid JSON."""
    out = []
    for line in text.splitlines():
        if not line.strip():
            continue
        if not line.startswith("{"):
            continue  # the program's own stderr lines
        rec = json.loads(line)
        if event is None and rec.get("event") in COORD_EVENTS:
            continue
        if event is None or rec.get("event") == event:
            out.append(rec)
    return out


def text_records(text, event=None):
    """Parses the text format into dicts: header key=value fields, 'hint', 'stack' lines."""
    out = []
    cur = None
    for line in text.splitlines():
        m = TEXT_HEAD.match(line)
        if m:
            cur = {"pid": int(m.group(1)), "event": m.group(2), "ts": m.group(3), "stack": []}
            for k, v in re.findall(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)', m.group(4)):
                cur[k] = json.loads(v) if v.startswith('"') else v
            out.append(cur)
            continue
        if cur is not None and line.startswith("==%d==" % cur["pid"]):
            body = line.split("==", 2)[2]
            s = body.strip()
            if s.startswith("#"):
                cur["stack"].append(s)
            elif ": " in s:
                k, v = s.split(": ", 1)
                cur[k] = v
            continue
        cur = None
    if event:
        out = [r for r in out if r["event"] == event]
    else:
        out = [r for r in out if r["event"] not in COORD_EVENTS]
    return out


class Skip(Exception):
    """Raise to skip a test (a missing optional program); counted, never silent."""
