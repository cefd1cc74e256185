/* test-suite/parity/kernels_helpers.c - array wrappers around the scalar
 * helpers of rt-min/ck_kernels.h, so that kernels.py can check them against
 * PyTorch with one ctypes call per array instead of one per element. */
#include "ck_kernels.h"

void ckp_map(int which, float *out, const float *x, int64_t n);

/* which: 0 sigmoid, 1 relu, 2 gelu erf, 3 gelu tanh, 4 silu, 5 rsqrt. */
void ckp_map(int which, float *out, const float *x, int64_t n) {
  int64_t i;
  for (i = 0; i < n; i++) {
    switch (which) {
    case 0: out[i] = ck_sigmoidf(x[i]); break;
    case 1: out[i] = ck_reluf(x[i]); break;
    case 2: out[i] = ck_gelu_erff(x[i]); break;
    case 3: out[i] = ck_gelu_tanhf(x[i]); break;
    case 4: out[i] = ck_siluf(x[i]); break;
    default: out[i] = ck_rsqrtf(x[i]); break;
    }
  }
}
