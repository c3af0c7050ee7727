/* A non-blocking connect whose completion the program never waits for through a hooked call:
 * it clears O_NONBLOCK and writes (the kernel waits for the connection inside write()), then
 * calls poll() on something else for longer than CONNGUARD_CONNECT_TIMEOUT_MS. The shim's
 * attempt timer expires with the connect still "in progress" as far as it saw: it must find
 * the connection established and leave it alone, not reset it and connect again.
 * usage: rb_unseen POLL_MS    prints how many connections the listener got and what it read. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv)
{
  int poll_ms = argc > 1 ? atoi(argv[1]) : 1500;
  signal(SIGPIPE, SIG_IGN);
  struct sockaddr_in a = { .sin_family = AF_INET };
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t al = sizeof a;
  int l = socket(AF_INET, SOCK_STREAM, 0);
  if (bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 8) || getsockname(l, (struct sockaddr *)&a, &al)) {
    perror("listen");
    return 2;
  }
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  int r = connect(fd, (struct sockaddr *)&a, sizeof a);
  printf("connect=%s\n", r == 0 ? "0" : strerrorname_np(errno));
  fcntl(fd, F_SETFL, 0);
  ssize_t w1 = write(fd, "hello", 5);
  int p[2];
  if (pipe(p)) return 2;
  struct pollfd pf = { p[0], POLLIN, 0 };
  int n = poll(&pf, 1, poll_ms);
  ssize_t w2 = write(fd, "again", 5);
  printf("write=%zd poll=%d write=%zd\n", w1, n, w2);
  close(fd);
  /* What the listener got: every connection queued, and the bytes of each. */
  fcntl(l, F_SETFL, O_NONBLOCK);
  int conns = 0;
  int c;
  while ((c = accept(l, NULL, NULL)) >= 0) {
    char buf[64];
    ssize_t k, got = 0;
    while ((k = read(c, buf + got, sizeof buf - 1 - (size_t)got)) > 0) got += k;
    buf[got > 0 ? got : 0] = 0;
    printf("conn %d read \"%s\"\n", ++conns, buf);
    close(c);
  }
  printf("connections=%d\n", conns);
  return 0;
}
