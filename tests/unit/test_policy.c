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

/* ---- the whole schedule of one connect whose attempts all fail ---- */

#define MAX_ATTEMPTS 2000

/* Start times (ms after the first attempt's start) of every attempt, each failing cost_ms after
 * it starts, as the engine drives cg_retry_delay. Returns the number of attempts. */
static unsigned schedule(const struct cg_config *c, uint64_t seed, unsigned cost_ms, int64_t *t)
{
  uint64_t st = seed;
  unsigned n = 0, prev = 0, d = 0;
  int64_t now = 0;
  for (;;) {
    ck_assert_uint_lt(n, MAX_ATTEMPTS);
    t[n++] = now;
    now += cost_ms;
    if (!cg_retries_left(c, n)) break;
    if (cg_retry_delay(c, n, prev, cg_rand_next(&st), ((int64_t)c->deadline_ms - now) * 1000000, &d)) break;
    prev = d;
    now += d;
  }
  return n;
}

static struct cg_config defaults(void)
{
  struct cg_config c;
  cg_config_defaults(&c);
  return c;
}

START_TEST(default_policy_is_time_based)
{
  struct cg_config c = defaults();
  ck_assert_uint_eq(c.retries, CG_RETRIES_NONE);
  ck_assert_int_eq(c.jitter, CG_JITTER_EQUAL);
  ck_assert_uint_eq(c.deadline_ms, 10000);
  ck_assert_uint_eq(cg_last_slot_ms(&c), 250);
  ck_assert(cg_retries_left(&c, 1) && cg_retries_left(&c, 1000000) && cg_retries_left(&c, UINT32_MAX));
}
END_TEST

/* Without jitter the schedule is exact: doubling from 100 ms, capped at 2 s, and the last delay
 * shortened so that an attempt starts 250 ms before the 10 s deadline. */
START_TEST(schedule_without_jitter_is_exact)
{
  struct cg_config c = defaults();
  c.jitter = CG_JITTER_NONE;
  static const int64_t want[] = { 0, 100, 300, 700, 1500, 3100, 5100, 7100, 9100, 9750 };
  int64_t t[MAX_ATTEMPTS];
  unsigned n = schedule(&c, 1, 0, t);
  ck_assert_uint_eq(n, sizeof want / sizeof want[0]);
  for (unsigned i = 0; i < n; i++) ck_assert_int_eq(t[i], want[i]);
  /* Attempts that take 30 ms each (a far server answering with a reset): same shape. */
  n = schedule(&c, 1, 30, t);
  ck_assert_int_eq(t[1], 130);
  ck_assert_int_ge(t[n - 1], 10000 - 250 - 30);
  ck_assert_int_le(t[n - 1], 10000 - 250);
}
END_TEST

/* The defaults over many random draws: the deadline is used to its end, the schedule stays dense
 * (no gap above the 2 s cap, so a server that comes up at S is reached by S + 2 s, one that
 * comes up at 9 s before the deadline), and the attempt count stays small. */
START_TEST(default_schedule_reaches_the_deadline)
{
  struct cg_config c = defaults();
  static const unsigned costs[] = { 0, 1, 100 };
  int64_t t[MAX_ATTEMPTS];
  for (size_t k = 0; k < sizeof costs / sizeof costs[0]; k++) {
    unsigned cost = costs[k];
    for (uint64_t seed = 1; seed <= 2000; seed++) {
      unsigned n = schedule(&c, seed * 7919, cost, t);
      ck_assert_uint_ge(n, 8);
      ck_assert_uint_le(n, 20);
      ck_assert_int_le(t[n - 1], 10000 - 250);
      ck_assert_int_ge(t[n - 1], 10000 - 250 - (int64_t)cost);
      ck_assert(t[1] - t[0] >= 50 + cost && t[1] - t[0] <= 100 + cost);
      int reached9 = 0;
      for (unsigned i = 1; i < n; i++) {
        int64_t gap = t[i] - t[i - 1] - cost;
        ck_assert_int_ge(gap, 0);
        ck_assert_int_le(gap, 2000);
        /* Equal jitter: at least half the exponential delay, except the shortened last one. */
        if (i < n - 1) ck_assert_int_ge(gap, 50);
        if (t[i] >= 9000) reached9 = 1;
      }
      ck_assert(reached9);
    }
  }
}
END_TEST

/* Every jitter mode ends with an attempt in the last slot, never after it, and never waits
 * longer than the cap between attempts. */
START_TEST(every_jitter_mode_uses_the_whole_deadline)
{
  static const enum cg_jitter js[] = { CG_JITTER_FULL, CG_JITTER_EQUAL, CG_JITTER_DECORRELATED, CG_JITTER_NONE };
  static const unsigned deadlines[] = { 10000, 3000, 60000, 777 };
  int64_t t[MAX_ATTEMPTS];
  for (size_t j = 0; j < 4; j++)
    for (size_t k = 0; k < sizeof deadlines / sizeof deadlines[0]; k++)
      for (uint64_t seed = 1; seed <= 300; seed++) {
        struct cg_config c = defaults();
        c.jitter = js[j];
        c.deadline_ms = deadlines[k];
        unsigned slot = cg_last_slot_ms(&c);
        unsigned n = schedule(&c, seed, 2, t);
        ck_assert_uint_ge(n, 2);
        ck_assert_int_le(t[n - 1], (int64_t)c.deadline_ms - slot);
        ck_assert_int_ge(t[n - 1], (int64_t)c.deadline_ms - slot - 2);
        for (unsigned i = 1; i < n; i++) ck_assert_int_le(t[i] - t[i - 1], 2000 + 2);
      }
}
END_TEST

START_TEST(retries_cap_the_count)
{
  struct cg_config c = defaults();
  c.jitter = CG_JITTER_NONE;
  int64_t t[MAX_ATTEMPTS];
  c.retries = 3;
  ck_assert_uint_eq(schedule(&c, 1, 0, t), 4);
  ck_assert_int_eq(t[3], 700);
  ck_assert(cg_retries_left(&c, 3) && !cg_retries_left(&c, 4));
  c.retries = 0;
  ck_assert_uint_eq(schedule(&c, 1, 0, t), 1);
  /* The deadline still wins over a generous cap. */
  c.retries = 1000;
  c.deadline_ms = 1000;
  unsigned n = schedule(&c, 1, 0, t);
  ck_assert_uint_eq(n, 5);   /* 0 100 300 700 900 */
  ck_assert_int_eq(t[n - 1], 900);
  /* A cap reached before the deadline: no last-slot attempt. */
  c.retries = 2;
  c.deadline_ms = 10000;
  ck_assert_uint_eq(schedule(&c, 1, 0, t), 3);
  ck_assert_int_eq(t[2], 300);
}
END_TEST

START_TEST(deadline_zero_and_tiny_deadlines)
{
  struct cg_config c = defaults();
  unsigned d = 12345;
  int64_t t[MAX_ATTEMPTS];
  /* Nothing left, or less than nothing: give up, delay untouched. */
  c.deadline_ms = 0;
  ck_assert_uint_eq(cg_last_slot_ms(&c), 1);
  ck_assert_int_eq(cg_retry_delay(&c, 1, 0, 1, 0, &d), -1);
  ck_assert_int_eq(cg_retry_delay(&c, 1, 0, 1, -5000000000LL, &d), -1);
  ck_assert_uint_eq(d, 12345);
  ck_assert_uint_eq(schedule(&c, 1, 0, t), 1);
  /* 1 ms: the only attempt is the first. */
  c.deadline_ms = 1;
  ck_assert_uint_eq(schedule(&c, 1, 0, t), 1);
  /* 10 ms: one retry, 1 ms before the end. */
  c.deadline_ms = 10;
  c.jitter = CG_JITTER_NONE;
  ck_assert_uint_eq(schedule(&c, 1, 0, t), 2);
  ck_assert_int_eq(t[1], 9);
  /* 50 ms: the 100 ms first delay is shortened to the last slot, 5 ms before the end. */
  c.deadline_ms = 50;
  ck_assert_uint_eq(cg_last_slot_ms(&c), 5);
  ck_assert_uint_eq(schedule(&c, 1, 0, t), 2);
  ck_assert_int_eq(t[1], 45);
  /* Less than a millisecond of room is none. */
  c.deadline_ms = 10000;
  ck_assert_int_eq(cg_retry_delay(&c, 1, 0, 1, 250999999LL, &d), -1);
  ck_assert_int_eq(cg_retry_delay(&c, 1, 0, 1, 251000000LL, &d), 0);
  ck_assert_uint_eq(d, 1);
  /* The largest values accepted (one day each): no overflow. */
  c.deadline_ms = 86400000;
  c.backoff_ms = c.backoff_max_ms = 86400000;
  ck_assert_int_eq(cg_retry_delay(&c, 40, 86400000, UINT64_MAX, 86400000LL * 1000000, &d), 0);
  ck_assert_uint_eq(d, 86400000 - 250);
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
  tcase_add_test(t, default_policy_is_time_based);
  tcase_add_test(t, schedule_without_jitter_is_exact);
  tcase_add_test(t, default_schedule_reaches_the_deadline);
  tcase_add_test(t, every_jitter_mode_uses_the_whole_deadline);
  tcase_add_test(t, retries_cap_the_count);
  tcase_add_test(t, deadline_zero_and_tiny_deadlines);
  suite_add_tcase(s, t);
  return s;
}

CG_TEST_MAIN(suite)
