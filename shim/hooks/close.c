/* close() and the calls that close fds behind its back. Async-signal-safe: atomics only, no
 * allocation, no locks, no dlsym (raw syscall until the real table is ready). */
#include "hook.h"
#include "leak.h"
#include "log.h"
#include "watchdog.h"
#include "fdutil.h"
#include <linux/close_range.h>

void cg_forget_range(unsigned lo, unsigned hi)
{
  /* python's subprocess closes every fd in a vfork()ed child before exec: that child shares
   * our tables, and its closes say nothing about the parent's descriptors. */
  if (cg_leak_borrowed_memory()) return;
  cg_wd_fds_closing(lo, hi);
  /* Nothing was ever written above the table's high-water mark: closefrom(3) need not read
   * (and fault in) a chunk's untouched pages. */
  int top = atomic_load_explicit(&cg_fd_hi, memory_order_acquire);
  if (top <= 0 || lo >= (unsigned)top) return;
  if (hi >= (unsigned)top) hi = (unsigned)top - 1;
  for (unsigned c = lo >> CG_FD_CHUNK_BITS; c < CG_FD_MAX_CHUNKS && c <= (hi >> CG_FD_CHUNK_BITS); c++) {
    if (!atomic_load_explicit(&cg_fd_chunks[c], memory_order_acquire)) continue;
    unsigned a = c << CG_FD_CHUNK_BITS, b = a + CG_FD_CHUNK - 1;
    if (a < lo) a = lo;
    if (b > hi) b = hi;
    for (unsigned fd = a; fd <= b; fd++) cg_fd_forget((int)fd);
  }
}

CG_EXPORT int close(int fd)
{
  if (__builtin_expect(fd == 2, 0)) cg_log_fd_closing(2, 2);
  cg_fd_forget(fd);
  if (cg_real_peek()) return cg_real.close(fd);
  return (int)syscall(SYS_close, fd);
}

CG_EXPORT int close_range(unsigned lo, unsigned hi, int flags)
{
  if (!(flags & CLOSE_RANGE_CLOEXEC) && lo <= hi) {
    cg_log_fd_closing((int)(lo > 3 ? 3 : lo), (int)(hi > 3 ? 3 : hi));
    cg_forget_range(lo, hi);
  }
  if (cg_real_peek() && cg_real.close_range) return cg_real.close_range(lo, hi, flags);
  return (int)syscall(SYS_close_range, lo, hi, flags);
}

CG_EXPORT void closefrom(int lo)
{
  if (lo < 0) lo = 0;
  cg_log_fd_closing(lo, 3);
  cg_forget_range((unsigned)lo, ~0u);
  if (cg_real_peek() && cg_real.closefrom) { cg_real.closefrom(lo); return; }
  if (syscall(SYS_close_range, (unsigned)lo, ~0u, 0) != 0) cg_closefrom_fallback((unsigned)lo);
}
