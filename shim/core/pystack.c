#include "pystack.h"
#include "config.h"
#include <dlfcn.h>
#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "engine.h"
#include "stats.h"
#include "rawsys.h"

/* ---------- layouts ---------- */

/* Measured with offsetof() against each version's own headers (internal ones included);
 * scripts/pyoffsets.c prints these rows and tests/integration checks them against every
 * interpreter installed. */
static const struct cg_py_layout layouts[] = {
  { 0x309, 16, 24, -1, 24, 32, 104, -1, 104, 112, 40, 120, -1, 48, 72, 1, 0 },
  { 0x30a, 16, 24, -1, 24, 32, 96, -1, 104, 112, 40, 120, -1, 48, 72, 2, 1 },
  { 0x30b, 24, 56, 8, 48, 32, 56, 69, 112, 120, 72, 136, 184, 48, 72, 3, 0 },
  { 0x30c, 24, 56, 0, 8, 0, 56, 70, 112, 120, 68, 136, 192, 40, 56, 3, 0 },
  { 0x30d, 608, 72, -1, 8, 0, 56, 70, 112, 120, 68, 136, 200, 40, 56, 3, 0 },
};

#define OWNED_BY_CSTACK 3        /* 3.12+: a shim frame the C stack owns, no code of its own */
#define BYTES_SIZE 16            /* PyVarObject.ob_size */
#define BYTES_DATA 32            /* PyBytesObject.ob_sval */
#define OB_TYPE 8
#define STR_LENGTH 16
#define STR_STATE 32
#define STR_HASH 24              /* PyASCIIObject.hash, -1 until computed */

const struct cg_py_layout *cg_py_layout_for(unsigned v)
{
  for (size_t i = 0; i < sizeof layouts / sizeof *layouts; i++)
    if (layouts[i].version == v) return &layouts[i];
  return NULL;
}

unsigned cg_py_parse_version(const char *s)
{
  if (!s || strstr(s, "PyPy") || strstr(s, "free-threading")) return 0;
  unsigned major = 0, minor = 0;
  const char *p = s;
  if (*p < '0' || *p > '9') return 0;
  while (*p >= '0' && *p <= '9' && major < 100) major = major * 10 + (unsigned)(*p++ - '0');
  if (*p++ != '.' || *p < '0' || *p > '9') return 0;
  while (*p >= '0' && *p <= '9' && minor < 1000) minor = minor * 10 + (unsigned)(*p++ - '0');
  if (major > 15 || minor > 255) return 0;
  return major << 8 | minor;
}

static uint64_t u64_at(const unsigned char *p)
{
  uint64_t v;
  memcpy(&v, p, 8);
  return v;
}

int cg_py_apply_debug_offsets(struct cg_py_layout *l, const unsigned char *d, size_t len)
{
  /* The structure's own layout is that of 3.13 (it grew in 3.14): trust it only there. */
  if (len < 568 || memcmp(d, "xdebugpy", 8) != 0) return -1;
  if ((u64_at(d + 8) >> 16) != 0x030d || u64_at(d + 16) != 0) return -1;   /* free-threaded */
  uint64_t v[] = {
    u64_at(d + 32), u64_at(d + 184), u64_at(d + 232), u64_at(d + 240), u64_at(d + 248),
    u64_at(d + 264), u64_at(d + 280), u64_at(d + 288), u64_at(d + 304), u64_at(d + 312),
    u64_at(d + 344), u64_at(d + 544), u64_at(d + 560),
  };
  for (size_t i = 0; i < sizeof v / sizeof *v; i++) if (v[i] > 1u << 20) return -1;
  if (v[11] != STR_STATE) return -1;
  l->finalizing = (int)v[0];
  l->ts_frame = (int)v[1];
  l->cframe_cur = -1;
  l->f_back = (int)v[2];
  l->f_code = (int)v[3];
  l->f_instr = (int)v[4];
  l->f_owner = (int)v[5];
  l->co_filename = (int)v[6];
  l->co_name = (int)v[7];
  l->co_lines = (int)v[8];
  l->co_firstlineno = (int)v[9];
  l->co_code = (int)v[10];
  l->ascii_size = (int)v[12];
  return 0;
}

/* ---------- line tables ---------- */

struct lt {
  const unsigned char *p, *end;
};

static int lt_byte(struct lt *t) { return t->p < t->end ? *t->p++ : -1; }

static int varint(struct lt *t)
{
  int b = lt_byte(t);
  if (b < 0) return 0;
  unsigned v = (unsigned)b & 63;
  int shift = 0;
  while ((b & 64) && shift < 28) {
    b = lt_byte(t);
    if (b < 0) break;
    shift += 6;
    v |= ((unsigned)b & 63) << shift;
  }
  return (int)v;
}

static int svarint(struct lt *t)
{
  unsigned v = (unsigned)varint(t);
  return (v & 1) ? -(int)(v >> 1) : (int)(v >> 1);
}

/* 3.11+: entries start with a byte 1CCCCLLL (code, length-1 in code units). */
static int addr2line_311(const unsigned char *tab, size_t len, int first, int addr)
{
  struct lt t = { tab, tab + len };
  int line = first, start = 0;
  while (t.p < t.end) {
    int b = lt_byte(&t);
    if (!(b & 128)) continue;            /* resynchronise on an entry start */
    int code = (b >> 3) & 15, end = start + ((b & 7) + 1) * 2;
    int delta = 0;
    if (code == 13 || code == 14) delta = svarint(&t);
    else if (code >= 10 && code <= 12) delta = code - 10;
    line += delta;
    /* skip the rest of the entry (columns) */
    while (t.p < t.end && !(*t.p & 128)) t.p++;
    if (addr >= start && addr < end) return code == 15 ? -1 : line;
    start = end;
  }
  return -1;
}

/* 3.10: pairs (bytes of code, signed line delta; -128: no line). */
static int addr2line_310(const unsigned char *tab, size_t len, int first, int addr)
{
  int line = first, start = 0;
  for (size_t i = 0; i + 1 < len; i += 2) {
    int end = start + tab[i];
    int d = (signed char)tab[i + 1];
    int this_line = -1;
    if (d != -128) { line += d; this_line = line; }
    if (start < end && addr >= start && addr < end) return this_line;
    start = end;
  }
  return -1;
}

/* 3.9: co_lnotab pairs (address increment, signed line increment). */
static int addr2line_39(const unsigned char *tab, size_t len, int first, int addr)
{
  int line = first, a = 0;
  for (size_t i = 0; i + 1 < len; i += 2) {
    a += tab[i];
    if (a > addr) break;
    line += (signed char)tab[i + 1];
  }
  return line;
}

int cg_py_addr2line(int fmt, const unsigned char *tab, size_t len, int first, int addr)
{
  if (addr < 0) return first;
  switch (fmt) {
  case 1: return addr2line_39(tab, len, first, addr);
  case 2: return addr2line_310(tab, len, first, addr);
  case 3: return addr2line_311(tab, len, first, addr);
  default: return -1;
  }
}

static size_t put_utf8(char *out, size_t o, size_t cap, uint32_t c)
{
  char t[4];
  size_t n;
  if (c < 0x80) { t[0] = (char)c; n = 1; }
  else if (c < 0x800) { t[0] = (char)(0xc0 | c >> 6); t[1] = (char)(0x80 | (c & 63)); n = 2; }
  else if (c < 0x10000) {
    if (c >= 0xd800 && c < 0xe000) c = '?';   /* lone surrogate (surrogateescape'd bytes) */
    t[0] = (char)(0xe0 | c >> 12); t[1] = (char)(0x80 | ((c >> 6) & 63)); t[2] = (char)(0x80 | (c & 63)); n = 3;
    if (c == '?') { t[0] = '?'; n = 1; }
  } else if (c < 0x110000) {
    t[0] = (char)(0xf0 | c >> 18); t[1] = (char)(0x80 | ((c >> 12) & 63));
    t[2] = (char)(0x80 | ((c >> 6) & 63)); t[3] = (char)(0x80 | (c & 63)); n = 4;
  } else { t[0] = '?'; n = 1; }
  if (o + n >= cap) return o;
  memcpy(out + o, t, n);
  return o + n;
}

size_t cg_py_text(char *out, size_t cap, const unsigned char *d, int kind, size_t n)
{
  size_t o = 0;
  if (!cap) return 0;
  for (size_t i = 0; i < n && o + 1 < cap; i++) {
    uint32_t c;
    if (kind == 1) c = d[i];
    else if (kind == 2) { uint16_t x; memcpy(&x, d + 2 * i, 2); c = x; }
    else { memcpy(&c, d + 4 * i, 4); }
    size_t no = put_utf8(out, o, cap, c);
    if (no == o) break;
    o = no;
  }
  out[o] = 0;
  return o;
}

/* ---------- the interpreter ---------- */

typedef void *(*tstate_fn)(void);

static struct cg_py_layout L;
static atomic_int active;               /* 1: L and the pointers below are set */
static tstate_fn get_tstate;
static const unsigned char *runtime;    /* &_PyRuntime */
static const void *code_type;           /* &PyCode_Type */
static char describe[48] = "none";

int cg_pystack_active(void) { return atomic_load_explicit(&active, memory_order_acquire); }
const char *cg_pystack_describe(void) { return cg_cfg.pystack || cg_pystack_active() ? describe : "off"; }

static inline int plain_read(const void *src, void *dst, size_t n)
{
  memcpy(dst, src, n);
  return 0;
}

/* process_vm_readv on ourselves: EFAULT for memory that is not mapped, never a signal. A
 * sandbox that refuses it (seccomp: ENOSYS or EPERM, seen at init) leaves plain loads, under
 * the same finalization checks as the socket-creation path. */
static int vm_refused;

static int safe_read(const void *src, void *dst, size_t n)
{
  if (vm_refused) return plain_read(src, dst, n);
  struct iovec l = { dst, n }, r = { (void *)src, n };
  ssize_t got = cg_syscall(SYS_process_vm_readv, (pid_t)cg_syscall(SYS_getpid), &l, 1UL, &r, 1UL, 0UL);
  return got == (ssize_t)n ? 0 : -1;
}

typedef int (*read_fn)(const void *, void *, size_t);

static int rd_ptr(read_fn rd, const unsigned char *base, int off, uintptr_t *out)
{
  if (!base || off < 0) return -1;
  return rd(base + off, out, sizeof *out);
}

static void set_describe(const char *a, unsigned v)
{
  char *d = describe;
  size_t n = strlen(a);
  memcpy(d, a, n);
  if (v) {
    d[n++] = ' ';
    d[n++] = (char)('0' + (v >> 8));
    d[n++] = '.';
    if ((v & 0xff) >= 10) d[n++] = (char)('0' + (v & 0xff) / 10);
    d[n++] = (char)('0' + (v & 0xff) % 10);
  }
  d[n] = 0;
}

static void init_once(void)
{
  /* One symbol first: a program without Python pays one failed lookup at start. */
  void *gt = dlsym(RTLD_DEFAULT, "PyGILState_GetThisThreadState");
  if (!gt) return;
  void *rt = dlsym(RTLD_DEFAULT, "_PyRuntime");
  void *ct = dlsym(RTLD_DEFAULT, "PyCode_Type");
  if (!rt || !ct) return;
  /* A debug build's objects carry two more pointers: nothing below would fit. */
  if (dlsym(RTLD_DEFAULT, "_Py_NegativeRefcount")) { set_describe("unsupported debug build", 0); return; }
  unsigned v = 0;
  const uint32_t *pv = dlsym(RTLD_DEFAULT, "Py_Version");      /* 3.11+: PY_VERSION_HEX */
  const char *(*gv)(void) = (const char *(*)(void))dlsym(RTLD_DEFAULT, "Py_GetVersion");
  const char *vs = gv ? gv() : NULL;   /* a static string, safe before and after Py_Initialize */
  if (vs && !cg_py_parse_version(vs)) { set_describe("unsupported build", 0); return; }
  if (pv) v = *pv >> 16;
  else v = cg_py_parse_version(vs);
  const struct cg_py_layout *l = cg_py_layout_for(v);
  if (!l) { set_describe("unsupported", v); return; }
  L = *l;
  if (v >= 0x30d && cg_py_apply_debug_offsets(&L, rt, 568) != 0) {
    set_describe("unsupported", v);
    return;
  }
  uint64_t probe = 42, got = 0;
  if (safe_read(&probe, &got, sizeof got) != 0 || got != 42) vm_refused = 1;
  get_tstate = (tstate_fn)gt;
  runtime = rt;
  code_type = ct;
  set_describe("", v);
  memmove(describe, describe + 1, strlen(describe));
  atomic_store_explicit(&active, 1, memory_order_release);
}

void cg_pystack_init(void)
{
  static atomic_int busy;
  if (cg_pystack_active() || cg_cfg.disable) return;
  if (!cg_cfg.pystack) { strcpy(describe, "off"); return; }
  /* Failure records of several threads may ask at once: one looks, the others go without. */
  if (atomic_exchange(&busy, 1)) return;
  init_once();
  atomic_store(&busy, 0);
}

/* ---------- interning tables ---------- */

/* Open addressing over ids; an entry is written before its id is published with a release
 * CAS (as in stacktab.c). Entries are never removed. */
struct itab {
  unsigned max, words;            /* entries, key words per entry */
  unsigned idx_size;
  atomic_uint next, full;
  _Atomic uint32_t *index;
  uint64_t *keys;                 /* per entry: hash, n, words... */
};

static uint64_t hash_words(const uint64_t *w, unsigned n)
{
  uint64_t h = 0x84222325cbf29ce4ULL ^ n;
  for (unsigned i = 0; i < n; i++) {
    h ^= w[i];
    h *= 0x9e3779b97f4a7c15ULL;
    h ^= h >> 29;
  }
  return h;
}

static uint64_t *key_of(struct itab *t, uint32_t id) { return t->keys + (size_t)(id - 1) * (t->words + 2); }

static int same_key(struct itab *t, uint32_t id, uint64_t h, const uint64_t *w, unsigned n)
{
  const uint64_t *k = key_of(t, id);
  return k[0] == h && k[1] == n && memcmp(k + 2, w, n * sizeof *w) == 0;
}

/* Id of key w[0..n), or 0 when absent. */
static uint32_t itab_find(struct itab *t, const uint64_t *w, unsigned n)
{
  if (!t->index) return 0;
  uint64_t h = hash_words(w, n);
  unsigned i = (unsigned)h & (t->idx_size - 1);
  for (unsigned probe = 0; probe < t->idx_size; probe++, i = (i + 1) & (t->idx_size - 1)) {
    uint32_t v = atomic_load_explicit(&t->index[i], memory_order_acquire);
    if (!v) return 0;
    if (v <= t->max && same_key(t, v, h, w, n)) return v;
  }
  return 0;
}

typedef void (*fill_fn)(uint32_t id, void *ctx);

/* Id of key w[0..n), interned when new (fill called for a new entry before it is published);
 * 0 when the table is full. */
static uint32_t itab_intern(struct itab *t, const uint64_t *w, unsigned n, fill_fn fill, void *ctx)
{
  if (!t->index || n > t->words) return 0;
  uint64_t h = hash_words(w, n);
  uint32_t mine = 0;
  unsigned i = (unsigned)h & (t->idx_size - 1);
  for (unsigned probe = 0; probe < t->idx_size; probe++, i = (i + 1) & (t->idx_size - 1)) {
    uint32_t v = atomic_load_explicit(&t->index[i], memory_order_acquire);
    if (!v) {
      if (!mine) {
        if (atomic_load_explicit(&t->next, memory_order_relaxed) >= t->max) goto full;
        mine = atomic_fetch_add_explicit(&t->next, 1, memory_order_relaxed) + 1;
        if (mine > t->max) goto full;
        uint64_t *k = key_of(t, mine);
        k[0] = h;
        k[1] = n;
        memcpy(k + 2, w, n * sizeof *w);
        if (fill) fill(mine, ctx);
      }
      if (atomic_compare_exchange_strong_explicit(&t->index[i], &v, mine, memory_order_acq_rel,
                                                  memory_order_acquire))
        return mine;
    }
    if (v && v <= t->max && same_key(t, v, h, w, n)) return v;
  }
full:
  atomic_fetch_add_explicit(&t->full, 1, memory_order_relaxed);
  return 0;
}

/* Raw frames: (code object, byte offset, check) -> site. The check word holds the code's
 * filename and name pointers and first line: a code object freed and another allocated at the
 * same address is a different key. */
#define RAW_MAX 32768
/* Sites: (hash of file, hash of function, line) -> text. Two raw frames on one line are one
 * site, so that sockets made on one line group together whichever instruction made them. */
#define SITE_MAX 16384
#define STK_MAX 16384
#define STK_WORDS (CG_PY_FRAMES / 2)

struct site {
  int32_t line;
  char file[CG_PY_FILE_MAX];
  char func[CG_PY_FUNC_MAX];
};

struct tables {
  struct itab raw, sites, stacks;
  uint32_t *raw_site;              /* by raw id */
  struct site *site;               /* by site id */
  /* Where each stack and site sits in the stats segment: generation << 32 | index + 1 (as
   * leak.c's seg_stack_of; another generation's value counts as none). */
  _Atomic uint64_t *seg_stack_of;  /* by stack id */
  _Atomic uint64_t *seg_site_of;   /* by site id */
};

static struct tables *_Atomic tabs;

static size_t itab_bytes(unsigned max, unsigned words)
{
  return (size_t)max * 2 * sizeof(uint32_t) + (size_t)max * (words + 2) * sizeof(uint64_t);
}

static unsigned char *itab_place(struct itab *t, unsigned char *m, unsigned max, unsigned words)
{
  t->max = max;
  t->words = words;
  t->idx_size = max * 2;
  t->index = (_Atomic uint32_t *)m;
  m += (size_t)max * 2 * sizeof(uint32_t);
  t->keys = (uint64_t *)m;
  return m + (size_t)max * (words + 2) * sizeof(uint64_t);
}

static struct tables *get_tables(void)
{
  struct tables *t = atomic_load_explicit(&tabs, memory_order_acquire);
  if (t) return t;
  size_t bytes = sizeof *t + itab_bytes(RAW_MAX, 3) + itab_bytes(SITE_MAX, 3) + itab_bytes(STK_MAX, STK_WORDS) +
                 RAW_MAX * sizeof(uint32_t) + SITE_MAX * sizeof(struct site) +
                 (STK_MAX + 1 + SITE_MAX + 1) * sizeof(uint64_t);
  /* MAP_NORESERVE: only the pages call sites land on cost memory. */
  unsigned char *m = mmap(0, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (m == MAP_FAILED) return NULL;
  struct tables *n = (struct tables *)m;
  unsigned char *p = m + ((sizeof *n + 63) & ~(size_t)63);
  p = itab_place(&n->raw, p, RAW_MAX, 3);
  p = itab_place(&n->sites, p, SITE_MAX, 3);
  p = itab_place(&n->stacks, p, STK_MAX, STK_WORDS);
  n->raw_site = (uint32_t *)p;
  p += RAW_MAX * sizeof(uint32_t);
  n->site = (struct site *)p;
  p += SITE_MAX * sizeof(struct site);
  n->seg_stack_of = (_Atomic uint64_t *)p;
  p += (STK_MAX + 1) * sizeof(uint64_t);
  n->seg_site_of = (_Atomic uint64_t *)p;
  struct tables *expect = NULL;
  if (atomic_compare_exchange_strong(&tabs, &expect, n)) return n;
  munmap(m, bytes);
  return expect;
}

/* ---------- reading frames ---------- */

struct raw {
  uintptr_t code;
  int64_t off;          /* byte offset of the current instruction, -1 unknown */
  uint64_t check;
};

static uint64_t str_hash(const char *s)
{
  uint64_t h = 0xcbf29ce484222325ULL;
  for (; *s; s++) { h ^= (unsigned char)*s; h *= 0x100000001b3ULL; }
  return h;
}

/* A str object's text (compact objects only: every code object's names are). */
static void read_str(uintptr_t obj, char *out, size_t cap, int keep_tail)
{
  unsigned char hdr[80];
  strcpy(out, "?");
  if (!obj || safe_read((void *)obj, hdr, (size_t)L.compact_size) != 0) return;
  uint32_t state;
  int64_t n;
  memcpy(&state, hdr + STR_STATE, 4);
  memcpy(&n, hdr + STR_LENGTH, 8);
  int kind = (int)(state >> 2) & 7, compact = (int)(state >> 5) & 1, ascii = (int)(state >> 6) & 1;
  if (!compact || n < 0 || n > 1 << 20 || (kind != 1 && kind != 2 && kind != 4)) return;
  if (ascii) kind = 1;
  size_t want = (size_t)n, skip = 0;
  size_t room = cap - 4;   /* for "..." and NUL */
  if (want > room) {
    if (keep_tail) skip = want - room;
    want = room;
  }
  unsigned char data[4 * (CG_PY_FILE_MAX > CG_PY_FUNC_MAX ? CG_PY_FILE_MAX : CG_PY_FUNC_MAX)];
  if (want * (size_t)kind > sizeof data) want = sizeof data / (size_t)kind;
  uintptr_t at = obj + (uintptr_t)(ascii ? L.ascii_size : L.compact_size) + skip * (size_t)kind;
  if (want && safe_read((void *)at, data, want * (size_t)kind) != 0) return;
  size_t o = 0;
  if (skip) { memcpy(out, "...", 3); o = 3; }
  cg_py_text(out + o, cap - o, data, kind, want);
}

/* Line of byte offset off in the code object (fault-proof reads; once per new call site). */
static int read_line(uintptr_t code, int64_t off)
{
  int32_t first = 0;
  uintptr_t tab;
  if (safe_read((void *)(code + (uintptr_t)L.co_firstlineno), &first, 4) != 0) return 0;
  if (off < 0) return first;
  if (safe_read((void *)(code + (uintptr_t)L.co_lines), &tab, sizeof tab) != 0 || !tab) return first;
  int64_t len = 0;
  if (safe_read((void *)(tab + BYTES_SIZE), &len, 8) != 0 || len < 0) return first;
  /* Entries past the instruction are never needed except for 3.9's table, whose pairs run in
   * address order too: read in pieces until the instruction is covered. */
  static const size_t cap = 64 * 1024;
  if ((size_t)len > cap) len = (int64_t)cap;
  unsigned char buf[4096];
  unsigned char *big = NULL;
  const unsigned char *data = buf;
  if ((size_t)len > sizeof buf) {
    big = mmap(0, (size_t)len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (big == MAP_FAILED) return first;
    data = big;
  }
  int line = first;
  if (safe_read((void *)(tab + BYTES_DATA), (void *)data, (size_t)len) == 0)
    line = cg_py_addr2line(L.linetable, data, (size_t)len, first, (int)off);
  if (big) munmap(big, (size_t)len);
  return line < 0 ? 0 : line;
}

struct site_ctx {
  struct tables *t;
  const struct site *s;
};

static void site_fill(uint32_t id, void *ctx)
{
  struct site_ctx *c = ctx;
  c->t->site[id - 1] = *c->s;
}

struct raw_ctx {
  struct tables *t;
  uint32_t sid;
};

static void raw_fill(uint32_t id, void *ctx)
{
  struct raw_ctx *c = ctx;
  c->t->raw_site[id - 1] = c->sid;
}

static uint32_t resolve(struct tables *t, const struct raw *r)
{
  uint64_t key[3] = { r->code, (uint64_t)r->off, r->check };
  uint32_t id = itab_find(&t->raw, key, 3);
  if (id) return t->raw_site[id - 1];
  struct site s;
  uintptr_t fname = 0, name = 0;
  /* Unreadable: nothing is cached for the key, the capture goes without a stack. */
  if (safe_read((void *)(r->code + (uintptr_t)L.co_filename), &fname, sizeof fname) != 0 ||
      safe_read((void *)(r->code + (uintptr_t)L.co_name), &name, sizeof name) != 0)
    return 0;
  read_str(fname, s.file, sizeof s.file, 1);
  read_str(name, s.func, sizeof s.func, 0);
  s.line = read_line(r->code, r->off);
  uint64_t skey[3] = { str_hash(s.file), str_hash(s.func), (uint64_t)(uint32_t)s.line };
  struct site_ctx c = { t, &s };
  uint32_t sid = itab_intern(&t->sites, skey, 3, site_fill, &c);
  if (!sid) return 0;
  struct raw_ctx rc = { t, sid };
  itab_intern(&t->raw, key, 3, raw_fill, &rc);
  return sid;
}

static uintptr_t finalizing(read_fn rd)
{
  uintptr_t f = 0;
  if (rd_ptr(rd, runtime, L.finalizing, &f) != 0) return 1;
  return f;
}

static inline uint64_t mix(uint64_t h, uint64_t v)
{
  h ^= v;
  h *= 0x9e3779b97f4a7c15ULL;
  return h ^ h >> 29;
}

/* Folds into *h what tells a str (is_str) or bytes object's content apart: its length and, for a
 * str, the hash CPython caches in it (names are interned, so it is there); otherwise its first
 * 8 and last 24 bytes (all of a short line table). A few loads, no loop over a long object. */
static inline __attribute__((always_inline)) int digest(read_fn rd, uintptr_t obj, int is_str, uint64_t *h)
{
  unsigned char hdr[40];
  if (!obj || rd((void *)obj, hdr, is_str ? 40 : BYTES_DATA) != 0) return -1;
  int64_t len;
  memcpy(&len, hdr + (is_str ? STR_LENGTH : BYTES_SIZE), 8);
  if (len < 0 || len > 1 << 28) return -1;
  *h = mix(*h, (uint64_t)len);
  size_t datao = BYTES_DATA, unit = 1;
  if (is_str) {
    int64_t sh;
    memcpy(&sh, hdr + STR_HASH, 8);
    if (sh != -1) { *h = mix(*h, (uint64_t)sh); return 0; }
    uint32_t state;
    memcpy(&state, hdr + STR_STATE, 4);
    unsigned kind = (state >> 2) & 7;
    if (!((state >> 5) & 1) || (kind != 1 && kind != 2 && kind != 4)) return 0;
    datao = (size_t)((state >> 6) & 1 ? L.ascii_size : L.compact_size);
    unit = (state >> 6) & 1 ? 1 : kind;
  }
  size_t bytes = (size_t)len * unit;
  uint64_t w[4] = { 0, 0, 0, 0 };
  if (bytes <= sizeof w) {
    if (bytes && rd((void *)(obj + datao), w, bytes) != 0) return -1;
  } else if (rd((void *)(obj + datao), w, 8) != 0 || rd((void *)(obj + datao + bytes - 24), w + 1, 24) != 0) {
    return -1;
  }
  *h = mix(mix(mix(mix(*h, w[0]), w[1]), w[2]), w[3]);
  return 0;
}

/* Reads up to max frames of tstate into r; returns how many, or -1 when unreadable. */
static inline __attribute__((always_inline)) int walk(read_fn rd, uintptr_t tstate, struct raw *r, int max)
{
  uintptr_t frame = 0;
  if (rd_ptr(rd, (const unsigned char *)tstate, L.ts_frame, &frame) != 0) return -1;
  if (L.cframe_cur >= 0 && frame && rd_ptr(rd, (const unsigned char *)frame, L.cframe_cur, &frame) != 0) return -1;
  int n = 0;
  for (int depth = 0; frame && n < max && depth < 1024; depth++) {
    unsigned char f[128];
    int fsize = (L.f_owner > L.f_instr ? L.f_owner + 1 : L.f_instr + 8);
    if (fsize > (int)sizeof f || rd((void *)frame, f, (size_t)fsize) != 0) return -1;
    uintptr_t code, prev;
    memcpy(&code, f + L.f_code, sizeof code);
    memcpy(&prev, f + L.f_back, sizeof prev);
    if (L.f_owner >= 0 && f[L.f_owner] == OWNED_BY_CSTACK) { frame = prev; continue; }
    /* The code object: its type, and the words that tell a reused address apart. */
    unsigned char c[160];
    int csize = L.co_name > L.co_firstlineno ? L.co_name : L.co_firstlineno;
    if (L.co_lines > csize) csize = L.co_lines;
    csize += 8;
    if (!code || csize > (int)sizeof c || rd((void *)code, c, (size_t)csize) != 0) return -1;
    uintptr_t type;
    memcpy(&type, c + OB_TYPE, sizeof type);
    if (type != (uintptr_t)code_type) { frame = prev; continue; }   /* 3.13: None for shims */
    uintptr_t fn, nm, lt;
    int32_t first;
    memcpy(&fn, c + L.co_filename, sizeof fn);
    memcpy(&nm, c + L.co_name, sizeof nm);
    memcpy(&lt, c + L.co_lines, sizeof lt);
    memcpy(&first, c + L.co_firstlineno, 4);
    int64_t off;
    if (L.co_code < 0) {
      int lasti;
      memcpy(&lasti, f + L.f_instr, sizeof lasti);
      off = lasti < 0 ? -1 : (int64_t)lasti * (L.lasti_units ? 2 : 1);
    } else {
      uintptr_t ip;
      memcpy(&ip, f + L.f_instr, sizeof ip);
      uintptr_t base = code + (uintptr_t)L.co_code;
      off = ip >= base && ip - base < (1u << 28) ? (int64_t)(ip - base) : -1;
    }
    r[n].code = code;
    r[n].off = off;
    /* Code objects, their names and line tables are freed and their addresses reused (exec'd
     * code, generated functions): the key holds what the text is made of, not only where. */
    uint64_t d = 0x9e3779b97f4a7c15ULL * (uint32_t)first;
    if (digest(rd, fn, 1, &d) != 0 || digest(rd, nm, 1, &d) != 0 || digest(rd, lt, 0, &d) != 0) return -1;
    r[n].check = d;
    n++;
    frame = prev;
  }
  return n;
}

uint32_t cg_pystack_capture(int safe)
{
  if (!atomic_load_explicit(&active, memory_order_acquire)) {
    /* Looked up at the first socket rather than at start: a failed dlsym mallocs its error
     * message, which made every process set up its heap. The first plain capture (a socket's
     * creation) looks once; failure records look each time (libpython loaded later, as in an
     * embedding program). */
    static atomic_int looked;
    if (cg_cfg.disable || !cg_cfg.pystack) return 0;
    /* A load first: every later socket and connect of a program without Python comes here. */
    if (!safe && (atomic_load_explicit(&looked, memory_order_relaxed) || atomic_exchange(&looked, 1))) return 0;
    cg_pystack_init();
    if (!cg_pystack_active()) return 0;
  }
  uintptr_t ts = (uintptr_t)get_tstate();
  if (!ts) return 0;          /* a thread Python does not know, or no interpreter yet / any more */
  read_fn rd = safe ? safe_read : plain_read;
  /* Py_FinalizeEx frees the thread states of threads other than the finalizing one: from
   * then on only that thread's own frames are readable. */
  uintptr_t fin = finalizing(rd);
  if (fin && fin != ts) return 0;
  struct raw r[CG_PY_FRAMES];
  /* Two copies of the walk: with plain_read known at compile time, its reads become loads. */
  int n = safe ? walk(safe_read, ts, r, CG_PY_FRAMES) : walk(plain_read, ts, r, CG_PY_FRAMES);
  if (n <= 0) return 0;
  uintptr_t fin2 = finalizing(rd);
  if (fin2 && fin2 != ts) return 0;   /* started meanwhile: what was read may be stale */
  struct tables *t = get_tables();
  if (!t) return 0;
  uint32_t sid[CG_PY_FRAMES];
  for (int i = 0; i < n; i++) {
    sid[i] = resolve(t, &r[i]);
    if (!sid[i]) return 0;
  }
  uint64_t w[STK_WORDS];
  memset(w, 0, sizeof w);
  for (int i = 0; i < n; i++) w[i / 2] |= (uint64_t)sid[i] << (32 * (i & 1));
  return itab_intern(&t->stacks, w, (unsigned)(n + 1) / 2, NULL, NULL);
}

int cg_pystack_get(uint32_t id, struct cg_py_frame *out, int max)
{
  struct tables *t = atomic_load_explicit(&tabs, memory_order_acquire);
  if (!t || !id || id > t->stacks.max || id > atomic_load_explicit(&t->stacks.next, memory_order_acquire))
    return 0;
  const uint64_t *k = key_of(&t->stacks, id);
  unsigned words = (unsigned)k[1];
  int n = 0;
  for (unsigned i = 0; i < words * 2 && n < max; i++) {
    uint32_t s = (uint32_t)(k[2 + i / 2] >> (32 * (i & 1)));
    if (!s || s > t->sites.max) break;
    const struct site *st = &t->site[s - 1];
    out[n].file = st->file;
    out[n].func = st->func;
    out[n].line = st->line;
    n++;
  }
  return n;
}

/* ---------- publication in the stats segment ---------- */

/* Claims entry k of an append-only array of the segment for key id: the index + 1 another thread
 * published first, or ours (after fill() wrote it), 0 when the array is full. */
static uint32_t seg_claim(_Atomic uint64_t *of, uint32_t id, _Atomic uint64_t *used, unsigned cap,
                          void *base, size_t size, void (*fill)(void *, uint32_t, struct tables *),
                          struct tables *t)
{
  uint64_t gen = atomic_load_explicit(&cg_stats_gen, memory_order_relaxed);
  uint64_t v = atomic_load_explicit(&of[id], memory_order_acquire);
  if (v >> 32 == gen && (uint32_t)v) return (uint32_t)v;
  if (atomic_load_explicit(used, memory_order_relaxed) >= cap) return 0;
  uint64_t k = atomic_fetch_add_explicit(used, 1, memory_order_relaxed);
  if (k >= cap) return 0;
  void *e = (char *)base + k * size;
  if (!cg_stats_room(e, size)) return 0;      /* /dev/shm is full */
  fill(e, id, t);
  uint64_t mine = gen << 32 | (k + 1);
  if (!atomic_compare_exchange_strong_explicit(&of[id], &v, mine, memory_order_acq_rel, memory_order_acquire) &&
      v >> 32 == gen && (uint32_t)v)
    return (uint32_t)v;
  return (uint32_t)(k + 1);
}

static void put_cut(char *dst, size_t cap, const char *src, int tail)
{
  size_t n = strlen(src);
  if (n < cap) { memcpy(dst, src, n + 1); return; }
  if (tail) {
    /* The tail names the file; keep "..." and whole UTF-8 characters. */
    const char *p = src + n - (cap - 4);
    while ((*p & 0xc0) == 0x80) p++;
    memcpy(dst, "...", 3);
    memcpy(dst + 3, p, strlen(p) + 1);
  } else {
    size_t k = cap - 1;
    while (k && (src[k] & 0xc0) == 0x80) k--;
    memcpy(dst, src, k);
    dst[k] = 0;
  }
}

static void fill_site(void *e, uint32_t sid, struct tables *t)
{
  struct cg_leak_pysite *d = e;
  const struct site *s = &t->site[sid - 1];
  d->line = s->line;
  put_cut(d->file, sizeof d->file, s->file, 1);
  put_cut(d->func, sizeof d->func, s->func, 0);
}

static void fill_stack(void *e, uint32_t id, struct tables *t)
{
  struct cg_leak_pystack *d = e;
  const uint64_t *k = key_of(&t->stacks, id);
  unsigned n = 0;
  for (unsigned i = 0; i < (unsigned)k[1] * 2 && n < CG_STATS_PYFRAMES; i++) {
    uint32_t sid = (uint32_t)(k[2 + i / 2] >> (32 * (i & 1)));
    if (!sid) break;
    uint32_t x = seg_claim(t->seg_site_of, sid, &cg_stats->leak_pysites_used, CG_STATS_PYSITES,
                           cg_stats->pysites, sizeof cg_stats->pysites[0], fill_site, t);
    if (!x) break;                /* pysites[] full: the stack is cut there */
    d->site[n++] = (uint16_t)x;
  }
  d->nframes = n;
}

uint32_t cg_pystack_publish(uint32_t id)
{
  struct tables *t = atomic_load_explicit(&tabs, memory_order_acquire);
  if (!id || !t || id > t->stacks.max) return 0;
  uint32_t x = seg_claim(t->seg_stack_of, id, &cg_stats->leak_pystacks_used, CG_STATS_PYSTACKS,
                         cg_stats->pystacks, sizeof cg_stats->pystacks[0], fill_stack, t);
  if (!x) {
    CG_STAT_ADD(leak_pystacks_full, 1);
    return CG_LEAK_STACK_FULL;
  }
  return x;
}
