/* Retries to a failing destination coordinated across every process of one user on a host
 * (CONNGUARD_COORDINATE, docs/design.md "Coordinated retries").
 *
 * A table in shared memory, /dev/shm/connguard.<euid>.dst, keyed by destination address and
 * port. It is created by the first process of that user whose connect fails (never on the
 * healthy path: nothing here is called until a real attempt has failed), mapped once per
 * process and never unmapped while the process lives, and removed by the last registered
 * user at exit.
 *
 * Per destination: one backoff schedule (next_ns) shared by every connect waiting to retry it.
 * When a slot comes, one waiter takes the probe role (a lease: tid + deadline, in one word) and
 * makes the real attempt; the others sleep on a futex in the entry and are woken by its
 * outcome: a success wakes all of them to make their own attempts at once, a failure sets the
 * next slot. A probe that dies (SIGKILL) is replaced as soon as a waiter sees its tid gone
 * (kill(tid, 0), checked every CG_COORD_PROBE_CHECK_MS) or its lease expired (pid reuse).
 * Each waiter also has its own limit (its deadline, its program's timeout): past it, it makes
 * its own attempt, so its program always gets an errno of its own.
 *
 * Non-blocking connects do not sleep here: cg_coord_check() tells the event-loop hooks whether
 * to attempt now or when to look again (at most CG_COORD_POLL_MS later). */
#ifndef CG_COORD_H
#define CG_COORD_H
#include <stdatomic.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include "config.h"

#define CG_COORD_MAGIC    0x44524743u   /* "CGRD" little-endian */
#define CG_COORD_VERSION  1
#define CG_COORD_USERS    128           /* processes registered for the removal at exit */
#define CG_COORD_OPEN_AFTER 3           /* consecutive failed attempts that open the breaker,
                                           once at least two connects share the schedule */
#define CG_COORD_POLL_MS  10            /* non-blocking waiters look again this often */
#define CG_COORD_PROBE_CHECK_MS 50      /* waiters check a running probe's liveness this often */
#define CG_COORD_STALE_MS (10 * 60 * 1000)  /* an entry idle this long is reclaimable whatever
                                               its state (left by crashed processes) */

enum { CG_COORD_CLOSED = 0, CG_COORD_OPEN = 1 };

/* One destination. Counters are cumulative over the entry's life (since it was taken). */
struct cg_coord_dst {
  _Atomic uint32_t gen;              /* 0 free; bumped each time the slot is taken or freed */
  uint16_t family;                   /* AF_INET or AF_INET6 (v4-mapped v6 is stored as v4) */
  uint16_t port;                     /* host order */
  uint8_t addr[16];
  _Atomic uint32_t epoch;            /* futex word: bumped on every outcome waiters care about */
  _Atomic uint32_t state;            /* CG_COORD_CLOSED / CG_COORD_OPEN */
  _Atomic uint32_t ok_seq;           /* successes: a waiter that sees it move goes at once */
  _Atomic uint32_t streak;           /* consecutive failed attempts (any process) */
  _Atomic uint32_t round;            /* slots scheduled in this failure episode */
  _Atomic uint32_t prev_delay_ms;
  _Atomic uint32_t waiting;          /* blocking connects asleep in cg_coord_wait now */
  _Atomic int32_t opened_by;         /* pid that opened the breaker */
  _Atomic uint64_t probe;            /* tid << 32 | lease end (monotonic ms, low 32 bits); 0 none */
  _Atomic int64_t next_ns;           /* monotonic: the next slot */
  _Atomic int64_t last_ns;           /* monotonic: last activity */
  _Atomic int64_t opened_ns;         /* monotonic, when opened */
  _Atomic int64_t opened_rt_ns;      /* realtime, when opened (tools) */
  _Atomic uint64_t ep_failures;      /* failed attempts since it opened (breaker_closed) */
  _Atomic uint64_t ep_probes;
  _Atomic uint32_t ep_joins;         /* connects that joined since the last success */
  _Atomic uint32_t ep_active;        /* connects in the schedule now: the first to join an
                                        empty one starts a new schedule (round 0) */
  _Atomic uint64_t attempts;         /* real attempts reported (failed + succeeded) */
  _Atomic uint64_t failures;
  _Atomic uint64_t probes;           /* probe roles taken */
  _Atomic uint64_t waits;            /* connects that waited for a probe instead of their own slot */
  _Atomic uint64_t opens;            /* times the breaker opened */
} __attribute__((aligned(64)));

struct cg_coord_table {
  uint32_t magic, version, size, nslots;
  uint32_t uid, pad;
  int64_t created_rt_ns;
  _Atomic int32_t lock;              /* tid of the holder, 0 free (stolen from a dead tid) */
  _Atomic uint32_t dead;             /* unlinked by its last user: map a new one */
  _Atomic uint32_t overflow;         /* users that found users[] full: the file is never removed */
  _Atomic uint32_t full;             /* lookups refused: every slot busy */
  _Atomic int32_t users[CG_COORD_USERS];
  struct cg_coord_dst dst[];
};

/* A connect's membership in a destination's schedule (process-local; lives on the stack of a
 * blocking connect, in the fd's entry for a non-blocking one). d == NULL: not coordinated. */
struct cg_coord_ticket {
  struct cg_coord_dst *d;
  uint32_t gen;
  uint32_t ok_seq;                   /* successes already seen */
  uint8_t probe;                     /* holds the probe role */
  uint8_t waited;                    /* counted in waits once */
  int64_t limit_ns;                  /* the engine's: set once per connect (0 unset) */
  int64_t due_ns;                    /* its own next attempt: it never probes before (0: any time) */
};

enum cg_coord_verdict {
  CG_COORD_GO = 1,                   /* another attempt succeeded: attempt now */
  CG_COORD_PROBE,                    /* this connect is the probe: attempt now */
  CG_COORD_TIMEOUT,                  /* own limit reached: attempt now, on its own */
  CG_COORD_INTR,                     /* a signal that must end the wait (restart_ok said no) */
  CG_COORD_LOST,                     /* no schedule any more (slot reused): back to own backoff */
};

/* Settings (kept by address: c must outlive every call here; the shim passes &cg_cfg) and the
 * path (tests point it elsewhere). Not thread-safe: at init. */
void cg_coord_configure(const struct cg_config *c);
void cg_coord_set_path(const char *path);
const char *cg_coord_path(void);
/* The table, mapped (created if needed); NULL when unavailable (one warning per process). */
struct cg_coord_table *cg_coord_table(void);

/* A real attempt to a failed; joins the destination (first call) and records the failure.
 * own_delay_ms/own_attempt: the backoff the engine computed for its own next attempt and
 * the number of the attempt that failed: a lone process keeps exactly its own schedule. */
void cg_coord_failed(struct cg_coord_ticket *t, const struct sockaddr *a, socklen_t l,
                     unsigned own_attempt, unsigned own_delay_ms);
/* A real attempt succeeded: closes the breaker, wakes every waiter, leaves. */
void cg_coord_success(struct cg_coord_ticket *t);
/* The connect ends without success (gave up, fd closed): gives back the probe role. */
void cg_coord_leave(struct cg_coord_ticket *t);

/* Blocking wait until the schedule lets this connect attempt, or until limit_ns (monotonic).
 * restart_ok (may be NULL = always): called after a signal; 0 ends the wait (CG_COORD_INTR). */
int cg_coord_wait(struct cg_coord_ticket *t, int64_t limit_ns, int (*restart_ok)(void));
/* Non-blocking form: a verdict, or 0 with *recheck_ns set (never later than limit_ns). */
int cg_coord_check(struct cg_coord_ticket *t, int64_t now, int64_t limit_ns, int64_t *recheck_ns);

/* Fork child: holds no probe role (roles name the parent's tids) and registers itself as a user
 * on its own first failure. At exit: deregisters; the last user removes the file. */
void cg_coord_after_fork(void);
void cg_coord_at_exit(void);

/* Destination key helpers (tools, tests). Returns 0 when a is not an inet address. */
int cg_coord_key(const struct sockaddr *a, socklen_t l, uint16_t *family, uint16_t *port, uint8_t addr[16]);
/* "127.0.0.1:5432" / "[::1]:80". */
void cg_coord_dst_name(const struct cg_coord_dst *d, char *out, size_t cap);

#endif
