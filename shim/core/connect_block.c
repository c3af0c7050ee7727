/* connect(): the first attempt of every connect, and the blocking retry. A blocking connect
 * retries in place, each attempt bounded by CONNGUARD_CONNECT_TIMEOUT_MS through a temporary
 * SO_SNDTIMEO (or the watchdog), never longer than the program's own SO_SNDTIMEO; a
 * non-blocking one is handed to the state machine (connect_nb.c) once in progress. */
#include "engine_int.h"
#include "log.h"
#include "policy.h"
#include "stack.h"
#include "stats.h"
#include "watchdog.h"
#include "rawsys.h"
#include <fcntl.h>
#include <signal.h>
#include <string.h>

atomic_int cg_sndtimeo_seen;

void cg_note_setsockopt(int level, int opt)
{
  if (level == SOL_SOCKET && (opt == SO_SNDTIMEO_OLD || opt == SO_SNDTIMEO_NEW))
    atomic_store_explicit(&cg_sndtimeo_seen, 1, memory_order_relaxed);
}

/* ---------- blocking retry ---------- */

/* A signal interrupted a blocking connect that carried our temporary SO_SNDTIMEO. Without
 * that timeout the kernel restarts the call for SA_RESTART handlers and the program never sees
 * EINTR; with one it returns EINTR. So: when every handler restarts, keep waiting for this
 * attempt's result as the kernel would (until `until`, our bound); otherwise EINTR is what the
 * program may be waiting for (an alarm() around connect). Returns 0 (connected), the attempt's
 * errno, -1 (our bound expired) or -2 (give the program EINTR). Failure path only. */
static int finish_interrupted(int fd, int64_t until)
{
  if (!cg_all_handlers_restart()) return -2;
  for (;;) {
    int64_t left = until - cg_mono_ns();
    if (left <= 0) return -1;
    int rv = r_poll1(fd, POLLOUT, left);
    if (rv < 0 && errno == EINTR) continue;
    if (rv < 0) return -2;
    if (rv == 0) return -1;
    return so_error(fd);
  }
}

/* How a blocking connect ends when we give up and the last attempt was one we cut short (its SYN
 * unanswered, `cut`; the socket is reset by now). Without us the kernel would still have been
 * connecting, so the call would have ended by a signal (EINTR) or by the program's own
 * SO_SNDTIMEO (EINPROGRESS; the kernel's SYN retries take over two minutes), with the connect
 * going on in the background, or else by the kernel's retries (ETIMEDOUT, the socket free to
 * connect again: what the reset left). EINTR and EINPROGRESS promise a connect in progress,
 * which the program may poll for and then read SO_ERROR: so one is started, without waiting
 * (a 1 us send timeout, the program's own put back), before they are returned. Any other
 * failure is the kernel's own errno already. */
static int give_up_errno(int fd, struct cg_fd *slot, const struct sockaddr *a, socklen_t l, int err,
                         int cut, const struct timeval *prog_tv, int interrupted)
{
  int prog_set = prog_tv->tv_sec > 0 || prog_tv->tv_usec > 0;
  if (!cut || err != ETIMEDOUT || (!interrupted && !prog_set)) return err;
  struct timeval now = { 0, 1 };
  if (r_setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &now, sizeof now) != 0) return err;
  int r = r_connect(fd, a, l), e2 = errno;
  r_setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, prog_tv, sizeof *prog_tv);
  /* Refused (or any failure) at once: that answer was consumed by this call, so it is the one
   * the program gets; "in progress" would leave it nothing to wait for. */
  if (r < 0 && e2 != EINPROGRESS && e2 != EINTR && e2 != EALREADY) return e2;
  /* A second connect() on it must meet the kernel's (EALREADY, then the result), not ours. */
  if (slot) cg_fd_set_state(fd, slot, CG_FD_BACKGROUND);
  return interrupted ? EINTR : EINPROGRESS;
}

/* err: the first attempt's failure; cut: we ended that attempt at our bound (err ETIMEDOUT).
 * ct: its place in the destination's shared schedule once it waits (coord.h). */
static int blocking_retry(int fd, const struct sockaddr *a, socklen_t l, int err, int cut, int64_t t0,
                          struct cg_coord_ticket *ct)
{
  uintptr_t pcs[CG_MAX_STACK];
  int npcs = -1;
  struct cg_conn tmp, *e = &tmp;   /* its retry state: the same record a non-blocking one gets */
  memset(e, 0, sizeof *e);
  e->attempt = 1;
  e->t_start_ns = e->t_attempt_ns = t0;
  e->addrlen = l <= sizeof e->addr ? l : sizeof e->addr;
  memcpy(&e->addr, a, e->addrlen);

  /* The program's own send timeout bounds a blocking connect: we never wait longer. */
  struct timeval prog_tv = { 0, 0 };
  socklen_t tvl = sizeof prog_tv;
  r_getsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &prog_tv, &tvl);
  int64_t prog_ns = (int64_t)prog_tv.tv_sec * 1000000000 + (int64_t)prog_tv.tv_usec * 1000;
  int64_t budget_end = cg_budget_end(e);
  if (prog_ns > 0 && t0 + prog_ns < budget_end) budget_end = t0 + prog_ns;
  /* close()/dup2() bump the slot's generation: a signal handler (the alarm()-then-close()
   * connect timeout) or another thread may close the fd during our backoff, and the number
   * may already name another file or socket. From then on the fd is not ours to touch. */
  struct cg_fd *slot = cg_fd_get(fd, 1);
  unsigned gen0 = slot ? atomic_load(&slot->gen) : 0;
#define FD_REPLACED() (slot && atomic_load(&slot->gen) != gen0)

  for (;;) {
    int64_t now = cg_mono_ns();
    unsigned cls = cg_errno_class(err, a->sa_family), delay = 0;
    const char *why;
    if (!(cls & cg_cfg.retry_on)) why = "not_retryable";
    else if ((why = cg_may_retry(e, now, budget_end, &delay)) && !strcmp(why, "deadline") && prog_ns > 0 &&
             t0 + prog_ns < cg_budget_end(e))
      why = "program_timeout";   /* the program's SO_SNDTIMEO, not CONNGUARD_DEADLINE_MS, ran out */
    cg_count_failure(err);
    if (npcs < 0) npcs = cg_stack_capture(pcs, (int)cg_cfg.stack_depth);
    if (why) {
      if (ct->d) cg_coord_failed(ct, a, l, 0, 0);   /* counted, and the next slot set if it was the probe */
      cg_log_failure(fd, a, l, err, e->attempt, ACT_GIVE_UP, 0, now - t0, why, pcs, npcs, 0);
      CG_STAT_ADD(give_ups, 1);
      errno = give_up_errno(fd, slot, a, l, err, cut, &prog_tv, 0);
      return -1;
    }
    cg_log_failure(fd, a, l, err, e->attempt, ACT_RETRY, delay, now - t0, NULL, pcs, npcs, 0);
    CG_STAT_ADD(retries, 1);
    if (!cg_backoff_shared(ct, a, l, e->attempt, delay, now, t0, budget_end)) {
      cg_log_failure(fd, a, l, err, e->attempt, ACT_GIVE_UP, 0, cg_mono_ns() - t0, "interrupted", pcs, npcs, 0);
      CG_STAT_ADD(give_ups, 1);
      /* The handler may have closed the fd (alarm-then-close): then no new attempt on it. */
      errno = !FD_REPLACED() ? give_up_errno(fd, slot, a, l, err, cut, &prog_tv, 1) : cut && err == ETIMEDOUT ? EINTR : err;
      return -1;
    }
    CG_STAT_ADD(backoff_wait_ns, (uint64_t)delay * MS_NS);
    if (FD_REPLACED()) {
      /* What the program would have seen without us: the failure, before its handler ran. */
      cg_log_failure(fd, a, l, err, e->attempt, ACT_GIVE_UP, 0, cg_mono_ns() - t0, "fd_closed", pcs, npcs, 0);
      CG_STAT_ADD(give_ups, 1);
      errno = err;
      return -1;
    }
    e->prev_delay_ms = delay;
    e->attempt++;
    /* A refused connect() leaves the socket reusable, but not one whose error was read through
     * SO_ERROR (after an interrupted attempt): that would answer ECONNABORTED. */
    cg_reset_socket(fd);
    now = e->t_attempt_ns = cg_mono_ns();

    /* Per-attempt timeout through SO_SNDTIMEO, unless the program's own is shorter. */
    int64_t limit = cg_attempt_end(e);
    if (limit > budget_end) limit = budget_end;
    int64_t left = limit - now;
    int ours = 0;
    if (left <= 0) left = MS_NS;
    if (prog_ns <= 0 || left < prog_ns) {
      struct timeval tv = { left / 1000000000, (left % 1000000000) / 1000 };
      if (tv.tv_sec == 0 && tv.tv_usec == 0) tv.tv_usec = 1000;
      ours = r_setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) == 0;
    }
    CG_STAT_ADD(connect_attempts, 1);
    int r = r_connect(fd, a, l);
    int e2 = errno;
    if (FD_REPLACED()) { errno = e2; return r; }   /* closed during the attempt: hands off */
    if (ours && r < 0 && e2 == EINTR) {
      int x = finish_interrupted(fd, limit);
      if (FD_REPLACED()) { errno = err; return -1; }
      if (x == 0) r = 0;
      else if (x == -1) e2 = EINPROGRESS;
      else if (x > 0) e2 = x;
    }
    if (ours) r_setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &prog_tv, sizeof prog_tv);
    if (r == 0) {
      cg_log_recovered(fd, a, l, e->attempt, cg_mono_ns() - t0, 0);
      return 0;
    }
    if (e2 == EINPROGRESS && ours) {
      cg_reset_socket(fd);             /* our timeout, not the program's: abort this SYN */
      err = ETIMEDOUT;
      cut = 1;
      continue;
    }
    if (cg_errno_is_progress(e2, a->sa_family)) {
      /* EINTR or the program's own timeout: the kernel keeps connecting, as without us. */
      errno = e2;
      return -1;
    }
    err = e2;
    cut = 0;
  }
}
#undef FD_REPLACED

static int blocking_connect(int fd, const struct sockaddr *a, socklen_t l, int err, int cut, int64_t t0)
{
  struct cg_coord_ticket ct = { 0 };
  int r = blocking_retry(fd, a, l, err, cut, t0, &ct);
  if (ct.d) {
    /* It waited in a shared schedule: a success wakes every waiter at once. */
    int saved = errno;
    if (r == 0) cg_coord_success(&ct);
    else cg_coord_leave(&ct);
    errno = saved;
  }
  return r;
}

/* ---------- first attempt of a blocking connect ---------- */

/* A blocking connect() waits for the SYN's answer as long as the kernel retransmits (about two
 * minutes): CONNGUARD_CONNECT_TIMEOUT_MS bounds the first attempt too. Returns 1 when a bound
 * is needed, with the program's own SO_SNDTIMEO in prog_tv (left to act alone when shorter)
 * and ours in bound_ns. */
static int first_attempt_bound(int fd, int here, struct timeval *prog_tv, int64_t *bound_ns)
{
  socklen_t tvl = sizeof *prog_tv;
  memset(prog_tv, 0, sizeof *prog_tv);
  /* A socket this process made with socket(), in a process that never set SO_SNDTIMEO on any
   * socket, has none: no need to ask the kernel (one system call less per connect). Anything
   * else (dup'ed, inherited, received) is asked. */
  int known_unset = !atomic_load_explicit(&cg_sndtimeo_seen, memory_order_relaxed) && here;
  if (!known_unset && r_getsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, prog_tv, &tvl) < 0) return 0;
  int64_t prog_ns = (int64_t)prog_tv->tv_sec * 1000000000 + (int64_t)prog_tv->tv_usec * 1000;
  int64_t b = (int64_t)cg_cfg.connect_timeout_ms * MS_NS;
  if ((int64_t)cg_cfg.deadline_ms * MS_NS < b) b = (int64_t)cg_cfg.deadline_ms * MS_NS;
  if (b < MS_NS) b = MS_NS;
  if (prog_ns > 0 && prog_ns <= b) return 0;
  *bound_ns = b;
  return 1;
}

/* Whether the watchdog may cut this connect: only a TCP socket's, which shutdown() leaves
 * ready to connect again (a retry follows). Known without a system call for sockets this
 * process made with socket(). */
static int watchdog_may_cut(int fd, struct cg_fd *e, int here, const struct sockaddr *a, socklen_t l)
{
  int fam = family_of(a, l);
  if (!cg_cfg.watchdog || (fam != AF_INET && fam != AF_INET6)) return 0;
  if (here) return e->tcp;
  int v = 0;
  socklen_t vl = sizeof v;
  return r_getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &v, &vl) == 0 && v == IPPROTO_TCP;
}

/* Whether this connect may wait for an answer, so that a bound on it could matter. A UDP
 * socket's connect() never waits, and no connect of an AF_INET/AF_INET6 socket that is not TCP
 * is retried (cg_eligible): for one made here, known without a system call, it gets no bound
 * (which cost two setsockopt calls per connect: DNS clients connect a UDP socket per query). */
static int may_wait(struct cg_fd *e, int here, const struct sockaddr *a, socklen_t l)
{
  int fam = family_of(a, l);
  if ((fam == AF_INET || fam == AF_INET6) && here) return e->tcp;
  return 1;
}

/* The fallback bound, a temporary SO_SNDTIMEO (no effect on a non-blocking socket, so its
 * flags need not be read): two system calls per connect. The caller restores prog_tv right
 * after connect(). */
static int arm_sndtimeo(int fd, int64_t b)
{
  struct timeval tv = { b / 1000000000, (b % 1000000000) / 1000 };
  if (tv.tv_sec == 0 && tv.tv_usec == 0) tv.tv_usec = 1000;
  return r_setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) == 0;
}

/* The first blocking connect of a process is bounded by SO_SNDTIMEO (two system calls), not by
 * the watchdog: a process that makes one (psql, redis-cli, a short python script) would pay for
 * a thread, ~0.1-0.3 ms to start and name here, to save those two calls once. The second one
 * starts it. A fork child inherits the count: its first blocking connect starts its own. */
static atomic_int blocking_connects;
static int thread_worth_it(void)
{
  return cg_wd_status() == 1 || atomic_load_explicit(&blocking_connects, memory_order_relaxed) > 0 ||
         atomic_fetch_add(&blocking_connects, 1) > 0;
}

/* The kernel's word, for the paths after a failure or a cut attempt. */
static int is_blocking(int fd)
{
  int fl = (int)cg_syscall(SYS_fcntl, fd, F_GETFL);
  return fl >= 0 && !(fl & O_NONBLOCK);
}

/* Our bound cut short a blocking connect that is not ours to retry (not TCP): finish it as the
 * kernel would have, waiting out the program's own SO_SNDTIMEO if it has one. */
static int finish_like_kernel(int fd, const struct timeval *prog_tv, int64_t t0)
{
  int64_t prog_ns = (int64_t)prog_tv->tv_sec * 1000000000 + (int64_t)prog_tv->tv_usec * 1000;
  int64_t left = prog_ns > 0 ? t0 + prog_ns - cg_mono_ns() : -1;
  if (prog_ns > 0 && left <= 0) { errno = EINPROGRESS; return -1; }
  int rv = r_poll1(fd, POLLOUT, left);
  if (rv < 0) return -1;                       /* EINTR, as the kernel's wait would give */
  if (rv == 0) { errno = EINPROGRESS; return -1; }
  int err = so_error(fd);
  if (!err) return 0;
  errno = err;
  return -1;
}

/* ---------- the hook's body ---------- */

/* Whether connect(fd, a, l) is the shim's business (cg_eligible), with what this call already
 * knows: the destination's verdict and whether socket() made fd here (then its type is known). */
static int eligible(int fd, struct cg_fd *e, int here, int wanted, const struct sockaddr *a, socklen_t l)
{
  int fam = family_of(a, l);
  if (here && (fam == AF_INET || fam == AF_INET6)) return e->tcp && wanted;
  return wanted && cg_eligible(fd, a, l);
}

int cg_connect_recheck(int fd, const struct sockaddr *a, socklen_t l, int *r)
{
  struct cg_fd *e = cg_fd_peek(fd);
  if (!e || atomic_load(&e->state) != CG_FD_CONNECTED || !e->tcp || !a || l < sizeof(sa_family_t) ||
      a->sa_family == AF_UNSPEC || !cg_fd_made_here(e))
    return 0;
  if (__builtin_expect(atomic_load_explicit(&cg_stats_pending, memory_order_relaxed), 0)) {
    int err = errno;   /* a success leaves errno as the program had it */
    cg_stats_use();
    errno = err;
  }
  CG_STAT_ADD(connect_attempts, 1);
  *r = r_connect(fd, a, l);
  return 1;
}

int cg_connect(int fd, const struct sockaddr *a, socklen_t l)
{
  struct cg_fd *e = cg_fd_peek(fd);
  unsigned st0 = e ? atomic_load(&e->state) : CG_FD_NONE;
  if ((st0 == CG_FD_BACKGROUND || cg_state_active(st0)) && cg_nb_is_again(e, st0, a, l))
    return cg_nb_connect_again(fd, e, st0, a, l);

  int64_t t0 = cg_mono_ns();
  cg_stats_use();
  CG_STAT_ADD(connect_attempts, 1);
  struct timeval prog_tv;
  int64_t bound_ns = 0;
  int armed = 0, wd = 0;
  /* Read once for the whole call: fd's entry says what socket() made, if it made it here. */
  int here = cg_fd_made_here(e), wanted = cg_dst_wanted(a, l);
  unsigned nbk = here ? atomic_load_explicit(&e->nbk, memory_order_relaxed) : CG_NB_UNKNOWN;
  /* A non-blocking socket made here, before the watchdog runs, gets no bound (below): known
   * without working out what the bound would be. */
  int fam0 = family_of(a, l);
  int nb_unbound = nbk == CG_NB_ON && (fam0 == AF_INET || fam0 == AF_INET6) && cg_cfg.watchdog &&
                   cg_wd_status() != 1;
  if (cg_timeouts_retried() && wanted && may_wait(e, here, a, l) && !nb_unbound &&
      first_attempt_bound(fd, here, &prog_tv, &bound_ns)) {
    if (!watchdog_may_cut(fd, e, here, a, l)) {
      armed = arm_sndtimeo(fd, bound_ns);
    } else if (cg_wd_status() == 1 || (nbk != CG_NB_UNKNOWN ? nbk == CG_NB_OFF : cg_fd_blocking(fd, e))) {
      /* Until a blocking connect has started the thread, a non-blocking one (curl, node: their
       * attempts are bounded in poll) needs no bound and must not start it. Its mode is
       * remembered for a socket made here; anything else costs one F_GETFL. */
      wd = thread_worth_it() ? cg_wd_arm(fd, t0 + bound_ns, bound_ns) : 0;
      if (!wd) armed = arm_sndtimeo(fd, bound_ns);
    }
  }
  int r = r_connect(fd, a, l);
  int err = errno;
  if (wd && cg_wd_disarm(wd)) {
    /* The watchdog cut the first attempt at its bound: the SYN went unanswered (or its answer
     * came in the very moment the bound expired; that connection was shut down unused). */
    cg_reset_socket(fd);
    if (is_blocking(fd)) return blocking_connect(fd, a, l, ETIMEDOUT, 1, t0);
    /* A non-blocking connect() held up past the bound (the thread was stopped): start it
     * again, as the program asked, and go on as usual. */
    r = r_connect(fd, a, l);
    err = errno;
  }
  if (armed && r < 0 && err == EINTR) {
    int x = finish_interrupted(fd, t0 + bound_ns);
    if (x == 0) r = 0;
    else if (x == -1) err = EINPROGRESS;    /* our bound expired meanwhile */
    else if (x > 0) err = x;
  }
  if (armed) r_setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &prog_tv, sizeof prog_tv);
  if (r == 0) {
    int unspec = a && l >= sizeof(sa_family_t) && a->sa_family == AF_UNSPEC;   /* a disconnect */
    if (e && atomic_load(&e->state) != CG_FD_NONE) cg_fd_set_state(fd, e, unspec ? CG_FD_SOCKET : CG_FD_CONNECTED);
    return 0;
  }
  if (!a || l < sizeof(sa_family_t)) { errno = err; return r; }
  int fam = a->sa_family;
  if (armed && err == EINPROGRESS && cg_mono_ns() - t0 >= bound_ns / 2 && is_blocking(fd)) {
    /* Our bound on the first attempt of a blocking connect expired: the SYN went unanswered. */
    if (!eligible(fd, e, here, wanted, a, l)) return finish_like_kernel(fd, &prog_tv, t0);
    cg_reset_socket(fd);
    return blocking_connect(fd, a, l, ETIMEDOUT, 1, t0);
  }
  if (err == EINPROGRESS || err == EINTR) {
    if (!eligible(fd, e, here, wanted, a, l)) { errno = err; return r; }
    cg_nb_start(fd, a, l, err, t0);
    errno = err;
    return r;
  }
  if (cg_errno_is_progress(err, fam) || !eligible(fd, e, here, wanted, a, l)) { errno = err; return r; }
  /* A blocking connect that failed, or a non-blocking one that failed at once. */
  int fl = (int)cg_syscall(SYS_fcntl, fd, F_GETFL);
  if (fl >= 0 && (fl & O_NONBLOCK)) {
    /* Immediate failure on a non-blocking socket: report it as it came (waiting here would
     * freeze an event loop); logged so that the failure is still explained. */
    uintptr_t pcs[CG_MAX_STACK];
    int np = cg_stack_capture(pcs, (int)cg_cfg.stack_depth);
    cg_count_failure(err);
    cg_log_failure(fd, a, l, err, 1, ACT_GIVE_UP, 0, 0, "nonblocking_immediate", pcs, np, 0);
    CG_STAT_ADD(give_ups, 1);
    errno = err;
    return r;
  }
  r = blocking_connect(fd, a, l, err, 0, t0);
  return r;
}
