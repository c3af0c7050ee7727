/* close() inside a signal handler while connects are retried. usage: rb_signal CLOSED_PORT MS
 * A 200 us interval timer's handler closes a descriptor (dup of /dev/null), and every 50th
 * time the socket the main loop is connecting; two threads keep running non-blocking (poll)
 * and blocking connects against a closed port for MS milliseconds. Nothing may hang or crash;
 * every connect ends in ECONNREFUSED, or EBADF/POLLNVAL when the handler took its socket.
 * Blocking connects interrupted by the (SA_RESTART) handler must never show EINTR. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static int port, devnull;
static atomic_int victim = -1;
static atomic_long signals, stolen, refused, other, done_flag;

static void on_alarm(int sig)
{
  (void)sig;
  int saved = errno;
  long n = atomic_fetch_add(&signals, 1);
  int d = dup(devnull);
  if (d >= 0) close(d);
  if (n % 50 == 0) {
    int v = atomic_exchange(&victim, -1);
    if (v >= 0 && close(v) == 0) atomic_fetch_add(&stolen, 1);
  }
  errno = saved;
}

static long now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000L + ts.tv_nsec / 1000000;
}

static void one(int nonblock)
{
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int fd = socket(AF_INET, SOCK_STREAM | (nonblock ? SOCK_NONBLOCK : 0), 0);
  if (nonblock) {
    /* The handler's victims live at 700 and up, where only this thread allocates: a number
     * it frees is never handed to the other thread while this one still uses it. */
    int hi = fcntl(fd, F_DUPFD_CLOEXEC, 700);
    close(fd);
    fd = hi;
    atomic_store(&victim, fd);
  }
  int r = connect(fd, (struct sockaddr *)&a, sizeof a), e = errno;
  if (r < 0 && e == EINPROGRESS) {
    struct pollfd p = { fd, POLLOUT, 0 };
    long end = now_ms() + 10000;
    do r = poll(&p, 1, 1000); while ((r < 0 && errno == EINTR) || (r == 0 && now_ms() < end));
    if (r == 1 && (p.revents & POLLNVAL)) { e = EBADF; }
    else if (r == 1) {
      int se = -1;
      socklen_t l = sizeof se;
      if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &se, &l) < 0) e = errno; else e = se;
    } else {
      e = ETIMEDOUT;
    }
  }
  if (nonblock && atomic_exchange(&victim, -1) != fd) {
    /* The handler closed it: the calls said so (EBADF / POLLNVAL), or the result was already
     * in when it did (ECONNREFUSED). Nothing else, and nothing hung. */
    if (e == EBADF || e == ECONNREFUSED) atomic_fetch_add(&refused, 1);
    else { atomic_fetch_add(&other, 1); fprintf(stderr, "unexpected after close in handler: %s\n", strerror(e)); }
    return;
  }
  if (e == ECONNREFUSED || e == EBADF) atomic_fetch_add(&refused, 1);
  else { atomic_fetch_add(&other, 1); fprintf(stderr, "unexpected: %s\n", strerror(e)); }
  close(fd);
}

static void *blocking_loop(void *arg)
{
  (void)arg;
  while (!atomic_load(&done_flag)) one(0);
  return NULL;
}

int main(int argc, char **argv)
{
  if (argc < 3) return 2;
  port = atoi(argv[1]);
  long ms = atol(argv[2]);
  devnull = open("/dev/null", O_RDONLY);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_alarm;
  sa.sa_flags = SA_RESTART;
  sigaction(SIGALRM, &sa, NULL);
  struct itimerval it = { { 0, 200 }, { 0, 200 } };
  setitimer(ITIMER_REAL, &it, NULL);
  pthread_t t;
  pthread_create(&t, NULL, blocking_loop, NULL);
  long end = now_ms() + ms, loops = 0;
  while (now_ms() < end) { one(1); loops++; }
  atomic_store(&done_flag, 1);
  pthread_join(t, NULL);
  struct itimerval off = { { 0, 0 }, { 0, 0 } };
  setitimer(ITIMER_REAL, &off, NULL);
  printf("loops=%ld signals_ok=%d stolen_ok=%d other=%ld\n", loops, atomic_load(&signals) > 100,
         atomic_load(&stolen) > 0, atomic_load(&other));
  return atomic_load(&other) ? 1 : 0;
}
