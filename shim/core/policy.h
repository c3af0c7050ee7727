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
/* xorshift64*: cheap per-thread randomness for jitter (not for anything secret). */
uint64_t cg_rand_next(uint64_t *state);

#endif
