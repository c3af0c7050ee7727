#include "stacktab.h"
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>

#define IDX_SIZE (CG_ST_MAX * 2)       /* open addressing, at most half full */

struct entry {
  uint64_t hash;
  uint32_t n, pad;
  uintptr_t pcs[CG_ST_FRAMES];
};

struct table {
  atomic_uint next;                  /* entries handed out (ids are 1-based) */
  atomic_uint full;
  _Atomic uint32_t index[IDX_SIZE];  /* id, 0 = empty; published after its entry is written */
  struct entry e[CG_ST_MAX];
};

static struct table *_Atomic tab;

/* Mapped on first use and never freed. MAP_NORESERVE: only the pages that stacks land on cost
 * memory (the index is touched sparsely, entries fill from the front). */
static struct table *get_table(void)
{
  struct table *t = atomic_load_explicit(&tab, memory_order_acquire);
  if (t) return t;
  void *m = mmap(0, sizeof *t, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (m == MAP_FAILED) return 0;
  struct table *expect = 0;
  if (atomic_compare_exchange_strong(&tab, &expect, (struct table *)m)) return m;
  munmap(m, sizeof *t);
  return expect;
}

static uint64_t hash_pcs(const uintptr_t *pcs, int n)
{
  uint64_t h = 0x84222325cbf29ce4ULL ^ (uint64_t)n;
  for (int i = 0; i < n; i++) {
    h ^= (uint64_t)pcs[i];
    h *= 0x9e3779b97f4a7c15ULL;
    h ^= h >> 29;
  }
  return h;
}

static int same(const struct entry *x, uint64_t h, const uintptr_t *pcs, int n)
{
  return x->hash == h && x->n == (uint32_t)n && memcmp(x->pcs, pcs, sizeof *pcs * (size_t)n) == 0;
}

uint32_t cg_stacktab_intern(const uintptr_t *pcs, int n)
{
  if (n <= 0 || !pcs) return 0;
  if (n > CG_ST_FRAMES) n = CG_ST_FRAMES;
  struct table *t = get_table();
  if (!t) return 0;
  uint64_t h = hash_pcs(pcs, n);
  uint32_t mine = 0;   /* an entry we filled but have not published yet */
  unsigned i = (unsigned)h & (IDX_SIZE - 1);
  for (unsigned probe = 0; probe < IDX_SIZE; probe++, i = (i + 1) & (IDX_SIZE - 1)) {
    uint32_t v = atomic_load_explicit(&t->index[i], memory_order_acquire);
    if (v == 0) {
      if (!mine) {
        if (atomic_load_explicit(&t->next, memory_order_relaxed) >= CG_ST_MAX) goto full;
        mine = atomic_fetch_add_explicit(&t->next, 1, memory_order_relaxed) + 1;
        if (mine > CG_ST_MAX) goto full;
        struct entry *x = &t->e[mine - 1];
        x->hash = h;
        x->n = (uint32_t)n;
        memcpy(x->pcs, pcs, sizeof *pcs * (size_t)n);
      }
      /* The release CAS publishes the entry's contents with its id. */
      if (atomic_compare_exchange_strong_explicit(&t->index[i], &v, mine, memory_order_acq_rel,
                                                  memory_order_acquire))
        return mine;
      /* Another thread took this cell first: v now holds its id; it may be our very stack. */
    }
    if (v >= 1 && v <= CG_ST_MAX && same(&t->e[v - 1], h, pcs, n)) return v;
  }
full:
  atomic_fetch_add_explicit(&t->full, 1, memory_order_relaxed);
  return 0;
}

int cg_stacktab_get(uint32_t id, const uintptr_t **pcs)
{
  struct table *t = atomic_load_explicit(&tab, memory_order_acquire);
  if (!t || id == 0 || id > CG_ST_MAX || id > atomic_load_explicit(&t->next, memory_order_acquire)) return 0;
  *pcs = t->e[id - 1].pcs;
  return (int)t->e[id - 1].n;
}

unsigned cg_stacktab_count(void)
{
  struct table *t = atomic_load_explicit(&tab, memory_order_acquire);
  if (!t) return 0;
  unsigned n = atomic_load(&t->next);
  return n > CG_ST_MAX ? CG_ST_MAX : n;
}

unsigned cg_stacktab_full(void)
{
  struct table *t = atomic_load_explicit(&tab, memory_order_acquire);
  return t ? atomic_load(&t->full) : 0;
}
