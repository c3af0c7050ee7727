/* connguard stat PID, connguard top, connguard clean: live counters of programs running under
 * the shim, read from their segments in /dev/shm. */
#include "cg_tool.h"
#include "dsts.h"
#include "json.h"
#include "leaks.h"
#include "seg.h"
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

static uint64_t tls_hs_total(const struct cg_snap *s)
{
  uint64_t n = 0;
  for (int i = 0; i < CG_TLS_BUCKETS; i++) n += s->tls_hs_bucket[i];
  return n;
}

/* Most frequent failure errno, for one-line views. */
static int top_errno(const struct cg_snap *s)
{
  int best = 0;
  for (int i = 1; i < CG_STATS_ERRNOS; i++)
    if (s->failures_by_errno[i] > s->failures_by_errno[best]) best = i;
  return s->failures_by_errno[best] ? best : 0;
}

static void print_human(const struct seg *g, int leaks)
{
  const struct cg_snap *s = &g->snap;
  char d[32], e[32];
  int64_t now = now_realtime_ns();
  printf("pid %d", (int)g->pid);
  if (g->comm[0]) printf(" (%s)", g->comm);
  printf(" %s\n", s->exe[0] ? s->exe : "?");
  if (g->state == SEG_LIVE) {
    int64_t since = g->proc_start_ns ? g->proc_start_ns : s->start_ns;
    fmt_duration(d, sizeof d, now - since);
    printf("  state                live, running for %s\n", d);
  } else {
    printf("  state                %s: counters as last written\n", seg_state_name(g->state));
  }
  printf("  connect attempts     %llu\n", (unsigned long long)s->connect_attempts);
  printf("  connect failures     %llu\n", (unsigned long long)s->connect_failures);
  for (int i = 0; i < CG_STATS_ERRNOS; i++)
    if (s->failures_by_errno[i])
      printf("    %-18s %llu\n", errno_label(i, e, sizeof e), (unsigned long long)s->failures_by_errno[i]);
  printf("  retries              %llu\n", (unsigned long long)s->retries);
  printf("  recoveries           %llu\n", (unsigned long long)s->recoveries);
  printf("  give-ups             %llu\n", (unsigned long long)s->give_ups);
  fmt_duration(d, sizeof d, (int64_t)s->backoff_wait_ns);
  printf("  time waiting         %s\n", d);
  printf("  open sockets         %lld\n", (long long)s->open_sockets);
  printf("  sockets created      %llu\n", (unsigned long long)s->sockets_created);
  printf("  tracked sockets      %llu\n", (unsigned long long)s->leak_candidates);
  if (leaks >= 0) printf("  leak candidates      %d\n", leaks);
  else printf("  leak candidates      -\n");
  if (s->leak_unpublished)
    printf("  sockets unpublished  %llu (the leaks table was full: 'connguard leaks' misses them)\n",
           (unsigned long long)s->leak_unpublished);
  if (s->leak_stacks_full)
    printf("  stacks unpublished   %llu sockets (the stacks table was full: 'connguard leaks' shows them without)\n",
           (unsigned long long)s->leak_stacks_full);
  printf("  leaks at exit        %llu\n", (unsigned long long)s->leaks_reported);
  printf("  TLS handshakes       %llu\n", (unsigned long long)s->tls_handshakes);
  printf("  TLS failures         %llu\n", (unsigned long long)s->tls_failures);
  printf("  TLS retries          %llu\n", (unsigned long long)s->tls_retries);
  uint64_t n = tls_hs_total(s);
  if (n) {
    fmt_duration(d, sizeof d, (int64_t)(s->tls_hs_sum_us / n * 1000));
    printf("  TLS handshake time   %s average over %llu\n", d, (unsigned long long)n);
  }
}

static void print_json(const struct seg *g, int leaks)
{
  const struct cg_snap *s = &g->snap;
  char e[32];
  printf("{\"pid\":%d,\"exe\":", (int)g->pid);
  json_write_str(stdout, s->exe, strlen(s->exe));
  printf(",\"state\":\"%s\",\"start_ns\":%lld", g->state == SEG_LIVE ? "live" : g->state == SEG_GONE ? "gone" : "reused",
         (long long)s->start_ns);
  printf(",\"connect_attempts\":%llu,\"connect_failures\":%llu,\"failures_by_errno\":{",
         (unsigned long long)s->connect_attempts, (unsigned long long)s->connect_failures);
  int first = 1;
  for (int i = 0; i < CG_STATS_ERRNOS; i++)
    if (s->failures_by_errno[i]) {
      printf("%s\"%s\":%llu", first ? "" : ",", errno_label(i, e, sizeof e), (unsigned long long)s->failures_by_errno[i]);
      first = 0;
    }
  printf("},\"retries\":%llu,\"recoveries\":%llu,\"give_ups\":%llu,\"backoff_wait_ns\":%llu",
         (unsigned long long)s->retries, (unsigned long long)s->recoveries, (unsigned long long)s->give_ups,
         (unsigned long long)s->backoff_wait_ns);
  printf(",\"open_sockets\":%lld,\"sockets_created\":%llu", (long long)s->open_sockets, (unsigned long long)s->sockets_created);
  printf(",\"tracked_sockets\":%llu,\"leak_stacks\":%llu,\"leak_stacks_full\":%llu", (unsigned long long)s->leak_candidates,
         (unsigned long long)s->leak_stacks, (unsigned long long)s->leak_stacks_full);
  if (leaks >= 0) printf(",\"leak_candidates\":%d", leaks);
  else printf(",\"leak_candidates\":null");
  printf(",\"leaks_reported\":%llu,\"tls_handshakes\":%llu,\"tls_failures\":%llu,\"tls_retries\":%llu",
         (unsigned long long)s->leaks_reported, (unsigned long long)s->tls_handshakes,
         (unsigned long long)s->tls_failures, (unsigned long long)s->tls_retries);
  printf(",\"tls_handshake_buckets\":[");
  for (int i = 0; i < CG_TLS_BUCKETS; i++) printf("%s%llu", i ? "," : "", (unsigned long long)s->tls_hs_bucket[i]);
  printf("],\"tls_handshake_sum_us\":%llu}\n", (unsigned long long)s->tls_hs_sum_us);
}

/* The user's shared retry table: one per user, not per process, so printed once. */
static void print_dsts(int max_rows)
{
  struct dst_row *r;
  char msg[256];
  int n = dsts_read(&r, msg, sizeof msg);
  if (n < 0) { warnf("%s", msg); return; }
  dsts_print(r, n, max_rows);
  free(r);
}

int cmd_stat(int argc, char **argv)
{
  static const struct option lo[] = { { "json", no_argument, 0, 'j' }, { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 } };
  int json = 0, c;
  optind = 1;
  opterr = 0;
  while ((c = getopt_long(argc, argv, "hj", lo, NULL)) != -1) {
    if (c == 'j') json = 1;
    else if (c == 'h') { puts("usage: connguard stat [--json] PID..."); return EX_OK_; }
    else return usage_error("stat", "unknown option '%s'", argv[optind - 1]);
  }
  if (optind >= argc) return usage_error("stat", "expected a PID (see 'connguard top' for the list)");
  int rc = EX_OK_;
  for (int i = optind; i < argc; i++) {
    pid_t pid;
    if (parse_pid(argv[i], &pid)) { usage_error("stat", "'%s' is not a process id", argv[i]); rc = EX_USAGE_; continue; }
    struct seg s;
    char msg[512];
    if (seg_open(pid, &s, msg, sizeof msg)) { errorf("%s", msg); rc = EX_FAIL; continue; }
    int leaks = s.state == SEG_LIVE ? leaks_count(&s, leaks_default_age_ns(&s)) : -1;
    if (json) print_json(&s, leaks);
    else {
      if (i > optind) putchar('\n');
      print_human(&s, leaks);
    }
    if (s.state != SEG_LIVE) {
      if (!json) fprintf(stderr, "%s: pid %d: %s; 'connguard clean' removes the file\n", cg_prog, (int)pid, seg_state_name(s.state));
      if (rc == EX_OK_) rc = EX_STALE;
    }
    seg_close(&s);
  }
  if (!json) print_dsts(0);
  if (stdout_failed()) return EX_FAIL;
  return rc;
}

/* ---------- top ---------- */

static volatile sig_atomic_t stop_top;
static void on_int(int sig) { (void)sig; stop_top = 1; }

static int term_rows(void)
{
  struct winsize ws;
  if (ioctl(1, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 4) return ws.ws_row;
  return 0;
}

static int top_once(int tty, int clean, int all)
{
  pid_t *pids;
  int n = seg_scan(geteuid(), &pids);
  struct seg *segs = calloc(n ? (size_t)n : 1, sizeof *segs);
  int *leaks = calloc(n ? (size_t)n : 1, sizeof *leaks);
  int ok = 0, stale = 0, removed = 0;
  if (!segs || !leaks) { free(pids); free(segs); free(leaks); errorf("out of memory"); return -1; }
  for (int i = 0; i < n; i++) {
    char msg[512];
    if (seg_open(pids[i], &segs[ok], msg, sizeof msg)) continue;   /* vanished meanwhile, or unreadable */
    struct seg *g = &segs[ok];
    if (g->state != SEG_LIVE) {
      stale++;
      if (clean && seg_removable(g) && unlink(g->path) == 0) { removed++; seg_close(g); continue; }
      if (!all) { seg_close(g); continue; }
    }
    leaks[ok] = g->state == SEG_LIVE ? leaks_count(g, leaks_default_age_ns(g)) : -1;
    ok++;
  }
  char tbuf[32];
  time_t t = time(NULL);
  struct tm tm;
  localtime_r(&t, &tm);
  strftime(tbuf, sizeof tbuf, "%H:%M:%S", &tm);
  if (tty) fputs("\033[H\033[2J", stdout);
  int live = ok - (all ? stale - removed : 0);
  printf("connguard top - %s - %d process%s under connguard", tbuf, live, live == 1 ? "" : "es");
  if (stale - removed) printf(", %d stale segment%s (%sconnguard clean)", stale - removed, stale - removed == 1 ? "" : "s",
                              all ? "" : "shown with --all; ");
  if (removed) printf(", %d stale removed", removed);
  printf("\n%7s %-15s %9s %8s %8s %6s %6s %8s %5s %5s %6s %7s %-13s %s\n", "PID", "COMMAND", "CONNECTS", "FAILED",
         "RETRIES", "RECOV", "GIVEUP", "WAITED", "OPEN", "LEAKS", "TLS", "TLSFAIL", "TOP-ERRNO", "STATE");
  int rows = tty ? term_rows() : 0;
  for (int i = 0; i < ok; i++) {
    if (rows && i + 4 > rows) { printf("... %d more\n", ok - i); break; }
    const struct seg *g = &segs[i];
    const struct cg_snap *s = &g->snap;
    char d[32], e[32], l[16], name[16];
    fmt_duration(d, sizeof d, (int64_t)s->backoff_wait_ns);
    int te = top_errno(s);
    if (leaks[i] >= 0) snprintf(l, sizeof l, "%d", leaks[i]); else snprintf(l, sizeof l, "-");
    const char *nm = g->comm[0] && g->state == SEG_LIVE ? g->comm : (strrchr(s->exe, '/') ? strrchr(s->exe, '/') + 1 : s->exe);
    snprintf(name, sizeof name, "%s", nm);
    printf("%7d %-15s %9llu %8llu %8llu %6llu %6llu %8s %5lld %5s %6llu %7llu %-13s %s\n", (int)g->pid, name,
           (unsigned long long)s->connect_attempts, (unsigned long long)s->connect_failures,
           (unsigned long long)s->retries, (unsigned long long)s->recoveries, (unsigned long long)s->give_ups, d,
           (long long)s->open_sockets, l, (unsigned long long)s->tls_handshakes, (unsigned long long)s->tls_failures,
           te ? errno_label(te, e, sizeof e) : "-",
           g->state == SEG_LIVE ? "live" : g->state == SEG_GONE ? "stale:gone" : "stale:reused");
  }
  print_dsts(rows ? rows / 3 : 0);
  for (int i = 0; i < ok; i++) seg_close(&segs[i]);
  free(segs);
  free(leaks);
  free(pids);
  return stdout_failed() ? -1 : 0;
}

int cmd_top(int argc, char **argv)
{
  static const struct option lo[] = {
    { "iterations", required_argument, 0, 'n' }, { "delay", required_argument, 0, 'd' },
    { "once", no_argument, 0, '1' }, { "batch", no_argument, 0, 'b' }, { "clean", no_argument, 0, 'c' },
    { "all", no_argument, 0, 'a' },
    { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 },
  };
  long iters = -1;
  double delay = 2.0;
  int batch = 0, clean = 0, all = 0, c;
  optind = 1;
  opterr = 0;
  while ((c = getopt_long(argc, argv, ":hn:d:1ba", lo, NULL)) != -1) {
    switch (c) {
    case 'n': {
      char *end;
      errno = 0;
      iters = strtol(optarg, &end, 10);
      if (errno || *end || iters < 1) return usage_error("top", "-n '%s': expected a positive count", optarg);
      break;
    }
    case 'd':
      if (parse_seconds(optarg, &delay) || delay < 0.1) return usage_error("top", "-d '%s': expected seconds (>= 0.1)", optarg);
      break;
    case '1': iters = 1; batch = 1; break;
    case 'b': batch = 1; break;
    case 'c': clean = 1; break;
    case 'a': all = 1; break;
    case 'h': puts("usage: connguard top [-n N] [-d SECS] [--once] [-b] [--all] [--clean]"); return EX_OK_;
    case ':': return usage_error("top", "option %s needs a value", argv[optind - 1]);
    default: return usage_error("top", "unknown option '%s'", argv[optind - 1]);
    }
  }
  if (optind < argc) return usage_error("top", "unexpected argument '%s' (for one process: connguard stat PID)", argv[optind]);
  int tty = !batch && isatty(1);
  if (!tty && iters < 0 && !batch) iters = 1;   /* piped without -n: one table, as a script wants */
  signal(SIGINT, on_int);
  signal(SIGTERM, on_int);
  for (long i = 0; (iters < 0 || i < iters) && !stop_top; i++) {
    if (i && !tty) putchar('\n');
    if (top_once(tty, clean, all)) return EX_FAIL;
    if (iters >= 0 && i + 1 >= iters) break;
    struct timespec ts = { (time_t)delay, (long)((delay - (double)(time_t)delay) * 1e9) };
    while (!stop_top && nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
  }
  return EX_OK_;
}

int cmd_clean(int argc, char **argv)
{
  static const struct option lo[] = { { "dry-run", no_argument, 0, 'n' }, { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 } };
  int dry = 0, c;
  optind = 1;
  opterr = 0;
  while ((c = getopt_long(argc, argv, "hn", lo, NULL)) != -1) {
    if (c == 'n') dry = 1;
    else if (c == 'h') { puts("usage: connguard clean [--dry-run]"); return EX_OK_; }
    else return usage_error("clean", "unknown option '%s'", argv[optind - 1]);
  }
  if (optind < argc) return usage_error("clean", "unexpected argument '%s'", argv[optind]);
  pid_t *pids;
  int n = seg_scan(geteuid(), &pids), removed = 0, rc = EX_OK_;
  for (int i = 0; i < n; i++) {
    struct seg s;
    char msg[512];
    char path[96];
    cg_stats_path(path, sizeof path, geteuid(), pids[i]);
    if (seg_open(pids[i], &s, msg, sizeof msg)) {
      /* Not even a valid segment (killed while publishing, or an old layout): remove if its
       * process is gone. */
      if (proc_uid(pids[i]) < 0) {
        if (dry || unlink(path) == 0) { printf("%s %s (unreadable: %s)\n", dry ? "would remove" : "removed", path, msg); removed++; }
      }
      continue;
    }
    if (s.state != SEG_LIVE && seg_removable(&s)) {
      if (dry || unlink(s.path) == 0) {
        printf("%s %s (%s)\n", dry ? "would remove" : "removed", s.path, seg_state_name(s.state));
        removed++;
      } else {
        errorf("cannot remove %s: %s", s.path, strerror(errno));
        rc = EX_FAIL;
      }
    }
    seg_close(&s);
  }
  free(pids);
  if (!removed) printf("nothing to clean\n");
  return stdout_failed() ? EX_FAIL : rc;
}
