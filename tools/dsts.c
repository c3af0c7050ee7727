/* The destinations section of stat/top and the per-destination series of metrics. */
#include "cg_tool.h"
#include "coord.h"
#include "dsts.h"
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int by_failures(const void *a, const void *b)
{
  const struct dst_row *x = a, *y = b;
  if (x->open != y->open) return y->open - x->open;                 /* open ones first */
  if (x->failures != y->failures) return y->failures > x->failures ? 1 : -1;
  return strcmp(x->name, y->name);
}

int dsts_read(struct dst_row **rows, char *msg, unsigned cap)
{
  *rows = NULL;
  char path[64];
  snprintf(path, sizeof path, "/dev/shm/connguard.%u.dst", (unsigned)geteuid());
  int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    if (errno == ENOENT) return 0;
    snprintf(msg, cap, "%s: %s", path, strerror(errno));
    return -1;
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 077) ||
      st.st_size < (off_t)sizeof(struct cg_coord_table) || st.st_size > (off_t)(64 << 20)) {
    close(fd);
    snprintf(msg, cap, "%s: not an owner-only table of yours; ignored", path);
    return -1;
  }
  size_t size = (size_t)st.st_size;
  const struct cg_coord_table *t = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
  close(fd);
  if (t == MAP_FAILED) { snprintf(msg, cap, "%s: %s", path, strerror(errno)); return -1; }
  if (__atomic_load_n(&t->magic, __ATOMIC_ACQUIRE) != CG_COORD_MAGIC || t->version != CG_COORD_VERSION ||
      t->size != size || sizeof *t + (size_t)t->nslots * sizeof t->dst[0] != size) {
    munmap((void *)t, size);
    snprintf(msg, cap, "%s: unknown layout (another connguard version?)", path);
    return -1;
  }
  struct dst_row *r = calloc(t->nslots ? t->nslots : 1, sizeof *r);
  int n = 0;
  for (uint32_t i = 0; r && i < t->nslots; i++) {
    struct cg_coord_dst *d = (struct cg_coord_dst *)&t->dst[i];
    uint32_t g = atomic_load(&d->gen);
    if (!g) continue;
    struct dst_row *x = &r[n];
    cg_coord_dst_name(d, x->name, sizeof x->name);
    x->open = atomic_load(&d->state) == CG_COORD_OPEN;
    x->streak = atomic_load(&d->streak);
    x->waiting = atomic_load(&d->waiting);
    x->opened_by = atomic_load(&d->opened_by);
    x->opened_rt_ns = atomic_load(&d->opened_rt_ns);
    uint64_t pw = atomic_load(&d->probe);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint32_t now_ms = (uint32_t)((uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000);
    if (pw && (int32_t)(now_ms - (uint32_t)pw) <= 0) x->probe = (int32_t)(pw >> 32);
    x->attempts = atomic_load(&d->attempts);
    x->failures = atomic_load(&d->failures);
    x->probes = atomic_load(&d->probes);
    x->waits = atomic_load(&d->waits);
    x->opens = atomic_load(&d->opens);
    if (atomic_load(&d->gen) != g) continue;   /* taken for another destination meanwhile */
    n++;
  }
  munmap((void *)t, size);
  if (!r) { snprintf(msg, cap, "out of memory"); return -1; }
  qsort(r, (size_t)n, sizeof *r, by_failures);
  *rows = r;
  return n;
}

void dsts_print(const struct dst_row *rows, int n, int max_rows)
{
  if (n <= 0) return;
  int64_t now = now_realtime_ns();
  printf("\n%-30s %-6s %8s %8s %8s %7s %7s %7s %s\n", "DESTINATION", "STATE", "ATTEMPTS", "FAILED", "PROBES",
         "WAITS", "WAITING", "PROBE", "SINCE");
  for (int i = 0; i < n; i++) {
    if (max_rows > 0 && i >= max_rows) { printf("... %d more destinations\n", n - i); break; }
    const struct dst_row *x = &rows[i];
    char since[64] = "-";
    if (x->open && x->opened_rt_ns) {
      char d[32];
      fmt_duration(d, sizeof d, now - x->opened_rt_ns);
      snprintf(since, sizeof since, "open %s (pid %d)", d, (int)x->opened_by);
    }
    char probe[16] = "-";
    if (x->probe) snprintf(probe, sizeof probe, "%d", (int)x->probe);
    printf("%-30s %-6s %8llu %8llu %8llu %7llu %7u %7s %s\n", x->name, x->open ? "open" : "closed",
           (unsigned long long)x->attempts, (unsigned long long)x->failures, (unsigned long long)x->probes,
           (unsigned long long)x->waits, x->waiting, probe, since);
  }
}
