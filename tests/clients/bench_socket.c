/* What tracking one socket costs, without traffic: N x (socket, close), each iteration timed.
 * Prints the median and the mean ns per iteration. usage: bench_socket [N] */
#include "bench_common.h"
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv)
{
  long n = argc > 1 ? atol(argv[1]) : 100000;
  int64_t *v = malloc(sizeof *v * (size_t)n);
  for (long i = 0; i < n; i++) {
    int64_t t = bench_now();
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) { perror("socket"); return 1; }
    close(fd);
    v[i] = bench_now() - t;
  }
  bench_report(v, n);
  return 0;
}
