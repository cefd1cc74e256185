/* lower/memplan.h - the memory planner: where every buffer of a lowered
 * entry function lives, and how far that is from the best possible.
 *
 * Two layers:
 *   - a pure interval planner (MemplanItem: a size live over the inclusive
 *     step range [start, end]) with the lower bound "largest live set" and a
 *     verifier; unit-tested on synthetic sets (test-suite/unit/check_memplan.c);
 *   - lower_plan_memory (declared in lower/lower.h, defined in memplan.c):
 *     liveness over the whole step list of one LowerProgram, sections,
 *     in-place reuse of elementwise loops, placement, self-check, statistics.
 *
 * docs/memory.md describes the rules and how to read `ckc --mem-report`. */
#ifndef CKC_MEMPLAN_H
#define CKC_MEMPLAN_H

#include <stdbool.h>
#include <stdint.h>

#include "lower/lower.h"
#include "util/arena.h"
#include "util/diag.h"

/* ---- the interval planner --------------------------------------------------------------- */

typedef struct MemplanItem {
  int64_t size;   /* bytes; 0 is placed as 1 byte (a distinct address) */
  int start, end; /* live over steps start..end, inclusive */
  int64_t offset; /* result: 64-byte aligned byte offset */
} MemplanItem;

typedef enum MemplanStrategy {
  MEMPLAN_FIRST_FIT_IN_ORDER, /* v0: by start step, lowest free offset */
  MEMPLAN_SIZE_FIRST_FIT,     /* by size descending, lowest free offset */
  MEMPLAN_SIZE_BEST_FIT,      /* by size descending, the smallest gap that fits */
  MEMPLAN_AREA_BEST_FIT,      /* by size x lifetime descending, smallest gap */
  MEMPLAN_LONG_FIRST_FIT,     /* by lifetime descending (then size), lowest offset */
  MEMPLAN_STRATEGY_COUNT,
  MEMPLAN_BEST = MEMPLAN_STRATEGY_COUNT /* every strategy above, the smallest peak wins */
} MemplanStrategy;

const char *memplan_strategy_name(MemplanStrategy s);
int64_t memplan_align(int64_t v);
/* Places items (offsets written) with strategy s; returns the peak: the
 * 64-byte rounded end of the highest item. Deterministic (ties by index). */
int64_t memplan_place(MemplanItem *items, int n, MemplanStrategy s, CkcArena *a);
/* max over steps of the sum of the (64-byte rounded) sizes live at that step:
 * no placement can use less. */
int64_t memplan_lower_bound(const MemplanItem *items, int n, CkcArena *a);
/* True if no two items live at the same step share a byte and every offset
 * is 64-byte aligned; otherwise false with *bad_i, *bad_j set (may be NULL). */
bool memplan_verify(const MemplanItem *items, int n, int *bad_i, int *bad_j);

/* ---- sections and statistics of a lowered program ------------------------------------------ */

typedef enum MemplanSection {
  MEMPLAN_SEC_PARAMS,      /* the params blob (caller's) */
  MEMPLAN_SEC_GRADS,       /* train_step: the grads blob (caller's; same layout as params) */
  MEMPLAN_SEC_OPTIM,       /* optimizer moments in rt-min (Adam 2x params, SGD+momentum 1x) */
  MEMPLAN_SEC_ACTIVATIONS, /* arena: values that die in their own phase */
  MEMPLAN_SEC_SAVED,       /* arena: forward values read by the backward */
  MEMPLAN_SEC_SCRATCH,     /* arena: kernel workspaces (norm statistics, attention rows) */
  MEMPLAN_SEC_COUNT
} MemplanSection;

const char *memplan_section_name(MemplanSection s); /* "activations" ... */
const char *memplan_section_macro(MemplanSection s); /* "ACTIVATIONS" ... */

typedef struct MemplanStats {
  int64_t section[MEMPLAN_SEC_COUNT]; /* bytes; arena sections: the section's own largest live set */
  int64_t peak;                       /* the arena the function needs (= LowerProgram.arena_bytes) */
  int64_t lower_bound;                /* largest live set of the arena (after in-place merging) */
  int64_t first_fit_peak;             /* what the v0 first-fit-in-order plan needed (comparison) */
  int nbufs;                          /* arena buffers */
  int ninplace;                       /* buffers that overwrite a dying input */
  int nsteps;
  MemplanStrategy strategy;           /* the winner */
} MemplanStats;

/* The statistics of the plan of p (computed by lower_plan_memory), or NULL. */
const MemplanStats *memplan_stats(const LowerProgram *p);

/* `ckc --mem-report`: per entry graph of lm, each section, the peak, the
 * lower bound and their ratio. Deterministic text (golden-tested). */
void memplan_report(const LowerModule *lm, CkcBuf *out);

/* The header's size macros of the plan: <P>_<ENTRY>_<SECTION>_BYTES for the
 * arena sections of every entry, <P>_<ENTRY>_LOWER_BOUND_BYTES, and with a
 * train block <P>_GRADS_BYTES and <P>_OPTIM_STATE_BYTES. */
void memplan_emit_defines(const LowerModule *lm, CkcBuf *b);

/* ---- recomputation (--recompute) -------------------------------------------------------------- */

/* Parses "gelu,layernorm,..." or "cheap" or "none" into *mask (bits by IrOp);
 * false (message in *why) on an unknown name. */
typedef struct MemplanRecompute {
  bool op[IR_OP_COUNT];
  bool any;
} MemplanRecompute;
bool memplan_recompute_parse(const char *spec, MemplanRecompute *r, const char **why, CkcArena *a);
/* In train_step: a forward node of a recomputable op read by the backward is
 * cloned right before its first backward use, and the backward reads the
 * clone, so the forward value dies in the forward. Returns the number of
 * nodes cloned. Run after every pass (cse would merge the clones back). */
int memplan_recompute(IrModule *m, const MemplanRecompute *r);

#endif
