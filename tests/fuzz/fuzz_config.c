/* The CONNGUARD_* parser: any set of variables with any values. Every warning is one line
 * naming a variable that is set, at most one per variable, bounded in length; the resulting
 * configuration keeps its invariants. */
#include "fuzz.h"
#include "cg_vars.h"
#include "config.h"

static const char *const fzc_names[] = {
#define X(n, k, d, doc) "CONNGUARD_" #n,
  CG_VARS(X)
#undef X
};
#define FZC_N (sizeof fzc_names / sizeof fzc_names[0])

static char *fzc_val[FZC_N];
static int fzc_warned[FZC_N];

static const char *fzc_get(const char *name)
{
  for (size_t i = 0; i < FZC_N; i++)
    if (!strcmp(name, fzc_names[i])) return fzc_val[i];
  return NULL;
}

static void fzc_warn(const char *line, void *arg)
{
  (void)arg;
  size_t n = strlen(line);
  FZ_CHECK(n < 320 && !memchr(line, '\n', n), "warning not one short line: %s", line);
  static const char head[] = "connguard: warning: ";
  FZ_CHECK(!strncmp(line, head, sizeof head - 1), "warning format: %s", line);
  const char *v = line + sizeof head - 1;
  size_t i;
  for (i = 0; i < FZC_N; i++) {
    size_t l = strlen(fzc_names[i]);
    if (!strncmp(v, fzc_names[i], l) && v[l] == '=') break;
  }
  FZ_CHECK(i < FZC_N, "warning names no variable: %s", line);
  FZ_CHECK(fzc_val[i] != NULL, "warning about a variable that is not set: %s", line);
  FZ_CHECK(!fzc_warned[i], "second warning about %s: %s", fzc_names[i], line);
  fzc_warned[i] = 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct fz f = { data, size };
  uint32_t present = (uint32_t)fz_u64(&f, 4);
  char *buf = malloc(size + FZC_N + 1), *p = buf;
  for (size_t i = 0; i < FZC_N; i++) {
    fzc_warned[i] = 0;
    fzc_val[i] = NULL;
    if (!(present >> i & 1)) continue;
    fzc_val[i] = p;
    p += fz_str(&f, p, size + 1) + 1;
  }
  struct cg_config c;
  int n = cg_config_load(&c, fzc_get, fzc_warn, NULL);
  int warned = 0;
  for (size_t i = 0; i < FZC_N; i++) warned += fzc_warned[i];
  FZ_CHECK(n == warned, "returned %d warnings, %d lines", n, warned);
  if (!c.disable) {
    FZ_CHECK((c.retries <= 1000 || c.retries == CG_RETRIES_NONE) && c.stack_depth <= CG_MAX_STACK && c.leak_exitcode <= 255, "ranges");
    FZ_CHECK(c.backoff_ms <= c.backoff_max_ms, "backoff %u > max %u", c.backoff_ms, c.backoff_max_ms);
    FZ_CHECK(c.connect_timeout_ms > 0 && c.deadline_ms > 0, "zero timeout");
    FZ_CHECK((unsigned)c.jitter <= CG_JITTER_NONE && (unsigned)c.log_format <= CG_LOG_JSON, "enums");
    FZ_CHECK(memchr(c.log, 0, sizeof c.log) && c.log[0], "log path");
    FZ_CHECK(memchr(c.suppressions, 0, sizeof c.suppressions) != NULL, "suppressions path");
    FZ_CHECK(c.only.n >= 0 && c.only.n <= CG_MAX_PATTERNS && c.skip.n >= 0 && c.skip.n <= CG_MAX_PATTERNS, "patterns");
  }
  free(buf);
  return 0;
}
