/* Shared by the stress clients (tests/clients/stress_*.c): a result histogram that is printed
 * the same way with and without the shim, so a test can compare the two runs line by line, and a
 * watchdog so that a deadlock ends as a visible failure instead of a hung test. */
#ifndef STRESS_H
#define STRESS_H
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HIST_MAX 64

struct hist {
  pthread_mutex_t mu;
  int n;
  char name[HIST_MAX][128];
  long count[HIST_MAX];
};

static struct hist hist = { PTHREAD_MUTEX_INITIALIZER, 0, {{0}}, {0} };

static inline const char *err_name(int e)
{
  const char *n = strerrorname_np(e);
  return n ? n : "E?";
}

static inline void hist_add(const char *what)
{
  pthread_mutex_lock(&hist.mu);
  int i;
  for (i = 0; i < hist.n; i++)
    if (!strcmp(hist.name[i], what)) break;
  if (i == hist.n && hist.n < HIST_MAX) snprintf(hist.name[hist.n++], sizeof hist.name[0], "%s", what);
  if (i < HIST_MAX) hist.count[i]++;
  pthread_mutex_unlock(&hist.mu);
}

static inline int hist_cmp(const void *a, const void *b)
{
  return strcmp((const char *)a, (const char *)b);
}

/* "result <name> <count>" lines, sorted by name: the part a test compares between runs. */
static inline void hist_print(const char *prefix)
{
  char lines[HIST_MAX][192];
  pthread_mutex_lock(&hist.mu);
  for (int i = 0; i < hist.n; i++)
    snprintf(lines[i], sizeof lines[i], "%s %s %ld", prefix, hist.name[i], hist.count[i]);
  int n = hist.n;
  pthread_mutex_unlock(&hist.mu);
  qsort(lines, (size_t)n, sizeof lines[0], hist_cmp);
  for (int i = 0; i < n; i++) printf("%s\n", lines[i]);
  fflush(stdout);
}

/* A deadlocked run is killed by SIGALRM's default action: the test sees the signal. */
static inline void watchdog(unsigned seconds)
{
  signal(SIGALRM, SIG_DFL);
  alarm(seconds);
}

static inline struct sockaddr_in loopback(int port)
{
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((unsigned short)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

/* One blocking connect to 127.0.0.1:port on a new socket; "ok" or the errno's name. */
static inline const char *connect_once(int port)
{
  struct sockaddr_in a = loopback(port);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return "socket_failed";
  int r = connect(fd, (struct sockaddr *)&a, sizeof a);
  int e = errno;
  close(fd);
  return r == 0 ? "ok" : err_name(e);
}

static inline double now_s(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#endif
