/* ir/ir.h - the graph IR.
 *
 * A module holds graphs; a graph is a list of nodes in topological order; each
 * node is one op producing one tensor of static dtype and shape (SSA: a node
 * IS its value). Leaves are inputs, parameters and constants. Before the
 * inline pass, layer calls are CALL nodes that point to the callee graph (one
 * graph per instantiation: layer + constructor arguments + argument shapes)
 * and carry the instance prefix ("blocks.2"); after it, the entry graphs are
 * flat and every parameter carries its full dotted name ("blocks.2.attn.wq").
 *
 * All IR objects live in the module's arena. Passes are functions
 * `bool pass(IrModule *, CkcDiag *)` listed in passes/passes.h. */
#ifndef CKC_IR_H
#define CKC_IR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/arena.h"
#include "util/diag.h"

/* ---- dtypes and shapes ------------------------------------------------------ */

typedef enum CkDType {
  CK_DT_F32,
  CK_DT_F64,
  CK_DT_I32,
  CK_DT_U8,
  CK_DT_BOOL, /* stored as one byte, 0 or 1 */
  CK_DT_COUNT
} CkDType;

const char *ck_dtype_name(CkDType t);      /* "f32" ... */
bool ck_dtype_from_name(const char *s, CkDType *out);
size_t ck_dtype_size(CkDType t);
bool ck_dtype_is_float(CkDType t);
const char *ck_dtype_ctype(CkDType t);     /* "float", "double", "int32_t", "uint8_t", "uint8_t" */

#define CK_MAX_RANK 8

typedef struct CkShape {
  int rank;
  int64_t dims[CK_MAX_RANK];
} CkShape;

/* Element count; false if the product overflows int64 (sema reports it). */
bool ck_shape_numel(const CkShape *s, int64_t *out);
int64_t ck_shape_numel_unchecked(const CkShape *s);
bool ck_shape_eq(const CkShape *a, const CkShape *b);
/* "f32[8,64,128]" (scalars: "f32[]") into buf. */
const char *ck_type_str(CkDType t, const CkShape *s, char *buf, size_t len);
/* NumPy broadcasting of two shapes; false if incompatible. */
bool ck_shape_broadcast(const CkShape *a, const CkShape *b, CkShape *out);

/* ---- the op table (ir/ops.def) ------------------------------------------------ */

typedef enum IrOp {
#define X(E, name, mn, mx, flags, infer) IR_OP_##E,
#include "ir/ops.def"
#undef X
  IR_OP_COUNT
} IrOp;

enum {
  IR_OPF_LEAF = 1u << 0,        /* input, param, const */
  IR_OPF_ELEMWISE = 1u << 1,    /* pointwise with NumPy broadcasting: lowered to loops, fusable */
  IR_OPF_COMMUTATIVE = 1u << 2,
  IR_OPF_COMPARE = 1u << 3,     /* result dtype bool */
  IR_OPF_NONDIFF = 1u << 4,     /* no gradient flows through */
  IR_OPF_REDUCE = 1u << 5,
  IR_OPF_SHAPE = 1u << 6,       /* pure data movement */
  IR_OPF_VIEW = 1u << 7,        /* result may alias the input (reshape) */
};

typedef struct IrNode IrNode;
typedef struct IrGraph IrGraph;
typedef struct IrModule IrModule;

/* A user-facing shape-rule failure: a stable id from E0310..E0349
 * (docs/errors.md) and one line in the style
 * "matmul: inner dimensions differ: f32[8,64,128] @ f32[256,128] (128 vs 256)". */
typedef struct IrErr {
  const char *id;
  char msg[512];
} IrErr;

/* Shape rule: given n->op, n->in and n->attrs, computes the result dtype and
 * shape. On a mismatch returns false and fills err. */
typedef bool (*IrInferFn)(const IrNode *n, CkDType *dtype, CkShape *shape, IrErr *err);

typedef struct IrOpInfo {
  const char *name;
  int min_in, max_in; /* max_in -1: variadic */
  unsigned flags;
  IrInferFn infer;
} IrOpInfo;

extern const IrOpInfo ir_op_info[IR_OP_COUNT];
const char *ir_op_name(IrOp op);
bool ir_op_from_name(const char *name, IrOp *out);

/* ---- attributes --------------------------------------------------------------- */

typedef enum IrAttrKind { IR_ATTR_INT, IR_ATTR_FLOAT, IR_ATTR_INTS, IR_ATTR_STR } IrAttrKind;

typedef struct IrAttr {
  const char *key;
  IrAttrKind kind;
  int64_t i;
  double f;
  const int64_t *ints;
  int nints;
  const char *s;
} IrAttr;

IrAttr ir_attr_int(const char *key, int64_t v);
IrAttr ir_attr_float(const char *key, double v);
IrAttr ir_attr_ints(const char *key, const int64_t *v, int n); /* copied by the builder */
IrAttr ir_attr_str(const char *key, const char *s);            /* copied by the builder */

const IrAttr *ir_find_attr(const IrNode *n, const char *key);
int64_t ir_get_int(const IrNode *n, const char *key, int64_t dflt);
double ir_get_float(const IrNode *n, const char *key, double dflt);
const char *ir_get_str(const IrNode *n, const char *key, const char *dflt);
/* Returns the ints of an INTS attribute (count in *n), or NULL if absent. */
const int64_t *ir_get_ints(const IrNode *n, const char *key, int *count);

/* ---- nodes, graphs, modules ----------------------------------------------------- */

struct IrNode {
  int id;               /* unique within its graph; printing order = node order */
  IrOp op;
  const char *name;     /* stable dotted name (params: full path after inline;
                           let-bound values: the variable, prefixed by the
                           instance path); NULL for anonymous temporaries */
  CkDType dtype;
  CkShape shape;
  IrNode **in;
  int nin;
  IrAttr *attrs;
  int nattrs;
  CkcLoc loc;           /* source span that produced it (for diagnostics) */
  IrGraph *callee;      /* CALL */
  const char *prefix;   /* CALL: instance path of the callee's parameters */
  const void *data;     /* CONST with dense data (dtype/shape as the node) */
  IrGraph *graph;       /* owner */
  void *aux;            /* scratch for the pass that is running; reset by it */
  int mark;             /* scratch for the pass that is running */
};

struct IrGraph {
  IrModule *module;
  const char *name;     /* entry graphs: "forward"; callees: "nn.Block(128,4).forward" */
  CKC_VEC(IrNode *) nodes;   /* topological order */
  CKC_VEC(IrNode *) inputs;  /* the INPUT nodes, in argument order */
  CKC_VEC(IrNode *) outputs; /* results (v0: exactly one) */
  CKC_VEC(const char *) input_names; /* source names of the arguments */
  bool is_entry;
  int next_id;
};

/* A compile-time constant that the program defined (for `info` and manifests). */
typedef struct IrConstDef {
  const char *name;
  bool is_float;
  int64_t ival;
  double fval;
} IrConstDef;

struct IrModule {
  CkcArena *arena;
  const char *model_name;   /* "TinyGPT" as declared */
  const char *source_name;  /* the input file's base name, e.g. "tiny_gpt.ckm" */
  const char *flags;        /* the command-line flags that shaped the code, canonical
                               ("-D B=16 -D T=32"; "" if none): recorded in manifests */
  CKC_VEC(IrGraph *) graphs;   /* entry graphs first, then callees in creation order */
  CKC_VEC(IrConstDef) consts;  /* top-level consts after -D overrides, in declaration order */
  struct IrTrainConfig *train; /* the elaborated train block (ir/train.h), or NULL */
};

IrModule *ir_module_new(CkcArena *a, const char *model_name, const char *source_name);
IrGraph *ir_graph_new(IrModule *m, const char *name, bool is_entry);
IrGraph *ir_module_entry(const IrModule *m, const char *name); /* NULL if absent */

/* Builders. All copy their attribute arrays and strings into the arena. */
IrNode *ir_input(IrGraph *g, const char *name, CkDType dt, const CkShape *s, CkcLoc loc);
/* Parameters are unique by name within a graph: asking again for the same
 * name returns the existing node (weight tying: `embed(wte, ...) ... @ transpose(wte)`). */
IrNode *ir_param(IrGraph *g, const char *name, CkDType dt, const CkShape *s, const IrAttr *attrs,
                 int nattrs, CkcLoc loc);
IrNode *ir_const_scalar(IrGraph *g, CkDType dt, double v, CkcLoc loc);
IrNode *ir_const_fill(IrGraph *g, CkDType dt, const CkShape *s, double v, CkcLoc loc);
IrNode *ir_const_data(IrGraph *g, CkDType dt, const CkShape *s, const void *data, CkcLoc loc);
/* Any non-leaf op: checks arity and attributes and runs the shape rule. On a
 * user-facing mismatch returns NULL with err filled. */
IrNode *ir_op(IrGraph *g, IrOp op, IrNode *const *in, int nin, const IrAttr *attrs, int nattrs,
              const char *name, CkcLoc loc, IrErr *err);
/* RESHAPE to a given shape (element counts must agree). */
IrNode *ir_reshape(IrGraph *g, IrNode *x, const CkShape *s, const char *name, CkcLoc loc, IrErr *err);
IrNode *ir_call(IrGraph *g, IrGraph *callee, const char *prefix, IrNode *const *in, int nin,
                const char *name, CkcLoc loc);
void ir_set_output(IrGraph *g, IrNode *n);

/* Clone a node into graph g with new inputs (used by inline and autodiff). */
IrNode *ir_clone_node(IrGraph *g, const IrNode *n, IrNode *const *new_in, const char *new_name);

/* ---- mutation helpers for passes ------------------------------------------------- */

/* Every use of old (node inputs and graph outputs) becomes a use of repl. */
void ir_replace_uses(IrGraph *g, IrNode *old, IrNode *repl);
/* Stable topological re-sort (by dependencies, then by id) after a pass
 * appended nodes out of order. */
void ir_graph_toposort(IrGraph *g);
/* Drops nodes whose mark is nonzero (callers set marks). */
void ir_graph_remove_marked(IrGraph *g);
/* Number of uses of each node, written into node->mark (outputs count). */
void ir_count_uses(IrGraph *g);

/* ---- checking and printing -------------------------------------------------------- */

/* Structural invariants: topological order, inputs owned by the graph, arity,
 * attributes, shapes agree with the shape rules, unique parameter names,
 * no CALL nodes if flat is true. Appends messages to err; false on failure. */
bool ir_verify(const IrModule *m, bool flat, CkcBuf *err);

/* Text form (--emit=ir, --dump-after): deterministic, one node per line:
 *   %12 blocks.0.attn.q: f32[8,64,128] = matmul(%10 x, %3 blocks.0.attn.wq) transpose_b=1
 * Exact format defined and documented in docs/ir.md. */
void ir_print_module(const IrModule *m, CkcBuf *out);
void ir_print_graph(const IrGraph *g, CkcBuf *out);
/* JSON (--emit=json), built with cJSON; returns an arena string. */
const char *ir_to_json(const IrModule *m, CkcArena *a);
/* Graphviz (--emit=dot). */
void ir_to_dot(const IrModule *m, CkcBuf *out);

#endif
