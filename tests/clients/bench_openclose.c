/* close() of ordinary files: open /dev/null + close, through libc vs raw system calls
 * (bench_common.h). usage: bench_openclose [N] */
#include "bench_common.h"
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv)
{
  long n = argc > 1 ? atol(argv[1]) : 200000;
  BENCH_AB(n,
    { int fd = open("/dev/null", O_RDONLY); if (fd < 0) { perror("open"); return 1; } close(fd); },
    { int fd = (int)syscall(SYS_openat, AT_FDCWD, "/dev/null", O_RDONLY); syscall(SYS_close, fd); });
  return 0;
}
