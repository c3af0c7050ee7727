/* Python stacks: version strings, layout choice, 3.13's debug offsets, line tables as each
 * interpreter compiled them (fixtures from scripts/pyline_fixtures.py), str object text, and
 * that a process without an interpreter captures nothing. */
#include <check.h>
#include "cgtest.h"
#include <stdlib.h>
#include <string.h>
#include "engine.h"
#include "log.h"
#include "pystack.h"
#include "pyline_fixtures.h"

START_TEST(version_strings)
{
  ck_assert_uint_eq(cg_py_parse_version("3.11.2 (main, Apr 28 2025, 14:11:48) [GCC 12.2.0]"), 0x30b);
  ck_assert_uint_eq(cg_py_parse_version("3.9.18 (main, Dec  1 2026, 10:00:00) [GCC 12.2.0]"), 0x309);
  ck_assert_uint_eq(cg_py_parse_version("3.13.0 (main, Oct  8 2024) [GCC 12.2.0]"), 0x30d);
  ck_assert_uint_eq(cg_py_parse_version("3.10.13+"), 0x30a);
  ck_assert_uint_eq(cg_py_parse_version("3.12.0a1"), 0x30c);
  /* Builds whose objects are laid out otherwise, or nonsense. */
  ck_assert_uint_eq(cg_py_parse_version("3.9.18 (7.3.13+dfsg-1, Nov 2023) [PyPy 7.3.13 with GCC 12.2.0]"), 0);
  ck_assert_uint_eq(cg_py_parse_version("3.13.0 experimental free-threading build (main) [GCC]"), 0);
  ck_assert_uint_eq(cg_py_parse_version(""), 0);
  ck_assert_uint_eq(cg_py_parse_version(NULL), 0);
  ck_assert_uint_eq(cg_py_parse_version("python"), 0);
  ck_assert_uint_eq(cg_py_parse_version("3."), 0);
  ck_assert_uint_eq(cg_py_parse_version("99999999999.1"), 0);
}
END_TEST

START_TEST(layouts_by_version)
{
  for (unsigned v = 0x309; v <= 0x30d; v++) {
    const struct cg_py_layout *l = cg_py_layout_for(v);
    ck_assert_ptr_nonnull(l);
    ck_assert_uint_eq(l->version, v);
    ck_assert_int_eq(l->linetable, v == 0x309 ? 1 : v == 0x30a ? 2 : 3);
    ck_assert_int_eq(l->f_owner >= 0, v >= 0x30b);
    ck_assert_int_eq(l->co_code >= 0, v >= 0x30b);
    ck_assert_int_eq(l->cframe_cur >= 0, v == 0x30b || v == 0x30c);
  }
  ck_assert_ptr_null(cg_py_layout_for(0x308));
  ck_assert_ptr_null(cg_py_layout_for(0x30e));
  ck_assert_ptr_null(cg_py_layout_for(0x20f));
}
END_TEST

static void put64(unsigned char *d, size_t at, uint64_t v) { memcpy(d + at, &v, 8); }

/* A _Py_DebugOffsets as 3.13.0 fills it in (values of this build of 3.13.0, with two moved to
 * see that they are taken from the structure and not from the table). */
static void debug_offsets(unsigned char *d)
{
  memset(d, 0, 600);
  memcpy(d, "xdebugpy", 8);
  put64(d, 8, 0x030d00f0);
  put64(d, 32, 608);    /* runtime_state.finalizing */
  put64(d, 184, 80);    /* thread_state.current_frame (72 in 3.13.0) */
  put64(d, 232, 8);     /* interpreter_frame.previous */
  put64(d, 240, 0);     /* .executable */
  put64(d, 248, 56);    /* .instr_ptr */
  put64(d, 264, 70);    /* .owner */
  put64(d, 280, 112);   /* code_object.filename */
  put64(d, 288, 120);   /* .name */
  put64(d, 304, 136);   /* .linetable */
  put64(d, 312, 68);    /* .firstlineno */
  put64(d, 344, 208);   /* .co_code_adaptive (200 in 3.13.0) */
  put64(d, 544, 32);    /* unicode_object.state */
  put64(d, 560, 40);    /* .asciiobject_size */
}

START_TEST(debug_offsets_applied)
{
  unsigned char d[600];
  debug_offsets(d);
  struct cg_py_layout l = *cg_py_layout_for(0x30d);
  ck_assert_int_eq(cg_py_apply_debug_offsets(&l, d, sizeof d), 0);
  ck_assert_int_eq(l.ts_frame, 80);
  ck_assert_int_eq(l.co_code, 208);
  ck_assert_int_eq(l.finalizing, 608);
  ck_assert_int_eq(l.f_owner, 70);
  ck_assert_int_eq(l.ascii_size, 40);
  ck_assert_int_eq(l.cframe_cur, -1);
}
END_TEST

START_TEST(debug_offsets_refused)
{
  unsigned char d[600];
  struct cg_py_layout l = *cg_py_layout_for(0x30d), keep = l;
  debug_offsets(d);
  ck_assert_int_eq(cg_py_apply_debug_offsets(&l, d, 100), -1);         /* short */
  d[0] = 'y';
  ck_assert_int_eq(cg_py_apply_debug_offsets(&l, d, sizeof d), -1);    /* no cookie */
  debug_offsets(d);
  put64(d, 8, 0x030e00a0);
  ck_assert_int_eq(cg_py_apply_debug_offsets(&l, d, sizeof d), -1);    /* 3.14 lays it out otherwise */
  debug_offsets(d);
  put64(d, 16, 1);
  ck_assert_int_eq(cg_py_apply_debug_offsets(&l, d, sizeof d), -1);    /* free-threaded */
  debug_offsets(d);
  put64(d, 184, (uint64_t)1 << 40);
  ck_assert_int_eq(cg_py_apply_debug_offsets(&l, d, sizeof d), -1);    /* absurd offset */
  ck_assert_mem_eq(&l, &keep, sizeof l);
}
END_TEST

static void check_table(const char *name, int fmt, const unsigned char *t, size_t len, int first,
                        const int (*exp)[2], size_t n)
{
  ck_assert_uint_gt(n, 20);
  for (size_t i = 0; i < n; i++) {
    int got = cg_py_addr2line(fmt, t, len, first, exp[i][0]);
    ck_assert_msg(got == exp[i][1], "%s: offset %d: line %d, interpreter says %d", name, exp[i][0], got, exp[i][1]);
  }
  ck_assert_int_eq(cg_py_addr2line(fmt, t, len, first, -1), first);
}

#define CHECK(tag) check_table(#tag, LT##tag##_FMT, lt##tag, sizeof lt##tag, LT##tag##_FIRST, \
                               lt##tag##_expect, sizeof lt##tag##_expect / sizeof *lt##tag##_expect)

START_TEST(line_tables_as_compiled)
{
  CHECK(39);
  CHECK(310);
  CHECK(311);
  CHECK(312);
  CHECK(313);
}
END_TEST

START_TEST(line_tables_hostile)
{
  /* Truncated and garbage tables end the walk without reading past them. */
  static const unsigned char junk[] = { 0xff, 0x7f, 0x7f, 0x7f, 0x7f, 0xf0 };
  for (int fmt = 1; fmt <= 3; fmt++) {
    for (size_t len = 0; len <= sizeof junk; len++)
      (void)cg_py_addr2line(fmt, junk, len, 10, 4);
    ck_assert_int_eq(cg_py_addr2line(fmt, junk, 0, 10, -1), 10);
  }
  ck_assert_int_eq(cg_py_addr2line(9, junk, sizeof junk, 10, 0), -1);
  /* 3.11 long form: a 20-bit line delta in varint pieces. */
  static const unsigned char longform[] = { 0x80 | 14 << 3 | 0, 0x40 | 0, 0x40 | 0, 0x08, 0, 0, 0 };
  ck_assert_int_eq(cg_py_addr2line(3, longform, sizeof longform, 1, 0), 1 + (0x08 << 12) / 2);
}
END_TEST

START_TEST(str_text)
{
  char out[32];
  static const unsigned char latin1[] = { 'c', 'a', 'f', 0xe9 };
  ck_assert_uint_eq(cg_py_text(out, sizeof out, latin1, 1, 4), 5);
  ck_assert_str_eq(out, "caf\xc3\xa9");
  static const uint16_t ucs2[] = { 0x65e5, 'x', 0xd800 };
  cg_py_text(out, sizeof out, (const unsigned char *)ucs2, 2, 3);
  ck_assert_str_eq(out, "\xe6\x97\xa5x?");
  static const uint32_t ucs4[] = { 0x1f600, 0x110000 };
  cg_py_text(out, sizeof out, (const unsigned char *)ucs4, 4, 2);
  ck_assert_str_eq(out, "\xf0\x9f\x98\x80?");
  /* Never more than cap - 1 bytes, never half a character. */
  ck_assert_uint_eq(cg_py_text(out, 5, latin1, 1, 4), 3);
  ck_assert_str_eq(out, "caf");
  ck_assert_uint_eq(cg_py_text(out, 1, latin1, 1, 4), 0);
  ck_assert_str_eq(out, "");
}
END_TEST

START_TEST(no_interpreter_no_stack)
{
  cg_config_defaults(&cg_cfg);
  cg_pystack_init();
  ck_assert_int_eq(cg_pystack_active(), 0);
  ck_assert_uint_eq(cg_pystack_capture(0), 0);
  ck_assert_uint_eq(cg_pystack_capture(1), 0);
  struct cg_py_frame f[2];
  ck_assert_int_eq(cg_pystack_get(0, f, 2), 0);
  ck_assert_int_eq(cg_pystack_get(77, f, 2), 0);
  struct cg_rec r;
  cg_rec_begin(&r, "x");
  size_t before = r.b.len;
  cg_rec_pystack(&r, 0);
  ck_assert_uint_eq(r.b.len, before);
  cg_cfg.pystack = 0;
  cg_pystack_init();
  ck_assert_str_eq(cg_pystack_describe(), "off");
}
END_TEST

static Suite *suite(void)
{
  Suite *s = suite_create("pystack");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, version_strings);
  tcase_add_test(tc, layouts_by_version);
  tcase_add_test(tc, debug_offsets_applied);
  tcase_add_test(tc, debug_offsets_refused);
  tcase_add_test(tc, line_tables_as_compiled);
  tcase_add_test(tc, line_tables_hostile);
  tcase_add_test(tc, str_text);
  tcase_add_test(tc, no_interpreter_no_stack);
  suite_add_tcase(s, tc);
  return s;
}

CG_TEST_MAIN(suite)
