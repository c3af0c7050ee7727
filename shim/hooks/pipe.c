/* libunwind opens a pipe on its first unwind and writes to it later. Opened while we unwind,
 * it is moved high so the program's own fd numbers are never libunwind's. */
#include "hook.h"
#include "fdutil.h"
#include "stack.h"

CG_EXPORT int pipe2(int fds[2], int flags)
{
  int r = cg_real_peek() && cg_real.pipe2 ? cg_real.pipe2(fds, flags) : (int)syscall(SYS_pipe2, fds, flags);
  if (r == 0 && cg_in_unwind) {
    fds[0] = cg_fd_move_high(fds[0]);
    fds[1] = cg_fd_move_high(fds[1]);
    cg_stack_note_pipe(fds);
  }
  return r;
}
