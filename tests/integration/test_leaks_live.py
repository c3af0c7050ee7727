"""Issue 3: leaks in a running program. The shim publishes every tracked socket in the stats
segment (/dev/shm/connguard.<uid>.<pid>); `connguard leaks PID` joins it with /proc. This test
reads the segment with the layout the header defines (printed by build/clients/shm_layout)."""
import json
import os
import re
import select
import socket
import struct
import subprocess
import time

import cglib
import leaklib
from cglib import check


def layout():
    p = subprocess.run([leaklib.client("shm_layout")], capture_output=True, timeout=30, check=True)
    return json.loads(p.stdout)


def read_segment(pid, L):
    path = "/dev/shm/connguard.%d.%d" % (os.getuid(), pid)
    with open(path, "rb") as f:
        data = f.read()
    check(len(data) == L["total"], "segment size")
    u32 = lambda off: struct.unpack_from("<I", data, off)[0]
    i64 = lambda off: struct.unpack_from("<q", data, off)[0]
    u64 = lambda off: struct.unpack_from("<Q", data, off)[0]
    hdr = {"magic": u32(L["magic"]), "version": u32(L["version"]), "leak_mode": u32(L["leak_mode"]),
           "leak_age_ms": u32(L["leak_age_ms"]), "open_sockets": i64(L["open_sockets"]),
           "leak_candidates": u64(L["leak_candidates"]), "leak_stacks_used": u64(L["leak_stacks_used"]),
           "leak_stacks_full": u64(L["leak_stacks_full"])}
    slots = []
    for i in range(L["slots"]):
        base = L["leaks"] + i * L["slot_size"]
        seq, ino = u32(base + L["s_seq"]), u64(base + L["s_ino"])
        if ino == 0 or ino == 2 ** 64 - 1:
            continue
        check(seq % 2 == 0, "no writer is active while the program waits on stdin")
        stack = u32(base + L["s_stack"])
        pcs = []
        if 1 <= stack <= L["stacks_cap"]:
            sbase = L["stacks"] + (stack - 1) * L["stack_size"]
            n = u32(sbase + L["st_nframes"])
            check(n <= L["stack"], "frame count within bounds", got=n)
            pcs = [u64(sbase + L["st_pcs"] + 8 * k) for k in range(n)]
        slots.append({
            "index": i, "fd": struct.unpack_from("<i", data, base + L["s_fd"])[0], "ino": ino,
            "kind": u32(base + L["s_kind"]), "via": u32(base + L["s_via"]),
            "created_ns": i64(base + L["s_created_ns"]),
            "peer": sockaddr(data[base + L["s_peer"]:base + L["s_peer"] + u32(base + L["s_peerlen"])]),
            "stack": stack, "pcs": pcs,
        })
    return hdr, slots


def sockaddr(raw):
    """Formats a raw struct sockaddr as the shim's log does ("" when none)."""
    if len(raw) < 2:
        return ""
    fam = struct.unpack_from("<H", raw)[0]
    if fam == socket.AF_INET and len(raw) >= 16:
        return "%s:%d" % (socket.inet_ntop(socket.AF_INET, raw[4:8]), struct.unpack_from(">H", raw, 2)[0])
    if fam == socket.AF_INET6 and len(raw) >= 28:
        return "[%s]:%d" % (socket.inet_ntop(socket.AF_INET6, raw[8:24]), struct.unpack_from(">H", raw, 2)[0])
    if fam == socket.AF_UNIX:
        return "unix:" + raw[2:].split(b"\0")[0].decode("utf-8", "replace")
    return "family%d" % fam


INO_UNKNOWN = 2 ** 64 - 2


def fd_inode(pid, fd):
    link = os.readlink("/proc/%d/fd/%d" % (pid, fd))
    check(link.startswith("socket:["), "fd %d is a socket" % fd)
    return int(link[8:-1])


def tcp_state(ino):
    for f in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(f) as fh:
            next(fh)
            for line in fh:
                parts = line.split()
                if int(parts[9]) == ino:
                    return parts[3]
    return None


def in_python_text(pid, pc):
    py = os.path.realpath(cglib.PYTHON)
    with open("/proc/%d/maps" % pid) as fh:
        for line in fh:
            parts = line.split()
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            if lo <= pc < hi and len(parts) >= 6 and os.path.realpath(parts[5]) == py:
                return True
    return False


def test_live_publication():
    L = layout()
    port = cglib.free_port()
    srv = cglib.late_server(port, 0, mode="line", count=3)
    cglib.wait_listening(port)
    t0 = time.time_ns()
    prog = cglib.spawn([cglib.PYTHON, leaklib.prog("live_leak.py"), str(port), "3"],
                       env={"CONNGUARD_LEAK_AGE_MS": "1500"}, preload=True,
                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    fds = [int(x) for x in prog.stdout.readline().split()[1:]]
    check(len(fds) == 4, "3 clients and a listener")
    hdr, slots = read_segment(prog.pid, L)
    check(hdr["magic"] == L["magic_value"] and hdr["version"] == L["version_value"], "header")
    check(hdr["leak_mode"] == 1 and hdr["leak_age_ms"] == 1500, "leak parameters published", got=hdr)
    check(hdr["open_sockets"] == 4 and hdr["leak_candidates"] == 4, "counters", got=hdr)
    check(sorted(s["fd"] for s in slots) == sorted(fds), "one slot per open socket", got=slots)
    stream_inet = socket.SOCK_STREAM | (socket.AF_INET << 16)
    for s in slots:
        # The identity is taken lazily (docs/leaks.md): a slot says "not taken yet" (2**64 - 2)
        # until then, and the tool joins on the fd's socket; once taken it must be the fd's.
        check(s["ino"] in (fd_inode(prog.pid, s["fd"]), INO_UNKNOWN), "the inode joins with /proc/PID/fd", got=s)
        s["ino"] = fd_inode(prog.pid, s["fd"])
        check(s["via"] == 1 and s["kind"] == stream_inet, "obtained by socket(), tcp", got=s)
        check(t0 <= s["created_ns"] <= time.time_ns(), "creation time (realtime)", got=s)
        check(len(s["pcs"]) >= 5 and in_python_text(prog.pid, s["pcs"][0]), "raw stack maps into python3", got=s)
    clients = [s for s in slots if s["peer"]]
    check(len(clients) == 3 and all(s["peer"] == "127.0.0.1:%d" % port for s in clients), "peers", got=slots)
    # What the tool joins: the server closed, so the clients sit in CLOSE_WAIT (08).
    end = time.time() + 10
    while time.time() < end and any(tcp_state(s["ino"]) != "08" for s in clients):
        time.sleep(0.05)
    check(all(tcp_state(s["ino"]) == "08" for s in clients), "CLOSE_WAIT visible through the inode")

    gone = clients[0]["fd"]
    prog.stdin.write(b"close %d\n" % gone)
    prog.stdin.flush()
    check(prog.stdout.readline().strip() == b"closed", "program acknowledged")
    hdr, slots = read_segment(prog.pid, L)
    check(sorted(s["fd"] for s in slots) == sorted(f for f in fds if f != gone), "closed socket unpublished", got=slots)
    check(hdr["open_sockets"] == 3 and hdr["leak_candidates"] == 3, "counters follow", got=hdr)

    prog.stdin.write(b"exit\n")
    prog.stdin.flush()
    _, err = prog.communicate(timeout=30)
    cglib.stop(srv)
    check(prog.returncode == 0 and err == b"", "the program closed everything: no report", got=err.decode())
    check(not os.path.exists("/dev/shm/connguard.%d.%d" % (os.getuid(), prog.pid)), "segment removed at exit")


def _readline(p, timeout=20):
    """One stdout line of p, waiting at most timeout seconds."""
    r, _, _ = select.select([p.stdout], [], [], timeout)
    check(r, "a line from pid %d within %ss" % (p.pid, timeout))
    return p.stdout.readline().decode()


def _groups(out):
    """The entries of `connguard leaks` output, each (its fds, its text): one socket
    ("LEAK? fd N: ...") or a group of sockets from one creation stack, listed once
    ("ok    N sockets from one creation stack:" then "  fd N: ..." lines)."""
    groups = []
    for m in re.finditer(r"^(?:LEAK\?|ok   ) .*?(?=^(?:LEAK\?|ok   ) |\Z)", out, re.M | re.S):
        text = m.group(0)
        one = re.match(r"^(?:LEAK\?|ok   ) fd (\d+): ", text)
        fds = [int(one.group(1))] if one else [int(x) for x in re.findall(r"^  fd (\d+): ", text, re.M)]
        groups.append((fds, text))
    return groups


def _fd_stacks(out):
    """fd -> the entry (its group's, with the one stack) in `connguard leaks --all` output."""
    return {fd: text for fds, text in _groups(out) for fd in fds}


def test_identical_stacks_are_stored_once():
    """Requirement: share identical stacks rather than copying them. 200 sockets from one call
    site name one stack in the segment; a fork child publishes its own."""
    L = layout()
    prog = cglib.spawn([leaklib.client("leak_share"), "200", "3", "5"], preload=True,
                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    words = _readline(prog).split()
    check(words[0] == "ready" and words[1].startswith("child="), "ready line", got=words)
    child = int(words[1][6:])
    fds = [int(x) for x in words[2:]]
    one, other = fds[:200], fds[200:]
    try:
        hdr, slots = read_segment(prog.pid, L)
        check(len(slots) == 203 and hdr["leak_candidates"] == 203, "every socket published", got=hdr)
        by_fd = {s["fd"]: s for s in slots}
        check(sorted(by_fd) == sorted(fds), "slots are the program's fds", got=sorted(by_fd))
        check(len({by_fd[f]["stack"] for f in one}) == 1 and len({by_fd[f]["stack"] for f in other}) == 1,
              "one stored stack per call site", got=[(s["fd"], s["stack"]) for s in slots])
        check(hdr["leak_stacks_used"] == 2 and hdr["leak_stacks_full"] == 0, "two stacks stored in all", got=hdr)
        s1, s2 = by_fd[one[0]], by_fd[other[0]]
        check(s1["stack"] != s2["stack"] and len(s1["pcs"]) >= 2 and s1["pcs"][1:] != s2["pcs"][1:],
              "the two call sites differ", got=(s1, s2))
        # What users see is unchanged: every socket with its own, right, creation stack.
        r = cglib.run([cglib.TOOL, "leaks", "--all", "--age", "3600s", str(prog.pid)], preload=False, timeout=60)
        check(r.returncode == 0, "leaks", got=r.err)
        ent = _fd_stacks(r.out)
        check(sorted(ent) == sorted(fds), "leaks lists every socket", got=r.out[:2000])
        # Grouped by creation stack as the exit report is: each stack printed once.
        g = sorted(_groups(r.out), key=lambda x: -len(x[0]))
        check([sorted(x[0]) for x in g] == [sorted(one), sorted(other)], "two groups, one per call site", got=r.out[:2000])
        check(g[0][1].startswith("ok    200 sockets from one creation stack:\n") and g[0][1].count("created at:") == 1
              and g[1][1].startswith("ok    3 sockets from one creation stack:\n"), "each stack once", got=r.out[:3000])
        for f in one:
            check(re.search(r"^    #\d+ 0x[0-9a-f]+ in make_one \S*leak_share\.c:\d+ ", ent[f], re.M), "make_one's stack", got=ent[f])
        for f in other:
            check(re.search(r"^    #\d+ 0x[0-9a-f]+ in make_other \S*leak_share\.c:\d+ ", ent[f], re.M), "make_other's stack", got=ent[f])
        st = json.loads(cglib.run([cglib.TOOL, "stat", "--json", str(prog.pid)], preload=False).out)
        check(st["leak_stacks"] == 2 and st["leak_stacks_full"] == 0, "stat --json", got=st)
        # The child's own segment holds its own stack, the same frames as its parent's.
        chdr, cslots = read_segment(child, L)
        check(len(cslots) == 5 and len({s["stack"] for s in cslots}) == 1 and chdr["leak_stacks_used"] == 1,
              "the child's 5 sockets share one stack of its own segment", got=(chdr, cslots))
        # Its frame #0 is in make_one, #1 another call site in main than the parent's.
        check(cslots[0]["pcs"][0] == s1["pcs"][0] and cslots[0]["pcs"][1] != s1["pcs"][1],
              "the child's own stack", got=(cslots[0], s1))
        r = cglib.run([cglib.TOOL, "leaks", "--all", "--age", "3600s", str(child)], preload=False, timeout=60)
        ent = _fd_stacks(r.out)
        check(len(ent) == 5 and all(re.search(r" in make_one \S*leak_share\.c:\d+ ", e) for e in ent.values()),
              "the child's listing", got=r.out)
    finally:
        try:
            os.kill(child, 15)
        except ProcessLookupError:
            pass
        prog.stdin.write(b"exit\n")
        prog.stdin.flush()
    _, err = prog.communicate(timeout=30)
    err = err.decode()
    # The child leaves through exit() on SIGTERM with its 5 sockets open: its report, one group.
    check(prog.returncode == 0 and all(l.startswith("==%d== " % child) for l in err.splitlines())
          and re.search(r"^==%d== connguard leak .* sockets=5 " % child, err, re.M),
          "the parent closed everything; the child reports its own", got=err)
