/* Turning addresses into names: /proc/PID/maps for module+offset of a live process, and
 * addr2line (binutils) for function and file:line, run as one long-lived child per module. */
#ifndef CG_TOOL_SYM_H
#define CG_TOOL_SYM_H
#include <stdint.h>
#include <sys/types.h>

struct maps;
struct maps *maps_load(pid_t pid);
/* Module path and offset from its load base (as the shim prints them: dladdr's dli_fbase).
 * 0 on success, -1 when no file mapping holds pc. */
int maps_lookup(const struct maps *m, uint64_t pc, const char **module, uint64_t *offset);
void maps_free(struct maps *m);

struct sym {
  char func[256];       /* "" when unknown */
  char file[512];       /* "" when unknown */
  unsigned line;        /* 0 when unknown */
};
/* Resolves module+offset of a return address (the call's line is reported). 0 when addr2line
 * gave anything, -1 otherwise. Results are cached. */
int sym_lookup(const char *module, uint64_t offset, struct sym *out);
/* Whether addr2line can be run at all (checked once). */
int sym_available(void);
/* Stops the addr2line children. */
void sym_shutdown(void);

#endif
