/* close() and the calls that close fds behind its back. Async-signal-safe: atomics only, no
 * allocation, no locks, no dlsym (raw syscall until the real table is ready). What a close
 * ends is the close path's (closepath.h). */
#include "hook.h"
#include "closepath.h"
#include "fdutil.h"
#include "rawsys.h"
#include <linux/close_range.h>

CG_EXPORT int close(int fd)
{
  cg_close_fd(fd);
  if (cg_real_peek()) return cg_real.close(fd);
  return (int)cg_syscall(SYS_close, fd);
}

CG_EXPORT int close_range(unsigned lo, unsigned hi, int flags)
{
  cg_close_range(lo, hi, flags);
  if (cg_real_peek() && cg_real.close_range) return cg_real.close_range(lo, hi, flags);
  return (int)cg_syscall(SYS_close_range, lo, hi, flags);
}

CG_EXPORT void closefrom(int lo)
{
  if (lo < 0) lo = 0;
  cg_close_range((unsigned)lo, ~0u, 0);
  if (cg_real_peek() && cg_real.closefrom) { cg_real.closefrom(lo); return; }
  if (cg_syscall(SYS_close_range, (unsigned)lo, ~0u, 0) != 0) cg_closefrom_fallback((unsigned)lo);
}
