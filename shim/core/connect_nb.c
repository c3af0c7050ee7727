/* The non-blocking state machine. connect() returns EINPROGRESS as usual and the fd becomes
 * active (fdtable.h): CONNECTING until its result shows, in poll/select/epoll (evloop.c), in
 * the program's getsockopt(SO_ERROR) or in a second connect() on it. A retryable failure is
 * consumed and the fd WAITING (hidden from the program's multiplexers) until its next attempt,
 * which the time-driven work (cg_nb_tick) starts; the decision is retry.c's. */
#include "engine_int.h"
#include "pystack.h"
#include "log.h"
#include "policy.h"
#include "stack.h"
#include "stacktab.h"
#include "stats.h"
#include <string.h>
#include <sys/epoll.h>

static void epoll_readd(int fd, struct cg_fd *e, struct cg_conn *c)
{
  if (!c->ep_removed) return;
  c->ep_removed = 0;
  /* The registration may be written by an epoll_ctl() without the lock (evloop.c). */
  int epfd = __atomic_load_n(&e->ep_fd, __ATOMIC_RELAXED);
  struct epoll_event ev = { .events = __atomic_load_n(&e->ep_events, __ATOMIC_RELAXED),
                            .data.u64 = __atomic_load_n(&e->ep_data, __ATOMIC_RELAXED) };
  if (cg_real.epoll_ctl && epfd > 0) cg_real.epoll_ctl(epfd - 1, EPOLL_CTL_ADD, fd, &ev);
}

static void epoll_hide(int fd, struct cg_fd *e, struct cg_conn *c)
{
  /* A failed socket reports EPOLLHUP even with no events requested: while it waits for its
   * next attempt it must leave the set, or a level-triggered loop would spin. */
  int epfd = __atomic_load_n(&e->ep_fd, __ATOMIC_RELAXED);
  if (epfd > 0 && !c->ep_removed && cg_real.epoll_ctl) {
    if (cg_real.epoll_ctl(epfd - 1, EPOLL_CTL_DEL, fd, NULL) == 0) c->ep_removed = 1;
  }
}

/* close() does not take the entry lock (it may run in a signal handler, or in another thread
 * while we wait): it stores NONE at any time. An entry that is no longer active means the
 * program closed the fd under us; the number may already be a new descriptor of the program's,
 * so the engine must neither touch it nor bring the old state back to life. */
static int alive(struct cg_fd *e) { return cg_state_active(atomic_load(&e->state)); }

/* The stack where the program called connect(), from the shared table. */
static int conn_stack(const struct cg_conn *c, const uintptr_t **pcs)
{
  *pcs = 0;
  return c->stack_id ? cg_stacktab_get(c->stack_id, pcs) : 0;
}

/* What is due on a connect changed: the next tick takes its lock and looks (tick_hint). */
static inline void tick_look(struct cg_conn *c)
{
  atomic_store_explicit(&c->tick_hint, 0, memory_order_relaxed);
}

/* The tick has nothing to do on c before `work`; wake: the program's wait must end for it. */
static inline void tick_set(struct cg_conn *c, int64_t work, int wake)
{
  atomic_store_explicit(&c->tick_hint, work == INF ? INF - 1 : (work & ~(int64_t)1) | (wake != 0),
                        memory_order_relaxed);
}

/* Moves a locked, active entry to state `to`; 0 (and nothing changed) when close() got there
 * first. */
int cg_nb_move(int fd, struct cg_fd *e, unsigned to)
{
  unsigned s = atomic_load(&e->state);
  do {
    if (!cg_state_active(s)) return 0;
  } while (!atomic_compare_exchange_weak(&e->state, &s, to));
  struct cg_conn *c = cg_conn_of(e);
  if (c && cg_state_active(to)) tick_look(c);
  if (!cg_state_active(to)) cg_active_del(fd);
  return 1;
}

void cg_nb_connected(int fd, struct cg_fd *e)
{
  struct cg_conn *c = cg_conn_of(e);
  if (c && c->coord.d) cg_coord_success(&c->coord);   /* wakes the other waiters first */
  if (!c || !alive(e)) return;
  if (c->attempt > 1) cg_log_recovered(fd, (struct sockaddr *)&c->addr, c->addrlen, c->attempt, cg_mono_ns() - c->t_start_ns, c->cpystack);
  epoll_readd(fd, e, c);
  cg_nb_move(fd, e, CG_FD_CONNECTED);
}

/* A failure of the current attempt is visible (err == 0: still in the kernel, unread).
 * Called with the entry locked. */
int cg_nb_failure(int fd, struct cg_fd *e, int err, int timed_out)
{
  struct cg_conn *c = cg_conn_of(e);
  if (!c || !alive(e)) return F_PASS;
  int64_t now = cg_mono_ns();
  unsigned delay = 0;
  const char *why = cg_may_retry(c, now, cg_budget_end(c), &delay);
  const struct sockaddr *a = (const struct sockaddr *)&c->addr;
  if (why && !err) {
    /* Nothing left to try: the error (or the still pending last attempt) stays in the kernel
     * and the program reads it itself; logged when it does. Never abort it here: the program
     * would then read SO_ERROR 0 from an unconnected socket, and a timer of ours that expires
     * with no retry to follow must change nothing: the program's own timer decides. */
    cg_coord_leave(&c->coord);
    cg_nb_move(fd, e, CG_FD_PASSED);
    return F_PASS;
  }
  if (timed_out) {
    /* Our timer, not an event: the connect may have finished unseen (the program cleared
     * O_NONBLOCK and wrote, waiting in the kernel): a live connection is never reset. */
    int rev = r_poll1(fd, POLLOUT, 0);
    if (rev > 0 && !(rev & (POLLERR | POLLHUP))) { cg_nb_connected(fd, e); return F_PASS; }
    if (rev > 0) {
      timed_out = 0;                  /* it failed on its own: a failure like any other */
      err = so_error(fd);
    } else {
      cg_reset_socket(fd);
      err = ETIMEDOUT;
    }
  } else if (!err) {
    err = so_error(fd);
  }
  if (!err) {                         /* nothing pending after all */
    cg_nb_connected(fd, e);
    return F_PASS;
  }
  cg_count_failure(err);
  unsigned cls = cg_errno_class(err, a->sa_family);
  if (!why && !(cls & cg_cfg.retry_on)) why = "not_retryable";
  const uintptr_t *pcs;
  int npcs = conn_stack(c, &pcs);
  if (why) {
    if (c->coord.d) { cg_coord_failed(&c->coord, a, c->addrlen, 0, 0); cg_coord_leave(&c->coord); }
    cg_log_failure(fd, a, c->addrlen, err, c->attempt, ACT_GIVE_UP, 0, now - c->t_start_ns, why, pcs, npcs, c->cpystack);
    CG_STAT_ADD(give_ups, 1);
    c->pending_err = err;
    return cg_nb_move(fd, e, CG_FD_FAILED) ? F_FAILED : F_PASS;
  }
  cg_log_failure(fd, a, c->addrlen, err, c->attempt, ACT_RETRY, delay, now - c->t_start_ns, NULL, pcs, npcs, c->cpystack);
  CG_STAT_ADD(retries, 1);
  CG_STAT_ADD(backoff_wait_ns, (uint64_t)delay * MS_NS);
  c->prev_delay_ms = delay;
  c->t_next_ns = now + (int64_t)delay * MS_NS;
  if (cg_cfg.coordinate) {
    /* Joins the destination's shared schedule: the next attempt is due when it says so
     * (coord_holds), at the latest at this fd's own limit. */
    int joined = c->coord.d != NULL;
    cg_coord_failed(&c->coord, a, c->addrlen, c->attempt, delay);
    c->coord_own_ns = c->coord.due_ns = c->t_next_ns;
    if (!joined) c->coord_limit_ns = cg_coord_limit(c->attempt, now, c->t_start_ns, cg_budget_end(c));
    if (c->coord_limit_ns < c->t_next_ns) c->coord_limit_ns = c->t_next_ns;
    if (c->coord.d) c->t_next_ns = now;
  }
  if (!alive(e)) return F_PASS;
  epoll_hide(fd, e, c);
  return cg_nb_move(fd, e, CG_FD_WAITING) ? F_RETRY : F_PASS;
}

/* A WAITING entry in a shared schedule whose check is due: 1 while the schedule holds it back
 * (t_next_ns moved to the next look, at most CG_COORD_POLL_MS away: the program's poll wakes
 * for it), 0 when it attempts now (probe, a success elsewhere, its own limit). Entry locked. */
static int coord_holds(struct cg_fd *e, int64_t now)
{
  struct cg_conn *c = cg_conn_of(e);
  if (!c || !c->coord.d) return 0;
  int64_t again = 0;
  int v = cg_coord_check(&c->coord, now, c->coord_limit_ns, &again);
  if (v == 0) { c->t_next_ns = again; tick_look(c); return 1; }
  if (v == CG_COORD_LOST && c->coord_own_ns > now) { c->t_next_ns = c->coord_own_ns; tick_look(c); return 1; }
  return 0;
}

/* Starts the next attempt of a WAITING entry. Entry locked. */
static void start_attempt(int fd, struct cg_fd *e)
{
  struct cg_conn *c = cg_conn_of(e);
  if (!c || !alive(e)) return;
  cg_reset_socket(fd);
  c->attempt++;
  c->t_attempt_ns = cg_mono_ns();
  CG_STAT_ADD(connect_attempts, 1);
  int r = r_connect(fd, (struct sockaddr *)&c->addr, c->addrlen);
  int err = errno;
  if (!alive(e)) return;
  epoll_readd(fd, e, c);
  if (r == 0) { cg_nb_connected(fd, e); return; }
  if (!cg_nb_move(fd, e, CG_FD_CONNECTING)) return;
  if (err == EINPROGRESS || err == EINTR || err == EALREADY) return;
  cg_nb_failure(fd, e, err, 0);
}

/* Time-driven work for every active fd: due retries and attempt timeouts, as of `now` (the
 * caller's clock reading). Returns the next monotonic time something is due (INF if nothing). */
int64_t cg_nb_tick(int64_t now)
{
  int64_t next = INF;
  /* Every slot in use, not a prefix of them: one fd left out could sleep hidden in the
   * program's poll. */
  int span = cg_active_span();
  for (int i = 0; i < span; i++) {
    int fd = cg_active_at(i);
    if (fd < 0) continue;
    struct cg_fd *e = cg_fd_peek(fd);
    if (!e) continue;
    if (atomic_load_explicit(&e->lock, memory_order_acquire)) {
      /* Busy elsewhere (below): the hint may be changing under the holder. */
      if (now + MS_NS < next) next = now + MS_NS;
      continue;
    }
    /* Nothing due yet, as the last look found and nothing changed since (tick_hint): no lock.
     * A record given back meanwhile reads 0 (zeroed when taken again) or another connect's
     * hint: that connect is in the set too, and this fd no longer has anything due. */
    uint32_t ci = __atomic_load_n(&e->conn, __ATOMIC_RELAXED);
    if (ci) {
      int64_t h = atomic_load_explicit(&cg_conn_pool[ci - 1].tick_hint, memory_order_relaxed);
      if ((h & ~(int64_t)1) > now) {
        if ((h & 1) && (h & ~(int64_t)1) < next) next = h & ~(int64_t)1;
        continue;
      }
    }
    if (atomic_exchange_explicit(&e->lock, 1, memory_order_acquire)) {
      /* Busy elsewhere: its due time is unknown to us. Look again soon, or a thread whose own
       * fd this is would sleep in poll/epoll (the fd hidden while WAITING) until the program's
       * timeout while another thread starts its next attempt (seen under ASan: a refused
       * connect reported as a poll timeout after 5 s). */
      if (now + MS_NS < next) next = now + MS_NS;
      continue;
    }
    unsigned st = atomic_load(&e->state);
    struct cg_conn *c = cg_conn_of(e);
    if (!c) { cg_fd_unlock(e); continue; }
    if (st == CG_FD_WAITING && c->t_next_ns <= now && !coord_holds(e, now)) {
      start_attempt(fd, e);
      st = atomic_load(&e->state);
    }
    /* work: when a tick next has something to do here; wake: whether the program's wait must
     * end for it. */
    int64_t work = INF;
    int wake = 0;
    if (st == CG_FD_CONNECTING && c->nonblock) {
      int64_t end = cg_attempt_end(c);
      if (end <= now) {
        cg_nb_failure(fd, e, 0, 1);
        st = atomic_load(&e->state);
        if (st == CG_FD_WAITING) { work = c->t_next_ns; wake = 1; }
        else if (st == CG_FD_CONNECTING) work = 0;   /* still ours to look at: next tick */
      } else {
        work = end;
        wake = cg_retries_left(&cg_cfg, c->attempt);   /* only a timeout that leads to a retry */
      }
    } else if (st == CG_FD_WAITING) {
      work = c->t_next_ns;
      wake = 1;
    }
    if (wake && work < next) next = work;
    if (cg_state_active(atomic_load(&e->state)) && cg_conn_of(e) == c) tick_set(c, work, wake);
    cg_fd_unlock(e);
  }
  return next;
}

/* Logs the give-up for an error the program has just read from the kernel itself. */
static void passed_read(int fd, struct cg_fd *e, int err)
{
  struct cg_conn *c = cg_conn_of(e);
  if (err && c) {
    const uintptr_t *pcs;
    int npcs = conn_stack(c, &pcs);
    cg_count_failure(err);
    cg_log_failure(fd, (struct sockaddr *)&c->addr, c->addrlen, err, c->attempt, ACT_GIVE_UP, 0,
                   cg_mono_ns() - c->t_start_ns, cg_pass_reason(c), pcs, npcs, c->cpystack);
    CG_STAT_ADD(give_ups, 1);
  }
  cg_nb_move(fd, e, err ? CG_FD_SOCKET : CG_FD_CONNECTED);
}

/* Drives one fd to a result synchronously (getsockopt / status-check connect paths).
 * Returns 0 when connected, or the errno the program should see. Entry locked. */
static int drive_sync(int fd, struct cg_fd *e)
{
  for (;;) {
    /* Again each time: the lock is let go while waiting, and close() may end the connect. */
    struct cg_conn *c = cg_conn_of(e);
    unsigned st = atomic_load(&e->state);
    if (!c) return 0;
    if (st == CG_FD_WAITING) {
      int64_t d = c->t_next_ns;
      cg_fd_unlock(e);
      cg_sleep_until(d);
      cg_fd_lock(e);
      if (atomic_load(&e->state) != CG_FD_WAITING) continue;
      if (coord_holds(e, cg_mono_ns())) continue;
      start_attempt(fd, e);
      continue;
    }
    if (st == CG_FD_CONNECTING || st == CG_FD_PASSED) {
      /* The last attempt (or one the program already gave up retrying) may wait until the
       * deadline; an earlier one until its own timeout. */
      int last = st == CG_FD_PASSED || !cg_retries_left(&cg_cfg, c->attempt);
      int64_t end = last ? cg_budget_end(c) : cg_attempt_end(c), now = cg_mono_ns();
      cg_fd_unlock(e);
      int rv = r_poll1(fd, POLLOUT, end > now ? end - now : 0);
      cg_fd_lock(e);
      if (atomic_load(&e->state) != st || cg_conn_of(e) != c) continue;
      if (rv < 0) continue;   /* EINTR: a signal is no answer (a closed fd shows in the state) */
      if (rv == 0 && !last) { cg_nb_failure(fd, e, 0, 1); continue; }
      if (rv == 0) {
        /* Deadline reached with the attempt still pending: what the kernel would say later. */
        const uintptr_t *pcs;
        int npcs = conn_stack(c, &pcs);
        cg_reset_socket(fd);
        cg_log_failure(fd, (struct sockaddr *)&c->addr, c->addrlen, ETIMEDOUT, c->attempt, ACT_GIVE_UP, 0,
                       cg_mono_ns() - c->t_start_ns, "deadline", pcs, npcs, c->cpystack);
        cg_count_failure(ETIMEDOUT);
        CG_STAT_ADD(give_ups, 1);
        cg_nb_move(fd, e, CG_FD_SOCKET);
        return ETIMEDOUT;
      }
      if (rv & (POLLERR | POLLHUP)) {
        if (st == CG_FD_CONNECTING && cg_nb_failure(fd, e, 0, 0) != F_PASS) continue;
        if (atomic_load(&e->state) == CG_FD_PASSED) {
          int err = so_error(fd);
          passed_read(fd, e, err);
          return err;
        }
        continue;
      }
      cg_nb_connected(fd, e);
      return 0;
    }
    if (st == CG_FD_FAILED) {
      int err = c->pending_err;
      cg_nb_move(fd, e, CG_FD_SOCKET);
      return err;
    }
    return 0;
  }
}

/* Entry locked. */
static int same_dst(struct cg_fd *e, const struct sockaddr *a, socklen_t l)
{
  struct cg_conn *c = cg_conn_of(e);
  return c && l == c->addrlen && memcmp(a, &c->addr, l) == 0;
}

#define CG_STR_(x) #x
#define CG_STR(x) CG_STR_(x)

/* Once per process: connects beyond the active set's room go their own way. */
static void warn_set_full(void)
{
  static atomic_int said;
  if (atomic_exchange(&said, 1)) return;
  static const char msg[] = "connguard: warning: more than " CG_STR(CG_ACTIVE_SLOTS) " non-blocking "
                            "connects in flight at once; the ones beyond are not retried (the "
                            "program sees the kernel's results)\n";
  cg_log_warning(msg, sizeof msg - 1);
}

void cg_nb_start(int fd, const struct sockaddr *a, socklen_t l, int err, int64_t t0)
{
  struct cg_fd *e = cg_fd_get(fd, 1);
  if (!e) return;
  /* Where the program called connect(), for a failure seen later (in poll): interned once per
   * call site (stack.h), read back only when a record is written. */
  uint32_t stack = cg_cfg.stack_depth ? cg_stack_id_here((int)(cg_cfg.stack_depth < CG_MAX_STACK ? cg_cfg.stack_depth : CG_MAX_STACK)) : 0;
  uint32_t py = cg_pystack_capture(0);   /* plain reads: this is every non-blocking connect's path */
  cg_fd_lock(e);
  struct cg_conn *c = cg_conn_attach(e);
  int taken = 0;
  if (c) {
    c->attempt = 1;
    c->nonblock = err == EINPROGRESS;
    c->t_start_ns = c->t_attempt_ns = t0;
    c->addrlen = l <= sizeof c->addr ? l : sizeof c->addr;
    if (l == sizeof(struct sockaddr_in)) memcpy(&c->addr, a, sizeof(struct sockaddr_in));   /* inline */
    else memcpy(&c->addr, a, c->addrlen);
    c->stack_id = stack;
    c->cpystack = py;
    /* The tick's first look would find only this attempt's end (as in cg_nb_tick). */
    if (c->nonblock) tick_set(c, cg_attempt_end(c), cg_retries_left(&cg_cfg, 1));
    else tick_set(c, INF, 0);
    taken = cg_fd_begin(fd, e, CG_FD_CONNECTING);
  }
  cg_fd_unlock(e);   /* gives the record back when not taken */
  if (!taken) warn_set_full();
}

int cg_nb_is_again(struct cg_fd *e, unsigned st0, const struct sockaddr *a, socklen_t l)
{
  if (st0 == CG_FD_BACKGROUND) return 1;
  if (!cg_state_active(st0) || !a) return 0;
  cg_fd_lock(e);
  int same = same_dst(e, a, l);
  cg_fd_unlock(e);
  return same;
}

/* connect() on a socket whose connect we took on: the program asks again (hiredis's status
 * check, a retry loop), or a connect we gave up on in the background goes on in the kernel. */
int cg_nb_connect_again(int fd, struct cg_fd *e, unsigned st0, const struct sockaddr *a, socklen_t l)
{
  if (st0 == CG_FD_BACKGROUND) {
    int r = r_connect(fd, a, l), err = errno;
    if (r == 0 || err == EISCONN) cg_fd_set_state(fd, e, CG_FD_CONNECTED);
    else if (err != EALREADY && err != EINPROGRESS && err != EINTR) cg_fd_set_state(fd, e, CG_FD_SOCKET);
    errno = err;
    return r;
  }
  /* A second connect() on a connect we track: hiredis's status check, or a retry loop. */
  cg_fd_lock(e);
  unsigned st = atomic_load(&e->state);
  int ret = 0, err = 0;
  if (st == CG_FD_CONNECTING || st == CG_FD_PASSED) {
    ret = r_connect(fd, a, l);
    err = errno;
    if (ret == 0 || err == EISCONN) { cg_nb_connected(fd, e); cg_fd_unlock(e); errno = err; return ret; }
    if (err == EALREADY || err == EINPROGRESS || err == EINTR) { cg_fd_unlock(e); errno = err; return ret; }
    if (st == CG_FD_PASSED) { passed_read(fd, e, err); cg_fd_unlock(e); errno = err; return ret; }
    /* The kernel handed us the failure (and reset the socket): decide as in poll. */
    int f = cg_nb_failure(fd, e, err, 0);
    if (f == F_FAILED) { cg_nb_move(fd, e, CG_FD_SOCKET); cg_fd_unlock(e); errno = err; return -1; }
  }
  if (atomic_load(&e->state) == CG_FD_FAILED && cg_conn_of(e)) {
    err = cg_conn_of(e)->pending_err;
    cg_reset_socket(fd);   /* what the kernel's own status-check connect does after reporting */
    cg_nb_move(fd, e, CG_FD_SOCKET);
    cg_fd_unlock(e);
    errno = err;
    return -1;
  }
  int nonblock = cg_conn_of(e) ? cg_conn_of(e)->nonblock : 1;
  err = drive_sync(fd, e);
  cg_fd_unlock(e);
  /* Connected by our retry, the kernel not yet asked: its own answer to this status check (0 the
   * first time after a connection completes, EISCONN after that; asyncio's sock_connect takes
   * EISCONN for an error). */
  if (!err) return nonblock ? r_connect(fd, a, l) : 0;
  errno = err;
  return -1;
}

int cg_getsockopt(int fd, int level, int opt, void *val, socklen_t *len)
{
  struct cg_fd *e;
  if (level != SOL_SOCKET || opt != SO_ERROR || !val || !len || *len < sizeof(int) ||
      !(e = cg_fd_peek(fd)) || !cg_state_active(atomic_load(&e->state)))
    return r_getsockopt(fd, level, opt, val, len);
  cg_fd_lock(e);
  unsigned st = atomic_load(&e->state);
  int err;
  if (st == CG_FD_CONNECTING) {
    int r = r_getsockopt(fd, level, opt, val, len);
    if (r < 0) { cg_fd_unlock(e); return r; }
    err = *(int *)val;
    if (!err) {
      /* Connected, or still in progress (libuv then keeps waiting): find out which. */
      int rv = r_poll1(fd, POLLOUT, 0);
      if (rv > 0 && !(rv & (POLLERR | POLLHUP))) cg_nb_connected(fd, e);
      cg_fd_unlock(e);
      return r;
    }
    if (cg_nb_failure(fd, e, err, 0) == F_FAILED) {
      cg_nb_move(fd, e, CG_FD_SOCKET);
      cg_fd_unlock(e);
      return r;
    }
    err = drive_sync(fd, e);
  } else if (st == CG_FD_PASSED) {
    int r = r_getsockopt(fd, level, opt, val, len);
    if (r == 0) passed_read(fd, e, *(int *)val);
    cg_fd_unlock(e);
    return r;
  } else {
    err = drive_sync(fd, e);
  }
  cg_fd_unlock(e);
  *(int *)val = err;
  *len = sizeof(int);
  return 0;
}
