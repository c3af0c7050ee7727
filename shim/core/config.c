#include "config.h"
#include "cg_vars.h"
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* Longest value echoed back in a warning: a 1 MB value must still give one short line. */
#define CG_ECHO_MAX 40

static const char *default_of(const char *name)
{
#define X(n, k, d, doc) if (strcmp(name, #n) == 0) return d;
  CG_VARS(X)
#undef X
  return "";
}

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

int cg_parse_count(const char *s, unsigned max, unsigned *out)
{
  if (!s) return -1;
  while (is_space(*s)) s++;
  if (!*s) return -1;
  unsigned long v = 0;
  const char *p = s;
  while (*p >= '0' && *p <= '9') {
    v = v * 10 + (unsigned long)(*p - '0');
    if (v > max) return -1;
    p++;
  }
  if (p == s) return -1;
  while (is_space(*p)) p++;
  if (*p) return -1;
  *out = (unsigned)v;
  return 0;
}

int cg_parse_retries(const char *s, unsigned *out)
{
  if (!s) return -1;
  while (is_space(*s)) s++;
  size_t n = strlen(s);
  while (n && is_space(s[n - 1])) n--;
  /* Empty counts as unset: `CONNGUARD_RETRIES= prog` is how a shell clears a value. */
  if (n == 0 || (n == 4 && !strncasecmp(s, "none", 4))) { *out = CG_RETRIES_NONE; return 0; }
  return cg_parse_count(s, 1000, out);
}

/* N (milliseconds), Nms, Ns, or a decimal with s (1.5s). Capped at one day. */
int cg_parse_ms(const char *s, unsigned *out)
{
  const unsigned long long cap = 86400000ULL;
  if (!s) return -1;
  while (is_space(*s)) s++;
  unsigned long long ip = 0, frac = 0, scale = 1;
  const char *p = s;
  int digits = 0;
  while (*p >= '0' && *p <= '9') {
    ip = ip * 10 + (unsigned)(*p - '0');
    if (ip > cap) return -1;
    p++; digits++;
  }
  if (*p == '.') {
    p++;
    while (*p >= '0' && *p <= '9') {
      if (scale < 1000000) { frac = frac * 10 + (unsigned)(*p - '0'); scale *= 10; }
      p++; digits++;
    }
  }
  if (!digits) return -1;
  /* Trailing blanks are allowed, as for counts (values pasted from YAML or a shell). */
  char unit[8];
  size_t ul = 0;
  while (*p && !is_space(*p) && ul < sizeof unit - 1) unit[ul++] = *p++;
  unit[ul] = 0;
  while (is_space(*p)) p++;
  if (*p) return -1;
  p = unit;
  unsigned long long ms;
  if (strcmp(p, "s") == 0 || strcmp(p, "sec") == 0) {
    ms = ip * 1000 + frac * 1000 / scale;
  } else if (*p == 0 || strcmp(p, "ms") == 0) {
    if (scale != 1) return -1;   /* fractions of a millisecond are not a duration we keep */
    ms = ip;
  } else {
    return -1;
  }
  if (ms > cap) return -1;
  *out = (unsigned)ms;
  return 0;
}

int cg_parse_bool(const char *s, int *out)
{
  if (!s) return -1;
  if (!strcmp(s, "1") || !strcasecmp(s, "yes") || !strcasecmp(s, "true") || !strcasecmp(s, "on")) { *out = 1; return 0; }
  if (!strcmp(s, "0") || !strcasecmp(s, "no") || !strcasecmp(s, "false") || !strcasecmp(s, "off")) { *out = 0; return 0; }
  return -1;
}

static const char *const jitter_names[] = { "full", "equal", "decorrelated", "none" };

const char *cg_jitter_name(enum cg_jitter j)
{
  return (unsigned)j < 4 ? jitter_names[j] : "?";
}

int cg_parse_jitter(const char *s, enum cg_jitter *out)
{
  if (!s) return -1;
  for (unsigned i = 0; i < 4; i++)
    if (!strcasecmp(s, jitter_names[i])) { *out = (enum cg_jitter)i; return 0; }
  return -1;
}

int cg_parse_retry_on(const char *s, unsigned *out)
{
  static const struct { const char *n; unsigned m; } names[] = {
    { "refused", CG_CLASS_REFUSED }, { "timeout", CG_CLASS_TIMEOUT },
    { "reset", CG_CLASS_RESET }, { "unreach", CG_CLASS_UNREACH },
  };
  if (!s) return -1;
  unsigned m = 0;
  const char *p = s;
  for (;;) {
    while (is_space(*p)) p++;
    const char *e = p;
    while (*e && *e != ',' && !is_space(*e)) e++;
    size_t n = (size_t)(e - p);
    unsigned found = 0;
    for (unsigned i = 0; i < 4; i++)
      if (strlen(names[i].n) == n && !strncasecmp(p, names[i].n, n)) found = names[i].m;
    if (!found && !(n == 4 && !strncasecmp(p, "none", 4))) return -1;
    m |= found;
    while (is_space(*e)) e++;
    if (!*e) break;
    if (*e != ',') return -1;
    p = e + 1;
  }
  *out = m;
  return 0;
}

struct warn_ctx { cg_warn_fn fn; void *arg; int count; };

static void warn_bad(struct warn_ctx *w, const char *name, const char *val, const char *why, const char *used)
{
  char line[320], shown[CG_ECHO_MAX * 4 + 8];
  size_t n = 0, len = strlen(val);
  /* Echo at most CG_ECHO_MAX bytes, with control and non-ASCII bytes escaped. */
  for (size_t i = 0; i < len && i < CG_ECHO_MAX; i++) {
    unsigned char c = (unsigned char)val[i];
    if (c >= 0x20 && c < 0x7f && c != '"') shown[n++] = (char)c;
    else n += (size_t)snprintf(shown + n, 5, "\\x%02x", c);
  }
  if (len > CG_ECHO_MAX) { memcpy(shown + n, "...", 3); n += 3; }
  shown[n] = 0;
  snprintf(line, sizeof line, "connguard: warning: CONNGUARD_%s=\"%s\"%s: %s; using %s",
           name, shown, len > CG_ECHO_MAX ? " (truncated)" : "", why, used);
  w->count++;
  if (w->fn) w->fn(line, w->arg);
}

__attribute__((cold)) void cg_config_defaults(struct cg_config *c)
{
  *c = (struct cg_config)CG_CONFIG_INIT;
}

__attribute__((cold)) int cg_config_load(struct cg_config *c, cg_getenv_fn get, cg_warn_fn warn, void *warn_arg)
{
  cg_config_defaults(c);
  return cg_config_apply(c, get, warn, warn_arg);
}

__attribute__((cold)) int cg_config_apply(struct cg_config *c, cg_getenv_fn get, cg_warn_fn warn, void *warn_arg)
{
  struct warn_ctx w = { warn, warn_arg, 0 };
  char used[64];
  const char *v;

#define GET(name) (v = get("CONNGUARD_" #name))
#define USED_DEFAULT(name) default_of(#name)

  if (GET(DISABLE) && cg_parse_bool(v, &c->disable))
    warn_bad(&w, "DISABLE", v, "expected 0 or 1", USED_DEFAULT(DISABLE));
  if (c->disable) return w.count;

  if (GET(RETRIES) && cg_parse_retries(v, &c->retries))
    warn_bad(&w, "RETRIES", v, "expected a count from 0 to 1000, or none", USED_DEFAULT(RETRIES));
  if (GET(BACKOFF_MS) && cg_parse_ms(v, &c->backoff_ms))
    warn_bad(&w, "BACKOFF_MS", v, "expected a duration (N, Nms or Ns)", USED_DEFAULT(BACKOFF_MS));
  int max_set = 0;
  if (GET(BACKOFF_MAX_MS)) {
    if (cg_parse_ms(v, &c->backoff_max_ms))
      warn_bad(&w, "BACKOFF_MAX_MS", v, "expected a duration (N, Nms or Ns)", USED_DEFAULT(BACKOFF_MAX_MS));
    else
      max_set = 1;
  }
  /* A first delay above the default cap is a valid choice: the cap follows it silently. Only
   * a cap the user set below the first delay is worth a warning. */
  if (c->backoff_max_ms < c->backoff_ms && !max_set) c->backoff_max_ms = c->backoff_ms;
  if (c->backoff_max_ms < c->backoff_ms) {
    snprintf(used, sizeof used, "%u (CONNGUARD_BACKOFF_MS)", c->backoff_ms);
    char cur[32];
    snprintf(cur, sizeof cur, "%u", c->backoff_max_ms);
    warn_bad(&w, "BACKOFF_MAX_MS", cur, "below CONNGUARD_BACKOFF_MS", used);
    c->backoff_max_ms = c->backoff_ms;
  }
  if (GET(JITTER) && cg_parse_jitter(v, &c->jitter))
    warn_bad(&w, "JITTER", v, "expected full, equal, decorrelated or none", USED_DEFAULT(JITTER));
  if (GET(CONNECT_TIMEOUT_MS) && (cg_parse_ms(v, &c->connect_timeout_ms) || c->connect_timeout_ms == 0)) {
    c->connect_timeout_ms = 5000;
    warn_bad(&w, "CONNECT_TIMEOUT_MS", v, "expected a positive duration (N, Nms or Ns)", USED_DEFAULT(CONNECT_TIMEOUT_MS));
  }
  if (GET(DEADLINE_MS) && (cg_parse_ms(v, &c->deadline_ms) || c->deadline_ms == 0)) {
    c->deadline_ms = 10000;
    warn_bad(&w, "DEADLINE_MS", v, "expected a positive duration (N, Nms or Ns)", USED_DEFAULT(DEADLINE_MS));
  }
  if (GET(RETRY_ON) && cg_parse_retry_on(v, &c->retry_on))
    warn_bad(&w, "RETRY_ON", v, "expected a list of refused, timeout, reset, unreach", USED_DEFAULT(RETRY_ON));
  if (GET(ONLY) && cg_patterns_parse(v, &c->only))
    warn_bad(&w, "ONLY", v, "expected patterns like 127.0.0.1:5432, *:443, [::1]:*, unix:/path", "no restriction");
  if (GET(SKIP) && cg_patterns_parse(v, &c->skip))
    warn_bad(&w, "SKIP", v, "expected patterns like 127.0.0.1:5432, *:443, [::1]:*, unix:/path", "nothing skipped");
  if (GET(LOG)) {
    if (!*v || strlen(v) >= sizeof c->log)
      warn_bad(&w, "LOG", v, *v ? "path too long" : "empty", USED_DEFAULT(LOG));
    else
      strcpy(c->log, v);
  }
  if (GET(LOG_FORMAT)) {
    if (!strcasecmp(v, "text")) c->log_format = CG_LOG_TEXT;
    else if (!strcasecmp(v, "json")) c->log_format = CG_LOG_JSON;
    else warn_bad(&w, "LOG_FORMAT", v, "expected text or json", USED_DEFAULT(LOG_FORMAT));
  }
  if (GET(STACK_DEPTH) && cg_parse_count(v, CG_MAX_STACK, &c->stack_depth))
    warn_bad(&w, "STACK_DEPTH", v, "expected a count from 0 to 64", USED_DEFAULT(STACK_DEPTH));
  if (GET(LEAKS)) {
    if (!strcasecmp(v, "off") || !strcmp(v, "0")) c->leaks = CG_LEAKS_OFF;
    else if (!strcasecmp(v, "exit")) c->leaks = CG_LEAKS_EXIT;
    else if (!strcasecmp(v, "all")) c->leaks = CG_LEAKS_ALL;
    else warn_bad(&w, "LEAKS", v, "expected off, exit or all", USED_DEFAULT(LEAKS));
  }
  if (GET(LEAK_EXITCODE) && cg_parse_count(v, 255, &c->leak_exitcode))
    warn_bad(&w, "LEAK_EXITCODE", v, "expected an exit status from 0 to 255", USED_DEFAULT(LEAK_EXITCODE));
  if (GET(LEAK_AGE_MS) && cg_parse_ms(v, &c->leak_age_ms))
    warn_bad(&w, "LEAK_AGE_MS", v, "expected a duration (N, Nms or Ns)", USED_DEFAULT(LEAK_AGE_MS));
  if (GET(PYSTACK)) {
    if (!strcasecmp(v, "on") || !strcmp(v, "1")) c->pystack = 1;
    else if (!strcasecmp(v, "off") || !strcmp(v, "0")) c->pystack = 0;
    else warn_bad(&w, "PYSTACK", v, "expected on or off", USED_DEFAULT(PYSTACK));
  }
  if (GET(SUPPRESSIONS)) {
    if (strlen(v) >= sizeof c->suppressions)
      warn_bad(&w, "SUPPRESSIONS", v, "path too long", "none");
    else
      strcpy(c->suppressions, v);
  }
  if (GET(STATS) && cg_parse_bool(v, &c->stats))
    warn_bad(&w, "STATS", v, "expected 0 or 1", USED_DEFAULT(STATS));
  if (GET(TLS) && cg_parse_bool(v, &c->tls))
    warn_bad(&w, "TLS", v, "expected 0 or 1", USED_DEFAULT(TLS));
  if (GET(WATCHDOG) && cg_parse_bool(v, &c->watchdog))
    warn_bad(&w, "WATCHDOG", v, "expected 0 or 1", USED_DEFAULT(WATCHDOG));
  if (GET(COORDINATE) && cg_parse_bool(v, &c->coordinate))
    warn_bad(&w, "COORDINATE", v, "expected on or off", USED_DEFAULT(COORDINATE));
  if (GET(COORD_DESTS) && (cg_parse_count(v, 4096, &c->coord_dests) || c->coord_dests < 16)) {
    c->coord_dests = 256;
    warn_bad(&w, "COORD_DESTS", v, "expected a count from 16 to 4096", USED_DEFAULT(COORD_DESTS));
  }
  if (GET(COORD_KEEP_MS) && cg_parse_ms(v, &c->coord_keep_ms))
    warn_bad(&w, "COORD_KEEP_MS", v, "expected a duration (N, Nms or Ns)", USED_DEFAULT(COORD_KEEP_MS));
#undef GET
#undef USED_DEFAULT
  return w.count;
}
