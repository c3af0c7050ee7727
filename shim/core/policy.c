#include "policy.h"
#include <errno.h>
#include <string.h>

unsigned cg_errno_class(int err, int family)
{
  switch (err) {
  case ECONNREFUSED: return CG_CLASS_REFUSED;
  case ENOENT:       return family == AF_UNIX ? CG_CLASS_REFUSED : CG_CLASS_NONE; /* socket file not there yet */
  case ETIMEDOUT:    return CG_CLASS_TIMEOUT;
  case EAGAIN:       return family == AF_UNIX ? CG_CLASS_TIMEOUT : CG_CLASS_NONE; /* unix backlog full */
  case ECONNRESET:
  case ECONNABORTED: return CG_CLASS_RESET;
  case ENETUNREACH:
  case EHOSTUNREACH:
  case ENETDOWN:
  case EHOSTDOWN:    return CG_CLASS_UNREACH;
  default:           return CG_CLASS_NONE;  /* EADDRNOTAVAIL, EACCES, EPERM, EINVAL, ... */
  }
}

int cg_errno_is_progress(int err, int family)
{
  switch (err) {
  case EINTR: case EINPROGRESS: case EALREADY: case EISCONN: return 1;
  case EAGAIN: return family != AF_UNIX;
  default: return 0;
  }
}

const char *cg_errno_name(int err)
{
  switch (err) {
#define E(x) case x: return #x;
  E(EPERM) E(ENOENT) E(EINTR) E(EIO) E(EBADF) E(EAGAIN) E(ENOMEM) E(EACCES) E(EFAULT)
  E(EBUSY) E(EEXIST) E(ENODEV) E(ENOTDIR) E(EINVAL) E(ENFILE) E(EMFILE) E(ENOSPC) E(EPIPE)
  E(ENAMETOOLONG) E(ENOSYS) E(ELOOP) E(ENOTSOCK) E(EDESTADDRREQ) E(EMSGSIZE) E(EPROTOTYPE)
  E(ENOPROTOOPT) E(EPROTONOSUPPORT) E(ESOCKTNOSUPPORT) E(EOPNOTSUPP) E(EPFNOSUPPORT)
  E(EAFNOSUPPORT) E(EADDRINUSE) E(EADDRNOTAVAIL) E(ENETDOWN) E(ENETUNREACH) E(ENETRESET)
  E(ECONNABORTED) E(ECONNRESET) E(ENOBUFS) E(EISCONN) E(ENOTCONN) E(ESHUTDOWN)
  E(ETIMEDOUT) E(ECONNREFUSED) E(EHOSTDOWN) E(EHOSTUNREACH) E(EALREADY) E(EINPROGRESS)
  E(EPROTO) E(ENXIO) E(EISDIR) E(EROFS) E(EDQUOT) E(EFBIG) E(ETXTBSY)
#undef E
  default: return NULL;
  }
}

const char *cg_errno_hint(int err, int family)
{
  switch (err) {
  case ECONNREFUSED:
    return family == AF_UNIX
      ? "the socket file exists but no server is accepting on it (server stopped or restarting)"
      : "nothing is listening on this address and port (server not started yet, restarting, or wrong port)";
  case ENOENT:
    return "the unix socket file does not exist (server not started yet, or wrong path)";
  case ETIMEDOUT:
    return "no answer to the SYN: dropped by a firewall, the host is down, or the listener's accept queue is full";
  case EAGAIN:
    return family == AF_UNIX ? "the unix socket's accept queue is full (server overloaded)"
                             : "resource temporarily unavailable";
  case ECONNRESET:
    return "the peer reset the connection during setup (server overloaded, crashing, or a middlebox)";
  case ECONNABORTED:
    return "the connection was aborted during setup";
  case ENETUNREACH:
    return "no route to the network: check routes, interfaces and VPNs";
  case EHOSTUNREACH:
    return "no route to the host, or a firewall rejects with ICMP host-unreachable";
  case ENETDOWN:
    return "the network interface is down";
  case EHOSTDOWN:
    return "the host is down";
  case EADDRNOTAVAIL:
    return "no local address/port available: ephemeral ports exhausted (many TIME_WAIT sockets; see net.ipv4.ip_local_port_range) or the address is not configured";
  case EACCES:
  case EPERM:
    return "blocked by local policy: a firewall rule, seccomp, SELinux/AppArmor, or a broadcast address without SO_BROADCAST";
  case EINVAL:
    return "invalid address or socket state (a bug in the program, not a network problem)";
  case EAFNOSUPPORT:
    return "address family not supported (IPv6 disabled?)";
  default:
    return "unexpected connect failure";
  }
}

uint64_t cg_rand_next(uint64_t *s)
{
  uint64_t x = *s ? *s : 0x9e3779b97f4a7c15ULL;
  x ^= x >> 12; x ^= x << 25; x ^= x >> 27;
  *s = x;
  return x * 0x2545F4914F6CDD1DULL;
}

/* Uniform integer in [lo, hi]. */
static unsigned uniform(uint64_t rnd, unsigned lo, unsigned hi)
{
  if (hi <= lo) return lo;
  return lo + (unsigned)(rnd % ((uint64_t)hi - lo + 1));
}

unsigned cg_backoff_ms(const struct cg_config *c, unsigned n, unsigned prev_ms, uint64_t rnd)
{
  unsigned base = c->backoff_ms, cap = c->backoff_max_ms;
  if (cap < base) cap = base;
  uint64_t exp = base;
  for (unsigned i = 1; i < n && exp < cap; i++) exp *= 2;
  if (exp > cap) exp = cap;
  switch (c->jitter) {
  case CG_JITTER_NONE:  return (unsigned)exp;
  case CG_JITTER_FULL:  return uniform(rnd, 0, (unsigned)exp);
  case CG_JITTER_EQUAL: return (unsigned)(exp / 2) + uniform(rnd, 0, (unsigned)(exp - exp / 2));
  case CG_JITTER_DECORRELATED: {
    /* min(cap, uniform(base, prev * 3)), as in the AWS architecture blog's variant. */
    uint64_t hi = (uint64_t)(prev_ms ? prev_ms : base) * 3;
    if (hi > cap) hi = cap;
    if (hi < base) hi = base;
    return uniform(rnd, base, (unsigned)hi);
  }
  }
  return (unsigned)exp;
}

unsigned cg_last_slot_ms(const struct cg_config *c)
{
  /* At least 1 ms: an attempt started at the deadline itself would be cut at once. */
  unsigned slot = c->deadline_ms / 10;
  if (slot < 1) slot = 1;
  return slot < CG_LAST_SLOT_MAX_MS ? slot : CG_LAST_SLOT_MAX_MS;
}

int cg_retry_delay(const struct cg_config *c, unsigned n, unsigned prev_ms, uint64_t rnd,
                   int64_t left_ns, unsigned *delay_ms)
{
  /* Whole milliseconds from here: a delay is slept and logged in ms. */
  int64_t room = left_ns / 1000000 - (int64_t)cg_last_slot_ms(c);
  if (room <= 0) return -1;
  unsigned d = cg_backoff_ms(c, n, prev_ms, rnd);
  if ((int64_t)d > room) d = (unsigned)room;
  *delay_ms = d;
  return 0;
}
