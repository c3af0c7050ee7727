/* Where start-up's writes land. Every page a process first writes costs it a page fault, ~25 us
 * on these VMs (docs/design.md, "Start-up"), and most processes never make a socket. The loader
 * already writes the pages that hold the shim's relocated data and the end of its initialised
 * data (it zeroes the rest of that page for .bss); variables that every process writes in the
 * constructor or reads at exit live there, in .data, instead of on a page of .bss of their own.
 * Checked by tests/integration/test_startup.py (no page of .bss touched by /bin/true). */
#ifndef CG_STARTUP_H
#define CG_STARTUP_H
#define CG_STARTUP_DATA __attribute__((section(".data.cg_startup")))

#include <stddef.h>
/* pthread_atfork(NULL, NULL, child) without libc_nonshared's pthread_atfork stub, which the
 * link puts at the far end of .text, on a page start-up would touch for it alone.
 * __register_atfork is what that stub calls (glibc's ABI since 2.3.2). */
extern int __register_atfork(void (*prepare)(void), void (*parent)(void), void (*child)(void), void *dso);
extern void *__dso_handle;
static inline int cg_atfork_child(void (*child)(void))
{
  return __register_atfork(NULL, NULL, child, __dso_handle);
}
#endif
