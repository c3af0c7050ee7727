/* TLS handshakes (OpenSSL): diagnosis of every failure, timing of every handshake, and retry
 * of the transient ones on blocking sockets.
 *
 * Nothing here links libssl or libcrypto. The functions are looked up at run time in the copy
 * the program already loaded (dlsym(RTLD_NEXT), or dlopen(RTLD_NOLOAD) when the program loaded
 * libssl privately, as python's _ssl does), and only once the program calls SSL_connect or
 * SSL_do_handshake: a program without OpenSSL never gets it loaded. Any function the loaded
 * OpenSSL lacks only removes the detail it would have given.
 *
 * The pure parts (classification, hints, histogram buckets, time formatting) take plain values
 * so that unit tests drive them without OpenSSL. */
#ifndef CG_TLS_H
#define CG_TLS_H
#include <stdint.h>
#include "fmt.h"

enum { CG_TLS_CONNECT, CG_TLS_DO_HANDSHAKE, CG_TLS_NENTRY };
typedef int (*cg_ssl_entry_fn)(void *ssl);

/* >0 while this thread runs a real handshake for us: libssl's SSL_connect calls
 * SSL_do_handshake through the PLT, and that inner call must pass straight through. */
extern __thread int cg_tls_depth;

/* The real SSL_connect / SSL_do_handshake, or NULL when no libssl is loaded. */
cg_ssl_entry_fn cg_tls_real(int which);
/* The hooks' body (initialised shim, cg_cfg.tls on, not nested). */
int cg_tls_handshake(void *ssl, int which);
/* The hooks' answer when no real function exists: -1, one warning. */
int cg_tls_unavailable(int which);
/* connect() on fd by this thread: curl's TLS layer reads through its own BIO and never tells
 * OpenSSL the fd, so a failure is matched to the thread's recent connects instead. */
void cg_tls_note_connect(int fd);

/* ---- pure helpers ---- */

enum cg_tls_cause {
  CG_TLS_RESET = 1,        /* transport: connection reset (or EPIPE) during the handshake */
  CG_TLS_EOF,              /* transport: peer closed during the handshake */
  CG_TLS_TIMEOUT,          /* transport: no answer in time */
  CG_TLS_RECONNECT,        /* our retry could not even reconnect (errno tells) */
  CG_TLS_EXPIRED,
  CG_TLS_NOT_YET_VALID,
  CG_TLS_HOSTNAME,
  CG_TLS_SELF_SIGNED,
  CG_TLS_UNKNOWN_ISSUER,
  CG_TLS_VERIFY,           /* another certificate verification failure */
  CG_TLS_ALERT,            /* the peer sent a fatal alert */
  CG_TLS_PROTOCOL,         /* no common version/cipher, or the peer does not speak TLS */
  CG_TLS_OTHER,
};

/* Values of the loaded OpenSSL 3 (also 1.1) ABI the shim relies on; unit tests compare them
 * with the headers. */
#define CG_SSL_ERROR_SSL 1
#define CG_SSL_ERROR_WANT_READ 2
#define CG_SSL_ERROR_WANT_WRITE 3
#define CG_SSL_ERROR_SYSCALL 5
#define CG_SSL_ERROR_ZERO_RETURN 6
#define CG_ERR_LIB_SYS 2
#define CG_ERR_LIB_SSL 20
#define CG_ERR_SYSTEM_FLAG 0x80000000UL
#define CG_SSL_R_CERTIFICATE_VERIFY_FAILED 134
#define CG_SSL_R_UNEXPECTED_EOF_WHILE_READING 294
#define CG_SSL_AD_REASON_OFFSET 1000
#define CG_X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT 2
#define CG_X509_V_ERR_CERT_NOT_YET_VALID 9
#define CG_X509_V_ERR_CERT_HAS_EXPIRED 10
#define CG_X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT 18
#define CG_X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN 19
#define CG_X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY 20
#define CG_X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE 21
#define CG_X509_V_ERR_HOSTNAME_MISMATCH 62
#define CG_X509_V_ERR_IP_ADDRESS_MISMATCH 64

static inline int cg_err_lib(unsigned long code)
{
  return (code & CG_ERR_SYSTEM_FLAG) ? CG_ERR_LIB_SYS : (int)((code >> 23) & 0xff);
}
static inline int cg_err_reason(unsigned long code)
{
  return (code & CG_ERR_SYSTEM_FLAG) ? (int)(code & 0x7fffffffUL) : (int)(code & 0x7fffffUL);
}

/* Cause of a failed handshake from what OpenSSL reported: SSL_get_error(), errno for
 * SSL_ERROR_SYSCALL, the most recent error code of the queue (0 = none), the verify result. */
enum cg_tls_cause cg_tls_classify(int ssl_error, int sys_errno, unsigned long code, long verify_result);
/* "reset", "expired", ... */
const char *cg_tls_cause_name(enum cg_tls_cause c);
/* Transport failures (reset, EOF, timeout, failed reconnect): nothing was decided by TLS. */
int cg_tls_cause_transport(enum cg_tls_cause c);
/* Fatal alert number carried by an OpenSSL reason code, or -1. */
int cg_tls_alert_of(unsigned long code);
const char *cg_tls_alert_name(int alert);
/* Index into cg_stats.tls_hs_bucket[] for a duration. */
unsigned cg_tls_bucket(uint64_t us);
/* "2026-11-20T10:00:00Z" from seconds since the epoch. */
void cg_tls_put_time(struct cg_buf *b, int64_t t);

/* Everything the hint is made of. Strings may be empty, never NULL. */
struct cg_tls_facts {
  enum cg_tls_cause cause;
  int sys_errno;
  int alert;                   /* -1 when none */
  const char *reason;          /* OpenSSL's reason string */
  const char *asked;           /* the host name the program asked for (verify host, else SNI) */
  const char *san;             /* "DNS:a, DNS:b, IP:1.2.3.4" */
  const char *subject, *issuer;
  int have_dates;
  int64_t not_before, not_after;   /* seconds since the epoch */
  int64_t now;
  int64_t clock_floor;         /* the clock cannot be right before this (newest system file seen), 0 unknown */
  int cert_depth;              /* which certificate of the chain the facts are about (0 = server's own) */
  int after_handshake;         /* OpenSSL succeeded; the program checks the name itself (curl) */
};
void cg_tls_hint(struct cg_buf *b, const struct cg_tls_facts *f);

#endif
