/* A system call made inline, not through syscall(): the shim's own syscall() is its exported hook
 * (hooks/syscall.c), whose code sits on a text page that start-up would otherwise touch in every
 * process. Returns the kernel's result: -errno on failure, errno untouched. x86-64; elsewhere
 * libc's syscall(), with errno turned back into a negative result. */
#ifndef CG_RAWSYS_H
#define CG_RAWSYS_H
#include <errno.h>
#include <sys/syscall.h>
#include <unistd.h>

static inline long cg_sys6(long nr, long a, long b, long c, long d, long e, long f)
{
#if defined(__x86_64__)
  long r;
  register long r10 __asm__("r10") = d, r8 __asm__("r8") = e, r9 __asm__("r9") = f;
  __asm__ volatile("syscall" : "=a"(r) : "0"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                   : "rcx", "r11", "memory");
  return r;
#else
  int saved = errno;
  long r = syscall(nr, a, b, c, d, e, f);
  if (r == -1) { r = -errno; errno = saved; }
  return r;
#endif
}

/* The shim's own system calls, with syscall(2)'s result and errno: inline, never through its
 * exported syscall() (hooks/syscall.c), which would redo the close/dup bookkeeping of the hook
 * that made the call, and which reads six argument words whatever the call, as glibc's does: for
 * a call given fewer, the sixth comes from the caller's stack frame (an ASan report per call). */
static inline long cg_sys_ret(long r)
{
  if ((unsigned long)r > -4096UL) { errno = (int)-r; return -1; }
  return r;
}
#define CG_SYS_ARGS_(nr, a, b, c, d, e, f, ...) \
  cg_sys6((long)(nr), (long)(a), (long)(b), (long)(c), (long)(d), (long)(e), (long)(f))
#define cg_syscall(...) cg_sys_ret(CG_SYS_ARGS_(__VA_ARGS__, 0, 0, 0, 0, 0, 0))
#endif
