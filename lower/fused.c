/* lower/fused.c - fused ops -> loop steps.
 *
 *   fused_ew(x0, x1, ...) body=B      -> for (...) out[i] = B(x0[i0], x1[i1], ...)
 *   fused_matmul(a, b, e1, ...) body=B -> ck_matmul_f32(out, a, b, ...)   (lower.c)
 *                                        for (...) out[i] = B(out[i], e1[i1], ...)
 *
 * The body instructions become LowerInstrs one for one, in body order, with
 * the dtypes the single ops had, so the emitted expressions are the ones the
 * unfused loops would have written and the results agree bitwise; the
 * intermediates live in locals instead of arena buffers. Splat constants are
 * literals, as in lower_elemwise. */
#include "lower/fused.h"

#include <string.h>

#include "ir/fused.h"

static bool lower_fused_splat(const IrNode *n) { return n->op == IR_OP_CONST && !n->data; }

void lower_fused_loop(LowerProgram *p, CkcArena *a, const IrNode *n, LowerBuf *out, LowerBuf *const *map) {
  bool mm = n->op == IR_OP_FUSED_MATMUL;
  int nops = mm ? n->nin - 1 : n->nin;
  IrFusedProg *prog = CKC_NEW(a, IrFusedProg);
  char why[160];
  if (nops > IR_FUSED_MAX_INPUTS || !ir_fused_parse(ir_get_str(n, "body", NULL), nops, prog, why, sizeof why))
    CKC_ICE("lower: %s %%%d: %s", ir_op_name(n->op), n->id, why);
  CkDType odt[IR_FUSED_MAX_INPUTS], idt[IR_FUSED_MAX_INSTR];
  for (int k = 0; k < nops; k++) odt[k] = mm && k == 0 ? n->dtype : n->in[mm ? k + 1 : k]->dtype;
  if (!ir_fused_types(prog, odt, nops, idt, why, sizeof why)) CKC_ICE("lower: %s", why);

  LowerStep *s = CKC_NEW(a, LowerStep);
  s->kind = LOWER_STEP_LOOP;
  s->node = n;
  s->out = out;
  s->check_input = -1;
  CKC_VEC_PUSH(a, p->steps, s);
  s->body = CKC_NEW_ARRAY(a, LowerInstr, nops + prog->n);
  const CkShape *shapes[LOWER_MAX_OPERANDS];
  int64_t unit[LOWER_MAX_OPERANDS];
  for (int k = 0; k < LOWER_MAX_OPERANDS; k++) unit[k] = 1;
  int instr_of[IR_FUSED_MAX_INPUTS];
  /* one LOAD (or literal) per program operand, in operand order */
  for (int k = 0; k < nops; k++) {
    const IrNode *x = mm ? (k == 0 ? n : n->in[k + 1]) : n->in[k];
    LowerInstr *in = &s->body[s->nbody];
    in->dtype = in->in_dtype = odt[k];
    in->a = in->b = in->c = -1;
    if (!(mm && k == 0) && lower_fused_splat(x)) {
      in->kind = LOWER_I_CONST;
      in->value = ir_get_float(x, "value", 0.0);
    } else {
      if (s->noperands >= LOWER_MAX_OPERANDS) CKC_ICE("lower: %s %%%d has too many operands", ir_op_name(n->op), n->id);
      in->kind = LOWER_I_LOAD;
      in->a = s->noperands;
      shapes[s->noperands] = mm && k == 0 ? &n->shape : &x->shape;
      s->operands[s->noperands++] = mm && k == 0 ? out : map[x->id];
    }
    instr_of[k] = s->nbody++;
  }
  int base = s->nbody;
  for (int q = 0; q < prog->n; q++) {
    const IrFusedInstr *fi = &prog->ins[q];
    LowerInstr *in = &s->body[s->nbody++];
    int args[3] = {-1, -1, -1};
    for (int j = 0; j < fi->nargs; j++)
      args[j] = fi->arg[j] < 0 ? instr_of[-1 - fi->arg[j]] : base + fi->arg[j];
    in->kind = LOWER_I_OP;
    in->op = fi->op;
    in->dtype = idt[q];
    in->in_dtype = s->body[args[0]].dtype;
    in->a = args[0];
    in->b = args[1];
    in->c = args[2];
    in->gelu_tanh = fi->gelu_tanh;
  }
  unit[LOWER_MAX_OPERANDS - 1] = 1;
  lower_collapse(s, &n->shape, s->noperands, shapes, unit);
}
