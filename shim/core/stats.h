/* Live counters, published per process in a shared-memory file that `connguard stat/top/
 * metrics/leaks` read from outside: /dev/shm/connguard.<uid>.<pid>, mode 0600, created by
 * shim/core/shm.c, removed on every exit path.
 * No thread and no signal handler in the program: the shim only updates atomics in place.
 * The layout is versioned; readers check magic, version and size before trusting anything. */
#ifndef CG_STATS_H
#define CG_STATS_H
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define CG_STATS_MAGIC   0x54534743u   /* "CGST" little-endian */
#define CG_STATS_VERSION 4             /* 2: leak slots published (leak_mode, via, ino atomic);
                                          3: slots name a shared stack in stacks[];
                                          4: slots name a Python stack in pystacks[] */
#define CG_STATS_ERRNOS  136           /* per-errno slots: errno < 136 */
#define CG_TLS_BUCKETS   12            /* handshake seconds histogram */
#define CG_LEAK_SLOTS    4096          /* published tracked sockets (see struct cg_leak_slot) */
#define CG_STATS_STACK   16            /* frames per published stack */
#define CG_STATS_STACKS  4096          /* distinct creation stacks published per process */
#define CG_LEAK_STACK_FULL 0xffffffffu /* cg_leak_slot.stack: not published, stacks[] was full */
#define CG_STATS_PYSTACKS 2048         /* distinct Python stacks published per process */
#define CG_STATS_PYSITES  4096         /* distinct Python frames (file, line, function) */
#define CG_STATS_PYFRAMES 32           /* frames per published Python stack */

/* Upper bounds of the TLS handshake histogram buckets, in microseconds (last is +Inf). */
#define CG_TLS_BUCKET_BOUNDS_US { 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, \
                                  500000, 1000000, 2500000, UINT64_MAX }

/* Live leak data for `connguard leaks PID` (docs/leaks.md). The shim publishes EVERY socket it
 * tracks (socket, accept, socketpair, dup of a tracked socket) when the program obtains it and
 * removes it when the program closes it through a call the shim sees. It does not judge:
 * the tool decides which are leak candidates by joining the slots with /proc/PID/fd (inode ->
 * fd still open and still that socket; a slot whose fd was closed behind the shim's back, e.g.
 * by fclose() of an fdopen()ed socket or syscall(SYS_close), stays until its fd number is reused
 * and must be dropped by that join) and with /proc/net/{tcp,tcp6,unix} (state, CLOSE_WAIT), and
 * comparing ages with leak_age_ms from the header.
 *
 * Reading a slot (seqlock): s1 = seq; if odd, retry later; copy the slot; s2 = seq; if s1 != s2
 * retry (bounded: give up on a slot after a few tries, it is being rewritten). A copied slot is
 * live iff ino != 0 and ino != UINT64_MAX. Free slots are reused lowest index first, but live
 * ones may be scattered: scan all CG_LEAK_SLOTS. The shim fills no slot when leak_mode is 0 or
 * CONNGUARD_STATS=0 (then no segment exists at all).
 *
 * Creation stacks are shared: a slot names its stack by index in stacks[] (1-based), so a
 * thousand sockets from one call site store one stack. A stack is written once, before the
 * first slot that names it is published, and never changes or goes away while the segment
 * exists: read stacks[stack - 1] after a consistent slot copy, no lock needed. stack 0: no
 * stack (CONNGUARD_STACK_DEPTH=0, or the process's own table of stacks is full);
 * CG_LEAK_STACK_FULL: stacks[] was full (leak_stacks_full counts those slots).
 *
 * Python programs (docs/python.md): pystack names the Python stack at creation in pystacks[]
 * (1-based, 0 none, CG_LEAK_STACK_FULL when pystacks[] or pysites[] was full), whose frames name
 * entries of pysites[] (1-based): same write-once, publish-before-use rule as stacks[]. */
#define CG_LEAK_INO_UNKNOWN (UINT64_MAX - 1)
struct cg_leak_slot {
  atomic_uint seq;                   /* odd while being written (seqlock) */
  int32_t fd;                        /* meaningful only while live */
  uint32_t kind;                     /* socket type (SOCK_STREAM...) | family (AF_INET...) << 16; 0 unknown */
  uint32_t via;                      /* how it was obtained: 1 socket, 2 accept, 3 socketpair, 4 dup */
  int64_t created_ns;                /* CLOCK_REALTIME when the program obtained the fd */
  _Atomic uint64_t ino;              /* socket inode (/proc/PID/fd -> "socket:[ino]"); 0 free,
                                        UINT64_MAX being claimed, CG_LEAK_INO_UNKNOWN not taken
                                        yet (the fd's socket is taken to be it) */
  uint32_t stack;                    /* creation stack: 1-based index into stacks[], see above */
  uint32_t peerlen;                  /* bytes of peer in use, 0 unknown */
  uint32_t pystack;                  /* Python stack: 1-based index into pystacks[], see above */
  uint32_t pad;
  unsigned char peer[112];           /* raw struct sockaddr (in, in6, un; a unix path may be cut)
                                        given to connect() or returned by accept(): where it was
                                        going even if refused; /proc/net has the live address */
};

/* A creation stack, innermost frame first: raw return addresses, mapped with /proc/PID/maps. */
struct cg_leak_stack {
  uint32_t nframes;
  uint32_t pad;
  uint64_t pcs[CG_STATS_STACK];
};

/* A Python frame: file (its tail when longer), line, function; NUL-terminated. */
struct cg_leak_pysite {
  int32_t line;
  char file[124];
  char func[64];
};

/* A Python stack, innermost frame first: 1-based indexes into pysites[]. */
struct cg_leak_pystack {
  uint32_t nframes;
  uint16_t site[CG_STATS_PYFRAMES];
  uint32_t pad;
};

struct cg_stats {
  uint32_t magic, version, size, pad;
  int32_t pid;
  uint32_t uid;
  int64_t start_ns;                  /* CLOCK_REALTIME */
  char exe[256];
  uint32_t leak_mode;                /* 0 leak tracking off (leaks[] stays empty), 1 on */
  uint32_t leak_age_ms;              /* CONNGUARD_LEAK_AGE_MS of this process */
  _Atomic uint64_t connect_attempts;      /* every connect() the shim saw on a stream socket, retries included */
  _Atomic uint64_t connect_failures;      /* failed attempts */
  _Atomic uint64_t retries;
  _Atomic uint64_t recoveries;            /* connects that succeeded after failures */
  _Atomic uint64_t give_ups;
  _Atomic uint64_t backoff_wait_ns;       /* time spent waiting between attempts */
  _Atomic uint64_t failures_by_errno[CG_STATS_ERRNOS];
  _Atomic int64_t open_sockets;           /* tracked socket fds open now (dups included); a socket
                                             closed behind the shim's back counts until its fd
                                             number is reused */
  _Atomic uint64_t sockets_created;       /* sockets obtained: socket, accept, socketpair (2) */
  _Atomic uint64_t leak_candidates;       /* live slots in leaks[] (every tracked socket; the tool judges) */
  _Atomic uint64_t leaks_reported;        /* at exit */
  _Atomic uint64_t leak_unpublished;      /* tracked sockets left out of leaks[]: all slots were taken */
  _Atomic uint64_t leak_stacks_used;      /* entries of stacks[] handed out (may pass CG_STATS_STACKS
                                             by a few when it fills up: read the minimum) */
  _Atomic uint64_t leak_stacks_full;      /* slots published without their stack: stacks[] was full */
  _Atomic uint64_t leak_pystacks_used;    /* entries of pystacks[] / pysites[] handed out (read the */
  _Atomic uint64_t leak_pysites_used;     /* minimum with the array's size) */
  _Atomic uint64_t leak_pystacks_full;    /* slots published without their Python stack */
  _Atomic uint64_t tls_handshakes;
  _Atomic uint64_t tls_failures;
  _Atomic uint64_t tls_retries;
  _Atomic uint64_t tls_hs_bucket[CG_TLS_BUCKETS];
  _Atomic uint64_t tls_hs_sum_us;
  _Atomic uint64_t tls_hs_count;
  struct cg_leak_slot leaks[CG_LEAK_SLOTS];
  struct cg_leak_stack stacks[CG_STATS_STACKS];   /* append-only; see struct cg_leak_slot */
  struct cg_leak_pystack pystacks[CG_STATS_PYSTACKS];   /* append-only, as stacks[] */
  struct cg_leak_pysite pysites[CG_STATS_PYSITES];      /* append-only */
};

/* Private until cg_stats_publish() maps the shared file; always valid to increment. Atomic: the
 * publication swaps it while other threads count (a plain load on x86). */
extern struct cg_stats *_Atomic cg_stats;
/* Lifecycle (docs/hostile.md): no file until the process first has socket activity; the file
 * goes on exit, _exit/_Exit, exec (back after a failed exec) and at the next shim process or
 * tool run of the same user once the process is dead (killed). A full /dev/shm or a squatted
 * name: one warning, counters stay private. */
void cg_stats_init(int on);      /* at load: publication pending when on */
void cg_stats_publish(void);     /* creates /dev/shm/connguard.<uid>.<pid> (lazily, once per process) */
void cg_stats_unpublish(void);   /* exit paths; async-signal-safe */
void cg_stats_before_exec(void); /* removes the file; async-signal-safe */
void cg_stats_exec_failed(void); /* the image goes on: published again on next use */
void cg_stats_after_fork(void);  /* child: fresh counters; its own file on first use */
/* Removes segments of our euid whose process is dead (kill(pid, 0) == ESRCH), never another
 * user's file, never a live pid's. Bounded: at most max_checks names examined, max_batches
 * directory reads. Returns how many were removed. */
unsigned cg_stats_reap(unsigned max_checks, unsigned max_batches);
/* Changes whenever cg_stats starts pointing at another segment (published, or a fork child's
 * fresh counters): what leak.c remembers about where its stacks are in stacks[] holds for one
 * generation only. */
extern atomic_uint cg_stats_gen;
/* Set until the process publishes: hooks with socket activity call cg_stats_use(). */
extern atomic_int cg_stats_pending;
extern atomic_int cg_stats_exec_pending;
/* Relaxed: publication is idempotent under its lock (cg_stats_publish re-checks there). */
static inline void cg_stats_use(void)
{
  if (__builtin_expect(atomic_load_explicit(&cg_stats_pending, memory_order_relaxed), 0)) cg_stats_publish();
}

/* Only the head of a segment is reserved at creation; the pages of leaks[] and stacks[] are
 * reserved on first use (a page of tmpfs that cannot be allocated would SIGBUS the program).
 * cg_stats_room(p, n): 1 when [p, p+n) of *cg_stats may be written, 0 when /dev/shm is full
 * (leave the slot or stack out, counted). One bit test when already reserved. */
#define CG_STATS_PAGE 4096
#define CG_STATS_PAGES ((sizeof(struct cg_stats) + CG_STATS_PAGE - 1) / CG_STATS_PAGE)
#define CG_STATS_PAGE_WORDS ((int)((CG_STATS_PAGES + 63) / 64))
extern _Atomic uint64_t cg_stats_backed[CG_STATS_PAGE_WORDS];
int cg_stats_room_slow(const void *p, size_t n);
static inline int cg_stats_room(const void *p, size_t n)
{
  size_t off = (size_t)((const char *)p - (const char *)cg_stats);
  size_t a = off / CG_STATS_PAGE, b = (off + n - 1) / CG_STATS_PAGE;
  uint64_t wa = atomic_load_explicit(&cg_stats_backed[a / 64], memory_order_relaxed);
  uint64_t wb = atomic_load_explicit(&cg_stats_backed[b / 64], memory_order_relaxed);
  if ((wa >> (a % 64) & 1) && (wb >> (b % 64) & 1)) return 1;
  return cg_stats_room_slow(p, n);
}
/* Leak tracking parameters published in the header (kept across fork). */
void cg_stats_set_leak(uint32_t mode, uint32_t age_ms);
/* Path of a process's stats file. */
void cg_stats_path(char *out, unsigned cap, uid_t uid, pid_t pid);

#define CG_STAT_ADD(field, v) atomic_fetch_add_explicit(&cg_stats->field, (v), memory_order_relaxed)

#endif
