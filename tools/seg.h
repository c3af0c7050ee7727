/* Reading a process's counters segment (/dev/shm/connguard.<uid>.<pid>, shim/core/stats.h)
 * from outside. The file is the owner's: its content is checked (magic, version, size, pid,
 * uid) before use, read through a read-only mapping with atomic loads, and a file truncated
 * under us (SIGBUS) is an error, never a crash. */
#ifndef CG_TOOL_SEG_H
#define CG_TOOL_SEG_H
#include <stdint.h>
#include <sys/types.h>
#include "stats.h"

/* A private copy of the counters at one moment. */
struct cg_snap {
  int32_t pid;
  uint32_t uid;
  int64_t start_ns;
  char exe[256];
  uint64_t connect_attempts, connect_failures, retries, recoveries, give_ups, backoff_wait_ns;
  uint64_t failures_by_errno[CG_STATS_ERRNOS];
  int64_t open_sockets;
  uint64_t sockets_created, leak_candidates, leaks_reported;
  uint64_t leak_unpublished;   /* tracked sockets left out of leaks[] (table full); 0 before layout 2 */
  uint64_t leak_stacks;        /* distinct creation stacks in stacks[] (at most CG_STATS_STACKS) */
  uint64_t leak_stacks_full;   /* slots published without their stack: stacks[] was full */
  uint64_t tls_handshakes, tls_failures, tls_retries;
  uint64_t tls_hs_bucket[CG_TLS_BUCKETS];   /* per bucket, as the shim counts them */
  uint64_t tls_hs_sum_us, tls_hs_count;
};

enum seg_state {
  SEG_LIVE,       /* the process runs and maps this very file */
  SEG_GONE,       /* no such process any more */
  SEG_REUSED,     /* the pid runs, but it is another process (or an image without the shim) */
};

struct seg {
  pid_t pid;
  uid_t uid;
  char path[96];
  ino_t ino;
  int64_t file_ctime_ns;
  const struct cg_stats *map;
  size_t maplen;
  struct cg_snap snap;
  enum seg_state state;
  int64_t proc_start_ns;     /* CLOCK_REALTIME start of the process now holding pid, 0 unknown */
  char comm[64];             /* /proc/PID/comm, or "" */
};

/* Opens the counters of pid (of the calling user). On failure returns -1 with a complete,
 * user-facing explanation in msg (unknown pid, no shim, another user's process, bad file). */
int seg_open(pid_t pid, struct seg *s, char *msg, size_t cap);
/* Same for a path found by seg_scan (uid and pid from the name). */
int seg_open_path(const char *path, uid_t uid, pid_t pid, struct seg *s, char *msg, size_t cap);
/* Takes a fresh snapshot into s->snap and re-checks liveness. -1 if the file went bad. */
int seg_refresh(struct seg *s);
void seg_close(struct seg *s);
const char *seg_state_name(enum seg_state st);
/* Whether a stale segment may be removed without racing a process that is just starting. */
int seg_removable(const struct seg *s);

/* Runs fn over the mapping with SIGBUS caught: -1 when the file was truncated under us. */
int seg_guarded(const struct seg *s, void (*fn)(const struct cg_stats *m, void *arg), void *arg);

/* Pids that have a segment of uid in /dev/shm, sorted; returns the count (array malloc()ed). */
int seg_scan(uid_t uid, pid_t **pids);

/* /proc helpers. */
int64_t proc_start_ns(pid_t pid);          /* 0 when unknown */
int proc_comm(pid_t pid, char *out, size_t cap);
/* The owner of a running process, or -1 if there is none. */
long proc_uid(pid_t pid);

#endif
