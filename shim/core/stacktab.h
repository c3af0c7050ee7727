/* Interned creation stacks: identical stacks (same return addresses) are stored once and named
 * by a small id, so a tracked socket costs 4 bytes of stack however many share its origin.
 * Lock-free (atomics only, no malloc): usable from any hook, signal context included. Entries
 * are never removed; when the table is full, new stacks get id 0 ("no stack"). */
#ifndef CG_STACKTAB_H
#define CG_STACKTAB_H
#include <stdint.h>

#define CG_ST_FRAMES 64          /* frames kept per stack (= CG_MAX_STACK: connect stacks fit) */
#define CG_ST_MAX    16384       /* distinct stacks per process */

/* Id (>= 1) of the stack pcs[0..n), interning it when new; 0 when n <= 0, when the table is
 * full, or when its memory cannot be mapped. Frames past CG_ST_FRAMES are ignored. */
uint32_t cg_stacktab_intern(const uintptr_t *pcs, int n);
/* Frames of id (innermost first); returns their count, 0 for an unknown id. */
int cg_stacktab_get(uint32_t id, const uintptr_t **pcs);
/* Distinct stacks interned so far, and interns refused because the table was full. */
unsigned cg_stacktab_count(void);
unsigned cg_stacktab_full(void);

#endif
