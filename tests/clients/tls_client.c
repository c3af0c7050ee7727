/* A minimal OpenSSL client for the TLS tests: connects to 127.0.0.1:PORT, handshakes, prints
 * exactly what the program observed (return value, SSL_get_error, errno, the error queue,
 * the verify result), so a test can compare runs with and without the shim.
 *
 * usage: tls_client PORT [--sni NAME] [--host NAME] [--ca FILE] [--entry connect|handshake]
 *                        [--nonblock] [--request] [--rcvtimeo MS] [--cloexec]
 *   --host   verify this host name (SSL_set1_host), --ca trust this file (verification on)
 *   --request  send "GET / HTTP/1.0" after the handshake and print the reply's first line
 *   --stats    at the end, print the shim's TLS counters from this process's stats file */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <signal.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>
#include "stats.h"

static int want_stats;

/* The live counters the shim publishes for this process (none when it is not loaded). */
static void print_stats(void)
{
  if (!want_stats) return;
  char path[96];
  snprintf(path, sizeof path, "/dev/shm/connguard.%u.%d", (unsigned)getuid(), (int)getpid());
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) { printf("stats none\n"); return; }
  struct cg_stats *s = mmap(0, sizeof *s, PROT_READ, MAP_SHARED, fd, 0);
  close(fd);
  if (s == MAP_FAILED || s->magic != CG_STATS_MAGIC || s->size != sizeof *s) { printf("stats bad\n"); return; }
  uint64_t inb = 0;
  for (int i = 0; i < CG_TLS_BUCKETS; i++) inb += s->tls_hs_bucket[i];
  printf("stats handshakes=%llu failures=%llu retries=%llu count=%llu in_buckets=%llu sum_positive=%d\n",
         (unsigned long long)s->tls_handshakes, (unsigned long long)s->tls_failures,
         (unsigned long long)s->tls_retries, (unsigned long long)s->tls_hs_count,
         (unsigned long long)inb, s->tls_hs_sum_us > 0);
}

int main(int argc, char **argv)
{
  if (argc < 2) { fprintf(stderr, "usage: tls_client PORT [options]\n"); return 2; }
  /* As curl and python do: a reset peer must not kill the program. */
  signal(SIGPIPE, SIG_IGN);
  const char *sni = NULL, *host = NULL, *ca = NULL, *entry = "connect";
  int nonblock = 0, request = 0, rcvtimeo = 0, cloexec = 0;
  for (int i = 2; i < argc; i++) {
    if (!strcmp(argv[i], "--sni") && i + 1 < argc) sni = argv[++i];
    else if (!strcmp(argv[i], "--host") && i + 1 < argc) host = argv[++i];
    else if (!strcmp(argv[i], "--ca") && i + 1 < argc) ca = argv[++i];
    else if (!strcmp(argv[i], "--entry") && i + 1 < argc) entry = argv[++i];
    else if (!strcmp(argv[i], "--rcvtimeo") && i + 1 < argc) rcvtimeo = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--nonblock")) nonblock = 1;
    else if (!strcmp(argv[i], "--request")) request = 1;
    else if (!strcmp(argv[i], "--cloexec")) cloexec = 1;
    else if (!strcmp(argv[i], "--stats")) want_stats = 1;
    else { fprintf(stderr, "tls_client: bad argument %s\n", argv[i]); return 2; }
  }
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  if (ca) {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (!SSL_CTX_load_verify_locations(ctx, ca, NULL)) { fprintf(stderr, "cannot load %s\n", ca); return 2; }
  }
  int fd = socket(AF_INET, SOCK_STREAM | (cloexec ? SOCK_CLOEXEC : 0), 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((unsigned short)atoi(argv[1]));
  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  if (rcvtimeo) {
    struct timeval tv = { rcvtimeo / 1000, (rcvtimeo % 1000) * 1000 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) { printf("connect failed errno=%d\n", errno); return 3; }
  if (nonblock) fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  SSL *ssl = SSL_new(ctx);
  SSL_set_fd(ssl, fd);
  if (sni) SSL_set_tlsext_host_name(ssl, sni);
  if (host) SSL_set1_host(ssl, host);
  int r, err;
  for (;;) {
    errno = 0;
    r = !strcmp(entry, "handshake") ? (SSL_set_connect_state(ssl), SSL_do_handshake(ssl)) : SSL_connect(ssl);
    int saved = errno;
    err = SSL_get_error(ssl, r);
    errno = saved;
    if (nonblock && (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)) {
      struct pollfd p = { fd, err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, 0 };
      poll(&p, 1, 10000);
      continue;
    }
    break;
  }
  if (r == 1) {
    printf("ok %s fd=%d cloexec=%d\n", SSL_get_version(ssl), SSL_get_fd(ssl), (fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0);
    if (request) {
      const char req[] = "GET / HTTP/1.0\r\n\r\n";
      SSL_write(ssl, req, sizeof req - 1);
      char buf[256];
      int n = SSL_read(ssl, buf, sizeof buf - 1);
      if (n > 0) { buf[n] = 0; char *nl = strchr(buf, '\n'); if (nl) *nl = 0; printf("reply %s\n", buf); }
      else printf("reply none\n");
    }
    print_stats();
    close(fd);   /* a well-behaved client: no leak report at exit (issue 3) */
    return 0;
  }
  int e = errno;
  printf("fail ret=%d ssl_error=%d errno=%d verify=%ld", r, err, err == SSL_ERROR_SYSCALL ? e : 0,
         SSL_get_verify_result(ssl));
  unsigned long code;
  const char *file, *func, *data;
  int line, flags;
  while ((code = ERR_get_error_all(&file, &line, &func, &data, &flags)) != 0)
    printf(" err=%lx:%s:%s", code, ERR_reason_error_string(code) ? ERR_reason_error_string(code) : "?",
           (flags & ERR_TXT_STRING) && data ? data : "");
  printf("\n");
  print_stats();
  close(fd);
  return 1;
}
