/* Name lookups tell us when a client has another address to fall back to. */
#include "hook.h"
#include <netdb.h>

CG_EXPORT int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints, struct addrinfo **res)
{
  cg_real_init();
  int r = ((int (*)(const char *, const char *, const struct addrinfo *, struct addrinfo **))cg_real.getaddrinfo)(node, service, hints, res);
  if (r == 0 && res && *res && cg_enabled && !cg_in_hook) {
    int e = errno;
    cg_note_addrinfo(*res);
    errno = e;
  }
  return r;
}
