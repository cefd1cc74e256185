/* frontend/sema_int.h - private to the semantic analyser (sema.c, module.c, train.c,
 * consts.c, elab.c): the context, modules and their symbols, layer instances,
 * scopes and the value type every expression evaluates to. Nothing outside
 * frontend/sema*.c, module.c, consts.c, elab.c and train.c includes it. */
#ifndef CKC_SEMA_INT_H
#define CKC_SEMA_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "frontend/ast.h"
#include "frontend/sema.h"
#include "ir/ir.h"

typedef struct SemaModule SemaModule;
typedef struct SemaSym SemaSym;
typedef struct SemaInst SemaInst;
typedef struct SemaMemb SemaMemb;
typedef struct SemaVal SemaVal;

/* ---- values ------------------------------------------------------------------
 * Constants, tensors (IR nodes of the graph being built) and the compile-time
 * things names can denote (modules, layers, instances, fns). SV_POISON marks
 * an expression that already produced an error: whoever meets it stays quiet. */
typedef enum SemaValKind {
  SV_POISON,
  SV_INT,
  SV_FLOAT,
  SV_BOOL,
  SV_STR,
  SV_TUPLE,
  SV_DTYPE,   /* f32 as a value: cast(x, f32) */
  SV_TENSOR,
  SV_MODULE,  /* an import alias */
  SV_LAYER,   /* a layer (or model) declaration, not yet instantiated */
  SV_INST,    /* a layer instance, reached through path */
  SV_ARRAY,   /* an instance array: n copies of inst, paths path.0 .. */
  SV_METHOD,  /* a fn of an instance (inst, path, fn) */
  SV_BUILTIN, /* a builtin op name in callee position */
  SV_DATA,    /* a train block's `data` in its loss: elems[0] = data.x, elems[1] = data.y */
} SemaValKind;

struct SemaVal {
  SemaValKind kind;
  int64_t i;            /* INT, BOOL (0/1), ARRAY count, BUILTIN index */
  double f;             /* FLOAT */
  const char *s;        /* STR */
  SemaVal *elems;       /* TUPLE, DATA */
  int n;                /* TUPLE, DATA */
  CkDType dt;           /* DTYPE */
  IrNode *node;         /* TENSOR */
  SemaModule *mod;      /* MODULE; LAYER: the declaring module */
  AstDecl *decl;        /* LAYER */
  SemaInst *inst;       /* INST, ARRAY, METHOD */
  const char *path;     /* INST, ARRAY, METHOD: instance path relative to the
                           graph being built ("" = the graph's own instance) */
  AstMember *fn;        /* METHOD */
};

/* ---- modules ------------------------------------------------------------------ */

typedef enum SemaSymKind { SYM_CONST, SYM_LAYER, SYM_MODEL, SYM_IMPORT, SYM_TRAIN } SemaSymKind;

struct SemaSym {
  const char *name;
  SemaSymKind kind;
  AstDecl *decl;
  CkcLoc loc;
  SemaModule *target;   /* IMPORT */
  int state;            /* CONST: 0 not evaluated, 1 evaluating, 2 done, 3 failed */
  SemaVal val;          /* CONST */
  bool overridden;      /* CONST set by -D */
};

struct SemaModule {
  const char *path;     /* as registered with diag */
  const char *key;      /* identity: real path, or "<embedded>/stdlib/nn.ckm" */
  const char *dotted;   /* "nn", "a.b"; NULL for the main file */
  AstFile *ast;
  bool is_main;
  int state;            /* 0 new, 1 loading imports, 2 loaded */
  CKC_VEC(SemaSym *) syms;
};

/* ---- layer instances -----------------------------------------------------------
 * One per distinct (layer, constructor arguments): "nn.Block(128,4)". Array
 * elements share the instance; only their paths differ. */
struct SemaMemb {
  AstMember *m;
  int state;            /* CONST: as SemaSym.state */
  SemaVal val;          /* CONST value; LAYER: SV_INST or SV_ARRAY (path = name) */
  bool ok;              /* PARAM: type and initialiser resolved */
  CkDType dt;           /* PARAM */
  CkShape shape;        /* PARAM */
  IrAttr attrs[8];      /* PARAM: init attributes */
  int nattrs;
};

struct SemaInst {
  AstDecl *decl;
  SemaModule *mod;
  const char *key;      /* "nn.Block(128,4)"; the model: its name */
  bool is_model;
  int nargs;
  const char **argnames;
  SemaVal *args;
  CKC_VEC(SemaMemb *) members;
  int state;            /* 0 building, 1 built */
};

/* ---- scopes --------------------------------------------------------------------- */

typedef struct SemaLocal {
  const char *name;
  SemaVal val;
  CkcLoc loc;
  bool is_dim;          /* a dimension variable bound from the arguments */
} SemaLocal;

typedef struct SemaFrame SemaFrame;
struct SemaFrame {
  SemaFrame *parent;
  CKC_VEC(SemaLocal) locals;
};

typedef struct SemaScope {
  SemaModule *mod;
  SemaInst *inst;       /* NULL at the top level of a module */
  SemaFrame *frame;     /* NULL outside fn bodies */
  IrGraph *g;           /* NULL: constant context (no tensors can be built) */
  const char *where;    /* "nn.Block(128,4).forward", for messages */
  bool has_ellipsis;    /* the fn bound `...` */
  CkShape ellipsis;     /* its dims */
} SemaScope;

/* ---- instantiation context ---------------------------------------------------------
 * What sema is elaborating on the user's behalf, outermost first: a member
 * declaration building a sub-instance (`conv1: nn.Conv2d(1, 16, 3)`) or a call
 * building a layer fn's graph (`conv1(x)`). An error reported meanwhile gets
 * one note per frame, innermost first (clang's "in instantiation of ...
 * requested here"), so a mistake inside nn.ckm names the user's line that
 * led there. The model's own fns push no frames: their errors already sit on
 * the user's span. */
typedef enum SemaCtxKind { SEMA_CTX_INST, SEMA_CTX_CALL } SemaCtxKind;

typedef struct SemaCtx {
  SemaCtxKind kind;
  const char *what;     /* INST: the instance key, NULL until it is being built
                           (no note: errors in its constructor arguments sit on
                           the declaration itself); CALL: "nn.Conv2d(1,16,3).forward" */
  const char *member;   /* INST: the member's name */
  CkcLoc loc;           /* the member declaration or the call */
} SemaCtx;

/* An error as printed, to say each one once (instantiations repeat). */
typedef struct SemaReported {
  CkcLoc loc;
  const char *id;
  const char *msg;
} SemaReported;

/* ---- the context ---------------------------------------------------------------- */

typedef struct SemaGraphEntry {
  const char *key;      /* instance key . fn (argument types) */
  IrGraph *g;
  int state;            /* 1 building, 2 done, 3 failed */
} SemaGraphEntry;

typedef struct Sema {
  CkcArena *a;
  CkcDiag *d;
  const CkcSemaOptions *opt;
  CKC_VEC(SemaModule *) mods;
  SemaModule *main;
  CKC_VEC(SemaInst *) insts;
  CKC_VEC(SemaInst *) building;   /* instances under construction (self-containment) */
  CKC_VEC(SemaGraphEntry *) graphs;
  CKC_VEC(const char *) graph_names;
  IrModule *ir;
  int call_depth;
  CKC_VEC(SemaCtx) ctx;           /* the instantiation context, outermost first */
  CKC_VEC(SemaReported) reported; /* errors printed by sema_error */
  int nquiet;                     /* repeats sema_error left unprinted */
  bool last_quiet;                /* the latest sema_error was a repeat: drop its notes */
} Sema;

/* sema.c: diagnostics in context. sema_error is ckc_error plus one note per
 * frame of S->ctx; an error already printed (same span, id and message) is
 * not printed again but still counts as a failure (sema_failures). sema_note
 * attaches to the latest sema_error and is dropped with it. */
bool sema_error(Sema *S, CkcLoc loc, const char *id, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void sema_note(Sema *S, CkcLoc loc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Errors so far, printed or not: compare before and after a step. */
int sema_failures(const Sema *S);
/* At most this many context notes per error; deeper chains keep the innermost
 * and outermost halves and say how many levels were left out. */
#define SEMA_CTX_NOTES_MAX 8

/* module.c */
bool sema_load_program(Sema *S, const char *path);

/* sema.c: names */
SemaSym *sema_module_find(SemaModule *m, const char *name);
SemaMemb *sema_inst_member(SemaInst *inst, const char *name);
bool sema_lookup(Sema *S, SemaScope *sc, const char *name, CkcLoc loc, SemaVal *out);
/* The closest of cands within edit distance 2 of name, or NULL. */
const char *sema_suggest(const char *name, const char *const *cands, int n);
/* ", did you mean 'x'?" or "" for a name unknown in scope sc. */
const char *sema_suggest_in_scope(Sema *S, SemaScope *sc, const char *name, bool builtins);
SemaVal sema_poison(void);
SemaVal sema_int(int64_t v);
SemaVal sema_float(double v);
SemaVal sema_bool(bool v);
bool sema_is_const(const SemaVal *v);
const char *sema_val_kind_str(Sema *S, const SemaVal *v);
const char *sema_val_str(Sema *S, const SemaVal *v);
char *sema_type_str(Sema *S, CkDType dt, const CkShape *s);

/* consts.c */
bool sema_const_binop(Sema *S, CkcLoc loc, AstBinOp op, SemaVal a, SemaVal b, SemaVal *out);
bool sema_const_unop(Sema *S, CkcLoc loc, AstUnOp op, SemaVal a, SemaVal *out);
/* sqrt/min/max on constants; false if name is not a const builtin. */
bool sema_const_builtin(Sema *S, CkcLoc loc, const char *name, const SemaVal *args, int n,
                        SemaVal *out, bool *handled);
bool sema_eval_const(Sema *S, SemaScope *sc, AstExpr *e, SemaVal *out);
bool sema_eval_int(Sema *S, SemaScope *sc, AstExpr *e, const char *what, int64_t *out);
bool sema_module_const(Sema *S, SemaModule *m, SemaSym *sym, SemaVal *out);
bool sema_member_const(Sema *S, SemaInst *inst, SemaMemb *mb, SemaVal *out);
bool sema_apply_defines(Sema *S);
void sema_eval_all_consts(Sema *S);
void sema_collect_consts(Sema *S);

/* elab.c */
SemaVal sema_eval(Sema *S, SemaScope *sc, AstExpr *e);
/* A member reached through an instance at path (params become PARAM nodes of
 * sc->g named path.name; in a constant context they are an error). */
SemaVal sema_member_val(Sema *S, SemaScope *sc, SemaInst *inst, SemaMemb *mb, const char *path,
                        CkcLoc loc);
SemaInst *sema_instantiate(Sema *S, SemaScope *sc, AstExpr *ctor, CkcLoc loc);
/* nshow: how many leading arguments the instance name shows (trailing
 * arguments equal to their defaults are left out: nn.LayerNorm(128)). */
SemaInst *sema_make_instance(Sema *S, SemaModule *mod, AstDecl *decl, const SemaVal *args,
                             int nargs, int nshow, CkcLoc loc);
/* Builtin names in table order; NULL past the end. */
const char *sema_builtin_name(int i);
bool sema_elab_entry(Sema *S, SemaInst *model);

/* train.c: the main file's train block -> S->ir->train and the entry graph
 * "loss" (built only when entry_ok: the model's forward elaborated). */
void sema_elab_train(Sema *S, SemaInst *model, bool entry_ok);

#endif
