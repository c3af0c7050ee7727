/* The watchdog through its core API, against real loopback sockets: a connect pending at its
 * deadline is cut (and the socket can connect again), one that finished is left alone, a close
 * cancels the registration, slots run out cleanly, and a fork child starts afresh. Each test
 * runs in its own process (CK_FORK), so each starts without the thread. */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "cgtest.h"
#include "clock.h"
#include "watchdog.h"

#define MS 1000000LL

static int listener(struct sockaddr_in *a, int backlog)
{
  socklen_t l = sizeof *a;
  *a = (struct sockaddr_in){ .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(bind(fd, (struct sockaddr *)a, sizeof *a), 0);
  ck_assert_int_eq(listen(fd, backlog), 0);
  ck_assert_int_eq(getsockname(fd, (struct sockaddr *)a, &l), 0);
  return fd;
}

/* A listener that drops further SYNs: backlog 0 and its queue already full. */
static int syn_dropper(struct sockaddr_in *a)
{
  int l = listener(a, 0);
  for (int i = 0; i < 2; i++) {
    int c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    connect(c, (struct sockaddr *)a, sizeof *a);
  }
  usleep(20000);
  return l;
}

START_TEST(pending_connect_is_cut_at_its_deadline)
{
  struct sockaddr_in a, b;
  syn_dropper(&a);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  int64_t t0 = cg_mono_ns();
  int h = cg_wd_arm(fd, t0 + 200 * MS, 200 * MS);
  ck_assert_int_gt(h, 0);
  int r = connect(fd, (struct sockaddr *)&a, sizeof a);
  int64_t took = cg_mono_ns() - t0;
  ck_assert_int_eq(cg_wd_disarm(h), 1);
  ck_assert_int_eq(r, -1);
  ck_assert_int_ge(took, 190 * MS);
  ck_assert_int_lt(took, 2000 * MS);
  ck_assert_int_eq(cg_wd_status(), 1);
  /* What a retry needs: the same socket connects again. */
  int l2 = listener(&b, 8);
  ck_assert_int_eq(connect(fd, (struct sockaddr *)&b, sizeof b), 0);
  close(l2);
}
END_TEST

START_TEST(finished_connect_is_left_alone)
{
  struct sockaddr_in a;
  int l = listener(&a, 8);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  int h = cg_wd_arm(fd, cg_mono_ns() + 100 * MS, 100 * MS);
  ck_assert_int_gt(h, 0);
  ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
  ck_assert_int_eq(cg_wd_disarm(h), 0);
  usleep(300000);   /* past the deadline: nothing may fire on a disarmed slot */
  int s = accept(l, NULL, NULL);
  ck_assert_int_eq(write(fd, "x", 1), 1);
  char c;
  ck_assert_int_eq(read(s, &c, 1), 1);
}
END_TEST

static int closing_fd;
static void *close_later(void *arg)
{
  (void)arg;
  usleep(50000);
  cg_wd_fd_closing(closing_fd);   /* what close() does before the real close */
  return NULL;
}

START_TEST(close_cancels_the_registration)
{
  struct sockaddr_in a;
  int l = listener(&a, 8);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
  /* Armed on a connected socket standing for "still in connect": after the cancel, the
   * deadline passes and the socket must still work. */
  int h = cg_wd_arm(fd, cg_mono_ns() + 150 * MS, 150 * MS);
  ck_assert_int_gt(h, 0);
  closing_fd = fd;
  pthread_t t;
  pthread_create(&t, NULL, close_later, NULL);
  pthread_join(t, NULL);
  usleep(300000);
  ck_assert_int_eq(cg_wd_disarm(h), 0);
  int s = accept(l, NULL, NULL);
  ck_assert_int_eq(write(fd, "y", 1), 1);
  char c;
  ck_assert_int_eq(read(s, &c, 1), 1);
}
END_TEST

START_TEST(close_range_cancels_the_registration)
{
  struct sockaddr_in a;
  int l = listener(&a, 8);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
  int h = cg_wd_arm(fd, cg_mono_ns() + 100 * MS, 100 * MS);
  ck_assert_int_gt(h, 0);
  cg_wd_fds_closing((unsigned)fd, ~0u);   /* what close_range(fd, ~0U) does first */
  usleep(250000);
  ck_assert_int_eq(cg_wd_disarm(h), 0);
  int s = accept(l, NULL, NULL);
  ck_assert_int_eq(write(fd, "z", 1), 1);
  char c;
  ck_assert_int_eq(read(s, &c, 1), 1);
}
END_TEST

START_TEST(slots_run_out_cleanly)
{
  int h[200], n = 0;
  int64_t far = cg_mono_ns() + 60000 * MS;
  for (int i = 0; i < 200; i++) {
    h[i] = cg_wd_arm(1000 + i, far, 60000 * MS);
    if (h[i]) n++;
  }
  ck_assert_int_eq(n, 128);
  ck_assert_int_eq(h[199], 0);
  for (int i = 0; i < 200; i++) ck_assert_int_eq(cg_wd_disarm(h[i]), 0);
  /* All free again. */
  int again = cg_wd_arm(5, far, 60000 * MS);
  ck_assert_int_gt(again, 0);
  cg_wd_disarm(again);
}
END_TEST

START_TEST(fork_child_starts_its_own_thread)
{
  struct sockaddr_in a;
  syn_dropper(&a);
  int h = cg_wd_arm(3, cg_mono_ns() + 60000 * MS, 60000 * MS);
  ck_assert_int_gt(h, 0);
  ck_assert_int_eq(cg_wd_status(), 1);
  pid_t p = fork();
  if (p == 0) {
    cg_wd_after_fork_child();
    if (cg_wd_status() != 0) _exit(10);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int64_t t0 = cg_mono_ns();
    int hc = cg_wd_arm(fd, t0 + 150 * MS, 150 * MS);
    if (hc <= 0) _exit(11);
    int r = connect(fd, (struct sockaddr *)&a, sizeof a);
    if (cg_wd_disarm(hc) != 1 || r != -1) _exit(12);
    if (cg_mono_ns() - t0 > 2000 * MS) _exit(13);
    _exit(0);
  }
  int st = 0;
  ck_assert_int_eq(waitpid(p, &st, 0), p);
  ck_assert(WIFEXITED(st));
  ck_assert_int_eq(WEXITSTATUS(st), 0);
  cg_wd_disarm(h);
}
END_TEST

static Suite *suite(void)
{
  Suite *s = suite_create("watchdog");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, pending_connect_is_cut_at_its_deadline);
  tcase_add_test(tc, finished_connect_is_left_alone);
  tcase_add_test(tc, close_cancels_the_registration);
  tcase_add_test(tc, close_range_cancels_the_registration);
  tcase_add_test(tc, slots_run_out_cleanly);
  tcase_add_test(tc, fork_child_starts_its_own_thread);
  tcase_set_timeout(tc, 30);
  suite_add_tcase(s, tc);
  return s;
}

CG_TEST_MAIN(suite)
