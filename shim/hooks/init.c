/* Load and unload. Hooks also initialise lazily: other libraries' constructors may connect
 * before ours runs. */
#include "hook.h"
#include "leak.h"
#include "stats.h"
#include "coord.h"

/* The shim is linked without crtbegin (Makefile): this is the handle it would give, which
 * pthread_atfork and __cxa_thread_atexit_impl record our handlers under. */
__attribute__((visibility("hidden"))) void *__dso_handle = &__dso_handle;

__attribute__((constructor(101))) static void cg_ctor(void)
{
  cg_init();
  /* Here, not lazily: the exit report must be registered before main() and the program's own
   * exit handlers, so that it runs after them (docs/leaks.md). */
  cg_leak_init();
}

__attribute__((destructor)) static void cg_dtor(void)
{
  cg_stats_unpublish();
  cg_coord_at_exit();
}
