#include "fdtable.h"
#include "leak.h"
#include "watchdog.h"
#include <fcntl.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <string.h>
#include <sys/mman.h>

struct cg_fd *_Atomic cg_fd_chunks[CG_FD_MAX_CHUNKS];
atomic_int cg_active_count;

atomic_int cg_active_fds[CG_ACTIVE_SLOTS];   /* fd + 1, 0 = free */

struct cg_fd *cg_fd_get(int fd, int create)
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
  return c ? &c[fd & (CG_FD_CHUNK - 1)] : 0;
}

void cg_fd_lock(struct cg_fd *e)
{
  unsigned spins = 0;
  while (atomic_exchange_explicit(&e->lock, 1, memory_order_acquire)) {
    if (++spins > 64) sched_yield();
  }
}

void cg_fd_unlock(struct cg_fd *e)
{
  atomic_store_explicit(&e->lock, 0, memory_order_release);
}

int cg_active_add(int fd)
{
  for (int i = 0; i < CG_ACTIVE_SLOTS; i++) {
    int expect = 0;
    if (atomic_load_explicit(&cg_active_fds[i], memory_order_relaxed) == 0 &&
        atomic_compare_exchange_strong(&cg_active_fds[i], &expect, fd + 1)) {
      atomic_fetch_add(&cg_active_count, 1);
      return 1;
    }
  }
  return 0;
}

void cg_active_del(int fd)
{
  for (int i = 0; i < CG_ACTIVE_SLOTS; i++) {
    int expect = fd + 1;
    if (atomic_load_explicit(&cg_active_fds[i], memory_order_relaxed) == fd + 1 &&
        atomic_compare_exchange_strong(&cg_active_fds[i], &expect, 0)) {
      atomic_fetch_sub(&cg_active_count, 1);
      return;
    }
  }
}



void cg_fd_forget_entry(int fd, struct cg_fd *e)
{
  atomic_store_explicit(&e->made, 0, memory_order_relaxed);
  atomic_store_explicit(&e->nbk, CG_NB_UNKNOWN, memory_order_relaxed);
  atomic_fetch_add_explicit(&e->gen, 1, memory_order_acq_rel);
  unsigned old = atomic_exchange_explicit(&e->state, CG_FD_NONE, memory_order_acq_rel);
  if (cg_state_active(old)) cg_active_del(fd);
  if (atomic_load_explicit(&e->track, memory_order_relaxed)) cg_leak_forget(fd, e);
}

unsigned cg_fd_set_state(int fd, struct cg_fd *e, unsigned st)
{
  unsigned old = atomic_exchange_explicit(&e->state, st, memory_order_acq_rel);
  int was = cg_state_active(old), is = cg_state_active(st);
  if (was && !is) cg_active_del(fd);
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
