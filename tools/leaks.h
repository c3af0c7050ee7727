/* Live leak candidates of a process: the sockets the shim publishes in the leaks[] table of
 * its counters segment, joined with /proc/PID/fd (still open? same socket?) and the kernel's TCP
 * tables in the process's network namespace (state, peer). Only leaks.c knows the slot layout. */
#ifndef CG_TOOL_LEAKS_H
#define CG_TOOL_LEAKS_H
#include <stdint.h>
#include "seg.h"

struct leak {
  int fd;
  uint64_t ino;
  unsigned state;           /* TCP state (1..11 as in /proc/net/tcp), 0 unknown / not TCP */
  char local[80], peer[80];
  int64_t created_ns;       /* CLOCK_REALTIME */
  int64_t age_ns;
  uint32_t kind;            /* socket type | family << 16 */
  uint32_t via;             /* 1 socket, 2 accept, 3 socketpair, 4 dup; 0 unknown */
  int candidate;
  int64_t cw_ns;            /* time in CLOSE_WAIT (state 8 only): since the peer's FIN as
                               sock_diag tells it, or at most the age when it cannot (cw_exact 0) */
  int cw_exact;
  const char *cw_unknown;   /* cw_exact 0: why sock_diag could not tell (static text) */
  char why[512];            /* "CLOSE_WAIT for 31.2s (longer than 30s): ...", "open longer ..."; "" none */
  int nframes;
  int stack_full;           /* the shim had a stack, but no room left in the segment for it */
  uint64_t pcs[CG_STATS_STACK];
  int npy;                  /* Python frames (docs/python.md), innermost first, in py: one */
  int py_full;              /* `File "f", line N, in fn` line each; py_full: not published */
  char py[1536];
};

/* Sockets of s that are published and still open under the same inode. *out is malloc()ed;
 * returns the count (candidates and others: see ->candidate), or -1 with msg. */
int leaks_collect(struct seg *s, int64_t age_ns, struct leak **out, char *msg, size_t cap);
/* Number of candidates among the published sockets (for stat/top/metrics); -1 if unknown. */
int leaks_count(struct seg *s, int64_t age_ns);
/* The age threshold the process itself uses (CONNGUARD_LEAK_AGE_MS, from the segment header
 * or the environment it started with), else the default. */
int64_t leaks_default_age_ns(struct seg *s);
/* 1 the process publishes its sockets, 0 it does not (CONNGUARD_LEAKS=off), -1 unknown. */
int leaks_tracking(struct seg *s);
const char *tcp_state_name(unsigned st);

#endif
