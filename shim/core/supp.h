/* CONNGUARD_SUPPRESSIONS: a file of `leak:PATTERN` lines ('#' comments and blank lines allowed).
 * A leak group is suppressed when any frame of its creation stack matches a pattern: a pattern
 * with * ? or [ is a shell wildcard (fnmatch) matched against the whole symbol name, the whole
 * module path and the module's base name; any other pattern matches as a substring of the
 * symbol or the module path. Storage is static: no allocation. */
#ifndef CG_SUPP_H
#define CG_SUPP_H
#include <stddef.h>

#define CG_SUPP_MAX     128      /* patterns kept */
#define CG_SUPP_PATLEN  255      /* longest pattern */
#define CG_SUPP_FILEMAX 65536    /* bytes read from the file */

struct cg_supp {
  int n;
  unsigned char glob[CG_SUPP_MAX];
  unsigned hits[CG_SUPP_MAX];            /* sockets suppressed by each pattern */
  char pat[CG_SUPP_MAX][CG_SUPP_PATLEN + 1];
};

/* Parses text into s (emptied first). Returns the number of bad lines (not `leak:PATTERN`,
 * empty or too long pattern, over CG_SUPP_MAX); *first_bad gets the first one's number. */
int cg_supp_parse(struct cg_supp *s, const char *text, size_t len, int *first_bad);
/* Loads path. Returns 0, or -1 with one warning line (no newline) in warn: the file cannot be
 * read, or holds bad lines (the good ones are kept). Never fails harder than that. */
int cg_supp_load(struct cg_supp *s, const char *path, char *warn, size_t cap);
/* Index of the first pattern matching the frame (symbol may be NULL), or -1. */
int cg_supp_match(const struct cg_supp *s, const char *symbol, const char *module);

#endif
