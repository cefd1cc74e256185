/* frontend/elab.c - elaboration: layer instances, fn signatures and bodies,
 * builtins, all turned into IR graphs.
 *
 * Every distinct (layer, constructor arguments) is one SemaInst, built once;
 * every distinct (instance, fn, argument types) is one IrGraph, named
 * "nn.Block(128,4).forward" and built once. Calls to another instance's fn
 * become CALL nodes carrying the instance path relative to the caller
 * ("blocks.2", "attn"); parameters are PARAM nodes named relative to the
 * graph's own instance ("weight", "attn.c_attn.weight") and the inline pass
 * prefixes them. Expressions that already failed evaluate to SV_POISON so one
 * mistake gives one error. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "frontend/sema_int.h"

/* ---- small helpers --------------------------------------------------------------- */

static const char *join_path(Sema *S, const char *path, const char *name) {
  if (!path || !path[0]) return name;
  return ckc_arena_printf(S->a, "%s.%s", path, name);
}

static SemaVal tensor_val(IrNode *n) {
  SemaVal v = sema_poison();
  if (n) {
    v.kind = SV_TENSOR;
    v.node = n;
  }
  return v;
}

/* Source-like text of a callee or operand, for messages: nn.Block, blocks[2]. */
static const char *expr_text(Sema *S, const AstExpr *e) {
  if (!e) return "expression";
  switch (e->kind) {
  case AST_EXPR_NAME: return e->u.name;
  case AST_EXPR_MEMBER:
    return ckc_arena_printf(S->a, "%s.%s", expr_text(S, e->u.member.object), e->u.member.field);
  case AST_EXPR_INDEX: {
    const AstExpr *ix = e->u.index.index;
    if (ix && ix->kind == AST_EXPR_INT)
      return ckc_arena_printf(S->a, "%s[%lld]", expr_text(S, e->u.index.object),
                              (long long)ix->u.ival);
    return ckc_arena_printf(S->a, "%s[...]", expr_text(S, e->u.index.object));
  }
  case AST_EXPR_CALL: return ckc_arena_printf(S->a, "%s(...)", expr_text(S, e->u.call.callee));
  default: return "expression";
  }
}

static const char *type_str(Sema *S, const IrNode *n) { return sema_type_str(S, n->dtype, &n->shape); }

/* Reports a shape-rule failure from the IR builder at the expression. */
static SemaVal ir_failed(Sema *S, CkcLoc loc, const IrErr *err) {
  sema_error(S, loc, err->id ? err->id : "E0310", "%s", err->msg);
  return sema_poison();
}

/* Every op result must have a representable element count. */
static SemaVal checked(Sema *S, IrNode *n, CkcLoc loc, const IrErr *err) {
  if (!n) return ir_failed(S, loc, err);
  int64_t cnt;
  if (!ck_shape_numel(&n->shape, &cnt) ||
      cnt > INT64_MAX / (int64_t)(ck_dtype_size(n->dtype) ? ck_dtype_size(n->dtype) : 1)) {
    sema_error(S, loc, "E0305", "%s: the result has too many elements", ir_op_name(n->op));
    return sema_poison();
  }
  return tensor_val(n);
}

static SemaVal mk_op(Sema *S, SemaScope *sc, IrOp op, IrNode *const *in, int nin,
                     const IrAttr *at, int nat, CkcLoc loc) {
  IrErr err;
  memset(&err, 0, sizeof err);
  IrNode *n = ir_op(sc->g, op, in, nin, at, nat, NULL, loc, &err);
  return checked(S, n, loc, &err);
}

/* A value used where a tensor is needed; the message names what it was. */
static IrNode *want_tensor(Sema *S, SemaVal v, CkcLoc loc, const char *what) {
  switch (v.kind) {
  case SV_TENSOR: return v.node;
  case SV_POISON: return NULL;
  case SV_LAYER:
    sema_error(S, loc, "E0206", "%s: a layer is not a value (declare an instance as a member: name: %s(...);)",
               what, v.decl && v.decl->name ? v.decl->name : "Layer");
    return NULL;
  case SV_INST:
  case SV_METHOD:
    sema_error(S, loc, "E0206", "%s: expected a tensor, got %s (call it: %s(x))", what,
               sema_val_kind_str(S, &v), v.path && v.path[0] ? v.path : "layer");
    return NULL;
  default:
    sema_error(S, loc, "E0304", "%s: expected a tensor, got %s", what, sema_val_kind_str(S, &v));
    return NULL;
  }
}

/* Number literals take the dtype of the tensor they meet. */
static IrNode *const_as(Sema *S, SemaScope *sc, SemaVal v, CkDType dt, CkcLoc loc, const char *what) {
  if (v.kind == SV_FLOAT && !ck_dtype_is_float(dt) && v.f != floor(v.f)) {
    sema_error(S, loc, "E0303", "%s: the float constant %s cannot take the dtype %s (use cast)",
               what, sema_val_str(S, &v), ck_dtype_name(dt));
    return NULL;
  }
  if (v.kind == SV_BOOL && dt != CK_DT_BOOL) {
    sema_error(S, loc, "E0303", "%s: a bool constant cannot take the dtype %s", what,
               ck_dtype_name(dt));
    return NULL;
  }
  if (v.kind != SV_BOOL && dt == CK_DT_BOOL) {
    sema_error(S, loc, "E0303", "%s: the number %s cannot take the dtype bool", what,
               sema_val_str(S, &v));
    return NULL;
  }
  double x = v.kind == SV_FLOAT ? v.f : (double)v.i;
  return ir_const_scalar(sc->g, dt, x, loc);
}

/* ---- instances ------------------------------------------------------------------- */

static const char *layer_qname(Sema *S, SemaModule *mod, AstDecl *decl) {
  if (mod->dotted) return ckc_arena_printf(S->a, "%s.%s", mod->dotted, decl->name);
  (void)S;
  return decl->name;
}

/* `param w: f32[C, C]`: the type must be concrete, positive and of
 * representable size; `what` names it in messages. */
static bool concrete_type(Sema *S, SemaScope *sc, AstType *t, const char *what, CkDType *dt,
                          CkShape *shape) {
  memset(shape, 0, sizeof *shape);
  if (!t) return false;
  if (!t->dtype || !ck_dtype_from_name(t->dtype, dt)) {
    static const char *const names[] = {"f32", "f64", "i32", "u8", "bool"};
    const char *sug = t->dtype ? sema_suggest(t->dtype, names, 5) : NULL;
    return sema_error(S, t->loc, "E0207", "unknown dtype '%s'%s%s%s (dtypes: f32 f64 i32 u8 bool)",
                      t->dtype ? t->dtype : "", sug ? "; did you mean '" : "", sug ? sug : "",
                      sug ? "'?" : "");
  }
  if (!t->is_tensor) return true;
  if (t->ndims > CK_MAX_RANK)
    return sema_error(S, t->loc, "E0350", "%s has %d dims; at most %d are supported", what,
                      t->ndims, CK_MAX_RANK);
  bool ok = true;
  for (int i = 0; i < t->ndims; i++) {
    AstExpr *e = t->dims[i];
    if (!e) return false;
    if (e->kind == AST_EXPR_ELLIPSIS) {
      ok = sema_error(S, e->loc, "E0306", "%s must have a concrete type; '...' is not allowed here",
                      what);
      continue;
    }
    SemaVal v;
    if (e->kind == AST_EXPR_NAME && !sema_lookup(S, sc, e->u.name, e->loc, &v)) {
      ok = sema_error(S, e->loc, "E0306",
                      "%s must have a concrete type; dimension '%s' is not a constant", what,
                      e->u.name);
      continue;
    }
    int64_t x;
    if (!sema_eval_int(S, sc, e, "a dimension", &x)) {
      ok = false;
      continue;
    }
    if (x <= 0) {
      ok = sema_error(S, e->loc, "E0305", "dimension %d of %s must be positive, got %lld", i,
                      what, (long long)x);
      continue;
    }
    shape->dims[i] = x;
  }
  shape->rank = t->ndims;
  if (!ok) return false;
  int64_t cnt;
  if (!ck_shape_numel(shape, &cnt) || cnt > INT64_MAX / (int64_t)ck_dtype_size(*dt))
    return sema_error(S, t->loc, "E0305", "%s: type %s has too many elements", what,
                      sema_type_str(S, *dt, shape));
  return true;
}

typedef struct InitSpec {
  const char *name;
  const char *params[2];
  int n;
} InitSpec;

static const InitSpec init_specs[] = {
    {"normal", {"mean", "std"}, 2},     {"uniform", {"low", "high"}, 2},
    {"constant", {"value", NULL}, 1},   {"zeros", {NULL, NULL}, 0},
    {"ones", {NULL, NULL}, 0},          {"xavier_uniform", {NULL, NULL}, 0},
    {"kaiming_uniform", {NULL, NULL}, 0},
};

/* param initialisers: normal(mean, std), uniform(low, high), zeros(),
 * ones(), constant(value) (+ xavier/kaiming with fans from the shape). */
static bool resolve_init(Sema *S, SemaScope *sc, SemaMemb *mb) {
  AstExpr *e = mb->m->init;
  mb->nattrs = 0;
  if (!e) {
    mb->attrs[mb->nattrs++] = ir_attr_str("init", "zeros");
    return true;
  }
  const char *names[7];
  for (int i = 0; i < 7; i++) names[i] = init_specs[i].name;
  if (e->kind != AST_EXPR_CALL || !e->u.call.callee || e->u.call.callee->kind != AST_EXPR_NAME)
    return sema_error(S, e->loc, "E0354",
                      "a param initialiser is a call: normal(mean, std), uniform(low, high), zeros(), ones() or constant(value)");
  const char *fname = e->u.call.callee->u.name;
  const InitSpec *spec = NULL;
  for (int i = 0; i < 7; i++)
    if (strcmp(init_specs[i].name, fname) == 0) spec = &init_specs[i];
  if (!spec) {
    const char *sug = sema_suggest(fname, names, 7);
    return sema_error(S, e->u.call.callee->loc, "E0354",
                      "unknown initialiser '%s'%s%s%s (expected normal, uniform, zeros, ones, constant)",
                      fname, sug ? "; did you mean '" : "", sug ? sug : "", sug ? "'?" : "");
  }
  double vals[2] = {0, 0};
  bool given[2] = {false, false};
  int npos = 0;
  bool ok = true;
  for (AstArg *a = e->u.call.args; a; a = a->next) {
    int slot = -1;
    if (a->name) {
      for (int j = 0; j < spec->n; j++)
        if (strcmp(spec->params[j], a->name) == 0) slot = j;
      if (slot < 0) {
        ok = sema_error(S, a->loc, "E0208", "%s has no argument named '%s'", spec->name, a->name);
        continue;
      }
    } else {
      slot = npos++;
      if (slot >= spec->n) {
        ok = sema_error(S, e->loc, "E0300", "%s expects %d positional argument%s, got %d",
                        spec->name, spec->n, spec->n == 1 ? "" : "s", e->u.call.nargs);
        break;
      }
    }
    if (given[slot]) {
      ok = sema_error(S, a->loc, "E0219", "argument '%s' of %s given twice", spec->params[slot],
                      spec->name);
      continue;
    }
    given[slot] = true;
    SemaVal v;
    if (!sema_eval_const(S, sc, a->value, &v)) {
      ok = false;
      continue;
    }
    if (v.kind != SV_INT && v.kind != SV_FLOAT) {
      ok = sema_error(S, a->loc, "E0354", "%s: '%s' must be a number, got %s", spec->name,
                      spec->params[slot], sema_val_kind_str(S, &v));
      continue;
    }
    vals[slot] = v.kind == SV_FLOAT ? v.f : (double)v.i;
  }
  if (!ok) return false;
  for (int j = 0; j < spec->n; j++)
    if (!given[j])
      return sema_error(S, e->loc, "E0300", "%s expects %d positional argument%s (missing '%s')",
                        spec->name, spec->n, spec->n == 1 ? "" : "s", spec->params[j]);
  mb->attrs[mb->nattrs++] = ir_attr_str("init", spec->name);
  if (strcmp(spec->name, "normal") == 0) {
    if (vals[1] < 0) return sema_error(S, e->loc, "E0354", "normal: std must not be negative");
    mb->attrs[mb->nattrs++] = ir_attr_float("mean", vals[0]);
    mb->attrs[mb->nattrs++] = ir_attr_float("std", vals[1]);
  } else if (strcmp(spec->name, "uniform") == 0) {
    if (vals[0] > vals[1])
      return sema_error(S, e->loc, "E0354", "uniform: low (%g) is greater than high (%g)",
                        vals[0], vals[1]);
    mb->attrs[mb->nattrs++] = ir_attr_float("low", vals[0]);
    mb->attrs[mb->nattrs++] = ir_attr_float("high", vals[1]);
  } else if (strcmp(spec->name, "constant") == 0) {
    mb->attrs[mb->nattrs++] = ir_attr_float("value", vals[0]);
  } else if (strcmp(spec->name, "xavier_uniform") == 0 ||
             strcmp(spec->name, "kaiming_uniform") == 0) {
    /* PyTorch's fans: dim 1 and dim 0 times the receptive field */
    int64_t rf = 1;
    for (int i = 2; i < mb->shape.rank; i++) rf *= mb->shape.dims[i];
    int64_t fin = mb->shape.rank >= 2 ? mb->shape.dims[1] * rf : mb->shape.rank ? mb->shape.dims[0] : 1;
    int64_t fout = mb->shape.rank >= 1 ? mb->shape.dims[0] * rf : 1;
    mb->attrs[mb->nattrs++] = ir_attr_int("fan_in", fin);
    mb->attrs[mb->nattrs++] = ir_attr_int("fan_out", fout);
  }
  return true;
}

static bool in_building(Sema *S, AstDecl *decl) {
  for (int i = 0; i < S->building.len; i++)
    if (S->building.items[i]->decl == decl) return true;
  return false;
}

/* `blocks: nn.Block(C, H)[L];` inside inst: the sub-instance (shared by
 * every element) and, for arrays, the element count. */
static void resolve_sublayer(Sema *S, SemaInst *inst, SemaMemb *mb) {
  SemaScope sc = {.mod = inst->mod, .inst = inst};
  /* errors while the sub-instance is built point back at this declaration;
   * sema_make_instance names the frame once it knows the instance */
  SemaCtx fr = {SEMA_CTX_INST, NULL, mb->m->name, mb->m->loc};
  CKC_VEC_PUSH(S->a, S->ctx, fr);
  int depth = S->ctx.len;
  SemaInst *sub = sema_instantiate(S, &sc, mb->m->ctor, mb->m->loc);
  CKC_ASSERT(S->ctx.len == depth);
  S->ctx.len--;
  if (!sub) return;
  SemaVal v = sema_poison();
  v.inst = sub;
  v.path = mb->m->name;
  if (mb->m->count) {
    int64_t n;
    if (!sema_eval_int(S, &sc, mb->m->count, "the instance count", &n)) return;
    if (n <= 0 || n > 100000) {
      sema_error(S, mb->m->count->loc, "E0305", "instance count of '%s' must be in 1..100000, got %lld",
                 mb->m->name, (long long)n);
      return;
    }
    v.kind = SV_ARRAY;
    v.i = n;
  } else {
    v.kind = SV_INST;
  }
  mb->val = v;
}

/* One instance per (layer, constructor arguments); args are complete and in
 * declaration order. A layer that contains itself (directly or not) would
 * never finish instantiating: it is an error, not a stack overflow. */
SemaInst *sema_make_instance(Sema *S, SemaModule *mod, AstDecl *decl, const SemaVal *args,
                             int nargs, int nshow, CkcLoc loc) {
  const char *qname = layer_qname(S, mod, decl);
  const char *key = qname;
  if (decl->kind == AST_DECL_LAYER && decl->args) {
    CkcBuf b;
    ckc_buf_init(&b, S->a);
    ckc_buf_printf(&b, "%s(", qname);
    for (int i = 0; i < nshow && i < nargs; i++)
      ckc_buf_printf(&b, "%s%s", i ? "," : "", sema_val_str(S, &args[i]));
    ckc_buf_putc(&b, ')');
    key = ckc_arena_strdup(S->a, ckc_buf_str(&b));
  }
  for (int i = 0; i < S->insts.len; i++) {
    SemaInst *old = S->insts.items[i];
    if (strcmp(old->key, key) != 0 || old->mod != mod) continue;
    if (old->state == 0) {
      sema_error(S, loc, "E0210", "layer '%s' contains itself", qname);
      sema_note(S, decl->name_loc, "'%s' is declared here", qname);
      return NULL;
    }
    return old;
  }
  if (in_building(S, decl)) {
    sema_error(S, loc, "E0210", "layer '%s' contains itself (as %s)", qname, key);
    sema_note(S, decl->name_loc, "'%s' is declared here", qname);
    return NULL;
  }
  /* from here on errors are inside this instance: the member declaration
   * that asked for it (resolve_sublayer's frame) says so */
  if (S->ctx.len && S->ctx.items[S->ctx.len - 1].kind == SEMA_CTX_INST &&
      !S->ctx.items[S->ctx.len - 1].what)
    S->ctx.items[S->ctx.len - 1].what = key;
  SemaInst *inst = CKC_NEW(S->a, SemaInst);
  inst->decl = decl;
  inst->mod = mod;
  inst->key = key;
  inst->is_model = decl->kind == AST_DECL_MODEL;
  inst->nargs = nargs;
  inst->argnames = CKC_NEW_ARRAY(S->a, const char *, nargs ? nargs : 1);
  inst->args = CKC_NEW_ARRAY(S->a, SemaVal, nargs ? nargs : 1);
  int i = 0;
  for (AstField *f = decl->args; f && i < nargs; f = f->next, i++) {
    inst->argnames[i] = f->name;
    inst->args[i] = args[i];
  }
  CKC_VEC_PUSH(S->a, S->insts, inst);
  CKC_VEC_PUSH(S->a, S->building, inst);
  /* members: one namespace with the constructor arguments */
  for (AstMember *m = decl->members; m; m = m->next) {
    if (!m->name) continue;
    SemaMemb *old = sema_inst_member(inst, m->name);
    AstField *oldarg = NULL;
    for (AstField *f = decl->args; f; f = f->next)
      if (f->name && strcmp(f->name, m->name) == 0) oldarg = f;
    if (old || oldarg) {
      sema_error(S, m->name_loc, "E0202", "duplicate definition of '%s' in %s '%s'", m->name,
                 inst->is_model ? "model" : "layer", decl->name);
      sema_note(S, old ? old->m->name_loc : oldarg->loc, "'%s' was first defined here", m->name);
      continue;
    }
    SemaMemb *mb = CKC_NEW(S->a, SemaMemb);
    mb->m = m;
    CKC_VEC_PUSH(S->a, inst->members, mb);
  }
  for (int k = 0; k < inst->members.len; k++) {
    SemaMemb *mb = inst->members.items[k];
    SemaScope sc = {.mod = mod, .inst = inst};
    switch (mb->m->kind) {
    case AST_MEMBER_PARAM: {
      const char *what = ckc_arena_printf(S->a, "param '%s'", mb->m->name);
      mb->ok = concrete_type(S, &sc, mb->m->type, what, &mb->dt, &mb->shape) &&
               resolve_init(S, &sc, mb);
      if (mb->ok && mb->m->frozen) mb->attrs[mb->nattrs++] = ir_attr_int("frozen", 1);
      break;
    }
    case AST_MEMBER_LAYER: resolve_sublayer(S, inst, mb); break;
    case AST_MEMBER_CONST: {
      SemaVal v;
      sema_member_const(S, inst, mb, &v);
      break;
    }
    case AST_MEMBER_FN: {
      /* parameter names are distinct */
      for (AstField *f = mb->m->params; f; f = f->next)
        for (AstField *g = mb->m->params; g != f; g = g->next)
          if (f->name && g->name && strcmp(f->name, g->name) == 0) {
            sema_error(S, f->loc, "E0218", "fn '%s' has two parameters named '%s'", mb->m->name,
                       f->name);
            break;
          }
      break;
    }
    }
  }
  S->building.len--;
  inst->state = 1;
  return inst;
}

/* A constructor call in a member declaration: `nn.Block(C, H)` (or a bare
 * layer name when the layer takes no arguments). Arguments are constants
 * evaluated in the enclosing scope; defaults in the layer's own. */
SemaInst *sema_instantiate(Sema *S, SemaScope *sc, AstExpr *ctor, CkcLoc loc) {
  if (!ctor) return NULL;
  AstExpr *callee = ctor->kind == AST_EXPR_CALL ? ctor->u.call.callee : ctor;
  AstArg *cargs = ctor->kind == AST_EXPR_CALL ? ctor->u.call.args : NULL;
  int ncargs = ctor->kind == AST_EXPR_CALL ? ctor->u.call.nargs : 0;
  SemaScope csc = *sc;
  csc.g = NULL;
  SemaVal lv = sema_eval(S, &csc, callee);
  if (lv.kind == SV_POISON) return NULL;
  if (lv.kind != SV_LAYER) {
    sema_error(S, callee->loc, "E0214", "'%s' is not a layer (it is %s)", expr_text(S, callee),
               sema_val_kind_str(S, &lv));
    return NULL;
  }
  AstDecl *decl = lv.decl;
  if (decl->kind == AST_DECL_MODEL) {
    sema_error(S, callee->loc, "E0214", "'%s' is a model; only layers can be members",
               expr_text(S, callee));
    return NULL;
  }
  int nparams = 0;
  for (AstField *f = decl->args; f; f = f->next) nparams++;
  const char *qname = layer_qname(S, lv.mod, decl);
  AstExpr **given = CKC_NEW_ARRAY(S->a, AstExpr *, nparams ? nparams : 1);
  bool ok = true;
  int npos = 0;
  for (AstArg *a = cargs; a; a = a->next) {
    int slot = -1;
    if (a->name) {
      int j = 0;
      for (AstField *f = decl->args; f; f = f->next, j++)
        if (f->name && strcmp(f->name, a->name) == 0) slot = j;
      if (slot < 0) {
        const char *names[32];
        int nn = 0;
        for (AstField *f = decl->args; f && nn < 32; f = f->next) names[nn++] = f->name;
        const char *sug = sema_suggest(a->name, names, nn);
        ok = sema_error(S, a->loc, "E0208", "layer %s has no argument named '%s'%s%s%s", qname,
                        a->name, sug ? "; did you mean '" : "", sug ? sug : "", sug ? "'?" : "");
        continue;
      }
    } else {
      slot = npos++;
      if (slot >= nparams) {
        int nreq = 0;
        for (AstField *f = decl->args; f; f = f->next) nreq += f->deflt == NULL;
        if (nreq == nparams)
          ok = sema_error(S, ctor->loc, "E0300", "%s expects %d argument%s, got %d", qname, nparams,
                          nparams == 1 ? "" : "s", ncargs);
        else
          ok = sema_error(S, ctor->loc, "E0300", "%s expects %d to %d arguments, got %d", qname,
                          nreq, nparams, ncargs);
        break;
      }
    }
    if (given[slot]) {
      int j = 0;
      const char *pn = "?";
      for (AstField *f = decl->args; f; f = f->next, j++)
        if (j == slot) pn = f->name;
      ok = sema_error(S, a->loc, "E0219", "argument '%s' of %s given twice", pn, qname);
      continue;
    }
    given[slot] = a->value;
  }
  if (!ok) return NULL;
  SemaVal *vals = CKC_NEW_ARRAY(S->a, SemaVal, nparams ? nparams : 1);
  /* defaults see the earlier arguments: a scratch instance holds them */
  SemaInst tmp;
  memset(&tmp, 0, sizeof tmp);
  tmp.decl = decl;
  tmp.mod = lv.mod;
  tmp.argnames = CKC_NEW_ARRAY(S->a, const char *, nparams ? nparams : 1);
  tmp.args = vals;
  int j = 0, nshow = 0;
  for (AstField *f = decl->args; f; f = f->next, j++) {
    SemaVal dv = sema_poison();
    if (f->deflt) {
      /* a default is the layer's code run for this member: a mistake in it
       * names the declaration (the instance key is not known yet) */
      SemaCtx *fr = S->ctx.len ? &S->ctx.items[S->ctx.len - 1] : NULL;
      bool named = fr && fr->kind == SEMA_CTX_INST && !fr->what;
      if (named) fr->what = qname;
      SemaScope dsc = {.mod = lv.mod, .inst = &tmp};
      if (!sema_eval_const(S, &dsc, f->deflt, &dv)) ok = false;
      if (named) S->ctx.items[S->ctx.len - 1].what = NULL;
    }
    if (given[j]) {
      if (!sema_eval_const(S, &csc, given[j], &vals[j])) ok = false;
    } else if (f->deflt) {
      vals[j] = dv;
    } else {
      ok = sema_error(S, ctor->loc, "E0300", "%s: missing argument '%s'", qname, f->name);
    }
    /* names show the arguments up to the last one that differs from its default */
    bool is_default = f->deflt && dv.kind == vals[j].kind &&
                      (dv.kind == SV_FLOAT ? dv.f == vals[j].f : dv.i == vals[j].i);
    if (!is_default) nshow = j + 1;
    tmp.argnames[j] = f->name;
    tmp.nargs = j + 1;
  }
  if (!ok) return NULL;
  return sema_make_instance(S, lv.mod, decl, vals, nparams, nshow, loc);
}

/* A member reached through an instance at path. */
SemaVal sema_member_val(Sema *S, SemaScope *sc, SemaInst *inst, SemaMemb *mb, const char *path,
                        CkcLoc loc) {
  SemaVal v = sema_poison();
  switch (mb->m->kind) {
  case AST_MEMBER_CONST: sema_member_const(S, inst, mb, &v); return v;
  case AST_MEMBER_PARAM:
    if (!mb->ok) return v;
    if (!sc->g) {
      sema_error(S, loc, "E0403", "param '%s' is not a constant", mb->m->name);
      return v;
    }
    return tensor_val(ir_param(sc->g, join_path(S, path, mb->m->name), mb->dt, &mb->shape,
                               mb->attrs, mb->nattrs, mb->m->loc));
  case AST_MEMBER_LAYER:
    if (mb->val.kind == SV_POISON) return v;
    v = mb->val;
    v.path = join_path(S, path, mb->m->name);
    return v;
  case AST_MEMBER_FN:
    v.kind = SV_METHOD;
    v.inst = inst;
    v.path = path;
    v.fn = mb->m;
    return v;
  }
  return v;
}

/* ---- signatures: declared types against actual ones ------------------------------------ */

typedef enum { DS_CONST, DS_VAR, DS_ELL, DS_BAD } DimKind;
typedef struct DimSpec {
  DimKind kind;
  int64_t val;
  const char *name;
} DimSpec;

/* Classifies the dims of a declared type: constants (evaluated now), dimension
 * variables (names not in scope, or already bound), and `...`. */
static bool dim_specs(Sema *S, SemaScope *sc, AstType *t, DimSpec *ds, int *nell) {
  *nell = 0;
  bool ok = true;
  for (int i = 0; i < t->ndims; i++) {
    AstExpr *e = t->dims[i];
    ds[i].kind = DS_BAD;
    if (!e) {
      ok = false;
      continue;
    }
    if (e->kind == AST_EXPR_ELLIPSIS) {
      if (++*nell > 1) ok = sema_error(S, e->loc, "E0350", "at most one '...' per type");
      ds[i].kind = DS_ELL;
      continue;
    }
    SemaVal v;
    if (e->kind == AST_EXPR_NAME) {
      bool bound_dim = false;
      for (SemaFrame *f = sc->frame; f; f = f->parent)
        for (int k = 0; k < f->locals.len; k++)
          if (f->locals.items[k].is_dim && strcmp(f->locals.items[k].name, e->u.name) == 0)
            bound_dim = true;
      if (bound_dim || !sema_lookup(S, sc, e->u.name, e->loc, &v)) {
        ds[i].kind = DS_VAR;
        ds[i].name = e->u.name;
        continue;
      }
    }
    int64_t x;
    if (!sema_eval_int(S, sc, e, "a dimension", &x)) {
      ok = false;
      continue;
    }
    ds[i].kind = DS_CONST;
    ds[i].val = x;
  }
  return ok;
}

static const char *decl_type_str(Sema *S, const char *dtype, AstType *t, const DimSpec *ds) {
  CkcBuf b;
  ckc_buf_init(&b, S->a);
  ckc_buf_puts(&b, dtype);
  if (!t->is_tensor) return ckc_buf_str(&b);
  ckc_buf_putc(&b, '[');
  for (int i = 0; i < t->ndims; i++) {
    if (i) ckc_buf_puts(&b, ", ");
    if (ds[i].kind == DS_ELL) ckc_buf_puts(&b, "...");
    else if (ds[i].kind == DS_VAR) ckc_buf_puts(&b, ds[i].name);
    else if (ds[i].kind == DS_CONST) ckc_buf_printf(&b, "%lld", (long long)ds[i].val);
    else ckc_buf_putc(&b, '?');
  }
  ckc_buf_putc(&b, ']');
  return ckc_arena_strdup(S->a, ckc_buf_str(&b));
}

static SemaLocal *find_dim(SemaScope *sc, const char *name) {
  for (SemaFrame *f = sc->frame; f; f = f->parent)
    for (int k = 0; k < f->locals.len; k++)
      if (f->locals.items[k].is_dim && strcmp(f->locals.items[k].name, name) == 0)
        return &f->locals.items[k];
  return NULL;
}

/* Matches dtype/shape against a declared type, binding dimension variables
 * and `...` into sc when may_bind (arguments), or requiring them bound
 * (results, let annotations). Reports `id` errors prefixed by what. */
static bool match_type(Sema *S, SemaScope *sc, AstType *t, CkDType dt, const CkShape *shape,
                       bool may_bind, const char *id, const char *what, CkcLoc loc) {
  CkDType want;
  if (!t) return false;
  if (!t->dtype || !ck_dtype_from_name(t->dtype, &want)) {
    static const char *const names[] = {"f32", "f64", "i32", "u8", "bool"};
    const char *sug = t->dtype ? sema_suggest(t->dtype, names, 5) : NULL;
    return sema_error(S, t->loc, "E0207", "unknown dtype '%s'%s%s%s (dtypes: f32 f64 i32 u8 bool)",
                      t->dtype ? t->dtype : "", sug ? "; did you mean '" : "", sug ? sug : "",
                      sug ? "'?" : "");
  }
  int k = t->is_tensor ? t->ndims : 0;
  if (k > CK_MAX_RANK)
    return sema_error(S, t->loc, "E0350", "a type has %d dims; at most %d are supported", k,
                      CK_MAX_RANK);
  DimSpec ds[CK_MAX_RANK + 1];
  int nell;
  if (!dim_specs(S, sc, t, ds, &nell)) return false;
  const char *got = sema_type_str(S, dt, shape);
#define MISMATCH(...)                                                                     \
  do {                                                                                    \
    char why_[256];                                                                       \
    snprintf(why_, sizeof why_, __VA_ARGS__);                                             \
    return sema_error(S, loc, id, "%s: expected %s, got %s (%s)", what,                   \
                      decl_type_str(S, t->dtype, t, ds), got, why_);                      \
  } while (0)
  if (want != dt) MISMATCH("dtype %s vs %s", t->dtype, ck_dtype_name(dt));
  int r = shape->rank;
  int p = -1;
  for (int i = 0; i < k; i++)
    if (ds[i].kind == DS_ELL) p = i;
  if (p < 0 && r != k) MISMATCH("rank %d vs %d", k, r);
  if (p >= 0 && r < k - 1) MISMATCH("rank at least %d vs %d", k - 1, r);
  if (p >= 0) {
    CkShape ell = {0, {0}};
    ell.rank = r - (k - 1);
    for (int i = 0; i < ell.rank; i++) ell.dims[i] = shape->dims[p + i];
    if (sc->has_ellipsis) {
      if (!ck_shape_eq(&ell, &sc->ellipsis)) {
        char b1[128], b2[128];
        ck_type_str(dt, &sc->ellipsis, b1, sizeof b1);
        ck_type_str(dt, &ell, b2, sizeof b2);
        MISMATCH("'...' is %s from an earlier argument vs %s", strchr(b1, '['), strchr(b2, '['));
      }
    } else if (may_bind) {
      sc->has_ellipsis = true;
      sc->ellipsis = ell;
    } else {
      return sema_error(S, loc, "E0357", "%s: '...' is not bound by the arguments", what);
    }
  }
  for (int j = 0; j < k; j++) {
    if (ds[j].kind == DS_ELL) continue;
    int a = (p < 0 || j < p) ? j : r - (k - j);
    int shown = (p >= 0 && j > p) ? j - k : j;
    int64_t have = shape->dims[a];
    if (ds[j].kind == DS_CONST) {
      if (ds[j].val != have)
        MISMATCH("dim %d: %lld vs %lld", shown, (long long)ds[j].val, (long long)have);
      continue;
    }
    SemaLocal *bound = find_dim(sc, ds[j].name);
    if (bound) {
      if (bound->val.i != have)
        MISMATCH("dim %d: %s is %lld, but %lld here", shown, ds[j].name, (long long)bound->val.i,
                 (long long)have);
      continue;
    }
    if (!may_bind)
      return sema_error(S, t->dims[j]->loc, "E0357",
                        "%s: dimension variable '%s' is not bound by the arguments", what, ds[j].name);
    SemaLocal l = {ds[j].name, sema_int(have), t->dims[j]->loc, true};
    CKC_VEC_PUSH(S->a, sc->frame->locals, l);
  }
#undef MISMATCH
  return true;
}

/* ---- fn bodies ---------------------------------------------------------------------- */

static void push_local(Sema *S, SemaFrame *f, const char *name, SemaVal v, CkcLoc loc) {
  SemaLocal l = {name, v, loc, false};
  CKC_VEC_PUSH(S->a, f->locals, l);
}

/* let/assign record the variable name on the node that computed the value. */
static void name_value(SemaScope *sc, SemaVal v, const char *name) {
  if (v.kind != SV_TENSOR || !v.node || v.node->name || v.node->graph != sc->g) return;
  if (ir_op_info[v.node->op].flags & IR_OPF_LEAF) return;
  v.node->name = name;
}

typedef struct BodyState {
  bool returned;
  SemaVal ret;
  CkcLoc ret_loc;
  int loop_depth;
} BodyState;

static void exec_block(Sema *S, SemaScope *sc, AstStmt *s, BodyState *bs);

static void exec_stmt(Sema *S, SemaScope *sc, AstStmt *s, BodyState *bs) {
  switch (s->kind) {
  case AST_STMT_LET: {
    if (!s->name) return;
    SemaVal v = s->expr ? sema_eval(S, sc, s->expr) : sema_poison();
    for (int i = 0; i < sc->frame->locals.len; i++)
      if (!sc->frame->locals.items[i].is_dim && strcmp(sc->frame->locals.items[i].name, s->name) == 0) {
        sema_error(S, s->name_loc, "E0202", "'%s' is already defined in this block (assign with %s = ...)",
                   s->name, s->name);
        sema_note(S, sc->frame->locals.items[i].loc, "'%s' was first defined here", s->name);
        break;
      }
    if (v.kind == SV_LAYER) {
      want_tensor(S, v, s->expr->loc, ckc_arena_printf(S->a, "let %s", s->name));
      v = sema_poison();
    }
    if (s->type && v.kind != SV_POISON) {
      const char *what = ckc_arena_printf(S->a, "let %s", s->name);
      if (sema_is_const(&v)) {
        CkDType dt;
        CkShape shp;
        if (concrete_type(S, sc, s->type, what, &dt, &shp)) {
          double x = v.kind == SV_FLOAT ? v.f : (double)v.i;
          v = tensor_val(ir_const_fill(sc->g, dt, &shp, x, s->expr->loc));
        } else {
          v = sema_poison();
        }
      } else {
        IrNode *n = want_tensor(S, v, s->expr->loc, what);
        if (!n || !match_type(S, sc, s->type, n->dtype, &n->shape, false, "E0352", what, s->expr->loc))
          v = sema_poison();
      }
    }
    name_value(sc, v, s->name);
    push_local(S, sc->frame, s->name, v, s->name_loc);
    return;
  }
  case AST_STMT_ASSIGN: {
    if (!s->name) return;
    SemaVal v = s->expr ? sema_eval(S, sc, s->expr) : sema_poison();
    for (SemaFrame *f = sc->frame; f; f = f->parent)
      for (int i = f->locals.len - 1; i >= 0; i--) {
        SemaLocal *l = &f->locals.items[i];
        if (strcmp(l->name, s->name) != 0) continue;
        if (l->is_dim) {
          sema_error(S, s->name_loc, "E0212", "cannot assign to dimension variable '%s'", s->name);
          return;
        }
        if (v.kind == SV_LAYER) {
          want_tensor(S, v, s->expr->loc, s->name);
          v = sema_poison();
        }
        name_value(sc, v, s->name);
        l->val = v;
        return;
      }
    SemaVal other;
    if (sema_lookup(S, sc, s->name, s->name_loc, &other))
      sema_error(S, s->name_loc, "E0212", "cannot assign to '%s' (%s); only let variables and fn arguments can be assigned",
                 s->name, sema_val_kind_str(S, &other));
    else
      sema_error(S, s->name_loc, "E0212", "assignment to undeclared variable '%s' (declare it with let)%s",
                 s->name, sema_suggest_in_scope(S, sc, s->name, false));
    return;
  }
  case AST_STMT_RETURN: {
    SemaVal v = s->expr ? sema_eval(S, sc, s->expr) : sema_poison();
    if (bs->loop_depth > 0) {
      sema_error(S, s->loc, "E0307", "return inside a for loop (loops are unrolled; assign and return after it)");
      return;
    }
    bs->returned = true;
    bs->ret = v;
    bs->ret_loc = s->expr ? s->expr->loc : s->loc;
    return;
  }
  case AST_STMT_FOR: {
    SemaVal it = s->expr ? sema_eval(S, sc, s->expr) : sema_poison();
    if (it.kind == SV_POISON || !s->name) return;
    int n = it.kind == SV_ARRAY ? (int)it.i : it.kind == SV_TUPLE ? it.n : -1;
    if (n < 0) {
      sema_error(S, s->expr->loc, "E0353", "cannot iterate over %s; for loops run over instance arrays (name: Layer(...)[N])",
                 sema_val_kind_str(S, &it));
      return;
    }
    bs->loop_depth++;
    for (int i = 0; i < n; i++) {
      SemaFrame fr = {.parent = sc->frame};
      SemaScope isc = *sc;
      isc.frame = &fr;
      SemaVal el;
      if (it.kind == SV_ARRAY) {
        el = it;
        el.kind = SV_INST;
        el.path = join_path(S, it.path, ckc_arena_printf(S->a, "%d", i));
      } else {
        el = it.elems[i];
      }
      push_local(S, &fr, s->name, el, s->name_loc);
      int e0 = sema_failures(S);
      exec_block(S, &isc, s->body, bs);
      sc->has_ellipsis = isc.has_ellipsis;
      sc->ellipsis = isc.ellipsis;
      if (sema_failures(S) > e0) break; /* the same mistake in every iteration: say it once */
    }
    bs->loop_depth--;
    return;
  }
  case AST_STMT_EXPR:
    if (s->expr) sema_eval(S, sc, s->expr);
    return;
  }
}

static void exec_block(Sema *S, SemaScope *sc, AstStmt *s, BodyState *bs) {
  for (; s; s = s->next) {
    if (bs->returned) {
      sema_error(S, s->loc, "E0307", "unreachable statement after return");
      return;
    }
    exec_stmt(S, sc, s, bs);
  }
}

/* Argument types of one call; the entry fn gets them from its declaration. */
typedef struct CallArgs {
  int n;
  CkDType *dt;
  CkShape *shape;
  CkcLoc *loc;
} CallArgs;

static const char *fn_desc(Sema *S, SemaInst *inst, AstMember *fn) {
  return ckc_arena_printf(S->a, "%s.%s", inst->key, fn->name);
}

/* Elaborates fn of inst for these argument types into its graph (cached).
 * Returns NULL after an error (reported here or when first built). */
static IrGraph *build_fn(Sema *S, SemaInst *inst, AstMember *fn, const CallArgs *ca, CkcLoc callloc,
                         bool entry) {
  const char *desc = fn_desc(S, inst, fn);
  SemaFrame frame = {0};
  SemaScope sc = {.mod = inst->mod, .inst = inst, .frame = &frame, .where = desc};
  int i = 0;
  bool ok = true;
  for (AstField *f = fn->params; f; f = f->next, i++) {
    const char *what = ckc_arena_printf(S->a, "argument '%s' of %s", f->name, desc);
    if (!match_type(S, &sc, f->type, ca->dt[i], &ca->shape[i], true, "E0301", what, ca->loc[i]))
      ok = false;
  }
  if (!ok) return NULL;
  CkcBuf kb;
  ckc_buf_init(&kb, S->a);
  ckc_buf_printf(&kb, "%s(", desc);
  for (int k = 0; k < ca->n; k++)
    ckc_buf_printf(&kb, "%s%s", k ? "," : "", sema_type_str(S, ca->dt[k], &ca->shape[k]));
  ckc_buf_putc(&kb, ')');
  const char *key = ckc_arena_strdup(S->a, ckc_buf_str(&kb));
  for (int k = 0; k < S->graphs.len; k++) {
    SemaGraphEntry *ge = S->graphs.items[k];
    if (strcmp(ge->key, key) != 0) continue;
    if (ge->state == 1) {
      sema_error(S, callloc, "E0211", "recursive call of %s", desc);
      return NULL;
    }
    return ge->state == 2 ? ge->g : NULL;
  }
  if (S->call_depth > 64) {
    sema_error(S, callloc, "E0211", "calls nested more than 64 deep at %s (recursion?)", desc);
    return NULL;
  }
  const char *name = entry ? "forward" : desc;
  int dup = 1;
  for (int k = 0; k < S->graph_names.len; k++)
    if (strcmp(S->graph_names.items[k], desc) == 0) dup++;
  if (!entry && dup > 1) name = ckc_arena_printf(S->a, "%s#%d", desc, dup);
  CKC_VEC_PUSH(S->a, S->graph_names, desc);
  IrGraph *g = ir_graph_new(S->ir, name, entry);
  SemaGraphEntry *ge = CKC_NEW(S->a, SemaGraphEntry);
  ge->key = key;
  ge->g = g;
  ge->state = 1;
  CKC_VEC_PUSH(S->a, S->graphs, ge);
  sc.g = g;
  i = 0;
  for (AstField *f = fn->params; f; f = f->next, i++) {
    IrNode *in = ir_input(g, f->name, ca->dt[i], &ca->shape[i], f->loc);
    if (g->input_names.len < g->inputs.len) CKC_VEC_PUSH(S->a, g->input_names, f->name);
    push_local(S, &frame, f->name, tensor_val(in), f->loc);
  }
  int e0 = sema_failures(S);
  /* errors in a layer's body and result name the call that asked for this
   * graph; the model's own fns are the user's code and need no such note */
  int depth = S->ctx.len;
  if (!inst->is_model) {
    SemaCtx fr = {SEMA_CTX_CALL, desc, NULL, callloc};
    CKC_VEC_PUSH(S->a, S->ctx, fr);
  }
  S->call_depth++;
  BodyState bs = {0};
  exec_block(S, &sc, fn->body, &bs);
  S->call_depth--;
  if (!bs.returned) {
    sema_error(S, fn->name_loc, "E0307", "fn '%s' ends without returning a value", fn->name);
  } else if (bs.ret.kind != SV_POISON && fn->ret) {
    const char *what = ckc_arena_printf(S->a, "result of %s", desc);
    SemaVal v = bs.ret;
    if (sema_is_const(&v)) {
      CkDType dt;
      CkShape shp;
      if (concrete_type(S, &sc, fn->ret, what, &dt, &shp)) {
        double x = v.kind == SV_FLOAT ? v.f : (double)v.i;
        v = tensor_val(ir_const_fill(g, dt, &shp, x, bs.ret_loc));
      } else {
        v = sema_poison();
      }
    }
    IrNode *n = want_tensor(S, v, bs.ret_loc, what);
    if (n && match_type(S, &sc, fn->ret, n->dtype, &n->shape, false, "E0302", what, bs.ret_loc))
      ir_set_output(g, n);
  }
  CKC_ASSERT(S->ctx.len == depth + !inst->is_model);
  S->ctx.len = depth;
  /* a body that produced no output (poisoned return) fails quietly: the
   * error that poisoned it was reported where it happened; a failed graph
   * stays cached as failed, so later calls with the same types are quiet */
  ge->state = sema_failures(S) > e0 || g->outputs.len == 0 ? 3 : 2;
  return ge->state == 2 ? g : NULL;
}

static AstMember *find_fn(SemaInst *inst, const char *name) {
  SemaMemb *mb = sema_inst_member(inst, name);
  return mb && mb->m->kind == AST_MEMBER_FN ? mb->m : NULL;
}

/* inst.fn(args) from the graph of sc: arguments are evaluated here, the
 * callee graph is built (or found), and the call is a CALL node with the
 * instance path as prefix ("" = the caller's own instance). */
static SemaVal call_fn(Sema *S, SemaScope *sc, SemaInst *inst, const char *path, AstMember *fn,
                       AstExpr *call) {
  const char *desc = fn_desc(S, inst, fn);
  int nparams = 0;
  for (AstField *f = fn->params; f; f = f->next) nparams++;
  AstExpr **given = CKC_NEW_ARRAY(S->a, AstExpr *, nparams + 1);
  CkcLoc *locs = CKC_NEW_ARRAY(S->a, CkcLoc, nparams + 1);
  int npos = 0;
  bool ok = true;
  for (AstArg *a = call->u.call.args; a; a = a->next) {
    int slot = -1;
    if (a->name) {
      int j = 0;
      for (AstField *f = fn->params; f; f = f->next, j++)
        if (f->name && strcmp(f->name, a->name) == 0) slot = j;
      if (slot < 0) {
        ok = sema_error(S, a->loc, "E0208", "%s has no argument named '%s'", desc, a->name);
        continue;
      }
    } else {
      slot = npos++;
      if (slot >= nparams) {
        ok = sema_error(S, call->loc, "E0300", "%s expects %d argument%s, got %d", desc, nparams,
                        nparams == 1 ? "" : "s", call->u.call.nargs);
        break;
      }
    }
    if (given[slot]) {
      ok = sema_error(S, a->loc, "E0219", "an argument of %s is given twice", desc);
      continue;
    }
    given[slot] = a->value;
    locs[slot] = a->value ? a->value->loc : a->loc;
  }
  if (ok)
    for (int j = 0; j < nparams; j++)
      if (!given[j])
        ok = sema_error(S, call->loc, "E0300", "%s expects %d argument%s, got %d", desc, nparams,
                        nparams == 1 ? "" : "s", call->u.call.nargs);
  if (!ok) return sema_poison();
  if (!sc->g) {
    sema_error(S, call->loc, "E0403", "a call of %s is not a constant", desc);
    return sema_poison();
  }
  IrNode **in = CKC_NEW_ARRAY(S->a, IrNode *, nparams + 1);
  CallArgs ca = {nparams, CKC_NEW_ARRAY(S->a, CkDType, nparams + 1),
                 CKC_NEW_ARRAY(S->a, CkShape, nparams + 1), locs};
  int j = 0;
  for (AstField *f = fn->params; f; f = f->next, j++) {
    SemaVal v = sema_eval(S, sc, given[j]);
    const char *what = ckc_arena_printf(S->a, "argument '%s' of %s", f->name, desc);
    CkDType pdt;
    if (sema_is_const(&v) && f->type && f->type->dtype && ck_dtype_from_name(f->type->dtype, &pdt) &&
        (!f->type->is_tensor || f->type->ndims == 0))
      in[j] = const_as(S, sc, v, pdt, locs[j], what);
    else
      in[j] = want_tensor(S, v, locs[j], what);
    if (!in[j]) {
      ok = false;
      continue;
    }
    ca.dt[j] = in[j]->dtype;
    ca.shape[j] = in[j]->shape;
  }
  if (!ok) return sema_poison();
  IrGraph *g = build_fn(S, inst, fn, &ca, call->loc, false);
  if (!g) return sema_poison();
  IrNode *n = ir_call(sc->g, g, path ? path : "", in, nparams, NULL, call->loc);
  return tensor_val(n);
}

/* The model's fn forward is the entry graph "forward"; its argument types
 * must be fully concrete (they are the program's inputs). */
bool sema_elab_entry(Sema *S, SemaInst *model) {
  AstMember *fn = find_fn(model, "forward");
  if (!fn)
    return sema_error(S, model->decl->name_loc, "E0217", "model '%s' has no fn forward",
                      model->decl->name);
  int n = 0;
  for (AstField *f = fn->params; f; f = f->next) n++;
  CallArgs ca = {n, CKC_NEW_ARRAY(S->a, CkDType, n + 1), CKC_NEW_ARRAY(S->a, CkShape, n + 1),
                 CKC_NEW_ARRAY(S->a, CkcLoc, n + 1)};
  SemaScope sc = {.mod = model->mod, .inst = model};
  bool ok = true;
  int i = 0;
  for (AstField *f = fn->params; f; f = f->next, i++) {
    const char *what = ckc_arena_printf(S->a, "argument '%s' of the entry fn %s.forward", f->name,
                                        model->decl->name);
    ca.loc[i] = f->loc;
    if (!concrete_type(S, &sc, f->type, what, &ca.dt[i], &ca.shape[i])) ok = false;
  }
  if (!ok) return false;
  return build_fn(S, model, fn, &ca, fn->name_loc, true) != NULL;
}

/* ---- builtins ---------------------------------------------------------------------------- */

typedef enum BuiltinKind {
  BK_BINARY, BK_UNARY, BK_GELU, BK_WHERE, BK_CAST, BK_MATMUL, BK_TRANSPOSE, BK_PERMUTE,
  BK_RESHAPE, BK_BROADCAST, BK_SLICE, BK_CONCAT, BK_REDUCE, BK_ARGMAX, BK_AXIS, BK_NORM,
  BK_EMBED, BK_CONV, BK_POOL, BK_ATTENTION, BK_MIN, BK_LOSS,
} BuiltinKind;

typedef struct Builtin {
  const char *name;
  BuiltinKind kind;
  IrOp op;
  int minpos, maxpos; /* maxpos -1: variadic */
  const char *params[7]; /* positional-capable first, then keyword-only */
} Builtin;

static const Builtin builtins[] = {
    {"maximum", BK_BINARY, IR_OP_MAXIMUM, 2, 2, {"a", "b"}},
    {"minimum", BK_BINARY, IR_OP_MINIMUM, 2, 2, {"a", "b"}},
    {"pow", BK_BINARY, IR_OP_POW, 2, 2, {"a", "b"}},
    {"abs", BK_UNARY, IR_OP_ABS, 1, 1, {"x"}},
    {"exp", BK_UNARY, IR_OP_EXP, 1, 1, {"x"}},
    {"log", BK_UNARY, IR_OP_LOG, 1, 1, {"x"}},
    {"sqrt", BK_UNARY, IR_OP_SQRT, 1, 1, {"x"}},
    {"rsqrt", BK_UNARY, IR_OP_RSQRT, 1, 1, {"x"}},
    {"tanh", BK_UNARY, IR_OP_TANH, 1, 1, {"x"}},
    {"sigmoid", BK_UNARY, IR_OP_SIGMOID, 1, 1, {"x"}},
    {"relu", BK_UNARY, IR_OP_RELU, 1, 1, {"x"}},
    {"silu", BK_UNARY, IR_OP_SILU, 1, 1, {"x"}},
    {"gelu", BK_GELU, IR_OP_GELU, 1, 1, {"x", "approximate"}},
    {"where", BK_WHERE, IR_OP_WHERE, 3, 3, {"cond", "a", "b"}},
    {"cast", BK_CAST, IR_OP_CAST, 2, 2, {"x", "dtype"}},
    {"matmul", BK_MATMUL, IR_OP_MATMUL, 2, 2, {"a", "b", "transpose_a", "transpose_b"}},
    {"transpose", BK_TRANSPOSE, IR_OP_PERMUTE, 1, 3, {"x", "dim0", "dim1"}},
    {"permute", BK_PERMUTE, IR_OP_PERMUTE, 2, 2, {"x", "perm"}},
    {"reshape", BK_RESHAPE, IR_OP_RESHAPE, 2, 2, {"x", "shape"}},
    {"broadcast", BK_BROADCAST, IR_OP_BROADCAST, 2, 2, {"x", "shape"}},
    {"slice", BK_SLICE, IR_OP_SLICE, 1, 5, {"x", "axis", "start", "end", "step"}},
    {"concat", BK_CONCAT, IR_OP_CONCAT, 1, -1, {"axis"}},
    {"sum", BK_REDUCE, IR_OP_SUM, 1, 1, {"x", "axis", "keepdim"}},
    {"mean", BK_REDUCE, IR_OP_MEAN, 1, 1, {"x", "axis", "keepdim"}},
    {"max", BK_REDUCE, IR_OP_MAX, 1, 1, {"x", "axis", "keepdim"}},
    {"min", BK_MIN, IR_OP_COUNT, 2, -1, {NULL}},
    {"argmax", BK_ARGMAX, IR_OP_ARGMAX, 1, 1, {"x", "axis", "keepdim"}},
    {"softmax", BK_AXIS, IR_OP_SOFTMAX, 1, 1, {"x", "axis"}},
    {"log_softmax", BK_AXIS, IR_OP_LOG_SOFTMAX, 1, 1, {"x", "axis"}},
    {"layernorm", BK_NORM, IR_OP_LAYERNORM, 1, 3, {"x", "weight", "bias", "eps"}},
    {"rmsnorm", BK_NORM, IR_OP_RMSNORM, 1, 2, {"x", "weight", "eps"}},
    {"embed", BK_EMBED, IR_OP_EMBEDDING, 2, 2, {"table", "idx"}},
    {"conv2d", BK_CONV, IR_OP_CONV2D, 2, 3, {"x", "w", "b", "stride", "padding", "groups"}},
    {"maxpool2d", BK_POOL, IR_OP_MAXPOOL2D, 1, 4, {"x", "kernel", "stride", "padding"}},
    {"avgpool2d", BK_POOL, IR_OP_AVGPOOL2D, 1, 4, {"x", "kernel", "stride", "padding"}},
    {"attention", BK_ATTENTION, IR_OP_ATTENTION, 3, 3, {"q", "k", "v", "causal", "scale"}},
    /* training (docs/language.md, "The train block"); usable in any fn */
    {"stop_gradient", BK_UNARY, IR_OP_STOP_GRADIENT, 1, 1, {"x"}},
    {"cross_entropy", BK_LOSS, IR_OP_CROSS_ENTROPY, 2, 2,
     {"logits", "targets", "ignore_index", "label_smoothing"}},
    {"mse", BK_LOSS, IR_OP_MSE, 2, 2, {"a", "b"}},
    {"bce_with_logits", BK_LOSS, IR_OP_BCE_WITH_LOGITS, 2, 2, {"x", "y"}},
};
#define NBUILTINS ((int)(sizeof builtins / sizeof builtins[0]))

const char *sema_builtin_name(int i) { return i >= 0 && i < NBUILTINS ? builtins[i].name : NULL; }

static int builtin_find(const char *name) {
  for (int i = 0; i < NBUILTINS; i++)
    if (strcmp(builtins[i].name, name) == 0) return i;
  return -1;
}

static int nparams_of(const Builtin *b) {
  int n = 0;
  while (n < 7 && b->params[n]) n++;
  return n;
}

static const char *arity_str(Sema *S, const Builtin *b) {
  if (b->maxpos < 0) return ckc_arena_printf(S->a, "at least %d positional arguments", b->minpos);
  if (b->minpos == b->maxpos)
    return ckc_arena_printf(S->a, "%d positional argument%s", b->minpos, b->minpos == 1 ? "" : "s");
  if (b->kind == BK_TRANSPOSE) return "1 or 3 positional arguments";
  return ckc_arena_printf(S->a, "%d to %d positional arguments", b->minpos, b->maxpos);
}

/* Bound arguments of one builtin call: expressions by parameter, plus the
 * positional list of a variadic builtin. */
typedef struct BArgs {
  AstExpr *by[7];
  CKC_VEC(AstExpr *) rest;
  int npos;
} BArgs;

static bool bind_builtin(Sema *S, const Builtin *b, AstExpr *call, BArgs *ba) {
  memset(ba, 0, sizeof *ba);
  int np = nparams_of(b);
  bool ok = true;
  for (AstArg *a = call->u.call.args; a; a = a->next) {
    if (a->name) {
      int slot = -1;
      for (int j = 0; j < np; j++)
        if (strcmp(b->params[j], a->name) == 0) slot = j;
      if (slot < 0) {
        const char *sug = sema_suggest(a->name, b->params, np);
        CkcBuf names;
        ckc_buf_init(&names, S->a);
        int first = b->maxpos < 0 ? 0 : 1;
        for (int j = first; j < np; j++) ckc_buf_printf(&names, "%s%s", j > first ? ", " : "", b->params[j]);
        ok = sema_error(S, a->loc, "E0208", "%s has no argument named '%s'%s%s%s%s%s%s", b->name,
                        a->name, sug ? "; did you mean '" : "", sug ? sug : "", sug ? "'?" : "",
                        np > first ? " (arguments: " : "", ckc_buf_str(&names), np > first ? ")" : "");
        continue;
      }
      if (ba->by[slot]) {
        ok = sema_error(S, a->loc, "E0219", "argument '%s' of %s given twice", a->name, b->name);
        continue;
      }
      ba->by[slot] = a->value;
      continue;
    }
    ba->npos++;
    if (b->maxpos < 0) {
      CKC_VEC_PUSH(S->a, ba->rest, a->value);
      continue;
    }
    if (ba->npos > b->maxpos) continue;
    ba->by[ba->npos - 1] = a->value;
  }
  if (!ok) return false;
  bool bad = (b->maxpos >= 0 && ba->npos > b->maxpos) || (b->kind == BK_TRANSPOSE && ba->npos == 2);
  if (b->maxpos < 0 && ba->npos < b->minpos) bad = true;
  if (b->maxpos >= 0)
    for (int j = 0; j < b->minpos; j++)
      if (!ba->by[j]) bad = true;
  if (bad)
    return sema_error(S, call->loc, "E0300", "%s expects %s, got %d", b->name, arity_str(S, b),
                      ba->npos);
  return true;
}

/* Attribute arguments are constants of a given kind. */
static bool attr_const(Sema *S, SemaScope *sc, const Builtin *b, const char *key, AstExpr *e,
                       SemaVal *out) {
  SemaVal v = sema_eval(S, sc, e);
  *out = v;
  if (v.kind == SV_POISON) return false;
  if (sema_is_const(&v) || v.kind == SV_TUPLE || v.kind == SV_STR) return true;
  return sema_error(S, e->loc, "E0403", "%s: '%s' must be a constant, got %s", b->name, key,
                    sema_val_kind_str(S, &v));
}

static bool attr_int(Sema *S, SemaScope *sc, const Builtin *b, const char *key, AstExpr *e,
                     int64_t *out) {
  SemaVal v;
  if (!attr_const(S, sc, b, key, e, &v)) return false;
  if (v.kind != SV_INT)
    return sema_error(S, e->loc, "E0308", "%s: '%s' must be an integer, got %s", b->name, key,
                      sema_val_kind_str(S, &v));
  *out = v.i;
  return true;
}

static bool attr_bool(Sema *S, SemaScope *sc, const Builtin *b, const char *key, AstExpr *e,
                      bool *out) {
  SemaVal v;
  if (!attr_const(S, sc, b, key, e, &v)) return false;
  if (v.kind != SV_BOOL)
    return sema_error(S, e->loc, "E0308", "%s: '%s' must be true or false, got %s", b->name, key,
                      sema_val_str(S, &v));
  *out = v.i != 0;
  return true;
}

static bool attr_float(Sema *S, SemaScope *sc, const Builtin *b, const char *key, AstExpr *e,
                       double *out) {
  SemaVal v;
  if (!attr_const(S, sc, b, key, e, &v)) return false;
  if (v.kind != SV_INT && v.kind != SV_FLOAT)
    return sema_error(S, e->loc, "E0308", "%s: '%s' must be a number, got %s", b->name, key,
                      sema_val_kind_str(S, &v));
  *out = v.kind == SV_FLOAT ? v.f : (double)v.i;
  return true;
}

/* An int or a tuple of ints (axes, shapes, perms). */
static bool attr_ints(Sema *S, SemaScope *sc, const Builtin *b, const char *key, AstExpr *e,
                      int64_t *out, int *n, int maxn) {
  SemaVal v;
  if (!attr_const(S, sc, b, key, e, &v)) return false;
  if (v.kind == SV_INT) {
    out[0] = v.i;
    *n = 1;
    return true;
  }
  if (v.kind != SV_TUPLE)
    return sema_error(S, e->loc, "E0308", "%s: '%s' must be an integer or a tuple of integers, got %s",
                      b->name, key, sema_val_kind_str(S, &v));
  if (v.n > maxn)
    return sema_error(S, e->loc, "E0308", "%s: '%s' has %d entries; at most %d are allowed", b->name,
                      key, v.n, maxn);
  for (int i = 0; i < v.n; i++) {
    if (v.elems[i].kind != SV_INT)
      return sema_error(S, e->loc, "E0308", "%s: entry %d of '%s' must be an integer, got %s",
                        b->name, i, key, sema_val_kind_str(S, &v.elems[i]));
    out[i] = v.elems[i].i;
  }
  *n = v.n;
  return true;
}

/* An int or a pair (conv/pool stride, padding, kernel), as 2 ints. */
static bool attr_pair(Sema *S, SemaScope *sc, const Builtin *b, const char *key, AstExpr *e,
                      int64_t *out, int64_t minv) {
  int64_t v[CK_MAX_RANK];
  int n;
  if (!attr_ints(S, sc, b, key, e, v, &n, CK_MAX_RANK)) return false;
  if (n == 1) v[1] = v[0];
  else if (n != 2)
    return sema_error(S, e->loc, "E0308", "%s: '%s' must be an integer or a pair, got %d values",
                      b->name, key, n);
  for (int i = 0; i < 2; i++)
    if (v[i] < minv)
      return sema_error(S, e->loc, "E0308", "%s: '%s' must be at least %lld, got %lld", b->name,
                        key, (long long)minv, (long long)v[i]);
  out[0] = v[0];
  out[1] = v[1];
  return true;
}

/* Negative axes count from the end (Python); the result is in 0..rank-1. */
static bool norm_axis(Sema *S, CkcLoc loc, const char *op, int64_t ax, const IrNode *x, int64_t *out) {
  int r = x->shape.rank;
  if (ax < -r || ax >= r)
    return sema_error(S, loc, "E0308", "%s: axis %lld is out of range for %s (rank %d)", op,
                      (long long)ax, type_str(S, x), r);
  *out = ax < 0 ? ax + r : ax;
  return true;
}

static IrNode *tensor_expr(Sema *S, SemaScope *sc, const Builtin *b, AstExpr *e, const char *pname) {
  SemaVal v = sema_eval(S, sc, e);
  return want_tensor(S, v, e->loc, ckc_arena_printf(S->a, "%s: argument '%s'", b->name, pname));
}

/* Elementwise op of two operands, literals adopting the tensor's dtype;
 * tensors of different dtypes never mix implicitly. */
static SemaVal elementwise2(Sema *S, SemaScope *sc, IrOp op, const char *sym, SemaVal a, CkcLoc la,
                            SemaVal b, CkcLoc lb, CkcLoc loc) {
  if (a.kind == SV_POISON || b.kind == SV_POISON) return sema_poison();
  const char *what = ckc_arena_printf(S->a, "operator '%s'", sym);
  if (a.kind != SV_TENSOR && !sema_is_const(&a)) return want_tensor(S, a, la, what), sema_poison();
  if (b.kind != SV_TENSOR && !sema_is_const(&b)) return want_tensor(S, b, lb, what), sema_poison();
  IrNode *x, *y;
  if (a.kind == SV_TENSOR && b.kind == SV_TENSOR) {
    x = a.node;
    y = b.node;
    if (x->dtype != y->dtype) {
      sema_error(S, loc, "E0303", "%s: dtype mismatch: %s %s %s (convert one with cast(x, %s))",
                 what + 0, type_str(S, x), sym, type_str(S, y), ck_dtype_name(x->dtype));
      return sema_poison();
    }
  } else if (a.kind == SV_TENSOR) {
    x = a.node;
    y = const_as(S, sc, b, x->dtype, lb, what);
  } else {
    y = b.node;
    x = const_as(S, sc, a, y->dtype, la, what);
  }
  if (!x || !y) return sema_poison();
  IrNode *in[2] = {x, y};
  return mk_op(S, sc, op, in, 2, NULL, 0, loc);
}

static SemaVal call_builtin(Sema *S, SemaScope *sc, const Builtin *b, AstExpr *call) {
  CkcLoc loc = call->loc;
  /* sqrt, min, max of constants fold at compile time */
  if (strcmp(b->name, "sqrt") == 0 || strcmp(b->name, "min") == 0 || strcmp(b->name, "max") == 0) {
    int n = 0;
    bool kw = false;
    for (AstArg *a = call->u.call.args; a; a = a->next) kw = kw || a->name, n++;
    if (!kw && n > 0) {
      SemaVal *vals = CKC_NEW_ARRAY(S->a, SemaVal, n);
      int i = 0;
      for (AstArg *a = call->u.call.args; a; a = a->next) vals[i++] = sema_eval(S, sc, a->value);
      SemaVal out;
      bool handled;
      sema_const_builtin(S, loc, b->name, vals, n, &out, &handled);
      if (handled) return out;
      if (b->kind == BK_MIN) {
        sema_error(S, loc, "E0304", "min takes constants; for tensors use minimum(a, b)");
        return sema_poison();
      }
      if (!(n == 1 && vals[0].kind == SV_TENSOR)) {
        if (strcmp(b->name, "max") == 0 && n == 2) {
          sema_error(S, loc, "E0304", "max of a tensor and another value: use maximum(a, b) (max(x, axis=...) reduces)");
          return sema_poison();
        }
      }
    } else if (b->kind == BK_MIN) {
      sema_error(S, loc, "E0304", "min takes constants; for tensors use minimum(a, b)");
      return sema_poison();
    }
  }
  if (!sc->g) {
    sema_error(S, loc, "E0403", "%s(...) is not a constant", b->name);
    return sema_poison();
  }
  BArgs ba;
  if (!bind_builtin(S, b, call, &ba)) return sema_poison();
  IrAttr at[4];
  int nat = 0;
  switch (b->kind) {
  case BK_MIN: return sema_poison();
  case BK_BINARY: {
    SemaVal x = sema_eval(S, sc, ba.by[0]), y = sema_eval(S, sc, ba.by[1]);
    return elementwise2(S, sc, b->op, b->name, x, ba.by[0]->loc, y, ba.by[1]->loc, loc);
  }
  case BK_UNARY:
  case BK_GELU: {
    IrNode *x = tensor_expr(S, sc, b, ba.by[0], b->params[0]);
    if (!x) return sema_poison();
    if (b->kind == BK_GELU && ba.by[1]) {
      SemaVal v;
      if (!attr_const(S, sc, b, "approximate", ba.by[1], &v)) return sema_poison();
      if (v.kind != SV_STR || (strcmp(v.s, "none") != 0 && strcmp(v.s, "tanh") != 0)) {
        sema_error(S, ba.by[1]->loc, "E0308", "gelu: approximate must be \"none\" or \"tanh\", got %s",
                   sema_val_str(S, &v));
        return sema_poison();
      }
      if (strcmp(v.s, "tanh") == 0) at[nat++] = ir_attr_str("approximate", "tanh");
    }
    return mk_op(S, sc, b->op, &x, 1, at, nat, loc);
  }
  case BK_WHERE: {
    IrNode *c = tensor_expr(S, sc, b, ba.by[0], "cond");
    SemaVal x = sema_eval(S, sc, ba.by[1]), y = sema_eval(S, sc, ba.by[2]);
    if (!c || x.kind == SV_POISON || y.kind == SV_POISON) return sema_poison();
    IrNode *in[3] = {c, NULL, NULL};
    if (x.kind == SV_TENSOR) in[1] = x.node;
    if (y.kind == SV_TENSOR) in[2] = y.node;
    if (!in[1] && !in[2]) {
      sema_error(S, loc, "E0304", "where: 'a' or 'b' must be a tensor (constants take its dtype)");
      return sema_poison();
    }
    if (!in[1]) in[1] = sema_is_const(&x) ? const_as(S, sc, x, in[2]->dtype, ba.by[1]->loc, "where")
                                          : want_tensor(S, x, ba.by[1]->loc, "where: argument 'a'");
    if (!in[2]) in[2] = sema_is_const(&y) ? const_as(S, sc, y, in[1]->dtype, ba.by[2]->loc, "where")
                                          : want_tensor(S, y, ba.by[2]->loc, "where: argument 'b'");
    if (!in[1] || !in[2]) return sema_poison();
    return mk_op(S, sc, b->op, in, 3, NULL, 0, loc);
  }
  case BK_CAST: {
    SemaVal x = sema_eval(S, sc, ba.by[0]);
    SemaVal t = sema_eval(S, sc, ba.by[1]);
    if (x.kind == SV_POISON || t.kind == SV_POISON) return sema_poison();
    if (t.kind != SV_DTYPE) {
      sema_error(S, ba.by[1]->loc, "E0207", "cast: the second argument must be a dtype (f32 f64 i32 u8 bool), got %s",
                 sema_val_kind_str(S, &t));
      return sema_poison();
    }
    if (sema_is_const(&x)) {
      double v = x.kind == SV_FLOAT ? x.f : (double)x.i;
      return tensor_val(ir_const_scalar(sc->g, t.dt, v, loc));
    }
    IrNode *n = want_tensor(S, x, ba.by[0]->loc, "cast: argument 'x'");
    if (!n) return sema_poison();
    at[nat++] = ir_attr_str("to", ck_dtype_name(t.dt));
    return mk_op(S, sc, b->op, &n, 1, at, nat, loc);
  }
  case BK_MATMUL: {
    IrNode *in[2] = {tensor_expr(S, sc, b, ba.by[0], "a"), tensor_expr(S, sc, b, ba.by[1], "b")};
    bool ta = false, tb = false;
    if (ba.by[2] && !attr_bool(S, sc, b, "transpose_a", ba.by[2], &ta)) return sema_poison();
    if (ba.by[3] && !attr_bool(S, sc, b, "transpose_b", ba.by[3], &tb)) return sema_poison();
    if (!in[0] || !in[1]) return sema_poison();
    if (ta) at[nat++] = ir_attr_int("transpose_a", 1);
    if (tb) at[nat++] = ir_attr_int("transpose_b", 1);
    return mk_op(S, sc, b->op, in, 2, at, nat, loc);
  }
  case BK_TRANSPOSE:
  case BK_PERMUTE: {
    IrNode *x = tensor_expr(S, sc, b, ba.by[0], "x");
    if (!x) return sema_poison();
    int r = x->shape.rank;
    int64_t perm[CK_MAX_RANK];
    for (int i = 0; i < r; i++) perm[i] = i;
    if (b->kind == BK_TRANSPOSE) {
      int64_t a0 = -2, a1 = -1;
      if (ba.by[1] && (!attr_int(S, sc, b, "dim0", ba.by[1], &a0) || !attr_int(S, sc, b, "dim1", ba.by[2], &a1)))
        return sema_poison();
      if (!ba.by[1] && r < 2) {
        sema_error(S, loc, "E0308", "transpose: needs at least 2 dims, got %s", type_str(S, x));
        return sema_poison();
      }
      if (!norm_axis(S, loc, "transpose", a0, x, &a0) || !norm_axis(S, loc, "transpose", a1, x, &a1))
        return sema_poison();
      perm[a0] = a1;
      perm[a1] = a0;
    } else {
      int n;
      if (!attr_ints(S, sc, b, "perm", ba.by[1], perm, &n, CK_MAX_RANK)) return sema_poison();
      if (n != r) {
        sema_error(S, ba.by[1]->loc, "E0308", "permute: %d axes given for %s (rank %d)", n,
                   type_str(S, x), r);
        return sema_poison();
      }
      bool seen[CK_MAX_RANK] = {false};
      for (int i = 0; i < n; i++) {
        if (!norm_axis(S, ba.by[1]->loc, "permute", perm[i], x, &perm[i])) return sema_poison();
        if (seen[perm[i]]) {
          sema_error(S, ba.by[1]->loc, "E0308", "permute: axis %lld appears twice", (long long)perm[i]);
          return sema_poison();
        }
        seen[perm[i]] = true;
      }
    }
    at[nat++] = ir_attr_ints("perm", perm, r);
    return mk_op(S, sc, IR_OP_PERMUTE, &x, 1, at, nat, loc);
  }
  case BK_RESHAPE:
  case BK_BROADCAST: {
    IrNode *x = tensor_expr(S, sc, b, ba.by[0], "x");
    int64_t dims[CK_MAX_RANK];
    int n;
    if (!attr_ints(S, sc, b, "shape", ba.by[1], dims, &n, CK_MAX_RANK) || !x) return sema_poison();
    CkShape s = {n, {0}};
    int neg = -1;
    int64_t known = 1;
    bool overflow = false;
    for (int i = 0; i < n; i++) {
      if (dims[i] == -1 && b->kind == BK_RESHAPE && neg < 0) {
        neg = i;
        continue;
      }
      if (dims[i] <= 0) {
        sema_error(S, ba.by[1]->loc, "E0355", "%s: dimension %d of the shape must be positive%s, got %lld",
                   b->name, i, b->kind == BK_RESHAPE ? " (one -1 is allowed)" : "", (long long)dims[i]);
        return sema_poison();
      }
      if (__builtin_mul_overflow(known, dims[i], &known)) overflow = true;
      s.dims[i] = dims[i];
    }
    if (overflow) {
      sema_error(S, ba.by[1]->loc, "E0305", "%s: the shape has too many elements", b->name);
      return sema_poison();
    }
    if (b->kind == BK_BROADCAST) {
      at[nat++] = ir_attr_ints("shape", s.dims, n);
      return mk_op(S, sc, b->op, &x, 1, at, nat, loc);
    }
    int64_t total = ck_shape_numel_unchecked(&x->shape);
    if (neg >= 0) {
      if (total % known != 0) {
        sema_error(S, loc, "E0355", "reshape: cannot reshape %s (%lld elements) with -1: %lld is not a multiple of %lld",
                   type_str(S, x), (long long)total, (long long)total, (long long)known);
        return sema_poison();
      }
      s.dims[neg] = total / known;
    } else if (known != total) {
      sema_error(S, loc, "E0355", "reshape: %s has %lld elements, the new shape %lld", type_str(S, x),
                 (long long)total, (long long)known);
      return sema_poison();
    }
    IrErr err;
    memset(&err, 0, sizeof err);
    return checked(S, ir_reshape(sc->g, x, &s, NULL, loc, &err), loc, &err);
  }
  case BK_SLICE: {
    IrNode *x = tensor_expr(S, sc, b, ba.by[0], "x");
    int64_t axis = 0, start = 0, end = INT64_MAX, step = 1;
    if (ba.by[1] && !attr_int(S, sc, b, "axis", ba.by[1], &axis)) return sema_poison();
    if (ba.by[2] && !attr_int(S, sc, b, "start", ba.by[2], &start)) return sema_poison();
    if (ba.by[3] && !attr_int(S, sc, b, "end", ba.by[3], &end)) return sema_poison();
    if (ba.by[4] && !attr_int(S, sc, b, "step", ba.by[4], &step)) return sema_poison();
    if (!x || !norm_axis(S, loc, "slice", axis, x, &axis)) return sema_poison();
    if (step <= 0) {
      sema_error(S, ba.by[4]->loc, "E0356", "slice: step must be positive, got %lld", (long long)step);
      return sema_poison();
    }
    int64_t dim = x->shape.dims[axis];
    /* Python: negative counts from the end, then clamp to [0, dim] */
    if (start < 0) start += dim;
    if (end < 0) end += dim;
    start = start < 0 ? 0 : start > dim ? dim : start;
    end = end < 0 ? 0 : end > dim ? dim : end;
    if (end <= start) {
      sema_error(S, loc, "E0356", "slice: empty result on axis %lld of %s (start %lld, end %lld)",
                 (long long)axis, type_str(S, x), (long long)start, (long long)end);
      return sema_poison();
    }
    at[nat++] = ir_attr_int("axis", axis);
    at[nat++] = ir_attr_int("start", start);
    at[nat++] = ir_attr_int("end", end);
    if (step != 1) at[nat++] = ir_attr_int("step", step);
    return mk_op(S, sc, b->op, &x, 1, at, nat, loc);
  }
  case BK_CONCAT: {
    int n = ba.rest.len;
    IrNode **in = CKC_NEW_ARRAY(S->a, IrNode *, n);
    bool ok = true;
    for (int i = 0; i < n; i++) {
      in[i] = tensor_expr(S, sc, b, ba.rest.items[i], ckc_arena_printf(S->a, "%d", i));
      ok = ok && in[i];
    }
    int64_t axis = 0;
    if (ba.by[0] && !attr_int(S, sc, b, "axis", ba.by[0], &axis)) return sema_poison();
    if (!ok || !norm_axis(S, loc, "concat", axis, in[0], &axis)) return sema_poison();
    at[nat++] = ir_attr_int("axis", axis);
    return mk_op(S, sc, b->op, in, n, at, nat, loc);
  }
  case BK_REDUCE: {
    IrNode *x = tensor_expr(S, sc, b, ba.by[0], "x");
    int64_t axes[CK_MAX_RANK];
    int n = 0;
    bool keep = false;
    if (ba.by[1] && !attr_ints(S, sc, b, "axis", ba.by[1], axes, &n, CK_MAX_RANK)) return sema_poison();
    if (ba.by[2] && !attr_bool(S, sc, b, "keepdim", ba.by[2], &keep)) return sema_poison();
    if (!x) return sema_poison();
    if (!ba.by[1]) {
      n = x->shape.rank;
      for (int i = 0; i < n; i++) axes[i] = i;
    }
    for (int i = 0; i < n; i++)
      if (!norm_axis(S, ba.by[1] ? ba.by[1]->loc : loc, b->name, axes[i], x, &axes[i]))
        return sema_poison();
    for (int i = 1; i < n; i++) /* insertion sort: axes are few */
      for (int j = i; j > 0 && axes[j - 1] > axes[j]; j--) {
        int64_t t = axes[j];
        axes[j] = axes[j - 1];
        axes[j - 1] = t;
      }
    for (int i = 1; i < n; i++)
      if (axes[i] == axes[i - 1]) {
        sema_error(S, ba.by[1]->loc, "E0308", "%s: axis %lld appears twice", b->name, (long long)axes[i]);
        return sema_poison();
      }
    at[nat++] = ir_attr_ints("axes", axes, n);
    if (keep) at[nat++] = ir_attr_int("keepdim", 1);
    return mk_op(S, sc, b->op, &x, 1, at, nat, loc);
  }
  case BK_ARGMAX:
  case BK_AXIS: {
    IrNode *x = tensor_expr(S, sc, b, ba.by[0], "x");
    int64_t axis = -1;
    bool keep = false;
    if (ba.by[1] && !attr_int(S, sc, b, "axis", ba.by[1], &axis)) return sema_poison();
    if (b->kind == BK_ARGMAX && ba.by[2] && !attr_bool(S, sc, b, "keepdim", ba.by[2], &keep))
      return sema_poison();
    if (!x || !norm_axis(S, loc, b->name, axis, x, &axis)) return sema_poison();
    at[nat++] = ir_attr_int("axis", axis);
    if (keep) at[nat++] = ir_attr_int("keepdim", 1);
    return mk_op(S, sc, b->op, &x, 1, at, nat, loc);
  }
  case BK_NORM: {
    int nt = b->op == IR_OP_LAYERNORM ? 3 : 2;
    IrNode *in[3];
    int nin = 0;
    bool ok = true;
    for (int i = 0; i < nt; i++) {
      if (!ba.by[i]) break;
      in[nin] = tensor_expr(S, sc, b, ba.by[i], b->params[i]);
      ok = ok && in[nin];
      nin++;
    }
    if (nt == 3 && !ba.by[1] && ba.by[2]) {
      sema_error(S, ba.by[2]->loc, "E0300", "layernorm: a bias needs a weight");
      return sema_poison();
    }
    double eps = 1e-5;
    if (ba.by[nt] && !attr_float(S, sc, b, "eps", ba.by[nt], &eps)) return sema_poison();
    if (!ok) return sema_poison();
    if (!(eps > 0)) {
      sema_error(S, ba.by[nt]->loc, "E0308", "%s: eps must be positive", b->name);
      return sema_poison();
    }
    at[nat++] = ir_attr_float("eps", eps);
    return mk_op(S, sc, b->op, in, nin, at, nat, loc);
  }
  case BK_EMBED: {
    IrNode *in[2] = {tensor_expr(S, sc, b, ba.by[0], "table"), tensor_expr(S, sc, b, ba.by[1], "idx")};
    if (!in[0] || !in[1]) return sema_poison();
    return mk_op(S, sc, b->op, in, 2, NULL, 0, loc);
  }
  case BK_CONV: {
    IrNode *in[3];
    int nin = ba.by[2] ? 3 : 2;
    bool ok = true;
    for (int i = 0; i < nin; i++) {
      in[i] = tensor_expr(S, sc, b, ba.by[i], b->params[i]);
      ok = ok && in[i];
    }
    int64_t stride[2] = {1, 1}, pad[2] = {0, 0}, groups = 1;
    if (ba.by[3] && !attr_pair(S, sc, b, "stride", ba.by[3], stride, 1)) return sema_poison();
    if (ba.by[4] && !attr_pair(S, sc, b, "padding", ba.by[4], pad, 0)) return sema_poison();
    if (ba.by[5] && !attr_int(S, sc, b, "groups", ba.by[5], &groups)) return sema_poison();
    if (!ok) return sema_poison();
    if (groups < 1) {
      sema_error(S, ba.by[5]->loc, "E0308", "conv2d: groups must be at least 1, got %lld", (long long)groups);
      return sema_poison();
    }
    at[nat++] = ir_attr_ints("stride", stride, 2);
    at[nat++] = ir_attr_ints("padding", pad, 2);
    at[nat++] = ir_attr_int("groups", groups);
    return mk_op(S, sc, b->op, in, nin, at, nat, loc);
  }
  case BK_POOL: {
    IrNode *x = tensor_expr(S, sc, b, ba.by[0], "x");
    int64_t k[2], stride[2], pad[2] = {0, 0};
    if (!ba.by[1]) {
      sema_error(S, loc, "E0300", "%s: missing argument 'kernel'", b->name);
      return sema_poison();
    }
    if (!attr_pair(S, sc, b, "kernel", ba.by[1], k, 1)) return sema_poison();
    stride[0] = k[0];
    stride[1] = k[1];
    if (ba.by[2] && !attr_pair(S, sc, b, "stride", ba.by[2], stride, 1)) return sema_poison();
    if (ba.by[3] && !attr_pair(S, sc, b, "padding", ba.by[3], pad, 0)) return sema_poison();
    if (!x) return sema_poison();
    at[nat++] = ir_attr_ints("kernel", k, 2);
    at[nat++] = ir_attr_ints("stride", stride, 2);
    at[nat++] = ir_attr_ints("padding", pad, 2);
    return mk_op(S, sc, b->op, &x, 1, at, nat, loc);
  }
  case BK_ATTENTION: {
    IrNode *in[3];
    bool ok = true;
    for (int i = 0; i < 3; i++) {
      in[i] = tensor_expr(S, sc, b, ba.by[i], b->params[i]);
      ok = ok && in[i];
    }
    bool causal = true;
    double scale = 0;
    bool has_scale = false;
    if (ba.by[3] && !attr_bool(S, sc, b, "causal", ba.by[3], &causal)) return sema_poison();
    if (ba.by[4]) {
      if (!attr_float(S, sc, b, "scale", ba.by[4], &scale)) return sema_poison();
      has_scale = true;
    }
    if (!ok) return sema_poison();
    if (!has_scale) {
      int r = in[0]->shape.rank;
      int64_t D = r > 0 ? in[0]->shape.dims[r - 1] : 1;
      scale = 1.0 / sqrt((double)D);
    }
    at[nat++] = ir_attr_int("causal", causal);
    at[nat++] = ir_attr_float("scale", scale);
    return mk_op(S, sc, b->op, in, 3, at, nat, loc);
  }
  case BK_LOSS: {
    /* losses reduce to a scalar; cross_entropy's attributes are kept only
     * when they differ from PyTorch's defaults, so dumps stay short */
    IrNode *in[2] = {tensor_expr(S, sc, b, ba.by[0], b->params[0]),
                     tensor_expr(S, sc, b, ba.by[1], b->params[1])};
    int64_t ignore = -100;
    double smooth = 0.0;
    if (ba.by[2] && !attr_int(S, sc, b, "ignore_index", ba.by[2], &ignore)) return sema_poison();
    if (ba.by[3] && !attr_float(S, sc, b, "label_smoothing", ba.by[3], &smooth)) return sema_poison();
    if (!in[0] || !in[1]) return sema_poison();
    if (ba.by[3] && !(smooth >= 0.0 && smooth <= 1.0)) {
      SemaVal sv = sema_float(smooth);
      sema_error(S, ba.by[3]->loc, "E0512", "cross_entropy: label_smoothing must be in [0, 1], got %s",
                 sema_val_str(S, &sv));
      return sema_poison();
    }
    if (ignore != -100) at[nat++] = ir_attr_int("ignore_index", ignore);
    if (smooth != 0.0) at[nat++] = ir_attr_float("label_smoothing", smooth);
    return mk_op(S, sc, b->op, in, 2, at, nat, loc);
  }
  }
  return sema_poison();
}

/* ---- expressions ---------------------------------------------------------------------------- */

static IrOp binop_ir(AstBinOp op) {
  switch (op) {
  case AST_ADD: return IR_OP_ADD;
  case AST_SUB: return IR_OP_SUB;
  case AST_MUL: return IR_OP_MUL;
  case AST_DIV: return IR_OP_DIV;
  case AST_MATMUL: return IR_OP_MATMUL;
  case AST_LT: return IR_OP_LT;
  case AST_LE: return IR_OP_LE;
  case AST_GT: return IR_OP_GT;
  case AST_GE: return IR_OP_GE;
  case AST_EQ: return IR_OP_EQ;
  case AST_NE: return IR_OP_NE;
  default: return IR_OP_COUNT;
  }
}

static const char *binop_sym(AstBinOp op) {
  static const char *const s[] = {"+", "-", "*", "/", "%", "@", "<", "<=", ">", ">=", "==", "!=",
                                  "&&", "||"};
  return (unsigned)op < sizeof s / sizeof s[0] ? s[op] : "?";
}

static SemaVal eval_call(Sema *S, SemaScope *sc, AstExpr *e) {
  AstExpr *callee = e->u.call.callee;
  if (!callee) return sema_poison();
  SemaVal f;
  if (callee->kind == AST_EXPR_NAME && !sema_lookup(S, sc, callee->u.name, callee->loc, &f)) {
    int bi = builtin_find(callee->u.name);
    if (bi >= 0) return call_builtin(S, sc, &builtins[bi], e);
    sema_error(S, callee->loc, "E0203", "unknown name '%s'%s", callee->u.name,
               sema_suggest_in_scope(S, sc, callee->u.name, true));
    return sema_poison();
  }
  if (callee->kind != AST_EXPR_NAME) f = sema_eval(S, sc, callee);
  switch (f.kind) {
  case SV_POISON: return f;
  case SV_INST: {
    AstMember *fn = find_fn(f.inst, "forward");
    if (!fn) {
      sema_error(S, callee->loc, "E0217", "'%s' (%s) has no fn forward", expr_text(S, callee),
                 f.inst->key);
      return sema_poison();
    }
    return call_fn(S, sc, f.inst, f.path, fn, e);
  }
  case SV_METHOD: return call_fn(S, sc, f.inst, f.path, f.fn, e);
  case SV_LAYER:
    sema_error(S, callee->loc, "E0206",
               "layer '%s' cannot be constructed inside a fn; declare a member (name: %s(...);) and call that",
               expr_text(S, callee), expr_text(S, callee));
    return sema_poison();
  case SV_ARRAY:
    sema_error(S, callee->loc, "E0205", "'%s' is an instance array; call one element (%s[0](x)) or loop over it with for",
               expr_text(S, callee), expr_text(S, callee));
    return sema_poison();
  default:
    sema_error(S, callee->loc, "E0205", "'%s' is not callable (it is %s)", expr_text(S, callee),
               sema_val_kind_str(S, &f));
    return sema_poison();
  }
}

static SemaVal eval_member(Sema *S, SemaScope *sc, AstExpr *e) {
  SemaVal obj = sema_eval(S, sc, e->u.member.object);
  const char *field = e->u.member.field;
  if (obj.kind == SV_POISON || !field) return sema_poison();
  if (obj.kind == SV_MODULE) {
    SemaSym *sym = sema_module_find(obj.mod, field);
    if (!sym || sym->kind == SYM_IMPORT || sym->kind == SYM_TRAIN) {
      CKC_VEC(const char *) c = {0};
      for (int i = 0; i < obj.mod->syms.len; i++)
        if (obj.mod->syms.items[i]->kind != SYM_IMPORT) CKC_VEC_PUSH(S->a, c, obj.mod->syms.items[i]->name);
      const char *sug = sema_suggest(field, c.items, c.len);
      sema_error(S, e->u.member.field_loc, "E0204", "module '%s' has no member '%s'%s%s%s",
                 expr_text(S, e->u.member.object), field, sug ? "; did you mean '" : "", sug ? sug : "",
                 sug ? "'?" : "");
      return sema_poison();
    }
    SemaVal v = sema_poison();
    if (sym->kind == SYM_CONST) {
      sema_module_const(S, obj.mod, sym, &v);
      return v;
    }
    v.kind = SV_LAYER;
    v.decl = sym->decl;
    v.mod = obj.mod;
    return v;
  }
  if (obj.kind == SV_INST) {
    SemaMemb *mb = sema_inst_member(obj.inst, field);
    if (mb) return sema_member_val(S, sc, obj.inst, mb, obj.path, e->u.member.field_loc);
    for (int i = 0; i < obj.inst->nargs; i++)
      if (strcmp(obj.inst->argnames[i], field) == 0) return obj.inst->args[i];
    CKC_VEC(const char *) c = {0};
    for (int i = 0; i < obj.inst->members.len; i++) CKC_VEC_PUSH(S->a, c, obj.inst->members.items[i]->m->name);
    const char *sug = sema_suggest(field, c.items, c.len);
    sema_error(S, e->u.member.field_loc, "E0204", "'%s' (%s) has no member '%s'%s%s%s",
               expr_text(S, e->u.member.object), obj.inst->key, field, sug ? "; did you mean '" : "",
               sug ? sug : "", sug ? "'?" : "");
    return sema_poison();
  }
  if (obj.kind == SV_DATA) { /* a train block's `data`: the batch tensors x and y */
    if (strcmp(field, "x") == 0) return obj.elems[0];
    if (strcmp(field, "y") == 0) return obj.elems[1];
    sema_error(S, e->u.member.field_loc, "E0204", "the data source has no member '%s' (members: x, y)",
               field);
    return sema_poison();
  }
  sema_error(S, e->u.member.field_loc, "E0204", "%s has no member '%s'", sema_val_kind_str(S, &obj),
             field);
  return sema_poison();
}

/* Expressions: constants fold, tensors build IR nodes in sc->g. */
SemaVal sema_eval(Sema *S, SemaScope *sc, AstExpr *e) {
  if (!e) return sema_poison();
  switch (e->kind) {
  case AST_EXPR_INT: return sema_int(e->u.ival);
  case AST_EXPR_FLOAT: return sema_float(e->u.fval);
  case AST_EXPR_BOOL: return sema_bool(e->u.ival != 0);
  case AST_EXPR_STRING: {
    SemaVal v = sema_poison();
    v.kind = SV_STR;
    v.s = e->u.str ? e->u.str : "";
    return v;
  }
  case AST_EXPR_NAME: {
    SemaVal v;
    if (sema_lookup(S, sc, e->u.name, e->loc, &v)) return v;
    int bi = builtin_find(e->u.name);
    if (bi >= 0) {
      sema_error(S, e->loc, "E0205", "builtin '%s' must be called: %s(...)", e->u.name, e->u.name);
      return sema_poison();
    }
    sema_error(S, e->loc, "E0203", "unknown name '%s'%s", e->u.name,
               sema_suggest_in_scope(S, sc, e->u.name, false));
    return sema_poison();
  }
  case AST_EXPR_MEMBER: return eval_member(S, sc, e);
  case AST_EXPR_CALL: return eval_call(S, sc, e);
  case AST_EXPR_INDEX: {
    SemaVal obj = sema_eval(S, sc, e->u.index.object);
    if (obj.kind == SV_POISON) return obj;
    if (obj.kind == SV_TENSOR) {
      sema_error(S, e->loc, "E0351", "tensors cannot be indexed; use slice(x, axis = 0, start = i, end = i + 1)");
      return sema_poison();
    }
    if (obj.kind != SV_ARRAY && obj.kind != SV_TUPLE) {
      sema_error(S, e->loc, "E0304", "%s cannot be indexed", sema_val_kind_str(S, &obj));
      return sema_poison();
    }
    int64_t i;
    if (!sema_eval_int(S, sc, e->u.index.index, "an index", &i)) return sema_poison();
    int64_t n = obj.kind == SV_ARRAY ? obj.i : obj.n;
    int64_t j = i < 0 ? i + n : i;
    if (j < 0 || j >= n) {
      sema_error(S, e->u.index.index->loc, "E0309", "index %lld is out of range for '%s' (%lld element%s)",
                 (long long)i, expr_text(S, e->u.index.object), (long long)n, n == 1 ? "" : "s");
      return sema_poison();
    }
    if (obj.kind == SV_TUPLE) return obj.elems[j];
    SemaVal v = obj;
    v.kind = SV_INST;
    v.path = join_path(S, obj.path, ckc_arena_printf(S->a, "%lld", (long long)j));
    return v;
  }
  case AST_EXPR_BINARY: {
    SemaVal a = sema_eval(S, sc, e->u.binary.lhs);
    SemaVal b = sema_eval(S, sc, e->u.binary.rhs);
    if (a.kind == SV_POISON || b.kind == SV_POISON) return sema_poison();
    AstBinOp op = e->u.binary.op;
    if (a.kind != SV_TENSOR && b.kind != SV_TENSOR) {
      if (sema_is_const(&a) && sema_is_const(&b)) {
        SemaVal r;
        sema_const_binop(S, e->loc, op, a, b, &r);
        return r;
      }
      const char *what = ckc_arena_printf(S->a, "operator '%s'", binop_sym(op));
      if (!sema_is_const(&a)) want_tensor(S, a, e->u.binary.lhs->loc, what);
      else want_tensor(S, b, e->u.binary.rhs->loc, what);
      return sema_poison();
    }
    IrOp iop = binop_ir(op);
    if (iop == IR_OP_COUNT) {
      sema_error(S, e->loc, "E0351", "operator '%s' is only defined on constants%s", binop_sym(op),
                 op == AST_MOD ? "" : "; for bool tensors use where(a, b, false)");
      return sema_poison();
    }
    if (op == AST_MATMUL && (a.kind != SV_TENSOR || b.kind != SV_TENSOR)) {
      const char *what = "operator '@'";
      sema_error(S, e->loc, "E0304", "%s needs two tensors, got %s and %s", what,
                 sema_val_kind_str(S, &a), sema_val_kind_str(S, &b));
      return sema_poison();
    }
    return elementwise2(S, sc, iop, binop_sym(op), a, e->u.binary.lhs->loc, b, e->u.binary.rhs->loc,
                        e->loc);
  }
  case AST_EXPR_UNARY: {
    SemaVal a = sema_eval(S, sc, e->u.unary.operand);
    if (a.kind == SV_POISON) return a;
    AstUnOp op = e->u.unary.op;
    if (a.kind != SV_TENSOR) {
      SemaVal r;
      sema_const_unop(S, e->loc, op, a, &r);
      return r;
    }
    IrNode *x = a.node;
    if (op == AST_PLUS) return a;
    if (op == AST_NEG) return mk_op(S, sc, IR_OP_NEG, &x, 1, NULL, 0, e->loc);
    if (x->dtype != CK_DT_BOOL) {
      sema_error(S, e->loc, "E0303", "operator '!' needs a bool tensor, got %s", type_str(S, x));
      return sema_poison();
    }
    IrNode *in[2] = {x, ir_const_scalar(sc->g, CK_DT_BOOL, 0, e->loc)};
    return mk_op(S, sc, IR_OP_EQ, in, 2, NULL, 0, e->loc);
  }
  case AST_EXPR_TUPLE: {
    SemaVal v = sema_poison();
    v.kind = SV_TUPLE;
    v.n = e->u.tuple.n;
    v.elems = CKC_NEW_ARRAY(S->a, SemaVal, v.n ? v.n : 1);
    for (int i = 0; i < v.n; i++) {
      v.elems[i] = sema_eval(S, sc, e->u.tuple.elems[i]);
      if (v.elems[i].kind == SV_POISON) return sema_poison();
    }
    return v;
  }
  case AST_EXPR_ELLIPSIS:
    sema_error(S, e->loc, "E0304", "'...' is only allowed among the dims of a tensor type");
    return sema_poison();
  }
  return sema_poison();
}
