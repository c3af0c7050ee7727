/* Reading the shared retry table (/dev/shm/connguard.<uid>.dst, shim/core/coord.h) from
 * outside: checked (owner-only regular file of the reader's euid, magic, version, size), read
 * through a read-only mapping, copied row by row. */
#ifndef CG_TOOL_DSTS_H
#define CG_TOOL_DSTS_H
#include <stdint.h>

struct dst_row {
  char name[80];                 /* "127.0.0.1:5432", "[::1]:80"; "other" for an aggregate */
  int open;                      /* breaker state (aggregate: how many are open) */
  uint32_t streak, waiting;
  int32_t opened_by;
  int32_t probe;                 /* task making the probe attempt now (tid), 0 none */
  int64_t opened_rt_ns;
  uint64_t attempts, failures, probes, waits, opens;
};

/* Rows of the calling user's table, most failures first; returns the count (rows malloc()ed,
 * NULL and 0 when there is no table). -1 with msg set when the file is there but unusable. */
int dsts_read(struct dst_row **rows, char *msg, unsigned cap);
/* Human table ("destinations" section of stat and top); nothing when n == 0. */
void dsts_print(const struct dst_row *rows, int n, int max_rows);

#endif
