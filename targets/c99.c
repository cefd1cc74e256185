/* targets/c99.c - the portable hosted target: plain C99, any compiler, any
 * OS with stdio and malloc; reference kernels only, one thread. */
#include "targets/target.h"

const CkcTarget ckc_target_c99 = {
    .name = "c99",
    .description = "portable C99, hosted (stdio, malloc), reference kernels, one thread",
    .cc = "cc",
    .cflags = "-std=c99 -O2 -Wall -Wextra -Werror",
    .ldlibs = "-lm",
    .hosted = true,
};
