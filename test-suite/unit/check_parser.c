/* test-suite/unit/check_parser.c - ckc_parse (grammar/ckm.y + frontend/parse.c):
 * every grammar construct into the AST with exact spans, operator precedence,
 * syntax error messages, recovery with several errors per run, and the limits
 * (error cap, nesting, garbage input). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frontend/ast.h"

typedef struct Parsed {
  AstFile *file;
  const char *ast;  /* ast_print output */
  char diag[8192];  /* everything printed to the diagnostic stream */
  int nerrors;
} Parsed;

static CkcArena arena;

static void setup(void) { ckc_arena_init(&arena); }
static void teardown(void) { ckc_arena_free(&arena); }

/* Parses len bytes as file "t.ckm" with an error cap of max_errors. */
static void parse_n(Parsed *r, const char *text, size_t len, int max_errors) {
  memset(r, 0, sizeof *r);
  char *dbuf = NULL;
  size_t dlen = 0;
  FILE *mem = open_memstream(&dbuf, &dlen);
  ck_assert_ptr_nonnull(mem);
  CkcDiag d;
  ckc_diag_init(&d, &arena, mem);
  d.max_errors = max_errors;
  int file = ckc_diag_add_source(&d, "t.ckm", text, len);
  r->file = ckc_parse(&arena, &d, file);
  fclose(mem);
  r->nerrors = d.nerrors;
  snprintf(r->diag, sizeof r->diag, "%s", dbuf ? dbuf : "");
  free(dbuf);
  CkcBuf b;
  ckc_buf_init(&b, &arena);
  ast_print(r->file, &b);
  r->ast = ckc_arena_strdup(&arena, ckc_buf_str(&b));
}

static void parse(Parsed *r, const char *text) { parse_n(r, text, strlen(text), 50); }

static void assert_no_errors(const Parsed *r) {
  ck_assert_msg(r->nerrors == 0, "unexpected errors:\n%s", r->diag);
}

static void assert_ast(const Parsed *r, const char *want) {
  assert_no_errors(r);
  ck_assert_msg(strcmp(r->ast, want) == 0, "AST:\n%s\nwant:\n%s", r->ast, want);
}

/* Compact prefix form of an expression for precedence tables. */
static void sexpr(CkcBuf *b, const AstExpr *e) {
  switch (e->kind) {
    case AST_EXPR_INT: ckc_buf_printf(b, "%lld", (long long)e->u.ival); break;
    case AST_EXPR_FLOAT: ckc_buf_printf(b, "%g", e->u.fval); break;
    case AST_EXPR_BOOL: ckc_buf_puts(b, e->u.ival ? "true" : "false"); break;
    case AST_EXPR_STRING: ckc_buf_printf(b, "\"%s\"", e->u.str); break;
    case AST_EXPR_NAME: ckc_buf_puts(b, e->u.name); break;
    case AST_EXPR_ELLIPSIS: ckc_buf_puts(b, "..."); break;
    case AST_EXPR_MEMBER:
      ckc_buf_puts(b, "(. ");
      sexpr(b, e->u.member.object);
      ckc_buf_printf(b, " %s)", e->u.member.field);
      break;
    case AST_EXPR_INDEX:
      ckc_buf_puts(b, "([] ");
      sexpr(b, e->u.index.object);
      ckc_buf_putc(b, ' ');
      sexpr(b, e->u.index.index);
      ckc_buf_putc(b, ')');
      break;
    case AST_EXPR_CALL:
      ckc_buf_puts(b, "(call ");
      sexpr(b, e->u.call.callee);
      for (const AstArg *a = e->u.call.args; a; a = a->next) {
        ckc_buf_putc(b, ' ');
        if (a->name) ckc_buf_printf(b, "%s=", a->name);
        sexpr(b, a->value);
      }
      ckc_buf_putc(b, ')');
      break;
    case AST_EXPR_BINARY:
      ckc_buf_printf(b, "(%s ", ast_binop_name(e->u.binary.op));
      sexpr(b, e->u.binary.lhs);
      ckc_buf_putc(b, ' ');
      sexpr(b, e->u.binary.rhs);
      ckc_buf_putc(b, ')');
      break;
    case AST_EXPR_UNARY:
      ckc_buf_printf(b, "(u%s ", ast_unop_name(e->u.unary.op));
      sexpr(b, e->u.unary.operand);
      ckc_buf_putc(b, ')');
      break;
    case AST_EXPR_TUPLE:
      ckc_buf_puts(b, "(tuple");
      for (int i = 0; i < e->u.tuple.n; i++) {
        ckc_buf_putc(b, ' ');
        sexpr(b, e->u.tuple.elems[i]);
      }
      ckc_buf_putc(b, ')');
      break;
  }
}

/* ---- declarations -------------------------------------------------------- */

START_TEST(test_imports_and_consts) {
  Parsed r;
  parse(&r, "import nn;\nimport nn.vision as vis;\nconst V = 2 * (3 + 4);\n");
  assert_ast(&r,
             "file t.ckm\n"
             "  import nn @1:1-1:10\n"
             "  import nn.vision as vis @2:1-2:24\n"
             "  const V @3:1-3:22\n"
             "    binary * @3:11-3:21\n"
             "      int 2 @3:11-3:11\n"
             "      binary + @3:15-3:21\n"
             "        int 3 @3:16-3:16\n"
             "        int 4 @3:20-3:20\n");
  const AstDecl *d = r.file->decls;
  ck_assert_str_eq(d->name, "nn");
  ck_assert_ptr_null(d->alias);
  ck_assert_str_eq(d->next->alias, "vis");
  ck_assert_int_eq(d->next->name_loc.col, 8);
  ck_assert_int_eq(d->next->name_loc.end_col, 16);
}
END_TEST

START_TEST(test_layer) {
  Parsed r;
  parse(&r,
        "layer Linear(in, out, bias = true) {\n"
        "  frozen param w: f32[out, in] = normal(0.0, 0.02);\n"
        "  param b: f32[out];\n"
        "  const D = in / 2;\n"
        "}\n");
  assert_ast(&r,
             "file t.ckm\n"
             "  layer Linear @1:1-5:1\n"
             "    arg in @1:14-1:15\n"
             "    arg out @1:18-1:20\n"
             "    arg bias @1:23-1:33\n"
             "      default: bool true @1:30-1:33\n"
             "    frozen param w @2:3-2:51\n"
             "      type f32[2] @2:19-2:30\n"
             "        name out @2:23-2:25\n"
             "        name in @2:28-2:29\n"
             "      init: call nargs=2 @2:34-2:50\n"
             "        callee: name normal @2:34-2:39\n"
             "        arg @2:41-2:43\n"
             "          float 0.0 @2:41-2:43\n"
             "        arg @2:46-2:49\n"
             "          float 0.02 @2:46-2:49\n"
             "    param b @3:3-3:20\n"
             "      type f32[1] @3:12-3:19\n"
             "        name out @3:16-3:18\n"
             "    const D @4:3-4:19\n"
             "      binary / @4:13-4:18\n"
             "        name in @4:13-4:14\n"
             "        int 2 @4:18-4:18\n");
  const AstDecl *d = r.file->decls;
  ck_assert_ptr_null(d->args->type);
  ck_assert_ptr_null(d->args->deflt);
  ck_assert(d->members->frozen);
  ck_assert(!d->members->next->frozen);
  ck_assert_ptr_null(d->members->next->init);
}
END_TEST

START_TEST(test_layer_without_args) {
  Parsed r;
  parse(&r, "layer Empty {}\nlayer E2() { }\nmodel M {}\n");
  assert_no_errors(&r);
  const AstDecl *d = r.file->decls;
  ck_assert_int_eq(d->kind, AST_DECL_LAYER);
  ck_assert_ptr_null(d->args);
  ck_assert_ptr_null(d->members);
  ck_assert_int_eq(d->next->kind, AST_DECL_LAYER);
  ck_assert_int_eq(d->next->next->kind, AST_DECL_MODEL);
  ck_assert_ptr_null(d->next->next->next);
}
END_TEST

START_TEST(test_model_fn_and_statements) {
  Parsed r;
  parse(&r,
        "model M {\n"
        "  blocks: nn.Block(C, H)[L];\n"
        "  ln: LayerNorm(C);\n"
        "  fn forward(idx: i32[B, T], s: f32) -> f32[..., C] {\n"
        "    let x: f32[B] = -a @ b + c;\n"
        "    x = f(x, k = (1,), t = (), u = (a, b,),);\n"
        "    for blk in blocks { x = blk(x); }\n"
        "    return x[0].y;\n"
        "    g(x);\n"
        "  }\n"
        "}\n");
  assert_ast(&r,
             "file t.ckm\n"
             "  model M @1:1-11:1\n"
             "    sublayer blocks @2:3-2:28\n"
             "      ctor: call nargs=2 @2:11-2:24\n"
             "        callee: member .Block @2:11-2:18\n"
             "          object: name nn @2:11-2:12\n"
             "        arg @2:20-2:20\n"
             "          name C @2:20-2:20\n"
             "        arg @2:23-2:23\n"
             "          name H @2:23-2:23\n"
             "      count: name L @2:26-2:26\n"
             "    sublayer ln @3:3-3:19\n"
             "      ctor: call nargs=1 @3:7-3:18\n"
             "        callee: name LayerNorm @3:7-3:15\n"
             "        arg @3:17-3:17\n"
             "          name C @3:17-3:17\n"
             "    fn forward @4:3-10:3\n"
             "      param idx @4:14-4:27\n"
             "        type i32[2] @4:19-4:27\n"
             "          name B @4:23-4:23\n"
             "          name T @4:26-4:26\n"
             "      param s @4:30-4:35\n"
             "        type f32 @4:33-4:35\n"
             "      ret: type f32[2] @4:41-4:51\n"
             "        ellipsis @4:45-4:47\n"
             "        name C @4:50-4:50\n"
             "      let x @5:5-5:31\n"
             "        type f32[1] @5:12-5:17\n"
             "          name B @5:16-5:16\n"
             "        binary + @5:21-5:30\n"
             "          binary @ @5:21-5:26\n"
             "            unary - @5:21-5:22\n"
             "              name a @5:22-5:22\n"
             "            name b @5:26-5:26\n"
             "          name c @5:30-5:30\n"
             "      assign x @6:5-6:45\n"
             "        call nargs=4 @6:9-6:44\n"
             "          callee: name f @6:9-6:9\n"
             "          arg @6:11-6:11\n"
             "            name x @6:11-6:11\n"
             "          arg k @6:14-6:21\n"
             "            tuple n=1 @6:18-6:21\n"
             "              int 1 @6:19-6:19\n"
             "          arg t @6:24-6:29\n"
             "            tuple n=0 @6:28-6:29\n"
             "          arg u @6:32-6:42\n"
             "            tuple n=2 @6:36-6:42\n"
             "              name a @6:37-6:37\n"
             "              name b @6:40-6:40\n"
             "      for blk @7:5-7:37\n"
             "        name blocks @7:16-7:21\n"
             "        assign x @7:25-7:35\n"
             "          call nargs=1 @7:29-7:34\n"
             "            callee: name blk @7:29-7:31\n"
             "            arg @7:33-7:33\n"
             "              name x @7:33-7:33\n"
             "      return @8:5-8:18\n"
             "        member .y @8:12-8:17\n"
             "          object: index @8:12-8:15\n"
             "            object: name x @8:12-8:12\n"
             "            index: int 0 @8:14-8:14\n"
             "      expr @9:5-9:9\n"
             "        call nargs=1 @9:5-9:8\n"
             "          callee: name g @9:5-9:5\n"
             "          arg @9:7-9:7\n"
             "            name x @9:7-9:7\n");
  const AstMember *m = r.file->decls->members;
  ck_assert_int_eq(m->kind, AST_MEMBER_LAYER);
  ck_assert_int_eq(m->ctor->kind, AST_EXPR_CALL);
  ck_assert_int_eq(m->count->kind, AST_EXPR_NAME);
  ck_assert_ptr_null(m->next->count);
  const AstMember *fn = m->next->next;
  ck_assert_int_eq(fn->kind, AST_MEMBER_FN);
  ck_assert_str_eq(fn->params->name, "idx");
  ck_assert_str_eq(fn->params->next->name, "s");
  ck_assert(!fn->params->next->type->is_tensor);
  ck_assert(fn->ret->is_tensor);
  ck_assert_int_eq(fn->ret->dims[0]->kind, AST_EXPR_ELLIPSIS);
}
END_TEST

START_TEST(test_train) {
  Parsed r;
  parse(&r,
        "train M {\n"
        "  data = tokens(\"data/t.u8\", batch = B);\n"
        "  steps = 2000;\n"
        "  optim = adamw(lr = 3e-4, betas = (0.9, 0.95));\n"
        "}\n");
  assert_no_errors(&r);
  const AstDecl *d = r.file->decls;
  ck_assert_int_eq(d->kind, AST_DECL_TRAIN);
  ck_assert_str_eq(d->name, "M");
  const AstTrainItem *it = d->items;
  ck_assert_str_eq(it->key, "data");
  ck_assert_str_eq(it->value->u.call.args->value->u.str, "data/t.u8");
  ck_assert_str_eq(it->value->u.call.args->next->name, "batch");
  ck_assert_str_eq(it->next->key, "steps");
  ck_assert_int_eq(it->next->value->u.ival, 2000);
  CkcBuf b;
  ckc_buf_init(&b, &arena);
  sexpr(&b, it->next->next->value);
  ck_assert_str_eq(ckc_buf_str(&b), "(call adamw lr=0.0003 betas=(tuple 0.9 0.95))");
  ck_assert_ptr_null(it->next->next->next);
}
END_TEST

/* Tensor types: scalar, empty dims, constants, variables, ellipsis, exprs. */
static const struct {
  const char *type;
  const char *want; /* dtype, then each dim */
  bool tensor;
} type_cases[] = {
    {"f32", "f32", false},
    {"bool[]", "bool", true},
    {"f32[B, T, C]", "f32 B T C", true},
    {"f32[..., C]", "f32 ... C", true},
    {"i32[2 * N, D / H]", "i32 (* 2 N) (/ D H)", true},
    {"u8[(1 + 2)]", "u8 (+ 1 2)", true},
};

START_TEST(test_types) {
  char src[256];
  snprintf(src, sizeof src, "model M { param w: %s; }", type_cases[_i].type);
  Parsed r;
  parse(&r, src);
  assert_no_errors(&r);
  const AstType *t = r.file->decls->members->type;
  ck_assert_int_eq(t->is_tensor, type_cases[_i].tensor);
  CkcBuf b;
  ckc_buf_init(&b, &arena);
  ckc_buf_puts(&b, t->dtype);
  for (int i = 0; i < t->ndims; i++) {
    ckc_buf_putc(&b, ' ');
    sexpr(&b, t->dims[i]);
  }
  ck_assert_str_eq(ckc_buf_str(&b), type_cases[_i].want);
  ck_assert_int_eq(t->loc.col, 20);
  ck_assert_int_eq(t->loc.end_col, 19 + (int)strlen(type_cases[_i].type));
}
END_TEST

/* ---- expressions: precedence and associativity ----------------------------- */

static const struct {
  const char *src;
  const char *want;
} prec_cases[] = {
    {"a + b * c", "(+ a (* b c))"},
    {"a * b + c", "(+ (* a b) c)"},
    {"a - b - c", "(- (- a b) c)"},
    {"a / b % c @ d", "(@ (% (/ a b) c) d)"},
    {"-a @ b", "(@ (u- a) b)"},
    {"- - a", "(u- (u- a))"},
    {"!a || b && c", "(|| (u! a) (&& b c))"},
    {"a || b || c", "(|| (|| a b) c)"},
    {"a == b < c", "(== a (< b c))"},
    {"a <= b != c >= d", "(!= (<= a b) (>= c d))"},
    {"a > b + 1", "(> a (+ b 1))"},
    {"+x * -y", "(* (u+ x) (u- y))"},
    {"a - -1", "(- a (u- 1))"},
    {"(a + b) * c", "(* (+ a b) c)"},
    {"f(x).y[2](z)", "(call ([] (. (call f x) y) 2) z)"},
    {"-f(x)[0]", "(u- ([] (call f x) 0))"},
    {"nn.Block(C, H)", "(call (. nn Block) C H)"},
    {"g(k = 1, 2,)", "(call g k=1 2)"},
    {"g()", "(call g)"},
    {"()", "(tuple)"},
    {"(a,)", "(tuple a)"},
    {"(a, b, c)", "(tuple a b c)"},
    {"(a, (b, c),)", "(tuple a (tuple b c))"},
    {"((a))", "a"},
    {"true && false", "(&& true false)"},
    {"\"s\" == \"t\"", "(== \"s\" \"t\")"},
    {"1.5e3 * 2", "(* 1500 2)"},
    {"in + 1", "(+ in 1)"},
};

START_TEST(test_precedence) {
  char src[256];
  snprintf(src, sizeof src, "const X = %s;", prec_cases[_i].src);
  Parsed r;
  parse(&r, src);
  assert_no_errors(&r);
  CkcBuf b;
  ckc_buf_init(&b, &arena);
  sexpr(&b, r.file->decls->value);
  ck_assert_msg(strcmp(ckc_buf_str(&b), prec_cases[_i].want) == 0, "%s: got %s, want %s",
                prec_cases[_i].src, ckc_buf_str(&b), prec_cases[_i].want);
  /* the expression's span is exactly its text */
  const AstExpr *e = r.file->decls->value;
  ck_assert_int_eq(e->loc.col, 11);
  ck_assert_int_eq(e->loc.end_col, 10 + (int)strlen(prec_cases[_i].src));
}
END_TEST

START_TEST(test_empty_file) {
  Parsed r;
  parse(&r, "");
  assert_no_errors(&r);
  ck_assert_ptr_nonnull(r.file);
  ck_assert_ptr_null(r.file->decls);
  parse(&r, "// nothing here\n/* at all */\n\n");
  assert_no_errors(&r);
  ck_assert_ptr_null(r.file->decls);
}
END_TEST

/* ---- syntax errors: the exact first message --------------------------------- */

static const struct {
  const char *src;
  const char *want; /* first diagnostic line */
} error_cases[] = {
    {"model M {\n  fn f() -> f32 {\n    let y = x * 2\n    let z = y;\n  }\n}\n",
     "t.ckm:4:5: error: expected ';' after expression, found 'let' [E0110]"},
    {"model M {\n  fn f() -> f32 {\n    return x;\n",
     "t.ckm:3:14: error: expected statement or '}' (to close '{' at line 2), found end of file "
     "[E0110]"},
    {"model M {\n  param w = normal(0.0, 1.0);\n}\n",
     "t.ckm:2:11: error: expected ':' after identifier 'w', found '=' [E0110]"},
    {"model M {\n  fn f(x: f32) f32 { return x; }\n}\n",
     "t.ckm:2:16: error: expected '->' after ')', found identifier 'f32' [E0110]"},
    {"const A = x -> y;", "t.ckm:1:13: error: expected ';' after expression, found '->' [E0110]"},
    {"model M { fn f(x: f32[B T]) -> f32 { return x; } }",
     "t.ckm:1:25: error: expected ',' or ']' after expression, found identifier 'T' [E0110]"},
    {"train M { steps = ; }", "t.ckm:1:19: error: expected expression after '=', found ';' [E0110]"},
    {"}", "t.ckm:1:1: error: expected declaration ('import', 'const', 'layer', 'model' or "
          "'train'), found '}' [E0110]"},
    {"model M { 42; }",
     "t.ckm:1:11: error: expected member ('param', 'fn', 'const' or NAME ':' layer) or '}', "
     "found number '42' [E0110]"},
    {"const A = f(1, 2;", "t.ckm:1:17: error: expected ',' or ')' after expression, found ';' [E0110]"},
    {"const A = (1, 2", "t.ckm:1:16: error: expected ',' or ')' after expression (to close '(' at "
                        "line 1), found end of file [E0110]"},
    {"import ;", "t.ckm:1:8: error: expected identifier after 'import', found ';' [E0110]"},
    {"model { }", "t.ckm:1:7: error: expected identifier after 'model', found '{' [E0110]"},
    {"const 3 = 4;", "t.ckm:1:7: error: expected identifier after 'const', found number '3' [E0110]"},
    {"model M { x: ; }", "t.ckm:1:14: error: expected expression after ':', found ';' [E0110]"},
    {"model M { fn f() -> f32 { let = 3; } }",
     "t.ckm:1:31: error: expected identifier after 'let', found '=' [E0110]"},
    {"model M { fn f() -> f32 { for x blocks { } } }",
     "t.ckm:1:33: error: expected 'in' after identifier 'x', found identifier 'blocks' [E0110]"},
    {"model M { frozen fn f() -> f32 { } }",
     "t.ckm:1:18: error: expected 'param' after 'frozen', found 'fn' [E0110]"},
    {"const A = \"s\" \"t\";",
     "t.ckm:1:15: error: expected ';' after expression, found string \"t\" [E0110]"},
};

START_TEST(test_syntax_error_message) {
  Parsed r;
  parse(&r, error_cases[_i].src);
  ck_assert_msg(r.nerrors >= 1, "no error for: %s", error_cases[_i].src);
  const char *nl = strchr(r.diag, '\n');
  size_t n = nl ? (size_t)(nl - r.diag) : strlen(r.diag);
  ck_assert_msg(strlen(error_cases[_i].want) == n && strncmp(r.diag, error_cases[_i].want, n) == 0,
                "got:\n%s\nwant:\n%s", r.diag, error_cases[_i].want);
}
END_TEST

/* An unclosed bracket at end of file names it and points at it. */
START_TEST(test_unclosed_note) {
  Parsed r;
  parse(&r, "model M {\n  fn f() -> f32 {\n    return g(x, 1 +\n");
  ck_assert_int_eq(r.nerrors, 1);
  ck_assert_ptr_nonnull(strstr(r.diag, "found end of file"));
  ck_assert_ptr_nonnull(strstr(r.diag, "t.ckm:3:13: note: '(' opened here is never closed\n"));
}
END_TEST

/* ---- recovery: several errors in one run, later declarations kept ---------- */

START_TEST(test_recovery_statements) {
  Parsed r;
  parse(&r,
        "model M {\n"
        "  fn f(x: f32) -> f32 {\n"
        "    let a = x +;\n"
        "    let b = (x;\n"
        "    let c = x * 2\n"
        "    let d = 1;\n"
        "    return d;\n"
        "  }\n"
        "  param ok: f32[2];\n"
        "}\n"
        "const AFTER = 1;\n");
  ck_assert_msg(r.nerrors == 3, "%d errors:\n%s", r.nerrors, r.diag);
  ck_assert_ptr_nonnull(strstr(r.diag, "t.ckm:3:16: error: expected expression after '+', found ';'"));
  ck_assert_ptr_nonnull(strstr(r.diag, "t.ckm:4:15: error: expected ',' or ')'"));
  ck_assert_ptr_nonnull(strstr(r.diag, "t.ckm:6:5: error: expected ';' after expression"));
  /* the good statements, the member after the fn and the const survive */
  const AstDecl *d = r.file->decls;
  ck_assert_int_eq(d->kind, AST_DECL_MODEL);
  const AstMember *fn = d->members;
  ck_assert_int_eq(fn->kind, AST_MEMBER_FN);
  ck_assert_str_eq(fn->body->name, "d");
  ck_assert_int_eq(fn->body->next->kind, AST_STMT_RETURN);
  ck_assert_str_eq(fn->next->name, "ok");
  ck_assert_str_eq(d->next->name, "AFTER");
}
END_TEST

START_TEST(test_recovery_members_and_decls) {
  Parsed r;
  parse(&r,
        "model M {\n"
        "  param w f32[3];\n"
        "  fn broken(x: f32[B T]) -> f32 { return x; }\n"
        "  const K = 2;\n"
        "}\n"
        "layer { param q: f32; }\n"
        "const A = 1 2;\n"
        "train M { steps = ; seed = 3; }\n"
        "const LAST = 5;\n");
  ck_assert_msg(r.nerrors == 5, "%d errors:\n%s", r.nerrors, r.diag);
  ck_assert_ptr_nonnull(strstr(r.diag, "t.ckm:2:11: error:"));
  ck_assert_ptr_nonnull(strstr(r.diag, "t.ckm:3:22: error:"));
  ck_assert_ptr_nonnull(strstr(r.diag, "t.ckm:6:7: error:"));
  ck_assert_ptr_nonnull(strstr(r.diag, "t.ckm:7:13: error:"));
  ck_assert_ptr_nonnull(strstr(r.diag, "t.ckm:8:19: error:"));
  const AstDecl *d = r.file->decls;
  ck_assert_int_eq(d->kind, AST_DECL_MODEL);
  ck_assert_str_eq(d->members->name, "K");
  ck_assert_int_eq(d->next->kind, AST_DECL_TRAIN);
  ck_assert_str_eq(d->next->items->key, "seed");
  ck_assert_str_eq(d->next->next->name, "LAST");
}
END_TEST

/* One mistake, one message: no syntax error right after skipped bytes, after
 * an unterminated string, or on the line of the previous syntax error. */
static const struct {
  const char *src;
  const char *id;
} single_error_cases[] = {
    {"const A = 1 $ 2;\nconst B = 1;", "E0101"},
    {"const A = a & b;", "E0101"},
    {"train M { data = f(\"x, 1);\n steps = 3; }", "E0102"},
    {"model M { fn f() -> f32 { return sum(x axis = 0); } }", "E0110"},
    {"const A = f(1 2 3 4 5 6 7 8);", "E0110"},
};

START_TEST(test_no_cascade) {
  Parsed r;
  parse(&r, single_error_cases[_i].src);
  ck_assert_msg(r.nerrors == 1, "%d errors:\n%s", r.nerrors, r.diag);
  char want[16];
  snprintf(want, sizeof want, "[%s]", single_error_cases[_i].id);
  ck_assert_ptr_nonnull(strstr(r.diag, want));
}
END_TEST

/* ---- limits: error cap, nesting, arbitrary bytes ------------------------------ */

START_TEST(test_error_cap) {
  CkcBuf src;
  ckc_buf_init(&src, &arena);
  for (int i = 0; i < 500; i++) ckc_buf_puts(&src, "const A = ;\n");
  Parsed r;
  parse_n(&r, ckc_buf_str(&src), src.len, 20);
  ck_assert_int_eq(r.nerrors, 20);
  ck_assert_ptr_nonnull(strstr(r.diag, "stopping after 20 errors"));
}
END_TEST

START_TEST(test_deep_nesting) {
  /* prefixes valid in an expression: exactly one error, the nesting one */
  static const char *const units[] = {"(", "-", "!", "-(", "f(", "+(", "a[", "(1, "};
  for (size_t u = 0; u < sizeof units / sizeof units[0]; u++) {
    CkcBuf src;
    ckc_buf_init(&src, &arena);
    ckc_buf_puts(&src, "const A = ");
    for (int i = 0; i < 100000; i++) ckc_buf_puts(&src, units[u]);
    ckc_buf_puts(&src, "1;\n");
    Parsed r;
    parse_n(&r, ckc_buf_str(&src), src.len, 20);
    ck_assert_msg(r.nerrors == 1, "unit %s: %d errors:\n%.500s", units[u], r.nerrors, r.diag);
    ck_assert_ptr_nonnull(strstr(r.diag, "nesting too deep (more than 256 levels) [E0111]"));
  }
  /* blocks and type brackets too */
  static const char *const wrapped[][3] = {
      {"model M { fn f() -> f32 { ", "for b in x { ", "}"},
      {"model M { param w: f32[", "a[", "]"},
  };
  for (size_t u = 0; u < 2; u++) {
    CkcBuf src;
    ckc_buf_init(&src, &arena);
    ckc_buf_puts(&src, wrapped[u][0]);
    for (int i = 0; i < 100000; i++) ckc_buf_puts(&src, wrapped[u][1]);
    ckc_buf_puts(&src, "1");
    for (int i = 0; i < 100000; i++) ckc_buf_puts(&src, wrapped[u][2]);
    ckc_buf_puts(&src, u == 1 ? "]; }" : "} }");
    Parsed r;
    parse_n(&r, ckc_buf_str(&src), src.len, 20);
    ck_assert_msg(r.nerrors == 1, "wrapped %zu: %d errors:\n%.500s", u, r.nerrors, r.diag);
    ck_assert_ptr_nonnull(strstr(r.diag, "[E0111]"));
  }
  /* 256 levels are fine and build the full tree */
  CkcBuf src;
  ckc_buf_init(&src, &arena);
  ckc_buf_puts(&src, "const A = ");
  for (int i = 0; i < 255; i++) ckc_buf_puts(&src, "(");
  ckc_buf_puts(&src, "-1");
  for (int i = 0; i < 255; i++) ckc_buf_puts(&src, ")");
  ckc_buf_puts(&src, ";");
  Parsed r;
  parse(&r, ckc_buf_str(&src));
  assert_no_errors(&r);
  ck_assert_int_eq(r.file->decls->value->kind, AST_EXPR_UNARY);
}
END_TEST

/* 1 MB on one line: a flat call with 200k arguments. */
START_TEST(test_long_line) {
  CkcBuf src;
  ckc_buf_init(&src, &arena);
  ckc_buf_puts(&src, "const A = f(x");
  for (int i = 0; i < 200000; i++) ckc_buf_puts(&src, ", x");
  ckc_buf_puts(&src, ");");
  Parsed r;
  parse(&r, ckc_buf_str(&src));
  assert_no_errors(&r);
  ck_assert_int_eq(r.file->decls->value->u.call.nargs, 200001);
  ck_assert_int_eq(r.file->decls->value->loc.end_col, (int)src.len - 1);
}
END_TEST

/* A binary chain is a tree as deep as it is long: 4096 operators per
 * expression at most; separators start a new count. */
START_TEST(test_binary_chain) {
  CkcBuf src;
  ckc_buf_init(&src, &arena);
  ckc_buf_puts(&src, "const A = x");
  for (int i = 0; i < 4096; i++) ckc_buf_puts(&src, i % 2 ? " - x" : " * x");
  ckc_buf_puts(&src, ";\nconst B = f(x");
  for (int i = 0; i < 3000; i++) ckc_buf_puts(&src, " + x, x");
  ckc_buf_puts(&src, ");");
  Parsed r;
  parse(&r, ckc_buf_str(&src));
  assert_no_errors(&r);
  ckc_buf_init(&src, &arena);
  ckc_buf_puts(&src, "const A = x");
  for (int i = 0; i < 100000; i++) ckc_buf_puts(&src, " + x");
  ckc_buf_puts(&src, ";");
  parse(&r, ckc_buf_str(&src));
  ck_assert_int_eq(r.nerrors, 1);
  ck_assert_ptr_nonnull(strstr(r.diag, "expression too long (more than 4096 binary operators) [E0113]"));
}
END_TEST

/* Arbitrary bytes: never a crash, always an AstFile, errors capped. */
START_TEST(test_garbage) {
  unsigned seed = 12345u + (unsigned)_i * 7919u;
  size_t len = 2000 + (size_t)_i * 997;
  char *buf = ckc_arena_alloc(&arena, len + 1);
  static const char alphabet[] = "model{}()[];:=,.-+!@*/\"/*xyz 0123e\n\t\0param fn let";
  size_t alen = sizeof alphabet - 1;
  for (size_t i = 0; i < len; i++) {
    seed = seed * 1103515245u + 12345u;
    unsigned v = (seed >> 16) & 0x7fff;
    buf[i] = (_i % 2) ? (char)(v & 0xff) : alphabet[v % alen];
  }
  Parsed r;
  parse_n(&r, buf, len, 20);
  ck_assert_ptr_nonnull(r.file);
  ck_assert_int_le(r.nerrors, 21);
}
END_TEST

Suite *check_parser_suite(void) {
  Suite *s = suite_create("parser");
  TCase *tc;

  tc = tcase_create("declarations");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_imports_and_consts);
  tcase_add_test(tc, test_layer);
  tcase_add_test(tc, test_layer_without_args);
  tcase_add_test(tc, test_model_fn_and_statements);
  tcase_add_test(tc, test_train);
  tcase_add_test(tc, test_empty_file);
  suite_add_tcase(s, tc);

  tc = tcase_create("types");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_loop_test(tc, test_types, 0, (int)(sizeof type_cases / sizeof type_cases[0]));
  suite_add_tcase(s, tc);

  tc = tcase_create("expressions");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_loop_test(tc, test_precedence, 0, (int)(sizeof prec_cases / sizeof prec_cases[0]));
  suite_add_tcase(s, tc);

  tc = tcase_create("errors");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_loop_test(tc, test_syntax_error_message, 0,
                      (int)(sizeof error_cases / sizeof error_cases[0]));
  tcase_add_test(tc, test_unclosed_note);
  suite_add_tcase(s, tc);

  tc = tcase_create("recovery");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_recovery_statements);
  tcase_add_test(tc, test_recovery_members_and_decls);
  tcase_add_loop_test(tc, test_no_cascade, 0,
                      (int)(sizeof single_error_cases / sizeof single_error_cases[0]));
  suite_add_tcase(s, tc);

  tc = tcase_create("limits");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_error_cap);
  tcase_add_test(tc, test_deep_nesting);
  tcase_add_test(tc, test_long_line);
  tcase_add_test(tc, test_binary_chain);
  tcase_add_loop_test(tc, test_garbage, 0, 16);
  suite_add_tcase(s, tc);
  return s;
}
