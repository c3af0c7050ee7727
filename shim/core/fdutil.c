#include "fdutil.h"
#include "rawsys.h"
#include <fcntl.h>
#include <stdint.h>
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
  int hi = (int)cg_syscall(SYS_fcntl, fd, F_DUPFD_CLOEXEC, cg_high_fd_base());
  if (hi < 0) hi = (int)cg_syscall(SYS_fcntl, fd, F_DUPFD_CLOEXEC, 3);   /* limit too low to go high: at least CLOEXEC */
  if (hi < 0) return fd;
  cg_syscall(SYS_close, fd);   /* our own fd: the program's close hook must not see it */
  return hi;
}

/* Kernels without close_range (before 5.9): every open fd >= lo, from the kernel's own list
 * (/proc/self/fd, read into a stack buffer: no malloc, async-signal-safe), whatever the limits
 * were when the fds were opened; re-read until a pass finds nothing left. Without /proc: every
 * number below the fd limit, the hard one when it is higher (fds opened before the program
 * lowered it), the kernel's default nr_open (2^20) when unlimited. */
void cg_closefrom_fallback(unsigned lo)
{
  int dfd = (int)cg_syscall(SYS_openat, AT_FDCWD, "/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    char buf[2048] __attribute__((aligned(8)));
    for (int pass = 0; pass < 64; pass++) {
      int closed = 0;
      cg_syscall(SYS_lseek, dfd, 0, SEEK_SET);
      long n;
      while ((n = cg_syscall(SYS_getdents64, dfd, buf, sizeof buf)) > 0) {
        for (long off = 0; off < n;) {
          const char *name = buf + off + 19;   /* d_ino 8, d_off 8, d_reclen 2, d_type 1 */
          off += *(unsigned short *)(buf + off + 16);
          unsigned long v = 0;
          int digits = 0;
          for (; *name >= '0' && *name <= '9' && digits < 11; name++, digits++) v = v * 10 + (unsigned long)(*name - '0');
          if (!digits || *name || v < lo || v > INT32_MAX || (int)v == dfd) continue;
          cg_syscall(SYS_close, (int)v);
          closed = 1;
        }
      }
      if (n < 0 || !closed) break;
    }
    cg_syscall(SYS_close, dfd);
    return;
  }
  struct rlimit rl;
  rlim_t top = 1 << 20;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    rlim_t m = rl.rlim_max != RLIM_INFINITY && rl.rlim_max > rl.rlim_cur ? rl.rlim_max : rl.rlim_cur;
    if (m != RLIM_INFINITY) top = m;
  }
  if (top > INT32_MAX) top = INT32_MAX;
  for (rlim_t fd = lo; fd < top; fd++) cg_syscall(SYS_close, (int)fd);
}
