#include "stats.h"
#include "startup.h"
#include "log.h"
#include "shm.h"
#include "policy.h"
#include "fmt.h"
#include "clock.h"
#include "rawsys.h"
#include <dirent.h>
#include <errno.h>
#include <sched.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* Page-aligned: the head (one page) is then one page to fault in, not two, when publishing
 * copies it. */
static struct cg_stats private_stats __attribute__((aligned(4096)));
struct cg_stats *_Atomic cg_stats = &private_stats;
atomic_uint cg_stats_gen CG_STARTUP_DATA;   /* written when publishing: see published_path */
static uint32_t leak_mode_v CG_STARTUP_DATA, leak_age_v CG_STARTUP_DATA;

/* Everything before leaks[]: the slots and stacks are only ever written in a published segment,
 * so copies and resets leave them alone (touching them would cost each process a megabyte of
 * shm). */
#define CG_STATS_HEAD offsetof(struct cg_stats, leaks)

/* Which 4 KiB pages of the current segment are reserved (cg_stats_room); all ones while the
 * counters are private memory. */
_Atomic uint64_t cg_stats_backed[CG_STATS_PAGE_WORDS] = { [0 ... CG_STATS_PAGE_WORDS - 1] = ~0ULL };

static void backed_all(void)
{
  for (int i = 0; i < CG_STATS_PAGE_WORDS; i++) atomic_store_explicit(&cg_stats_backed[i], ~0ULL, memory_order_relaxed);
}
static void backed_head(void)
{
  for (int i = 0; i < CG_STATS_PAGE_WORDS; i++) atomic_store_explicit(&cg_stats_backed[i], 0, memory_order_relaxed);
  for (size_t p = 0; p <= (CG_STATS_HEAD - 1) / CG_STATS_PAGE; p++)
    atomic_fetch_or_explicit(&cg_stats_backed[p / 64], 1ULL << (p % 64), memory_order_relaxed);
}

int cg_stats_room_slow(const void *p, size_t n)
{
  struct cg_stats *s = cg_stats;
  size_t off = (size_t)((const char *)p - (const char *)s);
  size_t a = off / CG_STATS_PAGE, b = (off + n - 1) / CG_STATS_PAGE;
  if (s == &private_stats) return 1;
  if (cg_shm_reserve((char *)s + a * CG_STATS_PAGE, (b - a + 1) * CG_STATS_PAGE) != 0) return 0;
  for (size_t q = a; q <= b; q++)
    atomic_fetch_or_explicit(&cg_stats_backed[q / 64], 1ULL << (q % 64), memory_order_relaxed);
  return 1;
}

__attribute__((cold)) void cg_stats_set_leak(uint32_t mode, uint32_t age_ms)
{
  leak_mode_v = mode;
  leak_age_v = age_ms;
  /* The private copy is never read for these (publishing writes them): at start-up, no page. */
  if (cg_stats == &private_stats) return;
  cg_stats->leak_mode = mode;
  cg_stats->leak_age_ms = age_ms;
}

void cg_stats_path(char *out, unsigned cap, uid_t uid, pid_t pid)
{
  /* Not snprintf: its first call in a process costs more than the rest of publishing. */
  struct cg_buf b;
  cg_buf_init(&b, out, cap);
  cg_buf_puts(&b, "/dev/shm/connguard.");
  cg_buf_u64(&b, (unsigned)uid);
  cg_buf_putc(&b, '.');
  cg_buf_i64(&b, (int)pid);
  cg_buf_str(&b);
}

/* Everything but the magic: readers trust nothing until it appears (written last). */
static void fill_header(struct cg_stats *s, pid_t pid, uid_t uid)
{
  struct timespec ts;
  s->version = CG_STATS_VERSION;
  s->size = sizeof *s;
  s->pid = pid;
  s->uid = uid;
  clock_gettime(CLOCK_REALTIME, &ts);
  if (!s->start_ns) s->start_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
  ssize_t n = readlink("/proc/self/exe", s->exe, sizeof s->exe - 1);
  s->exe[n > 0 ? n : 0] = 0;
  s->leak_mode = leak_mode_v;
  s->leak_age_ms = leak_age_v;
}

/* ---- segments of dead processes ---- */

/* "connguard.<uid>.<pid>" with our uid: the pid, else 0. */
static pid_t seg_name_pid(const char *name, unsigned uid)
{
  if (strncmp(name, "connguard.", 10)) return 0;
  const char *p = name + 10;
  unsigned long long u = 0, v = 0;
  int nd = 0;
  for (; *p >= '0' && *p <= '9' && nd < 11; p++, nd++) u = u * 10 + (unsigned)(*p - '0');
  if (!nd || *p != '.' || u != uid) return 0;
  p++;
  nd = 0;
  for (; *p >= '0' && *p <= '9' && nd < 11; p++, nd++) v = v * 10 + (unsigned)(*p - '0');
  if (!nd || *p || v > 0x7fffffffULL) return 0;
  return (pid_t)v;
}

struct linux_dirent64_ {
  uint64_t d_ino;
  int64_t d_off;
  unsigned short d_reclen;
  unsigned char d_type;
  char d_name[];
};

static unsigned reap(unsigned max_checks, unsigned max_batches, unsigned uid, pid_t me)
{
  /* Static: only ever called by one thread at a time (publication is once per process, the
   * tool is single-threaded), and a hook may run on a small thread stack. */
  /* One page, page-aligned: each page is one fault when first touched (~10 us on some VMs). */
  static char buf[4096] __attribute__((aligned(4096)));
  unsigned removed = 0, checks = 0;
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  int dfd = (int)cg_syscall(SYS_openat, AT_FDCWD, "/dev/shm", O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
  if (dfd < 0) return 0;
  for (unsigned batch = 0; batch < max_batches && checks < max_checks; batch++) {
    long n = cg_syscall(SYS_getdents64, dfd, buf, sizeof buf);
    if (n <= 0) break;
    for (long off = 0; off < n && checks < max_checks;) {
      struct linux_dirent64_ *d = (struct linux_dirent64_ *)(buf + off);
      off += d->d_reclen;
      pid_t pid = seg_name_pid(d->d_name, uid);
      if (pid <= 0 || pid == me) continue;
      checks++;
      if (d->d_type != DT_UNKNOWN && d->d_type != DT_REG) continue;
      /* Most names are live processes' (every process of the user under the shim has one): one
       * system call settles those. */
      if (kill(pid, 0) == 0 || errno != ESRCH) continue;
      struct stat a, b;
      /* Our own regular files only: another user's name with our uid in it is not ours. */
      if (fstatat(dfd, d->d_name, &a, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(a.st_mode) || a.st_uid != uid) continue;
      /* A modification time in the future was set on purpose (a segment kept for study, the
       * tool's tests): `connguard clean` judges those, not every starting process. */
      if (a.st_mtim.tv_sec > now.tv_sec + 60) continue;
      /* Asked again now that we know which file it is: the process that had this pid when we
       * looked at the file is gone too. */
      if (kill(pid, 0) == 0 || errno != ESRCH) continue;
      /* Dead. A new process that got the pid meanwhile would have made a new file: remove only
       * the one we looked at. */
      if (fstatat(dfd, d->d_name, &b, AT_SYMLINK_NOFOLLOW) != 0 || b.st_ino != a.st_ino) continue;
      if (unlinkat(dfd, d->d_name, 0) == 0) removed++;
    }
  }
  cg_syscall(SYS_close, dfd);
  return removed;
}

unsigned cg_stats_reap(unsigned max_checks, unsigned max_batches)
{
  return reap(max_checks, max_batches, (unsigned)geteuid(), getpid());
}

/* ---- publication ---- */

/* The name carries the uid that owns the file (the effective one: a setuid program's segment
 * belongs to its owner, and the tool finds it by the reader's euid). Kept for the unlink: the
 * program may change its uid later. */
/* This and the other variables that publishing writes live with start-up's data, on a page
 * every process has touched already: on a page of .bss of their own they cost a page fault
 * (~10-25 us here) in each process that makes a socket. 64: "/dev/shm/connguard.<uid>.<pid>"
 * is at most 41 bytes. */
static char published_path[64] CG_STARTUP_DATA;
/* Read without the lock by cg_stats_publish's fast check; written under publish_busy, after
 * cg_stats (release: a thread that sees its pid sees the segment). */
static atomic_int published_pid CG_STARTUP_DATA;  /* read at every exit; the file at published_path is this process's */
static pid_t mapped_pid CG_STARTUP_DATA;   /* cg_stats is a shared mapping made by this pid */
static atomic_int publish_busy CG_STARTUP_DATA;   /* the publication lock (never waited for by its holder) */
static __thread int publish_mine; /* this thread holds publish_busy: a signal handler's socket */
static int warned;
atomic_int cg_stats_pending CG_STARTUP_DATA;
atomic_int cg_stats_exec_pending;

/* The head's counters, read one word at a time: other threads may be adding to them while we
 * copy (a plain memcpy would race with their atomic increments). */
static void copy_words(void *dst, const void *src, size_t len)
{
  uint64_t *d = dst;
  const uint64_t *s = src;
  for (size_t i = 0; i < len / 8; i++) d[i] = __atomic_load_n(&s[i], __ATOMIC_RELAXED);
}

/* Another thread is publishing: wait until it is done (a bounded job: one directory read, one
 * file), so that what this thread records next lands in the shared segment, not in the private
 * counters being left behind. Bounded in turn: a holder stopped for good costs one second. */
static void wait_publisher(void)
{
  int64_t end = cg_mono_ns() + 1000000000LL;
  while (atomic_load_explicit(&publish_busy, memory_order_acquire) && cg_mono_ns() < end) sched_yield();
}

static void warn_private(const char *path, int status, int err)
{
  if (warned) return;
  warned = 1;
  char line[320];
  struct cg_buf b;
  cg_buf_init(&b, line, sizeof line);
  cg_buf_puts(&b, "connguard: warning: ");
  cg_buf_puts(&b, path);
  if (status == CG_SHM_SQUATTED) cg_buf_puts(&b, " exists and is not ours (another user's file, or not a regular file): left alone");
  else {
    cg_buf_puts(&b, status == CG_SHM_NOSPACE ? ": no room in /dev/shm (" : ": cannot create (");
    const char *n = cg_errno_name(err);
    if (n) cg_buf_puts(&b, n);
    else { cg_buf_puts(&b, "errno "); cg_buf_i64(&b, err); }
    cg_buf_putc(&b, ')');
  }
  cg_buf_puts(&b, "; live counters stay private to the process (connguard stat/top/metrics/leaks cannot see it)\n");
  cg_log_warning(b.p, b.len);
}

void cg_stats_publish(void)
{
  char path[sizeof published_path];
  pid_t pid = getpid();
  if (atomic_load_explicit(&published_pid, memory_order_acquire) == pid) {
    atomic_store_explicit(&cg_stats_pending, 0, memory_order_relaxed);
    return;
  }
  if (publish_mine) return;   /* a signal handler interrupted our own publication: stay pending */
  if (atomic_exchange_explicit(&publish_busy, 1, memory_order_acquire)) {
    wait_publisher();   /* the other thread publishes; we stay pending until it has */
    return;
  }
  /* Two threads' first sockets at once: the other one may have published between our check
   * and our lock; publishing again would replace (and unmap) the segment in use. */
  if (atomic_load_explicit(&published_pid, memory_order_relaxed) == pid) {
    atomic_store_explicit(&cg_stats_pending, 0, memory_order_relaxed);
    atomic_store_explicit(&publish_busy, 0, memory_order_release);
    return;
  }
  publish_mine = 1;
  int save = errno;
  uid_t uid = geteuid();
  cg_stats_path(path, sizeof path, uid, pid);
  /* Bounded: one directory read, a few checks (the rest is left to later processes). */
  reap(16, 1, (unsigned)uid, pid);
  int status, err;
  struct cg_stats *s = cg_shm_create(path, sizeof(struct cg_stats), CG_STATS_HEAD, CG_SHM_REPLACE | CG_SHM_POPULATE,
                                     &status, &err);
  if (!s) {
    warn_private(path, status, err);
    atomic_store_explicit(&cg_stats_pending, 0, memory_order_relaxed);
    publish_mine = 0;
    atomic_store_explicit(&publish_busy, 0, memory_order_release);
    errno = save;
    return;
  }
  struct cg_stats *old = cg_stats;
  int from_map = old != &private_stats && mapped_pid == pid;
  /* Counters gathered before publishing carry over; the header goes last so that readers
   * never see a valid magic on a half-filled segment. */
  copy_words((char *)s + 16, (char *)old + 16, (from_map ? CG_STATS_PAGE : CG_STATS_HEAD) - 16);
  if (from_map) {
    /* Our earlier segment, unlinked by an exec() that failed: its slots and stacks stay where
     * they are (leak.c holds their indices), so every page in use moves over. */
    for (size_t p = 1; p < CG_STATS_PAGES; p++) {
      if (!(atomic_load_explicit(&cg_stats_backed[p / 64], memory_order_relaxed) & (1ULL << (p % 64)))) continue;
      size_t off = p * CG_STATS_PAGE, len = sizeof *s - off < CG_STATS_PAGE ? sizeof *s - off : CG_STATS_PAGE;
      if (cg_shm_reserve((char *)s + off, len) != 0) {
        atomic_fetch_and_explicit(&cg_stats_backed[p / 64], ~(1ULL << (p % 64)), memory_order_relaxed);
        continue;   /* no room: those slots stay unseen by the tool, never a SIGBUS */
      }
      memcpy((char *)s + off, (char *)old + off, len);
    }
  } else {
    backed_head();
  }
  fill_header(s, pid, uid);
  atomic_thread_fence(memory_order_release);
  s->magic = CG_STATS_MAGIC;
  cg_stats = s;
  if (!from_map) atomic_fetch_add_explicit(&cg_stats_gen, 1, memory_order_relaxed);
  else munmap(old, sizeof *old);
  memcpy(published_path, path, sizeof published_path);
  mapped_pid = pid;
  atomic_store_explicit(&published_pid, pid, memory_order_release);
  atomic_store_explicit(&cg_stats_pending, 0, memory_order_relaxed);
  publish_mine = 0;
  atomic_store_explicit(&publish_busy, 0, memory_order_release);
  errno = save;
}

/* Async-signal-safe: _exit and exec hooks call it. */
__attribute__((cold)) void cg_stats_unpublish(void)
{
  pid_t p = atomic_load_explicit(&published_pid, memory_order_acquire);
  if (!p || p != (pid_t)cg_syscall(SYS_getpid)) return;
  atomic_store_explicit(&published_pid, 0, memory_order_relaxed);
  cg_syscall(SYS_unlink, published_path);
}

void cg_stats_before_exec(void)
{
  pid_t p = atomic_load_explicit(&published_pid, memory_order_acquire);
  if (!p || p != (pid_t)cg_syscall(SYS_getpid)) return;
  cg_stats_unpublish();
  atomic_store_explicit(&cg_stats_exec_pending, 1, memory_order_relaxed);
}

void cg_stats_exec_failed(void)
{
  /* The old image goes on: its counters come back into view at the next socket activity. */
  if (atomic_exchange_explicit(&cg_stats_exec_pending, 0, memory_order_relaxed))
    atomic_store_explicit(&cg_stats_pending, 1, memory_order_relaxed);
}

__attribute__((cold)) void cg_stats_init(int on)
{
  /* Nothing in /dev/shm until the first socket: most processes (shells, sleep) never make one. */
  atomic_store_explicit(&cg_stats_pending, on, memory_order_relaxed);
}

void cg_stats_after_fork(void)
{
  /* Published on the child's first socket activity, not here: a child that only execs or
   * _exits would otherwise leave a file behind (a shell forks several per command line). */
  atomic_store_explicit(&cg_stats_pending, 1, memory_order_relaxed);
  atomic_store_explicit(&cg_stats_exec_pending, 0, memory_order_relaxed);
  atomic_store_explicit(&published_pid, 0, memory_order_relaxed);
  publish_mine = 0;
  atomic_store(&publish_busy, 0);
  warned = 0;
  /* The child starts from zero counters; the parent's shared mapping stays the parent's. */
  if (cg_stats != &private_stats) {
    struct cg_stats *old = cg_stats;
    memset(&private_stats, 0, CG_STATS_HEAD);
    cg_stats = &private_stats;
    munmap(old, sizeof *old);
  } else {
    memset(&private_stats, 0, CG_STATS_HEAD);
  }
  mapped_pid = 0;
  backed_all();
  private_stats.leak_mode = leak_mode_v;
  private_stats.leak_age_ms = leak_age_v;
  /* The parent's stacks[] indices are no use in the child's own segment. */
  atomic_fetch_add_explicit(&cg_stats_gen, 1, memory_order_relaxed);
}
