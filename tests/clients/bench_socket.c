/* What tracking one socket costs, without traffic: socket + close, through libc vs raw system
 * calls (bench_common.h). usage: bench_socket [N] */
#include "bench_common.h"
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv)
{
  long n = argc > 1 ? atol(argv[1]) : 100000;
  BENCH_AB(n,
    { int fd = socket(AF_INET, SOCK_STREAM, 0); if (fd < 0) { perror("socket"); return 1; } close(fd); },
    { int fd = (int)syscall(SYS_socket, AF_INET, SOCK_STREAM, 0); syscall(SYS_close, fd); });
  return 0;
}
