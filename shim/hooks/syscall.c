/* syscall(): a program that closes or replaces descriptors through libc's syscall() (SYS_close,
 * SYS_dup2, SYS_dup3, SYS_close_range) is seen as if it had called close(), dup2(), dup3() or
 * close_range(): the fd table forgets what those numbers held, so a tracked socket closed this
 * way is never confused with what takes its number next (docs/leaks.md, "The identity window").
 * Then the system call itself, made here (the shim's own syscall() calls land here too, and
 * its hooks fall back to syscall(): no call back into them). x86-64 only; elsewhere libc's. */
#include "hook.h"
#include "log.h"
#include "rawsys.h"
#include <linux/close_range.h>
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
    if (a == 2) cg_log_fd_closing(2, 2);
    cg_fd_forget((int)a);
    break;
  case SYS_dup2:
  case SYS_dup3:
    if (a == b) break;
    if (b == 2) cg_log_fd_closing(2, 2);
    cg_fd_forget((int)b);
    cg_fd_note_shared((int)a);
    break;
  case SYS_close_range:
    if (((int)c & CLOSE_RANGE_CLOEXEC) || (unsigned)a > (unsigned)b) break;
    cg_log_fd_closing((int)((unsigned)a > 3 ? 3 : a), (int)((unsigned)b > 3 ? 3 : b));
    cg_forget_range((unsigned)a, (unsigned)b);
    break;
  }
  long r = cg_sys6(nr, a, b, c, d, e, f);
  if ((unsigned long)r > -4096UL) { errno = (int)-r; return -1; }
  return r;
}
#endif
