/* Many threads connecting at once. usage: rb_threads PORT NTHREADS
 * Even threads use a blocking connect, odd ones a non-blocking connect + poll + SO_ERROR, all
 * released together by a barrier. Prints "connected N/M" and exits 0 when all connected. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int port;
static pthread_barrier_t go;
static int ok[256];

static void *run(void *arg)
{
  long i = (long)arg;
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int fd = socket(AF_INET, SOCK_STREAM | ((i & 1) ? SOCK_NONBLOCK : 0), 0);
  pthread_barrier_wait(&go);
  int r = connect(fd, (struct sockaddr *)&a, sizeof a);
  if (r < 0 && errno == EINPROGRESS) {
    struct pollfd p = { fd, POLLOUT, 0 };
    do r = poll(&p, 1, 20000); while (r < 0 && errno == EINTR);
    int e = -1;
    socklen_t l = sizeof e;
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &l);
    r = r == 1 && e == 0 ? 0 : -1;
    if (r) fprintf(stdout, "thread %ld: %s\n", i, strerror(e));
  } else if (r < 0) {
    fprintf(stdout, "thread %ld: %s\n", i, strerror(errno));
  }
  ok[i] = r == 0;
  /* Keep the fd open until every thread is done: no fd number is reused meanwhile, so each
   * thread's records keep their own fd. */
  pthread_barrier_wait(&go);
  close(fd);
  return NULL;
}

int main(int argc, char **argv)
{
  if (argc < 3) return 2;
  port = atoi(argv[1]);
  int n = atoi(argv[2]);
  if (n < 1 || n > 256) return 2;
  pthread_t t[256];
  pthread_barrier_init(&go, NULL, (unsigned)n);
  for (long i = 0; i < n; i++) pthread_create(&t[i], NULL, run, (void *)i);
  int good = 0;
  for (int i = 0; i < n; i++) { pthread_join(t[i], NULL); good += ok[i]; }
  printf("connected %d/%d\n", good, n);
  return good == n ? 0 : 1;
}
