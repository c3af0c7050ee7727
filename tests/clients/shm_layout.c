/* Prints the stats segment layout (offsets, sizes) as JSON so that tests read the published
 * leak slots and their shared stacks exactly as the header defines them. */
#include <stddef.h>
#include <stdio.h>
#include "stats.h"

#define F(t, f) printf("\"%s\":%zu,", #f, offsetof(t, f))
int main(void)
{
  printf("{");
  F(struct cg_stats, magic); F(struct cg_stats, version); F(struct cg_stats, size);
  F(struct cg_stats, pid); F(struct cg_stats, leak_mode); F(struct cg_stats, leak_age_ms);
  F(struct cg_stats, open_sockets); F(struct cg_stats, sockets_created);
  F(struct cg_stats, leak_candidates); F(struct cg_stats, leak_stacks_used); F(struct cg_stats, leak_stacks_full);
  F(struct cg_stats, leaks); F(struct cg_stats, stacks);
  printf("\"slot_size\":%zu,\"slots\":%d,\"stack\":%d,", sizeof(struct cg_leak_slot), CG_LEAK_SLOTS, CG_STATS_STACK);
  printf("\"s_seq\":%zu,\"s_fd\":%zu,\"s_kind\":%zu,\"s_created_ns\":%zu,\"s_ino\":%zu,\"s_peer\":%zu,"
         "\"s_peerlen\":%zu,\"s_via\":%zu,\"s_stack\":%zu,",
         offsetof(struct cg_leak_slot, seq), offsetof(struct cg_leak_slot, fd),
         offsetof(struct cg_leak_slot, kind), offsetof(struct cg_leak_slot, created_ns),
         offsetof(struct cg_leak_slot, ino), offsetof(struct cg_leak_slot, peer),
         offsetof(struct cg_leak_slot, peerlen), offsetof(struct cg_leak_slot, via),
         offsetof(struct cg_leak_slot, stack));
  printf("\"stack_size\":%zu,\"stacks_cap\":%d,\"stack_full\":%u,\"st_nframes\":%zu,\"st_pcs\":%zu,",
         sizeof(struct cg_leak_stack), CG_STATS_STACKS, CG_LEAK_STACK_FULL,
         offsetof(struct cg_leak_stack, nframes), offsetof(struct cg_leak_stack, pcs));
  printf("\"total\":%zu,\"magic_value\":%u,\"version_value\":%d}\n", sizeof(struct cg_stats), CG_STATS_MAGIC, CG_STATS_VERSION);
  return 0;
}
