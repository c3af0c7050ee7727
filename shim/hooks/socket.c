/* socket(): where most sockets a program holds begin; recorded for leak detection. */
#include "hook.h"
#include "leak.h"
#include "rawsys.h"

CG_EXPORT int socket(int domain, int type, int protocol)
{
  if (!cg_real_ready()) return (int)cg_syscall(SYS_socket, domain, type, protocol);
  cg_init();
  int fd = cg_real.socket(domain, type, protocol);
  if (fd >= 0 && cg_leak_enabled()) {
    int e = errno;
    cg_in_hook++;
    cg_leak_track(fd, CG_VIA_SOCKET, domain, type, protocol, NULL, 0);
    cg_in_hook--;
    errno = e;
  } else if (fd >= 0 && cg_active()) {
    cg_fd_note_made(fd, domain, type, protocol);
  }
  if (fd >= 0) cg_fd_note_nonblock(fd, type & SOCK_NONBLOCK);   /* for a socket made here */
  return fd;
}
