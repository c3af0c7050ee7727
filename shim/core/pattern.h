/* Destination patterns for CONNGUARD_ONLY / CONNGUARD_SKIP:
 *   HOST:PORT  HOST = * | IPv4 | IPv4/len | [IPv6] | [IPv6/len];  PORT = * | N | N-M
 *   unix:PATH  PATH may hold shell wildcards (fnmatch); unix:* matches every unix socket. */
#ifndef CG_PATTERN_H
#define CG_PATTERN_H
#include <stdint.h>
#include <sys/socket.h>

#define CG_MAX_PATTERNS 32

struct cg_pattern {
  uint8_t kind;         /* CG_PAT_INET or CG_PAT_UNIX */
  uint8_t family;       /* 0 = any, AF_INET, AF_INET6 */
  uint8_t prefix;       /* bits of addr that must match */
  uint8_t addr[16];
  uint16_t port_lo, port_hi;
  char path[108];
};
enum { CG_PAT_INET = 1, CG_PAT_UNIX = 2 };

/* The counts after the table: in struct cg_config they then share a page with the scalars that
 * start-up writes (docs/design.md, "Start-up"). */
struct cg_patterns {
  struct cg_pattern p[CG_MAX_PATTERNS];
  int n;
  int has_unix;         /* a unix: pattern is listed */
};

/* Parses a comma-separated list. Returns 0, or -1 and leaves *out empty on any bad item. */
int cg_patterns_parse(const char *s, struct cg_patterns *out);
int cg_pattern_match(const struct cg_pattern *p, const struct sockaddr *sa, unsigned len);
int cg_patterns_match(const struct cg_patterns *ps, const struct sockaddr *sa, unsigned len);

#endif
