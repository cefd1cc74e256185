/* ir/fused.c - the body program of fused ops (ir/fused.h): parsing,
 * printing and typing, shared by the shape rules, the interpreter, the
 * fusion pass and the lowering so that all four read one definition. */
#include "ir/fused.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The ops a program may use: every elementwise row except cast (its target
 * dtype is an attribute the body does not carry). */
bool ir_fused_op_ok(IrOp op) {
  if ((unsigned)op >= IR_OP_COUNT || op == IR_OP_CAST) return false;
  return (ir_op_info[op].flags & IR_OPF_ELEMWISE) != 0;
}

static bool fz_fail(char *why, size_t len, const char *msg, int k) {
  if (why && len) snprintf(why, len, "fused body: %s (instruction %d)", msg, k);
  return false;
}

/* body := instr (';' instr)* ; instr := NAME '(' arg (',' arg)* ')' ;
 * arg := '$' INT | 't' INT. Spaces are allowed around tokens. */
bool ir_fused_parse(const char *body, int noperands, IrFusedProg *p, char *why, size_t whylen) {
  p->n = 0;
  if (!body) return fz_fail(why, whylen, "missing", 0);
  const char *s = body;
  for (;;) {
    while (*s == ' ') s++;
    if (!*s) break;
    int k = p->n;
    if (k >= IR_FUSED_MAX_INSTR) return fz_fail(why, whylen, "too many instructions", k);
    char name[32];
    size_t j = 0;
    while (*s && *s != '(' && *s != ' ' && j + 1 < sizeof name) name[j++] = *s++;
    name[j] = 0;
    while (*s == ' ') s++;
    if (*s != '(') return fz_fail(why, whylen, "expected '('", k);
    s++;
    IrFusedInstr *in = &p->ins[k];
    memset(in, 0, sizeof *in);
    in->arg[0] = in->arg[1] = in->arg[2] = 0;
    if (strcmp(name, "gelu_tanh") == 0) {
      in->op = IR_OP_GELU;
      in->gelu_tanh = true;
    } else if (!ir_op_from_name(name, &in->op)) {
      return fz_fail(why, whylen, "unknown op", k);
    }
    if (!ir_fused_op_ok(in->op)) return fz_fail(why, whylen, "op not allowed in a fused body", k);
    for (;;) {
      while (*s == ' ') s++;
      if (in->nargs >= 3) return fz_fail(why, whylen, "too many arguments", k);
      char kind = *s;
      if (kind != '$' && kind != 't') return fz_fail(why, whylen, "expected $N or tN", k);
      s++;
      char *end;
      long v = strtol(s, &end, 10);
      if (end == s || v < 0) return fz_fail(why, whylen, "bad index", k);
      s = end;
      if (kind == '$' && v >= noperands) return fz_fail(why, whylen, "operand out of range", k);
      if (kind == 't' && v >= k) return fz_fail(why, whylen, "use of a later instruction", k);
      in->arg[in->nargs++] = kind == '$' ? IR_FUSED_OPERAND((int)v) : (int)v;
      while (*s == ' ') s++;
      if (*s == ',') {
        s++;
        continue;
      }
      if (*s == ')') {
        s++;
        break;
      }
      return fz_fail(why, whylen, "expected ',' or ')'", k);
    }
    if (in->nargs != ir_op_info[in->op].min_in) return fz_fail(why, whylen, "wrong number of arguments", k);
    p->n++;
    while (*s == ' ') s++;
    if (*s == ';') {
      s++;
      continue;
    }
    if (*s) return fz_fail(why, whylen, "expected ';'", k);
    break;
  }
  if (p->n == 0) return fz_fail(why, whylen, "empty", 0);
  return true;
}

const char *ir_fused_format(CkcArena *a, const IrFusedProg *p) {
  CkcBuf b;
  ckc_buf_init(&b, a);
  for (int k = 0; k < p->n; k++) {
    const IrFusedInstr *in = &p->ins[k];
    if (k) ckc_buf_puts(&b, "; ");
    ckc_buf_printf(&b, "%s(", in->gelu_tanh ? "gelu_tanh" : ir_op_name(in->op));
    for (int j = 0; j < in->nargs; j++) {
      if (j) ckc_buf_putc(&b, ',');
      if (in->arg[j] < 0)
        ckc_buf_printf(&b, "$%d", -1 - in->arg[j]);
      else
        ckc_buf_printf(&b, "t%d", in->arg[j]);
    }
    ckc_buf_putc(&b, ')');
  }
  return ckc_buf_str(&b);
}

/* The typing rules of the single ops (ir/shape.c), restated per instruction. */
bool ir_fused_types(const IrFusedProg *p, const CkDType *operand_dt, int noperands, CkDType *instr_dt,
                    char *why, size_t whylen) {
  for (int k = 0; k < p->n; k++) {
    const IrFusedInstr *in = &p->ins[k];
    CkDType dt[3];
    for (int j = 0; j < in->nargs; j++) {
      int a = in->arg[j];
      if (a < 0 && -1 - a >= noperands) return fz_fail(why, whylen, "operand out of range", k);
      dt[j] = a < 0 ? operand_dt[-1 - a] : instr_dt[a];
    }
    unsigned fl = ir_op_info[in->op].flags;
    if (in->op == IR_OP_WHERE) {
      if (dt[0] != CK_DT_BOOL) return fz_fail(why, whylen, "where: condition must be bool", k);
      if (dt[1] != dt[2]) return fz_fail(why, whylen, "where: dtypes differ", k);
      instr_dt[k] = dt[1];
      continue;
    }
    for (int j = 0; j < in->nargs; j++) {
      if (dt[j] != dt[0]) return fz_fail(why, whylen, "dtypes differ", k);
      if (dt[j] == CK_DT_BOOL && !(fl & IR_OPF_COMPARE)) return fz_fail(why, whylen, "arithmetic on bool", k);
    }
    bool float_only = in->nargs == 1 && in->op != IR_OP_NEG && in->op != IR_OP_ABS;
    if (float_only && !ck_dtype_is_float(dt[0])) return fz_fail(why, whylen, "requires a float dtype", k);
    instr_dt[k] = (fl & IR_OPF_COMPARE) ? CK_DT_BOOL : dt[0];
  }
  return true;
}
