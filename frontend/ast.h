/* frontend/ast.h - the abstract syntax tree built by grammar/ckm.y.
 * Parser actions only build these nodes (PostgreSQL's gram.y); all meaning is
 * given later by frontend/sema.c. Lists are singly linked through `next`. */
#ifndef CKC_AST_H
#define CKC_AST_H

#include <stdbool.h>
#include <stdint.h>

#include "util/arena.h"
#include "util/diag.h"

typedef struct AstExpr AstExpr;
typedef struct AstArg AstArg;
typedef struct AstType AstType;
typedef struct AstStmt AstStmt;
typedef struct AstMember AstMember;
typedef struct AstDecl AstDecl;
typedef struct AstField AstField;

/* ---- expressions ------------------------------------------------------ */

typedef enum AstExprKind {
  AST_EXPR_INT,      /* 42            .ival                         */
  AST_EXPR_FLOAT,    /* 3e-4          .fval                         */
  AST_EXPR_BOOL,     /* true / false  .ival (0 or 1)                */
  AST_EXPR_STRING,   /* "data/x.u8"   .str (escapes resolved)       */
  AST_EXPR_NAME,     /* x             .name                         */
  AST_EXPR_MEMBER,   /* a.b           .member                       */
  AST_EXPR_CALL,     /* f(a, k = v)   .call                         */
  AST_EXPR_INDEX,    /* blocks[2]     .index (array element)        */
  AST_EXPR_BINARY,   /* a + b         .binary                       */
  AST_EXPR_UNARY,    /* -a, !a        .unary                        */
  AST_EXPR_TUPLE,    /* (a, b, c)     .tuple  (also () and (a,))    */
  AST_EXPR_ELLIPSIS, /* ... (only inside a tensor type's dims)      */
} AstExprKind;

typedef enum AstBinOp {
  AST_ADD, AST_SUB, AST_MUL, AST_DIV, AST_MOD, AST_MATMUL,
  AST_LT, AST_LE, AST_GT, AST_GE, AST_EQ, AST_NE,
  AST_AND, AST_OR,
} AstBinOp;

typedef enum AstUnOp { AST_NEG, AST_PLUS, AST_NOT } AstUnOp;

struct AstArg {
  AstArg *next;
  const char *name; /* NULL for a positional argument */
  AstExpr *value;
  CkcLoc loc;
};

struct AstExpr {
  AstExprKind kind;
  CkcLoc loc;
  union {
    int64_t ival;
    double fval;
    const char *str;
    const char *name;
    struct { AstExpr *object; const char *field; CkcLoc field_loc; } member;
    struct { AstExpr *callee; AstArg *args; int nargs; } call;
    struct { AstExpr *object; AstExpr *index; } index;
    struct { AstBinOp op; AstExpr *lhs, *rhs; } binary;
    struct { AstUnOp op; AstExpr *operand; } unary;
    struct { AstExpr **elems; int n; } tuple;
  } u;
};

/* ---- types: f32, i32[B, T], f32[..., C], bool[N] ------------------------ */

struct AstType {
  CkcLoc loc;
  const char *dtype;  /* "f32", "f64", "i32", "u8", "bool" (checked by sema) */
  bool is_tensor;     /* false for a bare scalar type `f32` */
  AstExpr **dims;     /* each a const expression, a dimension variable name,
                         or AST_EXPR_ELLIPSIS */
  int ndims;
};

/* ---- statements inside fn bodies ------------------------------------ */

typedef enum AstStmtKind {
  AST_STMT_LET,    /* let x [: type] = e;   */
  AST_STMT_ASSIGN, /* x = e;                */
  AST_STMT_RETURN, /* return e;             */
  AST_STMT_FOR,    /* for v in e { body }   */
  AST_STMT_EXPR,   /* e;                    */
} AstStmtKind;

struct AstStmt {
  AstStmt *next;
  AstStmtKind kind;
  CkcLoc loc;
  const char *name;   /* LET, ASSIGN: the variable; FOR: the loop variable */
  CkcLoc name_loc;
  AstType *type;      /* LET: optional annotation */
  AstExpr *expr;      /* LET, ASSIGN, RETURN, EXPR: the value; FOR: the iterable */
  AstStmt *body;      /* FOR */
};

/* ---- members of a layer or model ------------------------------------- */

typedef enum AstMemberKind {
  AST_MEMBER_PARAM, /* param w: f32[C, C] = normal(0.0, 0.02);                 */
  AST_MEMBER_LAYER, /* attn: Attention(C, H);   blocks: nn.Block(C, H)[L];    */
  AST_MEMBER_CONST, /* const D = C / H;                                        */
  AST_MEMBER_FN,    /* fn forward(x: f32[N, C]) -> f32[N, C] { ... }           */
} AstMemberKind;

/* A named, typed parameter of a fn, or a constructor argument of a layer
 * (type NULL, optional default value). */
struct AstField {
  AstField *next;
  const char *name;
  CkcLoc loc;
  AstType *type;
  AstExpr *deflt;
};

struct AstMember {
  AstMember *next;
  AstMemberKind kind;
  CkcLoc loc;
  const char *name;
  CkcLoc name_loc;
  /* PARAM */
  AstType *type;
  AstExpr *init;       /* initializer call, e.g. normal(0.0, 0.02); NULL = zeros */
  bool frozen;         /* `frozen param ...` (not trained) */
  /* LAYER: the constructor call (callee is a NAME or MEMBER such as nn.Block),
   * and the array count expression for `[L]` (NULL when not an array). */
  AstExpr *ctor;
  AstExpr *count;
  /* CONST */
  AstExpr *value;
  /* FN */
  AstField *params;
  AstType *ret;
  AstStmt *body;
};

/* ---- top-level declarations ------------------------------------------ */

typedef enum AstDeclKind {
  AST_DECL_IMPORT, /* import nn;  import nn.vision as vis;                */
  AST_DECL_CONST,  /* const V = 256;                                      */
  AST_DECL_LAYER,  /* layer Linear(in, out, bias = true) { members }      */
  AST_DECL_MODEL,  /* model TinyGPT { members }                           */
  AST_DECL_TRAIN,  /* train TinyGPT { key = expr; ... }                   */
} AstDeclKind;

/* One `key = expr;` item of a train block. */
typedef struct AstTrainItem AstTrainItem;
struct AstTrainItem {
  AstTrainItem *next;
  const char *key;
  CkcLoc loc;
  AstExpr *value;
};

struct AstDecl {
  AstDecl *next;
  AstDeclKind kind;
  CkcLoc loc;
  const char *name;       /* IMPORT: dotted module path; others: the declared name */
  CkcLoc name_loc;
  const char *alias;      /* IMPORT: `as` name, or NULL (then the last path part) */
  AstExpr *value;         /* CONST */
  AstField *args;         /* LAYER: constructor arguments */
  AstMember *members;     /* LAYER, MODEL */
  AstTrainItem *items;    /* TRAIN */
};

typedef struct AstFile {
  const char *path;
  int file;               /* CkcDiag source index */
  AstDecl *decls;
} AstFile;

/* Parses text (registered as source `file` in diag) into an AST. Returns NULL
 * only if nothing could be built; syntax errors are reported through diag
 * (several per run, recovering at statement and declaration boundaries) and
 * leave diag->nerrors > 0. Never crashes, whatever the bytes. */
AstFile *ckc_parse(CkcArena *arena, CkcDiag *diag, int file);

/* Debug printer used by the parser golden tests (one node per line, indented). */
void ast_print(const AstFile *f, CkcBuf *out);

/* Node constructors (frontend/ast.c), used by grammar/ckm.y: zeroed nodes in
 * the arena with kind and location set. */
AstExpr *ast_expr_new(CkcArena *a, AstExprKind kind, CkcLoc loc);
AstExpr *ast_binary_new(CkcArena *a, AstBinOp op, AstExpr *lhs, AstExpr *rhs, CkcLoc loc);
AstExpr *ast_unary_new(CkcArena *a, AstUnOp op, AstExpr *operand, CkcLoc loc);
AstType *ast_type_new(CkcArena *a, const char *dtype, CkcLoc loc);
AstStmt *ast_stmt_new(CkcArena *a, AstStmtKind kind, CkcLoc loc);
AstMember *ast_member_new(CkcArena *a, AstMemberKind kind, CkcLoc loc);
AstDecl *ast_decl_new(CkcArena *a, AstDeclKind kind, CkcLoc loc);
AstField *ast_field_new(CkcArena *a, const char *name, CkcLoc loc);
AstArg *ast_arg_new(CkcArena *a, const char *name, AstExpr *value, CkcLoc loc);
AstTrainItem *ast_item_new(CkcArena *a, const char *key, AstExpr *value, CkcLoc loc);
/* Source spelling of an operator: "+", "@", "&&", "-" (unary), "!". */
const char *ast_binop_name(AstBinOp op);
const char *ast_unop_name(AstUnOp op);

#endif
