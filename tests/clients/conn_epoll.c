/* Non-blocking connect + epoll (level-triggered, or edge-triggered with -e) + SO_ERROR: libuv,
 * python asyncio. The event carries the program's own data, not the fd. */
#include "client.h"
#include <sys/epoll.h>

int main(int argc, char **argv)
{
  struct sockaddr_storage ss;
  socklen_t len;
  int fam;
  parse_args(argc, argv);
  resolve(&ss, &len, &fam);
  ticker_start();
  int ep = epoll_create1(EPOLL_CLOEXEC);
  int fd = start_nonblocking(&ss, len, fam);
  uint64_t tag = 0xc0ffee0000000000ULL | (unsigned)fd;
  struct epoll_event ev = { .events = EPOLLOUT | (O.edge ? EPOLLET : 0), .data.u64 = tag };
  if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) { printf("error %s via epoll_ctl\n", ename(errno)); return 2; }
  if (ticker >= 0) {
    struct epoll_event tv = { .events = EPOLLIN, .data.u64 = 7 };
    epoll_ctl(ep, EPOLL_CTL_ADD, ticker, &tv);
  }
  long end = now_ms() + O.timeout_ms;
  for (;;) {
    struct epoll_event out[8];
    long left = end - now_ms();
    if (left < 0) left = 0;
    int n = epoll_wait(ep, out, 8, (int)left);
    if (n < 0) { if (errno == EINTR) continue; finish(fd, errno, "epoll_wait"); }
    for (int i = 0; i < n; i++) {
      if (out[i].data.u64 == 7) { ticker_drain(); continue; }
      if (out[i].data.u64 != tag) { printf("bad event data %#llx\n", (unsigned long long)out[i].data.u64); return 2; }
      unsigned e = out[i].events;
      int err = so_error(fd);
      if (!note[0]) note_revents("events", (e & EPOLLOUT ? POLLOUT : 0) | (e & EPOLLERR ? POLLERR : 0) |
                                           (e & EPOLLHUP ? POLLHUP : 0) | (e & EPOLLIN ? POLLIN : 0));
      finish(fd, err, "getsockopt");
    }
    if (n == 0 && now_ms() >= end) timed_out(fd, "epoll_wait");
  }
}
