/* Parsed CONNGUARD_* settings. Parsing is pure (takes a getenv-like function) so unit tests
 * and fuzzers drive it directly; the shim calls it once with secure_getenv. */
#ifndef CG_CONFIG_H
#define CG_CONFIG_H
#include <stdint.h>
#include <stddef.h>
#include <limits.h>
#include "pattern.h"

enum cg_jitter { CG_JITTER_FULL, CG_JITTER_EQUAL, CG_JITTER_DECORRELATED, CG_JITTER_NONE };
enum cg_class { CG_CLASS_NONE = 0, CG_CLASS_REFUSED = 1, CG_CLASS_TIMEOUT = 2,
                CG_CLASS_RESET = 4, CG_CLASS_UNREACH = 8 };
enum cg_logfmt { CG_LOG_TEXT, CG_LOG_JSON };
/* ALL: as EXIT, and the exit report also lists the open sockets it does not count as leaks. */
enum cg_leaks { CG_LEAKS_OFF, CG_LEAKS_EXIT, CG_LEAKS_ALL };

#define CG_MAX_STACK 64
/* CONNGUARD_RETRIES unset, empty or "none": no cap on the count, the deadline alone ends the
 * retries. */
#define CG_RETRIES_NONE UINT_MAX
/* Upper bound of the room kept for the last attempt at the end of the deadline. */
#define CG_LAST_SLOT_MAX_MS 250
#define CG_PATH_MAX 4096

struct cg_config {
  struct cg_patterns only;
  int disable;
  unsigned retries;             /* cap on retries after the first attempt, or CG_RETRIES_NONE */
  unsigned backoff_ms, backoff_max_ms;
  enum cg_jitter jitter;
  unsigned connect_timeout_ms, deadline_ms;
  unsigned retry_on;            /* mask of enum cg_class */
  enum cg_logfmt log_format;
  unsigned stack_depth;
  enum cg_leaks leaks;
  unsigned leak_exitcode;
  unsigned leak_age_ms;
  int stats;
  int tls;
  int watchdog;
  int coordinate;               /* CONNGUARD_COORDINATE */
  unsigned coord_dests, coord_keep_ms;
  int pystack;                  /* CONNGUARD_PYSTACK: Python frames in records */
  char log[CG_PATH_MAX];        /* "stderr" or a path template */
  struct cg_patterns skip;
  char suppressions[CG_PATH_MAX];
};

typedef const char *(*cg_getenv_fn)(const char *name);
/* Receives each warning line (no trailing newline). */
typedef void (*cg_warn_fn)(const char *line, void *arg);

/* The defaults (cg_vars.h), as a static initialiser: the shim's copy starts with them in its
 * data and is never written unless a variable is set (every page first written is a page fault
 * in every process). */
#define CG_CONFIG_INIT { \
    .retries = CG_RETRIES_NONE, .backoff_ms = 100, .backoff_max_ms = 2000, \
    .jitter = CG_JITTER_EQUAL, .connect_timeout_ms = 5000, .deadline_ms = 10000, \
    .retry_on = CG_CLASS_REFUSED | CG_CLASS_TIMEOUT, .log_format = CG_LOG_TEXT, \
    .stack_depth = 16, .leaks = CG_LEAKS_EXIT, .leak_age_ms = 30000, .stats = 1, .tls = 1, \
    .watchdog = 1, .coordinate = 1, .coord_dests = 256, .coord_keep_ms = 60000, .pystack = 1, \
    .log = "stderr" }

void cg_config_defaults(struct cg_config *c);
/* Fills c from the environment; every bad value gives exactly one warn() call naming the
 * variable and the value used instead. Returns the number of warnings. Never fails. */
int cg_config_load(struct cg_config *c, cg_getenv_fn get, cg_warn_fn warn, void *warn_arg);
/* The same over what c already holds (the defaults, for the shim's copy): writes only what a
 * variable sets. */
int cg_config_apply(struct cg_config *c, cg_getenv_fn get, cg_warn_fn warn, void *warn_arg);

/* Individual parsers, exported for tests. Return 0 on success, -1 on a bad value. */
int cg_parse_count(const char *s, unsigned max, unsigned *out);
/* A count from 0 to 1000, or empty / "none" (CG_RETRIES_NONE). */
int cg_parse_retries(const char *s, unsigned *out);
int cg_parse_ms(const char *s, unsigned *out);
int cg_parse_bool(const char *s, int *out);
int cg_parse_jitter(const char *s, enum cg_jitter *out);
int cg_parse_retry_on(const char *s, unsigned *out);
const char *cg_jitter_name(enum cg_jitter j);

#endif
