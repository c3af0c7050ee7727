/* What start-up left in the shim's .bss: at main(), counts the present pages of the anonymous
 * mapping that follows the shim's own file mappings in /proc/self/maps (its .bss beyond the last
 * file page), from /proc/self/pagemap's present bit. The shim keeps every variable that start-up
 * writes in its .data (shim/core/startup.h), so this is 0 for a process that made no socket.
 * Prints "shim_mapped=0|1 bss_mapping=0|1 bss_present=N". */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(void)
{
  FILE *f = fopen("/proc/self/maps", "r");
  int pm = open("/proc/self/pagemap", O_RDONLY);
  if (!f || pm < 0) { perror("open /proc/self"); return 2; }
  char line[512];
  unsigned long last_end = 0;
  int shim = 0, bss = 0;
  long present = 0;
  while (fgets(line, sizeof line, f)) {
    unsigned long a, b;
    if (sscanf(line, "%lx-%lx", &a, &b) != 2) continue;
    if (strstr(line, "libconnguard")) { shim = 1; last_end = b; continue; }
    if (last_end && a == last_end && !strchr(line, '/')) {
      bss = 1;
      for (unsigned long p = a; p < b; p += 4096) {
        uint64_t e;
        if (pread(pm, &e, sizeof e, (off_t)(p / 4096 * 8)) == (ssize_t)sizeof e && (e >> 63)) present++;
      }
    }
    last_end = 0;
  }
  printf("shim_mapped=%d bss_mapping=%d bss_present=%ld\n", shim, bss, present);
  return 0;
}
