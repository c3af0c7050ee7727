/* Stack capture: raw return addresses now, names only when a record is written.
 * The unwinder is libgcc's _Unwind_Backtrace (libgcc_s.so.1), dlopen()ed RTLD_LOCAL at the
 * first capture of the process, never at start-up: it opens no descriptor and follows only
 * what the unwind tables (CFI) describe, so it stops at code without them (JIT) instead of
 * guessing frame pointers (docs/design.md, "Stacks"). */
#ifndef CG_STACK_H
#define CG_STACK_H
#include <stdint.h>
#include "fmt.h"

/* Up to max return addresses of the caller's stack, innermost first, frames inside
 * libconnguard itself skipped. The first call in a process loads libgcc_s (dlopen: not from a
 * signal handler that may have interrupted the loader). Returns 0 frames when the unwinder is
 * unavailable. */
int cg_stack_capture(uintptr_t *pcs, int max);
/* Name of the backend in use: "libgcc" once loaded, "none" before or when it is missing. */
const char *cg_stack_backend(void);

struct cg_frame {
  uintptr_t pc;
  const char *module;   /* path, never NULL ("?" when unknown) */
  uintptr_t offset;     /* pc - module load base */
  const char *symbol;   /* NULL when unknown */
  uintptr_t sym_off;
};
void cg_stack_symbolize(uintptr_t pc, struct cg_frame *f);

/* Our address range, for skipping our own frames. */
int cg_addr_is_ours(uintptr_t pc);

#endif
