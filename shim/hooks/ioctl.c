/* ioctl(FIONBIO) sets O_NONBLOCK (python's socket.setblocking, libuv): remembered so that
 * connect() need not ask. Every other request passes straight through: one comparison. */
#include "hook.h"
#include "rawsys.h"
#include <stdarg.h>
#include <sys/ioctl.h>

/* The optional argument is a pointer or an integer; passed on as a pointer-sized value, which
 * is what every caller passes on this ABI. */
CG_EXPORT int ioctl(int fd, unsigned long req, ...)
{
  va_list ap;
  va_start(ap, req);
  void *arg = va_arg(ap, void *);
  va_end(ap);
  if (!cg_real_ready() || !cg_real.ioctl) return (int)cg_syscall(SYS_ioctl, fd, req, arg);
  int r = cg_real.ioctl(fd, req, arg);
  if (r == 0 && req == FIONBIO && arg) {
    int e = errno;
    cg_fd_note_nonblock(fd, *(const int *)arg != 0);
    errno = e;
  }
  return r;
}
