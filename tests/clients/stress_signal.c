/* Signal handlers that close and open fds while threads connect.
 *   stress_signal noise THREADS PER PORT
 *     Workers connect to 127.0.0.1:PORT, blocking and non-blocking+poll in turn, while a
 *     signaller thread hits them with SIGUSR1 every 100 us; the handler opens, dup2()s and
 *     closes fds (/dev/null, a UDP socket). The program retries poll() on EINTR, as it must.
 *   stress_signal close THREADS PER PORT
 *     The alarm-style connect timeout: a per-thread timer fires 30 ms into a blocking connect
 *     and its handler dup2()s a fresh UDP socket over the connecting fd. Afterwards the worker
 *     checks that the UDP socket now at that number was not touched (still unconnected).
 * Prints sorted "result NAME COUNT" lines. */
#include "stress.h"
#include <fcntl.h>
#include <poll.h>
#include <stdatomic.h>
#include <sys/syscall.h>

static int port, per, threads;
static const char *mode;
static atomic_int done_workers;
static pthread_t th[64];

/* ---- noise ---- */

static void noise_handler(int sig)
{
  int saved = errno;
  int f = open("/dev/null", O_RDONLY | O_CLOEXEC);
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (f >= 0 && s >= 0) dup2(f, s);   /* closes the UDP socket behind its number */
  if (s >= 0) close(s);
  if (f >= 0) close(f);
  errno = saved;
}

static const char *poll_connect(void)
{
  struct sockaddr_in a = loopback(port);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return "socket_failed";
  const char *res;
  if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
    res = "ok";
  } else if (errno != EINPROGRESS) {
    res = err_name(errno);
  } else {
    double end = now_s() + 10;
    int n;
    do {
      struct pollfd p = { fd, POLLOUT, 0 };
      int left = (int)((end - now_s()) * 1000);
      n = poll(&p, 1, left > 0 ? left : 0);
    } while (n < 0 && errno == EINTR);
    if (n <= 0) {
      res = n == 0 ? "timeout" : err_name(errno);
    } else {
      int e = 0;
      socklen_t l = sizeof e;
      getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &l);
      res = e ? err_name(e) : "ok";
    }
  }
  close(fd);
  return res;
}

static void *noise_worker(void *arg)
{
  char what[64];
  for (int i = 0; i < per; i++) {
    const char *r = (i & 1) ? poll_connect() : connect_once(port);
    snprintf(what, sizeof what, "%s:%s", (i & 1) ? "poll" : "block", r);
    hist_add(what);
  }
  atomic_fetch_add(&done_workers, 1);
  return NULL;
}

static void *signaller(void *arg)
{
  unsigned seed = 1;
  while (atomic_load(&done_workers) < threads) {
    pthread_kill(th[rand_r(&seed) % threads], SIGUSR1);
    struct timespec ts = { 0, 100000 };
    nanosleep(&ts, NULL);
  }
  return NULL;
}

/* ---- close ---- */

static __thread int cur_fd = -1, spare_fd = -1;
static __thread volatile sig_atomic_t fired;

static void close_handler(int sig)
{
  int saved = errno;
  if (cur_fd >= 0 && spare_fd >= 0) {
    dup2(spare_fd, cur_fd);     /* the connecting socket is closed; the number is a UDP socket now */
    close(spare_fd);
    spare_fd = -1;
  }
  fired = 1;
  errno = saved;
}

static void *close_worker(void *arg)
{
  timer_t t;
  struct sigevent sev;
  memset(&sev, 0, sizeof sev);
  sev.sigev_notify = SIGEV_THREAD_ID;
  sev.sigev_signo = SIGUSR2;
  sev._sigev_un._tid = (pid_t)syscall(SYS_gettid);
  if (timer_create(CLOCK_MONOTONIC, &sev, &t)) { hist_add("timer_create_failed"); return NULL; }
  char what[96];
  for (int i = 0; i < per; i++) {
    struct sockaddr_in a = loopback(port);
    spare_fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    fired = 0;
    cur_fd = fd;
    struct itimerspec its = { { 0, 0 }, { 0, 30 * 1000000 } };
    timer_settime(t, 0, &its, NULL);
    int r = connect(fd, (struct sockaddr *)&a, sizeof a);
    const char *res = r == 0 ? "ok" : err_name(errno);
    double end = now_s() + 5;
    while (!fired && now_s() < end) {
      struct timespec ts = { 0, 1000000 };
      nanosleep(&ts, NULL);
    }
    cur_fd = -1;
    /* What now sits at the number must be the handler's untouched UDP socket. */
    struct sockaddr_storage peer;
    socklen_t pl = sizeof peer;
    int type = 0;
    socklen_t tl = sizeof type;
    getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl);
    const char *peer_s = getpeername(fd, (struct sockaddr *)&peer, &pl) == 0 ? "connected" : err_name(errno);
    snprintf(what, sizeof what, "connect=%s:fired=%d:type=%s:peer=%s", res, (int)fired,
             type == SOCK_DGRAM ? "dgram" : type == SOCK_STREAM ? "stream" : "?", peer_s);
    hist_add(what);
    close(fd);
    if (spare_fd >= 0) { close(spare_fd); spare_fd = -1; }
  }
  timer_delete(t);
  return NULL;
}

int main(int argc, char **argv)
{
  if (argc < 5) {
    fprintf(stderr, "usage: stress_signal noise|close THREADS PER PORT\n");
    return 2;
  }
  mode = argv[1];
  threads = atoi(argv[2]);
  per = atoi(argv[3]);
  port = atoi(argv[4]);
  if (threads < 1 || threads > 64) return 2;
  watchdog(60);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  int noise = !strcmp(mode, "noise");
  sa.sa_handler = noise ? noise_handler : close_handler;
  sigaction(noise ? SIGUSR1 : SIGUSR2, &sa, NULL);
  for (int i = 0; i < threads; i++)
    pthread_create(&th[i], NULL, noise ? noise_worker : close_worker, NULL);
  pthread_t sig;
  if (noise) pthread_create(&sig, NULL, signaller, NULL);
  /* The signaller stops once every worker is done; only then may workers be joined (a
   * joined thread's id must not reach pthread_kill). */
  if (noise) pthread_join(sig, NULL);
  for (int i = 0; i < threads; i++) pthread_join(th[i], NULL);
  hist_print("result");
  return 0;
}
