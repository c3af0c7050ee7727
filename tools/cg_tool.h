/* The connguard command-line tool: shared declarations. Each subcommand lives in its own file,
 * the helpers they share in common.c (main.c only dispatches);
 * everything that knows the shared-memory layout goes through seg.c (counters) and leaks.c
 * (the leaks[] table), so a layout change touches those two files only. */
#ifndef CG_TOOL_H
#define CG_TOOL_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

/* Exit statuses of the subcommands (run mode passes the command's own status through). */
#define EX_OK_     0
#define EX_FAIL    1     /* bad input: unknown pid, unreadable file, malformed records */
#define EX_USAGE_  2
#define EX_STALE   3     /* stat: counters shown, but the process is gone */
#define EX_LEAKS   4     /* leaks --fail: candidates found */
#define EX_RUNFAIL 125   /* run mode: connguard itself could not start the command */

extern const char *cg_prog;   /* "connguard" */

/* Subcommands: argv[0] is the subcommand name. */
int cmd_run(int argc, char **argv);
int cmd_stat(int argc, char **argv);
int cmd_top(int argc, char **argv);
int cmd_clean(int argc, char **argv);
int cmd_metrics(int argc, char **argv);
int cmd_leaks(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_symbolize(int argc, char **argv);

/* Run mode: one warning when LD_PRELOAD cannot reach cmd (static, Go, setuid). */
void run_check_target(const char *cmd);

/* Messages: "connguard: ..." on stderr. */
void errorf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void warnf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "connguard SUB: ..." usage error; returns EX_USAGE_. */
int usage_error(const char *sub, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Strict decimal pid (1..2^22-ish); 0 on success. */
int parse_pid(const char *s, pid_t *out);
/* Seconds with an optional fraction ("2", "0.5"); 0 on success. */
int parse_seconds(const char *s, double *out);
int64_t now_realtime_ns(void);
/* Human durations: "850ms", "12.3s", "4m05s", "3h12m", "2d04h". */
void fmt_duration(char *out, size_t cap, int64_t ns);
/* Name of an errno ("ECONNREFUSED"), or "E<n>" in buf. */
const char *errno_label(int err, char *buf, size_t cap);

/* Output that may be a terminal or a pipe whose reader went away. */
int stdout_failed(void);

#endif
