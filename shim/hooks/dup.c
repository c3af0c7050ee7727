/* dup2/dup3 close their target first: whatever we knew about that number is gone. The copy
 * of a tracked socket is itself tracked (leak detection), created where the dup happened. */
#include "hook.h"
#include "closepath.h"
#include "leak.h"
#include "rawsys.h"

static inline int after(int old, int r)
{
  if (r >= 0) cg_fd_note_shared(old);   /* its flags may now change through the copy */
  if (r >= 0 && cg_leak_enabled()) {
    int e = errno;
    cg_in_hook++;
    cg_leak_dup(old, r);
    cg_in_hook--;
    errno = e;
  }
  return r;
}

CG_EXPORT int dup(int old)
{
  if (!cg_real_ready() || !cg_real.dup) return (int)cg_syscall(SYS_dup, old);
  return after(old, cg_real.dup(old));
}

CG_EXPORT int dup2(int old, int new)
{
  cg_close_dup_target(old, new);
  if (cg_real_peek()) return after(old, cg_real.dup2(old, new));
  return (int)cg_syscall(SYS_dup2, old, new);
}

CG_EXPORT int dup3(int old, int new, int flags)
{
  cg_close_dup_target(old, new);
  if (cg_real_peek()) return after(old, cg_real.dup3(old, new, flags));
  return (int)cg_syscall(SYS_dup3, old, new, flags);
}
