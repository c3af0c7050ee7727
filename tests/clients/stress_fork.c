/* Fork storm: while THREADS threads of the parent keep connecting to 127.0.0.1:PORT (PER
 * connects each), the main thread forks CHILDREN children; each child connects once, forks one
 * grandchild that connects once, waits for it and exits. Forks land while other threads are
 * inside connect, its retries and its log writes: the children must neither deadlock nor
 * inherit a held lock.
 *   stress_fork CHILDREN THREADS PER PORT exit|_exit [leak]
 * With "leak", each parent thread leaves one TCP socket (never connected: a leak) open at the
 * end and each child and
 * grandchild one TCP6 socket: every process's exit report must list exactly its own.
 * Prints "result WHO:RESULT COUNT" lines (WHO: parent, child, grandchild; RESULT: ok or an errno
 * name; "status:N" / "signal:N" for how children ended). */
#include "stress.h"
#include <fcntl.h>
#include <sys/wait.h>

static int port, per, use_exit, leak;
static int pipefd[2];

static void *worker(void *arg)
{
  (void)arg;
  char what[64];
  for (int i = 0; i < per; i++) {
    snprintf(what, sizeof what, "parent:%s", connect_once(port));
    hist_add(what);
  }
  if (leak && socket(AF_INET, SOCK_STREAM, 0) < 0) hist_add("socket_failed");
  return NULL;
}

static void report(const char *who, const char *res)
{
  char line[64];
  int n = snprintf(line, sizeof line, "%s:%s\n", who, res);
  if (write(pipefd[1], line, (size_t)n) != n) _exit(3);
}

static void leave(int code)
{
  if (use_exit) exit(code);
  _exit(code);
}

static void child(void)
{
  alarm(30);   /* pending alarms are not inherited: a deadlocked child dies of SIGALRM */
  report("child", connect_once(port));
  if (leak && socket(AF_INET6, SOCK_STREAM, 0) < 0) leave(6);
  pid_t g = fork();
  if (g == 0) {
    alarm(30);
    report("grandchild", connect_once(port));
    if (leak && socket(AF_INET6, SOCK_STREAM, 0) < 0) leave(6);
    leave(0);
  }
  int st = 0;
  if (g < 0 || waitpid(g, &st, 0) != g) leave(4);
  if (WIFSIGNALED(st)) report("grandchild", "killed");
  leave(WIFEXITED(st) ? WEXITSTATUS(st) : 5);
}

int main(int argc, char **argv)
{
  if (argc < 6) {
    fprintf(stderr, "usage: stress_fork CHILDREN THREADS PER PORT exit|_exit\n");
    return 2;
  }
  int children = atoi(argv[1]), threads = atoi(argv[2]);
  per = atoi(argv[3]);
  port = atoi(argv[4]);
  use_exit = !strcmp(argv[5], "exit");
  leak = argc > 6 && !strcmp(argv[6], "leak");
  if (threads > 64 || children > 1024) return 2;
  watchdog(90);
  if (pipe2(pipefd, O_CLOEXEC)) { perror("pipe"); return 1; }
  pthread_t th[64];
  for (int i = 0; i < threads; i++) pthread_create(&th[i], NULL, worker, NULL);
  pid_t pids[1024];
  /* The pipe holds every child's two short lines (far below its capacity): read at the end. */
  fflush(stdout);
  for (int i = 0; i < children; i++) {
    pids[i] = fork();
    if (pids[i] == 0) child();
    if (pids[i] < 0) { perror("fork"); return 1; }
  }
  for (int i = 0; i < threads; i++) pthread_join(th[i], NULL);
  char what[64];
  for (int i = 0; i < children; i++) {
    int st = 0;
    if (waitpid(pids[i], &st, 0) != pids[i]) { hist_add("waitpid_failed"); continue; }
    if (WIFEXITED(st)) snprintf(what, sizeof what, "status:%d", WEXITSTATUS(st));
    else snprintf(what, sizeof what, "signal:%d", WTERMSIG(st));
    hist_add(what);
  }
  close(pipefd[1]);
  /* Each line is one write() of less than PIPE_BUF: atomic, read back line by line. */
  FILE *in = fdopen(pipefd[0], "r");
  char line[128];
  while (in && fgets(line, sizeof line, in)) {
    line[strcspn(line, "\n")] = 0;
    hist_add(line);
  }
  hist_print("result");
  return 0;
}
