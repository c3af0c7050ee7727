#include "real.h"
#include "startup.h"
#include <dlfcn.h>
#include <sched.h>
#include <stdatomic.h>
#include <stddef.h>
#include <string.h>

/* aligned(8): without it gcc gives a 264-byte object 32-byte alignment, which sorts it ahead of
 * the configuration instead of next to the other start-up variables (startup.h). */
struct cg_real cg_real CG_STARTUP_DATA __attribute__((aligned(8)));
atomic_int cg_real_state CG_STARTUP_DATA;        /* real.h */
static __thread int resolving;    /* this thread is inside dlsym: hooks must use raw syscalls */

/* In the order of struct cg_real (checked below). The names are in .data, not .rodata: every
 * process reads them at start-up, and .data's page is one the loader writes anyway, where
 * .rodata's would be one page fault more (startup.h). */
#define CG_REAL_FUNCS(X) X(socket) X(connect) X(getsockopt) X(setsockopt) X(close) X(poll) \
  X(ppoll) X(select) X(pselect) X(epoll_ctl) X(epoll_wait) X(epoll_pwait) X(epoll_pwait2) \
  X(getaddrinfo) X(dup2) X(dup3) X(close_range) X(closefrom) X(fork) X(accept) X(accept4) \
  X(socketpair) X(dup) X(fcntl) X(fcntl64) X(fclose) X(execve) X(execvpe) X(execvp) \
  X(fexecve) X(execveat) X(quick_exit) X(ioctl) X(dlclose)
#define NAME(n) #n "\0"
static char names[] CG_STARTUP_DATA = CG_REAL_FUNCS(NAME);
#undef NAME
enum {
#define IDX(n) idx_##n,
  CG_REAL_FUNCS(IDX)
#undef IDX
  n_real
};
#define CHECK(n) _Static_assert(offsetof(struct cg_real, n) == idx_##n * sizeof(void *), #n " out of order");
CG_REAL_FUNCS(CHECK)
#undef CHECK
_Static_assert(sizeof(struct cg_real) == n_real * sizeof(void *), "struct cg_real and CG_REAL_FUNCS differ");

int cg_real_ready_slow(void)
{
  if (atomic_load_explicit(&cg_real_state, memory_order_acquire) == 2) return 1;
  cg_real_init();
  return atomic_load_explicit(&cg_real_state, memory_order_acquire) == 2;
}

__attribute__((cold)) void cg_real_init(void)
{
  if (atomic_load_explicit(&cg_real_state, memory_order_acquire) == 2 || resolving) return;
  int expect = 0;
  if (!atomic_compare_exchange_strong(&cg_real_state, &expect, 1)) {
    /* Another thread resolves; dlsym is quick, wait for it. */
    while (atomic_load_explicit(&cg_real_state, memory_order_acquire) != 2) sched_yield();
    return;
  }
  resolving = 1;
  const char *name = names;
  for (size_t i = 0; i < sizeof cg_real / sizeof(void *); i++, name += strlen(name) + 1) {
    void *f = dlsym(RTLD_NEXT, name);
    memcpy((char *)&cg_real + i * sizeof f, &f, sizeof f);
  }
  resolving = 0;
  atomic_store_explicit(&cg_real_state, 2, memory_order_release);
}

