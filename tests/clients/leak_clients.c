/* A C program that leaks a known number of sockets: N client sockets connected to its own
 * listener (created in open_client) and M accepted ones (in take_conn); the listener is
 * closed. Every leaked socket is a real leak at exit (docs/leaks.md): its peer has closed
 * (CLOSE_WAIT). The peers are made, accepted and closed with raw system calls, which the
 * shim does not see. usage: leak_clients N M [exit|return|status:K]
 * Ends by return from main (default), exit(0) or exit(K). Writes "leaked" to stdout without a
 * newline, so a lost stdio flush would show. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
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
  for (int i = 0; i < n; i++) {   /* its peer: accepted and closed behind the shim's back */
    open_client(&a);
    long pfd = syscall(SYS_accept4, lfd, NULL, NULL, 0);
    if (pfd < 0) { perror("raw accept"); return 2; }
    syscall(SYS_close, pfd);
  }
  for (int i = 0; i < m; i++) {   /* its peer: a raw client, closed once accepted */
    long cfd = syscall(SYS_socket, AF_INET, SOCK_STREAM, 0);
    if (cfd < 0 || syscall(SYS_connect, cfd, (struct sockaddr *)&a, sizeof a)) { perror("raw client"); return 2; }
    take_conn(lfd);
    syscall(SYS_close, cfd);
  }
  close(lfd);
  /* The peers' FINs are in before the exit report looks (loopback: at once; bounded). */
  for (int i = 0; i < 100; i++) usleep(1000);
  printf("leaked");
  if (!strcmp(how, "exit")) exit(0);
  if (!strncmp(how, "status:", 7)) exit(atoi(how + 7));
  return 0;
}
