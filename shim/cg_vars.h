/* Every CONNGUARD_* variable, its default and what it means: the one list the parser, the
 * CLI, the docs check and the man page are kept in step with. X(name, kind, default, doc).
 * kind: COUNT (non-negative integer), MS (duration: N, Nms, Ns), ENUM, LIST, STR, BOOL. */
#ifndef CG_VARS_H
#define CG_VARS_H

#define CG_VARS(X) \
  X(DISABLE,            BOOL,  "0",       "1 = pure pass-through: no retries, no logs, no tracking") \
  X(RETRIES,            COUNT, "none",    "cap on the retries after the first attempt (0-1000); none = until the deadline") \
  X(BACKOFF_MS,         MS,    "100",     "first backoff delay") \
  X(BACKOFF_MAX_MS,     MS,    "2000",    "cap on one backoff delay") \
  X(JITTER,             ENUM,  "equal",   "equal | full | decorrelated | none") \
  X(CONNECT_TIMEOUT_MS, MS,    "5000",    "per-attempt connect timeout (never longer than the program's own)") \
  X(DEADLINE_MS,        MS,    "10000",   "retry a failing connect until this long after its start (waits included; the last attempt starts just before)") \
  X(RETRY_ON,           LIST,  "refused,timeout", "failure classes to retry: refused, timeout, reset, unreach, or none") \
  X(ONLY,               LIST,  "",        "retry only these destinations (127.0.0.1:5432, *:443, [::1]:*, unix:/path)") \
  X(SKIP,               LIST,  "",        "never retry these destinations (same patterns)") \
  X(LOG,                STR,   "stderr",  "stderr, or a file path; %p is replaced by the pid") \
  X(LOG_FORMAT,         ENUM,  "text",    "text | json") \
  X(STACK_DEPTH,        COUNT, "16",      "frames per stack trace, 0 = none (max 64; leak stacks keep 16)") \
  X(LEAKS,              ENUM,  "exit",    "off | exit: report leaked sockets at exit | all: also list the open sockets that are not leaks") \
  X(LEAK_EXITCODE,      COUNT, "0",       "exit status when leaks are found and the program would exit 0 (0 = unchanged)") \
  X(LEAK_AGE_MS,        MS,    "30000",   "CLOSE_WAIT or open age after which a socket is a live leak candidate") \
  X(PYSTACK,            ENUM,  "on",      "on | off: Python frames (CPython 3.9-3.13) in failure and leak records") \
  X(SUPPRESSIONS,       STR,   "",        "file of leak:PATTERN lines matched against frame symbols and modules") \
  X(STATS,              BOOL,  "1",       "publish live counters in /dev/shm for `connguard stat/top/metrics`") \
  X(TLS,                BOOL,  "1",       "diagnose and retry TLS handshakes (OpenSSL)") \
  X(COORDINATE,         ENUM,  "on",      "on | off: processes of one user share one retry schedule per failing destination (one probe attempts, the others wait for it)") \
  X(COORD_DESTS,        COUNT, "256",     "destinations the shared retry table holds (16-4096; set by the process that creates it)") \
  X(COORD_KEEP_MS,      MS,    "60000",   "how long the shared table remembers a destination that recovered") \
  X(WATCHDOG,           BOOL,  "1",       "bound blocking TCP connects with a helper thread (0 = temporary SO_SNDTIMEO: no thread, two system calls per connect)")

#endif
