/* How long TCP sockets have been in CLOSE_WAIT, asked from outside the program: the kernel
 * does not record when a socket entered CLOSE_WAIT, and the shim may run no thread or signal
 * handler to watch for it. NETLINK_SOCK_DIAG (what `ss -ti` uses) reports per socket
 * tcpi_last_ack_recv, the milliseconds since the last segment with an acceptable ACK arrived;
 * the peer's FIN is such a segment, and a socket in CLOSE_WAIT normally receives nothing after
 * it. Checked on Linux 6.x: the value grows from the FIN on, while tcpi_last_data_recv does not
 * restart at a FIN without data and so counts from the last data instead. Anything the peer
 * sends later (a keepalive answer, an ACK of data written after the FIN) restarts the clock:
 * the figure is a lower bound, so a socket is flagged late, never early. */
#ifndef CG_TOOL_SOCKDIAG_H
#define CG_TOOL_SOCKDIAG_H
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct cw_ent { uint64_t ino; uint32_t since_ms; };
struct cw_tab { int n, cap; struct cw_ent *v; };

/* Every TCP socket (IPv4 and IPv6) in CLOSE_WAIT in pid's network namespace, with the time
 * since it last received a segment. -1 with a short reason in why when the kernel cannot be
 * asked: sock_diag refused or missing, or pid in another network namespace than ours (the
 * netlink socket sees only the namespace it was made in). */
int sockdiag_close_wait(pid_t pid, struct cw_tab *t, char *why, size_t cap);
/* 0 and *ms when ino is in t. */
int cw_lookup(const struct cw_tab *t, uint64_t ino, uint32_t *ms);
void cw_free(struct cw_tab *t);

#endif
