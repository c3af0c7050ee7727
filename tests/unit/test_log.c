/* Log records in text and JSON: exact strings, and truncation that keeps JSON valid. */
#include "cgtest.h"
#include "config.h"
#include "log.h"
#include "policy.h"
#include "stack.h"
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <unistd.h>

static void use_format(enum cg_logfmt f)
{
  struct cg_config c;
  cg_config_defaults(&c);
  c.log_format = f;
  cg_log_configure(&c);
}

/* Replaces the timestamp (checked for shape) with "TS" and the pid with "PID". */
static char *normalize(const char *in, char *out, size_t cap)
{
  char pid[32];
  snprintf(pid, sizeof pid, "%d", (int)getpid());
  size_t o = 0;
  for (const char *p = in; *p && o + 8 < cap;) {
    if ((!strncmp(p, "ts=", 3) && p > in && p[-1] == ' ') || !strncmp(p, "\"ts\":\"", 6)) {
      size_t k = p[0] == 't' ? 3 : 6;
      memcpy(out + o, p, k); o += k; p += k;
      /* YYYY-MM-DDTHH:MM:SS.mmmZ */
      const char *shape = "dddd-dd-ddTdd:dd:dd.dddZ";
      for (size_t i = 0; i < 24; i++) {
        if (shape[i] == 'd') ck_assert_msg(p[i] >= '0' && p[i] <= '9', "bad ts in %s", in);
        else ck_assert_msg(p[i] == shape[i], "bad ts in %s", in);
      }
      memcpy(out + o, "TS", 2); o += 2; p += 24;
      continue;
    }
    if (!strncmp(p, pid, strlen(pid)) && (p[-1] == '=' || p[-1] == ':') &&
        (p[strlen(pid)] == '=' || p[strlen(pid)] == ',')) {
      memcpy(out + o, "PID", 3); o += 3; p += strlen(pid);
      continue;
    }
    out[o++] = *p++;
  }
  out[o] = 0;
  return out;
}

static struct sockaddr_in dst4(const char *ip, int port)
{
  struct sockaddr_in in = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
  inet_pton(AF_INET, ip, &in.sin_addr);
  return in;
}

static void failed_record(struct cg_rec *r, const uintptr_t *pcs, int n)
{
  struct sockaddr_in a = dst4("127.0.0.1", 8080);
  cg_rec_begin(r, "connect_failed");
  cg_rec_int(r, "fd", 5);
  cg_rec_addr(r, "dst", (void *)&a, sizeof a);
  cg_rec_errno(r, "errno", ECONNREFUSED);
  cg_rec_int(r, "attempt", 1);
  cg_rec_str(r, "action", "retry");
  cg_rec_int(r, "delay_ms", 100);
  cg_rec_int(r, "elapsed_ms", 0);
  cg_rec_detail(r, "hint", cg_errno_hint(ECONNREFUSED, AF_INET));
  if (n) cg_rec_stack(r, pcs, n);
}

static struct cg_rec rec;
static char norm[CG_REC_MAX * 2];

START_TEST(json_record_exact)
{
  use_format(CG_LOG_JSON);
  failed_record(&rec, NULL, 0);
  size_t len;
  const char *s = cg_rec_finish(&rec, &len);
  ck_assert_uint_eq(len, strlen(s));
  ck_assert_str_eq(normalize(s, norm, sizeof norm),
    "{\"ts\":\"TS\",\"pid\":PID,\"event\":\"connect_failed\",\"fd\":5,\"dst\":\"127.0.0.1:8080\","
    "\"errno\":\"ECONNREFUSED\",\"attempt\":1,\"action\":\"retry\",\"delay_ms\":100,\"elapsed_ms\":0,"
    "\"hint\":\"nothing is listening on this address and port (server not started yet, restarting, or wrong port)\"}\n");
  ck_assert(cg_json_valid(s, len));
}
END_TEST

START_TEST(text_record_exact)
{
  use_format(CG_LOG_TEXT);
  failed_record(&rec, NULL, 0);
  const char *s = cg_rec_finish(&rec, NULL);
  ck_assert_str_eq(normalize(s, norm, sizeof norm),
    "==PID== connguard connect_failed ts=TS fd=5 dst=127.0.0.1:8080 errno=ECONNREFUSED attempt=1 "
    "action=retry delay_ms=100 elapsed_ms=0\n"
    "==PID==   hint: nothing is listening on this address and port (server not started yet, restarting, or wrong port)\n");
}
END_TEST

/* A pc inside libc's getpid, and what the record must say about it. */
static uintptr_t known_pc(char *module, uintptr_t *off, char *sym, uintptr_t *soff)
{
  uintptr_t pc = (uintptr_t)dlsym(RTLD_DEFAULT, "getpid") + 3;
  Dl_info di;
  ck_assert(dladdr((void *)(pc - 1), &di));
  strcpy(module, di.dli_fname);
  *off = pc - (uintptr_t)di.dli_fbase;
  strcpy(sym, di.dli_sname);
  *soff = pc - (uintptr_t)di.dli_saddr;
  return pc;
}

START_TEST(json_stack_exact)
{
  char module[512], sym[128], want[2048];
  uintptr_t off, soff;
  uintptr_t pcs[2];
  pcs[0] = known_pc(module, &off, sym, &soff);
  pcs[1] = 0x10;   /* nowhere: module "?", no symbol */
  use_format(CG_LOG_JSON);
  struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_port = htons(443) };
  inet_pton(AF_INET6, "::1", &a6.sin6_addr);
  cg_rec_begin(&rec, "connect_failed");
  cg_rec_addr(&rec, "dst", (void *)&a6, sizeof a6);
  cg_rec_errno(&rec, "errno", ETIMEDOUT);
  cg_rec_str(&rec, "action", "give_up");
  cg_rec_stack(&rec, pcs, 2);
  size_t len;
  const char *s = cg_rec_finish(&rec, &len);
  snprintf(want, sizeof want,
    "{\"ts\":\"TS\",\"pid\":PID,\"event\":\"connect_failed\",\"dst\":\"[::1]:443\",\"errno\":\"ETIMEDOUT\","
    "\"action\":\"give_up\",\"stack\":[{\"pc\":\"0x%lx\",\"module\":\"%s\",\"offset\":\"0x%lx\",\"symbol\":\"%s\"},"
    "{\"pc\":\"0x10\",\"module\":\"?\",\"offset\":\"0x0\"}]}\n",
    (unsigned long)pcs[0], module, (unsigned long)off, sym);
  ck_assert_str_eq(normalize(s, norm, sizeof norm), want);
  ck_assert(cg_json_valid(s, len));
}
END_TEST

START_TEST(text_stack_exact)
{
  char module[512], sym[128], want[2048];
  uintptr_t off, soff;
  uintptr_t pcs[2];
  pcs[0] = known_pc(module, &off, sym, &soff);
  pcs[1] = 0x10;
  use_format(CG_LOG_TEXT);
  cg_rec_begin(&rec, "connect_recovered");
  cg_rec_int(&rec, "attempts", 3);
  cg_rec_stack(&rec, pcs, 2);
  const char *s = cg_rec_finish(&rec, NULL);
  snprintf(want, sizeof want,
    "==PID== connguard connect_recovered ts=TS attempts=3\n"
    "==PID==     #0 0x%lx in %s+0x%lx (%s+0x%lx)\n"
    "==PID==     #1 0x10 in ?? (?+0x0)\n",
    (unsigned long)pcs[0], sym, (unsigned long)soff, module, (unsigned long)off);
  ck_assert_str_eq(normalize(s, norm, sizeof norm), want);
}
END_TEST

START_TEST(text_quotes_odd_values)
{
  use_format(CG_LOG_TEXT);
  cg_rec_begin(&rec, "e");
  cg_rec_str(&rec, "a", "two words");
  cg_rec_str(&rec, "b", "");
  cg_rec_str(&rec, "c", "q\"x");
  cg_rec_str(&rec, "d", "nl\nx");
  cg_rec_str(&rec, "e", NULL);
  cg_rec_str(&rec, "f", "plain");
  cg_rec_errno(&rec, "g", 4000);
  const char *s = cg_rec_finish(&rec, NULL);
  ck_assert_str_eq(normalize(s, norm, sizeof norm),
    "==PID== connguard e ts=TS a=\"two words\" b=\"\" c=\"q\\\"x\" d=\"nl\\nx\" e=\"\" f=plain g=E4000\n");
  /* One line per record unless details follow: a newline in a value never splits it. */
  ck_assert_int_eq((int)(strchr(s, '\n') - s), (int)strlen(s) - 1);
}
END_TEST

START_TEST(json_strings_escaped)
{
  use_format(CG_LOG_JSON);
  cg_rec_begin(&rec, "ev\"ent");
  cg_rec_str(&rec, "k\\", "v\x01\xff\"\n");
  cg_rec_detail(&rec, "hint", "h\tx");
  size_t len;
  const char *s = cg_rec_finish(&rec, &len);
  ck_assert_str_eq(normalize(s, norm, sizeof norm),
    "{\"ts\":\"TS\",\"pid\":PID,\"event\":\"ev\\\"ent\",\"k\\\\\":\"v\\u0001\\u00ff\\\"\\n\",\"hint\":\"h\\tx\"}\n");
  ck_assert(cg_json_valid(s, len));
}
END_TEST

/* Records filled to every length around the limit, with and without a stack, stay valid JSON,
 * end with "}\n", fit the buffer and say they were truncated. */
START_TEST(json_truncation_stays_valid)
{
  use_format(CG_LOG_JSON);
  static char pad[CG_REC_MAX];
  uintptr_t pcs[CG_MAX_STACK];
  for (int i = 0; i < CG_MAX_STACK; i++) pcs[i] = (uintptr_t)dlsym(RTLD_DEFAULT, i & 1 ? "getpid" : "write") + 1;
  int truncated_seen = 0, whole_seen = 0;
  for (int withstack = 0; withstack < 2; withstack++) {
    for (size_t plen = CG_REC_MAX - 2600; plen < CG_REC_MAX; plen += 7) {
      memset(pad, 'x', plen);
      pad[plen] = 0;
      pad[plen / 2] = '"';   /* escaped: two bytes */
      cg_rec_begin(&rec, "connect_failed");
      cg_rec_int(&rec, "fd", 3);
      cg_rec_str(&rec, "pad", pad);
      cg_rec_int(&rec, "attempt", 2);
      cg_rec_detail(&rec, "hint", "some hint");
      if (withstack) cg_rec_stack(&rec, pcs, CG_MAX_STACK);
      size_t len;
      const char *s = cg_rec_finish(&rec, &len);
      ck_assert_uint_lt(len, CG_REC_MAX);
      ck_assert_uint_eq(len, strlen(s));
      ck_assert_msg(cg_json_valid(s, len), "invalid JSON at pad %zu stack %d: ...%s", plen, withstack,
                    s + (len > 200 ? len - 200 : 0));
      ck_assert(len >= 2 && s[len - 1] == '\n' && s[len - 2] == '}');
      ck_assert_ptr_nonnull(strstr(s, "\"event\":\"connect_failed\""));
      ck_assert_ptr_null(memchr(s, '\n', len - 1));
      if (strstr(s, "\"truncated\":true")) truncated_seen++;
      else whole_seen++;
    }
  }
  ck_assert_int_gt(truncated_seen, 0);
  ck_assert_int_gt(whole_seen, 0);
}
END_TEST

START_TEST(json_oversized_field_dropped_whole)
{
  use_format(CG_LOG_JSON);
  static char big[20000];
  memset(big, 'y', sizeof big - 1);
  cg_rec_begin(&rec, "connect_failed");
  cg_rec_int(&rec, "fd", 3);
  cg_rec_str(&rec, "huge", big);
  cg_rec_int(&rec, "attempt", 2);
  size_t len;
  const char *s = cg_rec_finish(&rec, &len);
  ck_assert_str_eq(normalize(s, norm, sizeof norm),
    "{\"ts\":\"TS\",\"pid\":PID,\"event\":\"connect_failed\",\"fd\":3,\"attempt\":2,\"truncated\":true}\n");
}
END_TEST

START_TEST(text_truncation)
{
  use_format(CG_LOG_TEXT);
  static char big[20000];
  memset(big, 'y', sizeof big - 1);
  cg_rec_begin(&rec, "connect_failed");
  cg_rec_int(&rec, "fd", 3);
  cg_rec_str(&rec, "huge", big);
  const char *s = cg_rec_finish(&rec, NULL);
  ck_assert_str_eq(normalize(s, norm, sizeof norm), "==PID== connguard connect_failed ts=TS fd=3 truncated=1\n");
  cg_rec_begin(&rec, "connect_failed");
  cg_rec_detail(&rec, "hint", "h");
  cg_rec_detail(&rec, "more", big);
  s = cg_rec_finish(&rec, NULL);
  ck_assert_str_eq(normalize(s, norm, sizeof norm),
    "==PID== connguard connect_failed ts=TS\n==PID==   hint: h\n==PID==   (record truncated)\n");
}
END_TEST

START_TEST(expand_path)
{
  char out[64];
  cg_log_expand_path("/tmp/log.%p", 123, out, sizeof out);
  ck_assert_str_eq(out, "/tmp/log.123");
  cg_log_expand_path("%p-%p", 7, out, sizeof out);
  ck_assert_str_eq(out, "7-7");
  cg_log_expand_path("/tmp/plain", 7, out, sizeof out);
  ck_assert_str_eq(out, "/tmp/plain");
  cg_log_expand_path("/tmp/x%", 7, out, sizeof out);
  ck_assert_str_eq(out, "/tmp/x%");
  cg_log_expand_path("/tmp/%d", 7, out, sizeof out);
  ck_assert_str_eq(out, "/tmp/%d");
  char tiny[8];
  cg_log_expand_path("/tmp/log.%p", 123456, tiny, sizeof tiny);
  ck_assert_uint_eq(strlen(tiny), 7);
}
END_TEST

static Suite *suite(void)
{
  Suite *s = suite_create("log");
  TCase *t = tcase_create("log");
  tcase_add_test(t, json_record_exact);
  tcase_add_test(t, text_record_exact);
  tcase_add_test(t, json_stack_exact);
  tcase_add_test(t, text_stack_exact);
  tcase_add_test(t, text_quotes_odd_values);
  tcase_add_test(t, json_strings_escaped);
  tcase_add_test(t, json_truncation_stays_valid);
  tcase_add_test(t, json_oversized_field_dropped_whole);
  tcase_add_test(t, text_truncation);
  tcase_add_test(t, expand_path);
  suite_add_tcase(s, t);
  return s;
}

CG_TEST_MAIN(suite)
