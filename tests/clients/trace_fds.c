/* Lists its own descriptors at points where the shim has done work, so a test can compare the
 * listings with and without the shim (issue 11: no descriptor the program can see).
 * usage: trace_fds OK_PORT REFUSED_PORT [leak]
 * A healthy connect to OK_PORT (something accepts there), a blocking connect and a
 * non-blocking one (poll, SO_ERROR) to REFUSED_PORT (refused, retried and logged by the shim),
 * a socket kept open across the listing (leak tracking holds it), then, inside an exit handler,
 * a listing after fclose(stderr) (gnulib's close_stdout). Each listing: "L<n> FD KIND" (KIND: the
 * link target without its inode number); the directory stream's own fd is left out.
 * "leak": the kept socket stays open to the end (an exit report must come, after stderr was
 * closed by the exit handler). */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int listing;
static FILE *out;

static void list(void)
{
  DIR *d = opendir("/proc/self/fd");
  if (!d) { perror("opendir"); exit(1); }
  int self = dirfd(d), n = ++listing;
  struct dirent *e;
  int fds[4096], k = 0;
  while ((e = readdir(d)) && k < 4096) {
    if (e->d_name[0] == '.') continue;
    int fd = atoi(e->d_name);
    if (fd != self) fds[k++] = fd;
  }
  closedir(d);
  for (int i = 0; i < k; i++)
    for (int j = i + 1; j < k; j++)
      if (fds[j] < fds[i]) { int t = fds[i]; fds[i] = fds[j]; fds[j] = t; }
  for (int i = 0; i < k; i++) {
    char p[64], t[512];
    snprintf(p, sizeof p, "/proc/self/fd/%d", fds[i]);
    ssize_t l = readlink(p, t, sizeof t - 1);
    if (l < 0) continue;
    t[l] = 0;
    char *b = strstr(t, ":[");
    if (b) *b = 0;
    fprintf(out, "L%d %d %s\n", n, fds[i], t);
  }
  fflush(out);
}

static struct sockaddr_in addr(int port)
{
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

static void at_exit(void)
{
  fclose(stderr);   /* as gnulib's close_stdout does */
  list();
}

int main(int argc, char **argv)
{
  if (argc < 3) { fprintf(stderr, "usage: trace_fds OK_PORT REFUSED_PORT\n"); return 2; }
  /* stdout may be a pipe that the exit listing must still reach: a copy, made before anything. */
  out = fdopen(dup(1), "w");
  struct sockaddr_in ok = addr(atoi(argv[1])), bad = addr(atoi(argv[2]));
  list();

  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (connect(fd, (struct sockaddr *)&ok, sizeof ok) != 0) { perror("healthy connect"); return 1; }
  close(fd);
  list();

  fd = socket(AF_INET, SOCK_STREAM, 0);
  if (connect(fd, (struct sockaddr *)&bad, sizeof bad) == 0 || errno != ECONNREFUSED) { fprintf(stderr, "blocking: %d\n", errno); return 1; }
  close(fd);
  list();

  fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (connect(fd, (struct sockaddr *)&bad, sizeof bad) != 0 && errno == EINPROGRESS) {
    struct pollfd p = { fd, POLLOUT, 0 };
    for (int i = 0; i < 100 && poll(&p, 1, 100) == 0; i++) {}
    int err = 0;
    socklen_t l = sizeof err;
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l);
    if (err == EINPROGRESS || err == 0) {
      /* The shim may report the retried attempt in progress: wait for its outcome. */
      for (int i = 0; i < 100 && (err == EINPROGRESS || err == 0); i++) {
        poll(&p, 1, 100);
        l = sizeof err;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l);
      }
    }
  }
  close(fd);
  list();

  int kept = socket(AF_INET, SOCK_STREAM, 0);   /* open across the listing; closed before exit */
  list();
  if (argc < 4 || strcmp(argv[3], "leak")) close(kept);
  atexit(at_exit);
  return 0;
}
