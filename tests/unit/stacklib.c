/* Built twice (libcgsa.so, libcgsb.so: same code, another name) for test_stack's dlclose case:
 * a library unloaded and another one mapped at the same address, with the same return
 * addresses. */
#include <stdint.h>

const char *cgs_name(void) { return LIBNAME; }

__attribute__((noinline)) uint32_t cgs_call(uint32_t (*fn)(int), int max)
{
  uint32_t r = fn(max);
  __asm__ volatile("" ::: "memory");   /* not a tail call: the return address stays in here */
  return r;
}
