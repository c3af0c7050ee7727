#include "seg.h"
#include "cg_tool.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---------- /proc ---------- */

static int read_small(const char *path, char *buf, size_t cap)
{
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  size_t n = 0;
  while (n + 1 < cap) {
    ssize_t r = read(fd, buf + n, cap - 1 - n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    n += (size_t)r;
  }
  close(fd);
  buf[n] = 0;
  return (int)n;
}

int64_t proc_start_ns(pid_t pid)
{
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  if (read_small(path, buf, sizeof buf) <= 0) return 0;
  /* comm may hold spaces and parentheses: fields start after the last ')'. */
  char *p = strrchr(buf, ')');
  if (!p) return 0;
  p++;
  unsigned long long start = 0;
  /* field 3 is the state; starttime is field 22. */
  for (int field = 3; field < 22; field++) {
    p = strchr(p + 1, ' ');
    if (!p) return 0;
  }
  start = strtoull(p + 1, NULL, 10);
  static char stat_buf[8192];
  if (read_small("/proc/stat", stat_buf, sizeof stat_buf) <= 0) return 0;
  char *b = strstr(stat_buf, "\nbtime ");
  if (!b) return 0;
  long long btime = strtoll(b + 7, NULL, 10);
  long hz = sysconf(_SC_CLK_TCK);
  if (hz <= 0) hz = 100;
  return btime * 1000000000LL + (int64_t)(start * (1000000000ULL / (unsigned long long)hz));
}

int proc_comm(pid_t pid, char *out, size_t cap)
{
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/comm", (int)pid);
  int n = read_small(path, out, cap);
  if (n <= 0) { if (cap) out[0] = 0; return -1; }
  if (out[n - 1] == '\n') out[n - 1] = 0;
  return 0;
}

long proc_uid(pid_t pid)
{
  char path[64];
  struct stat st;
  snprintf(path, sizeof path, "/proc/%d", (int)pid);
  if (stat(path, &st) != 0) return -1;
  return (long)st.st_uid;
}

/* Whether pid maps libconnguard.so / the file with inode ino. -1 when maps is unreadable. */
static int maps_have(pid_t pid, const char *needle, ino_t ino, int match_ino)
{
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/maps", (int)pid);
  FILE *f = fopen(path, "re");
  if (!f) return -1;
  char line[4096 + 128];
  int found = 0, any = 0;
  while (fgets(line, sizeof line, f)) {
    any = 1;
    char *name = strchr(line, '/');
    if (!name) continue;
    name[strcspn(name, "\n")] = 0;
    if (!strstr(name, needle)) continue;
    if (!match_ino) { found = 1; break; }
    unsigned long long lo, hi, off, inode;
    char perms[8], dev[32];
    if (sscanf(line, "%llx-%llx %7s %llx %31s %llu", &lo, &hi, perms, &off, dev, &inode) == 6 &&
        inode == (unsigned long long)ino) { found = 1; break; }
  }
  fclose(f);
  /* A process we may not inspect (not dumpable: setuid) shows an empty maps file. */
  return any ? found : -1;
}

/* ---------- SIGBUS guard ---------- */

static sigjmp_buf bus_jmp;
static volatile sig_atomic_t bus_armed;

static void on_bus(int sig)
{
  if (bus_armed) siglongjmp(bus_jmp, 1);
  signal(sig, SIG_DFL);
  raise(sig);
}

int seg_guarded(const struct seg *s, void (*fn)(const struct cg_stats *m, void *arg), void *arg)
{
  struct sigaction sa, old;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_bus;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGBUS, &sa, &old);
  int ok = 0;
  if (sigsetjmp(bus_jmp, 1) == 0) {
    bus_armed = 1;
    fn(s->map, arg);
    ok = 1;
  }
  bus_armed = 0;
  sigaction(SIGBUS, &old, NULL);
  return ok ? 0 : -1;
}

/* ---------- snapshot ---------- */

#define LD(f) atomic_load_explicit(&m->f, memory_order_relaxed)

static void take_snap(const struct cg_stats *m, void *arg)
{
  struct cg_snap *o = arg;
  memset(o, 0, sizeof *o);
  o->pid = m->pid;
  o->uid = m->uid;
  o->start_ns = m->start_ns;
  memcpy(o->exe, m->exe, sizeof o->exe);
  o->exe[sizeof o->exe - 1] = 0;
  o->connect_attempts = LD(connect_attempts);
  o->connect_failures = LD(connect_failures);
  o->retries = LD(retries);
  o->recoveries = LD(recoveries);
  o->give_ups = LD(give_ups);
  o->backoff_wait_ns = LD(backoff_wait_ns);
  for (int i = 0; i < CG_STATS_ERRNOS; i++) o->failures_by_errno[i] = LD(failures_by_errno[i]);
  o->open_sockets = LD(open_sockets);
  o->sockets_created = LD(sockets_created);
  o->leak_candidates = LD(leak_candidates);
  o->leaks_reported = LD(leaks_reported);
#if CG_STATS_VERSION >= 2
  o->leak_unpublished = LD(leak_unpublished);
#endif
  o->leak_stacks = LD(leak_stacks_used);
  if (o->leak_stacks > CG_STATS_STACKS) o->leak_stacks = CG_STATS_STACKS;
  o->leak_stacks_full = LD(leak_stacks_full);
  o->tls_handshakes = LD(tls_handshakes);
  o->tls_failures = LD(tls_failures);
  o->tls_retries = LD(tls_retries);
  for (int i = 0; i < CG_TLS_BUCKETS; i++) o->tls_hs_bucket[i] = LD(tls_hs_bucket[i]);
  o->tls_hs_sum_us = LD(tls_hs_sum_us);
  o->tls_hs_count = LD(tls_hs_count);
}

struct hdr { uint32_t magic, version, size; int32_t pid; uint32_t uid; };

static void take_hdr(const struct cg_stats *m, void *arg)
{
  struct hdr *h = arg;
  h->magic = m->magic;
  atomic_thread_fence(memory_order_acquire);
  h->version = m->version;
  h->size = m->size;
  h->pid = m->pid;
  h->uid = m->uid;
}

const char *seg_state_name(enum seg_state st)
{
  switch (st) {
  case SEG_LIVE: return "live";
  case SEG_GONE: return "stale (process gone)";
  case SEG_REUSED: return "stale (pid reused)";
  }
  return "?";
}

static void check_liveness(struct seg *s)
{
  char path[64];
  snprintf(path, sizeof path, "/proc/%d", (int)s->pid);
  if (access(path, F_OK) != 0) {
    s->state = SEG_GONE;
    s->proc_start_ns = 0;
    s->comm[0] = 0;
    return;
  }
  s->proc_start_ns = proc_start_ns(s->pid);
  proc_comm(s->pid, s->comm, sizeof s->comm);
  int m = maps_have(s->pid, s->path, s->ino, 1);
  if (m == 1) { s->state = SEG_LIVE; return; }
  if (m == 0) {
    /* Not mapped: the pid belongs to another process now, or the program exec()ed an image
     * without the shim. A file just created by a starting process is not mapped yet either:
     * trust the mapping only for files that are not brand new. */
    s->state = now_realtime_ns() - s->file_ctime_ns > 2000000000LL ? SEG_REUSED : SEG_LIVE;
    return;
  }
  /* maps unreadable: fall back on start times (the segment is created after the process). */
  if (s->proc_start_ns && s->snap.start_ns && s->proc_start_ns > s->snap.start_ns + 2000000000LL)
    s->state = SEG_REUSED;
  else
    s->state = SEG_LIVE;
}

int seg_removable(const struct seg *s)
{
  if (s->state == SEG_GONE) return 1;
  return s->state == SEG_REUSED && now_realtime_ns() - s->file_ctime_ns > 2000000000LL;
}

int seg_refresh(struct seg *s)
{
  struct stat st;
  if (stat(s->path, &st) != 0 || st.st_ino != s->ino) {
    /* Removed at exit (or replaced by an exec()ed image): the mapping holds the last values. */
    if (seg_guarded(s, take_snap, &s->snap)) return -1;
    s->state = access(s->path, F_OK) == 0 ? SEG_REUSED : SEG_GONE;
    char p[64];
    snprintf(p, sizeof p, "/proc/%d", (int)s->pid);
    if (access(p, F_OK) != 0) s->state = SEG_GONE;
    return 0;
  }
  if (seg_guarded(s, take_snap, &s->snap)) return -1;
  check_liveness(s);
  return 0;
}

/* "connguard.<uid>.<pid>", digits only. */
static int parse_seg_name(const char *name, unsigned *uid, int *pid)
{
  if (strncmp(name, "connguard.", 10)) return -1;
  const char *p = name + 10;
  unsigned long long u = 0, v = 0;
  int nd = 0;
  for (; *p >= '0' && *p <= '9' && nd < 11; p++, nd++) u = u * 10 + (unsigned)(*p - '0');
  if (!nd || *p != '.' || u > 0xffffffffULL) return -1;
  p++;
  nd = 0;
  for (; *p >= '0' && *p <= '9' && nd < 11; p++, nd++) v = v * 10 + (unsigned)(*p - '0');
  if (!nd || *p || v == 0 || v > 0x7fffffffULL) return -1;
  *uid = (unsigned)u;
  *pid = (int)v;
  return 0;
}

static int explain_missing(pid_t pid, uid_t me, char *msg, size_t cap)
{
  /* Someone else's counters for this pid? */
  DIR *d = opendir("/dev/shm");
  if (d) {
    struct dirent *de;
    while ((de = readdir(d))) {
      unsigned u;
      int p;
      if (!parse_seg_name(de->d_name, &u, &p) && p == pid && u != me) {
        snprintf(msg, cap, "pid %d runs under connguard as uid %u (/dev/shm/%s); "
                 "only that user can read its counters (you are uid %u)", (int)pid, u, de->d_name, (unsigned)me);
        closedir(d);
        return -1;
      }
    }
    closedir(d);
  }
  long owner = proc_uid(pid);
  if (owner < 0) {
    snprintf(msg, cap, "no process with pid %d (and no connguard counters for it)", (int)pid);
    return -1;
  }
  char comm[64] = "";
  proc_comm(pid, comm, sizeof comm);
  if ((uid_t)owner != me) {
    snprintf(msg, cap, "pid %d (%s) belongs to uid %ld; connguard reads only the counters of "
             "your own processes (you are uid %u)", (int)pid, comm, owner, (unsigned)me);
    return -1;
  }
  int lib = maps_have(pid, "libconnguard.so", 0, 0);
  if (lib == 1)
    snprintf(msg, cap, "pid %d (%s) has libconnguard.so loaded but publishes no counters "
             "(it has made no socket yet, or CONNGUARD_STATS=0 or CONNGUARD_DISABLE=1, "
             "or /dev/shm was full: the program said so on its stderr)", (int)pid, comm);
  else
    snprintf(msg, cap, "pid %d (%s) is not running under connguard (libconnguard.so is not loaded); "
             "start it with: connguard -- COMMAND", (int)pid, comm);
  return -1;
}

int seg_open_path(const char *path, uid_t uid, pid_t pid, struct seg *s, char *msg, size_t cap)
{
  memset(s, 0, sizeof *s);
  s->pid = pid;
  s->uid = uid;
  snprintf(s->path, sizeof s->path, "%s", path);
  int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) {
    int e = errno;
    if (e == ENOENT) return explain_missing(pid, geteuid(), msg, cap);
    snprintf(msg, cap, "cannot open %s: %s", path, strerror(e));
    return -1;
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    snprintf(msg, cap, "%s is not a regular file: not connguard counters", path);
    return -1;
  }
  if (st.st_uid != geteuid()) {
    close(fd);
    snprintf(msg, cap, "%s belongs to uid %u, not to you (uid %u): refusing to read it",
             path, (unsigned)st.st_uid, (unsigned)geteuid());
    return -1;
  }
  s->ino = st.st_ino;
  s->file_ctime_ns = (int64_t)st.st_ctim.tv_sec * 1000000000LL + st.st_ctim.tv_nsec;
  if ((size_t)st.st_size < 16) {
    close(fd);
    snprintf(msg, cap, "%s is empty or truncated (%lld bytes): the process may be starting "
             "or was killed while publishing", path, (long long)st.st_size);
    return -1;
  }
  size_t len = (size_t)st.st_size < sizeof(struct cg_stats) ? (size_t)st.st_size : sizeof(struct cg_stats);
  void *m = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
  close(fd);
  if (m == MAP_FAILED) {
    snprintf(msg, cap, "cannot map %s: %s", path, strerror(errno));
    return -1;
  }
  s->map = m;
  s->maplen = len;
  struct hdr h;
  /* The shim fills the header last; give a process that is publishing right now a moment. */
  for (int tries = 0;; tries++) {
    if (seg_guarded(s, take_hdr, &h)) { memset(&h, 0, sizeof h); h.magic = 1; }
    if ((h.magic == CG_STATS_MAGIC && h.pid != 0) || tries >= 20) break;
    struct timespec ts = { 0, 10000000 };
    nanosleep(&ts, NULL);
  }
  const char *bad = NULL;
  char why[160];
  if (h.magic != CG_STATS_MAGIC) bad = "not connguard counters (bad magic)";
  else if (h.version != CG_STATS_VERSION) {
    snprintf(why, sizeof why, "counters layout version %u, this connguard reads version %u: "
             "use the connguard that came with the program's libconnguard.so", h.version, CG_STATS_VERSION);
    bad = why;
  } else if (h.size != sizeof(struct cg_stats) || (size_t)st.st_size < sizeof(struct cg_stats)) {
    snprintf(why, sizeof why, "counters of %u bytes in a %lld-byte file, expected %zu",
             h.size, (long long)st.st_size, sizeof(struct cg_stats));
    bad = why;
  } else if (h.pid != pid || h.uid != uid) {
    snprintf(why, sizeof why, "the file names pid %d uid %u, not pid %d uid %u", h.pid, h.uid, (int)pid, (unsigned)uid);
    bad = why;
  }
  if (bad) {
    snprintf(msg, cap, "%s: %s", path, bad);
    seg_close(s);
    return -1;
  }
  if (seg_guarded(s, take_snap, &s->snap)) {
    snprintf(msg, cap, "%s was truncated while being read", path);
    seg_close(s);
    return -1;
  }
  check_liveness(s);
  return 0;
}

int seg_open(pid_t pid, struct seg *s, char *msg, size_t cap)
{
  char path[96];
  cg_stats_path(path, sizeof path, geteuid(), pid);
  return seg_open_path(path, geteuid(), pid, s, msg, cap);
}

void seg_close(struct seg *s)
{
  if (s->map) munmap((void *)s->map, s->maplen);
  s->map = NULL;
}

static int cmp_pid(const void *a, const void *b)
{
  pid_t x = *(const pid_t *)a, y = *(const pid_t *)b;
  return (x > y) - (x < y);
}

int seg_scan(uid_t uid, pid_t **pids)
{
  *pids = NULL;
  DIR *d = opendir("/dev/shm");
  if (!d) return 0;
  int n = 0, cap = 0;
  struct dirent *de;
  while ((de = readdir(d))) {
    unsigned u;
    int p;
    if (parse_seg_name(de->d_name, &u, &p) || u != uid) continue;
    if (n == cap) {
      cap = cap ? cap * 2 : 16;
      pid_t *np = realloc(*pids, (size_t)cap * sizeof **pids);
      if (!np) break;
      *pids = np;
    }
    (*pids)[n++] = p;
  }
  closedir(d);
  if (n) qsort(*pids, (size_t)n, sizeof **pids, cmp_pid);
  return n;
}
