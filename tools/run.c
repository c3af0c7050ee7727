/* Run mode: connguard [OPTIONS] [--] COMMAND ARGS...
 * Options become CONNGUARD_* variables, checked with the shim's own parsers (shim/core/config.c,
 * linked in) so that a value the shim would reject is refused here, before anything runs.
 * Then libconnguard.so is put first in LD_PRELOAD and the command is exec()ed: its exit status
 * is the command's. */
#include "cg_tool.h"
#include "cg_vars.h"
#include "config.h"
#include "stats.h"
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

extern char **environ;

#define MAX_SETTINGS 64

struct setting {
  const char *var;      /* without the CONNGUARD_ prefix */
  const char *value;
  const char *opt;      /* how the user spelled it, for messages */
};

static struct setting settings[MAX_SETTINGS];
static int nsettings;

static const char *const var_names[] = {
#define X(n, k, d, doc) #n,
  CG_VARS(X)
#undef X
};

static int known_var(const char *name)
{
  for (size_t i = 0; i < sizeof var_names / sizeof var_names[0]; i++)
    if (!strcmp(var_names[i], name)) return 1;
  return 0;
}

static int add_setting(const char *var, const char *value, const char *opt)
{
  for (int i = 0; i < nsettings; i++)
    if (!strcmp(settings[i].var, var)) { settings[i].value = value; settings[i].opt = opt; return 0; }
  if (nsettings == MAX_SETTINGS) { errorf("too many options"); return -1; }
  settings[nsettings++] = (struct setting){ var, value, opt };
  return 0;
}

static const char *setting_of(const char *var)
{
  for (int i = 0; i < nsettings; i++)
    if (!strcmp(settings[i].var, var)) return settings[i].value;
  return NULL;
}

/* ---- validation with the shim's parser ---- */

static const char *only_var;   /* the one variable cg_config_load sees during a check */

static const char *one_var_getenv(const char *name)
{
  if (strncmp(name, "CONNGUARD_", 10) || !only_var || strcmp(name + 10, only_var)) return NULL;
  return setting_of(only_var);
}

struct warn_buf { char line[512]; int n; };

static void collect_warning(const char *line, void *arg)
{
  struct warn_buf *w = arg;
  char want[80];
  /* Only warnings about the variable under test: a relation with another variable's default
   * (BACKOFF_MAX_MS below BACKOFF_MS) is checked separately, with both values known. */
  snprintf(want, sizeof want, "CONNGUARD_%s=", only_var ? only_var : "");
  if (!strstr(line, want)) return;
  if (!w->n++) snprintf(w->line, sizeof w->line, "%s", line);
}

/* From the shim's "connguard: warning: CONNGUARD_<name>="v": WHY; using D" keep WHY. */
static const char *reason_of(const char *line, char *out, size_t cap)
{
  const char *p = strstr(line, "\": ");
  const char *e = p ? strstr(p, "; using") : NULL;
  if (!p || !e) { snprintf(out, cap, "%s", line); return out; }
  p += 3;
  snprintf(out, cap, "%.*s", (int)(e - p), p);
  return out;
}

static int validate(void)
{
  int bad = 0;
  for (int i = 0; i < nsettings; i++) {
    struct cg_config c;
    struct warn_buf w = { "", 0 };
    char why[400];
    only_var = settings[i].var;
    cg_config_load(&c, one_var_getenv, collect_warning, &w);
    if (w.n) {
      errorf("%s '%s': %s", settings[i].opt, settings[i].value, reason_of(w.line, why, sizeof why));
      bad = 1;
    }
  }
  only_var = NULL;
  if (bad) return -1;
  /* Checks across variables: the shim would clamp and warn; here it is the user's to fix. */
  const char *b = setting_of("BACKOFF_MS"), *bm = setting_of("BACKOFF_MAX_MS");
  if (b || bm) {
    unsigned vb = 100, vbm = 2000;
    const char *eb = getenv("CONNGUARD_BACKOFF_MS"), *ebm = getenv("CONNGUARD_BACKOFF_MAX_MS");
    if (b) cg_parse_ms(b, &vb); else if (eb) cg_parse_ms(eb, &vb);
    if (bm) cg_parse_ms(bm, &vbm); else if (ebm) cg_parse_ms(ebm, &vbm);
    if (vbm < vb) {
      errorf("the backoff cap (%ums%s) is below the first backoff (%ums%s); raise --backoff-max",
             vbm, bm ? ", --backoff-max" : ebm ? ", CONNGUARD_BACKOFF_MAX_MS" : ", the default",
             vb, b ? ", --backoff" : ", CONNGUARD_BACKOFF_MS");
      return -1;
    }
  }
  const char *sup = setting_of("SUPPRESSIONS");
  if (sup && *sup && access(sup, R_OK) != 0) {
    errorf("--suppressions '%s': %s", sup, strerror(errno));
    return -1;
  }
  const char *log = setting_of("LOG");
  if (log && strcmp(log, "stderr")) {
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", log);
    struct stat st;
    const char *d = dirname(dir);
    if (stat(d, &st) != 0 || !S_ISDIR(st.st_mode)) {
      errorf("--log '%s': directory '%s' does not exist", log, d);
      return -1;
    }
  }
  return 0;
}

/* ---- finding the library ---- */

static int find_library(const char *given, char *out, size_t cap)
{
  char self[PATH_MAX], cand[PATH_MAX + 64];
  if (given) {
    if (!realpath(given, out) || access(out, R_OK)) {
      errorf("--library '%s': %s", given, strerror(errno));
      return -1;
    }
    return 0;
  }
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) { errorf("cannot find my own executable (/proc/self/exe): %s", strerror(errno)); return -1; }
  self[n] = 0;
  char *dir = dirname(self);
  /* Build tree: build/connguard beside build/libconnguard.so. Installed: PREFIX/bin and PREFIX/lib. */
  static const char *const rel[] = { "libconnguard.so", "../lib/libconnguard.so" };
  for (size_t i = 0; i < 2; i++) {
    snprintf(cand, sizeof cand, "%s/%s", dir, rel[i]);
    if (access(cand, R_OK) == 0 && realpath(cand, out)) return 0;
  }
  (void)cap;
  errorf("cannot find libconnguard.so: looked in %s/ and %s/../lib/ (use --library PATH)", dir, dir);
  return -1;
}

/* ---- environment ---- */

static int preload_has(const char *list, const char *lib)
{
  size_t n = strlen(lib);
  for (const char *p = list; *p;) {
    while (*p == ' ' || *p == ':') p++;
    const char *e = p;
    while (*e && *e != ' ' && *e != ':') e++;
    if ((size_t)(e - p) == n && !strncmp(p, lib, n)) return 1;
    p = e;
  }
  return 0;
}

static char *concat3(const char *a, const char *b, const char *c)
{
  size_t la = strlen(a), lb = strlen(b), lc = strlen(c);
  char *s = malloc(la + lb + lc + 1);
  if (!s) { errorf("out of memory"); exit(EX_RUNFAIL); }
  memcpy(s, a, la);
  memcpy(s + la, b, lb);
  memcpy(s + la + lb, c, lc + 1);
  return s;
}

static int set_env(const char *name, const char *value)
{
  if (setenv(name, value, 1) != 0) { errorf("cannot set %s: %s", name, strerror(errno)); return -1; }
  return 0;
}

/* Shell-quoted, for --dry-run. */
static void put_quoted(const char *s)
{
  int plain = *s != 0;
  for (const char *p = s; *p; p++)
    if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./:=@%+,", *p)) plain = 0;
  if (plain) { fputs(s, stdout); return; }
  putchar('\'');
  for (const char *p = s; *p; p++) {
    if (*p == '\'') fputs("'\\''", stdout);
    else putchar(*p);
  }
  putchar('\'');
}

enum {
  O_RETRIES = 256, O_BACKOFF, O_BACKOFF_MAX, O_TIMEOUT, O_DEADLINE, O_JITTER, O_RETRY_ON, O_ONLY,
  O_SKIP, O_LOG, O_JSON, O_LOG_FORMAT, O_STACK_DEPTH, O_LEAKS, O_NO_LEAKS, O_LEAK_EXITCODE,
  O_LEAK_AGE, O_SUPPRESSIONS, O_DISABLE, O_NO_STATS, O_NO_TLS, O_NO_WATCHDOG, O_SET, O_LIBRARY, O_DRY_RUN, O_HELP,
};

static const struct option longopts[] = {
  { "retries", required_argument, 0, O_RETRIES },
  { "backoff", required_argument, 0, O_BACKOFF },
  { "backoff-max", required_argument, 0, O_BACKOFF_MAX },
  { "timeout", required_argument, 0, O_TIMEOUT },
  { "connect-timeout", required_argument, 0, O_TIMEOUT },
  { "deadline", required_argument, 0, O_DEADLINE },
  { "jitter", required_argument, 0, O_JITTER },
  { "retry-on", required_argument, 0, O_RETRY_ON },
  { "only", required_argument, 0, O_ONLY },
  { "skip", required_argument, 0, O_SKIP },
  { "log", required_argument, 0, O_LOG },
  { "json", no_argument, 0, O_JSON },
  { "log-format", required_argument, 0, O_LOG_FORMAT },
  { "stack-depth", required_argument, 0, O_STACK_DEPTH },
  { "leaks", optional_argument, 0, O_LEAKS },
  { "no-leaks", no_argument, 0, O_NO_LEAKS },
  { "leak-exitcode", required_argument, 0, O_LEAK_EXITCODE },
  { "leak-age", required_argument, 0, O_LEAK_AGE },
  { "suppressions", required_argument, 0, O_SUPPRESSIONS },
  { "disable", no_argument, 0, O_DISABLE },
  { "no-stats", no_argument, 0, O_NO_STATS },
  { "no-tls", no_argument, 0, O_NO_TLS },
  { "no-watchdog", no_argument, 0, O_NO_WATCHDOG },
  { "set", required_argument, 0, O_SET },
  { "library", required_argument, 0, O_LIBRARY },
  { "dry-run", no_argument, 0, O_DRY_RUN },
  { "help", no_argument, 0, O_HELP },
  { 0, 0, 0, 0 },
};

/* Option spellings for messages, by variable. */
static const char *spelled(int c)
{
  for (const struct option *o = longopts; o->name; o++)
    if (o->val == c) return o->name;
  return "?";
}

int cmd_run(int argc, char **argv)
{
  const char *library = NULL;
  int dry = 0;
  static char optnames[O_HELP - O_RETRIES + 1][40];
  opterr = 0;
  optind = 1;
  for (;;) {
    int idx = 0;
    /* '+': stop at the command; its own options are its own. */
    int c = getopt_long(argc, argv, "+:he:", longopts, &idx);
    if (c == -1) break;
    const char *opt = NULL;
    if (c >= O_RETRIES && c <= O_HELP) {
      snprintf(optnames[c - O_RETRIES], sizeof optnames[0], "--%s", spelled(c));
      opt = optnames[c - O_RETRIES];
    }
    int r = 0;
    switch (c) {
    case O_RETRIES: r = add_setting("RETRIES", optarg, opt); break;
    case O_BACKOFF: r = add_setting("BACKOFF_MS", optarg, opt); break;
    case O_BACKOFF_MAX: r = add_setting("BACKOFF_MAX_MS", optarg, opt); break;
    case O_TIMEOUT: r = add_setting("CONNECT_TIMEOUT_MS", optarg, opt); break;
    case O_DEADLINE: r = add_setting("DEADLINE_MS", optarg, opt); break;
    case O_JITTER: r = add_setting("JITTER", optarg, opt); break;
    case O_RETRY_ON: r = add_setting("RETRY_ON", optarg, opt); break;
    case O_ONLY: r = add_setting("ONLY", optarg, opt); break;
    case O_SKIP: r = add_setting("SKIP", optarg, opt); break;
    case O_LOG: r = add_setting("LOG", optarg, opt); break;
    case O_JSON: r = add_setting("LOG_FORMAT", "json", opt); break;
    case O_LOG_FORMAT: r = add_setting("LOG_FORMAT", optarg, opt); break;
    case O_STACK_DEPTH: r = add_setting("STACK_DEPTH", optarg, opt); break;
    case O_LEAKS: r = add_setting("LEAKS", optarg ? optarg : "exit", opt); break;
    case O_NO_LEAKS: r = add_setting("LEAKS", "off", opt); break;
    case O_LEAK_EXITCODE: r = add_setting("LEAK_EXITCODE", optarg, opt); break;
    case O_LEAK_AGE: r = add_setting("LEAK_AGE_MS", optarg, opt); break;
    case O_SUPPRESSIONS: r = add_setting("SUPPRESSIONS", optarg, opt); break;
    case O_DISABLE: r = add_setting("DISABLE", "1", opt); break;
    case O_NO_STATS: r = add_setting("STATS", "0", opt); break;
    case O_NO_TLS: r = add_setting("TLS", "0", opt); break;
    case O_NO_WATCHDOG: r = add_setting("WATCHDOG", "0", opt); break;
    case 'e':
    case O_SET: {
      const char *eq = strchr(optarg, '=');
      char name[64];
      const char *n = optarg;
      if (!strncmp(n, "CONNGUARD_", 10)) n += 10;
      if (!eq || eq < n || (size_t)(eq - n) >= sizeof name) {
        errorf("--set '%s': expected NAME=VALUE (e.g. --set RETRIES=5)", optarg);
        return EX_RUNFAIL;
      }
      memcpy(name, n, (size_t)(eq - n));
      name[eq - n] = 0;
      for (char *q = name; *q; q++)
        if (*q >= 'a' && *q <= 'z') *q = (char)(*q - 'a' + 'A');
      if (!known_var(name)) {
        errorf("--set '%s': no variable CONNGUARD_%s (see libconnguard(7))", optarg, name);
        return EX_RUNFAIL;
      }
      char *var = strdup(name), *o = concat3("--set ", name, "");
      if (!var) return EX_RUNFAIL;
      r = add_setting(var, eq + 1, o);
      break;
    }
    case O_LIBRARY: library = optarg; break;
    case O_DRY_RUN: dry = 1; break;
    case 'h':
    case O_HELP:
      fprintf(stderr, "%s: see '%s --help' and connguard(1)\n", cg_prog, cg_prog);
      return EX_USAGE_;
    case ':':
      errorf("option %s needs a value", argv[optind - 1]);
      return EX_RUNFAIL;
    default:
      errorf("unknown option '%s' (see '%s --help')", argv[optind - 1], cg_prog);
      return EX_RUNFAIL;
    }
    if (r) return EX_RUNFAIL;
  }
  if (optind >= argc) {
    errorf("no command to run: %s [OPTIONS] -- COMMAND [ARGS...]", cg_prog);
    return EX_RUNFAIL;
  }
  if (validate()) return EX_RUNFAIL;

  char lib[PATH_MAX];
  if (find_library(library, lib, sizeof lib)) return EX_RUNFAIL;

  for (int i = 0; i < nsettings; i++) {
    char name[80];
    snprintf(name, sizeof name, "CONNGUARD_%s", settings[i].var);
    if (set_env(name, settings[i].value)) return EX_RUNFAIL;
  }
  const char *old = getenv("LD_PRELOAD");
  if (!old || !*old) {
    if (set_env("LD_PRELOAD", lib)) return EX_RUNFAIL;
  } else if (!preload_has(old, lib)) {
    if (set_env("LD_PRELOAD", concat3(lib, ":", old))) return EX_RUNFAIL;
  }

  char **cmd = argv + optind;
  if (dry) {
    put_quoted("LD_PRELOAD");
    putchar('=');
    put_quoted(getenv("LD_PRELOAD"));
    for (int i = 0; i < nsettings; i++) {
      printf(" CONNGUARD_%s=", settings[i].var);
      put_quoted(settings[i].value);
    }
    for (char **a = cmd; *a; a++) { putchar(' '); put_quoted(*a); }
    putchar('\n');
    return stdout_failed() ? EX_FAIL : EX_OK_;
  }
  run_check_target(cmd[0]);
  /* Counters left by our own killed processes go now (bounded; `connguard clean` does all). */
  cg_stats_reap(256, 8);
  fflush(NULL);
  execvp(cmd[0], cmd);
  int e = errno;
  errorf("cannot run '%s': %s", cmd[0], strerror(e));
  return e == ENOENT ? 127 : 126;
}
