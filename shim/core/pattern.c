#include "pattern.h"
#include <arpa/inet.h>
#include <fnmatch.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

static int parse_port(const char *s, size_t n, uint16_t *lo, uint16_t *hi)
{
  if (n == 1 && s[0] == '*') { *lo = 0; *hi = 65535; return 0; }
  unsigned long a = 0, b;
  size_t i = 0, digits = 0;
  while (i < n && s[i] >= '0' && s[i] <= '9') { a = a * 10 + (unsigned long)(s[i++] - '0'); if (a > 65535) return -1; digits++; }
  if (!digits) return -1;
  b = a;
  if (i < n && s[i] == '-') {
    i++; b = 0; digits = 0;
    while (i < n && s[i] >= '0' && s[i] <= '9') { b = b * 10 + (unsigned long)(s[i++] - '0'); if (b > 65535) return -1; digits++; }
    if (!digits || b < a) return -1;
  }
  if (i != n) return -1;
  *lo = (uint16_t)a; *hi = (uint16_t)b;
  return 0;
}

/* host part without brackets; may carry /len. */
static int parse_host(const char *h, size_t n, int v6, struct cg_pattern *p)
{
  char buf[INET6_ADDRSTRLEN + 8];
  if (n == 1 && h[0] == '*' && !v6) { p->family = 0; p->prefix = 0; return 0; }
  if (n == 0 || n >= sizeof buf) return -1;
  memcpy(buf, h, n); buf[n] = 0;
  char *slash = strchr(buf, '/');
  long len = -1;
  if (slash) {
    *slash = 0;
    char *end;
    if (!slash[1]) return -1;
    len = strtol(slash + 1, &end, 10);
    if (*end || len < 0) return -1;
  }
  if (v6) {
    if (inet_pton(AF_INET6, buf, p->addr) != 1) return -1;
    p->family = AF_INET6;
    if (len > 128) return -1;
    p->prefix = (uint8_t)(len < 0 ? 128 : len);
  } else {
    if (inet_pton(AF_INET, buf, p->addr) != 1) return -1;
    p->family = AF_INET;
    if (len > 32) return -1;
    p->prefix = (uint8_t)(len < 0 ? 32 : len);
  }
  return 0;
}

static int parse_one(const char *s, size_t n, struct cg_pattern *p)
{
  memset(p, 0, sizeof *p);
  while (n && (*s == ' ' || *s == '\t')) { s++; n--; }
  while (n && (s[n - 1] == ' ' || s[n - 1] == '\t')) n--;
  if (n == 0) return -1;
  if (n >= 5 && memcmp(s, "unix:", 5) == 0) {
    if (n - 5 == 0 || n - 5 >= sizeof p->path) return -1;
    p->kind = CG_PAT_UNIX;
    memcpy(p->path, s + 5, n - 5);
    p->path[n - 5] = 0;
    return 0;
  }
  p->kind = CG_PAT_INET;
  if (s[0] == '[') {
    const char *close = memchr(s, ']', n);
    if (!close || (size_t)(close - s) + 1 >= n || close[1] != ':') return -1;
    if (parse_host(s + 1, (size_t)(close - s - 1), 1, p)) return -1;
    const char *port = close + 2;
    return parse_port(port, n - (size_t)(port - s), &p->port_lo, &p->port_hi);
  }
  const char *colon = NULL;
  for (size_t i = 0; i < n; i++) if (s[i] == ':') { if (colon) return -1; colon = s + i; }
  if (!colon) return -1;
  if (parse_host(s, (size_t)(colon - s), 0, p)) return -1;
  return parse_port(colon + 1, n - (size_t)(colon + 1 - s), &p->port_lo, &p->port_hi);
}

int cg_patterns_parse(const char *s, struct cg_patterns *out)
{
  memset(out, 0, sizeof *out);
  if (!s) return 0;
  /* An empty (or blank) list is the default of ONLY and SKIP: no patterns, not an error. */
  if (!s[strspn(s, " \t")]) return 0;
  const char *p = s;
  int any = 0;
  for (;;) {
    const char *e = strchr(p, ',');
    size_t n = e ? (size_t)(e - p) : strlen(p);
    if (out->n >= CG_MAX_PATTERNS) goto bad;
    if (parse_one(p, n, &out->p[out->n])) goto bad;
    if (out->p[out->n].kind == CG_PAT_UNIX) out->has_unix = 1;
    out->n++;
    any = 1;
    if (!e) break;
    p = e + 1;
  }
  (void)any;
  return 0;
bad:
  memset(out, 0, sizeof *out);
  return -1;
}

static int prefix_eq(const uint8_t *a, const uint8_t *b, unsigned bits)
{
  unsigned full = bits / 8, rest = bits % 8;
  if (memcmp(a, b, full)) return 0;
  if (rest) {
    uint8_t m = (uint8_t)(0xff << (8 - rest));
    if ((a[full] & m) != (b[full] & m)) return 0;
  }
  return 1;
}

int cg_pattern_match(const struct cg_pattern *p, const struct sockaddr *sa, unsigned len)
{
  if (!sa || len < sizeof(sa_family_t)) return 0;
  if (p->kind == CG_PAT_UNIX) {
    if (sa->sa_family != AF_UNIX) return 0;
    const struct sockaddr_un *un = (const void *)sa;
    char path[sizeof un->sun_path + 1];
    size_t plen = len > offsetof(struct sockaddr_un, sun_path) ? len - offsetof(struct sockaddr_un, sun_path) : 0;
    if (plen > sizeof un->sun_path) plen = sizeof un->sun_path;
    memcpy(path, un->sun_path, plen);
    path[plen] = 0;
    if (plen && path[0] == 0) path[0] = '@';   /* abstract socket: shown and matched as @name */
    return fnmatch(p->path, path, 0) == 0;
  }
  uint16_t port;
  const uint8_t *addr;
  int fam = sa->sa_family;
  uint8_t mapped[4];
  if (fam == AF_INET && len >= sizeof(struct sockaddr_in)) {
    const struct sockaddr_in *in = (const void *)sa;
    port = ntohs(in->sin_port);
    addr = (const uint8_t *)&in->sin_addr;
  } else if (fam == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
    const struct sockaddr_in6 *in6 = (const void *)sa;
    port = ntohs(in6->sin6_port);
    addr = (const uint8_t *)&in6->sin6_addr;
    /* An IPv4-mapped IPv6 address is matched by IPv4 patterns too. */
    if (p->family == AF_INET && IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
      memcpy(mapped, addr + 12, 4);
      addr = mapped;
      fam = AF_INET;
    }
  } else {
    return 0;
  }
  if (port < p->port_lo || port > p->port_hi) return 0;
  if (p->family == 0) return 1;
  if (p->family != fam) return 0;
  return prefix_eq(addr, p->addr, p->prefix);
}

int cg_patterns_match(const struct cg_patterns *ps, const struct sockaddr *sa, unsigned len)
{
  for (int i = 0; i < ps->n; i++)
    if (cg_pattern_match(&ps->p[i], sa, len)) return 1;
  return 0;
}
