/* check_util.c - the arena and the diagnostic printer. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "util/arena.h"
#include "util/diag.h"

static CkcArena arena;

static void setup(void) { ckc_arena_init(&arena); }
static void teardown(void) { ckc_arena_free(&arena); }

START_TEST(arena_alloc_is_zeroed_and_aligned) {
  for (int i = 1; i < 5000; i += 37) {
    unsigned char *p = ckc_arena_alloc(&arena, (size_t)i);
    ck_assert_uint_eq((uintptr_t)p % 16, 0);
    for (int j = 0; j < i; j++) ck_assert_uint_eq(p[j], 0);
    memset(p, 0xab, (size_t)i);
  }
}
END_TEST

START_TEST(arena_large_blocks) {
  char *big = ckc_arena_alloc(&arena, 3u << 20); /* bigger than a block */
  big[(3u << 20) - 1] = 1;
  char *small = ckc_arena_alloc(&arena, 8);
  ck_assert_ptr_nonnull(small);
  ck_assert_uint_ge(arena.total, (3u << 20) + 8);
}
END_TEST

START_TEST(arena_strings_and_vec) {
  ck_assert_str_eq(ckc_arena_printf(&arena, "%s.%d", "blocks", 2), "blocks.2");
  ck_assert_str_eq(ckc_arena_strndup(&arena, "abcdef", 3), "abc");
  CKC_VEC(int) v = {0};
  for (int i = 0; i < 1000; i++) CKC_VEC_PUSH(&arena, v, i * 3);
  ck_assert_int_eq(v.len, 1000);
  for (int i = 0; i < 1000; i++) ck_assert_int_eq(v.items[i], i * 3);
  CkcBuf b;
  ckc_buf_init(&b, &arena);
  for (int i = 0; i < 300; i++) ckc_buf_printf(&b, "%d,", i % 10);
  ck_assert_uint_eq(strlen(ckc_buf_str(&b)), 600);
}
END_TEST

/* Runs one report into a memory stream and returns what was printed. */
static char *report(const char *src, CkcLoc loc, int max_errors, int count) {
  char *mem = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&mem, &len);
  CkcDiag d;
  ckc_diag_init(&d, &arena, f);
  d.max_errors = max_errors;
  loc.file = ckc_diag_add_source(&d, "t.ckm", src, strlen(src));
  for (int i = 0; i < count; i++) {
    ckc_error(&d, loc, "E0301", "matmul: inner dimensions differ: %s", "f32[2,3] @ f32[4,5] (3 vs 4)");
    ckc_note(&d, loc, "declared here");
  }
  fclose(f);
  char *r = ckc_arena_strdup(&arena, mem);
  free(mem);
  return r;
}

START_TEST(diag_format_with_caret_range) {
  CkcLoc loc = {0, 2, 11, 2, 15};
  char *out = report("let a = 1;\nlet y = a @ b;\n", loc, 20, 1);
  ck_assert_str_eq(out,
                   "t.ckm:2:11: error: matmul: inner dimensions differ: f32[2,3] @ f32[4,5] (3 vs 4) [E0301]\n"
                   "  let y = a @ b;\n"
                   "            ^~~~~\n"
                   "t.ckm:2:11: note: declared here\n"
                   "  let y = a @ b;\n"
                   "            ^~~~~\n");
}
END_TEST

START_TEST(diag_limit_stops_reporting) {
  CkcLoc loc = {0, 1, 1, 1, 1};
  char *out = report("x\n", loc, 3, 10);
  int errors = 0;
  for (char *p = out; (p = strstr(p, ": error: ")); p++) errors++;
  ck_assert_int_eq(errors, 3);
  ck_assert_ptr_nonnull(strstr(out, "stopping after 3 errors"));
}
END_TEST

START_TEST(diag_control_bytes_are_escaped) {
  CkcLoc loc = {0, 1, 3, 1, 3};
  char src[] = "ab\x01\x7f z\n";
  char *out = report(src, loc, 20, 1);
  ck_assert_ptr_nonnull(strstr(out, "  ab?? z\n"));
}
END_TEST

START_TEST(diag_span_past_end_of_file) {
  CkcLoc loc = {0, 9, 4, 9, 8}; /* line beyond the text: no excerpt, no crash */
  char *out = report("one line\n", loc, 20, 1);
  ck_assert_ptr_nonnull(strstr(out, "t.ckm:9:4: error:"));
}
END_TEST

Suite *check_util_suite(void) {
  Suite *s = suite_create("util");
  TCase *a = tcase_create("arena");
  tcase_add_checked_fixture(a, setup, teardown);
  tcase_add_test(a, arena_alloc_is_zeroed_and_aligned);
  tcase_add_test(a, arena_large_blocks);
  tcase_add_test(a, arena_strings_and_vec);
  suite_add_tcase(s, a);
  TCase *d = tcase_create("diag");
  tcase_add_checked_fixture(d, setup, teardown);
  tcase_add_test(d, diag_format_with_caret_range);
  tcase_add_test(d, diag_limit_stops_reporting);
  tcase_add_test(d, diag_control_bytes_are_escaped);
  tcase_add_test(d, diag_span_past_end_of_file);
  suite_add_tcase(s, d);
  return s;
}
