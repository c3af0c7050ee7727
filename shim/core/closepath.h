/* The close path: what the shim lets go of when the program closes a descriptor or replaces one
 * (close, close_range, closefrom, dup2/dup3 onto a number, the same through syscall(), and
 * fclose of stderr). The close-type hooks call these and nothing else, so what a close ends is
 * said once: the copy of stderr the exit report may need (log.h), the watchdog's bound
 * (watchdog.h), the fd table's connect state (fdtable.h) and the leak tracker's record
 * (leak.h). Async-signal-safe: atomics only, no locks, no allocation, no dlsym. */
#ifndef CG_CLOSEPATH_H
#define CG_CLOSEPATH_H
#include "fdtable.h"
#include "log.h"
#include "watchdog.h"

/* Out of line: the entry of a socket the shim knows of. */
void cg_close_entry(int fd, struct cg_fd *e);

/* fd's entry, when the shim holds anything for it (no log or watchdog step: for walks that
 * did those for the whole range). */
static inline void cg_close_forget(int fd)
{
  struct cg_fd *e = cg_fd_peek(fd);
  if (e && cg_fd_known(e)) cg_close_entry(fd, e);
}

/* fd is about to be closed: close(), syscall(SYS_close), the target of dup2/dup3. Inline:
 * close() of an fd the shim knows nothing about (a regular file, a pipe) costs a table peek and
 * one cache line of loads, no call, no store, no locked instruction. */
static inline void cg_close_fd(int fd)
{
  if (__builtin_expect(fd == 2, 0)) cg_log_fd_closing(2, 2);
  cg_wd_fd_closing(fd);
  cg_close_forget(fd);
}

/* dup2/dup3(oldfd, newfd) is about to run: it closes newfd first, unless it is oldfd. */
static inline void cg_close_dup_target(int oldfd, int newfd)
{
  if (oldfd != newfd) cg_close_fd(newfd);
}

/* close_range(lo, hi, flags) is about to run; closefrom(lo) is (lo, ~0u, 0). */
void cg_close_range(unsigned lo, unsigned hi, int flags);

#endif
