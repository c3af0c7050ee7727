#include "sockdiag.h"
#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#define CLOSE_WAIT 8   /* TCP_CLOSE_WAIT: netinet/tcp.h and linux/tcp.h disagree on names */

/* 1 same namespace, 0 another, -1 unknown (no permission to look: then we just ask). */
static int same_netns(pid_t pid)
{
  char path[64];
  struct stat a, b;
  snprintf(path, sizeof path, "/proc/%d/ns/net", (int)pid);
  if (stat("/proc/self/ns/net", &a) != 0 || stat(path, &b) != 0) return -1;
  return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

static int add(struct cw_tab *t, uint64_t ino, uint32_t ms)
{
  if (t->n == t->cap) {
    int cap = t->cap ? t->cap * 2 : 64;
    struct cw_ent *v = realloc(t->v, (size_t)cap * sizeof *v);
    if (!v) return -1;
    t->v = v;
    t->cap = cap;
  }
  t->v[t->n].ino = ino;
  t->v[t->n].since_ms = ms;
  t->n++;
  return 0;
}

/* One dump of family's CLOSE_WAIT sockets (the kernel filters by state). 0, or -errno. */
static int dump(int nl, int family, struct cw_tab *t)
{
  struct { struct nlmsghdr h; struct inet_diag_req_v2 r; } req;
  memset(&req, 0, sizeof req);
  req.h.nlmsg_len = sizeof req;
  req.h.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  req.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  req.r.sdiag_family = (unsigned char)family;
  req.r.sdiag_protocol = IPPROTO_TCP;
  req.r.idiag_states = 1u << CLOSE_WAIT;
  req.r.idiag_ext = 1u << (INET_DIAG_INFO - 1);
  struct sockaddr_nl k = { .nl_family = AF_NETLINK };
  if (sendto(nl, &req, sizeof req, 0, (struct sockaddr *)&k, sizeof k) < 0) return -errno;
  /* Aligned for the headers cast into it. */
  static long buf[32768 / sizeof(long)];
  for (;;) {
    ssize_t n = recv(nl, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -errno;
    if (n == 0) return -EPROTO;
    int left = (int)n;   /* signed: NLMSG_NEXT may take it below zero on a ragged tail */
    for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, left); h = NLMSG_NEXT(h, left)) {
      if (h->nlmsg_type == NLMSG_DONE) {
        /* An interrupted dump (the table changed under it) ends with an error here. */
        if (h->nlmsg_len >= NLMSG_LENGTH(sizeof(int))) {
          int err = *(const int *)NLMSG_DATA(h);
          if (err < 0) return err;
        }
        return 0;
      }
      if (h->nlmsg_type == NLMSG_ERROR) {
        const struct nlmsgerr *e = NLMSG_DATA(h);
        return h->nlmsg_len >= NLMSG_LENGTH(sizeof *e) && e->error ? e->error : -EPROTO;
      }
      if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY || h->nlmsg_len < NLMSG_LENGTH(sizeof(struct inet_diag_msg)))
        continue;
      const struct inet_diag_msg *m = NLMSG_DATA(h);
      if (m->idiag_state != CLOSE_WAIT || !m->idiag_inode) continue;
      int len = (int)(h->nlmsg_len - NLMSG_LENGTH(sizeof *m));
      for (const struct rtattr *a = (const struct rtattr *)(m + 1); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
        if (a->rta_type != INET_DIAG_INFO) continue;
        struct tcp_info ti;
        size_t have = RTA_PAYLOAD(a);
        /* Older kernels send a shorter struct; the field is in its first, oldest part. */
        if (have < offsetof(struct tcp_info, tcpi_last_ack_recv) + sizeof ti.tcpi_last_ack_recv) break;
        memset(&ti, 0, sizeof ti);
        memcpy(&ti, RTA_DATA(a), have < sizeof ti ? have : sizeof ti);
        if (add(t, m->idiag_inode, ti.tcpi_last_ack_recv)) return -ENOMEM;
        break;
      }
    }
  }
}

int sockdiag_close_wait(pid_t pid, struct cw_tab *t, char *why, size_t cap)
{
  memset(t, 0, sizeof *t);
  if (same_netns(pid) == 0) {
    snprintf(why, cap, "the process is in another network namespace");
    return -1;
  }
  int nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (nl < 0) {
    snprintf(why, cap, "sock_diag unavailable: %s", strerror(errno));
    return -1;
  }
  /* A kernel that never answers must not hang `connguard leaks` or `top`. */
  struct timeval tv = { 5, 0 };
  setsockopt(nl, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  int r = dump(nl, AF_INET, t);
  /* A kernel without IPv6 has no tcp6 sockets to miss: its refusal is not a failure. A socket
   * missing from the answer for any other reason falls back on its age, one by one. */
  if (r == 0) dump(nl, AF_INET6, t);
  close(nl);
  if (r) {
    snprintf(why, cap, "sock_diag unavailable: %s", strerror(-r));
    cw_free(t);
    return -1;
  }
  return 0;
}

int cw_lookup(const struct cw_tab *t, uint64_t ino, uint32_t *ms)
{
  for (int i = 0; i < t->n; i++)
    if (t->v[i].ino == ino) { *ms = t->v[i].since_ms; return 0; }
  return -1;
}

void cw_free(struct cw_tab *t)
{
  free(t->v);
  memset(t, 0, sizeof *t);
}
