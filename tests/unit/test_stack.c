/* Call-site stack cache (shim/core/stack.c): a hit returns the stack a full unwind would,
 * whatever changed since the entry was made: another caller at the same depth, a fork child,
 * a library unloaded and another mapped at the same address, other threads. The core is
 * linked into this program, so the test's own frames would count as the shim's: the "own"
 * range is emptied (cg_stack_set_self) and every frame is kept. */
#include <check.h>
#include "cgtest.h"
#include <dlfcn.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "config.h"
#include "stack.h"
#include "stacktab.h"

static struct cg_stack_counts counts(void)
{
  struct cg_stack_counts c;
  cg_stack_cache_counts(&c);
  return c;
}

static void setup(void)
{
  cg_stack_set_self(1, 1);
}

/* site() asks for its stack; frame #1 of that stack must be the return address into whoever
 * called site(), which site() reads itself. */
__attribute__((noinline)) static uint32_t site(uintptr_t *caller)
{
  *caller = (uintptr_t)__builtin_return_address(0);
  uint32_t id = cg_stack_id_here(16);
  __asm__ volatile("" ::: "memory");
  return id;
}

/* Two callers with the same frame layout: called from the same place, site() runs at the
 * same depth (same cache key) with a different return address in the slot above. */
__attribute__((noinline)) static uint32_t path_a(uintptr_t *caller)
{
  volatile int tag = 1;
  uint32_t r = site(caller);
  (void)tag;
  __asm__ volatile("" ::: "memory");
  return r;
}

__attribute__((noinline)) static uint32_t path_b(uintptr_t *caller)
{
  volatile int tag = 2;
  uint32_t r = site(caller);
  (void)tag;
  __asm__ volatile("" ::: "memory");
  return r;
}

__attribute__((noinline)) static uint32_t via(int which, uintptr_t *caller)
{
  uint32_t r = which ? path_b(caller) : path_a(caller);
  __asm__ volatile("" ::: "memory");
  return r;
}

/* The stack named id really is the one seen from caller: frame #1 is caller's return address. */
static int stack_is_from(uint32_t id, uintptr_t caller)
{
  const uintptr_t *pcs;
  int n = cg_stacktab_get(id, &pcs);
  return n >= 3 && pcs[1] == caller;
}

START_TEST(same_site_hits)
{
  uintptr_t ca[3];
  uint32_t id[3];
  for (int i = 0; i < 3; i++) id[i] = via(0, &ca[i]);
  ck_assert_uint_ne(id[0], 0);
  ck_assert_uint_eq(id[1], id[0]);
  ck_assert_uint_eq(id[2], id[0]);
  ck_assert(stack_is_from(id[0], ca[0]));
  struct cg_stack_counts c = counts();
  ck_assert_uint_eq(c.misses, 1);
  ck_assert_uint_eq(c.hits, 2);
  ck_assert_str_eq(cg_stack_backend(), "libgcc");
}
END_TEST

/* Every call below goes through one call instruction (a loop), so that the frames further out
 * are the same and only the path under test differs. */
START_TEST(moved_return_address_recaptures)
{
  static const int seq[4] = { 0, 1, 0, 0 };
  uintptr_t c[4];
  uint32_t id[4];
  for (int i = 0; i < 4; i++) id[i] = via(seq[i], &c[i]);
  ck_assert_uint_ne(c[0], c[1]);
  ck_assert_uint_ne(id[0], id[1]);
  for (int i = 0; i < 4; i++) ck_assert(stack_is_from(id[i], c[i]));
  ck_assert_uint_eq(id[2], id[0]);
  ck_assert_uint_eq(id[3], id[0]);
  struct cg_stack_counts c2 = counts();
  /* The premise: same depth, so the same key was found and refused, not a mere miss; then
   * b's stack was cached beside a's (not in its place), and a's two later calls hit. */
  ck_assert_uint_eq(c2.moved, 1);
  ck_assert_uint_eq(c2.misses, 2);
  ck_assert_uint_eq(c2.hits, 2);
}
END_TEST

/* Two callers at the same depth taken in turn (curl's socketpair ends, a loop that opens two
 * kinds of connection): each keeps its entry, so only the first call of each unwinds. */
START_TEST(two_callers_in_turn_both_cached)
{
  uintptr_t c[8];
  uint32_t id[8];
  for (int i = 0; i < 8; i++) id[i] = via(i & 1, &c[i]);
  ck_assert_uint_ne(id[0], id[1]);
  for (int i = 0; i < 8; i++) {
    ck_assert(stack_is_from(id[i], c[i]));
    ck_assert_uint_eq(id[i], id[i & 1]);
  }
  struct cg_stack_counts k = counts();
  ck_assert_uint_eq(k.misses, 2);
  ck_assert_uint_eq(k.hits, 6);
}
END_TEST

__attribute__((noinline)) static int capture_site(uintptr_t *pcs, uintptr_t *caller)
{
  *caller = (uintptr_t)__builtin_return_address(0);
  int n = cg_stack_capture(pcs, 8);
  __asm__ volatile("" ::: "memory");
  return n;
}

START_TEST(capture_copies_the_cached_frames)
{
  uintptr_t p[3][CG_MAX_STACK], c[3];
  int n[3];
  for (int i = 0; i < 3; i++) n[i] = capture_site(p[i], &c[i]);
  ck_assert_int_ge(n[0], 3);
  ck_assert_int_le(n[0], 8);
  for (int i = 0; i < 3; i++) {
    ck_assert_int_eq(n[i], n[0]);
    ck_assert_uint_eq(p[i][1], c[i]);
    for (int f = 0; f < n[0]; f++) ck_assert_uint_eq(p[i][f], p[0][f]);
  }
  ck_assert_uint_eq(counts().hits, 2);
  ck_assert_int_eq(cg_stack_capture(p[0], 0), 0);
}
END_TEST

START_TEST(fork_child_gets_its_own_stack)
{
  /* Parent and child run the same sequence; the child starts it with the parent's entry for
   * a's stack in its inherited cache, and must not get it for b. */
  static const int seq[3] = { 0, 1, 0 };
  uintptr_t c[3];
  uint32_t id[3];
  pid_t pid = -1;
  for (int i = 0; i < 3; i++) {
    if (i == 1) {
      pid = fork();
      ck_assert_int_ge(pid, 0);
      if (pid > 0) {
        int st;
        ck_assert_int_eq(waitpid(pid, &st, 0), pid);
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child got a wrong stack");
      }
    }
    id[i] = via(seq[i], &c[i]);
  }
  int ok = id[1] != id[0] && id[2] == id[0];
  for (int i = 0; i < 3; i++) ok = ok && stack_is_from(id[i], c[i]);
  ok = ok && counts().moved == 1;   /* b refused a's entry once; a then found its own */
  if (pid == 0) _exit(ok ? 0 : 1);
  ck_assert(ok);
}
END_TEST

static void *lib_open(const char *name)
{
  char exe[PATH_MAX], path[PATH_MAX + 32];
  ssize_t l = readlink("/proc/self/exe", exe, sizeof exe - 1);
  ck_assert_int_gt(l, 0);
  exe[l] = 0;
  snprintf(path, sizeof path, "%s/%s", dirname(exe), name);
  void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  ck_assert_msg(h != NULL, "dlopen %s: %s", path, dlerror());
  return h;
}

typedef uint32_t (*call_fn)(uint32_t (*)(int), int);

/* Two stacks of two frames (in the library, then here), from one call instruction. */
__attribute__((noinline)) static void lib_twice(call_fn f, uint32_t ids[2])
{
  volatile int n = 2;   /* not unrolled: one call instruction */
  for (int i = 0; i < n; i++) ids[i] = f(cg_stack_id_here, 2);
  __asm__ volatile("" ::: "memory");
}

START_TEST(library_replaced_at_the_same_address)
{
  void *ha = lib_open("libcgsa.so");
  call_fn fa = (call_fn)dlsym(ha, "cgs_call");
  ck_assert_ptr_nonnull(fa);
  uint32_t a[2], b[2];
  lib_twice(fa, a);
  ck_assert_uint_ne(a[0], 0);
  ck_assert_uint_eq(a[1], a[0]);
  ck_assert_uint_eq(counts().hits, 1);
  Dl_info da;
  ck_assert(dladdr((void *)fa, &da));
  uintptr_t base_a = (uintptr_t)da.dli_fbase;
  ck_assert_int_eq(dlclose(ha), 0);

  void *hb = lib_open("libcgsb.so");
  call_fn fb = (call_fn)dlsym(hb, "cgs_call");
  const char *(*name)(void) = (const char *(*)(void))dlsym(hb, "cgs_name");
  ck_assert_str_eq(name(), "b");
  Dl_info db;
  ck_assert(dladdr((void *)fb, &db));
  /* The premise: mapped where libcgsa was, the same code at the same addresses, so the slot
   * re-check alone would accept the old entry. */
  ck_assert_uint_eq((uintptr_t)db.dli_fbase, base_a);
  ck_assert_ptr_eq((void *)fb, (void *)fa);
  unsigned long misses = counts().misses;
  lib_twice(fb, b);
  struct cg_stack_counts c = counts();
  ck_assert_uint_eq(c.unloaded, 1);          /* refused: a library went away since */
  ck_assert_uint_eq(c.misses, misses + 1);   /* and unwound afresh, then hit */
  ck_assert_uint_eq(c.hits, 2);
  ck_assert_uint_eq(b[0], a[0]);             /* same addresses: the same frames */
  ck_assert_uint_eq(b[1], a[0]);
  const uintptr_t *pcs;
  ck_assert_int_eq(cg_stacktab_get(b[0], &pcs), 2);
  ck_assert(dladdr((void *)pcs[0], &db));
  ck_assert_ptr_nonnull(strstr(db.dli_fname, "libcgsb.so"));
  dlclose(hb);
}
END_TEST

/* A dlclose() that unloads nothing (another reference is left) keeps the cache, and the hook
 * leaves errno as the real dlclose() does. */
START_TEST(dlclose_of_a_reference_keeps_the_cache)
{
  void *h1 = lib_open("libcgsa.so"), *h2 = lib_open("libcgsa.so");
  call_fn fa = (call_fn)dlsym(h1, "cgs_call");
  uint32_t a[2], b[2];
  lib_twice(fa, a);
  errno = 1234;
  ck_assert_int_eq(dlclose(h2), 0);
  ck_assert_int_eq(errno, 1234);
  lib_twice(fa, b);
  struct cg_stack_counts c = counts();
  ck_assert_uint_eq(b[0], a[0]);
  ck_assert_uint_eq(c.unloaded, 0);
  ck_assert_uint_eq(c.misses, 1);
  ck_assert_uint_eq(c.hits, 3);
  ck_assert_int_eq(dlclose(h1), 0);
}
END_TEST

/* The shim's own frames are not reported but are checked on a hit; usually they come first,
 * but a program callback run from inside the shim (a resolver's socket inside the getaddrinfo
 * hook) puts one between the program's. Here the frame in via_mixed plays the shim's. */
static uintptr_t ra_into_mixed;

__attribute__((noinline)) static uint32_t path_mixed(uintptr_t *caller)
{
  ra_into_mixed = (uintptr_t)__builtin_return_address(0);
  cg_stack_set_self(ra_into_mixed, ra_into_mixed + 1);
  uint32_t r = site(caller);
  __asm__ volatile("" ::: "memory");
  return r;
}

__attribute__((noinline)) static uint32_t via_mixed(uintptr_t *caller)
{
  uint32_t r = path_mixed(caller);
  __asm__ volatile("" ::: "memory");
  return r;
}

START_TEST(shim_frame_between_program_frames)
{
  uintptr_t c[3];
  uint32_t id[3];
  volatile int three = 3;   /* not unrolled: one call instruction */
  for (int i = 0; i < three; i++) id[i] = via_mixed(&c[i]);
  ck_assert_uint_eq(id[1], id[0]);
  ck_assert_uint_eq(id[2], id[0]);
  ck_assert(stack_is_from(id[0], c[0]));
  const uintptr_t *pcs;
  int n = cg_stacktab_get(id[0], &pcs);
  for (int f = 0; f < n; f++) ck_assert_uint_ne(pcs[f], ra_into_mixed);
  struct cg_stack_counts k = counts();
  ck_assert_uint_eq(k.misses, 1);
  ck_assert_uint_eq(k.hits, 2);
}
END_TEST

/* An entry keeps each frame's size in 8-byte units on 15 bits: a caller whose frame is larger
 * (256 KB and more) gets a correct stack, unwound every time. */
__attribute__((noinline)) static uint32_t via_big_frame(size_t size, uintptr_t *caller)
{
  volatile char *buf = __builtin_alloca(size);
  buf[0] = 1;
  uint32_t r = site(caller);
  buf[size - 1] = 2;
  __asm__ volatile("" ::: "memory");
  return r;
}

START_TEST(huge_frames_are_not_cached)
{
  static const size_t sizes[2] = { 100 << 10, 400 << 10 };
  for (int k = 0; k < 2; k++) {
    struct cg_stack_counts c0 = counts();
    uintptr_t c[2];
    uint32_t id[2];
    volatile int two = 2;   /* not unrolled: one call instruction */
    for (int i = 0; i < two; i++) id[i] = via_big_frame(sizes[k], &c[i]);
    struct cg_stack_counts c1 = counts();
    for (int i = 0; i < 2; i++) ck_assert(stack_is_from(id[i], c[i]));
    ck_assert_uint_eq(id[1], id[0]);
    ck_assert_uint_eq(c1.hits - c0.hits, k ? 0 : 1);
    ck_assert_uint_eq(c1.uncacheable - c0.uncacheable, k ? 2 : 0);
  }
}
END_TEST

/* A child forked while another thread is inside dlclose(): that call never ends in the child,
 * whose cache must work again, and whatever it unloaded counts as unloaded there. */
START_TEST(fork_during_dlclose_child_caches_again)
{
  uintptr_t c[3] = { 0, 0, 0 };
  uint32_t id[3] = { 0, 0, 0 };
  volatile int three = 3;   /* not unrolled: one call instruction */
  pid_t pid = -1;
  unsigned long token = 0;
  for (int i = 0; i < three; i++) {
    if (i == 1) {
      errno = 77;
      token = cg_stack_unload_begin();   /* as the hook does, in "another thread" */
      ck_assert_int_eq(errno, 77);
      pid = fork();
      ck_assert_int_ge(pid, 0);
      if (pid == 0) cg_stack_after_fork_child();   /* the shim's child handler (engine.c) */
      if (pid > 0) {
        int st;
        ck_assert_int_eq(waitpid(pid, &st, 0), pid);
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child's cache is off or stale");
        cg_stack_unload_end(token);
        ck_assert_int_eq(errno, 77);
      }
    }
    id[i] = via(0, &c[i]);
  }
  struct cg_stack_counts k = counts();
  int ok = id[1] == id[0] && id[2] == id[0] && stack_is_from(id[2], c[2]);
  if (pid == 0) _exit(ok && k.unloaded == 1 && k.misses == 2 && k.hits == 1 ? 0 : 1);
  ck_assert(ok);
  ck_assert_uint_eq(k.misses, 1);   /* nothing unloaded: the parent's entry stays good */
  ck_assert_uint_eq(k.hits, 2);
}
END_TEST

#define NTHREADS 4
#define ROUNDS 3000

static void *thread_main(void *arg)
{
  long bad = 0;
  uint32_t ids[2] = { 0, 0 };
  for (int i = 0; i < ROUNDS; i++) {
    uintptr_t c;
    int which = (i / 3 + (int)(long)arg) & 1;
    uint32_t id = via(which, &c);
    if (!stack_is_from(id, c)) bad++;
    if (!ids[which]) ids[which] = id;
    else if (ids[which] != id) bad++;
  }
  if (ids[0] == ids[1]) bad++;
  return (void *)bad;
}

START_TEST(threads_each_get_their_stacks)
{
  pthread_t th[NTHREADS];
  for (long t = 0; t < NTHREADS; t++) ck_assert_int_eq(pthread_create(&th[t], NULL, thread_main, (void *)t), 0);
  for (int t = 0; t < NTHREADS; t++) {
    void *bad;
    pthread_join(th[t], &bad);
    ck_assert_int_eq((long)bad, 0);
  }
  struct cg_stack_counts c = counts();
  ck_assert_uint_gt(c.hits, NTHREADS * ROUNDS / 2);
}
END_TEST

static Suite *suite(void)
{
  Suite *s = suite_create("stack");
  TCase *tc = tcase_create("cache");
  tcase_add_checked_fixture(tc, setup, NULL);
  tcase_add_test(tc, same_site_hits);
  tcase_add_test(tc, moved_return_address_recaptures);
  tcase_add_test(tc, two_callers_in_turn_both_cached);
  tcase_add_test(tc, capture_copies_the_cached_frames);
  tcase_add_test(tc, fork_child_gets_its_own_stack);
  tcase_add_test(tc, library_replaced_at_the_same_address);
  tcase_add_test(tc, dlclose_of_a_reference_keeps_the_cache);
  tcase_add_test(tc, huge_frames_are_not_cached);
  tcase_add_test(tc, shim_frame_between_program_frames);
  tcase_add_test(tc, fork_during_dlclose_child_caches_again);
  tcase_add_test(tc, threads_each_get_their_stacks);
  tcase_set_timeout(tc, 60);
  suite_add_tcase(s, tc);
  return s;
}

CG_TEST_MAIN(suite)
