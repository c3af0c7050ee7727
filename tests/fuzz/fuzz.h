/* Shared by the fuzz targets (tests/fuzz/fuzz_*.c): reading the input, a strict JSON checker
 * (RFC 8259, UTF-8 checked), and the failure macro. The targets are also compiled into
 * tests/unit/test_fuzz_replay.c, which replays the corpus and every past crash in `make check`. */
#ifndef CG_FUZZ_H
#define CG_FUZZ_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* An invariant broke: say which, and crash so the fuzzer keeps the input. */
#define FZ_CHECK(cond, ...) do { if (!(cond)) { \
    fprintf(stderr, "fuzz invariant failed at %s:%d: %s: ", __FILE__, __LINE__, #cond); \
    fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); abort(); } } while (0)

struct fz { const uint8_t *p; size_t n; };

static inline unsigned fz_byte(struct fz *f)
{
  if (!f->n) return 0;
  f->n--;
  return *f->p++;
}

static inline uint64_t fz_u64(struct fz *f, int bytes)
{
  uint64_t v = 0;
  for (int i = 0; i < bytes; i++) v = v << 8 | fz_byte(f);
  return v;
}

/* The bytes up to the next NUL (or the end) as a NUL-terminated string in out. */
static inline size_t fz_str(struct fz *f, char *out, size_t cap)
{
  size_t k = 0;
  while (f->n) {
    uint8_t c = *f->p++;
    f->n--;
    if (!c) break;
    if (k + 1 < cap) out[k++] = (char)c;
  }
  out[k] = 0;
  return k;
}

/* ---- strict JSON ---- */

static const char *fzj_value(const char *s, const char *e, int depth);

static const char *fzj_ws(const char *s, const char *e)
{
  while (s < e && (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')) s++;
  return s;
}

static int fzj_hex(char c)
{
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* One UTF-8 sequence (RFC 3629: no overlongs, no surrogates, <= U+10FFFF); its length or 0. */
static size_t fzj_utf8(const unsigned char *s, const unsigned char *e)
{
  unsigned c = s[0], min, len;
  if (c < 0x80) return 1;
  if ((c & 0xe0) == 0xc0) { len = 2; min = 0x80; c &= 0x1f; }
  else if ((c & 0xf0) == 0xe0) { len = 3; min = 0x800; c &= 0x0f; }
  else if ((c & 0xf8) == 0xf0) { len = 4; min = 0x10000; c &= 0x07; }
  else return 0;
  if ((size_t)(e - s) < len) return 0;
  for (unsigned i = 1; i < len; i++) {
    if ((s[i] & 0xc0) != 0x80) return 0;
    c = c << 6 | (s[i] & 0x3f);
  }
  if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) return 0;
  return len;
}

static const char *fzj_string(const char *s, const char *e)
{
  if (s >= e || *s != '"') return NULL;
  s++;
  while (s < e) {
    unsigned char c = (unsigned char)*s;
    if (c == '"') return s + 1;
    if (c < 0x20) return NULL;
    if (c == '\\') {
      if (++s >= e) return NULL;
      if (*s == 'u') {
        if (e - s < 5 || !fzj_hex(s[1]) || !fzj_hex(s[2]) || !fzj_hex(s[3]) || !fzj_hex(s[4])) return NULL;
        s += 5;
      } else if (strchr("\"\\/bfnrt", *s) && *s) {
        s++;
      } else {
        return NULL;
      }
      continue;
    }
    size_t l = fzj_utf8((const unsigned char *)s, (const unsigned char *)e);
    if (!l) return NULL;
    s += l;
  }
  return NULL;
}

static const char *fzj_number(const char *s, const char *e)
{
  if (s < e && *s == '-') s++;
  if (s >= e) return NULL;
  if (*s == '0') s++;
  else if (*s >= '1' && *s <= '9') { while (s < e && *s >= '0' && *s <= '9') s++; }
  else return NULL;
  if (s < e && *s == '.') {
    s++;
    if (s >= e || *s < '0' || *s > '9') return NULL;
    while (s < e && *s >= '0' && *s <= '9') s++;
  }
  if (s < e && (*s == 'e' || *s == 'E')) {
    s++;
    if (s < e && (*s == '+' || *s == '-')) s++;
    if (s >= e || *s < '0' || *s > '9') return NULL;
    while (s < e && *s >= '0' && *s <= '9') s++;
  }
  return s;
}

static const char *fzj_lit(const char *s, const char *e, const char *w)
{
  size_t n = strlen(w);
  return (size_t)(e - s) >= n && !memcmp(s, w, n) ? s + n : NULL;
}

static const char *fzj_value(const char *s, const char *e, int depth)
{
  if (depth > 64) return NULL;
  s = fzj_ws(s, e);
  if (s >= e) return NULL;
  switch (*s) {
  case '{':
    s = fzj_ws(s + 1, e);
    if (s < e && *s == '}') return s + 1;
    for (;;) {
      s = fzj_string(fzj_ws(s, e), e);
      if (!s) return NULL;
      s = fzj_ws(s, e);
      if (s >= e || *s != ':') return NULL;
      s = fzj_value(s + 1, e, depth + 1);
      if (!s) return NULL;
      s = fzj_ws(s, e);
      if (s < e && *s == ',') { s++; continue; }
      return s < e && *s == '}' ? s + 1 : NULL;
    }
  case '[':
    s = fzj_ws(s + 1, e);
    if (s < e && *s == ']') return s + 1;
    for (;;) {
      s = fzj_value(s, e, depth + 1);
      if (!s) return NULL;
      s = fzj_ws(s, e);
      if (s < e && *s == ',') { s++; continue; }
      return s < e && *s == ']' ? s + 1 : NULL;
    }
  case '"': return fzj_string(s, e);
  case 't': return fzj_lit(s, e, "true");
  case 'f': return fzj_lit(s, e, "false");
  case 'n': return fzj_lit(s, e, "null");
  default: return fzj_number(s, e);
  }
}

/* Whether s[0..n) is exactly one JSON text whose value starts with `first` ('{', '"', ...). */
static inline int fz_json_valid(const char *s, size_t n, char first)
{
  const char *e = s + n, *v = fzj_ws(s, e);
  if (v >= e || *v != first) return 0;
  const char *end = fzj_value(v, e, 0);
  return end && fzj_ws(end, e) == e;
}

#endif
