/* Watched only to learn whether the program ever sets SO_SNDTIMEO: until it does, connect()
 * need not ask the kernel for the program's own send timeout (see arm_first_attempt). */
#include "hook.h"
#include "rawsys.h"

CG_EXPORT int setsockopt(int fd, int level, int opt, const void *val, socklen_t len)
{
  if (level == SOL_SOCKET) cg_note_setsockopt(level, opt);
  if (!cg_real_ready()) return (int)cg_syscall(SYS_setsockopt, fd, level, opt, val, len);
  return cg_real.setsockopt(fd, level, opt, val, len);
}
