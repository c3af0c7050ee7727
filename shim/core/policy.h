/* What is safe to retry, how long to wait, and what a failure most likely means. */
#ifndef CG_POLICY_H
#define CG_POLICY_H
#include <stdint.h>
#include <sys/socket.h>
#include "config.h"

/* Class of a connect() errno for a given address family. CG_CLASS_NONE = never retried. */
unsigned cg_errno_class(int err, int family);
/* EINTR, EINPROGRESS, EALREADY, EISCONN, EAGAIN on TCP: not failures. */
int cg_errno_is_progress(int err, int family);
/* Symbolic name ("ECONNREFUSED"), or NULL for an unknown number. */
const char *cg_errno_name(int err);
/* One-line explanation of the likely cause. Never NULL. */
const char *cg_errno_hint(int err, int family);

/* Backoff before retry number n (1 = first retry). prev_ms is the previous delay (for
 * decorrelated jitter; 0 on the first). rnd is a uniform 64-bit random value. */
unsigned cg_backoff_ms(const struct cg_config *c, unsigned n, unsigned prev_ms, uint64_t rnd);
/* The wait before attempt n+1, once attempt n (1 = the first) has failed with left_ns of the
 * deadline (CONNGUARD_DEADLINE_MS) left: the backoff of cg_backoff_ms, shortened when it would
 * run into the last stretch of the deadline (cg_last_slot_ms) so that one last attempt starts
 * there rather than the budget's end going unused. Returns 0 with *delay_ms set, or -1 when an
 * attempt started now would already be in that last stretch (give up: "deadline"). The count
 * cap (CONNGUARD_RETRIES) is the caller's, with cg_retries_left. */
int cg_retry_delay(const struct cg_config *c, unsigned n, unsigned prev_ms, uint64_t rnd,
                   int64_t left_ns, unsigned *delay_ms);
/* The room kept at the end of the deadline for the last attempt itself: min(250 ms, 1/10 of it), at least 1 ms. */
unsigned cg_last_slot_ms(const struct cg_config *c);
/* Whether CONNGUARD_RETRIES lets attempt n be followed by another. */
static inline int cg_retries_left(const struct cg_config *c, unsigned n)
{
  return c->retries == CG_RETRIES_NONE || n <= c->retries;
}
/* xorshift64*: cheap per-thread randomness for jitter (not for anything secret). */
uint64_t cg_rand_next(uint64_t *state);

#endif
