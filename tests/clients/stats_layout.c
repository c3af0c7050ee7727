/* Prints the counters segment layout (shim/core/stats.h) as JSON, so that tests can write
 * fake segments (stale, truncated, other versions) without hard-coding offsets. */
#include "stats.h"
#include <stddef.h>
#include <stdio.h>

int main(void)
{
  printf("{\"size\":%zu,\"version\":%u,\"magic\":%u,\"pid\":%zu,\"uid\":%zu,\"start_ns\":%zu,\"exe\":%zu,"
         "\"connect_attempts\":%zu,\"connect_failures\":%zu,\"retries\":%zu,\"recoveries\":%zu,\"give_ups\":%zu,"
         "\"backoff_wait_ns\":%zu,\"failures_by_errno\":%zu,\"tls_hs_bucket\":%zu,\"tls_hs_sum_us\":%zu,"
         "\"tls_handshakes\":%zu,\"tls_failures\":%zu,\"tls_buckets\":%d}\n",
         sizeof(struct cg_stats), CG_STATS_VERSION, CG_STATS_MAGIC, offsetof(struct cg_stats, pid),
         offsetof(struct cg_stats, uid), offsetof(struct cg_stats, start_ns), offsetof(struct cg_stats, exe),
         offsetof(struct cg_stats, connect_attempts), offsetof(struct cg_stats, connect_failures),
         offsetof(struct cg_stats, retries), offsetof(struct cg_stats, recoveries),
         offsetof(struct cg_stats, give_ups), offsetof(struct cg_stats, backoff_wait_ns),
         offsetof(struct cg_stats, failures_by_errno), offsetof(struct cg_stats, tls_hs_bucket),
         offsetof(struct cg_stats, tls_hs_sum_us), offsetof(struct cg_stats, tls_handshakes),
         offsetof(struct cg_stats, tls_failures), CG_TLS_BUCKETS);
  return 0;
}
