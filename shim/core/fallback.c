/* Fallback addresses: a client with another address to try is not held back retrying this one
 * (curl's happy eyeballs, python's create_connection). Recent getaddrinfo results, the kernel's
 * listening sockets (sock_diag) for the loopback sibling of a refused address, and the
 * destinations that just used up a deadline (shared by the addresses of one name). */
#include "engine_int.h"
#include "rawsys.h"
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#define GAI_SLOTS 16
#define GAI_ADDRS 8
#define GAI_TTL_NS (60 * 1000000000LL)
struct gai_slot {
  int64_t t;
  int n;
  struct sockaddr_storage a[GAI_ADDRS];
};
static struct gai_slot gai[GAI_SLOTS];
static unsigned gai_next;
static atomic_uint gai_lock;

/* An address as compared here: an IPv4 address reached through an IPv6 socket (::ffff:a.b.c.d,
 * as java connects) is the IPv4 address, compared and told loopback as such. Fields are copied
 * out byte-wise: no sockaddr type punning for the optimizer to reorder. */
struct endpoint { int v4; uint16_t port; unsigned char a[16]; };

static int endpoint_of(const struct sockaddr *sa, struct endpoint *ep)
{
  memset(ep, 0, sizeof *ep);
  if (sa->sa_family == AF_INET) {
    struct sockaddr_in in;
    memcpy(&in, sa, sizeof in);
    ep->v4 = 1;
    ep->port = in.sin_port;
    memcpy(ep->a, &in.sin_addr, 4);
    return 1;
  }
  if (sa->sa_family == AF_INET6) {
    struct sockaddr_in6 in6;
    memcpy(&in6, sa, sizeof in6);
    ep->port = in6.sin6_port;
    if (IN6_IS_ADDR_V4MAPPED(&in6.sin6_addr)) {
      ep->v4 = 1;
      memcpy(ep->a, &in6.sin6_addr.s6_addr[12], 4);
    } else {
      memcpy(ep->a, &in6.sin6_addr, 16);
    }
    return 1;
  }
  return 0;
}

static int endpoint_loopback(const struct endpoint *ep)
{
  static const unsigned char one[16] = { [15] = 1 };
  return ep->v4 ? ep->a[0] == 127 : !memcmp(ep->a, one, 16);
}

static int addr_eq(const struct sockaddr *x, const struct sockaddr *y)
{
  struct endpoint a, b;
  if (!endpoint_of(x, &a) || !endpoint_of(y, &b)) return 0;
  return a.v4 == b.v4 && a.port == b.port && !memcmp(a.a, b.a, 16);
}

/* Whether address x of a lookup result names the destination y: a lookup without a service
 * (wget, java) lists port 0, which stands for any port. */
static int listed_as(const struct sockaddr *x, const struct sockaddr *y)
{
  struct endpoint a, b;
  if (!endpoint_of(x, &a) || !endpoint_of(y, &b)) return 0;
  return a.v4 == b.v4 && (a.port == 0 || a.port == b.port) && !memcmp(a.a, b.a, 16);
}

static int gai_trylock(void)
{
  for (int i = 0; i < 1000; i++)
    if (!atomic_exchange_explicit(&gai_lock, 1, memory_order_acquire)) return 1;
  return 0;
}

void cg_note_addrinfo(const void *res)
{
  struct gai_slot s;
  memset(&s, 0, sizeof s);
  for (const struct addrinfo *ai = res; ai && s.n < GAI_ADDRS; ai = ai->ai_next) {
    if (!ai->ai_addr || (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)) continue;
    if (ai->ai_socktype && ai->ai_socktype != SOCK_STREAM) continue;
    if (ai->ai_addrlen > sizeof s.a[0]) continue;
    int dup = 0;
    for (int i = 0; i < s.n; i++) if (addr_eq((struct sockaddr *)&s.a[i], ai->ai_addr)) dup = 1;
    if (dup) continue;
    memcpy(&s.a[s.n++], ai->ai_addr, ai->ai_addrlen);
  }
  if (s.n < 2) return;
  s.t = cg_mono_ns();
  if (!gai_trylock()) return;
  gai[gai_next++ % GAI_SLOTS] = s;
  atomic_store_explicit(&gai_lock, 0, memory_order_release);
}

/* A TCP listener of this family on port, bound to loopback or a wildcard, asked of the kernel's
 * sock_diag: only the listening hash is walked (a few entries), where /proc/net/tcp lists every
 * socket of the host (131,000 lines, 0.3 s of system time, on a busy test machine here).
 * Returns 1/0, or -1 when sock_diag is not available. */
static int diag_listening(int family, unsigned port)
{
  int fd = (int)cg_syscall(SYS_socket, AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (fd < 0) return -1;
  struct { struct nlmsghdr nh; struct inet_diag_req_v2 r; } req;
  memset(&req, 0, sizeof req);
  req.nh.nlmsg_len = sizeof req;
  req.nh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  req.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  req.r.sdiag_family = (uint8_t)family;
  req.r.sdiag_protocol = IPPROTO_TCP;
  req.r.idiag_states = 1u << 10;            /* TCP_LISTEN */
  struct sockaddr_nl nl = { .nl_family = AF_NETLINK };
  int found = -1;
  if (cg_syscall(SYS_sendto, fd, &req, sizeof req, 0, &nl, sizeof nl) == (long)sizeof req) {
    long buf[1024];                        /* 8 KB, aligned for the headers */
    for (int done = 0; !done;) {
      long n = cg_syscall(SYS_recvfrom, fd, buf, sizeof buf, 0, NULL, NULL);
      if (n <= 0) { if (n < 0 && errno == EINTR) continue; break; }
      for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (unsigned)n); h = NLMSG_NEXT(h, n)) {
        if (h->nlmsg_type == NLMSG_DONE) { done = 1; if (found < 0) found = 0; break; }
        if (h->nlmsg_type == NLMSG_ERROR) { done = 1; break; }
        const struct inet_diag_msg *m = NLMSG_DATA(h);
        if (ntohs(m->id.idiag_sport) != port) continue;
        const uint32_t *w = m->id.idiag_src;   /* network byte order */
        int any, lo;
        if (family == AF_INET) {
          any = w[0] == 0;
          lo = (ntohl(w[0]) >> 24) == 127;
        } else {
          any = !w[0] && !w[1] && !w[2] && !w[3];
          lo = (!w[0] && !w[1] && !w[2] && w[3] == htonl(1)) ||                          /* ::1 */
               (!w[0] && !w[1] && w[2] == htonl(0xffff) && (ntohl(w[3]) >> 24) == 127);  /* ::ffff:127.x */
        }
        if (any || lo) { found = 1; done = 1; break; }
      }
    }
  }
  cg_syscall(SYS_close, fd);
  return found;
}

/* Is a listener on the same port bound to the other loopback family (or a wildcard)? Asked of
 * the kernel: no packet is sent. This is the "localhost" case of clients that resolve the name
 * themselves (curl does) and fall back from ::1 to 127.0.0.1 on their own. */
static int loopback_sibling_listening(const struct sockaddr *sa)
{
  struct endpoint ep;
  if (!endpoint_of(sa, &ep) || !endpoint_loopback(&ep)) return 0;
  unsigned port = ntohs(ep.port);
  const char *file = ep.v4 ? "/proc/net/tcp6" : "/proc/net/tcp";
  int other = ep.v4 ? AF_INET6 : AF_INET;
  int d = diag_listening(other, port);
  if (d >= 0) return d;
  /* No sock_diag (a sandbox): the /proc table, slow on a host with many sockets. */
  int fd = (int)cg_syscall(SYS_openat, AT_FDCWD, file, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char buf[2048], tail[160];   /* small: connect() may run on a PTHREAD_STACK_MIN thread */
  size_t tl = 0;
  int found = 0;
  ssize_t n;
  /* Lines: "  sl  local_address rem_address   st ..."; local is HEXADDR:HEXPORT, st 0A = LISTEN. */
  while (!found && (n = read(fd, buf, sizeof buf)) > 0) {
    for (ssize_t i = 0; i < n && !found; i++) {
      char c = buf[i];
      if (c != '\n') { if (tl < sizeof tail - 1) tail[tl++] = c; continue; }
      tail[tl] = 0;
      tl = 0;
      char *colon = strchr(tail, ':');
      if (!colon) continue;
      char *addr = colon + 1;
      while (*addr == ' ') addr++;
      char *pc = strchr(addr, ':');
      if (!pc) continue;
      unsigned lport = (unsigned)strtoul(pc + 1, NULL, 16);
      char *st = strchr(pc, ' ');
      if (!st) continue;
      st = strchr(st + 1, ' ');
      if (!st || strncmp(st + 1, "0A", 2) != 0 || lport != port) continue;
      size_t alen = (size_t)(pc - addr);
      int any = 1, lo = 0;
      for (size_t j = 0; j < alen; j++) if (addr[j] != '0') any = 0;
      if (alen == 8) lo = addr[6] == '7' && addr[7] == 'F';                        /* 127.x.x.x, little-endian */
      else if (alen == 32) lo = !strncmp(addr, "00000000000000000000000001000000", 32) ||
                                !strncmp(addr, "0000000000000000FFFF0000", 24);   /* ::1, ::ffff:a.b.c.d */
      if (any || lo) found = 1;
    }
  }
  cg_syscall(SYS_close, fd);
  return found;
}

/* A loopback address is given up only for a sibling that listens (the server is there, on the
 * other family): the kernel tells that without a packet, and holding on to the first address of
 * "localhost" meanwhile lets a server that comes up late on either family be reached. Any other
 * address is given up at once when its name listed another after it: the program moves on to
 * that one, which keeps the retries (docs/design.md, "Names with several addresses"). */
int cg_has_fallback(const struct sockaddr *sa, socklen_t len)
{
  struct endpoint ep;
  if (!sa || len < sizeof(sa_family_t) || !endpoint_of(sa, &ep)) return 0;
  if (endpoint_loopback(&ep)) return loopback_sibling_listening(sa);
  int64_t now = cg_mono_ns();
  int hit = 0;
  if (gai_trylock()) {
    for (int i = 0; i < GAI_SLOTS && !hit; i++) {
      if (gai[i].n < 2 || now - gai[i].t > GAI_TTL_NS) continue;
      for (int j = 0; j < gai[i].n - 1; j++)
        if (listed_as((struct sockaddr *)&gai[i].a[j], sa)) { hit = 1; break; }
    }
    atomic_store_explicit(&gai_lock, 0, memory_order_release);
  }
  return hit;
}

/* Destinations whose connect gave up at its deadline a moment ago, with every other address of
 * the names that listed them. A first failure on one of them within SPENT_WINDOW_NS gives up at
 * once: a program moving down its address list, or retrying on its own (java's HttpClient
 * connects twice), must not turn the wait into one deadline per address or per try. */
#define SPENT_SLOTS 16
#define SPENT_WINDOW_NS (2 * 1000000000LL)
static struct { int64_t t; struct endpoint ep; } spent[SPENT_SLOTS];
static unsigned spent_next;

static void spent_add(const struct endpoint *ep, int64_t now)
{
  for (int i = 0; i < SPENT_SLOTS; i++)
    if (spent[i].t && !memcmp(&spent[i].ep, ep, sizeof *ep)) { spent[i].t = now; return; }
  unsigned k = spent_next++ % SPENT_SLOTS;
  spent[k].ep = *ep;
  spent[k].t = now;
}

void cg_note_spent(const struct sockaddr *sa, socklen_t len, int64_t now)
{
  struct endpoint ep, sib;
  if (!sa || len < sizeof(struct sockaddr_in) || !endpoint_of(sa, &ep) || !gai_trylock()) return;
  spent_add(&ep, now);
  for (int i = 0; i < GAI_SLOTS; i++) {
    if (gai[i].n < 2 || now - gai[i].t > GAI_TTL_NS) continue;
    int in = 0;
    for (int j = 0; j < gai[i].n && !in; j++) in = listed_as((struct sockaddr *)&gai[i].a[j], sa);
    for (int j = 0; in && j < gai[i].n; j++)
      if (endpoint_of((struct sockaddr *)&gai[i].a[j], &sib)) {
        sib.port = ep.port;
        spent_add(&sib, now);
      }
  }
  atomic_store_explicit(&gai_lock, 0, memory_order_release);
}

int cg_name_spent(const struct sockaddr *sa, socklen_t len, int64_t now)
{
  struct endpoint ep;
  if (!sa || len < sizeof(struct sockaddr_in) || !endpoint_of(sa, &ep) || !gai_trylock()) return 0;
  int hit = 0;
  for (int i = 0; i < SPENT_SLOTS && !hit; i++)
    hit = spent[i].t && now - spent[i].t <= SPENT_WINDOW_NS && !memcmp(&spent[i].ep, &ep, sizeof ep);
  atomic_store_explicit(&gai_lock, 0, memory_order_release);
  return hit;
}

void cg_fallback_after_fork(void)
{
  atomic_store(&gai_lock, 0);
}
