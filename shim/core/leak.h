/* Socket leak detection (docs/leaks.md).
 *
 * Every socket the program obtains through a call the shim sees (socket, accept/accept4,
 * socketpair, and dup/dup2/dup3/fcntl F_DUPFD* of a tracked socket) is recorded in its fd-table
 * entry: creation stack (interned in stacktab.h, 4 bytes per socket), kind, peer, creation
 * time, device + inode, owner pid. It is also published in the stats segment for
 * `connguard leaks PID`. close() and the other close paths the shim sees drop it with atomics
 * only. At exit, what is still tracked, owned by this process and still the same socket
 * (fstat: device + inode) is reported grouped by creation stack, then one summary record.
 *
 * Closes the shim cannot see (fclose of an fdopen()ed socket, an inline system call or one
 * made on another architecture than x86-64's syscall() hook knows, exec) leave stale entries: they are dropped when the fd number is obtained again, and the
 * identity check keeps them out of the report. Sockets created while the shim itself runs
 * (cg_in_hook) are never tracked: shim-internal sockets must be created inside the recursion
 * guard or with cg_real.socket / raw syscalls. */
#ifndef CG_LEAK_H
#define CG_LEAK_H
#include <stdint.h>
#include <sys/socket.h>
#include "engine.h"
#include "fdtable.h"


/* Once, from the constructor after cg_init(): the fork handler, and unless CONNGUARD_LEAKS=off
 * the exit report (on_exit, early, so it runs after the program's own exit handlers and
 * destructors) and the suppressions file (one warning when bad). */
void cg_leak_init(void);
/* Whether hooks should record new sockets: shim enabled, CONNGUARD_LEAKS=exit, not inside
 * the shim itself. */
static inline int cg_leak_enabled(void)
{
  return cg_enabled && !cg_in_hook && cg_cfg.leaks != CG_LEAKS_OFF;
}

/* A socket fd the program has just obtained. domain/type: 0 when unknown (then looked up at
 * report time; the published kind stays 0). peer: the
 * address accept() returned, or NULL. Not for signal context (stack unwinding). */
void cg_leak_track(int fd, int via, int domain, int type, int protocol, const struct sockaddr *peer,
                   socklen_t plen);
/* Both ends of a new socketpair(), each knowing the other (the exit report does not count a
 * pair the process still holds at both ends as a leak). */
void cg_leak_track_pair(const int sv[2], int domain, int type, int protocol);
/* fd was accepted on listener lfd (its kind is copied when lfd is tracked). */
void cg_leak_track_accepted(int lfd, int fd, const struct sockaddr *peer, socklen_t plen);
/* newfd is now a copy of oldfd (dup, dup2, dup3, F_DUPFD*): tracked when oldfd is a tracked
 * socket of this process; whatever newfd was before is forgotten. */
void cg_leak_dup(int oldfd, int newfd);
/* connect() was called on fd with this destination: remembered as its peer. */
void cg_leak_note_peer(int fd, const struct sockaddr *addr, socklen_t len);
/* The shim replaced the socket behind a tracked fd (a retry that dup2()s a fresh socket over
 * it): takes the new device + inode so the exit check still recognises it. */
void cg_leak_replaced(int fd);
/* Takes now the identity (device, inode) of the sockets this thread recorded without one yet
 * (leak.c, "identity"): for tests, and wherever the shim must know them. */
void cg_leak_settle(void);
/* The close path (closepath.h): async-signal-safe, atomics only. */
void cg_leak_forget(int fd, struct cg_fd *e);
/* 1 in a child that runs in its parent's memory (vfork, or a raw clone without fork
 * handlers): closes there must not touch the shared fd table. One getpid() syscall:
 * for bulk close paths (close_range, closefrom), not for every close(). */
int cg_leak_borrowed_memory(void);

struct cg_leak_summary {
  unsigned groups, sockets;                 /* reported (not suppressed) */
  unsigned suppressed, suppressed_groups;
  unsigned stale;                           /* entries dropped by the identity check */
  unsigned held;                            /* open at exit, not leaks (docs/leaks.md) */
};
/* Writes one "leak" record per group of this process's leaked sockets and, when there was
 * anything to say, one "leak_summary" record. status: the exit status the program asked for;
 * returns the one to exit with (CONNGUARD_LEAK_EXITCODE applied when leaks were reported and
 * status was 0). */
int cg_leak_report(int status, struct cg_leak_summary *sum);

/* Fork handler (child), registered by cg_leak_init: new pid, fresh publication slots. */
void cg_leak_after_fork_child(void);
/* Tests: loads suppressions from path now (warning to fd 2 as at start). */
void cg_leak_load_suppressions(const char *path);

#endif
