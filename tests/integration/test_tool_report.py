"""`connguard report FILE...` and `connguard symbolize`: real logs, and garbage."""
import json
import os
import random
import re
import shutil

import cglib
import toolutil as tu
from cglib import check


def _real_logs(d):
    """Two logs from real runs: one JSON (a client that gives up, one that recovers), one text."""
    jlog, tlog = os.path.join(d, "a.json"), os.path.join(d, "b.log")
    port = cglib.free_port()
    r = tu.tool(["--retries", "2", "--backoff", "10ms", "--jitter", "none", "--json", "--log", jlog, "--",
                 cglib.PYTHON, "-c", tu.CLOSED_CLIENT, str(port), "0"])
    check(r.returncode == 0, "give-up run", got=r.err)
    late = cglib.free_port()
    srv = cglib.late_server(late, 0.4)
    r = tu.tool(["--retries", "20", "--backoff", "100ms", "--backoff-max", "100ms", "--jitter", "none", "--json",
                 "--log", jlog, "--", cglib.PYTHON, "-c", tu.CLOSED_CLIENT, str(late), "0"])
    check(r.returncode == 0 and r.out.startswith("connected"), "recovery run", got=r.out + r.err)
    cglib.stop(srv)
    r = tu.tool(["--retries", "1", "--backoff", "10ms", "--jitter", "none", "--log", tlog, "--",
                 cglib.PYTHON, "-c", tu.CLOSED_CLIENT, str(port), "0"])
    check(r.returncode == 0, "text run", got=r.err)
    return jlog, tlog, port, late


def test_report_summarizes_json_and_text_logs():
    d = cglib.tmpdir()
    jlog, tlog, port, late = _real_logs(d)
    recs = cglib.json_records(open(jlog).read())
    n_late = sum(1 for x in recs if x["dst"] == "127.0.0.1:%d" % late and x["event"] == "connect_failed")
    r = tu.tool(["report", jlog, tlog])
    check(r.returncode == 0 and r.err == "", "report failed", got=r.err)
    out = r.out
    check(re.match(r"connguard report: %d records from 2 files, 3 processes, " % (len(recs) + 2), out), "header", got=out)
    # By destination and errno: closed port: 3 + 2 failed attempts, 2 + 1 retried, 2 gave up.
    check(re.search(r"^  127\.0\.0\.1:%d\s+ECONNREFUSED\s+5\s+3\s+2$" % port, out, re.M), "closed port row", got=out)
    check(re.search(r"^  127\.0\.0\.1:%d\s+ECONNREFUSED\s+%d\s+%d\s+0$" % (late, n_late, n_late), out, re.M), "late row", got=out)
    check("Retries: 3 connects needed retries: 1 recovered, 2 gave up after retrying\n" in out, "retry episodes", got=out)
    check("  retry success rate   33.3% " in out, "success rate", got=out)
    lost = 10 + 20 + 10 + 100 * n_late
    check(re.search(r"^  time lost in backoff %s " % re.escape(_dur(lost)), out, re.M), "backoff time %dms" % lost, got=out)
    check(re.search(r"^Give-ups: 2\n  retries_exhausted\s+2$", out, re.M), "give-ups by reason", got=out)
    check("malformed" not in out, "no malformed lines", got=out)
    shutil.rmtree(d)


def _dur(ms):
    return "%dms" % ms if ms < 1000 else "%.1fs" % (ms / 1000)


def test_report_groups_leaks_and_tls_problems():
    d = cglib.tmpdir()
    log = os.path.join(d, "x.json")
    frames = lambda sym: [{"pc": "0x1010", "module": "/usr/lib/libpq.so.5", "offset": "0x1010", "symbol": sym},
                          {"pc": "0x2020", "module": "/usr/bin/app", "offset": "0x2020"}]
    lines = []
    for i in range(3):
        lines.append({"ts": "2026-01-01T00:00:0%dZ" % i, "pid": 10 + i, "event": "leak", "sockets": 2, "fds": [5 + i, 9],
                      "peer": "127.0.0.1:5432", "stack": frames("PQconnectStart")})
    lines.append({"ts": "2026-01-01T00:00:05Z", "pid": 10, "event": "leak", "sockets": 1, "stack": frames("other_open")})
    lines.append({"ts": "2026-01-01T00:00:06Z", "pid": 10, "event": "leak_summary", "groups": 2, "sockets": 4})
    tls = lambda t, cause, action, **kw: dict({"ts": "2026-01-01T00:00:%02dZ" % t, "pid": 11, "event": "tls_failed",
                                             "cause": cause, "action": action}, **kw)
    lines.append(tls(7, "expired", "give_up", dst="127.0.0.1:443", sni="cg.test", verify_error="certificate has expired",
                     reason="not_retryable"))
    lines.append(tls(8, "expired", "give_up", dst="127.0.0.1:443", sni="cg.test", reason="not_retryable"))
    lines.append(tls(9, "reset", "retry", dst="127.0.0.1:8443", sni="", delay_ms=20, verify_error="ok"))
    lines.append({"ts": "2026-01-01T00:00:10Z", "pid": 11, "event": "tls_recovered", "dst": "127.0.0.1:8443", "attempts": 2})
    with open(log, "w") as f:
        for x in lines:
            f.write(json.dumps(x) + "\n")
    r = tu.tool(["report", log])
    check(r.returncode == 0, "report", got=r.err)
    check(re.search(r"^Leaks: 7 sockets in 2 groups by creation stack \(4 records\)$", r.out, re.M), "leak groups", got=r.out)
    check(re.search(r"^  6 sockets \(leak, 3 records\) \(e\.g\. peer 127\.0\.0\.1:5432\)\n"
                    r"    created at: PQconnectStart \(libpq\.so\.5\+0x1010\) <- app\+0x2020$", r.out, re.M),
          "biggest group first, with its stack", got=r.out)
    check(re.search(r"^  1 socket \(leak, 1 record\)\n    created at: other_open ", r.out, re.M), "second group", got=r.out)
    check("leak_summary" not in r.out.split("Leaks:")[1], "summary records are no group", got=r.out)
    check(re.search(r"^  expired\s+2\s+0\s+2  127\.0\.0\.1:443 sni=cg\.test \(certificate has expired\)$", r.out, re.M),
          "tls cause", got=r.out)
    check(re.search(r"^  reset\s+1\s+1\s+0  127\.0\.0\.1:8443$", r.out, re.M), "tls reset", got=r.out)
    check("  handshakes recovered by retrying: 1\n" in r.out, "tls recovered", got=r.out)
    shutil.rmtree(d)


def test_report_garbage_and_truncated_lines_are_counted_not_fatal():
    d = cglib.tmpdir()
    jlog, tlog, port, late = _real_logs(d)
    good = open(jlog).read().splitlines()
    bad = os.path.join(d, "bad.log")
    with open(bad, "w") as f:
        f.write(good[0] + "\n")
        f.write(good[1][: len(good[1]) // 2] + "\n")             # truncated record
        f.write('{"event": 5}\n')                                   # not a record
        f.write("==12== connguard connect_failed\n")               # text header without ts
        f.write("the program's own output\n")
        f.write(good[2][:40])                                      # truncated last line, no newline
    r = tu.tool(["report", bad])
    check(r.returncode == 1, "malformed lines: exit 1", got=r.out + r.err)
    check("4 malformed lines skipped (first: %s line 2: " % bad in r.out, "counted and located", got=r.out)
    check("1 other line ignored" in r.out, "program output ignored", got=r.out)
    check(re.search(r"connguard: report: 4 malformed lines \(first: %s line 2: .*\)" % re.escape(bad), r.err), "stderr", got=r.err)
    check(re.match(r"connguard report: 1 record from 1 file", r.out), "the good record is still counted", got=r.out)
    # Random bytes, NULs, huge lines, deep nesting: never a crash.
    rnd = random.Random(5)
    junk = os.path.join(d, "junk.bin")
    with open(junk, "wb") as f:
        f.write(bytes(rnd.randrange(256) for _ in range(200000)))
        f.write(b"\n{" + b'"a":[' * 5000 + b"\n")
        f.write(b"{\"event\":\"x\",\"s\":\"" + b"A" * 3000000 + b"\"}\n")
        f.write(b"{\"event\":\"connect_failed\",\"pid\":1,\"ts\":\"t\",\"stack\":[1,{\"pc\":7}],\"dst\":null}\n")
        f.write(b"==1== connguard x ts=1 a=\"unterminated\n==1==     #0 0xzz in ?? (\n")
    for args in (["report", junk], ["symbolize", junk]):
        r = tu.tool(args, timeout=120)
        check(r.returncode in (0, 1) and r.returncode >= 0, "no crash: %s" % args, got=r.err[-500:])
    r = tu.tool(["report", junk], timeout=120)
    check(r.returncode == 1 and "malformed" in r.err, "junk reported", got=r.err[-500:])
    # Unreadable file, empty file, only program output.
    r = tu.tool(["report", os.path.join(d, "missing.log")])
    check(r.returncode == 1 and "cannot open %s" % os.path.join(d, "missing.log") in r.err, "missing file", got=r.err)
    empty = os.path.join(d, "empty.log")
    open(empty, "w").close()
    r = tu.tool(["report", empty])
    check(r.returncode == 0 and "No connguard records" in r.out, "an empty log is a clean run", got=r.out + r.err)
    other = os.path.join(d, "other.log")
    with open(other, "w") as f:
        f.write("hello\nworld\n")
    r = tu.tool(["report", other])
    check(r.returncode == 1 and "no connguard records in 2 lines of other text" in r.err, "not a log", got=r.err)
    r = tu.tool(["report"])
    check(r.returncode == 2 and "expected one or more log files" in r.err, "usage", got=r.err)
    shutil.rmtree(d)


def test_symbolize_resolves_frames_in_text_and_json():
    d = cglib.tmpdir()
    port = cglib.free_port()
    tlog, jlog = os.path.join(d, "t.log"), os.path.join(d, "j.log")
    leaky = os.path.realpath(tu.LEAKY)
    for opts, log in ((["--log", tlog], tlog), (["--json", "--log", jlog], jlog)):
        p, _ = tu.start(["--retries", "0"] + opts + ["--", leaky, str(port)])
        cglib.stop(p)
    # Text: the frame in do_connect gains its function and file:line; other lines are unchanged.
    before = open(tlog).read()
    r = tu.tool(["symbolize", tlog])
    check(r.returncode == 0, "symbolize text", got=r.err)
    check(len(r.out.splitlines()) == len(before.splitlines()), "same number of lines", got=r.out)
    check(re.search(r"^==\d+==     #0 0x[0-9a-f]+ in do_connect \S*tests/clients/leaky\.c:\d+ \(%s\+0x[0-9a-f]+\)$"
                    % re.escape(leaky), r.out, re.M), "frame #0 resolved", got=r.out)
    check(re.search(r"^==\d+==     #1 0x[0-9a-f]+ in main \S*leaky\.c:\d+ ", r.out, re.M), "frame #1 resolved", got=r.out)
    heads = [l for l in before.splitlines() if " connguard connect_failed " in l]
    check(heads and all(h in r.out.splitlines() for h in heads), "headers unchanged", got=r.out)
    # stdin works too.
    r2 = tu.tool(["symbolize"], input=before.encode())
    check(r2.returncode == 0 and r2.out == r.out, "stdin", got=r2.err)
    # JSON: frames gain function, file and line; the record stays valid JSON with every field.
    r = tu.tool(["symbolize", jlog])
    check(r.returncode == 0, "symbolize json", got=r.err)
    # (With leak tracking the client's exit adds leak records: look at the connect record.)
    orig = cglib.json_records(open(jlog).read(), "connect_failed")
    out = cglib.json_records(r.out, "connect_failed")
    check(len(out) == len(orig) == 1, "one connect record", got=r.out)
    check(len(cglib.json_records(r.out)) == len(cglib.json_records(open(jlog).read())), "every record kept", got=r.out)
    f0 = out[0]["stack"][0]
    check(f0.get("function") == "do_connect" and f0.get("file", "").endswith("tests/clients/leaky.c")
          and isinstance(f0.get("line"), int) and f0["line"] > 0, "frame resolved", got=f0)
    for k, v in orig[0].items():
        if k != "stack":
            check(out[0][k] == v, "field %s kept" % k, got=out[0])
    check([(x["pc"], x["module"], x["offset"]) for x in out[0]["stack"]]
          == [(x["pc"], x["module"], x["offset"]) for x in orig[0]["stack"]], "frames kept", got=out[0])
    # Malformed lines pass through unchanged and are reported.
    mixed = os.path.join(d, "mixed.log")
    with open(mixed, "w") as f:
        f.write("plain text\n{broken\n" + open(jlog).read())
    r = tu.tool(["symbolize", mixed])
    check(r.returncode == 1 and r.out.startswith("plain text\n{broken\n"), "passed through", got=r.out + r.err)
    check("1 malformed record line passed through unchanged (first: %s line 2" % mixed in r.err, "reported", got=r.err)
    r = tu.tool(["symbolize", os.path.join(d, "nope")])
    check(r.returncode == 1 and "cannot open" in r.err, "missing file", got=r.err)
    shutil.rmtree(d)


def test_symbolize_program_started_by_relative_path():
    """`connguard -- ./app`: the shim records the program's absolute path (dladdr gives
    "./app"), so symbolize resolves its frames from any directory; a log that still names
    "./app" resolves from the directory the program was started in."""
    d = cglib.tmpdir()
    shutil.copy(os.path.realpath(tu.LEAKY), os.path.join(d, "app"))
    log = os.path.join(d, "t.log")
    p = cglib.spawn([tu.TOOL, "--retries", "0", "--log", log, "--", "./app", str(cglib.free_port())], cwd=d,
                    stdout=cglib.subprocess.PIPE, stderr=cglib.subprocess.PIPE)
    line = p.stdout.readline().decode()
    check(line.startswith("ready"), "app started", got=line)
    cglib.stop(p)
    text = open(log).read()
    app = os.path.join(os.path.realpath(d), "app")
    check(re.search(r"#0 0x[0-9a-f]+ in \S+ \(%s\+0x" % re.escape(app), text), "absolute module path recorded", got=text)
    check("(./app+" not in text, "no relative module path", got=text)
    r = tu.tool(["symbolize", log])   # from the test's directory, not d
    check(r.returncode == 0 and re.search(r"#0 0x[0-9a-f]+ in do_connect \S*leaky\.c:\d+ ", r.out), "resolved", got=r.out + r.err)
    # An older log naming ./app: resolved against the current directory.
    old = os.path.join(d, "old.log")
    with open(old, "w") as f:
        f.write(text.replace("(%s+" % app, "(./app+"))
    r = cglib.run([tu.TOOL, "symbolize", old], preload=False, cwd=d)
    check(r.returncode == 0 and re.search(r"#0 0x[0-9a-f]+ in do_connect \S*leaky\.c:\d+ \(\./app\+0x", r.out),
          "relative module resolved from the start directory", got=r.out + r.err)
    shutil.rmtree(d)


def test_symbolize_into_a_closed_pipe_is_quiet():
    """`connguard symbolize LOG | head -1`: the reader goes away; no message, status 0."""
    d = cglib.tmpdir()
    log = os.path.join(d, "big.log")
    p, _ = tu.start(["--retries", "0", "--log", log, "--", os.path.realpath(tu.LEAKY), str(cglib.free_port())])
    cglib.stop(p)
    text = open(log).read()
    with open(log, "w") as f:
        f.write(text * (2_000_000 // max(len(text), 1) + 1))   # well past a pipe's buffer
    r = cglib.run(["bash", "-c", 'set -o pipefail; "$0" symbolize "$1" | head -1 >/dev/null', tu.TOOL, log],
                  preload=False, timeout=60)
    check(r.returncode == 0 and r.err == "", "quiet, status 0", got="rc=%d err=%r" % (r.returncode, r.err))
    shutil.rmtree(d)
