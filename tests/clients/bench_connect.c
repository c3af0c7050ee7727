/* The connect path: N x (socket, connect to a loopback listener, close), each timed. One thread:
 * a loopback connect completes in the kernel's backlog without the server running, and the
 * listener's accept + close happens outside the timed part, so no scheduling noise gets in.
 * Prints the median and the mean ns per iteration. usage: bench_connect [N] */
#include "bench_common.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv)
{
  long n = argc > 1 ? atol(argv[1]) : 20000;
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
  socklen_t al = sizeof a;
  int lfd = socket(AF_INET, SOCK_STREAM, 0);
  if (bind(lfd, (struct sockaddr *)&a, sizeof a) || listen(lfd, 64) ||
      getsockname(lfd, (struct sockaddr *)&a, &al)) { perror("listen"); return 1; }
  int64_t *v = malloc(sizeof *v * (size_t)n);
  for (long i = 0; i < n; i++) {
    int64_t t = bench_now();
    int c = socket(AF_INET, SOCK_STREAM, 0);
    if (c < 0 || connect(c, (struct sockaddr *)&a, sizeof a)) { perror("connect"); return 1; }
    close(c);
    v[i] = bench_now() - t;
    int s = accept(lfd, NULL, NULL);
    if (s < 0) { perror("accept"); return 1; }
    close(s);
  }
  close(lfd);
  bench_report(v, n);
  return 0;
}
