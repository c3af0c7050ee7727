/* errno on every path. usage: rb_errno LIVE_PORT CLOSED_PORT DROP_PORT
 * LIVE_PORT: a listener; CLOSED_PORT: nothing listening; DROP_PORT: a listener that drops SYNs.
 * Prints one line per case: "case: ret=R errno=NAME". Failures print the errno the call set;
 * successes print the errno left after it, planted as EBADMSG before the call: it must stay
 * EBADMSG. Run with and without the shim, the outputs must be identical. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

static void show(const char *what, int ret, int err)
{
  const char *n = strerrorname_np(err);
  printf("%s: ret=%d errno=%s\n", what, ret < 0 ? -1 : ret > 0 ? 1 : 0, n ? n : "?");
}

static struct sockaddr_in v4(int port)
{
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

#define CALL(what, expr) do { errno = EBADMSG; int r_ = (expr); show(what, r_, errno); } while (0)

int main(int argc, char **argv)
{
  if (argc < 4) return 2;
  int live = atoi(argv[1]), closed = atoi(argv[2]), drop = atoi(argv[3]);
  struct sockaddr_in a;

  /* Failures the shim must never retry, each with the kernel's own errno. */
  int s = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in6 six = { .sin6_family = AF_INET6, .sin6_port = htons((uint16_t)closed), .sin6_addr = IN6ADDR_LOOPBACK_INIT };
  CALL("eafnosupport", connect(s, (struct sockaddr *)&six, sizeof six));
  a = v4(closed);
  CALL("einval_short_len", connect(s, (struct sockaddr *)&a, sizeof a - 1));
  CALL("efault_null_addr", connect(s, NULL, sizeof a));
  close(s);
  CALL("ebadf", connect(s, (struct sockaddr *)&a, sizeof a));
  int f = open("/dev/null", O_RDONLY);
  CALL("enotsock", connect(f, (struct sockaddr *)&a, sizeof a));
  close(f);

  /* EADDRNOTAVAIL: a second socket bound to the same local port, to the same destination. */
  int one = 1, c1 = socket(AF_INET, SOCK_STREAM, 0), c2 = socket(AF_INET, SOCK_STREAM, 0);
  setsockopt(c1, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  setsockopt(c2, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in local = v4(0);
  bind(c1, (struct sockaddr *)&local, sizeof local);
  socklen_t ll = sizeof local;
  getsockname(c1, (struct sockaddr *)&local, &ll);
  bind(c2, (struct sockaddr *)&local, sizeof local);
  a = v4(live);
  CALL("connect_live_ok", connect(c1, (struct sockaddr *)&a, sizeof a));
  CALL("eaddrnotavail", connect(c2, (struct sockaddr *)&a, sizeof a));
  CALL("eisconn", connect(c1, (struct sockaddr *)&a, sizeof a));
  close(c1);
  close(c2);

  /* ENETUNREACH (not in the default RETRY_ON): a v6-only socket to a v4-mapped address. */
  s = socket(AF_INET6, SOCK_STREAM, 0);
  setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  struct sockaddr_in6 mapped = { .sin6_family = AF_INET6, .sin6_port = htons((uint16_t)closed) };
  inet_pton(AF_INET6, "::ffff:127.0.0.1", &mapped.sin6_addr);
  CALL("v6only_mapped", connect(s, (struct sockaddr *)&mapped, sizeof mapped));
  close(s);

  /* Non-blocking, to a SYN drop: EINPROGRESS, then EALREADY on a second connect. */
  s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  a = v4(drop);
  CALL("nonblocking_inprogress", connect(s, (struct sockaddr *)&a, sizeof a));
  CALL("nonblocking_ealready", connect(s, (struct sockaddr *)&a, sizeof a));
  int e = -1;
  socklen_t el = sizeof e;
  CALL("getsockopt_while_connecting", getsockopt(s, SOL_SOCKET, SO_ERROR, &e, &el));
  printf("so_error_while_connecting=%d\n", e);

  /* Successes while the shim has that connect under way: errno must stay as planted. */
  int p[2];
  if (pipe(p) < 0) return 2;
  if (write(p[1], "x", 1) != 1) return 2;
  struct pollfd pf = { p[0], POLLIN, 0 };
  CALL("poll_ok", poll(&pf, 1, 100));
  struct pollfd both[2] = { { p[0], POLLIN, 0 }, { s, POLLOUT, 0 } };
  CALL("poll_with_connecting_ok", poll(both, 2, 50));
  fd_set rs;
  FD_ZERO(&rs);
  FD_SET(p[0], &rs);
  struct timeval tv = { 0, 100000 };
  CALL("select_ok", select(p[0] + 1, &rs, NULL, NULL, &tv));
  int ep = epoll_create1(0);
  struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 1 }, out[4];
  CALL("epoll_ctl_ok", epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev));
  struct epoll_event sev = { .events = EPOLLOUT, .data.u64 = 2 };
  CALL("epoll_ctl_connecting_ok", epoll_ctl(ep, EPOLL_CTL_ADD, s, &sev));
  CALL("epoll_wait_ok", epoll_wait(ep, out, 4, 100));
  CALL("epoll_ctl_del_ok", epoll_ctl(ep, EPOLL_CTL_DEL, s, NULL));
  el = sizeof e;
  CALL("getsockopt_ok", getsockopt(p[0], SOL_SOCKET, SO_TYPE, &e, &el));
  CALL("close_ok", close(s));
  CALL("close_ebadf", close(s));
  CALL("close_pipe_ok", close(p[0]));

  /* A blocking connect that succeeds at once, and one refused then seen by poll. */
  s = socket(AF_INET, SOCK_STREAM, 0);
  a = v4(live);
  CALL("blocking_connect_ok", connect(s, (struct sockaddr *)&a, sizeof a));
  close(s);
  s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  a = v4(live);
  errno = EBADMSG;
  if (connect(s, (struct sockaddr *)&a, sizeof a) < 0 && errno == EINPROGRESS) {
    struct pollfd w = { s, POLLOUT, 0 };
    CALL("poll_connected_ok", poll(&w, 1, 2000));
    el = sizeof e;
    CALL("so_error_connected_ok", getsockopt(s, SOL_SOCKET, SO_ERROR, &e, &el));
    printf("so_error=%d\n", e);
  } else {
    show("nonblocking_live_connect", 0, errno);
  }
  close(s);
  return 0;
}
