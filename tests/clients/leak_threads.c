/* Tracking under concurrency: T threads each create and close sockets (socket, socketpair,
 * dup, accept-free) in a tight loop, and each leaks exactly K sockets from leak_here().
 * usage: leak_threads T N K   Expected report: one group of T*K sockets obtained in
 * leak_here; nothing else. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

static int n, k;

__attribute__((noinline)) static int leak_here(void)
{
  /* TCP, never connected: a leak at exit (docs/leaks.md). volatile: no tail call. */
  volatile int fd = socket(AF_INET, SOCK_STREAM, 0);
  return fd;
}

static void *worker(void *arg)
{
  for (int i = 0; i < n; i++) {
    int a = socket(AF_INET, SOCK_STREAM, 0);
    int d = dup(a);
    int sv[2];
    if (a < 0 || d < 0 || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) { perror("socket"); exit(2); }
    close(a);
    close(sv[0]);
    close(d);
    close(sv[1]);
    if (i % (n / k) == 0 && i / (n / k) < k) leak_here();
  }
  return arg;
}

int main(int argc, char **argv)
{
  int t = argc > 1 ? atoi(argv[1]) : 4;
  n = argc > 2 ? atoi(argv[2]) : 2000;
  k = argc > 3 ? atoi(argv[3]) : 5;
  pthread_t th[64];
  for (int i = 0; i < t && i < 64; i++) pthread_create(&th[i], NULL, worker, NULL);
  for (int i = 0; i < t && i < 64; i++) pthread_join(th[i], NULL);
  printf("done\n");
  return 0;
}
