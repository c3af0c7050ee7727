/* Allocation-free formatting: numbers, JSON strings (parsed back), addresses, timestamps. */
#include "cgtest.h"
#include "fmt.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/un.h>
#include <time.h>

static char mem[4096];
static struct cg_buf b;

static const char *json(const char *s, size_t n)
{
  cg_buf_init(&b, mem, sizeof mem);
  cg_buf_json_strn(&b, s, n);
  return cg_buf_str(&b);
}
#define J(lit) json(lit, sizeof(lit) - 1)

START_TEST(numbers)
{
  cg_buf_init(&b, mem, sizeof mem);
  cg_buf_u64(&b, 0); cg_buf_putc(&b, ' ');
  cg_buf_u64(&b, UINT64_MAX); cg_buf_putc(&b, ' ');
  cg_buf_i64(&b, -1); cg_buf_putc(&b, ' ');
  cg_buf_i64(&b, INT64_MIN); cg_buf_putc(&b, ' ');
  cg_buf_i64(&b, INT64_MAX); cg_buf_putc(&b, ' ');
  cg_buf_hex(&b, 0); cg_buf_putc(&b, ' ');
  cg_buf_hex(&b, 0x7f00deadbeefULL); cg_buf_putc(&b, ' ');
  cg_buf_hex(&b, UINT64_MAX); cg_buf_putc(&b, ' ');
  cg_buf_pad(&b, 7, 3); cg_buf_putc(&b, ' ');
  cg_buf_pad(&b, 12345, 2); cg_buf_putc(&b, ' ');
  cg_buf_pad(&b, 0, 4);
  ck_assert_str_eq(cg_buf_str(&b), "0 18446744073709551615 -1 -9223372036854775808 9223372036854775807 "
                   "0x0 0x7f00deadbeef 0xffffffffffffffff 007 12345 0000");
  ck_assert_int_eq(b.truncated, 0);
}
END_TEST

START_TEST(truncation)
{
  char small[8];
  cg_buf_init(&b, small, sizeof small);
  cg_buf_puts(&b, "abc");
  ck_assert_int_eq(b.truncated, 0);
  cg_buf_puts(&b, "defghij");
  ck_assert_int_eq(b.truncated, 1);
  ck_assert_uint_eq(b.len, 7);
  ck_assert_str_eq(cg_buf_str(&b), "abcdefg");
  cg_buf_putc(&b, 'x');
  ck_assert_str_eq(cg_buf_str(&b), "abcdefg");
  char one[1];
  cg_buf_init(&b, one, 1);
  cg_buf_puts(&b, "x");
  ck_assert_str_eq(cg_buf_str(&b), "");
}
END_TEST

START_TEST(json_plain_and_escapes)
{
  ck_assert_str_eq(J(""), "\"\"");
  ck_assert_str_eq(J("hello world"), "\"hello world\"");
  ck_assert_str_eq(J("say \"hi\""), "\"say \\\"hi\\\"\"");
  ck_assert_str_eq(J("C:\\dir\\"), "\"C:\\\\dir\\\\\"");
  ck_assert_str_eq(J("a\nb\rc\td"), "\"a\\nb\\rc\\td\"");
  ck_assert_str_eq(J("\x01\x1f\x7f"), "\"\\u0001\\u001f\\u007f\"");
  ck_assert_str_eq(J("nul\0byte"), "\"nul\\u0000byte\"");
  ck_assert_str_eq(J("</script>"), "\"</script>\"");
}
END_TEST

START_TEST(json_utf8)
{
  /* Valid UTF-8 passes through unchanged. */
  ck_assert_str_eq(J("caf\xc3\xa9"), "\"caf\xc3\xa9\"");
  ck_assert_str_eq(J("\xe2\x82\xac"), "\"\xe2\x82\xac\"");
  ck_assert_str_eq(J("\xf0\x9f\x98\x80"), "\"\xf0\x9f\x98\x80\"");
  /* Invalid bytes become \u00XX escapes, one per byte. */
  ck_assert_str_eq(J("\xff"), "\"\\u00ff\"");
  ck_assert_str_eq(J("\xc3"), "\"\\u00c3\"");                     /* truncated sequence */
  ck_assert_str_eq(J("\xc3("), "\"\\u00c3(\"");
  ck_assert_str_eq(J("\xc0\xaf"), "\"\\u00c0\\u00af\"");           /* overlong '/' */
  ck_assert_str_eq(J("\xed\xa0\x80"), "\"\\u00ed\\u00a0\\u0080\""); /* surrogate */
  ck_assert_str_eq(J("\xf4\x90\x80\x80"), "\"\\u00f4\\u0090\\u0080\\u0080\""); /* > U+10FFFF */
  ck_assert_str_eq(J("\x80"), "\"\\u0080\"");
  ck_assert_str_eq(J("a\xe2\x82"), "\"a\\u00e2\\u0082\"");
  const char *o = J("\xe2\x82");
  ck_assert(cg_json_valid(o, strlen(o)));
}
END_TEST

START_TEST(json_null_string)
{
  cg_buf_init(&b, mem, sizeof mem);
  cg_buf_json_str(&b, NULL);
  ck_assert_str_eq(cg_buf_str(&b), "null");
}
END_TEST

/* Every string of random bytes, of every kind, comes out as valid JSON. */
START_TEST(json_random_bytes_always_valid)
{
  uint64_t st = 0x1234;
  unsigned char in[64];
  for (int round = 0; round < 50000; round++) {
    st ^= st << 13; st ^= st >> 7; st ^= st << 17;
    size_t n = st % sizeof in;
    for (size_t i = 0; i < n; i++) {
      st ^= st << 13; st ^= st >> 7; st ^= st << 17;
      unsigned r = (unsigned)(st >> 24);
      /* Favour the interesting bytes: controls, quotes, backslashes, UTF-8 lead/continuation. */
      static const unsigned char pick[] = { 0, '"', '\\', '\n', 0x7f, 0x80, 0xbf, 0xc0, 0xc3, 0xe2, 0xed, 0xf0, 0xf4, 0xff, 'a' };
      in[i] = (r & 1) ? (unsigned char)(r >> 8) : pick[(r >> 8) % sizeof pick];
    }
    const char *out = json((const char *)in, n);
    ck_assert_msg(cg_json_valid(out, strlen(out)), "invalid JSON for round %d: %s", round, out);
  }
}
END_TEST

START_TEST(json_checker_self_test)
{
  /* The checker must reject what it is there to catch. */
  static const char *const bad[] = { "\"a", "\"a\nb\"", "\"\\x41\"", "\"\xff\"", "\"\xc0\xaf\"", "{\"a\":1,}",
                                     "[1 2]", "{\"a\" 1}", "01", "1.", "\"\\u12\"", "", "{}}", "\"\x01\"" };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    ck_assert_msg(!cg_json_valid(bad[i], strlen(bad[i])), "accepted: %s", bad[i]);
  static const char *const good[] = { "\"\"", "{}", "[]", "{\"a\":[1,-2.5e3,true,false,null,\"x\"]}",
                                      "\"\\u00ff\\n\\\"\"", " {\"k\" : \"\xc3\xa9\"} " };
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
    ck_assert_msg(cg_json_valid(good[i], strlen(good[i])), "rejected: %s", good[i]);
}
END_TEST

static const char *fmt_addr(const struct sockaddr *sa, unsigned len)
{
  cg_buf_init(&b, mem, sizeof mem);
  cg_buf_sockaddr(&b, sa, len);
  return cg_buf_str(&b);
}

START_TEST(sockaddrs)
{
  struct sockaddr_in in = { .sin_family = AF_INET, .sin_port = htons(8080) };
  inet_pton(AF_INET, "127.0.0.1", &in.sin_addr);
  ck_assert_str_eq(fmt_addr((void *)&in, sizeof in), "127.0.0.1:8080");
  in.sin_port = 0;
  ck_assert_str_eq(fmt_addr((void *)&in, sizeof in), "127.0.0.1:0");
  in.sin_port = htons(65535);
  inet_pton(AF_INET, "255.255.255.255", &in.sin_addr);
  ck_assert_str_eq(fmt_addr((void *)&in, sizeof in), "255.255.255.255:65535");

  struct sockaddr_in6 in6 = { .sin6_family = AF_INET6, .sin6_port = htons(443) };
  inet_pton(AF_INET6, "::1", &in6.sin6_addr);
  ck_assert_str_eq(fmt_addr((void *)&in6, sizeof in6), "[::1]:443");
  inet_pton(AF_INET6, "::ffff:127.0.0.1", &in6.sin6_addr);
  ck_assert_str_eq(fmt_addr((void *)&in6, sizeof in6), "[::ffff:127.0.0.1]:443");
  inet_pton(AF_INET6, "2001:db8:0:0:1:0:0:1", &in6.sin6_addr);
  ck_assert_str_eq(fmt_addr((void *)&in6, sizeof in6), "[2001:db8::1:0:0:1]:443");

  struct sockaddr_un un = { .sun_family = AF_UNIX };
  strcpy(un.sun_path, "/run/app.sock");
  ck_assert_str_eq(fmt_addr((void *)&un, (unsigned)(offsetof(struct sockaddr_un, sun_path) + 14)), "unix:/run/app.sock");
  ck_assert_str_eq(fmt_addr((void *)&un, sizeof un), "unix:/run/app.sock");
  memset(un.sun_path, 'x', sizeof un.sun_path);   /* no terminating NUL: bounded by the length */
  const char *s = fmt_addr((void *)&un, sizeof un);
  ck_assert_uint_eq(strlen(s), 5 + sizeof un.sun_path);
  memset(un.sun_path, 0, sizeof un.sun_path);
  memcpy(un.sun_path, "\0abstract", 9);
  ck_assert_str_eq(fmt_addr((void *)&un, (unsigned)(offsetof(struct sockaddr_un, sun_path) + 9)), "unix:@abstract");
  ck_assert_str_eq(fmt_addr((void *)&un, sizeof(sa_family_t)), "unix:(unnamed)");

  /* Short or odd addresses never read past the length. */
  ck_assert_str_eq(fmt_addr(NULL, 0), "(none)");
  ck_assert_str_eq(fmt_addr((void *)&in, 1), "(none)");
  ck_assert_str_eq(fmt_addr((void *)&in, sizeof in - 1), "family:2");
  ck_assert_str_eq(fmt_addr((void *)&in6, sizeof in6 - 1), "family:10");
  struct sockaddr other = { .sa_family = AF_PACKET };
  ck_assert_str_eq(fmt_addr(&other, sizeof other), "family:17");
}
END_TEST

static const char *iso(int64_t ns)
{
  cg_buf_init(&b, mem, sizeof mem);
  cg_buf_iso8601(&b, ns);
  return cg_buf_str(&b);
}

START_TEST(timestamps_known)
{
  ck_assert_str_eq(iso(0), "1970-01-01T00:00:00.000Z");
  ck_assert_str_eq(iso(999999999), "1970-01-01T00:00:00.999Z");
  ck_assert_str_eq(iso(951782400LL * 1000000000), "2000-02-29T00:00:00.000Z");
  ck_assert_str_eq(iso(951868800LL * 1000000000), "2000-03-01T00:00:00.000Z");
  ck_assert_str_eq(iso(946684799LL * 1000000000 + 999000000), "1999-12-31T23:59:59.999Z");
  ck_assert_str_eq(iso(1709210096LL * 1000000000 + 789123456), "2024-02-29T12:34:56.789Z");
  ck_assert_str_eq(iso(4107542400LL * 1000000000), "2100-03-01T00:00:00.000Z");
  ck_assert_str_eq(iso(4107456000LL * 1000000000), "2100-02-28T00:00:00.000Z");
}
END_TEST

START_TEST(timestamps_match_gmtime)
{
  uint64_t st = 99;
  for (int i = 0; i < 100000; i++) {
    st ^= st << 13; st ^= st >> 7; st ^= st << 17;
    int64_t secs = (int64_t)(st % 8000000000ULL);   /* 1970 .. ~2223 */
    int64_t ns = secs * 1000000000 + (int64_t)(st % 1000000000);
    time_t t = (time_t)secs;
    struct tm tm;
    gmtime_r(&t, &tm);
    char want[64];
    snprintf(want, sizeof want, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)((ns % 1000000000) / 1000000));
    ck_assert_str_eq(iso(ns), want);
  }
}
END_TEST

static Suite *suite(void)
{
  Suite *s = suite_create("fmt");
  TCase *t = tcase_create("fmt");
  tcase_add_test(t, numbers);
  tcase_add_test(t, truncation);
  tcase_add_test(t, json_plain_and_escapes);
  tcase_add_test(t, json_utf8);
  tcase_add_test(t, json_null_string);
  tcase_add_test(t, json_random_bytes_always_valid);
  tcase_add_test(t, json_checker_self_test);
  tcase_add_test(t, sockaddrs);
  tcase_add_test(t, timestamps_known);
  tcase_add_test(t, timestamps_match_gmtime);
  suite_add_tcase(s, t);
  return s;
}

CG_TEST_MAIN(suite)
