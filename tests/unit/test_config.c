/* CONNGUARD_* parsing: good values, suffixes, and bad values that must give exactly one
 * warning line naming the variable and the value used, with the default kept. */
#include "cgtest.h"
#include "config.h"
#include "cg_vars.h"
#include <stdio.h>
#include <sys/mman.h>

/* ---- a fake environment and a warning collector ---- */

#define MAXENV 32
static const char *env_k[MAXENV], *env_v[MAXENV];
static int env_n;

static void env_clear(void) { env_n = 0; }
static void env_set(const char *k, const char *v) { env_k[env_n] = k; env_v[env_n] = v; env_n++; }
static const char *fake_getenv(const char *k)
{
  for (int i = 0; i < env_n; i++) if (!strcmp(env_k[i], k)) return env_v[i];
  return NULL;
}

static int nwarn;
static char warn_lines[8][512];
static void collect(const char *line, void *arg)
{
  (void)arg;
  if (nwarn < 8) snprintf(warn_lines[nwarn], sizeof warn_lines[0], "%s", line);
  nwarn++;
}

static struct cg_config cfg;
static int load(void)
{
  nwarn = 0;
  memset(warn_lines, 0, sizeof warn_lines);
  int r = cg_config_load(&cfg, fake_getenv, collect, NULL);
  ck_assert_int_eq(r, nwarn);
  return r;
}

/* Loads with exactly one variable set; returns the number of warnings. */
static int load1(const char *k, const char *v)
{
  env_clear();
  env_set(k, v);
  return load();
}

static void assert_defaults_except(const char *except)
{
#define D(name, expr) if (!except || strcmp(except, name)) ck_assert_msg(expr, "%s not default", name)
  D("RETRIES", cfg.retries == CG_RETRIES_NONE);
  D("BACKOFF_MS", cfg.backoff_ms == 100);
  D("BACKOFF_MAX_MS", cfg.backoff_max_ms == 2000);
  D("JITTER", cfg.jitter == CG_JITTER_EQUAL);
  D("CONNECT_TIMEOUT_MS", cfg.connect_timeout_ms == 5000);
  D("DEADLINE_MS", cfg.deadline_ms == 10000);
  D("RETRY_ON", cfg.retry_on == (CG_CLASS_REFUSED | CG_CLASS_TIMEOUT));
  D("ONLY", cfg.only.n == 0 && !cfg.only.has_unix);
  D("SKIP", cfg.skip.n == 0);
  D("COORDINATE", cfg.coordinate == 1);
  D("COORD_DESTS", cfg.coord_dests == 256);
  D("COORD_KEEP_MS", cfg.coord_keep_ms == 60000);
  D("LOG", !strcmp(cfg.log, "stderr"));
  D("LOG_FORMAT", cfg.log_format == CG_LOG_TEXT);
  D("STACK_DEPTH", cfg.stack_depth == 16);
  D("LEAKS", cfg.leaks == CG_LEAKS_EXIT);
  D("LEAK_EXITCODE", cfg.leak_exitcode == 0);
  D("LEAK_AGE_MS", cfg.leak_age_ms == 30000);
  D("SUPPRESSIONS", cfg.suppressions[0] == 0);
  D("STATS", cfg.stats == 1);
  D("TLS", cfg.tls == 1);
  D("DISABLE", cfg.disable == 0);
#undef D
}

/* The single warning names CONNGUARD_<name>, echoes the start of the value and ends with
 * "using <used>". */
static void assert_one_warning(const char *name, const char *shown, const char *used)
{
  ck_assert_int_eq(nwarn, 1);
  const char *w = warn_lines[0];
  char want[128];
  snprintf(want, sizeof want, "connguard: warning: CONNGUARD_%s=\"", name);
  ck_assert_msg(!strncmp(w, want, strlen(want)), "warning does not name %s: %s", name, w);
  int printable = shown != NULL;
  for (const char *c = shown; c && *c; c++) if ((unsigned char)*c < 0x20) printable = 0;
  if (printable) ck_assert_msg(!strncmp(w + strlen(want), shown, strlen(shown)), "value not echoed: %s", w);
  snprintf(want, sizeof want, "; using %s", used);
  size_t lw = strlen(w), lu = strlen(want);
  ck_assert_msg(lw > lu && !strcmp(w + lw - lu, want), "warning does not end with '%s': %s", want, w);
  ck_assert_ptr_null(strchr(w, '\n'));
  ck_assert_uint_lt(lw, 400);
}

/* ---- tests ---- */

START_TEST(defaults_without_environment)
{
  env_clear();
  ck_assert_int_eq(load(), 0);
  assert_defaults_except(NULL);
}
END_TEST

/* The shim's copy starts as CG_CONFIG_INIT in .data and is applied to, not reset: a process that
 * sets no variable must not write a byte of it (each page written is a page fault at every
 * start-up). Read-only pages make any write a crash. */
START_TEST(apply_without_environment_writes_nothing)
{
  static const struct cg_config init = CG_CONFIG_INIT;
  struct cg_config d;
  cg_config_defaults(&d);
  ck_assert_msg(memcmp(&d, &init, sizeof d) == 0, "cg_config_defaults and CG_CONFIG_INIT differ");
  size_t len = (sizeof d + 4095) & ~(size_t)4095;
  struct cg_config *ro = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ck_assert_ptr_ne(ro, MAP_FAILED);
  memcpy(ro, &init, sizeof init);
  ck_assert_int_eq(mprotect(ro, len, PROT_READ), 0);
  env_clear();
  nwarn = 0;
  ck_assert_int_eq(cg_config_apply(ro, fake_getenv, collect, NULL), 0);
  ck_assert_int_eq(nwarn, 0);
  ck_assert_msg(memcmp(ro, &init, sizeof init) == 0, "apply changed the defaults");
  munmap(ro, len);
}
END_TEST

START_TEST(defaults_match_cg_vars)
{
  /* The table in cg_vars.h is what docs and the CLI print: the parser must agree with it. */
#define X(n, k, d, doc) do { env_clear(); env_set("CONNGUARD_" #n, d); \
    if (strcmp(#n, "ONLY") && strcmp(#n, "SKIP") && strcmp(#n, "SUPPRESSIONS")) { \
      ck_assert_msg(load() == 0, "default of %s (%s) warns: %s", #n, d, warn_lines[0]); \
      assert_defaults_except(NULL); } } while (0);
  CG_VARS(X)
#undef X
}
END_TEST

START_TEST(counts_good)
{
  static const struct { const char *v; unsigned want; } t[] = {
    { "0", 0 }, { "1", 1 }, { "7", 7 }, { " 5 ", 5 }, { "1000", 1000 }, { "007", 7 },
    /* No cap but the deadline: the default, spelled out or cleared. */
    { "none", CG_RETRIES_NONE }, { "NONE", CG_RETRIES_NONE }, { " none\t", CG_RETRIES_NONE },
    { "", CG_RETRIES_NONE }, { " ", CG_RETRIES_NONE },
  };
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
    ck_assert_int_eq(load1("CONNGUARD_RETRIES", t[i].v), 0);
    ck_assert_uint_eq(cfg.retries, t[i].want);
    assert_defaults_except("RETRIES");
  }
  ck_assert_int_eq(load1("CONNGUARD_STACK_DEPTH", "0"), 0);
  ck_assert_uint_eq(cfg.stack_depth, 0);
  ck_assert_int_eq(load1("CONNGUARD_STACK_DEPTH", "64"), 0);
  ck_assert_uint_eq(cfg.stack_depth, 64);
  ck_assert_int_eq(load1("CONNGUARD_LEAK_EXITCODE", "255"), 0);
  ck_assert_uint_eq(cfg.leak_exitcode, 255);
}
END_TEST

static const char *const bad_counts[] = {
  "banana", "-1", "1.5", "3x", "+3", "0x10", "1e3", "4294967297", "99999999999999999999",
  "1 2", "nonee", "no ne", "unlimited", "", " ", "\t",
};
/* The last three are bad for every count but CONNGUARD_RETRIES (empty = no cap). */
#define N_BAD_RETRIES (sizeof bad_counts / sizeof bad_counts[0] - 3)

START_TEST(counts_bad_keep_default)
{
  static const struct { const char *var, *used; } vars[] = {
    { "RETRIES", "none" }, { "STACK_DEPTH", "16" }, { "LEAK_EXITCODE", "0" },
  };
  for (size_t v = 0; v < 3; v++) {
    char name[64];
    snprintf(name, sizeof name, "CONNGUARD_%s", vars[v].var);
    size_t nbad = v == 0 ? N_BAD_RETRIES : sizeof bad_counts / sizeof bad_counts[0];
    for (size_t i = 0; i < nbad; i++) {
      load1(name, bad_counts[i]);
      assert_one_warning(vars[v].var, bad_counts[i], vars[v].used);
      assert_defaults_except(NULL);
    }
  }
  /* Above the maximum. */
  load1("CONNGUARD_RETRIES", "1001");
  assert_one_warning("RETRIES", "1001", "none");
  ck_assert_ptr_nonnull(strstr(warn_lines[0], "expected a count from 0 to 1000, or none"));
  load1("CONNGUARD_STACK_DEPTH", "65");
  assert_one_warning("STACK_DEPTH", "65", "16");
  load1("CONNGUARD_LEAK_EXITCODE", "256");
  assert_one_warning("LEAK_EXITCODE", "256", "0");
  assert_defaults_except(NULL);
}
END_TEST

START_TEST(durations_good)
{
  static const struct { const char *v; unsigned want; } t[] = {
    { "0", 0 }, { "250", 250 }, { "250ms", 250 }, { "2s", 2000 }, { "1.5s", 1500 },
    { "0.001s", 1 }, { "0.25s", 250 }, { "86400s", 86400000 }, { "86400000", 86400000 },
    { " 30ms", 30 }, { "2sec", 2000 }, { "1.s", 1000 }, { ".5s", 500 },
  };
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
    unsigned out = 12345;
    ck_assert_msg(cg_parse_ms(t[i].v, &out) == 0, "'%s' rejected", t[i].v);
    ck_assert_msg(out == t[i].want, "'%s' -> %u, want %u", t[i].v, out, t[i].want);
  }
  ck_assert_int_eq(load1("CONNGUARD_BACKOFF_MS", "50ms"), 0);
  ck_assert_uint_eq(cfg.backoff_ms, 50);
  assert_defaults_except("BACKOFF_MS");
  ck_assert_int_eq(load1("CONNGUARD_BACKOFF_MAX_MS", "3s"), 0);
  ck_assert_uint_eq(cfg.backoff_max_ms, 3000);
  ck_assert_int_eq(load1("CONNGUARD_CONNECT_TIMEOUT_MS", "1.5s"), 0);
  ck_assert_uint_eq(cfg.connect_timeout_ms, 1500);
  ck_assert_int_eq(load1("CONNGUARD_DEADLINE_MS", "20s"), 0);
  ck_assert_uint_eq(cfg.deadline_ms, 20000);
  ck_assert_int_eq(load1("CONNGUARD_LEAK_AGE_MS", "100"), 0);
  ck_assert_uint_eq(cfg.leak_age_ms, 100);
  ck_assert_int_eq(load1("CONNGUARD_BACKOFF_MS", "0"), 0);
  ck_assert_uint_eq(cfg.backoff_ms, 0);
}
END_TEST

static const char *const bad_durations[] = {
  "banana", "-1", "-5ms", "", " ", "1.5", "1.5ms", "5m", "5h", "5 s", "ms", "s", "1e3",
  "86400001", "86401s", "99999999999999999999", "0x10", "1,5s", "5ss", "..5s",
};

START_TEST(durations_bad_keep_default)
{
  static const struct { const char *var, *used; } vars[] = {
    { "BACKOFF_MS", "100" }, { "BACKOFF_MAX_MS", "2000" }, { "CONNECT_TIMEOUT_MS", "5000" },
    { "DEADLINE_MS", "10000" }, { "LEAK_AGE_MS", "30000" },
  };
  for (size_t v = 0; v < sizeof vars / sizeof vars[0]; v++) {
    char name[64];
    snprintf(name, sizeof name, "CONNGUARD_%s", vars[v].var);
    for (size_t i = 0; i < sizeof bad_durations / sizeof bad_durations[0]; i++) {
      load1(name, bad_durations[i]);
      assert_one_warning(vars[v].var, bad_durations[i], vars[v].used);
      assert_defaults_except(NULL);
    }
  }
}
END_TEST

START_TEST(zero_timeouts_are_bad)
{
  load1("CONNGUARD_CONNECT_TIMEOUT_MS", "0");
  assert_one_warning("CONNECT_TIMEOUT_MS", "0", "5000");
  assert_defaults_except(NULL);
  load1("CONNGUARD_DEADLINE_MS", "0s");
  assert_one_warning("DEADLINE_MS", "0s", "10000");
  assert_defaults_except(NULL);
}
END_TEST

START_TEST(trailing_space_in_duration)
{
  /* Counts accept surrounding blanks; durations must too (a quoted value from a YAML file). */
  unsigned out = 0;
  ck_assert_int_eq(cg_parse_ms("250 ", &out), 0);
  ck_assert_uint_eq(out, 250);
  ck_assert_int_eq(cg_parse_ms(" 2s\t", &out), 0);
  ck_assert_uint_eq(out, 2000);
  ck_assert_int_eq(cg_parse_ms("40ms\n", &out), 0);
  ck_assert_uint_eq(out, 40);
}
END_TEST

START_TEST(backoff_max_below_backoff)
{
  env_clear();
  env_set("CONNGUARD_BACKOFF_MS", "500");
  env_set("CONNGUARD_BACKOFF_MAX_MS", "200");
  load();
  assert_one_warning("BACKOFF_MAX_MS", "200", "500 (CONNGUARD_BACKOFF_MS)");
  ck_assert_uint_eq(cfg.backoff_ms, 500);
  ck_assert_uint_eq(cfg.backoff_max_ms, 500);
}
END_TEST

START_TEST(backoff_above_default_cap_is_not_a_bad_value)
{
  /* Only BACKOFF_MS is set, and it is valid: the default cap follows it, silently. */
  ck_assert_int_eq(load1("CONNGUARD_BACKOFF_MS", "5s"), 0);
  ck_assert_uint_eq(cfg.backoff_ms, 5000);
  ck_assert_uint_ge(cfg.backoff_max_ms, 5000);
}
END_TEST

START_TEST(bad_backoff_and_bad_cap_warn_once_each)
{
  env_clear();
  env_set("CONNGUARD_BACKOFF_MS", "banana");
  env_set("CONNGUARD_BACKOFF_MAX_MS", "-1");
  ck_assert_int_eq(load(), 2);
  ck_assert_ptr_nonnull(strstr(warn_lines[0], "CONNGUARD_BACKOFF_MS=\"banana\""));
  ck_assert_ptr_nonnull(strstr(warn_lines[1], "CONNGUARD_BACKOFF_MAX_MS=\"-1\""));
  assert_defaults_except(NULL);
}
END_TEST

START_TEST(jitter_names)
{
  static const struct { const char *v; enum cg_jitter j; } t[] = {
    { "full", CG_JITTER_FULL }, { "equal", CG_JITTER_EQUAL }, { "decorrelated", CG_JITTER_DECORRELATED },
    { "none", CG_JITTER_NONE }, { "NONE", CG_JITTER_NONE }, { "Equal", CG_JITTER_EQUAL },
  };
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
    ck_assert_int_eq(load1("CONNGUARD_JITTER", t[i].v), 0);
    ck_assert_int_eq(cfg.jitter, t[i].j);
    assert_defaults_except("JITTER");
  }
  ck_assert_str_eq(cg_jitter_name(CG_JITTER_DECORRELATED), "decorrelated");
  ck_assert_str_eq(cg_jitter_name(CG_JITTER_NONE), "none");
}
END_TEST

START_TEST(jitter_unknown_name)
{
  static const char *const bad[] = { "banana", "", "ful", "fullx", "random", "none ", "exponential" };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    load1("CONNGUARD_JITTER", bad[i]);
    assert_one_warning("JITTER", bad[i], "equal");
    ck_assert_ptr_nonnull(strstr(warn_lines[0], "full, equal, decorrelated or none"));
    assert_defaults_except(NULL);
  }
  /* The exact line, once, for the canonical example. */
  load1("CONNGUARD_JITTER", "banana");
  ck_assert_str_eq(warn_lines[0],
    "connguard: warning: CONNGUARD_JITTER=\"banana\": expected full, equal, decorrelated or none; using equal");
}
END_TEST

START_TEST(retry_on_lists)
{
  static const struct { const char *v; unsigned m; } t[] = {
    { "refused", CG_CLASS_REFUSED }, { "timeout", CG_CLASS_TIMEOUT }, { "reset", CG_CLASS_RESET },
    { "unreach", CG_CLASS_UNREACH }, { "refused,timeout,reset,unreach", 15 },
    { " refused , reset ", CG_CLASS_REFUSED | CG_CLASS_RESET }, { "none", 0 }, { "REFUSED", 1 },
    { "refused,refused", 1 },
  };
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
    ck_assert_int_eq(load1("CONNGUARD_RETRY_ON", t[i].v), 0);
    ck_assert_msg(cfg.retry_on == t[i].m, "'%s' -> %u", t[i].v, cfg.retry_on);
  }
  static const char *const bad[] = { "banana", "", "refused,", ",refused", "refused,,timeout",
                                     "refused timeout", "refused;timeout", "refusedx" };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    load1("CONNGUARD_RETRY_ON", bad[i]);
    assert_one_warning("RETRY_ON", bad[i], "refused,timeout");
    assert_defaults_except(NULL);
  }
}
END_TEST

START_TEST(patterns_in_only_and_skip)
{
  ck_assert_int_eq(load1("CONNGUARD_ONLY", "127.0.0.1:5432, *:443,[::1]:*"), 0);
  ck_assert_int_eq(cfg.only.n, 3);
  ck_assert_int_eq(cfg.only.has_unix, 0);
  ck_assert_int_eq(load1("CONNGUARD_ONLY", "unix:/run/app.sock"), 0);
  ck_assert_int_eq(cfg.only.has_unix, 1);
  ck_assert_int_eq(load1("CONNGUARD_SKIP", "*:6379"), 0);
  ck_assert_int_eq(cfg.skip.n, 1);

  load1("CONNGUARD_ONLY", "127.0.0.1:5432,banana");
  assert_one_warning("ONLY", "127.0.0.1:5432,banana", "no restriction");
  ck_assert_int_eq(cfg.only.n, 0);
  load1("CONNGUARD_SKIP", "localhost:80");
  assert_one_warning("SKIP", "localhost:80", "nothing skipped");
  ck_assert_int_eq(cfg.skip.n, 0);
}
END_TEST

START_TEST(empty_pattern_lists_are_the_default)
{
  /* The default of ONLY and SKIP is the empty list: setting it explicitly is not an error. */
  ck_assert_int_eq(load1("CONNGUARD_ONLY", ""), 0);
  ck_assert_int_eq(cfg.only.n, 0);
  ck_assert_int_eq(load1("CONNGUARD_SKIP", ""), 0);
  ck_assert_int_eq(load1("CONNGUARD_SKIP", "  "), 0);
  ck_assert_int_eq(cfg.skip.n, 0);
}
END_TEST

START_TEST(log_and_format)
{
  ck_assert_int_eq(load1("CONNGUARD_LOG", "/tmp/x.%p.log"), 0);
  ck_assert_str_eq(cfg.log, "/tmp/x.%p.log");
  ck_assert_int_eq(load1("CONNGUARD_LOG_FORMAT", "json"), 0);
  ck_assert_int_eq(cfg.log_format, CG_LOG_JSON);
  ck_assert_int_eq(load1("CONNGUARD_LOG_FORMAT", "TEXT"), 0);
  ck_assert_int_eq(cfg.log_format, CG_LOG_TEXT);
  load1("CONNGUARD_LOG_FORMAT", "xml");
  assert_one_warning("LOG_FORMAT", "xml", "text");
  load1("CONNGUARD_LOG_FORMAT", "");
  assert_one_warning("LOG_FORMAT", "", "text");
  load1("CONNGUARD_LOG", "");
  assert_one_warning("LOG", "", "stderr");
  ck_assert_str_eq(cfg.log, "stderr");
}
END_TEST

START_TEST(bools)
{
  static const char *const on[] = { "1", "yes", "TRUE", "on" }, *const off[] = { "0", "no", "false", "OFF" };
  for (int i = 0; i < 4; i++) {
    ck_assert_int_eq(load1("CONNGUARD_STATS", off[i]), 0);
    ck_assert_int_eq(cfg.stats, 0);
    ck_assert_int_eq(load1("CONNGUARD_TLS", on[i]), 0);
    ck_assert_int_eq(cfg.tls, 1);
  }
  load1("CONNGUARD_STATS", "banana");
  assert_one_warning("STATS", "banana", "1");
  ck_assert_int_eq(cfg.stats, 1);
  load1("CONNGUARD_TLS", "2");
  assert_one_warning("TLS", "2", "1");
  load1("CONNGUARD_DISABLE", "maybe");
  assert_one_warning("DISABLE", "maybe", "0");
  ck_assert_int_eq(cfg.disable, 0);
  load1("CONNGUARD_LEAKS", "sometimes");
  assert_one_warning("LEAKS", "sometimes", "exit");
  ck_assert_int_eq(load1("CONNGUARD_LEAKS", "off"), 0);
  ck_assert_int_eq(cfg.leaks, CG_LEAKS_OFF);
  ck_assert_int_eq(load1("CONNGUARD_LEAKS", "all"), 0);
  ck_assert_int_eq(cfg.leaks, CG_LEAKS_ALL);
  ck_assert_int_eq(load1("CONNGUARD_LEAKS", "ALL"), 0);
  ck_assert_int_eq(cfg.leaks, CG_LEAKS_ALL);
  ck_assert_int_eq(load1("CONNGUARD_LEAKS", "exit"), 0);
  ck_assert_int_eq(cfg.leaks, CG_LEAKS_EXIT);
}
END_TEST

START_TEST(coordination_settings)
{
  ck_assert_int_eq(load1("CONNGUARD_COORDINATE", "off"), 0);
  ck_assert_int_eq(cfg.coordinate, 0);
  assert_defaults_except("COORDINATE");
  ck_assert_int_eq(load1("CONNGUARD_COORDINATE", "ON"), 0);
  ck_assert_int_eq(cfg.coordinate, 1);
  load1("CONNGUARD_COORDINATE", "sometimes");
  assert_one_warning("COORDINATE", "sometimes", "on");
  ck_assert_int_eq(cfg.coordinate, 1);
  ck_assert_int_eq(load1("CONNGUARD_COORD_DESTS", "16"), 0);
  ck_assert_uint_eq(cfg.coord_dests, 16);
  ck_assert_int_eq(load1("CONNGUARD_COORD_DESTS", "4096"), 0);
  ck_assert_uint_eq(cfg.coord_dests, 4096);
  static const char *const bad[] = { "15", "0", "4097", "-1", "lots", "" };
  for (int i = 0; i < 6; i++) {
    load1("CONNGUARD_COORD_DESTS", bad[i]);
    assert_one_warning("COORD_DESTS", bad[i], "256");
    assert_defaults_except(NULL);
  }
  ck_assert_int_eq(load1("CONNGUARD_COORD_KEEP_MS", "5s"), 0);
  ck_assert_uint_eq(cfg.coord_keep_ms, 5000);
  ck_assert_int_eq(load1("CONNGUARD_COORD_KEEP_MS", "0"), 0);
  ck_assert_uint_eq(cfg.coord_keep_ms, 0);
  load1("CONNGUARD_COORD_KEEP_MS", "a minute");
  assert_one_warning("COORD_KEEP_MS", "a minute", "60000");
  assert_defaults_except(NULL);
}
END_TEST

START_TEST(disable_ignores_everything_else)
{
  env_clear();
  env_set("CONNGUARD_DISABLE", "1");
  env_set("CONNGUARD_RETRIES", "banana");
  env_set("CONNGUARD_JITTER", "banana");
  ck_assert_int_eq(load(), 0);
  ck_assert_int_eq(cfg.disable, 1);
}
END_TEST

START_TEST(several_bad_values_one_line_each)
{
  env_clear();
  env_set("CONNGUARD_RETRIES", "banana");
  env_set("CONNGUARD_JITTER", "chaos");
  env_set("CONNGUARD_DEADLINE_MS", "-3");
  env_set("CONNGUARD_BACKOFF_MS", "20");
  ck_assert_int_eq(load(), 3);
  ck_assert_ptr_nonnull(strstr(warn_lines[0], "CONNGUARD_RETRIES"));
  ck_assert_ptr_nonnull(strstr(warn_lines[1], "CONNGUARD_JITTER"));
  ck_assert_ptr_nonnull(strstr(warn_lines[2], "CONNGUARD_DEADLINE_MS"));
  ck_assert_uint_eq(cfg.backoff_ms, 20);
  ck_assert_uint_eq(cfg.retries, CG_RETRIES_NONE);
}
END_TEST

/* A 1 MB value of the worst kind for each variable: one short warning line that still ends
 * with the value used. */
START_TEST(megabyte_values)
{
  size_t n = 1 << 20;
  char *digits = malloc(n + 1), *junk = malloc(n + 1);
  memset(digits, '1', n); digits[n] = 0;
  for (size_t i = 0; i < n; i++) junk[i] = (char)(0x80 | (i & 0x7f));
  junk[n] = 0;
  static const struct { const char *var, *used; } vars[] = {
    { "RETRIES", "none" }, { "BACKOFF_MS", "100" }, { "BACKOFF_MAX_MS", "2000" }, { "JITTER", "equal" },
    { "CONNECT_TIMEOUT_MS", "5000" }, { "DEADLINE_MS", "10000" }, { "RETRY_ON", "refused,timeout" },
    { "ONLY", "no restriction" }, { "SKIP", "nothing skipped" }, { "LOG", "stderr" },
    { "LOG_FORMAT", "text" }, { "STACK_DEPTH", "16" }, { "LEAKS", "exit" }, { "LEAK_EXITCODE", "0" },
    { "LEAK_AGE_MS", "30000" }, { "SUPPRESSIONS", "none" }, { "STATS", "1" }, { "TLS", "1" },
    { "DISABLE", "0" }, { "COORDINATE", "on" }, { "COORD_DESTS", "256" }, { "COORD_KEEP_MS", "60000" },
  };
  for (size_t v = 0; v < sizeof vars / sizeof vars[0]; v++) {
    char name[64];
    snprintf(name, sizeof name, "CONNGUARD_%s", vars[v].var);
    for (int k = 0; k < 2; k++) {
      load1(name, k ? junk : digits);
      assert_one_warning(vars[v].var, k ? "\\x80\\x81" : "1111111111", vars[v].used);
      ck_assert_ptr_nonnull(strstr(warn_lines[0], "...\" (truncated)"));
      assert_defaults_except(NULL);
    }
  }
  free(digits);
  free(junk);
}
END_TEST

START_TEST(warning_escapes_control_bytes)
{
  load1("CONNGUARD_RETRIES", "a\nb\"c\x1b");
  ck_assert_int_eq(nwarn, 1);
  ck_assert_ptr_nonnull(strstr(warn_lines[0], "CONNGUARD_RETRIES=\"a\\x0ab\\x22c\\x1b\""));
  ck_assert_ptr_null(strchr(warn_lines[0], '\n'));
  ck_assert_ptr_null(strchr(warn_lines[0], '\x1b'));
}
END_TEST

START_TEST(null_warn_callback)
{
  env_clear();
  env_set("CONNGUARD_RETRIES", "banana");
  ck_assert_int_eq(cg_config_load(&cfg, fake_getenv, NULL, NULL), 1);
  ck_assert_uint_eq(cfg.retries, CG_RETRIES_NONE);
}
END_TEST

static Suite *suite(void)
{
  Suite *s = suite_create("config");
  TCase *t = tcase_create("config");
  tcase_add_test(t, defaults_without_environment);
  tcase_add_test(t, defaults_match_cg_vars);
  tcase_add_test(t, apply_without_environment_writes_nothing);
  tcase_add_test(t, counts_good);
  tcase_add_test(t, counts_bad_keep_default);
  tcase_add_test(t, durations_good);
  tcase_add_test(t, durations_bad_keep_default);
  tcase_add_test(t, zero_timeouts_are_bad);
  tcase_add_test(t, trailing_space_in_duration);
  tcase_add_test(t, backoff_max_below_backoff);
  tcase_add_test(t, backoff_above_default_cap_is_not_a_bad_value);
  tcase_add_test(t, bad_backoff_and_bad_cap_warn_once_each);
  tcase_add_test(t, jitter_names);
  tcase_add_test(t, jitter_unknown_name);
  tcase_add_test(t, retry_on_lists);
  tcase_add_test(t, patterns_in_only_and_skip);
  tcase_add_test(t, empty_pattern_lists_are_the_default);
  tcase_add_test(t, log_and_format);
  tcase_add_test(t, bools);
  tcase_add_test(t, coordination_settings);
  tcase_add_test(t, disable_ignores_everything_else);
  tcase_add_test(t, several_bad_values_one_line_each);
  tcase_add_test(t, megabyte_values);
  tcase_add_test(t, warning_escapes_control_bytes);
  tcase_add_test(t, null_warn_callback);
  suite_add_tcase(s, t);
  return s;
}

CG_TEST_MAIN(suite)
