/* Sockets obtained by socketpair() and by copies of a tracked socket, each leaked from its own
 * function (one creation site, so one leak group, each):
 *   open_source   socket(): a UDP socket bound to 127.0.0.1 and connected to itself
 *   leak_pair     socketpair(AF_UNIX, SOCK_STREAM), both ends; called N times from one call site
 *   leak_dup2     dup2(source, 300)
 *   leak_dup3     dup3(source, 301, O_CLOEXEC)
 *   leak_dup      dup(source)
 *   leak_fcntl    fcntl(source, F_DUPFD_CLOEXEC, 400)
 * Not tracked (controls): a dup2() of the source onto 0 (a stdio redirection) and a dup() of
 * /dev/null. usage: leak_dups [N]   (N pairs, default 2, at most 8)
 * Prints the fds: "source=S pair=A,B,... dup2=300 dup3=301 dup=X fcntl=Y". */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#define SITE __attribute__((noinline, noclone))

static void die(const char *what)
{
  perror(what);
  exit(2);
}

static void must_be_free(int fd)
{
  if (fcntl(fd, F_GETFD) != -1) { fprintf(stderr, "fd %d is already open\n", fd); exit(2); }
}

SITE static int open_source(void)
{
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
  socklen_t al = sizeof a;
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) || getsockname(fd, (struct sockaddr *)&a, &al) ||
      connect(fd, (struct sockaddr *)&a, sizeof a))   /* UDP: no packet is sent */
    die("source");
  return fd;
}

SITE static void leak_pair(int sv[2])
{
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) die("socketpair");
}

SITE static int leak_dup2(int src)
{
  must_be_free(300);
  int fd = dup2(src, 300);
  if (fd != 300) die("dup2");
  return fd;
}

SITE static int leak_dup3(int src)
{
  must_be_free(301);
  int fd = dup3(src, 301, O_CLOEXEC);
  if (fd != 301) die("dup3");
  return fd;
}

SITE static int leak_dup(int src)
{
  int fd = dup(src);
  if (fd < 0) die("dup");
  return fd;
}

SITE static int leak_fcntl(int src)
{
  int fd = fcntl(src, F_DUPFD_CLOEXEC, 400);
  if (fd < 400) die("fcntl");
  return fd;
}

int main(int argc, char **argv)
{
  int n = argc > 1 ? atoi(argv[1]) : 2;
  if (n < 1 || n > 8) { fprintf(stderr, "usage: leak_dups [N]  (1 <= N <= 8)\n"); return 2; }
  int src = open_source();
  int p[16];
  for (int i = 0; i < n; i++) leak_pair(p + 2 * i);   /* one call site */
  int d2 = leak_dup2(src), d3 = leak_dup3(src), d = leak_dup(src), f = leak_fcntl(src);
  /* Controls, never reported: a redirection of stdin, a copy of something not a socket. */
  if (dup2(src, 0) != 0) die("dup2 stdin");
  int null = open("/dev/null", O_RDONLY);
  if (null < 0 || dup(null) < 0) die("dup null");
  printf("source=%d pair=", src);
  for (int i = 0; i < 2 * n; i++) printf(i ? ",%d" : "%d", p[i]);
  printf(" dup2=%d dup3=%d dup=%d fcntl=%d\n", d2, d3, d, f);
  return 0;
}
