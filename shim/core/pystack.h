/* Python frames of the calling thread (CPython 3.9 to 3.13), read from the outside: the
 * interpreter is never called into beyond two functions that only read static data or a
 * thread-specific key (PyGILState_GetThisThreadState, Py_GetVersion), the GIL is never taken.
 * Method and limits: docs/python.md.
 *
 * A captured stack is interned: its id (>= 1) names the frames' (file, line, function) for the
 * rest of the process, so a record can be written long after the code objects are gone (the
 * exit report runs after the interpreter has finalized). Frames are resolved to text once per
 * new (code object, instruction) pair, through fault-proof reads; later captures of a known
 * call site read two words per frame and hash them. Tables are lock-free and never freed. */
#ifndef CG_PYSTACK_H
#define CG_PYSTACK_H
#include <stddef.h>
#include <stdint.h>

#define CG_PY_FRAMES   32       /* frames kept per stack, innermost first */
#define CG_PY_FILE_MAX 160      /* bytes of a file name kept (the tail, when longer) */
#define CG_PY_FUNC_MAX 96

struct cg_py_frame {
  const char *file, *func;    /* never NULL */
  int line;                   /* 0 when unknown */
};

/* Once, from the constructor (and again when a record finds no interpreter: a program may load
 * libpython late): finds the interpreter and picks its layout. CONNGUARD_PYSTACK=off: nothing. */
void cg_pystack_init(void);
/* An interpreter this code can read is present. */
int cg_pystack_active(void);
/* The calling thread's Python stack: its id, or 0 (no interpreter, a thread Python does not know,
 * no frames, interpreter finalizing, table full). safe = 1 reads every word through
 * process_vm_readv (a bad pointer gives EFAULT, not a crash): for failure records. safe = 0 reads
 * the frame chain with plain loads (no system call once call sites are known): for the
 * socket-creation path; see docs/python.md for why that is safe enough and when it is not used. */
uint32_t cg_pystack_capture(int safe);
/* Frames of id, innermost first (up to max); returns how many. */
int cg_pystack_get(uint32_t id, struct cg_py_frame *out, int max);
/* Index (1-based) of stack id in the stats segment's pystacks[] (stats.h), written there the
 * first time this segment needs it: 0 for id 0, CG_LEAK_STACK_FULL when the segment's tables
 * are full. For leak slot publication; no lock, no system call. */
uint32_t cg_pystack_publish(uint32_t id);
/* Description of the interpreter found ("3.11", "none", "off", "unsupported 3.14"...). */
const char *cg_pystack_describe(void);

/* ---- exported for unit tests ---- */

/* Offsets (bytes) of what the reader needs, per minor version, 64-bit builds. -1: absent. */
struct cg_py_layout {
  unsigned version;           /* 0x30b for 3.11 */
  int finalizing;             /* _PyRuntimeState._finalizing (a thread state pointer) */
  int ts_frame;               /* PyThreadState.frame / .cframe / .current_frame */
  int cframe_cur;             /* _PyCFrame.current_frame, -1 when ts_frame is the frame itself */
  int f_back, f_code, f_instr;/* frame: previous, code, lasti (int) or instruction pointer */
  int f_owner;                /* _PyInterpreterFrame.owner, -1 before 3.11 */
  int co_filename, co_name, co_firstlineno, co_lines, co_code;  /* co_code: first code unit */
  int ascii_size, compact_size;   /* sizeof(PyASCIIObject), sizeof(PyCompactUnicodeObject) */
  int linetable;              /* 1: 3.9 co_lnotab, 2: 3.10 co_linetable, 3: 3.11+ locations */
  int lasti_units;            /* f_instr is an int counting 2-byte code units (3.10) */
};

/* "3.11.2 (main, ...)" -> 0x30b; 0 when unreadable, PyPy, or a free-threaded build. */
unsigned cg_py_parse_version(const char *s);
/* Layout for a minor version (0x309 ... 0x30d), NULL when unsupported. */
const struct cg_py_layout *cg_py_layout_for(unsigned version);
/* 3.13's _PyRuntime.debug_offsets (what remote debuggers read): checks the cookie and version
 * and copies the offsets it gives into l. Returns 0 when applied, -1 when absent or unknown. */
int cg_py_apply_debug_offsets(struct cg_py_layout *l, const unsigned char *dbg, size_t len);
/* Line of the instruction at byte offset addr, from a line table in format fmt (1, 2, 3 as
 * in cg_py_layout.linetable); firstlineno when addr < 0; -1 when the table says "no line". */
int cg_py_addr2line(int fmt, const unsigned char *tab, size_t len, int firstlineno, int addr);
/* UTF-8 of a compact str object's data: kind 1, 2 or 4 bytes per character, n characters.
 * Writes at most cap-1 bytes and a NUL; returns the length. */
size_t cg_py_text(char *out, size_t cap, const unsigned char *data, int kind, size_t n);

#endif
