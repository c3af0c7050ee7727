/* accept()/accept4(): a server's connections, recorded for leak detection with their peer. */
#include "hook.h"
#include "leak.h"
#include "rawsys.h"

static void track(int lfd, int fd, struct sockaddr *addr, socklen_t *len, socklen_t cap)
{
  int e = errno;
  cg_in_hook++;
  /* The kernel reports the full address length even when it truncated the copy. */
  socklen_t l = addr && len ? (*len < cap ? *len : cap) : 0;
  cg_leak_track_accepted(lfd, fd, l ? addr : NULL, l);
  cg_in_hook--;
  errno = e;
}

CG_EXPORT int accept(int fd, struct sockaddr *addr, socklen_t *len)
{
  if (!cg_real_ready()) return (int)cg_syscall(SYS_accept, fd, addr, len);
  cg_init();
  socklen_t cap = addr && len ? *len : 0;
  int r = cg_real.accept(fd, addr, len);
  if (r >= 0 && cg_leak_enabled()) track(fd, r, addr, len, cap);
  return r;
}

CG_EXPORT int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
  if (!cg_real_ready()) return (int)cg_syscall(SYS_accept4, fd, addr, len, flags);
  cg_init();
  socklen_t cap = addr && len ? *len : 0;
  int r = cg_real.accept4(fd, addr, len, flags);
  if (r >= 0 && cg_leak_enabled()) track(fd, r, addr, len, cap);
  return r;
}
