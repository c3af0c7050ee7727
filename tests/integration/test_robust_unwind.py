"""libunwind stays out of the program's global scope: the shim dlopen()s it with RTLD_LOCAL
(shim/core/stack.c), so that a program that loads C++ code later binds its exceptions exactly
as without the shim (to libgcc_s), even after the shim has unwound stacks with libunwind."""
import os

import cglib
import cgconn
from cglib import check
from cgconn import LogDir, client

# What rb_cxx_late prints, with and without the shim, but for its last line.
CXX_LATE_OUT = [
    "connect: ret=-1 errno=ECONNREFUSED",
    "before: _Unwind_RaiseException=absent _Unwind_Resume=absent unw_backtrace=absent libgcc_s_mapped=0",
    'cxx: rc=0 caught=2 what="boom 7" dtors=2',
    "bound: _Unwind_RaiseException in libgcc_s.so.1",
    "after: _Unwind_RaiseException=absent unw_backtrace=absent",
    'cxx again: rc=0 caught=2 what="boom 7" dtors=2',
]


def test_cxx_loaded_late_binds_exceptions_as_without_the_shim():
    """A C program (no libstdc++, no libgcc_s) fails a connect (the shim captures its stack
    with libunwind), then dlopen()s a C++ library that throws, catches and rethrows across a
    frame: the unwinder's names are absent from the global scope before and after, the
    library is bound to libgcc_s's _Unwind_RaiseException, and the output is the same as
    without the shim, but for libunwind being mapped."""
    if cglib.SAN_PRELOAD:
        raise cglib.Skip("the sanitizer runtime links libgcc_s into the global scope itself: nothing to tell apart")
    lib = os.path.join(cglib.CLIENTS, "libcgcxx.so")
    check(os.path.exists(lib), "%s not built (make integration builds it with g++)" % lib)
    port = cglib.free_port()
    args = [client("rb_cxx_late"), lib, str(port)]
    bare = cglib.run(args, preload=False)
    check(bare.returncode == 0 and bare.err == "", "rb_cxx_late without the shim", got=bare.out + bare.err)
    check(bare.out.splitlines() == CXX_LATE_OUT + ["libunwind_mapped=0"],
          "without the shim: the premise (no unwinder in the global scope, libgcc_s bound)", got=bare.out)
    with LogDir() as lg:
        p = cglib.run(args, env=lg.env(CONNGUARD_RETRIES=0, CONNGUARD_STACK_DEPTH=16, CONNGUARD_LEAKS="exit"))
        check(p.returncode == 0, "rb_cxx_late under the shim", got=p.out + p.err)
        lines = p.out.splitlines()
        check(lines[:-1] == bare.out.splitlines()[:-1], "the program saw something else under the shim",
              got="with:\n%s\nwithout:\n%s" % (p.out, bare.out))
        # The shim did load libunwind, and used it: the failed connect has a stack into the program.
        check(lines[-1:] == ["libunwind_mapped=1"], "libunwind was not loaded by the shim in this run", got=p.out)
        recs = lg.records()
        cgconn.check_failures(recs, 1, dst="127.0.0.1:%d" % port, last="give_up", module="rb_cxx_late")
        check(recs[0]["stack"][0]["module"].endswith("/rb_cxx_late"), "frame #0 is in the program", got=recs)
