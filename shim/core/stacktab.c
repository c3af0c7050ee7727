#include "stacktab.h"
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>

/* Laid out for page faults (~11-25 us each on these VMs): the counters, a small first index,
 * the first ids' places and the first stacks' frames share the table's first page, so a
 * process's first dozen stacks cost it one fault instead of one each for a hashed index cell,
 * a fixed 528-byte entry and the counters. Stacks are stored at their length, one after the
 * other. The big index takes a stack only when its probes in the small one find no room. */
#define SMALL      256                 /* first index: cells (power of two) */
#define SMALL_PROBES 8                 /* probes in it before the big index */
#define LO_IDS     256                 /* ids whose place lies on the first page */
#define IDX_SIZE   (CG_ST_MAX * 2)     /* big index: open addressing, at most half full */
#define REC_HEAD   2                   /* words before a stack's frames: hash, count */
#define POOL_WORDS (CG_ST_MAX * (REC_HEAD + CG_ST_FRAMES))

struct table {
  atomic_uint next;                  /* ids handed out (1-based) */
  atomic_uint full;
  atomic_uint used;                  /* pool words handed out */
  uint32_t pad;
  _Atomic uint32_t small[SMALL];     /* id, 0 = empty; published after its stack is written */
  uint32_t place_lo[LO_IDS];         /* id -> 1 + the pool word its stack starts at, 0 = none */
  uint64_t pool[POOL_WORDS];         /* stacks: hash, frame count, frames */
  uint32_t place_hi[CG_ST_MAX - LO_IDS];
  _Atomic uint32_t index[IDX_SIZE];
};

static struct table *_Atomic tab;

/* Mapped on first use and never freed. MAP_NORESERVE: only the pages stacks land on cost
 * memory. */
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

static uint32_t *place(struct table *t, uint32_t id)
{
  return id <= LO_IDS ? &t->place_lo[id - 1] : &t->place_hi[id - 1 - LO_IDS];
}

/* The stack of id, or NULL (id never filled). */
static const uint64_t *record(struct table *t, uint32_t id)
{
  if (id == 0 || id > CG_ST_MAX) return NULL;
  uint32_t p = __atomic_load_n(place(t, id), __ATOMIC_ACQUIRE);
  return p ? &t->pool[p - 1] : NULL;
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

static int same(struct table *t, uint32_t id, uint64_t h, const uintptr_t *pcs, int n)
{
  const uint64_t *r = record(t, id);
  return r && r[0] == h && r[1] == (uint64_t)n && memcmp(r + REC_HEAD, pcs, sizeof *pcs * (size_t)n) == 0;
}

/* A new id with pcs stored under it (not yet published); 0 when the table is full. */
static uint32_t fill(struct table *t, uint64_t h, const uintptr_t *pcs, int n)
{
  if (atomic_load_explicit(&t->next, memory_order_relaxed) >= CG_ST_MAX) return 0;
  uint32_t id = atomic_fetch_add_explicit(&t->next, 1, memory_order_relaxed) + 1;
  if (id > CG_ST_MAX) return 0;
  unsigned words = REC_HEAD + (unsigned)n;
  unsigned at = atomic_fetch_add_explicit(&t->used, words, memory_order_relaxed);
  if (at > POOL_WORDS - words) return 0;   /* only when racing inserts wasted room */
  uint64_t *r = &t->pool[at];
  r[0] = h;
  r[1] = (uint64_t)n;
  memcpy(r + REC_HEAD, pcs, sizeof *pcs * (size_t)n);
  __atomic_store_n(place(t, id), at + 1, __ATOMIC_RELEASE);
  return id;
}

/* One probe of cell c: 1 when done (*out: the id, 0 when the table is full). */
static int probe(struct table *t, _Atomic uint32_t *c, uint64_t h, const uintptr_t *pcs, int n,
                 uint32_t *mine, uint32_t *out)
{
  uint32_t v = atomic_load_explicit(c, memory_order_acquire);
  if (v == 0) {
    if (!*mine && !(*mine = fill(t, h, pcs, n))) { *out = 0; return 1; }
    /* The release CAS publishes the stack with its id. */
    if (atomic_compare_exchange_strong_explicit(c, &v, *mine, memory_order_acq_rel, memory_order_acquire)) {
      *out = *mine;
      return 1;
    }
    /* Another thread took this cell first: v now holds its id; it may be our very stack. */
  }
  if (same(t, v, h, pcs, n)) { *out = v; return 1; }
  return 0;
}

uint32_t cg_stacktab_intern(const uintptr_t *pcs, int n)
{
  if (n <= 0 || !pcs) return 0;
  if (n > CG_ST_FRAMES) n = CG_ST_FRAMES;
  struct table *t = get_table();
  if (!t) return 0;
  uint64_t h = hash_pcs(pcs, n);
  uint32_t mine = 0, id;   /* mine: an id we filled but have not published yet */
  /* Cells are never emptied: a stack is in the big index only if every cell of its probes in
   * the small one was taken when it was put there, and they still are. */
  for (unsigned k = 0; k < SMALL_PROBES; k++)
    if (probe(t, &t->small[(h + k) & (SMALL - 1)], h, pcs, n, &mine, &id)) goto done;
  unsigned i = (unsigned)(h >> 20) & (IDX_SIZE - 1);
  for (unsigned k = 0; k < IDX_SIZE; k++, i = (i + 1) & (IDX_SIZE - 1))
    if (probe(t, &t->index[i], h, pcs, n, &mine, &id)) goto done;
  id = 0;
done:
  if (!id) atomic_fetch_add_explicit(&t->full, 1, memory_order_relaxed);
  return id;
}

int cg_stacktab_get(uint32_t id, const uintptr_t **pcs)
{
  struct table *t = atomic_load_explicit(&tab, memory_order_acquire);
  const uint64_t *r = t ? record(t, id) : NULL;   /* an id never filled has no place */
  if (!r) return 0;
  *pcs = (const uintptr_t *)(r + REC_HEAD);
  return (int)r[1];
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
