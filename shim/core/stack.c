#include "stack.h"
#include "fdutil.h"
#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <stdatomic.h>
#include <string.h>
#include <sched.h>
#include <sys/auxv.h>
#include <unwind.h>
#include <unistd.h>

typedef _Unwind_Reason_Code (*bt_fn)(_Unwind_Trace_Fn, void *);
typedef _Unwind_Ptr (*getip_fn)(struct _Unwind_Context *);

/* libgcc_s entry points, resolved once. */
static bt_fn ug_backtrace;
static getip_fn ug_getip;
static atomic_int state;            /* 0 not loaded, 1 loading, 2 ready, 3 unavailable */
static __thread int loading_here;   /* this thread is inside the load (a signal handler too) */
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

/* Loads libgcc_s privately on the first capture, so that a process that never makes a socket
 * or fails a connect loads and unwinds nothing. Programs that use C++ or pthread_cancel have it
 * mapped already (dlopen then only takes a reference). Other threads wait for the load; the
 * loading thread itself (a signal handler that interrupted it) gets no stack. */
static int unwinder_ready(void)
{
  int s = atomic_load_explicit(&state, memory_order_acquire);
  if (s == 2) return 1;
  if (s == 3 || loading_here) return 0;
  int expect = 0;
  if (atomic_compare_exchange_strong(&state, &expect, 1)) {
    int saved = errno;
    loading_here = 1;
    dl_iterate_phdr(find_self, (void *)(uintptr_t)&cg_addr_is_ours);
    void *h = dlopen("libgcc_s.so.1", RTLD_LAZY | RTLD_LOCAL);
    if (h) {
      ug_backtrace = (bt_fn)dlsym(h, "_Unwind_Backtrace");
      ug_getip = (getip_fn)dlsym(h, "_Unwind_GetIP");
    }
    int ok = ug_backtrace && ug_getip;
    if (!ok) (void)dlerror();   /* the failure is ours: the program's next dlerror() must not report it */
    loading_here = 0;
    errno = saved;
    atomic_store_explicit(&state, ok ? 2 : 3, memory_order_release);
    return ok;
  }
  while ((s = atomic_load_explicit(&state, memory_order_acquire)) == 1) sched_yield();
  return s == 2;
}

/* One walk: frames kept in pcs (ours skipped) until max of them or the end of the tables. */
struct walk {
  uintptr_t *pcs;
  int n, max, raw;
};

static _Unwind_Reason_Code walk_step(struct _Unwind_Context *ctx, void *arg)
{
  struct walk *w = arg;
  uintptr_t pc = ug_getip(ctx);
  if (!pc) return _URC_END_OF_STACK;
  if (++w->raw > CG_STACK_RAW_MAX) return _URC_END_OF_STACK;
  if (!cg_addr_is_ours(pc)) {
    w->pcs[w->n++] = pc;
    if (w->n >= w->max) return _URC_END_OF_STACK;
  }
  return _URC_NO_REASON;
}

int cg_stack_capture(uintptr_t *pcs, int max)
{
  if (max <= 0 || !unwinder_ready()) return 0;
  struct walk w = { pcs, 0, max, 0 };
  ug_backtrace(walk_step, &w);
  return w.n;
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
