/* lower/lower.h - the lowered form of a flat entry graph: a list of steps
 * (loop nests and kernel calls) over buffers, plus the v0 memory plan.
 * A module lowers to one LowerProgram per entry graph ("forward", and with a
 * train block "loss" and "train_step"), all sharing one params layout.
 *
 * The lowered form is small on purpose: later passes (fusion merges loop
 * steps, memplan re-places buffers) rewrite it, and the emitter only prints
 * it. Every decision that needs the IR (broadcasting, collapsing of extents,
 * which kernel serves an op, where a buffer lives) is taken here, never in
 * emit/. All objects live in the module's arena. */
#ifndef CKC_LOWER_H
#define CKC_LOWER_H

#include <stdbool.h>
#include <stdint.h>

#include "ir/ir.h"
#include "ir/train.h"
#include "targets/target.h"

/* ---- buffers -------------------------------------------------------------------- */

typedef enum LowerBufKind {
  LOWER_BUF_PARAM,   /* in the params blob at `offset` bytes */
  LOWER_BUF_INPUT,   /* an argument of the forward function */
  LOWER_BUF_OUTPUT,  /* the caller's `out` */
  LOWER_BUF_ARENA,   /* an activation or scratch in the arena at `offset` bytes */
  LOWER_BUF_CONST,   /* a static const array in the model translation unit */
  LOWER_BUF_ALIAS,   /* a view of alias_of (reshape, stop_gradient): same storage, no copy */
  LOWER_BUF_GRAD,    /* train_step: a parameter's slot in the caller's grads blob (at `offset`) */
  LOWER_BUF_CACHE    /* decode: one layer's K or V rows in the caller's cache (at `offset` bytes) */
} LowerBufKind;

typedef struct LowerBuf LowerBuf;
struct LowerBuf {
  int id;                 /* index in LowerProgram.bufs */
  LowerBufKind kind;
  const char *name;       /* dotted source name, or NULL for temporaries */
  const char *cname;      /* unique C identifier inside the forward function */
  CkDType dtype;
  CkShape shape;
  int64_t numel;
  int64_t bytes;
  int64_t offset;         /* PARAM: byte offset in the blob; ARENA: byte offset in the arena */
  LowerBuf *alias_of;     /* ALIAS */
  int input_index;        /* INPUT: argument position */
  const IrNode *node;     /* the IR value it holds (NULL for scratch) */
  const void *data;       /* CONST: dense data (dtype/shape as the buffer) */
  double fill;            /* CONST without data: every element equals fill */
  int first_def, last_use;/* step indices (inclusive) for liveness; -1 if none */
  int index_input;        /* >= 0: this i32 input feeds an embedding with index_bound rows */
  int64_t index_bound;
};

/* The storage a buffer really occupies (follows aliases). */
LowerBuf *lower_buf_root(LowerBuf *b);

/* ---- elementwise loop bodies ---------------------------------------------------------- */

/* One instruction of a loop body in SSA form: instruction k defines the local
 * `v<k>`. LOAD reads operand `a` of the step at the current index; CONST is a
 * literal; every other instruction applies an elementwise IR op to earlier
 * instructions a, b, c. The last instruction is stored to the output. Fusion
 * appends the bodies of consumers to their producers. */
typedef enum LowerInstrKind { LOWER_I_LOAD, LOWER_I_CONST, LOWER_I_OP } LowerInstrKind;

typedef struct LowerInstr {
  LowerInstrKind kind;
  IrOp op;                /* LOWER_I_OP */
  CkDType dtype;          /* result dtype */
  CkDType in_dtype;       /* dtype of the first argument (cast, compare) */
  int a, b, c;            /* LOAD: operand index; OP: instruction indices (-1 unused) */
  double value;           /* CONST */
  bool gelu_tanh;         /* GELU approximate="tanh" */
} LowerInstr;

/* ---- steps ------------------------------------------------------------------------------ */

typedef enum LowerArgKind {
  LOWER_ARG_BUF,      /* buffer pointer (+ the step's loop offset, if any) */
  LOWER_ARG_INT,
  LOWER_ARG_FLOAT,
  LOWER_ARG_NULL,
  LOWER_ARG_ELSIZE,   /* sizeof(ctype of dtype) */
  LOWER_ARG_INTS,     /* a static const int64_t array */
  LOWER_ARG_POOL,     /* the entry's `pool` argument (targets with CkcTarget.pool) */
  LOWER_ARG_POS       /* decode: the entry's `pos` argument (the position being decoded) */
} LowerArgKind;

typedef struct LowerArg {
  LowerArgKind kind;
  LowerBuf *buf;
  int64_t i;
  double f;
  CkDType dtype;
  const int64_t *ints;
  int nints;
  int operand;        /* BUF: index into the step's loop operands (-1: no offset) */
} LowerArg;

typedef enum LowerStepKind {
  LOWER_STEP_LOOP,    /* elementwise loop nest: out[idx] = body(operands[idx]) */
  LOWER_STEP_KERNEL,  /* one call of a ck_kernels.h function (inside a loop nest if rank > 0) */
  LOWER_STEP_COPY,    /* memcpy (a view that has to become the caller's out) */
  LOWER_STEP_ZERO     /* memset(out, 0): the ck_grad/ck_optim kernels accumulate into out */
} LowerStepKind;

typedef enum LowerCheck {
  LOWER_CHECK_NONE,
  LOWER_CHECK_INDEX,  /* the kernel returns -1 or a bad position: ERR_INDEX_RANGE + check_input */
  LOWER_CHECK_TARGET  /* the same for loss targets: ERR_TARGET_RANGE + check_input */
} LowerCheck;

#define LOWER_MAX_OPERANDS 8
#define LOWER_MAX_NODES 8

typedef struct LowerStep {
  LowerStepKind kind;
  const IrNode *node;         /* the IR node it computes (for the comment) */
  LowerBuf *out;
  /* loop nest (LOOP; KERNEL with rank > 0 loops over calls) */
  int rank;
  int64_t extents[CK_MAX_RANK];
  int noperands;              /* operand 0 of a KERNEL loop is out */
  LowerBuf *operands[LOWER_MAX_OPERANDS];
  int64_t strides[LOWER_MAX_OPERANDS][CK_MAX_RANK]; /* elements; 0 = broadcast */
  int64_t out_strides[CK_MAX_RANK];
  int64_t out_offset;         /* LOOP: elements added to every out index (slice_bwd) */
  /* LOOP body */
  LowerInstr *body;
  int nbody;
  /* KERNEL */
  const char *kernel;
  LowerArg *args;
  int nargs;
  int check_input;            /* embedding, cross_entropy: index of the input it checks (or ninputs) */
  LowerCheck check;           /* what a nonnegative kernel result means */
  bool optional_out;          /* COPY into an output the caller may pass as NULL (loss's logits) */
  /* extra buffers read (KERNEL args) for liveness */
  LowerBuf *scratch;          /* scratch buffer used only by this step */
  /* a fused call (the x86 folds) computes several IR nodes: all of them in
   * program order, for the emitted comment; nnodes = 0: just node */
  const IrNode *nodes[LOWER_MAX_NODES];
  int nnodes;
} LowerStep;

/* One parameter of the shared params layout (the union over entry graphs). */
typedef struct LowerParam {
  const char *name;       /* dotted */
  const IrNode *node;     /* its PARAM node where first met (initialiser attributes) */
  CkDType dtype;
  CkShape shape;
  int64_t numel, bytes;
  int64_t offset;         /* bytes into the params blob (and the grads blob) */
  int train_index;        /* index in IrTrainConfig.params (gradient output 1 + i), or -1 */
  bool decay;             /* weight decay applies (from IrTrainConfig.params) */
} LowerParam;

typedef struct LowerLayout {
  CKC_VEC(LowerParam) params; /* forward's params in order of first use, then loss/train_step extras */
  int64_t params_bytes;
  int64_t param_count;        /* scalars */
} LowerLayout;

typedef enum LowerEntry { LOWER_ENTRY_FORWARD, LOWER_ENTRY_LOSS, LOWER_ENTRY_TRAIN_STEP, LOWER_ENTRY_DECODE } LowerEntry;

typedef struct LowerProgram {
  const IrModule *module;
  LowerEntry entry;
  const LowerLayout *layout;  /* param offsets come from here */
  const IrGraph *graph;
  const CkcTarget *target;
  const char *prefix;         /* lower-case model name: "tinygpt" */
  const char *upper;          /* upper-case: "TINYGPT" */
  CKC_VEC(LowerBuf *) bufs;
  CKC_VEC(LowerStep *) steps;
  CKC_VEC(LowerBuf *) params; /* in graph order */
  CKC_VEC(LowerBuf *) inputs; /* in argument order */
  CKC_VEC(LowerBuf *) consts; /* static const arrays */
  LowerBuf *output;           /* the value returned (OUTPUT, or an alias/leaf copied into out) */
  LowerBuf *out;              /* the caller's out buffer (loss, train_step: `loss`) */
  LowerBuf *logits;           /* loss: the caller's logits (may be NULL at run time) or NULL */
  int64_t params_bytes;
  int64_t arena_bytes;
  int64_t param_count;        /* scalars */
  const struct MemplanStats *mem; /* lower_plan_memory's sections, peak and lower bound (lower/memplan.h) */
  int64_t cache_bytes;        /* decode: the K/V cache the caller keeps between positions */
  int64_t max_pos;            /* decode: positions 0 .. max_pos-1 (forward's T) */
} LowerProgram;

/* Every entry graph of a module, lowered against one params layout. */
typedef struct LowerModule {
  const IrModule *module;
  const CkcTarget *target;
  const char *prefix, *upper;
  LowerLayout *layout;
  LowerProgram *forward;
  LowerProgram *loss;         /* NULL without a train block */
  LowerProgram *train_step;   /* NULL without a train block */
  LowerProgram *decode;       /* NULL unless passes/decode.c derived a "decode" entry */
} LowerModule;

/* The params layout of a module: the union of the parameters of its entry
 * graphs by name (forward, loss, train_step in that order; each in node
 * order), 64-byte aligned offsets; trainable/decay from m->train. */
LowerLayout *lower_layout(const IrModule *m);
/* Lowers the entry graph `entry` against layout L. Reports ops the target
 * cannot run (E0910) and malformed entry graphs (E0911) through d and
 * returns NULL. */
LowerProgram *lower_entry(const IrModule *m, const CkcTarget *t, const LowerLayout *L, LowerEntry entry,
                          CkcDiag *d);
/* Lowers the entry graph "forward" of a flat module for target t with its
 * own layout (tests; the emitter uses lower_module). */
LowerProgram *lower_program(const IrModule *m, const CkcTarget *t, CkcDiag *d);
/* forward, and loss + train_step when the module has a train block. */
LowerModule *lower_module(const IrModule *m, const CkcTarget *t, CkcDiag *d);

/* The memory plan (lower/memplan.c, docs/memory.md): params at their layout
 * offsets; arena buffers by liveness over the step list, in-place reuse of
 * elementwise loops, the best of several placements, self-checked. Called by
 * lower_entry; re-run it after rewriting steps (fusion). */
void lower_plan_memory(LowerProgram *p);

/* x86 targets (CkcTarget.fast_gemm; lower/lower_x86.c): matmul kernel steps
 * become ck_gemm_f32 on the pool, and a weight gradient that is only added
 * into grads is computed there directly with CK_GEMM_ACCUMULATE. Runs on the
 * step list before the memory plan. */
void lower_x86_kernels(LowerProgram *p);

#define LOWER_ALIGN 64

#endif
