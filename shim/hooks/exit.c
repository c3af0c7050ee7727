/* _exit/_Exit/quick_exit: exits that run no destructor, so ours cannot remove the live-counters
 * file (dash and forked children end this way). Async-signal-safe: one unlink, only when this
 * process created the file. */
#include "hook.h"
#include "stats.h"
#include "rawsys.h"
#include <stdlib.h>

CG_EXPORT void _exit(int status)
{
  cg_stats_unpublish();
  for (;;) cg_syscall(SYS_exit_group, status);   /* what libc's _exit does */
}

CG_EXPORT void _Exit(int status)
{
  cg_stats_unpublish();
  for (;;) cg_syscall(SYS_exit_group, status);
}

CG_EXPORT void quick_exit(int status)
{
  cg_stats_unpublish();
  if (cg_real_ready() && cg_real.quick_exit) cg_real.quick_exit(status);
  for (;;) cg_syscall(SYS_exit_group, status);
}
