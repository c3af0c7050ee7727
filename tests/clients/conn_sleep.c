/* Non-blocking connect checked without any multiplexer: sleep, then getsockopt(SO_ERROR),
 * then getpeername() to tell "connected" from "still in progress". The failure reaches the
 * shim through getsockopt only, so the retries run inside that call. */
#include "client.h"

int main(int argc, char **argv)
{
  struct sockaddr_storage ss;
  socklen_t len;
  int fam;
  parse_args(argc, argv);
  resolve(&ss, &len, &fam);
  int fd = start_nonblocking(&ss, len, fam);
  long end = now_ms() + O.timeout_ms;
  while (now_ms() < end) {
    usleep(10000);
    int err = so_error(fd);
    if (err) finish(fd, err, "getsockopt");
    struct sockaddr_storage peer;
    socklen_t pl = sizeof peer;
    if (getpeername(fd, (struct sockaddr *)&peer, &pl) == 0) finish(fd, 0, NULL);
  }
  timed_out(fd, "sleep");
}
