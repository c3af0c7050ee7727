/* A C program (linked against neither libstdc++ nor libgcc_s) that loads C++ code late.
 * usage: rb_cxx_late LIB PORT
 * 1. connects to 127.0.0.1:PORT, where nothing listens: under the shim the failure is logged
 *    with a stack, so the shim's unwinder (libgcc's, linked into the shim) has been used;
 * 2. says whether the unwinder's names are in the global scope (dlsym(RTLD_DEFAULT));
 * 3. dlopen()s LIB (libcgcxx.so, RTLD_LOCAL), which throws, catches and rethrows, and says which
 *    module provides the _Unwind_RaiseException LIB is bound to;
 * 4. last line: whether libgcc_s was mapped before LIB was loaded (the shim loads none). */
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const char *scope(const char *sym)
{
  return dlsym(RTLD_DEFAULT, sym) ? "visible" : "absent";
}

static int mapped(const char *name)
{
  char line[1024];
  int found = 0;
  FILE *f = fopen("/proc/self/maps", "r");
  if (!f) return -1;
  while (fgets(line, sizeof line, f))
    if (strstr(line, name)) found = 1;
  fclose(f);
  return found;
}

__attribute__((noinline)) static void connect_closed(int port)
{
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  int r = connect(fd, (struct sockaddr *)&a, sizeof a);
  printf("connect: ret=%d errno=%s\n", r, r ? strerrorname_np(errno) : "0");
  close(fd);
}

int main(int argc, char **argv)
{
  if (argc < 3) { fprintf(stderr, "usage: rb_cxx_late LIB PORT\n"); return 2; }
  connect_closed(atoi(argv[2]));
  int gcc_before = mapped("/libgcc_s.so");
  printf("before: _Unwind_RaiseException=%s _Unwind_Resume=%s _Unwind_Backtrace=%s unw_backtrace=%s\n",
         scope("_Unwind_RaiseException"), scope("_Unwind_Resume"), scope("_Unwind_Backtrace"), scope("unw_backtrace"));
  void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (!h) { printf("dlopen: %s\n", dlerror()); return 1; }
  int (*run)(char *, size_t) = (int (*)(char *, size_t))dlsym(h, "cg_cxx_run");
  void *(*raise_addr)(void) = (void *(*)(void))dlsym(h, "cg_cxx_raise_addr");
  if (!run || !raise_addr) { printf("dlsym: %s\n", dlerror()); return 1; }
  char buf[256];
  int rc = run(buf, sizeof buf);
  printf("cxx: rc=%d %s\n", rc, buf);
  Dl_info di;
  const char *mod = "?";
  if (dladdr(raise_addr(), &di) && di.dli_fname) {
    mod = strrchr(di.dli_fname, '/') ? strrchr(di.dli_fname, '/') + 1 : di.dli_fname;
  }
  printf("bound: _Unwind_RaiseException in %s\n", mod);
  printf("after: _Unwind_RaiseException=%s _Unwind_Backtrace=%s unw_backtrace=%s\n",
         scope("_Unwind_RaiseException"), scope("_Unwind_Backtrace"), scope("unw_backtrace"));
  rc |= run(buf, sizeof buf);   /* a second time, after the first was bound */
  printf("cxx again: rc=%d %s\n", rc, buf);
  printf("libgcc_s_mapped_before=%d libunwind_mapped=%d\n", gcc_before, mapped("/libunwind.so"));
  return rc;
}
