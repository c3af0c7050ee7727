/* The exec family: the old image's live-counters file must not outlive it (the new image is
 * another program, under the shim or not). Removed before the exec, published again lazily if
 * the exec fails. Async-signal-safe (vfork children exec through here): a vfork child is not
 * the file's process, so it changes nothing. execl* are variadic: their arguments are gathered
 * on the stack, as libc does, and passed to the vector forms. */
#include "hook.h"
#include "stats.h"
#include "rawsys.h"
#include <stdarg.h>

extern char **environ;

#define EXEC(call) ({                  \
    cg_stats_before_exec();            \
    int r_ = (call);                   \
    int e_ = errno;                    \
    cg_stats_exec_failed();            \
    errno = e_;                        \
    r_; })

static int r_execve(const char *p, char *const a[], char *const e[])
{
  if (cg_real_peek() && cg_real.execve) return cg_real.execve(p, a, e);
  return (int)cg_syscall(SYS_execve, p, a, e);
}

CG_EXPORT int execve(const char *p, char *const a[], char *const e[]) { return EXEC(r_execve(p, a, e)); }
CG_EXPORT int execv(const char *p, char *const a[]) { return EXEC(r_execve(p, a, environ)); }

CG_EXPORT int execvpe(const char *f, char *const a[], char *const e[])
{
  if (!cg_real_ready() || !cg_real.execvpe) { errno = ENOSYS; return -1; }
  return EXEC(cg_real.execvpe(f, a, e));
}

CG_EXPORT int execvp(const char *f, char *const a[])
{
  if (!cg_real_ready() || !cg_real.execvp) { errno = ENOSYS; return -1; }
  return EXEC(cg_real.execvp(f, a));
}

CG_EXPORT int fexecve(int fd, char *const a[], char *const e[])
{
  if (!cg_real_ready() || !cg_real.fexecve) { errno = ENOSYS; return -1; }
  return EXEC(cg_real.fexecve(fd, a, e));
}

CG_EXPORT int execveat(int dfd, const char *p, char *const a[], char *const e[], int flags)
{
  if (cg_real_peek() && cg_real.execveat) return EXEC(cg_real.execveat(dfd, p, a, e, flags));
  return EXEC((int)cg_syscall(SYS_execveat, dfd, p, a, e, flags));
}

/* Counts the arguments after arg0 up to the terminating NULL. */
#define COUNT_ARGS(arg0, n) do {                                  \
    va_list c_; va_start(c_, arg0);                               \
    for (n = 1; va_arg(c_, const char *); n++) {}                 \
    va_end(c_); } while (0)

#define GATHER(arg0, argv, n, ap) do {                            \
    argv[0] = (char *)arg0;                                       \
    for (size_t i_ = 1; i_ <= n; i_++) argv[i_] = va_arg(ap, char *); } while (0)

/* The argument vector of a variadic exec, gathered on the caller's stack. */
#define WITH_ARGV(arg0, argv, body) ({                            \
    size_t n_;                                                    \
    COUNT_ARGS(arg0, n_);                                         \
    char *argv[n_ + 1];                                           \
    va_list ap_;                                                  \
    va_start(ap_, arg0);                                          \
    GATHER(arg0, argv, n_, ap_);                                  \
    va_end(ap_);                                                  \
    body; })

CG_EXPORT int execl(const char *p, const char *arg0, ...)
{
  return WITH_ARGV(arg0, argv, execv(p, argv));
}

CG_EXPORT int execlp(const char *f, const char *arg0, ...)
{
  return WITH_ARGV(arg0, argv, execvp(f, argv));
}

CG_EXPORT int execle(const char *p, const char *arg0, ...)
{
  size_t n;
  COUNT_ARGS(arg0, n);
  char *argv[n + 1];
  va_list ap;
  va_start(ap, arg0);
  GATHER(arg0, argv, n, ap);
  char *const *envp = va_arg(ap, char *const *);
  va_end(ap);
  return execve(p, argv, envp);
}
