/* dup2/dup3 close their target first: whatever we knew about that number is gone. */
#include "hook.h"
#include "stack.h"

CG_EXPORT int dup2(int old, int new)
{
  if (old != new) { cg_fd_forget(new); cg_stack_fd_closed(new, new); }
  if (cg_real_peek()) return cg_real.dup2(old, new);
  return (int)syscall(SYS_dup2, old, new);
}

CG_EXPORT int dup3(int old, int new, int flags)
{
  if (old != new) { cg_fd_forget(new); cg_stack_fd_closed(new, new); }
  if (cg_real_peek()) return cg_real.dup3(old, new, flags);
  return (int)syscall(SYS_dup3, old, new, flags);
}
