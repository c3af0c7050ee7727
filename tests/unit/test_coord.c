/* The shared retry schedule (coord.c) driven by several processes (fork) and threads: one probe
 * per slot, every waiter woken at once by a success, a dead probe replaced within a slot, own
 * limits and signals honoured, the table owner-only, bounded and removed by its last user. */
#include "cgtest.h"
#include "clock.h"
#include "config.h"
#include "coord.h"
#include "engine_int.h"
#include "log.h"
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#define MS 1000000LL

static char path[128], logpath[128];
static struct cg_config cfg;

static void setup_with(unsigned dests, unsigned keep_ms)
{
  static int n;
  snprintf(path, sizeof path, "/dev/shm/cgtest-coord.%d.%d", (int)getpid(), n++);
  snprintf(logpath, sizeof logpath, "/tmp/cgtest-coord.%d.%d.log", (int)getpid(), n);
  unlink(path);
  unlink(logpath);
  cg_config_defaults(&cfg);
  cfg.coord_dests = dests;
  cfg.coord_keep_ms = keep_ms;
  cfg.backoff_ms = 40;
  cfg.backoff_max_ms = 160;
  cfg.jitter = CG_JITTER_NONE;
  strcpy(cfg.log, logpath);
  cg_log_configure(&cfg);
  cg_coord_configure(&cfg);
  cg_coord_set_path(path);
}

static void setup(void) { setup_with(256, 60000); }

static struct sockaddr_in dst(unsigned port)
{
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}
#define SA(a) ((const struct sockaddr *)&(a)), sizeof(a)

static int count_records(const char *event)
{
  FILE *f = fopen(logpath, "r");
  if (!f) return 0;
  char line[4096], want[64];
  snprintf(want, sizeof want, "connguard %s ", event);
  int n = 0;
  while (fgets(line, sizeof line, f)) if (strstr(line, want)) n++;
  fclose(f);
  return n;
}

static unsigned own_delay(unsigned attempt)
{
  unsigned d = 40;
  for (unsigned i = 1; i < attempt && d < 160; i++) d *= 2;
  return d > 160 ? 160 : d;
}

START_TEST(lone_process_keeps_its_own_schedule)
{
  setup();
  struct sockaddr_in a = dst(1);
  struct cg_coord_ticket t = { 0 };
  int64_t t0 = cg_mono_ns();
  cg_coord_failed(&t, SA(a), 1, 70);
  ck_assert_ptr_nonnull(t.d);
  struct stat st;
  ck_assert_int_eq(stat(path, &st), 0);
  ck_assert_int_eq(st.st_mode & 0777, 0600);
  ck_assert_int_eq(cg_coord_wait(&t, t0 + 5000 * MS, NULL), CG_COORD_PROBE);
  int64_t t1 = cg_mono_ns();
  ck_assert_msg(t1 - t0 >= 70 * MS && t1 - t0 < 250 * MS, "first slot after %lld ms", (long long)((t1 - t0) / MS));
  cg_coord_failed(&t, SA(a), 2, 30);
  ck_assert_int_eq(cg_coord_wait(&t, t0 + 5000 * MS, NULL), CG_COORD_PROBE);
  int64_t t2 = cg_mono_ns();
  ck_assert_msg(t2 - t1 >= 30 * MS && t2 - t1 < 200 * MS, "second slot after %lld ms", (long long)((t2 - t1) / MS));
  cg_coord_failed(&t, SA(a), 3, 10);
  ck_assert_int_eq(cg_coord_wait(&t, t0 + 5000 * MS, NULL), CG_COORD_PROBE);
  struct cg_coord_dst *d = t.d;
  /* Three failures of one connect alone: not a shared outage, no breaker record. */
  ck_assert_uint_eq(atomic_load(&d->state), CG_COORD_CLOSED);
  cg_coord_success(&t);
  ck_assert_ptr_null(t.d);
  ck_assert_uint_eq(atomic_load(&d->attempts), 4);
  ck_assert_uint_eq(atomic_load(&d->failures), 3);
  ck_assert_uint_eq(atomic_load(&d->probes), 3);
  ck_assert_int_eq(count_records("breaker_open"), 0);
  ck_assert_int_eq(count_records("breaker_closed"), 0);
  cg_coord_at_exit();
  ck_assert_int_ne(access(path, F_OK), 0);   /* the last user removed it */
  unlink(logpath);
}
END_TEST

/* ---- many clients against a server that comes up late ---- */

struct shared {
  atomic_int attempts_down;       /* real attempts while "down" */
  atomic_int attempts_total;
  atomic_int probes;
  atomic_int ready;
  _Atomic int64_t up_ns;          /* the server is "up" from then on */
  _Atomic int64_t first_ok_ns;
  _Atomic int64_t ok_ns[64];
  atomic_int verdicts[8];
};

static struct shared *sh;

static void client(int idx, int coordinated)
{
  struct sockaddr_in a = dst(2);
  struct cg_coord_ticket t = { 0 };
  int64_t start = cg_mono_ns(), limit = start + 5000 * MS;
  unsigned attempt = 1;
  for (;;) {
    /* A real attempt. */
    int64_t now = cg_mono_ns();
    atomic_fetch_add(&sh->attempts_total, 1);
    if (now >= atomic_load(&sh->up_ns)) {
      int64_t z = 0;
      atomic_compare_exchange_strong(&sh->first_ok_ns, &z, now);
      atomic_store(&sh->ok_ns[idx], now);
      if (coordinated) cg_coord_success(&t);
      return;
    }
    atomic_fetch_add(&sh->attempts_down, 1);
    unsigned delay = own_delay(attempt);
    if (!coordinated) {
      struct timespec ts = { 0, (long)delay * MS };
      nanosleep(&ts, NULL);
    } else {
      cg_coord_failed(&t, SA(a), attempt, delay);
      ck_assert_ptr_nonnull(t.d);
      int v = cg_coord_wait(&t, limit, NULL);
      atomic_fetch_add(&sh->verdicts[v], 1);
      if (v == CG_COORD_PROBE) atomic_fetch_add(&sh->probes, 1);
      ck_assert_int_ne(v, CG_COORD_TIMEOUT);
    }
    attempt++;
  }
}

static void run_clients(int n, int coordinated, int use_threads);

static void *thread_main(void *arg)
{
  client((int)(intptr_t)arg, 1);
  return NULL;
}

static void run_clients(int n, int coordinated, int use_threads)
{
  sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  ck_assert_ptr_ne(sh, MAP_FAILED);
  memset(sh, 0, sizeof *sh);
  atomic_store(&sh->up_ns, cg_mono_ns() + 700 * MS);
  if (use_threads) {
    pthread_t th[64];
    for (int i = 0; i < n; i++) pthread_create(&th[i], NULL, thread_main, (void *)(intptr_t)i);
    for (int i = 0; i < n; i++) pthread_join(th[i], NULL);
    return;
  }
  pid_t pids[64];
  for (int i = 0; i < n; i++) {
    pids[i] = fork();
    if (pids[i] == 0) {
      cg_coord_after_fork();
      client(i, coordinated);
      cg_coord_at_exit();
      _exit(0);
    }
  }
  for (int i = 0; i < n; i++) {
    int st;
    ck_assert_int_eq(waitpid(pids[i], &st, 0), pids[i]);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "client %d failed", i);
  }
}

static void check_wakeups(int n)
{
  int64_t first = atomic_load(&sh->first_ok_ns), last = 0;
  for (int i = 0; i < n; i++) {
    int64_t t = atomic_load(&sh->ok_ns[i]);
    ck_assert_msg(t, "client %d never connected", i);
    if (t > last) last = t;
  }
  ck_assert_msg(last - first < 100 * MS, "last client connected %lld ms after the first",
                (long long)((last - first) / MS));
}

START_TEST(processes_share_one_probe_per_slot)
{
  setup();
  const int n = 12;
  run_clients(n, 0, 0);
  int off = atomic_load(&sh->attempts_down);
  munmap(sh, sizeof *sh);
  run_clients(n, 1, 0);
  int on = atomic_load(&sh->attempts_down);
  check_wakeups(n);
  /* Off: every client tries in every slot; on: each tries once, then one probe per slot. */
  ck_assert_msg(on * 3 <= off, "attempts during the outage: %d coordinated, %d not", on, off);
  ck_assert_msg(on <= n + 12, "%d attempts coordinated", on);
  ck_assert_int_eq(count_records("breaker_open"), 1);
  ck_assert_int_eq(count_records("breaker_closed"), 1);
  /* Only the children used it: the last one to exit removed it. */
  ck_assert_int_ne(access(path, F_OK), 0);
  fprintf(stderr, "coord unit: %d clients, attempts during outage: %d coordinated, %d not\n", n, on, off);
  unlink(logpath);
}
END_TEST

START_TEST(threads_share_one_probe_per_slot)
{
  setup();
  const int n = 8;
  run_clients(n, 1, 1);
  check_wakeups(n);
  ck_assert_msg(atomic_load(&sh->attempts_down) <= n + 12, "%d attempts", atomic_load(&sh->attempts_down));
  cg_coord_at_exit();
  unlink(logpath);
}
END_TEST

START_TEST(a_killed_probe_stalls_nobody_beyond_a_slot)
{
  setup();
  struct sockaddr_in a = dst(3);
  pid_t p = fork();
  if (p == 0) {
    cg_coord_after_fork();
    struct cg_coord_ticket t = { 0 };
    cg_coord_failed(&t, SA(a), 1, 0);
    if (cg_coord_wait(&t, cg_mono_ns() + 1000 * MS, NULL) != CG_COORD_PROBE) _exit(3);
    raise(SIGKILL);   /* dies holding the probe role, lease 5.5 s */
    _exit(4);
  }
  int st;
  waitpid(p, &st, 0);
  ck_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
  struct cg_coord_ticket t = { 0 };
  int64_t t0 = cg_mono_ns();
  cg_coord_failed(&t, SA(a), 1, 40);
  ck_assert_uint_ne(atomic_load(&t.d->probe), 0);      /* still names the dead task */
  ck_assert_int_eq(cg_coord_wait(&t, t0 + 3000 * MS, NULL), CG_COORD_PROBE);
  int64_t dt = cg_mono_ns() - t0;
  ck_assert_msg(dt < 40 * MS + 360 * MS, "took over after %lld ms", (long long)(dt / MS));
  cg_coord_success(&t);
  cg_coord_at_exit();
  unlink(logpath);
}
END_TEST

static void on_alarm(int s) { (void)s; }
static int never_restart(void) { return 0; }
static int always_restart(void) { return 1; }

START_TEST(own_limit_and_signals_end_the_wait)
{
  setup();
  struct sockaddr_in a = dst(4);
  struct cg_coord_ticket t = { 0 };
  cg_coord_failed(&t, SA(a), 1, 10000);   /* next slot in 10 s */
  int64_t t0 = cg_mono_ns();
  ck_assert_int_eq(cg_coord_wait(&t, t0 + 100 * MS, NULL), CG_COORD_TIMEOUT);
  int64_t dt = cg_mono_ns() - t0;
  ck_assert_msg(dt >= 100 * MS && dt < 400 * MS, "own limit after %lld ms", (long long)(dt / MS));

  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_alarm;     /* no SA_RESTART */
  sigaction(SIGALRM, &sa, NULL);
  struct itimerval it = { { 0, 0 }, { 0, 50000 } };
  setitimer(ITIMER_REAL, &it, NULL);
  t0 = cg_mono_ns();
  ck_assert_int_eq(cg_coord_wait(&t, t0 + 2000 * MS, never_restart), CG_COORD_INTR);
  dt = cg_mono_ns() - t0;
  ck_assert_msg(dt >= 45 * MS && dt < 500 * MS, "interrupted after %lld ms", (long long)(dt / MS));
  /* A restarting handler is slept through. */
  setitimer(ITIMER_REAL, &it, NULL);
  t0 = cg_mono_ns();
  ck_assert_int_eq(cg_coord_wait(&t, t0 + 200 * MS, always_restart), CG_COORD_TIMEOUT);
  ck_assert(cg_mono_ns() - t0 >= 200 * MS);
  cg_coord_leave(&t);
  cg_coord_at_exit();
  unlink(logpath);
}
END_TEST

START_TEST(a_later_connect_alone_starts_a_schedule_of_its_own)
{
  setup();
  cfg.backoff_ms = 400;     /* the old episode's next slot would be 1.6 s away */
  cfg.backoff_max_ms = 1600;
  cg_coord_configure(&cfg);
  struct sockaddr_in a = dst(11);
  struct cg_coord_ticket p = { 0 }, q = { 0 };
  for (unsigned i = 1; i <= 4; i++) cg_coord_failed(&p, SA(a), i, 1000);   /* round 4, gave up */
  cg_coord_leave(&p);
  /* Later, another connect alone: its own first backoff, no breaker although the destination
   * has failed 5 times in a row across the two. */
  int64_t t0 = cg_mono_ns();
  cg_coord_failed(&q, SA(a), 1, 40);
  ck_assert_int_eq(cg_coord_wait(&q, t0 + 2000 * MS, NULL), CG_COORD_PROBE);
  int64_t dt = cg_mono_ns() - t0;
  ck_assert_msg(dt >= 40 * MS && dt < 800 * MS, "probed after %lld ms", (long long)(dt / MS));
  ck_assert_uint_eq(atomic_load(&q.d->state), CG_COORD_CLOSED);
  ck_assert_int_eq(count_records("breaker_open"), 0);
  cg_coord_leave(&q);
  cg_coord_at_exit();
  unlink(logpath);
}
END_TEST

START_TEST(a_connect_never_probes_before_its_own_backoff)
{
  setup();
  struct sockaddr_in a = dst(9);
  struct cg_coord_ticket p = { 0 }, q = { 0 };
  cg_coord_failed(&p, SA(a), 1, 20);          /* the slot: in 20 ms */
  int64_t t0 = cg_mono_ns();
  cg_coord_failed(&q, SA(a), 1, 150);         /* q's own backoff: 150 ms */
  q.due_ns = t0 + 150 * MS;
  /* p leaves without probing: the slot passes unclaimed, q waits for its own time. */
  cg_coord_leave(&p);
  ck_assert_int_eq(cg_coord_wait(&q, t0 + 2000 * MS, NULL), CG_COORD_PROBE);
  int64_t dt = cg_mono_ns() - t0;
  ck_assert_msg(dt >= 150 * MS && dt < 400 * MS, "probed after %lld ms", (long long)(dt / MS));
  cg_coord_leave(&q);
  cg_coord_at_exit();
  unlink(logpath);
}
END_TEST

START_TEST(fork_child_holds_no_probe_role)
{
  setup();
  struct sockaddr_in a = dst(5);
  struct cg_coord_ticket t = { 0 };
  cg_coord_failed(&t, SA(a), 1, 0);
  ck_assert_int_eq(cg_coord_wait(&t, cg_mono_ns() + 1000 * MS, NULL), CG_COORD_PROBE);
  pid_t p = fork();
  if (p == 0) {
    cg_coord_after_fork();
    /* The child's own connect: it waits for the parent's probe, it does not inherit it. */
    struct cg_coord_ticket c = { 0 };
    cg_coord_failed(&c, SA(a), 1, 0);
    int v = cg_coord_wait(&c, cg_mono_ns() + 2000 * MS, NULL);
    cg_coord_leave(&c);
    cg_coord_at_exit();
    _exit(v == CG_COORD_GO ? 0 : 10 + v);
  }
  struct timespec ts = { 0, 200 * MS };
  nanosleep(&ts, NULL);
  cg_coord_success(&t);
  int st;
  waitpid(p, &st, 0);
  ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %d", WEXITSTATUS(st));
  cg_coord_at_exit();
  ck_assert_int_ne(access(path, F_OK), 0);
  unlink(logpath);
}
END_TEST

START_TEST(table_is_bounded_and_forgets_recovered_destinations)
{
  setup_with(16, 0);
  struct cg_coord_ticket t[17];
  memset(t, 0, sizeof t);
  for (int i = 0; i < 16; i++) {
    struct sockaddr_in a = dst(100 + (unsigned)i);
    cg_coord_failed(&t[i], SA(a), 1, 1000);
    ck_assert_ptr_nonnull(t[i].d);
  }
  struct sockaddr_in a = dst(200);
  cg_coord_failed(&t[16], SA(a), 1, 1000);
  ck_assert_ptr_null(t[16].d);                 /* full: this one goes uncoordinated */
  struct cg_coord_dst *old = t[3].d;
  cg_coord_success(&t[3]);                     /* recovered, keep 0: its slot is free */
  cg_coord_failed(&t[16], SA(a), 1, 1000);
  ck_assert_ptr_eq(t[16].d, old);
  struct stat st;
  ck_assert_int_eq(stat(path, &st), 0);
  ck_assert_int_eq((size_t)st.st_size, sizeof(struct cg_coord_table) + 16 * sizeof(struct cg_coord_dst));
  for (int i = 0; i < 17; i++) cg_coord_leave(&t[i]);
  cg_coord_at_exit();
  unlink(logpath);
}
END_TEST

START_TEST(a_joiner_with_another_size_uses_the_tables)
{
  setup_with(32, 60000);
  struct sockaddr_in a = dst(8);
  struct cg_coord_ticket t = { 0 }, u = { 0 };
  cg_coord_failed(&t, SA(a), 1, 1000);
  ck_assert_ptr_nonnull(t.d);
  /* Another process, CONNGUARD_COORD_DESTS=64: it joins the 32-slot table, same entry. */
  cfg.coord_dests = 64;
  cg_coord_configure(&cfg);
  cg_coord_set_path(path);
  cg_coord_failed(&u, SA(a), 1, 1000);
  ck_assert_ptr_nonnull(u.d);
  ck_assert_uint_eq(cg_coord_table()->nslots, 32);
  ck_assert_uint_eq(atomic_load(&u.d->failures), 2);
  cg_coord_leave(&t);
  cg_coord_leave(&u);
  cg_coord_at_exit();
  unlink(logpath);
}
END_TEST

START_TEST(a_table_left_dead_by_a_crash_is_replaced)
{
  setup();
  struct sockaddr_in a = dst(10);
  struct cg_coord_ticket t = { 0 };
  cg_coord_failed(&t, SA(a), 1, 1000);
  ck_assert_ptr_nonnull(t.d);
  /* Its last user was killed between marking it dead and unlinking it. */
  atomic_store(&cg_coord_table()->dead, 1);
  struct stat before, after;
  ck_assert_int_eq(stat(path, &before), 0);
  cg_coord_set_path(path);                      /* another process */
  struct cg_coord_ticket u = { 0 };
  cg_coord_failed(&u, SA(a), 1, 1000);
  ck_assert_ptr_nonnull(u.d);
  ck_assert_int_eq(stat(path, &after), 0);
  ck_assert(after.st_ino != before.st_ino);
  ck_assert_uint_eq(atomic_load(&cg_coord_table()->dead), 0);
  cg_coord_leave(&u);
  cg_coord_at_exit();
  ck_assert_int_ne(access(path, F_OK), 0);
  unlink(logpath);
}
END_TEST

START_TEST(a_file_not_ours_is_refused)
{
  setup();
  struct sockaddr_in a = dst(6);
  int fd = open(path, O_CREAT | O_EXCL | O_RDWR, 0644);
  ck_assert_int_ge(fd, 0);
  fchmod(fd, 0644);
  close(fd);
  struct cg_coord_ticket t = { 0 };
  cg_coord_failed(&t, SA(a), 1, 10);
  ck_assert_ptr_null(t.d);
  unlink(path);
  /* A symlink planted at the path is not followed either (and the process stays uncoordinated:
   * one warning, no retry of the mapping per connect). */
  cg_coord_set_path(path);
  ck_assert_int_eq(symlink("/tmp/cgtest-coord-target", path), 0);
  cg_coord_failed(&t, SA(a), 1, 10);
  ck_assert_ptr_null(t.d);
  ck_assert_int_ne(access("/tmp/cgtest-coord-target", F_OK), 0);
  unlink(path);
  unlink(logpath);
}
END_TEST

START_TEST(keys_fold_v4_mapped_addresses)
{
  struct sockaddr_in a = dst(80);
  struct sockaddr_in6 b;
  memset(&b, 0, sizeof b);
  b.sin6_family = AF_INET6;
  b.sin6_port = htons(80);
  inet_pton(AF_INET6, "::ffff:127.0.0.1", &b.sin6_addr);
  uint16_t f1, p1, f2, p2;
  uint8_t k1[16], k2[16];
  ck_assert(cg_coord_key(SA(a), &f1, &p1, k1));
  ck_assert(cg_coord_key(SA(b), &f2, &p2, k2));
  ck_assert(f1 == f2 && p1 == p2 && !memcmp(k1, k2, 16));
  struct sockaddr_un { sa_family_t f; char p[108]; } u = { AF_UNIX, "/x" };
  ck_assert(!cg_coord_key((struct sockaddr *)&u, sizeof u, &f1, &p1, k1));
}
END_TEST

START_TEST(off_means_no_table)
{
  setup();
  cfg.coordinate = 0;
  cg_coord_configure(&cfg);
  struct sockaddr_in a = dst(7);
  struct cg_coord_ticket t = { 0 };
  cg_coord_failed(&t, SA(a), 1, 10);
  ck_assert_ptr_null(t.d);
  ck_assert_int_ne(access(path, F_OK), 0);
}
END_TEST

START_TEST(a_waiters_limit_is_its_own_schedules_last_attempt)
{
  cg_config_defaults(&cg_cfg);
  cg_cfg.backoff_ms = 10;
  cg_cfg.backoff_max_ms = 40;
  cg_cfg.retries = 2;
  int64_t s = 1000 * MS;
  /* Two retries left after attempt 1: 10 + 20 ms. */
  ck_assert_int_eq(cg_coord_limit(1, s, s, s + 10000 * MS), s + 30 * MS);
  /* Many retries: the budget's last stretch, min(250 ms, a tenth). */
  cg_cfg.retries = 1000;
  ck_assert_int_eq(cg_coord_limit(1, s, s, s + 10000 * MS), s + 9750 * MS);
  ck_assert_int_eq(cg_coord_limit(1, s, s, s + 1000 * MS), s + 900 * MS);
  /* No cap on the count at all, and a huge backoff cap: no overflow. */
  cg_cfg.retries = 0xffffffffu;
  cg_cfg.backoff_max_ms = 86400000;
  ck_assert_int_eq(cg_coord_limit(3, s, s, s + 86400000 * MS), s + (86400000 - 250) * MS);
}
END_TEST

static Suite *suite(void)
{
  Suite *s = suite_create("coord");
  TCase *t = tcase_create("coord");
  tcase_set_timeout(t, 30);
  tcase_add_test(t, lone_process_keeps_its_own_schedule);
  tcase_add_test(t, processes_share_one_probe_per_slot);
  tcase_add_test(t, threads_share_one_probe_per_slot);
  tcase_add_test(t, a_killed_probe_stalls_nobody_beyond_a_slot);
  tcase_add_test(t, own_limit_and_signals_end_the_wait);
  tcase_add_test(t, a_connect_never_probes_before_its_own_backoff);
  tcase_add_test(t, a_later_connect_alone_starts_a_schedule_of_its_own);
  tcase_add_test(t, fork_child_holds_no_probe_role);
  tcase_add_test(t, table_is_bounded_and_forgets_recovered_destinations);
  tcase_add_test(t, a_joiner_with_another_size_uses_the_tables);
  tcase_add_test(t, a_table_left_dead_by_a_crash_is_replaced);
  tcase_add_test(t, a_file_not_ours_is_refused);
  tcase_add_test(t, keys_fold_v4_mapped_addresses);
  tcase_add_test(t, a_waiters_limit_is_its_own_schedules_last_attempt);
  tcase_add_test(t, off_means_no_table);
  suite_add_tcase(s, t);
  return s;
}

CG_TEST_MAIN(suite)
