"""make check-valgrind: memcheck on threaded clients (blocking connect, and non-blocking + poll)
whose connects are refused until a late server starts, with the shim preloaded. Fails on any
memcheck error (tests/sanitize/valgrind.supp holds only known loader/libc noise), and checks
that the run still recovered every connect with exact records."""
import collections
import glob
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import cglib  # noqa: E402
import stresslib  # noqa: E402

SUPP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "valgrind.supp")
THREADS = 8


def one(mode):
    lst = stresslib.LateListener()
    logs = stresslib.LogDir()
    vglog = os.path.join(logs.path, "vg.%p.txt")
    try:
        env = dict(stresslib.FAST, CONNGUARD_LOG=logs.template, CONNGUARD_BACKOFF_MS="3000",
                   CONNGUARD_RETRIES="3", CONNGUARD_DEADLINE_MS="60000")
        cmd = ["valgrind", "--tool=memcheck", "--error-exitcode=99", "--num-callers=30",
               "--track-origins=yes", "--suppressions=" + SUPP, "--log-file=" + vglog,
               stresslib.client("stress_connect"), mode, str(THREADS), "1", str(lst.port), "60000"]
        p = cglib.spawn(cmd, env=env, preload=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        # Refused until every thread has logged its first failure: then each retry connects.
        logs.wait_for(lambda r: r.get("action") == "retry" and r.get("attempt") == 1, THREADS, timeout=120)
        lst.start()
        out, err = p.communicate(timeout=300)
        out = out.decode()
        text = "".join(open(f).read() for f in sorted(glob.glob(os.path.join(logs.path, "vg.*.txt"))))
        errors = [l.split("==", 2)[-1].strip() for l in text.splitlines() if "ERROR SUMMARY" in l]
        recs = logs.all_records()
        events = collections.Counter(r["event"] for r in recs)
        print("%-6s rc=%d results=%s records=%s memcheck: %s" % (mode, p.returncode, stresslib.results(out),
                                                               dict(events), "; ".join(errors)))
        good = (p.returncode == 0 and stresslib.results(out) == {"ok": THREADS}
                and events == {"connect_failed": THREADS, "connect_recovered": THREADS}
                and errors and all(e.startswith("ERROR SUMMARY: 0 errors") for e in errors))
        if not good:
            print(text + err.decode())
        else:
            logs.remove()
        return good
    finally:
        cglib.stop_all()
        lst.close()


def main():
    good = all([one("block"), one("poll")])
    print("valgrind: %s" % ("no error" if good else "FAILED"))
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main())
