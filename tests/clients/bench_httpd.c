/* A tiny HTTP/1.0 and 1.1 server for `make bench` (ab, curl): one thread, epoll, no keep-alive.
 * Each connection gets one fixed 200 response and is closed, so every request costs the client
 * a socket + connect + close: the path the shim hooks. It is fast enough that the client, not the
 * server, is what ab measures (python's http.server would hide the client's cost).
 *   bench_httpd        listen on 127.0.0.1 (a port from bind), print the port, serve until stdin ends
 * Run it without the shim: only the client's cost is measured. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define REQ_MAX 4096

struct conn {
  int fd;
  size_t len;
  char buf[REQ_MAX];
};

static const char body[] = "hello, connguard bench\n";

static void respond(struct conn *c)
{
  char out[256];
  const char *ver = memmem(c->buf, c->len, "HTTP/1.1", 8) ? "1.1" : "1.0";
  int n = snprintf(out, sizeof out,
                   "HTTP/%s 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
                   "Connection: close\r\n\r\n%s", ver, sizeof body - 1, body);
  /* A response this small always fits in an empty socket buffer. */
  if (write(c->fd, out, (size_t)n) < 0) {}
}

static void drop(int ep, struct conn *c)
{
  epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  free(c);
}

int main(void)
{
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) { rl.rlim_cur = rl.rlim_max; setrlimit(RLIMIT_NOFILE, &rl); }
  struct sockaddr_in a;
  socklen_t al = sizeof a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof a) || listen(lfd, 4096) ||
      getsockname(lfd, (struct sockaddr *)&a, &al)) { perror("bench_httpd: listen"); return 1; }
  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
  static struct conn stdin_mark, listen_mark;
  ev.data.ptr = &listen_mark;
  epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
  ev.data.ptr = &stdin_mark;
  epoll_ctl(ep, EPOLL_CTL_ADD, 0, &ev);
  printf("%d\n", ntohs(a.sin_port));
  fflush(stdout);

  struct epoll_event evs[256];
  for (;;) {
    int n = epoll_wait(ep, evs, 256, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      perror("bench_httpd: epoll_wait");
      return 1;
    }
    for (int i = 0; i < n; i++) {
      struct conn *c = evs[i].data.ptr;
      if (c == &stdin_mark) {
        char x[64];
        if (read(0, x, sizeof x) <= 0) return 0;
        continue;
      }
      if (c == &listen_mark) {
        for (;;) {
          int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (fd < 0) break;   /* EAGAIN, or out of fds for now: the backlog keeps the rest */
          struct conn *nc = malloc(sizeof *nc);
          if (!nc) { close(fd); continue; }
          nc->fd = fd;
          nc->len = 0;
          struct epoll_event cev = { .events = EPOLLIN | EPOLLRDHUP, .data.ptr = nc };
          if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev)) { close(fd); free(nc); }
        }
        continue;
      }
      for (;;) {
        ssize_t r = read(c->fd, c->buf + c->len, sizeof c->buf - 1 - c->len);
        if (r > 0) {
          c->len += (size_t)r;
          c->buf[c->len] = 0;
          if (memmem(c->buf, c->len, "\r\n\r\n", 4) || memmem(c->buf, c->len, "\n\n", 2)) {
            respond(c);
            drop(ep, c);
            break;
          }
          if (c->len >= sizeof c->buf - 1) { drop(ep, c); break; }   /* oversized: refuse quietly */
          continue;
        }
        if (r < 0 && (errno == EAGAIN || errno == EINTR)) break;
        drop(ep, c);   /* EOF before a full request, or an error */
        break;
      }
    }
  }
}
