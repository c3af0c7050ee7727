/* Helpers every subcommand uses (cg_tool.h): messages, argument parsing, durations. Here, not in
 * main.c, so that the dependency goes one way: main.c dispatches to the subcommands, and they
 * and main.c use this file, which calls none of them. */
#include "cg_tool.h"
#include "policy.h"
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *cg_prog = "connguard";

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
