/* test-suite/runtime/fake_main.c - the main.c a generated project would
 * have, for the hand-written fake models: descriptor set-up, then ck_main.
 * Built twice by run.sh: -DFAKE_LM (bigram LM on tokens.u8) and without it
 * (MLP on x.idx / y.idx, eval set ex.idx / ey.idx), data paths relative to
 * the working directory. */
#include "test-suite/runtime/fake_model.h"

int main(int argc, char **argv) {
  FakeModel f;
#ifdef FAKE_LM
  const int lm = 1;
#else
  const int lm = 0;
#endif
  if (lm) fake_lm_make(&f, "tokens.u8", 1, 0.25);
  else fake_mlp_make(&f, CK_DATA_IDX, "x.idx", "y.idx", "ex.idx", "ey.idx");
  return ck_main(argc, argv, &f.m);
}
