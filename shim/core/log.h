/* Failure log: one record per event, written with one write() so that records from threads
 * and processes never interleave. Text reads like a sanitizer report; JSON is one object per
 * line. Records are built without malloc in a caller-provided buffer. */
#ifndef CG_LOG_H
#define CG_LOG_H
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include "config.h"
#include "fmt.h"

#define CG_REC_MAX 8192

struct cg_rec {
  struct cg_buf b;
  int json;
  int detail;       /* text: header line closed, fields go on their own lines */
  int pid;
  int dropped;     /* a field or frame did not fit and was left out whole */
  char mem[CG_REC_MAX];
};

/* Set once from the configuration (log destination and format). */
void cg_log_configure(const struct cg_config *c);
int cg_log_json(void);

void cg_rec_begin(struct cg_rec *r, const char *event);
void cg_rec_str(struct cg_rec *r, const char *key, const char *val);
void cg_rec_int(struct cg_rec *r, const char *key, int64_t v);
void cg_rec_addr(struct cg_rec *r, const char *key, const struct sockaddr *sa, unsigned len);
void cg_rec_errno(struct cg_rec *r, const char *key, int err);
/* Lists: text key=a,b,c (one value, quoted as a whole when needed); JSON "key":[...]. */
void cg_rec_intlist(struct cg_rec *r, const char *key, const int64_t *vals, int n);
void cg_rec_strlist(struct cg_rec *r, const char *key, const char *const *vals, int n);
/* Text: its own indented line "key: value"; JSON: an ordinary string field. */
void cg_rec_detail(struct cg_rec *r, const char *key, const char *val);
/* Frames innermost first: text "#N 0xPC in sym+0xOFF (module+0xOFF)"; JSON "stack":[...]. */
void cg_rec_stack(struct cg_rec *r, const uintptr_t *pcs, int n);
/* Python frames innermost first (pystack.h id; nothing for 0): text lines
 * `File "app.py", line 12, in open_conn`, JSON "pystack":[{"file":..,"line":..,"function":..}].
 * Written before the native frames. */
void cg_rec_pystack(struct cg_rec *r, uint32_t id);
/* Finishes the record and writes it. */
void cg_rec_emit(struct cg_rec *r);
/* The finished text without writing it (tests). */
const char *cg_rec_finish(struct cg_rec *r, size_t *len);

/* Writes raw bytes to the log destination with one write(): a log file is opened for the
 * record and closed after it (nothing stays open between hooks); stderr is fd 2 while it is
 * still the file the program started with. A file path that cannot be opened or is refused
 * (see log.c: not ours, a symlink...) sends the record to stderr, with one warning. After a
 * short write the next record starts on a fresh line. Never fails the caller. */
void cg_log_write(const char *buf, size_t len);
/* Leak tracking reports at exit: records may come after the program closed its stderr. */
void cg_log_expect_exit_report(void);
/* Each tracked socket: the first on the main thread registers how the log learns that exit()
 * has begun. */
void cg_log_socket_tracked(void);
/* The program is about to close or replace fds lo..hi (close, dup2 onto, close_range,
 * closefrom, fclose). When that takes its original stderr, the log goes to stderr, and an
 * exit report may still come (tracked sockets open), a close-on-exec copy is kept so the
 * report is not lost (gnulib's close_stdout). Async-signal-safe. */
void cg_log_fd_closing(int lo, int hi);
/* A warning line of our own on the stderr the program started with (fd 2 while it still is
 * that file, or the copy above); dropped otherwise (fd 2 may be a socket now). */
void cg_log_warning(const char *line, size_t len);
/* After fork in the child: a %p path must name the child. */
void cg_log_after_fork(void);
/* Resolves the %p template for pid into out. */
void cg_log_expand_path(const char *tmpl, int pid, char *out, size_t cap);

#endif
