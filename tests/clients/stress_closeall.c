/* A program that closes all its fds and goes on connecting (daemons, ssh, closefrom()).
 *   stress_closeall MODE THREADS PORT SENTINEL [stderr]
 * THREADS threads connect once to 127.0.0.1:PORT (so the shim has opened whatever it opens),
 * then every fd from 3 up is closed by MODE: loop (close() each), close_range, closefrom, or
 * syscall (raw SYS_close, which no hook sees). The file SENTINEL is then dup2()ed onto every
 * number that was open before, so any later write by the shim through an old number lands in
 * it; then the threads connect again. With "stderr", fd 2 is replaced by SENTINEL as well.
 * With "breaklog=PATH", PATH (the shim's log file) is replaced by a symlink meanwhile, so that
 * the shim's reopen fails and it has a warning to give: never into SENTINEL.
 * Prints "result NAME COUNT" lines, including "sentinel_bytes:N". */
#include "stress.h"
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <linux/close_range.h>

static int port;

static void *worker(void *arg)
{
  char what[64];
  snprintf(what, sizeof what, "%s:%s", (const char *)arg, connect_once(port));
  hist_add(what);
  return NULL;
}

static void round_of(int threads, const char *tag)
{
  pthread_t th[64];
  for (int i = 0; i < threads; i++) pthread_create(&th[i], NULL, worker, (void *)tag);
  for (int i = 0; i < threads; i++) pthread_join(th[i], NULL);
}

int main(int argc, char **argv)
{
  if (argc < 5) {
    fprintf(stderr, "usage: stress_closeall loop|close_range|closefrom|syscall THREADS PORT SENTINEL [stderr] [breaklog=PATH]\n");
    return 2;
  }
  const char *mode = argv[1];
  int threads = atoi(argv[2]);
  port = atoi(argv[3]);
  int redirect_stderr = 0;
  const char *breaklog = NULL;
  for (int i = 5; i < argc; i++) {
    if (!strcmp(argv[i], "stderr")) redirect_stderr = 1;
    else if (!strncmp(argv[i], "breaklog=", 9)) breaklog = argv[i] + 9;
  }
  if (threads < 1 || threads > 64) return 2;
  watchdog(60);
  round_of(threads, "before");

  int open_fds[4096], n = 0;
  DIR *d = opendir("/proc/self/fd");
  struct dirent *de;
  while (d && (de = readdir(d)) && n < 4096) {
    int fd = atoi(de->d_name);
    if (de->d_name[0] != '.' && fd > 2 && fd != dirfd(d)) open_fds[n++] = fd;
  }
  if (d) closedir(d);

  if (!strcmp(mode, "loop")) {
    for (int fd = 3; fd < 65536; fd++) close(fd);
  } else if (!strcmp(mode, "close_range")) {
    close_range(3, ~0u, 0);
  } else if (!strcmp(mode, "closefrom")) {
    closefrom(3);
  } else {
    for (int fd = 3; fd < 65536; fd++) syscall(SYS_close, fd);
  }

  if (breaklog && (unlink(breaklog) != 0 || symlink("/dev/null", breaklog) != 0)) { perror("breaklog"); return 1; }
  int s = open(argv[4], O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (s < 0) { perror("sentinel"); return 1; }
  for (int i = 0; i < n; i++)
    if (open_fds[i] != s) dup2(s, open_fds[i]);
  if (redirect_stderr) dup2(s, 2);

  round_of(threads, "after");

  struct stat st;
  fstat(s, &st);
  char what[64];
  snprintf(what, sizeof what, "sentinel_bytes:%lld", (long long)st.st_size);
  hist_add(what);
  hist_print("result");
  return 0;
}
