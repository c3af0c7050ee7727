/* Reading connguard log records, JSON (one object per line) or text (a header line
 * "==PID== connguard EVENT ts=... k=v ..." followed by "==PID==   key: value" detail lines and
 * "==PID==     #N 0xPC in SYM (MODULE+0xOFF)" frames), mixed with the program's own output.
 * Lines that look like records but do not parse are "malformed"; they are counted, never fatal. */
#ifndef CG_TOOL_LOGREC_H
#define CG_TOOL_LOGREC_H
#include <stdint.h>
#include <stdio.h>
#include "json.h"

struct lframe {
  uint64_t pc;
  char *module;        /* NULL when the record did not say */
  uint64_t offset;
  int has_offset;
  char *symbol;        /* as written ("sym" without +0xOFF), NULL when unknown */
  char *raw;           /* text format: the whole line */
};

struct lrec {
  int json;            /* 1: from a JSON line (obj is set) */
  long pid;
  char *event, *ts;
  int nf;
  char **keys, **vals; /* scalar fields (header and detail lines; JSON scalars as text) */
  int nframes;
  struct lframe *frames;
  struct json *obj;
  int truncated;       /* the shim marked the record truncated */
  char **lines;        /* text format: the record's lines, as read */
  int nlines;
};

enum lr_kind { LR_EOF, LR_RECORD, LR_OTHER, LR_BAD };

struct lreader {
  FILE *f;
  const char *name;
  long lineno;          /* lines read so far */
  long item_line;       /* line number where the item last returned starts */
  char *peek;           /* a line read ahead (text records end at the first foreign line) */
  long peek_lineno;
  char *line;           /* LR_OTHER / LR_BAD: the line itself */
  char err[160];        /* LR_BAD: why */
  int json_seen, text_seen;
};

void lr_init(struct lreader *r, FILE *f, const char *name);
/* Next item. LR_RECORD fills rec (free with lrec_free); LR_OTHER / LR_BAD leave the line in
 * r->line (valid until the next call). A read error ends the input as LR_EOF (ferror tells). */
enum lr_kind lr_next(struct lreader *r, struct lrec *rec);
void lr_done(struct lreader *r);
void lrec_free(struct lrec *rec);

/* A field of the record, or NULL. */
const char *lrec_get(const struct lrec *rec, const char *key);
/* A numeric field; 0 if absent or not an integer. */
int lrec_int(const struct lrec *rec, const char *key, int64_t *out);

#endif
