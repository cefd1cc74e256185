/* passes/registry.c - the pass pipeline, in order. The driver walks this
 * table, so adding a pass is one row here plus its file; --help,
 * --dump-after= and --disable-pass= learn its name from the row. */
#include <string.h>

#include "passes/passes.h"

const CkcPass ckc_passes[] = {
    {"inline", pass_inline, true, "replace layer calls by their bodies; full dotted parameter names"},
    {"autodiff", pass_autodiff, true, "build the train_step graph (forward + backward) from the loss graph"},
    {"decode", pass_decode, false, "derive the one-position decode entry (K/V cache) of a language model's forward"},
    {"fold", pass_fold, false, "evaluate small constant subgraphs; exact shape/transpose identities"},
    {"cse", pass_cse, false, "merge nodes computing the same value (same op, inputs, attributes)"},
    {"dce", pass_dce, false, "remove nodes that no output depends on (inputs are kept)"},
    {"fusion", pass_fusion, false, "fuse elementwise chains into one loop and epilogues into their matmul"},
    {"optimizer", pass_optimizer, true, "resolve the trained parameters and their weight-decay flags"},
    {NULL, NULL, false, NULL},
};

/* Linear lookup: the table is tiny and its order is the pipeline order. */
const CkcPass *ckc_pass_find(const char *name) {
  if (!name) return NULL;
  for (const CkcPass *p = ckc_passes; p->name; p++)
    if (strcmp(p->name, name) == 0) return p;
  return NULL;
}
