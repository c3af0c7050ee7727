/* Memory per open socket for `make bench`: RSS growth while the program opens N connected TCP
 * sockets (socket + connect through libc, kept open), after a few warm-up sockets so that one-time
 * costs (loading a library, a first table page) are not charged per socket. The listener and its
 * accept thread use raw system calls, which no hook sees, so only the client's sockets count.
 * Run it with and without the shim: the difference of the two deltas divided by N is what the shim
 * keeps per socket (the fds array is allocated before the first figure). Output: "rss_delta_bytes N". usage: bench_sockmem [N]
 * RLIMIT_NOFILE must allow N + 32 descriptors (the soft limit is raised to the hard one). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#define WARM 32

static int lfd;

static void *acceptor(void *arg)
{
  (void)arg;
  for (;;) {
    long c = syscall(SYS_accept4, lfd, NULL, NULL, 0);
    if (c >= 0) syscall(SYS_close, c);
  }
  return NULL;
}

static long rss(void)
{
  FILE *f = fopen("/proc/self/statm", "r");
  long size = 0, res = 0;
  if (!f || fscanf(f, "%ld %ld", &size, &res) != 2) { perror("statm"); exit(1); }
  fclose(f);
  return res * sysconf(_SC_PAGESIZE);
}

static int *fds;
static long nfds;

static void open_n(long n, const struct sockaddr_in *a)
{
  for (long i = 0; i < n; i++) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0 || connect(s, (const struct sockaddr *)a, sizeof *a)) { perror("socket/connect"); exit(1); }
    fds[nfds++] = s;
  }
}

int main(int argc, char **argv)
{
  long n = argc > 1 ? atol(argv[1]) : 10000;
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)(n + WARM + 32)) {
    fprintf(stderr, "bench_sockmem: RLIMIT_NOFILE %lu is below %ld\n", (unsigned long)rl.rlim_cur, n + WARM + 32);
    return 1;
  }
  struct sockaddr_in a = { .sin_family = AF_INET };
  socklen_t al = sizeof a;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  lfd = (int)syscall(SYS_socket, AF_INET, SOCK_STREAM, 0);
  if (lfd < 0 || syscall(SYS_bind, lfd, &a, sizeof a) || syscall(SYS_listen, lfd, 4096) ||
      syscall(SYS_getsockname, lfd, &a, &al)) { perror("listen"); return 1; }
  pthread_t th;
  pthread_create(&th, NULL, acceptor, NULL);
  fds = malloc(sizeof *fds * (size_t)(n + WARM));
  if (!fds) return 1;
  open_n(WARM, &a);
  long before = rss();
  open_n(n, &a);
  long after = rss();
  printf("%ld %ld\n", after - before, n);
  for (long i = 0; i < nfds; i++) close(fds[i]);
  return 0;
}
