/* rt-min/x86/ck_x86_conv_avx512.c - the AVX-512 blocks of the pooled max
 * pooling (ck_x86_conv.c calls them where the CPU has AVX-512F). Built with
 * -march=x86-64-v4 by the Makefile and the x86-avx512 target; under other
 * flags (the x86-avx2 target, which defines CK_GEMM_NO_AVX512 and never
 * calls them) the file is empty.
 *
 * Each lane runs the reference's comparisons in the reference's order: a
 * cell is taken when `v > m || v != v`, and a NaN once taken stays (the
 * forward's break), so the blocks are bitwise equal to the scalar loops. */
#include "ck_x86_conv.h"

#if defined(__AVX512F__)
#include <immintrin.h>

/* 16 window maxima: o[l] = max over taps t (in order) of xc[off[l] + taps[t]]. */
void ck_x86_maxpool16_avx512(float *o, const float *xc, const int32_t *off, const int32_t *taps, int ntaps) {
  __m512i base = _mm512_loadu_si512((const void *)off);
  __m512 m = _mm512_i32gather_ps(_mm512_add_epi32(base, _mm512_set1_epi32(taps[0])), xc, 4);
  int t;
  for (t = 1; t < ntaps; t++) {
    __m512 v = _mm512_i32gather_ps(_mm512_add_epi32(base, _mm512_set1_epi32(taps[t])), xc, 4);
    __mmask16 keep = _mm512_cmp_ps_mask(m, m, _CMP_ORD_Q);
    __mmask16 take = _mm512_cmp_ps_mask(v, m, _CMP_GT_OQ) | _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    m = _mm512_mask_blend_ps(keep & take, m, v);
  }
  _mm512_storeu_ps(o, m);
}

/* 16 recorded cells of the backward: best[l] = the offset of the first
 * maximum, or of the last NaN (no break in the backward's rule). */
void ck_x86_maxpool16_bwd_avx512(int32_t *best, const float *xc, const int32_t *off, const int32_t *taps,
                                 int ntaps) {
  __m512i base = _mm512_loadu_si512((const void *)off);
  __m512i b = _mm512_add_epi32(base, _mm512_set1_epi32(taps[0]));
  __m512 m = _mm512_i32gather_ps(b, xc, 4);
  int t;
  for (t = 1; t < ntaps; t++) {
    __m512i at = _mm512_add_epi32(base, _mm512_set1_epi32(taps[t]));
    __m512 v = _mm512_i32gather_ps(at, xc, 4);
    __mmask16 take = _mm512_cmp_ps_mask(v, m, _CMP_GT_OQ) | _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    m = _mm512_mask_blend_ps(take, m, v);
    b = _mm512_mask_blend_epi32(take, b, at);
  }
  _mm512_storeu_si512((void *)best, b);
}

/* Lane masks of a block of cnt <= 16 outputs of a 2x2 / stride-2 row: the
 * outputs, and the 2*cnt input cells as two 16-float halves. */
static void ck_x86_pool2_masks(int64_t cnt, __mmask16 *mo, __mmask16 *mlo, __mmask16 *mhi) {
  *mo = (__mmask16)((1u << cnt) - 1u);
  *mlo = (__mmask16)(cnt >= 8 ? 0xffffu : (1u << (2 * cnt)) - 1u);
  *mhi = (__mmask16)(cnt <= 8 ? 0u : (1u << (2 * cnt - 16)) - 1u);
}

/* The even (kw = 0) and odd (kw = 1) cells of 16 windows from one input row. */
static void ck_x86_pool2_split(const float *row, __mmask16 mlo, __mmask16 mhi, __m512 *even, __m512 *odd) {
  const __m512i ie = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i io = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
  __m512 lo = _mm512_maskz_loadu_ps(mlo, row), hi = _mm512_maskz_loadu_ps(mhi, row + 16);
  *even = _mm512_permutex2var_ps(lo, ie, hi);
  *odd = _mm512_permutex2var_ps(lo, io, hi);
}

/* One output row of a 2x2, stride-2, unpadded max pool: o[0..n) from input
 * rows r0, r1 (windows at columns 2*ow, 2*ow + 1), the taps in (kh, kw)
 * order with the forward's rule, like ck_x86_maxpool16_avx512. */
void ck_x86_maxpool2x2_row_avx512(float *o, const float *r0, const float *r1, int64_t n) {
  int64_t ow;
  for (ow = 0; ow < n; ow += 16) {
    int64_t cnt = n - ow < 16 ? n - ow : 16;
    __mmask16 mo, mlo, mhi;
    __m512 t[4], m;
    int k;
    ck_x86_pool2_masks(cnt, &mo, &mlo, &mhi);
    ck_x86_pool2_split(r0 + 2 * ow, mlo, mhi, &t[0], &t[1]);
    ck_x86_pool2_split(r1 + 2 * ow, mlo, mhi, &t[2], &t[3]);
    m = t[0];
    for (k = 1; k < 4; k++) {
      __mmask16 keep = _mm512_cmp_ps_mask(m, m, _CMP_ORD_Q);
      __mmask16 take = _mm512_cmp_ps_mask(t[k], m, _CMP_GT_OQ) | _mm512_cmp_ps_mask(t[k], t[k], _CMP_UNORD_Q);
      m = _mm512_mask_blend_ps(keep & take, m, t[k]);
    }
    _mm512_mask_storeu_ps(o + ow, mo, m);
  }
}

/* The backward of that row: each window's recorded cell (first maximum, or
 * last NaN, as ck_x86_maxpool16_bwd_avx512) gets += g[ow] in d0 / d1 (the dx
 * rows); the windows do not overlap, so each cell takes at most one add and
 * the other cells are not written at all. */
void ck_x86_maxpool2x2_bwd_row_avx512(float *d0, float *d1, const float *r0, const float *r1, const float *g,
                                      int64_t n) {
  const __m512i dlo = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
  const __m512i dhi = _mm512_setr_epi32(8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15);
  const __m512i p0 = _mm512_setr_epi32(0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1);
  const __m512i p1 = _mm512_add_epi32(p0, _mm512_set1_epi32(2));
  int64_t ow;
  for (ow = 0; ow < n; ow += 16) {
    int64_t cnt = n - ow < 16 ? n - ow : 16;
    __mmask16 mo, mlo, mhi;
    __m512 t[4], m, gv, glo, ghi;
    __m512i b = _mm512_setzero_si512(), blo, bhi;
    int k;
    ck_x86_pool2_masks(cnt, &mo, &mlo, &mhi);
    ck_x86_pool2_split(r0 + 2 * ow, mlo, mhi, &t[0], &t[1]);
    ck_x86_pool2_split(r1 + 2 * ow, mlo, mhi, &t[2], &t[3]);
    m = t[0];
    for (k = 1; k < 4; k++) {
      __mmask16 take = _mm512_cmp_ps_mask(t[k], m, _CMP_GT_OQ) | _mm512_cmp_ps_mask(t[k], t[k], _CMP_UNORD_Q);
      m = _mm512_mask_blend_ps(take, m, t[k]);
      b = _mm512_mask_blend_epi32(take, b, _mm512_set1_epi32(k));
    }
    gv = _mm512_maskz_loadu_ps(mo, g + ow);
    glo = _mm512_permutexvar_ps(dlo, gv);
    ghi = _mm512_permutexvar_ps(dhi, gv);
    blo = _mm512_permutexvar_epi32(dlo, b);
    bhi = _mm512_permutexvar_epi32(dhi, b);
    {
      float *rows[2] = {d0 + 2 * ow, d1 + 2 * ow};
      __m512i pat[2] = {p0, p1};
      int r;
      for (r = 0; r < 2; r++) {
        __mmask16 klo = _mm512_cmpeq_epi32_mask(blo, pat[r]) & mlo, khi = _mm512_cmpeq_epi32_mask(bhi, pat[r]) & mhi;
        __m512 xlo = _mm512_maskz_loadu_ps(klo, rows[r]), xhi = _mm512_maskz_loadu_ps(khi, rows[r] + 16);
        _mm512_mask_storeu_ps(rows[r], klo, _mm512_add_ps(xlo, glo));
        _mm512_mask_storeu_ps(rows[r] + 16, khi, _mm512_add_ps(xhi, ghi));
      }
    }
  }
}

/* Lanes [lo, hi) of a 16-lane block: the mask. */
static __mmask16 ck_x86_lanes(int64_t lo, int64_t hi) {
  if (lo < 0) lo = 0;
  if (hi > 16) hi = 16;
  if (hi <= lo) return 0;
  return (__mmask16)(((1u << hi) - 1u) & ~((1u << lo) - 1u));
}

/* The kc tap vectors of 16 outputs (oh, ow0 ..) of one sample: tap
 * t = (c, kh, kw) holds x[c][ih][ow0 + l - pw + kw], zero in the padding and
 * past the row end (exactly the zeros im2col writes). */
static void ck_x86_direct_taps(__m512 *xt, const CkX86Direct *d, const float *x, int64_t oh, int64_t ow0,
                               int64_t nl) {
  int64_t c, kh, kw, t = 0;
  for (c = 0; c < d->C; c++)
    for (kh = 0; kh < d->KH; kh++) {
      int64_t ih = oh * d->sh - d->ph + kh;
      const float *row = x + (c * d->H + ih) * d->W;
      for (kw = 0; kw < d->KW; kw++, t++) {
        int64_t first = ow0 - d->pw + kw; /* input column of lane 0 */
        __mmask16 m = ih < 0 || ih >= d->H ? 0 : ck_x86_lanes(-first, d->W - first) & ck_x86_lanes(0, nl);
        xt[t] = m ? _mm512_maskz_loadu_ps(m, row + first) : _mm512_setzero_ps();
      }
    }
}

/* The forward of sample x into out [OC][OH*OW]: per 16 outputs of a row, the
 * taps loaded once, then blocks of 8 channels, each output one fma chain in
 * (c, kh, kw) order from 0, then + bias: the GEMM path's bits. KC is the
 * tap count as a constant where the caller knows it (unrolled), else 16. */
static inline __attribute__((always_inline)) void ck_x86_direct_fwd_k(const CkX86Direct *d, float *out,
                                                                      const float *x, const float *w,
                                                                      const float *bias, const int KC) {
  __m512 xt[16];
  int64_t oh, ow0, oc0, P = d->OH * d->OW, kc = d->C * d->KH * d->KW;
  for (oh = 0; oh < d->OH; oh++)
    for (ow0 = 0; ow0 < d->OW; ow0 += 16) {
      int64_t nl = d->OW - ow0 < 16 ? d->OW - ow0 : 16;
      __mmask16 mo = ck_x86_lanes(0, nl);
      int t;
      ck_x86_direct_taps(xt, d, x, oh, ow0, nl);
      for (oc0 = 0; oc0 < d->OC; oc0 += 8) {
        __m512 acc[8];
        int j, nj = d->OC - oc0 < 8 ? (int)(d->OC - oc0) : 8;
        for (j = 0; j < 8; j++) acc[j] = _mm512_setzero_ps();
        for (t = 0; t < KC; t++) {
          if (t >= kc) break;
          for (j = 0; j < 8; j++)
            if (j < nj) acc[j] = _mm512_fmadd_ps(xt[t], _mm512_set1_ps(w[(oc0 + j) * kc + t]), acc[j]);
        }
        for (j = 0; j < nj; j++) {
          __m512 v = bias ? _mm512_add_ps(acc[j], _mm512_set1_ps(bias[oc0 + j])) : acc[j];
          _mm512_mask_storeu_ps(out + (oc0 + j) * P + oh * d->OW + ow0, mo, v);
        }
      }
    }
}

void ck_x86_direct_fwd_avx512(const CkX86Direct *d, float *out, const float *x, const float *w,
                              const float *bias) {
  if (d->C * d->KH * d->KW == 9)
    ck_x86_direct_fwd_k(d, out, x, w, bias, 9);
  else
    ck_x86_direct_fwd_k(d, out, x, w, bias, 16);
}

/* dw of channels [oc0, oc0 + noc) (noc <= 16, lanes) over all samples: per
 * sample x copied into xp, zero-padded to every row and column a window
 * reads, then per position p in (oh, ow) order dy[., p] gathered across the
 * channels and acc[t] = fma(dy, x tap t, acc[t]) from the old dw: each dw
 * element is the GEMM path's one chain over (n, oh, ow) (padding taps
 * multiply an exact zero, as im2col's zeros do), bit for bit. */
static inline __attribute__((always_inline)) void ck_x86_direct_dw_k(const CkX86Direct *d, float *dw,
                                                                     const float *dy, const float *x,
                                                                     int64_t oc0, int64_t noc, float *xp,
                                                                     const int KC) {
  int64_t P = d->OH * d->OW, kc = d->C * d->KH * d->KW, Hp = (d->OH - 1) * d->sh + d->KH, Wp = d->OW - 1 + d->KW;
  int64_t n, oh, ow, c, kh, kw, toff[CK_X86_DIRECT_TAPS];
  __mmask16 mo = ck_x86_lanes(0, noc);
  __m512 acc[CK_X86_DIRECT_TAPS];
  const __m512i lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  __m512i iw = _mm512_mullo_epi32(lanes, _mm512_set1_epi32((int)kc));
  __m512i iy = _mm512_mullo_epi32(lanes, _mm512_set1_epi32((int)P));
  int t = 0;
  for (c = 0; c < d->C; c++)
    for (kh = 0; kh < d->KH; kh++)
      for (kw = 0; kw < d->KW; kw++) toff[t++] = (c * Hp + kh) * Wp + kw;
  for (; t < KC; t++) toff[t] = 0;
  for (t = 0; t < KC; t++)
    acc[t] = t < kc ? _mm512_mask_i32gather_ps(_mm512_setzero_ps(), mo, iw, dw + oc0 * kc + t, 4)
                    : _mm512_setzero_ps();
  for (n = 0; n < d->N; n++) {
    const float *dyn = dy + (n * d->OC + oc0) * P, *xn = x + n * d->C * d->H * d->W;
    for (c = 0; c < d->C; c++)
      for (kh = 0; kh < Hp; kh++) {
        float *dst = xp + (c * Hp + kh) * Wp;
        int64_t ih = kh - d->ph, j;
        for (j = 0; j < Wp; j++) {
          int64_t col = j - d->pw;
          dst[j] = ih < 0 || ih >= d->H || col < 0 || col >= d->W ? 0.0f : xn[(c * d->H + ih) * d->W + col];
        }
      }
    for (oh = 0; oh < d->OH; oh++)
      for (ow = 0; ow < d->OW; ow++) {
        const float *base = xp + oh * d->sh * Wp + ow;
        __m512 g = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), mo, iy, dyn + oh * d->OW + ow, 4);
        for (t = 0; t < KC; t++)
          if (t < kc) acc[t] = _mm512_fmadd_ps(g, _mm512_set1_ps(base[toff[t]]), acc[t]);
      }
  }
  for (t = 0; t < KC && t < kc; t++) _mm512_mask_i32scatter_ps(dw + oc0 * kc + t, mo, iw, acc[t], 4);
}

void ck_x86_direct_dw_avx512(const CkX86Direct *d, float *dw, const float *dy, const float *x, int64_t oc0,
                             int64_t noc, float *tmp) {
  if (d->C * d->KH * d->KW == 9)
    ck_x86_direct_dw_k(d, dw, dy, x, oc0, noc, tmp, 9);
  else
    ck_x86_direct_dw_k(d, dw, dy, x, oc0, noc, tmp, 16);
}

/* im2col of one channel plane (column stride 1): the KH*KW rows of col
 * (row (kh, kw) at col + (kh*KW + kw)*L, this sample's columns), 16 output
 * columns per masked load and store, zeros where the window reads padding:
 * the same values the scalar loop writes. */
void ck_x86_im2col_plane_avx512(const CkX86Direct *d, float *col, int64_t L, const float *xc) {
  int64_t kh, kw, oh, ow0;
  for (kh = 0; kh < d->KH; kh++)
    for (kw = 0; kw < d->KW; kw++) {
      float *dst = col + (kh * d->KW + kw) * L;
      for (ow0 = 0; ow0 < d->OW; ow0 += 16) { /* the masks depend on the block, not the row */
        int64_t nl = d->OW - ow0 < 16 ? d->OW - ow0 : 16, first = ow0 - d->pw + kw;
        __mmask16 ms = ck_x86_lanes(0, nl), ml = ck_x86_lanes(-first, d->W - first) & ms;
        for (oh = 0; oh < d->OH; oh++) {
          int64_t ih = oh * d->sh - d->ph + kh;
          __m512 v = ih < 0 || ih >= d->H || !ml ? _mm512_setzero_ps()
                                                 : _mm512_maskz_loadu_ps(ml, xc + ih * d->W + first);
          _mm512_mask_storeu_ps(dst + oh * d->OW + ow0, ms, v);
        }
      }
    }
}

/* col2im of one channel plane (column stride 1): every dx element gathers
 * its dcol terms in (kh, kw) order in a float from 0 (masked adds: a term
 * that does not exist adds nothing), then dx += once, 16 columns at a time:
 * the scalar loop's bits. */
void ck_x86_col2im_plane_avx512(const CkX86Direct *d, float *dxc, int64_t L, const float *col) {
  int64_t ih, iw0, kh, kw;
  for (iw0 = 0; iw0 < d->W; iw0 += 16) { /* the masks depend on the block, not the row */
    int64_t nw = d->W - iw0 < 16 ? d->W - iw0 : 16;
    __mmask16 mw = ck_x86_lanes(0, nw), mk[16];
    for (kw = 0; kw < d->KW && kw < 16; kw++)
      mk[kw] = ck_x86_lanes(kw - d->pw - iw0, d->OW + kw - d->pw - iw0) & mw;
    for (ih = 0; ih < d->H; ih++) {
      __m512 acc = _mm512_setzero_ps();
      float *dst = dxc + ih * d->W + iw0;
      for (kh = 0; kh < d->KH; kh++) {
        int64_t th = ih + d->ph - kh, oh;
        if (th < 0 || th % d->sh) continue;
        oh = th / d->sh;
        if (oh >= d->OH) continue;
        for (kw = 0; kw < d->KW; kw++) {
          int64_t first = iw0 + d->pw - kw; /* output column of lane 0 */
          __mmask16 m = kw < 16 ? mk[kw] : ck_x86_lanes(-first, d->OW - first) & mw;
          const float *row = col + (kh * d->KW + kw) * L + oh * d->OW;
          if (m) acc = _mm512_mask_add_ps(acc, m, acc, _mm512_maskz_loadu_ps(m, row + first));
        }
      }
      _mm512_mask_storeu_ps(dst, mw, _mm512_add_ps(_mm512_maskz_loadu_ps(mw, dst), acc));
    }
  }
}

#else
typedef int ck_x86_conv_avx512_unused; /* ISO C wants a declaration in every file */
#endif
