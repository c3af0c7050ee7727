/* The connect path: socket + connect to a loopback listener + close, through libc vs raw
 * system calls (bench_common.h). One thread: a loopback connect completes in the listener's
 * backlog, and the accept + close of the server side happens outside the timed part.
 * usage: bench_connect [N] */
#include "bench_common.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

static int lfd;
static struct sockaddr_in a = { .sin_family = AF_INET };

static void drain(void)
{
  int s = (int)syscall(SYS_accept4, lfd, NULL, NULL, 0);
  if (s < 0) { perror("accept"); exit(1); }
  syscall(SYS_close, s);
}

int main(int argc, char **argv)
{
  long n = argc > 1 ? atol(argv[1]) : 20000;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t al = sizeof a;
  lfd = socket(AF_INET, SOCK_STREAM, 0);
  if (bind(lfd, (struct sockaddr *)&a, sizeof a) || listen(lfd, 64) ||
      getsockname(lfd, (struct sockaddr *)&a, &al)) { perror("listen"); return 1; }
  BENCH_AB(n,
    { int c = socket(AF_INET, SOCK_STREAM, 0);
      if (c < 0 || connect(c, (struct sockaddr *)&a, sizeof a)) { perror("connect"); return 1; }
      close(c); drain(); },
    { int c = (int)syscall(SYS_socket, AF_INET, SOCK_STREAM, 0);
      if (c < 0 || syscall(SYS_connect, c, (struct sockaddr *)&a, sizeof a)) { perror("connect"); return 1; }
      syscall(SYS_close, c); drain(); });
  close(lfd);
  return 0;
}
