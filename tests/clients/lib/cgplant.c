/* A planted leak for programs we cannot change (git, socat): preloaded after the shim, its
 * constructor connects to 127.0.0.1:$CG_PLANT_PORT and never closes the socket. The test's
 * server closes its end at once, so the program exits holding a CLOSE_WAIT socket: the one
 * leak the report must name. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>

__attribute__((constructor)) static void plant(void)
{
  const char *p = getenv("CG_PLANT_PORT");
  if (!p) return;
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(p)) };
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd >= 0) (void)connect(fd, (struct sockaddr *)&a, sizeof a);
}
