/* OpenSSL handshake entry points. libssl is never linked: the real functions are found at run
 * time in the copy the program loaded (see core/tls.h). curl calls SSL_connect, which calls
 * SSL_do_handshake through the PLT (that inner call lands here too and passes through);
 * python's _ssl calls SSL_do_handshake directly. */
#include "hook.h"
#include "tls.h"

static int entry(void *ssl, int which)
{
  cg_ssl_entry_fn real = cg_tls_real(which);
  if (!real) return cg_tls_unavailable(which);
  if (cg_tls_depth || !cg_real_ready()) return real(ssl);
  cg_init();
  if (!cg_active() || !cg_cfg.tls) return real(ssl);
  return CG_GUARDED(int, cg_tls_handshake(ssl, which));
}

CG_EXPORT int SSL_connect(void *ssl) { return entry(ssl, CG_TLS_CONNECT); }
CG_EXPORT int SSL_do_handshake(void *ssl) { return entry(ssl, CG_TLS_DO_HANDSHAKE); }
