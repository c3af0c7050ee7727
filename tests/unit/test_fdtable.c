/* The fd table's in-flight records: one per active connect, as many as the active set holds,
 * given back by whoever holds the entry lock once the entry is no longer active, or by close()
 * when the lock is free; and the entry size bound (issue 12: <= 256 bytes per socket). */
#include <check.h>
#include "cgtest.h"
#include <stdlib.h>
#include "fdtable.h"
#include "closepath.h"

#define BASE 5000   /* fd numbers of our own, away from the test's real descriptors */

/* What the engine does to take a connect on: lock, record, active state. */
static struct cg_conn *take(int fd)
{
  struct cg_fd *e = cg_fd_get(fd, 1);
  ck_assert_ptr_nonnull(e);
  cg_fd_lock(e);
  struct cg_conn *c = cg_conn_attach(e);
  if (c && !cg_fd_begin(fd, e, CG_FD_CONNECTING)) c = NULL;
  cg_fd_unlock(e);
  return c;
}

static void end_all(int n)
{
  for (int i = 0; i < n; i++) cg_close_fd(BASE + i);
}

START_TEST(entry_is_small)
{
  ck_assert_uint_le(sizeof(struct cg_fd), 256);
  ck_assert_uint_eq(sizeof(struct cg_fd) % 64, 0);
}
END_TEST

START_TEST(one_record_per_connect_in_flight)
{
  struct cg_conn *seen[CG_ACTIVE_SLOTS];
  for (int i = 0; i < CG_ACTIVE_SLOTS; i++) {
    seen[i] = take(BASE + i);
    ck_assert_ptr_nonnull(seen[i]);
    ck_assert_ptr_eq(cg_conn_of(cg_fd_peek(BASE + i)), seen[i]);
    for (int j = 0; j < i; j += 97) ck_assert_ptr_ne(seen[j], seen[i]);
  }
  /* Every record in use: the next connect is not taken on (left to the kernel). */
  ck_assert_ptr_null(take(BASE + CG_ACTIVE_SLOTS));
  struct cg_fd *x = cg_fd_peek(BASE + CG_ACTIVE_SLOTS);
  ck_assert_uint_eq(x->conn, 0);
  ck_assert_uint_ne(atomic_load(&x->state), CG_FD_CONNECTING);
  /* close() of every one gives them all back: a second wave fits again. */
  end_all(CG_ACTIVE_SLOTS);
  ck_assert_int_eq(atomic_load(&cg_active_count), 0);
  for (int i = 0; i < CG_ACTIVE_SLOTS; i++) ck_assert_ptr_nonnull(take(BASE + i));
  end_all(CG_ACTIVE_SLOTS);
}
END_TEST

START_TEST(given_back_when_the_connect_ends_under_the_lock)
{
  struct cg_conn *c = take(BASE);
  ck_assert_ptr_nonnull(c);
  struct cg_fd *e = cg_fd_peek(BASE);
  cg_fd_lock(e);
  c->attempt = 3;
  cg_fd_set_state(BASE, e, CG_FD_CONNECTED);
  /* Locked: still there for the holder, though the entry is no longer active. */
  ck_assert_ptr_eq(cg_conn_of(e), c);
  ck_assert_uint_eq(c->attempt, 3);
  cg_fd_unlock(e);
  ck_assert_ptr_null(cg_conn_of(e));
  /* The same record is the next one handed out, zeroed. */
  struct cg_conn *d = take(BASE + 1);
  ck_assert_ptr_eq(d, c);
  ck_assert_uint_eq(d->attempt, 0);
  end_all(2);
}
END_TEST

START_TEST(close_while_locked_leaves_it_to_the_holder)
{
  struct cg_conn *c = take(BASE);
  struct cg_fd *e = cg_fd_peek(BASE);
  cg_fd_lock(e);
  cg_close_fd(BASE);                       /* close() from a signal handler or another thread */
  ck_assert_uint_eq(atomic_load(&e->state), CG_FD_NONE);
  ck_assert_ptr_eq(cg_conn_of(e), c);       /* the holder may still read it */
  ck_assert_ptr_ne(take(BASE + 1), c);      /* and nobody else gets it meanwhile */
  cg_fd_unlock(e);
  ck_assert_ptr_null(cg_conn_of(e));
  ck_assert_ptr_eq(take(BASE + 2), c);
  end_all(3);
}
END_TEST

START_TEST(a_connect_again_keeps_its_record)
{
  struct cg_conn *c = take(BASE);
  c->ep_removed = 1;
  /* connect() to another address while a failure is still held: same record, fields reset,
   * but still out of its epoll set until connected. */
  struct cg_conn *d = take(BASE);
  ck_assert_ptr_eq(d, c);
  ck_assert_int_eq(d->ep_removed, 1);
  end_all(1);
  ck_assert_ptr_null(cg_conn_of(cg_fd_peek(BASE)));
}
END_TEST

static Suite *suite(void)
{
  Suite *s = suite_create("fdtable");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, entry_is_small);
  tcase_add_test(tc, one_record_per_connect_in_flight);
  tcase_add_test(tc, given_back_when_the_connect_ends_under_the_lock);
  tcase_add_test(tc, close_while_locked_leaves_it_to_the_holder);
  tcase_add_test(tc, a_connect_again_keeps_its_record);
  suite_add_tcase(s, tc);
  return s;
}

CG_TEST_MAIN(suite)
