/* connguard report FILE...: what a set of connguard logs says, in one screen. Reads JSON and
 * text records (mixed with program output); malformed lines are counted and shown, never fatal.
 * Events it knows: connect_failed, connect_recovered; anything with "leak" in its name is
 * grouped by creation stack; tls_failed by cause (docs/tls.md), tls_recovered counted. */
#include "cg_tool.h"
#include "logrec.h"
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---------- a string-keyed table ---------- */

struct entry {
  char *key;
  int64_t a, b, c, d, e;      /* meaning depends on the table */
  char *extra;                /* e.g. example peer, stack text */
};

struct table { size_t n, cap; struct entry *v; size_t *idx; size_t icap; };

static uint64_t hash_str(const char *s)
{
  uint64_t h = 1469598103934665603ULL;
  for (; *s; s++) { h ^= (unsigned char)*s; h *= 1099511628211ULL; }
  return h;
}

static struct entry *tget(struct table *t, const char *key)
{
  if (t->icap) {
    size_t m = t->icap - 1, i = (size_t)hash_str(key) & m;
    for (; t->idx[i]; i = (i + 1) & m)
      if (!strcmp(t->v[t->idx[i] - 1].key, key)) return &t->v[t->idx[i] - 1];
  }
  if (t->n * 2 >= t->icap) {
    size_t nc = t->icap ? t->icap * 2 : 64;
    size_t *ni = calloc(nc, sizeof *ni);
    if (!ni) return NULL;
    for (size_t k = 0; k < t->n; k++) {
      size_t i = (size_t)hash_str(t->v[k].key) & (nc - 1);
      while (ni[i]) i = (i + 1) & (nc - 1);
      ni[i] = k + 1;
    }
    free(t->idx);
    t->idx = ni;
    t->icap = nc;
  }
  if (t->n == t->cap) {
    size_t nc = t->cap ? t->cap * 2 : 32;
    struct entry *nv = realloc(t->v, nc * sizeof *nv);
    if (!nv) return NULL;
    t->v = nv;
    t->cap = nc;
  }
  struct entry *e = &t->v[t->n];
  memset(e, 0, sizeof *e);
  e->key = strdup(key);
  if (!e->key) return NULL;
  size_t i = (size_t)hash_str(key) & (t->icap - 1);
  while (t->idx[i]) i = (i + 1) & (t->icap - 1);
  t->idx[i] = ++t->n;
  return e;
}

static struct entry *tfind(const struct table *t, const char *key)
{
  if (!t->icap) return NULL;
  size_t m = t->icap - 1, i = (size_t)hash_str(key) & m;
  for (; t->idx[i]; i = (i + 1) & m)
    if (!strcmp(t->v[t->idx[i] - 1].key, key)) return &t->v[t->idx[i] - 1];
  return NULL;
}

static void tfree(struct table *t)
{
  for (size_t i = 0; i < t->n; i++) { free(t->v[i].key); free(t->v[i].extra); }
  free(t->v);
  free(t->idx);
  memset(t, 0, sizeof *t);
}

static int by_a_desc(const void *x, const void *y)
{
  const struct entry *a = x, *b = y;
  if (a->a != b->a) return a->a < b->a ? 1 : -1;
  return strcmp(a->key, b->key);
}

/* ---------- the summary ---------- */

struct report {
  long files, records, malformed, other, unreadable;
  char first_bad[512];
  char ts_min[40], ts_max[40];
  struct table events;        /* a = count */
  struct table pids;
  struct table fail;          /* "dst\terrno": a = failed attempts, b = retried, c = gave up */
  struct table reasons;       /* give-up reason: a = count */
  struct table episodes;      /* "pid fd dst": a = 1 open (retried), 0 closed */
  struct table leaks;         /* "event\tstack": a = sockets, b = records, extra = an example */
  struct table tls;           /* cause: a = failed handshakes, b = retried, c = gave up, extra = an example */
  struct table pysites;       /* Python call site of the program's own code (docs/python.md):
                                 a = failed connect attempts, b = connect give-ups, c = TLS failures */
  long tls_recovered;
  long retried_connects, recovered, gave_up_after_retry, recovered_unmatched;
  int64_t backoff_ms, recover_ms_sum, recover_ms_max, attempts_max;
  long leak_records, leak_sockets;
};

static const char *field_or(const struct lrec *r, const char *k, const char *dflt)
{
  const char *v = lrec_get(r, k);
  return v && *v ? v : dflt;
}

/* Python frames of a record, innermost first, as "file\tline\tfunction" (JSON "pystack", or
 * the text format's `File "f", line N, in fn` lines). Returns how many (at most max). */
static int py_frames(const struct lrec *r, char out[][600], int max)
{
  int n = 0;
  if (r->json) {
    const struct json *ps = r->obj ? json_get(r->obj, "pystack") : NULL;
    if (!ps || ps->type != JSON_ARRAY) return 0;
    for (size_t i = 0; i < ps->n && n < max; i++) {
      const char *file = json_str(&ps->items[i], "file"), *fn = json_str(&ps->items[i], "function");
      int64_t line = 0;
      json_int(&ps->items[i], "line", &line);
      if (!file || !fn) continue;
      snprintf(out[n++], 600, "%s\t%lld\t%s", file, (long long)line, fn);
    }
    return n;
  }
  for (int i = 0; i < r->nlines && n < max; i++) {
    const char *l = strstr(r->lines[i], "==     File \"");
    if (!l) continue;
    l += strlen("==     File \"");
    const char *q = strstr(l, "\", line ");
    if (!q) continue;
    char *end;
    long line = strtol(q + 8, &end, 10);
    if (strncmp(end, ", in ", 5)) continue;
    snprintf(out[n++], 600, "%.*s\t%ld\t%s", (int)(q - l), l, line, end + 5);
  }
  return n;
}

/* Whether a Python file is the program's own: not the standard library, not an installed
 * package, not the interpreter's frozen modules. */
static int py_own_code(const char *file)
{
  return !strstr(file, "/lib/python") && !strstr(file, "site-packages/") && !strstr(file, "dist-packages/") &&
         strncmp(file, "<frozen", 7) != 0;
}

/* "file:line in function" of the innermost frame of the program's own code (else the
 * outermost frame); 0 when the record has no Python frames. */
static int py_site(const struct lrec *r, char *out, size_t cap)
{
  static char fr[32][600];
  int n = py_frames(r, fr, 32);
  if (!n) return 0;
  int k = n - 1;
  for (int i = 0; i < n; i++) {
    char file[600];
    snprintf(file, sizeof file, "%.*s", (int)(strchr(fr[i], '\t') - fr[i]), fr[i]);
    if (py_own_code(file)) { k = i; break; }
  }
  char *t1 = strchr(fr[k], '\t'), *t2 = strchr(t1 + 1, '\t');
  snprintf(out, cap, "%.*s:%.*s in %s", (int)(t1 - fr[k]), fr[k], (int)(t2 - t1 - 1), t1 + 1, t2 + 1);
  return 1;
}

static void count_pysite(struct report *R, const struct lrec *r, int which)
{
  char site[700];
  if (!py_site(r, site, sizeof site)) return;
  struct entry *e = tget(&R->pysites, site);
  if (!e) return;
  if (which == 0) e->a++;
  else if (which == 1) e->b++;
  else e->c++;
}

static void episode_key(const struct lrec *r, char *out, size_t cap)
{
  snprintf(out, cap, "%ld %s %s", r->pid, field_or(r, "fd", "?"), field_or(r, "dst", "?"));
}

static void on_connect_failed(struct report *R, const struct lrec *r)
{
  char key[512];
  const char *dst = field_or(r, "dst", "(unknown)"), *err = field_or(r, "errno", "?");
  const char *action = field_or(r, "action", "");
  int64_t attempt = 1, delay = 0;
  lrec_int(r, "attempt", &attempt);
  snprintf(key, sizeof key, "%s\t%s", dst, err);
  struct entry *e = tget(&R->fail, key);
  if (!e) return;
  e->a++;
  count_pysite(R, r, 0);
  if (strcmp(action, "retry")) count_pysite(R, r, 1);
  episode_key(r, key, sizeof key);
  struct entry *ep = tfind(&R->episodes, key);
  if (!strcmp(action, "retry")) {
    e->b++;
    if (lrec_int(r, "delay_ms", &delay) && delay > 0) R->backoff_ms += delay;
    if (!ep || !ep->a) {
      if (!ep) ep = tget(&R->episodes, key);
      if (ep) { ep->a = 1; R->retried_connects++; }
    }
  } else {
    e->c++;
    struct entry *re = tget(&R->reasons, field_or(r, "reason", "(none given)"));
    if (re) re->a++;
    if (ep && ep->a) { ep->a = 0; R->gave_up_after_retry++; }
    else if (attempt > 1) { R->retried_connects++; R->gave_up_after_retry++; }   /* its retries were before the log began */
  }
  if (attempt > R->attempts_max) R->attempts_max = attempt;
}

static void on_recovered(struct report *R, const struct lrec *r)
{
  char key[512];
  int64_t el = 0, att = 0;
  R->recovered++;
  if (lrec_int(r, "elapsed_ms", &el)) {
    R->recover_ms_sum += el;
    if (el > R->recover_ms_max) R->recover_ms_max = el;
  }
  if (lrec_int(r, "attempts", &att) && att > R->attempts_max) R->attempts_max = att;
  episode_key(r, key, sizeof key);
  struct entry *ep = tfind(&R->episodes, key);
  if (ep && ep->a) ep->a = 0;
  else { R->retried_connects++; R->recovered_unmatched++; }
}

/* A leak's creation site: its first frames, by symbol when known, else module+offset. */
static void stack_signature(const struct lrec *r, char *out, size_t cap, int frames)
{
  size_t n = 0;
  out[0] = 0;
  for (int i = 0; i < r->nframes && i < frames; i++) {
    const struct lframe *f = &r->frames[i];
    const char *mod = f->module ? strrchr(f->module, '/') : NULL;
    mod = mod ? mod + 1 : f->module ? f->module : "?";
    int w;
    if (f->symbol) w = snprintf(out + n, cap - n, "%s%s (%s+0x%llx)", i ? " <- " : "", f->symbol, mod, (unsigned long long)f->offset);
    else w = snprintf(out + n, cap - n, "%s%s+0x%llx", i ? " <- " : "", mod, (unsigned long long)f->offset);
    if (w < 0 || (size_t)w >= cap - n) break;
    n += (size_t)w;
  }
  if (!out[0]) snprintf(out, cap, "(no stack recorded)");
}

/* A "leak" record stands for a group of sockets of one process with one creation stack
 * ("sockets": N); groups from several processes or runs with the same stack are merged. */
static void on_leak(struct report *R, const struct lrec *r)
{
  char sig[1024];
  int64_t n = 1;
  R->leak_records++;
  if (!lrec_int(r, "sockets", &n) || n < 1) n = 1;
  R->leak_sockets += n;
  /* Every socket a Python program makes has the same native frames: its Python line tells
   * the groups apart. */
  char site[700];
  if (py_site(r, site, sizeof site)) snprintf(sig, sizeof sig, "%s (Python)", site);
  else stack_signature(r, sig, sizeof sig, 4);
  char key[1100];
  snprintf(key, sizeof key, "%s\t%s", r->event, sig);
  struct entry *e = tget(&R->leaks, key);
  if (!e) return;
  e->a += n;
  e->b++;
  if (!e->extra) {
    const char *peer = lrec_get(r, "peer");
    if (!peer) peer = lrec_get(r, "dst");
    const char *state = lrec_get(r, "state");
    char ex[300];
    snprintf(ex, sizeof ex, "%s%s%s%s", peer ? "peer " : "", peer ? peer : "", state ? (peer ? ", state " : "state ") : "", state ? state : "");
    e->extra = strdup(ex);
  }
}

/* tls_failed (docs/tls.md): grouped by cause; tls_recovered counted; other tls_* events by name. */
static void on_tls(struct report *R, const struct lrec *r)
{
  if (!strcmp(r->event, "tls_recovered")) { R->tls_recovered++; return; }
  static const char *const kind_keys[] = { "cause", "kind", "alert", "error" };
  const char *kind = NULL;
  if (!strcmp(r->event, "tls_failed"))
    for (size_t i = 0; i < sizeof kind_keys / sizeof kind_keys[0] && !(kind && *kind); i++) kind = lrec_get(r, kind_keys[i]);
  char key[512];
  snprintf(key, sizeof key, "%s", kind && *kind ? kind : r->event);
  struct entry *e = tget(&R->tls, key);
  if (!e) return;
  e->a++;
  if (!strcmp(r->event, "tls_failed")) count_pysite(R, r, 2);
  const char *action = field_or(r, "action", "");
  if (!strcmp(action, "retry")) e->b++;
  else if (!strcmp(action, "give_up")) e->c++;
  if (!e->extra) {
    const char *d = lrec_get(r, "dst"), *sni = lrec_get(r, "sni"), *ve = lrec_get(r, "verify_error");
    char ex[400];
    snprintf(ex, sizeof ex, "%s%s%s%s%s%s", d ? d : "", sni && *sni ? " sni=" : "", sni && *sni ? sni : "",
             ve && *ve && strcmp(ve, "ok") ? " (" : "", ve && *ve && strcmp(ve, "ok") ? ve : "",
             ve && *ve && strcmp(ve, "ok") ? ")" : "");
    e->extra = strdup(ex);
  }
}

static void on_record(struct report *R, const struct lrec *r)
{
  R->records++;
  struct entry *e = tget(&R->events, r->event);
  if (e) e->a++;
  char pid[24];
  snprintf(pid, sizeof pid, "%ld", r->pid);
  tget(&R->pids, pid);
  if (r->ts && *r->ts) {
    if (!R->ts_min[0] || strcmp(r->ts, R->ts_min) < 0) snprintf(R->ts_min, sizeof R->ts_min, "%s", r->ts);
    if (strcmp(r->ts, R->ts_max) > 0) snprintf(R->ts_max, sizeof R->ts_max, "%s", r->ts);
  }
  if (!strcmp(r->event, "connect_failed")) on_connect_failed(R, r);
  else if (!strcmp(r->event, "connect_recovered")) on_recovered(R, r);
  else if (strstr(r->event, "leak") && !strstr(r->event, "summary")) on_leak(R, r);
  else if (!strncmp(r->event, "tls", 3)) on_tls(R, r);
}

static int read_file(struct report *R, FILE *f, const char *name)
{
  struct lreader rd;
  struct lrec rec;
  long before = R->records, other = 0;
  lr_init(&rd, f, name);
  for (;;) {
    enum lr_kind k = lr_next(&rd, &rec);
    if (k == LR_EOF) break;
    if (k == LR_RECORD) { on_record(R, &rec); lrec_free(&rec); continue; }
    if (k == LR_BAD) {
      if (!R->malformed++)
        snprintf(R->first_bad, sizeof R->first_bad, "%s line %ld: %s", name, rd.item_line, rd.err);
    } else if (rd.line[strspn(rd.line, " \t")]) {
      other++;
    }
  }
  R->other += other;
  int err = ferror(f);
  lr_done(&rd);
  if (err) { errorf("report: error reading %s", name); R->unreadable++; return -1; }
  if (R->records == before && other) {
    errorf("report: %s: no connguard records in %ld line%s of other text (not a connguard log?)",
           name, other, other == 1 ? "" : "s");
    R->unreadable++;
    return -1;
  }
  return 0;
}

static void pct(char *out, size_t cap, long num, long den)
{
  if (!den) snprintf(out, cap, "-");
  else snprintf(out, cap, "%.1f%%", 100.0 * (double)num / (double)den);
}

static void print_report(struct report *R)
{
  char d[32], d2[32], p[16];
  printf("connguard report: %ld record%s from %ld file%s, %zu process%s",
         R->records, R->records == 1 ? "" : "s", R->files, R->files == 1 ? "" : "s",
         R->pids.n, R->pids.n == 1 ? "" : "es");
  if (R->ts_min[0]) printf(", %s .. %s", R->ts_min, R->ts_max);
  printf("\n");
  if (R->malformed)
    printf("  %ld malformed line%s skipped (first: %s)\n", R->malformed, R->malformed == 1 ? "" : "s", R->first_bad);
  if (R->other) printf("  %ld other line%s ignored (program output)\n", R->other, R->other == 1 ? "" : "s");

  if (R->events.n) {
    qsort(R->events.v, R->events.n, sizeof R->events.v[0], by_a_desc);
    printf("\nEvents:\n");
    for (size_t i = 0; i < R->events.n; i++) printf("  %-28s %lld\n", R->events.v[i].key, (long long)R->events.v[i].a);
  }

  if (R->fail.n) {
    qsort(R->fail.v, R->fail.n, sizeof R->fail.v[0], by_a_desc);
    printf("\nConnect failures by destination and errno:\n");
    printf("  %-32s %-14s %8s %8s %8s\n", "DESTINATION", "ERRNO", "FAILED", "RETRIED", "GAVE UP");
    for (size_t i = 0; i < R->fail.n; i++) {
      const struct entry *e = &R->fail.v[i];
      const char *tab = strchr(e->key, '\t');
      printf("  %-32.*s %-14s %8lld %8lld %8lld\n", (int)(tab - e->key), e->key, tab + 1,
             (long long)e->a, (long long)e->b, (long long)e->c);
    }
  }
  if (R->pysites.n) {
    qsort(R->pysites.v, R->pysites.n, sizeof R->pysites.v[0], by_a_desc);
    printf("\nFailures by Python call site (innermost frame of the program's own code):\n");
    printf("  %-60s %8s %8s %8s\n", "CALL SITE", "FAILED", "GAVE UP", "TLS");
    for (size_t i = 0; i < R->pysites.n; i++) {
      const struct entry *e = &R->pysites.v[i];
      printf("  %-60s %8lld %8lld %8lld\n", e->key, (long long)e->a, (long long)e->b, (long long)e->c);
    }
  }
  if (R->retried_connects || R->recovered) {
    long unfinished = 0;
    for (size_t i = 0; i < R->episodes.n; i++) unfinished += R->episodes.v[i].a != 0;
    long decided = R->recovered + R->gave_up_after_retry;
    pct(p, sizeof p, R->recovered, decided);
    printf("\nRetries: %ld connect%s needed retries: %ld recovered, %ld gave up after retrying",
           R->retried_connects, R->retried_connects == 1 ? "" : "s", R->recovered, R->gave_up_after_retry);
    if (unfinished) printf(", %ld unfinished at the end of the log", unfinished);
    printf("\n  retry success rate   %s (recovered / connects that needed retries and finished)\n", p);
    fmt_duration(d, sizeof d, R->backoff_ms * 1000000);
    printf("  time lost in backoff %s (sum of delays before retries)\n", d);
    if (R->recovered) {
      fmt_duration(d, sizeof d, R->recover_ms_sum / R->recovered * 1000000);
      fmt_duration(d2, sizeof d2, R->recover_ms_max * 1000000);
      printf("  time to recover      %s average, %s longest\n", d, d2);
    }
    if (R->attempts_max) printf("  most attempts        %lld\n", (long long)R->attempts_max);
  }
  if (R->reasons.n) {
    long total = 0;
    for (size_t i = 0; i < R->reasons.n; i++) total += R->reasons.v[i].a;
    qsort(R->reasons.v, R->reasons.n, sizeof R->reasons.v[0], by_a_desc);
    printf("\nGive-ups: %ld\n", total);
    for (size_t i = 0; i < R->reasons.n; i++) printf("  %-28s %lld\n", R->reasons.v[i].key, (long long)R->reasons.v[i].a);
  }
  if (R->leaks.n) {
    qsort(R->leaks.v, R->leaks.n, sizeof R->leaks.v[0], by_a_desc);
    printf("\nLeaks: %ld socket%s in %zu group%s by creation stack (%ld record%s)\n", R->leak_sockets,
           R->leak_sockets == 1 ? "" : "s", R->leaks.n, R->leaks.n == 1 ? "" : "s", R->leak_records,
           R->leak_records == 1 ? "" : "s");
    for (size_t i = 0; i < R->leaks.n; i++) {
      const struct entry *e = &R->leaks.v[i];
      const char *tab = strchr(e->key, '\t');
      printf("  %lld socket%s (%.*s, %lld record%s)", (long long)e->a, e->a == 1 ? "" : "s", (int)(tab - e->key), e->key,
             (long long)e->b, e->b == 1 ? "" : "s");
      if (e->extra && *e->extra) printf(" (e.g. %s)", e->extra);
      printf("\n    created at: %s\n", tab + 1);
    }
  }
  if (R->tls.n || R->tls_recovered) {
    qsort(R->tls.v, R->tls.n, sizeof R->tls.v[0], by_a_desc);
    printf("\nTLS problems by kind:\n");
    if (R->tls.n) printf("  %-20s %8s %8s %8s  %s\n", "CAUSE", "FAILED", "RETRIED", "GAVE UP", "EXAMPLE");
    for (size_t i = 0; i < R->tls.n; i++) {
      const struct entry *e = &R->tls.v[i];
      printf("  %-20s %8lld %8lld %8lld  %s\n", e->key, (long long)e->a, (long long)e->b, (long long)e->c,
             e->extra ? e->extra : "");
    }
    if (R->tls_recovered) printf("  handshakes recovered by retrying: %ld\n", R->tls_recovered);
  }
  if (!R->records) printf("\nNo connguard records: nothing failed, or the log is elsewhere (CONNGUARD_LOG).\n");
}

int cmd_report(int argc, char **argv)
{
  static const struct option lo[] = { { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 } };
  int c;
  optind = 1;
  opterr = 0;
  while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
    if (c == 'h') { puts("usage: connguard report FILE...   ('-' reads stdin)"); return EX_OK_; }
    return usage_error("report", "unknown option '%s'", argv[optind - 1]);
  }
  if (optind >= argc) return usage_error("report", "expected one or more log files ('-' for stdin)");
  struct report *R = calloc(1, sizeof *R);
  if (!R) return EX_FAIL;
  for (int i = optind; i < argc; i++) {
    FILE *f = strcmp(argv[i], "-") ? fopen(argv[i], "re") : stdin;
    if (!f) { errorf("report: cannot open %s: %s", argv[i], strerror(errno)); R->unreadable++; continue; }
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
      errorf("report: %s is a directory", argv[i]);
      R->unreadable++;
      fclose(f);
      continue;
    }
    R->files++;
    read_file(R, f, argv[i]);
    if (f != stdin) fclose(f);
  }
  print_report(R);
  int rc = EX_OK_;
  if (R->malformed) {
    errorf("report: %ld malformed line%s (first: %s)", R->malformed, R->malformed == 1 ? "" : "s", R->first_bad);
    rc = EX_FAIL;
  }
  if (R->unreadable) rc = EX_FAIL;
  tfree(&R->events); tfree(&R->pids); tfree(&R->fail); tfree(&R->reasons);
  tfree(&R->episodes); tfree(&R->leaks); tfree(&R->tls); tfree(&R->pysites);
  free(R);
  if (stdout_failed()) return EX_FAIL;
  return rc;
}
