"""Issue 3: CONNGUARD_LEAKS, CONNGUARD_LEAK_EXITCODE and CONNGUARD_SUPPRESSIONS."""
import os

import cglib
import leaklib
from cglib import check

LEAKY = leaklib.client("leak_clients")


def _supp(text):
    path = os.path.join(cglib.tmpdir(), "supp.txt")
    with open(path, "w") as f:
        f.write(text)
    return path


def test_exitcode_replaces_zero_and_flushes_stdio():
    p = leaklib.run([LEAKY, "2", "1"], env={"CONNGUARD_LEAK_EXITCODE": "23"})
    check(p.returncode == 23, "leaks + exit 0 -> CONNGUARD_LEAK_EXITCODE", got=p.err)
    check(p.out == "leaked", "buffered stdout must still be written", got=p.out)
    s = p.sums[0]
    check(s["sockets"] == 3 and s["exit_code"] == 23, "the summary says so", got=p.err)
    check("exit status 23 (CONNGUARD_LEAK_EXITCODE)" in s["hint"], "hint", got=p.err)


def test_exitcode_on_exit_call_json():
    p = leaklib.run([LEAKY, "1", "1", "exit"], env={"CONNGUARD_LEAK_EXITCODE": "7"}, fmt="json")
    check(p.returncode == 7 and p.out == "leaked", "exit(0) -> 7", got=p.err)
    check(p.sums[0]["exit_code"] == 7, "exit_code field", got=p.err)


def test_exitcode_keeps_a_failure_status():
    p = leaklib.run([LEAKY, "1", "0", "status:3"], env={"CONNGUARD_LEAK_EXITCODE": "23"})
    check(p.returncode == 3, "a nonzero status is the program's own", got=p.err)
    check(p.sums[0]["sockets"] == 1 and "exit_code" not in p.sums[0], "reported, status untouched", got=p.err)


def test_exitcode_without_leaks_is_silent():
    p = leaklib.run([LEAKY, "0", "0"], env={"CONNGUARD_LEAK_EXITCODE": "23"})
    check(p.returncode == 0 and p.err == "" and p.out == "leaked", "no leak: nothing printed, status kept", got=p.err)


def test_leaks_off():
    p = leaklib.run([LEAKY, "3", "2"], env={"CONNGUARD_LEAKS": "off", "CONNGUARD_LEAK_EXITCODE": "23"})
    check(p.returncode == 0 and p.err == "" and p.out == "leaked", "CONNGUARD_LEAKS=off: no report", got=p.err)


def test_suppress_by_module_substring():
    path = _supp("# the test program's own leaks are known\n\nleak:leak_clients\n")
    p = leaklib.run([LEAKY, "2", "1"], env={"CONNGUARD_SUPPRESSIONS": path, "CONNGUARD_LEAK_EXITCODE": "23"})
    check(p.returncode == 0, "all leaks suppressed: status kept", got=p.err)
    check(p.leaks == [], "no leak record", got=p.err)
    s = p.sums[0]
    check((s["groups"], s["sockets"], s["suppressed"]) == (0, 0, 3), "suppressed count", got=p.err)
    check(s["suppressions"] == ["leak_clients=3"], "which pattern matched how many", got=p.err)
    check(p.err.count("connguard: warning") == 0, "a good file gives no warning", got=p.err)


def test_suppress_by_glob_on_module_basename():
    path = _supp("leak:leak_cl*ts\n")
    p = leaklib.run([LEAKY, "1", "1"], env={"CONNGUARD_SUPPRESSIONS": path})
    check(p.leaks == [] and p.sums[0]["suppressed"] == 2, "glob matches the module's base name", got=p.err)


def test_suppress_by_symbol_one_group_only():
    # os.dup() goes through python's exported _Py_dup; socket() does not.
    path = _supp("leak:no_such_function\nleak:_Py_dup\n")
    p = leaklib.run([cglib.PYTHON, leaklib.prog("dup_leak.py")], env={"CONNGUARD_SUPPRESSIONS": path})
    check(p.returncode == 0 and p.out == "ok\n", "program result", got=p.err)
    check(len(p.leaks) == 1 and p.leaks[0]["via"] == "socket" and p.leaks[0]["sockets"] == 2,
          "the socket() group stays", got=p.err)
    s = p.sums[0]
    check((s["groups"], s["sockets"], s["suppressed"]) == (1, 2, 1), "the dup group is suppressed", got=p.err)
    check(s["suppressions"] == ["_Py_dup=1"], "only the pattern that matched is listed", got=p.err)


def test_dup_without_suppression():
    p = leaklib.run([cglib.PYTHON, leaklib.prog("dup_leak.py")])
    g = leaklib.by_via(p.leaks)
    check(set(g) == {"socket", "dup"} and g["dup"]["sockets"] == 1, "a dup of a socket is tracked", got=p.err)
    check(any(f["symbol"] == "_Py_dup" for f in g["dup"]["stack"][:2]), "dup stack", got=p.err)


def test_missing_suppressions_file_one_warning():
    path = os.path.join(cglib.tmpdir(), "nope.txt")
    p = leaklib.run([LEAKY, "1", "0"], env={"CONNGUARD_SUPPRESSIONS": path})
    warns = [l for l in p.err.splitlines() if "warning" in l]
    check(len(warns) == 1, "exactly one warning", got=p.err)
    check("CONNGUARD_SUPPRESSIONS" in warns[0] and path in warns[0] and "ENOENT" in warns[0], "names it", got=p.err)
    check(p.returncode == 0 and len(p.leaks) == 1 and p.sums[0]["suppressed"] == 0, "leaks still reported", got=p.err)


def test_bad_lines_one_warning_good_lines_kept():
    path = _supp("leak:leak_clients\nfoo\ninterceptor_via_fun:x\nleak:\n" + "\x00\xff garbage\n")
    p = leaklib.run([LEAKY, "1", "1"], env={"CONNGUARD_SUPPRESSIONS": path})
    warns = [l for l in p.err.splitlines() if "warning" in l]
    check(len(warns) == 1, "exactly one warning", got=p.err)
    check("4 bad lines (first: line 2" in warns[0] and "using the 1 valid pattern" in warns[0], "says what", got=p.err)
    check(p.returncode == 0 and p.leaks == [] and p.sums[0]["suppressed"] == 2, "the valid line applies", got=p.err)


def test_directory_as_suppressions_file():
    d = cglib.tmpdir()
    p = leaklib.run([LEAKY, "1", "0"], env={"CONNGUARD_SUPPRESSIONS": d})
    warns = [l for l in p.err.splitlines() if "warning" in l]
    check(len(warns) == 1 and ("EISDIR" in warns[0] or "Is a directory" in warns[0]), "one warning", got=p.err)
    check(p.returncode == 0 and len(p.leaks) == 1, "never a crash", got=p.err)
