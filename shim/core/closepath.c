/* The close path (closepath.h). */
#include "closepath.h"
#include "leak.h"
#include <linux/close_range.h>

void cg_close_entry(int fd, struct cg_fd *e)
{
  cg_fd_closed(fd, e);
  if (atomic_load_explicit(&e->track, memory_order_relaxed)) cg_leak_forget(fd, e);
}

static void forget_range(unsigned lo, unsigned hi)
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
    for (unsigned fd = a; fd <= b; fd++) cg_close_forget((int)fd);
  }
}

void cg_close_range(unsigned lo, unsigned hi, int flags)
{
  if ((flags & CLOSE_RANGE_CLOEXEC) || lo > hi) return;
  cg_log_fd_closing((int)(lo > 3 ? 3 : lo), (int)(hi > 3 ? 3 : hi));
  forget_range(lo, hi);
}
