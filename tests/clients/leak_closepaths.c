/* Sockets closed through paths a close() hook does not see must not be reported as leaks.
 * usage: leak_closepaths MODE
 * Each mode opens three sockets, closes them through MODE, and leaks exactly one control
 * socket (created in control_leak(), last) so a test can tell "nothing reported because
 * tracking is broken" from "nothing reported because the closes were recognised".
 * Prints "control FD" on stdout. Modes:
 *   fclose       fdopen() + fclose()          close_range  close_range(lo, ~0U, 0)
 *   closefrom    closefrom(lo)                sysclose     syscall(SYS_close)
 *   dup2         dup2(/dev/null, fd)          rawdup2      syscall(SYS_dup3, /dev/null, fd, 0)
 *   rawsock      syscall(SYS_dup3) of an untracked socket over fd (still a socket, another one)
 *   exec         SOCK_CLOEXEC sockets + one inherited socket, then exec of this program in
 *                mode "after-exec", which only makes the control leak */
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

static int sock(int flags)
{
  int fd = socket(AF_INET, SOCK_STREAM | flags, 0);
  if (fd < 0) { perror("socket"); exit(2); }
  return fd;
}

__attribute__((noinline)) static int control_leak(void)
{
  /* TCP, never connected: a leak at exit. volatile: no tail call, keep a frame. */
  volatile int fd = socket(AF_INET, SOCK_STREAM, 0);
  return fd;
}

int main(int argc, char **argv)
{
  const char *mode = argc > 1 ? argv[1] : "";
  int fds[3];
  if (!strcmp(mode, "after-exec")) {
    printf("control %d\n", control_leak());
    return 0;
  }
  if (!strcmp(mode, "exec")) {
    for (int i = 0; i < 3; i++) fds[i] = sock(SOCK_CLOEXEC);
    int inherited = sock(0);            /* survives exec: open before the new image's shim */
    (void)inherited;
    fflush(stdout);
    execl("/proc/self/exe", argv[0], "after-exec", (char *)NULL);
    perror("exec");
    return 2;
  }
  for (int i = 0; i < 3; i++) fds[i] = sock(0);
  int null = open("/dev/null", O_RDONLY);
  if (!strcmp(mode, "fclose")) {
    for (int i = 0; i < 3; i++) {
      FILE *f = fdopen(fds[i], "r+");
      if (!f) { perror("fdopen"); return 2; }
      fclose(f);
    }
  } else if (!strcmp(mode, "close_range")) {
    if (close_range((unsigned)fds[0], ~0U, 0) != 0) { perror("close_range"); return 2; }
    null = -1;
  } else if (!strcmp(mode, "closefrom")) {
    closefrom(fds[0]);
    null = -1;
  } else if (!strcmp(mode, "sysclose")) {
    for (int i = 0; i < 3; i++) syscall(SYS_close, fds[i]);
  } else if (!strcmp(mode, "dup2")) {
    for (int i = 0; i < 3; i++) dup2(null, fds[i]);
  } else if (!strcmp(mode, "rawdup2")) {
    for (int i = 0; i < 3; i++) syscall(SYS_dup3, null, fds[i], 0);
  } else if (!strcmp(mode, "rawsock")) {
    /* Each number ends up a socket again, but not the one that was tracked there. */
    int other = (int)syscall(SYS_socket, AF_INET, SOCK_STREAM, 0);
    for (int i = 0; i < 3; i++) syscall(SYS_dup3, other, fds[i], 0);
  } else {
    fprintf(stderr, "unknown mode %s\n", mode);
    return 2;
  }
  printf("control %d\n", control_leak());
  return 0;
}
