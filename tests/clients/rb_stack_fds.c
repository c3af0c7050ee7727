/* Lists its own descriptors after connects that fail (and that the shim retries and logs
 * with a stack), so a test can compare the listing with and without the shim.
 * usage: rb_stack_fds PORT N   (nothing listens on 127.0.0.1:PORT)
 * Connects N times, each from a fresh socket, half of them from a thread, closing each; then
 * prints one line per open descriptor: "FD KIND" (KIND: the link target with any inode number
 * dropped: "pipe", "socket", "/dev/null", ...). The directory stream's own fd is left out. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int port;

__attribute__((noinline)) static void *connect_once(void *arg)
{
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) { perror("socket"); exit(1); }
  if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0 || errno != ECONNREFUSED) {
    fprintf(stderr, "connect: unexpected result (errno %d)\n", errno);
    exit(1);
  }
  close(fd);
  return arg;
}

int main(int argc, char **argv)
{
  if (argc < 3) { fprintf(stderr, "usage: rb_stack_fds PORT N\n"); return 2; }
  port = atoi(argv[1]);
  int n = atoi(argv[2]);
  for (int i = 0; i < n; i++) {
    if (i % 2) {
      pthread_t t;
      if (pthread_create(&t, NULL, connect_once, NULL) || pthread_join(t, NULL)) return 1;
    } else {
      connect_once(NULL);
    }
  }
  DIR *d = opendir("/proc/self/fd");
  if (!d) { perror("opendir"); return 1; }
  struct dirent *de;
  while ((de = readdir(d))) {
    if (de->d_name[0] == '.') continue;
    int fd = atoi(de->d_name);
    if (fd == dirfd(d)) continue;
    char path[64], target[256];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    ssize_t l = readlink(path, target, sizeof target - 1);
    if (l < 0) continue;
    target[l] = 0;
    char *colon = strstr(target, ":[");
    if (colon) *colon = 0;
    printf("%d %s\n", fd, target);
  }
  closedir(d);
  return 0;
}
