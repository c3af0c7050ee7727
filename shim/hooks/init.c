/* Load and unload. Hooks also initialise lazily: other libraries' constructors may connect
 * before ours runs. */
#include "hook.h"
#include "stats.h"

__attribute__((constructor(101))) static void cg_ctor(void)
{
  cg_init();
}

__attribute__((destructor)) static void cg_dtor(void)
{
  cg_stats_unpublish();
}
