/* Process start-up cost for `make bench`: spawns PROG N times without and N times with
 * LD_PRELOAD=SHIM, alternating (and alternating which goes first), and prints the medians of
 * spawn-to-reaped time and of the child's CPU time (user + system, from wait4: the kernel's exact
 * run time, which waiting for a CPU on a loaded machine does not inflate), in ns:
 * "wall_without wall_with cpu_without cpu_with". Timing here rather than in python keeps the
 * interpreter's own noise out of a figure of about a millisecond.
 * usage: bench_spawn N SHIM PROG [ARG...]   (run it without the shim) */
#include "bench_common.h"
#include <spawn.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static int64_t run(char **argv, char **envp, int64_t *cpu)
{
  pid_t pid;
  int st;
  struct rusage ru;
  int64_t t = bench_now();
  if (posix_spawn(&pid, argv[0], NULL, NULL, argv, envp)) { perror("posix_spawn"); exit(1); }
  if (wait4(pid, &st, 0, &ru) != pid || !WIFEXITED(st) || WEXITSTATUS(st)) {
    fprintf(stderr, "bench_spawn: %s failed\n", argv[0]);
    exit(1);
  }
  t = bench_now() - t;
  if (cpu)
    *cpu = ((int64_t)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000 +
           ((int64_t)ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000;
  return t;
}

int main(int argc, char **argv)
{
  if (argc < 4) { fprintf(stderr, "usage: bench_spawn N SHIM PROG [ARG...]\n"); return 2; }
  long n = atol(argv[1]);
  if (n < 1) n = 1;
  size_t ne = 0;
  while (environ[ne]) ne++;
  char **bare = calloc(ne + 1, sizeof *bare), **with = calloc(ne + 2, sizeof *with);
  size_t nb = 0;
  for (size_t i = 0; i < ne; i++)
    if (strncmp(environ[i], "LD_PRELOAD=", 11)) bare[nb++] = environ[i];
  memcpy(with, bare, nb * sizeof *bare);
  size_t pl = strlen(argv[2]) + 12;
  with[nb] = malloc(pl);
  snprintf(with[nb], pl, "LD_PRELOAD=%s", argv[2]);
  int64_t *vb = malloc(sizeof *vb * (size_t)n), *vw = malloc(sizeof *vw * (size_t)n);
  int64_t *cb = malloc(sizeof *cb * (size_t)n), *cw = malloc(sizeof *cw * (size_t)n);
  run(argv + 3, bare, NULL);   /* warm the page cache */
  run(argv + 3, with, NULL);
  for (long i = 0; i < n; i++) {
    if (i & 1) { vb[i] = run(argv + 3, bare, &cb[i]); vw[i] = run(argv + 3, with, &cw[i]); }
    else       { vw[i] = run(argv + 3, with, &cw[i]); vb[i] = run(argv + 3, bare, &cb[i]); }
  }
  double m;
  double b = bench_median(vb, n, &m), w = bench_median(vw, n, &m);
  double xb = bench_median(cb, n, &m), xw = bench_median(cw, n, &m);
  printf("%.0f %.0f %.0f %.0f\n", b, w, xb, xw);
  return 0;
}
