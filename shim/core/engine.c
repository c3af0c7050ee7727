#include "engine.h"
#include "clock.h"
#include "fdtable.h"
#include "leak.h"
#include "log.h"
#include "policy.h"
#include "real.h"
#include "stack.h"
#include "stats.h"
#include "watchdog.h"
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <pthread.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

struct cg_config cg_cfg;
int cg_enabled;
__thread int cg_in_hook;

#define INF INT64_MAX
#define MS_NS 1000000LL

/* ---------- small helpers ---------- */

static uint64_t rnd(void)
{
  static __thread uint64_t st;
  if (!st) st = (uint64_t)cg_mono_ns() ^ ((uint64_t)syscall(SYS_gettid) << 32) ^ (uint64_t)(uintptr_t)&st;
  return cg_rand_next(&st);
}

static int r_connect(int fd, const struct sockaddr *a, socklen_t l)
{
  return cg_real.connect ? cg_real.connect(fd, a, l) : (int)syscall(SYS_connect, fd, a, l);
}

static int r_getsockopt(int fd, int lv, int o, void *v, socklen_t *l)
{
  return cg_real.getsockopt ? cg_real.getsockopt(fd, lv, o, v, l) : (int)syscall(SYS_getsockopt, fd, lv, o, v, l);
}

static int r_setsockopt(int fd, int lv, int o, const void *v, socklen_t l)
{
  return cg_real.setsockopt ? cg_real.setsockopt(fd, lv, o, v, l) : (int)syscall(SYS_setsockopt, fd, lv, o, v, l);
}

atomic_int cg_sndtimeo_seen;

void cg_note_setsockopt(int level, int opt)
{
  if (level == SOL_SOCKET && (opt == SO_SNDTIMEO_OLD || opt == SO_SNDTIMEO_NEW))
    atomic_store_explicit(&cg_sndtimeo_seen, 1, memory_order_relaxed);
}

static int r_poll1(int fd, short events, int64_t timeout_ns)
{
  struct pollfd p = { fd, events, 0 };
  struct timespec ts, *tp = NULL;
  if (timeout_ns >= 0) { ts.tv_sec = timeout_ns / 1000000000; ts.tv_nsec = timeout_ns % 1000000000; tp = &ts; }
  int r = (int)syscall(SYS_ppoll, &p, 1, tp, NULL, 8);
  return r > 0 ? p.revents : r;
}

static int so_error(int fd)
{
  int e = 0;
  socklen_t l = sizeof e;
  if (r_getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &l) < 0) return 0;
  return e;
}

/* Sleeps until the monotonic time t; signals do not cut it short. */
static void sleep_until(int64_t t)
{
  struct timespec ts = { t / 1000000000, t % 1000000000 };
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {}
}

/* Resets a socket whose connect failed or is still in SYN_SENT, so it can connect again. */
static void reset_socket(int fd)
{
  struct sockaddr sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_family = AF_UNSPEC;
  r_connect(fd, &sa, sizeof sa);
  (void)so_error(fd);   /* aborting a SYN_SENT socket leaves ECONNRESET behind */
}

static int family_of(const struct sockaddr *a, socklen_t l)
{
  return a && l >= sizeof(sa_family_t) ? a->sa_family : AF_UNSPEC;
}

/* Whether the destination is one we may retry, from the address alone (no system call). */
static int dst_wanted(const struct sockaddr *a, socklen_t l)
{
  int fam = family_of(a, l);
  /* Unix sockets only when CONNGUARD_ONLY names them: glibc's nscd probes fail all the time. */
  if (fam == AF_UNIX ? !cg_cfg.only.has_unix : fam != AF_INET && fam != AF_INET6) return 0;
  if (cg_cfg.skip.n && cg_patterns_match(&cg_cfg.skip, a, l)) return 0;
  if (cg_cfg.only.n && !cg_patterns_match(&cg_cfg.only, a, l)) return 0;
  return 1;
}

/* Whether connect() on fd to this destination is the shim's business at all. */
static int eligible(int fd, const struct sockaddr *a, socklen_t l)
{
  int fam = family_of(a, l), v = 0;
  socklen_t vl = sizeof v;
  if (!dst_wanted(a, l)) return 0;
  if (fam == AF_INET || fam == AF_INET6) {
    if (r_getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &v, &vl) < 0 || v != IPPROTO_TCP) return 0;
  } else {
    if (r_getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &vl) < 0 || (v != SOCK_STREAM && v != SOCK_SEQPACKET)) return 0;
  }
  return 1;
}

static void count_failure(int err)
{
  CG_STAT_ADD(connect_failures, 1);
  if (err > 0 && err < CG_STATS_ERRNOS) CG_STAT_ADD(failures_by_errno[err], 1);
}

/* ---------- records ---------- */

enum { ACT_RETRY, ACT_GIVE_UP };

static void log_failure(int fd, const struct sockaddr *a, socklen_t l, int err, unsigned attempt,
                        int action, unsigned delay_ms, int64_t elapsed_ns, const char *reason,
                        const uintptr_t *pcs, int npcs)
{
  struct cg_rec r;
  cg_rec_begin(&r, "connect_failed");
  cg_rec_int(&r, "fd", fd);
  cg_rec_addr(&r, "dst", a, l);
  cg_rec_errno(&r, "errno", err);
  cg_rec_int(&r, "attempt", attempt);
  cg_rec_str(&r, "action", action == ACT_RETRY ? "retry" : "give_up");
  if (action == ACT_RETRY) cg_rec_int(&r, "delay_ms", delay_ms);
  else if (reason) cg_rec_str(&r, "reason", reason);
  cg_rec_int(&r, "elapsed_ms", elapsed_ns / MS_NS);
  cg_rec_detail(&r, "hint", cg_errno_hint(err, family_of(a, l)));
  if (npcs > 0) cg_rec_stack(&r, pcs, npcs);
  cg_rec_emit(&r);
}

static void log_recovered(int fd, const struct sockaddr *a, socklen_t l, unsigned attempts, int64_t elapsed_ns)
{
  struct cg_rec r;
  cg_rec_begin(&r, "connect_recovered");
  cg_rec_int(&r, "fd", fd);
  cg_rec_addr(&r, "dst", a, l);
  cg_rec_int(&r, "attempts", attempts);
  cg_rec_int(&r, "elapsed_ms", elapsed_ns / MS_NS);
  cg_rec_emit(&r);
  CG_STAT_ADD(recoveries, 1);
}

static int capture(uintptr_t *pcs)
{
  return cg_stack_capture(pcs, (int)(cg_cfg.stack_depth < CG_FD_STACK ? cg_cfg.stack_depth : CG_FD_STACK));
}

/* ---------- retry decision ---------- */

/* Decides, before anything is consumed, whether another attempt may follow attempt e->attempt.
 * Returns NULL (yes, *delay set) or the reason for giving up. */
static const char *may_retry(struct cg_fd *e, int64_t now, int64_t budget_end, unsigned *delay)
{
  if (e->attempt > cg_cfg.retries) return "retries_exhausted";
  if (cg_has_fallback((const struct sockaddr *)&e->addr, e->addrlen)) return "fallback_address";
  *delay = cg_backoff_ms(&cg_cfg, e->attempt, e->prev_delay_ms, rnd());
  if (now + (int64_t)*delay * MS_NS >= budget_end) return "deadline";
  return NULL;
}

static int64_t budget_end_of(struct cg_fd *e)
{
  return e->t_start_ns + (int64_t)cg_cfg.deadline_ms * MS_NS;
}

/* The per-attempt timeout exists to retry a timeout: with timeout left out of
 * CONNGUARD_RETRY_ON, an attempt is cut only by the deadline, and only one the shim started. */
static int timeouts_retried(void) { return (cg_cfg.retry_on & CG_CLASS_TIMEOUT) != 0; }

static int64_t attempt_end_of(struct cg_fd *e)
{
  int64_t b = budget_end_of(e);
  if (!timeouts_retried()) return b;
  int64_t a = e->t_attempt_ns + (int64_t)cg_cfg.connect_timeout_ms * MS_NS;
  return a < b ? a : b;
}

/* ---------- blocking connect ---------- */

/* Whether every caught signal has SA_RESTART. */
static int all_handlers_restart(void)
{
  struct sigaction sa;
  for (int sig = 1; sig < NSIG; sig++) {
    /* Fault signals come from the faulting instruction, never in the middle of a system call:
     * the handlers sanitizers and python's faulthandler install (without SA_RESTART) do not
     * count. */
    if (sig == SIGSEGV || sig == SIGBUS || sig == SIGFPE || sig == SIGILL || sig == SIGTRAP || sig == SIGSYS)
      continue;
    if (sig == SIGKILL || sig == SIGSTOP || sigaction(sig, NULL, &sa) != 0) continue;
    if (sa.sa_handler == SIG_DFL || sa.sa_handler == SIG_IGN) continue;
    if (!(sa.sa_flags & SA_RESTART)) return 0;
  }
  return 1;
}

/* The backoff of a blocking connect. A signal whose handler has SA_RESTART is slept through
 * (the kernel would restart a blocking connect for it); any other ends the wait (returns 0):
 * the program counts on it to cut a slow connect short (an alarm() timeout), and gets the
 * failure it would have had without the shim, only later. */
static int backoff_sleep(int64_t t)
{
  struct timespec ts = { t / 1000000000, t % 1000000000 };
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
    if (!all_handlers_restart()) return 0;
  return 1;
}

/* A signal interrupted a blocking connect that carried our temporary SO_SNDTIMEO. Without
 * that timeout the kernel restarts the call for SA_RESTART handlers and the program never sees
 * EINTR; with one it returns EINTR. So: when every handler restarts, keep waiting for this
 * attempt's result as the kernel would (until `until`, our bound); otherwise EINTR is what the
 * program may be waiting for (an alarm() around connect). Returns 0 (connected), the attempt's
 * errno, -1 (our bound expired) or -2 (give the program EINTR). Failure path only. */
static int finish_interrupted(int fd, int64_t until)
{
  if (!all_handlers_restart()) return -2;
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

/* err: the first attempt's failure; cut: we ended that attempt at our bound (err ETIMEDOUT). */
static int blocking_connect(int fd, const struct sockaddr *a, socklen_t l, int err, int cut, int64_t t0)
{
  uintptr_t pcs[CG_MAX_STACK];
  int npcs = -1;
  struct cg_fd tmp, *e = &tmp;
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
  int64_t budget_end = budget_end_of(e);
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
    else if ((why = may_retry(e, now, budget_end, &delay)) && !strcmp(why, "deadline") && prog_ns > 0 &&
             t0 + prog_ns < budget_end_of(e))
      why = "program_timeout";   /* the program's SO_SNDTIMEO, not CONNGUARD_DEADLINE_MS, ran out */
    count_failure(err);
    if (npcs < 0) npcs = cg_stack_capture(pcs, (int)cg_cfg.stack_depth);
    if (why) {
      log_failure(fd, a, l, err, e->attempt, ACT_GIVE_UP, 0, now - t0, why, pcs, npcs);
      CG_STAT_ADD(give_ups, 1);
      errno = give_up_errno(fd, slot, a, l, err, cut, &prog_tv, 0);
      return -1;
    }
    log_failure(fd, a, l, err, e->attempt, ACT_RETRY, delay, now - t0, NULL, pcs, npcs);
    CG_STAT_ADD(retries, 1);
    if (!backoff_sleep(now + (int64_t)delay * MS_NS)) {
      log_failure(fd, a, l, err, e->attempt, ACT_GIVE_UP, 0, cg_mono_ns() - t0, "interrupted", pcs, npcs);
      CG_STAT_ADD(give_ups, 1);
      /* The handler may have closed the fd (alarm-then-close): then no new attempt on it. */
      errno = !FD_REPLACED() ? give_up_errno(fd, slot, a, l, err, cut, &prog_tv, 1) : cut && err == ETIMEDOUT ? EINTR : err;
      return -1;
    }
    CG_STAT_ADD(backoff_wait_ns, (uint64_t)delay * MS_NS);
    if (FD_REPLACED()) {
      /* What the program would have seen without us: the failure, before its handler ran. */
      log_failure(fd, a, l, err, e->attempt, ACT_GIVE_UP, 0, cg_mono_ns() - t0, "fd_closed", pcs, npcs);
      CG_STAT_ADD(give_ups, 1);
      errno = err;
      return -1;
    }
    e->prev_delay_ms = delay;
    e->attempt++;
    /* A refused connect() leaves the socket reusable, but not one whose error was read through
     * SO_ERROR (after an interrupted attempt): that would answer ECONNABORTED. */
    reset_socket(fd);
    now = e->t_attempt_ns = cg_mono_ns();

    /* Per-attempt timeout through SO_SNDTIMEO, unless the program's own is shorter. */
    int64_t limit = attempt_end_of(e);
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
      log_recovered(fd, a, l, e->attempt, cg_mono_ns() - t0);
      return 0;
    }
    if (e2 == EINPROGRESS && ours) {
      reset_socket(fd);             /* our timeout, not the program's: abort this SYN */
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

/* ---------- non-blocking state machine ---------- */

static void epoll_readd(int fd, struct cg_fd *e)
{
  if (!e->ep_removed) return;
  e->ep_removed = 0;
  struct epoll_event ev = { .events = e->ep_events, .data.u64 = e->ep_data };
  if (cg_real.epoll_ctl && e->ep_fd > 0) cg_real.epoll_ctl(e->ep_fd - 1, EPOLL_CTL_ADD, fd, &ev);
}

static void epoll_hide(int fd, struct cg_fd *e)
{
  /* A failed socket reports EPOLLHUP even with no events requested: while it waits for its
   * next attempt it must leave the set, or a level-triggered loop would spin. */
  if (e->ep_fd > 0 && !e->ep_removed && cg_real.epoll_ctl) {
    if (cg_real.epoll_ctl(e->ep_fd - 1, EPOLL_CTL_DEL, fd, NULL) == 0) e->ep_removed = 1;
  }
}

/* close() does not take the entry lock (it may run in a signal handler, or in another thread
 * while we wait): it stores NONE at any time. An entry that is no longer active means the
 * program closed the fd under us; the number may already be a new descriptor of the program's,
 * so the engine must neither touch it nor bring the old state back to life. */
static int alive(struct cg_fd *e) { return cg_state_active(atomic_load(&e->state)); }

/* Moves a locked, active entry to state `to`; 0 (and nothing changed) when close() got there
 * first. */
static int move(int fd, struct cg_fd *e, unsigned to)
{
  unsigned s = atomic_load(&e->state);
  do {
    if (!cg_state_active(s)) return 0;
  } while (!atomic_compare_exchange_weak(&e->state, &s, to));
  if (!cg_state_active(to)) cg_active_del(fd);
  return 1;
}

static void mark_connected(int fd, struct cg_fd *e)
{
  if (!alive(e)) return;
  if (e->attempt > 1) log_recovered(fd, (struct sockaddr *)&e->addr, e->addrlen, e->attempt, cg_mono_ns() - e->t_start_ns);
  epoll_readd(fd, e);
  move(fd, e, CG_FD_CONNECTED);
}

enum { F_RETRY, F_PASS, F_FAILED };

/* A failure of the current attempt is visible (err == 0: still in the kernel, unread).
 * Called with the entry locked. */
static int on_failure(int fd, struct cg_fd *e, int err, int timed_out)
{
  if (!alive(e)) return F_PASS;
  int64_t now = cg_mono_ns();
  unsigned delay = 0;
  const char *why = may_retry(e, now, budget_end_of(e), &delay);
  const struct sockaddr *a = (const struct sockaddr *)&e->addr;
  if (why && !err) {
    /* Nothing left to try: the error (or the still pending last attempt) stays in the kernel
     * and the program reads it itself; logged when it does. Never abort it here: the program
     * would then read SO_ERROR 0 from an unconnected socket, and a timer of ours that expires
     * with no retry to follow must change nothing: the program's own timer decides. */
    e->last_err = 0;
    move(fd, e, CG_FD_PASSED);
    return F_PASS;
  }
  if (timed_out) {
    /* Our timer, not an event: the connect may have finished unseen (the program cleared
     * O_NONBLOCK and wrote, waiting in the kernel): a live connection is never reset. */
    int rev = r_poll1(fd, POLLOUT, 0);
    if (rev > 0 && !(rev & (POLLERR | POLLHUP))) { mark_connected(fd, e); return F_PASS; }
    if (rev > 0) {
      timed_out = 0;                  /* it failed on its own: a failure like any other */
      err = so_error(fd);
    } else {
      reset_socket(fd);
      err = ETIMEDOUT;
    }
  } else if (!err) {
    err = so_error(fd);
  }
  if (!err) {                         /* nothing pending after all */
    mark_connected(fd, e);
    return F_PASS;
  }
  count_failure(err);
  unsigned cls = cg_errno_class(err, a->sa_family);
  if (!why && !(cls & cg_cfg.retry_on)) why = "not_retryable";
  if (why) {
    log_failure(fd, a, e->addrlen, err, e->attempt, ACT_GIVE_UP, 0, now - e->t_start_ns, why, e->cpcs, e->cnpcs);
    CG_STAT_ADD(give_ups, 1);
    e->pending_err = err;
    return move(fd, e, CG_FD_FAILED) ? F_FAILED : F_PASS;
  }
  log_failure(fd, a, e->addrlen, err, e->attempt, ACT_RETRY, delay, now - e->t_start_ns, NULL, e->cpcs, e->cnpcs);
  CG_STAT_ADD(retries, 1);
  CG_STAT_ADD(backoff_wait_ns, (uint64_t)delay * MS_NS);
  e->prev_delay_ms = delay;
  e->t_next_ns = now + (int64_t)delay * MS_NS;
  if (!alive(e)) return F_PASS;
  epoll_hide(fd, e);
  return move(fd, e, CG_FD_WAITING) ? F_RETRY : F_PASS;
}

/* Starts the next attempt of a WAITING entry. Entry locked. */
static void start_attempt(int fd, struct cg_fd *e)
{
  if (!alive(e)) return;
  reset_socket(fd);
  e->attempt++;
  e->t_attempt_ns = cg_mono_ns();
  CG_STAT_ADD(connect_attempts, 1);
  int r = r_connect(fd, (struct sockaddr *)&e->addr, e->addrlen);
  int err = errno;
  if (!alive(e)) return;
  epoll_readd(fd, e);
  if (r == 0) { mark_connected(fd, e); return; }
  if (!move(fd, e, CG_FD_CONNECTING)) return;
  if (err == EINPROGRESS || err == EINTR || err == EALREADY) return;
  on_failure(fd, e, err, 0);
}

/* Time-driven work for every active fd: due retries and attempt timeouts. Returns the next
 * monotonic time something is due (INF if nothing). */
static int64_t tick(void)
{
  int64_t next = INF, now = cg_mono_ns();
  /* Every slot, not a prefix: one fd left out could sleep hidden in the program's poll. */
  for (int i = 0; i < CG_ACTIVE_SLOTS; i++) {
    int fd = cg_active_at(i);
    if (fd < 0) continue;
    struct cg_fd *e = cg_fd_peek(fd);
    if (!e) continue;
    if (atomic_exchange_explicit(&e->lock, 1, memory_order_acquire)) {
      /* Busy elsewhere: its due time is unknown to us. Look again soon, or a thread whose own
       * fd this is would sleep in poll/epoll (the fd hidden while WAITING) until the program's
       * timeout while another thread starts its next attempt (seen under ASan: a refused
       * connect reported as a poll timeout after 5 s). */
      if (now + MS_NS < next) next = now + MS_NS;
      continue;
    }
    unsigned st = atomic_load(&e->state);
    if (st == CG_FD_WAITING && e->t_next_ns <= now) {
      start_attempt(fd, e);
      st = atomic_load(&e->state);
    }
    if (st == CG_FD_CONNECTING && e->nonblock) {
      int64_t end = attempt_end_of(e);
      if (end <= now) {
        on_failure(fd, e, 0, 1);
        st = atomic_load(&e->state);
        if (st == CG_FD_WAITING && e->t_next_ns < next) next = e->t_next_ns;
      } else if (e->attempt <= cg_cfg.retries && end < next) {
        next = end;  /* only a timeout that leads to a retry needs a wake-up */
      }
    } else if (st == CG_FD_WAITING && e->t_next_ns < next) {
      next = e->t_next_ns;
    }
    cg_fd_unlock(e);
  }
  return next;
}

/* Why a PASSED entry got no retry: the checks of may_retry, in its order. */
static const char *pass_reason(struct cg_fd *e)
{
  if (e->attempt > cg_cfg.retries) return "retries_exhausted";
  if (cg_has_fallback((const struct sockaddr *)&e->addr, e->addrlen)) return "fallback_address";
  return "deadline";
}

/* Logs the give-up for an error the program has just read from the kernel itself. */
static void passed_read(int fd, struct cg_fd *e, int err)
{
  if (err) {
    count_failure(err);
    log_failure(fd, (struct sockaddr *)&e->addr, e->addrlen, err, e->attempt, ACT_GIVE_UP, 0,
                cg_mono_ns() - e->t_start_ns, pass_reason(e), e->cpcs, e->cnpcs);
    CG_STAT_ADD(give_ups, 1);
  }
  move(fd, e, err ? CG_FD_SOCKET : CG_FD_CONNECTED);
}

/* Drives one fd to a result synchronously (getsockopt / status-check connect paths).
 * Returns 0 when connected, or the errno the program should see. Entry locked. */
static int drive_sync(int fd, struct cg_fd *e)
{
  for (;;) {
    unsigned st = atomic_load(&e->state);
    if (st == CG_FD_WAITING) {
      int64_t d = e->t_next_ns;
      cg_fd_unlock(e);
      sleep_until(d);
      cg_fd_lock(e);
      if (atomic_load(&e->state) != CG_FD_WAITING) continue;
      start_attempt(fd, e);
      continue;
    }
    if (st == CG_FD_CONNECTING || st == CG_FD_PASSED) {
      /* The last attempt (or one the program already gave up retrying) may wait until the
       * deadline; an earlier one until its own timeout. */
      int last = st == CG_FD_PASSED || e->attempt > cg_cfg.retries;
      int64_t end = last ? budget_end_of(e) : attempt_end_of(e), now = cg_mono_ns();
      cg_fd_unlock(e);
      int rv = r_poll1(fd, POLLOUT, end > now ? end - now : 0);
      cg_fd_lock(e);
      if (atomic_load(&e->state) != st) continue;
      if (rv < 0) continue;   /* EINTR: a signal is no answer (a closed fd shows in the state) */
      if (rv == 0 && !last) { on_failure(fd, e, 0, 1); continue; }
      if (rv == 0) {
        /* Deadline reached with the attempt still pending: what the kernel would say later. */
        reset_socket(fd);
        log_failure(fd, (struct sockaddr *)&e->addr, e->addrlen, ETIMEDOUT, e->attempt, ACT_GIVE_UP, 0,
                    cg_mono_ns() - e->t_start_ns, "deadline", e->cpcs, e->cnpcs);
        count_failure(ETIMEDOUT);
        CG_STAT_ADD(give_ups, 1);
        move(fd, e, CG_FD_SOCKET);
        return ETIMEDOUT;
      }
      if (rv & (POLLERR | POLLHUP)) {
        if (st == CG_FD_CONNECTING && on_failure(fd, e, 0, 0) != F_PASS) continue;
        if (atomic_load(&e->state) == CG_FD_PASSED) {
          int err = so_error(fd);
          passed_read(fd, e, err);
          return err;
        }
        continue;
      }
      mark_connected(fd, e);
      return 0;
    }
    if (st == CG_FD_FAILED) {
      int err = e->pending_err;
      move(fd, e, CG_FD_SOCKET);
      return err;
    }
    return 0;
  }
}

static int same_dst(struct cg_fd *e, const struct sockaddr *a, socklen_t l)
{
  return l == e->addrlen && memcmp(a, &e->addr, l) == 0;
}

/* ---------- first attempt of a blocking connect ---------- */

/* A blocking connect() waits for the SYN's answer as long as the kernel retransmits (about two
 * minutes): CONNGUARD_CONNECT_TIMEOUT_MS bounds the first attempt too. Returns 1 when a bound
 * is needed, with the program's own SO_SNDTIMEO in prog_tv (left to act alone when shorter)
 * and ours in bound_ns. */
static int first_attempt_bound(int fd, struct timeval *prog_tv, int64_t *bound_ns)
{
  socklen_t tvl = sizeof *prog_tv;
  memset(prog_tv, 0, sizeof *prog_tv);
  /* A socket this process made with socket(), in a process that never set SO_SNDTIMEO on any
   * socket, has none: no need to ask the kernel (one system call less per connect). Anything
   * else (dup'ed, inherited, received) is asked. */
  int known_unset = !atomic_load_explicit(&cg_sndtimeo_seen, memory_order_relaxed) &&
                    cg_fd_made_here(cg_fd_peek(fd));
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
static int watchdog_may_cut(int fd, const struct sockaddr *a, socklen_t l)
{
  int fam = family_of(a, l);
  if (!cg_cfg.watchdog || (fam != AF_INET && fam != AF_INET6)) return 0;
  struct cg_fd *e = cg_fd_peek(fd);
  if (cg_fd_made_here(e)) return e->tcp;
  int v = 0;
  socklen_t vl = sizeof v;
  return r_getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &v, &vl) == 0 && v == IPPROTO_TCP;
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

static int is_blocking(int fd)
{
  int fl = (int)syscall(SYS_fcntl, fd, F_GETFL);
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

/* ---------- hooks' bodies ---------- */

int cg_connect(int fd, const struct sockaddr *a, socklen_t l)
{
  struct cg_fd *e = cg_fd_peek(fd);
  unsigned st0 = e ? atomic_load(&e->state) : CG_FD_NONE;
  if (st0 == CG_FD_BACKGROUND) {
    int r = r_connect(fd, a, l), err = errno;
    if (r == 0 || err == EISCONN) cg_fd_set_state(fd, e, CG_FD_CONNECTED);
    else if (err != EALREADY && err != EINPROGRESS && err != EINTR) cg_fd_set_state(fd, e, CG_FD_SOCKET);
    errno = err;
    return r;
  }
  if (cg_state_active(st0) && a && same_dst(e, a, l)) {
    /* A second connect() on a connect we track: hiredis's status check, or a retry loop. */
    cg_fd_lock(e);
    unsigned st = atomic_load(&e->state);
    int ret = 0, err = 0;
    if (st == CG_FD_CONNECTING || st == CG_FD_PASSED) {
      ret = r_connect(fd, a, l);
      err = errno;
      if (ret == 0 || err == EISCONN) { mark_connected(fd, e); cg_fd_unlock(e); errno = err; return ret; }
      if (err == EALREADY || err == EINPROGRESS || err == EINTR) { cg_fd_unlock(e); errno = err; return ret; }
      if (st == CG_FD_PASSED) { passed_read(fd, e, err); cg_fd_unlock(e); errno = err; return ret; }
      /* The kernel handed us the failure (and reset the socket): decide as in poll. */
      int f = on_failure(fd, e, err, 0);
      if (f == F_FAILED) { move(fd, e, CG_FD_SOCKET); cg_fd_unlock(e); errno = err; return -1; }
    }
    if (atomic_load(&e->state) == CG_FD_FAILED) {
      err = e->pending_err;
      reset_socket(fd);   /* what the kernel's own status-check connect does after reporting */
      move(fd, e, CG_FD_SOCKET);
      cg_fd_unlock(e);
      errno = err;
      return -1;
    }
    err = drive_sync(fd, e);
    cg_fd_unlock(e);
    if (!err) { errno = e->nonblock ? EISCONN : 0; return e->nonblock ? -1 : 0; }
    errno = err;
    return -1;
  }

  int64_t t0 = cg_mono_ns();
  cg_stats_use();
  CG_STAT_ADD(connect_attempts, 1);
  struct timeval prog_tv;
  int64_t bound_ns = 0;
  int armed = 0, wd = 0;
  if (timeouts_retried() && dst_wanted(a, l) && first_attempt_bound(fd, &prog_tv, &bound_ns)) {
    if (!watchdog_may_cut(fd, a, l)) {
      armed = arm_sndtimeo(fd, bound_ns);
    } else if (cg_wd_status() == 1 || is_blocking(fd)) {
      /* Until a blocking connect has started the thread, a non-blocking one (curl, node: their
       * attempts are bounded in poll) needs no bound and must not start it: one F_GETFL. */
      wd = cg_wd_arm(fd, t0 + bound_ns, bound_ns);
      if (!wd) armed = arm_sndtimeo(fd, bound_ns);
    }
  }
  int r = r_connect(fd, a, l);
  int err = errno;
  if (wd && cg_wd_disarm(wd)) {
    /* The watchdog cut the first attempt at its bound: the SYN went unanswered (or its answer
     * came in the very moment the bound expired; that connection was shut down unused). */
    reset_socket(fd);
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
    if (e && atomic_load(&e->state) != CG_FD_NONE) cg_fd_set_state(fd, e, CG_FD_CONNECTED);
    return 0;
  }
  if (!a || l < sizeof(sa_family_t)) { errno = err; return r; }
  int fam = a->sa_family;
  if (armed && err == EINPROGRESS && cg_mono_ns() - t0 >= bound_ns / 2 && is_blocking(fd)) {
    /* Our bound on the first attempt of a blocking connect expired: the SYN went unanswered. */
    if (!eligible(fd, a, l)) return finish_like_kernel(fd, &prog_tv, t0);
    reset_socket(fd);
    return blocking_connect(fd, a, l, ETIMEDOUT, 1, t0);
  }
  if (err == EINPROGRESS || err == EINTR) {
    if (!eligible(fd, a, l)) { errno = err; return r; }
    e = cg_fd_get(fd, 1);
    if (e) {
      cg_fd_lock(e);
      e->family = fam;
      e->attempt = 1;
      e->prev_delay_ms = 0;
      e->pending_err = 0;
      e->nonblock = err == EINPROGRESS;
      e->t_start_ns = e->t_attempt_ns = t0;
      e->addrlen = l <= sizeof e->addr ? l : sizeof e->addr;
      memcpy(&e->addr, a, e->addrlen);
      e->cnpcs = capture(e->cpcs);
      int taken = cg_fd_begin(fd, e, CG_FD_CONNECTING);
      cg_fd_unlock(e);
      if (!taken) warn_set_full();
    }
    errno = err;
    return r;
  }
  if (cg_errno_is_progress(err, fam) || !eligible(fd, a, l)) { errno = err; return r; }
  /* A blocking connect that failed, or a non-blocking one that failed at once. */
  int fl = (int)syscall(SYS_fcntl, fd, F_GETFL);
  if (fl >= 0 && (fl & O_NONBLOCK)) {
    /* Immediate failure on a non-blocking socket: report it as it came (waiting here would
     * freeze an event loop); logged so that the failure is still explained. */
    uintptr_t pcs[CG_MAX_STACK];
    int np = cg_stack_capture(pcs, (int)cg_cfg.stack_depth);
    count_failure(err);
    log_failure(fd, a, l, err, 1, ACT_GIVE_UP, 0, 0, "nonblocking_immediate", pcs, np);
    CG_STAT_ADD(give_ups, 1);
    errno = err;
    return r;
  }
  r = blocking_connect(fd, a, l, err, 0, t0);
  return r;
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
      if (rv > 0 && !(rv & (POLLERR | POLLHUP))) mark_connected(fd, e);
      cg_fd_unlock(e);
      return r;
    }
    if (on_failure(fd, e, err, 0) == F_FAILED) {
      move(fd, e, CG_FD_SOCKET);
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

/* ---------- multiplexers ---------- */

/* Inspects one reported fd after a real poll. Returns the revents the program should see. */
static int filter_revents(int fd, int rev)
{
  struct cg_fd *e = cg_fd_peek(fd);
  if (!e) return rev;
  unsigned st = atomic_load(&e->state);
  if (!cg_state_active(st)) return rev;
  cg_fd_lock(e);
  st = atomic_load(&e->state);
  if (st == CG_FD_CONNECTING && rev) {
    /* rev may be older than the attempt now in flight: another thread's tick can reset the
     * socket and start the next attempt while this one is between the kernel's answer and
     * this lock. Judged on that stale POLLHUP, a socket in SYN_SENT (SO_ERROR 0) would pass
     * as connected. Decide on the socket's state now. */
    int cur = r_poll1(fd, POLLOUT, 0);
    if (cur == 0) {
      rev = 0;                               /* the current attempt is still in progress */
    } else if (cur > 0 && (cur & (POLLERR | POLLHUP))) {
      if (on_failure(fd, e, 0, 0) == F_RETRY) rev = 0;
    } else if (cur > 0 && (cur & POLLOUT)) {
      mark_connected(fd, e);
      rev &= ~(POLLERR | POLLHUP);           /* stale; connected sockets report POLLOUT on their own */
    }
  } else if (st == CG_FD_WAITING) {
    rev = 0;
  } else if (st == CG_FD_FAILED) {
    rev |= POLLERR;
  }
  cg_fd_unlock(e);
  return rev;
}

static int64_t ns_until(int64_t end, int64_t due, int64_t now)
{
  int64_t t = end < due ? end : due;
  if (t == INF) return -1;
  return t > now ? t - now : 0;
}

int cg_poll(struct pollfd *fds, nfds_t n, int64_t timeout_ns, const sigset_t *mask, int use_ppoll)
{
  int64_t now = cg_mono_ns();
  int64_t end = timeout_ns < 0 ? INF : now + timeout_ns;
  for (;;) {
    int64_t due = tick();
    /* Fds waiting for their next attempt are hidden from the kernel (a negative fd is
     * ignored by poll); a failed socket would otherwise report POLLHUP at once, forever. */
    nfds_t hidden[128];
    int hidden_fd[128];
    int nh = 0;
    for (nfds_t i = 0; i < n && nh < 128; i++) {
      struct cg_fd *e = cg_fd_peek(fds[i].fd);
      if (e && atomic_load(&e->state) == CG_FD_WAITING) { hidden[nh] = i; hidden_fd[nh++] = fds[i].fd; fds[i].fd = -1; }
    }
    now = cg_mono_ns();
    int64_t wait = ns_until(end, due, now);
    struct timespec ts, *tp = NULL;
    if (wait >= 0) { ts.tv_sec = wait / 1000000000; ts.tv_nsec = wait % 1000000000; tp = &ts; }
    int r;
    if (use_ppoll) r = cg_real.ppoll(fds, n, tp, mask);
    else r = cg_real.poll(fds, n, wait < 0 ? -1 : (int)((wait + MS_NS - 1) / MS_NS));
    int saved = errno;
    for (int h = 0; h < nh; h++) {
      fds[hidden[h]].fd = hidden_fd[h];
    }
    if (r < 0) { errno = saved; return r; }
    int count = 0;
    for (nfds_t i = 0; i < n; i++) {
      if (fds[i].fd < 0) continue;
      int rev = fds[i].revents;
      if (rev || cg_active_count) rev = filter_revents(fds[i].fd, rev);
      fds[i].revents = (short)rev;
      if (rev) count++;
    }
    if (count) return count;
    now = cg_mono_ns();
    if (now >= end) return 0;
  }
}

int cg_select(int nfds, fd_set *rs, fd_set *ws, fd_set *xs, struct timeval *tv,
              const struct timespec *ts, const sigset_t *mask, int is_pselect)
{
  /* Only reached while a connect is active: emulated on top of cg_poll, with select's own
   * readiness rules (the kernel's POLLIN_SET / POLLOUT_SET / POLLEX_SET). */
  struct pollfd p[FD_SETSIZE];
  nfds_t k = 0;
  for (int fd = 0; fd < nfds; fd++) {
    short ev = 0;
    if (rs && FD_ISSET(fd, rs)) ev |= POLLIN;
    if (ws && FD_ISSET(fd, ws)) ev |= POLLOUT;
    if (xs && FD_ISSET(fd, xs)) ev |= POLLPRI;
    if (ev) { p[k].fd = fd; p[k].events = ev; p[k].revents = 0; k++; }
  }
  int64_t timeout = -1;
  if (tv) timeout = (int64_t)tv->tv_sec * 1000000000 + (int64_t)tv->tv_usec * 1000;
  if (ts) timeout = (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
  if (timeout < -1) { errno = EINVAL; return -1; }
  int64_t start = cg_mono_ns(), end = timeout < 0 ? INF : start + timeout;
  int count;
  for (;;) {
    int64_t now = cg_mono_ns();
    int64_t left = end == INF ? -1 : (end > now ? end - now : 0);
    int r = cg_poll(p, k, left, is_pselect ? mask : NULL, 1);
    if (r < 0) return -1;
    count = 0;
    for (nfds_t i = 0; i < k; i++) {
      if (p[i].revents & POLLNVAL) { errno = EBADF; return -1; }
      if ((p[i].events & POLLIN) && (p[i].revents & (POLLIN | POLLHUP | POLLERR))) count++;
      if ((p[i].events & POLLOUT) && (p[i].revents & (POLLOUT | POLLERR))) count++;
      if ((p[i].events & POLLPRI) && (p[i].revents & POLLPRI)) count++;
    }
    if (count || r == 0 || cg_mono_ns() >= end) break;
  }
  if (rs) for (nfds_t i = 0; i < k; i++) FD_CLR(p[i].fd, rs);
  if (ws) for (nfds_t i = 0; i < k; i++) FD_CLR(p[i].fd, ws);
  if (xs) for (nfds_t i = 0; i < k; i++) FD_CLR(p[i].fd, xs);
  for (nfds_t i = 0; i < k; i++) {
    if ((p[i].events & POLLIN) && (p[i].revents & (POLLIN | POLLHUP | POLLERR))) FD_SET(p[i].fd, rs);
    if ((p[i].events & POLLOUT) && (p[i].revents & (POLLOUT | POLLERR))) FD_SET(p[i].fd, ws);
    if ((p[i].events & POLLPRI) && (p[i].revents & POLLPRI)) FD_SET(p[i].fd, xs);
  }
  if (tv && !is_pselect) {
    /* Linux select() leaves the time not slept in the timeval. */
    int64_t left = end - cg_mono_ns();
    if (left < 0) left = 0;
    tv->tv_sec = left / 1000000000;
    tv->tv_usec = (left % 1000000000) / 1000;
  }
  return count;
}

/* The fd an epoll event belongs to, among the active ones (epoll gives back only data). */
static int epoll_owner(int epfd, uint64_t data)
{
  for (int i = 0; i < CG_ACTIVE_SLOTS; i++) {
    int fd = cg_active_at(i);
    if (fd < 0) continue;
    struct cg_fd *e = cg_fd_peek(fd);
    /* Unlocked: the registration may change under us (relaxed atomics; a stale match is no
     * worse than the event's own staleness, and filter_revents re-reads the socket). */
    if (e && __atomic_load_n(&e->ep_fd, __ATOMIC_RELAXED) == epfd + 1 &&
        __atomic_load_n(&e->ep_data, __ATOMIC_RELAXED) == data) return fd;
  }
  return -1;
}

int cg_epoll_wait(int epfd, struct epoll_event *ev, int max, int64_t timeout_ns,
                  const sigset_t *mask, int variant)
{
  int64_t now = cg_mono_ns();
  int64_t end = timeout_ns < 0 ? INF : now + timeout_ns;
  for (;;) {
    int64_t due = tick();
    now = cg_mono_ns();
    int64_t wait = ns_until(end, due, now);
    int r;
    if (variant == 2 && cg_real.epoll_pwait2) {
      struct timespec ts, *tp = NULL;
      if (wait >= 0) { ts.tv_sec = wait / 1000000000; ts.tv_nsec = wait % 1000000000; tp = &ts; }
      r = cg_real.epoll_pwait2(epfd, ev, max, tp, mask);
    } else {
      int ms = wait < 0 ? -1 : (int)((wait + MS_NS - 1) / MS_NS);
      r = variant ? cg_real.epoll_pwait(epfd, ev, max, ms, mask) : cg_real.epoll_wait(epfd, ev, max, ms);
    }
    if (r < 0) return r;
    int k = 0;
    for (int i = 0; i < r; i++) {
      int fd = atomic_load(&cg_active_count) ? epoll_owner(epfd, ev[i].data.u64) : -1;
      uint32_t rev = ev[i].events;
      if (fd >= 0) rev = (uint32_t)filter_revents(fd, (int)rev);
      if (!rev) continue;
      ev[k] = ev[i];
      ev[k].events = rev;
      k++;
    }
    if (k) return k;
    if (cg_mono_ns() >= end) return 0;
  }
}

int cg_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
  struct cg_fd *e = cg_fd_get(fd, op == EPOLL_CTL_ADD);
  if (!e) return cg_real.epoll_ctl(epfd, op, fd, ev);
  cg_fd_lock(e);
  if (e->ep_removed && e->ep_fd == epfd + 1) {
    /* We took the fd out of this set while it waits for its next attempt: answer as the
     * kernel would have if it were still there, and re-add it with the program's wishes. */
    int r = 0;
    if (op == EPOLL_CTL_DEL) { e->ep_removed = 0; __atomic_store_n(&e->ep_fd, 0, __ATOMIC_RELAXED); }
    else if (op == EPOLL_CTL_MOD && ev) { e->ep_events = ev->events; __atomic_store_n(&e->ep_data, ev->data.u64, __ATOMIC_RELAXED); }
    else if (op == EPOLL_CTL_ADD) { errno = EEXIST; r = -1; }
    cg_fd_unlock(e);
    return r;
  }
  int r = cg_real.epoll_ctl(epfd, op, fd, ev);
  if (r == 0) {
    if ((op == EPOLL_CTL_ADD || op == EPOLL_CTL_MOD) && ev) {
      /* epoll_owner() reads these without the lock. */
      __atomic_store_n(&e->ep_fd, epfd + 1, __ATOMIC_RELAXED); e->ep_events = ev->events;
      __atomic_store_n(&e->ep_data, ev->data.u64, __ATOMIC_RELAXED);
    } else if (op == EPOLL_CTL_DEL && e->ep_fd == epfd + 1) {
      __atomic_store_n(&e->ep_fd, 0, __ATOMIC_RELAXED);
    }
  }
  cg_fd_unlock(e);
  return r;
}

/* ---------- fallback addresses ---------- */

#define GAI_SLOTS 16
#define GAI_ADDRS 8
#define GAI_TTL_NS (60 * 1000000000LL)
struct gai_slot {
  int64_t t;
  int n;
  struct sockaddr_storage a[GAI_ADDRS];
};
static struct gai_slot gai[GAI_SLOTS];
static unsigned gai_next;
static atomic_uint gai_lock;

static int addr_eq(const struct sockaddr *x, const struct sockaddr *y)
{
  if (x->sa_family != y->sa_family) return 0;
  if (x->sa_family == AF_INET) {
    const struct sockaddr_in *a = (const void *)x, *b = (const void *)y;
    return a->sin_port == b->sin_port && a->sin_addr.s_addr == b->sin_addr.s_addr;
  }
  if (x->sa_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const void *)x, *b = (const void *)y;
    return a->sin6_port == b->sin6_port && !memcmp(&a->sin6_addr, &b->sin6_addr, 16);
  }
  return 0;
}

static int gai_trylock(void)
{
  for (int i = 0; i < 1000; i++)
    if (!atomic_exchange_explicit(&gai_lock, 1, memory_order_acquire)) return 1;
  return 0;
}

void cg_note_addrinfo(const void *res)
{
  struct gai_slot s;
  memset(&s, 0, sizeof s);
  for (const struct addrinfo *ai = res; ai && s.n < GAI_ADDRS; ai = ai->ai_next) {
    if (!ai->ai_addr || (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)) continue;
    if (ai->ai_socktype && ai->ai_socktype != SOCK_STREAM) continue;
    if (ai->ai_addrlen > sizeof s.a[0]) continue;
    int dup = 0;
    for (int i = 0; i < s.n; i++) if (addr_eq((struct sockaddr *)&s.a[i], ai->ai_addr)) dup = 1;
    if (dup) continue;
    memcpy(&s.a[s.n++], ai->ai_addr, ai->ai_addrlen);
  }
  if (s.n < 2) return;
  s.t = cg_mono_ns();
  if (!gai_trylock()) return;
  gai[gai_next++ % GAI_SLOTS] = s;
  atomic_store_explicit(&gai_lock, 0, memory_order_release);
}

/* A TCP listener of this family on port, bound to loopback or a wildcard, asked of the kernel's
 * sock_diag: only the listening hash is walked (a few entries), where /proc/net/tcp lists every
 * socket of the host (131,000 lines, 0.3 s of system time, on a busy test machine here).
 * Returns 1/0, or -1 when sock_diag is not available. */
static int diag_listening(int family, unsigned port)
{
  int fd = (int)syscall(SYS_socket, AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (fd < 0) return -1;
  struct { struct nlmsghdr nh; struct inet_diag_req_v2 r; } req;
  memset(&req, 0, sizeof req);
  req.nh.nlmsg_len = sizeof req;
  req.nh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  req.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  req.r.sdiag_family = (uint8_t)family;
  req.r.sdiag_protocol = IPPROTO_TCP;
  req.r.idiag_states = 1u << 10;            /* TCP_LISTEN */
  struct sockaddr_nl nl = { .nl_family = AF_NETLINK };
  int found = -1;
  if (syscall(SYS_sendto, fd, &req, sizeof req, 0, &nl, sizeof nl) == (long)sizeof req) {
    long buf[1024];                        /* 8 KB, aligned for the headers */
    for (int done = 0; !done;) {
      long n = syscall(SYS_recvfrom, fd, buf, sizeof buf, 0, NULL, NULL);
      if (n <= 0) { if (n < 0 && errno == EINTR) continue; break; }
      for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (unsigned)n); h = NLMSG_NEXT(h, n)) {
        if (h->nlmsg_type == NLMSG_DONE) { done = 1; if (found < 0) found = 0; break; }
        if (h->nlmsg_type == NLMSG_ERROR) { done = 1; break; }
        const struct inet_diag_msg *m = NLMSG_DATA(h);
        if (ntohs(m->id.idiag_sport) != port) continue;
        const uint32_t *w = m->id.idiag_src;   /* network byte order */
        int any, lo;
        if (family == AF_INET) {
          any = w[0] == 0;
          lo = (ntohl(w[0]) >> 24) == 127;
        } else {
          any = !w[0] && !w[1] && !w[2] && !w[3];
          lo = (!w[0] && !w[1] && !w[2] && w[3] == htonl(1)) ||                          /* ::1 */
               (!w[0] && !w[1] && w[2] == htonl(0xffff) && (ntohl(w[3]) >> 24) == 127);  /* ::ffff:127.x */
        }
        if (any || lo) { found = 1; done = 1; break; }
      }
    }
  }
  syscall(SYS_close, fd);
  return found;
}

/* Is a listener on the same port bound to the other loopback family (or a wildcard)? Asked of
 * the kernel: no packet is sent. This is the "localhost" case of clients that resolve the name
 * themselves (curl does) and fall back from ::1 to 127.0.0.1 on their own. */
static int loopback_sibling_listening(const struct sockaddr *sa)
{
  unsigned port;
  const char *file;
  int other;
  if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *in6 = (const void *)sa;
    if (!IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr)) return 0;
    port = ntohs(in6->sin6_port);
    file = "/proc/net/tcp";
    other = AF_INET;
  } else if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *in = (const void *)sa;
    if ((ntohl(in->sin_addr.s_addr) >> 24) != 127) return 0;
    port = ntohs(in->sin_port);
    file = "/proc/net/tcp6";
    other = AF_INET6;
  } else {
    return 0;
  }
  int d = diag_listening(other, port);
  if (d >= 0) return d;
  /* No sock_diag (a sandbox): the /proc table, slow on a host with many sockets. */
  int fd = (int)syscall(SYS_openat, AT_FDCWD, file, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char buf[2048], tail[160];   /* small: connect() may run on a PTHREAD_STACK_MIN thread */
  size_t tl = 0;
  int found = 0;
  ssize_t n;
  /* Lines: "  sl  local_address rem_address   st ..."; local is HEXADDR:HEXPORT, st 0A = LISTEN. */
  while (!found && (n = read(fd, buf, sizeof buf)) > 0) {
    for (ssize_t i = 0; i < n && !found; i++) {
      char c = buf[i];
      if (c != '\n') { if (tl < sizeof tail - 1) tail[tl++] = c; continue; }
      tail[tl] = 0;
      tl = 0;
      char *colon = strchr(tail, ':');
      if (!colon) continue;
      char *addr = colon + 1;
      while (*addr == ' ') addr++;
      char *pc = strchr(addr, ':');
      if (!pc) continue;
      unsigned lport = (unsigned)strtoul(pc + 1, NULL, 16);
      char *st = strchr(pc, ' ');
      if (!st) continue;
      st = strchr(st + 1, ' ');
      if (!st || strncmp(st + 1, "0A", 2) != 0 || lport != port) continue;
      size_t alen = (size_t)(pc - addr);
      int any = 1, lo = 0;
      for (size_t j = 0; j < alen; j++) if (addr[j] != '0') any = 0;
      if (alen == 8) lo = addr[6] == '7' && addr[7] == 'F';                        /* 127.x.x.x, little-endian */
      else if (alen == 32) lo = !strncmp(addr, "00000000000000000000000001000000", 32) ||
                                !strncmp(addr, "0000000000000000FFFF0000", 24);   /* ::1, ::ffff:a.b.c.d */
      if (any || lo) found = 1;
    }
  }
  syscall(SYS_close, fd);
  return found;
}

int cg_has_fallback(const struct sockaddr *sa, socklen_t len)
{
  if (!sa || len < sizeof(sa_family_t)) return 0;
  int64_t now = cg_mono_ns();
  int hit = 0;
  if (gai_trylock()) {
    for (int i = 0; i < GAI_SLOTS && !hit; i++) {
      if (gai[i].n < 2 || now - gai[i].t > GAI_TTL_NS) continue;
      for (int j = 0; j < gai[i].n - 1; j++)
        if (addr_eq((struct sockaddr *)&gai[i].a[j], sa)) { hit = 1; break; }
    }
    atomic_store_explicit(&gai_lock, 0, memory_order_release);
  }
  return hit || loopback_sibling_listening(sa);
}

/* ---------- init, fork ---------- */

static void warn_stderr(const char *line, void *arg)
{
  char buf[400];
  struct cg_buf b;
  cg_buf_init(&b, buf, sizeof buf - 1);
  cg_buf_puts(&b, line);
  cg_buf_putc(&b, '\n');
  if (write(2, b.p, b.len) < 0) { /* stderr closed: nothing to tell */ }
}

static const char *env_get(const char *name) { return secure_getenv(name); }

static atomic_int init_state;   /* 0 none, 1 running, 2 done */

void cg_after_fork_child(void)
{
  cg_log_after_fork();
  atomic_store(&gai_lock, 0);
  for (int c = 0; c < CG_FD_MAX_CHUNKS; c++) {
    struct cg_fd *ch = atomic_load(&cg_fd_chunks[c]);
    if (ch) for (int i = 0; i < CG_FD_CHUNK; i++) atomic_store(&ch[i].lock, 0);
  }
  if (cg_cfg.stats) cg_stats_after_fork();
  cg_wd_after_fork_child();
}

void cg_init(void)
{
  if (atomic_load_explicit(&init_state, memory_order_acquire) == 2) return;
  int expect = 0;
  if (!atomic_compare_exchange_strong(&init_state, &expect, 1)) return;  /* re-entered, or another thread: pass through meanwhile */
  int saved = errno;
  cg_real_init();
  cg_config_load(&cg_cfg, env_get, warn_stderr, NULL);
  if (!cg_cfg.disable) {
    cg_log_configure(&cg_cfg);
    if (cg_cfg.stack_depth) cg_stack_init();
    if (cg_cfg.stats) cg_stats_publish();
    pthread_atfork(NULL, NULL, cg_after_fork_child);
    cg_enabled = 1;
  }
  atomic_store_explicit(&init_state, 2, memory_order_release);
  errno = saved;
}
