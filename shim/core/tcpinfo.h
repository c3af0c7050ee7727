#ifndef CG_TCPINFO_H
#define CG_TCPINFO_H
/* What the leak report needs of TCP_INFO. */
struct cg_tcp_info {
  unsigned state;             /* tcpi_state: TCP_ESTABLISHED ... */
  unsigned long long segs;    /* segments sent + received; 0 for a socket that never exchanged one
                                 (never connected, or a failed connect: the kernel resets them) */
  int have_segs;              /* the kernel gave the counters */
};
/* One getsockopt. 0, or -1 (not TCP, closed). */
int cg_tcp_info(int fd, struct cg_tcp_info *out);
#endif
