/* Shared by the unit tests: a strict JSON checker (so escaping tests parse their output back
 * instead of trusting it) and a main() that runs one suite. */
#ifndef CG_TEST_H
#define CG_TEST_H
#include <check.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* ---- strict JSON (RFC 8259) validator; strings must also be valid UTF-8 ---- */

struct cgj { const unsigned char *p, *end; int depth; };

static void cgj_ws(struct cgj *j)
{
  while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')) j->p++;
}

static int cgj_hex(unsigned char c)
{
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Length of one valid UTF-8 sequence (no overlongs, no surrogates), 0 if invalid. */
static size_t cgj_utf8(const unsigned char *s, const unsigned char *end)
{
  unsigned c = s[0], min;
  size_t len;
  if (c < 0x80) return 1;
  if ((c & 0xe0) == 0xc0) { len = 2; min = 0x80; c &= 0x1f; }
  else if ((c & 0xf0) == 0xe0) { len = 3; min = 0x800; c &= 0x0f; }
  else if ((c & 0xf8) == 0xf0) { len = 4; min = 0x10000; c &= 0x07; }
  else return 0;
  if ((size_t)(end - s) < len) return 0;
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xc0) != 0x80) return 0;
    c = (c << 6) | (s[i] & 0x3f);
  }
  if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) return 0;
  return len;
}

static int cgj_string(struct cgj *j)
{
  if (j->p >= j->end || *j->p != '"') return 0;
  j->p++;
  while (j->p < j->end) {
    unsigned char c = *j->p;
    if (c == '"') { j->p++; return 1; }
    if (c < 0x20) return 0;
    if (c == '\\') {
      if (j->end - j->p < 2) return 0;
      unsigned char e = j->p[1];
      if (e == 'u') {
        if (j->end - j->p < 6) return 0;
        for (int i = 2; i < 6; i++) if (!cgj_hex(j->p[i])) return 0;
        j->p += 6;
      } else if (strchr("\"\\/bfnrt", e) && e) {
        j->p += 2;
      } else {
        return 0;
      }
      continue;
    }
    size_t l = cgj_utf8(j->p, j->end);
    if (!l) return 0;
    j->p += l;
  }
  return 0;
}

static int cgj_value(struct cgj *j);

static int cgj_number(struct cgj *j)
{
  const unsigned char *s = j->p;
  if (j->p < j->end && *j->p == '-') j->p++;
  if (j->p >= j->end) return 0;
  if (*j->p == '0') j->p++;
  else if (*j->p >= '1' && *j->p <= '9') while (j->p < j->end && *j->p >= '0' && *j->p <= '9') j->p++;
  else return 0;
  if (j->p < j->end && *j->p == '.') {
    j->p++;
    if (j->p >= j->end || *j->p < '0' || *j->p > '9') return 0;
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9') j->p++;
  }
  if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
    j->p++;
    if (j->p < j->end && (*j->p == '+' || *j->p == '-')) j->p++;
    if (j->p >= j->end || *j->p < '0' || *j->p > '9') return 0;
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9') j->p++;
  }
  return j->p > s;
}

static int cgj_lit(struct cgj *j, const char *w)
{
  size_t n = strlen(w);
  if ((size_t)(j->end - j->p) < n || memcmp(j->p, w, n)) return 0;
  j->p += n;
  return 1;
}

static int cgj_value(struct cgj *j)
{
  cgj_ws(j);
  if (j->p >= j->end || ++j->depth > 64) return 0;
  int ok;
  unsigned char c = *j->p;
  if (c == '{' || c == '[') {
    unsigned char close = c == '{' ? '}' : ']';
    j->p++;
    cgj_ws(j);
    if (j->p < j->end && *j->p == close) { j->p++; ok = 1; goto out; }
    for (;;) {
      if (c == '{') {
        cgj_ws(j);
        if (!cgj_string(j)) return 0;
        cgj_ws(j);
        if (j->p >= j->end || *j->p != ':') return 0;
        j->p++;
      }
      if (!cgj_value(j)) return 0;
      cgj_ws(j);
      if (j->p >= j->end) return 0;
      if (*j->p == ',') { j->p++; continue; }
      if (*j->p == close) { j->p++; ok = 1; goto out; }
      return 0;
    }
  }
  if (c == '"') ok = cgj_string(j);
  else if (c == 't') ok = cgj_lit(j, "true");
  else if (c == 'f') ok = cgj_lit(j, "false");
  else if (c == 'n') ok = cgj_lit(j, "null");
  else ok = cgj_number(j);
out:
  j->depth--;
  return ok;
}

/* 1 when s[0..n) is exactly one JSON value (surrounding whitespace allowed). */
static inline int cg_json_valid(const char *s, size_t n)
{
  struct cgj j = { (const unsigned char *)s, (const unsigned char *)s + n, 0 };
  if (!cgj_value(&j)) return 0;
  cgj_ws(&j);
  return j.p == j.end;
}

/* One suite per binary; CK_FORK is honoured (make unit sets it). */
#define CG_TEST_MAIN(suite_fn)                                   \
  int main(void)                                                 \
  {                                                              \
    SRunner *sr = srunner_create(suite_fn());                    \
    srunner_run_all(sr, CK_NORMAL);                              \
    int failed = srunner_ntests_failed(sr);                      \
    srunner_free(sr);                                            \
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;                 \
  }

#endif
