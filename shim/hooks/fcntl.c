/* fcntl(F_DUPFD, F_DUPFD_CLOEXEC) hands out a copy of a socket (python's os.dup does this);
 * F_SETFL sets O_NONBLOCK, which connect() then need not ask for. Every other command passes
 * straight through: two comparisons. */
#include "hook.h"
#include "leak.h"
#include "rawsys.h"
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>

/* The optional third argument is an int or a pointer; reading it as a pointer-sized value is
 * what every caller passes on this ABI, and harmless when none was passed. */
static inline int after(int fd, int cmd, void *arg, int r)
{
  if (r >= 0 && cmd == F_SETFL) cg_fd_note_nonblock(fd, ((int)(intptr_t)arg & O_NONBLOCK) != 0);
  if (r >= 0 && (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC)) cg_fd_note_shared(fd);
  if (r >= 0 && (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC) && cg_leak_enabled()) {
    int e = errno;
    cg_in_hook++;
    cg_leak_dup(fd, r);
    cg_in_hook--;
    errno = e;
  }
  return r;
}

CG_EXPORT int fcntl(int fd, int cmd, ...)
{
  va_list ap;
  va_start(ap, cmd);
  void *arg = va_arg(ap, void *);
  va_end(ap);
  if (!cg_real_ready() || !cg_real.fcntl) return (int)cg_syscall(SYS_fcntl, fd, cmd, arg);
  return after(fd, cmd, arg, cg_real.fcntl(fd, cmd, arg));
}

CG_EXPORT int fcntl64(int fd, int cmd, ...)
{
  va_list ap;
  va_start(ap, cmd);
  void *arg = va_arg(ap, void *);
  va_end(ap);
  if (!cg_real_ready()) return (int)cg_syscall(SYS_fcntl, fd, cmd, arg);
  if (!cg_real.fcntl64) return after(fd, cmd, arg, cg_real.fcntl ? cg_real.fcntl(fd, cmd, arg) : (int)cg_syscall(SYS_fcntl, fd, cmd, arg));
  return after(fd, cmd, arg, cg_real.fcntl64(fd, cmd, arg));
}
