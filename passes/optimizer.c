/* passes/optimizer.c - resolve what the optimizer updates.
 *
 * Runs after the simplifying passes, so it sees the train_step graph the
 * back end will see. For each gradient output of train_step (outputs 1..n,
 * in the order autodiff recorded in IrTrainConfig.params) it decides
 * whether weight decay applies:
 *   1. default: decay iff the parameter has rank >= 2 (matrices, embeddings,
 *      conv kernels), so norm gains and biases are excluded, as in the
 *      GPT-2/nanoGPT recipe;
 *   2. a parameter matching a `decay_exclude` glob gets no decay;
 *   3. a parameter matching a `decay_include` glob gets decay (include wins
 *      over exclude and the default);
 *   4. a parameter whose gradient is the zero constant (no path to the loss,
 *      warned about by autodiff as W0501) never decays: PyTorch's optimizers
 *      skip parameters without a gradient, and with no gradient and no decay
 *      the update is exactly zero.
 * Globs: `*` matches any run of characters (dots included), everything
 * else matches itself: `*.bias`, `blocks.*.ln*`, `wte`.
 * A pattern that matches no trainable parameter is warned about (W0520): it
 * is almost always a typo. */
#include <string.h>

#include "ir/train.h"
#include "passes/passes.h"

/* Iterative glob with one backtrack point (the classic wildcard matcher). */
static bool opt_glob(const char *pat, const char *s) {
  const char *star = NULL, *resume = NULL;
  while (*s) {
    if (*pat == '*') {
      star = pat++;
      resume = s;
    } else if (*pat == *s) {
      pat++;
      s++;
    } else if (star) {
      pat = star + 1;
      s = ++resume;
    } else {
      return false;
    }
  }
  while (*pat == '*') pat++;
  return *pat == 0;
}

static IrNode *opt_find_param(const IrGraph *g, const char *name) {
  for (int i = 0; i < g->nodes.len; i++) {
    IrNode *n = g->nodes.items[i];
    if (n->op == IR_OP_PARAM && n->name && strcmp(n->name, name) == 0) return n;
  }
  return NULL;
}

/* The zero splat autodiff emits for a parameter with no gradient path. */
static bool opt_is_zero_grad(const IrNode *n) {
  return n->op == IR_OP_CONST && !n->data && ir_get_float(n, "value", 1.0) == 0.0;
}

/* Without a list from autodiff (a hand-built module), the names come from
 * the outputs' "grad.<param>" names. */
static void opt_params_from_names(IrModule *m, const IrGraph *g, IrTrainConfig *tc) {
  for (int i = 1; i < g->outputs.len; i++) {
    const IrNode *o = g->outputs.items[i];
    if (!o->name || strncmp(o->name, "grad.", 5) != 0)
      CKC_ICE("optimizer: output %d of train_step is not named grad.<param>", i);
    IrTrainParam p = {.name = o->name + 5, .decay = false};
    CKC_VEC_PUSH(m->arena, tc->params, p);
  }
}

static void opt_check_patterns(CkcDiag *d, const IrTrainConfig *tc, const char *const *pats, int n,
                               const char *what) {
  for (int k = 0; k < n; k++) {
    bool used = false;
    for (int i = 0; i < tc->params.len && !used; i++) used = opt_glob(pats[k], tc->params.items[i].name);
    if (!used)
      ckc_warning(d, tc->loc, "W0520", "%s pattern '%s' matches no trainable parameter", what, pats[k]);
  }
}

bool pass_optimizer(IrModule *m, CkcDiag *d) {
  IrTrainConfig *tc = m->train;
  IrGraph *g = ir_module_entry(m, "train_step");
  if (!tc || !g) return true;
  if (tc->params.len == 0) opt_params_from_names(m, g, tc);
  if (tc->params.len != g->outputs.len - 1)
    CKC_ICE("optimizer: %d parameters recorded for %d gradient outputs", tc->params.len,
            g->outputs.len - 1);
  for (int i = 0; i < tc->params.len; i++) {
    IrTrainParam *p = &tc->params.items[i];
    const IrNode *grad = g->outputs.items[i + 1];
    const IrNode *pn = opt_find_param(g, p->name);
    const CkShape *shape = pn ? &pn->shape : &grad->shape; /* dce may drop an unused param */
    if (!ck_shape_eq(shape, &grad->shape))
      CKC_ICE("optimizer: gradient output %d does not have the shape of '%s'", i + 1, p->name);
    bool decay = shape->rank >= 2;
    for (int k = 0; k < tc->decay_exclude.len; k++)
      if (opt_glob(tc->decay_exclude.items[k], p->name)) decay = false;
    for (int k = 0; k < tc->decay_include.len; k++)
      if (opt_glob(tc->decay_include.items[k], p->name)) decay = true;
    if (opt_is_zero_grad(grad)) decay = false;
    p->decay = decay;
  }
  opt_check_patterns(d, tc, tc->decay_exclude.items, tc->decay_exclude.len, "decay_exclude");
  opt_check_patterns(d, tc, tc->decay_include.items, tc->decay_include.len, "decay_include");
  return true;
}
