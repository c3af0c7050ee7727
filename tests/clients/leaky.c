/* Test client for `connguard leaks`, `stat`, `metrics` and `symbolize`.
 *   leaky CLOSED_PORT   (0: no failing connect)
 * 1. connect()s once to 127.0.0.1:CLOSED_PORT from do_connect() (a log record whose frame #0
 *    is in this file, built with -g: symbolize must name it);
 * 2. opens, from open_leaky_pair(), socket A whose peer has closed (A sits in CLOSE_WAIT) and
 *    socket C whose peer D is open (ESTABLISHED), on a listener L;
 * 3. makes sure A and C are in the leaks[] table of its counters segment: when the shim did not
 *    publish them itself (no leak tracking in this build), it writes the slots as the shim
 *    would, with a creation stack holding its own return address;
 * 4. prints "ready A=.. C=.. D=.. L=.. port=.. published=shim|self" and waits for SIGTERM;
 *    SIGUSR1 closes D, so that C, open since the start, enters CLOSE_WAIT only then. */
#include "stats.h"
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static uint64_t made_at[2];
static int nmade;

static __attribute__((noinline)) int make_socket(void)
{
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (nmade < 2) made_at[nmade++] = (uint64_t)(uintptr_t)__builtin_return_address(0);
  return fd;
}

static __attribute__((noinline)) int do_connect(int port)
{
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  int r = connect(fd, (struct sockaddr *)&a, sizeof a);
  __asm__ volatile("" ::: "memory");   /* keeps the call a call, not a tail jump */
  close(fd);
  return r;
}

static int fds[4];   /* A, C, D, L */
static int port;

static __attribute__((noinline)) void open_leaky_pair(void)
{
  struct sockaddr_in a = { .sin_family = AF_INET };
  socklen_t l = sizeof a;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int L = socket(AF_INET, SOCK_STREAM, 0);
  if (bind(L, (struct sockaddr *)&a, sizeof a) || listen(L, 8) || getsockname(L, (struct sockaddr *)&a, &l)) exit(3);
  port = ntohs(a.sin_port);
  int A = make_socket();
  if (connect(A, (struct sockaddr *)&a, sizeof a)) exit(4);
  int B = accept(L, NULL, NULL);
  close(B);                       /* A's peer is gone: A goes to CLOSE_WAIT and stays there */
  int C = make_socket();
  if (connect(C, (struct sockaddr *)&a, sizeof a)) exit(5);
  int D = accept(L, NULL, NULL);
  fds[0] = A; fds[1] = C; fds[2] = D; fds[3] = L;
  __asm__ volatile("" ::: "memory");
}

static int64_t now_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Writes A and C into the leaks[] table unless the shim already did. Returns 1 if it did. */
static int publish_self(void)
{
  char path[96];
  snprintf(path, sizeof path, "/dev/shm/connguard.%u.%d", (unsigned)getuid(), (int)getpid());
  int fd = open(path, O_RDWR | O_CLOEXEC);
  if (fd < 0) { perror(path); exit(6); }
  struct cg_stats *s = mmap(NULL, sizeof *s, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  if (s == MAP_FAILED) exit(7);
  struct stat st[2];
  fstat(fds[0], &st[0]);
  fstat(fds[1], &st[1]);
  int found = 0;
  /* By inode, or by fd while the shim has not taken the socket's identity yet. */
  for (int i = 0; i < CG_LEAK_SLOTS; i++)
    for (int k = 0; k < 2; k++)
      if (s->leaks[i].ino == (uint64_t)st[k].st_ino ||
          (s->leaks[i].ino == CG_LEAK_INO_UNKNOWN && s->leaks[i].fd == fds[k]))
        found++;
  if (found == 2) return 0;
  for (int k = 0; k < 2; k++) {
    struct cg_leak_slot *sl = &s->leaks[CG_LEAK_SLOTS - 1 - k];
    /* The stack first, then the slot that names it (from the end, away from the shim's). */
    struct cg_leak_stack *stk = &s->stacks[CG_STATS_STACKS - 1 - k];
    stk->nframes = 1;
    stk->pcs[0] = made_at[k];
    atomic_fetch_add(&sl->seq, 1);
    sl->fd = fds[k];
    sl->kind = SOCK_STREAM | AF_INET << 16;
    sl->created_ns = now_ns();
    /* The peer as a raw sockaddr_in, which the tool reads whether the layout's peer field is
     * text or raw bytes. */
    struct sockaddr_in pa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    pa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    memset(sl->peer, 0, sizeof sl->peer);
    memcpy(sl->peer, &pa, sizeof pa);
    sl->stack = CG_STATS_STACKS - (uint32_t)k;
    sl->ino = (uint64_t)st[k].st_ino;
    atomic_fetch_add(&sl->seq, 1);
  }
  return 1;
}

/* exit(), not _exit(): the shim's destructor removes the counters file (test client only:
 * main does nothing but sleep, so running exit handlers here is safe enough). */
static void on_term(int sig) { (void)sig; exit(0); }
static void on_usr1(int sig) { (void)sig; close(fds[2]); }

int main(int argc, char **argv)
{
  int closed = argc > 1 ? atoi(argv[1]) : 0;
  signal(SIGTERM, on_term);
  signal(SIGUSR1, on_usr1);
  if (closed > 0) do_connect(closed);
  open_leaky_pair();
  int self = publish_self();
  printf("ready A=%d C=%d D=%d L=%d port=%d published=%s\n", fds[0], fds[1], fds[2], fds[3], port, self ? "self" : "shim");
  fflush(stdout);
  for (int i = 0; i < 600; i++) sleep(1);
  return 0;
}
