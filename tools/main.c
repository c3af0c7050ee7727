/* connguard: run a program under libconnguard.so, and look at what it does.
 * The first argument picks a subcommand; anything else is run mode (options, then the command). */
#include "cg_tool.h"
#include <signal.h>
#include <string.h>

#ifndef CG_TOOL_VERSION
#define CG_TOOL_VERSION "0.1"
#endif

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
