/* Calls before the shim's constructor: libcgctor.so (DT_NEEDED) connects from its own
 * constructor, before main and before the preloaded library's constructor. */
#include <stdio.h>

extern char cg_ctor_result[];

int main(void)
{
  printf("%s\n", cg_ctor_result);
  return 0;
}
