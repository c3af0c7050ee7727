"""Writes tests/unit/pyline_fixtures.h: line tables compiled by each installed CPython and the
line of every instruction as the interpreter itself computes it (co_lines, or findlinestarts
for 3.9), for test_pystack's cg_py_addr2line checks. Run with each interpreter appending:
    for p in .../python3.9 ... ; do $p scripts/pyline_fixtures.py >> out; done"""
import dis, sys

SRC = "def f(a, b):\n" + "\n".join([
    "    x = a + b",
    "    if x:",
    "        y = (a,",
    "             b)",
    "    else:",
    "        y = None",
]) + "\n" + "\n" * 300 + "    z = [i for i in range(3)]\n    try:\n        return g(x, y, z)\n    finally:\n        pass\n"

ns = {}
exec(compile(SRC, "fixture.py", "exec"), ns)
co = ns["f"].__code__
v = sys.version_info
tag = "%d%d" % (v.major, v.minor)
if v < (3, 10):
    fmt, table = 1, co.co_lnotab
    starts = list(dis.findlinestarts(co))
    def line_at(off):
        line = co.co_firstlineno
        for s, l in starts:
            if s <= off:
                line = l
        return line
    pairs = [(off, line_at(off)) for off in range(0, len(co.co_code), 2)]
else:
    fmt, table = (2 if v < (3, 11) else 3), co.co_linetable
    pairs = []
    for start, end, line in co.co_lines():
        for off in range(start, end, 2):
            pairs.append((off, -1 if line is None else line))
print("static const unsigned char lt%s[] = { %s };" % (tag, ", ".join(str(b) for b in table)))
print("static const int lt%s_expect[][2] = { %s };" % (tag, ", ".join("{%d, %d}" % p for p in pairs)))
print("#define LT%s_FMT %d" % (tag, fmt))
print("#define LT%s_FIRST %d" % (tag, co.co_firstlineno))
