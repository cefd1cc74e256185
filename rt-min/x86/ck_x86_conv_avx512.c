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

/* The routing of 16 2x2 windows' gradients: t holds each window's four
 * cells in (kh, kw) order, the recorded one is the first maximum or the
 * last NaN (as ck_x86_maxpool16_bwd_avx512); for the 32 cells of a row
 * pair, glo / ghi are their window's gradient (from gv, one per window)
 * and blo / bhi the index 0..3 of their window's recorded cell, which the
 * caller compares with each cell's own index (0 1 0 1 .. in row 0, 2 3 ..
 * in row 1). Shared by the row, plane and relu-plane backward kernels. */
static inline __attribute__((always_inline)) void ck_x86_pool2_route(const __m512 t[4], __m512 gv, __m512 *glo,
                                                                     __m512 *ghi, __m512i *blo, __m512i *bhi) {
  const __m512i dlo = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
  const __m512i dhi = _mm512_setr_epi32(8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15);
  __m512 m = t[0];
  __m512i b = _mm512_setzero_si512();
  int k;
  for (k = 1; k < 4; k++) {
    __mmask16 take = _mm512_cmp_ps_mask(t[k], m, _CMP_GT_OQ) | _mm512_cmp_ps_mask(t[k], t[k], _CMP_UNORD_Q);
    m = _mm512_mask_blend_ps(take, m, t[k]);
    b = _mm512_mask_blend_epi32(take, b, _mm512_set1_epi32(k));
  }
  *glo = _mm512_permutexvar_ps(dlo, gv);
  *ghi = _mm512_permutexvar_ps(dhi, gv);
  *blo = _mm512_permutexvar_epi32(dlo, b);
  *bhi = _mm512_permutexvar_epi32(dhi, b);
}

/* The backward of that row: each window's recorded cell (first maximum, or
 * last NaN, as ck_x86_maxpool16_bwd_avx512) gets += g[ow] in d0 / d1 (the dx
 * rows); the windows do not overlap, so each cell takes at most one add and
 * the other cells are not written at all. */
void ck_x86_maxpool2x2_bwd_row_avx512(float *d0, float *d1, const float *r0, const float *r1, const float *g,
                                      int64_t n) {
  const __m512i p0 = _mm512_setr_epi32(0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1);
  const __m512i p1 = _mm512_add_epi32(p0, _mm512_set1_epi32(2));
  int64_t ow;
  for (ow = 0; ow < n; ow += 16) {
    int64_t cnt = n - ow < 16 ? n - ow : 16;
    __mmask16 mo, mlo, mhi;
    __m512 t[4], glo, ghi;
    __m512i blo, bhi;
    ck_x86_pool2_masks(cnt, &mo, &mlo, &mhi);
    ck_x86_pool2_split(r0 + 2 * ow, mlo, mhi, &t[0], &t[1]);
    ck_x86_pool2_split(r1 + 2 * ow, mlo, mhi, &t[2], &t[3]);
    ck_x86_pool2_route(t, _mm512_maskz_loadu_ps(mo, g + ow), &glo, &ghi, &blo, &bhi);
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

/* The backward of a whole 2x2, stride-2, unpadded pool plane (H*W cells):
 * the same recorded cells as ck_x86_maxpool2x2_bwd_row_avx512, but written
 * first as an addend plane into buf (H*W floats): g[oh, ow] at the recorded
 * cell, -0.0f everywhere else, then dx += addend over the plane in whole
 * vectors. x + -0.0f == x for every x, so the cells no window records keep
 * their bits, as in the reference, which does not touch them. The row
 * version's masked loads of dx right after masked stores to the same cache
 * lines stall store forwarding; here dx is read and written once, in order. */
static void ck_x86_pool2_addend(const float *xc, const float *g, int64_t H, int64_t W, int64_t OH, int64_t OW,
                                 float *buf) {
  const __m512i p0 = _mm512_setr_epi32(0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1);
  const __m512i p1 = _mm512_add_epi32(p0, _mm512_set1_epi32(2));
  const __m512 nz = _mm512_set1_ps(-0.0f);
  int64_t oh, ow, i, n = H * W;
  if (2 * OH != H || 2 * OW != W) /* cells outside every window */
    for (i = 0; i < n; i += 16) _mm512_mask_storeu_ps(buf + i, ck_x86_lanes(0, n - i), nz);
  for (oh = 0; oh < OH; oh++) {
    const float *r0 = xc + 2 * oh * W, *r1 = r0 + W;
    for (ow = 0; ow < OW; ow += 16) {
      int64_t cnt = OW - ow < 16 ? OW - ow : 16;
      __mmask16 mo, mlo, mhi;
      __m512 t[4], glo, ghi;
      __m512i blo, bhi;
      int r;
      ck_x86_pool2_masks(cnt, &mo, &mlo, &mhi);
      ck_x86_pool2_split(r0 + 2 * ow, mlo, mhi, &t[0], &t[1]);
      ck_x86_pool2_split(r1 + 2 * ow, mlo, mhi, &t[2], &t[3]);
      ck_x86_pool2_route(t, _mm512_maskz_loadu_ps(mo, g + oh * OW + ow), &glo, &ghi, &blo, &bhi);
      for (r = 0; r < 2; r++) {
        __m512i pat = r ? p1 : p0;
        float *dst = buf + (2 * oh + r) * W + 2 * ow;
        _mm512_mask_storeu_ps(dst, mlo, _mm512_mask_blend_ps(_mm512_cmpeq_epi32_mask(blo, pat), nz, glo));
        _mm512_mask_storeu_ps(dst + 16, mhi, _mm512_mask_blend_ps(_mm512_cmpeq_epi32_mask(bhi, pat), nz, ghi));
      }
    }
  }
}

void ck_x86_maxpool2x2_bwd_plane_avx512(float *dxc, const float *xc, const float *g, int64_t H, int64_t W,
                                        int64_t OH, int64_t OW, float *buf) {
  int64_t i, n = H * W;
  ck_x86_pool2_addend(xc, g, H, W, OH, OW, buf);
  for (i = 0; i + 16 <= n; i += 16)
    _mm512_storeu_ps(dxc + i, _mm512_add_ps(_mm512_loadu_ps(dxc + i), _mm512_loadu_ps(buf + i)));
  if (i < n) {
    __mmask16 mt = ck_x86_lanes(0, n - i);
    _mm512_mask_storeu_ps(dxc + i, mt, _mm512_add_ps(_mm512_maskz_loadu_ps(mt, dxc + i), _mm512_maskz_loadu_ps(mt, buf + i)));
  }
}

/* The relu-masked version: dxc = xc > 0 ? +0.0f + addend : +0.0f over the
 * plane, every cell set. The reference sequence (a zeroed dx, the pool's
 * dx += g, then where(x > 0, dx, 0)) gives +0.0f + g at each recorded cell
 * and +0.0f elsewhere (+0.0f + -0.0f == +0.0f), so these are its bits; a NaN
 * x fails the ordered compare, as x > 0 does. */
/* That plane when the windows cover it exactly (H = 2*OH, W = 2*OW): each
 * block of 16 windows computes its addends in registers and stores the two
 * masked rows straight into dx, which is never read. */
static void ck_x86_pool2_relu_rows(float *dxc, const float *xc, const float *g, int64_t W, int64_t OH,
                                   int64_t OW) {
  const __m512i ie = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i io = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
  const __m512i p0 = _mm512_setr_epi32(0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1);
  const __m512i p1 = _mm512_add_epi32(p0, _mm512_set1_epi32(2));
  const __m512 nz = _mm512_set1_ps(-0.0f), z = _mm512_setzero_ps();
  int64_t oh, ow;
  for (oh = 0; oh < OH; oh++)
    for (ow = 0; ow < OW; ow += 16) {
      int64_t cnt = OW - ow < 16 ? OW - ow : 16;
      const float *r0 = xc + 2 * oh * W + 2 * ow;
      __mmask16 mo, mlo, mhi;
      __m512 xr[2][2], t[4], glo, ghi;
      __m512i blo, bhi;
      int r;
      ck_x86_pool2_masks(cnt, &mo, &mlo, &mhi);
      for (r = 0; r < 2; r++) {
        xr[r][0] = _mm512_maskz_loadu_ps(mlo, r0 + r * W);
        xr[r][1] = _mm512_maskz_loadu_ps(mhi, r0 + r * W + 16);
        t[2 * r] = _mm512_permutex2var_ps(xr[r][0], ie, xr[r][1]);
        t[2 * r + 1] = _mm512_permutex2var_ps(xr[r][0], io, xr[r][1]);
      }
      ck_x86_pool2_route(t, _mm512_maskz_loadu_ps(mo, g + oh * OW + ow), &glo, &ghi, &blo, &bhi);
      for (r = 0; r < 2; r++) {
        __m512i pat = r ? p1 : p0;
        float *dst = dxc + (2 * oh + r) * W + 2 * ow;
        __m512 alo = _mm512_mask_blend_ps(_mm512_cmpeq_epi32_mask(blo, pat), nz, glo);
        __m512 ahi = _mm512_mask_blend_ps(_mm512_cmpeq_epi32_mask(bhi, pat), nz, ghi);
        __mmask16 plo = _mm512_cmp_ps_mask(xr[r][0], z, _CMP_GT_OQ), phi = _mm512_cmp_ps_mask(xr[r][1], z, _CMP_GT_OQ);
        _mm512_mask_storeu_ps(dst, mlo, _mm512_maskz_add_ps(plo, z, alo));
        _mm512_mask_storeu_ps(dst + 16, mhi, _mm512_maskz_add_ps(phi, z, ahi));
      }
    }
}

void ck_x86_maxpool2x2_relu_bwd_plane_avx512(float *dxc, const float *xc, const float *g, int64_t H, int64_t W,
                                             int64_t OH, int64_t OW, float *buf) {
  const __m512 z = _mm512_setzero_ps();
  int64_t i, n = H * W;
  if (2 * OH == H && 2 * OW == W) {
    ck_x86_pool2_relu_rows(dxc, xc, g, W, OH, OW);
    return;
  }
  ck_x86_pool2_addend(xc, g, H, W, OH, OW, buf);
  for (i = 0; i < n; i += 16) {
    __mmask16 mt = ck_x86_lanes(0, n - i);
    __mmask16 pos = _mm512_mask_cmp_ps_mask(mt, _mm512_maskz_loadu_ps(mt, xc + i), z, _CMP_GT_OQ);
    _mm512_mask_storeu_ps(dxc + i, mt, _mm512_maskz_add_ps(pos, z, _mm512_maskz_loadu_ps(mt, buf + i)));
  }
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
          /* relu as ck_x86_reluf: max(0, v) gives v unless 0 > v (NaN and -0 kept) */
          if (d->relu) v = _mm512_max_ps(_mm512_setzero_ps(), v);
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
#pragma GCC unroll 16
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
#pragma GCC unroll 16
        for (t = 0; t < KC; t++)
          acc[t] = _mm512_fmadd_ps(g, _mm512_set1_ps(base[toff[t]]), acc[t]); /* t >= kc: unused */
      }
  }
#pragma GCC unroll 16
  for (t = 0; t < KC; t++) /* a constant trip count: acc stays in registers */
    if (t < kc) _mm512_mask_i32scatter_ps(dw + oc0 * kc + t, mo, iw, acc[t], 4);
}

void ck_x86_direct_dw_avx512(const CkX86Direct *d, float *dw, const float *dy, const float *x, int64_t oc0,
                             int64_t noc, float *tmp) {
  if (d->C * d->KH * d->KW == 9)
    ck_x86_direct_dw_k(d, dw, dy, x, oc0, noc, tmp, 9);
  else
    ck_x86_direct_dw_k(d, dw, dy, x, oc0, noc, tmp, 16);
}

/* dw of channels [oc0, oc0 + noc) (noc <= 32: two vectors of lanes) and
 * input channel ci, over the cnt samples of a slab (x: its first sample,
 * dyt: its dy transposed, dyt[l*ldt + oc] for column l = (n, oh, ow)): per
 * sample the channel's plane is copied into xp, zero-padded to every row
 * and column a window reads, then per column l in order, for each of the
 * KT = KH*KW taps, acc = fma(dy, x tap, acc) from dw's current value: every
 * dw element continues its one chain over (n, oh, ow), and padding taps
 * multiply an exact zero, as the im2col + GEMM path (the same bits), but
 * with no im2col matrix, no transposing pack and no edge tiles. */
static inline __attribute__((always_inline)) void ck_x86_direct_dwc_k(const CkX86Direct *d, float *dw,
                                                                      const float *dyt, int64_t ldt,
                                                                      const float *x, int64_t cnt, int64_t ci,
                                                                      int64_t oc0, int64_t noc, float *xp,
                                                                      const int KT, const int NV) {
  const int64_t KH = d->KH, KW = d->KW, OH = d->OH, OW = d->OW, H = d->H, W = d->W, sh = d->sh;
  const int64_t C = d->C, Hp = (OH - 1) * sh + KH, Wp = OW - 1 + KW, kc = C * KH * KW, kt = KH * KW;
  const __mmask16 m0 = ck_x86_lanes(0, noc), m1 = ck_x86_lanes(0, noc - 16);
  const __m512i lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512i iw0 = _mm512_mullo_epi32(lanes, _mm512_set1_epi32((int)kc));
  const __m512i iw1 = _mm512_add_epi32(iw0, _mm512_set1_epi32((int)(16 * kc)));
  float *dwc = dw + oc0 * kc + ci * kt;
  int64_t toff[CK_X86_DWC_TAPS], n, oh, ow, i, j;
  __m512 a0[CK_X86_DWC_TAPS], a1[CK_X86_DWC_TAPS];
  int t;
#pragma GCC unroll 12
  for (t = 0; t < KT; t++) { /* taps past kt stay zero and are never stored */
    toff[t] = t < kt ? t / KW * Wp + t % KW : 0;
    a0[t] = t < kt ? _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m0, iw0, dwc + t, 4) : _mm512_setzero_ps();
    a1[t] = t < kt && NV == 2 ? _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m1, iw1, dwc + t, 4)
                              : _mm512_setzero_ps();
  }
  for (n = 0; n < cnt; n++) {
    const float *xc = x + (n * C + ci) * H * W, *g = dyt + n * OH * OW * ldt + oc0;
    for (i = 0; i < Hp; i++) {
      int64_t ih = i - d->ph;
      for (j = 0; j < Wp; j++) {
        int64_t iw = j - d->pw;
        xp[i * Wp + j] = ih < 0 || ih >= H || iw < 0 || iw >= W ? 0.0f : xc[ih * W + iw];
      }
    }
    for (oh = 0; oh < OH; oh++)
      for (ow = 0; ow < OW; ow++, g += ldt) {
        const float *base = xp + oh * sh * Wp + ow;
        __m512 g0 = _mm512_maskz_loadu_ps(m0, g), g1 = NV == 2 ? _mm512_maskz_loadu_ps(m1, g + 16) : g0;
#pragma GCC unroll 12
        for (t = 0; t < KT; t++) {
          __m512 b = _mm512_set1_ps(base[toff[t]]);
          a0[t] = _mm512_fmadd_ps(g0, b, a0[t]);
          if (NV == 2) a1[t] = _mm512_fmadd_ps(g1, b, a1[t]);
        }
      }
  }
#pragma GCC unroll 12
  for (t = 0; t < KT; t++) {
    if (t >= kt) continue;
    _mm512_mask_i32scatter_ps(dwc + t, m0, iw0, a0[t], 4);
    if (NV == 2) _mm512_mask_i32scatter_ps(dwc + t, m1, iw1, a1[t], 4);
  }
}

void ck_x86_direct_dwc_avx512(const CkX86Direct *d, float *dw, const float *dyt, int64_t ldt, const float *x,
                              int64_t cnt, int64_t ci, int64_t oc0, int64_t noc, float *xp) {
  /* the tap count (9, the common 3x3, else up to CK_X86_DWC_TAPS) and the
   * channel vectors are constants in each copy, so the accumulators stay
   * in registers */
  int k9 = d->KH * d->KW == 9, nv2 = noc > 16;
  if (k9 && nv2)
    ck_x86_direct_dwc_k(d, dw, dyt, ldt, x, cnt, ci, oc0, noc, xp, 9, 2);
  else if (k9)
    ck_x86_direct_dwc_k(d, dw, dyt, ldt, x, cnt, ci, oc0, noc, xp, 9, 1);
  else if (nv2)
    ck_x86_direct_dwc_k(d, dw, dyt, ldt, x, cnt, ci, oc0, noc, xp, CK_X86_DWC_TAPS, 2);
  else
    ck_x86_direct_dwc_k(d, dw, dyt, ldt, x, cnt, ci, oc0, noc, xp, CK_X86_DWC_TAPS, 1);
}

/* dy of one sample, [OC][P], transposed into dst [P][OC] (the slab dw
 * kernel's layout): per position p, 16 channels per masked gather and one
 * contiguous store; a plain copy of values, so no rounding. */
void ck_x86_dyt_avx512(float *dst, const float *src, int64_t OC, int64_t P) {
  const __m512i lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512i iy = _mm512_mullo_epi32(lanes, _mm512_set1_epi32((int)P));
  int64_t p, oc0;
  for (oc0 = 0; oc0 < OC; oc0 += 16) {
    __mmask16 m = ck_x86_lanes(0, OC - oc0);
    const float *s = src + oc0 * P;
    for (p = 0; p < P; p++)
      _mm512_mask_storeu_ps(dst + p * OC + oc0, m, _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, iy, s + p, 4));
  }
}

/* The conv bias gradient of channel oc: 16 lanes over (n, p), lane l taking
 * the positions p with p % 16 == l of every sample in (n, p) order (one
 * vector accumulator, the tail masked: absent lanes add nothing), then the
 * fixed tree (l, l+8), (l, l+4), (l, l+2), (l, l+1): the scalar chunk's bits. */
float ck_x86_dbias_avx512(const float *dy, int64_t N, int64_t OC, int64_t P, int64_t oc) {
  __m512 acc = _mm512_setzero_ps();
  float l16[16];
  int64_t n, p;
  int l, half;
  for (n = 0; n < N; n++) {
    const float *dyo = dy + (n * OC + oc) * P;
    for (p = 0; p + 16 <= P; p += 16) acc = _mm512_add_ps(acc, _mm512_loadu_ps(dyo + p));
    if (p < P) {
      __mmask16 m = ck_x86_lanes(0, P - p);
      acc = _mm512_mask_add_ps(acc, m, acc, _mm512_maskz_loadu_ps(m, dyo + p));
    }
  }
  _mm512_storeu_ps(l16, acc);
  for (half = 8; half >= 1; half /= 2)
    for (l = 0; l < half; l++) l16[l] += l16[l + half];
  return l16[0];
}

/* im2col of one channel plane (column stride 1): the KH*KW rows of col
 * (row (kh, kw) at col + (kh*KW + kw)*L, this sample's columns), 16 output
 * columns per masked load and store, zeros where the window reads padding:
 * the same values the scalar loop writes. The shape is copied to locals
 * first: the masked stores may alias anything, so fields read through d
 * would be reloaded on every store. */
void ck_x86_im2col_plane_avx512(const CkX86Direct *d, float *col, int64_t L, const float *xc) {
  const int64_t KH = d->KH, KW = d->KW, OH = d->OH, OW = d->OW, H = d->H, W = d->W, sh = d->sh;
  const int64_t ph = d->ph, pw = d->pw;
  int64_t kh, kw, oh, ow0;
  for (kh = 0; kh < KH; kh++) {
    /* output rows whose input row kh lies inside: [oh_lo, oh_hi) */
    int64_t oh_lo = ph - kh <= 0 ? 0 : (ph - kh + sh - 1) / sh;
    int64_t oh_hi = H + ph - kh <= 0 ? 0 : (H + ph - kh + sh - 1) / sh;
    if (oh_hi > OH) oh_hi = OH;
    if (oh_lo > oh_hi) oh_lo = oh_hi;
    for (kw = 0; kw < KW; kw++) {
      float *dst = col + (kh * KW + kw) * L;
      for (ow0 = 0; ow0 < OW; ow0 += 16) { /* the masks depend on the block, not the row */
        int64_t nl = OW - ow0 < 16 ? OW - ow0 : 16, first = ow0 - pw + kw;
        __mmask16 ms = ck_x86_lanes(0, nl), ml = ck_x86_lanes(-first, W - first) & ms;
        const float *src = xc + (oh_lo * sh - ph + kh) * W + first;
        float *o = dst + ow0;
        for (oh = 0; oh < oh_lo; oh++) _mm512_mask_storeu_ps(o + oh * OW, ms, _mm512_setzero_ps());
        if (ml)
          for (; oh < oh_hi; oh++, src += sh * W)
            _mm512_mask_storeu_ps(o + oh * OW, ms, _mm512_maskz_loadu_ps(ml, src));
        for (; oh < OH; oh++) _mm512_mask_storeu_ps(o + oh * OW, ms, _mm512_setzero_ps());
      }
    }
  }
}

/* Where dx row ih's terms of tap row kh sit in a dcol row: the offset of
 * output row (ih + ph - kh) / sh, or -1 where there is none. */
static int64_t ck_x86_col2im_at(int64_t ih, int64_t kh, int64_t ph, int64_t sh, int64_t OH, int64_t OW) {
  int64_t th = ih + ph - kh;
  if (th < 0 || th % sh || th / sh >= OH) return -1;
  return th / sh * OW;
}

/* One col2im term: acc += the dcol row at offset at (a masked add: lanes
 * outside m add nothing); acc unchanged where at < 0. */
static inline __attribute__((always_inline)) __m512 ck_x86_col2im_term(__m512 acc, const float *row, __mmask16 m,
                                                                       int64_t at) {
  return at < 0 ? acc : _mm512_mask_add_ps(acc, m, acc, _mm512_maskz_loadu_ps(m, row + at));
}

/* col2im of one channel plane (column stride 1): every dx element gathers
 * its dcol terms in (kh, kw) order in a float from 0 (masked adds: a term
 * that does not exist adds nothing), then dx += once, 16 columns at a time:
 * the scalar loop's bits. Four dx rows run side by side in four named
 * accumulators: each row's sum is one chain of dependent adds, so one row
 * alone would wait on the add latency. */
void ck_x86_col2im_plane_avx512(const CkX86Direct *d, float *dxc, int64_t L, const float *col) {
  const int64_t KH = d->KH, KW = d->KW, OH = d->OH, OW = d->OW, H = d->H, W = d->W, sh = d->sh;
  const int64_t ph = d->ph, pw = d->pw;
  int64_t ih0, iw0, kh, kw;
  for (iw0 = 0; iw0 < W; iw0 += 16) { /* the masks depend on the block, not the row */
    int64_t nw = W - iw0 < 16 ? W - iw0 : 16;
    __mmask16 mw = ck_x86_lanes(0, nw), mk[16];
    for (kw = 0; kw < KW && kw < 16; kw++) mk[kw] = ck_x86_lanes(kw - pw - iw0, OW + kw - pw - iw0) & mw;
    for (ih0 = 0; ih0 < H; ih0 += 4) {
      __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
      int64_t r, nr = H - ih0 < 4 ? H - ih0 : 4;
      for (kh = 0; kh < KH; kh++) { /* rows past H: computed, not stored */
        int64_t at0 = ck_x86_col2im_at(ih0, kh, ph, sh, OH, OW), at1 = ck_x86_col2im_at(ih0 + 1, kh, ph, sh, OH, OW);
        int64_t at2 = ck_x86_col2im_at(ih0 + 2, kh, ph, sh, OH, OW), at3 = ck_x86_col2im_at(ih0 + 3, kh, ph, sh, OH, OW);
        for (kw = 0; kw < KW; kw++) {
          int64_t first = iw0 + pw - kw; /* output column of lane 0 */
          __mmask16 m = kw < 16 ? mk[kw] : ck_x86_lanes(-first, OW - first) & mw;
          const float *row = col + (kh * KW + kw) * L + first;
          if (!m) continue;
          a0 = ck_x86_col2im_term(a0, row, m, at0);
          a1 = ck_x86_col2im_term(a1, row, m, at1);
          a2 = ck_x86_col2im_term(a2, row, m, at2);
          a3 = ck_x86_col2im_term(a3, row, m, at3);
        }
      }
      for (r = 0; r < nr; r++) {
        float *dst = dxc + (ih0 + r) * W + iw0;
        __m512 acc = r == 0 ? a0 : r == 1 ? a1 : r == 2 ? a2 : a3;
        _mm512_mask_storeu_ps(dst, mw, _mm512_add_ps(_mm512_maskz_loadu_ps(mw, dst), acc));
      }
    }
  }
}

#else
typedef int ck_x86_conv_avx512_unused; /* ISO C wants a declaration in every file */
#endif
