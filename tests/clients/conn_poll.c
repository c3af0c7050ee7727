/* Non-blocking connect + poll() + getsockopt(SO_ERROR): curl, libpq, python with a timeout.
 * The failure is decided on poll's revents first, as curl does. */
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
    errno = EBADMSG;
    int r = poll(p, ticker >= 0 ? 2 : 1, (int)left);
    if (r < 0) { if (errno == EINTR) continue; finish(fd, errno, "poll"); }
    if (p[1].revents) ticker_drain();
    if (p[0].revents) {
      int rev = p[0].revents;
      int err = so_error(fd);
      if (!note[0]) note_revents("revents", rev);
      finish(fd, err, "getsockopt");
    }
    if (r == 0 && now_ms() >= end) timed_out(fd, "poll");
  }
}
