/* Shared-memory files of the shim's own (/dev/shm): files another local user cannot plant, read
 * or replace, and mappings that never raise SIGBUS, not even when /dev/shm is full.
 *
 * Contract (every function):
 * - Raw system calls only (no hook of ours sees them), no malloc, no lock: callable from any hook,
 *   before the constructor and in a forked child. Not async-signal-safe (mmap is, but the
 *   callers' state is not).
 * - No descriptor survives the call: the file is mapped and its descriptor closed before
 *   returning (the program's /proc/self/fd stays as it was).
 * - Files are created with O_CREAT|O_EXCL|O_NOFOLLOW|O_CLOEXEC, mode 0600 (umask does not widen
 *   it), owned by the effective uid. An existing path is used only when it is a regular file of
 *   the effective uid with no group/other permission bits; a symlink, another user's file, a
 *   FIFO, a device or a directory there is "squatted": never opened for writing, never removed.
 * - A mapping's bytes are touched only once they are reserved (the filesystem's blocks are
 *   allocated): the first `reserve` bytes by fallocate at creation, the rest page by page with
 *   cg_shm_reserve() before first use. An unreserved page of a full tmpfs would SIGBUS the
 *   program on its first store; a failed reservation is an error code instead.
 * - The caller removes what it created (cg_shm_create's path) on every exit path; these
 *   functions remove only their own temporary files and what they failed to finish. */
#ifndef CG_SHM_H
#define CG_SHM_H
#include <stddef.h>

enum cg_shm_status {
  CG_SHM_OK = 0,
  CG_SHM_NOSPACE,    /* the reservation failed (ENOSPC, RLIMIT_FSIZE, memory cgroup): nothing left on disk */
  CG_SHM_SQUATTED,   /* path exists and is not ours (see above): left alone */
  CG_SHM_ERROR,      /* anything else (EACCES, ENOENT dir, mmap): *err has the errno */
};

/* CG_SHM_REPLACE: an existing regular file of ours at path is a leftover (an earlier process
 * with our pid): unlink it and create afresh. Without it, an existing file is CG_SHM_SQUATTED. */
#define CG_SHM_REPLACE 1
/* CG_SHM_POPULATE: the caller writes the reserved head at once: reserve it by populating the
 * mapping (MADV_POPULATE_WRITE; fallocate on kernels before 5.14), so that its pages are
 * allocated and mapped in one system call and the first stores do not fault. */
#define CG_SHM_POPULATE 2

/* Creates path exclusively, size bytes, the first `reserve` of them reserved (rounded up to
 * pages; reserve >= size reserves all), and maps it MAP_SHARED read-write. Returns the mapping
 * (zero-filled) or NULL with *status (and *err, an errno) set. */
void *cg_shm_create(const char *path, size_t size, size_t reserve, int flags, int *status, int *err);

/* For a table shared by several processes of one user: maps the existing file at path when it
 * is ours (see above) and exactly size bytes, all reserved; otherwise creates it fully reserved
 * and zero-filled. The file appears at path only once it is complete (created under a
 * temporary name, then link()ed), so a joiner never maps a short file. Two processes racing
 * both end up on the same file. Returns the mapping or NULL with *status and *err set. */
void *cg_shm_open_shared(const char *path, size_t size, int *status, int *err);

/* Reserves the pages covering [addr, addr+len) of a MAP_SHARED mapping (MADV_POPULATE_WRITE,
 * Linux 5.14+). 0: they may be written without SIGBUS; -1 (errno set): do not touch them. */
int cg_shm_reserve(void *addr, size_t len);

#endif
