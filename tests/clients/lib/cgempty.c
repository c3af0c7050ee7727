/* An empty library, preloaded by `make bench` beside the shim: what loading any library costs a
 * process at start-up on this machine, the floor under the shim's own start-up row. */
int cg_empty_library(void);
int cg_empty_library(void) { return 0; }
