#ifndef CG_CLOCK_H
#define CG_CLOCK_H
#include <stdint.h>
#include <time.h>
static inline int64_t cg_mono_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}
static inline int64_t cg_realtime_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}
#define CG_MS(ns) ((ns) / 1000000)
#endif
