/* The libc functions behind our hooks. Resolved with dlsym(RTLD_NEXT) once, in the constructor
 * or on the first hook that runs before it; close paths never resolve (they use raw syscalls
 * until the table is ready). Internal waits always call these, never the hooks. */
#ifndef CG_REAL_H
#define CG_REAL_H
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>

struct cg_real {
  int (*socket)(int, int, int);
  int (*connect)(int, const struct sockaddr *, socklen_t);
  int (*getsockopt)(int, int, int, void *, socklen_t *);
  int (*setsockopt)(int, int, int, const void *, socklen_t);
  int (*close)(int);
  int (*poll)(struct pollfd *, nfds_t, int);
  int (*ppoll)(struct pollfd *, nfds_t, const struct timespec *, const sigset_t *);
  int (*select)(int, fd_set *, fd_set *, fd_set *, struct timeval *);
  int (*pselect)(int, fd_set *, fd_set *, fd_set *, const struct timespec *, const sigset_t *);
  int (*epoll_ctl)(int, int, int, struct epoll_event *);
  int (*epoll_wait)(int, struct epoll_event *, int, int);
  int (*epoll_pwait)(int, struct epoll_event *, int, int, const sigset_t *);
  int (*epoll_pwait2)(int, struct epoll_event *, int, const struct timespec *, const sigset_t *);
  int (*getaddrinfo)(const char *, const char *, const void *, void *);
  int (*dup2)(int, int);
  int (*dup3)(int, int, int);
  int (*close_range)(unsigned, unsigned, int);
  void (*closefrom)(int);
  int (*fork)(void);
  int (*accept)(int, struct sockaddr *, socklen_t *);
  int (*accept4)(int, struct sockaddr *, socklen_t *, int);
  int (*socketpair)(int, int, int, int[2]);
  int (*dup)(int);
  int (*fcntl)(int, int, ...);
  int (*fcntl64)(int, int, ...);   /* what _FILE_OFFSET_BITS=64 builds call (python3) */
  int (*fclose)(void *);
  /* exec family and quick_exit: only to remove our /dev/shm file first (hooks/exec.c, exit.c) */
  int (*execve)(const char *, char *const[], char *const[]);
  int (*execvpe)(const char *, char *const[], char *const[]);
  int (*execvp)(const char *, char *const[]);
  int (*fexecve)(int, char *const[], char *const[]);
  int (*execveat)(int, const char *, char *const[], char *const[], int);
  void (*quick_exit)(int);
  int (*ioctl)(int, unsigned long, ...);
  int (*dlclose)(void *);   /* hooks/dlclose.c: only to tell the stack cache of unloads */
};

extern struct cg_real cg_real;
/* Idempotent and thread-safe; cheap after the first call. */
void cg_real_init(void);


/* 1 when the table is filled. 0 only while this very thread is inside dlsym (re-entered):
 * then a hook must fall back to the raw system call. Inline below: every hook asks first. */
static inline int cg_real_ready(void);
int cg_real_ready_slow(void);
#endif
#ifndef CG_REAL_PEEK
#define CG_REAL_PEEK
#include <stdatomic.h>
/* 0 none, 1 resolving, 2 done. */
extern atomic_int cg_real_state;
/* Whether the table is filled, without resolving anything: for close() and signal paths. */
static inline int cg_real_peek(void)
{
  return atomic_load_explicit(&cg_real_state, memory_order_acquire) == 2;
}
static inline int cg_real_ready(void)
{
  return __builtin_expect(cg_real_peek(), 1) || cg_real_ready_slow();
}
#endif
