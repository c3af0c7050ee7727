/* CONNGUARD_ONLY / CONNGUARD_SKIP patterns: parsing any text, matching any address. A failed
 * parse leaves the list empty; every parsed pattern is well-formed and matches the address it
 * names (its own network address at its lowest port; its literal unix path). */
#include "fuzz.h"
#include "pattern.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>

static void fzp_self_match(const struct cg_pattern *p)
{
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  unsigned len;
  if (p->kind == CG_PAT_UNIX) {
    if (strpbrk(p->path, "*?[\\")) return;   /* a glob: no single literal address */
    struct sockaddr_un *un = (void *)&ss;
    un->sun_family = AF_UNIX;
    size_t l = strlen(p->path);
    memcpy(un->sun_path, p->path, l);
    if (un->sun_path[0] == '@') un->sun_path[0] = 0;   /* @name: the abstract socket */
    len = (unsigned)(offsetof(struct sockaddr_un, sun_path) + l);
  } else if (p->family == AF_INET6) {
    struct sockaddr_in6 *in6 = (void *)&ss;
    in6->sin6_family = AF_INET6;
    memcpy(&in6->sin6_addr, p->addr, 16);
    in6->sin6_port = htons(p->port_lo);
    len = sizeof *in6;
  } else {
    struct sockaddr_in *in = (void *)&ss;
    in->sin_family = AF_INET;
    memcpy(&in->sin_addr, p->addr, 4);
    in->sin_port = htons(p->port_lo);
    len = sizeof *in;
  }
  FZ_CHECK(cg_pattern_match(p, (struct sockaddr *)&ss, len), "pattern does not match its own address");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct fz f = { data, size };
  char *text = malloc(size + 1);
  fz_str(&f, text, size + 1);
  static struct cg_patterns ps;
  int r = cg_patterns_parse(text, &ps);
  if (r) {
    FZ_CHECK(ps.n == 0 && !ps.has_unix, "failed parse left %d patterns", ps.n);
  } else {
    FZ_CHECK(ps.n >= 0 && ps.n <= CG_MAX_PATTERNS, "n=%d", ps.n);
    int has_unix = 0;
    for (int i = 0; i < ps.n; i++) {
      const struct cg_pattern *p = &ps.p[i];
      FZ_CHECK(p->kind == CG_PAT_INET || p->kind == CG_PAT_UNIX, "kind %d", p->kind);
      if (p->kind == CG_PAT_UNIX) {
        has_unix = 1;
        FZ_CHECK(memchr(p->path, 0, sizeof p->path) && p->path[0], "unix path");
      } else {
        FZ_CHECK(p->port_lo <= p->port_hi, "ports %u-%u", p->port_lo, p->port_hi);
        FZ_CHECK(p->family == 0 || (p->family == AF_INET && p->prefix <= 32) ||
                 (p->family == AF_INET6 && p->prefix <= 128), "family %d prefix %d", p->family, p->prefix);
      }
      fzp_self_match(p);
    }
    FZ_CHECK(has_unix == ps.has_unix, "has_unix");
  }
  /* Any address, any length, against whatever was parsed. */
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  unsigned fam = fz_byte(&f) % 4;
  unsigned len = fz_byte(&f) % (sizeof ss + 1);
  for (size_t i = 0; i < sizeof ss && f.n; i++) ((uint8_t *)&ss)[i] = (uint8_t)fz_byte(&f);
  ss.ss_family = fam == 0 ? AF_INET : fam == 1 ? AF_INET6 : fam == 2 ? AF_UNIX : ss.ss_family;
  cg_patterns_match(&ps, (struct sockaddr *)&ss, len);
  cg_patterns_match(&ps, NULL, 0);
  free(text);
  return 0;
}
