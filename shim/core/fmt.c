#include "fmt.h"
#include <arpa/inet.h>
#include <stddef.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/un.h>

void cg_buf_init(struct cg_buf *b, char *mem, size_t cap)
{
  b->p = mem; b->len = 0; b->cap = cap; b->truncated = 0;
  if (cap) mem[0] = 0;
}

void cg_buf_putn(struct cg_buf *b, const char *s, size_t n)
{
  /* One byte stays free for the terminating NUL. */
  size_t room = b->cap > b->len + 1 ? b->cap - b->len - 1 : 0;
  if (n > room) { n = room; b->truncated = 1; }
  memcpy(b->p + b->len, s, n);
  b->len += n;
}

void cg_buf_putc(struct cg_buf *b, char c) { cg_buf_putn(b, &c, 1); }
void cg_buf_puts(struct cg_buf *b, const char *s) { cg_buf_putn(b, s, strlen(s)); }

void cg_buf_u64(struct cg_buf *b, uint64_t v)
{
  char t[24];
  int i = 24;
  do { t[--i] = (char)('0' + v % 10); v /= 10; } while (v);
  cg_buf_putn(b, t + i, (size_t)(24 - i));
}

void cg_buf_i64(struct cg_buf *b, int64_t v)
{
  if (v < 0) { cg_buf_putc(b, '-'); cg_buf_u64(b, (uint64_t)0 - (uint64_t)v); }
  else cg_buf_u64(b, (uint64_t)v);
}

void cg_buf_hex(struct cg_buf *b, uint64_t v)
{
  char t[18];
  int i = 18;
  do { t[--i] = "0123456789abcdef"[v & 15]; v >>= 4; } while (v);
  t[--i] = 'x'; t[--i] = '0';
  cg_buf_putn(b, t + i, (size_t)(18 - i));
}

void cg_buf_pad(struct cg_buf *b, uint64_t v, int width)
{
  char t[24];
  int i = 24;
  do { t[--i] = (char)('0' + v % 10); v /= 10; } while (v && i > 0);
  while (24 - i < width && i > 0) t[--i] = '0';
  cg_buf_putn(b, t + i, (size_t)(24 - i));
}

/* Length of a valid UTF-8 sequence at s (max n bytes), or 0 if invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
  unsigned c = s[0];
  size_t len;
  unsigned min;
  if (c < 0x80) return 1;
  if ((c & 0xe0) == 0xc0) { len = 2; min = 0x80; c &= 0x1f; }
  else if ((c & 0xf0) == 0xe0) { len = 3; min = 0x800; c &= 0x0f; }
  else if ((c & 0xf8) == 0xf0) { len = 4; min = 0x10000; c &= 0x07; }
  else return 0;
  if (len > n) return 0;
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xc0) != 0x80) return 0;
    c = (c << 6) | (s[i] & 0x3f);
  }
  if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) return 0;
  return len;
}

void cg_buf_json_strn(struct cg_buf *b, const char *s, size_t n)
{
  static const char hex[] = "0123456789abcdef";
  const unsigned char *u = (const unsigned char *)s;
  cg_buf_putc(b, '"');
  size_t i = 0;
  while (i < n) {
    unsigned char c = u[i];
    if (c == '"' || c == '\\') { char e[2] = { '\\', (char)c }; cg_buf_putn(b, e, 2); i++; continue; }
    if (c >= 0x20 && c < 0x7f) {
      /* Copy the run of plain bytes at once. */
      size_t j = i;
      while (j < n && u[j] >= 0x20 && u[j] < 0x7f && u[j] != '"' && u[j] != '\\') j++;
      cg_buf_putn(b, s + i, j - i);
      i = j;
      continue;
    }
    if (c >= 0x80) {
      size_t l = utf8_len(u + i, n - i);
      if (l) { cg_buf_putn(b, s + i, l); i += l; continue; }
    }
    switch (c) {
    case '\n': cg_buf_putn(b, "\\n", 2); break;
    case '\r': cg_buf_putn(b, "\\r", 2); break;
    case '\t': cg_buf_putn(b, "\\t", 2); break;
    default: {
      char e[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };
      cg_buf_putn(b, e, 6);
    }
    }
    i++;
  }
  cg_buf_putc(b, '"');
}

void cg_buf_json_str(struct cg_buf *b, const char *s)
{
  if (!s) { cg_buf_puts(b, "null"); return; }
  cg_buf_json_strn(b, s, strlen(s));
}

void cg_buf_sockaddr(struct cg_buf *b, const struct sockaddr *sa, unsigned len)
{
  char t[INET6_ADDRSTRLEN];
  if (!sa || len < sizeof(sa_family_t)) { cg_buf_puts(b, "(none)"); return; }
  switch (sa->sa_family) {
  case AF_INET: {
    const struct sockaddr_in *in = (const void *)sa;
    if (len < sizeof *in || !inet_ntop(AF_INET, &in->sin_addr, t, sizeof t)) break;
    cg_buf_puts(b, t); cg_buf_putc(b, ':'); cg_buf_u64(b, ntohs(in->sin_port));
    return;
  }
  case AF_INET6: {
    const struct sockaddr_in6 *in6 = (const void *)sa;
    if (len < sizeof *in6 || !inet_ntop(AF_INET6, &in6->sin6_addr, t, sizeof t)) break;
    cg_buf_putc(b, '['); cg_buf_puts(b, t); cg_buf_puts(b, "]:"); cg_buf_u64(b, ntohs(in6->sin6_port));
    return;
  }
  case AF_UNIX: {
    const struct sockaddr_un *un = (const void *)sa;
    size_t off = offsetof(struct sockaddr_un, sun_path);
    size_t n = len > off ? len - off : 0;
    if (n > sizeof un->sun_path) n = sizeof un->sun_path;
    cg_buf_puts(b, "unix:");
    if (n == 0) { cg_buf_puts(b, "(unnamed)"); return; }
    if (un->sun_path[0] == 0) { cg_buf_putc(b, '@'); cg_buf_putn(b, un->sun_path + 1, strnlen(un->sun_path + 1, n - 1)); return; }
    cg_buf_putn(b, un->sun_path, strnlen(un->sun_path, n));
    return;
  }
  default:
    break;
  }
  cg_buf_puts(b, "family:");
  cg_buf_u64(b, sa->sa_family);
}

void cg_buf_iso8601(struct cg_buf *b, int64_t ns)
{
  int64_t secs = ns / 1000000000, rem = ns % 1000000000;
  if (rem < 0) { rem += 1000000000; secs--; }
  cg_buf_iso8601_s(b, secs, (int)(rem / 1000000));
}

/* Howard Hinnant's days-to-civil: no tz locks (gmtime_r takes one in glibc). Any int64 seconds
 * (certificate dates reach year 9999: in nanoseconds they would not fit). */
void cg_buf_iso8601_s(struct cg_buf *b, int64_t secs, int ms)
{
  int64_t days = secs / 86400, rem = secs % 86400;
  if (rem < 0) { rem += 86400; days--; }
  days += 719468;
  int64_t era = (days >= 0 ? days : days - 146096) / 146097;
  unsigned doe = (unsigned)(days - era * 146097);
  unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t y = (int64_t)yoe + era * 400;
  unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  unsigned mp = (5 * doy + 2) / 153;
  unsigned d = doy - (153 * mp + 2) / 5 + 1;
  unsigned m = mp < 10 ? mp + 3 : mp - 9;
  if (m <= 2) y++;
  if (y < 0) { cg_buf_putc(b, '-'); cg_buf_pad(b, (uint64_t)0 - (uint64_t)y, 4); }
  else cg_buf_pad(b, (uint64_t)y, 4);
  cg_buf_putc(b, '-');
  cg_buf_pad(b, m, 2); cg_buf_putc(b, '-');
  cg_buf_pad(b, d, 2); cg_buf_putc(b, 'T');
  cg_buf_pad(b, (uint64_t)(rem / 3600), 2); cg_buf_putc(b, ':');
  cg_buf_pad(b, (uint64_t)(rem / 60 % 60), 2); cg_buf_putc(b, ':');
  cg_buf_pad(b, (uint64_t)(rem % 60), 2);
  if (ms >= 0) { cg_buf_putc(b, '.'); cg_buf_pad(b, (uint64_t)ms, 3); }
  cg_buf_putc(b, 'Z');
}

const char *cg_buf_str(struct cg_buf *b)
{
  if (b->cap) b->p[b->len < b->cap ? b->len : b->cap - 1] = 0;
  return b->p;
}
