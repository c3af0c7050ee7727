/* Live counters, published per process in a shared-memory file that `connguard stat/top/
 * metrics/leaks` read from outside: /dev/shm/connguard.<uid>.<pid>, mode 0600, removed at exit.
 * No thread and no signal handler in the program: the shim only updates atomics in place.
 * The layout is versioned; readers check magic, version and size before trusting anything. */
#ifndef CG_STATS_H
#define CG_STATS_H
#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

#define CG_STATS_MAGIC   0x54534743u   /* "CGST" little-endian */
#define CG_STATS_VERSION 1
#define CG_STATS_ERRNOS  136           /* per-errno slots: errno < 136 */
#define CG_TLS_BUCKETS   12            /* handshake seconds histogram */
#define CG_LEAK_SLOTS    256           /* published leak candidates */
#define CG_STATS_STACK   16

/* Upper bounds of the TLS handshake histogram buckets, in microseconds (last is +Inf). */
#define CG_TLS_BUCKET_BOUNDS_US { 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, \
                                  500000, 1000000, 2500000, UINT64_MAX }

struct cg_leak_slot {
  atomic_uint seq;                   /* odd while being written (seqlock) */
  int32_t fd;
  uint32_t state;                    /* TCP state as in /proc/net/tcp, 0 unknown */
  uint32_t kind;                     /* socket type | family << 16 */
  int64_t created_ns;                /* CLOCK_REALTIME */
  int64_t since_ns;                  /* CLOCK_REALTIME when it became a candidate */
  uint64_t ino;
  char peer[64];
  uint32_t nframes;
  uint64_t pcs[CG_STATS_STACK];      /* raw return addresses; map with /proc/PID/maps */
};

struct cg_stats {
  uint32_t magic, version, size, pad;
  int32_t pid;
  uint32_t uid;
  int64_t start_ns;                  /* CLOCK_REALTIME */
  char exe[256];
  _Atomic uint64_t connect_attempts;      /* every connect() the shim saw on a stream socket, retries included */
  _Atomic uint64_t connect_failures;      /* failed attempts */
  _Atomic uint64_t retries;
  _Atomic uint64_t recoveries;            /* connects that succeeded after failures */
  _Atomic uint64_t give_ups;
  _Atomic uint64_t backoff_wait_ns;       /* time spent waiting between attempts */
  _Atomic uint64_t failures_by_errno[CG_STATS_ERRNOS];
  _Atomic int64_t open_sockets;
  _Atomic uint64_t sockets_created;
  _Atomic uint64_t leak_candidates;       /* currently published in leaks[] */
  _Atomic uint64_t leaks_reported;        /* at exit */
  _Atomic uint64_t tls_handshakes;
  _Atomic uint64_t tls_failures;
  _Atomic uint64_t tls_retries;
  _Atomic uint64_t tls_hs_bucket[CG_TLS_BUCKETS];
  _Atomic uint64_t tls_hs_sum_us;
  _Atomic uint64_t tls_hs_count;
  struct cg_leak_slot leaks[CG_LEAK_SLOTS];
};

/* Private until cg_stats_publish() maps the shared file; always valid to increment. */
extern struct cg_stats *cg_stats;
void cg_stats_publish(void);     /* creates /dev/shm/connguard.<uid>.<pid> (lazily, once per process) */
void cg_stats_unpublish(void);   /* at exit */
void cg_stats_after_fork(void);  /* child: fresh counters; its own file on first use */
/* Set in a forked child until it publishes: hooks with socket activity call cg_stats_use(). */
extern int cg_stats_pending;
static inline void cg_stats_use(void) { if (__builtin_expect(cg_stats_pending, 0)) cg_stats_publish(); }
/* Path of a process's stats file. */
void cg_stats_path(char *out, unsigned cap, uid_t uid, pid_t pid);

#define CG_STAT_ADD(field, v) atomic_fetch_add_explicit(&cg_stats->field, (v), memory_order_relaxed)

#endif
