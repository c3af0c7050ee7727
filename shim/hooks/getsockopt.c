/* SO_ERROR is where python, libuv, psql and nc learn a non-blocking connect's result. */
#include "hook.h"
#include "rawsys.h"

CG_EXPORT int getsockopt(int fd, int level, int opt, void *val, socklen_t *len)
{
  if (!cg_real_ready()) return (int)cg_syscall(SYS_getsockopt, fd, level, opt, val, len);
  if (level != SOL_SOCKET || opt != SO_ERROR || !cg_active() || !atomic_load(&cg_active_count))
    return cg_real.getsockopt(fd, level, opt, val, len);
  return CG_GUARDED(int, cg_getsockopt(fd, level, opt, val, len));
}
