#include "log.h"
#include "rawsys.h"
#include "startup.h"
#include "clock.h"
#include "fdutil.h"
#include "policy.h"
#include "pystack.h"
#include "stack.h"
#include "stats.h"
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

/* No descriptor of ours stays open between hook calls (docs/hostile.md): a log file is opened
 * for each record and closed after it; stderr records are written to fd 2 while it is still
 * the file the program started with. The one exception is a copy of that stderr taken when
 * the program closes it inside exit() while an exit report may still come (cg_log_fd_closing). */

static int json CG_STARTUP_DATA;
static char path_tmpl[CG_PATH_MAX];   /* bss, not 4 KB of .data: a page written at start-up less */
static int to_stderr = 1;
static int path_has_pid CG_STARTUP_DATA;

/* fd 2 as the program started. */
static dev_t err0_dev CG_STARTUP_DATA;
static ino_t err0_ino CG_STARTUP_DATA;
static int err0_known CG_STARTUP_DATA;
static int err_copy = -1;        /* copy of that stderr, see cg_log_fd_closing */
static int exit_report CG_STARTUP_DATA;         /* an exit report may come (leak tracking at exit) */

/* The last write to the destination was cut short (ENOSPC, a full pipe): the next record
 * starts with a newline so that one line is lost, not two. Per destination. */
static int torn_file, torn_err;
static int warned_path, warned_write;
static atomic_uint log_lock;
static __thread int in_log;

static int same_file(int fd, dev_t dev, ino_t ino)
{
  struct stat st;
  return fd >= 0 && fstat(fd, &st) == 0 && st.st_dev == dev && st.st_ino == ino;
}

/* Where stderr records and our warnings may go now: fd 2 while it is the stderr the program
 * started with (a daemon that closed it may have a socket at that number now), else the copy
 * taken when the program closed it; -1 when neither. */
static int stderr_fd(void)
{
  if (!err0_known) return -1;
  if (same_file(2, err0_dev, err0_ino)) return 2;
  if (err_copy >= 0 && same_file(err_copy, err0_dev, err0_ino)) return err_copy;
  return -1;
}

void cg_log_warning(const char *s, size_t n)
{
  int fd = stderr_fd();
  if (fd >= 0 && write(fd, s, n) < 0) { /* nowhere left to report */ }
}

__attribute__((cold)) void cg_log_configure(const struct cg_config *c)
{
  struct stat st;
#if defined(__x86_64__)
  /* fstat(2) is fstatat(2, "", AT_EMPTY_PATH) in glibc: the kernel reads that "" from a page of
   * libc's that no process touched yet, a page fault at every start. Same struct stat on x86-64. */
  long r = cg_sys6(SYS_fstat, 2, (long)&st, 0, 0, 0, 0);
#else
  int r = fstat(2, &st);
#endif
  if (r == 0) { err0_dev = st.st_dev; err0_ino = st.st_ino; err0_known = 1; }
  json = c->log_format == CG_LOG_JSON;
  /* Compared byte by byte, not with strcmp and strstr: their string literals would be the one
   * read of .rodata at start-up, a page fault in every process (startup.h). */
  const char *l = c->log;
  to_stderr = l[0] == 's' && l[1] == 't' && l[2] == 'd' && l[3] == 'e' && l[4] == 'r' && l[5] == 'r' && !l[6];
  if (!to_stderr) strcpy(path_tmpl, c->log);   /* read only by open_file, when !to_stderr */
  path_has_pid = 0;
  for (; *l; l++)
    if (l[0] == '%' && l[1] == 'p') path_has_pid = 1;
}

int cg_log_json(void) { return json; }

/* exit() runs the calling thread's thread_local destructors before any atexit handler: one
 * registered for the main thread tells us that exit has begun. Weak: not every libc has it. */
extern int __cxa_thread_atexit_impl(void (*fn)(void *), void *obj, void *dso) __attribute__((weak));
static volatile int exiting;
static void exit_begins(void *arg) { (void)arg; exiting = 1; }

static pthread_t main_thread CG_STARTUP_DATA;
static atomic_int exit_hook;      /* registered (or being registered) on the main thread */

__attribute__((cold)) void cg_log_expect_exit_report(void)
{
  exit_report = 1;
  main_thread = pthread_self();
}

void cg_log_socket_tracked(void)
{
  /* Registered at the main thread's first tracked socket, not at start: the registration
   * callocs, and setting up the heap cost every process a page fault and three system calls.
   * `exiting` matters only while tracked sockets are open (cg_log_fd_closing); a process
   * whose main thread never makes one gets no copy of its stderr (docs/leaks.md). */
  if (atomic_load_explicit(&exit_hook, memory_order_relaxed) || !exit_report ||
      !pthread_equal(pthread_self(), main_thread) || atomic_exchange(&exit_hook, 1))
    return;
  if (__cxa_thread_atexit_impl) __cxa_thread_atexit_impl(exit_begins, NULL, &__dso_handle);
}

void cg_log_fd_closing(int lo, int hi)
{
  /* Async-signal-safe (close paths): a few compares, then fstat and fcntl. gnulib's
   * close_stdout (coreutils, wget) closes stderr in an exit handler, before our exit report
   * runs: without a copy the report would be lost. Taken only once exit() has begun, so a
   * running process never holds one (a daemon that closes its stderr must not keep the
   * terminal or its parent's pipe open through us). */
  if (lo > 2 || hi < 2 || !exiting || !to_stderr || !exit_report || err_copy >= 0 || !err0_known) return;
  if (atomic_load_explicit(&cg_stats->open_sockets, memory_order_relaxed) <= 0) return;
  if (!same_file(2, err0_dev, err0_ino)) return;
  int fd = (int)cg_syscall(SYS_fcntl, 2, F_DUPFD_CLOEXEC, cg_high_fd_base());
  if (fd < 0) fd = (int)cg_syscall(SYS_fcntl, 2, F_DUPFD_CLOEXEC, 3);
  if (fd >= 0) err_copy = fd;
}

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

static void warn_path(const char *path, const char *what, int err)
{
  if (warned_path) return;
  warned_path = 1;
  static char line[CG_PATH_MAX + 200];
  struct cg_buf b;
  cg_buf_init(&b, line, sizeof line);
  cg_buf_puts(&b, "connguard: warning: CONNGUARD_LOG file ");
  cg_buf_puts(&b, path);
  cg_buf_puts(&b, what);
  if (err) {
    const char *n = cg_errno_name(err);
    if (n) cg_buf_puts(&b, n);
    else { cg_buf_puts(&b, "errno "); cg_buf_i64(&b, err); }
  }
  cg_buf_puts(&b, "; records go to stderr\n");
  cg_log_warning(b.p, b.len);
}

#define LOG_OPEN (O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK)

/* Opens the log file for one record, or -1 (warned once: the record goes to stderr).
 * O_NOFOLLOW: a symlink planted at the path is refused, not followed. O_NONBLOCK: a FIFO with
 * no reader would block the open, and with it the program's connect(), forever. A path that
 * does not exist is created exclusively, owner-only; an existing one is used only when it
 * cannot be someone else's trap: our own regular file that only we can write, our own FIFO,
 * or a character device (/dev/null, a terminal). */
static int open_file(size_t len)
{
  /* Static, not on the stack: only reached under log_lock, and a thread created with
   * PTHREAD_STACK_MIN (16 KB) must survive a failing connect. */
  static char path[CG_PATH_MAX + 16];
  cg_log_expand_path(path_tmpl, getpid(), path, sizeof path);
  int fd = -1;
  for (int tries = 0; tries < 3 && fd < 0; tries++) {
    fd = (int)cg_syscall(SYS_openat, AT_FDCWD, path, LOG_OPEN, 0);
    if (fd >= 0 || errno != ENOENT) break;
    fd = (int)cg_syscall(SYS_openat, AT_FDCWD, path, LOG_OPEN | O_CREAT | O_EXCL, 0600);
    if (fd < 0 && errno != EEXIST) break;   /* EEXIST: another process of ours made it: open it */
  }
  if (fd < 0) {
    int e = errno;
    if (e == ELOOP) warn_path(path, " is a symbolic link: refused", 0);
    else if (e == ENXIO) warn_path(path, " is a FIFO with no reader: ", e);
    else warn_path(path, " cannot be opened: ", e);
    return -1;
  }
  struct stat st;
  const char *bad = NULL;
  if (fstat(fd, &st) != 0) bad = " cannot be examined: refused";
  else if (S_ISREG(st.st_mode)) {
    if (st.st_uid != geteuid()) bad = " belongs to another user: refused";
    else if (st.st_mode & 022) bad = " is writable by group or others: refused";
    else {
      /* Past RLIMIT_FSIZE a write raises SIGXFSZ, which kills the program by default. */
      struct rlimit rl;
      if (getrlimit(RLIMIT_FSIZE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && (rlim_t)st.st_size + len > rl.rlim_cur)
        bad = " has reached the file size limit (RLIMIT_FSIZE)";
    }
  } else if (S_ISFIFO(st.st_mode)) {
    if (st.st_uid != geteuid()) bad = " is another user's FIFO: refused";
  } else if (!S_ISCHR(st.st_mode)) {
    bad = " is not a regular file, FIFO or character device: refused";
  }
  if (bad) {
    cg_syscall(SYS_close, fd);
    warn_path(path, bad, 0);
    return -1;
  }
  return fd;
}

/* One record with one writev(); a cut-short write leaves *torn set, and the next record begins
 * with a newline. Returns 0 when the whole record was written. */
static int put(int fd, const char *buf, size_t len, int *torn)
{
  struct iovec iov[2];
  int n = 0;
  if (*torn) iov[n++] = (struct iovec){ (void *)"\n", 1 };
  iov[n++] = (struct iovec){ (void *)buf, len };
  size_t total = len + (n == 2), done = 0;
  while (done < total) {
    ssize_t w = writev(fd, iov, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) break;
    done += (size_t)w;
    /* A pipe may take part of it (a signal, a full pipe): go on from there. */
    while (n && (size_t)w >= iov[0].iov_len) { w -= (ssize_t)iov[0].iov_len; iov[0] = iov[1]; n--; }
    if (n) { iov[0].iov_base = (char *)iov[0].iov_base + w; iov[0].iov_len -= (size_t)w; }
  }
  if (done == total) { *torn = 0; return 0; }
  /* Ends on a newline (only our leading one got out) or nothing written: no fragment. */
  if (done > 0 && !(done == 1 && total == len + 1)) *torn = 1;
  return -1;
}

void cg_log_write(const char *buf, size_t len)
{
  if (in_log) return;   /* a signal handler interrupted a write of ours: drop, never deadlock */
  in_log = 1;
  int saved = errno;
  unsigned spins = 0;
  while (atomic_exchange_explicit(&log_lock, 1, memory_order_acquire))
    if (++spins > 64) sched_yield();
  int fd = to_stderr ? -1 : open_file(len + 1);
  if (fd >= 0) {
    if (put(fd, buf, len, &torn_file) != 0 && !warned_write) {
      warned_write = 1;
      static const char msg[] = "connguard: warning: cannot write a whole record to the CONNGUARD_LOG file (disk full?); "
                                "records may be lost\n";
      cg_log_warning(msg, sizeof msg - 1);
    }
    cg_syscall(SYS_close, fd);
  } else {
    fd = stderr_fd();
    if (fd >= 0) put(fd, buf, len, &torn_err);
  }
  atomic_store_explicit(&log_lock, 0, memory_order_release);
  errno = saved;
  in_log = 0;
}

void cg_log_after_fork(void)
{
  atomic_store(&log_lock, 0);
  /* A %p path names the child's own file: its state starts afresh. */
  if (path_has_pid) { torn_file = 0; warned_path = 0; warned_write = 0; }
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
