/* Destination patterns of CONNGUARD_ONLY / CONNGUARD_SKIP. Addresses here are only parsed
 * and compared: nothing is sent anywhere. */
#include "cgtest.h"
#include "pattern.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/un.h>

static struct sockaddr_storage ss;
static socklen_t sslen;

/* Fills ss from "1.2.3.4:80", "[::1]:80" or "unix:/path" / "unix:@abstract". */
static const struct sockaddr *addr(const char *s)
{
  memset(&ss, 0, sizeof ss);
  if (!strncmp(s, "unix:", 5)) {
    struct sockaddr_un *un = (void *)&ss;
    un->sun_family = AF_UNIX;
    const char *p = s + 5;
    size_t n = strlen(p);
    memcpy(un->sun_path, p, n);
    if (p[0] == '@') un->sun_path[0] = 0;
    sslen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (p[0] == '@' ? 0 : 1));
    return (void *)&ss;
  }
  char host[64];
  const char *colon = strrchr(s, ':');
  ck_assert_ptr_nonnull(colon);
  int port = atoi(colon + 1);
  if (s[0] == '[') {
    size_t n = (size_t)(colon - s - 2);
    memcpy(host, s + 1, n); host[n] = 0;
    struct sockaddr_in6 *in6 = (void *)&ss;
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons((uint16_t)port);
    ck_assert_int_eq(inet_pton(AF_INET6, host, &in6->sin6_addr), 1);
    sslen = sizeof *in6;
  } else {
    size_t n = (size_t)(colon - s);
    memcpy(host, s, n); host[n] = 0;
    struct sockaddr_in *in = (void *)&ss;
    in->sin_family = AF_INET;
    in->sin_port = htons((uint16_t)port);
    ck_assert_int_eq(inet_pton(AF_INET, host, &in->sin_addr), 1);
    sslen = sizeof *in;
  }
  return (void *)&ss;
}

static int matches(const char *patterns, const char *dst)
{
  struct cg_patterns ps;
  ck_assert_msg(cg_patterns_parse(patterns, &ps) == 0, "'%s' rejected", patterns);
  const struct sockaddr *sa = addr(dst);
  return cg_patterns_match(&ps, sa, sslen);
}

#define YES(p, d) ck_assert_msg(matches(p, d), "'%s' should match %s", p, d)
#define NO(p, d) ck_assert_msg(!matches(p, d), "'%s' should not match %s", p, d)

START_TEST(exact_ipv4)
{
  YES("127.0.0.1:5432", "127.0.0.1:5432");
  NO("127.0.0.1:5432", "127.0.0.1:5433");
  NO("127.0.0.1:5432", "127.0.0.2:5432");
  NO("127.0.0.1:5432", "[::1]:5432");
  /* An IPv4-mapped IPv6 destination is the same host. */
  YES("127.0.0.1:5432", "[::ffff:127.0.0.1]:5432");
  NO("127.0.0.1:5432", "[::ffff:127.0.0.2]:5432");
}
END_TEST

START_TEST(any_host)
{
  YES("*:443", "127.0.0.1:443");
  YES("*:443", "[::1]:443");
  YES("*:443", "[2001:db8::5]:443");
  NO("*:443", "127.0.0.1:80");
  NO("*:443", "unix:/run/x.sock");
  YES("*:*", "127.0.0.1:1");
  YES("*:*", "[::1]:65535");
  NO("*:*", "unix:/run/x.sock");
}
END_TEST

START_TEST(ipv6)
{
  YES("[::1]:*", "[::1]:1");
  YES("[::1]:*", "[::1]:65535");
  NO("[::1]:*", "127.0.0.1:80");
  NO("[::1]:*", "[::2]:80");
  YES("[0:0::1]:8080", "[::1]:8080");
  YES("[2001:db8::/32]:*", "[2001:db8:ffff::1]:5");
  NO("[2001:db8::/32]:*", "[2001:db9::1]:5");
  YES("[::/0]:22", "[fe80::1]:22");
  NO("[::/0]:22", "127.0.0.1:22");   /* an IPv6 pattern does not cover plain IPv4 */
}
END_TEST

START_TEST(cidr)
{
  YES("127.0.0.0/8:*", "127.1.2.3:9");
  NO("127.0.0.0/8:*", "128.0.0.1:9");
  YES("10.1.2.128/25:80", "10.1.2.255:80");
  NO("10.1.2.128/25:80", "10.1.2.127:80");
  YES("0.0.0.0/0:80", "203.0.113.9:80");
  YES("192.168.1.7/32:1", "192.168.1.7:1");
  NO("192.168.1.7/32:1", "192.168.1.6:1");
  YES("127.0.0.0/8:*", "[::ffff:127.9.9.9]:4");
  /* Host bits set in the pattern are ignored by the prefix comparison. */
  YES("127.0.0.1/8:*", "127.200.0.1:4");
  YES("10.0.0.0/9:1", "10.127.255.255:1");
  NO("10.0.0.0/9:1", "10.128.0.0:1");
}
END_TEST

START_TEST(port_ranges)
{
  YES("*:8000-8100", "127.0.0.1:8000");
  YES("*:8000-8100", "127.0.0.1:8100");
  YES("*:8000-8100", "[::1]:8050");
  NO("*:8000-8100", "127.0.0.1:7999");
  NO("*:8000-8100", "127.0.0.1:8101");
  YES("*:0-65535", "127.0.0.1:0");
  YES("*:5-5", "127.0.0.1:5");
}
END_TEST

START_TEST(unix_paths)
{
  YES("unix:/run/app.sock", "unix:/run/app.sock");
  NO("unix:/run/app.sock", "unix:/run/app.sock2");
  NO("unix:/run/app.sock", "127.0.0.1:80");
  YES("unix:/run/*.sock", "unix:/run/db.sock");
  NO("unix:/run/*.sock", "unix:/var/run/db.sock");
  YES("unix:*", "unix:/anything");
  YES("unix:@myapp", "unix:@myapp");
  NO("unix:@myapp", "unix:/myapp");
  NO("unix:/x", "unix:@x");
}
END_TEST

START_TEST(lists)
{
  YES("127.0.0.1:1, *:443 ,[::1]:*", "127.0.0.1:443");
  YES("127.0.0.1:1, *:443 ,[::1]:*", "[::1]:9");
  YES("127.0.0.1:1, *:443 ,[::1]:*", "127.0.0.1:1");
  NO("127.0.0.1:1, *:443 ,[::1]:*", "127.0.0.1:2");
  struct cg_patterns ps;
  ck_assert_int_eq(cg_patterns_parse("127.0.0.1:1,unix:/a", &ps), 0);
  ck_assert_int_eq(ps.n, 2);
  ck_assert_int_eq(ps.has_unix, 1);
  ck_assert_int_eq(cg_patterns_parse("", &ps), 0);
  ck_assert_int_eq(ps.n, 0);
  ck_assert_int_eq(cg_patterns_parse(NULL, &ps), 0);
  ck_assert_int_eq(ps.n, 0);
  /* An empty list matches nothing. */
  const struct sockaddr *sa = addr("127.0.0.1:1");
  ck_assert_int_eq(cg_patterns_match(&ps, sa, sslen), 0);
}
END_TEST

START_TEST(max_patterns)
{
  char buf[2048] = "";
  for (int i = 0; i < CG_MAX_PATTERNS; i++) {
    char one[32];
    snprintf(one, sizeof one, "%s127.0.0.1:%d", i ? "," : "", 1000 + i);
    strcat(buf, one);
  }
  struct cg_patterns ps;
  ck_assert_int_eq(cg_patterns_parse(buf, &ps), 0);
  ck_assert_int_eq(ps.n, CG_MAX_PATTERNS);
  const struct sockaddr *sa = addr("127.0.0.1:1031");
  ck_assert(cg_patterns_match(&ps, sa, sslen));
  strcat(buf, ",127.0.0.1:9");
  ck_assert_int_eq(cg_patterns_parse(buf, &ps), -1);
  ck_assert_int_eq(ps.n, 0);
}
END_TEST

START_TEST(bad_patterns)
{
  static const char *const bad[] = {
    "banana", "127.0.0.1", "127.0.0.1:", ":80", "localhost:80", "127.0.0.1:65536", "127.0.0.1:-1",
    "127.0.0.1:80-79", "127.0.0.1:80-", "127.0.0.1:-80", "127.0.0.1:8x", "127.0.0.1:*-5",
    "127.0.0.256:80", "127.0.0.1/33:80", "127.0.0.1/:80", "127.0.0.1/-1:80", "127.0.0.1/8x:80",
    "::1:80", "[::1]", "[::1]80", "[::1]:", "[::1:80", "[*]:80", "[::1/129]:80", "[127.0.0.1]:80",
    "*", "*:", "unix:", "1.2.3.4:5:6", "127.0.0.1:80,", ",127.0.0.1:80", "127.0.0.1:80,,*:1",
    "unix:/a,banana", "[::1]:99999", "*/8:80",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    struct cg_patterns ps;
    ps.n = 7;
    ck_assert_msg(cg_patterns_parse(bad[i], &ps) == -1, "'%s' accepted", bad[i]);
    ck_assert_int_eq(ps.n, 0);
    ck_assert_int_eq(ps.has_unix, 0);
  }
}
END_TEST

START_TEST(long_unix_path)
{
  char p[200] = "unix:/";
  memset(p + 6, 'a', 120);
  p[126] = 0;
  struct cg_patterns ps;
  ck_assert_int_eq(cg_patterns_parse(p, &ps), -1);
}
END_TEST

START_TEST(short_sockaddrs_never_match)
{
  struct cg_patterns ps;
  ck_assert_int_eq(cg_patterns_parse("*:*,unix:*", &ps), 0);
  const struct sockaddr *sa = addr("127.0.0.1:80");
  ck_assert_int_eq(cg_patterns_match(&ps, sa, sizeof(struct sockaddr_in) - 1), 0);
  ck_assert_int_eq(cg_patterns_match(&ps, sa, 1), 0);
  ck_assert_int_eq(cg_patterns_match(&ps, NULL, 16), 0);
  sa = addr("[::1]:80");
  ck_assert_int_eq(cg_patterns_match(&ps, sa, sizeof(struct sockaddr_in6) - 1), 0);
  /* An unnamed unix address (family only) is matched by unix:* as "". */
  struct sockaddr_un un = { .sun_family = AF_UNIX };
  ck_assert_int_eq(cg_patterns_parse("unix:/x", &ps), 0);
  ck_assert_int_eq(cg_patterns_match(&ps, (void *)&un, sizeof(sa_family_t)), 0);
}
END_TEST

static Suite *suite(void)
{
  Suite *s = suite_create("pattern");
  TCase *t = tcase_create("pattern");
  tcase_add_test(t, exact_ipv4);
  tcase_add_test(t, any_host);
  tcase_add_test(t, ipv6);
  tcase_add_test(t, cidr);
  tcase_add_test(t, port_ranges);
  tcase_add_test(t, unix_paths);
  tcase_add_test(t, lists);
  tcase_add_test(t, max_patterns);
  tcase_add_test(t, bad_patterns);
  tcase_add_test(t, long_unix_path);
  tcase_add_test(t, short_sockaddrs_never_match);
  suite_add_tcase(s, t);
  return s;
}

CG_TEST_MAIN(suite)
