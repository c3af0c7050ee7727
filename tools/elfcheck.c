/* Run mode's look at the command before exec: the cases where LD_PRELOAD cannot reach the
 * program (docs/limits.md) get one warning line, and the program still runs. */
#include "cg_tool.h"
#include <elf.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The file execvp() would run, or NULL. */
static const char *resolve(const char *cmd, char *buf, size_t cap)
{
  if (strchr(cmd, '/')) return cmd;
  const char *path = getenv("PATH");
  if (!path) path = "/usr/local/bin:/usr/bin:/bin";
  while (*path) {
    const char *e = strchr(path, ':');
    size_t n = e ? (size_t)(e - path) : strlen(path);
    if ((int)snprintf(buf, cap, "%.*s/%s", (int)(n ? n : 1), n ? path : ".", cmd) < (int)cap && access(buf, X_OK) == 0)
      return buf;
    path += n;
    if (*path == ':') path++;
  }
  return NULL;
}

struct elfinfo { int elf, interp, go; };

static void inspect(int fd, struct elfinfo *in)
{
  Elf64_Ehdr eh;
  if (pread(fd, &eh, sizeof eh, 0) != (ssize_t)sizeof eh || memcmp(eh.e_ident, ELFMAG, SELFMAG) ||
      eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_phentsize != sizeof(Elf64_Phdr))
    return;
  in->elf = 1;
  for (unsigned i = 0; i < eh.e_phnum; i++) {
    Elf64_Phdr ph;
    if (pread(fd, &ph, sizeof ph, (off_t)(eh.e_phoff + i * sizeof ph)) != (ssize_t)sizeof ph) break;
    if (ph.p_type == PT_INTERP) in->interp = 1;
  }
  /* Go binaries carry a .go.buildinfo section (and .note.go.buildid). */
  if (eh.e_shentsize != sizeof(Elf64_Shdr) || eh.e_shstrndx == SHN_UNDEF || eh.e_shstrndx >= eh.e_shnum) return;
  Elf64_Shdr strs;
  if (pread(fd, &strs, sizeof strs, (off_t)(eh.e_shoff + eh.e_shstrndx * sizeof strs)) != (ssize_t)sizeof strs) return;
  if (strs.sh_size == 0 || strs.sh_size > (1u << 20)) return;
  char *names = malloc(strs.sh_size + 1);
  if (!names) return;
  if (pread(fd, names, strs.sh_size, (off_t)strs.sh_offset) == (ssize_t)strs.sh_size) {
    names[strs.sh_size] = 0;
    for (unsigned i = 0; i < eh.e_shnum && !in->go; i++) {
      Elf64_Shdr sh;
      if (pread(fd, &sh, sizeof sh, (off_t)(eh.e_shoff + i * sizeof sh)) != (ssize_t)sizeof sh) break;
      if (sh.sh_name < strs.sh_size && (!strcmp(names + sh.sh_name, ".go.buildinfo") || !strcmp(names + sh.sh_name, ".note.go.buildid")))
        in->go = 1;
    }
  }
  free(names);
}

void run_check_target(const char *cmd)
{
  char buf[PATH_MAX];
  const char *path = resolve(cmd, buf, sizeof buf);
  if (!path) return;   /* execvp reports it */
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  struct stat st;
  memset(&st, 0, sizeof st);
  struct elfinfo in = { 0, 0, 0 };
  if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) inspect(fd, &in);
  close(fd);
  if (in.go)
    warnf("%s is a Go program: Go makes its own system calls, connguard sees none of its connects "
          "(see docs/limits.md)", cmd);
  else if (in.elf && !in.interp)
    warnf("%s is statically linked: LD_PRELOAD cannot reach it, it runs without connguard "
          "(see docs/limits.md)", cmd);
  if (((st.st_mode & S_ISUID) && st.st_uid != getuid()) || ((st.st_mode & S_ISGID) && st.st_gid != getgid()))
    warnf("%s is set%cid: the loader ignores LD_PRELOAD for it, it runs without connguard", cmd,
          (st.st_mode & S_ISUID) && st.st_uid != getuid() ? 'u' : 'g');
}
