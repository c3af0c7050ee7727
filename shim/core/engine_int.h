/* Declarations shared by the engine's files (engine.h has the file map). Not for hooks. */
#ifndef CG_ENGINE_INT_H
#define CG_ENGINE_INT_H
#include "rawsys.h"
#include "engine.h"
#include "clock.h"
#include "fdtable.h"
#include "coord.h"
#include "real.h"
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>

#define INF INT64_MAX
#define MS_NS 1000000LL

/* ---------- the real calls (before dlsym is done, the raw system call) ---------- */

static inline int r_connect(int fd, const struct sockaddr *a, socklen_t l)
{
  return cg_real.connect ? cg_real.connect(fd, a, l) : (int)cg_syscall(SYS_connect, fd, a, l);
}

static inline int r_getsockopt(int fd, int lv, int o, void *v, socklen_t *l)
{
  return cg_real.getsockopt ? cg_real.getsockopt(fd, lv, o, v, l) : (int)cg_syscall(SYS_getsockopt, fd, lv, o, v, l);
}

static inline int r_setsockopt(int fd, int lv, int o, const void *v, socklen_t l)
{
  return cg_real.setsockopt ? cg_real.setsockopt(fd, lv, o, v, l) : (int)cg_syscall(SYS_setsockopt, fd, lv, o, v, l);
}

/* One fd's poll revents (> 0), 0 on timeout, or -1; never through the program's hooks. */
static inline int r_poll1(int fd, short events, int64_t timeout_ns)
{
  struct pollfd p = { fd, events, 0 };
  struct timespec ts, *tp = NULL;
  if (timeout_ns >= 0) { ts.tv_sec = timeout_ns / 1000000000; ts.tv_nsec = timeout_ns % 1000000000; tp = &ts; }
  int r = (int)cg_syscall(SYS_ppoll, &p, 1, tp, NULL, 8);
  return r > 0 ? p.revents : r;
}

static inline int so_error(int fd)
{
  int e = 0;
  socklen_t l = sizeof e;
  if (r_getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &l) < 0) return 0;
  return e;
}

static inline int family_of(const struct sockaddr *a, socklen_t l)
{
  return a && l >= sizeof(sa_family_t) ? a->sa_family : AF_UNSPEC;
}

/* ---------- engine.c: shared ---------- */

/* Resets a socket whose connect failed or is still in SYN_SENT, so it can connect again. */
void cg_reset_socket(int fd);
/* Whether the destination is one we may retry, from the address alone (no system call). */
int cg_dst_wanted(const struct sockaddr *a, socklen_t l);
/* Whether connect() on fd to this destination is the shim's business at all. */
int cg_eligible(int fd, const struct sockaddr *a, socklen_t l);
void cg_count_failure(int err);
enum { ACT_RETRY, ACT_GIVE_UP };
/* py: the Python stack taken at connect() (a failure seen later, in poll or getsockopt, is
 * reported with the frames that asked for the connection), or 0 to read the caller's now. */
void cg_log_failure(int fd, const struct sockaddr *a, socklen_t l, int err, unsigned attempt,
                    int action, unsigned delay_ms, int64_t elapsed_ns, const char *reason,
                    const uintptr_t *pcs, int npcs, uint32_t py);
void cg_log_recovered(int fd, const struct sockaddr *a, socklen_t l, unsigned attempts, int64_t elapsed_ns,
                      uint32_t py);

/* ---------- retry.c: the retry decision (the one place) ---------- */
/* e: the connect's in-flight record (fdtable.h), or a blocking connect's own on its stack. */

/* Decides, before anything is consumed, whether another attempt may follow attempt e->attempt.
 * Returns NULL (yes, *delay set: the backoff before it) or the reason for giving up. */
const char *cg_may_retry(struct cg_conn *e, int64_t now, int64_t budget_end, unsigned *delay);
/* Why a PASSED entry got no retry: the checks of cg_may_retry, in its order. */
const char *cg_pass_reason(struct cg_conn *e);
/* When all attempts of this connect must be over (CONNGUARD_DEADLINE_MS). */
int64_t cg_budget_end(struct cg_conn *e);
/* When the current attempt is cut (CONNGUARD_CONNECT_TIMEOUT_MS, within the budget). */
int64_t cg_attempt_end(struct cg_conn *e);
/* Whether timeouts are retried at all (CONNGUARD_RETRY_ON has timeout). */
static inline int cg_timeouts_retried(void) { return (cg_cfg.retry_on & CG_CLASS_TIMEOUT) != 0; }

/* ---------- backoff.c: the backoff wait (the one place) ---------- */

/* Blocking connect: waits until monotonic t. Returns 0 when a signal without SA_RESTART ended
 * the wait (the program's alarm() timeout), 1 otherwise. */
int cg_backoff_sleep(int64_t t);
/* Synchronous drive of a non-blocking connect: waits until t; signals do not cut it short. */
void cg_sleep_until(int64_t t);
/* Whether every caught signal has SA_RESTART. */
int cg_all_handlers_restart(void);
/* CONNGUARD_COORDINATE (coord.h): until when a connect whose attempt number `attempt` just
 * failed may wait for the destination's shared schedule instead of its own: when its own
 * schedule would have made its last attempt (the budget's last stretch, or sooner when
 * CONNGUARD_RETRIES runs out first). Computed once per connect. */
int64_t cg_coord_limit(unsigned attempt, int64_t now, int64_t start, int64_t budget_end);
/* Blocking connect: the backoff before the next attempt, shared with every process waiting to
 * retry the destination (one probe attempts, the others are woken by its outcome), or alone
 * (cg_backoff_sleep) when not coordinated. Returns as cg_backoff_sleep. */
int cg_backoff_shared(struct cg_coord_ticket *t, const struct sockaddr *a, socklen_t l, unsigned attempt,
                      unsigned delay_ms, int64_t now, int64_t start, int64_t budget_end);

/* ---------- fallback.c ---------- */

/* The addresses of one name share one deadline: a connect to one of them gave up at its
 * deadline (cg_note_spent), so a first failure on any of them soon after gives up at once. */
void cg_note_spent(const struct sockaddr *sa, socklen_t len, int64_t now);
int cg_name_spent(const struct sockaddr *sa, socklen_t len, int64_t now);

void cg_fallback_after_fork(void);

/* ---------- connect_nb.c: the non-blocking state machine ---------- */

enum { F_RETRY, F_PASS, F_FAILED };
/* A failure of the current attempt is visible (err == 0: still in the kernel, unread). Entry
 * locked. Returns F_RETRY (next attempt scheduled), F_FAILED (pending_err set) or F_PASS. */
int cg_nb_failure(int fd, struct cg_fd *e, int err, int timed_out);
/* The current attempt connected. Entry locked. */
void cg_nb_connected(int fd, struct cg_fd *e);
/* Moves a locked, active entry to state `to`; 0 when close() got there first. */
int cg_nb_move(int fd, struct cg_fd *e, unsigned to);
/* Time-driven work: due retries and attempt timeouts, as of now (monotonic, the caller's
 * reading: an event loop's wait reads the clock once). Returns when something is next due. */
int64_t cg_nb_tick(int64_t now);
/* The first attempt of an eligible non-blocking connect is in progress (err EINPROGRESS, or
 * EINTR): take it on. */
void cg_nb_start(int fd, const struct sockaddr *a, socklen_t l, int err, int64_t t0);
/* Whether connect(fd, a, l) is the program asking again about a connect we track (state st0). */
int cg_nb_is_again(struct cg_fd *e, unsigned st0, const struct sockaddr *a, socklen_t l);
int cg_nb_connect_again(int fd, struct cg_fd *e, unsigned st0, const struct sockaddr *a, socklen_t l);

#endif
