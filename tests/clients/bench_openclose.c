/* Cost of close() on ordinary files: N x (open /dev/null, close), each iteration timed.
 * Prints the median and the mean ns per iteration. usage: bench_openclose [N] */
#include "bench_common.h"
#include <fcntl.h>
#include <unistd.h>

int main(int argc, char **argv)
{
  long n = argc > 1 ? atol(argv[1]) : 200000;
  int64_t *v = malloc(sizeof *v * (size_t)n);
  for (long i = 0; i < n; i++) {
    int64_t t = bench_now();
    int fd = open("/dev/null", O_RDONLY);
    if (fd < 0) { perror("open"); return 1; }
    close(fd);
    v[i] = bench_now() - t;
  }
  bench_report(v, n);
  return 0;
}
