/* Many sockets from few call sites, for the shared stacks of the live publication.
 *   leak_share N M [K]
 * Opens N TCP sockets from make_one() and M UDP sockets from make_other(). With K, forks a child that opens K
 * sockets from make_one() and waits for SIGTERM. Prints "ready child=PID|0 FD..." (the
 * parent's fds, make_one's first) and waits for a line on stdin (or SIGTERM); then closes
 * everything and exits through exit(). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

__attribute__((noinline)) static int make_one(void)
{
  volatile int fd = socket(AF_INET, SOCK_STREAM, 0);   /* volatile: no tail call */
  return fd;
}

__attribute__((noinline)) static int make_other(void)
{
  volatile int fd = socket(AF_INET, SOCK_DGRAM, 0);   /* not make_one's code: -O2 would fold them */
  return fd;
}

static void on_term(int sig) { (void)sig; exit(0); }   /* exit(): the shim removes the segment */

int main(int argc, char **argv)
{
  int n = argc > 1 ? atoi(argv[1]) : 10, m = argc > 2 ? atoi(argv[2]) : 1, k = argc > 3 ? atoi(argv[3]) : 0;
  int *fds = calloc((size_t)(n + m), sizeof *fds);
  if (!fds) return 2;
  signal(SIGTERM, on_term);
  for (int i = 0; i < n; i++) if ((fds[i] = make_one()) < 0) { perror("socket"); return 2; }
  for (int i = 0; i < m; i++) if ((fds[n + i] = make_other()) < 0) { perror("socket"); return 2; }
  pid_t child = 0;
  if (k > 0) {
    int p[2];
    if (pipe(p)) return 2;
    child = fork();
    if (child < 0) return 2;
    if (child == 0) {
      for (int i = 0; i < k; i++) if (make_one() < 0) _exit(2);
      if (write(p[1], "x", 1) != 1) _exit(2);
      for (int i = 0; i < 600; i++) sleep(1);   /* until the test's SIGTERM */
      _exit(3);
    }
    char c;
    if (read(p[0], &c, 1) != 1) return 2;     /* the child's sockets are published */
  }
  printf("ready child=%d", (int)child);
  for (int i = 0; i < n + m; i++) printf(" %d", fds[i]);
  printf("\n");
  fflush(stdout);
  char line[64];
  if (!fgets(line, sizeof line, stdin)) { /* EOF: the test is gone; close and exit all the same */ }
  for (int i = 0; i < n + m; i++) close(fds[i]);
  exit(0);
}
