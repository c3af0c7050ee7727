#include "json.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct parser {
  const char *s, *end, *p;
  char *err;
  size_t errcap;
  int failed;
};

static void set_error(struct parser *ps, const char *what)
{
  if (ps->failed) return;
  ps->failed = 1;
  if (ps->p >= ps->end)
    snprintf(ps->err, ps->errcap, "%s: unexpected end of input at byte %zu", what, (size_t)(ps->end - ps->s));
  else
    snprintf(ps->err, ps->errcap, "%s at byte %zu", what, (size_t)(ps->p - ps->s));
}

static void skip_ws(struct parser *ps)
{
  while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r')) ps->p++;
}

static int parse_value(struct parser *ps, struct json *v, int depth);

static int hexval(char c)
{
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static int read_hex4(struct parser *ps, unsigned *out)
{
  if (ps->end - ps->p < 4) { ps->p = ps->end; set_error(ps, "truncated \\u escape"); return -1; }
  unsigned v = 0;
  for (int i = 0; i < 4; i++) {
    int h = hexval(ps->p[i]);
    if (h < 0) { set_error(ps, "bad \\u escape"); return -1; }
    v = v << 4 | (unsigned)h;
  }
  ps->p += 4;
  *out = v;
  return 0;
}

static size_t put_utf8(char *o, unsigned cp)
{
  if (cp < 0x80) { o[0] = (char)cp; return 1; }
  if (cp < 0x800) { o[0] = (char)(0xc0 | cp >> 6); o[1] = (char)(0x80 | (cp & 0x3f)); return 2; }
  if (cp < 0x10000) {
    o[0] = (char)(0xe0 | cp >> 12); o[1] = (char)(0x80 | ((cp >> 6) & 0x3f)); o[2] = (char)(0x80 | (cp & 0x3f));
    return 3;
  }
  o[0] = (char)(0xf0 | cp >> 18); o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
  o[2] = (char)(0x80 | ((cp >> 6) & 0x3f)); o[3] = (char)(0x80 | (cp & 0x3f));
  return 4;
}

/* At the opening quote. The decoded string is never longer than its source. */
static char *parse_string(struct parser *ps, size_t *lenp)
{
  ps->p++;
  const char *start = ps->p;
  size_t cap = 0;
  while (ps->p < ps->end && *ps->p != '"') {
    if (*ps->p == '\\') ps->p++;
    ps->p++;
  }
  if (ps->p >= ps->end) { set_error(ps, "unterminated string"); return NULL; }
  cap = (size_t)(ps->p - start) + 1;
  char *out = malloc(cap);
  if (!out) { set_error(ps, "out of memory"); return NULL; }
  size_t n = 0;
  ps->p = start;
  while (*ps->p != '"') {
    unsigned char c = (unsigned char)*ps->p;
    if (c < 0x20) { set_error(ps, "control character in string"); free(out); return NULL; }
    if (c != '\\') { out[n++] = (char)c; ps->p++; continue; }
    ps->p++;
    char e = *ps->p++;
    switch (e) {
    case '"': out[n++] = '"'; break;
    case '\\': out[n++] = '\\'; break;
    case '/': out[n++] = '/'; break;
    case 'b': out[n++] = '\b'; break;
    case 'f': out[n++] = '\f'; break;
    case 'n': out[n++] = '\n'; break;
    case 'r': out[n++] = '\r'; break;
    case 't': out[n++] = '\t'; break;
    case 'u': {
      unsigned cp, lo;
      if (read_hex4(ps, &cp)) { free(out); return NULL; }
      if (cp >= 0xd800 && cp < 0xdc00) {
        if (ps->end - ps->p >= 6 && ps->p[0] == '\\' && ps->p[1] == 'u') {
          ps->p += 2;
          if (read_hex4(ps, &lo)) { free(out); return NULL; }
          if (lo < 0xdc00 || lo > 0xdfff) { set_error(ps, "bad surrogate pair"); free(out); return NULL; }
          cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        } else {
          set_error(ps, "lone surrogate");
          free(out);
          return NULL;
        }
      } else if (cp >= 0xdc00 && cp < 0xe000) {
        set_error(ps, "lone surrogate");
        free(out);
        return NULL;
      }
      n += put_utf8(out + n, cp);
      break;
    }
    default:
      ps->p--;
      set_error(ps, "bad escape");
      free(out);
      return NULL;
    }
  }
  ps->p++;
  out[n] = 0;
  *lenp = n;
  return out;
}

static int parse_number(struct parser *ps, struct json *v)
{
  const char *st = ps->p;
  if (ps->p < ps->end && *ps->p == '-') ps->p++;
  if (ps->p >= ps->end) { set_error(ps, "bad number"); return -1; }
  if (*ps->p == '0') ps->p++;
  else if (*ps->p >= '1' && *ps->p <= '9') while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') ps->p++;
  else { set_error(ps, "bad number"); return -1; }
  if (ps->p < ps->end && *ps->p == '.') {
    ps->p++;
    if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9') { set_error(ps, "bad number"); return -1; }
    while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') ps->p++;
  }
  if (ps->p < ps->end && (*ps->p == 'e' || *ps->p == 'E')) {
    ps->p++;
    if (ps->p < ps->end && (*ps->p == '+' || *ps->p == '-')) ps->p++;
    if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9') { set_error(ps, "bad number"); return -1; }
    while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') ps->p++;
  }
  size_t n = (size_t)(ps->p - st);
  v->text = malloc(n + 1);
  if (!v->text) { set_error(ps, "out of memory"); return -1; }
  memcpy(v->text, st, n);
  v->text[n] = 0;
  v->len = n;
  v->type = JSON_NUMBER;
  v->number = strtod(v->text, NULL);
  return 0;
}

static int literal(struct parser *ps, const char *word)
{
  size_t n = strlen(word);
  if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n)) { set_error(ps, "unexpected character"); return -1; }
  ps->p += n;
  return 0;
}

static int grow(struct json *v, size_t *cap, int with_keys)
{
  if (v->n < *cap) return 0;
  size_t nc = *cap ? *cap * 2 : 8;
  struct json *ni = realloc(v->items, nc * sizeof *ni);
  if (!ni) return -1;
  v->items = ni;
  if (with_keys) {
    char **nk = realloc(v->keys, nc * sizeof *nk);
    if (!nk) return -1;
    v->keys = nk;
  }
  *cap = nc;
  return 0;
}

static int parse_value(struct parser *ps, struct json *v, int depth)
{
  memset(v, 0, sizeof *v);
  skip_ws(ps);
  if (ps->p >= ps->end) { set_error(ps, "expected a value"); return -1; }
  if (depth > JSON_MAX_DEPTH) { set_error(ps, "nested too deeply"); return -1; }
  char c = *ps->p;
  if (c == '"') {
    v->type = JSON_STRING;
    v->text = parse_string(ps, &v->len);
    return v->text ? 0 : -1;
  }
  if (c == '-' || (c >= '0' && c <= '9')) return parse_number(ps, v);
  if (c == 't') { v->type = JSON_BOOL; v->boolean = 1; return literal(ps, "true"); }
  if (c == 'f') { v->type = JSON_BOOL; return literal(ps, "false"); }
  if (c == 'n') { v->type = JSON_NULL; return literal(ps, "null"); }
  size_t cap = 0;
  if (c == '[') {
    v->type = JSON_ARRAY;
    ps->p++;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == ']') { ps->p++; return 0; }
    for (;;) {
      if (grow(v, &cap, 0)) { set_error(ps, "out of memory"); return -1; }
      if (parse_value(ps, &v->items[v->n], depth + 1)) { v->n++; return -1; }
      v->n++;
      skip_ws(ps);
      if (ps->p >= ps->end) { set_error(ps, "unterminated array"); return -1; }
      if (*ps->p == ',') { ps->p++; continue; }
      if (*ps->p == ']') { ps->p++; return 0; }
      set_error(ps, "expected , or ]");
      return -1;
    }
  }
  if (c == '{') {
    v->type = JSON_OBJECT;
    ps->p++;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == '}') { ps->p++; return 0; }
    for (;;) {
      skip_ws(ps);
      if (ps->p >= ps->end || *ps->p != '"') { set_error(ps, "expected a member name"); return -1; }
      size_t kl;
      char *k = parse_string(ps, &kl);
      if (!k) return -1;
      if (grow(v, &cap, 1)) { free(k); set_error(ps, "out of memory"); return -1; }
      v->keys[v->n] = k;
      memset(&v->items[v->n], 0, sizeof v->items[0]);
      v->n++;
      skip_ws(ps);
      if (ps->p >= ps->end || *ps->p != ':') { set_error(ps, "expected :"); return -1; }
      ps->p++;
      if (parse_value(ps, &v->items[v->n - 1], depth + 1)) return -1;
      skip_ws(ps);
      if (ps->p >= ps->end) { set_error(ps, "unterminated object"); return -1; }
      if (*ps->p == ',') { ps->p++; continue; }
      if (*ps->p == '}') { ps->p++; return 0; }
      set_error(ps, "expected , or }");
      return -1;
    }
  }
  set_error(ps, "unexpected character");
  return -1;
}

static void free_inner(struct json *v)
{
  for (size_t i = 0; i < v->n; i++) {
    free_inner(&v->items[i]);
    if (v->keys) free(v->keys[i]);
  }
  free(v->items);
  free(v->keys);
  free(v->text);
}

void json_free(struct json *v)
{
  if (!v) return;
  free_inner(v);
  free(v);
}

struct json *json_parse(const char *s, size_t len, char *err, size_t errcap)
{
  struct parser ps = { s, s + len, s, err, errcap, 0 };
  struct json *v = calloc(1, sizeof *v);
  if (!v) { snprintf(err, errcap, "out of memory"); return NULL; }
  if (parse_value(&ps, v, 0) == 0) {
    skip_ws(&ps);
    if (ps.p != ps.end) set_error(&ps, "trailing characters");
  }
  if (ps.failed) { json_free(v); return NULL; }
  return v;
}

const struct json *json_get(const struct json *obj, const char *key)
{
  if (!obj || obj->type != JSON_OBJECT) return NULL;
  for (size_t i = 0; i < obj->n; i++)
    if (!strcmp(obj->keys[i], key)) return &obj->items[i];
  return NULL;
}

const char *json_str(const struct json *obj, const char *key)
{
  const struct json *v = json_get(obj, key);
  return v && v->type == JSON_STRING ? v->text : NULL;
}

int json_int(const struct json *obj, const char *key, int64_t *out)
{
  const struct json *v = json_get(obj, key);
  if (!v) return 0;
  if (v->type == JSON_NUMBER) {
    char *end;
    errno = 0;
    long long x = strtoll(v->text, &end, 10);
    if (errno || *end) return 0;
    *out = x;
    return 1;
  }
  return 0;
}

static int add_member(struct json *obj, const char *key, struct json *val)
{
  if (obj->type != JSON_OBJECT) return -1;
  struct json *ni = realloc(obj->items, (obj->n + 1) * sizeof *ni);
  if (!ni) return -1;
  obj->items = ni;
  char **nk = realloc(obj->keys, (obj->n + 1) * sizeof *nk);
  if (!nk) return -1;
  obj->keys = nk;
  obj->keys[obj->n] = strdup(key);
  if (!obj->keys[obj->n]) return -1;
  obj->items[obj->n] = *val;
  obj->n++;
  return 0;
}

int json_add_str(struct json *obj, const char *key, const char *val)
{
  struct json v;
  memset(&v, 0, sizeof v);
  v.type = JSON_STRING;
  v.text = strdup(val);
  if (!v.text) return -1;
  v.len = strlen(val);
  if (add_member(obj, key, &v)) { free(v.text); return -1; }
  return 0;
}

int json_add_int(struct json *obj, const char *key, int64_t val)
{
  char buf[32];
  struct json v;
  memset(&v, 0, sizeof v);
  snprintf(buf, sizeof buf, "%lld", (long long)val);
  v.type = JSON_NUMBER;
  v.number = (double)val;
  v.text = strdup(buf);
  if (!v.text) return -1;
  v.len = strlen(buf);
  if (add_member(obj, key, &v)) { free(v.text); return -1; }
  return 0;
}

void json_write_str(FILE *f, const char *s, size_t len)
{
  putc('"', f);
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\') { putc('\\', f); putc(c, f); }
    else if (c == '\n') fputs("\\n", f);
    else if (c == '\t') fputs("\\t", f);
    else if (c == '\r') fputs("\\r", f);
    else if (c < 0x20 || c == 0x7f) fprintf(f, "\\u%04x", c);
    else putc(c, f);
  }
  putc('"', f);
}

void json_write(FILE *f, const struct json *v)
{
  switch (v->type) {
  case JSON_NULL: fputs("null", f); break;
  case JSON_BOOL: fputs(v->boolean ? "true" : "false", f); break;
  case JSON_NUMBER: fputs(v->text, f); break;
  case JSON_STRING: json_write_str(f, v->text, v->len); break;
  case JSON_ARRAY:
    putc('[', f);
    for (size_t i = 0; i < v->n; i++) {
      if (i) putc(',', f);
      json_write(f, &v->items[i]);
    }
    putc(']', f);
    break;
  case JSON_OBJECT:
    putc('{', f);
    for (size_t i = 0; i < v->n; i++) {
      if (i) putc(',', f);
      json_write_str(f, v->keys[i], strlen(v->keys[i]));
      putc(':', f);
      json_write(f, &v->items[i]);
    }
    putc('}', f);
    break;
  }
}
