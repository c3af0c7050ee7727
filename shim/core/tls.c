#include "tls.h"
#include "clock.h"
#include "engine.h"
#include "log.h"
#include "pystack.h"
#include "pattern.h"
#include "policy.h"
#include "real.h"
#include "stack.h"
#include "stats.h"
#include "rawsys.h"
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

__thread int cg_tls_depth;

static int r_getsockopt(int fd, int lv, int o, void *v, socklen_t *l);

#define MS_NS 1000000LL

/* ====================================================================================
 * Pure helpers
 * ==================================================================================== */

static const char *const cause_names[] = {
  [CG_TLS_RESET] = "reset", [CG_TLS_EOF] = "eof", [CG_TLS_TIMEOUT] = "timeout",
  [CG_TLS_RECONNECT] = "reconnect_failed", [CG_TLS_EXPIRED] = "expired",
  [CG_TLS_NOT_YET_VALID] = "not_yet_valid", [CG_TLS_HOSTNAME] = "hostname_mismatch",
  [CG_TLS_SELF_SIGNED] = "self_signed", [CG_TLS_UNKNOWN_ISSUER] = "unknown_issuer",
  [CG_TLS_VERIFY] = "verify_failed", [CG_TLS_ALERT] = "alert",
  [CG_TLS_PROTOCOL] = "protocol_mismatch", [CG_TLS_OTHER] = "other",
};

const char *cg_tls_cause_name(enum cg_tls_cause c)
{
  if ((unsigned)c < sizeof cause_names / sizeof *cause_names && cause_names[c]) return cause_names[c];
  return "other";
}

int cg_tls_cause_transport(enum cg_tls_cause c)
{
  return c == CG_TLS_RESET || c == CG_TLS_EOF || c == CG_TLS_TIMEOUT || c == CG_TLS_RECONNECT;
}

static enum cg_tls_cause by_errno(int e)
{
  switch (e) {
  case 0: return CG_TLS_EOF;
  case ECONNRESET: case EPIPE: case ECONNABORTED: case ENOTCONN: return CG_TLS_RESET;
  case ETIMEDOUT: case EAGAIN: return CG_TLS_TIMEOUT;
  default: return CG_TLS_OTHER;
  }
}

static enum cg_tls_cause by_verify(long v)
{
  switch (v) {
  case CG_X509_V_ERR_CERT_HAS_EXPIRED: return CG_TLS_EXPIRED;
  case CG_X509_V_ERR_CERT_NOT_YET_VALID: return CG_TLS_NOT_YET_VALID;
  case CG_X509_V_ERR_HOSTNAME_MISMATCH:
  case CG_X509_V_ERR_IP_ADDRESS_MISMATCH: return CG_TLS_HOSTNAME;
  case CG_X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
  case CG_X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN: return CG_TLS_SELF_SIGNED;
  case CG_X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
  case CG_X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
  case CG_X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE: return CG_TLS_UNKNOWN_ISSUER;
  default: return CG_TLS_VERIFY;
  }
}

int cg_tls_alert_of(unsigned long code)
{
  int r = cg_err_reason(code);
  if (!code || cg_err_lib(code) != CG_ERR_LIB_SSL) return -1;
  if (r >= CG_SSL_AD_REASON_OFFSET && r < CG_SSL_AD_REASON_OFFSET + 256) return r - CG_SSL_AD_REASON_OFFSET;
  return -1;
}

/* OpenSSL reasons meaning "nothing in common" or "that is not TLS". */
static int protocol_reason(int r)
{
  switch (r) {
  case 101: case 108: case 118: case 155: case 156: case 166: case 181: case 191: case 193:
  case 198: case 235: case 252: case 258: case 259: case 261: case 266: case 267: case 295:
  case 373: case 376: case 396: case 410:
    return 1;
  default:
    return 0;
  }
}

enum cg_tls_cause cg_tls_classify(int ssl_error, int sys_errno, unsigned long code, long verify)
{
  int lib = cg_err_lib(code), reason = cg_err_reason(code);
  if (ssl_error == CG_SSL_ERROR_ZERO_RETURN) return CG_TLS_ALERT;   /* close_notify mid-handshake */
  if (ssl_error == CG_SSL_ERROR_SYSCALL && (!code || lib == CG_ERR_LIB_SYS))
    return by_errno(code ? reason : sys_errno);
  if (code && lib == CG_ERR_LIB_SYS) return by_errno(reason);
  if (code && lib == CG_ERR_LIB_SSL) {
    if (reason == CG_SSL_R_CERTIFICATE_VERIFY_FAILED) return verify ? by_verify(verify) : CG_TLS_VERIFY;
    if (reason == CG_SSL_R_UNEXPECTED_EOF_WHILE_READING) return CG_TLS_EOF;
    if (cg_tls_alert_of(code) >= 0) return CG_TLS_ALERT;
    if (protocol_reason(reason)) return CG_TLS_PROTOCOL;
  }
  if (verify) return by_verify(verify);
  return CG_TLS_OTHER;
}

const char *cg_tls_alert_name(int a)
{
  switch (a) {
  case 0: return "close_notify";
  case 10: return "unexpected_message";
  case 20: return "bad_record_mac";
  case 22: return "record_overflow";
  case 40: return "handshake_failure";
  case 42: return "bad_certificate";
  case 43: return "unsupported_certificate";
  case 44: return "certificate_revoked";
  case 45: return "certificate_expired";
  case 46: return "certificate_unknown";
  case 47: return "illegal_parameter";
  case 48: return "unknown_ca";
  case 49: return "access_denied";
  case 50: return "decode_error";
  case 51: return "decrypt_error";
  case 70: return "protocol_version";
  case 71: return "insufficient_security";
  case 80: return "internal_error";
  case 86: return "inappropriate_fallback";
  case 90: return "user_canceled";
  case 109: return "missing_extension";
  case 110: return "unsupported_extension";
  case 112: return "unrecognized_name";
  case 113: return "bad_certificate_status_response";
  case 115: return "unknown_psk_identity";
  case 116: return "certificate_required";
  case 120: return "no_application_protocol";
  default: return "unknown";
  }
}

unsigned cg_tls_bucket(uint64_t us)
{
  static const uint64_t bounds[CG_TLS_BUCKETS] = CG_TLS_BUCKET_BOUNDS_US;
  for (unsigned i = 0; i < CG_TLS_BUCKETS; i++)
    if (us <= bounds[i]) return i;
  return CG_TLS_BUCKETS - 1;
}

void cg_tls_put_time(struct cg_buf *b, int64_t t)
{
  /* Whole seconds: t in nanoseconds overflows past 2262 (notAfter 9999-12-31 is common). */
  cg_buf_iso8601_s(b, t, -1);
}

static void put_span(struct cg_buf *b, int64_t secs)
{
  if (secs < 0) secs = -secs;
  if (secs >= 2 * 86400) { cg_buf_i64(b, secs / 86400); cg_buf_puts(b, " days"); }
  else if (secs >= 2 * 3600) { cg_buf_i64(b, secs / 3600); cg_buf_puts(b, " hours"); }
  else if (secs >= 120) { cg_buf_i64(b, secs / 60); cg_buf_puts(b, " minutes"); }
  else { cg_buf_i64(b, secs); cg_buf_puts(b, " seconds"); }
}

static void which_cert(struct cg_buf *b, const struct cg_tls_facts *f)
{
  if (f->cert_depth > 0) {
    cg_buf_puts(b, "certificate ");
    cg_buf_i64(b, f->cert_depth);
    cg_buf_puts(b, " of the chain (");
    cg_buf_puts(b, f->subject);
    cg_buf_puts(b, ")");
  } else {
    cg_buf_puts(b, "the server's certificate");
  }
}

void cg_tls_hint(struct cg_buf *b, const struct cg_tls_facts *f)
{
  switch (f->cause) {
  case CG_TLS_EXPIRED:
    which_cert(b, f);
    if (f->have_dates) {
      cg_buf_puts(b, " expired on ");
      cg_tls_put_time(b, f->not_after);
      cg_buf_puts(b, " (");
      put_span(b, f->now - f->not_after);
      cg_buf_puts(b, " ago by the local clock, ");
      cg_tls_put_time(b, f->now);
      cg_buf_puts(b, ")");
    } else {
      cg_buf_puts(b, " has expired");
    }
    cg_buf_puts(b, ": the server must renew it; turning verification off would hide the next real problem too");
    break;
  case CG_TLS_NOT_YET_VALID:
    which_cert(b, f);
    if (f->have_dates) {
      cg_buf_puts(b, " is valid only from ");
      cg_tls_put_time(b, f->not_before);
      cg_buf_puts(b, ", ");
      put_span(b, f->not_before - f->now);
      cg_buf_puts(b, " after the local clock (");
      cg_tls_put_time(b, f->now);
      cg_buf_puts(b, ")");
    } else {
      cg_buf_puts(b, " is not valid yet");
    }
    if (f->clock_floor && f->now < f->clock_floor) {
      cg_buf_puts(b, ": the local clock looks wrong, it is earlier than files on this system (");
      cg_tls_put_time(b, f->clock_floor);
      cg_buf_puts(b, "); set the time (NTP) and retry");
    } else {
      cg_buf_puts(b, ": the local clock looks plausible, so the certificate was issued with a start date in the"
                     " future (the issuing machine's clock is wrong); if this machine's clock is behind, fix it (NTP)");
    }
    break;
  case CG_TLS_HOSTNAME:
    cg_buf_puts(b, "host name mismatch: the program asked for '");
    cg_buf_puts(b, f->asked);
    cg_buf_puts(b, "' but the certificate is for ");
    if (*f->san) cg_buf_puts(b, f->san);
    else { cg_buf_puts(b, "subject "); cg_buf_puts(b, f->subject); }
    cg_buf_puts(b, ": a wrong host name or address in the program's configuration, or the server presents"
                   " the certificate of another site (virtual host / SNI configuration)");
    if (f->after_handshake)
      cg_buf_puts(b, " (OpenSSL's handshake succeeded; the program compares the name itself and refuses it)");
    break;
  case CG_TLS_SELF_SIGNED:
    cg_buf_puts(b, "self-signed certificate (");
    cg_buf_puts(b, f->cert_depth > 0 ? "a root in the chain is not trusted: " : "");
    cg_buf_puts(b, f->issuer);
    cg_buf_puts(b, "): a TLS-inspecting proxy or antivirus intercepting the connection, or a test/internal server;"
                   " if it is expected, give the program that CA (SSL_CERT_FILE, curl --cacert, python cafile=),"
                   " do not turn verification off");
    break;
  case CG_TLS_UNKNOWN_ISSUER:
    cg_buf_puts(b, "the issuer (");
    cg_buf_puts(b, f->issuer);
    cg_buf_puts(b, ") is not a trusted CA here: a missing CA file or bundle (private CA: SSL_CERT_FILE,"
                   " REQUESTS_CA_BUNDLE, curl --cacert), a server that does not send its intermediate certificate,"
                   " or a TLS-inspecting proxy");
    break;
  case CG_TLS_VERIFY:
    cg_buf_puts(b, "certificate verification failed: ");
    cg_buf_puts(b, f->reason);
    break;
  case CG_TLS_ALERT:
    if (f->alert == 0) {
      cg_buf_puts(b, "the server closed the TLS session (close_notify) before the handshake completed");
      break;
    }
    cg_buf_puts(b, "the server refused the handshake with alert ");
    cg_buf_puts(b, cg_tls_alert_name(f->alert));
    cg_buf_puts(b, " (");
    cg_buf_i64(b, f->alert);
    cg_buf_puts(b, "): ");
    switch (f->alert) {
    case 40: case 70: case 71: case 86: case 47:
      cg_buf_puts(b, "protocol or cipher mismatch, no TLS version or cipher suite both sides allow"
                     " (compare the client's and server's minimum/maximum versions and cipher lists)");
      break;
    case 112:
      cg_buf_puts(b, "the server does not know the name sent in SNI ('");
      cg_buf_puts(b, f->asked);
      cg_buf_puts(b, "')");
      break;
    case 116: case 42: case 43: case 44: case 45: case 46: case 48: case 49:
      cg_buf_puts(b, "the server requires or rejected a client certificate (mutual TLS)");
      break;
    case 120:
      cg_buf_puts(b, "no application protocol (ALPN) in common");
      break;
    default:
      cg_buf_puts(b, "the server rejected something in the client's handshake");
    }
    break;
  case CG_TLS_PROTOCOL:
    cg_buf_puts(b, "protocol or cipher mismatch (");
    cg_buf_puts(b, f->reason);
    cg_buf_puts(b, "): no TLS version or cipher suite in common, or the server does not speak TLS on this"
                   " port (plain HTTP, or a proxy)");
    break;
  case CG_TLS_RESET:
    cg_buf_puts(b, "the server reset the connection during the TLS handshake, before any application data:"
                   " overloaded or restarting server, a load balancer without a healthy backend, or a"
                   " middlebox cutting TLS");
    break;
  case CG_TLS_EOF:
    cg_buf_puts(b, "the server closed the connection during the TLS handshake without an alert, before any"
                   " application data: overloaded or restarting server, or a port that does not speak TLS");
    break;
  case CG_TLS_TIMEOUT:
    cg_buf_puts(b, "no handshake answer in time: the server accepted the connection but does not answer"
                   " (overloaded, or not a TLS service)");
    break;
  case CG_TLS_RECONNECT:
    cg_buf_puts(b, "reconnecting for another handshake failed: ");
    cg_buf_puts(b, cg_errno_hint(f->sys_errno, AF_INET));
    break;
  default:
    cg_buf_puts(b, "the handshake failed: ");
    cg_buf_puts(b, *f->reason ? f->reason : "no reason given by OpenSSL");
  }
}

/* ====================================================================================
 * OpenSSL, resolved at run time
 * ==================================================================================== */

struct cg_general_name { int type; void *d; };   /* GENERAL_NAME: public, stable layout */
#define GEN_DNS 2
#define GEN_IPADD 7
#define NID_SUBJECT_ALT_NAME 85
#define SSL_VERIFY_PEER 1
#define TLSEXT_NAMETYPE_HOST 0
#define SSL_CTRL_SET_TLSEXT_HOSTNAME 55
#define BIO_CTRL_INFO 3
#define BIO_FLAGS_IN_EOF 0x800
#define BIO_TYPE_DESCRIPTOR 0x0100
#define SSL_OP_IGNORE_UNEXPECTED_EOF (1ULL << 7)
/* Names printed "CN=x, O=y" (RFC 2253 escaping without escaping UTF-8, in certificate order). */
#define NAME_FLAGS (0x1UL | 0x2UL | 0x10UL | 0x100UL | 0x200UL | (2UL << 16) | (1UL << 24))

static struct ossl {
  cg_ssl_entry_fn entry[CG_TLS_NENTRY];
  int (*get_error)(const void *, int);
  int (*get_fd)(const void *);
  void *(*get_rbio)(const void *);
  int (*clear)(void *);
  int (*in_before)(const void *);
  int (*is_server)(const void *);
  int (*is_init_finished)(const void *);
  long (*get_verify_result)(const void *);
  int (*get_verify_mode)(const void *);
  uint64_t (*get_options)(const void *);
  const char *(*get_servername)(const void *, int);
  long (*ctrl)(void *, int, long, void *);
  void *(*get0_param)(void *);
  void *(*get_peer_cert_chain)(const void *);
  void *(*get1_peer_certificate)(const void *);
  unsigned long (*err_peek_last)(void);
  unsigned long (*err_peek)(void);
  const char *(*err_reason_string)(unsigned long);
  void (*err_clear)(void);
  int (*err_set_mark)(void);
  int (*err_pop_to_mark)(void);
  const char *(*verify_string)(long);
  void *(*x509_subject)(const void *);
  void *(*x509_issuer)(const void *);
  char *(*name_oneline)(const void *, char *, int);
  int (*name_print_ex)(void *, const void *, int, unsigned long);
  void *(*bio_new)(const void *);
  const void *(*bio_s_mem)(void);
  long (*bio_ctrl)(void *, int, long, void *);
  int (*bio_free)(void *);
  int (*bio_method_type)(const void *);
  void (*bio_clear_flags)(void *, int);
  const void *(*not_before)(const void *);
  const void *(*not_after)(const void *);
  int (*time_to_tm)(const void *, struct tm *);
  void *(*ext_d2i)(const void *, int, int *, int *);
  int (*sk_num)(const void *);
  void *(*sk_value)(const void *, int);
  void (*gens_free)(void *);
  const unsigned char *(*str_data)(const void *);
  int (*str_len)(const void *);
  void (*x509_free)(void *);
  int (*check_host)(void *, const char *, size_t, unsigned, char **);
  const char *(*param_host)(void *, int);
  int64_t clock_floor;     /* mtime of libssl and of the shim: the clock cannot be earlier */
} O;

static atomic_int resolve_state;   /* 0 none, 1 running, 2 done */
static atomic_uint hs_lock;
static void after_fork_child(void) { atomic_store(&hs_lock, 0); }

static int64_t mtime_of(const void *addr)
{
  Dl_info di;
  struct stat st;
  if (!dladdr(addr, &di) || !di.dli_fname || stat(di.dli_fname, &st) != 0) return 0;
  return st.st_mtim.tv_sec;
}

static void resolve(void)
{
  void *h = NULL;
  void *p = dlsym(RTLD_NEXT, "SSL_do_handshake");
  Dl_info di;
  /* The handle of the libssl the program really uses: its own symbol table and its libcrypto,
   * never ours. RTLD_NOLOAD: nothing is ever loaded here. */
  if (p && dladdr(p, &di) && di.dli_fname) h = dlopen(di.dli_fname, RTLD_NOLOAD | RTLD_LAZY);
  if (!h) {
    /* Loaded privately (python's _ssl is dlopen()ed RTLD_LOCAL): not in the global scope. */
    static const char *const names[] = { "libssl.so.3", "libssl.so.1.1", "libssl.so" };
    for (unsigned i = 0; !h && i < sizeof names / sizeof *names; i++)
      h = dlopen(names[i], RTLD_NOLOAD | RTLD_LAZY);
  }
#define L(field, name) (*(void **)&O.field = h ? dlsym(h, name) : dlsym(RTLD_NEXT, name))
  L(entry[CG_TLS_CONNECT], "SSL_connect");
  L(entry[CG_TLS_DO_HANDSHAKE], "SSL_do_handshake");
  L(get_error, "SSL_get_error");
  L(get_fd, "SSL_get_fd");
  L(get_rbio, "SSL_get_rbio");
  L(clear, "SSL_clear");
  L(in_before, "SSL_in_before");
  L(is_server, "SSL_is_server");
  L(is_init_finished, "SSL_is_init_finished");
  L(get_verify_result, "SSL_get_verify_result");
  L(get_verify_mode, "SSL_get_verify_mode");
  L(get_options, "SSL_get_options");
  L(get_servername, "SSL_get_servername");
  L(ctrl, "SSL_ctrl");
  L(get0_param, "SSL_get0_param");
  L(get_peer_cert_chain, "SSL_get_peer_cert_chain");
  L(get1_peer_certificate, "SSL_get1_peer_certificate");
  if (!O.get1_peer_certificate) L(get1_peer_certificate, "SSL_get_peer_certificate");   /* 1.1 */
  L(err_peek_last, "ERR_peek_last_error");
  L(err_peek, "ERR_peek_error");
  L(err_reason_string, "ERR_reason_error_string");
  L(err_clear, "ERR_clear_error");
  L(err_set_mark, "ERR_set_mark");
  L(err_pop_to_mark, "ERR_pop_to_mark");
  L(verify_string, "X509_verify_cert_error_string");
  L(x509_subject, "X509_get_subject_name");
  L(x509_issuer, "X509_get_issuer_name");
  L(name_oneline, "X509_NAME_oneline");
  L(name_print_ex, "X509_NAME_print_ex");
  L(bio_new, "BIO_new");
  L(bio_s_mem, "BIO_s_mem");
  L(bio_ctrl, "BIO_ctrl");
  L(bio_free, "BIO_free");
  L(bio_method_type, "BIO_method_type");
  L(bio_clear_flags, "BIO_clear_flags");
  L(not_before, "X509_get0_notBefore");
  L(not_after, "X509_get0_notAfter");
  L(time_to_tm, "ASN1_TIME_to_tm");
  L(ext_d2i, "X509_get_ext_d2i");
  L(sk_num, "OPENSSL_sk_num");
  L(sk_value, "OPENSSL_sk_value");
  L(gens_free, "GENERAL_NAMES_free");
  L(str_data, "ASN1_STRING_get0_data");
  L(str_len, "ASN1_STRING_length");
  L(x509_free, "X509_free");
  L(check_host, "X509_check_host");
  L(param_host, "X509_VERIFY_PARAM_get0_host");
#undef L
  /* A fork while another thread holds the handshake table's lock must not cost the child. */
  pthread_atfork(NULL, NULL, after_fork_child);
  int64_t a = O.entry[CG_TLS_DO_HANDSHAKE] ? mtime_of((void *)O.entry[CG_TLS_DO_HANDSHAKE]) : 0;
  int64_t b = mtime_of((void *)&resolve);
  O.clock_floor = a > b ? a : b;
}

static void ensure_resolved(void)
{
  if (atomic_load_explicit(&resolve_state, memory_order_acquire) == 2) return;
  int expect = 0;
  if (atomic_compare_exchange_strong(&resolve_state, &expect, 1)) {
    resolve();
    atomic_store_explicit(&resolve_state, 2, memory_order_release);
    return;
  }
  /* Another thread resolves (a few dozen dlsym calls). Bounded: a fork() that caught that
   * thread mid-way leaves a child where nobody ever finishes, so the child resolves itself. */
  for (int i = 0; i < 200000; i++)
    if (atomic_load_explicit(&resolve_state, memory_order_acquire) == 2) return;
    else sched_yield();
  resolve();
  atomic_store_explicit(&resolve_state, 2, memory_order_release);
}

cg_ssl_entry_fn cg_tls_real(int which)
{
  ensure_resolved();
  return O.entry[which];
}

int cg_tls_unavailable(int which)
{
  static atomic_int warned;
  if (!atomic_exchange(&warned, 1)) {
    static const char msg[] = "connguard: warning: the program called an OpenSSL handshake function but no"
                              " libssl is loaded; returning -1\n";
    cg_log_warning(msg, sizeof msg - 1);
  }
  errno = ENOSYS;
  return -1;
}

/* ====================================================================================
 * Per-thread recent connects (for TLS layers that hide the fd) and handshake table
 * ==================================================================================== */

#define RECENT 4
static __thread struct { int fd; int64_t t; } recent[RECENT];
static __thread unsigned recent_next;

void cg_tls_note_connect(int fd)
{
  recent[recent_next % RECENT].fd = fd + 1;
  recent[recent_next % RECENT].t = cg_mono_ns();
  recent_next++;
}

static int peer_of(int fd, struct sockaddr_storage *ss, socklen_t *len)
{
  *len = sizeof *ss;
  if (getpeername(fd, (struct sockaddr *)ss, len) != 0) { *len = 0; return -1; }
  return 0;
}

/* The one socket this thread connected recently that is still connected, or -1 when there is
 * none or more than one (never guess between two). */
static int guess_fd(void)
{
  int found = -1;
  int64_t now = cg_mono_ns();
  for (unsigned i = 0; i < RECENT; i++) {
    int fd = recent[i].fd - 1;
    if (fd < 0 || now - recent[i].t > 120 * 1000 * MS_NS || fd == found) continue;
    struct sockaddr_storage ss;
    socklen_t l;
    int type = 0;
    socklen_t tl = sizeof type;
    if (peer_of(fd, &ss, &l) != 0 || (ss.ss_family != AF_INET && ss.ss_family != AF_INET6)) continue;
    if (r_getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) != 0 || type != SOCK_STREAM) continue;
    if (found >= 0) return -1;
    found = fd;
  }
  return found;
}

/* Handshakes that span several calls (non-blocking): when they started, and whether one has
 * already been reported as failed (OpenSSL answers -1 again, without a reason, if the program
 * calls once more after a fatal error). Best effort: a busy lock or a full table only loses the
 * timing of that handshake. */
#define HS_SLOTS 256
static struct hs {
  void *ssl;
  int64_t t0;
  int failed;
  int fd;                         /* as found when it started (-1 unknown) */
  socklen_t dstlen;               /* the peer, while it could still be asked */
  struct sockaddr_storage dst;
} hs_tab[HS_SLOTS];

static int hs_acquire(void)
{
  for (int i = 0; i < 2000; i++) {
    if (!atomic_exchange_explicit(&hs_lock, 1, memory_order_acquire)) return 1;
    if (i > 50) sched_yield();
  }
  return 0;
}
static void hs_release(void) { atomic_store_explicit(&hs_lock, 0, memory_order_release); }

static struct hs *hs_find(void *ssl, int create)
{
  unsigned h = (unsigned)(((uintptr_t)ssl >> 4) * 2654435761u) % HS_SLOTS;
  struct hs *victim = NULL;
  for (unsigned i = 0; i < 8; i++) {
    struct hs *e = &hs_tab[(h + i) % HS_SLOTS];
    if (e->ssl == ssl) return e;
    if (!victim || (victim->ssl && (!e->ssl || e->t0 < victim->t0))) victim = e;   /* empty, else oldest */
  }
  if (!create) return NULL;
  victim->ssl = ssl;
  victim->t0 = 0;
  victim->failed = 0;
  return victim;
}

static void hs_start(void *ssl, int64_t t0, int fd, const struct sockaddr_storage *dst, socklen_t dstlen)
{
  if (!hs_acquire()) return;
  struct hs *e = hs_find(ssl, 1);
  if (e) {
    e->t0 = t0;
    e->failed = 0;
    e->fd = fd;
    e->dstlen = dstlen;
    if (dstlen) memcpy(&e->dst, dst, dstlen);
  }
  hs_release();
}

/* Returns 1 when the handshake of ssl has already been reported failed; *t0 its start (0
 * unknown) and the peer noted when it started. */
static int hs_lookup(void *ssl, int64_t *t0, int *fd, struct sockaddr_storage *dst, socklen_t *dstlen)
{
  int failed = 0;
  *t0 = 0;
  if (!hs_acquire()) return 0;
  struct hs *e = hs_find(ssl, 0);
  if (e) {
    *t0 = e->t0;
    failed = e->failed;
    if (e->dstlen && !*dstlen) { *dstlen = e->dstlen; memcpy(dst, &e->dst, e->dstlen); }
    if (*fd < 0) *fd = e->fd;
  }
  hs_release();
  return failed;
}

static void hs_end(void *ssl, int failed)
{
  if (!hs_acquire()) return;
  struct hs *e = hs_find(ssl, failed);
  if (e) {
    if (failed) e->failed = 1;
    else e->ssl = NULL;
  }
  hs_release();
}

/* ====================================================================================
 * Diagnosis
 * ==================================================================================== */

static void count_handshake(int64_t ns, int failed)
{
  CG_STAT_ADD(tls_handshakes, 1);
  if (failed) CG_STAT_ADD(tls_failures, 1);
  if (ns < 0) return;
  uint64_t us = (uint64_t)ns / 1000;
  CG_STAT_ADD(tls_hs_bucket[cg_tls_bucket(us)], 1);
  CG_STAT_ADD(tls_hs_sum_us, us);
  CG_STAT_ADD(tls_hs_count, 1);
}

struct diag {
  enum cg_tls_cause cause;
  int ret, ssl_error, sys_errno;
  unsigned long code;
  long verify;
  char reason[160];
  int have_cert, cert_depth, have_dates;
  int64_t not_before, not_after;
  char subject[512], issuer[512], san[1024];
};

static void copy_str(char *dst, size_t cap, const char *s)
{
  size_t n = s ? strlen(s) : 0;
  if (n >= cap) n = cap - 1;
  if (n) memcpy(dst, s, n);
  dst[n] = 0;
}

static void name_text(const void *name, char *out, size_t cap)
{
  out[0] = 0;
  if (!name) return;
  if (O.name_print_ex && O.bio_new && O.bio_s_mem && O.bio_ctrl && O.bio_free) {
    void *bio = O.bio_new(O.bio_s_mem());
    if (bio) {
      char *p = NULL;
      if (O.name_print_ex(bio, name, 0, NAME_FLAGS) >= 0) {
        long n = O.bio_ctrl(bio, BIO_CTRL_INFO, 0, &p);
        if (p && n > 0) {
          size_t k = (size_t)n < cap - 1 ? (size_t)n : cap - 1;
          memcpy(out, p, k);
          out[k] = 0;
        }
      }
      O.bio_free(bio);
      if (out[0]) return;
    }
  }
  if (O.name_oneline) O.name_oneline(name, out, (int)cap);
}

static int asn1_time(const void *t, int64_t *out)
{
  struct tm tm;
  memset(&tm, 0, sizeof tm);
  if (!t || !O.time_to_tm || O.time_to_tm(t, &tm) != 1) return 0;
  *out = (int64_t)timegm(&tm);
  return 1;
}

static void san_text(const void *x, char *out, size_t cap)
{
  struct cg_buf b;
  cg_buf_init(&b, out, cap);
  cg_buf_str(&b);
  if (!O.ext_d2i || !O.sk_num || !O.sk_value || !O.str_data || !O.str_len) return;
  void *gens = O.ext_d2i(x, NID_SUBJECT_ALT_NAME, NULL, NULL);
  if (!gens) return;
  int n = O.sk_num(gens);
  for (int i = 0; i < n; i++) {
    const struct cg_general_name *g = O.sk_value(gens, i);
    if (!g || !g->d) continue;
    const unsigned char *d = O.str_data(g->d);
    int len = O.str_len(g->d);
    if (!d || len < 0) continue;
    if (g->type == GEN_DNS) {
      if (b.len) cg_buf_puts(&b, ", ");
      cg_buf_puts(&b, "DNS:");
      cg_buf_putn(&b, (const char *)d, (size_t)len);
    } else if (g->type == GEN_IPADD && (len == 4 || len == 16)) {
      char ip[INET6_ADDRSTRLEN];
      if (!inet_ntop(len == 4 ? AF_INET : AF_INET6, d, ip, sizeof ip)) continue;
      if (b.len) cg_buf_puts(&b, ", ");
      cg_buf_puts(&b, "IP:");
      cg_buf_puts(&b, ip);
    }
  }
  cg_buf_str(&b);
  if (O.gens_free) O.gens_free(gens);
}

/* The certificate the failure is about: for date problems the first one in the chain whose
 * dates are out of range, otherwise the server's own. */
static void cert_facts(void *ssl, struct diag *d, int64_t now)
{
  void *chain = O.get_peer_cert_chain ? O.get_peer_cert_chain(ssl) : NULL;
  int n = chain && O.sk_num && O.sk_value ? O.sk_num(chain) : 0;
  void *x = NULL, *own = NULL;
  int depth = 0;
  if (n > 0) {
    x = O.sk_value(chain, 0);
    for (int i = 0; i < n && (d->cause == CG_TLS_EXPIRED || d->cause == CG_TLS_NOT_YET_VALID); i++) {
      void *c = O.sk_value(chain, i);
      int64_t nb, na;
      if (!c || !O.not_before || !O.not_after) break;
      if (!asn1_time(O.not_before(c), &nb) || !asn1_time(O.not_after(c), &na)) break;
      if ((d->cause == CG_TLS_EXPIRED && na < now) || (d->cause == CG_TLS_NOT_YET_VALID && nb > now)) {
        x = c;
        depth = i;
        break;
      }
    }
  } else if (O.get1_peer_certificate) {
    x = own = O.get1_peer_certificate(ssl);   /* the chain is gone on some versions */
  }
  if (!x) return;
  d->have_cert = 1;
  d->cert_depth = depth;
  if (O.x509_subject) name_text(O.x509_subject(x), d->subject, sizeof d->subject);
  if (O.x509_issuer) name_text(O.x509_issuer(x), d->issuer, sizeof d->issuer);
  san_text(x, d->san, sizeof d->san);
  if (O.not_before && O.not_after)
    d->have_dates = asn1_time(O.not_before(x), &d->not_before) && asn1_time(O.not_after(x), &d->not_after);
  if (own && O.x509_free) O.x509_free(own);
}

static const char *ssl_error_name(int e)
{
  switch (e) {
  case 1: return "SSL_ERROR_SSL";
  case 5: return "SSL_ERROR_SYSCALL";
  case 6: return "SSL_ERROR_ZERO_RETURN";
  default: return "SSL_ERROR_OTHER";
  }
}

/* Fills d from the state a failed handshake call left (ret, errno). Leaves the error queue and
 * errno as they were. */
static void diagnose(void *ssl, int ret, int err_ssl, int sys_errno, struct diag *d)
{
  memset(d, 0, sizeof *d);
  d->ret = ret;
  d->ssl_error = err_ssl;
  d->sys_errno = err_ssl == CG_SSL_ERROR_SYSCALL ? sys_errno : 0;
  d->code = O.err_peek_last ? O.err_peek_last() : 0;
  d->verify = O.get_verify_result ? O.get_verify_result(ssl) : 0;
  d->cause = cg_tls_classify(err_ssl, sys_errno, d->code, d->verify);
  if (err_ssl == CG_SSL_ERROR_ZERO_RETURN && O.get_options &&
      (O.get_options(ssl) & SSL_OP_IGNORE_UNEXPECTED_EOF)) {
    /* With this option (python sets it) OpenSSL reports a peer's bare EOF as a clean close. */
    d->cause = CG_TLS_EOF;
    copy_str(d->reason, sizeof d->reason, "unexpected eof (reported as a clean close: SSL_OP_IGNORE_UNEXPECTED_EOF)");
  }
  if (d->code && O.err_reason_string) copy_str(d->reason, sizeof d->reason, O.err_reason_string(d->code));
  if (!d->reason[0] && d->code == 0 && err_ssl == CG_SSL_ERROR_SYSCALL && !sys_errno) {
    copy_str(d->reason, sizeof d->reason, "unexpected eof");
  } else if (!d->reason[0]) {
    if (cg_err_lib(d->code) == CG_ERR_LIB_SYS || (!d->code && err_ssl == CG_SSL_ERROR_SYSCALL)) {
      int e = d->code ? cg_err_reason(d->code) : sys_errno;
      copy_str(d->reason, sizeof d->reason, e ? strerror(e) : "unexpected EOF");
    } else if (err_ssl == CG_SSL_ERROR_ZERO_RETURN) {
      copy_str(d->reason, sizeof d->reason, "close notify");
    }
  }
  if (d->cause >= CG_TLS_EXPIRED && d->cause <= CG_TLS_VERIFY) {
    /* Reading certificates may push errors of its own: keep the program's queue as it was. */
    int marked = O.err_set_mark && O.err_pop_to_mark ? O.err_set_mark() : -1;
    cert_facts(ssl, d, cg_realtime_ns() / 1000000000LL);
    if (marked >= 0 && O.err_pop_to_mark) O.err_pop_to_mark();
  }
}

struct hsctx {
  void *ssl;
  int which;
  int fd;                   /* -1 unknown */
  int fd_from_ssl;          /* fd came from SSL_get_fd (else guessed) */
  struct sockaddr_storage dst;
  socklen_t dstlen;
  char sni[256];
  char host[256];           /* the name OpenSSL verifies (SSL_set1_host), empty when none */
  int64_t t0;               /* start of the handshake (first call) */
  int entry_errno;          /* errno when the program called */
  uintptr_t pcs[CG_MAX_STACK];
  int npcs;
};

static void names_of(struct hsctx *c)
{
  const char *s = O.get_servername ? O.get_servername(c->ssl, TLSEXT_NAMETYPE_HOST) : NULL;
  copy_str(c->sni, sizeof c->sni, s);
  const char *h = NULL;
  if (O.get0_param && O.param_host) {
    void *param = O.get0_param(c->ssl);
    if (param) h = O.param_host(param, 0);
  }
  copy_str(c->host, sizeof c->host, h);
}

static void stack_once(struct hsctx *c)
{
  if (c->npcs < 0) c->npcs = cg_stack_capture(c->pcs, (int)cg_cfg.stack_depth);
}

enum { ACT_RETRY, ACT_GIVE_UP };

static void log_failed(struct hsctx *c, const struct diag *d, unsigned attempt, int action,
                       unsigned delay_ms, const char *why, const char *stage)
{
  stack_once(c);
  int64_t now_ns = cg_mono_ns();
  struct cg_rec r;
  cg_rec_begin(&r, "tls_failed");
  if (c->fd >= 0) cg_rec_int(&r, "fd", c->fd);
  if (c->dstlen) cg_rec_addr(&r, "dst", (const struct sockaddr *)&c->dst, c->dstlen);
  cg_rec_str(&r, "sni", c->sni);
  if (c->host[0]) cg_rec_str(&r, "host", c->host);
  cg_rec_str(&r, "call", c->which == CG_TLS_CONNECT ? "SSL_connect" : "SSL_do_handshake");
  if (stage) cg_rec_str(&r, "stage", stage);
  cg_rec_str(&r, "cause", cg_tls_cause_name(d->cause));
  if (d->ssl_error) cg_rec_str(&r, "ssl_error", ssl_error_name(d->ssl_error));
  if (d->sys_errno) cg_rec_errno(&r, "errno", d->sys_errno);
  cg_rec_str(&r, "error", d->reason);
  int alert = d->cause == CG_TLS_ALERT ? (d->ssl_error == CG_SSL_ERROR_ZERO_RETURN ? 0 : cg_tls_alert_of(d->code)) : -1;
  if (alert >= 0) cg_rec_str(&r, "alert", cg_tls_alert_name(alert));
  cg_rec_int(&r, "verify_result", d->verify);
  cg_rec_str(&r, "verify_error", O.verify_string ? O.verify_string(d->verify) : "");
  cg_rec_int(&r, "attempt", attempt);
  cg_rec_str(&r, "action", action == ACT_RETRY ? "retry" : "give_up");
  if (action == ACT_RETRY) cg_rec_int(&r, "delay_ms", delay_ms);
  else if (why) cg_rec_str(&r, "reason", why);
  cg_rec_int(&r, "elapsed_ms", (now_ns - c->t0) / MS_NS);
  if (d->have_cert) {
    if (d->cert_depth) cg_rec_int(&r, "cert_depth", d->cert_depth);
    cg_rec_detail(&r, "cert_subject", d->subject);
    cg_rec_detail(&r, "cert_issuer", d->issuer);
    if (d->san[0]) cg_rec_detail(&r, "cert_san", d->san);   /* no alternative names: no field */
    if (d->have_dates) {
      char t[48];
      struct cg_buf b;
      cg_buf_init(&b, t, sizeof t);
      cg_tls_put_time(&b, d->not_before);
      cg_rec_detail(&r, "cert_not_before", cg_buf_str(&b));
      cg_buf_init(&b, t, sizeof t);
      cg_tls_put_time(&b, d->not_after);
      cg_rec_detail(&r, "cert_not_after", cg_buf_str(&b));
    }
  }
  struct cg_tls_facts f = {
    .cause = d->cause, .sys_errno = d->sys_errno, .alert = alert, .reason = d->reason,
    .asked = c->host[0] ? c->host : c->sni, .san = d->san, .subject = d->subject, .issuer = d->issuer,
    .have_dates = d->have_dates, .not_before = d->not_before, .not_after = d->not_after,
    .now = cg_realtime_ns() / 1000000000LL, .clock_floor = O.clock_floor, .cert_depth = d->cert_depth,
    .after_handshake = stage && !strcmp(stage, "after_handshake"),
  };
  char hint[1536];
  struct cg_buf hb;
  cg_buf_init(&hb, hint, sizeof hint);
  cg_tls_hint(&hb, &f);
  cg_rec_detail(&r, "hint", cg_buf_str(&hb));
  cg_rec_pystack(&r, cg_pystack_capture(1));
  if (c->npcs > 0) cg_rec_stack(&r, c->pcs, c->npcs);
  cg_rec_emit(&r);
}

static void log_recovered(struct hsctx *c, unsigned attempts)
{
  struct cg_rec r;
  cg_rec_begin(&r, "tls_recovered");
  if (c->fd >= 0) cg_rec_int(&r, "fd", c->fd);
  if (c->dstlen) cg_rec_addr(&r, "dst", (const struct sockaddr *)&c->dst, c->dstlen);
  cg_rec_str(&r, "sni", c->sni);
  cg_rec_int(&r, "attempts", attempts);
  cg_rec_int(&r, "elapsed_ms", (cg_mono_ns() - c->t0) / MS_NS);
  cg_rec_emit(&r);
}

/* curl checks the host name itself after the handshake (OpenSSL is never told the name), so
 * OpenSSL reports success and curl then refuses. Said here, while the certificate is at hand. */
static void check_name_after(struct hsctx *c)
{
  if (!O.get_verify_mode || !O.check_host || !O.get1_peer_certificate || !O.get_verify_result) return;
  if (!(O.get_verify_mode(c->ssl) & SSL_VERIFY_PEER) || O.get_verify_result(c->ssl) != 0) return;
  names_of(c);
  if (c->host[0] || !c->sni[0]) return;     /* OpenSSL checked the name itself, or none was given */
  int saved = errno;
  if (c->fd < 0) c->fd = guess_fd();
  if (!c->dstlen && c->fd >= 0) peer_of(c->fd, &c->dst, &c->dstlen);
  int marked = O.err_set_mark && O.err_pop_to_mark ? O.err_set_mark() : -1;
  void *x = O.get1_peer_certificate(c->ssl);
  if (x) {
    if (O.check_host(x, c->sni, strlen(c->sni), 0, NULL) == 0) {
      struct diag d;
      memset(&d, 0, sizeof d);
      d.cause = CG_TLS_HOSTNAME;
      d.verify = CG_X509_V_ERR_HOSTNAME_MISMATCH;
      copy_str(d.reason, sizeof d.reason, "certificate does not match the host name (checked by the program)");
      d.have_cert = 1;
      if (O.x509_subject) name_text(O.x509_subject(x), d.subject, sizeof d.subject);
      if (O.x509_issuer) name_text(O.x509_issuer(x), d.issuer, sizeof d.issuer);
      san_text(x, d.san, sizeof d.san);
      if (O.not_before && O.not_after)
        d.have_dates = asn1_time(O.not_before(x), &d.not_before) && asn1_time(O.not_after(x), &d.not_after);
      log_failed(c, &d, 1, ACT_GIVE_UP, 0, "not_retryable", "after_handshake");
    }
    if (O.x509_free) O.x509_free(x);
  }
  if (marked >= 0 && O.err_pop_to_mark) O.err_pop_to_mark();
  errno = saved;
}

/* ====================================================================================
 * Retry
 * ==================================================================================== */

static int can_retry_api(void)
{
  return O.err_clear && O.clear && O.get_error;
}

static uint64_t rnd(void)
{
  static __thread uint64_t st;
  if (!st) st = (uint64_t)cg_mono_ns() ^ ((uint64_t)cg_syscall(SYS_gettid) << 32) ^ (uint64_t)(uintptr_t)&st;
  return cg_rand_next(&st);
}

static void sleep_until(int64_t t)
{
  struct timespec ts = { t / 1000000000, t % 1000000000 };
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {}
}

static int r_connect(int fd, const struct sockaddr *a, socklen_t l)
{
  return cg_real.connect ? cg_real.connect(fd, a, l) : (int)cg_syscall(SYS_connect, fd, a, l);
}

static int r_getsockopt(int fd, int lv, int o, void *v, socklen_t *l)
{
  return cg_real.getsockopt ? cg_real.getsockopt(fd, lv, o, v, l) : (int)cg_syscall(SYS_getsockopt, fd, lv, o, v, l);
}

static int64_t tv_ns(const struct timeval *tv)
{
  return (int64_t)tv->tv_sec * 1000000000 + (int64_t)tv->tv_usec * 1000;
}

/* The program's socket timeouts, and ours on top for one attempt (never longer than its own). */
struct timeouts { struct timeval snd, rcv; int set_snd, set_rcv; };

static void timeouts_get(int fd, struct timeouts *t)
{
  socklen_t l = sizeof t->snd;
  memset(t, 0, sizeof *t);
  r_getsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &t->snd, &l);
  l = sizeof t->rcv;
  r_getsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &t->rcv, &l);
}

static void timeouts_limit(int fd, struct timeouts *t, int opt, int64_t left)
{
  const struct timeval *prog = opt == SO_SNDTIMEO ? &t->snd : &t->rcv;
  int64_t p = tv_ns(prog);
  if (p > 0 && p <= left) return;
  if (left < MS_NS) left = MS_NS;
  struct timeval tv = { left / 1000000000, (left % 1000000000) / 1000 };
  if (cg_real.setsockopt(fd, SOL_SOCKET, opt, &tv, sizeof tv) == 0) {
    if (opt == SO_SNDTIMEO) t->set_snd = 1; else t->set_rcv = 1;
  }
}

static void timeouts_restore(int fd, struct timeouts *t)
{
  if (t->set_snd) cg_real.setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &t->snd, sizeof t->snd);
  if (t->set_rcv) cg_real.setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &t->rcv, sizeof t->rcv);
  t->set_snd = t->set_rcv = 0;
}

/* Writes to a socket the server reset raise SIGPIPE; the program's own first attempt may, our
 * extra attempts must not. Blocked for this thread while they run, a SIGPIPE they caused dropped. */
struct pipe_guard { sigset_t old; int pending_before, active; };

static void pipe_block(struct pipe_guard *g)
{
  sigset_t s, pend;
  sigemptyset(&s);
  sigaddset(&s, SIGPIPE);
  g->pending_before = sigpending(&pend) == 0 && sigismember(&pend, SIGPIPE);
  g->active = pthread_sigmask(SIG_BLOCK, &s, &g->old) == 0;
}

static void pipe_unblock(struct pipe_guard *g)
{
  if (!g->active) return;
  sigset_t s, pend;
  sigemptyset(&s);
  sigaddset(&s, SIGPIPE);
  if (!g->pending_before && sigpending(&pend) == 0 && sigismember(&pend, SIGPIPE)) {
    struct timespec zero = { 0, 0 };
    sigtimedwait(&s, NULL, &zero);
  }
  pthread_sigmask(SIG_SETMASK, &g->old, NULL);
}

/* A fresh TCP connection on the same fd number: the socket object stays (options, flags,
 * close-on-exec, epoll registrations), connect(AF_UNSPEC) dissolves the old association. */
static int reconnect(struct hsctx *c, struct timeouts *t, int64_t left)
{
  struct sockaddr sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_family = AF_UNSPEC;
  r_connect(c->fd, &sa, sizeof sa);
  int e = 0;
  socklen_t el = sizeof e;
  r_getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e, &el);   /* the reset leaves ECONNRESET behind */
  timeouts_limit(c->fd, t, SO_SNDTIMEO, left);           /* bounds a blocking connect */
  CG_STAT_ADD(connect_attempts, 1);
  int r = r_connect(c->fd, (const struct sockaddr *)&c->dst, c->dstlen);
  int err = r == 0 ? 0 : errno;
  if (err == EINPROGRESS) {
    /* Our send timeout expired while connecting: abandon this SYN. */
    r_connect(c->fd, &sa, sizeof sa);
    r_getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e, &el);
    err = ETIMEDOUT;
  }
  return err;
}

/* SSL_clear keeps the SSL_CTX, the verify parameters (host name) and the options; the SNI
 * name is put back if a version drops it. The socket BIO remembers EOF: forget it. */
static int reset_ssl(struct hsctx *c)
{
  if (!O.clear(c->ssl)) return -1;
  if (c->sni[0] && O.get_servername && O.ctrl && !O.get_servername(c->ssl, TLSEXT_NAMETYPE_HOST))
    O.ctrl(c->ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_HOST, c->sni);
  void *bio = O.get_rbio ? O.get_rbio(c->ssl) : NULL;
  if (bio && O.bio_method_type && O.bio_clear_flags && (O.bio_method_type(bio) & BIO_TYPE_DESCRIPTOR))
    O.bio_clear_flags(bio, BIO_FLAGS_IN_EOF);
  return 0;
}

static int is_blocking(int fd)
{
  int fl = (int)cg_syscall(SYS_fcntl, fd, F_GETFL);
  return fl >= 0 && !(fl & O_NONBLOCK);
}

/* Whether the destination is ours to act on at all (CONNGUARD_ONLY / SKIP, as for connect). */
static int dst_wanted(const struct hsctx *c)
{
  if (!c->dstlen) return 1;
  const struct sockaddr *a = (const struct sockaddr *)&c->dst;
  if (cg_cfg.skip.n && cg_patterns_match(&cg_cfg.skip, a, c->dstlen)) return 0;
  if (cg_cfg.only.n && !cg_patterns_match(&cg_cfg.only, a, c->dstlen)) return 0;
  return 1;
}

static int is_failure(int ssl_error)
{
  return ssl_error == CG_SSL_ERROR_SSL || ssl_error == CG_SSL_ERROR_SYSCALL || ssl_error == CG_SSL_ERROR_ZERO_RETURN;
}

/* ====================================================================================
 * The hook body
 * ==================================================================================== */

/* Every real call starts with the errno the program had when it called us: OpenSSL's own BIOs
 * overwrite it, others (curl's) may leave it, and the program then reads what it would have. */
static int call_real(struct hsctx *c)
{
  cg_tls_depth++;
  errno = c->entry_errno;
  int r = O.entry[c->which](c->ssl);
  cg_tls_depth--;
  return r;
}

/* The errno that says something about a SSL_ERROR_SYSCALL: one the call left unchanged is the
 * program's old value, not news, unless it is a connection error. */
static int news_errno(const struct hsctx *c, int e)
{
  if (e != c->entry_errno) return e;
  switch (e) {
  case ECONNRESET: case EPIPE: case ECONNABORTED: case ETIMEDOUT: case ENOTCONN: return e;
  default: return 0;
  }
}

/* Why a failed blocking handshake may not be retried (NULL: it may). */
static const char *retry_blocker(const struct hsctx *c, const struct diag *d, int fresh, int queue_was_empty)
{
  if (!cg_tls_cause_transport(d->cause)) return "not_retryable";
  if (c->fd >= 0 && !is_blocking(c->fd)) return "nonblocking";
  if (!c->fd_from_ssl) return "no_fd";
  if (!fresh) return "not_first_call";
  if (!c->dstlen || (c->dst.ss_family != AF_INET && c->dst.ss_family != AF_INET6)) return "not_tcp";
  if (!queue_was_empty || !can_retry_api()) return "error_state";
  return NULL;
}

int cg_tls_handshake(void *ssl, int which)
{
  struct hsctx c;
  c.ssl = ssl;
  c.which = which;
  c.npcs = -1;
  c.dstlen = 0;
  c.sni[0] = c.host[0] = 0;

  /* Servers use SSL_do_handshake too: their handshakes are their clients' business. */
  if (O.is_server && O.is_server(ssl)) return O.entry[which](ssl);
  /* An established connection: SSL_do_handshake returns 1 at once; nothing to see. */
  int fresh = O.in_before ? O.in_before(ssl) : 1;
  if (!fresh && O.is_init_finished && O.is_init_finished(ssl)) return O.entry[which](ssl);

  int64_t t_call = cg_mono_ns();
  int saved_errno = errno;
  c.entry_errno = saved_errno;
  c.fd = O.get_fd ? O.get_fd(ssl) : -1;
  c.fd_from_ssl = c.fd >= 0;
  /* Taken now: once the server has reset the connection, getpeername() has nothing to say. */
  if (c.fd < 0 && fresh) c.fd = guess_fd();
  if (c.fd >= 0 && fresh) peer_of(c.fd, &c.dst, &c.dstlen);
  int queue_was_empty = (fresh && O.err_peek) ? O.err_peek() == 0 : 0;
  errno = saved_errno;

  int r = call_real(&c);
  int e1 = errno;
  int64_t t_end = cg_mono_ns();
  int err_ssl = O.get_error ? O.get_error(ssl, r) : (r == 1 ? 0 : CG_SSL_ERROR_SSL);

  int64_t t_start = t_call;
  if (!fresh) {
    int64_t t0;
    if (hs_lookup(ssl, &t0, &c.fd, &c.dst, &c.dstlen)) {          /* a failure already reported: stay quiet */
      errno = e1;
      return r;
    }
    t_start = t0 ? t0 : -1;
  }
  c.t0 = t_start > 0 ? t_start : t_call;

  if (r == 1) {
    count_handshake(t_start > 0 ? t_end - t_start : -1, 0);
    if (!fresh) hs_end(ssl, 0);
    check_name_after(&c);
    errno = e1;
    return r;
  }
  if (!is_failure(err_ssl)) {
    /* In progress (non-blocking WANT_READ/WRITE, callbacks): the program calls again. */
    if (fresh) hs_start(ssl, t_call, c.fd, &c.dst, c.dstlen);
    errno = e1;
    return r;
  }

  /* A real failure. */
  count_handshake(t_start > 0 ? t_end - t_start : -1, 1);
  if (c.fd < 0) c.fd = guess_fd();
  if (!c.dstlen && c.fd >= 0) peer_of(c.fd, &c.dst, &c.dstlen);
  if (!dst_wanted(&c)) {
    hs_end(ssl, 1);
    errno = e1;
    return r;
  }
  names_of(&c);
  struct diag d;
  diagnose(ssl, r, err_ssl, news_errno(&c, e1), &d);

  const char *why = retry_blocker(&c, &d, fresh, queue_was_empty);
  unsigned attempt = 1, delay = 0, prev_delay = 0;
  int64_t budget_end = c.t0 + (int64_t)cg_cfg.deadline_ms * MS_NS;
  /* What the program gets when retries run out: the last real handshake's result, whose
   * return value, errno, error queue and SSL state belong together. */
  int last_r = r, last_errno = e1, last_timed_out = 0;
  for (;;) {
    int64_t now = cg_mono_ns();
    if (!why && !cg_retries_left(&cg_cfg, attempt)) why = "retries_exhausted";
    if (!why && cg_retry_delay(&cg_cfg, attempt, prev_delay, rnd(), budget_end - now, &delay)) why = "deadline";
    if (why) {
      log_failed(&c, &d, attempt, ACT_GIVE_UP, 0, why, "handshake");
      hs_end(ssl, 1);
      if (last_timed_out) {
        /* Only our own limit stopped the last handshake: it goes on under the program's terms,
         * as it would have without us (or, if a reconnect since has dissolved its connection,
         * OpenSSL finds that out itself, so that its state and the result agree). */
        struct pipe_guard pg;
        pipe_block(&pg);
        last_r = call_real(&c);
        last_errno = errno;
        pipe_unblock(&pg);
        int es = O.get_error(ssl, last_r);
        if (last_r == 1) hs_end(ssl, 0);
        else if (!is_failure(es)) hs_start(ssl, c.t0, c.fd, &c.dst, c.dstlen);
      }
      errno = last_errno;
      return last_r;
    }
    log_failed(&c, &d, attempt, ACT_RETRY, delay, NULL, "handshake");
    CG_STAT_ADD(tls_retries, 1);
    sleep_until(now + (int64_t)delay * MS_NS);
    prev_delay = delay;
    attempt++;

    /* A fresh TCP connection first: if even that fails, the SSL object keeps the state of the
     * last handshake, which is what the program sees if we stop here. */
    now = cg_mono_ns();
    int64_t attempt_end = now + (int64_t)cg_cfg.connect_timeout_ms * MS_NS;
    if (attempt_end > budget_end) attempt_end = budget_end;
    struct timeouts to;
    timeouts_get(c.fd, &to);
    int cerr = reconnect(&c, &to, attempt_end - now);
    if (cerr) {
      timeouts_restore(c.fd, &to);
      memset(&d, 0, sizeof d);
      d.cause = CG_TLS_RECONNECT;
      d.sys_errno = cerr;
      copy_str(d.reason, sizeof d.reason, strerror(cerr));
      if (!(cg_errno_class(cerr, c.dst.ss_family) & cg_cfg.retry_on)) why = "not_retryable";
      continue;
    }
    O.err_clear();
    if (reset_ssl(&c) != 0) {
      /* Cannot happen with a sane OpenSSL; the connection is new, the SSL object unusable. */
      timeouts_restore(c.fd, &to);
      d.cause = CG_TLS_OTHER;
      copy_str(d.reason, sizeof d.reason, "SSL_clear failed");
      why = "error_state";
      last_r = -1;
      last_errno = 0;
      last_timed_out = 0;
      continue;
    }
    timeouts_limit(c.fd, &to, SO_RCVTIMEO, attempt_end - cg_mono_ns());
    timeouts_limit(c.fd, &to, SO_SNDTIMEO, attempt_end - cg_mono_ns());
    int ours = to.set_rcv || to.set_snd;
    int64_t t_att = cg_mono_ns();
    struct pipe_guard pg;
    pipe_block(&pg);
    int ra = call_real(&c);
    int ea = errno;
    pipe_unblock(&pg);
    timeouts_restore(c.fd, &to);
    int es = O.get_error(ssl, ra);
    t_end = cg_mono_ns();
    if (ra == 1) {
      count_handshake(t_end - t_att, 0);
      log_recovered(&c, attempt);
      check_name_after(&c);
      errno = ea;
      return 1;
    }
    if (!is_failure(es)) {
      if (!(ours && ea == EAGAIN)) {
        /* The program's own socket timeout on a blocking socket: it sees what it asked for. */
        hs_start(ssl, t_att, c.fd, &c.dst, c.dstlen);
        errno = ea;
        return ra;
      }
      /* Our per-attempt limit, not the program's. */
      count_handshake(t_end - t_att, 1);
      memset(&d, 0, sizeof d);
      d.cause = CG_TLS_TIMEOUT;
      copy_str(d.reason, sizeof d.reason, "no answer within the attempt's time limit");
      last_r = ra;
      last_errno = ea;
      last_timed_out = 1;
      continue;
    }
    count_handshake(t_end - t_att, 1);
    last_r = ra;
    last_errno = ea;
    last_timed_out = 0;
    diagnose(ssl, ra, es, news_errno(&c, ea), &d);
    /* The server answered for real this time (certificate, alert): that is the result. */
    if (!cg_tls_cause_transport(d.cause)) why = "not_retryable";
  }
}
