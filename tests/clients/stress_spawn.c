/* Exec chains: each image connects once to 127.0.0.1:PORT, reports what it inherited, then
 * continues the chain with DEPTH-1 through MODE:
 *   exec   execv() itself (same pid)
 *   spawn  posix_spawn() itself and wait
 *   vfork  vfork() + execv() itself and wait
 *   stress_spawn MODE DEPTH PORT
 * Each level prints "result LD:RESULT:fds=LIST:stderr_dups=N:log_fds=N 1": LIST is the open
 * fds below 256 (the program's own range), stderr_dups counts other fds on fd 2's file and
 * log_fds fds on a *.log file: a shim fd that survived exec shows up there. */
#include "stress.h"
#include <dirent.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>

extern char **environ;

static void inventory(char *out, size_t cap)
{
  struct stat err_st;
  int have_err = fstat(2, &err_st) == 0, dups = 0, logs = 0;
  size_t n = (size_t)snprintf(out, cap, "fds=");
  int first = 1;
  for (int fd = 0; fd < 256; fd++) {
    if (fcntl(fd, F_GETFD) < 0) continue;
    n += (size_t)snprintf(out + n, cap - n, "%s%d", first ? "" : ",", fd);
    first = 0;
  }
  DIR *d = opendir("/proc/self/fd");
  struct dirent *de;
  while (d && (de = readdir(d))) {
    int fd = atoi(de->d_name);
    if (de->d_name[0] == '.' || fd == dirfd(d) || fd <= 2) continue;
    struct stat st;
    char link[512];
    char p[64];
    snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
    ssize_t l = readlink(p, link, sizeof link - 1);
    link[l > 0 ? l : 0] = 0;
    if (l > 4 && !strcmp(link + l - 4, ".log")) logs++;
    if (have_err && fstat(fd, &st) == 0 && st.st_dev == err_st.st_dev && st.st_ino == err_st.st_ino) dups++;
  }
  if (d) closedir(d);
  snprintf(out + n, cap - n, ":stderr_dups=%d:log_fds=%d", dups, logs);
}

int main(int argc, char **argv)
{
  if (argc < 4) {
    fprintf(stderr, "usage: stress_spawn exec|spawn|vfork DEPTH PORT\n");
    return 2;
  }
  const char *mode = argv[1];
  int depth = atoi(argv[2]);
  int port = atoi(argv[3]);
  watchdog(60);
  char inv[1200];
  inventory(inv, sizeof inv);      /* before the shim could open anything in this image */
  const char *res = connect_once(port);
  printf("result L%d:%s:%s 1\n", depth, res, inv);
  fflush(stdout);
  if (depth <= 0) return 0;
  char next[16];
  snprintf(next, sizeof next, "%d", depth - 1);
  char *args[] = { argv[0], (char *)mode, next, argv[3], NULL };
  if (!strcmp(mode, "exec")) {
    execv(argv[0], args);
    perror("execv");
    return 1;
  }
  pid_t pid;
  if (!strcmp(mode, "spawn")) {
    int e = posix_spawn(&pid, argv[0], NULL, NULL, args, environ);
    if (e) { fprintf(stderr, "posix_spawn: %s\n", strerror(e)); return 1; }
  } else {
    pid = vfork();
    if (pid == 0) {
      execv(argv[0], args);
      _exit(127);
    }
    if (pid < 0) { perror("vfork"); return 1; }
  }
  int st = 0;
  if (waitpid(pid, &st, 0) != pid) return 1;
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    printf("result L%d:child_status_%d 1\n", depth, st);
    return 1;
  }
  return 0;
}
