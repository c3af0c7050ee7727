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
