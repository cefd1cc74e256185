/* grammar/ckm.y - the .ckm grammar (language v0, docs/design-notes.md).
 *
 * A pure LALR(1) parser with locations and LAC. Actions only build AST nodes
 * (frontend/ast.h); all meaning is given by sema. Syntax errors are reported
 * by yyreport_syntax_error below as "expected X, found Y" and the parser
 * recovers at statement, member and declaration boundaries (`error` rules),
 * so one run reports several errors. Nesting depth and the error limit are
 * enforced by the scanner (grammar/ckm.l), which then ends the input so the
 * parser winds down quietly. */

%require "3.8"
%expect 0
%define api.pure full
%define api.location.type {CkcLoc}
%define parse.error custom
%define parse.lac full
%locations
%param {yyscan_t scanner} {CkmParseCtx *pc}

%code requires {
#include <stdbool.h>
#include <stdint.h>

#include "frontend/ast.h"
#include "util/arena.h"
#include "util/diag.h"

#ifndef YY_TYPEDEF_YY_SCANNER_T
#define YY_TYPEDEF_YY_SCANNER_T
typedef void *yyscan_t;
#endif

/* More than this many levels of ( [ { or prefix operators is an error: later
 * stages recurse over the tree. */
#define CKM_MAX_NEST 256
/* A chain a + b + ... is a tree as deep as it is long: capped likewise. */
#define CKM_MAX_CHAIN 4096

/* An open bracket the scanner has seen but not yet closed. */
typedef struct CkmOpen {
  char ch;
  CkcLoc loc;
} CkmOpen;

/* Everything one parse needs: shared by the scanner (ckm.l), the parser and
 * frontend/parse.c. No globals: the scanner is reentrant, the parser pure. */
typedef struct CkmParseCtx {
  CkcArena *arena;
  CkcDiag *diag;
  int file;                /* CkcDiag source index */
  AstDecl *decls;          /* top-level declarations, appended as reduced, so */
  AstDecl *decls_tail;     /* a parse that stops early still keeps them       */
  bool stop;               /* nesting or error limit hit: scanner returns EOF */
  /* scanner position: where the next byte is */
  int line, col;
  /* the current lookahead token, for error messages */
  int tok;
  CkcLoc tok_loc;
  char tok_text[48];
  int tok_level;           /* bracket level before the current token */
  int prev_tok;            /* the last token returned (is '-' prefix or binary?) */
  CkcLoc prev_loc;
  int before_tok;          /* the token before the lookahead, for "after ')'" */
  char before_text[48];
  CkcLoc comment_start;    /* where the current block comment began */
  bool skipped_bad;        /* bytes were skipped as invalid since the last token */
  bool tok_after_bad;      /* ... just before the current token */
  int last_error_line;     /* line of the last syntax error reported */
  /* nesting: open brackets, and prefix operators pending at each level */
  int level;
  int unary_total;
  int unary[CKM_MAX_NEST + 2];
  int binary_total;        /* binary operators pending in the open expressions */
  int binary[CKM_MAX_NEST + 2];
  CkmOpen open[CKM_MAX_NEST + 2];
} CkmParseCtx;
}

%code provides {
int ckm_lex(YYSTYPE *lval, YYLTYPE *lloc, yyscan_t scanner, CkmParseCtx *pc);
int ckm_parse_run(yyscan_t scanner, CkmParseCtx *pc);
}

%code {
#include <string.h>

#define yylex ckm_lex
/* Nesting is capped by the scanner at CKM_MAX_NEST levels, so this is never
 * reached; it only has to exceed what 256 levels can push. */
#define YYMAXDEPTH 100000

/* A rule's span runs from its first symbol to its last; an empty rule sits
 * at the end of what precedes it. */
#define YYLLOC_DEFAULT(Cur, Rhs, N)                                   \
  do {                                                                \
    if (N) {                                                          \
      (Cur) = YYRHSLOC(Rhs, 1);                                       \
      (Cur).end_line = YYRHSLOC(Rhs, N).end_line;                     \
      (Cur).end_col = YYRHSLOC(Rhs, N).end_col;                       \
    } else {                                                          \
      (Cur) = YYRHSLOC(Rhs, 0);                                       \
      (Cur).line = (Cur).end_line;                                    \
      (Cur).col = (Cur).end_col;                                      \
    }                                                                 \
  } while (0)

static void yyerror(const YYLTYPE *loc, yyscan_t scanner, CkmParseCtx *pc, const char *msg);

/* Appends x (NULL after an error production: skipped) to a head/tail list. */
#define LIST_ADD(l, x)                         \
  do {                                         \
    if (x) {                                   \
      if ((l).tail) (l).tail->next = (x);      \
      else (l).head = (x);                     \
      (l).tail = (x);                          \
    }                                          \
  } while (0)
#define LIST_EMPTY(l) ((l).head = (l).tail = NULL)

#define EXPRS_PUSH(v, x)                                                               \
  do {                                                                                 \
    if ((v).n == (v).cap) {                                                            \
      int ncap_ = (v).cap ? (v).cap * 2 : 4;                                           \
      (v).items = ckc_arena_grow(pc->arena, (v).items, sizeof(AstExpr *), (size_t)(v).n, \
                                 (size_t)ncap_);                                       \
      (v).cap = ncap_;                                                                 \
    }                                                                                  \
    (v).items[(v).n++] = (x);                                                          \
  } while (0)

static AstExpr *mk_call(CkmParseCtx *pc, AstExpr *callee, AstArg *args, int nargs, CkcLoc loc);
static AstExpr *mk_tuple(CkmParseCtx *pc, AstExpr **items, int n, CkcLoc loc);
static AstMember *mk_sublayer(CkmParseCtx *pc, const char *name, CkcLoc name_loc, AstExpr *e,
                              CkcLoc loc);
}

%initial-action {
  @$.file = pc->file;
  @$.line = @$.end_line = 1;
  @$.col = @$.end_col = 1;
}

%union {
  int64_t ival;
  double fval;
  const char *str;
  AstExpr *expr;
  AstType *type;
  AstStmt *stmt;
  AstMember *member;
  AstDecl *decl;
  AstField *field;
  AstArg *arg;
  AstTrainItem *item;
  struct { AstStmt *head, *tail; } stmts;
  struct { AstMember *head, *tail; } members;
  struct { AstField *head, *tail; } fields;
  struct { AstArg *head, *tail; int n; } args;
  struct { AstTrainItem *head, *tail; } items;
  struct { AstExpr **items; int n, cap; } exprs;
}

%token <str>  IDENT  "identifier"
%token <ival> INT    "integer"
%token <fval> FLOAT  "number"
%token <str>  STRING "string"
%token IMPORT "import" AS "as" CONST "const" LAYER "layer" MODEL "model" TRAIN "train"
%token PARAM "param" FROZEN "frozen" FN "fn" LET "let" FOR "for" IN "in" RETURN "return"
%token TRUE "true" FALSE "false"
%token ARROW "->" ELLIPSIS "..." EQ "==" NE "!=" LE "<=" GE ">=" ANDAND "&&" OROR "||"

%left OROR
%left ANDAND
%left EQ NE
%left '<' LE '>' GE
%left '+' '-'
%left '*' '/' '%' '@'
%precedence UNARY

%type <decl> decl
%type <str> dotted argname
%type <members> members
%type <member> member param_member
%type <fields> ctor_args ctor_list fparams fparam_list
%type <field> ctor_arg fparam
%type <items> items
%type <item> item
%type <stmts> stmts block
%type <stmt> stmt
%type <type> type
%type <exprs> dims exprs
%type <expr> dim expr postfix primary
%type <args> args
%type <arg> arg

%%

/* file := decl*  (each decl is handed to the context as soon as it is built) */
file:
    %empty
  | file decl {
      if ($2) {
        if (pc->decls_tail) pc->decls_tail->next = $2;
        else pc->decls = $2;
        pc->decls_tail = $2;
      }
    }
  ;

/* decl := import | const | layer | model | train. After an error, skip to
 * the next ';', a balanced { } body, or the next declaration keyword. */
decl:
    IMPORT dotted ';' {
      $$ = ast_decl_new(pc->arena, AST_DECL_IMPORT, @$);
      $$->name = $2; $$->name_loc = @2;
    }
  | IMPORT dotted AS IDENT ';' {
      $$ = ast_decl_new(pc->arena, AST_DECL_IMPORT, @$);
      $$->name = $2; $$->name_loc = @2; $$->alias = $4;
    }
  | CONST IDENT '=' expr ';' {
      $$ = ast_decl_new(pc->arena, AST_DECL_CONST, @$);
      $$->name = $2; $$->name_loc = @2; $$->value = $4;
    }
  | LAYER IDENT '{' members '}' {
      $$ = ast_decl_new(pc->arena, AST_DECL_LAYER, @$);
      $$->name = $2; $$->name_loc = @2; $$->members = $4.head;
    }
  | LAYER IDENT '(' ctor_args ')' '{' members '}' {
      $$ = ast_decl_new(pc->arena, AST_DECL_LAYER, @$);
      $$->name = $2; $$->name_loc = @2; $$->args = $4.head; $$->members = $7.head;
    }
  | MODEL IDENT '{' members '}' {
      $$ = ast_decl_new(pc->arena, AST_DECL_MODEL, @$);
      $$->name = $2; $$->name_loc = @2; $$->members = $4.head;
    }
  | TRAIN IDENT '{' items '}' {
      $$ = ast_decl_new(pc->arena, AST_DECL_TRAIN, @$);
      $$->name = $2; $$->name_loc = @2; $$->items = $4.head;
    }
  | error ';'              { $$ = NULL; }
  | error '{' skip '}'     { $$ = NULL; }
  | error                  { $$ = NULL; }
  ;

/* dotted := NAME ('.' NAME)*   (an import path, kept as one string) */
dotted:
    IDENT               { $$ = $1; }
  | dotted '.' IDENT    { $$ = ckc_arena_printf(pc->arena, "%s.%s", $1, $3); }
  ;

/* ctor_args := NAME ('=' expr)? (',' NAME ('=' expr)?)* */
ctor_args:
    %empty              { LIST_EMPTY($$); }
  | ctor_list           { $$ = $1; }
  ;
ctor_list:
    ctor_arg                 { LIST_EMPTY($$); LIST_ADD($$, $1); }
  | ctor_list ',' ctor_arg   { $$ = $1; LIST_ADD($$, $3); }
  ;
ctor_arg:
    argname             { $$ = ast_field_new(pc->arena, $1, @$); }
  | argname '=' expr    { $$ = ast_field_new(pc->arena, $1, @$); $$->deflt = $3; }
  ;
/* `in` is a keyword only for `for v in e`; as a constructor or fn argument
 * name (Linear(in, out)) it is an ordinary name, and usable as one. */
argname:
    IDENT               { $$ = $1; }
  | IN                  { $$ = "in"; }
  ;

/* member* of a layer or model body; errors resynchronise at ';', a balanced
 * { } (a broken fn), or the start of the next member. */
members:
    %empty              { LIST_EMPTY($$); }
  | members member      { $$ = $1; LIST_ADD($$, $2); }
  ;

member:
    param_member        { $$ = $1; }
  | FROZEN param_member { $$ = $2; $$->frozen = true; $$->loc = @$; }
  | IDENT ':' expr ';'  { $$ = mk_sublayer(pc, $1, @1, $3, @$); }
  | CONST IDENT '=' expr ';' {
      $$ = ast_member_new(pc->arena, AST_MEMBER_CONST, @$);
      $$->name = $2; $$->name_loc = @2; $$->value = $4;
    }
  | FN IDENT '(' fparams ')' ARROW type block {
      $$ = ast_member_new(pc->arena, AST_MEMBER_FN, @$);
      $$->name = $2; $$->name_loc = @2; $$->params = $4.head; $$->ret = $7;
      $$->body = $8.head;
    }
  | error ';'              { $$ = NULL; }
  | error '{' skip '}'     { $$ = NULL; }
  | error                  { $$ = NULL; }
  ;

/* 'param' NAME ':' type ('=' expr)? ';' */
param_member:
    PARAM IDENT ':' type ';' {
      $$ = ast_member_new(pc->arena, AST_MEMBER_PARAM, @$);
      $$->name = $2; $$->name_loc = @2; $$->type = $4;
    }
  | PARAM IDENT ':' type '=' expr ';' {
      $$ = ast_member_new(pc->arena, AST_MEMBER_PARAM, @$);
      $$->name = $2; $$->name_loc = @2; $$->type = $4; $$->init = $6;
    }
  ;

/* fn parameters: NAME ':' type (',' NAME ':' type)* */
fparams:
    %empty              { LIST_EMPTY($$); }
  | fparam_list         { $$ = $1; }
  ;
fparam_list:
    fparam                   { LIST_EMPTY($$); LIST_ADD($$, $1); }
  | fparam_list ',' fparam   { $$ = $1; LIST_ADD($$, $3); }
  ;
fparam:
    argname ':' type      { $$ = ast_field_new(pc->arena, $1, @$); $$->type = $3; }
  ;

/* train body: (NAME '=' expr ';')* */
items:
    %empty              { LIST_EMPTY($$); }
  | items item          { $$ = $1; LIST_ADD($$, $2); }
  ;
item:
    IDENT '=' expr ';'  { $$ = ast_item_new(pc->arena, $1, $3, @$); }
  | error ';'           { $$ = NULL; }
  | error               { $$ = NULL; }
  ;

/* type := DTYPE | DTYPE '[' (dim (',' dim)*)? ']'     dim := expr | '...' */
type:
    IDENT               { $$ = ast_type_new(pc->arena, $1, @$); }
  | IDENT '[' ']'       { $$ = ast_type_new(pc->arena, $1, @$); $$->is_tensor = true; }
  | IDENT '[' dims ']'  {
      $$ = ast_type_new(pc->arena, $1, @$); $$->is_tensor = true;
      $$->dims = $3.items; $$->ndims = $3.n;
    }
  ;
dims:
    dim                 { $$.items = NULL; $$.n = $$.cap = 0; EXPRS_PUSH($$, $1); }
  | dims ',' dim        { $$ = $1; EXPRS_PUSH($$, $3); }
  ;
dim:
    expr                { $$ = $1; }
  | ELLIPSIS            { $$ = ast_expr_new(pc->arena, AST_EXPR_ELLIPSIS, @$); }
  ;

/* block := '{' stmt* '}' */
block:
    '{' stmts '}'       { $$ = $2; }
  ;
stmts:
    %empty              { LIST_EMPTY($$); }
  | stmts stmt          { $$ = $1; LIST_ADD($$, $2); }
  ;

/* stmt := let | assign | return | for | expr ';'. Errors resynchronise at
 * ';', a balanced { }, or the start of the next statement. */
stmt:
    LET IDENT '=' expr ';' {
      $$ = ast_stmt_new(pc->arena, AST_STMT_LET, @$);
      $$->name = $2; $$->name_loc = @2; $$->expr = $4;
    }
  | LET IDENT ':' type '=' expr ';' {
      $$ = ast_stmt_new(pc->arena, AST_STMT_LET, @$);
      $$->name = $2; $$->name_loc = @2; $$->type = $4; $$->expr = $6;
    }
  | IDENT '=' expr ';' {
      $$ = ast_stmt_new(pc->arena, AST_STMT_ASSIGN, @$);
      $$->name = $1; $$->name_loc = @1; $$->expr = $3;
    }
  | RETURN expr ';' {
      $$ = ast_stmt_new(pc->arena, AST_STMT_RETURN, @$);
      $$->expr = $2;
    }
  | FOR IDENT IN expr block {
      $$ = ast_stmt_new(pc->arena, AST_STMT_FOR, @$);
      $$->name = $2; $$->name_loc = @2; $$->expr = $4; $$->body = $5.head;
    }
  | expr ';' {
      $$ = ast_stmt_new(pc->arena, AST_STMT_EXPR, @$);
      $$->expr = $1;
    }
  | error ';'              { $$ = NULL; }
  | error '{' skip '}'     { $$ = NULL; }
  | error                  { $$ = NULL; }
  ;

/* Error recovery only: any balanced token sequence inside { }. */
skip:
    %empty
  | skip skip_tok
  | skip '{' skip '}'
  ;
skip_tok:
    IDENT | INT | FLOAT | STRING | IMPORT | AS | CONST | LAYER | MODEL | TRAIN
  | PARAM | FROZEN | FN | LET | FOR | IN | RETURN | TRUE | FALSE | ARROW | ELLIPSIS
  | EQ | NE | LE | GE | ANDAND | OROR | '(' | ')' | '[' | ']' | ',' | ';' | ':'
  | '.' | '=' | '+' | '-' | '*' | '/' | '%' | '@' | '<' | '>' | '!'
  ;

/* expr: binary operators by precedence (low to high) || && == != < <= > >=
 * + - * / % @, then prefix - + !, then postfix. */
expr:
    expr OROR expr      { $$ = ast_binary_new(pc->arena, AST_OR, $1, $3, @$); }
  | expr ANDAND expr    { $$ = ast_binary_new(pc->arena, AST_AND, $1, $3, @$); }
  | expr EQ expr        { $$ = ast_binary_new(pc->arena, AST_EQ, $1, $3, @$); }
  | expr NE expr        { $$ = ast_binary_new(pc->arena, AST_NE, $1, $3, @$); }
  | expr '<' expr       { $$ = ast_binary_new(pc->arena, AST_LT, $1, $3, @$); }
  | expr LE expr        { $$ = ast_binary_new(pc->arena, AST_LE, $1, $3, @$); }
  | expr '>' expr       { $$ = ast_binary_new(pc->arena, AST_GT, $1, $3, @$); }
  | expr GE expr        { $$ = ast_binary_new(pc->arena, AST_GE, $1, $3, @$); }
  | expr '+' expr       { $$ = ast_binary_new(pc->arena, AST_ADD, $1, $3, @$); }
  | expr '-' expr       { $$ = ast_binary_new(pc->arena, AST_SUB, $1, $3, @$); }
  | expr '*' expr       { $$ = ast_binary_new(pc->arena, AST_MUL, $1, $3, @$); }
  | expr '/' expr       { $$ = ast_binary_new(pc->arena, AST_DIV, $1, $3, @$); }
  | expr '%' expr       { $$ = ast_binary_new(pc->arena, AST_MOD, $1, $3, @$); }
  | expr '@' expr       { $$ = ast_binary_new(pc->arena, AST_MATMUL, $1, $3, @$); }
  | '-' expr %prec UNARY { $$ = ast_unary_new(pc->arena, AST_NEG, $2, @$); }
  | '+' expr %prec UNARY { $$ = ast_unary_new(pc->arena, AST_PLUS, $2, @$); }
  | '!' expr %prec UNARY { $$ = ast_unary_new(pc->arena, AST_NOT, $2, @$); }
  | postfix             { $$ = $1; }
  ;

/* postfix: call f(a, k = v), member a.b, index a[i] */
postfix:
    primary                     { $$ = $1; }
  | postfix '(' ')'             { $$ = mk_call(pc, $1, NULL, 0, @$); }
  | postfix '(' args ')'        { $$ = mk_call(pc, $1, $3.head, $3.n, @$); }
  | postfix '(' args ',' ')'    { $$ = mk_call(pc, $1, $3.head, $3.n, @$); }
  | postfix '.' IDENT {
      $$ = ast_expr_new(pc->arena, AST_EXPR_MEMBER, @$);
      $$->u.member.object = $1; $$->u.member.field = $3; $$->u.member.field_loc = @3;
    }
  | postfix '[' expr ']' {
      $$ = ast_expr_new(pc->arena, AST_EXPR_INDEX, @$);
      $$->u.index.object = $1; $$->u.index.index = $3;
    }
  ;
args:
    arg                 { LIST_EMPTY($$); $$.n = 1; LIST_ADD($$, $1); }
  | args ',' arg        { $$ = $1; $$.n++; LIST_ADD($$, $3); }
  ;
arg:
    expr                { $$ = ast_arg_new(pc->arena, NULL, $1, @$); }
  | IDENT '=' expr      { $$ = ast_arg_new(pc->arena, $1, $3, @$); }
  ;

/* primary := INT | FLOAT | STRING | true | false | NAME | '(' expr ')' | tuple
 * tuple := '(' ')' | '(' expr ',' ')' | '(' expr (',' expr)+ ','? ')' */
primary:
    INT       { $$ = ast_expr_new(pc->arena, AST_EXPR_INT, @$); $$->u.ival = $1; }
  | FLOAT     { $$ = ast_expr_new(pc->arena, AST_EXPR_FLOAT, @$); $$->u.fval = $1; }
  | STRING    { $$ = ast_expr_new(pc->arena, AST_EXPR_STRING, @$); $$->u.str = $1; }
  | TRUE      { $$ = ast_expr_new(pc->arena, AST_EXPR_BOOL, @$); $$->u.ival = 1; }
  | FALSE     { $$ = ast_expr_new(pc->arena, AST_EXPR_BOOL, @$); $$->u.ival = 0; }
  | IDENT     { $$ = ast_expr_new(pc->arena, AST_EXPR_NAME, @$); $$->u.name = $1; }
  | IN        { $$ = ast_expr_new(pc->arena, AST_EXPR_NAME, @$); $$->u.name = "in"; }
  | '(' expr ')'        { $$ = $2; $$->loc = @$; }
  | '(' ')'             { $$ = mk_tuple(pc, NULL, 0, @$); }
  | '(' expr ',' ')'    {
      AstExpr **one = CKC_NEW_ARRAY(pc->arena, AstExpr *, 1);
      one[0] = $2;
      $$ = mk_tuple(pc, one, 1, @$);
    }
  | '(' exprs ')'       { $$ = mk_tuple(pc, $2.items, $2.n, @$); }
  | '(' exprs ',' ')'   { $$ = mk_tuple(pc, $2.items, $2.n, @$); }
  ;
/* two or more comma-separated expressions (the body of a tuple) */
exprs:
    expr ',' expr {
      $$.items = NULL; $$.n = $$.cap = 0;
      EXPRS_PUSH($$, $1); EXPRS_PUSH($$, $3);
    }
  | exprs ',' expr      { $$ = $1; EXPRS_PUSH($$, $3); }
  ;

%%

/* f(args): the call node owns its argument list. */
static AstExpr *mk_call(CkmParseCtx *pc, AstExpr *callee, AstArg *args, int nargs, CkcLoc loc) {
  AstExpr *e = ast_expr_new(pc->arena, AST_EXPR_CALL, loc);
  e->u.call.callee = callee;
  e->u.call.args = args;
  e->u.call.nargs = nargs;
  return e;
}

/* (a, b, ...): elements in an arena array. */
static AstExpr *mk_tuple(CkmParseCtx *pc, AstExpr **items, int n, CkcLoc loc) {
  AstExpr *e = ast_expr_new(pc->arena, AST_EXPR_TUPLE, loc);
  e->u.tuple.elems = items;
  e->u.tuple.n = n;
  return e;
}

/* NAME ':' expr ';' - a sub-layer. `nn.Block(C, H)[L]` parses as an index
 * of the constructor call; it means an array of L instances, so the index
 * becomes the count and the object the constructor. */
static AstMember *mk_sublayer(CkmParseCtx *pc, const char *name, CkcLoc name_loc, AstExpr *e,
                              CkcLoc loc) {
  AstMember *m = ast_member_new(pc->arena, AST_MEMBER_LAYER, loc);
  m->name = name;
  m->name_loc = name_loc;
  if (e->kind == AST_EXPR_INDEX) {
    m->ctor = e->u.index.object;
    m->count = e->u.index.index;
  } else {
    m->ctor = e;
  }
  return m;
}

/* ---- syntax error messages ------------------------------------------------
 * "expected X, found Y": the expected set comes from LAC (exact, not just the
 * state's defaults); it is summarised into phrases ("expression", "statement")
 * so a message never lists a dozen tokens. */

/* How a token is named in a message: 'let', ')', identifier. Bison names
 * character tokens '(' and the others by their alias, unquoted. */
static void describe_symbol(CkcBuf *b, yysymbol_kind_t k) {
  const char *n = yysymbol_name(k);
  if (n[0] == '\'' || k == YYSYMBOL_IDENT || k == YYSYMBOL_INT || k == YYSYMBOL_FLOAT ||
      k == YYSYMBOL_STRING || k == YYSYMBOL_YYEOF)
    ckc_buf_puts(b, n);
  else
    ckc_buf_printf(b, "'%s'", n);
}

/* The lookahead as found: end of file, identifier 'x', number '1e5', 'let'. */
static void describe_token(CkcBuf *b, yysymbol_kind_t k, const char *text) {
  switch (k) {
    case YYSYMBOL_YYEOF: ckc_buf_puts(b, "end of file"); break;
    case YYSYMBOL_IDENT: ckc_buf_printf(b, "identifier '%s'", text); break;
    case YYSYMBOL_INT:
    case YYSYMBOL_FLOAT: ckc_buf_printf(b, "number '%s'", text); break;
    case YYSYMBOL_STRING: ckc_buf_printf(b, "string %s", text); break;
    default: describe_symbol(b, k); break;
  }
}

/* The symbol kind of a character token such as '*'. */
#define SYM(c) ((yysymbol_kind_t)YYTRANSLATE(c))

static char closer_of(char open) { return open == '(' ? ')' : open == '[' ? ']' : '}'; }

static yysymbol_kind_t closer_symbol(char c) {
  switch (c) {
    case ')': return SYM(')');
    case ']': return SYM(']');
    default: return SYM('}');
  }
}

/* Reports one syntax error: what the grammar could accept here, summarised,
 * and what was found; when a closing bracket is among the choices and its
 * opener is elsewhere (or the file ended), says which bracket it would close. */
static int yyreport_syntax_error(const yypcontext_t *ctx, yyscan_t scanner, CkmParseCtx *pc) {
  (void)scanner;
  if (pc->stop) return 0;
  /* The scanner already reported the bytes it skipped here; a second message
   * about the resulting token sequence would only repeat it. */
  if (pc->tok_after_bad) return 0;
  /* A second syntax error on the line of the first is nearly always the
   * recovery resynchronising inside the same mistake: stay quiet. */
  if (pc->last_error_line == pc->tok_loc.line) return 0;
  if (ckc_diag_too_many(pc->diag)) {
    pc->stop = true;
    return 0;
  }
  yysymbol_kind_t exp[YYNTOKENS];
  bool has[YYNTOKENS];
  memset(has, 0, sizeof has);
  int n = yypcontext_expected_tokens(ctx, exp, YYNTOKENS);
  for (int i = 0; i < n; i++)
    if (exp[i] >= 0 && exp[i] < YYNTOKENS) has[exp[i]] = true;
  yysymbol_kind_t found = yypcontext_token(ctx);
  CkcLoc loc = *yypcontext_location(ctx);

  bool closer_expected = false;
  const CkmOpen *open = NULL;
  if (pc->tok_level > 0 && pc->tok_level <= CKM_MAX_NEST + 1) {
    open = &pc->open[pc->tok_level];
    closer_expected = has[closer_symbol(closer_of(open->ch))];
  }

  /* After a complete expression the grammar also accepts every binary and
   * postfix operator; those are never what the user left out. */
  bool after_expr = has[SYM('*')] && has[SYM('@')];
  if (after_expr) {
    const yysymbol_kind_t ops[] = {
        YYSYMBOL_OROR, YYSYMBOL_ANDAND, YYSYMBOL_EQ, YYSYMBOL_NE, SYM('<'), YYSYMBOL_LE,
        SYM('>'),      YYSYMBOL_GE,     SYM('+'),    SYM('-'),    SYM('*'), SYM('/'),
        SYM('%'),      SYM('@'),        SYM('('),    SYM('['),    SYM('.')};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) has[ops[i]] = false;
  }
  const char *phrases[4];
  int nphrases = 0;
  const yysymbol_kind_t expr_start[] = {
      YYSYMBOL_IDENT, YYSYMBOL_INT, YYSYMBOL_FLOAT, YYSYMBOL_STRING, YYSYMBOL_TRUE,
      YYSYMBOL_FALSE, SYM('('),     SYM('-'),     SYM('+'),      SYM('!'),
      YYSYMBOL_IN};
  if (has[YYSYMBOL_INT] && has[SYM('!')]) {
    for (size_t i = 0; i < sizeof expr_start / sizeof expr_start[0]; i++) has[expr_start[i]] = false;
    if (has[YYSYMBOL_LET] && has[YYSYMBOL_RETURN]) {
      has[YYSYMBOL_LET] = has[YYSYMBOL_RETURN] = has[YYSYMBOL_FOR] = false;
      phrases[nphrases++] = "statement";
    } else {
      phrases[nphrases++] = "expression";
    }
  }
  if (has[YYSYMBOL_PARAM] && has[YYSYMBOL_FN]) {
    has[YYSYMBOL_PARAM] = has[YYSYMBOL_FROZEN] = has[YYSYMBOL_CONST] = has[YYSYMBOL_FN] = false;
    has[YYSYMBOL_IDENT] = false;
    phrases[nphrases++] = "member ('param', 'fn', 'const' or NAME ':' layer)";
  }
  if (has[YYSYMBOL_LAYER] && has[YYSYMBOL_MODEL]) {
    has[YYSYMBOL_IMPORT] = has[YYSYMBOL_CONST] = has[YYSYMBOL_LAYER] = has[YYSYMBOL_MODEL] =
        has[YYSYMBOL_TRAIN] = false;
    phrases[nphrases++] = "declaration ('import', 'const', 'layer', 'model' or 'train')";
  }
  has[YYSYMBOL_YYEOF] = false;

  int nitems = nphrases;
  for (int k = 0; k < YYNTOKENS; k++)
    if (has[k]) nitems++;

  CkcBuf b;
  ckc_buf_init(&b, pc->arena);
  if (nitems == 0 || nitems > 5) {
    ckc_buf_puts(&b, "unexpected ");
    describe_token(&b, found, pc->tok_text);
    if (after_expr) ckc_buf_puts(&b, " after expression");
  } else {
    ckc_buf_puts(&b, "expected ");
    int done = 0;
    for (int i = 0; i < nphrases; i++, done++) {
      if (done) ckc_buf_puts(&b, done == nitems - 1 ? " or " : ", ");
      ckc_buf_puts(&b, phrases[i]);
    }
    /* closing brackets last: "expected ',' or ')'" */
    for (int pass = 0; pass < 2; pass++) {
      for (int k = 0; k < YYNTOKENS; k++) {
        bool closer = k == SYM(')') || k == SYM(']') || k == SYM('}');
        if (!has[k] || closer != (pass == 1)) continue;
        if (done) ckc_buf_puts(&b, done == nitems - 1 ? " or " : ", ");
        describe_symbol(&b, (yysymbol_kind_t)k);
        done++;
      }
    }
    if (after_expr) {
      ckc_buf_puts(&b, " after expression");
    } else if (pc->before_tok > 0 && pc->before_tok != ';' && pc->before_tok != '{' &&
               pc->before_tok != '}') {
      ckc_buf_puts(&b, " after ");
      describe_token(&b, YYTRANSLATE(pc->before_tok), pc->before_text);
    }
    bool far = found == YYSYMBOL_YYEOF || (open && open->loc.line != loc.line);
    if (closer_expected && far)
      ckc_buf_printf(&b, " (to close '%c' at line %d)", open->ch, open->loc.line);
    ckc_buf_puts(&b, ", found ");
    describe_token(&b, found, pc->tok_text);
  }
  ckc_error(pc->diag, loc, "E0110", "%s", ckc_buf_str(&b));
  pc->last_error_line = loc.line;
  if (open && found == YYSYMBOL_YYEOF) {
    if (closer_expected)
      ckc_note(pc->diag, open->loc, "'%c' opened here", open->ch);
    else
      ckc_note(pc->diag, open->loc, "'%c' opened here is never closed", open->ch);
  }
  if (ckc_diag_too_many(pc->diag)) pc->stop = true;
  return 0;
}

/* Bison's own messages: only "memory exhausted", unreachable because the
 * scanner caps nesting; reported as the nesting error rather than crashing. */
static void yyerror(const YYLTYPE *loc, yyscan_t scanner, CkmParseCtx *pc, const char *msg) {
  (void)scanner;
  if (pc->stop) return;
  ckc_error(pc->diag, *loc, "E0111", "nesting too deep (%s)", msg);
  pc->stop = true;
}

/* Entry point for frontend/parse.c (yyparse itself keeps Bison's name). */
int ckm_parse_run(yyscan_t scanner, CkmParseCtx *pc) { return yyparse(scanner, pc); }
