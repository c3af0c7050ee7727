/* nc (openbsd) waits for its connect in select(). */
#include "hook.h"
#include "rawsys.h"

static inline int bypass(void)
{
  return !cg_enabled || cg_in_hook || !atomic_load_explicit(&cg_active_count, memory_order_relaxed);
}

CG_EXPORT int select(int n, fd_set *r, fd_set *w, fd_set *x, struct timeval *tv)
{
  if (!cg_real_ready() || bypass() || n < 0 || n > FD_SETSIZE ||
      (tv && (tv->tv_sec < 0 || tv->tv_usec < 0 || tv->tv_usec >= 1000000)))
    return cg_real.select ? cg_real.select(n, r, w, x, tv) : (int)cg_syscall(SYS_select, n, r, w, x, tv);
  return CG_GUARDED(int, cg_select(n, r, w, x, tv, NULL, NULL, 0));
}

CG_EXPORT int pselect(int n, fd_set *r, fd_set *w, fd_set *x, const struct timespec *ts, const sigset_t *mask)
{
  if (!cg_real_ready() || bypass() || n < 0 || n > FD_SETSIZE ||
      (ts && (ts->tv_sec < 0 || ts->tv_nsec < 0 || ts->tv_nsec >= 1000000000)))
    return cg_real.pselect(n, r, w, x, ts, mask);
  return CG_GUARDED(int, cg_select(n, r, w, x, NULL, ts, mask, 1));
}
