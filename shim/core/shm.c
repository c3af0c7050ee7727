#include "shm.h"
#include "rawsys.h"
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define OPEN_FLAGS (O_RDWR | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)

/* Raw: our files must never pass through the program-facing hooks (open, close). */
static int sys_open(const char *path, int flags, int mode)
{
  return (int)cg_syscall(SYS_openat, AT_FDCWD, path, flags, mode);
}
static void sys_close(int fd) { cg_syscall(SYS_close, fd); }

static size_t page_size(void)
{
  long p = sysconf(_SC_PAGESIZE);
  return p > 0 ? (size_t)p : 4096;
}

/* Growing a file past RLIMIT_FSIZE raises SIGXFSZ, whose default action kills the program: a
 * limit the program set for its own files must not let our file kill it. */
static int fsize_allows(size_t size)
{
  struct rlimit rl;
  if (getrlimit(RLIMIT_FSIZE, &rl) != 0) return 1;
  return rl.rlim_cur == RLIM_INFINITY || (rlim_t)size <= rl.rlim_cur;
}

static int ours(const struct stat *st)
{
  return S_ISREG(st->st_mode) && st->st_uid == geteuid() && !(st->st_mode & 077);
}

void *cg_shm_create(const char *path, size_t size, size_t reserve, int flags, int *status, int *err)
{
  *status = CG_SHM_ERROR;
  *err = 0;
  if (reserve > size) reserve = size;
  size_t pg = page_size();
  reserve = (reserve + pg - 1) / pg * pg;
  if (reserve > size) reserve = size;
  if (!fsize_allows(size)) { *status = CG_SHM_NOSPACE; *err = EFBIG; return NULL; }
  int fd = sys_open(path, OPEN_FLAGS | O_CREAT | O_EXCL, 0600);
  if (fd < 0 && errno == EEXIST) {
    struct stat st;
    if (fstatat(AT_FDCWD, path, &st, AT_SYMLINK_NOFOLLOW) != 0) { *err = errno; return NULL; }
    /* Only a regular file of our own uid is ours to remove; in a sticky /dev/shm nobody else's
     * could be removed anyway, and a symlink or FIFO of ours is not something we made. */
    if (!(flags & CG_SHM_REPLACE) || !S_ISREG(st.st_mode) || st.st_uid != geteuid()) {
      *status = CG_SHM_SQUATTED;
      *err = EEXIST;
      return NULL;
    }
    unlink(path);
    fd = sys_open(path, OPEN_FLAGS | O_CREAT | O_EXCL, 0600);
  }
  if (fd < 0) {
    *err = errno;
    if (*err == EEXIST) *status = CG_SHM_SQUATTED;   /* planted again between unlink and open */
    else if (*err == ENOSPC || *err == EDQUOT) *status = CG_SHM_NOSPACE;
    return NULL;
  }
  /* A umask may have removed bits we need; nothing may add any. */
  if (cg_syscall(SYS_fchmod, fd, 0600) != 0) goto fail;
  /* fallocate, not ftruncate: ftruncate only sets the size, and the first store into a page
   * that tmpfs cannot allocate then kills the program with SIGBUS. CG_SHM_POPULATE reserves by
   * populating the mapping instead (below), unless the kernel is too old for that. */
  int populate = (flags & CG_SHM_POPULATE) && reserve;
  if (reserve && !populate) {
    int r;
    do r = (int)cg_syscall(SYS_fallocate, fd, 0, (off_t)0, (off_t)reserve);
    while (r != 0 && errno == EINTR);
    if (r != 0) {
      *err = errno;
      *status = (*err == ENOSPC || *err == EDQUOT || *err == EFBIG || *err == ENOMEM) ? CG_SHM_NOSPACE : CG_SHM_ERROR;
      goto out;
    }
  }
  if ((populate || reserve < size) && cg_syscall(SYS_ftruncate, fd, (off_t)size) != 0) goto fail;
  void *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (m == MAP_FAILED) goto fail;
  /* One system call that allocates the head and maps it, in place of fallocate and the fault
   * of the caller's first store (a fault is costly on some VMs). */
  if (populate && cg_shm_reserve(m, reserve) != 0) {
    int r = -1;
    /* EINVAL: before Linux 5.14, reserved the old way. */
    if (errno == EINVAL) {
      do r = (int)cg_syscall(SYS_fallocate, fd, 0, (off_t)0, (off_t)reserve);
      while (r != 0 && errno == EINTR);
    }
    if (r != 0) {
      /* EFAULT: a page tmpfs could not give (what a store would have met as SIGBUS). */
      *err = errno == EFAULT ? ENOSPC : errno;
      *status = (*err == ENOMEM || *err == ENOSPC || *err == EDQUOT) ? CG_SHM_NOSPACE : CG_SHM_ERROR;
      munmap(m, size);
      goto out;
    }
  }
  sys_close(fd);
  *status = CG_SHM_OK;
  return m;
fail:
  *err = errno;
  if (*err == ENOSPC || *err == EDQUOT || *err == EFBIG) *status = CG_SHM_NOSPACE;
out:
  unlink(path);
  sys_close(fd);
  return NULL;
}

static void *join(int fd, size_t size, int *status, int *err)
{
  struct stat st;
  void *m = NULL;
  if (fstat(fd, &st) != 0) { *err = errno; goto out; }
  if (!ours(&st)) { *status = CG_SHM_SQUATTED; *err = EPERM; goto out; }
  /* Complete files only (see cg_shm_open_shared): every byte present and allocated. */
  if ((size_t)st.st_size != size || (size_t)st.st_blocks * 512 < size) { *err = EINVAL; goto out; }
  m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (m == MAP_FAILED) { *err = errno; m = NULL; goto out; }
  *status = CG_SHM_OK;
out:
  sys_close(fd);
  return m;
}

void *cg_shm_open_shared(const char *path, size_t size, int *status, int *err)
{
  *status = CG_SHM_ERROR;
  *err = 0;
  for (int tries = 0; tries < 4; tries++) {
    int fd = sys_open(path, OPEN_FLAGS, 0);
    if (fd >= 0) return join(fd, size, status, err);
    if (errno == ELOOP || errno == ENXIO || errno == EISDIR) { *status = CG_SHM_SQUATTED; *err = errno; return NULL; }
    if (errno != ENOENT) { *err = errno; return NULL; }
    char tmp[4096];
    int n = snprintf(tmp, sizeof tmp, "%s.new.%ld", path, (long)cg_syscall(SYS_gettid));
    if (n < 0 || (size_t)n >= sizeof tmp) { *err = ENAMETOOLONG; return NULL; }
    void *m = cg_shm_create(tmp, size, size, CG_SHM_REPLACE, status, err);
    if (!m) return NULL;
    int r = link(tmp, path);
    int e = errno;
    unlink(tmp);
    if (r == 0) return m;
    munmap(m, size);
    *status = CG_SHM_ERROR;
    if (e != EEXIST) { *err = e; return NULL; }
    /* Another process published it first: join theirs. */
  }
  *err = EAGAIN;
  return NULL;
}

int cg_shm_reserve(void *addr, size_t len)
{
  size_t pg = page_size();
  uintptr_t a = (uintptr_t)addr & ~(uintptr_t)(pg - 1);
  uintptr_t b = ((uintptr_t)addr + len + pg - 1) & ~(uintptr_t)(pg - 1);
  int r;
  /* Fails with an error (EFAULT, ENOMEM) where a store would have raised SIGBUS; EINVAL on
   * kernels older than 5.14, where we cannot tell, so nothing more is used. */
  do r = madvise((void *)a, b - a, MADV_POPULATE_WRITE);
  while (r != 0 && errno == EINTR);
  return r == 0 ? 0 : -1;
}
