/* frontend/consts.c - compile-time constants: int (i64) and float (f64)
 * arithmetic with overflow checks, exact integer division, the const
 * builtins sqrt/min/max, lazy evaluation of top-level and member consts with
 * cycle detection, and -D NAME=VALUE overrides of the main file's consts.
 *
 * Integer arithmetic never wraps or truncates silently: overflow, inexact
 * division and division by zero are errors (E04xx) at the operator. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "frontend/sema_int.h"

static const char *binop_str(AstBinOp op) {
  static const char *const s[] = {"+", "-", "*", "/", "%", "@", "<", "<=", ">", ">=", "==", "!=",
                                  "&&", "||"};
  return (unsigned)op < sizeof s / sizeof s[0] ? s[op] : "?";
}

static double as_f64(const SemaVal *v) { return v->kind == SV_FLOAT ? v->f : (double)v->i; }

/* A float result must stay finite: inf/nan in a constant is an overflow. */
static bool finite_or_error(Sema *S, CkcLoc loc, const char *what, double r, SemaVal *out) {
  if (!isfinite(r))
    return sema_error(S, loc, "E0400", "float overflow in constant expression (%s)", what);
  *out = sema_float(r);
  return true;
}

/* a op b on constants: int op int stays int (checked), int op float is
 * float, comparisons give bool, && || take bools. */
bool sema_const_binop(Sema *S, CkcLoc loc, AstBinOp op, SemaVal a, SemaVal b, SemaVal *out) {
  *out = sema_poison();
  if (a.kind == SV_POISON || b.kind == SV_POISON) return false;
  const char *os = binop_str(op);
  if (!sema_is_const(&a) || !sema_is_const(&b))
    return sema_error(S, loc, "E0407", "operator '%s' cannot combine %s and %s", os,
                      sema_val_kind_str(S, &a), sema_val_kind_str(S, &b));
  bool ints = a.kind == SV_INT && b.kind == SV_INT;
  bool bools = a.kind == SV_BOOL && b.kind == SV_BOOL;
  bool anybool = a.kind == SV_BOOL || b.kind == SV_BOOL;
  switch (op) {
  case AST_AND:
  case AST_OR:
    if (!bools)
      return sema_error(S, loc, "E0407", "operator '%s' needs bool operands, got %s and %s", os,
                        sema_val_kind_str(S, &a), sema_val_kind_str(S, &b));
    *out = sema_bool(op == AST_AND ? (a.i && b.i) : (a.i || b.i));
    return true;
  case AST_EQ:
  case AST_NE:
    if (anybool && !bools)
      return sema_error(S, loc, "E0407", "operator '%s' cannot compare %s and %s", os,
                        sema_val_kind_str(S, &a), sema_val_kind_str(S, &b));
    {
      bool eq = (ints || bools) ? a.i == b.i : as_f64(&a) == as_f64(&b);
      *out = sema_bool(op == AST_EQ ? eq : !eq);
    }
    return true;
  case AST_LT:
  case AST_LE:
  case AST_GT:
  case AST_GE: {
    if (anybool)
      return sema_error(S, loc, "E0407", "operator '%s' cannot order bool constants", os);
    int c;
    if (ints)
      c = a.i < b.i ? -1 : a.i > b.i;
    else
      c = as_f64(&a) < as_f64(&b) ? -1 : as_f64(&a) > as_f64(&b);
    bool r = op == AST_LT ? c < 0 : op == AST_LE ? c <= 0 : op == AST_GT ? c > 0 : c >= 0;
    *out = sema_bool(r);
    return true;
  }
  case AST_MATMUL:
    return sema_error(S, loc, "E0407", "operator '@' needs tensors, got %s and %s",
                      sema_val_kind_str(S, &a), sema_val_kind_str(S, &b));
  default: break;
  }
  if (anybool)
    return sema_error(S, loc, "E0407", "operator '%s' cannot take bool constants", os);
  if (ints) {
    int64_t x = a.i, y = b.i, r = 0;
    switch (op) {
    case AST_ADD:
      if (__builtin_add_overflow(x, y, &r)) goto overflow;
      break;
    case AST_SUB:
      if (__builtin_sub_overflow(x, y, &r)) goto overflow;
      break;
    case AST_MUL:
      if (__builtin_mul_overflow(x, y, &r)) goto overflow;
      break;
    case AST_DIV:
      if (y == 0) return sema_error(S, loc, "E0402", "division by zero in constant expression");
      if (x == INT64_MIN && y == -1) goto overflow;
      if (x % y != 0)
        return sema_error(S, loc, "E0401",
                          "integer division %lld / %lld is not exact (write %lld.0 / %lld for a float)",
                          (long long)x, (long long)y, (long long)x, (long long)y);
      r = x / y;
      break;
    case AST_MOD:
      if (y == 0) return sema_error(S, loc, "E0402", "division by zero in constant expression");
      if (y == -1) {
        r = 0;
        break;
      }
      r = x % y;
      if (r != 0 && ((r < 0) != (y < 0))) r += y; /* floored, as in Python */
      break;
    default: break;
    }
    *out = sema_int(r);
    return true;
  overflow:
    return sema_error(S, loc, "E0400", "integer overflow in constant expression: %lld %s %lld",
                      (long long)x, os, (long long)y);
  }
  double x = as_f64(&a), y = as_f64(&b), r = 0;
  switch (op) {
  case AST_ADD: r = x + y; break;
  case AST_SUB: r = x - y; break;
  case AST_MUL: r = x * y; break;
  case AST_DIV:
  case AST_MOD:
    if (y == 0) return sema_error(S, loc, "E0402", "division by zero in constant expression");
    if (op == AST_DIV) {
      r = x / y;
    } else {
      r = fmod(x, y);
      if (r != 0 && ((r < 0) != (y < 0))) r += y;
    }
    break;
  default: break;
  }
  return finite_or_error(S, loc, os, r, out);
}

/* -a, +a, !a on constants. */
bool sema_const_unop(Sema *S, CkcLoc loc, AstUnOp op, SemaVal a, SemaVal *out) {
  *out = sema_poison();
  if (a.kind == SV_POISON) return false;
  if (op == AST_NOT) {
    if (a.kind != SV_BOOL)
      return sema_error(S, loc, "E0407", "operator '!' needs a bool, got %s",
                        sema_val_kind_str(S, &a));
    *out = sema_bool(!a.i);
    return true;
  }
  if (a.kind != SV_INT && a.kind != SV_FLOAT)
    return sema_error(S, loc, "E0407", "unary '%s' needs a number, got %s",
                      op == AST_NEG ? "-" : "+", sema_val_kind_str(S, &a));
  if (op == AST_PLUS) {
    *out = a;
    return true;
  }
  if (a.kind == SV_FLOAT) {
    *out = sema_float(-a.f);
    return true;
  }
  if (a.i == INT64_MIN)
    return sema_error(S, loc, "E0400", "integer overflow in constant expression: -(%lld)",
                      (long long)a.i);
  *out = sema_int(-a.i);
  return true;
}

/* sqrt(x), min(a, b, ...), max(a, b, ...) when every argument is a constant;
 * *handled stays false otherwise so the tensor builtins can take over. */
bool sema_const_builtin(Sema *S, CkcLoc loc, const char *name, const SemaVal *args, int n,
                        SemaVal *out, bool *handled) {
  *handled = false;
  bool is_sqrt = strcmp(name, "sqrt") == 0;
  bool is_min = strcmp(name, "min") == 0, is_max = strcmp(name, "max") == 0;
  if (!is_sqrt && !is_min && !is_max) return false;
  if (n == 0) return false;
  for (int i = 0; i < n; i++) {
    if (args[i].kind == SV_POISON) {
      *handled = true;
      *out = sema_poison();
      return false;
    }
    if (!sema_is_const(&args[i])) return false;
  }
  *handled = true;
  *out = sema_poison();
  for (int i = 0; i < n; i++)
    if (args[i].kind == SV_BOOL)
      return sema_error(S, loc, "E0407", "%s of a bool constant", name);
  if (is_sqrt) {
    if (n != 1)
      return sema_error(S, loc, "E0300", "sqrt expects 1 positional argument, got %d", n);
    double x = as_f64(&args[0]);
    if (x < 0)
      return sema_error(S, loc, "E0408", "sqrt of a negative constant (%s)",
                        sema_val_str(S, &args[0]));
    *out = sema_float(sqrt(x));
    return true;
  }
  if (n < 2)
    return sema_error(S, loc, "E0300", "%s of constants expects at least 2 arguments, got %d",
                      name, n);
  bool ints = true;
  for (int i = 0; i < n; i++) ints = ints && args[i].kind == SV_INT;
  SemaVal best = args[0];
  for (int i = 1; i < n; i++) {
    bool less = ints ? args[i].i < best.i : as_f64(&args[i]) < as_f64(&best);
    bool more = ints ? args[i].i > best.i : as_f64(&args[i]) > as_f64(&best);
    if ((is_min && less) || (is_max && more)) best = args[i];
  }
  *out = ints ? best : sema_float(as_f64(&best));
  return true;
}

/* ---- constant contexts ------------------------------------------------------------ */

/* Evaluates e where only a constant makes sense (dims, constructor arguments,
 * const declarations, initialiser arguments). */
bool sema_eval_const(Sema *S, SemaScope *sc, AstExpr *e, SemaVal *out) {
  SemaScope c = *sc;
  c.g = NULL;
  SemaVal v = sema_eval(S, &c, e);
  *out = v;
  if (v.kind == SV_POISON) return false;
  if (!sema_is_const(&v)) {
    *out = sema_poison();
    return sema_error(S, e->loc, "E0403", "expected a constant expression, got %s",
                      sema_val_kind_str(S, &v));
  }
  return true;
}

bool sema_eval_int(Sema *S, SemaScope *sc, AstExpr *e, const char *what, int64_t *out) {
  SemaVal v;
  if (!sema_eval_const(S, sc, e, &v)) return false;
  if (v.kind != SV_INT)
    return sema_error(S, e->loc, "E0409", "%s must be an integer, got %s %s", what,
                      sema_val_kind_str(S, &v), sema_val_str(S, &v));
  *out = v.i;
  return true;
}

/* Top-level consts are evaluated on first use (so order does not matter)
 * and once; a const reached again while being evaluated is a cycle. */
bool sema_module_const(Sema *S, SemaModule *m, SemaSym *sym, SemaVal *out) {
  *out = sema_poison();
  switch (sym->state) {
  case 2: *out = sym->val; return true;
  case 3: return false;
  case 1:
    sym->state = 3;
    return sema_error(S, sym->loc, "E0406", "constant '%s' depends on itself", sym->name);
  default: break;
  }
  sym->state = 1;
  SemaScope sc = {.mod = m};
  SemaVal v;
  bool ok = sym->decl->value && sema_eval_const(S, &sc, sym->decl->value, &v);
  if (sym->state == 3) return false;
  sym->state = ok ? 2 : 3;
  sym->val = ok ? v : sema_poison();
  *out = sym->val;
  return ok;
}

/* `const D = C / H;` inside a layer: evaluated per instance, on first use. */
bool sema_member_const(Sema *S, SemaInst *inst, SemaMemb *mb, SemaVal *out) {
  *out = sema_poison();
  switch (mb->state) {
  case 2: *out = mb->val; return true;
  case 3: return false;
  case 1:
    mb->state = 3;
    return sema_error(S, mb->m->name_loc, "E0406", "constant '%s' depends on itself",
                      mb->m->name);
  default: break;
  }
  mb->state = 1;
  SemaScope sc = {.mod = inst->mod, .inst = inst};
  SemaVal v;
  bool ok = mb->m->value && sema_eval_const(S, &sc, mb->m->value, &v);
  if (mb->state == 3) return false;
  mb->state = ok ? 2 : 3;
  mb->val = ok ? v : sema_poison();
  *out = mb->val;
  return ok;
}

/* -D VALUE: an int (decimal), a float, or true/false. */
static bool parse_define_value(const char *s, SemaVal *out) {
  if (!s || !*s) return false;
  if (strcmp(s, "true") == 0 || strcmp(s, "false") == 0) {
    *out = sema_bool(s[0] == 't');
    return true;
  }
  char *end;
  errno = 0;
  long long i = strtoll(s, &end, 10);
  if (*end == '\0' && errno == 0 && end != s) {
    *out = sema_int(i);
    return true;
  }
  errno = 0;
  double f = strtod(s, &end);
  if (*end == '\0' && end != s && errno == 0 && isfinite(f) && !strpbrk(s, "xXnN")) {
    *out = sema_float(f);
    return true;
  }
  return false;
}

/* -D NAME=VALUE replaces the value of a top-level const of the main file;
 * the declaration's own expression is then never evaluated. */
bool sema_apply_defines(Sema *S) {
  bool ok = true;
  for (int i = 0; i < S->opt->ndefines; i++) {
    const CkcDefine *def = &S->opt->defines[i];
    SemaSym *sym = def->name ? sema_module_find(S->main, def->name) : NULL;
    if (!sym || sym->kind != SYM_CONST) {
      CkcBuf names;
      ckc_buf_init(&names, S->a);
      CKC_VEC(const char *) cands = {0};
      for (int j = 0; j < S->main->syms.len; j++) {
        SemaSym *s = S->main->syms.items[j];
        if (s->kind != SYM_CONST) continue;
        ckc_buf_printf(&names, "%s%s", cands.len ? ", " : "", s->name);
        CKC_VEC_PUSH(S->a, cands, s->name);
      }
      const char *sug = def->name ? sema_suggest(def->name, cands.items, cands.len) : NULL;
      ok = ckc_error_noloc(S->d, "E0404", "-D %s: '%s' declares no top-level const '%s' (%s%s)%s%s%s",
                           def->name ? def->name : "", S->main->path, def->name ? def->name : "",
                           cands.len ? "its consts: " : "it has no consts",
                           ckc_buf_str(&names), sug ? "; did you mean '" : "", sug ? sug : "",
                           sug ? "'?" : "");
      continue;
    }
    SemaVal v;
    if (!parse_define_value(def->value, &v)) {
      ok = ckc_error_noloc(S->d, "E0405",
                           "-D %s=%s: the value must be an integer, a float, true or false",
                           def->name, def->value ? def->value : "");
      continue;
    }
    sym->val = v;
    sym->state = 2;
    sym->overridden = true;
  }
  return ok;
}

/* Every top-level const of every module is checked, used or not. */
void sema_eval_all_consts(Sema *S) {
  for (int i = 0; i < S->mods.len; i++) {
    SemaModule *m = S->mods.items[i];
    for (int j = 0; j < m->syms.len; j++) {
      SemaVal v;
      if (m->syms.items[j]->kind == SYM_CONST) sema_module_const(S, m, m->syms.items[j], &v);
    }
  }
}

/* The main file's consts, after overrides, in declaration order. */
void sema_collect_consts(Sema *S) {
  for (int j = 0; j < S->main->syms.len; j++) {
    SemaSym *s = S->main->syms.items[j];
    if (s->kind != SYM_CONST || s->state != 2) continue;
    IrConstDef c = {.name = s->name, .is_float = s->val.kind == SV_FLOAT, .ival = s->val.i,
                    .fval = s->val.kind == SV_FLOAT ? s->val.f : (double)s->val.i};
    CKC_VEC_PUSH(S->a, S->ir->consts, c);
  }
}
