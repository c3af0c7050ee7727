/* libuv and python asyncio wait in epoll. epoll_ctl is watched so that an event can be traced
 * back to its fd (epoll returns only the program's data). */
#include "hook.h"
#include "rawsys.h"

static inline int bypass(void)
{
  return !cg_enabled || cg_in_hook || !atomic_load_explicit(&cg_active_count, memory_order_relaxed);
}

CG_EXPORT int epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
  if (__builtin_expect(!cg_real_ready(), 0)) return (int)cg_syscall(SYS_epoll_ctl, epfd, op, fd, ev);
  if (!cg_enabled || cg_in_hook) return cg_real.epoll_ctl(epfd, op, fd, ev);
  /* Unguarded: cg_epoll_ctl calls no hooked function and sets errno only when it fails. */
  return cg_epoll_ctl(epfd, op, fd, ev);
}

/* Out of line: the pass-through above it then needs no frame of its own (a tail call). */
static __attribute__((noinline)) int guarded_wait(int epfd, struct epoll_event *ev, int max, int64_t timeout_ns,
                                                  const sigset_t *mask, int variant)
{
  return CG_GUARDED(int, cg_epoll_wait(epfd, ev, max, timeout_ns, mask, variant));
}

CG_EXPORT int epoll_wait(int epfd, struct epoll_event *ev, int max, int timeout)
{
  if (__builtin_expect(!cg_real_ready(), 0)) return (int)cg_syscall(SYS_epoll_wait, epfd, ev, max, timeout);
  if (bypass() || max <= 0) return cg_real.epoll_wait(epfd, ev, max, timeout);
  return guarded_wait(epfd, ev, max, timeout < 0 ? -1 : (int64_t)timeout * 1000000, NULL, 0);
}

CG_EXPORT int epoll_pwait(int epfd, struct epoll_event *ev, int max, int timeout, const sigset_t *mask)
{
  if (__builtin_expect(!cg_real_ready(), 0)) return (int)cg_syscall(SYS_epoll_pwait, epfd, ev, max, timeout, mask, 8);
  if (bypass() || max <= 0) return cg_real.epoll_pwait(epfd, ev, max, timeout, mask);
  return guarded_wait(epfd, ev, max, timeout < 0 ? -1 : (int64_t)timeout * 1000000, mask, 1);
}

CG_EXPORT int epoll_pwait2(int epfd, struct epoll_event *ev, int max, const struct timespec *ts, const sigset_t *mask)
{
  if (!cg_real_ready() || !cg_real.epoll_pwait2) return (int)cg_syscall(SYS_epoll_pwait2, epfd, ev, max, ts, mask, 8);
  if (bypass() || max <= 0 || (ts && (ts->tv_sec < 0 || ts->tv_nsec < 0 || ts->tv_nsec >= 1000000000)))
    return cg_real.epoll_pwait2(epfd, ev, max, ts, mask);
  int64_t t = ts ? (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec : -1;
  return guarded_wait(epfd, ev, max, t, mask, 2);
}
