#include "supp.h"
#include "fmt.h"
#include "policy.h"
#include "rawsys.h"
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static int blank(char c) { return c == ' ' || c == '\t' || c == '\r'; }

int cg_supp_parse(struct cg_supp *s, const char *text, size_t len, int *first_bad)
{
  int bad = 0, lineno = 0;
  s->n = 0;
  if (first_bad) *first_bad = 0;
  size_t i = 0;
  while (i < len) {
    size_t b = i, e;
    while (i < len && text[i] != '\n') i++;
    e = i;
    if (i < len) i++;   /* past the newline */
    lineno++;
    while (b < e && blank(text[b])) b++;
    while (e > b && blank(text[e - 1])) e--;
    if (b == e || text[b] == '#') continue;
    int ok = 0;
    if (e - b > 5 && memcmp(text + b, "leak:", 5) == 0) {
      size_t pb = b + 5;
      while (pb < e && blank(text[pb])) pb++;
      size_t pl = e - pb;
      if (pl > 0 && pl <= CG_SUPP_PATLEN && s->n < CG_SUPP_MAX && !memchr(text + pb, 0, pl)) {
        memcpy(s->pat[s->n], text + pb, pl);
        s->pat[s->n][pl] = 0;
        s->glob[s->n] = strpbrk(s->pat[s->n], "*?[") != NULL;
        s->hits[s->n] = 0;
        s->n++;
        ok = 1;
      }
    }
    if (!ok) {
      if (!bad && first_bad) *first_bad = lineno;
      bad++;
    }
  }
  return bad;
}

static void quote_path(struct cg_buf *b, const char *path)
{
  /* Shown like the configuration warnings: quoted, at most 80 bytes, controls escaped. */
  cg_buf_putc(b, '"');
  size_t n = strlen(path);
  for (size_t i = 0; i < n && i < 80; i++) {
    unsigned char c = (unsigned char)path[i];
    if (c >= 0x20 && c < 0x7f && c != '"') cg_buf_putc(b, (char)c);
    else { cg_buf_puts(b, "\\x"); cg_buf_putc(b, "0123456789abcdef"[c >> 4]); cg_buf_putc(b, "0123456789abcdef"[c & 15]); }
  }
  if (n > 80) cg_buf_puts(b, "...");
  cg_buf_putc(b, '"');
}

int cg_supp_load(struct cg_supp *s, const char *path, char *warn, size_t cap)
{
  static char data[CG_SUPP_FILEMAX];
  struct cg_buf w;
  cg_buf_init(&w, warn, cap);
  s->n = 0;
  /* Raw syscalls: the program's hooks must not see our file. O_NONBLOCK: a FIFO named by
   * mistake must not hang the program at start. */
  int fd = (int)cg_syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  int err = fd < 0 ? errno : 0;
  size_t len = 0;
  int toobig = 0;
  if (fd >= 0) {
    for (;;) {
      ssize_t r = (ssize_t)cg_syscall(SYS_read, fd, data + len, sizeof data - len);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) { err = errno; break; }
      if (r == 0) break;
      len += (size_t)r;
      if (len == sizeof data) {
        char extra;
        if (cg_syscall(SYS_read, fd, &extra, 1) > 0) toobig = 1;
        break;
      }
    }
    cg_syscall(SYS_close, fd);
  }
  cg_buf_puts(&w, "connguard: warning: CONNGUARD_SUPPRESSIONS=");
  quote_path(&w, path);
  if (err) {
    const char *name = cg_errno_name(err);
    cg_buf_puts(&w, ": cannot read the file (");
    cg_buf_puts(&w, name ? name : strerror(err));   /* at start-up: strerror is fine here */
    cg_buf_puts(&w, "); using no suppressions");
    cg_buf_str(&w);
    return -1;
  }
  int first = 0;
  int bad = cg_supp_parse(s, data, len, &first);
  if (!bad && !toobig) { warn[0] = 0; return 0; }
  if (bad) {
    cg_buf_puts(&w, ": ");
    cg_buf_u64(&w, (uint64_t)bad);
    cg_buf_puts(&w, bad == 1 ? " bad line" : " bad lines");
    cg_buf_puts(&w, " (first: line ");
    cg_buf_u64(&w, (uint64_t)first);
    cg_buf_puts(&w, "; expected leak:PATTERN, at most ");
    cg_buf_u64(&w, CG_SUPP_MAX);
    cg_buf_puts(&w, " patterns of at most ");
    cg_buf_u64(&w, CG_SUPP_PATLEN);
    cg_buf_puts(&w, " bytes)");
  }
  if (toobig) {
    cg_buf_puts(&w, bad ? " and" : ":");
    cg_buf_puts(&w, " longer than 64 KB, the rest is not read");
  }
  cg_buf_puts(&w, "; using the ");
  cg_buf_u64(&w, (uint64_t)s->n);
  cg_buf_puts(&w, s->n == 1 ? " valid pattern" : " valid patterns");
  cg_buf_str(&w);
  return -1;
}

static const char *base_name(const char *p)
{
  const char *s = strrchr(p, '/');
  return s ? s + 1 : p;
}

int cg_supp_match(const struct cg_supp *s, const char *symbol, const char *module)
{
  for (int i = 0; i < s->n; i++) {
    const char *p = s->pat[i];
    if (s->glob[i]) {
      if (symbol && fnmatch(p, symbol, 0) == 0) return i;
      if (module && (fnmatch(p, module, 0) == 0 || fnmatch(p, base_name(module), 0) == 0)) return i;
    } else {
      if (symbol && strstr(symbol, p)) return i;
      if (module && strstr(module, p)) return i;
    }
  }
  return -1;
}
