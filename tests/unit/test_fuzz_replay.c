/* Replays every fuzz corpus input and every past fuzz crash (tests/fuzz/corpus/NAME,
 * tests/fuzz/regress/NAME) through the fuzz targets, compiled here with cc: `make check` keeps
 * each crash fixed without clang. A target aborts on a broken invariant (the test fails). */
#include <check.h>
#include <dirent.h>
#include <signal.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LLVMFuzzerTestOneInput fuzz_config_one
#include "../fuzz/fuzz_config.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_json_one
#include "../fuzz/fuzz_json.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_pattern_one
#include "../fuzz/fuzz_pattern.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_tls_hint_one
#include "../fuzz/fuzz_tls_hint.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_supp_one
#include "../fuzz/fuzz_supp.c"
#undef LLVMFuzzerTestOneInput

typedef int (*target_fn)(const uint8_t *, size_t);

/* A target aborts on a broken invariant: name the input that did it. */
static char current[512];
static void on_abort(int sig)
{
  (void)sig;
  static const char m[] = "fuzz replay: the failing input is ";
  if (write(2, m, sizeof m - 1) < 0 || write(2, current, strlen(current)) < 0 || write(2, "\n", 1) < 0) {}
  signal(SIGABRT, SIG_DFL);
  raise(SIGABRT);
}

/* Runs every file of tests/fuzz/KIND/NAME through fn; returns how many. */
static int replay_dir(const char *kind, const char *name, target_fn fn)
{
  char dir[256];
  snprintf(dir, sizeof dir, "tests/fuzz/%s/%s", kind, name);
  DIR *d = opendir(dir);
  if (!d) return 0;
  int n = 0;
  struct dirent *de;
  while ((de = readdir(d))) {
    if (de->d_name[0] == '.') continue;
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot read %s", path);
    uint8_t *buf = malloc(1 << 20);
    size_t len = fread(buf, 1, 1 << 20, f);
    fclose(f);
    snprintf(current, sizeof current, "%s", path);
    fn(buf, len);
    free(buf);
    n++;
  }
  closedir(d);
  return n;
}

static void replay(const char *name, target_fn fn)
{
  signal(SIGABRT, on_abort);
  int n = replay_dir("corpus", name, fn) + replay_dir("regress", name, fn);
  ck_assert_msg(n > 0, "no input replayed for fuzz_%s (run make check from the top directory)", name);
}

START_TEST(config) { replay("config", fuzz_config_one); }
END_TEST
START_TEST(json) { replay("json", fuzz_json_one); }
END_TEST
START_TEST(pattern) { replay("pattern", fuzz_pattern_one); }
END_TEST
START_TEST(tls_hint) { replay("tls_hint", fuzz_tls_hint_one); }
END_TEST
START_TEST(supp) { replay("supp", fuzz_supp_one); }
END_TEST

int main(void)
{
  Suite *s = suite_create("fuzz_replay");
  TCase *tc = tcase_create("replay");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, config);
  tcase_add_test(tc, json);
  tcase_add_test(tc, pattern);
  tcase_add_test(tc, tls_hint);
  tcase_add_test(tc, supp);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? 1 : 0;
}
