"""Runs the integration tests: every test_* function in tests/integration/test_*.py.

usage: run.py [SUBSTRING...]   only tests whose "module.function" contains a substring
Each test gets a time limit (default 120 s; a function may set .timeout). The last line is
"integration: N passed, N failed" (", N skipped" when some were skipped).
What a test writes to stdout or stderr (its own prints, servers and programs that inherit them)
is kept aside and shown only when the test fails, or always with CG_TEST_OUTPUT=1: make check
prints one line per test and the totals.
"""
import importlib.util
import os
import signal
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import cglib  # noqa: E402


class Skip(Exception):
    pass


class Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise Timeout("test exceeded its time limit")


def main(argv):
    pats = argv[1:]
    tests = []
    for name in sorted(os.listdir(HERE)):
        if not (name.startswith("test_") and name.endswith(".py")):
            continue
        spec = importlib.util.spec_from_file_location(name[:-3], os.path.join(HERE, name))
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        for fn in sorted(n for n in dir(mod) if n.startswith("test_")):
            full = "%s.%s" % (name[:-3], fn)
            if pats and not any(p in full for p in pats):
                continue
            tests.append((full, getattr(mod, fn)))
    passed = failed = skipped = 0
    failures = []
    signal.signal(signal.SIGALRM, _alarm)
    t_all = time.time()
    show_all = os.environ.get("CG_TEST_OUTPUT") == "1"
    for full, fn in tests:
        t0 = time.time()
        out = tempfile.TemporaryFile()
        sys.stdout.flush()
        sys.stderr.flush()
        saved = (os.dup(1), os.dup(2))
        os.dup2(out.fileno(), 1)
        os.dup2(out.fileno(), 2)
        signal.alarm(int(getattr(fn, "timeout", 120)))
        try:
            fn()
            status = "ok"
            passed += 1
        except (Skip, cglib.Skip) as e:
            status = "skipped (%s)" % e
            skipped += 1
        except BaseException as e:  # noqa: BLE001 - report every failure, keep going
            if isinstance(e, KeyboardInterrupt):
                raise
            status = "FAIL"
            failed += 1
            failures.append((full, traceback.format_exc()))
        finally:
            signal.alarm(0)
            cglib.stop_all()
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
        print("%-70s %s (%.1fs)" % (full, status, time.time() - t0), flush=True)
        out.seek(0)
        text = out.read().decode("utf-8", "replace")
        out.close()
        if text and (show_all or status == "FAIL"):
            if status == "FAIL":
                text = text[-8000:]
                failures[-1] = (full, failures[-1][1] + "\n--- output of the test ---\n" + text)
            else:
                print(text, end="" if text.endswith("\n") else "\n", flush=True)
    for full, tb in failures:
        print("\n===== %s =====\n%s" % (full, tb))
    print("integration time: %.1fs" % (time.time() - t_all))
    line = "integration: %d passed, %d failed" % (passed, failed)
    if skipped:
        line += ", %d skipped" % skipped
    print(line)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
