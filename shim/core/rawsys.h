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
#endif
