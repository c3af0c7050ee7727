/* What is retried, what is not a failure, hints, and backoff/jitter bounds. */
#include "cgtest.h"
#include "config.h"
#include "policy.h"
#include <errno.h>
#include <stdio.h>
#include <sys/socket.h>

START_TEST(errno_classes)
{
  static const int fams[] = { AF_INET, AF_INET6 };
  for (int f = 0; f < 2; f++) {
    int fam = fams[f];
    ck_assert_uint_eq(cg_errno_class(ECONNREFUSED, fam), CG_CLASS_REFUSED);
    ck_assert_uint_eq(cg_errno_class(ETIMEDOUT, fam), CG_CLASS_TIMEOUT);
    ck_assert_uint_eq(cg_errno_class(ECONNRESET, fam), CG_CLASS_RESET);
    ck_assert_uint_eq(cg_errno_class(ECONNABORTED, fam), CG_CLASS_RESET);
    ck_assert_uint_eq(cg_errno_class(ENETUNREACH, fam), CG_CLASS_UNREACH);
    ck_assert_uint_eq(cg_errno_class(EHOSTUNREACH, fam), CG_CLASS_UNREACH);
    ck_assert_uint_eq(cg_errno_class(ENETDOWN, fam), CG_CLASS_UNREACH);
    ck_assert_uint_eq(cg_errno_class(EHOSTDOWN, fam), CG_CLASS_UNREACH);
    /* Never retried: not a transient condition of the peer, or not safe. */
    static const int never[] = { EADDRNOTAVAIL, EACCES, EPERM, EINVAL, EAFNOSUPPORT, EBADF, ENOTSOCK,
                                 EADDRINUSE, EISCONN, EALREADY, EINPROGRESS, EINTR, ENOENT, EAGAIN,
                                 ENOBUFS, ENOMEM, EFAULT, EPROTOTYPE, 0, -1, 9999 };
    for (size_t i = 0; i < sizeof never / sizeof never[0]; i++)
      ck_assert_msg(cg_errno_class(never[i], fam) == CG_CLASS_NONE, "errno %d retried on family %d", never[i], fam);
  }
  /* Unix sockets: a missing socket file and a full backlog are the "not up yet" cases. */
  ck_assert_uint_eq(cg_errno_class(ENOENT, AF_UNIX), CG_CLASS_REFUSED);
  ck_assert_uint_eq(cg_errno_class(ECONNREFUSED, AF_UNIX), CG_CLASS_REFUSED);
  ck_assert_uint_eq(cg_errno_class(EAGAIN, AF_UNIX), CG_CLASS_TIMEOUT);
  ck_assert_uint_eq(cg_errno_class(EACCES, AF_UNIX), CG_CLASS_NONE);
}
END_TEST

START_TEST(progress_errnos)
{
  static const int fams[] = { AF_INET, AF_INET6 };
  for (int f = 0; f < 2; f++) {
    ck_assert(cg_errno_is_progress(EINTR, fams[f]));
    ck_assert(cg_errno_is_progress(EINPROGRESS, fams[f]));
    ck_assert(cg_errno_is_progress(EALREADY, fams[f]));
    ck_assert(cg_errno_is_progress(EISCONN, fams[f]));
    ck_assert(cg_errno_is_progress(EAGAIN, fams[f]));
    static const int not[] = { ECONNREFUSED, ETIMEDOUT, EADDRNOTAVAIL, EINVAL, ECONNRESET, 0 };
    for (size_t i = 0; i < sizeof not / sizeof not[0]; i++)
      ck_assert(!cg_errno_is_progress(not[i], fams[f]));
  }
  /* On a unix socket EAGAIN is a failure (backlog full), not progress. */
  ck_assert(!cg_errno_is_progress(EAGAIN, AF_UNIX));
  ck_assert(cg_errno_is_progress(EINPROGRESS, AF_UNIX));
}
END_TEST

START_TEST(retried_and_progress_are_disjoint)
{
  static const int fams[] = { AF_INET, AF_INET6, AF_UNIX };
  for (int f = 0; f < 3; f++)
    for (int e = 0; e < 200; e++)
      ck_assert_msg(!(cg_errno_class(e, fams[f]) && cg_errno_is_progress(e, fams[f])), "errno %d both", e);
}
END_TEST

START_TEST(errno_names)
{
  ck_assert_str_eq(cg_errno_name(ECONNREFUSED), "ECONNREFUSED");
  ck_assert_str_eq(cg_errno_name(ETIMEDOUT), "ETIMEDOUT");
  ck_assert_str_eq(cg_errno_name(EADDRNOTAVAIL), "EADDRNOTAVAIL");
  ck_assert_str_eq(cg_errno_name(EHOSTUNREACH), "EHOSTUNREACH");
  ck_assert_str_eq(cg_errno_name(EINPROGRESS), "EINPROGRESS");
  ck_assert_str_eq(cg_errno_name(EAGAIN), "EAGAIN");
  ck_assert_ptr_null(cg_errno_name(0));
  ck_assert_ptr_null(cg_errno_name(-1));
  ck_assert_ptr_null(cg_errno_name(4000));
  /* Every class member has a name (records show names, never numbers, for these). */
  for (int e = 1; e < 200; e++)
    if (cg_errno_class(e, AF_INET) || cg_errno_class(e, AF_UNIX) || cg_errno_is_progress(e, AF_INET))
      ck_assert_msg(cg_errno_name(e) != NULL, "errno %d has no name", e);
}
END_TEST

START_TEST(hints)
{
  ck_assert_ptr_nonnull(strstr(cg_errno_hint(ECONNREFUSED, AF_INET), "nothing is listening"));
  ck_assert_ptr_nonnull(strstr(cg_errno_hint(ETIMEDOUT, AF_INET6), "SYN"));
  ck_assert_ptr_nonnull(strstr(cg_errno_hint(ETIMEDOUT, AF_INET), "accept queue is full"));
  ck_assert_ptr_nonnull(strstr(cg_errno_hint(EADDRNOTAVAIL, AF_INET), "ephemeral ports exhausted"));
  ck_assert_ptr_nonnull(strstr(cg_errno_hint(ENETUNREACH, AF_INET), "no route"));
  ck_assert_ptr_nonnull(strstr(cg_errno_hint(EHOSTUNREACH, AF_INET), "no route"));
  ck_assert_ptr_nonnull(strstr(cg_errno_hint(ENOENT, AF_UNIX), "does not exist"));
  ck_assert_ptr_nonnull(strstr(cg_errno_hint(ECONNREFUSED, AF_UNIX), "socket file exists"));
  ck_assert_ptr_nonnull(strstr(cg_errno_hint(EACCES, AF_INET), "firewall"));
  for (int e = -1; e < 200; e++) {
    const char *h = cg_errno_hint(e, AF_INET);
    ck_assert_ptr_nonnull(h);
    ck_assert(h[0] != 0);
    ck_assert_ptr_null(strchr(h, '\n'));
  }
}
END_TEST

static struct cg_config cfgw(unsigned base, unsigned cap, enum cg_jitter j)
{
  struct cg_config c;
  cg_config_defaults(&c);
  c.backoff_ms = base;
  c.backoff_max_ms = cap;
  c.jitter = j;
  return c;
}

START_TEST(none_is_exact_exponential)
{
  struct cg_config c = cfgw(100, 2000, CG_JITTER_NONE);
  static const unsigned want[] = { 100, 200, 400, 800, 1600, 2000, 2000, 2000 };
  uint64_t st = 42;
  for (unsigned n = 1; n <= 8; n++)
    for (int k = 0; k < 20; k++)
      ck_assert_uint_eq(cg_backoff_ms(&c, n, want[n > 1 ? n - 2 : 0], cg_rand_next(&st)), want[n - 1]);
  ck_assert_uint_eq(cg_backoff_ms(&c, 1000, 0, 1), 2000);
  ck_assert_uint_eq(cg_backoff_ms(&c, UINT32_MAX, 0, 1), 2000);
  c = cfgw(30, 30, CG_JITTER_NONE);
  for (unsigned n = 1; n <= 5; n++) ck_assert_uint_eq(cg_backoff_ms(&c, n, 30, 7), 30);
  c = cfgw(0, 0, CG_JITTER_NONE);
  ck_assert_uint_eq(cg_backoff_ms(&c, 10, 0, 7), 0);
  /* Largest accepted values (one day): no overflow. */
  c = cfgw(86400000, 86400000, CG_JITTER_NONE);
  ck_assert_uint_eq(cg_backoff_ms(&c, 40, 0, 7), 86400000);
  c = cfgw(3, 86400000, CG_JITTER_NONE);
  ck_assert_uint_eq(cg_backoff_ms(&c, 2, 0, 7), 6);
  ck_assert_uint_eq(cg_backoff_ms(&c, 200, 0, 7), 86400000);
  /* A cap below the base is treated as the base. */
  c = cfgw(500, 100, CG_JITTER_NONE);
  ck_assert_uint_eq(cg_backoff_ms(&c, 3, 0, 7), 500);
}
END_TEST

#define DRAWS 20000

START_TEST(full_jitter_bounds)
{
  struct cg_config c = cfgw(100, 2000, CG_JITTER_FULL);
  uint64_t st = 12345;
  for (unsigned n = 1; n <= 8; n++) {
    unsigned exp = 100u << (n - 1);
    if (exp > 2000) exp = 2000;
    unsigned lo = UINT32_MAX, hi = 0;
    for (int k = 0; k < DRAWS; k++) {
      unsigned d = cg_backoff_ms(&c, n, 0, cg_rand_next(&st));
      ck_assert_uint_le(d, exp);
      if (d < lo) lo = d;
      if (d > hi) hi = d;
    }
    /* Spread over the whole range, not stuck at one end. */
    ck_assert_uint_le(lo, exp / 20);
    ck_assert_uint_ge(hi, exp - exp / 20);
  }
}
END_TEST

START_TEST(equal_jitter_bounds)
{
  struct cg_config c = cfgw(100, 1500, CG_JITTER_EQUAL);
  uint64_t st = 999;
  for (unsigned n = 1; n <= 8; n++) {
    unsigned exp = 100u << (n - 1);
    if (exp > 1500) exp = 1500;
    unsigned lo = UINT32_MAX, hi = 0;
    for (int k = 0; k < DRAWS; k++) {
      unsigned d = cg_backoff_ms(&c, n, 0, cg_rand_next(&st));
      ck_assert_uint_ge(d, exp / 2);
      ck_assert_uint_le(d, exp);
      if (d < lo) lo = d;
      if (d > hi) hi = d;
    }
    ck_assert_uint_le(lo, exp / 2 + exp / 20);
    ck_assert_uint_ge(hi, exp - exp / 20);
  }
  /* Odd values: the upper half rounds so that exp itself is reachable, never exceeded. */
  c = cfgw(7, 7, CG_JITTER_EQUAL);
  for (int k = 0; k < 1000; k++) {
    unsigned d = cg_backoff_ms(&c, 1, 0, cg_rand_next(&st));
    ck_assert(d >= 3 && d <= 7);
  }
}
END_TEST

START_TEST(decorrelated_jitter_bounds)
{
  struct cg_config c = cfgw(100, 2000, CG_JITTER_DECORRELATED);
  uint64_t st = 77;
  unsigned hi_seen = 0;
  for (int run = 0; run < 2000; run++) {
    unsigned prev = 0;
    for (unsigned n = 1; n <= 10; n++) {
      unsigned d = cg_backoff_ms(&c, n, prev, cg_rand_next(&st));
      unsigned hi = (prev ? prev : 100) * 3;
      if (hi > 2000) hi = 2000;
      ck_assert_uint_ge(d, 100);
      ck_assert_uint_le(d, hi);
      ck_assert_uint_le(d, 2000);
      if (d > hi_seen) hi_seen = d;
      prev = d;
    }
  }
  ck_assert_uint_ge(hi_seen, 1900);   /* the cap is reached in a long run */
  /* A cap equal to the base: always the base. */
  c = cfgw(50, 50, CG_JITTER_DECORRELATED);
  for (int k = 0; k < 100; k++) ck_assert_uint_eq(cg_backoff_ms(&c, 3, 50, cg_rand_next(&st)), 50);
}
END_TEST

START_TEST(cap_respected_everywhere)
{
  static const enum cg_jitter js[] = { CG_JITTER_FULL, CG_JITTER_EQUAL, CG_JITTER_DECORRELATED, CG_JITTER_NONE };
  uint64_t st = 5;
  for (int j = 0; j < 4; j++) {
    struct cg_config c = cfgw(250, 1000, js[j]);
    for (unsigned n = 1; n < 64; n++)
      for (int k = 0; k < 200; k++)
        ck_assert_uint_le(cg_backoff_ms(&c, n, 1000, cg_rand_next(&st)), 1000);
    /* Extreme random inputs. */
    ck_assert_uint_le(cg_backoff_ms(&c, 9, 900, UINT64_MAX), 1000);
    ck_assert_uint_le(cg_backoff_ms(&c, 9, 900, 0), 1000);
  }
}
END_TEST

START_TEST(rand_is_not_stuck)
{
  uint64_t st = 0, prev = 0;
  int changes = 0;
  for (int i = 0; i < 1000; i++) {
    uint64_t v = cg_rand_next(&st);
    ck_assert(st != 0);
    if (v != prev) changes++;
    prev = v;
  }
  ck_assert_int_eq(changes, 1000);
  /* Low bits (used through %) are not constant. */
  unsigned odd = 0;
  st = 1;
  for (int i = 0; i < 1000; i++) odd += (unsigned)(cg_rand_next(&st) & 1);
  ck_assert(odd > 400 && odd < 600);
}
END_TEST

static Suite *suite(void)
{
  Suite *s = suite_create("policy");
  TCase *t = tcase_create("policy");
  tcase_add_test(t, errno_classes);
  tcase_add_test(t, progress_errnos);
  tcase_add_test(t, retried_and_progress_are_disjoint);
  tcase_add_test(t, errno_names);
  tcase_add_test(t, hints);
  tcase_add_test(t, none_is_exact_exponential);
  tcase_add_test(t, full_jitter_bounds);
  tcase_add_test(t, equal_jitter_bounds);
  tcase_add_test(t, decorrelated_jitter_bounds);
  tcase_add_test(t, cap_respected_everywhere);
  tcase_add_test(t, rand_is_not_stuck);
  suite_add_tcase(s, t);
  return s;
}

CG_TEST_MAIN(suite)
