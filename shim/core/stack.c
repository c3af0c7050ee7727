#include "stack.h"
#include "config.h"
#include "fdutil.h"
#include "stacktab.h"
#include "rawsys.h"
#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <stdatomic.h>
#include <string.h>
#include <sched.h>
#include <sys/auxv.h>
#include <unwind.h>
#include <sys/syscall.h>
#include <unistd.h>

/* The unwinder is libgcc's, linked into the shim (Makefile: -static-libgcc, its names kept local
 * by --exclude-libs): no library to load at the first capture (dlopen of libgcc_s cost every
 * process that made a socket 0.3-0.5 ms here), and nothing added to the program's global scope. */
static atomic_int state;            /* 0 not ready, 1 readying, 2 ready */
static __thread int loading_here;   /* this thread is inside the load (a signal handler too) */
static atomic_int loading_pid;      /* process that set state 1 */
static uintptr_t self_lo, self_hi;

static int find_self(struct dl_phdr_info *info, size_t size, void *arg)
{
  uintptr_t me = (uintptr_t)arg;
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type != PT_LOAD) continue;
    uintptr_t lo = info->dlpi_addr + ph->p_vaddr, hi = lo + ph->p_memsz;
    if (me >= lo && me < hi) {
      /* Record the whole object: lowest to highest PT_LOAD. */
      uintptr_t olo = UINTPTR_MAX, ohi = 0;
      for (int j = 0; j < info->dlpi_phnum; j++) {
        const ElfW(Phdr) *q = &info->dlpi_phdr[j];
        if (q->p_type != PT_LOAD) continue;
        uintptr_t a = info->dlpi_addr + q->p_vaddr;
        if (a < olo) olo = a;
        if (a + q->p_memsz > ohi) ohi = a + q->p_memsz;
      }
      self_lo = olo; self_hi = ohi;
      return 1;
    }
  }
  return 0;
}

int cg_addr_is_ours(uintptr_t pc) { return pc >= self_lo && pc < self_hi; }

const char *cg_stack_backend(void)
{
  return atomic_load(&state) == 2 ? "libgcc" : "none";
}

/* Readies the unwinder on the first capture (the shim's own address range), so that a process
 * that never makes a socket or fails a connect unwinds nothing. Other threads wait; the thread
 * doing it (a signal handler that interrupted it) gets no stack. */
static int unwinder_ready(void)
{
  int s = atomic_load_explicit(&state, memory_order_acquire);
  if (s == 2) return 1;
  if (loading_here) return 0;
  int expect = 0;
  if (s == 0) atomic_store(&loading_pid, (int)cg_syscall(SYS_getpid));   /* before state 1 is visible: a fork child checks it */
  if (atomic_compare_exchange_strong(&state, &expect, 1)) {
    int saved = errno;
    loading_here = 1;
    if (!self_hi) dl_iterate_phdr(find_self, (void *)(uintptr_t)&cg_addr_is_ours);
    loading_here = 0;
    errno = saved;
    atomic_store_explicit(&state, 2, memory_order_release);
    return 1;
  }
  while ((s = atomic_load_explicit(&state, memory_order_acquire)) == 1) {
    /* A fork child of a process that was loading in another thread: nobody will finish. */
    int lp = atomic_load(&loading_pid);
    if (lp && lp != (int)cg_syscall(SYS_getpid)) {
      expect = 1;
      atomic_compare_exchange_strong(&state, &expect, 0);
      return unwinder_ready();
    }
    sched_yield();
  }
  return s == 2;
}

/* ---------- call-site cache ----------
 * A full unwind costs microseconds; most stacks are made again and again from the same call
 * site at the same depth. The key is where the capture was asked from: the return address
 * into the asking function's caller (ra) and the asking function's frame address (fp, which
 * pins the stack depth and the stack itself: another thread's stack has other addresses).
 * A hit is accepted only when every return address of the cached stack is still in its slot
 * on the stack (slot = the frame's CFA - 8 on x86_64, checked when the entry is made) and no
 * library was unloaded by dlclose() since (dl_gen below): a fork child, another caller
 * with the same depth, code replaced at the same address all get a fresh capture. Several
 * stacks may be cached under one key (the ways of its set): two callers at the same depth
 * taken in turn (the two ends of a socketpair) would otherwise unwind at every call. Shared by
 * all threads, lock-free (a sequence count per entry), no allocation: signal-safe for hits.
 * docs/design.md, "Stacks", says what this cannot see.
 *
 * Sized for page faults (~11-25 us each on these VMs, several times an unwind): an entry keeps
 * no return address of the program, only where each one lies (2 bytes a frame); the expected
 * values are the interned stack's frames (stacktab, immutable once published) and, for the
 * shim's own frames, 4-byte offsets into the shim. 256 bytes, so an entry never straddles
 * a page. Entries are handed out in the order call sites first store one (a set's way keeps
 * its entry for good), so a process's first call sites share the page of the set index
 * instead of landing on a page each wherever their hash falls. */
#define CS_SETS 256                       /* power of two */
#define CS_WAYS 4
#define CS_ENTRIES (CS_SETS * CS_WAYS)
#define CS_RAW CG_STACK_RAW_MAX           /* verified frames per entry: ours + asked */
#define CS_OURS 8                         /* the shim's own frames an entry can hold */
#define CS_MAX_OFF (64u << 20)            /* a slot further than this above fp: not cached */
#define CS_OURS_BIT 0x8000u               /* in step[]: this frame is the shim's */
#define CS_STEP_MAX 0x7fffu               /* in 8-byte units: frames up to 256 KB */

struct cs_entry {
  atomic_uint seq;              /* odd while written */
  uint32_t id;                  /* stacktab id (never 0: stacks without one are not cached) */
  uintptr_t fp, ra;             /* key */
  uint32_t gen;                 /* dl_gen when made */
  uint8_t max, n, nours, lead;  /* frames asked for; raw frames verified; the shim's among them,
                                 * and how many of those come first (usually all) */
  /* Read and written a word at a time (the copy under the sequence count is most of a hit):
   * ours: the shim's return addresses minus self_lo, uint32_t each; step: slot - previous
   * slot (fp first) in 8-byte units, | CS_OURS_BIT, uint16_t each. */
  uint64_t ours[CS_OURS / 2];
  uint64_t step[96 / 4];
};
_Static_assert(sizeof(struct cs_entry) == 256, "one entry, one eighth of half a page");
_Static_assert(CS_RAW <= 96 && CG_MAX_STACK < 256, "frames per entry");
/* Every slot an entry names lies within this of fp: no bound to check on a hit. */
_Static_assert((uint64_t)CS_RAW * CS_STEP_MAX * 8 < CS_MAX_OFF, "steps stay near fp");

/* .bss: only the pages entries land on cost memory. way[s][w] is 1 + the entry that way w of
 * set s uses, 0 before its first store; the first 8 entries share the index's page. */
static struct {
  _Atomic uint16_t way[CS_SETS][CS_WAYS];
  struct cs_entry e[CS_ENTRIES];
} cs __attribute__((aligned(4096)));
static atomic_uint cs_next;     /* entries handed out */
static atomic_ulong cs_hits, cs_misses, cs_moved, cs_unloaded, cs_uncacheable;

/* Entry fields: acquire loads (a reader's later re-check of seq cannot move before them) and
 * release stores (a writer's stores cannot move before its odd seq); plain moves on x86, and
 * no fences, which TSan cannot model. */
#define LD(x) __atomic_load_n(&(x), __ATOMIC_ACQUIRE)
#define ST(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELEASE)

/* The loader's unload count (dl_iterate_phdr's dlpi_subs, global: the first object is enough). */
static int subs_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
  *(unsigned long *)arg = (unsigned long)info->dlpi_subs;
  return 1;
}

static unsigned long dl_subs(void)
{
  unsigned long g = 0;
  dl_iterate_phdr(subs_cb, &g);
  return g;
}

/* Unloads as the dlclose() hook sees them: a lookup reads two words instead of walking the
 * loader's list under its lock (dl_iterate_phdr, ~150 instructions, twice per request of a
 * client that connects non-blocking). dl_gen counts dlclose() calls that unloaded something
 * (dlpi_subs moved across the call: a dlclose that only drops a reference keeps the cache);
 * dl_busy counts dlclose() calls under way, during which nothing is read from or written to
 * the cache: from the munmap to the count's bump another thread may already run a library
 * mapped at the same address. What this cannot see: docs/design.md, "Stacks". */
static atomic_uint dl_busy, dl_gen;

/* A fork child has only the forking thread: a dlclose another thread was in never ends there,
 * and its unload (maybe done, not yet counted) is counted now. */
void cg_stack_after_fork_child(void)
{
  if (atomic_load_explicit(&dl_busy, memory_order_relaxed)) {
    atomic_store_explicit(&dl_busy, 0, memory_order_relaxed);
    atomic_fetch_add_explicit(&dl_gen, 1, memory_order_relaxed);
  }
}

unsigned long cg_stack_unload_begin(void)
{
  atomic_fetch_add(&dl_busy, 1);
  int e = errno;
  unsigned long subs = dl_subs();
  errno = e;
  return subs;
}

void cg_stack_unload_end(unsigned long token)
{
  int e = errno;
  if (dl_subs() != token) atomic_fetch_add_explicit(&dl_gen, 1, memory_order_release);
  errno = e;
  atomic_fetch_sub_explicit(&dl_busy, 1, memory_order_release);
}

static unsigned cs_hash(uintptr_t fp, uintptr_t ra)
{
  uint64_t h = (uint64_t)fp * 0x9e3779b97f4a7c15ULL ^ (uint64_t)ra * 0xc2b2ae3d27d4eb4fULL;
  return (unsigned)(h >> 40) & (CS_SETS - 1);
}

/* Program frames of a raw stack. */
static int cs_pcs(const uintptr_t *val, const uint64_t ours[2], int n, uintptr_t *pcs, int max)
{
  int out = 0;
  for (int i = 0; i < n && out < max; i++)
    if (!(ours[i / 64] >> (i % 64) & 1)) pcs[out++] = val[i];
  return out;
}

/* Reading the caller's return-address slots is the point: not a stack overflow for ASan. */
#define CG_READS_FRAMES __attribute__((no_sanitize_address))

/* Per thread, by set: the way of the last hit, looked at first. A key with several stacks
 * (two callers at the same depth, or one seen once at start-up) mostly asks for the same one
 * again: refusing another first costs a copy and a walk of its frames. A hint only: a signal
 * handler's capture may change it under us. */
#define CS_MEMO 64
static __thread unsigned char cs_last[CS_MEMO];

/* Whether every return address of an entry is still in its slot. Slots ascend from fp: all
 * lie in this thread's live stack as long as the frames below match (the first mismatch stops
 * the walk). Apart from the lookup: few enough live values to stay in registers. */
CG_READS_FRAMES __attribute__((noinline)) static int cs_verify(uintptr_t at, const uint16_t *step, unsigned n, unsigned lead,
                                                             unsigned nours, const uint32_t *ours, uintptr_t lo,
                                                             const uintptr_t *prog)
{
  unsigned i = 0;
  for (; i < lead; i++) {
    at += (uintptr_t)(step[i] & CS_STEP_MAX) * 8;
    if (*(const uintptr_t *)at != lo + ours[i]) return 0;
  }
  if (lead == nours) {   /* the program's frames only: no flag to test */
    for (; i < n; i++) {
      at += (uintptr_t)step[i] * 8;
      if (*(const uintptr_t *)at != *prog++) return 0;
    }
    return 1;
  }
  for (ours += lead; i < n; i++) {
    unsigned st = step[i];
    at += (uintptr_t)(st & CS_STEP_MAX) * 8;
    uintptr_t want = st & CS_OURS_BIT ? lo + *ours++ : *prog++;
    if (*(const uintptr_t *)at != want) return 0;
  }
  return 1;
}

/* The id (and pcs[0..*npcs) when pcs is given) of a verified hit; 0 for none (an entry always
 * has an id). */
CG_READS_FRAMES static uint32_t cs_lookup(uintptr_t fp, uintptr_t ra, int max, uint32_t gen, uintptr_t *pcs, int *npcs)
{
  unsigned h = cs_hash(fp, ra), first = cs_last[h % CS_MEMO];
  for (unsigned k = 0; k < CS_WAYS; k++) {
    unsigned w = (first + k) % CS_WAYS, slot = LD(cs.way[h][w]);
    if (!slot || slot > CS_ENTRIES) continue;
    struct cs_entry *e = &cs.e[slot - 1];
    unsigned s1 = atomic_load_explicit(&e->seq, memory_order_acquire);
    if ((s1 & 1) || LD(e->fp) != fp || LD(e->ra) != ra) continue;
    /* Copied, then the sequence re-checked, before anything read here is dereferenced. */
    union { uint64_t w[CS_RAW / 4]; uint16_t s[CS_RAW]; } step;
    union { uint64_t w[CS_OURS / 2]; uint32_t o[CS_OURS]; } ours;
    uint32_t egen = LD(e->gen), eid = LD(e->id);
    unsigned n = LD(e->n), nours = LD(e->nours), lead = LD(e->lead), emax = LD(e->max);
    if (n > CS_RAW || nours > CS_OURS || lead > nours) continue;
    for (unsigned i = 0; i < CS_OURS / 2; i++) ours.w[i] = LD(e->ours[i]);   /* no loop: most are needed */
    for (unsigned i = 0; i < (n + 3) / 4; i++) step.w[i] = LD(e->step[i]);
    if (atomic_load_explicit(&e->seq, memory_order_relaxed) != s1) continue;
    /* Not this one: another way may hold another stack seen from the same key (two callers
     * at the same depth, taken in turn, must not evict each other at every call). */
    if (emax != (unsigned)max) continue;
    if (egen != gen) { atomic_fetch_add_explicit(&cs_unloaded, 1, memory_order_relaxed); continue; }
    const uintptr_t *prog;
    int np = cg_stacktab_get(eid, &prog);
    if (np != (int)(n - nours)) continue;
    if (!cs_verify(fp, step.s, n, lead, nours, ours.o, self_lo, prog)) {
      atomic_fetch_add_explicit(&cs_moved, 1, memory_order_relaxed);
      continue;
    }
    cs_last[h % CS_MEMO] = (unsigned char)w;
    if (pcs) {
      memcpy(pcs, prog, sizeof *prog * (size_t)np);
      *npcs = np;
    }
    atomic_fetch_add_explicit(&cs_hits, 1, memory_order_relaxed);
    return eid;
  }
  return 0;
}

/* The entry way w of set h uses, handed one on its first store; NULL when none is left (only
 * after races wasted some: there is one per way). */
static struct cs_entry *cs_way_entry(unsigned h, unsigned w)
{
  unsigned slot = LD(cs.way[h][w]);
  if (!slot) {
    unsigned mine = atomic_fetch_add_explicit(&cs_next, 1, memory_order_relaxed) + 1;
    if (mine > CS_ENTRIES) return NULL;
    uint16_t expect = 0;
    if (atomic_compare_exchange_strong_explicit(&cs.way[h][w], &expect, (uint16_t)mine,
                                                memory_order_acq_rel, memory_order_acquire))
      slot = mine;
    else
      slot = expect;   /* another thread gave this way its entry first; ours stays unused */
  }
  return slot <= CS_ENTRIES ? &cs.e[slot - 1] : NULL;
}

/* A verified raw stack as an entry's fields; 0 when it does not fit one. */
struct cs_made {
  uint8_t n, nours, lead;
  union { uint64_t w[CS_OURS / 2]; uint32_t o[CS_OURS]; } ours;
  union { uint64_t w[CS_RAW / 4]; uint16_t s[CS_RAW]; } step;
};

static int cs_make(uintptr_t fp, const uintptr_t *val, const uint32_t *off, const uint64_t bits[2], int n, struct cs_made *m)
{
  uintptr_t prev = 0;
  memset(m, 0, sizeof *m);
  m->n = (uint8_t)n;
  for (int i = 0; i < n; i++) {
    uintptr_t d = off[i] - prev;
    prev = off[i];
    if (d % 8 || d / 8 > CS_STEP_MAX) return 0;
    m->step.s[i] = (uint16_t)(d / 8);
    if (bits[i / 64] >> (i % 64) & 1) {
      if (m->nours >= CS_OURS || val[i] - self_lo > UINT32_MAX) return 0;
      if (m->lead == i) m->lead++;
      m->ours.o[m->nours++] = (uint32_t)(val[i] - self_lo);
      m->step.s[i] |= CS_OURS_BIT;
    }
  }
  return 1;
}

static void cs_store(uintptr_t fp, uintptr_t ra, int max, uint32_t gen, uint32_t id, const struct cs_made *m)
{
  unsigned h = cs_hash(fp, ra);
  int victim = -1, empty = -1;
  for (int w = 0; w < CS_WAYS; w++) {
    unsigned slot = LD(cs.way[h][w]);
    struct cs_entry *e = slot && slot <= CS_ENTRIES ? &cs.e[slot - 1] : NULL;
    uintptr_t efp = e ? LD(e->fp) : 0;
    /* Same key, made before an unload or for another depth: of no use any more, replaced.
     * Same key and still valid (another caller at this depth): kept beside this one. */
    if (e && efp == fp && LD(e->ra) == ra && (LD(e->gen) != gen || LD(e->max) != (unsigned)max)) { victim = w; break; }
    if (empty < 0 && !efp) empty = w;
  }
  if (victim < 0) victim = empty;
  if (victim < 0) {
    unsigned turn = (unsigned)atomic_load_explicit(&cs_misses, memory_order_relaxed);
    victim = (int)(((fp >> 4) + turn) % CS_WAYS);
  }
  struct cs_entry *e = cs_way_entry(h, (unsigned)victim);
  if (!e) return;
  unsigned s = atomic_load_explicit(&e->seq, memory_order_relaxed);
  /* Someone (another thread, or the code this signal handler interrupted) is writing it. */
  if ((s & 1) || !atomic_compare_exchange_strong_explicit(&e->seq, &s, s + 1, memory_order_acquire,
                                                          memory_order_relaxed))
    return;
  ST(e->fp, fp); ST(e->ra, ra); ST(e->gen, gen); ST(e->id, id);
  ST(e->max, (uint8_t)max); ST(e->n, m->n); ST(e->nours, m->nours); ST(e->lead, m->lead);
  for (unsigned i = 0; i < (m->nours + 1u) / 2; i++) ST(e->ours[i], m->ours.w[i]);
  for (unsigned i = 0; i < (m->n + 3u) / 4; i++) ST(e->step[i], m->step.w[i]);
  atomic_store_explicit(&e->seq, s + 2, memory_order_release);
}

/* One full unwind: the frames above fp (the asking function's callers), until max frames
 * outside the shim or the end of the unwind tables. */
struct walk {
  uintptr_t fp;
  int n, prog, max, cacheable;
  uint64_t ours[2];
  uintptr_t val[CS_RAW];
  uint32_t off[CS_RAW];
};

CG_READS_FRAMES static _Unwind_Reason_Code walk_step(struct _Unwind_Context *ctx, void *arg)
{
  struct walk *w = arg;
  uintptr_t pc = _Unwind_GetIP(ctx);
  if (!pc) return _URC_END_OF_STACK;
  uintptr_t slot = (uintptr_t)_Unwind_GetCFA(ctx) - sizeof(uintptr_t);
  if (slot <= w->fp) return _URC_NO_REASON;     /* the capture's own frames */
  if (w->n >= CS_RAW) return _URC_END_OF_STACK;
#if defined(__x86_64__)
  /* Where the call put this return address; otherwise (a signal frame: the interrupted pc
   * comes from the kernel's context) the stack is reported but not cached. */
  if (slot - w->fp >= CS_MAX_OFF || *(const uintptr_t *)slot != pc) w->cacheable = 0;
#else
  w->cacheable = 0;
#endif
  int i = w->n++;
  w->val[i] = pc;
  w->off[i] = (uint32_t)(slot - w->fp);
  if (cg_addr_is_ours(pc)) {
    w->ours[i / 64] |= 1ULL << (i % 64);
  } else if (++w->prog >= w->max) {
    return _URC_END_OF_STACK;
  }
  return _URC_NO_REASON;
}

/* The cached or freshly captured stack asked for from frame fp, returning to ra: its
 * stacktab id, and its frames when pcs is given. */
__attribute__((noinline)) static uint32_t stack_miss(uintptr_t fp, uintptr_t ra, int max, uintptr_t *pcs, int *npcs,
                                                     int64_t gen);

__attribute__((noinline)) static uint32_t stack_at(uintptr_t fp, uintptr_t ra, int max, uintptr_t *pcs, int *npcs)
{
  if (npcs) *npcs = 0;
  if (max <= 0 || !unwinder_ready()) return 0;
  if (max > CG_MAX_STACK) max = CG_MAX_STACK;
  /* busy first: a count of 0 read after an unload's end makes its bump of dl_gen visible. */
  int busy = atomic_load_explicit(&dl_busy, memory_order_acquire) != 0;
  uint32_t gen = atomic_load_explicit(&dl_gen, memory_order_acquire);
  uint32_t id = busy ? 0 : cs_lookup(fp, ra, max, gen, pcs, npcs);
  if (id) return id;
  /* A tail call (no local's address taken here): no frame more for the unwind to walk. */
  return stack_miss(fp, ra, max, pcs, npcs, busy ? -1 : (int64_t)gen);
}

/* A full unwind, interned, and cached under gen unless gen < 0 (a dlclose under way): apart,
 * so that a hit saves and restores few registers. */
__attribute__((noinline)) static uint32_t stack_miss(uintptr_t fp, uintptr_t ra, int max, uintptr_t *pcs, int *npcs,
                                                     int64_t gen)
{
  uint32_t id;
  int n;
  atomic_fetch_add_explicit(&cs_misses, 1, memory_order_relaxed);
  struct walk w;
  w.fp = fp; w.n = 0; w.prog = 0; w.max = max; w.cacheable = 1; w.ours[0] = w.ours[1] = 0;
  _Unwind_Backtrace(walk_step, &w);
  uintptr_t mine[CG_MAX_STACK];
  if (!pcs) pcs = mine;
  n = cs_pcs(w.val, w.ours, w.n, pcs, max);
  if (npcs) *npcs = n;
  id = cg_stacktab_intern(pcs, n);
  /* Without an id (the table full) nothing holds the frames a hit would check against. */
  struct cs_made m;
  if (w.cacheable && gen >= 0 && id && w.n > 0 && cs_make(fp, w.val, w.off, w.ours, w.n, &m))
    cs_store(fp, ra, max, (uint32_t)gen, id, &m);
  else
    atomic_fetch_add_explicit(&cs_uncacheable, 1, memory_order_relaxed);
  return id;
}

__attribute__((noinline)) int cg_stack_capture(uintptr_t *pcs, int max)
{
  int n = 0;
  stack_at((uintptr_t)__builtin_frame_address(0), (uintptr_t)__builtin_return_address(0), max, pcs, &n);
  return n;
}

__attribute__((noinline)) uint32_t cg_stack_id_here(int max)
{
  return stack_at((uintptr_t)__builtin_frame_address(0), (uintptr_t)__builtin_return_address(0), max, NULL, NULL);
}

void cg_stack_cache_counts(struct cg_stack_counts *c)
{
  c->hits = atomic_load(&cs_hits);
  c->misses = atomic_load(&cs_misses);
  c->moved = atomic_load(&cs_moved);
  c->unloaded = atomic_load(&cs_unloaded);
  c->uncacheable = atomic_load(&cs_uncacheable);
}

void cg_stack_set_self(uintptr_t lo, uintptr_t hi)
{
  self_lo = lo;
  self_hi = hi;
}

static char exe_path[512];

/* Load base of the main program (its program headers lie in its first mapping). */
static void *main_base(void)
{
  static void *base;
  Dl_info mi;
  if (!base && dladdr((void *)getauxval(AT_PHDR), &mi)) base = mi.dli_fbase;
  return base;
}

void cg_stack_symbolize(uintptr_t pc, struct cg_frame *f)
{
  Dl_info di;
  memset(f, 0, sizeof *f);
  f->pc = pc;
  f->module = "?";
  /* A return address points after the call; look up pc-1 so the call's function is named. */
  if (pc && dladdr((void *)(pc - 1), &di)) {
    f->offset = pc - (uintptr_t)di.dli_fbase;
    /* glibc names the main program by argv[0] ("curl", "./app"): give its real path instead,
     * so that the frame still resolves from another directory. */
    if (di.dli_fname && strchr(di.dli_fname, '/') && (di.dli_fname[0] == '/' || di.dli_fbase != main_base())) {
      f->module = di.dli_fname;
    } else {
      if (!exe_path[0]) {
        ssize_t n = readlink("/proc/self/exe", exe_path, sizeof exe_path - 1);
        if (n > 0) exe_path[n] = 0; else strcpy(exe_path, "(main)");
      }
      f->module = exe_path;
    }
    if (di.dli_sname && di.dli_saddr) {
      f->symbol = di.dli_sname;
      f->sym_off = pc - (uintptr_t)di.dli_saddr;
    }
  }
}
