/* The backoff wait: how a connect waits for its next attempt when it waits in place (a blocking
 * connect, or a non-blocking one the program insists on knowing the result of now). A
 * non-blocking connect in an event loop does not wait here: its next attempt is due at
 * e->t_next_ns and the poll/epoll hooks' time-driven work (cg_nb_tick) starts it. */
#include "engine_int.h"
#include <signal.h>
#include <time.h>

/* Whether every caught signal has SA_RESTART. */
int cg_all_handlers_restart(void)
{
  struct sigaction sa;
  for (int sig = 1; sig < NSIG; sig++) {
    /* Fault signals come from the faulting instruction, never in the middle of a system call:
     * the handlers sanitizers and python's faulthandler install (without SA_RESTART) do not
     * count. */
    if (sig == SIGSEGV || sig == SIGBUS || sig == SIGFPE || sig == SIGILL || sig == SIGTRAP || sig == SIGSYS)
      continue;
    if (sig == SIGKILL || sig == SIGSTOP || sigaction(sig, NULL, &sa) != 0) continue;
    if (sa.sa_handler == SIG_DFL || sa.sa_handler == SIG_IGN) continue;
    if (!(sa.sa_flags & SA_RESTART)) return 0;
  }
  return 1;
}

/* The backoff of a blocking connect. A signal whose handler has SA_RESTART is slept through
 * (the kernel would restart a blocking connect for it); any other ends the wait (returns 0):
 * the program counts on it to cut a slow connect short (an alarm() timeout), and gets the
 * failure it would have had without the shim, only later. */
int cg_backoff_sleep(int64_t t)
{
  struct timespec ts = { t / 1000000000, t % 1000000000 };
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
    if (!cg_all_handlers_restart()) return 0;
  return 1;
}

/* Sleeps until the monotonic time t; signals do not cut it short. */
void cg_sleep_until(int64_t t)
{
  struct timespec ts = { t / 1000000000, t % 1000000000 };
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {}
}

int64_t cg_coord_limit(unsigned attempt, int64_t now, int64_t start, int64_t budget_end)
{
  /* The last stretch of the budget, min(250 ms, a tenth of it), as retry.c's last slot: the
   * final attempt of a connect belongs there, and it is its own. */
  int64_t tail = (budget_end - start) / 10;
  if (tail > 250 * MS_NS) tail = 250 * MS_NS;
  int64_t lim = budget_end - tail, t = now;
  /* With a cap on retries, sooner: when its own remaining backoffs (unjittered, so their
   * largest) would have brought its last attempt. It then ends about when it would alone. */
  uint64_t base = cg_cfg.backoff_ms, cap = cg_cfg.backoff_max_ms < base ? base : cg_cfg.backoff_max_ms;
  for (unsigned k = attempt; k <= cg_cfg.retries && t < lim; k++) {
    uint64_t d = base;
    for (unsigned i = 1; i < k && d < cap; i++) d *= 2;
    if (d >= cap) {
      /* The rest at the cap; no overflow when there is no cap on retries (a huge count). */
      uint64_t left = (uint64_t)(cg_cfg.retries - k) + 1, room = (uint64_t)(lim - t) / MS_NS / cap + 1;
      t = left >= room ? lim : t + (int64_t)(left * cap) * MS_NS;
      break;
    }
    t += (int64_t)d * MS_NS;
  }
  return t < lim ? t : lim;
}

int cg_backoff_shared(struct cg_coord_ticket *t, const struct sockaddr *a, socklen_t l, unsigned attempt,
                      unsigned delay_ms, int64_t now, int64_t start, int64_t budget_end)
{
  int64_t due = now + (int64_t)delay_ms * MS_NS;
  if (cg_cfg.coordinate) {
    cg_coord_failed(t, a, l, attempt, delay_ms);
    if (t->d) {
      /* Fixed at the first wait: skipped slots do not move it. Past it, its own backoff. */
      if (!t->limit_ns) t->limit_ns = cg_coord_limit(attempt, now, start, budget_end);
      t->due_ns = due;
      int v = cg_coord_wait(t, t->limit_ns > due ? t->limit_ns : due, cg_all_handlers_restart);
      if (v == CG_COORD_INTR) return 0;
      if (v != CG_COORD_LOST) return 1;
    }
  }
  return cg_backoff_sleep(due);
}
