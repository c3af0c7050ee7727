#include "logrec.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Longest line kept whole; a longer one is read to its end and judged malformed. */
#define LINE_MAX_ (1u << 20)

void lr_init(struct lreader *r, FILE *f, const char *name)
{
  memset(r, 0, sizeof *r);
  r->f = f;
  r->name = name;
}

void lr_done(struct lreader *r)
{
  free(r->peek);
  free(r->line);
  r->peek = r->line = NULL;
}

/* Reads one line without its newline; NULL at end. Over-long lines come back as "\x01LONG". */
static char *read_line(struct lreader *r, long *lineno)
{
  if (r->peek) {
    char *l = r->peek;
    r->peek = NULL;
    *lineno = r->peek_lineno;
    return l;
  }
  char *buf = NULL;
  size_t cap = 0;
  ssize_t n = getline(&buf, &cap, r->f);
  if (n < 0) { free(buf); return NULL; }
  *lineno = ++r->lineno;
  if (n > 0 && buf[n - 1] == '\n') buf[--n] = 0;
  if (n > 0 && buf[n - 1] == '\r') buf[--n] = 0;
  if ((size_t)n > LINE_MAX_) { strcpy(buf, "\x01LONG"); }
  else if (strlen(buf) != (size_t)n) {
    /* A NUL inside the line: keep what is before it, it is judged by that. */
  }
  return buf;
}

static void unread_line(struct lreader *r, char *line, long lineno)
{
  r->peek = line;
  r->peek_lineno = lineno;
}

void lrec_free(struct lrec *rec)
{
  free(rec->event);
  free(rec->ts);
  for (int i = 0; i < rec->nf; i++) { free(rec->keys[i]); free(rec->vals[i]); }
  free(rec->keys);
  free(rec->vals);
  for (int i = 0; i < rec->nframes; i++) {
    free(rec->frames[i].module);
    free(rec->frames[i].symbol);
    free(rec->frames[i].raw);
  }
  free(rec->frames);
  json_free(rec->obj);
  for (int i = 0; i < rec->nlines; i++) free(rec->lines[i]);
  free(rec->lines);
  memset(rec, 0, sizeof *rec);
}

static int add_field(struct lrec *rec, const char *k, size_t kl, const char *v, size_t vl)
{
  char **nk = realloc(rec->keys, (size_t)(rec->nf + 1) * sizeof *nk);
  if (!nk) return -1;
  rec->keys = nk;
  char **nv = realloc(rec->vals, (size_t)(rec->nf + 1) * sizeof *nv);
  if (!nv) return -1;
  rec->vals = nv;
  rec->keys[rec->nf] = strndup(k, kl);
  rec->vals[rec->nf] = strndup(v, vl);
  if (!rec->keys[rec->nf] || !rec->vals[rec->nf]) return -1;
  rec->nf++;
  return 0;
}

static struct lframe *new_frame(struct lrec *rec)
{
  struct lframe *nf = realloc(rec->frames, (size_t)(rec->nframes + 1) * sizeof *nf);
  if (!nf) return NULL;
  rec->frames = nf;
  struct lframe *f = &rec->frames[rec->nframes++];
  memset(f, 0, sizeof *f);
  return f;
}

static int add_line(struct lrec *rec, char *line)
{
  char **nl = realloc(rec->lines, (size_t)(rec->nlines + 1) * sizeof *nl);
  if (!nl) return -1;
  rec->lines = nl;
  rec->lines[rec->nlines++] = line;
  return 0;
}

const char *lrec_get(const struct lrec *rec, const char *key)
{
  for (int i = 0; i < rec->nf; i++)
    if (!strcmp(rec->keys[i], key)) return rec->vals[i];
  return NULL;
}

int lrec_int(const struct lrec *rec, const char *key, int64_t *out)
{
  const char *v = lrec_get(rec, key);
  if (!v || !*v) return 0;
  char *end;
  errno = 0;
  long long x = strtoll(v, &end, 10);
  if (errno || *end) return 0;
  *out = x;
  return 1;
}

static int parse_hex(const char *s, uint64_t *out)
{
  if (!s || s[0] != '0' || (s[1] != 'x' && s[1] != 'X') || !s[2]) return -1;
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s + 2, &end, 16);
  if (errno || *end) return -1;
  *out = v;
  return 0;
}

/* ---------- JSON ---------- */

static enum lr_kind json_record(struct lreader *r, char *line, struct lrec *rec)
{
  struct json *o = json_parse(line, strlen(line), r->err, sizeof r->err);
  if (!o) return LR_BAD;
  if (o->type != JSON_OBJECT) { snprintf(r->err, sizeof r->err, "not a JSON object"); json_free(o); return LR_BAD; }
  const char *ev = json_str(o, "event");
  int64_t pid = 0;
  if (!ev || !*ev) { snprintf(r->err, sizeof r->err, "no \"event\" member"); json_free(o); return LR_BAD; }
  json_int(o, "pid", &pid);
  rec->json = 1;
  rec->obj = o;
  rec->pid = (long)pid;
  rec->event = strdup(ev);
  const char *ts = json_str(o, "ts");
  rec->ts = strdup(ts ? ts : "");
  for (size_t i = 0; i < o->n; i++) {
    const struct json *v = &o->items[i];
    const char *k = o->keys[i];
    if (v->type == JSON_STRING || v->type == JSON_NUMBER)
      add_field(rec, k, strlen(k), v->text, strlen(v->text));
    else if (v->type == JSON_BOOL)
      add_field(rec, k, strlen(k), v->boolean ? "true" : "false", v->boolean ? 4 : 5);
    if (!strcmp(k, "truncated") && v->type == JSON_BOOL && v->boolean) rec->truncated = 1;
  }
  const struct json *st = json_get(o, "stack");
  if (st && st->type == JSON_ARRAY) {
    for (size_t i = 0; i < st->n; i++) {
      const struct json *fr = &st->items[i];
      if (fr->type != JSON_OBJECT) continue;
      struct lframe *f = new_frame(rec);
      if (!f) break;
      parse_hex(json_str(fr, "pc"), &f->pc);
      const char *m = json_str(fr, "module"), *s = json_str(fr, "symbol");
      if (m) f->module = strdup(m);
      if (s) f->symbol = strdup(s);
      f->has_offset = parse_hex(json_str(fr, "offset"), &f->offset) == 0;
    }
  }
  if (!rec->event || !rec->ts) { snprintf(r->err, sizeof r->err, "out of memory"); return LR_BAD; }
  r->json_seen = 1;
  return LR_RECORD;
}

/* ---------- text ---------- */

/* "==PID== " at the start of line: returns the pid and where the rest starts. */
static const char *text_prefix(const char *line, long *pid)
{
  if (line[0] != '=' || line[1] != '=') return NULL;
  const char *p = line + 2;
  long v = 0;
  int nd = 0;
  while (*p >= '0' && *p <= '9' && nd < 10) { v = v * 10 + (*p - '0'); p++; nd++; }
  if (!nd || p[0] != '=' || p[1] != '=') return NULL;
  *pid = v;
  return p + 2;
}

/* Header fields after the event: " ts=... k=v k=\"quoted\"". */
static int text_fields(struct lreader *r, const char *p, struct lrec *rec)
{
  while (*p) {
    if (*p != ' ') { snprintf(r->err, sizeof r->err, "unexpected '%c' in header", *p); return -1; }
    while (*p == ' ') p++;
    if (!*p) break;
    const char *k = p;
    while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_') p++;
    if (p == k || *p != '=') { snprintf(r->err, sizeof r->err, "expected key=value in header"); return -1; }
    size_t kl = (size_t)(p - k);
    p++;
    if (*p == '"') {
      const char *q = p + 1;
      while (*q && *q != '"') { if (*q == '\\' && q[1]) q++; q++; }
      if (*q != '"') { snprintf(r->err, sizeof r->err, "unterminated quoted value"); return -1; }
      char e[80];
      struct json *v = json_parse(p, (size_t)(q + 1 - p), e, sizeof e);
      if (!v) { snprintf(r->err, sizeof r->err, "bad quoted value: %s", e); return -1; }
      add_field(rec, k, kl, v->text, v->len);
      json_free(v);
      p = q + 1;
    } else {
      const char *v = p;
      while (*p && *p != ' ') p++;
      add_field(rec, k, kl, v, (size_t)(p - v));
    }
  }
  return 0;
}

/* "    #N 0xPC in SYM (MODULE+0xOFF)" (after the prefix). */
static int text_frame(const char *p, struct lframe *f)
{
  while (*p == ' ') p++;
  if (*p != '#') return -1;
  p++;
  if (*p < '0' || *p > '9') return -1;
  while (*p >= '0' && *p <= '9') p++;
  if (*p != ' ') return -1;
  p++;
  char *end;
  if (p[0] != '0' || p[1] != 'x') return -1;
  errno = 0;
  f->pc = strtoull(p + 2, &end, 16);
  if (errno || end == p + 2 || strncmp(end, " in ", 4)) return -1;
  p = end + 4;
  /* The symbol is one token (mangled names hold no spaces); the module may hold spaces. */
  const char *sym = p;
  while (*p && *p != ' ') p++;
  size_t sl = (size_t)(p - sym);
  if (!sl || strncmp(p, " (", 2)) return -1;
  const char *mod = p + 2;
  size_t ml = strlen(mod);
  if (ml < 2 || mod[ml - 1] != ')') return -1;
  const char *plus = NULL;
  for (const char *q = mod; q < mod + ml - 1; q++)
    if (q[0] == '+' && q[1] == '0' && q[2] == 'x') plus = q;
  if (!plus) return -1;
  char off[40];
  size_t ol = (size_t)(mod + ml - 1 - (plus + 1));
  if (ol >= sizeof off) return -1;
  memcpy(off, plus + 1, ol);
  off[ol] = 0;
  if (parse_hex(off, &f->offset)) return -1;
  f->has_offset = 1;
  f->module = strndup(mod, (size_t)(plus - mod));
  /* "sym+0xOFF" -> "sym"; "??" -> unknown */
  if (!(sl == 2 && sym[0] == '?' && sym[1] == '?')) {
    const char *sp = NULL;
    for (const char *q = sym; q < sym + sl; q++)
      if (q[0] == '+' && q[1] == '0' && q[2] == 'x') sp = q;
    f->symbol = strndup(sym, sp ? (size_t)(sp - sym) : sl);
  }
  return 0;
}

static enum lr_kind text_record(struct lreader *r, char *line, long pid, const char *rest, struct lrec *rec)
{
  /* rest: "connguard EVENT ts=..." */
  const char *p = rest + 10;
  const char *ev = p;
  while (*p && *p != ' ') p++;
  if (p == ev) { snprintf(r->err, sizeof r->err, "no event name"); return LR_BAD; }
  rec->pid = pid;
  rec->event = strndup(ev, (size_t)(p - ev));
  if (!rec->event) return LR_BAD;
  if (text_fields(r, p, rec)) { lrec_free(rec); return LR_BAD; }
  const char *ts = lrec_get(rec, "ts");
  if (!ts || !*ts) { snprintf(r->err, sizeof r->err, "no ts= field"); lrec_free(rec); return LR_BAD; }
  rec->ts = strdup(ts);
  if (lrec_get(rec, "truncated")) rec->truncated = 1;
  add_line(rec, line);
  /* Continuation lines: same pid prefix and indented. */
  for (;;) {
    long ln;
    char *l = read_line(r, &ln);
    if (!l) break;
    long lp;
    const char *q = text_prefix(l, &lp);
    if (!strcmp(l, "(record truncated)")) {
      rec->truncated = 1;
      add_line(rec, l);
      break;
    }
    if (!q || lp != pid || q[0] != ' ' || q[1] != ' ') { unread_line(r, l, ln); break; }
    const char *b = q;
    while (*b == ' ') b++;
    if (*b == '#') {
      struct lframe *f = new_frame(rec);
      if (f && text_frame(q, f) != 0) {
        /* A frame we cannot read is kept as a line; it is not worth rejecting the record. */
        free(f->module);
        free(f->symbol);
        memset(f, 0, sizeof *f);
        rec->nframes--;
      } else if (f) {
        f->raw = strdup(l);
      }
    } else {
      const char *colon = strstr(b, ": ");
      if (colon) add_field(rec, b, (size_t)(colon - b), colon + 2, strlen(colon + 2));
    }
    add_line(rec, l);
  }
  r->text_seen = 1;
  return LR_RECORD;
}

enum lr_kind lr_next(struct lreader *r, struct lrec *rec)
{
  memset(rec, 0, sizeof *rec);
  free(r->line);
  r->line = NULL;
  r->err[0] = 0;
  long ln;
  char *line = read_line(r, &ln);
  if (!line) return LR_EOF;
  r->item_line = ln;
  if (!strcmp(line, "\x01LONG")) {
    snprintf(r->err, sizeof r->err, "line longer than %u bytes", LINE_MAX_);
    r->line = line;
    return LR_BAD;
  }
  const char *s = line;
  while (*s == ' ' || *s == '\t') s++;
  if (*s == '{') {
    enum lr_kind k = json_record(r, line, rec);
    if (k == LR_RECORD) { free(line); return k; }
    lrec_free(rec);
    r->line = line;
    return k;
  }
  long pid;
  const char *rest = text_prefix(line, &pid);
  if (rest && !strncmp(rest, " connguard ", 11)) {
    enum lr_kind k = text_record(r, line, pid, rest + 1, rec);
    if (k == LR_RECORD) return k;
    r->line = line;
    return k;
  }
  r->line = line;
  return LR_OTHER;
}
