/* Bound on the first attempt of a blocking TCP connect, kept off the socket: one helper thread
 * shuts down a connect still pending at its deadline, so a healthy connect costs no system
 * call (a temporary SO_SNDTIMEO costs two, set and restore, on every connect).
 *
 * Why shutdown() works: on a socket in SYN_SENT it disconnects (checked on Linux 6.18), the
 * blocked connect() wakes with ECONNRESET and the socket can connect again, which is what a
 * retry needs. The thread is started on the second blocking connect that needs a bound (the first
 * is bounded by SO_SNDTIMEO: connect_block.c), blocks
 * every signal, and sleeps on a futex; CONNGUARD_WATCHDOG=0, or a failed start, selects the
 * SO_SNDTIMEO bound instead. */
#ifndef CG_WATCHDOG_H
#define CG_WATCHDOG_H
#include <stdatomic.h>
#include <stdint.h>

/* Asks for fd's connect to be cut at the monotonic time deadline_ns. Returns a handle for
 * cg_wd_disarm, or 0 when the watchdog cannot help (not started, no free slot): then the
 * caller bounds the attempt itself. bound_ns: the configured per-attempt bound, which paces
 * the thread's idle polling (registrations then need no wake-up). */
int cg_wd_arm(int fd, int64_t deadline_ns, int64_t bound_ns);
/* Ends the registration after connect() returned. Returns 1 when the watchdog fired: the
 * socket was shut down and the attempt counts as timed out, whatever connect() returned. */
int cg_wd_disarm(int handle);
/* close_range, closefrom: fds [lo, hi] are going away under a registration (another thread,
 * or a signal handler, closes them during connect). A registered fd need not have an entry in
 * the fd table, whose chunks the range walk visits. Async-signal-safe. Waits for a shutdown
 * already under way, so it never lands on a reused number. */
void cg_wd_fds_closing(unsigned lo, unsigned hi);
/* Fork child: the thread did not follow; slots of other threads mean nothing here. */
void cg_wd_after_fork_child(void);
/* For tests: 1 once the thread runs, -1 when it could not be started, 0 not yet. */
int cg_wd_status(void);

/* Slots not FREE. Inline so that close() of any fd pays one load, no call, while none is. */
extern atomic_int cg_wd_armed;
/* close(), dup2() and friends: the same for one fd. */
static inline void cg_wd_fd_closing(int fd)
{
  if (fd >= 0 && atomic_load_explicit(&cg_wd_armed, memory_order_relaxed))
    cg_wd_fds_closing((unsigned)fd, (unsigned)fd);
}
#endif
