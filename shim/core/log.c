#include "log.h"
#include "clock.h"
#include "fdutil.h"
#include "policy.h"
#include "pystack.h"
#include "stack.h"
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static int json;
static char path_tmpl[CG_PATH_MAX] = "stderr";
static int to_stderr = 1;

/* Our descriptor and the identity of what it must point to. */
static int log_fd = -1;
static dev_t log_dev;
static ino_t log_ino;
static pid_t log_pid;
static dev_t stderr_dev;   /* identity of the program's fd 2 when we first copied it */
static ino_t stderr_ino;
static int stderr_known;
static int write_error_reported;
static atomic_uint log_lock;
static __thread int in_log;

/* fd 2 as the program started: our own warnings go there only while it still is (a daemon
 * that closed it may have a socket at that number now). */
static dev_t err0_dev;
static ino_t err0_ino;
static int err0_known;

void cg_log_warning(const char *s, size_t n)
{
  struct stat st;
  if (!err0_known || fstat(2, &st) != 0 || st.st_dev != err0_dev || st.st_ino != err0_ino) return;
  if (write(2, s, n) < 0) { /* nowhere left to report */ }
}

void cg_log_configure(const struct cg_config *c)
{
  struct stat st;
  if (fstat(2, &st) == 0) { err0_dev = st.st_dev; err0_ino = st.st_ino; err0_known = 1; }
  json = c->log_format == CG_LOG_JSON;
  strcpy(path_tmpl, c->log);
  to_stderr = strcmp(c->log, "stderr") == 0;
}

int cg_log_json(void) { return json; }

void cg_log_expand_path(const char *tmpl, int pid, char *out, size_t cap)
{
  struct cg_buf b;
  cg_buf_init(&b, out, cap);
  for (const char *p = tmpl; *p; p++) {
    if (p[0] == '%' && p[1] == 'p') { cg_buf_i64(&b, pid); p++; }
    else cg_buf_putc(&b, *p);
  }
  cg_buf_str(&b);
}

static int same_file(int fd, dev_t dev, ino_t ino)
{
  struct stat st;
  return fd >= 0 && fstat(fd, &st) == 0 && st.st_dev == dev && st.st_ino == ino;
}

static void remember(int fd)
{
  struct stat st;
  log_fd = fd;
  if (fd >= 0 && fstat(fd, &st) == 0) { log_dev = st.st_dev; log_ino = st.st_ino; }
}

/* Returns a descriptor that is still ours, reopening if needed; -1 when none can be had. */
static int log_open(void)
{
  pid_t pid = getpid();
  if (log_fd >= 0 && log_pid == pid && same_file(log_fd, log_dev, log_ino)) return log_fd;
  if (log_fd >= 0 && log_pid != pid && !to_stderr && strstr(path_tmpl, "%p")) {
    syscall(SYS_close, log_fd);           /* the parent's file: the child writes its own */
    log_fd = -1;
  } else if (log_fd >= 0 && !same_file(log_fd, log_dev, log_ino)) {
    log_fd = -1;                          /* closed by the program, maybe reused: never touch it */
  }
  log_pid = pid;
  if (log_fd >= 0) return log_fd;
  if (to_stderr) {
    struct stat st;
    if (fstat(2, &st) != 0) return -1;
    if (!stderr_known) { stderr_dev = st.st_dev; stderr_ino = st.st_ino; stderr_known = 1; }
    else if (st.st_dev != stderr_dev || st.st_ino != stderr_ino) return -1;  /* fd 2 is something else now */
    int fd = (int)syscall(SYS_fcntl, 2, F_DUPFD_CLOEXEC, cg_high_fd_base());
    if (fd < 0) fd = (int)syscall(SYS_fcntl, 2, F_DUPFD_CLOEXEC, 3);
    if (fd < 0) return -1;
    remember(fd);
    return fd;
  }
  /* Static, not on the stack: only reached under log_lock, and a thread created with
   * PTHREAD_STACK_MIN (16 KB) must survive a failing connect. */
  static char path[CG_PATH_MAX + 16];
  cg_log_expand_path(path_tmpl, pid, path, sizeof path);
  /* O_NOFOLLOW: a symlink planted at the log path is refused, not followed. O_NONBLOCK: a FIFO
   * with no reader would block the open, and with it the program's connect(), forever; a full
   * pipe drops records (reported once) instead of stopping the program. */
  int fd = (int)syscall(SYS_openat, AT_FDCWD, path,
                        O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK, 0600);
  if (fd < 0) {
    if (!write_error_reported) {
      write_error_reported = 1;
      static char line[CG_PATH_MAX + 128];
      struct cg_buf b;
      cg_buf_init(&b, line, sizeof line);
      cg_buf_puts(&b, "connguard: warning: cannot open CONNGUARD_LOG file ");
      cg_buf_puts(&b, path);
      cg_buf_puts(&b, ": ");
      int e = errno;
      if (cg_errno_name(e)) cg_buf_puts(&b, cg_errno_name(e));
      else { cg_buf_puts(&b, "errno "); cg_buf_i64(&b, e); }
      cg_buf_puts(&b, "; log records are dropped\n");
      cg_log_warning(b.p, b.len);
    }
    return -1;
  }
  fd = cg_fd_move_high(fd);
  remember(fd);
  return fd;
}

void cg_log_write(const char *buf, size_t len)
{
  if (in_log) return;   /* a signal handler interrupted a write of ours: drop, never deadlock */
  in_log = 1;
  int saved = errno;
  unsigned spins = 0;
  while (atomic_exchange_explicit(&log_lock, 1, memory_order_acquire))
    if (++spins > 64) sched_yield();
  int fd = log_open();
  if (fd >= 0) {
    size_t off = 0;
    while (off < len) {
      ssize_t w = write(fd, buf + off, len - off);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) {
        if (!write_error_reported) {
          write_error_reported = 1;
          static const char msg[] = "connguard: warning: cannot write to the log; further records may be lost\n";
          if (!to_stderr) cg_log_warning(msg, sizeof msg - 1);
        }
        break;
      }
      off += (size_t)w;
    }
  }
  atomic_store_explicit(&log_lock, 0, memory_order_release);
  errno = saved;
  in_log = 0;
}

void cg_log_prepare(void)
{
  /* Only stderr can be lost before exit (closed by the program); a file path is opened when the
   * first record comes, so that a healthy run leaves no (empty) log file behind. */
  if (!to_stderr || in_log) return;
  in_log = 1;
  int saved = errno;
  unsigned spins = 0;
  while (atomic_exchange_explicit(&log_lock, 1, memory_order_acquire))
    if (++spins > 64) sched_yield();
  (void)log_open();
  atomic_store_explicit(&log_lock, 0, memory_order_release);
  errno = saved;
  in_log = 0;
}

void cg_log_after_fork(void)
{
  atomic_store(&log_lock, 0);
}

/* ---- records ---- */

static int needs_quotes(const char *s)
{
  if (!*s) return 1;
  for (; *s; s++)
    if ((unsigned char)*s <= ' ' || *s == '"' || *s == '\\' || (unsigned char)*s >= 0x7f) return 1;
  return 0;
}

/* Text-format values that are not quoted (details, frame names): a control byte could end the
 * line and start a forged one (a certificate SAN reaches cert_san as the server sent it). */
static void put_text(struct cg_buf *b, const char *v)
{
  static const char hex[] = "0123456789abcdef";
  for (const char *p = v; *p;) {
    const char *q = p;
    while (*q && (unsigned char)*q >= 0x20 && *q != 0x7f) q++;
    cg_buf_putn(b, p, (size_t)(q - p));
    if (!*q) break;
    unsigned char c = (unsigned char)*q;
    char e[4] = { '\\', 'x', hex[c >> 4], hex[c & 15] };
    cg_buf_putn(b, e, 4);
    p = q + 1;
  }
}

static void prefix(struct cg_rec *r)
{
  cg_buf_puts(&r->b, "==");
  cg_buf_i64(&r->b, r->pid);
  cg_buf_puts(&r->b, "== ");
}

void cg_rec_begin(struct cg_rec *r, const char *event)
{
  /* The last bytes are kept for the closing characters and a truncation mark. */
  cg_buf_init(&r->b, r->mem, sizeof r->mem - 48);
  r->json = json;
  r->dropped = 0;
  r->detail = 0;
  r->pid = getpid();
  int64_t now = cg_realtime_ns();
  if (r->json) {
    cg_buf_puts(&r->b, "{\"ts\":\"");
    cg_buf_iso8601(&r->b, now);
    cg_buf_puts(&r->b, "\",\"pid\":");
    cg_buf_i64(&r->b, r->pid);
    cg_buf_puts(&r->b, ",\"event\":");
    cg_buf_json_str(&r->b, event);
  } else {
    prefix(r);
    cg_buf_puts(&r->b, "connguard ");
    cg_buf_puts(&r->b, event);
    cg_buf_puts(&r->b, " ts=");
    cg_buf_iso8601(&r->b, now);
  }
}

/* A field or frame that does not fit is removed whole, so JSON stays valid. */
static size_t mark(struct cg_rec *r) { return r->b.len; }
static int rollback(struct cg_rec *r, size_t m)
{
  if (!r->b.truncated) return 0;
  r->b.len = m;
  r->b.truncated = 0;
  r->dropped = 1;
  return 1;
}

static void key(struct cg_rec *r, const char *k)
{
  if (r->json) {
    cg_buf_putc(&r->b, ',');
    cg_buf_json_str(&r->b, k);
    cg_buf_putc(&r->b, ':');
  } else if (r->detail) {
    cg_buf_putc(&r->b, '\n');
    prefix(r);
    cg_buf_puts(&r->b, "  ");
    cg_buf_puts(&r->b, k);
    cg_buf_puts(&r->b, ": ");
  } else {
    cg_buf_putc(&r->b, ' ');
    cg_buf_puts(&r->b, k);
    cg_buf_putc(&r->b, '=');
  }
}

void cg_rec_str(struct cg_rec *r, const char *k, const char *v)
{
  if (!v) v = "";
  size_t m = mark(r);
  key(r, k);
  if (r->json || needs_quotes(v)) cg_buf_json_str(&r->b, v);
  else cg_buf_puts(&r->b, v);
  rollback(r, m);
}

void cg_rec_int(struct cg_rec *r, const char *k, int64_t v)
{
  size_t m = mark(r);
  key(r, k);
  cg_buf_i64(&r->b, v);
  rollback(r, m);
}

void cg_rec_intlist(struct cg_rec *r, const char *k, const int64_t *v, int n)
{
  size_t m = mark(r);
  key(r, k);
  if (r->json) cg_buf_putc(&r->b, '[');
  for (int i = 0; i < n; i++) {
    if (i) cg_buf_putc(&r->b, ',');
    cg_buf_i64(&r->b, v[i]);
  }
  if (r->json) cg_buf_putc(&r->b, ']');
  rollback(r, m);
}

void cg_rec_strlist(struct cg_rec *r, const char *k, const char *const *v, int n)
{
  if (!r->json) {
    char t[1024];
    struct cg_buf b;
    cg_buf_init(&b, t, sizeof t);
    for (int i = 0; i < n; i++) {
      if (i) cg_buf_putc(&b, ',');
      cg_buf_puts(&b, v[i] ? v[i] : "");
    }
    cg_rec_str(r, k, cg_buf_str(&b));
    return;
  }
  size_t m = mark(r);
  key(r, k);
  cg_buf_putc(&r->b, '[');
  for (int i = 0; i < n; i++) {
    if (i) cg_buf_putc(&r->b, ',');
    cg_buf_json_str(&r->b, v[i] ? v[i] : "");
  }
  cg_buf_putc(&r->b, ']');
  rollback(r, m);
}

void cg_rec_addr(struct cg_rec *r, const char *k, const struct sockaddr *sa, unsigned len)
{
  char t[160];
  struct cg_buf b;
  cg_buf_init(&b, t, sizeof t);
  cg_buf_sockaddr(&b, sa, len);
  cg_rec_str(r, k, cg_buf_str(&b));
}

void cg_rec_errno(struct cg_rec *r, const char *k, int err)
{
  const char *n = cg_errno_name(err);
  if (n) { cg_rec_str(r, k, n); return; }
  char t[24];
  struct cg_buf b;
  cg_buf_init(&b, t, sizeof t);
  cg_buf_puts(&b, "E");
  cg_buf_i64(&b, err);
  cg_rec_str(r, k, cg_buf_str(&b));
}

void cg_rec_detail(struct cg_rec *r, const char *k, const char *v)
{
  if (r->json) { cg_rec_str(r, k, v); return; }
  r->detail = 1;
  size_t m = mark(r);
  key(r, k);
  put_text(&r->b, v ? v : "");
  rollback(r, m);
}

void cg_rec_stack(struct cg_rec *r, const uintptr_t *pcs, int n)
{
  struct cg_frame f;
  if (r->json) {
    size_t m0 = mark(r);
    cg_buf_puts(&r->b, ",\"stack\":[");
    if (rollback(r, m0)) return;
    for (int i = 0; i < n; i++) {
      cg_stack_symbolize(pcs[i], &f);
      size_t m = mark(r);
      if (i) cg_buf_putc(&r->b, ',');
      cg_buf_puts(&r->b, "{\"pc\":\"");
      cg_buf_hex(&r->b, f.pc);
      cg_buf_puts(&r->b, "\",\"module\":");
      cg_buf_json_str(&r->b, f.module);
      cg_buf_puts(&r->b, ",\"offset\":\"");
      cg_buf_hex(&r->b, f.offset);
      cg_buf_putc(&r->b, '"');
      if (f.symbol) {
        cg_buf_puts(&r->b, ",\"symbol\":");
        cg_buf_json_str(&r->b, f.symbol);
      }
      cg_buf_putc(&r->b, '}');
      if (rollback(r, m)) break;
    }
    r->b.cap += 1;   /* the closing bracket always fits: taken from the reserve */
    cg_buf_putc(&r->b, ']');
    return;
  }
  r->detail = 1;
  for (int i = 0; i < n; i++) {
    cg_stack_symbolize(pcs[i], &f);
    size_t m = mark(r);
    cg_buf_putc(&r->b, '\n');
    prefix(r);
    cg_buf_puts(&r->b, "    #");
    cg_buf_i64(&r->b, i);
    cg_buf_putc(&r->b, ' ');
    cg_buf_hex(&r->b, f.pc);
    cg_buf_puts(&r->b, " in ");
    if (f.symbol) {
      put_text(&r->b, f.symbol);
      cg_buf_putc(&r->b, '+');
      cg_buf_hex(&r->b, f.sym_off);
    } else {
      cg_buf_puts(&r->b, "??");
    }
    cg_buf_puts(&r->b, " (");
    put_text(&r->b, f.module);
    cg_buf_putc(&r->b, '+');
    cg_buf_hex(&r->b, f.offset);
    cg_buf_putc(&r->b, ')');
    if (rollback(r, m)) break;
  }
}

void cg_rec_pystack(struct cg_rec *r, uint32_t id)
{
  struct cg_py_frame f[CG_PY_FRAMES];
  int n = id ? cg_pystack_get(id, f, CG_PY_FRAMES) : 0;
  if (n <= 0) return;
  if (r->json) {
    size_t m0 = mark(r);
    cg_buf_puts(&r->b, ",\"pystack\":[");
    if (rollback(r, m0)) return;
    for (int i = 0; i < n; i++) {
      size_t m = mark(r);
      if (i) cg_buf_putc(&r->b, ',');
      cg_buf_puts(&r->b, "{\"file\":");
      cg_buf_json_str(&r->b, f[i].file);
      cg_buf_puts(&r->b, ",\"line\":");
      cg_buf_i64(&r->b, f[i].line);
      cg_buf_puts(&r->b, ",\"function\":");
      cg_buf_json_str(&r->b, f[i].func);
      cg_buf_putc(&r->b, '}');
      if (rollback(r, m)) break;
    }
    r->b.cap += 1;   /* the closing bracket always fits: taken from the reserve */
    cg_buf_putc(&r->b, ']');
    r->b.cap -= 1;
    return;
  }
  r->detail = 1;
  for (int i = 0; i < n; i++) {
    size_t m = mark(r);
    cg_buf_putc(&r->b, '\n');
    prefix(r);
    cg_buf_puts(&r->b, "    File \"");
    put_text(&r->b, f[i].file);
    cg_buf_puts(&r->b, "\", line ");
    cg_buf_i64(&r->b, f[i].line);
    cg_buf_puts(&r->b, ", in ");
    put_text(&r->b, f[i].func);
    if (rollback(r, m)) break;
  }
}

const char *cg_rec_finish(struct cg_rec *r, size_t *len)
{
  r->b.cap = sizeof r->mem;
  if (r->dropped) {
    if (r->json) cg_buf_puts(&r->b, ",\"truncated\":true");
    else if (r->detail) {
      /* Prefixed like every line of the record, or a reader would take it for the program's. */
      cg_buf_putc(&r->b, '\n');
      prefix(r);
      cg_buf_puts(&r->b, "  (record truncated)");
    } else {
      cg_buf_puts(&r->b, " truncated=1");
    }
  }
  if (r->json) cg_buf_putc(&r->b, '}');
  cg_buf_putc(&r->b, '\n');
  if (len) *len = r->b.len;
  return cg_buf_str(&r->b);
}

void cg_rec_emit(struct cg_rec *r)
{
  size_t len;
  const char *s = cg_rec_finish(r, &len);
  cg_log_write(s, len);
}
