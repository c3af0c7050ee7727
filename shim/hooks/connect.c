#include "hook.h"
#include "leak.h"
#include "tls.h"
#include "rawsys.h"

CG_EXPORT int connect(int fd, const struct sockaddr *addr, socklen_t len)
{
  if (!cg_real_ready()) return (int)cg_syscall(SYS_connect, fd, addr, len);
  cg_init();
  if (!cg_active()) return cg_real.connect(fd, addr, len);
  int r;
  cg_in_hook++;
  int again = cg_connect_recheck(fd, addr, len, &r);
  cg_in_hook--;
  if (again) return r;
  if (cg_cfg.tls) cg_tls_note_connect(fd);   /* for TLS layers that hide their fd (curl) */
  r = CG_GUARDED(int, cg_connect(fd, addr, len));
  /* The destination is the leaked socket's peer if it is never closed (even a refused one). */
  if (cg_cfg.leaks != CG_LEAKS_OFF) {
    int e = errno;
    cg_in_hook++;
    cg_leak_note_peer(fd, addr, len);
    cg_in_hook--;
    errno = e;
  }
  return r;
}
