/* Blocking connect(), as wget, python without a timeout and openssl s_client do it. */
#include "client.h"

int main(int argc, char **argv)
{
  struct sockaddr_storage ss;
  socklen_t len;
  int fam;
  parse_args(argc, argv);
  resolve(&ss, &len, &fam);
  int fd = make_socket(fam, 0);
  alarm_start();
  errno = EBADMSG;
  int r = nested_connect(fd, (struct sockaddr *)&ss, len, O.depth);
  if (r == 0) {
    if (O.check_errno) note_errno();
    finish(fd, 0, NULL);
  }
  int err = errno;
  if (O.then_ms > 0 && (err == EINPROGRESS || err == EINTR)) {
    /* What the kernel promises with these: the connect goes on. A program may wait for it. */
    struct pollfd p = { fd, POLLOUT, 0 };
    int n = poll(&p, 1, O.then_ms);
    int e = -1;
    socklen_t l = sizeof e;
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &l);
    printf("then poll=%d revents=%#x so_error=%s\n", n, n > 0 ? p.revents : 0, e ? ename(e) : "0");
    if (O.again) {
      /* A second connect() on a connect in progress: the kernel's EALREADY (after SO_SNDTIMEO). */
      int r2 = connect(fd, (struct sockaddr *)&ss, len);
      printf("again=%s\n", r2 == 0 ? "0" : ename(errno));
    }
  }
  finish(fd, err, "connect");
}
