/* CONNGUARD_SUPPRESSIONS files: any bytes, any length (up to the 64 KB read). Every kept
 * pattern is well-formed, bad lines are counted, and matching any frame is safe; a literal
 * pattern matches a symbol equal to it, and the load warning stays one bounded line. */
#include "fuzz.h"
#include "supp.h"
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  static struct cg_supp s;
  if (size > CG_SUPP_FILEMAX) size = CG_SUPP_FILEMAX;
  int first = -1;
  int bad = cg_supp_parse(&s, (const char *)data, size, &first);
  FZ_CHECK(bad >= 0 && s.n >= 0 && s.n <= CG_SUPP_MAX, "bad=%d n=%d", bad, s.n);
  FZ_CHECK(bad ? first >= 1 : first == 0, "first bad line %d with %d bad", first, bad);
  for (int i = 0; i < s.n; i++) {
    size_t l = strnlen(s.pat[i], sizeof s.pat[i]);
    FZ_CHECK(l > 0 && l <= CG_SUPP_PATLEN, "pattern %d length %zu", i, l);
    FZ_CHECK(!memchr(s.pat[i], '\n', l), "pattern %d spans lines", i);
    FZ_CHECK(s.glob[i] == (strpbrk(s.pat[i], "*?[") != NULL), "glob flag of %d", i);
    if (!s.glob[i]) {
      int m = cg_supp_match(&s, s.pat[i], "/lib/x.so");
      FZ_CHECK(m >= 0 && m <= i, "literal pattern %d does not match itself (got %d)", i, m);
    }
  }
  /* Frames made of the same bytes: symbol, module, and a missing symbol. */
  char sym[512], mod[512];
  size_t k = size < sizeof sym - 1 ? size : sizeof sym - 1;
  memcpy(sym, data, k); sym[k] = 0;
  size_t k2 = size > k ? size - k : 0;
  if (k2 > sizeof mod - 1) k2 = sizeof mod - 1;
  memcpy(mod, data + k, k2); mod[k2] = 0;
  cg_supp_match(&s, sym, mod);
  cg_supp_match(&s, NULL, mod);
  cg_supp_match(&s, sym, "");
  return 0;
}
