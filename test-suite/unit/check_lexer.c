/* test-suite/unit/check_lexer.c - the .ckm scanner (grammar/ckm.l) on its own:
 * token kinds, values and spans, comments, lexical errors with their ids, and
 * the nesting limit. Drives ckm_lex directly with a fresh context per case. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frontend/ast.h"
#include "grammar/ckm.tab.h"
#include "grammar/lex.yy.h"

#define MAX_TOKS 64

typedef struct Lexed {
  int ntok;
  int kind[MAX_TOKS];
  CkcLoc loc[MAX_TOKS];
  YYSTYPE val[MAX_TOKS];
  int ntotal; /* all tokens scanned, EOF included */
  int nerrors;
  char diag[4096];
} Lexed;

static CkcArena arena;

static void setup(void) { ckc_arena_init(&arena); }
static void teardown(void) { ckc_arena_free(&arena); }

/* Scans len bytes of text to end of file (at most MAX_TOKS tokens), keeping
 * every token and the diagnostics printed on the way. */
static void lex_n(Lexed *out, const char *text, size_t len) {
  memset(out, 0, sizeof *out);
  char *dbuf = NULL;
  size_t dlen = 0;
  FILE *mem = open_memstream(&dbuf, &dlen);
  ck_assert_ptr_nonnull(mem);
  CkcDiag d;
  ckc_diag_init(&d, &arena, mem);
  d.max_errors = 1000;
  int file = ckc_diag_add_source(&d, "t.ckm", text, len);
  CkmParseCtx *pc = CKC_NEW(&arena, CkmParseCtx);
  pc->arena = &arena;
  pc->diag = &d;
  pc->file = file;
  pc->line = pc->col = 1;
  yyscan_t sc;
  ck_assert_int_eq(yylex_init(&sc), 0);
  YY_BUFFER_STATE buf = yy_scan_bytes(text, (int)len, sc);
  for (;;) {
    YYSTYPE v;
    CkcLoc l;
    memset(&v, 0, sizeof v);
    int k = ckm_lex(&v, &l, sc, pc);
    out->ntotal++;
    if (out->ntok < MAX_TOKS) {
      out->kind[out->ntok] = k;
      out->loc[out->ntok] = l;
      out->val[out->ntok] = v;
      out->ntok++;
    }
    if (k == YYEOF) break;
  }
  yy_delete_buffer(buf, sc);
  yylex_destroy(sc);
  fclose(mem);
  out->nerrors = d.nerrors;
  snprintf(out->diag, sizeof out->diag, "%s", dbuf ? dbuf : "");
  free(dbuf);
}

static void lex(Lexed *out, const char *text) { lex_n(out, text, strlen(text)); }

static void assert_loc(CkcLoc l, int line, int col, int end_line, int end_col) {
  ck_assert_msg(l.line == line && l.col == col && l.end_line == end_line && l.end_col == end_col,
                "loc %d:%d-%d:%d, want %d:%d-%d:%d", l.line, l.col, l.end_line, l.end_col, line,
                col, end_line, end_col);
}

/* ---- keywords and punctuation: one token each, spanning the whole text ---- */

static const struct {
  const char *text;
  int kind;
} single_tokens[] = {
    {"import", IMPORT}, {"as", AS},         {"const", CONST},   {"layer", LAYER},
    {"model", MODEL},   {"train", TRAIN},   {"param", PARAM},   {"frozen", FROZEN},
    {"fn", FN},         {"let", LET},       {"for", FOR},       {"in", IN},
    {"return", RETURN}, {"true", TRUE},     {"false", FALSE},   {"->", ARROW},
    {"...", ELLIPSIS},  {"==", EQ},         {"!=", NE},         {"<=", LE},
    {">=", GE},         {"&&", ANDAND},     {"||", OROR},       {"(", '('},
    {")", ')'},         {"[", '['},         {"]", ']'},         {"{", '{'},
    {"}", '}'},         {",", ','},         {";", ';'},         {":", ':'},
    {".", '.'},         {"=", '='},         {"+", '+'},         {"-", '-'},
    {"*", '*'},         {"/", '/'},         {"%", '%'},         {"@", '@'},
    {"<", '<'},         {">", '>'},         {"!", '!'},         {"importx", IDENT},
    {"f32", IDENT},     {"_x9", IDENT},     {"in_", IDENT},     {"fnord", IDENT},
};

START_TEST(test_single_token) {
  Lexed r;
  lex(&r, single_tokens[_i].text);
  ck_assert_int_eq(r.nerrors, 0);
  ck_assert_int_eq(r.ntok, 2);
  ck_assert_msg(r.kind[0] == single_tokens[_i].kind, "'%s': kind %d, want %d",
                single_tokens[_i].text, r.kind[0], single_tokens[_i].kind);
  assert_loc(r.loc[0], 1, 1, 1, (int)strlen(single_tokens[_i].text));
  ck_assert_int_eq(r.kind[1], YYEOF);
  if (r.kind[0] == IDENT) ck_assert_str_eq(r.val[0].str, single_tokens[_i].text);
}
END_TEST

/* Longest match: `a->b` is a, ->, b; `x..y` is two dots; `!==` is != =. */
START_TEST(test_longest_match) {
  Lexed r;
  lex(&r, "a->b x..y !== <=>");
  int want[] = {IDENT, ARROW, IDENT, IDENT, '.', '.', IDENT, NE, '=', LE, '>', YYEOF};
  ck_assert_int_eq(r.ntok, (int)(sizeof want / sizeof want[0]));
  for (int i = 0; i < r.ntok; i++) ck_assert_int_eq(r.kind[i], want[i]);
  ck_assert_int_eq(r.nerrors, 0);
}
END_TEST

/* ---- numbers ----------------------------------------------------------- */

static const struct {
  const char *text;
  int64_t value;
} int_cases[] = {
    {"0", 0}, {"42", 42}, {"007", 7}, {"9223372036854775807", INT64_MAX},
};

START_TEST(test_int_literal) {
  Lexed r;
  lex(&r, int_cases[_i].text);
  ck_assert_int_eq(r.nerrors, 0);
  ck_assert_int_eq(r.kind[0], INT);
  ck_assert_int_eq(r.val[0].ival, int_cases[_i].value);
}
END_TEST

static const struct {
  const char *text;
  double value;
} float_cases[] = {
    {"1.0", 1.0}, {"1e-5", 1e-5}, {"3e-4", 3e-4}, {"1.5e3", 1.5e3},
    {"2E+2", 200.0}, {"0.02", 0.02}, {"1e308", 1e308},
};

START_TEST(test_float_literal) {
  Lexed r;
  lex(&r, float_cases[_i].text);
  ck_assert_int_eq(r.nerrors, 0);
  ck_assert_int_eq(r.kind[0], FLOAT);
  ck_assert_double_eq(r.val[0].fval, float_cases[_i].value);
  assert_loc(r.loc[0], 1, 1, 1, (int)strlen(float_cases[_i].text));
}
END_TEST

/* ---- strings ------------------------------------------------------------ */

START_TEST(test_string_escapes) {
  Lexed r;
  lex(&r, "\"a\\\"b\\\\c\\nd\\te\" \"data/x.u8\" \"\"");
  ck_assert_int_eq(r.nerrors, 0);
  ck_assert_int_eq(r.kind[0], STRING);
  ck_assert_str_eq(r.val[0].str, "a\"b\\c\nd\te");
  assert_loc(r.loc[0], 1, 1, 1, 15);
  ck_assert_str_eq(r.val[1].str, "data/x.u8");
  ck_assert_str_eq(r.val[2].str, "");
  ck_assert_int_eq(r.kind[3], YYEOF);
}
END_TEST

/* ---- spans, comments, white space ---------------------------------------- */

START_TEST(test_spans_and_comments) {
  Lexed r;
  lex(&r, "a\n  bc /* x\n y */ d // tail\n\tee");
  ck_assert_int_eq(r.nerrors, 0);
  ck_assert_int_eq(r.ntok, 5);
  assert_loc(r.loc[0], 1, 1, 1, 1);
  assert_loc(r.loc[1], 2, 3, 2, 4);
  assert_loc(r.loc[2], 3, 7, 3, 7);
  assert_loc(r.loc[3], 4, 2, 4, 3); /* a tab is one column */
  ck_assert_int_eq(r.kind[4], YYEOF);
  assert_loc(r.loc[4], 4, 4, 4, 4); /* end of file: just after the last token */
}
END_TEST

START_TEST(test_empty_input) {
  Lexed r;
  lex(&r, "");
  ck_assert_int_eq(r.ntok, 1);
  ck_assert_int_eq(r.kind[0], YYEOF);
  assert_loc(r.loc[0], 1, 1, 1, 1);
  lex(&r, "  // only a comment\n/* and another */\n");
  ck_assert_int_eq(r.ntok, 1);
  ck_assert_int_eq(r.nerrors, 0);
}
END_TEST

/* ---- lexical errors: id, message, span, and scanning goes on --------------- */

static const struct {
  const char *text;
  size_t len; /* 0: strlen */
  const char *id;
  const char *msg;
  int col, end_col;
} error_cases[] = {
    {"x = 99999999999999999999;", 0, "E0105", "integer literal too large", 5, 24},
    {"x = 9223372036854775808;", 0, "E0105", "integer literal too large", 5, 23},
    {"x = 1e400;", 0, "E0106", "float literal '1e400' is out of range", 5, 9},
    {"x = 1.5e999;", 0, "E0106", "out of range", 5, 11},
    {"x = 1e;", 0, "E0107", "malformed number '1e'", 5, 6},
    {"x = 12abc;", 0, "E0107", "malformed number '12abc'", 5, 9},
    {"x = \"abc", 0, "E0102", "unterminated string literal", 5, 8},
    {"x = \"abc\ny", 0, "E0102", "unterminated string literal", 5, 8},
    {"x = \"a\\qb\";", 0, "E0103", "unknown escape sequence '\\q'", 7, 8},
    {"x = 1; /* open\n\n", 0, "E0104", "'/*' at line 1 has no matching '*/'", 8, 9},
    {"x \0 y", 5, "E0101", "invalid character '\\x00'", 3, 3},
    {"x $$$ y", 0, "E0101", "invalid characters '$$$'", 3, 5},
    {"x # y", 0, "E0101", "invalid character '#'", 3, 3},
    {"a & b", 0, "E0101", "invalid character '&' (did you mean '&&'?)", 3, 3},
    {"a | b", 0, "E0101", "invalid character '|' (did you mean '||'?)", 3, 3},
    {"x \xcf\x80 y", 0, "E0101", "invalid characters '\\xcf\\x80'", 3, 4},
    {"x = \"a\tb\x01\";", 0, "E0101", "invalid character '\\x01' in string literal", 9, 9},
};

START_TEST(test_lex_error) {
  Lexed r;
  size_t len = error_cases[_i].len ? error_cases[_i].len : strlen(error_cases[_i].text);
  lex_n(&r, error_cases[_i].text, len);
  ck_assert_msg(r.nerrors == 1, "case %d: %d errors:\n%s", _i, r.nerrors, r.diag);
  char want[256];
  snprintf(want, sizeof want, "t.ckm:1:%d: error: ", error_cases[_i].col);
  ck_assert_msg(strstr(r.diag, want) != NULL, "case %d: want '%s' in:\n%s", _i, want, r.diag);
  ck_assert_msg(strstr(r.diag, error_cases[_i].msg) != NULL, "case %d: want '%s' in:\n%s", _i,
                error_cases[_i].msg, r.diag);
  snprintf(want, sizeof want, "[%s]", error_cases[_i].id);
  ck_assert_msg(strstr(r.diag, want) != NULL, "case %d: want id %s in:\n%s", _i, want, r.diag);
  /* the caret line underlines exactly the span */
  int width = error_cases[_i].end_col - error_cases[_i].col + 1;
  char caret[64] = "^";
  for (int k = 1; k < width && k < 60; k++) strcat(caret, "~");
  strcat(caret, "\n");
  ck_assert_msg(strstr(r.diag, caret) != NULL, "case %d: want caret '%s' in:\n%s", _i, caret,
                r.diag);
  ck_assert_int_eq(r.kind[r.ntok - 1], YYEOF);
}
END_TEST

/* After a bad byte the scanner goes on: every good token still arrives. */
START_TEST(test_error_continues) {
  Lexed r;
  lex_n(&r, "a $ b \0\0 c ` d", 14);
  ck_assert_int_eq(r.nerrors, 3);
  int want[] = {IDENT, IDENT, IDENT, IDENT, YYEOF};
  ck_assert_int_eq(r.ntok, 5);
  for (int i = 0; i < 5; i++) ck_assert_int_eq(r.kind[i], want[i]);
  ck_assert_str_eq(r.val[3].str, "d");
  assert_loc(r.loc[3], 1, 14, 1, 14);
}
END_TEST

/* ---- nesting limit ---------------------------------------------------------- */

static char *repeat(const char *prefix, const char *unit, int n, const char *suffix) {
  size_t pl = strlen(prefix), ul = strlen(unit), sl = strlen(suffix);
  char *s = ckc_arena_alloc(&arena, pl + ul * (size_t)n + sl + 1);
  memcpy(s, prefix, pl);
  for (int i = 0; i < n; i++) memcpy(s + pl + ul * (size_t)i, unit, ul);
  memcpy(s + pl + ul * (size_t)n, suffix, sl + 1);
  return s;
}

START_TEST(test_nesting_limit) {
  Lexed r;
  lex(&r, repeat("", "(", 256, "x"));
  ck_assert_int_eq(r.nerrors, 0);
  lex(&r, repeat("", "(", 257, "x"));
  ck_assert_int_eq(r.nerrors, 1);
  ck_assert_ptr_nonnull(strstr(r.diag, "t.ckm:1:257: error: nesting too deep (more than 256 levels) [E0111]"));
  lex(&r, repeat("", "-", 300, "x"));
  ck_assert_int_eq(r.nerrors, 1);
  ck_assert_ptr_nonnull(strstr(r.diag, "[E0111]"));
  lex(&r, repeat("", "-(", 129, "x"));
  ck_assert_int_eq(r.nerrors, 1);
  /* the limit ends the input at the token that crossed it */
  ck_assert_int_eq(r.ntotal, 2 * 128 + 1);
}
END_TEST

/* Binary minus, closed brackets and finished operands do not accumulate. */
START_TEST(test_nesting_resets) {
  Lexed r;
  lex(&r, repeat("", "x - -y; ", 400, ""));
  ck_assert_int_eq(r.nerrors, 0);
  lex(&r, repeat("", "(!x) ", 400, ""));
  ck_assert_int_eq(r.nerrors, 0);
  lex(&r, repeat("", "{ - [ ! x ] } ", 400, ""));
  ck_assert_int_eq(r.nerrors, 0);
}
END_TEST

START_TEST(test_nesting_100k) {
  Lexed r;
  lex(&r, repeat("", "[", 100000, ""));
  ck_assert_int_eq(r.nerrors, 1);
  ck_assert_ptr_nonnull(strstr(r.diag, "nesting too deep"));
}
END_TEST

Suite *check_lexer_suite(void) {
  Suite *s = suite_create("lexer");
  TCase *tc;

  tc = tcase_create("tokens");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_loop_test(tc, test_single_token, 0,
                      (int)(sizeof single_tokens / sizeof single_tokens[0]));
  tcase_add_test(tc, test_longest_match);
  suite_add_tcase(s, tc);

  tc = tcase_create("numbers");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_loop_test(tc, test_int_literal, 0, (int)(sizeof int_cases / sizeof int_cases[0]));
  tcase_add_loop_test(tc, test_float_literal, 0,
                      (int)(sizeof float_cases / sizeof float_cases[0]));
  suite_add_tcase(s, tc);

  tc = tcase_create("strings");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_string_escapes);
  suite_add_tcase(s, tc);

  tc = tcase_create("spans");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_spans_and_comments);
  tcase_add_test(tc, test_empty_input);
  suite_add_tcase(s, tc);

  tc = tcase_create("errors");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_loop_test(tc, test_lex_error, 0, (int)(sizeof error_cases / sizeof error_cases[0]));
  tcase_add_test(tc, test_error_continues);
  suite_add_tcase(s, tc);

  tc = tcase_create("nesting");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_nesting_limit);
  tcase_add_test(tc, test_nesting_resets);
  tcase_add_test(tc, test_nesting_100k);
  suite_add_tcase(s, tc);
  return s;
}
