/* Process start-up cost for `make bench`: spawns PROG N times without and N times with
 * LD_PRELOAD=SHIM, alternating (and alternating which goes first), and prints the medians of
 * spawn-to-reaped time and of the child's CPU time (user + system, from wait4: the kernel's exact
 * run time, which waiting for a CPU on a loaded machine does not inflate), in ns:
 * "wall_without wall_with cpu_without cpu_with". Timing here rather than in python keeps the
 * interpreter's own noise out of a figure of about a millisecond. With -r REF, a third variant
 * preloads REF (an empty library: what preloading anything costs) in the same rotation, and two
 * more figures follow: "wall_ref cpu_ref".
 * usage: bench_spawn [-r REF] N SHIM PROG [ARG...]   (run it without the shim) */
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
  const char *ref = NULL;
  if (argc > 2 && !strcmp(argv[1], "-r")) { ref = argv[2]; argv += 2; argc -= 2; }
  if (argc < 4) { fprintf(stderr, "usage: bench_spawn [-r REF] N SHIM PROG [ARG...]\n"); return 2; }
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
  char **withref = NULL;
  if (ref) {
    withref = calloc(ne + 2, sizeof *withref);
    memcpy(withref, bare, nb * sizeof *bare);
    pl = strlen(ref) + 12;
    withref[nb] = malloc(pl);
    snprintf(withref[nb], pl, "LD_PRELOAD=%s", ref);
  }
  int64_t *vb = malloc(sizeof *vb * (size_t)n), *vw = malloc(sizeof *vw * (size_t)n);
  int64_t *cb = malloc(sizeof *cb * (size_t)n), *cw = malloc(sizeof *cw * (size_t)n);
  int64_t *vr = malloc(sizeof *vr * (size_t)n), *cr = malloc(sizeof *cr * (size_t)n);
  run(argv + 3, bare, NULL);   /* warm the page cache */
  run(argv + 3, with, NULL);
  if (ref) run(argv + 3, withref, NULL);
  for (long i = 0; i < n; i++) {
    /* Each variant goes first, second and last in turn. */
    int k = ref ? 3 : 2;
    for (int j = 0; j < k; j++) {
      int which = (int)((i + j) % k);
      if (which == 0) vb[i] = run(argv + 3, bare, &cb[i]);
      else if (which == 1) vw[i] = run(argv + 3, with, &cw[i]);
      else vr[i] = run(argv + 3, withref, &cr[i]);
    }
  }
  double m;
  double b = bench_median(vb, n, &m), w = bench_median(vw, n, &m);
  double xb = bench_median(cb, n, &m), xw = bench_median(cw, n, &m);
  printf("%.0f %.0f %.0f %.0f", b, w, xb, xw);
  if (ref) printf(" %.0f %.0f", bench_median(vr, n, &m), bench_median(cr, n, &m));
  printf("\n");
  return 0;
}
