#include "fdtable.h"
#include "leak.h"
#include "watchdog.h"
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <string.h>
#include <sys/mman.h>

struct cg_fd *_Atomic cg_fd_chunks[CG_FD_MAX_CHUNKS];
atomic_int cg_fd_hi;
atomic_int cg_active_count;

atomic_int cg_active_fds[CG_ACTIVE_SLOTS];   /* fd + 1, 0 = free */
atomic_int cg_active_hi;

struct cg_fd *cg_fd_get_slow(int fd, int create)
{
  if (fd < 0 || (fd >> CG_FD_CHUNK_BITS) >= CG_FD_MAX_CHUNKS) return 0;
  int ci = fd >> CG_FD_CHUNK_BITS;
  struct cg_fd *c = atomic_load_explicit(&cg_fd_chunks[ci], memory_order_acquire);
  if (!c && create) {
    /* mmap, not malloc: safe from any hook and invisible to the program's allocator. */
    void *m = mmap(0, sizeof(struct cg_fd) * CG_FD_CHUNK, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return 0;
    struct cg_fd *expect = 0;
    if (atomic_compare_exchange_strong(&cg_fd_chunks[ci], &expect, (struct cg_fd *)m)) {
      c = m;
    } else {
      munmap(m, sizeof(struct cg_fd) * CG_FD_CHUNK);
      c = expect;
    }
  }
  if (!c) return 0;
  cg_fd_raise_hi(fd);
  return &c[fd & (CG_FD_CHUNK - 1)];
}

void cg_fd_lock(struct cg_fd *e)
{
  unsigned spins = 0;
  while (atomic_exchange_explicit(&e->lock, 1, memory_order_acquire)) {
    if (++spins > 64) sched_yield();
  }
}

/* ---- in-flight records ---- */

/* Untouched pages of the pool cost nothing; the lowest free record is taken, so a process
 * with a few connects in flight at a time touches one or two pages. */
struct cg_conn cg_conn_pool[CG_ACTIVE_SLOTS];
static _Atomic uint64_t conn_used[CG_ACTIVE_SLOTS / 64];

struct cg_conn *cg_conn_attach(struct cg_fd *e)
{
  struct cg_conn *c = cg_conn_of(e);
  if (c) {
    /* A connect() again on a connect still held: the old one's probe role goes back now. */
    if (c->coord.d) cg_coord_leave(&c->coord);
    int removed = c->ep_removed;   /* still out of its epoll set: put back when connected */
    memset(c, 0, sizeof *c);
    c->ep_removed = removed;
    return c;
  }
  for (unsigned w = 0; w < CG_ACTIVE_SLOTS / 64; w++) {
    uint64_t u = atomic_load_explicit(&conn_used[w], memory_order_relaxed);
    while (~u) {
      unsigned b = (unsigned)__builtin_ctzll(~u);
      if (atomic_compare_exchange_weak_explicit(&conn_used[w], &u, u | (1ull << b), memory_order_acquire,
                                                memory_order_relaxed)) {
        unsigned i = w * 64 + b;
        memset(&cg_conn_pool[i], 0, sizeof cg_conn_pool[i]);
        __atomic_store_n(&e->conn, i + 1, __ATOMIC_RELAXED);   /* close() peeks at it unlocked */
        return &cg_conn_pool[i];
      }
    }
  }
  return 0;
}

/* Lock held: gives the record back once the entry is no longer active (fdtable.h). */
void cg_conn_settle(struct cg_fd *e)
{
  unsigned i = e->conn;
  if (!i || cg_state_active(atomic_load_explicit(&e->state, memory_order_acquire))) return;
  /* Closed while it waited in a shared schedule: its probe role goes back now rather than at
   * its lease's end (atomics and a futex wake: signal-safe, as close() needs). */
  struct cg_conn *c = &cg_conn_pool[i - 1];
  if (c->coord.d) { int err = errno; cg_coord_leave(&c->coord); errno = err; }
  __atomic_store_n(&e->conn, 0, __ATOMIC_RELAXED);
  atomic_fetch_and_explicit(&conn_used[(i - 1) / 64], ~(1ull << ((i - 1) % 64)), memory_order_release);
}

/* The entry left the active states without its lock: give the record back now if nobody holds
 * the lock (the holder does it at unlock otherwise). Async-signal-safe: one try, no wait. */
static void conn_settle_unlocked(struct cg_fd *e)
{
  if (!__atomic_load_n(&e->conn, __ATOMIC_RELAXED) || atomic_exchange_explicit(&e->lock, 1, memory_order_acquire)) return;
  cg_conn_settle(e);
  atomic_store_explicit(&e->lock, 0, memory_order_release);
}

int cg_active_add(int fd)
{
  for (int i = 0; i < CG_ACTIVE_SLOTS; i++) {
    if (atomic_load_explicit(&cg_active_fds[i], memory_order_relaxed) != 0) continue;
    /* The span first: a walk that sees the slot filled also sees a span that covers it. */
    int hi = atomic_load_explicit(&cg_active_hi, memory_order_relaxed);
    while (hi < i + 1 && !atomic_compare_exchange_weak(&cg_active_hi, &hi, i + 1)) {}
    int expect = 0;
    if (atomic_compare_exchange_strong(&cg_active_fds[i], &expect, fd + 1)) {
      atomic_fetch_add(&cg_active_count, 1);
      return 1;
    }
  }
  return 0;
}

void cg_active_del(int fd)
{
  int span = cg_active_span();
  for (int i = 0; i < span; i++) {
    int expect = fd + 1;
    if (atomic_load_explicit(&cg_active_fds[i], memory_order_relaxed) == fd + 1 &&
        atomic_compare_exchange_strong(&cg_active_fds[i], &expect, 0)) {
      atomic_fetch_sub(&cg_active_count, 1);
      return;
    }
  }
}


void cg_fd_left_active(int fd, struct cg_fd *e)
{
  cg_active_del(fd);
  conn_settle_unlocked(e);
}

unsigned cg_fd_set_state(int fd, struct cg_fd *e, unsigned st)
{
  unsigned old = atomic_exchange_explicit(&e->state, st, memory_order_acq_rel);
  int was = cg_state_active(old), is = cg_state_active(st);
  if (was && !is) cg_fd_left_active(fd, e);
  return old;
}

int cg_fd_begin(int fd, struct cg_fd *e, unsigned st)
{
  /* Already active (a connect() to another address after a failure we still hold): it is
   * listed, so this cannot fail. Unless close() ends it meanwhile: then list it anew. */
  unsigned cur = atomic_load_explicit(&e->state, memory_order_acquire);
  if (cg_state_active(cur) && atomic_compare_exchange_strong(&e->state, &cur, st)) return 1;
  if (!cg_active_add(fd)) return 0;
  unsigned old = atomic_exchange_explicit(&e->state, st, memory_order_acq_rel);
  if (cg_state_active(old)) cg_active_del(fd);   /* listed twice by a race: keep one slot */
  return 1;
}

void cg_fd_note_made(int fd, int domain, int type, int protocol)
{
  struct cg_fd *e = cg_fd_get(fd, 1);
  if (!e) return;
  e->tcp = cg_is_tcp(domain, type, protocol);
  e->owner = cg_leak_self_pid();
  atomic_store_explicit(&e->made, 1, memory_order_release);
}

int cg_fd_made_here(struct cg_fd *e)
{
  return e && (atomic_load_explicit(&e->track, memory_order_acquire) == CG_VIA_SOCKET ||
               atomic_load_explicit(&e->made, memory_order_acquire)) &&
         e->owner == cg_leak_self_pid();
}

void cg_fd_note_nonblock(int fd, int on)
{
  struct cg_fd *e = cg_fd_peek(fd);
  if (cg_fd_made_here(e)) atomic_store_explicit(&e->nbk, on ? CG_NB_ON : CG_NB_OFF, memory_order_relaxed);
}

int cg_fd_blocking(int fd, struct cg_fd *e)
{
  unsigned nb = e ? atomic_load_explicit(&e->nbk, memory_order_relaxed) : CG_NB_UNKNOWN;
  if (nb != CG_NB_UNKNOWN && cg_fd_made_here(e)) return nb == CG_NB_OFF;
  int fl = (int)syscall(SYS_fcntl, fd, F_GETFL);
  return fl >= 0 && !(fl & O_NONBLOCK);
}
