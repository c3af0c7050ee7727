#include "leak.h"
#include "rawsys.h"
#include "startup.h"
#include "clock.h"
#include "log.h"
#include "pystack.h"
#include "stack.h"
#include "stacktab.h"
#include "stats.h"
#include "supp.h"
#include "tcpinfo.h"
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

/* ---------- publication in the stats segment ---------- */

#define SLOT_WORDS (CG_LEAK_SLOTS / 64)
static _Atomic uint64_t slot_bits[SLOT_WORDS];   /* process-private: which slots we hold */

static int publishing(void)
{
  return cg_cfg.stats;
}

static int slot_claim(void)
{
  for (int w = 0; w < SLOT_WORDS; w++) {
    uint64_t b = atomic_load_explicit(&slot_bits[w], memory_order_relaxed);
    while (~b) {
      int i = __builtin_ctzll(~b);
      if (atomic_compare_exchange_weak_explicit(&slot_bits[w], &b, b | (1ULL << i),
                                                memory_order_acq_rel, memory_order_relaxed))
        return w * 64 + i;
    }
  }
  return -1;
}

/* One writer per slot (the fd that holds it), so the seqlock needs plain stores, not locked
 * instructions: this runs on every socket's creation and close. */
static void slot_write_begin(struct cg_leak_slot *s)
{
  unsigned q = atomic_load_explicit(&s->seq, memory_order_relaxed);
  atomic_store_explicit(&s->seq, q | 1, memory_order_relaxed);
  atomic_thread_fence(memory_order_release);
}

static void slot_write_end(struct cg_leak_slot *s)
{
  unsigned q = atomic_load_explicit(&s->seq, memory_order_relaxed);
  atomic_store_explicit(&s->seq, (q | 1) + 1, memory_order_release);
}

/* Raw bytes, formatted by the reader: cheaper than text on the connect path. */
static void slot_peer(struct cg_leak_slot *s, const struct sockaddr *sa, socklen_t len)
{
  if (!sa || len < sizeof(sa_family_t)) { s->peerlen = 0; return; }
  if (len > sizeof s->peer) len = sizeof s->peer;
  memcpy(s->peer, sa, len);
  s->peerlen = len;
}

/* Where each interned stack (by stacktab id) sits in this segment's stacks[]: generation of the
 * segment << 32 | index + 1. Process-private; an entry of another generation (the parent's
 * segment, inherited across fork) is as good as none, so nothing needs clearing. */
static _Atomic uint64_t seg_stack_of[CG_ST_MAX + 1];

/* The slot's stack field for the stack pcs[0..n) interned as id: written into stacks[] the first
 * time this segment needs it, shared afterwards. No lock, no syscall: a lookup, and once per
 * distinct stack one fetch-add and a copy. */
static uint32_t seg_stack(uint32_t id, const uintptr_t *pcs, int n)
{
  if (!id || id > CG_ST_MAX || n <= 0) return 0;
  uint64_t gen = atomic_load_explicit(&cg_stats_gen, memory_order_relaxed);
  uint64_t v = atomic_load_explicit(&seg_stack_of[id], memory_order_acquire);
  if (v >> 32 == gen && (uint32_t)v) return (uint32_t)v;
  if (atomic_load_explicit(&cg_stats->leak_stacks_used, memory_order_relaxed) >= CG_STATS_STACKS) goto full;
  uint64_t k = atomic_fetch_add_explicit(&cg_stats->leak_stacks_used, 1, memory_order_relaxed);
  if (k >= CG_STATS_STACKS) goto full;
  struct cg_leak_stack *st = &cg_stats->stacks[k];
  if (!cg_stats_room(st, sizeof *st)) goto full;   /* /dev/shm is full: the entry stays unused */
  if (n > CG_STATS_STACK) n = CG_STATS_STACK;
  for (int f = 0; f < n; f++) st->pcs[f] = pcs[f];
  st->nframes = (uint32_t)n;
  /* Release: a thread that finds the index here publishes slots naming the entry, and the
   * tool must see the entry filled through them. */
  uint64_t mine = gen << 32 | (k + 1);
  if (!atomic_compare_exchange_strong_explicit(&seg_stack_of[id], &v, mine, memory_order_acq_rel,
                                               memory_order_acquire) &&
      v >> 32 == gen && (uint32_t)v)
    return (uint32_t)v;   /* another thread stored the same stack first: ours stays unused */
  return (uint32_t)(k + 1);
full:
  CG_STAT_ADD(leak_stacks_full, 1);
  return CG_LEAK_STACK_FULL;
}

static void slot_publish(struct cg_fd *e, int fd, unsigned via, const uintptr_t *pcs, int n,
                         const struct sockaddr *peer, socklen_t plen)
{
  if (!publishing()) return;
  cg_stats_use();          /* a forked child publishes its own segment on first socket activity */
  int i = slot_claim();
  if (i < 0) {
    CG_STAT_ADD(leak_unpublished, 1);
    return;
  }
  struct cg_leak_slot *s = &cg_stats->leaks[i];
  if (!cg_stats_room(s, sizeof *s)) {
    /* /dev/shm is full: the slot's page cannot be had (a store would raise SIGBUS). */
    atomic_fetch_and_explicit(&slot_bits[i / 64], ~(1ULL << (i % 64)), memory_order_acq_rel);
    CG_STAT_ADD(leak_unpublished, 1);
    return;
  }
  uint32_t stack = seg_stack(e->stack_id, pcs, n);
  uint32_t pystack = cg_pystack_publish(e->pystack);
  slot_write_begin(s);
  s->fd = fd;
  s->kind = e->kind;
  s->created_ns = e->created_ns;
  s->via = via;
  slot_peer(s, peer, plen);
  s->stack = stack;
  s->pystack = pystack;
  atomic_store_explicit(&s->ino, e->ino ? (uint64_t)e->ino : CG_LEAK_INO_UNKNOWN, memory_order_release);
  slot_write_end(s);
  atomic_store_explicit(&e->slot, (unsigned)i + 1, memory_order_release);
  CG_STAT_ADD(leak_candidates, 1);
}

/* Async-signal-safe: atomics only. */
static void slot_release(struct cg_fd *e)
{
  unsigned v = atomic_exchange_explicit(&e->slot, 0, memory_order_acq_rel);
  if (!v || v > CG_LEAK_SLOTS) return;
  unsigned i = v - 1;
  struct cg_leak_slot *s = &cg_stats->leaks[i];
  slot_write_begin(s);
  s->fd = -1;
  atomic_store_explicit(&s->ino, 0, memory_order_release);
  slot_write_end(s);
  atomic_fetch_and_explicit(&slot_bits[i / 64], ~(1ULL << (i % 64)), memory_order_acq_rel);
  CG_STAT_ADD(leak_candidates, -1);
}

/* ---------- tracking ---------- */

static unsigned kind_of(int domain, int type)
{
  return (unsigned)(type & 0xf) | ((unsigned)domain & 0xffff) << 16;
}

/* Forgets whatever the entry recorded: the number now names something else, so the old socket
 * was closed in a way we did not see (or the entry is the parent's, inherited across fork). */
static void drop_stale(struct cg_fd *e)
{
  unsigned t = atomic_load_explicit(&e->track, memory_order_acquire);
  if (!t) return;
  pid_t real = (pid_t)cg_syscall(SYS_getpid);
  if (e->owner == real) {
    if (!atomic_compare_exchange_strong(&e->track, &t, 0)) return;
    slot_release(e);
    CG_STAT_ADD(open_sockets, -1);
  } else if (cg_self_pid() == real) {
    atomic_compare_exchange_strong(&e->track, &t, 0);   /* inherited from the parent */
  }
  /* else: a vfork child running in its parent's memory: nothing here is ours to change. */
}

/* Creation stacks keep at most this many frames (the stats segment publishes as many). */
#define LEAK_FRAMES CG_STATS_STACK

static int stack_depth(void)
{
  int d = (int)cg_cfg.stack_depth;
  return d < LEAK_FRAMES ? d : LEAK_FRAMES;
}

static void set_peer(struct cg_fd *e, const struct sockaddr *sa, socklen_t len)
{
  e->peerlen = 0;
  if (!sa) return;
  if (sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
    memcpy(&e->peer.in, sa, sizeof(struct sockaddr_in));
    e->peerlen = sizeof(struct sockaddr_in);
  } else if (sa->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
    memcpy(&e->peer.in6, sa, sizeof(struct sockaddr_in6));
    e->peerlen = sizeof(struct sockaddr_in6);
  }
}

/* Set once the process (or a parent before fork) tracked a socket: the exit report of a process
 * that never did (sh, sleep, true) skips the walk of the fd table, whose untouched pages would
 * each cost a page fault. */
static atomic_int tracked_ever CG_STARTUP_DATA;   /* read at every exit */

/* Records a socket fd in e. src: the entry it is a dup of (kind, peer copied), or NULL. */
/* ---------- identity ----------
 * A tracked socket's identity (device, inode) tells at exit, and in the live view, whether the
 * number still holds the socket we recorded or one that replaced it behind our back. It costs
 * an fstat, so it is not taken when the socket is made: most sockets are closed through a call
 * we see long before anything needs it (a connect loop pays nothing). It is taken at the first
 * of: the same thread's next tracked socket, a dup of it, the exit report (docs/leaks.md, "The
 * identity window"). ino 0 = not taken yet (socket inodes are never 0). */

/* Takes the identity of a tracked socket if not known yet. 0 when fd is no socket now. */
/* Records st as e's identity, in the entry and in its live-view slot. */
static void set_identity(struct cg_fd *e, const struct stat *st)
{
  e->dev = st->st_dev;
  e->ino = st->st_ino;
  unsigned v = atomic_load_explicit(&e->slot, memory_order_acquire);
  if (v && v <= CG_LEAK_SLOTS) {
    struct cg_leak_slot *s = &cg_stats->leaks[v - 1];
    slot_write_begin(s);
    atomic_store_explicit(&s->ino, st->st_ino ? (uint64_t)st->st_ino : 1, memory_order_release);
    slot_write_end(s);
  }
}

/* A socketpair end's pair_ino, until its identity is taken, is the other end's fd + 1 (both
 * ends' identities are taken together, when the first of them is needed: no fstat when the
 * pair is made, as curl makes one per transfer and closes it soon). Afterwards it is the other
 * end's inode, or CG_PAIR_GONE when that end was closed first (still a socketpair end whose
 * other end went away). */
#define CG_PAIR_GONE UINT32_MAX

/* Records the identity st of fd's entry e. For a socketpair end not settled yet, the other
 * end's too when its fd is still that end (its entry names us back and has no identity yet:
 * made by the same socketpair call), each then knowing the other's inode. */
static void identity_taken(int fd, struct cg_fd *e, const struct stat *st)
{
  uint32_t ref = e->ino ? 0 : e->pair_ino;
  set_identity(e, st);
  if (!ref) return;
  int other = (int)(ref - 1);
  struct cg_fd *o = cg_fd_peek(other);
  struct stat ost;
  if (o && !o->ino && o->pair_ino == (uint32_t)fd + 1 && atomic_load_explicit(&o->track, memory_order_acquire) &&
      o->owner == cg_self_pid() && fstat(other, &ost) == 0 && S_ISSOCK(ost.st_mode) && (uint32_t)ost.st_ino) {
    set_identity(o, &ost);
    o->pair_ino = (uint32_t)st->st_ino;
    e->pair_ino = (uint32_t)ost.st_ino;
  } else {
    e->pair_ino = CG_PAIR_GONE;
  }
}

static int take_identity(int fd, struct cg_fd *e)
{
  if (e->ino) return 1;
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) return 0;
  identity_taken(fd, e, &st);
  return 1;
}

/* The last sockets this thread recorded without an identity, with their close generations:
 * one still open when CG_PEND more have been recorded after it gets its identity then (a close
 * we saw bumps gen: nothing to do). A connect loop, or a client and the connection it
 * accepts, never fills it with open sockets. */
#define CG_PEND 8
static __thread int pend_fd[CG_PEND];
static __thread unsigned pend_gen[CG_PEND], pend_n;

static void settle_one(int fd, unsigned gen)
{
  struct cg_fd *p = cg_fd_peek(fd);
  if (p && !p->ino && atomic_load_explicit(&p->track, memory_order_acquire) &&
      atomic_load_explicit(&p->gen, memory_order_acquire) == gen && p->owner == cg_self_pid())
    take_identity(fd, p);
}

static void pend_push(int fd, struct cg_fd *e)
{
  unsigned i = pend_n++ % CG_PEND;
  if (pend_n > CG_PEND) settle_one(pend_fd[i], pend_gen[i]);
  pend_fd[i] = fd;
  pend_gen[i] = atomic_load_explicit(&e->gen, memory_order_acquire);
}

void cg_leak_settle(void)
{
  unsigned n = pend_n < CG_PEND ? pend_n : CG_PEND;
  for (unsigned k = 0; k < n; k++) settle_one(pend_fd[k], pend_gen[k]);
  pend_n = 0;
}

/* stack: the creation stack's id when the caller has it already (both ends of a socketpair
 * share one capture), else NULL. */
static void record(int fd, struct cg_fd *e, unsigned via, unsigned kind, const struct stat *st,
                   const struct sockaddr *peer, socklen_t plen, const uint32_t *stack)
{
  if (!atomic_load_explicit(&tracked_ever, memory_order_relaxed))
    atomic_store_explicit(&tracked_ever, 1, memory_order_relaxed);
  cg_fd_raise_hi(fd);   /* e may come from a peek (a dup's target): the report must reach it */
  cg_log_socket_tracked();
  pid_t me = cg_self_pid();
  /* Interned once per call site (stack.h's cache): no unwind for a site seen before. */
  const uintptr_t *pcs = NULL;
  uint32_t id = stack ? *stack : stack_depth() > 0 ? cg_stack_id_here(stack_depth()) : 0;
  int n = id ? cg_stacktab_get(id, &pcs) : 0;
  e->kind = kind;
  e->created_ns = cg_realtime_ns();
  e->owner = me;
  e->dev = st ? st->st_dev : 0;
  e->ino = st ? st->st_ino : 0;
  e->stack_id = id;
  e->pystack = cg_pystack_capture(0);   /* plain reads: no system call once the call site is known */
  set_peer(e, peer, plen);
  atomic_store_explicit(&e->slot, 0, memory_order_relaxed);
  slot_publish(e, fd, via, pcs, n, peer, plen);
  atomic_store_explicit(&e->track, via, memory_order_release);
  CG_STAT_ADD(open_sockets, 1);
  if (via != CG_VIA_DUP) CG_STAT_ADD(sockets_created, 1);
  if (!e->ino) pend_push(fd, e);
}

static int sys_getsockopt_int(int fd, int level, int opt)
{
  int v = 0;
  socklen_t l = sizeof v;
  if (cg_syscall(SYS_getsockopt, fd, level, opt, &v, &l) != 0) return -1;
  return v;
}

static void track(int fd, int via, int domain, int type, int protocol, const struct sockaddr *peer,
                  socklen_t plen, const uint32_t *stack)
{
  struct cg_fd *e = cg_fd_get(fd, 1);
  if (!e) return;
  drop_stale(e);
  /* What socket(), accept() and socketpair() return is a socket: no fstat to ask (identity
   * above). */
  e->tcp = via == CG_VIA_SOCKET && cg_is_tcp(domain, type, protocol);
  e->pair_ino = 0;
  record(fd, e, (unsigned)via, domain > 0 && type > 0 ? kind_of(domain, type) : 0, NULL, peer, plen, stack);
}

void cg_leak_track(int fd, int via, int domain, int type, int protocol, const struct sockaddr *peer,
                   socklen_t plen)
{
  track(fd, via, domain, type, protocol, peer, plen, NULL);
}

void cg_leak_track_pair(const int sv[2], int domain, int type, int protocol)
{
  /* One stack for both ends: made by the same call. */
  uint32_t stack = stack_depth() > 0 ? cg_stack_id_here(stack_depth()) : 0;
  track(sv[0], CG_VIA_SOCKETPAIR, domain, type, protocol, NULL, 0, &stack);
  track(sv[1], CG_VIA_SOCKETPAIR, domain, type, protocol, NULL, 0, &stack);
  struct cg_fd *a = cg_fd_peek(sv[0]), *b = cg_fd_peek(sv[1]);
  if (a && b && atomic_load_explicit(&a->track, memory_order_acquire) &&
      atomic_load_explicit(&b->track, memory_order_acquire)) {
    /* Each names the other until their identities are taken (pair_resolve). */
    a->pair_ino = (uint32_t)sv[1] + 1;
    b->pair_ino = (uint32_t)sv[0] + 1;
  }
}

void cg_leak_track_accepted(int lfd, int fd, const struct sockaddr *peer, socklen_t plen)
{
  /* The listener's kind, when we know it: two getsockopt calls less per connection. An
   * unknown kind (0) is looked up at report time. */
  struct cg_fd *l = cg_fd_peek(lfd);
  unsigned kind = l && atomic_load_explicit(&l->track, memory_order_acquire) ? l->kind : 0;
  cg_leak_track(fd, CG_VIA_ACCEPT, (int)(kind >> 16), (int)(kind & 0xffff), 0, peer, plen);
}

void cg_leak_dup(int oldfd, int newfd)
{
  if (newfd < 0 || oldfd == newfd) return;
  struct cg_fd *e = cg_fd_peek(newfd);
  if (e) drop_stale(e);
  struct cg_fd *src = cg_fd_peek(oldfd);
  /* Only copies of our own tracked sockets; stdio numbers are redirections (inetd style), not
   * sockets the program holds on to. */
  if (!src || !atomic_load_explicit(&src->track, memory_order_acquire) || newfd <= 2 ||
      src->owner != (pid_t)cg_syscall(SYS_getpid))   /* raw: a vfork child (python's subprocess
                                                      dup2()s before exec) shares our memory */
    return;
  if (!e && !(e = cg_fd_get(newfd, 1))) return;
  struct stat st;
  /* The source's identity now if it had none yet (the copy is its first need). */
  if (!take_identity(oldfd, src) || fstat(newfd, &st) != 0 || !S_ISSOCK(st.st_mode) ||
      st.st_dev != src->dev || st.st_ino != src->ino)
    return;   /* the source entry was stale */
  e->tcp = 0;
  e->pair_ino = src->pair_ino;   /* a copy of a socketpair end is that end */
  record(newfd, e, CG_VIA_DUP, src->kind, &st, src->peerlen ? &src->peer.sa : NULL, src->peerlen, NULL);
}

void cg_leak_note_peer(int fd, const struct sockaddr *addr, socklen_t len)
{
  struct cg_fd *e = cg_fd_peek(fd);
  if (!e || !addr || len < sizeof(sa_family_t) || !atomic_load_explicit(&e->track, memory_order_acquire) ||
      e->owner != cg_self_pid())
    return;
  int fam = addr->sa_family;
  if (fam != AF_INET && fam != AF_INET6 && fam != AF_UNIX) return;   /* AF_UNSPEC: a disconnect */
  /* The status-check connect() after a non-blocking one (ab, apr) names the peer again: it is
   * recorded, here and in the published slot, already. */
  if (e->peerlen && len >= e->peerlen && memcmp(&e->peer, addr, e->peerlen) == 0) return;
  set_peer(e, addr, len);
  unsigned v = atomic_load_explicit(&e->slot, memory_order_acquire);
  if (v && v <= CG_LEAK_SLOTS) {
    struct cg_leak_slot *s = &cg_stats->leaks[v - 1];
    slot_write_begin(s);
    slot_peer(s, addr, len);
    slot_write_end(s);
  }
}

void cg_leak_replaced(int fd)
{
  struct cg_fd *e = cg_fd_peek(fd);
  struct stat st;
  if (!e || !atomic_load_explicit(&e->track, memory_order_acquire) || fstat(fd, &st) != 0) return;
  if (!e->ino && e->pair_ino) e->pair_ino = CG_PAIR_GONE;   /* another socket now: not that pair's end */
  set_identity(e, &st);
}

int cg_leak_borrowed_memory(void)
{
  pid_t cached = atomic_load_explicit(&cg_self_pid_v, memory_order_relaxed);
  return cached && cached != (pid_t)cg_syscall(SYS_getpid);
}

void cg_leak_forget(int fd, struct cg_fd *e)
{
  (void)fd;
  unsigned t = atomic_load_explicit(&e->track, memory_order_acquire);
  if (!t) return;
  /* Only the owner untracks: a forked child closing its inherited copy leaves the parent's
   * socket alone. The cached pid, not getpid(): a syscall on every socket close costs more
   * than the rare case it would catch (a vfork child closing tracked sockets one by one; the
   * bulk closes such children do, close_range/closefrom, check cg_leak_borrowed_memory). */
  if (e->owner != cg_self_pid()) return;
  if (!atomic_compare_exchange_strong(&e->track, &t, 0)) return;
  slot_release(e);
  CG_STAT_ADD(open_sockets, -1);
}

/* ---------- exit report ---------- */

static struct cg_supp supp;

void cg_leak_load_suppressions(const char *path)
{
  char warn[512];
  if (!path || !*path) { supp.n = 0; return; }
  if (cg_supp_load(&supp, path, warn, sizeof warn) != 0) {
    size_t n = strlen(warn);
    warn[n] = '\n';
    if (write(2, warn, n + 1) < 0) { /* stderr closed: nothing to tell */ }
  }
}

/* What a socket still open at exit is (docs/leaks.md, "What is a leak"). The first ones are
 * leaks: the socket cannot serve the program any more. The others are held: the program may
 * still have had a use for them, and the kernel closes them at exit without loss. */
enum xclass {
  X_PEER_CLOSED, X_ERROR, X_UNCONNECTED, X_MANY,
  H_CONNECTED, H_PAIR, H_PAIR_END, H_LISTEN, H_DGRAM, H_CONNECTING, H_HALF_CLOSED, H_FINISHED,
  X_NCLASS
};
#define X_FIRST_HELD H_CONNECTED
static const char *const xclass_name[X_NCLASS] = {
  "peer_closed", "error", "unconnected", "many_open",
  "connected", "socketpair", "socketpair_end", "listening", "connectionless", "connecting", "half_closed", "finished",
};
/* For the summary's "not reported" list. */
static const char *const held_words[X_NCLASS][2] = {
  [H_CONNECTED] = { "established connection", "established connections" },
  [H_PAIR] = { "socketpair end held with its other end", "socketpair ends held with their other ends" },
  [H_PAIR_END] = { "socketpair end whose other end was closed", "socketpair ends whose other ends were closed" },
  [H_LISTEN] = { "listening socket", "listening sockets" },
  [H_DGRAM] = { "connectionless socket", "connectionless sockets" },
  [H_CONNECTING] = { "connect in progress", "connects in progress" },
  [H_HALF_CLOSED] = { "connection shut down by the program, peer still open",
                      "connections shut down by the program, peer still open" },
  [H_FINISHED] = { "connection that ended at both ends", "connections that ended at both ends" },
};

/* A group (one creation stack) with this many sockets still open is reported whatever their
 * state: connection pools keep fewer per call site (urllib3/requests 10 per host, HikariCP 10,
 * pgbouncer 20, libcurl a few per handle, Go 2 idle per host), a per-request leak passes it
 * after 32 requests. docs/leaks.md argues the number. */
#define CG_LEAK_MANY 32

struct item {
  int fd;
  uint32_t stack_id;
  uint32_t pystack;       /* Python call site: one native stack serves every Python line */
  uint32_t via;           /* part of the group key: one call site obtains sockets one way,
                             but without stacks (CONNGUARD_STACK_DEPTH=0) all share id 0 */
  uint32_t kind;
  uint8_t cls;            /* enum xclass */
  uint8_t leak;           /* reported as a leak */
  const char *state;
  struct cg_fd *e;
};

struct group {
  unsigned first, count;  /* items[first .. first+count): leaks first, then held */
  unsigned nleak;
};

/* Shell sort: no allocation (qsort may malloc at exit), n is the number of open fds. */
static int item_less(const struct item *a, const struct item *b)
{
  if (a->stack_id != b->stack_id) return a->stack_id < b->stack_id;
  if (a->pystack != b->pystack) return a->pystack < b->pystack;
  if (a->via != b->via) return a->via < b->via;
  if (a->leak != b->leak) return a->leak > b->leak;
  return a->fd < b->fd;
}

static void sort_items(struct item *v, unsigned n)
{
  for (unsigned gap = n / 2; gap > 0; gap /= 2)
    for (unsigned i = gap; i < n; i++) {
      struct item t = v[i];
      unsigned j = i;
      for (; j >= gap && item_less(&t, &v[j - gap]); j -= gap) v[j] = v[j - gap];
      v[j] = t;
    }
}

static void sort_inos(ino_t *v, unsigned n)
{
  for (unsigned gap = n / 2; gap > 0; gap /= 2)
    for (unsigned i = gap; i < n; i++) {
      ino_t t = v[i];
      unsigned j = i;
      for (; j >= gap && t < v[j - gap]; j -= gap) v[j] = v[j - gap];
      v[j] = t;
    }
}

static int ino_held(const ino_t *v, unsigned n, ino_t ino)
{
  unsigned lo = 0, hi = n;
  while (lo < hi) {
    unsigned mid = lo + (hi - lo) / 2;
    if (v[mid] < ino) lo = mid + 1; else hi = mid;
  }
  return lo < n && v[lo] == ino;
}

/* Groups by reported leaks, largest first; then by held sockets (CONNGUARD_LEAKS=all). */
static int group_less(const struct group *a, const struct group *b, const struct item *it)
{
  if (a->nleak != b->nleak) return a->nleak > b->nleak;
  if (a->count != b->count) return a->count > b->count;
  return it[a->first].fd < it[b->first].fd;
}

static void sort_groups(struct group *g, unsigned n, const struct item *it)
{
  for (unsigned gap = n / 2; gap > 0; gap /= 2)
    for (unsigned i = gap; i < n; i++) {
      struct group t = g[i];
      unsigned j = i;
      for (; j >= gap && group_less(&t, &g[j - gap], it); j -= gap) g[j] = g[j - gap];
      g[j] = t;
    }
}

static const char *kind_name(unsigned kind, char *buf, size_t cap)
{
  int fam = (int)(kind >> 16), type = (int)(kind & 0xffff);
  const char *tn = type == SOCK_STREAM ? "stream" : type == SOCK_DGRAM ? "dgram" :
                   type == SOCK_SEQPACKET ? "seqpacket" : type == SOCK_RAW ? "raw" : NULL;
  if (fam == AF_INET || fam == AF_INET6) {
    const char *six = fam == AF_INET6 ? "6" : "";
    const char *base = type == SOCK_STREAM ? "tcp" : type == SOCK_DGRAM ? "udp" : type == SOCK_RAW ? "raw" : NULL;
    if (base) { snprintf(buf, cap, "%s%s", base, six); return buf; }
  } else if (fam == AF_UNIX && tn) {
    snprintf(buf, cap, "unix-%s", tn);
    return buf;
  } else if (fam == AF_NETLINK) {
    return "netlink";
  } else if (fam == AF_PACKET) {
    return "packet";
  }
  if (!kind) return "socket";
  snprintf(buf, cap, "family%d-type%d", fam, type);
  return buf;
}

static const char *via_name(unsigned via)
{
  switch (via) {
  case CG_VIA_SOCKET: return "socket";
  case CG_VIA_ACCEPT: return "accept";
  case CG_VIA_SOCKETPAIR: return "socketpair";
  case CG_VIA_DUP: return "dup";
  default: return "?";
  }
}

static const char *const tcp_states[] = {
  "UNKNOWN", "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT",
  "CLOSED" /* TCP_CLOSE: never connected, or reset */, "CLOSE_WAIT", "LAST_ACK", "LISTEN", "CLOSING", "NEW_SYN_RECV",
};

/* The live state (TCP's own for TCP sockets, else LISTEN / CONNECTED / PEER_CLOSED /
 * UNCONNECTED) and what that makes the socket. One or two system calls per socket, at exit
 * only. pair_held: for a socketpair end, whether the process holds the other end too. */
static enum xclass classify(int fd, const struct cg_fd *e, unsigned via, unsigned kind, int pair_held,
                            const char **state)
{
  int fam = (int)(kind >> 16), type = (int)(kind & 0xffff);
  if ((fam == AF_INET || fam == AF_INET6) && type == SOCK_STREAM) {
    struct cg_tcp_info ti;
    if (cg_tcp_info(fd, &ti) == 0 && ti.state < sizeof tcp_states / sizeof *tcp_states) {
      *state = tcp_states[ti.state];
      switch (ti.state) {
      case TCP_ESTABLISHED: return H_CONNECTED;
      case TCP_SYN_SENT: case TCP_SYN_RECV: return H_CONNECTING;
      case TCP_FIN_WAIT1: case TCP_FIN_WAIT2: return H_HALF_CLOSED;
      /* The peer closed and the program did neither shutdown() nor close(). */
      case TCP_CLOSE_WAIT: return X_PEER_CLOSED;
      /* Both sides shut down: the program ended the connection itself, only the descriptor is
       * left for the kernel to free. */
      case TCP_LAST_ACK: case TCP_CLOSING: case TCP_TIME_WAIT: return H_FINISHED;
      case TCP_LISTEN: return H_LISTEN;
      case TCP_CLOSE: {
        /* An error the program never read (reset, refused, timed out): a leak. Reading it
         * clears it, which no longer matters at exit. */
        int err = sys_getsockopt_int(fd, SOL_SOCKET, SO_ERROR);
        if (err > 0) return X_ERROR;
        /* Never a segment: never connected, or a connect that failed (the kernel resets the
         * counters) and whose socket was kept. */
        if (!ti.segs || !ti.have_segs) return e->peerlen || via == CG_VIA_ACCEPT ? X_ERROR : X_UNCONNECTED;
        /* It was connected and ended (both sides closed, or a reset whose error the program
         * read): the program saw the end. */
        return H_FINISHED;
      }
      default: break;
      }
    }
  }
  if (sys_getsockopt_int(fd, SOL_SOCKET, SO_ACCEPTCONN) == 1) { *state = "LISTEN"; return H_LISTEN; }
  /* Both ends of a socketpair in this process: a runtime's own wake-up channel (java, git,
   * socat), or the program talking to itself across threads. */
  if (pair_held) { *state = "CONNECTED"; return H_PAIR; }
  struct sockaddr_storage ss;
  socklen_t l = sizeof ss;
  int connected = cg_syscall(SYS_getpeername, fd, &ss, &l) == 0;
  if (type == SOCK_STREAM || type == SOCK_SEQPACKET) {
    if (!connected) { *state = "UNCONNECTED"; return X_UNCONNECTED; }
    /* The peer closed (or shut down its sending side): POLLHUP / POLLRDHUP, without waiting. */
    struct pollfd p = { fd, POLLRDHUP, 0 };
    if (cg_syscall(SYS_poll, &p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLRDHUP))) {
      *state = "PEER_CLOSED";
      /* The other end of a socketpair is the process's own (or a child's): closing it was the
       * program's decision, not a peer going away unnoticed. Java keeps such an end for good
       * (its pre-close descriptor); a parent keeps one after its child exited. */
      return e->pair_ino ? H_PAIR_END : X_PEER_CLOSED;
    }
    *state = "CONNECTED";
    return H_CONNECTED;
  }
  *state = connected ? "CONNECTED" : "UNCONNECTED";
  return H_DGRAM;
}

#define LIST_MAX 4        /* distinct addresses / states shown per group */
#define FDS_MAX 64        /* fds listed per group (sockets= has the count) */
#define ADDR_LEN 112

struct distinct {
  int n, more;
  char v[LIST_MAX][ADDR_LEN];
  const char *p[LIST_MAX];
};

static void distinct_add(struct distinct *d, const char *s)
{
  if (!s || !*s) return;
  for (int i = 0; i < d->n; i++) if (!strcmp(d->v[i], s)) return;
  if (d->n == LIST_MAX) { d->more = 1; return; }
  snprintf(d->v[d->n], ADDR_LEN, "%s", s);
  d->p[d->n] = d->v[d->n];
  d->n++;
}

/* An inet socket that was never bound or connected reports the wildcard with port 0: noise. */
static int bound(const struct sockaddr_storage *ss, socklen_t l)
{
  if (ss->ss_family == AF_INET && l >= sizeof(struct sockaddr_in))
    return ((const struct sockaddr_in *)ss)->sin_port != 0;
  if (ss->ss_family == AF_INET6 && l >= sizeof(struct sockaddr_in6))
    return ((const struct sockaddr_in6 *)ss)->sin6_port != 0;
  return 1;
}

static void addr_str(char *out, size_t cap, const struct sockaddr *sa, socklen_t len)
{
  struct cg_buf b;
  cg_buf_init(&b, out, cap);
  cg_buf_sockaddr(&b, sa, len);
  cg_buf_str(&b);
}

/* Up to LIST_MAX values; when there were more, the last one shown is "...". */
static void put_distinct(struct cg_rec *r, const char *key, struct distinct *d)
{
  if (!d->n) return;
  const char *vals[LIST_MAX];
  for (int i = 0; i < d->n; i++) vals[i] = d->p[i];
  if (d->more) vals[d->n - 1] = "...";
  cg_rec_strlist(r, key, vals, d->n);
}

static int group_suppressed(const uintptr_t *pcs, int n, uint32_t pystack, unsigned count)
{
  struct cg_frame f;
  if (!supp.n) return 0;
  struct cg_py_frame pf[CG_PY_FRAMES];
  int np = cg_pystack_get(pystack, pf, CG_PY_FRAMES);
  for (int i = 0; i < np; i++) {
    int k = cg_supp_match(&supp, pf[i].func, pf[i].file);
    if (k >= 0) { supp.hits[k] += count; return 1; }
  }
  for (int i = 0; i < n; i++) {
    cg_stack_symbolize(pcs[i], &f);
    int k = cg_supp_match(&supp, f.symbol, f.module);
    if (k >= 0) { supp.hits[k] += count; return 1; }
  }
  return 0;
}

static void hint_add(char *h, size_t cap, int *first, unsigned n, const char *what)
{
  size_t l = strlen(h);
  if (!n || l >= cap) return;
  snprintf(h + l, cap - l, "%s%u %s", *first ? "" : ", ", n, what);
  *first = 0;
}

/* One record for count sockets of one group: "leak" records the ones that are leaks,
 * "open_at_exit" (CONNGUARD_LEAKS=all) the held ones. */
static void report_group(const struct item *it, unsigned count, int64_t now, int leak)
{
  const uintptr_t *pcs = NULL;
  int n = cg_stacktab_get(it[0].stack_id, &pcs);
  int64_t fds[FDS_MAX];
  int nf = 0;
  int64_t oldest = now;
  unsigned kind = 0, by[X_NCLASS];
  memset(by, 0, sizeof by);
  struct distinct states, locals, peers, why;
  memset(&states, 0, sizeof states);
  memset(&locals, 0, sizeof locals);
  memset(&peers, 0, sizeof peers);
  memset(&why, 0, sizeof why);
  for (unsigned i = 0; i < count; i++) {
    const struct cg_fd *e = it[i].e;
    int fd = it[i].fd;
    if (nf < FDS_MAX) fds[nf++] = fd;
    if (e->created_ns < oldest) oldest = e->created_ns;
    if (!kind) kind = it[i].kind;
    by[it[i].cls]++;
    distinct_add(&states, it[i].state);
    distinct_add(&why, xclass_name[it[i].cls]);
    char a[ADDR_LEN];
    struct sockaddr_storage ss;
    socklen_t l = sizeof ss;
    if (cg_syscall(SYS_getsockname, fd, &ss, &l) == 0 && bound(&ss, l)) {
      addr_str(a, sizeof a, (struct sockaddr *)&ss, l);
      distinct_add(&locals, a);
    }
    l = sizeof ss;
    if (cg_syscall(SYS_getpeername, fd, &ss, &l) == 0) {
      addr_str(a, sizeof a, (struct sockaddr *)&ss, l);
      distinct_add(&peers, a);
    } else if (e->peerlen) {
      addr_str(a, sizeof a, &e->peer.sa, e->peerlen);   /* refused or reset: where it was going */
      distinct_add(&peers, a);
    }
  }
  char kb[48];
  struct cg_rec r;
  cg_rec_begin(&r, leak ? "leak" : "open_at_exit");
  cg_rec_int(&r, "sockets", count);
  cg_rec_intlist(&r, "fds", fds, nf);
  cg_rec_str(&r, "kind", kind_name(kind, kb, sizeof kb));
  cg_rec_str(&r, "via", via_name(it[0].via));
  put_distinct(&r, "state", &states);
  put_distinct(&r, "reason", &why);
  cg_rec_int(&r, "age_ms", (now - oldest) / 1000000);
  put_distinct(&r, "local", &locals);
  put_distinct(&r, "peer", &peers);
  char hint[400];
  const char *what = count == 1 ? "socket" : "sockets";
  int first = 1;
  if (leak) {
    snprintf(hint, sizeof hint, "%u %s still open at exit: ", count, what);
    if (by[X_MANY] || count >= CG_LEAK_MANY)
      hint_add(hint, sizeof hint, &first, count, "from one call site (more than a pool keeps: opened and never closed)");
    hint_add(hint, sizeof hint, &first, by[X_PEER_CLOSED],
             "whose peer closed (CLOSE_WAIT): the program neither shut down nor closed its end");
    hint_add(hint, sizeof hint, &first, by[X_ERROR], "reset or failed to connect, never closed");
    hint_add(hint, sizeof hint, &first, by[X_UNCONNECTED], "never connected nor listening");
  } else {
    snprintf(hint, sizeof hint, "%u %s open at exit, not counted as leaked (CONNGUARD_LEAKS=all): ", count, what);
    for (int c = X_FIRST_HELD; c < X_NCLASS; c++) hint_add(hint, sizeof hint, &first, by[c], held_words[c][by[c] != 1]);
  }
  size_t hl = strlen(hint);
  if (hl < sizeof hint) snprintf(hint + hl, sizeof hint - hl, "; obtained at:");
  cg_rec_detail(&r, "hint", hint);
  cg_rec_pystack(&r, it[0].pystack);
  if (n > 0) cg_rec_stack(&r, pcs, n);
  cg_rec_emit(&r);
}

int cg_leak_report(int status, struct cg_leak_summary *sum)
{
  struct cg_leak_summary s;
  memset(&s, 0, sizeof s);
  pid_t me = (pid_t)cg_syscall(SYS_getpid);
  unsigned held_by[X_NCLASS];
  memset(held_by, 0, sizeof held_by);
  int all = cg_cfg.leaks == CG_LEAKS_ALL;

  /* Pass 1: how many entries this process tracks (sizes the scratch memory). */
  unsigned tracked = 0;
  int any = atomic_load_explicit(&tracked_ever, memory_order_relaxed);
  for (int c = 0, len; any && (len = cg_fd_walk_len(c)) > 0; c++) {
    struct cg_fd *ch = atomic_load_explicit(&cg_fd_chunks[c], memory_order_acquire);
    if (!ch) continue;
    for (int i = 0; i < len; i++)
      if (atomic_load_explicit(&ch[i].track, memory_order_acquire) && ch[i].owner == me) tracked++;
  }
  int out = status;
  if (!tracked) goto done;
  int64_t now = cg_realtime_ns();   /* here: the clock's first call costs page faults too */
  size_t bytes = tracked * (sizeof(struct item) + sizeof(struct group) + sizeof(ino_t));
  void *mem = mmap(0, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) goto done;
  struct item *items = mem;
  ino_t *inos = (ino_t *)(items + tracked);            /* 8-aligned: struct group is 12 bytes */
  struct group *groups = (struct group *)(inos + tracked);

  /* Pass 2: only what is still open and still the same socket. */
  unsigned n = 0;
  for (int c = 0, len; n < tracked && (len = cg_fd_walk_len(c)) > 0; c++) {
    struct cg_fd *ch = atomic_load_explicit(&cg_fd_chunks[c], memory_order_acquire);
    if (!ch) continue;
    for (int i = 0; i < len && n < tracked; i++) {
      struct cg_fd *e = &ch[i];
      if (!atomic_load_explicit(&e->track, memory_order_acquire) || e->owner != me) continue;
      int fd = (c << CG_FD_CHUNK_BITS) | i;
      struct stat st;
      /* Identity not taken (ino 0): the socket this number holds now is taken to be ours;
       * the window docs/leaks.md describes. */
      if (fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode) ||
          (e->ino && (st.st_dev != e->dev || st.st_ino != e->ino))) {
        s.stale++;
        continue;
      }
      if (!e->ino) identity_taken(fd, e, &st);
      memset(&items[n], 0, sizeof items[n]);
      items[n].fd = fd;
      items[n].stack_id = e->stack_id;
      items[n].pystack = e->pystack;
      items[n].via = atomic_load_explicit(&e->track, memory_order_relaxed);
      items[n].e = e;
      inos[n] = e->ino;
      n++;
    }
  }
  /* Pass 3: what each one is (inodes sorted: "the other end of the pair is held too"). */
  sort_inos(inos, n);
  for (unsigned i = 0; i < n; i++) {
    struct item *x = &items[i];
    unsigned k = x->e->kind;
    if (!k) {
      int d = sys_getsockopt_int(x->fd, SOL_SOCKET, SO_DOMAIN), t = sys_getsockopt_int(x->fd, SOL_SOCKET, SO_TYPE);
      if (d > 0 && t > 0) k = kind_of(d, t);
    }
    x->kind = k;
    int pair_held = x->e->pair_ino && x->e->pair_ino != CG_PAIR_GONE && ino_held(inos, n, x->e->pair_ino);
    x->cls = (uint8_t)classify(x->fd, x->e, x->via, k, pair_held, &x->state);
    x->leak = x->cls < X_FIRST_HELD;
  }
  /* Groups by creation stack; a group that grew to CG_LEAK_MANY is a leak as a whole. */
  sort_items(items, n);
  unsigned ng = 0;
  for (unsigned i = 0; i < n;) {
    unsigned j = i + 1;
    while (j < n && items[j].stack_id == items[i].stack_id && items[j].pystack == items[i].pystack &&
           items[j].via == items[i].via)
      j++;
    if (j - i >= CG_LEAK_MANY)
      for (unsigned k = i; k < j; k++)
        if (!items[k].leak) { items[k].leak = 1; items[k].cls = X_MANY; }
    groups[ng].first = i;
    groups[ng].count = j - i;
    groups[ng].nleak = 0;
    for (unsigned k = i; k < j; k++) groups[ng].nleak += items[k].leak;
    if (j - i >= CG_LEAK_MANY) sort_items(items + i, j - i);   /* leaks first again */
    ng++;
    i = j;
  }
  sort_groups(groups, ng, items);
  for (unsigned g = 0; g < ng; g++) {
    const struct item *it = &items[groups[g].first];
    unsigned nl = groups[g].nleak, nh = groups[g].count - nl;
    for (unsigned k = nl; k < groups[g].count; k++) held_by[it[k].cls]++;
    s.held += nh;
    if (!nl) continue;
    const uintptr_t *pcs = NULL;
    int np = cg_stacktab_get(it->stack_id, &pcs);
    if (group_suppressed(pcs, np, it->pystack, nl)) {
      s.suppressed += nl;
      s.suppressed_groups++;
      continue;
    }
    report_group(it, nl, now, 1);
    s.groups++;
    s.sockets += nl;
  }
  if (all)
    for (unsigned g = 0; g < ng; g++) {
      unsigned nl = groups[g].nleak, nh = groups[g].count - nl;
      if (nh) report_group(&items[groups[g].first + nl], nh, now, 0);
    }
  munmap(mem, bytes);

done:
  if (s.sockets && status == 0 && cg_cfg.leak_exitcode) out = (int)cg_cfg.leak_exitcode;
  /* Nothing at all when nothing leaked: held sockets are the program's business, said only
   * with CONNGUARD_LEAKS=all or next to real leaks. */
  if (s.groups || s.suppressed || (all && s.held)) {
    struct cg_rec r;
    char hint[600];
    cg_rec_begin(&r, "leak_summary");
    cg_rec_int(&r, "groups", s.groups);
    cg_rec_int(&r, "sockets", s.sockets);
    cg_rec_int(&r, "suppressed", s.suppressed);
    cg_rec_int(&r, "not_reported", s.held);
    if (s.held) {
      static char nr[X_NCLASS][40];
      const char *nv[X_NCLASS];
      int k = 0;
      for (int c = X_FIRST_HELD; c < X_NCLASS; c++) {
        if (!held_by[c]) continue;
        snprintf(nr[k], sizeof nr[k], "%s=%u", xclass_name[c], held_by[c]);
        nv[k] = nr[k];
        k++;
      }
      cg_rec_strlist(&r, "not_reported_as", nv, k);
    }
    if (out != status) cg_rec_int(&r, "exit_code", out);
    if (s.suppressed) {
      /* Like LeakSanitizer's "Suppressions used": which patterns matched, how many sockets. */
      static char used[CG_SUPP_MAX][CG_SUPP_PATLEN + 16];
      const char *uv[CG_SUPP_MAX];
      int nu = 0;
      for (int k = 0; k < supp.n; k++) {
        if (!supp.hits[k]) continue;
        snprintf(used[nu], sizeof used[nu], "%s=%u", supp.pat[k], supp.hits[k]);
        uv[nu] = used[nu];
        nu++;
      }
      cg_rec_strlist(&r, "suppressions", uv, nu);
    }
    snprintf(hint, sizeof hint, "SUMMARY: connguard: %u %s leaked in %u %s", s.sockets,
             s.sockets == 1 ? "socket" : "sockets", s.groups, s.groups == 1 ? "group" : "groups");
    size_t l = strlen(hint);
    if (s.suppressed) snprintf(hint + l, sizeof hint - l, ", %u suppressed", s.suppressed);
    if (s.held) {
      l = strlen(hint);
      snprintf(hint + l, sizeof hint - l, "; %u open %s at exit not reported: ", s.held,
               s.held == 1 ? "socket" : "sockets");
      int first = 1;
      for (int c = X_FIRST_HELD; c < X_NCLASS; c++) {
        if (!held_by[c]) continue;
        l = strlen(hint);
        snprintf(hint + l, sizeof hint - l, "%s%u %s", first ? "" : ", ", held_by[c], held_words[c][held_by[c] != 1]);
        first = 0;
      }
      l = strlen(hint);
      snprintf(hint + l, sizeof hint - l, all ? " (listed above)" : " (CONNGUARD_LEAKS=all lists them)");
    }
    if (out != status) {
      l = strlen(hint);
      snprintf(hint + l, sizeof hint - l, "; exit status %d (CONNGUARD_LEAK_EXITCODE)", out);
    }
    cg_rec_detail(&r, "hint", hint);
    cg_rec_emit(&r);
  }
  CG_STAT_ADD(leaks_reported, s.sockets);
  if (sum) *sum = s;
  return out;
}

/* ---------- exit and fork ---------- */

/* cold: next to the constructor on the text pages every process maps, not a page of its own. */
__attribute__((cold)) static void at_exit(int status, void *arg)
{
  (void)arg;
  if (!cg_enabled || cg_cfg.leaks == CG_LEAKS_OFF) return;
  /* Never tracked a socket: nothing to report, and no page to touch on the way out. */
  if (!atomic_load_explicit(&tracked_ever, memory_order_relaxed)) return;
  cg_in_hook++;
  int out = cg_leak_report(status, NULL);
  cg_in_hook--;
  if (out != status) {
    /* Still inside exit(): every exit handler and destructor has run (ours was registered
     * first, so it runs last), only stdio's final flush remains; do it, then leave with the
     * new status. */
    fflush(NULL);
    _exit(out);
  }
}

void cg_leak_after_fork_child(void)
{
  atomic_store(&cg_self_pid_v, (pid_t)cg_syscall(SYS_getpid));
  /* The child has a fresh stats segment: none of the parent's slots are ours. */
  for (int w = 0; w < SLOT_WORDS; w++) atomic_store(&slot_bits[w], 0);
}

__attribute__((cold)) void cg_leak_init(void)
{
  static atomic_int done CG_STARTUP_DATA;
  if (!cg_enabled || atomic_exchange(&done, 1)) return;
  /* Even with leak tracking off: the bulk close hooks use the pid to recognise a vfork child
   * (cg_leak_borrowed_memory), which protects the engine's state too. */
  if (!atomic_load_explicit(&cg_self_pid_v, memory_order_relaxed))   /* cg_self_pid_slow(), kept off start-up's text pages */
    atomic_store_explicit(&cg_self_pid_v, (pid_t)cg_sys6(SYS_getpid, 0, 0, 0, 0, 0, 0), memory_order_relaxed);
  cg_atfork_child(cg_leak_after_fork_child);
  if (cg_cfg.leaks == CG_LEAKS_OFF) return;
  cg_stats_set_leak(1, cg_cfg.leak_age_ms);
  cg_log_expect_exit_report();
  if (cg_cfg.suppressions[0]) cg_leak_load_suppressions(cg_cfg.suppressions);
  on_exit(at_exit, NULL);
}
