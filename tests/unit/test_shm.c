/* Safe shared-memory files (shim/core/shm.h): exclusive creation, squatted names refused and
 * left alone, reservation before use, no descriptor left behind. The full-tmpfs cases need a
 * mount of their own: tests/integration/test_hostile_trace.py. */
#include "cgtest.h"
#include "shm.h"
#include "stats.h"
#include <pthread.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char path[128];

static void setup(void)
{
  snprintf(path, sizeof path, "/dev/shm/cgtest-shm.%d", (int)getpid());
  unlink(path);
}
static void teardown(void) { unlink(path); }

static int nfds(void)
{
  DIR *d = opendir("/proc/self/fd");
  int n = 0;
  while (readdir(d)) n++;
  closedir(d);
  return n;
}

START_TEST(create_is_private_reserved_and_leaves_no_fd)
{
  int st, err, before = nfds();
  umask(0);   /* must not widen the mode */
  char *m = cg_shm_create(path, 1 << 20, 8192, 0, &st, &err);
  ck_assert_ptr_nonnull(m);
  ck_assert_int_eq(st, CG_SHM_OK);
  ck_assert_int_eq(nfds(), before);
  struct stat s;
  ck_assert_int_eq(lstat(path, &s), 0);
  ck_assert(S_ISREG(s.st_mode));
  ck_assert_int_eq(s.st_mode & 0777, 0600);
  ck_assert_int_eq(s.st_uid, geteuid());
  ck_assert_int_eq(s.st_size, 1 << 20);
  ck_assert_int_eq(s.st_blocks * 512, 8192);   /* the head is reserved, the rest is not yet */
  m[0] = 1;
  m[8191] = 1;
  ck_assert_int_eq(cg_shm_reserve(m + 100000, 10), 0);
  ck_assert_int_eq(stat(path, &s), 0);
  ck_assert_int_eq(s.st_blocks * 512, 8192 + 4096);
  m[100005] = 1;
  munmap(m, 1 << 20);
}
END_TEST

/* Rss of the mapping at addr, from /proc/self/smaps. */
static long mapped_kb(const void *addr)
{
  FILE *f = fopen("/proc/self/smaps", "r");
  char line[512];
  int in = 0;
  long kb = -1;
  while (f && fgets(line, sizeof line, f)) {
    unsigned long a, b;
    if (sscanf(line, "%lx-%lx ", &a, &b) == 2 && strchr(line, '-') < strchr(line, ' ')) {
      in = (unsigned long)addr >= a && (unsigned long)addr < b;
      continue;
    }
    if (in && sscanf(line, "Rss: %ld kB", &kb) == 1) break;
  }
  if (f) fclose(f);
  return kb;
}

START_TEST(populated_head_is_reserved_and_already_mapped)
{
  int st, err, before = nfds();
  mode_t old = umask(0277);   /* must not narrow the mode either */
  char *m = cg_shm_create(path, 1 << 20, 5000, CG_SHM_POPULATE, &st, &err);
  umask(old);
  ck_assert_ptr_nonnull(m);
  ck_assert_int_eq(st, CG_SHM_OK);
  ck_assert_int_eq(nfds(), before);
  struct stat s;
  ck_assert_int_eq(lstat(path, &s), 0);
  ck_assert_int_eq(s.st_mode & 0777, 0600);
  ck_assert_int_eq(s.st_size, 1 << 20);
  ck_assert_int_eq(s.st_blocks * 512, 8192);   /* the head, rounded up to pages; nothing more */
  /* Populated: the head's pages are in this process's page table before any store (Rss counts
   * mapped pages; a reservation by fallocate alone would show 0 kB). */
  ck_assert_int_eq(mapped_kb(m), 8);
  ck_assert_int_eq(m[0] | m[8191], 0);
  m[0] = 1;
  m[8191] = 1;
  munmap(m, 1 << 20);
}
END_TEST

START_TEST(leftover_of_ours_replaced_only_when_asked)
{
  int st, err;
  int fd = open(path, O_CREAT | O_WRONLY, 0600);
  ck_assert(write(fd, "old", 3) == 3);
  close(fd);
  ck_assert_ptr_null(cg_shm_create(path, 4096, 4096, 0, &st, &err));
  ck_assert_int_eq(st, CG_SHM_SQUATTED);
  char *m = cg_shm_create(path, 4096, 4096, CG_SHM_REPLACE, &st, &err);
  ck_assert_ptr_nonnull(m);
  ck_assert_int_eq(m[0], 0);
  munmap(m, 4096);
}
END_TEST

START_TEST(squatted_names_refused_and_left_alone)
{
  int st, err;
  /* A symlink to a file we would otherwise write. */
  char target[160];
  snprintf(target, sizeof target, "%s.target", path);
  int fd = open(target, O_CREAT | O_WRONLY, 0600);
  close(fd);
  ck_assert_int_eq(symlink(target, path), 0);
  ck_assert_ptr_null(cg_shm_create(path, 4096, 4096, CG_SHM_REPLACE, &st, &err));
  ck_assert_int_eq(st, CG_SHM_SQUATTED);
  ck_assert_ptr_null(cg_shm_open_shared(path, 4096, &st, &err));
  ck_assert_int_eq(st, CG_SHM_SQUATTED);
  struct stat s;
  ck_assert_int_eq(lstat(path, &s), 0);
  ck_assert(S_ISLNK(s.st_mode));
  ck_assert_int_eq(stat(target, &s), 0);
  ck_assert_int_eq(s.st_size, 0);
  unlink(path);
  unlink(target);
  /* A FIFO: opening it would block or fail; it is neither used nor removed. */
  ck_assert_int_eq(mkfifo(path, 0600), 0);
  ck_assert_ptr_null(cg_shm_create(path, 4096, 4096, CG_SHM_REPLACE, &st, &err));
  ck_assert_int_eq(st, CG_SHM_SQUATTED);
  ck_assert_ptr_null(cg_shm_open_shared(path, 4096, &st, &err));
  ck_assert_int_eq(st, CG_SHM_SQUATTED);
  ck_assert_int_eq(lstat(path, &s), 0);
  ck_assert(S_ISFIFO(s.st_mode));
  unlink(path);
  /* A file of ours others may write to: not joined. */
  fd = open(path, O_CREAT | O_RDWR, 0600);
  ck_assert_int_eq(ftruncate(fd, 4096), 0);
  fchmod(fd, 0666);
  close(fd);
  ck_assert_ptr_null(cg_shm_open_shared(path, 4096, &st, &err));
  ck_assert_int_eq(st, CG_SHM_SQUATTED);
}
END_TEST

START_TEST(shared_created_then_joined)
{
  int st, err, before = nfds();
  char *a = cg_shm_open_shared(path, 3 * 4096, &st, &err);
  ck_assert_ptr_nonnull(a);
  char *b = cg_shm_open_shared(path, 3 * 4096, &st, &err);
  ck_assert_ptr_nonnull(b);
  ck_assert_int_eq(nfds(), before);
  a[5000] = 42;
  ck_assert_int_eq(b[5000], 42);
  struct stat s;
  ck_assert_int_eq(stat(path, &s), 0);
  ck_assert_int_eq(s.st_blocks * 512, 3 * 4096);
  ck_assert_int_eq(s.st_mode & 0777, 0600);
  /* A different size (another layout): refused, not resized. */
  ck_assert_ptr_null(cg_shm_open_shared(path, 4096, &st, &err));
  ck_assert_int_eq(err, EINVAL);
  munmap(a, 3 * 4096);
  munmap(b, 3 * 4096);
  /* No temporary name left behind. */
  DIR *d = opendir("/dev/shm");
  struct dirent *de;
  char base[64];
  snprintf(base, sizeof base, "cgtest-shm.%d.new", (int)getpid());
  while ((de = readdir(d))) ck_assert(strncmp(de->d_name, base, strlen(base)) != 0);
  closedir(d);
}
END_TEST

START_TEST(file_size_limit_is_no_signal)
{
  /* SIGXFSZ's default action would kill the program. */
  struct rlimit rl = { 4096, RLIM_INFINITY };
  ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
  int st, err;
  ck_assert_ptr_null(cg_shm_create(path, 1 << 20, 1 << 20, 0, &st, &err));
  ck_assert_int_eq(st, CG_SHM_NOSPACE);
  ck_assert_int_eq(access(path, F_OK), -1);
}
END_TEST

/* Two (here eight) threads making their first socket at once publish the lazy stats segment
 * once: the losers wait for it, so what they count next lands in the shared segment (none
 * lost in the private counters left behind), and the segment in use is never replaced. */
#define PUB_THREADS 8
static pthread_barrier_t pub_barrier;
static struct cg_stats *pub_seen[PUB_THREADS];
static void *first_socket(void *arg)
{
  int i = (int)(intptr_t)arg;
  pthread_barrier_wait(&pub_barrier);
  cg_stats_use();
  CG_STAT_ADD(connect_attempts, 1);
  pub_seen[i] = cg_stats;
  return NULL;
}

START_TEST(stats_published_once_by_racing_first_sockets)
{
  for (int round = 0; round < 20; round++) {
    pid_t child = fork();
    ck_assert_int_ge(child, 0);
    if (child == 0) {
      /* Fresh process: nothing published yet. */
      cg_stats_after_fork();
      cg_stats_init(1);
      unsigned gen0 = atomic_load(&cg_stats_gen);
      pthread_t t[PUB_THREADS];
      pthread_barrier_init(&pub_barrier, NULL, PUB_THREADS);
      for (int i = 0; i < PUB_THREADS; i++) pthread_create(&t[i], NULL, first_socket, (void *)(intptr_t)i);
      for (int i = 0; i < PUB_THREADS; i++) pthread_join(t[i], NULL);
      int bad = 0;
      for (int i = 0; i < PUB_THREADS; i++) if (pub_seen[i] != cg_stats) bad |= 1;
      if (atomic_load(&cg_stats->connect_attempts) != PUB_THREADS) bad |= 2;
      if (atomic_load(&cg_stats_gen) != gen0 + 1) bad |= 4;   /* one publication */
      char p[96];
      snprintf(p, sizeof p, "/dev/shm/connguard.%u.%d", (unsigned)geteuid(), (int)getpid());
      struct stat st;
      if (stat(p, &st) != 0) bad |= 8;
      cg_stats_unpublish();
      _exit(bad);
    }
    int status;
    ck_assert_int_eq(waitpid(child, &status, 0), child);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "round %d: status %#x", round, status);
  }
}
END_TEST

static Suite *suite(void)
{
  Suite *s = suite_create("shm");
  TCase *t = tcase_create("shm");
  tcase_add_checked_fixture(t, setup, teardown);
  tcase_add_test(t, create_is_private_reserved_and_leaves_no_fd);
  tcase_add_test(t, populated_head_is_reserved_and_already_mapped);
  tcase_add_test(t, leftover_of_ours_replaced_only_when_asked);
  tcase_add_test(t, squatted_names_refused_and_left_alone);
  tcase_add_test(t, shared_created_then_joined);
  tcase_add_test(t, file_size_limit_is_no_signal);
  tcase_add_test(t, stats_published_once_by_racing_first_sockets);
  suite_add_tcase(s, t);
  return s;
}

CG_TEST_MAIN(suite)
