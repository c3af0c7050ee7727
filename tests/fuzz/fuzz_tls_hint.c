/* TLS diagnosis text from what a (possibly hostile) server sent: certificate names, SANs,
 * dates anywhere in X.509's range (years 0000-9999), alerts, OpenSSL codes. Memory-safe and
 * free of undefined behaviour (the sanitizers check), always NUL-terminated. */
#include "fuzz.h"
#include "tls.h"

#define FZT_MIN_SECS (-62167219200LL)   /* 0000-01-01T00:00:00Z */
#define FZT_MAX_SECS 253402300799LL     /* 9999-12-31T23:59:59Z */

static int64_t fzt_date(struct fz *f)
{
  uint64_t v = fz_u64(f, 8);
  return FZT_MIN_SECS + (int64_t)(v % (uint64_t)(FZT_MAX_SECS - FZT_MIN_SECS + 1));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct fz f = { data, size };
  char reason[512], asked[512], san[1024], subject[512], issuer[512], out[1536];
  struct cg_tls_facts t;
  memset(&t, 0, sizeof t);
  t.cause = (enum cg_tls_cause)(fz_byte(&f) % (CG_TLS_OTHER + 2));
  t.sys_errno = (int)fz_u64(&f, 2) - 1000;
  t.alert = (int)fz_u64(&f, 2) - 1000;
  t.have_dates = (int)(fz_byte(&f) & 1);
  t.not_before = fzt_date(&f);
  t.not_after = fzt_date(&f);
  t.now = (int64_t)(fz_u64(&f, 5) % 9000000000ULL);   /* a clock_gettime() value in seconds */
  t.clock_floor = (int64_t)(fz_u64(&f, 5) % 9000000000ULL);
  t.cert_depth = (int)(fz_byte(&f) % 12);
  t.after_handshake = (int)(fz_byte(&f) & 1);
  fz_str(&f, reason, sizeof reason);
  fz_str(&f, asked, sizeof asked);
  fz_str(&f, san, sizeof san);
  fz_str(&f, subject, sizeof subject);
  fz_str(&f, issuer, sizeof issuer);
  t.reason = reason; t.asked = asked; t.san = san; t.subject = subject; t.issuer = issuer;
  struct cg_buf b;
  cg_buf_init(&b, out, sizeof out);
  cg_tls_hint(&b, &t);
  const char *s = cg_buf_str(&b);
  FZ_CHECK(strlen(s) < sizeof out, "hint overflow");
  char when[64];
  cg_buf_init(&b, when, sizeof when);
  cg_tls_put_time(&b, t.not_after);
  FZ_CHECK(!b.truncated, "a certificate date does not fit: %s", cg_buf_str(&b));
  /* Codes as OpenSSL reports them: any value. */
  unsigned long code = (unsigned long)fz_u64(&f, 8);
  enum cg_tls_cause c = cg_tls_classify((int)fz_u64(&f, 1), (int)fz_u64(&f, 2), code, (long)fz_u64(&f, 8));
  FZ_CHECK(cg_tls_cause_name(c) != NULL, "cause name");
  const char *an = cg_tls_alert_name(cg_tls_alert_of(code));
  FZ_CHECK(an != NULL, "alert name");
  cg_tls_cause_transport(c);
  cg_tls_bucket(fz_u64(&f, 8));
  return 0;
}
