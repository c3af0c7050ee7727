/* closefrom()'s fallback for kernels without close_range: every fd at or above the bound,
 * above 65536 and above a limit the program lowered after opening them. */
#include "cgtest.h"
#include "fdutil.h"
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

static int is_open(int fd) { return fcntl(fd, F_GETFD) != -1; }

START_TEST(closefrom_fallback_reaches_every_fd)
{
  struct rlimit rl = { 300000, 300000 };
  if (setrlimit(RLIMIT_NOFILE, &rl) != 0) return;   /* not root: nothing high to open */
  int hi[] = { 70000, 200000, 299999 };
  for (unsigned i = 0; i < sizeof hi / sizeof hi[0]; i++) ck_assert_int_eq(dup2(0, hi[i]), hi[i]);
  ck_assert_int_eq(dup2(0, 100), 100);
  ck_assert_int_eq(dup2(0, 50), 50);
  /* Lowered after the fact: fds above the new limit stay open and must still be closed. */
  rl.rlim_cur = 1024;
  ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
  cg_closefrom_fallback(60);
  ck_assert(is_open(50));
  ck_assert(!is_open(100));
  for (unsigned i = 0; i < sizeof hi / sizeof hi[0]; i++) ck_assert(!is_open(hi[i]));
  ck_assert(is_open(0) && is_open(1) && is_open(2));
}
END_TEST

static Suite *suite(void)
{
  Suite *s = suite_create("fdutil");
  TCase *t = tcase_create("fdutil");
  tcase_add_test(t, closefrom_fallback_reaches_every_fd);
  suite_add_tcase(s, t);
  return s;
}

CG_TEST_MAIN(suite)
