/* Connect storm: THREADS threads start together and each makes PER connects to 127.0.0.1:PORT.
 *   stress_connect MODE THREADS PER PORT [TIMEOUT_MS]
 * MODE: block   blocking connect (TIMEOUT_MS: the program's own SO_SNDTIMEO)
 *       poll    non-blocking connect, poll(POLLOUT, TIMEOUT_MS), getsockopt(SO_ERROR)
 *       epoll   the same through a per-thread epoll set
 *       select  the same through select()
 * Prints "result NAME COUNT" lines (NAME: ok, timeout, or an errno name), sorted, so that a run
 * with the shim can be compared with one without. A watchdog kills a run that hangs. */
#include "stress.h"
#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/time.h>

static const char *mode;
static int per, port, timeout_ms = -1;
static pthread_barrier_t start;

static const char *so_error(int fd)
{
  int e = 0;
  socklen_t l = sizeof e;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &l) < 0) return "getsockopt_failed";
  return e ? err_name(e) : "ok";
}

static const char *one(int epfd, uint64_t tag)
{
  struct sockaddr_in a = loopback(port);
  int block = !strcmp(mode, "block");
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (block ? 0 : SOCK_NONBLOCK), 0);
  if (fd < 0) return "socket_failed";
  if (block && timeout_ms >= 0) {
    struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  }
  const char *res;
  int r = connect(fd, (struct sockaddr *)&a, sizeof a);
  if (r == 0) {
    res = "ok";
  } else if (block || errno != EINPROGRESS) {
    res = err_name(errno);
  } else if (!strcmp(mode, "poll")) {
    struct pollfd p = { fd, POLLOUT, 0 };
    int n = poll(&p, 1, timeout_ms);
    res = n == 0 ? "timeout" : n < 0 ? err_name(errno) : so_error(fd);
  } else if (!strcmp(mode, "epoll")) {
    struct epoll_event ev = { .events = EPOLLOUT, .data.u64 = tag }, got[4];
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) { close(fd); return "epoll_ctl_failed"; }
    int n = epoll_wait(epfd, got, 4, timeout_ms);
    if (n > 0 && got[0].data.u64 != tag) res = "epoll_wrong_data";
    else res = n == 0 ? "timeout" : n < 0 ? err_name(errno) : so_error(fd);
    epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL);
  } else {
    fd_set w;
    FD_ZERO(&w);
    FD_SET(fd, &w);
    struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };
    int n = select(fd + 1, NULL, &w, NULL, timeout_ms < 0 ? NULL : &tv);
    res = n == 0 ? "timeout" : n < 0 ? err_name(errno) : !FD_ISSET(fd, &w) ? "select_not_set" : so_error(fd);
  }
  close(fd);
  return res;
}

static void *worker(void *arg)
{
  uint64_t id = (uint64_t)(uintptr_t)arg;
  int epfd = !strcmp(mode, "epoll") ? epoll_create1(EPOLL_CLOEXEC) : -1;
  pthread_barrier_wait(&start);
  for (int i = 0; i < per; i++) hist_add(one(epfd, id << 32 | (uint64_t)i));
  if (epfd >= 0) close(epfd);
  return NULL;
}

int main(int argc, char **argv)
{
  if (argc < 5) {
    fprintf(stderr, "usage: stress_connect block|poll|epoll|select THREADS PER PORT [TIMEOUT_MS]\n");
    return 2;
  }
  mode = argv[1];
  int threads = atoi(argv[2]);
  per = atoi(argv[3]);
  port = atoi(argv[4]);
  if (argc > 5) timeout_ms = atoi(argv[5]);
  if (threads < 1 || threads > 256) return 2;
  watchdog(60);
  pthread_t th[256];
  pthread_barrier_init(&start, NULL, (unsigned)threads);
  for (int i = 0; i < threads; i++)
    if (pthread_create(&th[i], NULL, worker, (void *)(uintptr_t)(i + 1))) { perror("pthread_create"); return 1; }
  for (int i = 0; i < threads; i++) pthread_join(th[i], NULL);
  hist_print("result");
  return 0;
}
