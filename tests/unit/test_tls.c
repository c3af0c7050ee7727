/* TLS diagnosis helpers: classification, hints, histogram buckets, and the OpenSSL constants
 * the shim declares itself (checked against the headers; nothing of OpenSSL is linked). */
#include <check.h>
#include <errno.h>
#include <string.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include "stats.h"
#include "tls.h"

START_TEST(constants_match_headers)
{
  ck_assert_int_eq(CG_SSL_ERROR_SSL, SSL_ERROR_SSL);
  ck_assert_int_eq(CG_SSL_ERROR_WANT_READ, SSL_ERROR_WANT_READ);
  ck_assert_int_eq(CG_SSL_ERROR_WANT_WRITE, SSL_ERROR_WANT_WRITE);
  ck_assert_int_eq(CG_SSL_ERROR_SYSCALL, SSL_ERROR_SYSCALL);
  ck_assert_int_eq(CG_SSL_ERROR_ZERO_RETURN, SSL_ERROR_ZERO_RETURN);
  ck_assert_int_eq(CG_ERR_LIB_SYS, ERR_LIB_SYS);
  ck_assert_int_eq(CG_ERR_LIB_SSL, ERR_LIB_SSL);
  ck_assert_uint_eq(CG_ERR_SYSTEM_FLAG, ERR_SYSTEM_FLAG);
  ck_assert_int_eq(CG_SSL_R_CERTIFICATE_VERIFY_FAILED, SSL_R_CERTIFICATE_VERIFY_FAILED);
  ck_assert_int_eq(CG_SSL_R_UNEXPECTED_EOF_WHILE_READING, SSL_R_UNEXPECTED_EOF_WHILE_READING);
  ck_assert_int_eq(CG_SSL_AD_REASON_OFFSET, SSL_AD_REASON_OFFSET);
  ck_assert_int_eq(CG_X509_V_ERR_CERT_HAS_EXPIRED, X509_V_ERR_CERT_HAS_EXPIRED);
  ck_assert_int_eq(CG_X509_V_ERR_CERT_NOT_YET_VALID, X509_V_ERR_CERT_NOT_YET_VALID);
  ck_assert_int_eq(CG_X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_HOSTNAME_MISMATCH);
  ck_assert_int_eq(CG_X509_V_ERR_IP_ADDRESS_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH);
  ck_assert_int_eq(CG_X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT, X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT);
  ck_assert_int_eq(CG_X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN, X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN);
  ck_assert_int_eq(CG_X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT, X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT);
  ck_assert_int_eq(CG_X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY, X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);
  ck_assert_int_eq(CG_X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE, X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE);
  /* Values private to tls.c, repeated here on purpose. */
  ck_assert_int_eq(GEN_DNS, 2);
  ck_assert_int_eq(GEN_IPADD, 7);
  ck_assert_int_eq(NID_subject_alt_name, 85);
  ck_assert_int_eq(SSL_CTRL_SET_TLSEXT_HOSTNAME, 55);
  ck_assert_int_eq(TLSEXT_NAMETYPE_host_name, 0);
  ck_assert_int_eq(BIO_FLAGS_IN_EOF, 0x800);
  ck_assert_int_eq(BIO_TYPE_DESCRIPTOR, 0x100);
  ck_assert_int_eq(BIO_CTRL_INFO, 3);
  ck_assert_int_eq(SSL_VERIFY_PEER, 1);
  ck_assert(SSL_OP_IGNORE_UNEXPECTED_EOF == (1ULL << 7));
  ck_assert_uint_eq((ASN1_STRFLGS_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) | XN_FLAG_SEP_CPLUS_SPC | XN_FLAG_FN_SN |
                    XN_FLAG_DUMP_UNKNOWN_FIELDS,
                    0x1UL | 0x2UL | 0x10UL | 0x100UL | 0x200UL | (2UL << 16) | (1UL << 24));
  /* GENERAL_NAME: an int then the union of pointers. */
  GENERAL_NAME g;
  ck_assert_uint_eq((char *)&g.d - (char *)&g, sizeof(void *));
}
END_TEST

START_TEST(error_code_parts)
{
  unsigned long c = ERR_PACK(ERR_LIB_SSL, 0, SSL_R_CERTIFICATE_VERIFY_FAILED);
  ck_assert_int_eq(cg_err_lib(c), ERR_LIB_SSL);
  ck_assert_int_eq(cg_err_reason(c), SSL_R_CERTIFICATE_VERIFY_FAILED);
  unsigned long sys = ERR_SYSTEM_FLAG | ECONNRESET;
  ck_assert_int_eq(cg_err_lib(sys), ERR_LIB_SYS);
  ck_assert_int_eq(cg_err_reason(sys), ECONNRESET);
  ck_assert_int_eq(cg_tls_alert_of(ERR_PACK(ERR_LIB_SSL, 0, SSL_R_TLSV1_ALERT_PROTOCOL_VERSION)), 70);
  ck_assert_int_eq(cg_tls_alert_of(ERR_PACK(ERR_LIB_SSL, 0, SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE)), 40);
  ck_assert_int_eq(cg_tls_alert_of(c), -1);
  ck_assert_int_eq(cg_tls_alert_of(0), -1);
  ck_assert_str_eq(cg_tls_alert_name(70), "protocol_version");
  ck_assert_str_eq(cg_tls_alert_name(112), "unrecognized_name");
}
END_TEST

#define PK(r) ERR_PACK(ERR_LIB_SSL, 0, (r))

START_TEST(classify)
{
  /* Transport failures: the ones that may be retried. */
  ck_assert_int_eq(cg_tls_classify(SSL_ERROR_SYSCALL, ECONNRESET, 0, 0), CG_TLS_RESET);
  ck_assert_int_eq(cg_tls_classify(SSL_ERROR_SYSCALL, EPIPE, 0, 0), CG_TLS_RESET);
  ck_assert_int_eq(cg_tls_classify(SSL_ERROR_SYSCALL, 0, 0, 0), CG_TLS_EOF);
  ck_assert_int_eq(cg_tls_classify(SSL_ERROR_SYSCALL, ETIMEDOUT, 0, 0), CG_TLS_TIMEOUT);
  ck_assert_int_eq(cg_tls_classify(SSL_ERROR_SYSCALL, 0, ERR_SYSTEM_FLAG | ECONNRESET, 0), CG_TLS_RESET);
  ck_assert_int_eq(cg_tls_classify(SSL_ERROR_SSL, 0, PK(SSL_R_UNEXPECTED_EOF_WHILE_READING), 0), CG_TLS_EOF);
  ck_assert_int_eq(cg_tls_classify(SSL_ERROR_SYSCALL, EHOSTUNREACH, 0, 0), CG_TLS_OTHER);
  /* Certificates. */
  unsigned long vf = PK(SSL_R_CERTIFICATE_VERIFY_FAILED);
  ck_assert_int_eq(cg_tls_classify(SSL_ERROR_SSL, 0, vf, X509_V_ERR_CERT_HAS_EXPIRED), CG_TLS_EXPIRED);
  ck_assert_int_eq(cg_tls_classify(SSL_ERROR_SSL, 0, vf, X509_V_ERR_CERT_NOT_YET_VALID), CG_TLS_NOT_YET_VALID);
  ck_assert_int_eq(cg_tls_classify(SSL_ERROR_SSL, 0, vf, X509_V_ERR_HOSTNAME_MISMATCH), CG_TLS_HOSTNAME);
  ck_assert_int_eq(cg_tls_classify(SSL_ERROR_SSL, 0, vf, X509_V_ERR_IP_ADDRESS_MISMATCH), CG_TLS_HOSTNAME);
  ck_assert_int_eq(cg_tls_classify(SSL_ERROR_SSL, 0, vf, X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT), CG_TLS_SELF_SIGNED);
  ck_assert_int_eq(cg_tls_classify(SSL_ERROR_SSL, 0, vf, X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN), CG_TLS_SELF_SIGNED);
  ck_assert_int_eq(cg_tls_classify(SSL_ERROR_SSL, 0, vf, X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY), CG_TLS_UNKNOWN_ISSUER);
  ck_assert_int_eq(cg_tls_classify(SSL_ERROR_SSL, 0, vf, X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE), CG_TLS_UNKNOWN_ISSUER);
  ck_assert_int_eq(cg_tls_classify(SSL_ERROR_SSL, 0, vf, X509_V_ERR_CERT_REVOKED), CG_TLS_VERIFY);
  /* Alerts and mismatches. */
  ck_assert_int_eq(cg_tls_classify(SSL_ERROR_SSL, 0, PK(SSL_R_TLSV1_ALERT_PROTOCOL_VERSION), 0), CG_TLS_ALERT);
  ck_assert_int_eq(cg_tls_classify(SSL_ERROR_SSL, 0, PK(SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE), 0), CG_TLS_ALERT);
  ck_assert_int_eq(cg_tls_classify(SSL_ERROR_ZERO_RETURN, 0, 0, 0), CG_TLS_ALERT);
  ck_assert_int_eq(cg_tls_classify(SSL_ERROR_SSL, 0, PK(SSL_R_WRONG_VERSION_NUMBER), 0), CG_TLS_PROTOCOL);
  ck_assert_int_eq(cg_tls_classify(SSL_ERROR_SSL, 0, PK(SSL_R_UNSUPPORTED_PROTOCOL), 0), CG_TLS_PROTOCOL);
  ck_assert_int_eq(cg_tls_classify(SSL_ERROR_SSL, 0, PK(SSL_R_NO_SHARED_CIPHER), 0), CG_TLS_PROTOCOL);
  ck_assert_int_eq(cg_tls_classify(SSL_ERROR_SSL, 0, PK(SSL_R_NO_CIPHERS_AVAILABLE), 0), CG_TLS_PROTOCOL);
  ck_assert_int_eq(cg_tls_classify(SSL_ERROR_SSL, 0, PK(SSL_R_VERSION_TOO_LOW), 0), CG_TLS_PROTOCOL);
  ck_assert_int_eq(cg_tls_classify(SSL_ERROR_SSL, 0, PK(SSL_R_BAD_SIGNATURE), 0), CG_TLS_OTHER);
  /* Only transport causes are retried. */
  ck_assert(cg_tls_cause_transport(CG_TLS_RESET) && cg_tls_cause_transport(CG_TLS_EOF) &&
            cg_tls_cause_transport(CG_TLS_TIMEOUT) && cg_tls_cause_transport(CG_TLS_RECONNECT));
  for (int c = CG_TLS_EXPIRED; c <= CG_TLS_OTHER; c++) ck_assert(!cg_tls_cause_transport(c));
  ck_assert_str_eq(cg_tls_cause_name(CG_TLS_HOSTNAME), "hostname_mismatch");
  ck_assert_str_eq(cg_tls_cause_name(CG_TLS_UNKNOWN_ISSUER), "unknown_issuer");
}
END_TEST

START_TEST(buckets)
{
  ck_assert_uint_eq(cg_tls_bucket(0), 0);
  ck_assert_uint_eq(cg_tls_bucket(1000), 0);
  ck_assert_uint_eq(cg_tls_bucket(1001), 1);
  ck_assert_uint_eq(cg_tls_bucket(30000), 5);
  ck_assert_uint_eq(cg_tls_bucket(2500000), 10);
  ck_assert_uint_eq(cg_tls_bucket(60ULL * 1000000), CG_TLS_BUCKETS - 1);
}
END_TEST

static const char *hint(struct cg_tls_facts *f)
{
  static char mem[2048];
  struct cg_buf b;
  cg_buf_init(&b, mem, sizeof mem);
  cg_tls_hint(&b, f);
  return cg_buf_str(&b);
}

static struct cg_tls_facts base(enum cg_tls_cause c)
{
  struct cg_tls_facts f = { .cause = c, .alert = -1, .reason = "", .asked = "cg.test",
                            .san = "DNS:other.test, DNS:*.other.test", .subject = "CN=other.test",
                            .issuer = "CN=Some CA", .now = 1800000000 };
  return f;
}

START_TEST(time_format)
{
  char m[64];
  struct cg_buf b;
  cg_buf_init(&b, m, sizeof m);
  cg_tls_put_time(&b, 1700000000);
  ck_assert_str_eq(cg_buf_str(&b), "2023-11-14T22:13:20Z");
}
END_TEST

START_TEST(hints)
{
  struct cg_tls_facts f = base(CG_TLS_EXPIRED);
  f.have_dates = 1;
  f.not_before = f.now - 400 * 86400;
  f.not_after = f.now - 35 * 86400;
  const char *h = hint(&f);
  ck_assert_msg(strstr(h, "expired on ") && strstr(h, "35 days ago"), "%s", h);

  f = base(CG_TLS_NOT_YET_VALID);
  f.have_dates = 1;
  f.not_before = f.now + 10 * 86400;
  f.not_after = f.now + 100 * 86400;
  f.clock_floor = f.now - 86400;
  h = hint(&f);
  ck_assert_msg(strstr(h, "10 days after the local clock") && strstr(h, "looks plausible"), "%s", h);
  f.clock_floor = f.now + 86400 * 300;     /* files newer than the clock: the clock is behind */
  h = hint(&f);
  ck_assert_msg(strstr(h, "local clock looks wrong"), "%s", h);

  f = base(CG_TLS_HOSTNAME);
  h = hint(&f);
  ck_assert_msg(strstr(h, "asked for 'cg.test'") && strstr(h, "DNS:other.test, DNS:*.other.test"), "%s", h);

  f = base(CG_TLS_SELF_SIGNED);
  h = hint(&f);
  ck_assert_msg(strstr(h, "self-signed") && strstr(h, "intercept"), "%s", h);
  f = base(CG_TLS_UNKNOWN_ISSUER);
  h = hint(&f);
  ck_assert_msg(strstr(h, "CN=Some CA") && strstr(h, "CA file"), "%s", h);

  f = base(CG_TLS_ALERT);
  f.alert = 70;
  h = hint(&f);
  ck_assert_msg(strstr(h, "protocol_version (70)") && strstr(h, "protocol or cipher mismatch"), "%s", h);
  f = base(CG_TLS_PROTOCOL);
  f.reason = "wrong version number";
  h = hint(&f);
  ck_assert_msg(strstr(h, "wrong version number") && strstr(h, "does not speak TLS"), "%s", h);
  f = base(CG_TLS_RESET);
  ck_assert_msg(strstr(hint(&f), "reset the connection during the TLS handshake"), "%s", hint(&f));
  f = base(CG_TLS_EOF);
  ck_assert_msg(strstr(hint(&f), "closed the connection during the TLS handshake"), "%s", hint(&f));
  f = base(CG_TLS_RECONNECT);
  f.sys_errno = ECONNREFUSED;
  ck_assert_msg(strstr(hint(&f), "nothing is listening"), "%s", hint(&f));
}
END_TEST

int main(void)
{
  Suite *s = suite_create("tls");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, constants_match_headers);
  tcase_add_test(tc, error_code_parts);
  tcase_add_test(tc, classify);
  tcase_add_test(tc, buckets);
  tcase_add_test(tc, time_format);
  tcase_add_test(tc, hints);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? 1 : 0;
}
