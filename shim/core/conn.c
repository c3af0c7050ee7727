/* In-flight records (fdtable.h, struct cg_conn): a connect's retry state while the engine
 * holds it. Here, not in the fd table, because giving a record back ends what it holds: its
 * place in a destination's shared schedule (coord.h). The fd table says when (the entry left
 * the active states: cg_fd_unlock, cg_fd_left_active); this file says what that ends. */
#include "fdtable.h"
#include "coord.h"
#include <errno.h>
#include <string.h>

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
    memset(c, 0, offsetof(struct cg_conn, addr));
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
        memset(&cg_conn_pool[i], 0, offsetof(struct cg_conn, addr));   /* addr: addrlen bytes written */
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

void cg_conn_settle_try(struct cg_fd *e)
{
  if (!__atomic_load_n(&e->conn, __ATOMIC_RELAXED) || atomic_exchange_explicit(&e->lock, 1, memory_order_acquire)) return;
  cg_conn_settle(e);
  atomic_store_explicit(&e->lock, 0, memory_order_release);
}
