/* TCP_INFO with the kernel's own struct (linux/tcp.h): glibc's struct tcp_info stops before
 * the segment counters, and the two headers cannot be included together. */
#include "tcpinfo.h"
#include "rawsys.h"
#include <stddef.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

int cg_tcp_info(int fd, struct cg_tcp_info *out)
{
  struct tcp_info ti;
  socklen_t l = sizeof ti;
  memset(&ti, 0, sizeof ti);
  memset(out, 0, sizeof *out);
  if (cg_syscall(SYS_getsockopt, fd, IPPROTO_TCP, TCP_INFO, &ti, &l) != 0) return -1;
  out->state = ti.tcpi_state;
  /* Older kernels give a shorter struct: counters they do not fill read as 0. */
  out->segs = l >= offsetof(struct tcp_info, tcpi_segs_in) + sizeof ti.tcpi_segs_in
                  ? (unsigned long long)ti.tcpi_segs_out + ti.tcpi_segs_in : 0;
  out->have_segs = l >= offsetof(struct tcp_info, tcpi_segs_in) + sizeof ti.tcpi_segs_in;
  return 0;
}
