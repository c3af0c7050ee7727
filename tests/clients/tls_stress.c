/* TLS handshake storm: THREADS threads start together and each makes PER blocking handshakes
 * with 127.0.0.1:PORT (SSL_connect, no verification: transport failures are the point).
 *   tls_stress THREADS PER PORT
 * Prints "result NAME COUNT" lines, sorted: "ok", or "fail:ret=R:ssl_error=E:errno=NAME", the
 * program's whole view of a failed handshake, compared between runs with and without the shim. */
#include "stress.h"
#include <openssl/err.h>
#include <openssl/ssl.h>

static int per, port;
static SSL_CTX *ctx;
static pthread_barrier_t start;

static void *worker(void *arg)
{
  (void)arg;
  pthread_barrier_wait(&start);
  for (int i = 0; i < per; i++) {
    struct sockaddr_in a = loopback(port);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
      char w[64];
      snprintf(w, sizeof w, "connect:%s", err_name(errno));
      hist_add(w);
      if (fd >= 0) close(fd);
      continue;
    }
    SSL *s = SSL_new(ctx);
    SSL_set_fd(s, fd);
    SSL_set_tlsext_host_name(s, "cg.test");
    errno = 0;
    int r = SSL_connect(s);
    int e = errno;
    if (r == 1) {
      hist_add("ok");
      SSL_shutdown(s);
    } else {
      char w[96];
      snprintf(w, sizeof w, "fail:ret=%d:ssl_error=%d:errno=%s", r, SSL_get_error(s, r), e ? err_name(e) : "0");
      hist_add(w);
    }
    ERR_clear_error();
    SSL_free(s);
    close(fd);
  }
  return NULL;
}

int main(int argc, char **argv)
{
  if (argc < 4) {
    fprintf(stderr, "usage: tls_stress THREADS PER PORT\n");
    return 2;
  }
  int threads = atoi(argv[1]);
  per = atoi(argv[2]);
  port = atoi(argv[3]);
  if (threads < 1 || threads > 64) return 2;
  watchdog(60);
  ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  pthread_t th[64];
  pthread_barrier_init(&start, NULL, (unsigned)threads);
  for (int i = 0; i < threads; i++) pthread_create(&th[i], NULL, worker, NULL);
  for (int i = 0; i < threads; i++) pthread_join(th[i], NULL);
  hist_print("result");
  SSL_CTX_free(ctx);
  return 0;
}
