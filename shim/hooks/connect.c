#include "hook.h"

CG_EXPORT int connect(int fd, const struct sockaddr *addr, socklen_t len)
{
  if (!cg_real_ready()) return (int)syscall(SYS_connect, fd, addr, len);
  cg_init();
  if (!cg_active()) return cg_real.connect(fd, addr, len);
  return CG_GUARDED(int, cg_connect(fd, addr, len));
}
