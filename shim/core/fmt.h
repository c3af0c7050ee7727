/* Bounded, allocation-free text building: usable from any hook, including signal context.
 * On overflow the buffer keeps what fit and marks itself truncated. */
#ifndef CG_FMT_H
#define CG_FMT_H
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct cg_buf {
  char *p;
  size_t len, cap;
  int truncated;
};

void cg_buf_init(struct cg_buf *b, char *mem, size_t cap);
void cg_buf_putc(struct cg_buf *b, char c);
void cg_buf_puts(struct cg_buf *b, const char *s);
void cg_buf_putn(struct cg_buf *b, const char *s, size_t n);
void cg_buf_u64(struct cg_buf *b, uint64_t v);
void cg_buf_i64(struct cg_buf *b, int64_t v);
void cg_buf_hex(struct cg_buf *b, uint64_t v);           /* 0x-prefixed, lowercase */
void cg_buf_pad(struct cg_buf *b, uint64_t v, int width); /* zero-padded decimal */
/* A JSON string literal with quotes; any bytes (invalid UTF-8 becomes \u00XX). */
void cg_buf_json_str(struct cg_buf *b, const char *s);
void cg_buf_json_strn(struct cg_buf *b, const char *s, size_t n);
/* "127.0.0.1:8080", "[::1]:443", "unix:/path", "unix:@abstract", "unix:(unnamed)". */
void cg_buf_sockaddr(struct cg_buf *b, const struct sockaddr *sa, unsigned len);
/* ISO 8601 UTC with milliseconds, from a CLOCK_REALTIME value in ns (no locale, no locks). */
void cg_buf_iso8601(struct cg_buf *b, int64_t realtime_ns);
/* The same from whole seconds (any int64: certificate dates), ".mmm" only when ms >= 0. */
void cg_buf_iso8601_s(struct cg_buf *b, int64_t secs, int ms);
/* NUL-terminates (within cap) and returns the string. */
const char *cg_buf_str(struct cg_buf *b);

#endif
