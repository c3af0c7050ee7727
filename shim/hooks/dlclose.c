/* dlclose(): only to tell the stack cache that code may have gone from its addresses
 * (core/stack.c; docs/design.md, "Stacks"). Not caller-sensitive, unlike dlopen/dlsym, which
 * are never interposed. */
#include "hook.h"
#include "stack.h"

CG_EXPORT int dlclose(void *handle)
{
  int e = errno;
  /* Not ready only while this thread is inside our own dlsym(): no dlclose comes from there. */
  if (!cg_real_ready() || !cg_real.dlclose) return -1;
  unsigned long token = cg_stack_unload_begin();
  errno = e;
  int r = cg_real.dlclose(handle);
  cg_stack_unload_end(token);   /* keeps errno */
  return r;
}
