/* The JSON writer and the log records built with it.
 * 1. cg_buf_json_strn on any bytes, in a buffer of any size: unless the buffer reports
 *    truncation, the output is exactly one valid JSON string that decodes back to the input
 *    (bytes that are not UTF-8 come back from their \u00XX escapes).
 * 2. A record of fuzzed fields (any values, big enough to overflow the record): in JSON it is
 *    one line holding one valid JSON object; in text every line starts with "==PID== ", so no
 *    value can forge or split a record (values come from certificates, addresses, errnos...). */
#include "fuzz.h"
#include "config.h"
#include "fmt.h"
#include "log.h"
#include <netinet/in.h>
#include <sys/un.h>
#include <unistd.h>

/* Decodes the JSON string literal s[0..n) (already validated) into out; \u00XX gives byte XX. */
static size_t fzjson_decode(const char *s, size_t n, char *out)
{
  size_t k = 0;
  for (size_t i = 1; i + 1 < n; i++) {
    if (s[i] != '\\') { out[k++] = s[i]; continue; }
    char c = s[++i];
    switch (c) {
    case 'n': out[k++] = '\n'; break;
    case 'r': out[k++] = '\r'; break;
    case 't': out[k++] = '\t'; break;
    case 'b': out[k++] = '\b'; break;
    case 'f': out[k++] = '\f'; break;
    case 'u': {
      char h[5] = { s[i + 1], s[i + 2], s[i + 3], s[i + 4], 0 };
      unsigned long v = strtoul(h, NULL, 16);
      FZ_CHECK(v < 0x100, "escape \\u%s of a code point the writer never escapes", h);
      out[k++] = (char)v;
      i += 4;
      break;
    }
    default: out[k++] = c;
    }
  }
  return k;
}

static void fzjson_string(const uint8_t *data, size_t size)
{
  if (size < 2) return;
  size_t cap = ((size_t)data[0] << 8 | data[1]) % 9000 + 1;
  const char *in = (const char *)data + 2;
  size_t n = size - 2;
  char *mem = malloc(cap), *back = malloc(n + 1);
  struct cg_buf b;
  cg_buf_init(&b, mem, cap);
  cg_buf_json_strn(&b, in, n);
  FZ_CHECK(b.len < cap, "len %zu cap %zu", b.len, cap);
  if (!b.truncated) {
    FZ_CHECK(fz_json_valid(b.p, b.len, '"'), "not one JSON string: %.*s", (int)b.len, b.p);
    size_t k = fzjson_decode(b.p, b.len, back);
    FZ_CHECK(k == n && !memcmp(back, in, n), "does not decode back to the input (%zu vs %zu bytes)", k, n);
  }
  free(mem);
  free(back);
}

static void fzjson_record(struct fz *f, int json)
{
  static struct cg_config cfg;
  cg_config_defaults(&cfg);
  cfg.log_format = json ? CG_LOG_JSON : CG_LOG_TEXT;
  cg_log_configure(&cfg);
  static const char *const keys[] = { "dst", "error", "hint", "cert_subject", "cert_san", "reason" };
  static struct cg_rec r;
  char val[6000];
  cg_rec_begin(&r, "fuzz_event");
  unsigned nops = fz_byte(f) % 24;
  for (unsigned i = 0; i < nops && f->n; i++) {
    unsigned op = fz_byte(f), len = (unsigned)fz_u64(f, 2) % sizeof val;
    const char *key = keys[fz_byte(f) % 6];
    size_t k = 0;
    while (k < len && f->n) val[k++] = (char)fz_byte(f);
    val[k] = 0;   /* values are C strings: what follows a NUL is not part of them */
    switch (op % 5) {
    case 0: cg_rec_str(&r, key, val); break;
    case 1: cg_rec_detail(&r, key, val); break;
    case 2: cg_rec_int(&r, key, (int64_t)fz_u64(f, 8)); break;
    case 3: cg_rec_errno(&r, key, (int)fz_u64(f, 4)); break;
    case 4: {
      struct sockaddr_storage ss;
      memset(&ss, 0, sizeof ss);
      memcpy(&ss, val, k < sizeof ss ? k : sizeof ss);
      unsigned fam = fz_byte(f) % 4;
      ss.ss_family = fam == 0 ? AF_INET : fam == 1 ? AF_INET6 : fam == 2 ? AF_UNIX : (sa_family_t)fz_byte(f);
      cg_rec_addr(&r, key, (struct sockaddr *)&ss, (unsigned)fz_byte(f) % (sizeof ss + 1));
      break;
    }
    }
  }
  /* The stack comes last, once, as in every real record. */
  uintptr_t pcs[CG_MAX_STACK];
  int np = (int)(fz_byte(f) % (CG_MAX_STACK + 1));
  for (int j = 0; j < np; j++)
    pcs[j] = j & 1 ? (uintptr_t)&fzjson_record + fz_byte(f) : (uintptr_t)fz_u64(f, 8);
  if (np) cg_rec_stack(&r, pcs, np);
  size_t len;
  const char *s = cg_rec_finish(&r, &len);
  FZ_CHECK(len > 0 && len <= CG_REC_MAX && s[len - 1] == '\n' && strlen(s) == len, "record length %zu", len);
  if (json) {
    FZ_CHECK(memchr(s, '\n', len - 1) == NULL, "JSON record spans lines: %s", s);
    FZ_CHECK(fz_json_valid(s, len - 1, '{'), "not one JSON object: %s", s);
  } else {
    char prefix[32];
    int pl = snprintf(prefix, sizeof prefix, "==%d== ", (int)getpid());
    for (const char *line = s; line < s + len;) {
      const char *nl = memchr(line, '\n', (size_t)(s + len - line));
      FZ_CHECK(nl && (size_t)(nl - line) >= (size_t)pl && !memcmp(line, prefix, (size_t)pl),
               "a text line without the record's prefix (forged or split record): %s", s);
      line = nl + 1;
    }
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (!size) return 0;
  struct fz f = { data + 1, size - 1 };
  switch (data[0] % 3) {
  case 0: fzjson_string(data + 1, size - 1); break;
  case 1: fzjson_record(&f, 1); break;
  default: fzjson_record(&f, 0); break;
  }
  return 0;
}
