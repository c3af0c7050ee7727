/* Sockets inherited across fork belong to the parent. The parent opens two sockets and forks;
 * the child closes one inherited socket, leaks one of its own (child_leak) and exits through
 * exit(0); the parent then closes one of its two and exits.
 * Expected: the child reports only its own socket, the parent exactly one (its other one).
 * Prints "parent P A B" and "child C X" (pids, fds). */
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

__attribute__((noinline)) static int child_leak(void)
{
  volatile int fd = socket(AF_INET6, SOCK_STREAM, 0);   /* volatile: no tail call */
  return fd;
}

int main(void)
{
  int a = socket(AF_INET, SOCK_STREAM, 0), b = socket(AF_INET, SOCK_STREAM, 0);
  printf("parent %d %d %d\n", (int)getpid(), a, b);
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    close(a);
    int x = child_leak();
    printf("child %d %d\n", (int)getpid(), x);
    exit(0);
  }
  int st;
  waitpid(pid, &st, 0);
  close(b);
  return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 1;
}
