/* CONNGUARD_SUPPRESSIONS parsing and matching. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include "supp.h"

static struct cg_supp s;

static int parse(const char *text, int *first)
{
  return cg_supp_parse(&s, text, strlen(text), first);
}

START_TEST(parse_good_file)
{
  int first = -1;
  ck_assert_int_eq(parse("# comment\n\n  leak:foo  \r\nleak:  lib*.so\n\t# indented comment\nleak:a b", &first), 0);
  ck_assert_int_eq(first, 0);
  ck_assert_int_eq(s.n, 3);
  ck_assert_str_eq(s.pat[0], "foo");
  ck_assert_str_eq(s.pat[1], "lib*.so");
  ck_assert_str_eq(s.pat[2], "a b");
  ck_assert_int_eq(s.glob[0], 0);
  ck_assert_int_eq(s.glob[1], 1);
}
END_TEST

START_TEST(parse_bad_lines)
{
  int first = 0;
  ck_assert_int_eq(parse("leak:ok\nfoo\nleak:\ncalled_from_lib:x\nLEAK:x\nleak:fine\n", &first), 4);
  ck_assert_int_eq(first, 2);
  ck_assert_int_eq(s.n, 2);
  ck_assert_str_eq(s.pat[1], "fine");
}
END_TEST

START_TEST(parse_limits)
{
  char big[CG_SUPP_PATLEN + 20];
  memset(big, 'x', sizeof big);
  memcpy(big, "leak:", 5);
  big[sizeof big - 1] = 0;
  int first = 0;
  ck_assert_int_eq(parse(big, &first), 1);
  ck_assert_int_eq(s.n, 0);
  static char many[(CG_SUPP_MAX + 5) * 12];
  size_t off = 0;
  for (int i = 0; i < CG_SUPP_MAX + 5; i++) off += (size_t)sprintf(many + off, "leak:p%d\n", i);
  ck_assert_int_eq(parse(many, &first), 5);
  ck_assert_int_eq(first, CG_SUPP_MAX + 1);
  ck_assert_int_eq(s.n, CG_SUPP_MAX);
  /* NUL bytes in a line make it bad, not a truncated pattern. */
  ck_assert_int_eq(cg_supp_parse(&s, "leak:a\0b\nleak:c\n", 16, &first), 1);
  ck_assert_int_eq(s.n, 1);
  ck_assert_str_eq(s.pat[0], "c");
}
END_TEST

START_TEST(match_rules)
{
  int first;
  parse("leak:open_client\nleak:libfoo\nleak:*_pool_*\nleak:leaky?\nleak:/opt/*/bin/srv\n", &first);
  ck_assert_int_eq(cg_supp_match(&s, "my_open_client_v2", "/bin/x"), 0);     /* substring of symbol */
  ck_assert_int_eq(cg_supp_match(&s, NULL, "/usr/lib/libfoo.so.1"), 1);      /* substring of module */
  ck_assert_int_eq(cg_supp_match(&s, "conn_pool_get", "/bin/x"), 2);         /* glob, whole symbol */
  ck_assert_int_eq(cg_supp_match(&s, "pool_get", "/bin/x"), -1);
  ck_assert_int_eq(cg_supp_match(&s, NULL, "/work/build/leaky1"), 3);        /* glob on base name */
  ck_assert_int_eq(cg_supp_match(&s, NULL, "/work/build/leaky12"), -1);
  ck_assert_int_eq(cg_supp_match(&s, NULL, "/opt/app/bin/srv"), 4);          /* glob on full path */
  ck_assert_int_eq(cg_supp_match(&s, NULL, NULL), -1);
}
END_TEST

START_TEST(load_missing_and_good)
{
  char warn[512];
  ck_assert_int_eq(cg_supp_load(&s, "/nonexistent/dir/supp.txt", warn, sizeof warn), -1);
  ck_assert_ptr_nonnull(strstr(warn, "CONNGUARD_SUPPRESSIONS=\"/nonexistent/dir/supp.txt\""));
  ck_assert_ptr_nonnull(strstr(warn, "ENOENT"));
  ck_assert_ptr_null(strchr(warn, '\n'));
  ck_assert_int_eq(s.n, 0);
  char path[] = "/tmp/cg-supp-XXXXXX";
  int fd = mkstemp(path);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(write(fd, "leak:x\nbad\n", 11), 11);
  close(fd);
  ck_assert_int_eq(cg_supp_load(&s, path, warn, sizeof warn), -1);
  ck_assert_ptr_nonnull(strstr(warn, "1 bad line (first: line 2"));
  ck_assert_ptr_nonnull(strstr(warn, "using the 1 valid pattern"));
  ck_assert_int_eq(s.n, 1);
  fd = open(path, O_WRONLY | O_TRUNC);
  ck_assert_int_eq(write(fd, "leak:y\n", 7), 7);
  close(fd);
  ck_assert_int_eq(cg_supp_load(&s, path, warn, sizeof warn), 0);
  ck_assert_str_eq(warn, "");
  unlink(path);
}
END_TEST

START_TEST(load_too_big)
{
  char path[] = "/tmp/cg-supp-XXXXXX";
  int fd = mkstemp(path);
  static char chunk[4096];
  memset(chunk, '#', sizeof chunk);
  chunk[sizeof chunk - 1] = '\n';
  ck_assert_int_eq(write(fd, "leak:first\n", 11), 11);
  for (int i = 0; i < 20; i++) ck_assert_int_eq(write(fd, chunk, sizeof chunk), (int)sizeof chunk);
  close(fd);
  char warn[512];
  ck_assert_int_eq(cg_supp_load(&s, path, warn, sizeof warn), -1);
  ck_assert_ptr_nonnull(strstr(warn, "longer than 64 KB"));
  ck_assert_int_eq(s.n, 1);
  unlink(path);
}
END_TEST

int main(void)
{
  Suite *su = suite_create("supp");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, parse_good_file);
  tcase_add_test(tc, parse_bad_lines);
  tcase_add_test(tc, parse_limits);
  tcase_add_test(tc, match_rules);
  tcase_add_test(tc, load_missing_and_good);
  tcase_add_test(tc, load_too_big);
  suite_add_tcase(su, tc);
  SRunner *sr = srunner_create(su);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
