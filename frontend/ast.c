/* frontend/ast.c - AST node constructors (used by grammar/ckm.y) and the
 * deterministic debug printer ast_print (one node per line, two-space indent,
 * every node with its span @line:col-line:col) used by the parser tests. */
#include "frontend/ast.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* ---- constructors: zeroed arena nodes, kind and span set ---------------- */

AstExpr *ast_expr_new(CkcArena *a, AstExprKind kind, CkcLoc loc) {
  AstExpr *e = CKC_NEW(a, AstExpr);
  e->kind = kind;
  e->loc = loc;
  return e;
}

AstExpr *ast_binary_new(CkcArena *a, AstBinOp op, AstExpr *lhs, AstExpr *rhs, CkcLoc loc) {
  AstExpr *e = ast_expr_new(a, AST_EXPR_BINARY, loc);
  e->u.binary.op = op;
  e->u.binary.lhs = lhs;
  e->u.binary.rhs = rhs;
  return e;
}

AstExpr *ast_unary_new(CkcArena *a, AstUnOp op, AstExpr *operand, CkcLoc loc) {
  AstExpr *e = ast_expr_new(a, AST_EXPR_UNARY, loc);
  e->u.unary.op = op;
  e->u.unary.operand = operand;
  return e;
}

AstType *ast_type_new(CkcArena *a, const char *dtype, CkcLoc loc) {
  AstType *t = CKC_NEW(a, AstType);
  t->dtype = dtype;
  t->loc = loc;
  return t;
}

AstStmt *ast_stmt_new(CkcArena *a, AstStmtKind kind, CkcLoc loc) {
  AstStmt *s = CKC_NEW(a, AstStmt);
  s->kind = kind;
  s->loc = loc;
  return s;
}

AstMember *ast_member_new(CkcArena *a, AstMemberKind kind, CkcLoc loc) {
  AstMember *m = CKC_NEW(a, AstMember);
  m->kind = kind;
  m->loc = loc;
  return m;
}

AstDecl *ast_decl_new(CkcArena *a, AstDeclKind kind, CkcLoc loc) {
  AstDecl *d = CKC_NEW(a, AstDecl);
  d->kind = kind;
  d->loc = loc;
  return d;
}

AstField *ast_field_new(CkcArena *a, const char *name, CkcLoc loc) {
  AstField *f = CKC_NEW(a, AstField);
  f->name = name;
  f->loc = loc;
  return f;
}

AstArg *ast_arg_new(CkcArena *a, const char *name, AstExpr *value, CkcLoc loc) {
  AstArg *g = CKC_NEW(a, AstArg);
  g->name = name;
  g->value = value;
  g->loc = loc;
  return g;
}

AstTrainItem *ast_item_new(CkcArena *a, const char *key, AstExpr *value, CkcLoc loc) {
  AstTrainItem *it = CKC_NEW(a, AstTrainItem);
  it->key = key;
  it->value = value;
  it->loc = loc;
  return it;
}

/* Operators print as written in source, so messages can quote them. */
const char *ast_binop_name(AstBinOp op) {
  static const char *const names[] = {"+", "-", "*", "/", "%", "@", "<",
                                      "<=", ">", ">=", "==", "!=", "&&", "||"};
  return (unsigned)op < sizeof names / sizeof names[0] ? names[op] : "?";
}

const char *ast_unop_name(AstUnOp op) {
  switch (op) {
    case AST_NEG: return "-";
    case AST_PLUS: return "+";
    case AST_NOT: return "!";
  }
  return "?";
}

/* ---- printer ------------------------------------------------------------- */

static void pr_indent(CkcBuf *b, int depth) {
  for (int i = 0; i < depth; i++) ckc_buf_puts(b, "  ");
}

static void pr_loc(CkcBuf *b, CkcLoc l) {
  ckc_buf_printf(b, " @%d:%d-%d:%d\n", l.line, l.col, l.end_line, l.end_col);
}

/* Strings print with their escapes restored so each node stays on one line. */
static void pr_quoted(CkcBuf *b, const char *s) {
  ckc_buf_putc(b, '"');
  for (const char *p = s; *p; p++) {
    switch (*p) {
      case '"': ckc_buf_puts(b, "\\\""); break;
      case '\\': ckc_buf_puts(b, "\\\\"); break;
      case '\n': ckc_buf_puts(b, "\\n"); break;
      case '\t': ckc_buf_puts(b, "\\t"); break;
      default: ckc_buf_putc(b, *p); break;
    }
  }
  ckc_buf_putc(b, '"');
}

static void pr_expr(CkcBuf *b, const AstExpr *e, int depth, const char *role);
static void pr_type(CkcBuf *b, const AstType *t, int depth, const char *role);

/* A child line may carry its role ("lhs: ", "init: ") so the shape of the
 * tree reads without knowing the node layout. */
static void pr_head(CkcBuf *b, int depth, const char *role) {
  pr_indent(b, depth);
  if (role) ckc_buf_printf(b, "%s: ", role);
}

static void pr_expr(CkcBuf *b, const AstExpr *e, int depth, const char *role) {
  pr_head(b, depth, role);
  if (!e) {
    ckc_buf_puts(b, "(null)\n");
    return;
  }
  switch (e->kind) {
    case AST_EXPR_INT: ckc_buf_printf(b, "int %" PRId64, e->u.ival); break;
    case AST_EXPR_FLOAT: {
      /* %.17g round-trips; a trailing .0 keeps 2.0 apart from the int 2 */
      char num[40];
      snprintf(num, sizeof num, "%.17g", e->u.fval);
      ckc_buf_printf(b, "float %s%s", num, strpbrk(num, ".eni") ? "" : ".0");
      break;
    }
    case AST_EXPR_BOOL: ckc_buf_puts(b, e->u.ival ? "bool true" : "bool false"); break;
    case AST_EXPR_STRING:
      ckc_buf_puts(b, "string ");
      pr_quoted(b, e->u.str);
      break;
    case AST_EXPR_NAME: ckc_buf_printf(b, "name %s", e->u.name); break;
    case AST_EXPR_MEMBER: ckc_buf_printf(b, "member .%s", e->u.member.field); break;
    case AST_EXPR_CALL: ckc_buf_printf(b, "call nargs=%d", e->u.call.nargs); break;
    case AST_EXPR_INDEX: ckc_buf_puts(b, "index"); break;
    case AST_EXPR_BINARY: ckc_buf_printf(b, "binary %s", ast_binop_name(e->u.binary.op)); break;
    case AST_EXPR_UNARY: ckc_buf_printf(b, "unary %s", ast_unop_name(e->u.unary.op)); break;
    case AST_EXPR_TUPLE: ckc_buf_printf(b, "tuple n=%d", e->u.tuple.n); break;
    case AST_EXPR_ELLIPSIS: ckc_buf_puts(b, "ellipsis"); break;
  }
  pr_loc(b, e->loc);
  switch (e->kind) {
    case AST_EXPR_MEMBER: pr_expr(b, e->u.member.object, depth + 1, "object"); break;
    case AST_EXPR_CALL:
      pr_expr(b, e->u.call.callee, depth + 1, "callee");
      for (const AstArg *a = e->u.call.args; a; a = a->next) {
        pr_indent(b, depth + 1);
        if (a->name) ckc_buf_printf(b, "arg %s", a->name);
        else ckc_buf_puts(b, "arg");
        pr_loc(b, a->loc);
        pr_expr(b, a->value, depth + 2, NULL);
      }
      break;
    case AST_EXPR_INDEX:
      pr_expr(b, e->u.index.object, depth + 1, "object");
      pr_expr(b, e->u.index.index, depth + 1, "index");
      break;
    case AST_EXPR_BINARY:
      pr_expr(b, e->u.binary.lhs, depth + 1, NULL);
      pr_expr(b, e->u.binary.rhs, depth + 1, NULL);
      break;
    case AST_EXPR_UNARY: pr_expr(b, e->u.unary.operand, depth + 1, NULL); break;
    case AST_EXPR_TUPLE:
      for (int i = 0; i < e->u.tuple.n; i++) pr_expr(b, e->u.tuple.elems[i], depth + 1, NULL);
      break;
    default: break;
  }
}

static void pr_type(CkcBuf *b, const AstType *t, int depth, const char *role) {
  pr_head(b, depth, role);
  if (!t) {
    ckc_buf_puts(b, "(null)\n");
    return;
  }
  if (t->is_tensor) ckc_buf_printf(b, "type %s[%d]", t->dtype, t->ndims);
  else ckc_buf_printf(b, "type %s", t->dtype);
  pr_loc(b, t->loc);
  for (int i = 0; i < t->ndims; i++) pr_expr(b, t->dims[i], depth + 1, NULL);
}

static void pr_fields(CkcBuf *b, const AstField *f, int depth, const char *what) {
  for (; f; f = f->next) {
    pr_indent(b, depth);
    ckc_buf_printf(b, "%s %s", what, f->name);
    pr_loc(b, f->loc);
    if (f->type) pr_type(b, f->type, depth + 1, NULL);
    if (f->deflt) pr_expr(b, f->deflt, depth + 1, "default");
  }
}

static void pr_stmts(CkcBuf *b, const AstStmt *s, int depth) {
  static const char *const kinds[] = {"let", "assign", "return", "for", "expr"};
  for (; s; s = s->next) {
    pr_indent(b, depth);
    ckc_buf_puts(b, kinds[s->kind]);
    if (s->name) ckc_buf_printf(b, " %s", s->name);
    pr_loc(b, s->loc);
    if (s->type) pr_type(b, s->type, depth + 1, NULL);
    pr_expr(b, s->expr, depth + 1, NULL);
    if (s->kind == AST_STMT_FOR) pr_stmts(b, s->body, depth + 1);
  }
}

static void pr_members(CkcBuf *b, const AstMember *m, int depth) {
  for (; m; m = m->next) {
    pr_indent(b, depth);
    switch (m->kind) {
      case AST_MEMBER_PARAM:
        ckc_buf_printf(b, "%sparam %s", m->frozen ? "frozen " : "", m->name);
        pr_loc(b, m->loc);
        pr_type(b, m->type, depth + 1, NULL);
        if (m->init) pr_expr(b, m->init, depth + 1, "init");
        break;
      case AST_MEMBER_LAYER:
        ckc_buf_printf(b, "sublayer %s", m->name);
        pr_loc(b, m->loc);
        pr_expr(b, m->ctor, depth + 1, "ctor");
        if (m->count) pr_expr(b, m->count, depth + 1, "count");
        break;
      case AST_MEMBER_CONST:
        ckc_buf_printf(b, "const %s", m->name);
        pr_loc(b, m->loc);
        pr_expr(b, m->value, depth + 1, NULL);
        break;
      case AST_MEMBER_FN:
        ckc_buf_printf(b, "fn %s", m->name);
        pr_loc(b, m->loc);
        pr_fields(b, m->params, depth + 1, "param");
        pr_type(b, m->ret, depth + 1, "ret");
        pr_stmts(b, m->body, depth + 1);
        break;
    }
  }
}

/* The whole file: `file PATH`, then each declaration and its subtree. */
void ast_print(const AstFile *f, CkcBuf *out) {
  if (!f) {
    ckc_buf_puts(out, "(null file)\n");
    return;
  }
  ckc_buf_printf(out, "file %s\n", f->path ? f->path : "?");
  for (const AstDecl *d = f->decls; d; d = d->next) {
    pr_indent(out, 1);
    switch (d->kind) {
      case AST_DECL_IMPORT:
        ckc_buf_printf(out, "import %s", d->name);
        if (d->alias) ckc_buf_printf(out, " as %s", d->alias);
        pr_loc(out, d->loc);
        break;
      case AST_DECL_CONST:
        ckc_buf_printf(out, "const %s", d->name);
        pr_loc(out, d->loc);
        pr_expr(out, d->value, 2, NULL);
        break;
      case AST_DECL_LAYER:
        ckc_buf_printf(out, "layer %s", d->name);
        pr_loc(out, d->loc);
        pr_fields(out, d->args, 2, "arg");
        pr_members(out, d->members, 2);
        break;
      case AST_DECL_MODEL:
        ckc_buf_printf(out, "model %s", d->name);
        pr_loc(out, d->loc);
        pr_members(out, d->members, 2);
        break;
      case AST_DECL_TRAIN:
        ckc_buf_printf(out, "train %s", d->name);
        pr_loc(out, d->loc);
        for (const AstTrainItem *it = d->items; it; it = it->next) {
          pr_indent(out, 2);
          ckc_buf_printf(out, "item %s", it->key);
          pr_loc(out, it->loc);
          pr_expr(out, it->value, 3, NULL);
        }
        break;
    }
  }
}
