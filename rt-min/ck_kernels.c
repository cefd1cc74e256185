/* rt-min/ck_kernels.c - reference kernels of the primitive ops (C99).
 *
 * Plain, deterministic implementations: every sum runs in a fixed order in
 * float, so the compiler (constant folding, the IR interpreter) and every
 * generated program get bit-identical results on a given libm. Freestanding
 * friendly: only <math.h>, <stdint.h>, <stddef.h> and <string.h> (memcpy,
 * memset), no stdio and no allocation; scratch memory is the caller's. */
#include "ck_kernels.h"

#include <math.h>
#include <string.h>

#define CK_MAX_RANK 8

/* ---- scalar helpers for emitted elementwise loops ------------------------------- */

/* 1/(1+e^-x): expf overflows to inf for x < -88 and the quotient is then an
 * exact 0, so no special casing is needed. */
float ck_sigmoidf(float x) { return 1.0f / (1.0f + expf(-x)); }

/* Written as a comparison with 0 so that NaN propagates, like torch.relu. */
float ck_reluf(float x) { return x < 0.0f ? 0.0f : x; }

/* PyTorch gelu(approximate='none'): x * 0.5 * (1 + erf(x / sqrt 2)). */
float ck_gelu_erff(float x) { return 0.5f * x * (1.0f + erff(x * 0.70710678118654752440f)); }

/* PyTorch gelu(approximate='tanh'): 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). */
float ck_gelu_tanhf(float x) {
  const float k = 0.79788456080286535588f; /* sqrt(2/pi) */
  float inner = k * (x + 0.044715f * x * x * x);
  return 0.5f * x * (1.0f + tanhf(inner));
}

/* x * sigmoid(x), as x / (1 + e^-x) (PyTorch's form). */
float ck_siluf(float x) { return x / (1.0f + expf(-x)); }

/* 1/sqrt(x): rsqrt(0) = inf and rsqrt(<0) = NaN, as in PyTorch. */
float ck_rsqrtf(float x) { return 1.0f / sqrtf(x); }

/* ---- linear algebra ---------------------------------------------------------------- */

/* One (M x N) product. Plain case in i-k-j order: the inner loop streams one
 * row of B and one row of out, which is the cache-friendly order for
 * row-major data. Each out[i,j] still accumulates a[i,0]*b[0,j] + ... in k
 * order starting from 0, the same order the dot-product forms below use, so
 * all four transpose cases give identical sums for identical operands. */
static void ck_matmul_one(float *out, const float *a, const float *b, int64_t M, int64_t N,
                          int64_t K, int ta, int tb) {
  int64_t i, j, k;
  if (!tb) {
    for (i = 0; i < M; i++) {
      float *orow = out + i * N;
      for (j = 0; j < N; j++) orow[j] = 0.0f;
      for (k = 0; k < K; k++) {
        float aik = ta ? a[k * M + i] : a[i * K + k];
        const float *brow = b + k * N;
        for (j = 0; j < N; j++) orow[j] += aik * brow[j];
      }
    }
    return;
  }
  /* B stored N x K: out[i,j] is a dot product of two K-vectors. */
  for (i = 0; i < M; i++) {
    for (j = 0; j < N; j++) {
      const float *bcol = b + j * K;
      float acc = 0.0f;
      if (ta) {
        for (k = 0; k < K; k++) acc += a[k * M + i] * bcol[k];
      } else {
        const float *arow = a + i * K;
        for (k = 0; k < K; k++) acc += arow[k] * bcol[k];
      }
      out[i * N + j] = acc;
    }
  }
}

/* Batched matmul: a batch stride of 0 broadcasts one operand over the batch. */
void ck_matmul_f32(float *out, const float *a, const float *b, int64_t batch, int64_t M, int64_t N,
                   int64_t K, int ta, int tb, int64_t a_bstride, int64_t b_bstride) {
  int64_t bi;
  for (bi = 0; bi < batch; bi++)
    ck_matmul_one(out + bi * M * N, a + bi * a_bstride, b + bi * b_bstride, M, N, K, ta, tb);
}

/* ---- data movement (any element size) ------------------------------------------------ */

/* Generic permute: trailing dimensions that stay in place are folded into the
 * element size (a contiguous run per copy), then the output is walked in
 * row-major order with an odometer over the remaining dimensions. */
void ck_permute(void *out, const void *x, size_t elsize, int rank, const int64_t *in_dims,
                const int64_t *perm) {
  unsigned char *o = (unsigned char *)out;
  const unsigned char *src = (const unsigned char *)x;
  int64_t in_stride[CK_MAX_RANK], stride[CK_MAX_RANK], dims[CK_MAX_RANK], idx[CK_MAX_RANK];
  int64_t total = 1, e;
  size_t run = elsize;
  int r = rank, i;
  if (r > CK_MAX_RANK) return; /* contract: rank <= 8 */
  while (r > 0 && perm[r - 1] == r - 1) {
    run *= (size_t)in_dims[r - 1];
    r--;
  }
  /* in_stride in units of `run` over the first r input dims */
  for (i = r - 1; i >= 0; i--) in_stride[i] = (i == r - 1) ? 1 : in_stride[i + 1] * in_dims[i + 1];
  for (i = 0; i < r; i++) {
    dims[i] = in_dims[perm[i]];
    stride[i] = in_stride[perm[i]];
    idx[i] = 0;
    total *= dims[i];
  }
  for (e = 0; e < total; e++) {
    int64_t off = 0;
    for (i = 0; i < r; i++) off += idx[i] * stride[i];
    memcpy(o + (size_t)e * run, src + (size_t)off * run, run);
    for (i = r - 1; i >= 0; i--) {
      if (++idx[i] < dims[i]) break;
      idx[i] = 0;
    }
  }
}

/* Strided slice of the middle extent: one contiguous copy of `inner`
 * elements per selected index. A negative step walks backwards. */
void ck_slice(void *out, const void *x, size_t elsize, int64_t outer, int64_t n, int64_t inner,
              int64_t start, int64_t step, int64_t count) {
  unsigned char *o = (unsigned char *)out;
  const unsigned char *src = (const unsigned char *)x;
  size_t row = (size_t)inner * elsize;
  int64_t a, c;
  for (a = 0; a < outer; a++)
    for (c = 0; c < count; c++)
      memcpy(o + (size_t)(a * count + c) * row, src + (size_t)(a * n + start + c * step) * row, row);
}

/* concat = one call per input: each part is a block of n_part*inner elements
 * per outer index, placed at `offset` along the middle extent. */
void ck_concat_part(void *out, const void *x, size_t elsize, int64_t outer, int64_t n_part,
                    int64_t n_total, int64_t offset, int64_t inner) {
  unsigned char *o = (unsigned char *)out;
  const unsigned char *src = (const unsigned char *)x;
  size_t part = (size_t)(n_part * inner) * elsize;
  int64_t a;
  for (a = 0; a < outer; a++)
    memcpy(o + (size_t)((a * n_total + offset) * inner) * elsize, src + (size_t)a * part, part);
}

/* broadcast_to: a stride of 0 on every broadcast axis; trailing axes that are
 * not broadcast are folded into one contiguous run per copy. */
void ck_broadcast(void *out, const void *x, size_t elsize, int rank, const int64_t *in_dims,
                  const int64_t *out_dims) {
  unsigned char *o = (unsigned char *)out;
  const unsigned char *src = (const unsigned char *)x;
  int64_t stride[CK_MAX_RANK], idx[CK_MAX_RANK], total = 1, e, s = 1;
  size_t run = elsize;
  int r = rank, i;
  if (r > CK_MAX_RANK) return; /* contract: rank <= 8 */
  while (r > 0 && in_dims[r - 1] == out_dims[r - 1]) {
    run *= (size_t)out_dims[r - 1];
    r--;
  }
  for (i = r - 1; i >= 0; i--) {
    stride[i] = (in_dims[i] == 1 && out_dims[i] != 1) ? 0 : s;
    s *= in_dims[i];
    idx[i] = 0;
    total *= out_dims[i];
  }
  for (e = 0; e < total; e++) {
    int64_t off = 0;
    for (i = 0; i < r; i++) off += idx[i] * stride[i];
    memcpy(o + (size_t)e * run, src + (size_t)off * run, run);
    for (i = r - 1; i >= 0; i--) {
      if (++idx[i] < out_dims[i]) break;
      idx[i] = 0;
    }
  }
}

/* ---- reductions over the middle extent of (outer, n, inner) --------------------------- */

/* Sequential float sum in index order (deterministic; the reference). */
void ck_sum_f32(float *out, const float *x, int64_t outer, int64_t n, int64_t inner) {
  int64_t a, j, c;
  for (a = 0; a < outer; a++)
    for (c = 0; c < inner; c++) {
      const float *p = x + a * n * inner + c;
      float acc = 0.0f;
      for (j = 0; j < n; j++) acc += p[j * inner];
      out[a * inner + c] = acc;
    }
}

/* mean = sum / n, with the division done once at the end like torch.mean. */
void ck_mean_f32(float *out, const float *x, int64_t outer, int64_t n, int64_t inner) {
  int64_t i;
  ck_sum_f32(out, x, outer, n, inner);
  for (i = 0; i < outer * inner; i++) out[i] /= (float)n;
}

/* Max with NaN propagation (torch.max): once a NaN is seen it stays. */
void ck_max_f32(float *out, const float *x, int64_t outer, int64_t n, int64_t inner) {
  int64_t a, j, c;
  for (a = 0; a < outer; a++)
    for (c = 0; c < inner; c++) {
      const float *p = x + a * n * inner + c;
      float m = -INFINITY;
      for (j = 0; j < n; j++) {
        float v = p[j * inner];
        if (v != v) {
          m = v;
          break;
        }
        if (v > m) m = v;
      }
      out[a * inner + c] = m;
    }
}

/* First index of the maximum: a strict > keeps the earliest tie; the first
 * NaN wins outright (torch.argmax). */
void ck_argmax_f32(int32_t *out, const float *x, int64_t outer, int64_t n, int64_t inner) {
  int64_t a, j, c;
  for (a = 0; a < outer; a++)
    for (c = 0; c < inner; c++) {
      const float *p = x + a * n * inner + c;
      int64_t best = 0;
      float m = n > 0 ? p[0] : 0.0f;
      if (m == m)
        for (j = 1; j < n; j++) {
          float v = p[j * inner];
          if (v != v) {
            best = j;
            break;
          }
          if (v > m) {
            m = v;
            best = j;
          }
        }
      out[a * inner + c] = (int32_t)best;
    }
}

/* ---- neural-network primitives ------------------------------------------------------ */

/* Numerically safe softmax: subtract the row max before exp, so exp never
 * overflows and the largest term is exactly 1. */
void ck_softmax_f32(float *out, const float *x, int64_t outer, int64_t n, int64_t inner) {
  int64_t a, j, c;
  for (a = 0; a < outer; a++)
    for (c = 0; c < inner; c++) {
      const float *p = x + a * n * inner + c;
      float *q = out + a * n * inner + c;
      float m = -INFINITY, s = 0.0f;
      for (j = 0; j < n; j++)
        if (p[j * inner] > m) m = p[j * inner];
      for (j = 0; j < n; j++) {
        float e = expf(p[j * inner] - m);
        q[j * inner] = e;
        s += e;
      }
      for (j = 0; j < n; j++) q[j * inner] /= s;
    }
}

/* log_softmax = x - max - log(sum exp(x - max)): never takes log of an
 * underflowed probability. */
void ck_log_softmax_f32(float *out, const float *x, int64_t outer, int64_t n, int64_t inner) {
  int64_t a, j, c;
  for (a = 0; a < outer; a++)
    for (c = 0; c < inner; c++) {
      const float *p = x + a * n * inner + c;
      float *q = out + a * n * inner + c;
      float m = -INFINITY, s = 0.0f, lse;
      for (j = 0; j < n; j++)
        if (p[j * inner] > m) m = p[j * inner];
      for (j = 0; j < n; j++) s += expf(p[j * inner] - m);
      lse = logf(s);
      for (j = 0; j < n; j++) q[j * inner] = p[j * inner] - m - lse;
    }
}

/* LayerNorm like PyTorch: two passes in float (mean, then the biased variance
 * of x - mean, which avoids the cancellation of E[x^2] - E[x]^2),
 * rstd = 1/sqrtf(var + eps). */
void ck_layernorm_f32(float *out, float *mean, float *rstd, const float *x, const float *weight,
                      const float *bias, int64_t rows, int64_t n, float eps) {
  /* Row statistics accumulate in double: with a large common offset (x ~ 1000
   * + noise) a float sum loses the noise that the normalisation amplifies. */
  int64_t r, j;
  for (r = 0; r < rows; r++) {
    const float *p = x + r * n;
    float *q = out + r * n;
    double sum = 0.0, var = 0.0;
    float m, rs;
    for (j = 0; j < n; j++) sum += p[j];
    m = (float)(sum / (double)n);
    for (j = 0; j < n; j++) {
      double d = (double)p[j] - sum / (double)n;
      var += d * d;
    }
    rs = (float)(1.0 / sqrt(var / (double)n + (double)eps));
    for (j = 0; j < n; j++) {
      float y = (p[j] - m) * rs;
      if (weight) y *= weight[j];
      if (bias) y += bias[j];
      q[j] = y;
    }
    if (mean) mean[r] = m;
    if (rstd) rstd[r] = rs;
  }
}

/* RMSNorm: x * rsqrt(mean(x^2) + eps) * w; weight may be NULL. */
void ck_rmsnorm_f32(float *out, float *rstd, const float *x, const float *weight, int64_t rows,
                    int64_t n, float eps) {
  int64_t r, j;
  for (r = 0; r < rows; r++) {
    const float *p = x + r * n;
    float *q = out + r * n;
    double ss = 0.0; /* double, as for layernorm */
    float rs;
    for (j = 0; j < n; j++) ss += (double)p[j] * p[j];
    rs = (float)(1.0 / sqrt(ss / (double)n + (double)eps));
    for (j = 0; j < n; j++) q[j] = weight ? p[j] * rs * weight[j] : p[j] * rs;
    if (rstd) rstd[r] = rs;
  }
}

/* All indices are checked before anything is written, so a bad index leaves
 * out untouched and nothing is read out of bounds. */
int64_t ck_embedding_f32(float *out, const float *table, const int32_t *idx, int64_t n_idx,
                         int64_t V, int64_t C) {
  int64_t i;
  for (i = 0; i < n_idx; i++)
    if (idx[i] < 0 || (int64_t)idx[i] >= V) return i;
  for (i = 0; i < n_idx; i++)
    memcpy(out + i * C, table + (int64_t)idx[i] * C, (size_t)C * sizeof(float));
  return -1;
}

/* Direct convolution, NCHW, zero padding, grouped (groups == C is depthwise).
 * Each output sums over (input channel of its group, kh, kw) in that order,
 * then adds the bias. */
void ck_conv2d_f32(float *out, const float *x, const float *w, const float *bias, int64_t N,
                   int64_t C, int64_t H, int64_t W, int64_t OC, int64_t KH, int64_t KW, int64_t sh,
                   int64_t sw, int64_t ph, int64_t pw, int64_t groups, int64_t OH, int64_t OW) {
  int64_t cpg = C / groups, opg = OC / groups;
  int64_t n, oc, oh, ow, c, kh, kw;
  for (n = 0; n < N; n++)
    for (oc = 0; oc < OC; oc++) {
      int64_t g = oc / opg;
      const float *wo = w + oc * cpg * KH * KW;
      for (oh = 0; oh < OH; oh++)
        for (ow = 0; ow < OW; ow++) {
          float acc = 0.0f;
          for (c = 0; c < cpg; c++) {
            const float *xc = x + ((n * C) + g * cpg + c) * H * W;
            const float *wc = wo + c * KH * KW;
            for (kh = 0; kh < KH; kh++) {
              int64_t ih = oh * sh - ph + kh;
              if (ih < 0 || ih >= H) continue;
              for (kw = 0; kw < KW; kw++) {
                int64_t iw = ow * sw - pw + kw;
                if (iw < 0 || iw >= W) continue;
                acc += xc[ih * W + iw] * wc[kh * KW + kw];
              }
            }
          }
          if (bias) acc += bias[oc];
          out[((n * OC + oc) * OH + oh) * OW + ow] = acc;
        }
    }
}

/* Max pooling: padding cells are -inf, i.e. simply skipped; NaN propagates. */
void ck_maxpool2d_f32(float *out, const float *x, int64_t N, int64_t C, int64_t H, int64_t W,
                      int64_t KH, int64_t KW, int64_t sh, int64_t sw, int64_t ph, int64_t pw,
                      int64_t OH, int64_t OW) {
  int64_t nc, oh, ow, kh, kw;
  for (nc = 0; nc < N * C; nc++) {
    const float *xc = x + nc * H * W;
    for (oh = 0; oh < OH; oh++)
      for (ow = 0; ow < OW; ow++) {
        float m = -INFINITY;
        for (kh = 0; kh < KH; kh++) {
          int64_t ih = oh * sh - ph + kh;
          if (ih < 0 || ih >= H) continue;
          for (kw = 0; kw < KW; kw++) {
            int64_t iw = ow * sw - pw + kw;
            float v;
            if (iw < 0 || iw >= W) continue;
            v = xc[ih * W + iw];
            if (v > m || v != v) m = v;
            if (m != m) break;
          }
          if (m != m) break;
        }
        out[(nc * OH + oh) * OW + ow] = m;
      }
  }
}

/* Average pooling with count_include_pad=True: padding cells count as zeros
 * in the divisor. The divisor is the window clipped to the padded input, as in
 * PyTorch (always KH*KW unless a caller's OH/OW reach past the padding). */
void ck_avgpool2d_f32(float *out, const float *x, int64_t N, int64_t C, int64_t H, int64_t W,
                      int64_t KH, int64_t KW, int64_t sh, int64_t sw, int64_t ph, int64_t pw,
                      int64_t OH, int64_t OW) {
  int64_t nc, oh, ow, kh, kw;
  for (nc = 0; nc < N * C; nc++) {
    const float *xc = x + nc * H * W;
    for (oh = 0; oh < OH; oh++)
      for (ow = 0; ow < OW; ow++) {
        int64_t h0 = oh * sh - ph, w0 = ow * sw - pw;
        int64_t h1 = h0 + KH < H + ph ? h0 + KH : H + ph;
        int64_t w1 = w0 + KW < W + pw ? w0 + KW : W + pw;
        int64_t cnt = (h1 - h0) * (w1 - w0);
        float acc = 0.0f;
        for (kh = 0; kh < KH; kh++) {
          int64_t ih = h0 + kh;
          if (ih < 0 || ih >= H) continue;
          for (kw = 0; kw < KW; kw++) {
            int64_t iw = w0 + kw;
            if (iw < 0 || iw >= W) continue;
            acc += xc[ih * W + iw];
          }
        }
        out[(nc * OH + oh) * OW + ow] = acc / (float)cnt;
      }
  }
}

/* Scaled dot-product attention, one query row at a time: scores into the
 * caller's S-float scratch, max-subtracted softmax, then the weighted sum of
 * value rows. Causal: query i sees keys j <= i + (S - T) when S > T, j <= i
 * otherwise (so every row sees at least key 0 and no row is all masked). */
void ck_attention_f32(float *out, const float *q, const float *k, const float *v, int64_t batch,
                      int64_t T, int64_t S, int64_t D, int64_t Dv, int causal, float scale,
                      float *scratch) {
  int64_t b, i, j, d, off = S > T ? S - T : 0;
  for (b = 0; b < batch; b++) {
    const float *qb = q + b * T * D, *kb = k + b * S * D, *vb = v + b * S * Dv;
    float *ob = out + b * T * Dv;
    for (i = 0; i < T; i++) {
      const float *qi = qb + i * D;
      float *oi = ob + i * Dv;
      int64_t jend = causal ? (i + off + 1 < S ? i + off + 1 : S) : S;
      float m = -INFINITY, s = 0.0f;
      for (j = 0; j < jend; j++) {
        const float *kj = kb + j * D;
        float acc = 0.0f;
        for (d = 0; d < D; d++) acc += qi[d] * kj[d];
        acc *= scale;
        scratch[j] = acc;
        if (acc > m) m = acc;
      }
      for (j = 0; j < jend; j++) {
        scratch[j] = expf(scratch[j] - m);
        s += scratch[j];
      }
      for (d = 0; d < Dv; d++) oi[d] = 0.0f;
      for (j = 0; j < jend; j++) {
        const float *vj = vb + j * Dv;
        float p = scratch[j] / s;
        for (d = 0; d < Dv; d++) oi[d] += p * vj[d];
      }
    }
  }
}

/* The row `pos` of ck_attention_f32 (causal, T == S) from cached keys and
 * values: the same loops over j < pos + 1 in the same order, so decoding
 * token by token reproduces the full forward exactly. */
void ck_attention_decode_f32(float *out, const float *q, const float *k, const float *v, float *kcache,
                             float *vcache, int64_t batch, int64_t pos, int64_t S, int64_t D, int64_t Dv,
                             float scale, float *scratch) {
  int64_t b, j, d;
  for (b = 0; b < batch; b++) {
    const float *qb = q + b * D;
    float *kb = kcache + b * S * D, *vb = vcache + b * S * Dv, *ob = out + b * Dv;
    float m = -INFINITY, s = 0.0f;
    memcpy(kb + pos * D, k + b * D, (size_t)D * sizeof(float));
    memcpy(vb + pos * Dv, v + b * Dv, (size_t)Dv * sizeof(float));
    for (j = 0; j <= pos; j++) {
      const float *kj = kb + j * D;
      float acc = 0.0f;
      for (d = 0; d < D; d++) acc += qb[d] * kj[d];
      acc *= scale;
      scratch[j] = acc;
      if (acc > m) m = acc;
    }
    for (j = 0; j <= pos; j++) {
      scratch[j] = expf(scratch[j] - m);
      s += scratch[j];
    }
    for (d = 0; d < Dv; d++) ob[d] = 0.0f;
    for (j = 0; j <= pos; j++) {
      const float *vj = vb + j * Dv;
      float p = scratch[j] / s;
      for (d = 0; d < Dv; d++) ob[d] += p * vj[d];
    }
  }
}
