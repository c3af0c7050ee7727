/* Prints the row of shim/core/pystack.c's layouts[] for the CPython whose headers it is built
 * against (internal headers included), from offsetof():
 *   cc -I PREFIX/include/python3.X -o pyoffsets scripts/pyoffsets.c && ./pyoffsets
 * test_python_stacks.test_layout_rows_match_headers does this for every interpreter installed. */
#define Py_BUILD_CORE 1
#include <Python.h>
#include <frameobject.h>
#include <stddef.h>
#include <stdio.h>
#include "internal/pycore_runtime.h"
#if PY_VERSION_HEX >= 0x030b0000
#include "internal/pycore_code.h"
#include "internal/pycore_frame.h"
#endif

int main(void)
{
  long ts_frame, cframe_cur = -1, f_back, f_code, f_instr, f_owner = -1, co_lines, co_code = -1;
  int fmt, units = 0;
#if PY_VERSION_HEX < 0x030b0000
  ts_frame = offsetof(PyThreadState, frame);
  f_back = offsetof(PyFrameObject, f_back);
  f_code = offsetof(PyFrameObject, f_code);
  f_instr = offsetof(PyFrameObject, f_lasti);
#if PY_VERSION_HEX < 0x030a0000
  co_lines = offsetof(PyCodeObject, co_lnotab);
  fmt = 1;
#else
  co_lines = offsetof(PyCodeObject, co_linetable);
  fmt = 2;
  units = 1;
#endif
#else
  fmt = 3;
  co_lines = offsetof(PyCodeObject, co_linetable);
  co_code = offsetof(PyCodeObject, co_code_adaptive);
  f_back = offsetof(_PyInterpreterFrame, previous);
  f_owner = offsetof(_PyInterpreterFrame, owner);
#if PY_VERSION_HEX < 0x030d0000
  ts_frame = offsetof(PyThreadState, cframe);
  cframe_cur = offsetof(_PyCFrame, current_frame);
  f_code = offsetof(_PyInterpreterFrame, f_code);
  f_instr = offsetof(_PyInterpreterFrame, prev_instr);
#else
  ts_frame = offsetof(PyThreadState, current_frame);
  f_code = offsetof(_PyInterpreterFrame, f_executable);
  f_instr = offsetof(_PyInterpreterFrame, instr_ptr);
#endif
#endif
  printf("{ 0x%x, %zu, %ld, %ld, %ld, %ld, %ld, %ld, %zu, %zu, %zu, %ld, %ld, %zu, %zu, %d, %d },\n",
         (unsigned)(PY_VERSION_HEX >> 16), offsetof(_PyRuntimeState, _finalizing), ts_frame, cframe_cur,
         f_back, f_code, f_instr, f_owner, offsetof(PyCodeObject, co_filename), offsetof(PyCodeObject, co_name),
         offsetof(PyCodeObject, co_firstlineno), co_lines, co_code, sizeof(PyASCIIObject),
         sizeof(PyCompactUnicodeObject), fmt, units);
  return 0;
}
