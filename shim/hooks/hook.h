/* Shared by the exported interposers. Each hook: pass straight through unless the shim is
 * initialised and this thread is not already inside it; errno is the engine's to set. */
#ifndef CG_HOOK_H
#define CG_HOOK_H
#include <errno.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "engine.h"
#include "fdtable.h"
#include "real.h"

#define CG_EXPORT __attribute__((visibility("default")))

/* Runs expr inside the recursion guard. A failure keeps the errno the engine set; a success
 * leaves errno as the program had it (the engine's own calls, failed attempts included, must
 * not show through a call that succeeded). */
#define CG_GUARDED(type, expr) ({                 \
    int cg_e0_ = errno;                           \
    cg_in_hook++;                                 \
    type cg_r_ = (expr);                          \
    int cg_e_ = cg_r_ < 0 ? errno : cg_e0_;       \
    cg_in_hook--;                                 \
    errno = cg_e_;                                \
    cg_r_; })

#endif
