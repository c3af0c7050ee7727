/* Preloaded before libconnguard.so: wraps every function the shim exports and counts the
 * calls that come from inside libconnguard.so itself. The shim must reach libc through its
 * own table of real functions (or raw system calls), never through the global symbol scope,
 * where it would land in its own hooks: the count must be 0. At exit, writes
 * "calls=N from_shim=M [names...]" to the file named by CG_SPY_OUT. */
#include <dlfcn.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

static atomic_long calls, from_shim;
static char names[512];
static atomic_flag names_lock = ATOMIC_FLAG_INIT;

static void note(void *ret, const char *name)
{
  atomic_fetch_add(&calls, 1);
  Dl_info di;
  if (dladdr(ret, &di) && di.dli_fname && strstr(di.dli_fname, "libconnguard")) {
    atomic_fetch_add(&from_shim, 1);
    while (atomic_flag_test_and_set(&names_lock)) {}
    if (!strstr(names, name) && strlen(names) + strlen(name) + 2 < sizeof names) {
      strcat(names, " ");
      strcat(names, name);
    }
    atomic_flag_clear(&names_lock);
  }
}

#define NEXT(name) static __typeof__(name) *real_; if (!real_) real_ = (__typeof__(name) *)dlsym(RTLD_NEXT, #name)
#define SPY(ret_t, name, params, args)                        \
  ret_t name params                                           \
  {                                                           \
    NEXT(name);                                               \
    note(__builtin_return_address(0), #name);                 \
    return real_ args;                                        \
  }

SPY(int, connect, (int fd, const struct sockaddr *a, socklen_t l), (fd, a, l))
SPY(int, getsockopt, (int fd, int lv, int o, void *v, socklen_t *l), (fd, lv, o, v, l))
SPY(int, poll, (struct pollfd *f, nfds_t n, int t), (f, n, t))
SPY(int, ppoll, (struct pollfd *f, nfds_t n, const struct timespec *t, const sigset_t *m), (f, n, t, m))
SPY(int, select, (int n, fd_set *r, fd_set *w, fd_set *x, struct timeval *t), (n, r, w, x, t))
SPY(int, pselect, (int n, fd_set *r, fd_set *w, fd_set *x, const struct timespec *t, const sigset_t *m), (n, r, w, x, t, m))
SPY(int, epoll_ctl, (int e, int op, int fd, struct epoll_event *ev), (e, op, fd, ev))
SPY(int, epoll_wait, (int e, struct epoll_event *ev, int n, int t), (e, ev, n, t))
SPY(int, epoll_pwait, (int e, struct epoll_event *ev, int n, int t, const sigset_t *m), (e, ev, n, t, m))
SPY(int, close, (int fd), (fd))
SPY(int, dup2, (int a, int b), (a, b))
SPY(int, dup3, (int a, int b, int f), (a, b, f))
SPY(int, pipe2, (int p[2], int f), (p, f))
SPY(int, close_range, (unsigned a, unsigned b, int f), (a, b, f))
SPY(int, getaddrinfo, (const char *n, const char *s, const struct addrinfo *h, struct addrinfo **r), (n, s, h, r))

__attribute__((destructor)) static void report(void)
{
  const char *out = getenv("CG_SPY_OUT");
  if (!out) return;
  char line[1024];
  int n = snprintf(line, sizeof line, "calls=%ld from_shim=%ld%s\n", atomic_load(&calls), atomic_load(&from_shim), names);
  int fd = open(out, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd >= 0) { if (write(fd, line, (size_t)n) < 0) {} ; syscall(SYS_close, fd); }
}
