/* Small fd helpers shared by the log and stack code. */
#ifndef CG_FDUTIL_H
#define CG_FDUTIL_H

#define CG_STACK_RAW_MAX 80

/* Lowest number our own descriptors are moved to (high, out of the program's usual range). */
int cg_high_fd_base(void);
/* Moves fd to a high, close-on-exec number; closes the original. Returns the new fd or -1. */
int cg_fd_move_high(int fd);
/* closefrom(lo) where close_range is missing (kernels before 5.9): closes every open fd >= lo,
 * however high. Async-signal-safe, no malloc. */
void cg_closefrom_fallback(unsigned lo);

#endif
