/* Timing for the bench_* programs: every iteration is timed and the median reported, which a
 * busy shared machine disturbs far less than a total (a preempted iteration is an outlier). */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static inline int64_t bench_now(void)
{
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static int bench_cmp(const void *a, const void *b)
{
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

/* Prints "median_ns mean_ns" of the n samples. */
static inline void bench_report(int64_t *v, long n)
{
  double sum = 0;
  for (long i = 0; i < n; i++) sum += (double)v[i];
  qsort(v, (size_t)n, sizeof *v, bench_cmp);
  printf("%.1f %.1f\n", (double)v[n / 2], sum / (double)n);
}
#endif
