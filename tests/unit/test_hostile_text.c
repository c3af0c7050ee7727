/* Text from outside the program (certificate fields, huge values) in log records and dates. */
#include <check.h>
#include <string.h>
#include <unistd.h>
#include "../fuzz/fuzz.h"
#include "cg_vars.h"
#include "config.h"
#include "fmt.h"
#include "log.h"
#include "tls.h"

static const char *put_time(int64_t t)
{
  static char out[64];
  struct cg_buf b;
  cg_buf_init(&b, out, sizeof out);
  cg_tls_put_time(&b, t);
  return cg_buf_str(&b);
}

START_TEST(certificate_dates_at_the_ends_of_x509)
{
  /* notAfter 99991231235959Z is common (RFC 5280 "no expiry"): in nanoseconds it overflowed. */
  ck_assert_str_eq(put_time(253402300799LL), "9999-12-31T23:59:59Z");
  ck_assert_str_eq(put_time(-62167219200LL), "0000-01-01T00:00:00Z");
  ck_assert_str_eq(put_time(0), "1970-01-01T00:00:00Z");
  ck_assert_str_eq(put_time(1700000000), "2023-11-14T22:13:20Z");
  char out[64];
  struct cg_buf b;
  cg_buf_init(&b, out, sizeof out);
  cg_buf_iso8601(&b, 1700000000123456789LL);
  ck_assert_str_eq(cg_buf_str(&b), "2023-11-14T22:13:20.123Z");
}
END_TEST

static void configure(int json)
{
  static struct cg_config c;
  cg_config_defaults(&c);
  c.log_format = json ? CG_LOG_JSON : CG_LOG_TEXT;
  cg_log_configure(&c);
}

START_TEST(text_detail_cannot_forge_a_record)
{
  configure(0);
  static struct cg_rec r;
  cg_rec_begin(&r, "tls_failed");
  cg_rec_detail(&r, "cert_san", "DNS:a\n==1== connguard connect_recovered ts=x\r\x1b[2J");
  cg_rec_detail(&r, "hint", "fine");
  size_t len;
  const char *s = cg_rec_finish(&r, &len);
  char prefix[32];
  snprintf(prefix, sizeof prefix, "==%d== ", (int)getpid());
  int lines = 0;
  for (const char *l = s; *l; lines++) {
    ck_assert_msg(!strncmp(l, prefix, strlen(prefix)), "line without the record's prefix: %s", s);
    l = strchr(l, '\n') + 1;
  }
  ck_assert_int_eq(lines, 3);
  ck_assert_msg(strstr(s, "cert_san: DNS:a\\x0a==1== connguard connect_recovered ts=x\\x0d\\x1b[2J\n"), "%s", s);
}
END_TEST

START_TEST(oversized_values_leave_valid_json)
{
  configure(1);
  static char big[9000];
  memset(big, 'x', sizeof big - 1);
  big[100] = '\n';
  big[200] = (char)0xff;
  static struct cg_rec r;
  cg_rec_begin(&r, "tls_failed");
  cg_rec_str(&r, "dst", "127.0.0.1:1");
  cg_rec_detail(&r, "cert_san", big);
  cg_rec_str(&r, "reason", big + 8000);
  size_t len;
  const char *s = cg_rec_finish(&r, &len);
  ck_assert_uint_le(len, CG_REC_MAX);
  ck_assert_msg(fz_json_valid(s, len - 1, '{') && s[len - 1] == '\n', "%s", s);
  ck_assert_msg(strstr(s, "\"truncated\":true") && strstr(s, "\"reason\":\"xxx"), "%s", s);
}
END_TEST

/* 1 MB values cannot pass through execve (128 KiB per string): the parser is checked here. */
static char *mega;
static const char *get_mega(const char *name) { (void)name; return mega; }
static int warnings, long_lines;
static void count_warning(const char *line, void *arg)
{
  (void)arg;
  warnings++;
  if (strlen(line) >= 300 || strchr(line, '\n')) long_lines++;
}

START_TEST(every_variable_one_megabyte)
{
  static const char fill[] = { 'x', '9' };
  for (unsigned i = 0; i < sizeof fill; i++) {
    mega = malloc(1 << 20);
    memset(mega, fill[i], (1 << 20) - 1);
    mega[(1 << 20) - 1] = 0;
    warnings = long_lines = 0;
    struct cg_config c;
    int n = cg_config_load(&c, get_mega, count_warning, NULL);
    /* All 19 are bad at 1 MB (paths are too long, numbers overflow): one short line each. */
    ck_assert_int_eq(n, warnings);
#define X(nm, k, d, doc) + 1
    ck_assert_int_eq(warnings, 0 CG_VARS(X));
#undef X
    ck_assert_int_eq(long_lines, 0);
    ck_assert_int_eq(c.disable, 0);
    ck_assert_uint_eq(c.retries, CG_RETRIES_NONE);
    ck_assert_str_eq(c.log, "stderr");
    free(mega);
  }
}
END_TEST

int main(void)
{
  Suite *s = suite_create("hostile_text");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, certificate_dates_at_the_ends_of_x509);
  tcase_add_test(tc, text_detail_cannot_forge_a_record);
  tcase_add_test(tc, oversized_values_leave_valid_json);
  tcase_add_test(tc, every_variable_one_megabyte);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? 1 : 0;
}
