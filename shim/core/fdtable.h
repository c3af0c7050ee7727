/* Per-fd state, indexed by fd number: two levels so that a huge RLIMIT_NOFILE costs nothing
 * until fds that high are used. Chunks are mmap()ed, published with a CAS and never freed, so
 * readers (close(), signal handlers) need no lock. close() only stores to atomics. */
#ifndef CG_FDTABLE_H
#define CG_FDTABLE_H
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/types.h>
#include "coord.h"

enum cg_fd_state {
  CG_FD_NONE = 0,     /* untracked, or closed */
  CG_FD_SOCKET,       /* a socket we know of, no connect under way */
  CG_FD_CONNECTING,   /* non-blocking connect in flight; result not yet seen by us */
  CG_FD_WAITING,      /* failed attempt consumed; next attempt at t_next_ns */
  CG_FD_FAILED,       /* we consumed an error the program has not read yet: pending_err */
  CG_FD_PASSED,       /* failed, error left in the kernel for the program: log when it reads it */
  CG_FD_CONNECTED,
  CG_FD_BACKGROUND,   /* we gave up with EINPROGRESS/EINTR on a connect the kernel goes on with:
                         the program's next connect() calls are its own, passed through */
};

/* How a tracked socket came to be (cg_fd.track; leak.h records them). */
enum cg_leak_via { CG_VIA_SOCKET = 1, CG_VIA_ACCEPT = 2, CG_VIA_SOCKETPAIR = 3, CG_VIA_DUP = 4 };

/* This process's pid, for cg_fd.owner: cached, set at start-up (leak.c, without a call) and in
 * the fork child. Close paths do not trust it (a vfork()ed child shares this memory):
 * cg_leak_borrowed_memory. */
extern atomic_int cg_self_pid_v;
pid_t cg_self_pid_slow(void);
static inline pid_t cg_self_pid(void)
{
  pid_t p = atomic_load_explicit(&cg_self_pid_v, memory_order_relaxed);
  return p ? p : cg_self_pid_slow();
}

#define CG_FD_CHUNK_BITS 10
#define CG_FD_CHUNK (1 << CG_FD_CHUNK_BITS)
#define CG_FD_MAX_CHUNKS 4096   /* 4M fds */

/* What every socket the shim knows of needs, 128 bytes: a connect's retry state lives in an
 * in-flight record (struct cg_conn) only while the connect is active. */
struct cg_fd {
  atomic_uint state;          /* enum cg_fd_state */
  atomic_uint lock;           /* serialises retry-engine transitions; close() never takes it */
  atomic_uint gen;            /* bumped by close(): a holder of the lock notices the fd went away */
  /* Leak tracking (leak.h). Next to state: close() of an fd the shim knows nothing about reads
   * this one cache line only (entries are whole lines, and chunks are page-aligned). track is
   * written last when a socket is recorded and cleared first by close(): the leak fields below
   * are only meaningful while it is nonzero. */
  atomic_uint track;          /* 0 untracked, else enum cg_leak_via */
  atomic_uint slot;           /* leaks[] slot + 1 in the stats segment, 0 none */
  /* Also read by close() and by every connect (cg_fd_made_here): in the same first line. */
  atomic_uint made;           /* CONNGUARD_LEAKS=off: made by socket() in process `owner` */
  int tcp;                    /* made by socket() as TCP: the watchdog may cut its connect */
  atomic_uint nbk;            /* made here: O_NONBLOCK as socket(), fcntl(F_SETFL) and
                                 ioctl(FIONBIO) left it (enum cg_nb), so connect() need not ask */
  pid_t owner;                /* process that created it: children do not report it */
  uint32_t conn;              /* in-flight record + 1 (cg_conn_of), 0 none; changed under lock */
  /* epoll registration seen through epoll_ctl (one per fd is kept); read by the epoll hook's
   * lookup without the lock. Kept for every fd: a program may register it before connect(). */
  int ep_fd;                  /* epoll fd + 1, 0 none */
  uint32_t ep_events;
  uint64_t ep_data;
  /* Leak tracking: creation site and identity. */
  int64_t created_ns;         /* realtime */
  uint32_t stack_id;          /* in the shared stack table (stacktab.h), 0 = none */
  uint32_t pystack;           /* Python stack at creation (pystack.h), 0 = none */
  uint32_t kind;              /* socket type | family << 16, 0 = unknown */
  uint32_t pair_ino;          /* socketpair(): the other end's inode (both ends held: no leak);
                                 socket inodes are 32-bit (get_next_ino) */
  dev_t dev;
  ino_t ino;
  socklen_t peerlen;          /* peer given to connect() or returned by accept(), inet only */
  union { struct sockaddr sa; struct sockaddr_in in; struct sockaddr_in6 in6; } peer;
} __attribute__((aligned(64)));
/* Issue 12: <= 256 bytes per tracked socket. 128 today: one more 32-bit field makes it 192. */
_Static_assert(sizeof(struct cg_fd) <= 256, "a tracked socket costs at most 256 bytes");
_Static_assert(offsetof(struct cg_fd, made) + sizeof(atomic_uint) <= 64, "close() reads one line");

/* A connect in flight (CONNECTING, WAITING, FAILED, PASSED): the retry state, in a pool of
 * CG_ACTIVE_SLOTS records (as many as the active set holds). Attached under the entry lock
 * when the engine takes a connect on; given back by whoever holds the lock when the entry is
 * no longer active (cg_fd_unlock), or by close() when the lock is free. A locked entry's
 * record stays put even when close() ends the connect meanwhile. The pool and what giving a
 * record back ends (its coord ticket) are conn.c's. */
struct cg_conn {
  unsigned attempt;           /* attempts started, 1-based */
  unsigned prev_delay_ms;
  int pending_err;            /* CG_FD_FAILED: errno to hand to the program */
  int nonblock;               /* the program's connect() said EINPROGRESS (not EINTR) */
  int ep_removed;             /* we took it out of its epoll set while it waits */
  uint32_t stack_id;          /* where the program called connect() (stacktab.h), 0 none */
  uint32_t cpystack;          /* Python stack at connect() (pystack.h), 0 = none */
  int64_t t_start_ns;         /* first attempt (monotonic) */
  int64_t t_attempt_ns;       /* current attempt */
  int64_t t_next_ns;          /* CG_FD_WAITING: when to retry */
  /* Until when cg_nb_tick has nothing to do here (its lowest bit: it then wakes the program's
   * poll for it), so that a tick looks at the connects in flight without taking their locks.
   * Written by the tick under the lock; any other change of what is due stores 0 (look). */
  _Atomic int64_t tick_hint;
  /* CONNGUARD_COORDINATE: its place in the destination's shared schedule while WAITING, with
   * its own next attempt and the limit past which it attempts on its own (backoff.c). Left
   * (cg_coord_leave) when the record is given back or reused. */
  struct cg_coord_ticket coord;
  int64_t coord_own_ns, coord_limit_ns;
  socklen_t addrlen;
  struct sockaddr_storage addr;   /* last: only addrlen bytes are written and read */
} __attribute__((aligned(64)));
extern struct cg_conn cg_conn_pool[];
/* The record of a locked entry, or NULL when it has none (not active when locked). */
static inline struct cg_conn *cg_conn_of(struct cg_fd *e)
{
  return e->conn ? &cg_conn_pool[e->conn - 1] : 0;
}
/* Gives a locked entry a record, zeroed (its own, when it has one: ep_removed is kept);
 * NULL when every record is in use. */
struct cg_conn *cg_conn_attach(struct cg_fd *e);


/* The entry for fd, or NULL when out of range. create: allocate its chunk if missing
 * (not from close() or signal context). Inline below: the chunk exists but once per 1024. */
static inline struct cg_fd *cg_fd_get(int fd, int create);
struct cg_fd *cg_fd_get_slow(int fd, int create);
/* Lock-free lookup that never allocates: for close() and signal paths. */
static inline struct cg_fd *cg_fd_peek(int fd);

/* Inline when free (nearly always); cg_fd_lock_wait spins and yields otherwise. */
void cg_fd_lock_wait(struct cg_fd *e);
static inline void cg_fd_lock(struct cg_fd *e)
{
  if (__builtin_expect(atomic_exchange_explicit(&e->lock, 1, memory_order_acquire), 0)) cg_fd_lock_wait(e);
}
/* Gives the record back first when the entry is no longer active. Inline below. */
static inline void cg_fd_unlock(struct cg_fd *e);
/* Lock held: gives the record back when the entry is no longer active (cg_fd_unlock calls it). */
void cg_conn_settle(struct cg_fd *e);
/* The entry left the active states without its lock: gives the record back now if nobody
 * holds the lock (the holder does it at unlock otherwise). Async-signal-safe: one try, no wait. */
void cg_conn_settle_try(struct cg_fd *e);

/* Fds with a connect the engine still owns (CONNECTING, WAITING, FAILED, PASSED). Kept as a
 * small set so that poll/epoll hooks cost nothing when it is empty. A connect the set has no
 * room for is not taken on (cg_fd_begin): the program gets the kernel's own result, as
 * without the shim, rather than a retry that epoll and the time-driven work would not see. */
#define CG_ACTIVE_SLOTS 1024
extern atomic_int cg_active_count;
extern atomic_int cg_active_fds[CG_ACTIVE_SLOTS];
/* One past the highest slot ever taken: slots are taken lowest first, so with a few connects in
 * flight the walks below look at a few slots, not 1024 (per epoll_wait, and per event). Never
 * lowered, so no slot in use is ever beyond it; raised before the slot is filled. */
extern atomic_int cg_active_hi;
int cg_active_add(int fd);     /* 0 when the set is full */
void cg_active_del(int fd);
/* How many slots a walk of the set must look at: walk i over [0, cg_active_span()). */
static inline int cg_active_span(void)
{
  return atomic_load_explicit(&cg_active_hi, memory_order_acquire);
}
/* The fd in slot i of the set, or -1. */
static inline int cg_active_at(int i)
{
  return atomic_load_explicit(&cg_active_fds[i], memory_order_relaxed) - 1;
}

/* socket() with leak tracking off: what the connect path needs to know without asking the
 * kernel (TCP or not, made in this process), kept until the fd is closed. */
void cg_fd_note_made(int fd, int domain, int type, int protocol);
/* Whether fd was made by socket() in this process (tracked, or noted by cg_fd_note_made). */
static inline int cg_fd_made_here(struct cg_fd *e);   /* inline below: every connect asks */

/* O_NONBLOCK of a socket made here, remembered from the calls that set it (no F_GETFL on a
 * healthy connect). Unknown once the file description may be shared: a dup() of it (flags are
 * the description's), and for anything not made here (inherited, received, a fork child's
 * view of its parent's sockets). */
enum cg_nb { CG_NB_UNKNOWN = 0, CG_NB_OFF = 1, CG_NB_ON = 2 };
/* socket(), fcntl(F_SETFL), ioctl(FIONBIO) succeeded on fd. */
static inline void cg_fd_note_nonblock(int fd, int on);
/* fd was duplicated: its flags may now change through another number. */
static inline void cg_fd_note_shared(int fd);
/* Whether fd is in blocking mode: remembered for a socket made here, else one F_GETFL. */
int cg_fd_blocking(int fd, struct cg_fd *e);
/* What socket(domain, type, protocol) makes is TCP. */
static inline int cg_is_tcp(int domain, int type, int protocol)
{
  return (domain == AF_INET || domain == AF_INET6) && (type & 0xf) == SOCK_STREAM &&
         (protocol == 0 || protocol == IPPROTO_TCP);
}

/* Whether the shim holds anything for the entry: connect state, leak tracking, made here.
 * Reads one cache line: what close() of an fd the shim knows nothing about costs. */
static inline int cg_fd_known(struct cg_fd *e);
/* The fd was closed: drops the entry's connect state (async-signal-safe, atomics only). Its
 * leak tracking and everything else a close ends is the close path's (closepath.h). */
static inline void cg_fd_closed(int fd, struct cg_fd *e);
/* The entry left the active states: out of the active set, its record given back when nobody
 * holds the lock (a try, never a wait: async-signal-safe). */
void cg_fd_left_active(int fd, struct cg_fd *e);

extern struct cg_fd *_Atomic cg_fd_chunks[CG_FD_MAX_CHUNKS];
/* One past the highest fd whose entry the shim has handed out for writing (cg_fd_get) or
 * recorded a socket in: walks of the whole table (the exit report, a fork child's lock reset)
 * stop there, so the untouched pages of a chunk and of the chunk array cost no page fault
 * (a read of one is a fault here too, ~5-11 us on these VMs). Never lowered. */
extern atomic_int cg_fd_hi;
static inline void cg_fd_raise_hi(int fd)
{
  int hi = atomic_load_explicit(&cg_fd_hi, memory_order_relaxed);
  while (hi <= fd && !atomic_compare_exchange_weak_explicit(&cg_fd_hi, &hi, fd + 1, memory_order_release,
                                                            memory_order_relaxed)) {}
}
/* Entries a walk of the table must look at, in chunk c (0 past the last one). */
static inline int cg_fd_walk_len(int c)
{
  int left = atomic_load_explicit(&cg_fd_hi, memory_order_acquire) - (c << CG_FD_CHUNK_BITS);
  return left <= 0 ? 0 : left < CG_FD_CHUNK ? left : CG_FD_CHUNK;
}
static inline struct cg_fd *cg_fd_peek(int fd)
{
  if (fd < 0 || (fd >> CG_FD_CHUNK_BITS) >= CG_FD_MAX_CHUNKS) return 0;
  struct cg_fd *c = atomic_load_explicit(&cg_fd_chunks[fd >> CG_FD_CHUNK_BITS], memory_order_acquire);
  return c ? &c[fd & (CG_FD_CHUNK - 1)] : 0;
}

static inline struct cg_fd *cg_fd_get(int fd, int create)
{
  struct cg_fd *e = cg_fd_peek(fd);
  if (!e) return cg_fd_get_slow(fd, create);
  cg_fd_raise_hi(fd);
  return e;
}

static inline int cg_state_active(unsigned s);
static inline void cg_fd_unlock(struct cg_fd *e)
{
  /* The record stays while the connect is active (most unlocks): no call then. */
  if (e->conn && !cg_state_active(atomic_load_explicit(&e->state, memory_order_acquire))) cg_conn_settle(e);
  atomic_store_explicit(&e->lock, 0, memory_order_release);
}

static inline int cg_fd_known(struct cg_fd *e)
{
  return atomic_load_explicit(&e->state, memory_order_relaxed) != CG_FD_NONE ||
         atomic_load_explicit(&e->track, memory_order_relaxed) != 0 ||
         atomic_load_explicit(&e->made, memory_order_relaxed) != 0;
}

static inline void cg_fd_note_shared(int fd)
{
  struct cg_fd *e = cg_fd_peek(fd);
  if (e && atomic_load_explicit(&e->nbk, memory_order_relaxed) != CG_NB_UNKNOWN)
    atomic_store_explicit(&e->nbk, CG_NB_UNKNOWN, memory_order_relaxed);
}

static inline int cg_fd_made_here(struct cg_fd *e)
{
  return e && (atomic_load_explicit(&e->track, memory_order_acquire) == CG_VIA_SOCKET ||
               atomic_load_explicit(&e->made, memory_order_acquire)) &&
         e->owner == cg_self_pid();
}

static inline void cg_fd_note_nonblock(int fd, int on)
{
  struct cg_fd *e = cg_fd_peek(fd);
  if (cg_fd_made_here(e)) atomic_store_explicit(&e->nbk, on ? CG_NB_ON : CG_NB_OFF, memory_order_relaxed);
}

static inline int cg_state_active(unsigned s)
{
  return s == CG_FD_CONNECTING || s == CG_FD_WAITING || s == CG_FD_FAILED || s == CG_FD_PASSED;
}

static inline void cg_fd_closed(int fd, struct cg_fd *e)
{
  atomic_store_explicit(&e->made, 0, memory_order_relaxed);
  atomic_store_explicit(&e->nbk, CG_NB_UNKNOWN, memory_order_relaxed);
  atomic_fetch_add_explicit(&e->gen, 1, memory_order_acq_rel);
  unsigned old = atomic_exchange_explicit(&e->state, CG_FD_NONE, memory_order_acq_rel);
  if (cg_state_active(old)) cg_fd_left_active(fd, e);
}

#endif
#ifndef CG_FDTABLE_SETSTATE
#define CG_FDTABLE_SETSTATE
/* Changes the state and keeps the active set in step. Returns the old state. Entering an
 * active state goes through cg_fd_begin. */
unsigned cg_fd_set_state(int fd, struct cg_fd *e, unsigned st);
/* Puts fd in the active set and e in active state st. 0 (nothing changed) when the set is full. */
int cg_fd_begin(int fd, struct cg_fd *e, unsigned st);
#endif
