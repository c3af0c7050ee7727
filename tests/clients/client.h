/* Shared by the connect-style test clients. Each prints one result line on stdout:
 *   connected
 *   error ECONNREFUSED via getsockopt
 *   timeout via poll
 * and exits 0 (connected) or 1, so a test can assert the exact errno and the call through
 * which the program saw it, with and without the shim.
 *
 * usage: CLIENT HOST PORT [-t MS] [-s MS] [-k MS] [-o] [-r] [-e] [-x]
 *   -t MS  the client's own wait timeout (poll/epoll/select), default 30000
 *   -s MS  set SO_SNDTIMEO before connecting (blocking clients: the program's own timeout)
 *   -k MS  also wait on a timerfd ticking every MS and print "ticks N" when done: proves the
 *          wait was not frozen by a retry
 *   -o     print "opts ..." (O_NONBLOCK, SO_SNDTIMEO, SO_RCVBUF, SO_KEEPALIVE, TCP_NODELAY)
 *          after the connect, having set unusual values before it
 *   -r     after connecting, read and print one line from the server ("got hello")
 *   -e     edge-triggered (epoll client)
 *   -x     print "errno_kept" when errno after a successful connect path is what it was before
 *   -a MS  alarm-style timeout: a SIGALRM handler without SA_RESTART, armed MS before connect()
 *   -b     bind to an ephemeral loopback port first; print "local_port_kept" when getsockname
 *          still shows it after the connect (retries must not lose the program's bind)
 */
#ifndef CG_CLIENT_H
#define CG_CLIENT_H
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

struct copts {
  const char *host, *port;
  int timeout_ms, sndtimeo_ms, tick_ms, show_opts, read_line, edge, check_errno, bind_first, alarm_ms;
  int depth;   /* -d N: connect() from N nested calls (deep stacks) */
  int then_ms; /* -w MS: after EINPROGRESS/EINTR, wait for the connect in progress (conn_blocking) */
  int again;   /* -W: then connect() once more (conn_blocking) */
};

static struct copts O = { NULL, NULL, 30000, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 };
static int bound_port = -1;

static const char *ename(int e)
{
  const char *n = strerrorname_np(e);
  return n ? n : "E?";
}

static __attribute__((unused)) void usage(const char *argv0)
{
  fprintf(stderr, "usage: %s HOST PORT [-t MS] [-s MS] [-k MS] [-o] [-r] [-e] [-x]\n", argv0);
  exit(2);
}

static __attribute__((unused)) void parse_args(int argc, char **argv)
{
  if (argc < 3) usage(argv[0]);
  O.host = argv[1];
  O.port = argv[2];
  for (int i = 3; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "-t") && i + 1 < argc) O.timeout_ms = atoi(argv[++i]);
    else if (!strcmp(a, "-s") && i + 1 < argc) O.sndtimeo_ms = atoi(argv[++i]);
    else if (!strcmp(a, "-k") && i + 1 < argc) O.tick_ms = atoi(argv[++i]);
    else if (!strcmp(a, "-o")) O.show_opts = 1;
    else if (!strcmp(a, "-r")) O.read_line = 1;
    else if (!strcmp(a, "-e")) O.edge = 1;
    else if (!strcmp(a, "-x")) O.check_errno = 1;
    else if (!strcmp(a, "-b")) O.bind_first = 1;
    else if (!strcmp(a, "-a") && i + 1 < argc) O.alarm_ms = atoi(argv[++i]);
    else if (!strcmp(a, "-d") && i + 1 < argc) O.depth = atoi(argv[++i]);
    else if (!strcmp(a, "-w") && i + 1 < argc) O.then_ms = atoi(argv[++i]);
    else if (!strcmp(a, "-W")) O.again = 1;
    else usage(argv[0]);
  }
}

/* Numeric address only: the clients must not depend on a resolver. */
static __attribute__((unused)) void resolve(struct sockaddr_storage *ss, socklen_t *len, int *family)
{
  struct addrinfo hints = { .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV, .ai_socktype = SOCK_STREAM }, *res;
  int r = getaddrinfo(O.host, O.port, &hints, &res);
  if (r) { printf("resolve failed: %s\n", gai_strerror(r)); exit(2); }
  memcpy(ss, res->ai_addr, res->ai_addrlen);
  *len = res->ai_addrlen;
  *family = res->ai_family;
  freeaddrinfo(res);
}

/* Unusual option values, set before connecting, that must read back the same afterwards. */
static __attribute__((unused)) void set_opts(int fd)
{
  int one = 1, rcv = 123456;
  setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
}

static __attribute__((unused)) void set_sndtimeo(int fd, int ms)
{
  struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
  if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) < 0) { perror("SO_SNDTIMEO"); exit(2); }
}

static __attribute__((unused)) void print_opts(int fd)
{
  int ka = 0, nd = 0, rcv = 0;
  struct timeval tv = { 0, 0 };
  socklen_t l = sizeof ka;
  getsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &ka, &l);
  l = sizeof nd;
  getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &nd, &l);
  l = sizeof rcv;
  getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, &l);
  l = sizeof tv;
  getsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, &l);
  int fl = fcntl(fd, F_GETFL), fdfl = fcntl(fd, F_GETFD);
  printf("opts nonblock=%d cloexec=%d sndtimeo_ms=%ld rcvbuf=%d keepalive=%d nodelay=%d\n",
         !!(fl & O_NONBLOCK), !!(fdfl & FD_CLOEXEC), (long)(tv.tv_sec * 1000 + tv.tv_usec / 1000), rcv, ka, nd);
}

static volatile sig_atomic_t alarmed;
static void on_alarm(int sig) { (void)sig; alarmed = 1; }

/* -a: the classic alarm() timeout around a blocking connect (no SA_RESTART: connect gets
 * EINTR when it fires). */
static __attribute__((unused)) void alarm_start(void)
{
  if (!O.alarm_ms) return;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_alarm;
  sigaction(SIGALRM, &sa, NULL);
  struct itimerval it = { { 0, 0 }, { O.alarm_ms / 1000, (O.alarm_ms % 1000) * 1000 } };
  setitimer(ITIMER_REAL, &it, NULL);
}

static int ticker = -1;
static long ticks;

static __attribute__((unused)) void ticker_start(void)
{
  if (!O.tick_ms) return;
  ticker = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  struct itimerspec its = { { O.tick_ms / 1000, (O.tick_ms % 1000) * 1000000L },
                            { O.tick_ms / 1000, (O.tick_ms % 1000) * 1000000L } };
  timerfd_settime(ticker, 0, &its, NULL);
}

static __attribute__((unused)) void ticker_drain(void)
{
  uint64_t n;
  if (ticker >= 0 && read(ticker, &n, sizeof n) == sizeof n) ticks += (long)n;
}

static __attribute__((unused)) long now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000L + ts.tv_nsec / 1000000;
}

static char note[64];

/* -x: whether errno still holds the EBADMSG planted before a call that succeeded. */
static __attribute__((unused)) void note_errno(void)
{
  if (errno == EBADMSG) snprintf(note, sizeof note, "errno_kept");
  else snprintf(note, sizeof note, "errno_changed %s", ename(errno));
}

static __attribute__((unused)) void note_revents(const char *what, int rev)
{
  snprintf(note, sizeof note, "%s%s%s%s%s", what, rev & POLLIN ? " IN" : "", rev & POLLOUT ? " OUT" : "",
           rev & POLLERR ? " ERR" : "", rev & POLLHUP ? " HUP" : "");
}

/* Prints the result (and the extras asked for) and exits. err < 0: the client's own timeout. */
static __attribute__((unused)) void finish(int fd, int err, const char *via)
{
  if (err == 0) printf("connected\n");
  else if (err < 0) printf("timeout via %s\n", via);
  else printf("error %s via %s\n", ename(err), via);
  if (note[0]) printf("%s\n", note);
  if (err == 0 && O.read_line) {
    char buf[256];
    int fl = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    struct timeval tv = { 10, 0 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ssize_t n = read(fd, buf, sizeof buf - 1);
    if (n > 0) { buf[n] = 0; buf[strcspn(buf, "\r\n")] = 0; printf("got %s\n", buf); }
    else printf("got nothing\n");
    fcntl(fd, F_SETFL, fl);
  }
  if (O.show_opts) print_opts(fd);
  if (O.bind_first && err == 0) {
    struct sockaddr_storage ls;
    socklen_t ll = sizeof ls;
    getsockname(fd, (struct sockaddr *)&ls, &ll);
    int p = ntohs(ls.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ls)->sin6_port : ((struct sockaddr_in *)&ls)->sin_port);
    printf(p == bound_port ? "local_port_kept\n" : "local_port_changed %d -> %d\n", bound_port, p);
  }
  if (O.tick_ms) { ticker_drain(); printf("ticks %ld\n", ticks); }
  fflush(stdout);
  close(fd);
  exit(err ? 1 : 0);
}

static __attribute__((unused)) void timed_out(int fd, const char *via) { finish(fd, -1, via); }

static __attribute__((unused)) int make_socket(int family, int nonblock)
{
  int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) { printf("error %s via socket\n", ename(errno)); exit(2); }
  if (nonblock) fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  if (O.show_opts) set_opts(fd);
  if (O.sndtimeo_ms) set_sndtimeo(fd, O.sndtimeo_ms);
  if (O.bind_first) {
    struct sockaddr_storage ls;
    memset(&ls, 0, sizeof ls);
    socklen_t ll;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (family == AF_INET6) {
      struct sockaddr_in6 *a = (void *)&ls;
      a->sin6_family = AF_INET6;
      a->sin6_addr = in6addr_loopback;
      ll = sizeof *a;
    } else {
      struct sockaddr_in *a = (void *)&ls;
      a->sin_family = AF_INET;
      a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      ll = sizeof *a;
    }
    /* An explicit port (found free with a scratch socket): the kernel keeps a port the program
     * chose across a failed attempt, and so must the retries. Never the destination's port:
     * the test just freed it, the kernel may hand it out again, and a connect from a loopback
     * port to itself with no listener "succeeds" (TCP simultaneous open). */
    struct sockaddr_storage tmp;
    socklen_t tl;
    int scratches[8], ns = 0;
    for (;;) {
      int scratch = socket(family, SOCK_STREAM, 0);
      tmp = ls;
      tl = ll;
      if (bind(scratch, (struct sockaddr *)&tmp, tl) < 0) { perror("bind"); exit(2); }
      getsockname(scratch, (struct sockaddr *)&tmp, &tl);
      int p = ntohs(family == AF_INET6 ? ((struct sockaddr_in6 *)&tmp)->sin6_port : ((struct sockaddr_in *)&tmp)->sin_port);
      scratches[ns++] = scratch;
      if (p != atoi(O.port) || ns == 8) break;   /* the held scratch keeps the next bind off it */
    }
    while (ns > 0) close(scratches[--ns]);
    if (family == AF_INET6) ((struct sockaddr_in6 *)&ls)->sin6_port = ((struct sockaddr_in6 *)&tmp)->sin6_port;
    else ((struct sockaddr_in *)&ls)->sin_port = ((struct sockaddr_in *)&tmp)->sin_port;
    if (bind(fd, (struct sockaddr *)&ls, ll) < 0) { perror("bind"); exit(2); }
    bound_port = ntohs(family == AF_INET6 ? ((struct sockaddr_in6 *)&ls)->sin6_port : ((struct sockaddr_in *)&ls)->sin_port);
  }
  return fd;
}

/* Starts a non-blocking connect; finishes at once when it does not go in progress. */
/* connect() from `depth` nested frames; volatile keeps each frame (no tail call). */
static __attribute__((noinline, unused)) int nested_connect(int fd, const struct sockaddr *sa, socklen_t len, int depth)
{
  volatile int r = depth > 0 ? nested_connect(fd, sa, len, depth - 1) : connect(fd, sa, len);
  return r;
}

static __attribute__((unused)) int start_nonblocking(struct sockaddr_storage *ss, socklen_t len, int family)
{
  int fd = make_socket(family, 1);
  errno = EBADMSG;
  int r = nested_connect(fd, (struct sockaddr *)ss, len, O.depth);
  if (r == 0) finish(fd, 0, NULL);
  if (errno != EINPROGRESS) finish(fd, errno, "connect");
  return fd;
}

/* The result of a non-blocking connect, read the way python, libpq and nc read it. */
static __attribute__((unused)) int so_error(int fd)
{
  int e = -1;
  socklen_t l = sizeof e;
  errno = EBADMSG;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &l) < 0) { printf("error %s via getsockopt-call\n", ename(errno)); exit(1); }
  if (e == 0 && O.check_errno) note_errno();
  return e;
}

#endif
