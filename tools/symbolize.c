/* connguard symbolize [FILE...]: copies log records to stdout with their stack frames resolved
 * to function and file:line (addr2line). Text frames become
 *   ==PID==     #0 0xPC in FUNCTION FILE:LINE (MODULE+0xOFF)
 * and JSON frames gain "function", "file" and "line" members. Everything else passes through
 * unchanged, malformed lines included (counted and reported on stderr). */
#include "cg_tool.h"
#include "logrec.h"
#include "sym.h"
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct sym_stats { long records, frames, resolved, malformed; long first_bad; const char *bad_file; char bad_why[160]; };

static void text_frame_line(const struct lframe *f, const struct sym *s, long pid)
{
  /* Keep the original "#N 0xPC" part, then the resolved name, then the module. */
  const char *raw = f->raw;
  const char *hash = strchr(raw, '#');
  const char *in = hash ? strstr(hash, " in ") : NULL;
  if (!in) { puts(raw); return; }
  fwrite(raw, 1, (size_t)(in - raw), stdout);
  printf(" in %s", s->func[0] ? s->func : (f->symbol ? f->symbol : "??"));
  if (s->file[0]) {
    if (s->line) printf(" %s:%u", s->file, s->line);
    else printf(" %s", s->file);
  }
  printf(" (%s+0x%llx)\n", f->module, (unsigned long long)f->offset);
  (void)pid;
}

static void do_record(struct lrec *rec, struct sym_stats *st)
{
  st->records++;
  if (rec->json) {
    const struct json *stack = json_get(rec->obj, "stack");
    if (stack && stack->type == JSON_ARRAY) {
      for (size_t i = 0; i < stack->n; i++) {
        struct json *fr = &stack->items[i];
        if (fr->type != JSON_OBJECT || json_get(fr, "file") || json_get(fr, "function")) continue;
        const char *mod = json_str(fr, "module"), *off = json_str(fr, "offset");
        if (!mod || !off) continue;
        char *end;
        errno = 0;
        unsigned long long o = strtoull(off, &end, 16);
        if (errno || *end || strncmp(off, "0x", 2)) continue;
        st->frames++;
        struct sym s;
        if (sym_lookup(mod, o, &s) == 0) {
          st->resolved++;
          if (s.func[0]) json_add_str(fr, "function", s.func);
          if (s.file[0]) json_add_str(fr, "file", s.file);
          if (s.line) json_add_int(fr, "line", s.line);
        }
      }
    }
    json_write(stdout, rec->obj);
    putchar('\n');
    return;
  }
  int fi = 0;
  for (int i = 0; i < rec->nlines; i++) {
    const char *l = rec->lines[i];
    if (fi < rec->nframes && rec->frames[fi].raw && !strcmp(rec->frames[fi].raw, l)) {
      const struct lframe *f = &rec->frames[fi++];
      struct sym s;
      st->frames++;
      if (f->module && f->has_offset && sym_lookup(f->module, f->offset, &s) == 0) {
        st->resolved++;
        text_frame_line(f, &s, rec->pid);
        continue;
      }
    }
    puts(l);
  }
}

/* Whether stdout is a pipe whose reader went away (`connguard symbolize LOG | head`): normal,
 * nothing more to do and nothing to complain about. SIGPIPE is ignored (main.c), so writes
 * fail with EPIPE; poll tells a gone reader (POLLERR) from other write errors. */
static int reader_gone(void)
{
  if (!ferror(stdout)) return 0;
  struct pollfd p = { fileno(stdout), POLLOUT, 0 };
  return poll(&p, 1, 0) == 1 && (p.revents & POLLERR);
}

static int one_file(FILE *f, const char *name, struct sym_stats *st)
{
  struct lreader r;
  struct lrec rec;
  lr_init(&r, f, name);
  while (!ferror(stdout)) {   /* once the output is gone, stop reading */
    enum lr_kind k = lr_next(&r, &rec);
    if (k == LR_EOF) break;
    if (k == LR_RECORD) { do_record(&rec, st); lrec_free(&rec); continue; }
    if (k == LR_BAD) {
      if (!st->malformed++) {
        st->first_bad = r.item_line;
        st->bad_file = name;
        snprintf(st->bad_why, sizeof st->bad_why, "%s", r.err);
      }
    }
    puts(r.line);
  }
  int err = ferror(f);
  lr_done(&r);
  if (err) { errorf("symbolize: error reading %s", name); return -1; }
  return 0;
}

int cmd_symbolize(int argc, char **argv)
{
  static const struct option lo[] = { { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 } };
  optind = 1;
  opterr = 0;
  int c;
  while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
    if (c == 'h') { puts("usage: connguard symbolize [FILE...]   (reads stdin without FILE)"); return EX_OK_; }
    return usage_error("symbolize", "unknown option '%s'", argv[optind - 1]);
  }
  if (!sym_available())
    warnf("symbolize: addr2line not found (install binutils): frames are copied unchanged");
  struct sym_stats st;
  memset(&st, 0, sizeof st);
  int fail = 0;
  if (optind >= argc) {
    fail |= one_file(stdin, "<stdin>", &st) != 0;
  } else {
    for (int i = optind; i < argc && !ferror(stdout); i++) {
      FILE *f = strcmp(argv[i], "-") ? fopen(argv[i], "re") : stdin;
      if (!f) { errorf("symbolize: cannot open %s: %s", argv[i], strerror(errno)); fail = 1; continue; }
      struct stat fst;
      if (fstat(fileno(f), &fst) == 0 && S_ISDIR(fst.st_mode)) {
        errorf("symbolize: %s is a directory", argv[i]);
        fail = 1;
        fclose(f);
        continue;
      }
      fail |= one_file(f, argv[i], &st) != 0;
      if (f != stdin) fclose(f);
    }
  }
  sym_shutdown();
  if (stdout_failed()) {
    if (reader_gone()) return fail ? EX_FAIL : EX_OK_;
    errorf("symbolize: cannot write the output");
    return EX_FAIL;
  }
  if (st.malformed) {
    errorf("symbolize: %ld malformed record line%s passed through unchanged (first: %s line %ld: %s)",
           st.malformed, st.malformed == 1 ? "" : "s", st.bad_file, st.first_bad, st.bad_why);
    fail = 1;
  }
  if (st.frames && !st.resolved && sym_available())
    warnf("symbolize: none of %ld frames could be resolved (modules changed or missing?)", st.frames);
  return fail ? EX_FAIL : EX_OK_;
}
