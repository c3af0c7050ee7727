/* curl decides on poll() revents before it ever reads SO_ERROR: the failure must be hidden
 * here. Costs one atomic load when no connect is under way. */
#include "hook.h"
#include "rawsys.h"
#include <stdlib.h>

static inline int bypass(void)
{
  return !cg_enabled || cg_in_hook || !atomic_load_explicit(&cg_active_count, memory_order_relaxed);
}

/* Out of line: the pass-through above it then needs no frame of its own (a tail call). */
static __attribute__((noinline)) int guarded_poll(struct pollfd *fds, nfds_t n, int64_t timeout_ns,
                                                  const sigset_t *mask, int use_ppoll)
{
  return CG_GUARDED(int, cg_poll(fds, n, timeout_ns, mask, use_ppoll));
}

CG_EXPORT int poll(struct pollfd *fds, nfds_t n, int timeout)
{
  if (__builtin_expect(!cg_real_ready(), 0)) return (int)cg_syscall(SYS_poll, fds, n, timeout);
  if (bypass()) return cg_real.poll(fds, n, timeout);
  return guarded_poll(fds, n, timeout < 0 ? -1 : (int64_t)timeout * 1000000, NULL, 0);
}

CG_EXPORT int ppoll(struct pollfd *fds, nfds_t n, const struct timespec *ts, const sigset_t *mask)
{
  if (!cg_real_ready()) return (int)cg_syscall(SYS_ppoll, fds, n, ts, mask, 8);
  if (bypass()) return cg_real.ppoll(fds, n, ts, mask);
  if (ts && (ts->tv_sec < 0 || ts->tv_nsec < 0 || ts->tv_nsec >= 1000000000)) return cg_real.ppoll(fds, n, ts, mask);
  int64_t t = ts ? (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec : -1;
  return guarded_poll(fds, n, t, mask, 1);
}

/* _FORTIFY_SOURCE builds call these instead. */
CG_EXPORT int __poll_chk(struct pollfd *fds, nfds_t n, int timeout, size_t fdslen)
{
  if (fdslen / sizeof *fds < n) abort();
  return poll(fds, n, timeout);
}

CG_EXPORT int __ppoll_chk(struct pollfd *fds, nfds_t n, const struct timespec *ts, const sigset_t *mask, size_t fdslen)
{
  if (fdslen / sizeof *fds < n) abort();
  return ppoll(fds, n, ts, mask);
}
