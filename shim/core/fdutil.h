/* Small fd helpers shared by the log and stack code. */
#ifndef CG_FDUTIL_H
#define CG_FDUTIL_H

#define CG_STACK_RAW_MAX 80

/* Lowest number our own descriptors are moved to (high, out of the program's usual range). */
int cg_high_fd_base(void);
/* Moves fd to a high, close-on-exec number; closes the original. Returns the new fd or -1. */
int cg_fd_move_high(int fd);

#endif
