/* ir/fused.h - the expression program carried by the fused ops of ops.def
 * (fused_ew, fused_matmul), built by passes/fusion.c.
 *
 * A fused op computes, for every element of its result, a short SSA program
 * over its operands broadcast to the result shape. The program is the
 * node's `body` string attribute, readable in --emit=ir:
 *     body="mul($0,$0); mul(t0,$0); add($1,t1); gelu_tanh(t2)"
 * `$k` is operand k of the program (for fused_ew: input k of the node; for
 * fused_matmul: $0 is the matmul product and $k input k+1), `tN` the value of
 * instruction N (0-based); the last instruction is the result. Op names are
 * those of ops.def; `gelu_tanh` is gelu with approximate="tanh". Only
 * elementwise ops whose semantics need no attribute appear (no cast). */
#ifndef CKC_IR_FUSED_H
#define CKC_IR_FUSED_H

#include <stdbool.h>
#include <stddef.h>

#include "ir/ir.h"

#define IR_FUSED_MAX_INSTR 96
#define IR_FUSED_MAX_INPUTS 16

/* An argument >= 0 names instruction arg; < 0 names program operand -1-arg. */
#define IR_FUSED_OPERAND(k) (-1 - (k))

typedef struct IrFusedInstr {
  IrOp op;
  bool gelu_tanh;
  int nargs;
  int arg[3];
} IrFusedInstr;

typedef struct IrFusedProg {
  int n;
  IrFusedInstr ins[IR_FUSED_MAX_INSTR];
} IrFusedProg;

/* Whether op may appear in a program (elementwise, no attributes but gelu's). */
bool ir_fused_op_ok(IrOp op);
/* Parses body for a program of `noperands` operands. On a malformed body
 * returns false with a reason in why. */
bool ir_fused_parse(const char *body, int noperands, IrFusedProg *p, char *why, size_t whylen);
/* The text form of p (inverse of ir_fused_parse), in the arena. */
const char *ir_fused_format(CkcArena *a, const IrFusedProg *p);
/* The dtype of every instruction from the operand dtypes (compare: bool;
 * where: its branches'; others: their first argument's), checking that
 * arithmetic sees equal non-bool dtypes, float-only ops floats and where a
 * bool condition. False with a reason on a mismatch. */
bool ir_fused_types(const IrFusedProg *p, const CkDType *operand_dt, int noperands, CkDType *instr_dt,
                    char *why, size_t whylen);

#endif
