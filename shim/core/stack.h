/* Stack capture: raw return addresses now, names only when a record is written.
 * The unwinder is libgcc's _Unwind_Backtrace (libgcc_s.so.1), dlopen()ed RTLD_LOCAL at the
 * first capture of the process, never at start-up: it opens no descriptor and follows only
 * what the unwind tables (CFI) describe, so it stops at code without them (JIT) instead of
 * guessing frame pointers (docs/design.md, "Stacks"). */
#ifndef CG_STACK_H
#define CG_STACK_H
#include <stdint.h>
#include "fmt.h"

/* Both calls below take the caller's stack: up to max (<= CG_MAX_STACK) return addresses,
 * innermost first, frames inside libconnguard itself skipped. They share a call-site cache
 * (key: the caller's frame and return address; a hit re-checks every return address in its
 * stack slot, and a library unloaded by dlclose() since forces a fresh unwind), so a stack made again
 * from the same call site at the same depth costs ~50 ns instead of an unwind (~5 us).
 * Thread-safe and fork-safe; a hit is lock-free and allocation-free. The first call in a
 * process loads libgcc_s (dlopen: not from a signal handler that may have interrupted the
 * loader). No stack (0) when the unwinder is unavailable or max <= 0. */

/* The frames, copied into pcs; returns their count. */
int cg_stack_capture(uintptr_t *pcs, int max);
/* The stack's id in the shared stack table (stacktab.h: cg_stacktab_get gives its frames),
 * interned on first sight; 0 for no stack (none, or the table full). The cheap way to name
 * where a socket or a connect comes from: keep the 4-byte id, read the frames when reporting. */
uint32_t cg_stack_id_here(int max);

/* Cache counters, for tests and benchmarks: verified hits; full unwinds; hits refused because
 * a return address had moved or a library was unloaded; unwinds not cached (signal frames). */
struct cg_stack_counts { unsigned long hits, misses, moved, unloaded, uncacheable; };
void cg_stack_cache_counts(struct cg_stack_counts *c);
/* Tests only: the address range treated as the shim's own (default: this object). */
void cg_stack_set_self(uintptr_t lo, uintptr_t hi);
/* hooks/dlclose.c, around the real dlclose(): begin returns a token for end. While one runs,
 * captures bypass the cache; an unload it made invalidates every entry. Keep errno. */
unsigned long cg_stack_unload_begin(void);
void cg_stack_unload_end(unsigned long token);
/* From the shim's fork child handler (engine.c); not registered here: registering from inside
 * dlclose could run under glibc's atfork lock (a dlclose in an atfork handler) and hang. A
 * child forked before the shim's initialisation keeps the cache off if a dlclose was under way
 * in another thread: correct stacks, unwound each time. */
void cg_stack_after_fork_child(void);
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
