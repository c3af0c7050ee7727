/* fork and exec. usage: rb_fork CLOSED_PORT [exec-child]
 * A thread keeps failing connects (logging) while the main thread forks 3 children; each child
 * fails one connect, and the last one execs this program in "exec-child" mode, which reports
 * which of its descriptors are inherited log files (there must be none: O_CLOEXEC) and fails
 * one connect of its own. The parent fails one connect after the children. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static int port;
static atomic_int stop;

static int fail_once(void)
{
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  int r = connect(fd, (struct sockaddr *)&a, sizeof a);
  int e = errno;
  close(fd);
  return r == 0 ? 0 : e;
}

static void *noise(void *arg)
{
  (void)arg;
  while (!atomic_load(&stop)) fail_once();
  return NULL;
}

/* Descriptors open on log files, and on pipes. */
static void count_fds(int *logs, int *pipes)
{
  DIR *d = opendir("/proc/self/fd");
  struct dirent *de;
  *logs = *pipes = 0;
  while ((de = readdir(d))) {
    char p[300], t[512];
    snprintf(p, sizeof p, "/proc/self/fd/%s", de->d_name);
    ssize_t l = readlink(p, t, sizeof t - 1);
    if (l <= 0) continue;
    t[l] = 0;
    if (strstr(t, "/log.")) ++*logs;
    if (strstr(t, "pipe:")) ++*pipes;
  }
  closedir(d);
}

int main(int argc, char **argv)
{
  if (argc < 2) return 2;
  port = atoi(argv[1]);
  if (argc > 2 && !strcmp(argv[2], "exec-child")) {
    /* Before this image connects at all: any log file open now came through exec. Pipes: the
     * shim's own unwinder pipe of this image (2), plus any inherited ones. */
    int logs, pipes;
    count_fds(&logs, &pipes);
    int e = fail_once();
    printf("exec-child pid=%d inherited_logs=%d pipes=%d errno=%s\n", getpid(), logs, pipes, strerrorname_np(e));
    return 0;
  }
  pthread_t t;
  pthread_create(&t, NULL, noise, NULL);
  usleep(20000);
  pid_t kids[3];
  for (int i = 0; i < 3; i++) {
    fflush(stdout);
    pid_t k = fork();
    if (k == 0) {
      int e = fail_once();
      printf("child %d pid=%d errno=%s\n", i, getpid(), strerrorname_np(e));
      fflush(stdout);
      if (i == 2) {
        execl("/proc/self/exe", argv[0], argv[1], "exec-child", (char *)NULL);
        _exit(3);
      }
      _exit(0);
    }
    kids[i] = k;
    usleep(5000);
  }
  int bad = 0;
  for (int i = 0; i < 3; i++) {
    int st;
    waitpid(kids[i], &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st)) bad++;
  }
  atomic_store(&stop, 1);
  pthread_join(t, NULL);
  printf("parent pid=%d errno=%s children_failed=%d\n", getpid(), strerrorname_np(fail_once()), bad);
  return bad;
}
