/* rt-min/x86/ck_x86_conv_avx2.c - the AVX2 rows of the 2x2, stride-2,
 * unpadded max pool (ck_x86_conv.c calls them where the CPU has AVX2 but
 * not AVX-512F: the x86-avx2 target, or an AVX-512 build on an AVX2 CPU).
 * Built with -march=x86-64-v3 or above by the Makefile and both x86
 * targets.
 *
 * A block is 8 outputs of one output row: the 16 cells of each of its two
 * input rows split into even (kw = 0) and odd (kw = 1) columns, so lane l
 * holds window l's four cells t0..t3 in (kh, kw) order. Each lane runs the
 * reference's comparisons in the reference's order, as the AVX-512 blocks
 * do: the forward takes a cell when `v > m || v != v` unless m is already
 * a NaN (its break), the backward records the first maximum or the last
 * NaN. The results are the scalar loops' bits. A row's last block of
 * cnt < 8 outputs uses masked loads and stores of its 2*cnt cells. */
#include "ck_x86_conv.h"

#include <immintrin.h>

/* Lanes [0, n) of 8 (n clamped to 0..8) as a maskload / maskstore mask. */
static __m256i ck_x86_first(int64_t n) {
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  int32_t k = (int32_t)(n < 0 ? 0 : n > 8 ? 8 : n);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(k), idx);
}

/* The even and odd cells of a block's 8 windows from one input row (2*cnt
 * cells from row; the lanes past cnt read as zero and are never stored). */
static void ck_x86_pool2_split8(const float *row, int64_t cnt, __m256 *even, __m256 *odd) {
  __m256 lo, hi, e, o;
  if (cnt == 8) {
    lo = _mm256_loadu_ps(row);
    hi = _mm256_loadu_ps(row + 8);
  } else {
    lo = _mm256_maskload_ps(row, ck_x86_first(2 * cnt));
    hi = _mm256_maskload_ps(row + 8, ck_x86_first(2 * cnt - 8));
  }
  /* per 128-bit half: [lo0 lo2 hi0 hi2 | lo4 lo6 hi4 hi6]; then 64-bit pairs 0 2 1 3 */
  e = _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(2, 0, 2, 0));
  o = _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(3, 1, 3, 1));
  *even = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e), _MM_SHUFFLE(3, 1, 2, 0)));
  *odd = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(o), _MM_SHUFFLE(3, 1, 2, 0)));
}

/* The inverse: even / odd cells of 8 windows back into 16 row cells. */
static void ck_x86_pool2_join8(__m256 even, __m256 odd, __m256 *lo, __m256 *hi) {
  __m256 a = _mm256_unpacklo_ps(even, odd), b = _mm256_unpackhi_ps(even, odd);
  *lo = _mm256_permute2f128_ps(a, b, 0x20);
  *hi = _mm256_permute2f128_ps(a, b, 0x31);
}

static void ck_x86_pool2_load_block(const float *r0, const float *r1, int64_t cnt, __m256 t[4]) {
  ck_x86_pool2_split8(r0, cnt, &t[0], &t[1]);
  ck_x86_pool2_split8(r1, cnt, &t[2], &t[3]);
}

void ck_x86_maxpool2x2_row_avx2(float *o, const float *r0, const float *r1, int64_t n) {
  int64_t ow;
  for (ow = 0; ow < n; ow += 8) {
    int64_t cnt = n - ow < 8 ? n - ow : 8;
    __m256 t[4], m;
    int k;
    ck_x86_pool2_load_block(r0 + 2 * ow, r1 + 2 * ow, cnt, t);
    m = t[0];
    for (k = 1; k < 4; k++) {
      __m256 keep = _mm256_cmp_ps(m, m, _CMP_ORD_Q);
      __m256 take = _mm256_or_ps(_mm256_cmp_ps(t[k], m, _CMP_GT_OQ), _mm256_cmp_ps(t[k], t[k], _CMP_UNORD_Q));
      m = _mm256_blendv_ps(m, t[k], _mm256_and_ps(keep, take));
    }
    if (cnt == 8)
      _mm256_storeu_ps(o + ow, m);
    else
      _mm256_maskstore_ps(o + ow, ck_x86_first(cnt), m);
  }
}

/* The addends of a block's cells: each window's gradient g at its recorded
 * cell (first maximum, or last NaN), -0.0f at its other three; out[r][h]
 * are input row r's cells [8h, 8h + 8) of the block. x + -0.0f == x for
 * every x, so adding an addend leaves the cells no window records as the
 * reference leaves them: untouched. */
static void ck_x86_pool2_addends8(const __m256 t[4], __m256 g, __m256 out[2][2]) {
  const __m256 nz = _mm256_set1_ps(-0.0f);
  __m256 m = t[0], b = _mm256_setzero_ps(), a[4];
  int k;
  for (k = 1; k < 4; k++) {
    __m256 take = _mm256_or_ps(_mm256_cmp_ps(t[k], m, _CMP_GT_OQ), _mm256_cmp_ps(t[k], t[k], _CMP_UNORD_Q));
    m = _mm256_blendv_ps(m, t[k], take);
    b = _mm256_blendv_ps(b, _mm256_set1_ps((float)k), take);
  }
  for (k = 0; k < 4; k++) a[k] = _mm256_blendv_ps(nz, g, _mm256_cmp_ps(b, _mm256_set1_ps((float)k), _CMP_EQ_OQ));
  ck_x86_pool2_join8(a[0], a[1], &out[0][0], &out[0][1]);
  ck_x86_pool2_join8(a[2], a[3], &out[1][0], &out[1][1]);
}

static __m256 ck_x86_pool2_g8(const float *g, int64_t cnt) {
  return cnt == 8 ? _mm256_loadu_ps(g) : _mm256_maskload_ps(g, ck_x86_first(cnt));
}

void ck_x86_maxpool2x2_bwd_row_avx2(float *d0, float *d1, const float *r0, const float *r1, const float *g,
                                    int64_t n) {
  int64_t ow;
  for (ow = 0; ow < n; ow += 8) {
    int64_t cnt = n - ow < 8 ? n - ow : 8;
    float *rows[2] = {d0 + 2 * ow, d1 + 2 * ow};
    __m256 t[4], add[2][2];
    int r;
    ck_x86_pool2_load_block(r0 + 2 * ow, r1 + 2 * ow, cnt, t);
    ck_x86_pool2_addends8(t, ck_x86_pool2_g8(g + ow, cnt), add);
    for (r = 0; r < 2; r++) {
      if (cnt == 8) {
        _mm256_storeu_ps(rows[r], _mm256_add_ps(_mm256_loadu_ps(rows[r]), add[r][0]));
        _mm256_storeu_ps(rows[r] + 8, _mm256_add_ps(_mm256_loadu_ps(rows[r] + 8), add[r][1]));
      } else {
        __m256i mlo = ck_x86_first(2 * cnt), mhi = ck_x86_first(2 * cnt - 8);
        _mm256_maskstore_ps(rows[r], mlo, _mm256_add_ps(_mm256_maskload_ps(rows[r], mlo), add[r][0]));
        _mm256_maskstore_ps(rows[r] + 8, mhi, _mm256_add_ps(_mm256_maskload_ps(rows[r] + 8, mhi), add[r][1]));
      }
    }
  }
}

/* Every cell of the plane set to xc > 0 ? +0.0f + addend : +0.0f: the
 * reference sequence (a zeroed dx, the pool's dx += g, then where(x > 0,
 * dx, 0)) gives +0.0f + g at a recorded cell and +0.0f elsewhere (+0.0f +
 * -0.0f == +0.0f); a NaN x fails the ordered compare, as x > 0 does. */
void ck_x86_maxpool2x2_relu_bwd_rows_avx2(float *dxc, const float *xc, const float *g, int64_t W, int64_t OH,
                                          int64_t OW) {
  const __m256 z = _mm256_setzero_ps();
  int64_t oh, ow;
  for (oh = 0; oh < OH; oh++)
    for (ow = 0; ow < OW; ow += 8) {
      int64_t cnt = OW - ow < 8 ? OW - ow : 8;
      const float *x0 = xc + 2 * oh * W + 2 * ow;
      __m256 t[4], add[2][2];
      int r, h;
      ck_x86_pool2_load_block(x0, x0 + W, cnt, t);
      ck_x86_pool2_addends8(t, ck_x86_pool2_g8(g + oh * OW + ow, cnt), add);
      for (r = 0; r < 2; r++) {
        float *dst = dxc + (2 * oh + r) * W + 2 * ow;
        const float *xr = x0 + r * W;
        for (h = 0; h < 2; h++) {
          __m256i mk = ck_x86_first(2 * cnt - 8 * h);
          __m256 xv = cnt == 8 ? _mm256_loadu_ps(xr + 8 * h) : _mm256_maskload_ps(xr + 8 * h, mk);
          __m256 v = _mm256_and_ps(_mm256_cmp_ps(xv, z, _CMP_GT_OQ), _mm256_add_ps(z, add[r][h]));
          if (cnt == 8)
            _mm256_storeu_ps(dst + 8 * h, v);
          else
            _mm256_maskstore_ps(dst + 8 * h, mk, v);
        }
      }
    }
}
