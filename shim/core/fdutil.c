#include "fdutil.h"
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

int cg_high_fd_base(void)
{
  struct rlimit rl;
  long lim = 1024;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) lim = (long)rl.rlim_cur;
  if (lim > 65536) lim = 65536;
  long base = lim - 64;
  return base < 3 ? 3 : (int)base;
}

int cg_fd_move_high(int fd)
{
  if (fd < 0) return -1;
  /* Raw syscalls: our own fds must never pass through the program-facing hooks. */
  int hi = (int)syscall(SYS_fcntl, fd, F_DUPFD_CLOEXEC, cg_high_fd_base());
  if (hi < 0) hi = (int)syscall(SYS_fcntl, fd, F_DUPFD_CLOEXEC, 3);   /* limit too low to go high: at least CLOEXEC */
  if (hi < 0) return fd;
  syscall(SYS_close, fd);   /* our own fd: the program's close hook must not see it */
  return hi;
}
