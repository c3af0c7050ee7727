#include "real.h"
#include <dlfcn.h>
#include <sched.h>
#include <stdatomic.h>

/* aligned(8): without it gcc gives a 264-byte object 32-byte alignment, which sorts it among the
 * big tables in .bss, on a page of its own that start-up writes (Makefile, docs/design.md). */
struct cg_real cg_real __attribute__((aligned(8)));
atomic_int cg_real_state;         /* real.h */
static __thread int resolving;    /* this thread is inside dlsym: hooks must use raw syscalls */

int cg_real_ready(void)
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
#define R(name) *(void **)&cg_real.name = dlsym(RTLD_NEXT, #name)
  R(socket); R(connect); R(getsockopt); R(setsockopt); R(close); R(poll); R(ppoll); R(select); R(pselect);
  R(epoll_ctl); R(epoll_wait); R(epoll_pwait); R(epoll_pwait2); R(getaddrinfo);
  R(dup2); R(dup3); R(close_range); R(closefrom); R(fork); R(accept); R(accept4);
  R(socketpair); R(dup); R(fcntl); R(fcntl64); R(fclose); R(ioctl);
  R(execve); R(execvpe); R(execvp); R(fexecve); R(execveat); R(quick_exit);
#undef R
  resolving = 0;
  atomic_store_explicit(&cg_real_state, 2, memory_order_release);
}

