/* Benchmark loops for `make bench`, timed from inside so process start-up is excluded.
 *   bench_loop serve           listen on 127.0.0.1, print the port, accept and close until stdin ends
 *   bench_loop connect N PORT  socket/connect/close to that listener (run it without the shim, so
 *                              only the client's cost is measured)
 *   bench_loop connect-nb N PORT  the same, non-blocking as event loops do it (ab, curl, nginx):
 *                              socket, fcntl O_NONBLOCK, connect (EINPROGRESS), epoll_wait for
 *                              writable, getsockopt SO_ERROR, close
 *   bench_loop open N PATH     open/close of a regular file
 * Prints "ns_per_op <float>". */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int lfd;

static void *acceptor(void *arg)
{
  (void)arg;
  for (;;) {
    int c = accept(lfd, NULL, NULL);
    if (c < 0) continue;
    close(c);
  }
  return NULL;
}

static double now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e9 + ts.tv_nsec;
}

int main(int argc, char **argv)
{
  if (argc < 2 || (strcmp(argv[1], "serve") && argc < 3)) {
    fprintf(stderr, "usage: bench_loop serve | connect N PORT | connect-nb N PORT | open N PATH\n");
    return 2;
  }
  long n = argc > 2 ? atol(argv[2]) : 0;
  double t0, t1;
  if (!strcmp(argv[1], "serve")) {
    struct sockaddr_in a;
    socklen_t al = sizeof a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    lfd = socket(AF_INET, SOCK_STREAM, 0);
    if (bind(lfd, (struct sockaddr *)&a, sizeof a) || listen(lfd, 4096) ||
        getsockname(lfd, (struct sockaddr *)&a, &al)) { perror("listen"); return 1; }
    pthread_t th;
    pthread_create(&th, NULL, acceptor, NULL);
    printf("%d\n", ntohs(a.sin_port));
    fflush(stdout);
    char c;
    while (read(0, &c, 1) > 0) {}
    return 0;
  }
  if (!strcmp(argv[1], "connect") && argc > 3) {
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((unsigned short)atoi(argv[3]));
    t0 = now();
    for (long i = 0; i < n; i++) {
      int s = socket(AF_INET, SOCK_STREAM, 0);
      if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof a) != 0) { perror("connect"); return 1; }
      close(s);
    }
    t1 = now();
  } else if (!strcmp(argv[1], "connect-nb") && argc > 3) {
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((unsigned short)atoi(argv[3]));
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) { perror("epoll_create1"); return 1; }
    t0 = now();
    for (long i = 0; i < n; i++) {
      int s = socket(AF_INET, SOCK_STREAM, 0);
      if (s < 0 || fcntl(s, F_SETFL, fcntl(s, F_GETFL) | O_NONBLOCK)) { perror("socket"); return 1; }
      if (connect(s, (struct sockaddr *)&a, sizeof a) != 0 && errno != EINPROGRESS) { perror("connect"); return 1; }
      struct epoll_event ev = { .events = EPOLLOUT, .data.fd = s }, out;
      if (epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev) || epoll_wait(ep, &out, 1, 5000) != 1) { perror("epoll"); return 1; }
      int err = 0;
      socklen_t el = sizeof err;
      if (getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &el) || err) { fprintf(stderr, "connect: %s\n", strerror(err)); return 1; }
      epoll_ctl(ep, EPOLL_CTL_DEL, s, NULL);
      close(s);
    }
    t1 = now();
    close(ep);
  } else if (!strcmp(argv[1], "open") && argc > 3) {
    t0 = now();
    for (long i = 0; i < n; i++) {
      int f = open(argv[3], O_RDONLY);
      if (f < 0) { perror("open"); return 1; }
      close(f);
    }
    t1 = now();
  } else {
    fprintf(stderr, "unknown mode\n");
    return 2;
  }
  printf("ns_per_op %.1f\n", (t1 - t0) / n);
  return 0;
}
