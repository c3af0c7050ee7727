/* The event-loop hooks: poll, ppoll, select, pselect, epoll_wait and friends. With no connect
 * active they add nothing but the real call. While one is, they run the state machine's
 * time-driven work (cg_nb_tick), hide fds that wait for their next attempt, and filter what
 * the kernel reports for active fds (a consumed failure is not shown; the next attempt's
 * result is). */
#include "engine_int.h"
#include <sys/epoll.h>
#include <sys/select.h>

/* Inspects one reported fd after a real poll. Returns the revents the program should see. */
static int filter_revents(int fd, int rev)
{
  struct cg_fd *e = cg_fd_peek(fd);
  if (!e) return rev;
  unsigned st = atomic_load(&e->state);
  if (!cg_state_active(st)) return rev;
  cg_fd_lock(e);
  st = atomic_load(&e->state);
  struct cg_conn *c = cg_conn_of(e);
  if (st == CG_FD_CONNECTING && c && c->attempt == 1 && (rev & (POLLOUT | POLLIN)) &&
      !(rev & (POLLERR | POLLHUP | POLLRDHUP | POLLNVAL))) {
    /* The healthy case, decided without asking again: a first attempt has no earlier one
     * whose stale answer this could be, and a socket still in SYN_SENT reports neither
     * POLLOUT nor POLLIN. */
    cg_nb_connected(fd, e);
  } else if (st == CG_FD_CONNECTING && rev) {
    /* rev may be older than the attempt now in flight: another thread's tick can reset the
     * socket and start the next attempt while this one is between the kernel's answer and
     * this lock. Judged on that stale POLLHUP, a socket in SYN_SENT (SO_ERROR 0) would pass
     * as connected. Decide on the socket's state now. */
    int cur = r_poll1(fd, POLLOUT, 0);
    if (cur == 0) {
      rev = 0;                               /* the current attempt is still in progress */
    } else if (cur > 0 && (cur & (POLLERR | POLLHUP))) {
      if (cg_nb_failure(fd, e, 0, 0) == F_RETRY) rev = 0;
    } else if (cur > 0 && (cur & POLLOUT)) {
      cg_nb_connected(fd, e);
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
    int64_t due = cg_nb_tick(now);
    /* Fds waiting for their next attempt are hidden from the kernel (a negative fd is
     * ignored by poll); a failed socket would otherwise report POLLHUP at once, forever. */
    nfds_t hidden[128];
    int hidden_fd[128];
    int nh = 0;
    for (nfds_t i = 0; i < n && nh < 128; i++) {
      struct cg_fd *e = cg_fd_peek(fds[i].fd);
      if (e && atomic_load(&e->state) == CG_FD_WAITING) { hidden[nh] = i; hidden_fd[nh++] = fds[i].fd; fds[i].fd = -1; }
    }
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
  int span = cg_active_span();
  for (int i = 0; i < span; i++) {
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

/* The active fds registered in epfd, with their data: looked up by every event of one wait
 * (an event loop gets several per wait; a walk per event read every active fd's entry each
 * time). Returns how many, or -1 when more than fit (then epoll_owner per event). */
struct owner { uint64_t data; int fd; };
#define OWNERS 64
static int owners_of(int epfd, struct owner *o)
{
  int n = 0, span = cg_active_span();
  for (int i = 0; i < span; i++) {
    int fd = cg_active_at(i);
    if (fd < 0) continue;
    struct cg_fd *e = cg_fd_peek(fd);
    if (!e || __atomic_load_n(&e->ep_fd, __ATOMIC_RELAXED) != epfd + 1) continue;
    if (n == OWNERS) return -1;
    o[n].data = __atomic_load_n(&e->ep_data, __ATOMIC_RELAXED);
    o[n++].fd = fd;
  }
  return n;
}

int cg_epoll_wait(int epfd, struct epoll_event *ev, int max, int64_t timeout_ns,
                  const sigset_t *mask, int variant)
{
  int64_t now = cg_mono_ns();
  int64_t end = timeout_ns < 0 ? INF : now + timeout_ns;
  for (;;) {
    int64_t due = cg_nb_tick(now);
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
    int k = 0, no = -2;
    struct owner own[OWNERS];
    for (int i = 0; i < r; i++) {
      int fd = -1;
      if (atomic_load_explicit(&cg_active_count, memory_order_relaxed)) {
        if (no == -2) no = r > 1 ? owners_of(epfd, own) : -1;   /* once per wait, at its first event */
        if (no < 0) {
          fd = epoll_owner(epfd, ev[i].data.u64);
        } else {
          for (int j = 0; j < no; j++)
            if (own[j].data == ev[i].data.u64) { fd = own[j].fd; break; }
        }
      }
      uint32_t rev = ev[i].events;
      if (fd >= 0) rev = (uint32_t)filter_revents(fd, (int)rev);
      if (!rev) continue;
      ev[k] = ev[i];
      ev[k].events = rev;
      k++;
    }
    if (k) return k;
    now = cg_mono_ns();
    if (now >= end) return 0;
  }
}

/* The program's registration of fd, kept for epoll_owner() (which reads it unlocked). */
static inline __attribute__((always_inline)) void note_registration(struct cg_fd *e, int epfd, int op, const struct epoll_event *ev)
{
  if ((op == EPOLL_CTL_ADD || op == EPOLL_CTL_MOD) && ev) {
    __atomic_store_n(&e->ep_fd, epfd + 1, __ATOMIC_RELAXED);
    __atomic_store_n(&e->ep_events, ev->events, __ATOMIC_RELAXED);
    __atomic_store_n(&e->ep_data, ev->data.u64, __ATOMIC_RELAXED);
  } else if (op == EPOLL_CTL_DEL && __atomic_load_n(&e->ep_fd, __ATOMIC_RELAXED) == epfd + 1) {
    __atomic_store_n(&e->ep_fd, 0, __ATOMIC_RELAXED);
  }
}

/* An epoll_ctl() on an fd whose connect holds a record (it may be out of the set: ep_removed). */
static __attribute__((noinline)) int epoll_ctl_held(struct cg_fd *e, int epfd, int op, int fd,
                                                    struct epoll_event *ev)
{
  cg_fd_lock(e);
  struct cg_conn *c = cg_conn_of(e);
  if (c && c->ep_removed && e->ep_fd == epfd + 1) {
    /* We took the fd out of this set while it waits for its next attempt: answer as the
     * kernel would have if it were still there, and re-add it with the program's wishes. */
    int r = 0;
    if (op == EPOLL_CTL_DEL) { c->ep_removed = 0; __atomic_store_n(&e->ep_fd, 0, __ATOMIC_RELAXED); }
    else if (op == EPOLL_CTL_MOD && ev) note_registration(e, epfd, op, ev);
    else if (op == EPOLL_CTL_ADD) { errno = EEXIST; r = -1; }
    cg_fd_unlock(e);
    return r;
  }
  int r = cg_real.epoll_ctl(epfd, op, fd, ev);
  if (r == 0) note_registration(e, epfd, op, ev);
  cg_fd_unlock(e);
  return r;
}

int cg_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
  struct cg_fd *e = cg_fd_get(fd, op == EPOLL_CTL_ADD);
  if (!e) return cg_real.epoll_ctl(epfd, op, fd, ev);
  if (__atomic_load_n(&e->conn, __ATOMIC_RELAXED)) return epoll_ctl_held(e, epfd, op, fd, ev);
  /* No connect of ours holds a record, so none has taken the fd out of a set (ep_removed):
   * nothing to reconcile, no lock (an event loop calls this several times per connection,
   * mostly on connected sockets). */
  int r = cg_real.epoll_ctl(epfd, op, fd, ev);
  if (r == 0) note_registration(e, epfd, op, ev);
  return r;
}
