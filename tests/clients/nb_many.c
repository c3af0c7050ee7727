/* N healthy non-blocking connects to a listener of its own, each waited for in poll() or epoll,
 * its result read with getsockopt(SO_ERROR), then accepted and both ends closed: the system
 * calls a healthy event loop makes, for `strace -c` with and without the shim.
 *
 * usage: nb_many N poll|epoll sock|fcntl|ioctl [PORT]
 *        nb_many N udp    N blocking UDP connects (and closes), as a DNS client makes: "ok N"
 *   sock   SOCK_NONBLOCK at socket(); fcntl: F_GETFL + F_SETFL; ioctl: FIONBIO
 *   PORT   connect there instead (a closed port: each connect must fail, the errno and the call
 *          that saw it are printed once per distinct result: "ECONNREFUSED via getsockopt")
 * With PORT, then a new socket made with SOCK_NONBLOCK is made blocking that way, and
 * connects to PORT: "blocking ECONNREFUSED" (exit 1). Without, prints "ok N" (N connected). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

static int set_nb(int fd, const char *how, int on)
{
  if (!strcmp(how, "ioctl")) {
    int v = on;
    return ioctl(fd, FIONBIO, &v);
  }
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0) return -1;
  return fcntl(fd, F_SETFL, on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK);
}

int main(int argc, char **argv)
{
  if (argc < 3 || (argc < 4 && strcmp(argv[2], "udp"))) { fprintf(stderr, "usage: nb_many N poll|epoll|udp [sock|fcntl|ioctl [PORT]]\n"); return 2; }
  int n = atoi(argv[1]), use_epoll = !strcmp(argv[2], "epoll");
  const char *how = argv[3];
  int port = argc > 4 ? atoi(argv[4]) : 0;
  struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
  socklen_t sl = sizeof sa;
  if (!strcmp(argv[2], "udp")) {
    sa.sin_port = htons(9);   /* a UDP connect sends nothing: no listener needed */
    for (int i = 0; i < n; i++) {
      int u = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
      if (u < 0 || connect(u, (struct sockaddr *)&sa, sl)) { perror("udp"); return 2; }
      close(u);
    }
    printf("ok %d\n", n);
    return 0;
  }
  int lfd = -1;
  if (!port) {
    lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sl) || listen(lfd, 128) ||
        getsockname(lfd, (struct sockaddr *)&sa, &sl)) { perror("listener"); return 2; }
  } else {
    sa.sin_port = htons((unsigned short)port);
  }
  int ep = use_epoll ? epoll_create1(EPOLL_CLOEXEC) : -1;
  int ok = 0, last_err = -1, fd = -1;
  for (int i = 0; i < n; i++) {
    if (fd >= 0) close(fd);
    fd = socket(AF_INET, SOCK_STREAM | (!strcmp(how, "sock") ? SOCK_NONBLOCK : 0), 0);
    if (fd < 0) { perror("socket"); return 2; }
    if (strcmp(how, "sock") && set_nb(fd, how, 1)) { perror("nonblock"); return 2; }
    int r = connect(fd, (struct sockaddr *)&sa, sizeof sa), err = 0;
    const char *via = "connect";
    if (r < 0 && errno != EINPROGRESS) {
      err = errno;
    } else if (r < 0) {
      if (use_epoll) {
        struct epoll_event ev = { .events = EPOLLOUT, .data.u64 = 1000 + (unsigned)i };
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
        struct epoll_event got;
        if (epoll_wait(ep, &got, 1, 30000) != 1) { printf("timeout via epoll\n"); return 1; }
        epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
      } else {
        struct pollfd p = { fd, POLLOUT, 0 };
        if (poll(&p, 1, 30000) != 1) { printf("timeout via poll\n"); return 1; }
      }
      socklen_t el = sizeof err;
      getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
      via = "getsockopt";
    }
    if (!err) {
      ok++;
      if (lfd >= 0) {
        int a = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (a >= 0) close(a);
      }
    } else if (err != last_err) {
      printf("%s via %s\n", strerrorname_np(err), via);
      last_err = err;
    }
  }
  if (port) {
    /* Made blocking after socket(): its retries must wait in connect(). */
    if (fd >= 0) close(fd);
    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (set_nb(fd, how, 0)) { perror("blocking"); return 2; }
    int r = connect(fd, (struct sockaddr *)&sa, sizeof sa);
    printf("blocking %s\n", r == 0 ? "connected" : strerrorname_np(errno));
  }
  if (fd >= 0) close(fd);
  if (lfd >= 0) close(lfd);
  if (ep >= 0) close(ep);
  if (port) return 1;
  printf("ok %d\n", ok);
  return ok == n ? 0 : 1;
}
