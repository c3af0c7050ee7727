/* A library whose constructor connects: linked (DT_NEEDED) into rb_ctor, its constructor runs
 * before the preloaded shim's own. The port comes from CG_CTOR_PORT. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

char cg_ctor_result[128] = "not run";

__attribute__((constructor)) static void connect_early(void)
{
  const char *p = getenv("CG_CTOR_PORT");
  if (!p) return;
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(p)) };
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
    char buf[32] = "";
    ssize_t n = read(fd, buf, sizeof buf - 1);
    if (n > 0) buf[strcspn(buf, "\n")] = 0;
    snprintf(cg_ctor_result, sizeof cg_ctor_result, "ctor connected got %s", buf);
  } else {
    snprintf(cg_ctor_result, sizeof cg_ctor_result, "ctor error %s via connect", strerrorname_np(errno));
  }
  close(fd);
}
