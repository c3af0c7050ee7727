#include "stack.h"
#include "fdutil.h"
#include <dlfcn.h>
#include <execinfo.h>
#include <link.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef int (*unw_backtrace_fn)(void **buf, int size);

static unw_backtrace_fn unw_bt;
static atomic_int backend;          /* 0 none, 1 libunwind, 2 backtrace */
static uintptr_t self_lo, self_hi;
__thread int cg_in_unwind;

/* libunwind's validation pipe, as moved high by our pipe2 hook, with identities. */
atomic_int cg_upipe[2] = { -1, -1 };   /* stack.h */
static dev_t upipe_dev[2];
static ino_t upipe_ino[2];
static atomic_int upipe_closed;     /* the program closed one of them */

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
  switch (atomic_load(&backend)) {
  case 1: return "libunwind";
  case 2: return "backtrace";
  default: return "none";
  }
}

void cg_stack_note_pipe(int fds[2])
{
  struct stat st;
  for (int i = 0; i < 2; i++) {
    if (fstat(fds[i], &st) == 0) { upipe_dev[i] = st.st_dev; upipe_ino[i] = st.st_ino; }
    atomic_store(&cg_upipe[i], fds[i]);
  }
  atomic_store(&upipe_closed, 0);
}

void cg_stack_pipe_closed(void)
{
  atomic_store(&upipe_closed, 1);
}

/* libunwind may read and write its pipe during an unwind. Only unwind while both numbers are
 * still that pipe, or free (libunwind then reopens it, high, through our pipe2 hook). */
static int upipe_safe(void)
{
  struct stat st;
  for (int i = 0; i < 2; i++) {
    int f = atomic_load(&cg_upipe[i]);
    if (f < 0) continue;
    if (fstat(f, &st) != 0) continue;                 /* free: libunwind reopens */
    if (st.st_dev != upipe_dev[i] || st.st_ino != upipe_ino[i]) return 0;  /* reused by the program */
  }
  return 1;
}

void cg_stack_init(void)
{
  static atomic_int done;
  if (atomic_exchange(&done, 1)) return;
  dl_iterate_phdr(find_self, (void *)(uintptr_t)&cg_stack_init);
  void *h = dlopen("libunwind.so.8", RTLD_LAZY | RTLD_LOCAL);
  if (h) unw_bt = (unw_backtrace_fn)dlsym(h, "unw_backtrace");
  if (unw_bt) {
    void *warm[4];
    cg_in_unwind = 1;
    unw_bt(warm, 4);   /* opens libunwind's pipe now, through our pipe2 hook */
    cg_in_unwind = 0;
    atomic_store(&backend, 1);
  } else {
    void *warm[4];
    backtrace(warm, 4);  /* loads libgcc_s now rather than inside a hook later */
    atomic_store(&backend, 2);
  }
}

int cg_stack_capture(uintptr_t *pcs, int max)
{
  void *raw[CG_STACK_RAW_MAX];
  int n = 0, b = atomic_load(&backend);
  if (max <= 0 || b == 0) return 0;
  int want = max + 8 < CG_STACK_RAW_MAX ? max + 8 : CG_STACK_RAW_MAX;
  if (b == 1 && atomic_load(&upipe_closed) && !upipe_safe()) {
    /* The program reused libunwind's pipe numbers: never let it touch them again. */
    atomic_store(&backend, 2);
    b = 2;
  }
  if (b == 1) {
    cg_in_unwind = 1;
    n = unw_bt(raw, want);
    cg_in_unwind = 0;
  } else {
    n = backtrace(raw, want);
  }
  int out = 0;
  for (int i = 0; i < n && out < max; i++) {
    uintptr_t pc = (uintptr_t)raw[i];
    if (!pc || cg_addr_is_ours(pc)) continue;
    pcs[out++] = pc;
  }
  return out;
}

static char exe_path[512];

void cg_stack_symbolize(uintptr_t pc, struct cg_frame *f)
{
  Dl_info di;
  memset(f, 0, sizeof *f);
  f->pc = pc;
  f->module = "?";
  /* A return address points after the call; look up pc-1 so the call's function is named. */
  if (pc && dladdr((void *)(pc - 1), &di)) {
    f->offset = pc - (uintptr_t)di.dli_fbase;
    /* glibc names the main program by argv[0] ("curl"): give its real path instead. */
    if (di.dli_fname && strchr(di.dli_fname, '/')) {
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
