"""The shim's unwinder stays out of the program's global scope: libgcc's unwinder is linked into
the shim with its names kept local (Makefile: -static-libgcc, --exclude-libs), so that a program
that loads C++ code later binds its exceptions exactly as without the shim (to libgcc_s), no
unwinder name (_Unwind_*, libunwind's unw_*) becomes visible through dlsym(RTLD_DEFAULT), and no
library is loaded at the first capture."""
import os

import cglib
import cgconn
from cglib import check
from cgconn import LogDir, client

# What rb_cxx_late prints, with and without the shim, but for its last line.
CXX_LATE_OUT = [
    "connect: ret=-1 errno=ECONNREFUSED",
    "before: _Unwind_RaiseException=absent _Unwind_Resume=absent _Unwind_Backtrace=absent unw_backtrace=absent",
    'cxx: rc=0 caught=2 what="boom 7" dtors=2',
    "bound: _Unwind_RaiseException in libgcc_s.so.1",
    "after: _Unwind_RaiseException=absent _Unwind_Backtrace=absent unw_backtrace=absent",
    'cxx again: rc=0 caught=2 what="boom 7" dtors=2',
]


def test_cxx_loaded_late_binds_exceptions_as_without_the_shim():
    """A C program (no libstdc++, no libgcc_s) fails a connect (the shim captures its stack
    with libgcc's unwinder, linked into the shim with its names kept local), then dlopen()s a
    C++ library that throws, catches and rethrows across a frame: the unwinder's names are
    absent from the global scope before and after, the library is bound to libgcc_s's
    _Unwind_RaiseException, and the output is the same as without the shim, to the last line:
    the shim maps no libgcc_s (and no libunwind) of its own."""
    if cglib.SAN_PRELOAD:
        raise cglib.Skip("the sanitizer runtime links libgcc_s into the global scope itself: nothing to tell apart")
    lib = os.path.join(cglib.CLIENTS, "libcgcxx.so")
    check(os.path.exists(lib), "%s not built (make integration builds it with g++)" % lib)
    port = cglib.free_port()
    args = [client("rb_cxx_late"), lib, str(port)]
    bare = cglib.run(args, preload=False)
    check(bare.returncode == 0 and bare.err == "", "rb_cxx_late without the shim", got=bare.out + bare.err)
    check(bare.out.splitlines() == CXX_LATE_OUT + ["libgcc_s_mapped_before=0 libunwind_mapped=0"],
          "without the shim: the premise (no unwinder in the global scope, libgcc_s bound)", got=bare.out)
    with LogDir() as lg:
        p = cglib.run(args, env=lg.env(CONNGUARD_RETRIES=0, CONNGUARD_STACK_DEPTH=16, CONNGUARD_LEAKS="exit"))
        check(p.returncode == 0, "rb_cxx_late under the shim", got=p.out + p.err)
        check(p.out == bare.out, "the program saw something else under the shim (or the shim mapped an unwinder)",
              got="with:\n%s\nwithout:\n%s" % (p.out, bare.out))
        # The shim did unwind at the failed connect: the record has a stack into the program.
        recs = lg.records()
        cgconn.check_failures(recs, 1, dst="127.0.0.1:%d" % port, last="give_up", module="rb_cxx_late")
        check(recs[0]["stack"][0]["module"].endswith("/rb_cxx_late"), "frame #0 is in the program", got=recs)


def test_nothing_loaded_before_the_first_socket():
    """A process that makes no socket loads no unwinder: /proc/self/maps of a program that only
    sleeps lists neither libgcc_s nor libunwind under the shim (as without it)."""
    if cglib.SAN_PRELOAD:
        raise cglib.Skip("the sanitizer runtime maps libgcc_s itself")
    prog = ("import time\n"
            "m = open('/proc/self/maps').read()\n"
            "print('libgcc_s=%d libunwind=%d' % ('/libgcc_s.so' in m, '/libunwind.so' in m))\n")
    bare = cglib.run(["/usr/bin/python3", "-S", "-c", prog], preload=False)
    p = cglib.run(["/usr/bin/python3", "-S", "-c", prog])
    check(bare.returncode == 0 and p.returncode == 0, "python3 runs", got=bare.out + bare.err + p.out + p.err)
    check(p.out == bare.out and "libunwind=0" in p.out, "the shim mapped an unwinder before any socket",
          got="with: %r without: %r" % (p.out, bare.out))
