/* A C program that leaks a known number of sockets: N client sockets connected to its own
 * listener (created in open_client) and M accepted ones (in take_conn); the listener is
 * closed. usage: leak_clients N M [exit|return|status:K]
 * Ends by return from main (default), exit(0) or exit(K). Writes "leaked" to stdout without a
 * newline, so a lost stdio flush would show. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

__attribute__((noinline)) static int open_client(const struct sockaddr_in *a)
{
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0 || connect(fd, (const struct sockaddr *)a, sizeof *a) != 0) { perror("client"); exit(2); }
  return fd;
}

__attribute__((noinline)) static int take_conn(int lfd)
{
  int fd = accept(lfd, NULL, NULL);
  if (fd < 0) { perror("accept"); exit(2); }
  return fd;
}

int main(int argc, char **argv)
{
  int n = argc > 1 ? atoi(argv[1]) : 3, m = argc > 2 ? atoi(argv[2]) : 2;
  const char *how = argc > 3 ? argv[3] : "return";
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
  socklen_t al = sizeof a;
  int lfd = socket(AF_INET, SOCK_STREAM, 0);
  if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof a) || listen(lfd, 64) ||
      getsockname(lfd, (struct sockaddr *)&a, &al)) { perror("listen"); return 2; }
  for (int i = 0; i < n; i++) open_client(&a);
  for (int i = 0; i < m; i++) take_conn(lfd);
  close(lfd);
  printf("leaked");
  if (!strcmp(how, "exit")) exit(0);
  if (!strncmp(how, "status:", 7)) exit(atoi(how + 7));
  return 0;
}
