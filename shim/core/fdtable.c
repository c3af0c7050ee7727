#include "fdtable.h"
#include "startup.h"
#include "rawsys.h"
#include <fcntl.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <sys/mman.h>

struct cg_fd *_Atomic cg_fd_chunks[CG_FD_MAX_CHUNKS];
atomic_int cg_fd_hi;
atomic_int cg_active_count;

atomic_int cg_active_fds[CG_ACTIVE_SLOTS];   /* fd + 1, 0 = free */
atomic_int cg_active_hi;

/* The creation path's pid (fdtable.h): in .data, written at start-up. */
atomic_int cg_self_pid_v CG_STARTUP_DATA;

pid_t cg_self_pid_slow(void)
{
  pid_t p = (pid_t)cg_syscall(SYS_getpid);
  atomic_store_explicit(&cg_self_pid_v, p, memory_order_relaxed);
  return p;
}

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

void cg_fd_lock_wait(struct cg_fd *e)
{
  unsigned spins = 1;
  while (atomic_exchange_explicit(&e->lock, 1, memory_order_acquire)) {
    if (++spins > 64) sched_yield();
  }
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
  if (__atomic_load_n(&e->conn, __ATOMIC_RELAXED)) cg_conn_settle_try(e);
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
  e->owner = cg_self_pid();
  atomic_store_explicit(&e->made, 1, memory_order_release);
}



int cg_fd_blocking(int fd, struct cg_fd *e)
{
  unsigned nb = e ? atomic_load_explicit(&e->nbk, memory_order_relaxed) : CG_NB_UNKNOWN;
  if (nb != CG_NB_UNKNOWN && cg_fd_made_here(e)) return nb == CG_NB_OFF;
  int fl = (int)cg_syscall(SYS_fcntl, fd, F_GETFL);
  return fl >= 0 && !(fl & O_NONBLOCK);
}
