/* connguard: run a program under libconnguard.so, and look at what it does.
 * The first argument picks a subcommand; anything else is run mode (options, then the command). */
#include "cg_tool.h"
#include "policy.h"
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef CG_TOOL_VERSION
#define CG_TOOL_VERSION "0.1"
#endif

const char *cg_prog = "connguard";

static const char usage_text[] =
  "usage: connguard [OPTIONS] [--] COMMAND [ARGS...]   run COMMAND with libconnguard.so preloaded\n"
  "       connguard stat [--json] PID                  live counters of one process\n"
  "       connguard top [-n N] [-d SECS] [--once]      counters of every process of yours\n"
  "       connguard metrics [PID...]                   the counters in Prometheus text format\n"
  "       connguard leaks [--age DUR] [--all] [--fail] PID  sockets that look leaked, with stacks\n"
  "       connguard report FILE...                     summary of connguard logs (JSON or text)\n"
  "       connguard symbolize [FILE...]                add function and file:line to stack frames\n"
  "       connguard clean                              remove counters left by dead processes\n"
  "\n"
  "Run-mode options (each sets a CONNGUARD_* variable; see libconnguard(7)):\n"
  "  --retries N          --backoff DUR        --backoff-max DUR    --timeout DUR\n"
  "  --deadline DUR       --jitter full|equal|decorrelated|none     --retry-on LIST\n"
  "  --only PATTERNS      --skip PATTERNS      --log stderr|PATH    --json\n"
  "  --log-format text|json                    --stack-depth N      --leaks[=off|exit]\n"
  "  --no-leaks           --leak-exitcode N    --leak-age DUR       --suppressions FILE\n"
  "  --disable            --no-stats           --no-tls             --set NAME=VALUE\n"
  "  --no-watchdog        --library PATH       --dry-run\n"
  "Durations: N (milliseconds), Nms, Ns, 1.5s.  See connguard(1).\n";

static void vmsg(const char *kind, const char *fmt, va_list ap)
{
  char buf[2048];
  vsnprintf(buf, sizeof buf, fmt, ap);
  fprintf(stderr, "%s: %s%s\n", cg_prog, kind, buf);
}

void errorf(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  vmsg("", fmt, ap);
  va_end(ap);
}

void warnf(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  vmsg("warning: ", fmt, ap);
  va_end(ap);
}

int usage_error(const char *sub, const char *fmt, ...)
{
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  fprintf(stderr, "%s %s: %s\n(see '%s --help')\n", cg_prog, sub, buf, cg_prog);
  return EX_USAGE_;
}

int parse_pid(const char *s, pid_t *out)
{
  if (!s || !*s || strlen(s) > 10) return -1;
  long v = 0;
  for (const char *p = s; *p; p++) {
    if (*p < '0' || *p > '9') return -1;
    v = v * 10 + (*p - '0');
  }
  if (v <= 0 || v > 0x7fffffffL) return -1;
  *out = (pid_t)v;
  return 0;
}

int parse_seconds(const char *s, double *out)
{
  char *end;
  if (!s || !*s) return -1;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || *end || v != v || v < 0 || v > 86400) return -1;
  *out = v;
  return 0;
}

int64_t now_realtime_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void fmt_duration(char *out, size_t cap, int64_t ns)
{
  if (ns < 0) ns = 0;
  int64_t ms = ns / 1000000, s = ns / 1000000000;
  if (ms < 1000) snprintf(out, cap, "%lldms", (long long)ms);
  else if (s < 60) snprintf(out, cap, "%.1fs", (double)ns / 1e9);
  else if (s < 3600) snprintf(out, cap, "%lldm%02llds", (long long)(s / 60), (long long)(s % 60));
  else if (s < 86400) snprintf(out, cap, "%lldh%02lldm", (long long)(s / 3600), (long long)(s % 3600 / 60));
  else snprintf(out, cap, "%lldd%02lldh", (long long)(s / 86400), (long long)(s % 86400 / 3600));
}

const char *errno_label(int err, char *buf, size_t cap)
{
  const char *n = cg_errno_name(err);
  if (n) return n;
  snprintf(buf, cap, "E%d", err);
  return buf;
}

int stdout_failed(void)
{
  return fflush(stdout) != 0 || ferror(stdout);
}

static const struct { const char *name; int (*fn)(int, char **); } subs[] = {
  { "stat", cmd_stat }, { "top", cmd_top }, { "metrics", cmd_metrics }, { "leaks", cmd_leaks },
  { "report", cmd_report }, { "symbolize", cmd_symbolize }, { "clean", cmd_clean },
};

int main(int argc, char **argv)
{
  /* A reader that goes away (| head) ends us quietly instead of killing us mid-line. */
  signal(SIGPIPE, SIG_IGN);
  if (argc < 2) {
    fputs(usage_text, stderr);
    return EX_USAGE_;
  }
  const char *a = argv[1];
  if (!strcmp(a, "-h") || !strcmp(a, "--help") || !strcmp(a, "help")) {
    fputs(usage_text, stdout);
    return stdout_failed() ? EX_FAIL : EX_OK_;
  }
  if (!strcmp(a, "--version") || !strcmp(a, "version")) {
    printf("connguard %s\n", CG_TOOL_VERSION);
    return stdout_failed() ? EX_FAIL : EX_OK_;
  }
  for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++)
    if (!strcmp(a, subs[i].name)) return subs[i].fn(argc - 1, argv + 1);
  if (a[0] == '-') return cmd_run(argc, argv);
  /* A bare word that is no subcommand: refuse rather than guess, so that a typo ("stats")
   * never runs a program of that name. */
  errorf("unknown subcommand '%s'\n"
         "  subcommands: stat, top, metrics, leaks, report, symbolize, clean\n"
         "  to run a program under connguard: %s [OPTIONS] -- %s ...", a, cg_prog, a);
  return EX_USAGE_;
}
