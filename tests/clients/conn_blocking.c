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
  finish(fd, errno, "connect");
}
