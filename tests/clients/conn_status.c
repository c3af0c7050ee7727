/* hiredis style: non-blocking connect, poll, then connect() again on the same fd as a status
 * check: 0 or EISCONN = connected, EALREADY/EINPROGRESS = not yet, anything else = the error. */
#include "client.h"

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
    struct pollfd p[2] = { { fd, POLLOUT, 0 }, { ticker, POLLIN, 0 } };
    long left = end - now_ms();
    if (left < 0) left = 0;
    int r = poll(p, ticker >= 0 ? 2 : 1, (int)left);
    if (r < 0) { if (errno == EINTR) continue; finish(fd, errno, "poll"); }
    if (p[1].revents) ticker_drain();
    if (p[0].revents) {
      errno = EBADMSG;
      int c = connect(fd, (struct sockaddr *)&ss, len);
      if (c == 0 || errno == EISCONN) finish(fd, 0, NULL);
      if (errno != EALREADY && errno != EINPROGRESS) finish(fd, errno, "connect2");
    }
    if (r == 0 && now_ms() >= end) timed_out(fd, "poll");
  }
}
