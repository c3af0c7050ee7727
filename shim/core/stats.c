#include "stats.h"
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static struct cg_stats private_stats;
struct cg_stats *cg_stats = &private_stats;
atomic_uint cg_stats_gen;
static pid_t published_pid;
static uint32_t leak_mode_v, leak_age_v;

/* Everything before leaks[]: the slots and stacks are only ever written in a published segment,
 * so copies and resets leave them alone (touching them would cost each process a megabyte of
 * shm). */
#define CG_STATS_HEAD offsetof(struct cg_stats, leaks)

void cg_stats_set_leak(uint32_t mode, uint32_t age_ms)
{
  leak_mode_v = mode;
  leak_age_v = age_ms;
  cg_stats->leak_mode = mode;
  cg_stats->leak_age_ms = age_ms;
}

void cg_stats_path(char *out, unsigned cap, uid_t uid, pid_t pid)
{
  snprintf(out, cap, "/dev/shm/connguard.%u.%d", (unsigned)uid, (int)pid);
}

/* Everything but the magic: readers trust nothing until it appears (written last). */
static void fill_header(struct cg_stats *s)
{
  struct timespec ts;
  s->version = CG_STATS_VERSION;
  s->size = sizeof *s;
  s->pid = getpid();
  s->uid = geteuid();
  clock_gettime(CLOCK_REALTIME, &ts);
  if (!s->start_ns) s->start_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
  ssize_t n = readlink("/proc/self/exe", s->exe, sizeof s->exe - 1);
  s->exe[n > 0 ? n : 0] = 0;
  s->leak_mode = leak_mode_v;
  s->leak_age_ms = leak_age_v;
}

/* The name carries the uid that owns the file (the effective one: a setuid program's segment
 * belongs to its owner, and the tool finds it by the reader's euid). Kept for the unlink: the
 * program may change its uid later. */
static char published_path[96];

void cg_stats_publish(void)
{
  char path[96];
  pid_t pid = getpid();
  if (published_pid == pid) return;
  cg_stats_path(path, sizeof path, geteuid(), pid);
  /* Raw syscalls: this is our file, the program's hooks must not see it. */
  int fd = (int)syscall(SYS_openat, AT_FDCWD, path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    /* Left behind by an earlier image of this pid (exec) or a killed process. */
    unlink(path);
    fd = (int)syscall(SYS_openat, AT_FDCWD, path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  }
  if (fd < 0) return;
  void *m = MAP_FAILED;
  if (ftruncate(fd, sizeof(struct cg_stats)) == 0)
    m = mmap(0, sizeof(struct cg_stats), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  syscall(SYS_close, fd);
  if (m == MAP_FAILED) { unlink(path); return; }
  struct cg_stats *s = m;
  /* Counters gathered before publishing carry over; the header goes last so that readers
   * never see a valid magic on a half-filled segment. */
  memcpy((char *)s + 16, (char *)cg_stats + 16, CG_STATS_HEAD - 16);
  fill_header(s);
  atomic_thread_fence(memory_order_release);
  s->magic = CG_STATS_MAGIC;
  cg_stats = s;
  atomic_fetch_add_explicit(&cg_stats_gen, 1, memory_order_relaxed);
  memcpy(published_path, path, sizeof published_path);
  published_pid = pid;
  cg_stats_pending = 0;
}

void cg_stats_unpublish(void)
{
  if (published_pid != getpid()) return;
  unlink(published_path);
  published_pid = 0;
}

int cg_stats_pending;

void cg_stats_after_fork(void)
{
  /* Published on the child's first socket activity, not here: a child that only execs or
   * _exits would otherwise leave a file behind (a shell forks several per command line). */
  cg_stats_pending = 1;
  /* The child starts from zero counters; the parent's shared mapping stays the parent's. */
  if (published_pid) {
    struct cg_stats *old = cg_stats;
    memset(&private_stats, 0, CG_STATS_HEAD);
    cg_stats = &private_stats;
    munmap(old, sizeof *old);
    published_pid = 0;
  } else {
    memset(&private_stats, 0, CG_STATS_HEAD);
  }
  private_stats.leak_mode = leak_mode_v;
  private_stats.leak_age_ms = leak_age_v;
  /* The parent's stacks[] indices are no use in the child's own segment. */
  atomic_fetch_add_explicit(&cg_stats_gen, 1, memory_order_relaxed);
}
