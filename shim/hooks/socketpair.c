/* socketpair(): two sockets that are not socket() calls (field notes §3). */
#include "hook.h"
#include "leak.h"
#include "rawsys.h"

CG_EXPORT int socketpair(int domain, int type, int protocol, int sv[2])
{
  if (!cg_real_ready()) return (int)cg_syscall(SYS_socketpair, domain, type, protocol, sv);
  cg_init();
  int r = cg_real.socketpair(domain, type, protocol, sv);
  if (r == 0 && cg_leak_enabled()) {
    int e = errno;
    cg_in_hook++;
    cg_leak_track_pair(sv, domain, type, protocol);
    cg_in_hook--;
    errno = e;
  }
  return r;
}
