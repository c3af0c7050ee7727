/* Interned stacks: identical stacks share one id, the table is lock-free and bounded. */
#include <check.h>
#include <pthread.h>
#include <stdlib.h>
#include "stacktab.h"

static void fill(uintptr_t *pcs, int n, uintptr_t seed)
{
  for (int i = 0; i < n; i++) pcs[i] = 0x400000 + seed * 0x1000 + (uintptr_t)i * 8;
}

START_TEST(same_stack_same_id)
{
  uintptr_t a[8], b[8];
  fill(a, 8, 1);
  fill(b, 8, 1);
  uint32_t x = cg_stacktab_intern(a, 8), y = cg_stacktab_intern(b, 8);
  ck_assert_uint_ne(x, 0);
  ck_assert_uint_eq(x, y);
  ck_assert_uint_eq(cg_stacktab_count(), 1);
  const uintptr_t *p;
  ck_assert_int_eq(cg_stacktab_get(x, &p), 8);
  ck_assert_uint_eq(p[7], a[7]);
}
END_TEST

START_TEST(different_stacks_differ)
{
  uintptr_t a[8], b[8];
  fill(a, 8, 1);
  fill(b, 8, 1);
  b[7]++;
  uint32_t x = cg_stacktab_intern(a, 8), y = cg_stacktab_intern(b, 8), z = cg_stacktab_intern(a, 7);
  ck_assert_uint_ne(x, y);
  ck_assert_uint_ne(x, z);   /* a prefix is another stack */
  ck_assert_uint_ne(y, z);
  ck_assert_uint_eq(cg_stacktab_count(), 3);
}
END_TEST

START_TEST(empty_and_unknown)
{
  uintptr_t a[1] = { 1 };
  const uintptr_t *p;
  ck_assert_uint_eq(cg_stacktab_intern(a, 0), 0);
  ck_assert_uint_eq(cg_stacktab_intern(NULL, 3), 0);
  ck_assert_int_eq(cg_stacktab_get(0, &p), 0);
  ck_assert_int_eq(cg_stacktab_get(12345, &p), 0);
}
END_TEST

START_TEST(frames_past_the_limit_are_ignored)
{
  uintptr_t a[CG_ST_FRAMES + 4], b[CG_ST_FRAMES + 4];
  fill(a, CG_ST_FRAMES + 4, 3);
  fill(b, CG_ST_FRAMES + 4, 3);
  b[CG_ST_FRAMES + 2] = 7;
  uint32_t x = cg_stacktab_intern(a, CG_ST_FRAMES + 4);
  ck_assert_uint_eq(x, cg_stacktab_intern(b, CG_ST_FRAMES + 4));
  const uintptr_t *p;
  ck_assert_int_eq(cg_stacktab_get(x, &p), CG_ST_FRAMES);
}
END_TEST

/* A process's first stacks cost it one page fault, not one per stack (~11-25 us each here):
 * the first dozen 16-frame stacks lie on the table's first page, with its counters and index. */
START_TEST(first_stacks_share_a_page)
{
  uintptr_t a[16];
  const uintptr_t *p, *first = NULL;
  for (int k = 0; k < 12; k++) {
    fill(a, 16, (uintptr_t)k + 100);
    uint32_t id = cg_stacktab_intern(a, 16);
    ck_assert_int_eq(cg_stacktab_get(id, &p), 16);
    if (!first) first = p;
    ck_assert_uint_eq((uintptr_t)first / 4096, (uintptr_t)(p + 15) / 4096);
  }
}
END_TEST

START_TEST(full_table_gives_zero)
{
  uintptr_t a[2];
  for (unsigned i = 0; i < CG_ST_MAX; i++) {
    a[0] = i + 1; a[1] = 42;
    ck_assert_uint_ne(cg_stacktab_intern(a, 2), 0);
  }
  a[0] = CG_ST_MAX + 7;
  ck_assert_uint_eq(cg_stacktab_intern(a, 2), 0);
  ck_assert_uint_ge(cg_stacktab_full(), 1);
  a[0] = 5;   /* known stacks still resolve */
  ck_assert_uint_ne(cg_stacktab_intern(a, 2), 0);
  ck_assert_uint_eq(cg_stacktab_count(), CG_ST_MAX);
}
END_TEST

#define NSTACKS 200
#define NTHREADS 4
static uint32_t ids[NTHREADS][NSTACKS];

static void *worker(void *arg)
{
  int t = (int)(intptr_t)arg;
  uintptr_t pcs[6];
  for (int round = 0; round < 20; round++)
    for (int k = 0; k < NSTACKS; k++) {
      int s = (k * (t + 1) * 7 + round) % NSTACKS;   /* each thread its own order */
      fill(pcs, 6, (uintptr_t)s);
      uint32_t id = cg_stacktab_intern(pcs, 6);
      if (ids[t][s] && ids[t][s] != id) ids[t][s] = UINT32_MAX;   /* unstable id */
      else ids[t][s] = id;
    }
  return NULL;
}

START_TEST(concurrent_interning_agrees)
{
  pthread_t th[NTHREADS];
  for (int t = 0; t < NTHREADS; t++) pthread_create(&th[t], NULL, worker, (void *)(intptr_t)t);
  for (int t = 0; t < NTHREADS; t++) pthread_join(th[t], NULL);
  for (int s = 0; s < NSTACKS; s++) {
    ck_assert_uint_ne(ids[0][s], 0);
    ck_assert_uint_ne(ids[0][s], UINT32_MAX);
    for (int t = 1; t < NTHREADS; t++) ck_assert_uint_eq(ids[t][s], ids[0][s]);
  }
  /* Racing inserts may waste an entry, never publish a duplicate: ids are distinct. */
  for (int s = 0; s < NSTACKS; s++)
    for (int r = s + 1; r < NSTACKS; r++) ck_assert_uint_ne(ids[0][s], ids[0][r]);
}
END_TEST

int main(void)
{
  Suite *s = suite_create("stacktab");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, same_stack_same_id);
  tcase_add_test(tc, different_stacks_differ);
  tcase_add_test(tc, empty_and_unknown);
  tcase_add_test(tc, frames_past_the_limit_are_ignored);
  tcase_add_test(tc, first_stacks_share_a_page);
  tcase_add_test(tc, full_table_gives_zero);
  tcase_add_test(tc, concurrent_interning_agrees);
  tcase_set_timeout(tc, 60);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
