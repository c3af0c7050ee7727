/* Many non-blocking connects in flight at once, more than the shim's active set holds (1024):
 * each connect to the same closed loopback port, then the program waits with poll() or epoll
 * and reads SO_ERROR. Every socket must end with the kernel's error, and no call may be held
 * up by a retry's backoff (an fd outside what epoll's lookup or the time-driven work sees would
 * be retried synchronously inside getsockopt).
 * usage: rb_many poll|epoll PORT N
 * prints "refused=R zero=Z other=O pending=P slow_calls=S" (slow: a getsockopt call that took
 * 100 ms or more). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

static int refused, zero, other, slow;

static void result(int fd)
{
  int e = -1;
  socklen_t l = sizeof e;
  double t = now();
  getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &l);
  if (now() - t >= 0.1) slow++;
  if (e == ECONNREFUSED) refused++;
  else if (e == 0) zero++;
  else other++;
}

int main(int argc, char **argv)
{
  if (argc != 4) { fprintf(stderr, "usage: rb_many poll|epoll PORT N\n"); return 2; }
  int use_epoll = !strcmp(argv[1], "epoll"), n = atoi(argv[3]);
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur < (rlim_t)n + 64) {
    rl.rlim_cur = rl.rlim_max < (rlim_t)n + 64 ? rl.rlim_max : (rlim_t)n + 64;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(argv[2])) };
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int ep = use_epoll ? epoll_create1(0) : -1;
  struct pollfd *p = calloc((size_t)n, sizeof *p);
  int *fds = calloc((size_t)n, sizeof *fds);
  for (int i = 0; i < n; i++) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0) { printf("socket: %s after %d\n", strerror(errno), i); return 2; }
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0 || errno != EINPROGRESS) {
      printf("connect %d: %s\n", i, strerror(errno));
      return 2;
    }
    fds[i] = fd;
    p[i].fd = fd;
    p[i].events = POLLOUT;
    if (use_epoll) {
      struct epoll_event ev = { .events = EPOLLOUT, .data.u64 = (uint64_t)i };
      epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    }
  }
  int left = n;
  struct epoll_event evs[64];
  while (left > 0) {
    /* A wait may last a backoff (retries under way): that is the point. getsockopt may not. */
    int r = use_epoll ? epoll_wait(ep, evs, 64, 5000) : poll(p, (nfds_t)n, 5000);
    if (r <= 0) break;
    if (use_epoll) {
      for (int k = 0; k < r; k++) {
        int fd = fds[evs[k].data.u64];
        result(fd);
        epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
        left--;
      }
    } else {
      for (int i = 0; i < n; i++) {
        if (p[i].fd < 0 || !p[i].revents) continue;
        result(p[i].fd);
        p[i].fd = -1;
        left--;
      }
    }
  }
  printf("refused=%d zero=%d other=%d pending=%d slow_calls=%d\n", refused, zero, other, left, slow);
  for (int i = 0; i < n; i++) close(fds[i]);
  return 0;
}
