#include "watchdog.h"
#include "clock.h"
#include "rawsys.h"
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

enum { S_FREE, S_CLAIMED, S_ARMED, S_FIRING, S_FIRED, S_CANCELLED };

/* One slot per blocking connect in flight; more than this many at once fall back to the
 * SO_SNDTIMEO bound. */
#define WD_SLOTS 128

struct slot {
  atomic_int state;
  atomic_int fd;
  _Atomic int64_t deadline;
};

static struct slot slots[WD_SLOTS];
atomic_int cg_wd_armed;                  /* watchdog.h */
static atomic_int status;                 /* 0 not started, 1 starting, 2 running, -1 failed */
/* The futex the thread sleeps on; bumped by a registration that needs it awake. */
static atomic_uint seq;
/* When the thread will look next (monotonic ns); 0 while it is scanning. A registration whose
 * deadline is later needs no wake-up: the common case in a loop of healthy connects. */
static _Atomic int64_t wake_at;
static atomic_uint registrations;
static _Atomic int64_t poll_ns;
static atomic_int named;                  /* the thread has its name: anyone listing threads sees it */           /* idle polling period while connects keep coming */

#define IDLE_NS 1000000000LL              /* no registration for this long: sleep until woken */

static void fire(struct slot *s)
{
  int expect = S_ARMED;
  if (!atomic_compare_exchange_strong(&s->state, &expect, S_FIRING)) return;
  /* The connecting thread is still inside connect(fd) and close() of fd waits for S_FIRED,
   * so the number still names the program's socket. */
  cg_syscall(SYS_shutdown, atomic_load(&s->fd), SHUT_RDWR);
  atomic_store(&s->state, S_FIRED);
}

/* Fires what is due; returns the earliest deadline still armed (INT64_MAX: none). */
static int64_t scan(int64_t now)
{
  int64_t next = INT64_MAX;
  for (int i = 0; i < WD_SLOTS; i++) {
    struct slot *s = &slots[i];
    if (atomic_load(&s->state) != S_ARMED) continue;
    int64_t d = atomic_load(&s->deadline);
    if (d <= now) fire(s);
    else if (d < next) next = d;
  }
  return next;
}

static void *run(void *arg)
{
  (void)arg;
  prctl(PR_SET_NAME, "connguard-wd");   /* from inside: naming another thread opens a file */
  atomic_store(&named, 1);
  cg_syscall(SYS_futex, &named, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
  unsigned seen_regs = atomic_load(&registrations);
  int64_t last_activity = cg_mono_ns();
  for (;;) {
    unsigned q = atomic_load(&seq);
    atomic_store(&wake_at, 0);
    int64_t now = cg_mono_ns();
    int64_t next = scan(now);
    unsigned regs = atomic_load(&registrations);
    if (regs != seen_regs) { seen_regs = regs; last_activity = now; }
    int64_t p = atomic_load(&poll_ns);
    if (p > 0 && now - last_activity < IDLE_NS && now + p < next) next = now + p;
    /* Publish, then look again: a registration either sees this wake time or is seen here
     * (both sides are sequentially consistent). */
    atomic_store(&wake_at, next);
    int64_t again = scan(cg_mono_ns());
    if (again < next) { next = again; atomic_store(&wake_at, next); }
    if (next == INT64_MAX) {
      cg_syscall(SYS_futex, &seq, FUTEX_WAIT_PRIVATE, q, NULL, NULL, 0);
    } else {
      struct timespec ts = { next / 1000000000, next % 1000000000 };
      /* FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC time. */
      cg_syscall(SYS_futex, &seq, FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG, q, &ts, NULL,
              FUTEX_BITSET_MATCH_ANY);
    }
  }
  return NULL;
}

static int start(void)
{
  int expect = 0;
  if (!atomic_compare_exchange_strong(&status, &expect, 1)) {
    /* Another thread is starting it: use the other bound for this one connect. */
    return atomic_load(&status) == 2;
  }
  pthread_attr_t at;
  pthread_t t;
  sigset_t all, old;
  int ok = 0;
  if (pthread_attr_init(&at) == 0) {
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&at, 64 * 1024);
    /* Every signal blocked: a process-directed signal must reach the program's own threads. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    atomic_store(&named, 0);
    ok = pthread_create(&t, &at, run, NULL) == 0;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&at);
    /* Once per process: wait (100 ms at most) until the thread has named itself, so a user
     * listing threads never sees an anonymous copy of the program's name. */
    struct timespec limit = { 0, 100 * 1000 * 1000 };
    while (ok && !atomic_load(&named) &&
           cg_syscall(SYS_futex, &named, FUTEX_WAIT_PRIVATE, 0, &limit, NULL, 0) == 0) {}
  }
  atomic_store(&status, ok ? 2 : -1);
  return ok;
}

int cg_wd_arm(int fd, int64_t deadline_ns, int64_t bound_ns)
{
  int st = atomic_load_explicit(&status, memory_order_acquire);
  if (st != 2 && (st != 0 || !start())) return 0;
  /* Read first: threads connecting at once should not bounce this line for an unchanged value. */
  if (bound_ns > 1 && atomic_load_explicit(&poll_ns, memory_order_relaxed) != bound_ns / 2)
    atomic_store_explicit(&poll_ns, bound_ns / 2, memory_order_relaxed);
  /* Start where this fd would hash: threads connecting at once rarely collide. */
  int base = (int)((unsigned)fd % WD_SLOTS);
  for (int k = 0; k < WD_SLOTS; k++) {
    int i = (base + k) % WD_SLOTS;
    struct slot *s = &slots[i];
    int expect = S_FREE;
    if (atomic_load_explicit(&s->state, memory_order_relaxed) != S_FREE ||
        !atomic_compare_exchange_strong(&s->state, &expect, S_CLAIMED))
      continue;
    atomic_fetch_add(&cg_wd_armed, 1);
    atomic_store(&s->fd, fd);
    atomic_store(&s->deadline, deadline_ns);
    atomic_fetch_add_explicit(&registrations, 1, memory_order_relaxed);
    atomic_store(&s->state, S_ARMED);
    if (atomic_load(&wake_at) > deadline_ns) {
      atomic_fetch_add(&seq, 1);
      cg_syscall(SYS_futex, &seq, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    }
    return i + 1;
  }
  return 0;
}

/* The thread is between its claim and its shutdown(): a few microseconds. */
static void wait_fired(struct slot *s)
{
  while (atomic_load(&s->state) == S_FIRING) sched_yield();
}

int cg_wd_disarm(int handle)
{
  if (handle <= 0 || handle > WD_SLOTS) return 0;
  struct slot *s = &slots[handle - 1];
  int expect = S_ARMED, fired = 0;
  if (!atomic_compare_exchange_strong(&s->state, &expect, S_FREE)) {
    wait_fired(s);
    fired = atomic_load(&s->state) == S_FIRED;
    atomic_store(&s->state, S_FREE);
  }
  atomic_fetch_sub(&cg_wd_armed, 1);
  return fired;
}

void cg_wd_fds_closing(unsigned lo, unsigned hi)
{
  if (!atomic_load_explicit(&cg_wd_armed, memory_order_relaxed)) return;
  for (int i = 0; i < WD_SLOTS; i++) {
    struct slot *s = &slots[i];
    int st = atomic_load(&s->state);
    if (st != S_ARMED && st != S_FIRING) continue;
    int fd = atomic_load(&s->fd);
    if (fd < 0 || (unsigned)fd < lo || (unsigned)fd > hi) continue;
    int expect = S_ARMED;
    if (!atomic_compare_exchange_strong(&s->state, &expect, S_CANCELLED)) wait_fired(s);
  }
}

void cg_wd_after_fork_child(void)
{
  for (int i = 0; i < WD_SLOTS; i++) atomic_store(&slots[i].state, S_FREE);
  atomic_store(&cg_wd_armed, 0);
  atomic_store(&wake_at, INT64_MAX);
  atomic_store(&status, 0);
}

int cg_wd_status(void)
{
  int st = atomic_load(&status);
  return st == 2 ? 1 : st < 0 ? -1 : 0;
}
