/* Non-blocking connect + select() + SO_ERROR: nc (openbsd) and older programs. */
#include "client.h"
#include <sys/select.h>

int main(int argc, char **argv)
{
  struct sockaddr_storage ss;
  socklen_t len;
  int fam;
  parse_args(argc, argv);
  resolve(&ss, &len, &fam);
  ticker_start();
  int fd = start_nonblocking(&ss, len, fam);
  long end = now_ms() + O.timeout_ms;
  for (;;) {
    fd_set w, r;
    FD_ZERO(&w);
    FD_ZERO(&r);
    FD_SET(fd, &w);
    if (ticker >= 0) FD_SET(ticker, &r);
    long left = end - now_ms();
    if (left < 0) left = 0;
    struct timeval tv = { left / 1000, (left % 1000) * 1000 };
    int n = select((fd > ticker ? fd : ticker) + 1, &r, &w, NULL, &tv);
    if (n < 0) { if (errno == EINTR) continue; finish(fd, errno, "select"); }
    if (ticker >= 0 && FD_ISSET(ticker, &r)) ticker_drain();
    if (FD_ISSET(fd, &w)) finish(fd, so_error(fd), "getsockopt");
    if (n == 0 && now_ms() >= end) timed_out(fd, "select");
  }
}
