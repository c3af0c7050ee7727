/* The tool's JSON reader/writer and log-record reader (tools/json.c, tools/logrec.c): strict
 * on bad input, exact on good input, and never a crash on mutated records. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../../tools/json.c"
#include "../../tools/logrec.c"

static struct json *parse(const char *s)
{
  char err[160];
  return json_parse(s, strlen(s), err, sizeof err);
}

static char *dump(const struct json *v)
{
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  json_write(f, v);
  fclose(f);
  return buf;
}

START_TEST(valid_documents_round_trip)
{
  static const char *const docs[] = {
    "{}", "[]", "0", "-1.5e+10", "true", "false", "null", "\"\"",
    "{\"a\":1,\"b\":[1,2,{\"c\":null}],\"d\":\"x\\\"y\\\\z\\n\"}",
    "{\"ts\":\"2026-11-20T23:13:23.601Z\",\"pid\":6279,\"event\":\"connect_failed\",\"stack\":[{\"pc\":\"0x1\"}]}",
  };
  for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
    struct json *v = parse(docs[i]);
    ck_assert_msg(v != NULL, "rejected %s", docs[i]);
    char *out = dump(v);
    ck_assert_str_eq(out, docs[i]);
    free(out);
    json_free(v);
  }
}
END_TEST

START_TEST(escapes_decode)
{
  struct json *v = parse(" \"a\\u00e9\\ud83d\\ude00\\t\\/\" ");
  ck_assert_ptr_nonnull(v);
  ck_assert_int_eq(v->type, JSON_STRING);
  ck_assert_str_eq(v->text, "a\xc3\xa9\xf0\x9f\x98\x80\t/");
  json_free(v);
  v = parse("\"nul\\u0000inside\"");
  ck_assert_ptr_nonnull(v);
  ck_assert_uint_eq(v->len, 10);
  char *out = dump(v);
  ck_assert_str_eq(out, "\"nul\\u0000inside\"");
  free(out);
  json_free(v);
}
END_TEST

START_TEST(invalid_documents_are_rejected_with_a_position)
{
  static const char *const bad[] = {
    "", " ", "{", "}", "[1,]", "[1 2]", "{\"a\"}", "{\"a\":}", "{a:1}", "{\"a\":1,}", "01", "-", "1.",
    "1e", ".5", "+1", "tru", "nul", "\"abc", "\"\\x\"", "\"\\u12\"", "\"\\ud800\"", "\"\\udc00x\"",
    "\"a\nb\"", "{} {}", "[\"\\", "{\"a\":1", "\"\\ud800\\u0041\"",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char err[160] = "";
    struct json *v = json_parse(bad[i], strlen(bad[i]), err, sizeof err);
    ck_assert_msg(v == NULL, "accepted %s", bad[i]);
    ck_assert_msg(strstr(err, "byte") != NULL, "no position for %s: %s", bad[i], err);
  }
}
END_TEST

START_TEST(nesting_is_bounded)
{
  char deep[4096];
  size_t n = 0;
  for (int i = 0; i < 2000; i++) deep[n++] = '[';
  deep[n] = 0;
  char err[160];
  ck_assert_ptr_null(json_parse(deep, n, err, sizeof err));
  ck_assert_ptr_nonnull(strstr(err, "nested too deeply"));
  n = 0;
  for (int i = 0; i < JSON_MAX_DEPTH; i++) deep[n++] = '[';
  for (int i = 0; i < JSON_MAX_DEPTH; i++) deep[n++] = ']';
  struct json *v = json_parse(deep, n, err, sizeof err);
  ck_assert_ptr_nonnull(v);
  json_free(v);
}
END_TEST

START_TEST(accessors)
{
  struct json *v = parse("{\"event\":\"x\",\"n\":42,\"f\":1.5,\"s\":\"7\",\"n\":43}");
  int64_t i = 0;
  ck_assert_str_eq(json_str(v, "event"), "x");
  ck_assert_int_eq(json_int(v, "n", &i), 1);
  ck_assert_int_eq(i, 42);                 /* first match */
  ck_assert_int_eq(json_int(v, "f", &i), 0);
  ck_assert_int_eq(json_int(v, "s", &i), 0);
  ck_assert_ptr_null(json_str(v, "n"));
  ck_assert_int_eq(json_add_str(v, "function", "main"), 0);
  ck_assert_int_eq(json_add_int(v, "line", 12), 0);
  char *out = dump(v);
  ck_assert_str_eq(out, "{\"event\":\"x\",\"n\":42,\"f\":1.5,\"s\":\"7\",\"n\":43,\"function\":\"main\",\"line\":12}");
  free(out);
  json_free(v);
}
END_TEST

static int count_kinds(const char *text, int *rec, int *bad, int *other, struct lrec *first)
{
  FILE *f = fmemopen((void *)text, strlen(text), "r");
  struct lreader r;
  struct lrec x;
  int got_first = 0;
  *rec = *bad = *other = 0;
  lr_init(&r, f, "mem");
  for (;;) {
    enum lr_kind k = lr_next(&r, &x);
    if (k == LR_EOF) break;
    if (k == LR_RECORD) {
      (*rec)++;
      if (!got_first && first) { *first = x; got_first = 1; } else lrec_free(&x);
    } else if (k == LR_BAD) (*bad)++;
    else (*other)++;
  }
  lr_done(&r);
  fclose(f);
  return got_first;
}

START_TEST(text_records_parse)
{
  const char *log =
    "program output\n"
    "==12== connguard connect_failed ts=2026-01-01T00:00:00.000Z fd=5 dst=127.0.0.1:80 errno=ECONNREFUSED attempt=1 action=retry delay_ms=73 note=\"a \\\"b\\\"\"\n"
    "==12==   hint: nothing is listening: here\n"
    "==12==     #0 0x7fb55f84b4f8 in ?? (/lib/x86_64-linux-gnu/libcurl.so.4+0x174f8)\n"
    "==12==     #1 0x55 in main+0x1a (/opt/my app/bin+0x1b)\n"
    "==13== connguard connect_recovered ts=2026-01-01T00:00:01.000Z fd=5 dst=[::1]:80 attempts=2\n"
    "==13== connguard connect_failed\n"
    "==14== other tool's line\n";
  int rec, bad, other;
  struct lrec x;
  ck_assert(count_kinds(log, &rec, &bad, &other, &x));
  ck_assert_int_eq(rec, 2);
  ck_assert_int_eq(bad, 1);
  ck_assert_int_eq(other, 2);
  ck_assert_str_eq(x.event, "connect_failed");
  ck_assert_int_eq(x.pid, 12);
  ck_assert_str_eq(lrec_get(&x, "dst"), "127.0.0.1:80");
  ck_assert_str_eq(lrec_get(&x, "note"), "a \"b\"");
  ck_assert_str_eq(lrec_get(&x, "hint"), "nothing is listening: here");
  int64_t d = 0;
  ck_assert(lrec_int(&x, "delay_ms", &d));
  ck_assert_int_eq(d, 73);
  ck_assert_int_eq(x.nframes, 2);
  ck_assert_str_eq(x.frames[0].module, "/lib/x86_64-linux-gnu/libcurl.so.4");
  ck_assert_uint_eq(x.frames[0].offset, 0x174f8);
  ck_assert_ptr_null(x.frames[0].symbol);
  ck_assert_str_eq(x.frames[1].module, "/opt/my app/bin");
  ck_assert_str_eq(x.frames[1].symbol, "main");
  ck_assert_int_eq(x.nlines, 4);
  lrec_free(&x);
}
END_TEST

START_TEST(mutated_records_never_crash)
{
  const char *good =
    "{\"ts\":\"2026-11-20T23:13:23.601Z\",\"pid\":6279,\"event\":\"connect_failed\",\"fd\":5,\"dst\":\"127.0.0.1:48747\","
    "\"errno\":\"ECONNREFUSED\",\"attempt\":1,\"action\":\"retry\",\"delay_ms\":73,\"hint\":\"h\\u00e9\","
    "\"stack\":[{\"pc\":\"0x7fb55f84b4f8\",\"module\":\"/lib/libcurl.so.4\",\"offset\":\"0x174f8\",\"symbol\":\"f\"}]}\n"
    "==1== connguard connect_failed ts=x fd=5 k=\"v\\u00e9\"\n==1==   hint: h\n==1==     #0 0x1 in f+0x2 (/m+0x3)\n";
  size_t len = strlen(good);
  char *buf = malloc(len + 1);
  unsigned seed = 12345;
  for (int iter = 0; iter < 20000; iter++) {
    memcpy(buf, good, len + 1);
    int edits = 1 + (int)(rand_r(&seed) % 4);
    size_t n = len;
    for (int e = 0; e < edits; e++) {
      size_t pos = (size_t)rand_r(&seed) % n;
      switch (rand_r(&seed) % 3) {
      case 0: buf[pos] = (char)(rand_r(&seed) % 256); if (!buf[pos]) buf[pos] = '\\'; break;
      case 1: n = pos; buf[n] = 0; break;                       /* truncate */
      case 2: memmove(buf + pos, buf + pos + 1, n - pos); n--; break;
      }
      if (n == 0) break;
    }
    int rec, bad, other;
    count_kinds(buf, &rec, &bad, &other, NULL);
    ck_assert_int_le(rec + bad + other, 16);
    char err[160];
    json_free(json_parse(buf, n, err, sizeof err));
  }
  free(buf);
}
END_TEST

int main(void)
{
  Suite *s = suite_create("tool_json");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, valid_documents_round_trip);
  tcase_add_test(tc, escapes_decode);
  tcase_add_test(tc, invalid_documents_are_rejected_with_a_position);
  tcase_add_test(tc, nesting_is_bounded);
  tcase_add_test(tc, accessors);
  tcase_add_test(tc, text_records_parse);
  tcase_add_test(tc, mutated_records_never_crash);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? 1 : 0;
}
