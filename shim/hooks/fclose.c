/* fclose(): only to see the program close its stderr (gnulib's close_stdout does it in an exit
 * handler, before our exit report). */
#include "hook.h"
#include "log.h"
#include <stdio.h>

extern int _IO_fclose(FILE *);

CG_EXPORT int fclose(FILE *f)
{
  if (f == stderr || (f && fileno(f) == 2)) cg_log_fd_closing(2, 2);
  if (cg_real_peek() && cg_real.fclose) return cg_real.fclose(f);
  return _IO_fclose(f);   /* the same function, before our table is filled */
}
