#include "sym.h"
#include "cg_tool.h"
#include <elf.h>
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* ---------- /proc/PID/maps ---------- */

struct mapping {
  uint64_t lo, hi, off, inode;
  char *path;
};

struct maps {
  int n;
  struct mapping *v;
};

struct maps *maps_load(pid_t pid)
{
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/maps", (int)pid);
  FILE *f = fopen(path, "re");
  if (!f) return NULL;
  struct maps *m = calloc(1, sizeof *m);
  char *line = NULL;
  size_t cap = 0;
  int vcap = 0;
  while (m && getline(&line, &cap, f) > 0) {
    unsigned long long lo, hi, off, inode;
    char perms[8], dev[32];
    int pos = 0;
    if (sscanf(line, "%llx-%llx %7s %llx %31s %llu %n", &lo, &hi, perms, &off, dev, &inode, &pos) < 6) continue;
    char *name = line + pos;
    if (name[0] != '/') continue;
    name[strcspn(name, "\n")] = 0;
    if (m->n == vcap) {
      vcap = vcap ? vcap * 2 : 64;
      struct mapping *nv = realloc(m->v, (size_t)vcap * sizeof *nv);
      if (!nv) break;
      m->v = nv;
    }
    m->v[m->n] = (struct mapping){ lo, hi, off, inode, strdup(name) };
    if (m->v[m->n].path) m->n++;
  }
  free(line);
  fclose(f);
  return m;
}

int maps_lookup(const struct maps *m, uint64_t pc, const char **module, uint64_t *offset)
{
  if (!m) return -1;
  for (int i = 0; i < m->n; i++) {
    const struct mapping *e = &m->v[i];
    if (pc < e->lo || pc >= e->hi) continue;
    /* The load base is where the file's first page is mapped (dladdr's dli_fbase). */
    uint64_t base = e->lo - e->off;
    for (int j = 0; j < m->n; j++)
      if (m->v[j].off == 0 && m->v[j].inode == e->inode && !strcmp(m->v[j].path, e->path) && m->v[j].lo <= e->lo) {
        base = m->v[j].lo;
        break;
      }
    *module = e->path;
    *offset = pc - base;
    return 0;
  }
  return -1;
}

void maps_free(struct maps *m)
{
  if (!m) return;
  for (int i = 0; i < m->n; i++) free(m->v[i].path);
  free(m->v);
  free(m);
}

/* ---------- ELF symbol tables ---------- */

/* Function symbols with their sizes, from .symtab and .dynsym. addr2line without debug info
 * names the nearest preceding symbol even when the address lies in a static function the
 * table does not list; a size check tells the two apart. */
struct fsym { uint64_t lo, hi; };
struct symtab { char *module; int n; struct fsym *v; };
static struct symtab *tabs;
static int ntabs;

static int cmp_fsym(const void *a, const void *b)
{
  const struct fsym *x = a, *y = b;
  return (x->lo > y->lo) - (x->lo < y->lo);
}

static void load_syms64(int fd, const Elf64_Ehdr *eh, struct symtab *t)
{
  if (eh->e_shentsize != sizeof(Elf64_Shdr) || eh->e_shnum == 0) return;
  Elf64_Shdr *sh = calloc(eh->e_shnum, sizeof *sh);
  if (!sh) return;
  if (pread(fd, sh, eh->e_shnum * sizeof *sh, (off_t)eh->e_shoff) != (ssize_t)(eh->e_shnum * sizeof *sh)) { free(sh); return; }
  int cap = 0;
  for (unsigned i = 0; i < eh->e_shnum; i++) {
    if (sh[i].sh_type != SHT_SYMTAB && sh[i].sh_type != SHT_DYNSYM) continue;
    if (sh[i].sh_entsize != sizeof(Elf64_Sym) || sh[i].sh_size > (64u << 20)) continue;
    size_t n = sh[i].sh_size / sizeof(Elf64_Sym);
    Elf64_Sym *sy = malloc(n * sizeof *sy + 1);
    if (!sy) continue;
    if (pread(fd, sy, n * sizeof *sy, (off_t)sh[i].sh_offset) == (ssize_t)(n * sizeof *sy)) {
      for (size_t k = 0; k < n; k++) {
        unsigned type = ELF64_ST_TYPE(sy[k].st_info);
        if ((type != STT_FUNC && type != STT_GNU_IFUNC) || !sy[k].st_value || !sy[k].st_size || sy[k].st_shndx == SHN_UNDEF) continue;
        if (t->n == cap) {
          cap = cap ? cap * 2 : 1024;
          struct fsym *nv = realloc(t->v, (size_t)cap * sizeof *nv);
          if (!nv) break;
          t->v = nv;
        }
        t->v[t->n++] = (struct fsym){ sy[k].st_value, sy[k].st_value + sy[k].st_size };
      }
    }
    free(sy);
  }
  free(sh);
  if (t->n) qsort(t->v, (size_t)t->n, sizeof *t->v, cmp_fsym);
}

static const struct symtab *symtab_for(const char *module)
{
  for (int i = 0; i < ntabs; i++)
    if (!strcmp(tabs[i].module, module)) return &tabs[i];
  struct symtab *nt = realloc(tabs, (size_t)(ntabs + 1) * sizeof *nt);
  if (!nt) return NULL;
  tabs = nt;
  struct symtab *t = &tabs[ntabs];
  memset(t, 0, sizeof *t);
  t->module = strdup(module);
  if (!t->module) return NULL;
  ntabs++;
  int fd = open(module, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return t;
  Elf64_Ehdr eh;
  if (pread(fd, &eh, sizeof eh, 0) == (ssize_t)sizeof eh && !memcmp(eh.e_ident, ELFMAG, SELFMAG) &&
      eh.e_ident[EI_CLASS] == ELFCLASS64)
    load_syms64(fd, &eh, t);
  close(fd);
  return t;
}

/* Whether a sized function symbol covers addr (a link-time address). */
static int symtab_covers(const char *module, uint64_t addr)
{
  const struct symtab *t = symtab_for(module);
  if (!t) return 0;
  int lo = 0, hi = t->n - 1, best = -1;
  while (lo <= hi) {
    int mid = (lo + hi) / 2;
    if (t->v[mid].lo <= addr) { best = mid; lo = mid + 1; } else hi = mid - 1;
  }
  /* Symbols may overlap (aliases): look back over the ones starting at or before addr. */
  for (int i = best; i >= 0 && i > best - 64; i--)
    if (t->v[i].lo <= addr && addr < t->v[i].hi) return 1;
  return 0;
}

/* ---------- addr2line ---------- */

struct a2l {
  char *module;
  int ok;               /* child running */
  pid_t pid;
  int to, from;         /* its stdin, its stdout */
  uint64_t vaddr;       /* link-time address of the first page (non-PIE executables) */
  char buf[4096];
  size_t have;
};

static struct a2l *kids;
static int nkids;
static int avail = -1;
static char a2l_path[4096];

/* Answers by module and offset: logs repeat the same stacks over and over. */
struct cached { char *module; uint64_t off; int ok; struct sym s; };
static struct cached *cache;
static int ncache, capcache;
static int *cidx;            /* open addressing: index + 1 into cache, 0 empty */
static size_t cidx_cap;

static size_t chash(const char *m, uint64_t off)
{
  uint64_t h = 1469598103934665603ULL ^ off * 0x9e3779b97f4a7c15ULL;
  for (; *m; m++) { h ^= (unsigned char)*m; h *= 1099511628211ULL; }
  return (size_t)h;
}

static struct cached *cache_find(const char *module, uint64_t off)
{
  if (!cidx_cap) return NULL;
  for (size_t i = chash(module, off) & (cidx_cap - 1); cidx[i]; i = (i + 1) & (cidx_cap - 1)) {
    struct cached *c = &cache[cidx[i] - 1];
    if (c->off == off && !strcmp(c->module, module)) return c;
  }
  return NULL;
}

static void cache_index(int k)
{
  for (size_t i = chash(cache[k].module, cache[k].off) & (cidx_cap - 1);; i = (i + 1) & (cidx_cap - 1))
    if (!cidx[i]) { cidx[i] = k + 1; return; }
}

static void cache_add(const char *module, uint64_t off, int ok, const struct sym *s)
{
  if ((size_t)(ncache + 1) * 2 > cidx_cap) {
    size_t nc = cidx_cap ? cidx_cap * 2 : 256;
    int *ni = calloc(nc, sizeof *ni);
    if (!ni) return;
    free(cidx);
    cidx = ni;
    cidx_cap = nc;
    for (int k = 0; k < ncache; k++) cache_index(k);
  }
  if (ncache == capcache) {
    int nc = capcache ? capcache * 2 : 128;
    struct cached *n = realloc(cache, (size_t)nc * sizeof *n);
    if (!n) return;
    cache = n;
    capcache = nc;
  }
  cache[ncache].module = strdup(module);
  if (!cache[ncache].module) return;
  cache[ncache].off = off;
  cache[ncache].ok = ok;
  cache[ncache].s = *s;
  cache_index(ncache);
  ncache++;
}

int sym_available(void)
{
  if (avail >= 0) return avail;
  avail = 0;
  const char *path = getenv("PATH");
  if (!path || !*path) path = "/usr/bin:/bin";
  while (*path) {
    const char *e = strchr(path, ':');
    size_t n = e ? (size_t)(e - path) : strlen(path);
    if (n && n < sizeof a2l_path - 16) {
      snprintf(a2l_path, sizeof a2l_path, "%.*s/addr2line", (int)n, path);
      if (access(a2l_path, X_OK) == 0) { avail = 1; break; }
    }
    path += n;
    if (*path == ':') path++;
  }
  return avail;
}

/* Lowest PT_LOAD address, page aligned: 0 for PIE and shared objects. -1 if not ELF. */
static int elf_first_vaddr(const char *path, uint64_t *out)
{
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  unsigned char id[EI_NIDENT];
  int rc = -1;
  if (pread(fd, id, sizeof id, 0) != (ssize_t)sizeof id || memcmp(id, ELFMAG, SELFMAG)) goto out;
  uint64_t lo = UINT64_MAX;
  if (id[EI_CLASS] == ELFCLASS64) {
    Elf64_Ehdr eh;
    if (pread(fd, &eh, sizeof eh, 0) != (ssize_t)sizeof eh || eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum > 4096) goto out;
    for (unsigned i = 0; i < eh.e_phnum; i++) {
      Elf64_Phdr ph;
      if (pread(fd, &ph, sizeof ph, (off_t)(eh.e_phoff + i * sizeof ph)) != (ssize_t)sizeof ph) goto out;
      if (ph.p_type == PT_LOAD && ph.p_vaddr < lo) lo = ph.p_vaddr;
    }
  } else if (id[EI_CLASS] == ELFCLASS32) {
    Elf32_Ehdr eh;
    if (pread(fd, &eh, sizeof eh, 0) != (ssize_t)sizeof eh || eh.e_phentsize != sizeof(Elf32_Phdr) || eh.e_phnum > 4096) goto out;
    for (unsigned i = 0; i < eh.e_phnum; i++) {
      Elf32_Phdr ph;
      if (pread(fd, &ph, sizeof ph, (off_t)(eh.e_phoff + i * sizeof ph)) != (ssize_t)sizeof ph) goto out;
      if (ph.p_type == PT_LOAD && ph.p_vaddr < lo) lo = ph.p_vaddr;
    }
  } else {
    goto out;
  }
  *out = lo == UINT64_MAX ? 0 : lo & ~(uint64_t)0xfff;
  rc = 0;
out:
  close(fd);
  return rc;
}

static void kid_stop(struct a2l *k)
{
  if (!k->ok) return;
  close(k->to);
  close(k->from);
  int st;
  /* Closing its stdin ends it; a stuck one is killed. */
  for (int i = 0; i < 100; i++) {
    if (waitpid(k->pid, &st, WNOHANG) == k->pid) { k->ok = 0; return; }
    usleep(10000);
  }
  kill(k->pid, SIGKILL);
  waitpid(k->pid, &st, 0);
  k->ok = 0;
}

static struct a2l *kid_for(const char *module)
{
  for (int i = 0; i < nkids; i++)
    if (!strcmp(kids[i].module, module)) return kids[i].ok ? &kids[i] : NULL;
  struct a2l *nk = realloc(kids, (size_t)(nkids + 1) * sizeof *nk);
  if (!nk) return NULL;
  kids = nk;
  struct a2l *k = &kids[nkids++];
  memset(k, 0, sizeof *k);
  k->module = strdup(module);
  if (!k->module || !sym_available() || module[0] != '/' || elf_first_vaddr(module, &k->vaddr)) return NULL;
  int in[2], out[2];
  if (pipe2(in, O_CLOEXEC)) return NULL;
  if (pipe2(out, O_CLOEXEC)) { close(in[0]); close(in[1]); return NULL; }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in[0], 0);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  char *argv[] = { "addr2line", "-f", "-C", "-e", k->module, NULL };
  int rc = posix_spawn(&k->pid, a2l_path, &fa, NULL, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  close(in[0]);
  close(out[1]);
  if (rc) { close(in[1]); close(out[0]); return NULL; }
  k->to = in[1];
  k->from = out[0];
  k->ok = 1;
  return k;
}

/* One line of the child's answer, bounded in time: a stuck addr2line is given up on. */
static int kid_line(struct a2l *k, char *out, size_t cap)
{
  for (;;) {
    char *nl = memchr(k->buf, '\n', k->have);
    if (nl) {
      size_t n = (size_t)(nl - k->buf);
      snprintf(out, cap, "%.*s", (int)n, k->buf);
      memmove(k->buf, nl + 1, k->have - n - 1);
      k->have -= n + 1;
      return 0;
    }
    if (k->have == sizeof k->buf) k->have = 0;   /* an absurd line: drop it */
    struct pollfd p = { k->from, POLLIN, 0 };
    int r = poll(&p, 1, 20000);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    ssize_t n = read(k->from, k->buf + k->have, sizeof k->buf - k->have);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return -1;
    k->have += (size_t)n;
  }
}

static int ask(struct a2l *k, uint64_t addr, struct sym *s)
{
  char q[32], fn[sizeof s->func], fl[sizeof s->file + 64];
  int n = snprintf(q, sizeof q, "0x%llx\n", (unsigned long long)addr);
  if (write(k->to, q, (size_t)n) != n || kid_line(k, fn, sizeof fn) || kid_line(k, fl, sizeof fl)) {
    kid_stop(k);
    return -1;
  }
  memset(s, 0, sizeof *s);
  if (strcmp(fn, "??")) snprintf(s->func, sizeof s->func, "%s", fn);
  /* "file:line", "file:line (discriminator N)", "??:0", "file:?" */
  char *d = strstr(fl, " (discriminator");
  if (d) *d = 0;
  char *colon = strrchr(fl, ':');
  if (colon) {
    *colon = 0;
    s->line = (unsigned)strtoul(colon + 1, NULL, 10);
  }
  if (strcmp(fl, "??")) snprintf(s->file, sizeof s->file, "%.*s", (int)sizeof s->file - 1, fl);
  return s->func[0] || s->file[0] ? 0 : -1;
}

/* The shim records absolute paths; older logs name the main program by argv[0] ("curl",
 * "./app"), and a library loaded by a relative path keeps it. A bare name is looked up in
 * PATH, a relative path from the current directory: right when the log is symbolized where
 * the program was started. */
static const char *find_module(const char *module, char *buf, size_t cap)
{
  if (module[0] == '/') return module;
  if (!strcmp(module, "?")) return NULL;
  if (strchr(module, '/')) {
    char *r = cap >= PATH_MAX ? realpath(module, buf) : NULL;
    return r && access(r, R_OK) == 0 ? r : NULL;
  }
  const char *path = getenv("PATH");
  if (!path) return NULL;
  while (*path) {
    const char *e = strchr(path, ':');
    size_t n = e ? (size_t)(e - path) : strlen(path);
    if (n && snprintf(buf, cap, "%.*s/%s", (int)n, path, module) < (int)cap && access(buf, X_OK) == 0) return buf;
    path += n;
    if (*path == ':') path++;
  }
  return NULL;
}

int sym_lookup(const char *module_name, uint64_t offset, struct sym *out)
{
  char found[4096];
  memset(out, 0, sizeof *out);
  if (!module_name || !*module_name) return -1;
  const struct cached *hit = cache_find(module_name, offset);
  if (hit) {
    *out = hit->s;
    return hit->ok;
  }
  const char *module = find_module(module_name, found, sizeof found);
  if (!module) { cache_add(module_name, offset, -1, out); return -1; }
  struct a2l *k = kid_for(module);
  int ok = -1;
  /* A return address points after the call: one byte back is inside it. */
  uint64_t addr = k ? k->vaddr + (offset ? offset - 1 : 0) : 0;
  if (k) ok = ask(k, addr, out);
  if (ok == 0 && !out->file[0] && out->func[0] && !symtab_covers(module, addr)) {
    /* No debug information, and no symbol covers the address: the name addr2line gave
     * belongs to whatever function precedes it (a static one was stripped). */
    out->func[0] = 0;
    ok = -1;
  }
  cache_add(module_name, offset, ok, out);
  return ok;
}

void sym_shutdown(void)
{
  for (int i = 0; i < nkids; i++) { kid_stop(&kids[i]); free(kids[i].module); }
  free(kids);
  kids = NULL;
  nkids = 0;
  for (int i = 0; i < ncache; i++) free(cache[i].module);
  for (int i = 0; i < ntabs; i++) { free(tabs[i].module); free(tabs[i].v); }
  free(tabs);
  tabs = NULL;
  ntabs = 0;
  free(cache);
  cache = NULL;
  ncache = capcache = 0;
  free(cidx);
  cidx = NULL;
  cidx_cap = 0;
}
