/* Shared per-destination retry schedule (coord.h). Reached only after a real attempt failed. */
#include "coord.h"
#include "startup.h"
#include "clock.h"
#include "fmt.h"
#include "log.h"
#include "policy.h"
#include "shm.h"
#include "rawsys.h"
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define MS_NS 1000000LL

/* The configuration given, by address, not copied: a copy of struct cg_config (16 KB) cost every
 * process 3-4 page faults at start-up. NULL before cg_coord_configure: every setting reads as
 * zero then (coordination off), through CFG(), without a 16 KB zero struct to point at. */
static const struct cg_config *cfgp CG_STARTUP_DATA;
#define CFG(field) (cfgp ? cfgp->field : 0)
static char path_override[256];

/* The mapping: made once, kept for the life of the process (tickets point into it). */
static struct cg_coord_table *tab CG_STARTUP_DATA;   /* read at every exit */
static size_t tab_size;
static atomic_int tab_lock;           /* process-local: one thread maps at a time */
static int tab_failed;                /* unavailable for this process: do not try again */
static pid_t registered_pid;          /* pid listed in users[] */

void cg_coord_configure(const struct cg_config *c) { cfgp = c; }
void cg_coord_set_path(const char *p)
{
  snprintf(path_override, sizeof path_override, "%s", p ? p : "");
  tab = NULL;
  tab_failed = 0;
  registered_pid = 0;
}

const char *cg_coord_path(void)
{
  static char def[64];
  if (path_override[0]) return path_override;
  snprintf(def, sizeof def, "/dev/shm/connguard.%u.dst", (unsigned)geteuid());
  return def;
}

static pid_t my_tid(void) { return (pid_t)cg_syscall(SYS_gettid); }

/* A tid (or pid) that names no task any more. EPERM: someone else's task: alive, not ours. */
static int gone(pid_t t) { return t > 0 && kill(t, 0) != 0 && errno == ESRCH; }

/* A task that exited but was not reaped yet still answers kill(t, 0): its state is Z (or X). */
static int zombie(pid_t t)
{
  char p[40], buf[512];
  snprintf(p, sizeof p, "/proc/%d/stat", (int)t);
  int fd = (int)cg_syscall(SYS_openat, AT_FDCWD, p, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno == ENOENT;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  cg_syscall(SYS_close, fd);
  if (n <= 0) return 0;
  buf[n] = 0;
  char *c = strrchr(buf, ')');
  return c && c[1] == ' ' && (c[2] == 'Z' || c[2] == 'X');
}

static void warn_once(const char *what)
{
  static atomic_int said;
  if (atomic_exchange(&said, 1)) return;
  char line[400];
  int n = snprintf(line, sizeof line, "connguard: warning: %s %s; retries are not coordinated "
                   "with other processes (CONNGUARD_COORDINATE)\n", what, cg_coord_path());
  if (n > 0) cg_log_warning(line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

/* ---------- the table lock (shared, short sections, no system call inside but kill) ---------- */

static int table_lock(struct cg_coord_table *t)
{
  pid_t me = my_tid();
  int64_t give_up = cg_mono_ns() + 200 * MS_NS;
  for (unsigned spins = 0;; spins++) {
    int32_t cur = 0;
    if (atomic_compare_exchange_strong(&t->lock, &cur, me)) return 1;
    if (spins > 100) {
      /* Held by a task that died inside the section (SIGKILL): take it over. */
      if (gone(cur) && atomic_compare_exchange_strong(&t->lock, &cur, me)) return 1;
      if (cg_mono_ns() > give_up) return 0;   /* a stopped holder: go uncoordinated */
      struct timespec ts = { 0, 200000 };
      nanosleep(&ts, NULL);
    } else if (spins > 20) {
      sched_yield();
    }
  }
}

static void table_unlock(struct cg_coord_table *t) { atomic_store(&t->lock, 0); }

/* ---------- creating and mapping ---------- */

static size_t size_for(unsigned n) { return sizeof(struct cg_coord_table) + (size_t)n * sizeof(struct cg_coord_dst); }

static int register_user(struct cg_coord_table *t)
{
  pid_t pid = getpid();
  if (!table_lock(t)) return 0;
  if (atomic_load(&t->dead)) { table_unlock(t); return -1; }
  int free_i = -1, have = 0;
  for (int i = 0; i < CG_COORD_USERS; i++) {
    int32_t u = atomic_load(&t->users[i]);
    if (u == pid) have = 1;
    else if (u && (gone(u) || zombie(u))) { atomic_store(&t->users[i], 0); u = 0; }
    if (!u && free_i < 0) free_i = i;
  }
  if (!have) {
    if (free_i >= 0) atomic_store(&t->users[free_i], pid);
    else atomic_fetch_add(&t->overflow, 1);
  }
  table_unlock(t);
  registered_pid = pid;
  return 1;
}

static void unlink_if_dead(const char *path, const struct cg_coord_table *mine)
{
  struct cg_coord_table h;
  int fd = (int)cg_syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return;
  ssize_t n = pread(fd, &h, sizeof h, 0);
  cg_syscall(SYS_close, fd);
  if (n == (ssize_t)sizeof h && h.magic == CG_COORD_MAGIC && atomic_load(&h.dead) &&
      h.created_rt_ns == mine->created_rt_ns)
    unlink(path);
}

static int plausible_size(off_t sz)
{
  return sz >= (off_t)size_for(16) && sz <= (off_t)size_for(4096) &&
         (sz - (off_t)sizeof(struct cg_coord_table)) % (off_t)sizeof(struct cg_coord_dst) == 0;
}

static struct cg_coord_table *map_table(void)
{
  const char *path = cg_coord_path();
  size_t size = size_for(CFG(coord_dests) >= 16 ? CFG(coord_dests) : 256);
  for (int tries = 0; tries < 6; tries++) {
    int status, err;
    /* Created complete (every byte reserved: no SIGBUS on a full /dev/shm), owner-only, never
     * through a planted link or another user's file: shm.c. */
    void *m = cg_shm_open_shared(path, size, &status, &err);
    if (!m && status == CG_SHM_ERROR && err == EINVAL) {
      /* Made by a process with another CONNGUARD_COORD_DESTS: its size is the table's. */
      struct stat st;
      if (stat(path, &st) == 0 && plausible_size(st.st_size) && (size_t)st.st_size != size) {
        size = (size_t)st.st_size;
        continue;
      }
    }
    if (!m) {
      warn_once(status == CG_SHM_NOSPACE ? "no room in /dev/shm for" :
                status == CG_SHM_SQUATTED ? "refusing (not an owner-only file of ours)" : "cannot map");
      return NULL;
    }
    struct cg_coord_table *t = m;
    if (__atomic_load_n(&t->magic, __ATOMIC_ACQUIRE) != CG_COORD_MAGIC) {
      /* A new file (zero-filled). Every field follows from its size, so whoever maps it first
       * writes the same header: no creator whose death could leave it half made. */
      t->version = CG_COORD_VERSION;
      t->size = (uint32_t)size;
      t->nslots = (uint32_t)((size - sizeof(struct cg_coord_table)) / sizeof(struct cg_coord_dst));
      t->uid = geteuid();
      int64_t z = 0;
      __atomic_compare_exchange_n(&t->created_rt_ns, &z, cg_realtime_ns(), 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
      __atomic_store_n(&t->magic, CG_COORD_MAGIC, __ATOMIC_RELEASE);
    }
    if (t->version != CG_COORD_VERSION || t->size != size || size_for(t->nslots) != size) {
      munmap(m, size);
      warn_once("unknown layout in");
      return NULL;
    }
    int r = register_user(t);
    if (r < 0) {
      /* Removed by its last user meanwhile: map the new one. If that user died between
       * marking it dead and unlinking it, the dead file is still at the path: anyone removes
       * it (this very file: dead, and created at the same moment as ours). */
      unlink_if_dead(path, t);
      munmap(m, size);
      continue;
    }
    if (r == 0) { munmap(m, size); return NULL; }
    tab_size = size;
    return t;
  }
  return NULL;
}

struct cg_coord_table *cg_coord_table(void)
{
  struct cg_coord_table *t = __atomic_load_n(&tab, __ATOMIC_ACQUIRE);
  if (t || tab_failed || !CFG(coordinate)) return t;
  /* Bounded: a signal handler that connects while its own thread maps the table must not spin
   * forever on it; that connect goes uncoordinated. */
  for (unsigned spins = 0; atomic_exchange_explicit(&tab_lock, 1, memory_order_acquire); spins++) {
    if (spins > 2000) return NULL;
    sched_yield();
  }
  t = tab;
  if (!t && !tab_failed) {
    t = map_table();
    if (t) __atomic_store_n(&tab, t, __ATOMIC_RELEASE);
    else tab_failed = 1;
  }
  atomic_store_explicit(&tab_lock, 0, memory_order_release);
  if (t && registered_pid != getpid()) {
    /* A fork child on its first failure: it uses the mapping it inherited, as one more user. */
    if (register_user(t) < 0) return NULL;   /* removed meanwhile: this process goes uncoordinated */
  }
  return t;
}

/* ---------- keys ---------- */

int cg_coord_key(const struct sockaddr *a, socklen_t l, uint16_t *family, uint16_t *port, uint8_t addr[16])
{
  memset(addr, 0, 16);
  if (!a) return 0;
  if (a->sa_family == AF_INET && l >= sizeof(struct sockaddr_in)) {
    const struct sockaddr_in *in = (const void *)a;
    *family = AF_INET;
    *port = ntohs(in->sin_port);
    memcpy(addr, &in->sin_addr, 4);
    return 1;
  }
  if (a->sa_family == AF_INET6 && l >= sizeof(struct sockaddr_in6)) {
    const struct sockaddr_in6 *in6 = (const void *)a;
    *port = ntohs(in6->sin6_port);
    if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
      /* The same server as its IPv4 form: one schedule. */
      *family = AF_INET;
      memcpy(addr, in6->sin6_addr.s6_addr + 12, 4);
    } else {
      *family = AF_INET6;
      memcpy(addr, &in6->sin6_addr, 16);
    }
    return 1;
  }
  return 0;
}

void cg_coord_dst_name(const struct cg_coord_dst *d, char *out, size_t cap)
{
  char a[INET6_ADDRSTRLEN] = "?";
  inet_ntop(d->family, d->addr, a, sizeof a);
  if (d->family == AF_INET6) snprintf(out, cap, "[%s]:%u", a, d->port);
  else snprintf(out, cap, "%s:%u", a, d->port);
}

static int keep_ok(struct cg_coord_dst *d, int64_t now)
{
  /* Reclaimable: recovered and unused for CONNGUARD_COORD_KEEP_MS, or idle for so long that
   * whoever was using it is gone. */
  int64_t idle = now - atomic_load(&d->last_ns);
  if (idle > (int64_t)CG_COORD_STALE_MS * MS_NS) return 1;
  return atomic_load(&d->state) == CG_COORD_CLOSED && atomic_load(&d->streak) == 0 &&
         atomic_load(&d->waiting) == 0 && atomic_load(&d->probe) == 0 &&
         idle >= (int64_t)CFG(coord_keep_ms) * MS_NS;
}

/* gen 0 = free: a waiter still holding the old gen sees it move and goes back to its own
 * backoff (CG_COORD_LOST). */
static void free_slot(struct cg_coord_dst *d) { atomic_store(&d->gen, 0); }

/* Finds or takes the entry for a key. Table locked by the caller. */
static struct cg_coord_dst *lookup(struct cg_coord_table *t, uint16_t fam, uint16_t port, const uint8_t *addr, int64_t now)
{
  struct cg_coord_dst *free_d = NULL;
  for (uint32_t i = 0; i < t->nslots; i++) {
    struct cg_coord_dst *d = &t->dst[i];
    if (atomic_load(&d->gen) == 0) { if (!free_d) free_d = d; continue; }
    if (d->family == fam && d->port == port && !memcmp(d->addr, addr, 16)) return d;
    if (keep_ok(d, now)) { free_slot(d); if (!free_d) free_d = d; }
  }
  if (!free_d) { atomic_fetch_add(&t->full, 1); return NULL; }
  struct cg_coord_dst *d = free_d;
  static atomic_uint salt;
  uint32_t g = (uint32_t)(now >> 10) ^ (uint32_t)getpid() ^ atomic_fetch_add(&salt, 1) * 2654435761u;
  if (!g) g = 1;
  /* Everything but gen is reset before gen publishes the key. */
  memset((char *)d + sizeof d->gen, 0, sizeof *d - sizeof d->gen);
  d->family = fam;
  d->port = port;
  memcpy(d->addr, addr, 16);
  atomic_store(&d->last_ns, now);
  atomic_store(&d->gen, g);
  return d;
}

static int valid(struct cg_coord_ticket *t)
{
  return t->d && atomic_load(&t->d->gen) == t->gen;
}

/* ---------- futex ---------- */

static void wake_all(struct cg_coord_dst *d)
{
  atomic_fetch_add(&d->epoch, 1);
  cg_syscall(SYS_futex, &d->epoch, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

/* Shared (no FUTEX_PRIVATE_FLAG): the word lives in a MAP_SHARED file mapping, so the kernel
 * keys it by inode and offset and wakes waiters of every process. Absolute monotonic time. */
static int futex_wait_until(_Atomic uint32_t *w, uint32_t val, int64_t until)
{
  struct timespec ts = { until / 1000000000, until % 1000000000 };
  long r = cg_syscall(SYS_futex, w, FUTEX_WAIT_BITSET, val, &ts, NULL, FUTEX_BITSET_MATCH_ANY);
  return r == 0 ? 0 : errno;
}

/* ---------- records ---------- */

static void rec_dst(struct cg_rec *r, struct cg_coord_dst *d)
{
  char name[80];
  cg_coord_dst_name(d, name, sizeof name);
  cg_rec_str(r, "dst", name);
}

static void log_open(struct cg_coord_dst *d, unsigned failures)
{
  struct cg_rec r;
  cg_rec_begin(&r, "breaker_open");
  rec_dst(&r, d);
  cg_rec_int(&r, "failures", failures);
  cg_rec_emit(&r);
}

static void log_closed(struct cg_coord_dst *d, uint64_t failures, uint64_t probes, int64_t dur_ns, int opened_by)
{
  struct cg_rec r;
  cg_rec_begin(&r, "breaker_closed");
  rec_dst(&r, d);
  cg_rec_int(&r, "failures", (int64_t)failures);
  cg_rec_int(&r, "probes", (int64_t)probes);
  cg_rec_int(&r, "duration_ms", dur_ns / MS_NS);
  cg_rec_int(&r, "opened_by", opened_by);
  cg_rec_emit(&r);
}

/* ---------- protocol ---------- */

static uint64_t rnd(void)
{
  static __thread uint64_t st;
  if (!st) st = (uint64_t)cg_mono_ns() ^ ((uint64_t)my_tid() << 32);
  return cg_rand_next(&st);
}

static uint32_t ms32(int64_t ns) { return (uint32_t)(ns / MS_NS); }

/* Whether a probe word names a probe that can no longer report: lease over, or its task gone
 * (a reused tid looks alive: the lease bounds that case). */
static int probe_stale(uint64_t w, int64_t now)
{
  if (!w) return 1;
  if ((int32_t)(ms32(now) - (uint32_t)w) > 0) return 1;
  pid_t t = (pid_t)(w >> 32);
  return gone(t) || zombie(t);
}

static int claim_probe(struct cg_coord_ticket *t, int64_t now)
{
  struct cg_coord_dst *d = t->d;
  uint64_t cur = atomic_load(&d->probe);
  if (cur && !probe_stale(cur, now)) return 0;
  /* The lease covers one attempt: it may take the whole per-attempt timeout. */
  int64_t lease = (int64_t)(CFG(connect_timeout_ms) ? CFG(connect_timeout_ms) : 5000) * MS_NS + 500 * MS_NS;
  uint64_t mine = (uint64_t)(uint32_t)my_tid() << 32 | ms32(now + lease);
  if (!atomic_compare_exchange_strong(&d->probe, &cur, mine)) return 0;
  t->probe = 1;
  atomic_fetch_add(&d->probes, 1);
  atomic_fetch_add(&d->ep_probes, 1);
  return 1;
}

static void release_probe(struct cg_coord_ticket *t)
{
  if (!t->probe) return;
  t->probe = 0;
  uint64_t cur = atomic_load(&t->d->probe);
  /* Only our own word: a waiter may have taken over a lease it judged stale. */
  if ((pid_t)(cur >> 32) == my_tid()) atomic_compare_exchange_strong(&t->d->probe, &cur, 0);
}

static int join(struct cg_coord_ticket *t, const struct sockaddr *a, socklen_t l, int64_t now)
{
  uint16_t fam, port;
  uint8_t addr[16];
  if (!CFG(coordinate) || !cg_coord_key(a, l, &fam, &port, addr)) return 0;
  struct cg_coord_table *tb = cg_coord_table();
  if (!tb || !table_lock(tb)) return 0;
  struct cg_coord_dst *d = lookup(tb, fam, port, addr, now);
  if (d) {
    t->d = d; t->gen = atomic_load(&d->gen); t->probe = 0; t->waited = 0;
    if (atomic_fetch_add(&d->ep_active, 1) == 0) {
      /* Nobody is in its schedule (earlier connects gave up or ended): this one starts afresh,
       * on its own backoff, and alone it opens no breaker. The state (open) stays until a
       * success. */
      atomic_store(&d->round, 0);
      atomic_store(&d->next_ns, 0);
      atomic_store(&d->ep_joins, 0);
    }
    atomic_fetch_add(&d->ep_joins, 1);
  }
  table_unlock(tb);
  return d != NULL;
}

void cg_coord_failed(struct cg_coord_ticket *t, const struct sockaddr *a, socklen_t l,
                     unsigned own_attempt, unsigned own_delay_ms)
{
  int64_t now = cg_mono_ns();
  if (!t->d && !join(t, a, l, now)) { t->d = NULL; return; }
  if (!valid(t)) { t->d = NULL; return; }
  struct cg_coord_dst *d = t->d;
  atomic_store(&d->last_ns, now);
  atomic_fetch_add(&d->attempts, 1);
  atomic_fetch_add(&d->failures, 1);
  atomic_fetch_add(&d->ep_failures, 1);
  uint32_t streak = atomic_fetch_add(&d->streak, 1) + 1;
  t->ok_seq = atomic_load(&d->ok_seq);
  uint32_t closed = CG_COORD_CLOSED;
  /* A connect alone is not a shared outage: its own records tell its story, and with one
   * process the log stays what it is without coordination. */
  if (streak >= CG_COORD_OPEN_AFTER && atomic_load(&d->ep_joins) >= 2 && atomic_load(&d->state) == CG_COORD_CLOSED &&
      atomic_compare_exchange_strong(&d->state, &closed, CG_COORD_OPEN)) {
    /* One record per transition: only the process whose CAS won writes it. */
    atomic_store(&d->opened_by, getpid());
    atomic_store(&d->opened_ns, now);
    atomic_store(&d->opened_rt_ns, cg_realtime_ns());
    atomic_fetch_add(&d->opens, 1);
    log_open(d, streak);
  }
  int64_t nx = atomic_load(&d->next_ns);
  if (t->probe || nx <= now) {
    /* This failure sets the next slot: the probe's, or the first of an episode. A lone process
     * keeps its own delay (its attempt number is the episode's round); a probe that joined
     * late follows the episode's round instead of restarting the backoff from the bottom. */
    uint32_t round = atomic_fetch_add(&d->round, 1) + 1;
    unsigned delay = own_delay_ms;
    if (own_attempt != round && cfgp)
      delay = cg_backoff_ms(cfgp, round, atomic_load(&d->prev_delay_ms), rnd());
    atomic_store(&d->prev_delay_ms, delay);
    int64_t want = now + (int64_t)delay * MS_NS;
    /* Only move it later than a slot someone else has set meanwhile. */
    while (nx < want && !atomic_compare_exchange_weak(&d->next_ns, &nx, want)) {}
  }
  release_probe(t);
  wake_all(d);
}

void cg_coord_success(struct cg_coord_ticket *t)
{
  if (!valid(t)) { t->d = NULL; return; }
  struct cg_coord_dst *d = t->d;
  int64_t now = cg_mono_ns();
  atomic_store(&d->last_ns, now);
  atomic_fetch_add(&d->attempts, 1);
  atomic_store(&d->streak, 0);
  atomic_store(&d->round, 0);
  atomic_store(&d->ep_joins, 0);
  atomic_store(&d->next_ns, 0);
  atomic_fetch_add(&d->ok_seq, 1);
  release_probe(t);
  uint32_t open = CG_COORD_OPEN;
  int closed_it = atomic_compare_exchange_strong(&d->state, &open, CG_COORD_CLOSED);
  uint64_t f = 0, p = 0;
  if (closed_it) {
    f = atomic_exchange(&d->ep_failures, 0);
    p = atomic_exchange(&d->ep_probes, 0);
  }
  atomic_fetch_sub(&d->ep_active, 1);
  wake_all(d);   /* before the record: the waiters' attempts do not wait for our write() */
  if (closed_it) log_closed(d, f, p, now - atomic_load(&d->opened_ns), atomic_load(&d->opened_by));
  else { atomic_store(&d->ep_failures, 0); atomic_store(&d->ep_probes, 0); }
  t->d = NULL;
}

void cg_coord_leave(struct cg_coord_ticket *t)
{
  if (valid(t)) {
    atomic_fetch_sub(&t->d->ep_active, 1);
    if (t->probe) {
      release_probe(t);
      wake_all(t->d);   /* the slot is free again: another waiter probes */
    }
  }
  t->d = NULL;
}

/* What the schedule says now: a verdict, or 0 with the time to look again. */
static int decide(struct cg_coord_ticket *t, int64_t now, int64_t limit, int64_t *until)
{
  if (!valid(t)) { t->d = NULL; return CG_COORD_LOST; }
  struct cg_coord_dst *d = t->d;
  if (atomic_load(&d->ok_seq) != t->ok_seq) return CG_COORD_GO;
  if (now >= limit) return CG_COORD_TIMEOUT;
  int64_t nx = atomic_load(&d->next_ns), u;
  if (now >= nx && now < t->due_ns) {
    /* The slot is here, but this connect's own backoff is not over: coordination only ever
     * takes attempts out of a connect's own schedule, never adds one. */
    u = t->due_ns;
  } else if (now >= nx) {
    if (claim_probe(t, now)) return CG_COORD_PROBE;
    /* A probe is out: its outcome wakes us; look at its liveness meanwhile. */
    u = now + CG_COORD_PROBE_CHECK_MS * MS_NS;
  } else {
    u = nx;
  }
  if (!t->waited) { t->waited = 1; atomic_fetch_add(&d->waits, 1); }
  *until = u < limit ? u : limit;
  return 0;
}

int cg_coord_wait(struct cg_coord_ticket *t, int64_t limit, int (*restart_ok)(void))
{
  if (!valid(t)) { t->d = NULL; return CG_COORD_LOST; }
  struct cg_coord_dst *d = t->d;
  atomic_fetch_add(&d->waiting, 1);
  int v;
  for (;;) {
    uint32_t ep = atomic_load(&d->epoch);
    int64_t until = 0;
    v = decide(t, cg_mono_ns(), limit, &until);
    if (v) break;
    int e = futex_wait_until(&d->epoch, ep, until);
    if (e == EINTR && restart_ok && !restart_ok()) { v = CG_COORD_INTR; break; }
  }
  atomic_fetch_sub(&d->waiting, 1);
  return v;
}

int cg_coord_check(struct cg_coord_ticket *t, int64_t now, int64_t limit, int64_t *recheck)
{
  int64_t until = 0;
  int v = decide(t, now, limit, &until);
  if (v) return v;
  int64_t poll_end = now + CG_COORD_POLL_MS * MS_NS;
  *recheck = until < poll_end ? until : poll_end;
  return 0;
}

/* ---------- fork, exit ---------- */

void cg_coord_after_fork(void)
{
  /* The mapping is inherited and stays shared (the table is every process's); the probe roles
   * name the parent's tids, so the child holds none. It is a user only once it registers. */
  atomic_store(&tab_lock, 0);
}

__attribute__((cold)) void cg_coord_at_exit(void)
{
  struct cg_coord_table *t = tab;
  if (!t || registered_pid != getpid() || !table_lock(t)) return;
  pid_t pid = getpid();
  int others = 0;
  for (int i = 0; i < CG_COORD_USERS; i++)
    if (atomic_load(&t->users[i]) == pid) atomic_store(&t->users[i], 0);
  /* Stops at the first live user: many processes of a crowd exit together, each under the
   * lock, and one kill() apiece keeps that short. */
  for (int i = 0; i < CG_COORD_USERS && !others; i++) {
    int32_t u = atomic_load(&t->users[i]);
    /* An exited user its parent has not reaped yet (a zombie) answers kill(): not a user. */
    if (u && (gone(u) || zombie(u))) atomic_store(&t->users[i], 0);
    else if (u) others = 1;
  }
  registered_pid = 0;
  if (!others && !atomic_load(&t->overflow)) {
    /* The last user: nobody keeps a use for the schedule. A process that opened the file just
     * now sees dead under this lock and makes a new one. */
    atomic_store(&t->dead, 1);
    unlink(cg_coord_path());
  }
  table_unlock(t);
}
