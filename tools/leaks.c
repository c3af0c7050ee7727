/* connguard leaks PID, and the leak-candidate count that stat/top/metrics show. The only file
 * that reads struct cg_leak_slot (shim/core/stats.h). */
#include "leaks.h"
#include "cg_tool.h"
#include "config.h"
#include "sockdiag.h"
#include "sym.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_AGE_NS 30000000000LL
#define TCP_LISTEN 10
#define TCP_CLOSE_WAIT 8

const char *tcp_state_name(unsigned st)
{
  static const char *const names[] = { "-", "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1",
    "FIN_WAIT2", "TIME_WAIT", "CLOSE", "CLOSE_WAIT", "LAST_ACK", "LISTEN", "CLOSING", "NEW_SYN_RECV" };
  return st < sizeof names / sizeof names[0] ? names[st] : "?";
}

/* ---------- the shared table ---------- */

struct slot_copy { int n; struct leak *v; };

/* The slot's peer, written either as text ("127.0.0.1:5432") or as a raw struct sockaddr:
 * text starts with a printable character, a sockaddr with its family's low byte. */
static void peer_text(const unsigned char *raw, size_t n, char *out, size_t cap)
{
  char a[INET6_ADDRSTRLEN];
  out[0] = 0;
  if (n < 2) return;
  if (raw[0] >= 0x20) {
    size_t k = 0;
    for (; k < n && k + 1 < cap && raw[k] >= 0x20 && raw[k] < 0x7f; k++) out[k] = (char)raw[k];
    out[k] = 0;
    return;
  }
  unsigned fam = raw[0] | (unsigned)raw[1] << 8;
  if (fam == AF_INET && n >= sizeof(struct sockaddr_in)) {
    struct sockaddr_in in;
    memcpy(&in, raw, sizeof in);
    if (inet_ntop(AF_INET, &in.sin_addr, a, sizeof a)) snprintf(out, cap, "%s:%u", a, ntohs(in.sin_port));
  } else if (fam == AF_INET6 && n >= sizeof(struct sockaddr_in6)) {
    struct sockaddr_in6 in6;
    memcpy(&in6, raw, sizeof in6);
    if (inet_ntop(AF_INET6, &in6.sin6_addr, a, sizeof a)) snprintf(out, cap, "[%s]:%u", a, ntohs(in6.sin6_port));
  } else if (fam == AF_UNIX) {
    const unsigned char *p = raw + 2;
    size_t len = n - 2, k = 0;
    int abstract = len && p[0] == 0;
    if (abstract) { p++; len--; }
    size_t o = (size_t)snprintf(out, cap, "unix:%s", abstract ? "@" : "");
    for (; k < len && p[k] && o + 1 < cap; k++) out[o++] = p[k] >= 0x20 && p[k] < 0x7f ? (char)p[k] : '?';
    out[o] = 0;
    if (o == 5) snprintf(out, cap, "unix:(unnamed)");
  }
}

/* Copies a string of the segment (another process's memory: bounded, printable only). */
static void seg_str(const volatile char *src, size_t cap, char *out)
{
  size_t k = 0;
  for (; k < cap && src[k]; k++) out[k] = src[k] >= 0x20 && src[k] != 0x7f ? src[k] : '?';
  out[k] = 0;
}

/* A published Python stack as `File "f", line N, in fn` lines (written once before the slot
 * that names it, like stacks[]). */
static void py_text(const struct cg_stats *m, const volatile struct cg_leak_pystack *ps, struct leak *l)
{
  uint32_t nf = ps->nframes;
  size_t o = 0;
  if (nf > CG_STATS_PYFRAMES) nf = CG_STATS_PYFRAMES;
  for (uint32_t i = 0; i < nf; i++) {
    unsigned x = ps->site[i];
    if (x < 1 || x > CG_STATS_PYSITES) break;
    const volatile struct cg_leak_pysite *st = &m->pysites[x - 1];
    char file[sizeof st->file + 1], func[sizeof st->func + 1];
    seg_str(st->file, sizeof st->file, file);
    seg_str(st->func, sizeof st->func, func);
    int w = snprintf(l->py + o, sizeof l->py - o, "%sFile \"%s\", line %d, in %s", i ? "\n" : "", file, (int)st->line, func);
    if (w < 0 || (size_t)w >= sizeof l->py - o) { l->py[o] = 0; break; }
    o += (size_t)w;
    l->npy++;
  }
}

/* Seqlock read of every slot: a slot being rewritten is retried a few times, then skipped. */
static void read_slots(const struct cg_stats *m, void *arg)
{
  struct slot_copy *c = arg;
  for (int i = 0; i < CG_LEAK_SLOTS; i++) {
    const struct cg_leak_slot *sl = &m->leaks[i];
    for (int tries = 0; tries < 100; tries++) {
      unsigned s1 = atomic_load_explicit(&sl->seq, memory_order_acquire);
      if (s1 & 1) { struct timespec ts = { 0, 1000 }; nanosleep(&ts, NULL); continue; }
      struct leak l;
      memset(&l, 0, sizeof l);
      const volatile struct cg_leak_slot *v = sl;
      l.fd = v->fd;
      l.kind = v->kind;
      l.created_ns = v->created_ns;
#if CG_STATS_VERSION >= 2
      l.ino = atomic_load_explicit(&sl->ino, memory_order_relaxed);
      l.via = v->via;
#else
      l.ino = v->ino;
#endif
      unsigned char raw[sizeof v->peer];
      for (size_t k = 0; k < sizeof raw; k++) raw[k] = (unsigned char)v->peer[k];
      uint32_t stack = v->stack;
      uint32_t pystack = v->pystack;
      atomic_thread_fence(memory_order_acquire);
      if (atomic_load_explicit(&sl->seq, memory_order_relaxed) != s1) continue;
      peer_text(raw, sizeof raw, l.peer, sizeof l.peer);
      /* A free slot (ino 0), one being claimed (all ones), or a closed socket (fd -1). */
      if (l.fd < 0 || l.ino == 0 || l.ino == UINT64_MAX) break;
      /* Written before the slot that names it and never rewritten: the consistent slot copy
       * above is all the synchronisation it needs. */
      if (stack == CG_LEAK_STACK_FULL) {
        l.stack_full = 1;
      } else if (stack >= 1 && stack <= CG_STATS_STACKS) {
        const volatile struct cg_leak_stack *st = &m->stacks[stack - 1];
        uint32_t nf = st->nframes;
        l.nframes = nf > CG_STATS_STACK ? CG_STATS_STACK : (int)nf;
        for (int k = 0; k < l.nframes; k++) l.pcs[k] = st->pcs[k];
      }
      if (pystack == CG_LEAK_STACK_FULL) l.py_full = 1;
      else if (pystack >= 1 && pystack <= CG_STATS_PYSTACKS) py_text(m, &m->pystacks[pystack - 1], &l);
      c->v[c->n++] = l;
      break;
    }
  }
}

/* ---------- /proc joins ---------- */

struct tcp_ent { uint64_t ino; unsigned state; char local[80], peer[80]; };
struct tcp_tab { int n, cap; struct tcp_ent *v; };

static void fmt_addr(const char *hex, int v6, char *out, size_t cap)
{
  const char *colon = strchr(hex, ':');
  if (!colon) { snprintf(out, cap, "?"); return; }
  unsigned port = (unsigned)strtoul(colon + 1, NULL, 16);
  char txt[INET6_ADDRSTRLEN];
  /* The kernel prints the address as 32-bit words in host order. */
  if (!v6) {
    uint32_t w = (uint32_t)strtoul(hex, NULL, 16);
    struct in_addr a;
    a.s_addr = w;
    inet_ntop(AF_INET, &a, txt, sizeof txt);
    snprintf(out, cap, "%s:%u", txt, port);
    return;
  }
  struct in6_addr a;
  for (int i = 0; i < 4; i++) {
    char word[9];
    memcpy(word, hex + 8 * i, 8);
    word[8] = 0;
    uint32_t w = (uint32_t)strtoul(word, NULL, 16);
    memcpy(&a.s6_addr[4 * i], &w, 4);
  }
  inet_ntop(AF_INET6, &a, txt, sizeof txt);
  snprintf(out, cap, "[%s]:%u", txt, port);
}

static void load_tcp(pid_t pid, const char *file, int v6, struct tcp_tab *t)
{
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/net/%s", (int)pid, file);
  FILE *f = fopen(path, "re");
  if (!f) return;
  char *line = NULL;
  size_t cap = 0;
  int first = 1;
  while (getline(&line, &cap, f) > 0) {
    if (first) { first = 0; continue; }
    char loc[80], rem[80];
    unsigned st;
    unsigned long long ino;
    /* sl local rem st tx:rx tr:when retrnsmt uid timeout inode */
    if (sscanf(line, " %*s %79s %79s %x %*s %*s %*s %*s %*s %llu", loc, rem, &st, &ino) != 4 || !ino) continue;
    if ((!v6 && strlen(loc) != 13) || (v6 && strlen(loc) != 37)) continue;
    if (t->n == t->cap) {
      t->cap = t->cap ? t->cap * 2 : 64;
      struct tcp_ent *nv = realloc(t->v, (size_t)t->cap * sizeof *nv);
      if (!nv) break;
      t->v = nv;
    }
    struct tcp_ent *e = &t->v[t->n++];
    e->ino = ino;
    e->state = st;
    fmt_addr(loc, v6, e->local, sizeof e->local);
    fmt_addr(rem, v6, e->peer, sizeof e->peer);
  }
  free(line);
  fclose(f);
}

/* Inode of the socket open at fd, 0 if fd is closed or no socket. */
static uint64_t fd_socket_ino(pid_t pid, int fd)
{
  char path[64], link[64];
  snprintf(path, sizeof path, "/proc/%d/fd/%d", (int)pid, fd);
  ssize_t n = readlink(path, link, sizeof link - 1);
  if (n <= 0) return 0;
  link[n] = 0;
  unsigned long long ino;
  if (sscanf(link, "socket:[%llu]", &ino) != 1) return 0;
  return ino;
}

#if CG_STATS_VERSION >= 2
struct leak_hdr { uint32_t mode, age_ms; };
static void read_leak_hdr(const struct cg_stats *m, void *arg)
{
  struct leak_hdr *h = arg;
  h->mode = m->leak_mode;
  h->age_ms = m->leak_age_ms;
}
#endif

int leaks_tracking(struct seg *s)
{
#if CG_STATS_VERSION >= 2
  struct leak_hdr h;
  if (seg_guarded(s, read_leak_hdr, &h) == 0) return h.mode != 0;
#endif
  (void)s;
  return -1;
}

int64_t leaks_default_age_ns(struct seg *s)
{
#if CG_STATS_VERSION >= 2
  struct leak_hdr h;
  if (seg_guarded(s, read_leak_hdr, &h) == 0 && h.age_ms) return (int64_t)h.age_ms * 1000000;
#endif
  /* The process's own setting, from the environment it started with. */
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/environ", (int)s->pid);
  FILE *f = fopen(path, "re");
  if (!f) return DEFAULT_AGE_NS;
  char *item = NULL;
  size_t cap = 0;
  int64_t age = DEFAULT_AGE_NS;
  while (getdelim(&item, &cap, 0, f) > 0) {
    unsigned ms;
    if (!strncmp(item, "CONNGUARD_LEAK_AGE_MS=", 22) && cg_parse_ms(item + 22, &ms) == 0)
      age = (int64_t)ms * 1000000;
  }
  free(item);
  fclose(f);
  return age;
}

/* The kernel's CLOSE_WAIT sockets, asked once per collection and only when one of ours is in
 * CLOSE_WAIT (stat, top and metrics count candidates through here too). */
struct cw_state { int asked; struct cw_tab tab; char unknown[96]; };

/* Time in CLOSE_WAIT, and whether that alone makes l a candidate. */
static void close_wait(struct leak *l, pid_t pid, struct cw_state *cw, int64_t age_ns)
{
  static const char peer[] = "the peer closed the connection, this side never did";
  static char unknown[96];
  char lim[32], t[32];
  if (!cw->asked) {
    cw->asked = 1;
    if (sockdiag_close_wait(pid, &cw->tab, cw->unknown, sizeof cw->unknown)) cw->tab.n = 0;
  }
  uint32_t ms;
  fmt_duration(lim, sizeof lim, age_ns);
  if (!cw->unknown[0] && cw_lookup(&cw->tab, l->ino, &ms) == 0) {
    l->cw_exact = 1;
    l->cw_ns = (int64_t)ms * 1000000;
    /* Nothing is in CLOSE_WAIT for longer than it exists (a coarse clock, a late FIN). */
    if (l->created_ns && l->cw_ns > l->age_ns) l->cw_ns = l->age_ns;
    fmt_duration(t, sizeof t, l->cw_ns);
    if (l->cw_ns > age_ns) {
      l->candidate = 1;
      snprintf(l->why, sizeof l->why, "CLOSE_WAIT for %s (longer than %s): %s", t, lim, peer);
    } else {
      snprintf(l->why, sizeof l->why, "CLOSE_WAIT for %s, not longer than %s yet: %s", t, lim, peer);
    }
    return;
  }
  /* The kernel could not tell: the age bounds the time in CLOSE_WAIT from above, which makes
   * this the "open longer" rule, said as such. */
  snprintf(unknown, sizeof unknown, "%s", cw->unknown[0] ? cw->unknown : "not in sock_diag's answer");
  l->cw_exact = 0;
  l->cw_unknown = unknown;
  l->cw_ns = l->age_ns;
  fmt_duration(t, sizeof t, l->age_ns);
  if (l->created_ns && l->age_ns > age_ns) {
    l->candidate = 1;
    snprintf(l->why, sizeof l->why, "CLOSE_WAIT for at most %s, its age (longer than %s; time since the peer's "
             "FIN unknown: %s): %s", t, lim, unknown, peer);
  } else {
    snprintf(l->why, sizeof l->why, "CLOSE_WAIT for at most %s, its age (time since the peer's FIN unknown: %s): %s",
             l->created_ns ? t : "?", unknown, peer);
  }
}

int leaks_collect(struct seg *s, int64_t age_ns, struct leak **out, char *msg, size_t cap)
{
  *out = NULL;
  struct slot_copy c = { 0, calloc(CG_LEAK_SLOTS, sizeof(struct leak)) };
  if (!c.v) { snprintf(msg, cap, "out of memory"); return -1; }
  if (seg_guarded(s, read_slots, &c)) {
    free(c.v);
    snprintf(msg, cap, "%s was truncated while being read", s->path);
    return -1;
  }
  if (s->state != SEG_LIVE) {
    /* Sockets of a process that is gone cannot be joined with anything. */
    *out = c.v;
    return 0;
  }
  struct tcp_tab t = { 0, 0, NULL };
  load_tcp(s->pid, "tcp", 0, &t);
  load_tcp(s->pid, "tcp6", 1, &t);
  int64_t now = now_realtime_ns();
  struct cw_state cw = { 0, { 0, 0, NULL }, "" };
  int n = 0;
  for (int i = 0; i < c.n; i++) {
    struct leak l = c.v[i];
    uint64_t ino = fd_socket_ino(s->pid, l.fd);
    /* Closed behind the shim's back, or the number now holds another socket: not ours. */
    if (!ino || (l.ino && l.ino != CG_LEAK_INO_UNKNOWN && ino != l.ino)) continue;
    l.ino = ino;
    for (int k = 0; k < t.n; k++)
      if (t.v[k].ino == ino) {
        l.state = t.v[k].state;
        snprintf(l.local, sizeof l.local, "%s", t.v[k].local);
        if (t.v[k].peer[0] && strcmp(t.v[k].peer, "0.0.0.0:0") && strcmp(t.v[k].peer, "[::]:0"))
          snprintf(l.peer, sizeof l.peer, "%s", t.v[k].peer);
        break;
      }
    l.age_ns = l.created_ns ? now - l.created_ns : 0;
    if (l.state == TCP_CLOSE_WAIT) close_wait(&l, s->pid, &cw, age_ns);
    if (!l.candidate && l.state != TCP_LISTEN && l.created_ns && l.age_ns >= age_ns) {
      l.candidate = 1;
      /* In CLOSE_WAIT for less than the threshold: said after the reason it is listed. */
      char more[sizeof l.why];
      snprintf(more, sizeof more, "%s", l.why);
      snprintf(l.why, sizeof l.why, "open longer than the age threshold%s%.440s", more[0] ? "; " : "", more);
    }
    c.v[n++] = l;
  }
  free(t.v);
  cw_free(&cw.tab);
  *out = c.v;
  return n;
}

int leaks_count(struct seg *s, int64_t age_ns)
{
  struct leak *v;
  char msg[256];
  int n = leaks_collect(s, age_ns, &v, msg, sizeof msg);
  if (n < 0) return -1;
  int k = 0;
  for (int i = 0; i < n; i++) k += v[i].candidate;
  free(v);
  return k;
}

/* ---------- connguard leaks PID ---------- */

static void print_stack(const struct leak *l, const struct maps *mp, int resolve)
{
  if (l->stack_full) {
    printf("    (not published: the segment's table of %d stacks is full; the exit report has it)\n", CG_STATS_STACKS);
    return;
  }
  if (l->py_full) printf("    (Python frames not published: the segment's tables of Python stacks are full)\n");
  for (const char *p = l->npy ? l->py : NULL; p && *p;) {
    const char *e = strchr(p, '\n');
    printf("    %.*s\n", (int)(e ? e - p : (long)strlen(p)), p);
    p = e ? e + 1 : NULL;
  }
  if (!l->nframes) { printf("    (no creation stack: CONNGUARD_STACK_DEPTH=0?)\n"); return; }
  for (int i = 0; i < l->nframes; i++) {
    const char *mod;
    uint64_t off;
    printf("    #%d 0x%llx", i, (unsigned long long)l->pcs[i]);
    if (maps_lookup(mp, l->pcs[i], &mod, &off) != 0) { printf(" in ?? (unmapped)\n"); continue; }
    struct sym s;
    if (resolve && sym_lookup(mod, off, &s) == 0) {
      printf(" in %s", s.func[0] ? s.func : "??");
      if (s.file[0] && s.line) printf(" %s:%u", s.file, s.line);
      else if (s.file[0]) printf(" %s", s.file);
    } else {
      printf(" in ??");
    }
    printf(" (%s+0x%llx)\n", mod, (unsigned long long)off);
  }
}

static const char *kind_name(uint32_t kind)
{
  unsigned fam = kind >> 16, type = kind & 0xffff;
  if (fam == AF_INET || fam == AF_INET6) return type == SOCK_DGRAM ? "udp" : "tcp";
  if (fam == AF_UNIX) return "unix";
  return "socket";
}

/* One group: same verdict, same way obtained, same native and Python creation stacks. */
static int same_group(const struct leak *a, const struct leak *b)
{
  if (a->candidate != b->candidate || a->via != b->via || a->stack_full != b->stack_full ||
      a->nframes != b->nframes || a->npy != b->npy || a->py_full != b->py_full)
    return 0;
  for (int k = 0; k < a->nframes; k++)
    if (a->pcs[k] != b->pcs[k]) return 0;
  return !a->npy || !strcmp(a->py, b->py);
}

/* "LEAK? fd 4: tcp CLOSE_WAIT 127.0.0.1:5 -> 127.0.0.1:6, open 3.0s (socket:[123])" and why;
 * in a group of several, indented under the group's line instead. */
static void print_socket(const struct leak *l, int in_group)
{
  char ab[32];
  fmt_duration(ab, sizeof ab, l->age_ns);
  if (in_group) printf("  fd %d: %s %s", l->fd, kind_name(l->kind), tcp_state_name(l->state));
  else printf("\n%s fd %d: %s %s", l->candidate ? "LEAK?" : "ok   ", l->fd, kind_name(l->kind), tcp_state_name(l->state));
  if (l->local[0]) printf(" %s", l->local);
  printf(" -> %s, open %s", l->peer[0] ? l->peer : "(no peer)", l->created_ns ? ab : "(age unknown)");
  printf(" (socket:[%llu])\n", (unsigned long long)l->ino);
  if (l->why[0]) printf("%s  %s\n", in_group ? "  " : "", l->why);
}

int cmd_leaks(int argc, char **argv)
{
  static const struct option lo[] = {
    { "age", required_argument, 0, 'a' }, { "all", no_argument, 0, 'A' },
    { "no-symbols", no_argument, 0, 'S' }, { "fail", no_argument, 0, 'F' }, { "help", no_argument, 0, 'h' },
    { 0, 0, 0, 0 },
  };
  int64_t age = -1;
  int all = 0, resolve = 1, fail = 0, c;
  optind = 1;
  opterr = 0;
  while ((c = getopt_long(argc, argv, ":ha:", lo, NULL)) != -1) {
    switch (c) {
    case 'a': {
      unsigned ms;
      if (cg_parse_ms(optarg, &ms)) return usage_error("leaks", "--age '%s': expected a duration (N, Nms, Ns)", optarg);
      age = (int64_t)ms * 1000000;
      break;
    }
    case 'A': all = 1; break;
    case 'S': resolve = 0; break;
    case 'F': fail = 1; break;
    case 'h': puts("usage: connguard leaks [--age DURATION] [--all] [--no-symbols] [--fail] PID"); return EX_OK_;
    case ':': return usage_error("leaks", "option %s needs a value", argv[optind - 1]);
    default: return usage_error("leaks", "unknown option '%s'", argv[optind - 1]);
    }
  }
  if (optind != argc - 1) return usage_error("leaks", "expected exactly one PID");
  pid_t pid;
  if (parse_pid(argv[optind], &pid)) return usage_error("leaks", "'%s' is not a process id", argv[optind]);
  struct seg s;
  char msg[512];
  if (seg_open(pid, &s, msg, sizeof msg)) { errorf("%s", msg); return EX_FAIL; }
  if (s.state != SEG_LIVE) {
    errorf("pid %d: %s: its sockets cannot be inspected any more", (int)pid, seg_state_name(s.state));
    seg_close(&s);
    return EX_STALE;
  }
  if (age < 0) age = leaks_default_age_ns(&s);
  if (leaks_tracking(&s) == 0)
    warnf("pid %d tracks no sockets (CONNGUARD_LEAKS=off): nothing to show", (int)pid);
  struct leak *v;
  int n = leaks_collect(&s, age, &v, msg, sizeof msg);
  if (n < 0) { errorf("%s", msg); seg_close(&s); return EX_FAIL; }
  int cand = 0;
  for (int i = 0; i < n; i++) cand += v[i].candidate;
  char agebuf[32];
  fmt_duration(agebuf, sizeof agebuf, age);
  printf("pid %d (%s): %d tracked socket%s open, %d leak candidate%s (CLOSE_WAIT or open longer than %s)\n",
         (int)pid, s.comm[0] ? s.comm : s.snap.exe, n, n == 1 ? "" : "s", cand, cand == 1 ? "" : "s", agebuf);
  const char *unknown = NULL;
  int nunknown = 0;
  for (int i = 0; i < n; i++)
    if (v[i].state == TCP_CLOSE_WAIT && !v[i].cw_exact) { unknown = v[i].cw_unknown; nunknown++; }
  if (unknown)
    printf("note: time in CLOSE_WAIT unknown for %d socket%s (%s): the socket's age is used instead\n",
           nunknown, nunknown == 1 ? "" : "s", unknown);
  struct maps *mp = maps_load(pid);
  if (resolve && !sym_available()) resolve = 0;
  /* Grouped by creation stack, as the exit report groups them: the stack is printed once per
   * group, each socket on its own lines. Groups in order of their first socket. */
  char *done = calloc((size_t)n + 1, 1);
  for (int i = 0; done && i < n; i++) {
    const struct leak *l = &v[i];
    if (done[i] || (!l->candidate && !all)) continue;
    int count = 0;
    for (int j = i; j < n; j++)
      if (!done[j] && same_group(l, &v[j])) count++;
    if (count > 1) printf("\n%s %d sockets from one creation stack:\n", l->candidate ? "LEAK?" : "ok   ", count);
    for (int j = i; j < n; j++) {
      if (done[j] || !same_group(l, &v[j])) continue;
      done[j] = 1;
      print_socket(&v[j], count > 1);
    }
    printf("  created at:\n");
    print_stack(l, mp, resolve);
  }
  free(done);
  maps_free(mp);
  sym_shutdown();
  free(v);
  seg_close(&s);
  if (stdout_failed()) return EX_FAIL;
  return fail && cand ? EX_LEAKS : EX_OK_;
}
