/* The engine's shared part: configuration and init, fork, what every path needs to judge and
 * record a connect. The file map is in engine.h. */
#include "engine_int.h"
#include "coord.h"
#include "log.h"
#include "pattern.h"
#include "policy.h"
#include "pystack.h"
#include "stack.h"
#include "stats.h"
#include "watchdog.h"
#include "startup.h"
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* Starts as the defaults, in .data: a process whose environment sets no CONNGUARD_* variable
 * never writes it (16 KB, four pages of .bss written at every start-up before). */
struct cg_config cg_cfg = CG_CONFIG_INIT;
int cg_enabled CG_STARTUP_DATA;
__thread int cg_in_hook;

/* Resets a socket whose connect failed or is still in SYN_SENT, so it can connect again. */
void cg_reset_socket(int fd)
{
  struct sockaddr sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_family = AF_UNSPEC;
  r_connect(fd, &sa, sizeof sa);
  (void)so_error(fd);   /* aborting a SYN_SENT socket leaves ECONNRESET behind */
}

/* Whether the destination is one we may retry, from the address alone (no system call). */
int cg_dst_wanted(const struct sockaddr *a, socklen_t l)
{
  int fam = family_of(a, l);
  /* Unix sockets only when CONNGUARD_ONLY names them: glibc's nscd probes fail all the time. */
  if (fam == AF_UNIX ? !cg_cfg.only.has_unix : fam != AF_INET && fam != AF_INET6) return 0;
  if (cg_cfg.skip.n && cg_patterns_match(&cg_cfg.skip, a, l)) return 0;
  if (cg_cfg.only.n && !cg_patterns_match(&cg_cfg.only, a, l)) return 0;
  return 1;
}

/* Whether connect() on fd to this destination is the shim's business at all. */
int cg_eligible(int fd, const struct sockaddr *a, socklen_t l)
{
  int fam = family_of(a, l), v = 0;
  socklen_t vl = sizeof v;
  if (!cg_dst_wanted(a, l)) return 0;
  if (fam == AF_INET || fam == AF_INET6) {
    struct cg_fd *e = cg_fd_peek(fd);
    if (cg_fd_made_here(e)) return e->tcp;      /* socket() said so: no need to ask */
    if (r_getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &v, &vl) < 0 || v != IPPROTO_TCP) return 0;
  } else {
    if (r_getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &vl) < 0 || (v != SOCK_STREAM && v != SOCK_SEQPACKET)) return 0;
  }
  return 1;
}

void cg_count_failure(int err)
{
  CG_STAT_ADD(connect_failures, 1);
  if (err > 0 && err < CG_STATS_ERRNOS) CG_STAT_ADD(failures_by_errno[err], 1);
}

/* ---------- records ---------- */

void cg_log_failure(int fd, const struct sockaddr *a, socklen_t l, int err, unsigned attempt,
                        int action, unsigned delay_ms, int64_t elapsed_ns, const char *reason,
                        const uintptr_t *pcs, int npcs, uint32_t py)
{
  struct cg_rec r;
  cg_rec_begin(&r, "connect_failed");
  cg_rec_int(&r, "fd", fd);
  cg_rec_addr(&r, "dst", a, l);
  cg_rec_errno(&r, "errno", err);
  cg_rec_int(&r, "attempt", attempt);
  cg_rec_str(&r, "action", action == ACT_RETRY ? "retry" : "give_up");
  if (action == ACT_RETRY) cg_rec_int(&r, "delay_ms", delay_ms);
  else if (reason) cg_rec_str(&r, "reason", reason);
  cg_rec_int(&r, "elapsed_ms", elapsed_ns / MS_NS);
  cg_rec_detail(&r, "hint", cg_errno_hint(err, family_of(a, l)));
  cg_rec_pystack(&r, py ? py : cg_pystack_capture(1));
  if (npcs > 0) cg_rec_stack(&r, pcs, npcs);
  cg_rec_emit(&r);
}

void cg_log_recovered(int fd, const struct sockaddr *a, socklen_t l, unsigned attempts, int64_t elapsed_ns,
                      uint32_t py)
{
  struct cg_rec r;
  cg_rec_begin(&r, "connect_recovered");
  cg_rec_int(&r, "fd", fd);
  cg_rec_addr(&r, "dst", a, l);
  cg_rec_int(&r, "attempts", attempts);
  cg_rec_int(&r, "elapsed_ms", elapsed_ns / MS_NS);
  cg_rec_pystack(&r, py ? py : cg_pystack_capture(1));
  cg_rec_emit(&r);
  CG_STAT_ADD(recoveries, 1);
}

/* ---------- init, fork ---------- */

static void warn_stderr(const char *line, void *arg)
{
  char buf[400];
  struct cg_buf b;
  cg_buf_init(&b, buf, sizeof buf - 1);
  cg_buf_puts(&b, line);
  cg_buf_putc(&b, '\n');
  if (write(2, b.p, b.len) < 0) { /* stderr closed: nothing to tell */ }
}

static const char *env_get(const char *name) { return secure_getenv(name); }

/* One pass over the environment instead of 25 lookups, since most processes set no CONNGUARD_*
 * variable. The prefix is in .data for the same reason as the configuration (startup.h). */
static char cg_prefix[] CG_STARTUP_DATA = "CONNGUARD_";
static int any_cg_variable(void)
{
  for (char **e = environ; e && *e; e++) {
    size_t i = 0;
    while (cg_prefix[i] && (*e)[i] == cg_prefix[i]) i++;
    if (!cg_prefix[i]) return 1;
  }
  return 0;
}

atomic_int cg_init_state CG_STARTUP_DATA;   /* engine.h: 0 none, 1 running, 2 done */

void cg_after_fork_child(void)
{
  cg_log_after_fork();
  cg_fallback_after_fork();
  for (int c = 0, len; (len = cg_fd_walk_len(c)) > 0; c++) {
    struct cg_fd *ch = atomic_load(&cg_fd_chunks[c]);
    if (ch) for (int i = 0; i < len; i++) atomic_store(&ch[i].lock, 0);
  }
  if (cg_cfg.stats) cg_stats_after_fork();
  cg_wd_after_fork_child();
  cg_coord_after_fork();
  cg_stack_after_fork_child();
}

void cg_init_slow(void)
{
  if (atomic_load_explicit(&cg_init_state, memory_order_acquire) == 2) return;
  int expect = 0;
  if (!atomic_compare_exchange_strong(&cg_init_state, &expect, 1)) return;  /* re-entered, or another thread: pass through meanwhile */
  int saved = errno;
  cg_real_init();
  if (any_cg_variable()) cg_config_apply(&cg_cfg, env_get, warn_stderr, NULL);
  if (!cg_cfg.disable) {
    cg_log_configure(&cg_cfg);
    cg_coord_configure(&cg_cfg);
    cg_stats_init(cg_cfg.stats);
    cg_atfork_child(cg_after_fork_child);
    cg_enabled = 1;
  }
  atomic_store_explicit(&cg_init_state, 2, memory_order_release);
  errno = saved;
}
