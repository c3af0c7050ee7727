/* syscall(): a program that closes or replaces descriptors through libc's syscall() (SYS_close,
 * SYS_dup2, SYS_dup3, SYS_close_range) is seen as if it had called close(), dup2(), dup3() or
 * close_range(): the fd table forgets what those numbers held, so a tracked socket closed this
 * way is never confused with what takes its number next (docs/leaks.md, "The identity window").
 * Then the system call itself, made here (the shim's own syscall() calls land here too, and
 * its hooks fall back to syscall(): no call back into them). x86-64 only; elsewhere libc's. */
#include "hook.h"
#include "closepath.h"
#include "rawsys.h"
#include <stdarg.h>

#if defined(__x86_64__)
CG_EXPORT long syscall(long nr, ...)
{
  /* Six register-sized arguments, as glibc's own syscall() reads them whatever the call. */
  va_list ap;
  va_start(ap, nr);
  long a = va_arg(ap, long), b = va_arg(ap, long), c = va_arg(ap, long);
  long d = va_arg(ap, long), e = va_arg(ap, long), f = va_arg(ap, long);
  va_end(ap);
  switch (nr) {
  case SYS_close:
    cg_close_fd((int)a);
    break;
  case SYS_dup2:
  case SYS_dup3:
    if (a == b) break;
    cg_close_dup_target((int)a, (int)b);
    cg_fd_note_shared((int)a);
    break;
  case SYS_close_range:
    cg_close_range((unsigned)a, (unsigned)b, (int)c);
    break;
  }
  long r = cg_sys6(nr, a, b, c, d, e, f);
  if ((unsigned long)r > -4096UL) { errno = (int)-r; return -1; }
  return r;
}
#endif
