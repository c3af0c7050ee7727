#include "hook.h"
#include "tls.h"

CG_EXPORT int connect(int fd, const struct sockaddr *addr, socklen_t len)
{
  if (!cg_real_ready()) return (int)syscall(SYS_connect, fd, addr, len);
  cg_init();
  if (!cg_active()) return cg_real.connect(fd, addr, len);
  if (cg_cfg.tls) cg_tls_note_connect(fd);   /* for TLS layers that hide their fd (curl) */
  return CG_GUARDED(int, cg_connect(fd, addr, len));
}
