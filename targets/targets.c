/* targets/targets.c - the target registry: one descriptor per file in
 * targets/, listed here in --list-targets order. Adding a target is adding
 * its file and one line below; nothing else switches on target names. */
#include <string.h>

#include "targets/target.h"

extern const CkcTarget ckc_target_c99;
extern const CkcTarget ckc_target_x86_avx2;
extern const CkcTarget ckc_target_x86_avx512;

const CkcTarget *const ckc_targets[] = {
    &ckc_target_c99,
    &ckc_target_x86_avx2,
    &ckc_target_x86_avx512,
    NULL,
};

/* Exact name match; NULL lets the driver report the unknown target (E00xx). */
const CkcTarget *ckc_target_find(const char *name) {
  if (!name) return NULL;
  for (int i = 0; ckc_targets[i]; i++)
    if (strcmp(ckc_targets[i]->name, name) == 0) return ckc_targets[i];
  return NULL;
}
