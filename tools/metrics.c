/* connguard metrics [PID...]: the counters in the Prometheus text exposition format (0.0.4):
 * one HELP and TYPE line per family, then a sample per process labelled pid and exe. Without
 * PIDs: every live process of the calling user (for a node_exporter textfile collector). */
#include "cg_tool.h"
#include "dsts.h"
#include "leaks.h"
#include "seg.h"
#include <getopt.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct proc { struct seg s; int leaks; };

static void put_label_value(const char *v)
{
  /* Exposition format escapes: backslash, double quote, newline. */
  for (const char *p = v; *p; p++) {
    if (*p == '\\') fputs("\\\\", stdout);
    else if (*p == '"') fputs("\\\"", stdout);
    else if (*p == '\n') fputs("\\n", stdout);
    else putchar(*p);
  }
}

static void labels(const struct proc *p, const char *extra_k, const char *extra_v)
{
  printf("{pid=\"%d\",exe=\"", (int)p->s.pid);
  put_label_value(p->s.snap.exe);
  putchar('"');
  if (extra_k) {
    printf(",%s=\"", extra_k);
    put_label_value(extra_v);
    putchar('"');
  }
  putchar('}');
}

static void family(const char *name, const char *type, const char *help)
{
  printf("# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

#define U(v) ((unsigned long long)(v))

static void simple(const struct proc *ps, int n, const char *name, const char *type, const char *help,
                   size_t off, int is_signed)
{
  family(name, type, help);
  for (int i = 0; i < n; i++) {
    const char *base = (const char *)&ps[i].s.snap;
    fputs(name, stdout);
    labels(&ps[i], NULL, NULL);
    if (is_signed) {
      int64_t v;
      memcpy(&v, base + off, sizeof v);
      printf(" %lld\n", (long long)v);
    } else {
      uint64_t v;
      memcpy(&v, base + off, sizeof v);
      printf(" %llu\n", U(v));
    }
  }
}

static void le_text(uint64_t us, char *out, size_t cap)
{
  if (us == UINT64_MAX) snprintf(out, cap, "+Inf");
  else snprintf(out, cap, "%g", (double)us / 1e6);
}

static void emit(const struct proc *ps, int n)
{
#define F(field) offsetof(struct cg_snap, field)
  simple(ps, n, "connguard_connect_attempts_total", "counter",
         "connect() attempts on stream sockets seen by connguard, retries included.", F(connect_attempts), 0);
  family("connguard_connect_failures_total", "counter", "Failed connect attempts, by errno.");
  for (int i = 0; i < n; i++) {
    const struct cg_snap *s = &ps[i].s.snap;
    for (int e = 0; e < CG_STATS_ERRNOS; e++) {
      if (!s->failures_by_errno[e]) continue;
      char buf[32];
      fputs("connguard_connect_failures_total", stdout);
      labels(&ps[i], "errno", errno_label(e, buf, sizeof buf));
      printf(" %llu\n", U(s->failures_by_errno[e]));
    }
  }
  simple(ps, n, "connguard_retries_total", "counter", "Connect attempts retried after a failure.", F(retries), 0);
  simple(ps, n, "connguard_recoveries_total", "counter", "Connects that succeeded after failed attempts.", F(recoveries), 0);
  simple(ps, n, "connguard_give_ups_total", "counter", "Connects that failed for good (the program saw the error).", F(give_ups), 0);
  family("connguard_backoff_seconds_total", "counter", "Time spent waiting between connect attempts.");
  for (int i = 0; i < n; i++) {
    fputs("connguard_backoff_seconds_total", stdout);
    labels(&ps[i], NULL, NULL);
    printf(" %.9f\n", (double)ps[i].s.snap.backoff_wait_ns / 1e9);
  }
  simple(ps, n, "connguard_open_sockets", "gauge", "Sockets currently open, as tracked by connguard.", F(open_sockets), 1);
  simple(ps, n, "connguard_sockets_created_total", "counter", "Sockets created since the program started.", F(sockets_created), 0);
  family("connguard_leaked_sockets", "gauge",
         "Live leak candidates: tracked sockets in CLOSE_WAIT for longer than CONNGUARD_LEAK_AGE_MS, or open longer than it.");
  for (int i = 0; i < n; i++) {
    if (ps[i].leaks < 0) continue;
    fputs("connguard_leaked_sockets", stdout);
    labels(&ps[i], NULL, NULL);
    printf(" %d\n", ps[i].leaks);
  }
  simple(ps, n, "connguard_tls_handshakes_total", "counter", "TLS handshakes completed or failed.", F(tls_handshakes), 0);
  simple(ps, n, "connguard_tls_failures_total", "counter", "TLS handshakes that failed.", F(tls_failures), 0);
  simple(ps, n, "connguard_tls_retries_total", "counter", "TLS handshakes retried.", F(tls_retries), 0);
  family("connguard_tls_handshake_seconds", "histogram", "Duration of TLS handshakes.");
  static const uint64_t bounds[CG_TLS_BUCKETS] = CG_TLS_BUCKET_BOUNDS_US;
  for (int i = 0; i < n; i++) {
    const struct cg_snap *s = &ps[i].s.snap;
    uint64_t cum = 0;
    for (int b = 0; b < CG_TLS_BUCKETS; b++) {
      char le[32];
      cum += s->tls_hs_bucket[b];
      le_text(bounds[b], le, sizeof le);
      fputs("connguard_tls_handshake_seconds_bucket", stdout);
      labels(&ps[i], "le", le);
      printf(" %llu\n", U(cum));
    }
    if (bounds[CG_TLS_BUCKETS - 1] != UINT64_MAX) {
      fputs("connguard_tls_handshake_seconds_bucket", stdout);
      labels(&ps[i], "le", "+Inf");
      printf(" %llu\n", U(cum));
    }
    fputs("connguard_tls_handshake_seconds_sum", stdout);
    labels(&ps[i], NULL, NULL);
    printf(" %.6f\n", (double)s->tls_hs_sum_us / 1e6);
    /* _count is the +Inf bucket, so that the two never disagree in one scrape. */
    fputs("connguard_tls_handshake_seconds_count", stdout);
    labels(&ps[i], NULL, NULL);
    printf(" %llu\n", U(cum));
  }
  family("connguard_start_time_seconds", "gauge", "When connguard started counting in this process (Unix time).");
  for (int i = 0; i < n; i++) {
    fputs("connguard_start_time_seconds", stdout);
    labels(&ps[i], NULL, NULL);
    printf(" %.3f\n", (double)ps[i].s.snap.start_ns / 1e9);
  }
#undef F
}

/* Per-destination series from the shared retry table: the METRICS_DSTS destinations with the
 * most failures (open ones first) get their own dst label; the rest are summed into one
 * dst="other" series, so a scrape never has more than METRICS_DSTS + 1 label values. */
#define METRICS_DSTS 20

static void dst_family(const struct dst_row *r, int n, const char *name, const char *type, const char *help,
                       uint64_t (*get)(const struct dst_row *))
{
  family(name, type, help);
  uint64_t rest = 0;
  for (int i = 0; i < n; i++) {
    if (i >= METRICS_DSTS) { rest += get(&r[i]); continue; }
    printf("%s{dst=\"", name);
    put_label_value(r[i].name);
    printf("\"} %llu\n", U(get(&r[i])));
  }
  if (n > METRICS_DSTS) printf("%s{dst=\"other\"} %llu\n", name, U(rest));
}

static uint64_t g_state(const struct dst_row *r) { return (uint64_t)r->open; }
static uint64_t g_attempts(const struct dst_row *r) { return r->attempts; }
static uint64_t g_failures(const struct dst_row *r) { return r->failures; }
static uint64_t g_probes(const struct dst_row *r) { return r->probes; }
static uint64_t g_waits(const struct dst_row *r) { return r->waits; }
static uint64_t g_waiters(const struct dst_row *r) { return r->waiting; }

static void emit_dsts(void)
{
  struct dst_row *r;
  char msg[256];
  int n = dsts_read(&r, msg, sizeof msg);
  if (n < 0) { warnf("%s", msg); return; }
  if (n == 0) { free(r); return; }
  dst_family(r, n, "connguard_destination_open", "gauge",
             "1 while the destination's breaker is open (its probes keep failing), 0 once closed; dst=\"other\": how many of the rest are open.", g_state);
  dst_family(r, n, "connguard_destination_attempts_total", "counter",
             "Real connect attempts to the destination by connects in a coordinated retry, all processes of the user.", g_attempts);
  dst_family(r, n, "connguard_destination_failures_total", "counter", "Of those, the failed ones.", g_failures);
  dst_family(r, n, "connguard_destination_probes_total", "counter", "Probe roles taken: attempts made on behalf of every waiting process.", g_probes);
  dst_family(r, n, "connguard_destination_waits_total", "counter", "Connects that waited in the destination's shared schedule (for a probe, or their own slot) instead of sleeping alone.", g_waits);
  dst_family(r, n, "connguard_destination_waiters", "gauge", "Blocking connects asleep waiting for the destination's probe now.", g_waiters);
  free(r);
}

int cmd_metrics(int argc, char **argv)
{
  static const struct option lo[] = { { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 } };
  int c;
  optind = 1;
  opterr = 0;
  while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
    if (c == 'h') { puts("usage: connguard metrics [PID...]   (no PID: all your processes under connguard)"); return EX_OK_; }
    return usage_error("metrics", "unknown option '%s'", argv[optind - 1]);
  }
  pid_t *pids = NULL;
  int n, all = optind >= argc, rc = EX_OK_;
  if (all) {
    n = seg_scan(geteuid(), &pids);
  } else {
    n = argc - optind;
    pids = calloc((size_t)n, sizeof *pids);
    if (!pids) return EX_FAIL;
    for (int i = 0; i < n; i++)
      if (parse_pid(argv[optind + i], &pids[i])) { free(pids); return usage_error("metrics", "'%s' is not a process id", argv[optind + i]); }
  }
  struct proc *ps = calloc(n ? (size_t)n : 1, sizeof *ps);
  if (!ps) { free(pids); return EX_FAIL; }
  int k = 0;
  for (int i = 0; i < n; i++) {
    char msg[512];
    int dup = 0;
    for (int j = 0; j < k; j++) dup |= ps[j].s.pid == pids[i];
    if (dup) continue;
    if (seg_open(pids[i], &ps[k].s, msg, sizeof msg)) {
      if (!all) { errorf("%s", msg); rc = EX_FAIL; }
      continue;
    }
    if (ps[k].s.state != SEG_LIVE) {
      /* A dead process's last numbers would look like a live one that stopped moving. */
      if (!all) { errorf("pid %d: %s: no metrics", (int)pids[i], seg_state_name(ps[k].s.state)); rc = EX_FAIL; }
      seg_close(&ps[k].s);
      continue;
    }
    ps[k].leaks = leaks_count(&ps[k].s, leaks_default_age_ns(&ps[k].s));
    k++;
  }
  if (k) emit(ps, k);
  /* The user's destinations: with the processes' series, never alone for PIDs that failed. */
  if (k || all) emit_dsts();
  for (int i = 0; i < k; i++) seg_close(&ps[i].s);
  free(ps);
  free(pids);
  if (stdout_failed()) return EX_FAIL;
  return rc;
}
