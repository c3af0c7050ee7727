// A C++ library that a C program (rb_cxx_late, not linked against libstdc++ or libgcc_s)
// dlopen()s at run time: it throws, catches, rethrows across a frame and unwinds through
// destructors. Its libstdc++ must bind the unwinder exactly as without the shim: to
// libgcc_s, never to the libunwind the shim loads privately (RTLD_LOCAL) for its stacks.
#include <cstddef>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <unwind.h>

namespace {

int dtors;

struct Guard {
  ~Guard() { dtors++; }
};

__attribute__((noinline)) void thrower(int v)
{
  Guard g;
  throw std::runtime_error("boom " + std::to_string(v));
}

__attribute__((noinline)) int middle(int v)
{
  Guard g;
  try {
    thrower(v);
  } catch (const std::runtime_error &) {
    throw;   // rethrown across middle()'s frame to the caller
  }
  return -1;
}

}  // namespace

extern "C" __attribute__((visibility("default"))) int cg_cxx_run(char *out, size_t n)
{
  int caught = 0;
  std::string what = "none";
  dtors = 0;
  try {
    middle(7);
  } catch (const std::exception &e) {
    what = e.what();
    caught++;
  }
  try {
    throw 42;
  } catch (int x) {
    caught += x == 42;
  }
  std::snprintf(out, n, "caught=%d what=\"%s\" dtors=%d", caught, what.c_str(), dtors);
  return caught == 2 && dtors == 2 ? 0 : 1;
}

// The _Unwind_RaiseException this library (and the libstdc++ it loaded, which share its lookup
// scope) is bound to: global scope first, then the dlopen()ed group.
extern "C" __attribute__((visibility("default"))) void *cg_cxx_raise_addr(void)
{
  return reinterpret_cast<void *>(&_Unwind_RaiseException);
}
