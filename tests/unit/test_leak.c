/* Leak tracking through the core API (no hooks): identity checks, ownership, exit status,
 * suppressions and the live publication. Each test runs in its own process (CK_FORK). */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <stddef.h>
#include <sys/wait.h>
#include <unistd.h>
#include "engine.h"
#include "closepath.h"
#include "leak.h"
#include "stacktab.h"
#include "stats.h"

static char logpath[64];

static void setup_env(const char *stats)
{
  snprintf(logpath, sizeof logpath, "/tmp/cg-leak-unit-%d.log", (int)getpid());
  unlink(logpath);
  setenv("CONNGUARD_LOG", logpath, 1);
  setenv("CONNGUARD_LOG_FORMAT", "json", 1);
  setenv("CONNGUARD_STATS", stats, 1);
  cg_init();
}

static void setup(void) { setup_env("0"); }
static void setup_stats(void) { setup_env("1"); }
static void teardown(void) { unlink(logpath); cg_stats_unpublish(); }

static int count_in_log(const char *needle)
{
  static char buf[1 << 16];
  int fd = open(logpath, O_RDONLY);
  if (fd < 0) return 0;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  buf[n > 0 ? n : 0] = 0;
  int c = 0;
  for (char *p = buf; (p = strstr(p, needle)); p++) c++;
  return c;
}

static int tracked_socket_of(int family, int type)
{
  int fd = socket(family, type, 0);
  ck_assert_int_ge(fd, 0);
  cg_leak_track(fd, CG_VIA_SOCKET, family, type, 0, NULL, 0);
  return fd;
}

static int tracked_socket(int type)
{
  int fd = socket(AF_INET, type, 0);
  ck_assert_int_ge(fd, 0);
  cg_leak_track(fd, CG_VIA_SOCKET, AF_INET, type, 0, NULL, 0);
  return fd;
}

START_TEST(open_sockets_are_reported)
{
  /* A TCP socket never connected is a leak; a UDP socket is not (connectionless), and is
   * counted in the summary. */
  tracked_socket(SOCK_STREAM);
  tracked_socket(SOCK_DGRAM);
  struct cg_leak_summary s;
  ck_assert_int_eq(cg_leak_report(0, &s), 0);
  ck_assert_uint_eq(s.sockets, 1);
  ck_assert_uint_eq(s.held, 1);
  ck_assert_uint_eq(s.stale, 0);
  ck_assert_int_eq(count_in_log("\"event\":\"leak\""), (int)s.groups);
  ck_assert_int_eq(count_in_log("\"event\":\"open_at_exit\""), 0);
  ck_assert_int_eq(count_in_log("\"event\":\"leak_summary\""), 1);
  ck_assert_int_eq(count_in_log("\"reason\":[\"unconnected\"]"), 1);
  ck_assert_int_eq(count_in_log("\"groups\":1,\"sockets\":1,\"suppressed\":0,\"not_reported\":1,"
                                "\"not_reported_as\":[\"connectionless=1\"]"), 1);
}
END_TEST

START_TEST(closed_through_a_seen_path_is_not_reported)
{
  int a = tracked_socket(SOCK_STREAM);
  cg_close_fd(a);
  syscall(SYS_close, a);
  struct cg_leak_summary s;
  cg_leak_report(0, &s);
  ck_assert_uint_eq(s.sockets, 0);
  ck_assert_uint_eq(s.stale, 0);
  ck_assert_int_eq(count_in_log("event"), 0);   /* nothing at all is written */
}
END_TEST

START_TEST(unseen_close_then_reused_by_a_file)
{
  int a = tracked_socket(SOCK_STREAM);
  syscall(SYS_close, a);
  int f = open("/dev/null", O_RDONLY);
  ck_assert_int_eq(f, a);
  struct cg_leak_summary s;
  cg_leak_report(0, &s);
  ck_assert_uint_eq(s.sockets, 0);
  ck_assert_uint_eq(s.stale, 1);
  ck_assert_int_eq(count_in_log("event"), 0);
}
END_TEST

START_TEST(unseen_replacement_by_another_socket)
{
  int a = tracked_socket(SOCK_STREAM);
  /* Its identity is taken later (8 sockets on, a dup, exit): here, now. A replacement before
   * that is the window docs/leaks.md describes (syscall() closes are seen by the hook). */
  cg_leak_settle();
  int other = (int)syscall(SYS_socket, AF_INET, SOCK_STREAM, 0);
  ck_assert_int_eq(syscall(SYS_dup3, other, a, 0), a);
  struct cg_leak_summary s;
  cg_leak_report(0, &s);
  ck_assert_uint_eq(s.sockets, 0);
  ck_assert_uint_eq(s.stale, 1);
}
END_TEST

START_TEST(replaced_by_the_shim_keeps_tracking)
{
  /* A retry that dup2()s a fresh socket over the program's fd tells the tracker. */
  int a = tracked_socket(SOCK_STREAM);
  int fresh = (int)syscall(SYS_socket, AF_INET, SOCK_STREAM, 0);
  syscall(SYS_dup3, fresh, a, 0);
  syscall(SYS_close, fresh);
  cg_leak_replaced(a);
  struct cg_leak_summary s;
  cg_leak_report(0, &s);
  ck_assert_uint_eq(s.sockets, 1);
  ck_assert_uint_eq(s.stale, 0);
}
END_TEST

START_TEST(dups)
{
  int a = tracked_socket(SOCK_STREAM);
  int c = dup(a);
  cg_leak_dup(a, c);
  int u = (int)syscall(SYS_socket, AF_INET, SOCK_STREAM, 0);   /* untracked */
  int du = dup(u);
  cg_leak_dup(u, du);
  ck_assert_int_eq(dup2(a, 0), 0);                              /* stdio: a redirection */
  cg_leak_dup(a, 0);
  struct cg_leak_summary s;
  cg_leak_report(0, &s);
  ck_assert_uint_eq(s.sockets, 2);
  ck_assert_uint_eq(atomic_load(&cg_fd_peek(c)->track), CG_VIA_DUP);
  ck_assert_uint_eq(atomic_load(&cg_fd_peek(du)->track), 0);
  ck_assert_uint_eq(atomic_load(&cg_fd_peek(0)->track), 0);
}
END_TEST

START_TEST(stale_entry_replaced_on_reuse)
{
  int a = tracked_socket(SOCK_STREAM);
  syscall(SYS_close, a);
  int b = tracked_socket(SOCK_DGRAM);
  ck_assert_int_eq(a, b);
  cg_cfg.leaks = CG_LEAKS_ALL;   /* a UDP socket is no leak: listed as open_at_exit */
  struct cg_leak_summary s;
  cg_leak_report(0, &s);
  ck_assert_uint_eq(s.sockets + s.held, 1);
  ck_assert_int_eq(count_in_log("\"kind\":\"udp\""), 1);
  ck_assert_int_eq(count_in_log("\"kind\":\"tcp\""), 0);
}
END_TEST

START_TEST(exit_status)
{
  cg_cfg.leak_exitcode = 9;
  ck_assert_int_eq(cg_leak_report(0, NULL), 0);       /* no leak: unchanged */
  int a = tracked_socket(SOCK_STREAM);
  ck_assert_int_eq(cg_leak_report(0, NULL), 9);
  ck_assert_int_eq(cg_leak_report(4, NULL), 4);       /* the program's failure wins */
  ck_assert_int_eq(count_in_log("\"exit_code\":9"), 1);
  cg_cfg.leak_exitcode = 0;
  ck_assert_int_eq(cg_leak_report(0, NULL), 0);
  (void)a;
}
END_TEST

START_TEST(child_does_not_report_the_parents)
{
  tracked_socket(SOCK_STREAM);
  pid_t pid = fork();
  if (pid == 0) {
    cg_leak_after_fork_child();   /* what the registered fork handler does */
    struct cg_leak_summary s;
    cg_leak_report(0, &s);
    int own = tracked_socket(SOCK_STREAM);
    struct cg_leak_summary s2;
    cg_leak_report(0, &s2);
    _exit(s.sockets == 0 && s2.sockets == 1 && own >= 0 ? 0 : 1);
  }
  int st;
  waitpid(pid, &st, 0);
  ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  struct cg_leak_summary s;
  cg_leak_report(0, &s);
  ck_assert_uint_eq(s.sockets, 1);
}
END_TEST

START_TEST(forget_by_another_owner_is_ignored)
{
  int a = tracked_socket(SOCK_STREAM);
  struct cg_fd *e = cg_fd_peek(a);
  pid_t me = e->owner;
  e->owner = me + 1;            /* as if inherited from a parent */
  cg_close_fd(a);
  ck_assert_uint_ne(atomic_load(&e->track), 0);
  e->owner = me;
  cg_close_fd(a);
  ck_assert_uint_eq(atomic_load(&e->track), 0);
}
END_TEST

START_TEST(suppressed_by_module)
{
  char path[] = "/tmp/cg-supp-XXXXXX";
  int fd = mkstemp(path);
  ck_assert_int_eq(write(fd, "leak:libc.so\n", 13), 13);
  close(fd);
  cg_leak_load_suppressions(path);
  unlink(path);
  tracked_socket(SOCK_STREAM);
  tracked_socket(SOCK_STREAM);
  struct cg_leak_summary s;
  ck_assert_int_eq(cg_leak_report(0, &s), 0);
  ck_assert_uint_eq(s.sockets, 0);
  ck_assert_uint_eq(s.suppressed, 2);
  ck_assert_int_eq(count_in_log("\"event\":\"leak\""), 0);
  ck_assert_int_eq(count_in_log("\"suppressed\":2"), 1);
}
END_TEST

START_TEST(published_and_unpublished)
{
  ck_assert_ptr_nonnull(cg_stats);
  int a = tracked_socket(SOCK_STREAM);
  struct stat st;
  fstat(a, &st);
  struct cg_fd *e = cg_fd_peek(a);
  unsigned slot = atomic_load(&e->slot);
  ck_assert_uint_ne(slot, 0);
  struct cg_leak_slot *ls = &cg_stats->leaks[slot - 1];
  ck_assert_uint_eq(atomic_load(&ls->ino), CG_LEAK_INO_UNKNOWN);   /* not taken at socket() */
  cg_leak_settle();
  ck_assert_uint_eq(atomic_load(&ls->ino), (uint64_t)st.st_ino);
  ck_assert_int_eq(ls->fd, a);
  ck_assert_uint_eq(ls->via, CG_VIA_SOCKET);
  ck_assert_uint_eq(atomic_load(&ls->seq) % 2, 0);
  ck_assert_int_eq(atomic_load(&cg_stats->open_sockets), 1);
  ck_assert_uint_eq(atomic_load(&cg_stats->leak_candidates), 1);
  struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(5432), .sin_addr.s_addr = htonl(0x7f000001) };
  cg_leak_note_peer(a, (struct sockaddr *)&to, sizeof to);
  ck_assert_uint_eq(ls->peerlen, sizeof to);
  ck_assert_int_eq(memcmp(ls->peer, &to, sizeof to), 0);
  cg_close_fd(a);
  ck_assert_uint_eq(atomic_load(&ls->ino), 0);
  ck_assert_int_eq(atomic_load(&cg_stats->open_sockets), 0);
  ck_assert_uint_eq(atomic_load(&cg_stats->leak_candidates), 0);
  /* The slot is reused by the next socket. */
  int b = tracked_socket(SOCK_STREAM);
  ck_assert_uint_eq(atomic_load(&cg_fd_peek(b)->slot), slot);
}
END_TEST

static struct cg_leak_slot *slot_of(int fd)
{
  unsigned v = atomic_load(&cg_fd_peek(fd)->slot);
  ck_assert_uint_ne(v, 0);
  return &cg_stats->leaks[v - 1];
}

/* The published stack is the one interned for the exit report, frame for frame. */
static void assert_stack_of(int fd)
{
  const uintptr_t *pcs;
  int n = cg_stacktab_get(cg_fd_peek(fd)->stack_id, &pcs);
  uint32_t k = slot_of(fd)->stack;
  ck_assert_int_gt(n, 0);
  ck_assert(k >= 1 && k <= CG_STATS_STACKS);
  const struct cg_leak_stack *st = &cg_stats->stacks[k - 1];
  ck_assert_uint_eq(st->nframes, (unsigned)n);
  for (int i = 0; i < n; i++) ck_assert_uint_eq(st->pcs[i], (uint64_t)pcs[i]);
}

/* Frames of the test program itself are the shim's own here (the core is linked in) and left
 * out of stacks: a socket's stack is what lies outside, the same from any line of this test.
 * Made from a qsort() comparator, libc's qsort frames come in between: "another call site".
 * (Not a thread: under TSan libunwind's per-thread destructor crashes at thread exit.) */
static int made_in_cmp = -1;

static int cmp_makes_socket(const void *a, const void *b)
{
  if (made_in_cmp < 0) made_in_cmp = tracked_socket(SOCK_STREAM);
  return *(const int *)a - *(const int *)b;
}

static int from_other_site(void)
{
  int v[2] = { 1, 0 };
  made_in_cmp = -1;
  qsort(v, 2, sizeof v[0], cmp_makes_socket);
  ck_assert_int_ge(made_in_cmp, 0);
  return made_in_cmp;
}

START_TEST(identical_stacks_are_published_once)
{
  int fds[50];
  for (int i = 0; i < 50; i++) fds[i] = tracked_socket(SOCK_DGRAM);
  int other = from_other_site();
  ck_assert_uint_eq(atomic_load(&cg_stats->leak_stacks_used), 2);
  for (int i = 1; i < 50; i++) ck_assert_uint_eq(slot_of(fds[i])->stack, slot_of(fds[0])->stack);
  ck_assert_uint_ne(slot_of(other)->stack, slot_of(fds[0])->stack);
  assert_stack_of(fds[0]);
  assert_stack_of(other);
  /* Closing every socket of a stack leaves it stored for the next one from that site. */
  uint32_t k = slot_of(fds[0])->stack;
  for (int i = 0; i < 50; i++) cg_close_fd(fds[i]);
  int again = tracked_socket(SOCK_DGRAM);
  ck_assert_uint_eq(slot_of(again)->stack, k);
  ck_assert_uint_eq(atomic_load(&cg_stats->leak_stacks_used), 2);
}
END_TEST

START_TEST(full_stack_table_publishes_without_stack)
{
  int a = tracked_socket(SOCK_STREAM);
  atomic_store(&cg_stats->leak_stacks_used, CG_STATS_STACKS);   /* as if 4096 sites came first */
  int fresh = from_other_site();
  ck_assert_uint_eq(slot_of(fresh)->stack, CG_LEAK_STACK_FULL);
  ck_assert_uint_ne(atomic_load(&slot_of(fresh)->ino), 0);      /* published all the same */
  ck_assert_uint_eq(atomic_load(&cg_stats->leak_stacks_full), 1);
  ck_assert_uint_eq(atomic_load(&cg_stats->leak_stacks_used), CG_STATS_STACKS);
  int b = tracked_socket(SOCK_STREAM);
  ck_assert_uint_eq(slot_of(b)->stack, slot_of(a)->stack);       /* a stored one is still shared */
  assert_stack_of(b);
  /* The exit report has every stack: it reads the process's own table. */
  struct cg_leak_summary sum;
  cg_leak_report(0, &sum);
  ck_assert_uint_eq(sum.groups, 2);
  ck_assert_int_eq(count_in_log("\"event\":\"leak\""), 2);
  ck_assert_int_eq(count_in_log("\"stack\":[{"), 2);
}
END_TEST

START_TEST(fork_child_publishes_its_own_stacks)
{
  int fd = tracked_socket(SOCK_DGRAM);
  struct cg_leak_stack mine = cg_stats->stacks[slot_of(fd)->stack - 1];
  pid_t pid = fork();   /* the shim's fork handlers run: fresh counters, its own segment */
  if (pid == 0) {
    int ok = 1, fds[2];
    for (int i = 0; i < 2; i++) fds[i] = tracked_socket(SOCK_DGRAM);
    ok &= cg_stats->pid == getpid();                             /* the child's own segment */
    ok &= atomic_load(&cg_stats->leak_stacks_used) == 1;        /* written here, not assumed */
    ok &= slot_of(fds[0])->stack == 1 && slot_of(fds[1])->stack == 1;
    ok &= cg_stats->stacks[0].nframes == mine.nframes && !memcmp(cg_stats->stacks[0].pcs, mine.pcs, sizeof mine.pcs);
    cg_stats_unpublish();
    _exit(ok ? 0 : 1);
  }
  int st;
  ck_assert_int_eq(waitpid(pid, &st, 0), pid);
  ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  ck_assert_uint_eq(atomic_load(&cg_stats->leak_stacks_used), 1);
}
END_TEST

/* ---- what is a leak at exit (docs/leaks.md) ---- */

static int listener(struct sockaddr_in *a)
{
  socklen_t al = sizeof *a;
  memset(a, 0, sizeof *a);
  a->sin_family = AF_INET;
  a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int l = (int)syscall(SYS_socket, AF_INET, SOCK_STREAM, 0);
  ck_assert_int_eq(bind(l, (struct sockaddr *)a, sizeof *a), 0);
  ck_assert_int_eq(listen(l, 16), 0);
  ck_assert_int_eq(getsockname(l, (struct sockaddr *)a, &al), 0);
  return l;
}

/* A tracked client connected to l; *peer: its accepted (untracked) end. */
static int tracked_client(int l, const struct sockaddr_in *a, int *peer)
{
  int c = tracked_socket(SOCK_STREAM);
  ck_assert_int_eq(connect(c, (const struct sockaddr *)a, sizeof *a), 0);
  cg_leak_note_peer(c, (const struct sockaddr *)a, sizeof *a);
  *peer = (int)syscall(SYS_accept4, l, NULL, NULL, 0);
  ck_assert_int_ge(*peer, 0);
  return c;
}

static void settle(void) { usleep(50000); }   /* loopback FINs and RSTs are in by then */

START_TEST(held_sockets_are_not_leaks)
{
  struct sockaddr_in a;
  int l = listener(&a), p1;
  tracked_client(l, &a, &p1);                                /* established: held by a pool */
  int sv[2];
  ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  cg_leak_track_pair(sv, AF_UNIX, SOCK_STREAM, 0);           /* both ends held: a wake-up channel */
  int lt = tracked_socket(SOCK_STREAM);                      /* a listener */
  struct sockaddr_in any = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
  ck_assert_int_eq(bind(lt, (struct sockaddr *)&any, sizeof any), 0);
  ck_assert_int_eq(listen(lt, 1), 0);
  tracked_socket(SOCK_DGRAM);                                /* connectionless */
  int sv2[2];
  ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv2), 0);
  cg_leak_track_pair(sv2, AF_UNIX, SOCK_STREAM, 0);
  cg_close_fd(sv2[1]);
  syscall(SYS_close, sv2[1]);                                /* one end kept (java's pre-close fd) */
  int p2, c2 = tracked_client(l, &a, &p2);                   /* ended at both ends by the program */
  shutdown(c2, SHUT_WR);
  syscall(SYS_close, p2);
  settle();
  cg_cfg.leak_exitcode = 9;
  struct cg_leak_summary s;
  ck_assert_int_eq(cg_leak_report(0, &s), 0);                /* no leak: status kept */
  ck_assert_uint_eq(s.sockets, 0);
  ck_assert_uint_eq(s.held, 7);
  ck_assert_int_eq(count_in_log("event"), 0);                /* and nothing printed */
  cg_cfg.leaks = CG_LEAKS_ALL;
  ck_assert_int_eq(cg_leak_report(0, &s), 0);
  ck_assert_int_eq(count_in_log("\"event\":\"leak\""), 0);
  ck_assert_int_eq(count_in_log("\"event\":\"leak_summary\""), 1);
  ck_assert_int_eq(count_in_log("\"not_reported\":7,\"not_reported_as\":[\"connected=1\",\"socketpair=2\","
                                "\"socketpair_end=1\",\"listening=1\",\"connectionless=1\",\"finished=1\"]"), 1);
  ck_assert_int_ge(count_in_log("\"event\":\"open_at_exit\""), 1);
  cg_cfg.leak_exitcode = 0;
}
END_TEST

/* A socketpair costs no fstat when it is made: both ends' identities (and each one's knowledge
 * of the other's inode) are taken together when first needed, here by the 8 tracked sockets
 * the thread makes after it. An end closed after that is still a socketpair end. */
START_TEST(pair_identity_taken_together_later)
{
  int sv[2], sv2[2];
  ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  cg_leak_track_pair(sv, AF_UNIX, SOCK_STREAM, 0);
  ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv2), 0);
  cg_leak_track_pair(sv2, AF_UNIX, SOCK_STREAM, 0);
  struct cg_fd *a = cg_fd_peek(sv[0]), *b = cg_fd_peek(sv[1]), *c = cg_fd_peek(sv2[0]), *d = cg_fd_peek(sv2[1]);
  ck_assert(a->ino == 0 && b->ino == 0 && c->ino == 0 && d->ino == 0);
  int more[8];
  for (int i = 0; i < 8; i++) more[i] = tracked_socket(SOCK_DGRAM);
  struct stat sa, sb, sd;
  ck_assert_int_eq(fstat(sv[0], &sa), 0);
  ck_assert_int_eq(fstat(sv[1], &sb), 0);
  ck_assert_int_eq(fstat(sv2[1], &sd), 0);
  ck_assert_uint_eq(a->ino, sa.st_ino);
  ck_assert_uint_eq(b->ino, sb.st_ino);
  ck_assert_uint_eq(a->pair_ino, (uint32_t)sb.st_ino);
  ck_assert_uint_eq(b->pair_ino, (uint32_t)sa.st_ino);
  ck_assert_uint_eq(c->pair_ino, (uint32_t)sd.st_ino);
  for (int i = 0; i < 8; i++) { cg_close_fd(more[i]); syscall(SYS_close, more[i]); }
  cg_close_fd(sv2[1]);
  syscall(SYS_close, sv2[1]);
  cg_cfg.leaks = CG_LEAKS_ALL;
  struct cg_leak_summary s;
  ck_assert_int_eq(cg_leak_report(0, &s), 0);
  ck_assert_uint_eq(s.sockets, 0);
  ck_assert_int_eq(count_in_log("\"not_reported\":3,\"not_reported_as\":[\"socketpair=2\",\"socketpair_end=1\"]"), 1);
}
END_TEST

START_TEST(dead_sockets_are_leaks)
{
  struct sockaddr_in a;
  int l = listener(&a), p1, p2;
  tracked_client(l, &a, &p1);
  syscall(SYS_close, p1);                                    /* peer closed: CLOSE_WAIT */
  int c2 = tracked_client(l, &a, &p2);
  struct linger lg = { 1, 0 };
  setsockopt(p2, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  syscall(SYS_close, p2);                                    /* reset, error never read */
  int u = (int)syscall(SYS_socket, AF_UNIX, SOCK_STREAM, 0), ul = (int)syscall(SYS_socket, AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un ua = { .sun_family = AF_UNIX };
  snprintf(ua.sun_path + 1, sizeof ua.sun_path - 1, "cg-leak-unit-%d", (int)getpid());   /* abstract */
  socklen_t ual = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(ua.sun_path + 1));
  ck_assert_int_eq(bind(ul, (struct sockaddr *)&ua, ual), 0);
  ck_assert_int_eq(listen(ul, 1), 0);
  syscall(SYS_close, u);
  u = tracked_socket_of(AF_UNIX, SOCK_STREAM);
  ck_assert_int_eq(connect(u, (struct sockaddr *)&ua, ual), 0);
  int up = (int)syscall(SYS_accept4, ul, NULL, NULL, 0);
  syscall(SYS_close, up);                                    /* a unix peer that went away */
  tracked_socket(SOCK_STREAM);                               /* never connected */
  settle();
  cg_cfg.leak_exitcode = 9;
  struct cg_leak_summary s;
  ck_assert_int_eq(cg_leak_report(0, &s), 9);
  ck_assert_uint_eq(s.sockets, 4);
  ck_assert_uint_eq(s.held, 0);
  /* One call site for all four (this test's frames are left out of stacks): one record. */
  ck_assert_int_eq(count_in_log("\"event\":\"leak\",\"sockets\":4,"), 1);
  ck_assert_int_eq(count_in_log("\"CLOSE_WAIT\""), 1);
  ck_assert_int_eq(count_in_log("\"PEER_CLOSED\""), 1);
  ck_assert_int_eq(count_in_log("\"CLOSED\""), 1);
  ck_assert_int_eq(count_in_log("\"reason\":[\"peer_closed\",\"error\","), 1);
  ck_assert_int_eq(count_in_log("\"unconnected\"]"), 1);
  (void)c2;
  cg_cfg.leak_exitcode = 0;
}
END_TEST

START_TEST(a_group_that_grew_is_a_leak)
{
  /* CG_LEAK_MANY (32) healthy connections from one call site: reported, all of them. */
  struct sockaddr_in a;
  int l = listener(&a), p;
  for (int i = 0; i < 31; i++) tracked_client(l, &a, &p);
  struct cg_leak_summary s;
  cg_leak_report(0, &s);
  ck_assert_uint_eq(s.sockets, 0);
  ck_assert_uint_eq(s.held, 31);
  tracked_client(l, &a, &p);
  cg_leak_report(0, &s);
  ck_assert_uint_eq(s.sockets, 32);
  ck_assert_uint_eq(s.groups, 1);
  ck_assert_int_eq(count_in_log("\"reason\":[\"many_open\"]"), 1);
}
END_TEST

int main(void)
{
  Suite *su = suite_create("leak");
  TCase *tc = tcase_create("core");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, open_sockets_are_reported);
  tcase_add_test(tc, closed_through_a_seen_path_is_not_reported);
  tcase_add_test(tc, unseen_close_then_reused_by_a_file);
  tcase_add_test(tc, unseen_replacement_by_another_socket);
  tcase_add_test(tc, replaced_by_the_shim_keeps_tracking);
  tcase_add_test(tc, dups);
  tcase_add_test(tc, stale_entry_replaced_on_reuse);
  tcase_add_test(tc, exit_status);
  tcase_add_test(tc, child_does_not_report_the_parents);
  tcase_add_test(tc, forget_by_another_owner_is_ignored);
  tcase_add_test(tc, suppressed_by_module);
  tcase_add_test(tc, held_sockets_are_not_leaks);
  tcase_add_test(tc, pair_identity_taken_together_later);
  tcase_add_test(tc, dead_sockets_are_leaks);
  tcase_add_test(tc, a_group_that_grew_is_a_leak);
  suite_add_tcase(su, tc);
  TCase *ts = tcase_create("stats");
  tcase_add_checked_fixture(ts, setup_stats, teardown);
  tcase_add_test(ts, published_and_unpublished);
  tcase_add_test(ts, identical_stacks_are_published_once);
  tcase_add_test(ts, full_stack_table_publishes_without_stack);
  tcase_add_test(ts, fork_child_publishes_its_own_stacks);
  suite_add_tcase(su, ts);
  SRunner *sr = srunner_create(su);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
