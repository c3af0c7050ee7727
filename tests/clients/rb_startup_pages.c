/* What start-up left in the shim's .bss: at main(), counts the present pages of the shim's
 * .bss beyond its last file page (from its program headers: the writable PT_LOAD's file end,
 * rounded up, to its memory end), from /proc/self/pagemap's present bit. Not "the mapping after
 * the shim's" in /proc/self/maps: another anonymous mapping that happens to lie next to it is
 * merged into the same line. The shim keeps every variable that start-up writes in its .data
 * (shim/core/startup.h), so this is 0 for a process that made no socket.
 * Prints "shim_mapped=0|1 bss_pages=N bss_present=N". */
#include <fcntl.h>
#include <link.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static uintptr_t lo, hi;

static int find(struct dl_phdr_info *info, size_t size, void *arg)
{
  (void)size; (void)arg;
  if (!strstr(info->dlpi_name, "libconnguard")) return 0;
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_W)) continue;
    uintptr_t file_end = info->dlpi_addr + ph->p_vaddr + ph->p_filesz;
    lo = (file_end + 4095) & ~(uintptr_t)4095;
    hi = info->dlpi_addr + ph->p_vaddr + ph->p_memsz;
  }
  return 1;
}

int main(void)
{
  int shim = dl_iterate_phdr(find, NULL);
  int pm = open("/proc/self/pagemap", O_RDONLY);
  if (pm < 0) { perror("open /proc/self/pagemap"); return 2; }
  long pages = 0, present = 0;
  for (uintptr_t p = lo; p < hi; p += 4096) {
    uint64_t e;
    pages++;
    if (pread(pm, &e, sizeof e, (off_t)(p / 4096 * 8)) == (ssize_t)sizeof e && (e >> 63)) present++;
  }
  printf("shim_mapped=%d bss_pages=%ld bss_present=%ld\n", shim, pages, present);
  return 0;
}
