/* Timing for the bench_* programs. Each program alternates, iteration by iteration, the calls
 * through libc (what the shim intercepts under LD_PRELOAD) and the same system calls made raw
 * (which no hook sees), in one process: both sides see the same kernel state, caches and
 * neighbours, so the ratio of their medians is the shim's cost even on a noisy shared machine.
 * Output: "median_libc median_raw mean_libc mean_raw" in ns per iteration. */
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

static inline double bench_median(int64_t *v, long n, double *mean)
{
  double sum = 0;
  for (long i = 0; i < n; i++) sum += (double)v[i];
  *mean = sum / (double)n;
  qsort(v, (size_t)n, sizeof *v, bench_cmp);
  return (double)v[n / 2];
}

/* Runs n iterations of each side, alternating, and prints the figures. */
#define BENCH_AB(n, libc_body, raw_body)                                     \
  do {                                                                       \
    int64_t *va_ = malloc(sizeof *va_ * (size_t)(n));                        \
    int64_t *vb_ = malloc(sizeof *vb_ * (size_t)(n));                        \
    for (long i_ = 0; i_ < (n); i_++) {                                      \
      int64_t t_ = bench_now();                                              \
      libc_body;                                                             \
      va_[i_] = bench_now() - t_;                                            \
      t_ = bench_now();                                                      \
      raw_body;                                                              \
      vb_[i_] = bench_now() - t_;                                            \
    }                                                                        \
    double ma_, mb_;                                                         \
    double a_ = bench_median(va_, (n), &ma_), b_ = bench_median(vb_, (n), &mb_); \
    printf("%.1f %.1f %.1f %.1f\n", a_, b_, ma_, mb_);                       \
  } while (0)
#endif
