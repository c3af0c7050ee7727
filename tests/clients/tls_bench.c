/* TLS handshake loop for `make bench-tls`, timed from inside.
 *   tls_bench serve          a TLS 1.3 server on 127.0.0.1 (key and self-signed certificate
 *                            made in memory); prints its port, serves until stdin closes
 *   tls_bench connect N PORT N x (socket, connect, SSL_connect, SSL_shutdown, close), the
 *                            SSL_connect calls alternating between the program's own (through
 *                            its PLT: the shim's hook when preloaded) and libssl's, called
 *                            directly (dlsym on libssl: no hook)
 * Prints "hooked_ns <median> direct_ns <median>" of the SSL_connect calls: both halves share the
 * machine's noise, so their ratio is stable where run-to-run times vary by 30 %. The server
 * runs in another process, without the shim. */
#include <arpa/inet.h>
#include <dlfcn.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int cmp_double(const void *x, const void *y)
{
  double a = *(const double *)x, b = *(const double *)y;
  return a < b ? -1 : a > b;
}

static SSL_CTX *server_ctx(void)
{
  EVP_PKEY *key = EVP_EC_gen("P-256");
  X509 *x = X509_new();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
  X509_gmtime_adj(X509_getm_notBefore(x), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x), 86400);
  X509_NAME *n = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"bench.test", -1, -1, 0);
  X509_set_issuer_name(x, n);
  X509_set_pubkey(x, key);
  if (!key || !X509_sign(x, key, EVP_sha256())) return NULL;
  SSL_CTX *c = SSL_CTX_new(TLS_server_method());
  if (!c || SSL_CTX_use_certificate(c, x) != 1 || SSL_CTX_use_PrivateKey(c, key) != 1) return NULL;
  SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_num_tickets(c, 0);
  return c;
}

static void *stdin_watch(void *arg)
{
  (void)arg;
  char b[64];
  while (read(0, b, sizeof b) > 0) {}
  exit(0);
}

static int serve(void)
{
  SSL_CTX *ctx = server_ctx();
  if (!ctx) { ERR_print_errors_fp(stderr); return 1; }
  struct sockaddr_in a;
  socklen_t al = sizeof a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int l = socket(AF_INET, SOCK_STREAM, 0);
  if (bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 128) || getsockname(l, (struct sockaddr *)&a, &al)) {
    perror("listen");
    return 1;
  }
  printf("%d\n", ntohs(a.sin_port));
  fflush(stdout);
  pthread_t t;
  pthread_create(&t, NULL, stdin_watch, NULL);
  for (;;) {
    int c = accept(l, NULL, NULL);
    if (c < 0) continue;
    SSL *s = SSL_new(ctx);
    SSL_set_fd(s, c);
    if (SSL_accept(s) == 1) SSL_shutdown(s);
    SSL_free(s);
    close(c);
  }
}

int main(int argc, char **argv)
{
  if (argc >= 2 && !strcmp(argv[1], "serve")) return serve();
  if (argc < 4 || strcmp(argv[1], "connect")) {
    fprintf(stderr, "usage: tls_bench serve | tls_bench connect N PORT\n");
    return 2;
  }
  long n = atol(argv[2]);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((unsigned short)atoi(argv[3]));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);   /* the same work with and without the shim */
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  void *lib = dlopen("libssl.so.3", RTLD_NOW | RTLD_NOLOAD);
  int (*direct)(SSL *) = lib ? (int (*)(SSL *))dlsym(lib, "SSL_connect") : NULL;
  if (!direct) { fprintf(stderr, "libssl's SSL_connect not found\n"); return 1; }
  double *t[2] = { malloc(sizeof(double) * (size_t)n), malloc(sizeof(double) * (size_t)n) };
  long k[2] = { 0, 0 };
  for (long i = 0; i < 2 * n; i++) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) { perror("connect"); return 1; }
    SSL *s = SSL_new(ctx);
    SSL_set_fd(s, fd);
    SSL_set_tlsext_host_name(s, "bench.test");
    int which = (int)(i & 1);
    double t0 = now();
    int r = which ? direct(s) : SSL_connect(s);
    t[which][k[which]++] = now() - t0;
    if (r != 1) { ERR_print_errors_fp(stderr); return 1; }
    SSL_shutdown(s);
    SSL_free(s);
    close(fd);
  }
  qsort(t[0], (size_t)n, sizeof(double), cmp_double);
  qsort(t[1], (size_t)n, sizeof(double), cmp_double);
  printf("hooked_ns %.1f direct_ns %.1f\n", t[0][n / 2], t[1][n / 2]);
  return 0;
}
