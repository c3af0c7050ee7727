#include "sym.h"
#include "cg_tool.h"
#include <elf.h>
#include <errno.h>
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

struct cached { char *module; uint64_t off; int ok; struct sym s; };
static struct cached *cache;
static int ncache, capcache;

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

int sym_lookup(const char *module, uint64_t offset, struct sym *out)
{
  memset(out, 0, sizeof *out);
  if (!module || !*module) return -1;
  for (int i = 0; i < ncache; i++)
    if (cache[i].off == offset && !strcmp(cache[i].module, module)) {
      *out = cache[i].s;
      return cache[i].ok;
    }
  struct a2l *k = kid_for(module);
  int ok = -1;
  /* A return address points after the call: one byte back is inside it. */
  if (k) ok = ask(k, k->vaddr + (offset ? offset - 1 : 0), out);
  if (ncache == capcache) {
    int nc = capcache ? capcache * 2 : 64;
    struct cached *n = realloc(cache, (size_t)nc * sizeof *n);
    if (!n) return ok;
    cache = n;
    capcache = nc;
  }
  cache[ncache].module = strdup(module);
  if (!cache[ncache].module) return ok;
  cache[ncache].off = offset;
  cache[ncache].ok = ok;
  cache[ncache].s = *out;
  ncache++;
  return ok;
}

void sym_shutdown(void)
{
  for (int i = 0; i < nkids; i++) { kid_stop(&kids[i]); free(kids[i].module); }
  free(kids);
  kids = NULL;
  nkids = 0;
  for (int i = 0; i < ncache; i++) free(cache[i].module);
  free(cache);
  cache = NULL;
  ncache = capcache = 0;
}
