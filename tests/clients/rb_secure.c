/* Secure-execution mode (setuid, setgid, file capabilities): the shim must take no CONNGUARD_*
 * variable from the environment (secure_getenv), or anyone who can run a privileged program
 * could point its log at any file. ld.so ignores LD_PRELOAD paths in that mode, so this program
 * dlopen()s the shim itself and connects through the shim's own connect().
 * usage: rb_secure SHIM PORT    prints AT_SECURE, what connect() returned, and the name and
 * owner of this process's live-counter segment in /dev/shm. */
#include <arpa/inet.h>
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

typedef int (*connect_fn)(int, const struct sockaddr *, socklen_t);

int main(int argc, char **argv)
{
  if (argc != 3) { fprintf(stderr, "usage: rb_secure SHIM PORT\n"); return 2; }
  printf("secure=%lu\n", getauxval(AT_SECURE));
  fflush(stdout);
  void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  connect_fn cn = h ? (connect_fn)dlsym(h, "connect") : NULL;
  if (!cn) { printf("dlopen: %s\n", dlerror()); return 2; }
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(argv[2])) };
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int s = socket(AF_INET, SOCK_STREAM, 0);
  int r = cn(s, (struct sockaddr *)&a, sizeof a);
  const char *en = r ? strerrorname_np(errno) : "0";
  printf("connect=%d errno=%s\n", r, en ? en : "?");
  char suffix[32];
  snprintf(suffix, sizeof suffix, ".%d", (int)getpid());
  DIR *d = opendir("/dev/shm");
  struct dirent *de;
  while (d && (de = readdir(d))) {
    size_t n = strlen(de->d_name), k = strlen(suffix);
    if (strncmp(de->d_name, "connguard.", 10) || n <= k || strcmp(de->d_name + n - k, suffix)) continue;
    struct stat st;
    char path[300];
    snprintf(path, sizeof path, "/dev/shm/%s", de->d_name);
    if (stat(path, &st) == 0) printf("segment=%s owner=%u pid=%d\n", de->d_name, (unsigned)st.st_uid, (int)getpid());
  }
  if (d) closedir(d);
  close(s);
  return 0;
}
