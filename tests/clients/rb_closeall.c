/* A program that closes every descriptor, then connects and fails.
 * usage: rb_closeall CLOSED_PORT DIR MODE      MODE: closefrom | close_range | loop | all
 * 1. one failed connect (the shim opens its log);
 * 2. closes every fd >= 3 (closefrom(3), close_range(3, ~0U, 0), or close() in a loop), or
 *    with MODE=all every fd from 0, stdio included;
 * 3. puts a decoy file of its own (DIR/decoy.N) on every number that was open before, the way
 *    a daemon reopens its files, plus the lowest free number;
 * 4. fails another connect, and checks that no decoy received a byte.
 * Prints "decoys=N written=M" on stdout (MODE=all: into DIR/result) and exits 0 when M == 0. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static int port;

static void fail_once(void)
{
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  connect(fd, (struct sockaddr *)&a, sizeof a);
  close(fd);
}

int main(int argc, char **argv)
{
  if (argc < 4) return 2;
  port = atoi(argv[1]);
  const char *dir = argv[2], *mode = argv[3];
  int all = !strcmp(mode, "all");
  fail_once();

  int open_fds[256], n = 0;
  DIR *d = opendir("/proc/self/fd");
  int dfd = dirfd(d);
  struct dirent *de;
  while ((de = readdir(d)) && n < 256) {
    int fd = atoi(de->d_name);
    if (de->d_name[0] == '.' || fd == dfd || (!all && fd < 3)) continue;
    open_fds[n++] = fd;
  }
  closedir(d);

  int lo = all ? 0 : 3;
  if (!strcmp(mode, "closefrom") || all) closefrom(lo);
  else if (!strcmp(mode, "close_range")) close_range((unsigned)lo, ~0U, 0);
  else for (int i = 0; i < n; i++) close(open_fds[i]);

  int decoy[258], nd = 0;
  char path[512];
  for (int i = 0; i < n; i++) {
    snprintf(path, sizeof path, "%s/decoy.%d", dir, open_fds[i]);
    int f = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (f != open_fds[i]) { dup2(f, open_fds[i]); close(f); }
    decoy[nd++] = open_fds[i];
  }
  snprintf(path, sizeof path, "%s/decoy.lowest", dir);
  decoy[nd++] = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);

  fail_once();
  fail_once();

  int written = 0;
  for (int i = 0; i < nd; i++) {
    struct stat st;
    if (fstat(decoy[i], &st) == 0 && st.st_size > 0) written++;
  }
  char line[64];
  int len = snprintf(line, sizeof line, "decoys=%d written=%d\n", nd, written);
  if (all) {
    snprintf(path, sizeof path, "%s/result", dir);
    int r = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (write(r, line, (size_t)len) < 0) return 3;
  } else if (write(1, line, (size_t)len) < 0) {
    return 3;
  }
  return written ? 1 : 0;
}
