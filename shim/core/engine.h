/* The retry engine. Hooks in shim/hooks/ are thin wrappers around these functions.
 *
 * Blocking sockets: connect() retries in place, each attempt bounded by
 * CONNGUARD_CONNECT_TIMEOUT_MS through a temporary SO_SNDTIMEO (never longer than the
 * program's own SO_SNDTIMEO), all attempts by CONNGUARD_DEADLINE_MS.
 *
 * Non-blocking sockets: connect() returns EINPROGRESS as usual and the fd becomes "active".
 * When poll/select/epoll report the failure, the engine reads SO_ERROR, hides the event and
 * schedules the next attempt; the wait continues on the program's other fds, so an event loop
 * is never frozen. Failures the program reads before a multiplexer saw them (getsockopt
 * SO_ERROR, a second "status check" connect) are retried synchronously, bounded by the deadline.
 * When no retry is left, the error stays in the kernel and the program reads it itself.
 *
 * Files (internal declarations in engine_int.h):
 *   engine.c         configuration and init, fork; what every path shares: eligibility
 *                    (cg_eligible, cg_dst_wanted), socket reset, failure/recovery records
 *   retry.c          THE retry decision: cg_may_retry (retry or give up, and the backoff
 *                    delay), cg_pass_reason (its mirror), the budget and per-attempt bounds
 *                    (cg_budget_end, cg_attempt_end). Every path decides through it.
 *   backoff.c        THE backoff wait when a connect waits in place: cg_backoff_sleep
 *                    (blocking connect), cg_sleep_until (synchronous drive of a non-blocking
 *                    one). In an event loop the next attempt is due at e->t_next_ns instead,
 *                    set by cg_nb_failure from cg_may_retry's delay, and started by cg_nb_tick.
 *   connect_block.c  connect()'s body (cg_connect): the first attempt of every connect, its
 *                    bound (SO_SNDTIMEO or watchdog), and the blocking retry loop
 *   connect_nb.c     the non-blocking state machine: taking a connect on (cg_nb_start),
 *                    failures (cg_nb_failure), next attempts (cg_nb_tick), the program's
 *                    getsockopt(SO_ERROR) and second connect() on it
 *   evloop.c         poll/select/epoll hooks' bodies: hide waiting fds, filter revents
 *   fallback.c       getaddrinfo results and loopback listeners (cg_has_fallback) */
#ifndef CG_ENGINE_H
#define CG_ENGINE_H
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include "config.h"

extern struct cg_config cg_cfg;
extern int cg_enabled;                  /* 0 until init, and when CONNGUARD_DISABLE=1 */
extern __thread int cg_in_hook;         /* recursion guard */

/* Reads the configuration (secure_getenv), sets up log, stack and stats. Idempotent; inline:
 * every socket and connect asks. */
extern atomic_int cg_init_state;
void cg_init_slow(void);
static inline void cg_init(void)
{
  if (__builtin_expect(atomic_load_explicit(&cg_init_state, memory_order_acquire) != 2, 0)) cg_init_slow();
}
static inline int cg_active(void) { return cg_enabled && !cg_in_hook; }

int cg_connect(int fd, const struct sockaddr *addr, socklen_t len);
/* connect() on a TCP socket made here whose connect we saw succeed: the kernel answers at once
 * (the status check after a non-blocking connect, as ab and apr do: 0, then EISCONN) and starts
 * no attempt, so there is nothing to bound, retry or note (the socket's peer stays the one it
 * connected to). Returns 1 with the kernel's answer in *r (counted as an attempt, as before),
 * or 0 (not such a call: cg_connect). A disconnect (AF_UNSPEC) is not one: it goes the whole
 * way and leaves the state SOCKET. */
int cg_connect_recheck(int fd, const struct sockaddr *addr, socklen_t len, int *r);
int cg_getsockopt(int fd, int level, int opt, void *val, socklen_t *len);
/* timeout_ns < 0: infinite. use_ppoll selects ppoll (with mask) for the real call. */
int cg_poll(struct pollfd *fds, nfds_t n, int64_t timeout_ns, const sigset_t *mask, int use_ppoll);
/* tv/ts: NULL = infinite. Exactly one of tv (select) or ts (pselect) is used. */
int cg_select(int nfds, fd_set *r, fd_set *w, fd_set *x, struct timeval *tv,
              const struct timespec *ts, const sigset_t *mask, int is_pselect);
int cg_epoll_wait(int epfd, struct epoll_event *ev, int max, int64_t timeout_ns,
                  const sigset_t *mask, int variant);
int cg_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev);
/* getaddrinfo results: remembered so that a client with another address to try is not held
 * back retrying this one (curl happy eyeballs, python create_connection). */
void cg_note_addrinfo(const void *res);
/* 1 when the client will fall back on its own: a loopback destination whose sibling on the
 * other family listens, or another destination that a recent lookup result lists before
 * another address. */
int cg_has_fallback(const struct sockaddr *sa, socklen_t len);

void cg_after_fork_child(void);
/* setsockopt() seen: once the program sets SO_SNDTIMEO anywhere, connect asks the kernel for it. */
void cg_note_setsockopt(int level, int opt);

#endif
