/* Stack capture: raw return addresses now, names only when a record is written.
 * libunwind.so.8 is dlopen()ed RTLD_LOCAL so its _Unwind_* symbols never enter the program's
 * global scope (field notes §4); glibc's backtrace() is the fallback when it is missing or unsafe. */
#ifndef CG_STACK_H
#define CG_STACK_H
#include <stdatomic.h>
#include <stdint.h>
#include "fmt.h"

/* Loads libunwind and warms it up (first unwind opens its pipe). Call once, not in signal context. */
void cg_stack_init(void);
/* Up to max return addresses, innermost first, frames inside libconnguard itself skipped. */
int cg_stack_capture(uintptr_t *pcs, int max);
/* Name of the backend in use: "libunwind", "backtrace", or "none". */
const char *cg_stack_backend(void);

struct cg_frame {
  uintptr_t pc;
  const char *module;   /* path, never NULL ("?" when unknown) */
  uintptr_t offset;     /* pc - module load base */
  const char *symbol;   /* NULL when unknown */
  uintptr_t sym_off;
};
void cg_stack_symbolize(uintptr_t pc, struct cg_frame *f);

/* libunwind keeps a pipe for memory validation and writes to it later. pipe2() calls made
 * while we unwind are moved high; these tell the fd hooks which numbers are libunwind's. */
extern __thread int cg_in_unwind;
void cg_stack_note_pipe(int fds[2]);
/* Called by close/dup2/close_range hooks: the program closed fd (or a range). Inline: two
 * loads for every close(). */
extern atomic_int cg_upipe[2];
void cg_stack_pipe_closed(void);
static inline void cg_stack_fd_closed(int lo, int hi)
{
  for (int i = 0; i < 2; i++) {
    int f = atomic_load_explicit(&cg_upipe[i], memory_order_relaxed);
    if (f >= 0 && f >= lo && f <= hi) cg_stack_pipe_closed();
  }
}

/* Our address range, for skipping our own frames. */
int cg_addr_is_ours(uintptr_t pc);

#endif
