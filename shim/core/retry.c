/* The retry decision: whether another attempt follows a failure, after what backoff, and the
 * time bounds of a connect and of each attempt. Every path (blocking, non-blocking, the
 * synchronous drive) asks here; change the policy here only. The wait itself is backoff.c. */
#include "engine_int.h"
#include "policy.h"
#include "rawsys.h"

static uint64_t rnd(void)
{
  static __thread uint64_t st;
  if (!st) st = (uint64_t)cg_mono_ns() ^ ((uint64_t)cg_syscall(SYS_gettid) << 32) ^ (uint64_t)(uintptr_t)&st;
  return cg_rand_next(&st);
}

/* Decides, before anything is consumed, whether another attempt may follow attempt e->attempt.
 * Returns NULL (yes, *delay set) or the reason for giving up. */
const char *cg_may_retry(struct cg_conn *e, int64_t now, int64_t budget_end, unsigned *delay)
{
  const struct sockaddr *a = (const struct sockaddr *)&e->addr;
  if (!cg_retries_left(&cg_cfg, e->attempt)) return "retries_exhausted";
  if (cg_has_fallback(a, e->addrlen)) return "fallback_address";
  /* This destination, or another address of its name, used up a deadline just now. */
  if (e->attempt == 1 && cg_name_spent(a, e->addrlen, now)) return "deadline";
  /* The schedule (policy.c) ends with an attempt in the deadline's last slot. */
  if (cg_retry_delay(&cg_cfg, e->attempt, e->prev_delay_ms, rnd(), budget_end - now, delay)) {
    cg_note_spent(a, e->addrlen, now);
    return "deadline";
  }
  return NULL;
}

int64_t cg_budget_end(struct cg_conn *e)
{
  return e->t_start_ns + (int64_t)cg_cfg.deadline_ms * MS_NS;
}

/* The per-attempt timeout exists to retry a timeout: with timeout left out of
 * CONNGUARD_RETRY_ON, an attempt is cut only by the deadline, and only one the shim started. */

int64_t cg_attempt_end(struct cg_conn *e)
{
  int64_t b = cg_budget_end(e);
  if (!cg_timeouts_retried()) return b;
  int64_t a = e->t_attempt_ns + (int64_t)cg_cfg.connect_timeout_ms * MS_NS;
  return a < b ? a : b;
}

/* Why a PASSED entry got no retry: the checks of cg_may_retry, in its order. */
const char *cg_pass_reason(struct cg_conn *e)
{
  if (!cg_retries_left(&cg_cfg, e->attempt)) return "retries_exhausted";
  if (cg_has_fallback((const struct sockaddr *)&e->addr, e->addrlen)) return "fallback_address";
  return "deadline";
}
