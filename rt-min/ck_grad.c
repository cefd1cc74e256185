/* rt-min/ck_grad.c - backward (gradient) kernels of the primitive ops (C99).
 *
 * Plain, deterministic reference implementations of the gradients of the
 * kernels in ck_kernels.c. Every d* output accumulates (+=); every sum runs
 * in a fixed order in float, so a training step is bitwise reproducible.
 * Freestanding friendly: only <math.h>, <stdint.h>, <stddef.h>; no stdio, no
 * allocation; scratch memory is the caller's. */
#include "ck_grad.h"

#include <math.h>

/* ---- softmax family ---------------------------------------------------------------- */

/* Jacobian-vector product of softmax: dx = y * (dy - <dy, y>). Using the
 * forward output avoids recomputing exp, and is PyTorch's own form. */
void ck_softmax_backward_f32(float *dx, const float *y, const float *dy, int64_t outer, int64_t n,
                             int64_t inner) {
  int64_t a, j, c;
  for (a = 0; a < outer; a++)
    for (c = 0; c < inner; c++) {
      int64_t base = a * n * inner + c;
      float dot = 0.0f;
      for (j = 0; j < n; j++) dot += dy[base + j * inner] * y[base + j * inner];
      for (j = 0; j < n; j++) {
        int64_t e = base + j * inner;
        dx[e] += y[e] * (dy[e] - dot);
      }
    }
}

/* log_softmax: d/dx (x - lse) = I - softmax, softmax recovered as exp(y). */
void ck_log_softmax_backward_f32(float *dx, const float *y, const float *dy, int64_t outer,
                                 int64_t n, int64_t inner) {
  int64_t a, j, c;
  for (a = 0; a < outer; a++)
    for (c = 0; c < inner; c++) {
      int64_t base = a * n * inner + c;
      float s = 0.0f;
      for (j = 0; j < n; j++) s += dy[base + j * inner];
      for (j = 0; j < n; j++) {
        int64_t e = base + j * inner;
        dx[e] += dy[e] - expf(y[e]) * s;
      }
    }
}

/* max(dim) routes its gradient to the index argmax picks (torch.max's
 * indices): the first maximum, or the first NaN, which wins outright. */
void ck_max_backward_f32(float *dx, const float *x, const float *dy, int64_t outer, int64_t n,
                         int64_t inner) {
  int64_t a, j, c;
  if (n <= 0) return;
  for (a = 0; a < outer; a++)
    for (c = 0; c < inner; c++) {
      const float *p = x + a * n * inner + c;
      int64_t best = 0;
      float m = p[0];
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
      dx[a * n * inner + best * inner + c] += dy[a * inner + c];
    }
}

/* ---- normalisation ------------------------------------------------------------------- */

/* LayerNorm backward from the saved statistics (llm.c's layernorm_backward):
 * the two row means are formed first, then dx in one pass. Parameter
 * gradients are column sums over rows, gathered per column so each gets one
 * fresh float sum added once (same result whatever the buffer held). */
void ck_layernorm_backward_f32(float *dx, float *dweight, float *dbias, const float *dy,
                               const float *x, const float *weight, const float *mean,
                               const float *rstd, int64_t rows, int64_t n) {
  int64_t r, j;
  if (dx)
    for (r = 0; r < rows; r++) {
      const float *xr = x + r * n, *dyr = dy + r * n;
      float *dxr = dx + r * n;
      float m = mean[r], rs = rstd[r], gmean = 0.0f, gxmean = 0.0f;
      for (j = 0; j < n; j++) {
        float xhat = (xr[j] - m) * rs;
        float g = weight ? dyr[j] * weight[j] : dyr[j];
        gmean += g;
        gxmean += g * xhat;
      }
      gmean /= (float)n;
      gxmean /= (float)n;
      for (j = 0; j < n; j++) {
        float xhat = (xr[j] - m) * rs;
        float g = weight ? dyr[j] * weight[j] : dyr[j];
        dxr[j] += rs * (g - gmean - xhat * gxmean);
      }
    }
  if (dweight)
    for (j = 0; j < n; j++) {
      float acc = 0.0f;
      for (r = 0; r < rows; r++) acc += dy[r * n + j] * ((x[r * n + j] - mean[r]) * rstd[r]);
      dweight[j] += acc;
    }
  if (dbias)
    for (j = 0; j < n; j++) {
      float acc = 0.0f;
      for (r = 0; r < rows; r++) acc += dy[r * n + j];
      dbias[j] += acc;
    }
}

/* RMSNorm backward: y = x r w with r = (mean(x^2) + eps)^-1/2, and
 * dr/dx_j = -r^3 x_j / n, hence the single row reduction mean(g x). */
void ck_rmsnorm_backward_f32(float *dx, float *dweight, const float *dy, const float *x,
                             const float *weight, const float *rstd, int64_t rows, int64_t n) {
  int64_t r, j;
  if (dx)
    for (r = 0; r < rows; r++) {
      const float *xr = x + r * n, *dyr = dy + r * n;
      float *dxr = dx + r * n;
      float rs = rstd[r], gx = 0.0f, k;
      for (j = 0; j < n; j++) gx += (weight ? dyr[j] * weight[j] : dyr[j]) * xr[j];
      k = rs * rs * rs * (gx / (float)n);
      for (j = 0; j < n; j++) {
        float g = weight ? dyr[j] * weight[j] : dyr[j];
        dxr[j] += rs * g - xr[j] * k;
      }
    }
  if (dweight)
    for (j = 0; j < n; j++) {
      float acc = 0.0f;
      for (r = 0; r < rows; r++) acc += dy[r * n + j] * (x[r * n + j] * rstd[r]);
      dweight[j] += acc;
    }
}

/* ---- embedding ------------------------------------------------------------------------- */

/* Scatter-add in index order (the deterministic form of index_add): all
 * indices are validated first so a bad one leaves dtable untouched. */
int64_t ck_embedding_backward_f32(float *dtable, const float *dy, const int32_t *idx,
                                  int64_t n_idx, int64_t V, int64_t C) {
  int64_t i, c;
  for (i = 0; i < n_idx; i++)
    if (idx[i] < 0 || (int64_t)idx[i] >= V) return i;
  for (i = 0; i < n_idx; i++) {
    float *row = dtable + (int64_t)idx[i] * C;
    const float *src = dy + i * C;
    for (c = 0; c < C; c++) row[c] += src[c];
  }
  return -1;
}

/* ---- convolution ----------------------------------------------------------------------- */

/* Every gradient is written in gather form (each element's sum formed in a
 * local float, in the order the loops are written, then added once): no
 * element is touched by two partial sums, so the result does not depend on
 * what the buffer held beyond the final +=. dx inverts the forward index map
 * ih = oh*sh - ph + kh: oh = (ih + ph - kh) / sh when that divides exactly. */
void ck_conv2d_backward_f32(float *dx, float *dw, float *dbias, const float *dy, const float *x,
                            const float *w, int64_t N, int64_t C, int64_t H, int64_t W, int64_t OC,
                            int64_t KH, int64_t KW, int64_t sh, int64_t sw, int64_t ph, int64_t pw,
                            int64_t groups, int64_t OH, int64_t OW) {
  int64_t cpg = C / groups, opg = OC / groups;
  int64_t n, c, oc, ih, iw, oh, ow, kh, kw;
  if (dx)
    for (n = 0; n < N; n++)
      for (c = 0; c < C; c++) {
        int64_t g = c / cpg, ci = c % cpg;
        for (ih = 0; ih < H; ih++)
          for (iw = 0; iw < W; iw++) {
            float acc = 0.0f;
            for (oc = g * opg; oc < (g + 1) * opg; oc++) {
              const float *wc = w + (oc * cpg + ci) * KH * KW;
              const float *dyo = dy + (n * OC + oc) * OH * OW;
              for (kh = 0; kh < KH; kh++) {
                int64_t th = ih + ph - kh;
                if (th < 0 || th % sh) continue;
                oh = th / sh;
                if (oh >= OH) continue;
                for (kw = 0; kw < KW; kw++) {
                  int64_t tw = iw + pw - kw;
                  if (tw < 0 || tw % sw) continue;
                  ow = tw / sw;
                  if (ow >= OW) continue;
                  acc += dyo[oh * OW + ow] * wc[kh * KW + kw];
                }
              }
            }
            dx[((n * C + c) * H + ih) * W + iw] += acc;
          }
      }
  if (dw)
    for (oc = 0; oc < OC; oc++) {
      int64_t g = oc / opg, ci;
      for (ci = 0; ci < cpg; ci++)
        for (kh = 0; kh < KH; kh++)
          for (kw = 0; kw < KW; kw++) {
            float acc = 0.0f;
            for (n = 0; n < N; n++) {
              const float *xc = x + (n * C + g * cpg + ci) * H * W;
              const float *dyo = dy + (n * OC + oc) * OH * OW;
              for (oh = 0; oh < OH; oh++) {
                ih = oh * sh - ph + kh;
                if (ih < 0 || ih >= H) continue;
                for (ow = 0; ow < OW; ow++) {
                  iw = ow * sw - pw + kw;
                  if (iw < 0 || iw >= W) continue;
                  acc += dyo[oh * OW + ow] * xc[ih * W + iw];
                }
              }
            }
            dw[((oc * cpg + ci) * KH + kh) * KW + kw] += acc;
          }
    }
  if (dbias)
    for (oc = 0; oc < OC; oc++) {
      float acc = 0.0f;
      for (n = 0; n < N; n++) {
        const float *dyo = dy + (n * OC + oc) * OH * OW;
        for (oh = 0; oh < OH * OW; oh++) acc += dyo[oh];
      }
      dbias[oc] += acc;
    }
}

/* ---- pooling ------------------------------------------------------------------------------ */

/* Re-finds each window's recorded index with PyTorch's CPU rule
 * (`val > maxval || isnan(val)`, starting at the first in-bounds cell), so
 * ties go to the first maximum and NaN windows to their last NaN. */
void ck_maxpool2d_backward_f32(float *dx, const float *dy, const float *x, int64_t N, int64_t C,
                               int64_t H, int64_t W, int64_t KH, int64_t KW, int64_t sh,
                               int64_t sw, int64_t ph, int64_t pw, int64_t OH, int64_t OW) {
  int64_t nc, oh, ow, ih, iw;
  for (nc = 0; nc < N * C; nc++) {
    const float *xc = x + nc * H * W;
    float *dxc = dx + nc * H * W;
    for (oh = 0; oh < OH; oh++)
      for (ow = 0; ow < OW; ow++) {
        int64_t h0 = oh * sh - ph, w0 = ow * sw - pw;
        int64_t h1 = h0 + KH < H ? h0 + KH : H, w1 = w0 + KW < W ? w0 + KW : W;
        int64_t best;
        float m = -INFINITY;
        if (h0 < 0) h0 = 0;
        if (w0 < 0) w0 = 0;
        if (h0 >= h1 || w0 >= w1) continue; /* window entirely in the padding */
        best = h0 * W + w0;
        for (ih = h0; ih < h1; ih++)
          for (iw = w0; iw < w1; iw++) {
            float v = xc[ih * W + iw];
            if (v > m || v != v) {
              m = v;
              best = ih * W + iw;
            }
          }
        dxc[best] += dy[(nc * OH + oh) * OW + ow];
      }
  }
}

/* Each output spreads dy / count over its in-bounds cells; count is the
 * forward's divisor (window clipped to the padded input), so padding cells
 * absorb their share and nothing is written for them. */
void ck_avgpool2d_backward_f32(float *dx, const float *dy, int64_t N, int64_t C, int64_t H,
                               int64_t W, int64_t KH, int64_t KW, int64_t sh, int64_t sw,
                               int64_t ph, int64_t pw, int64_t OH, int64_t OW) {
  int64_t nc, oh, ow, kh, kw;
  for (nc = 0; nc < N * C; nc++) {
    float *dxc = dx + nc * H * W;
    for (oh = 0; oh < OH; oh++)
      for (ow = 0; ow < OW; ow++) {
        int64_t h0 = oh * sh - ph, w0 = ow * sw - pw;
        int64_t h1 = h0 + KH < H + ph ? h0 + KH : H + ph;
        int64_t w1 = w0 + KW < W + pw ? w0 + KW : W + pw;
        float share = dy[(nc * OH + oh) * OW + ow] / (float)((h1 - h0) * (w1 - w0));
        for (kh = 0; kh < KH; kh++) {
          int64_t ih = h0 + kh;
          if (ih < 0 || ih >= H) continue;
          for (kw = 0; kw < KW; kw++) {
            int64_t iw = w0 + kw;
            if (iw < 0 || iw >= W) continue;
            dxc[ih * W + iw] += share;
          }
        }
      }
  }
}

/* ---- attention ---------------------------------------------------------------------------- */

/* Flash-attention-style backward without saved statistics: per query row the
 * scores and probabilities are recomputed exactly as the forward does (same
 * order, same mask), so no T x S matrix is ever stored. scratch[0..S) holds
 * p, scratch[S..2S) holds dp. */
void ck_attention_backward_f32(float *dq, float *dk, float *dv, const float *dout, const float *q,
                               const float *k, const float *v, int64_t batch, int64_t T, int64_t S,
                               int64_t D, int64_t Dv, int causal, float scale, float *scratch) {
  int64_t b, i, j, d, off = S > T ? S - T : 0;
  float *p = scratch, *dp = scratch + S;
  for (b = 0; b < batch; b++) {
    const float *qb = q + b * T * D, *kb = k + b * S * D, *vb = v + b * S * Dv;
    const float *gb = dout + b * T * Dv;
    for (i = 0; i < T; i++) {
      const float *qi = qb + i * D, *gi = gb + i * Dv;
      int64_t jend = causal ? (i + off + 1 < S ? i + off + 1 : S) : S;
      float m = -INFINITY, s = 0.0f, pdp = 0.0f;
      for (j = 0; j < jend; j++) {
        const float *kj = kb + j * D;
        float acc = 0.0f;
        for (d = 0; d < D; d++) acc += qi[d] * kj[d];
        acc *= scale;
        p[j] = acc;
        if (acc > m) m = acc;
      }
      for (j = 0; j < jend; j++) {
        p[j] = expf(p[j] - m);
        s += p[j];
      }
      for (j = 0; j < jend; j++) {
        const float *vj = vb + j * Dv;
        float acc = 0.0f;
        p[j] /= s;
        for (d = 0; d < Dv; d++) acc += gi[d] * vj[d];
        dp[j] = acc;
        pdp += p[j] * acc;
      }
      /* dp becomes ds = p (dp - <p, dp>) */
      for (j = 0; j < jend; j++) dp[j] = p[j] * (dp[j] - pdp);
      if (dv)
        for (j = 0; j < jend; j++) {
          float *dvj = dv + (b * S + j) * Dv;
          for (d = 0; d < Dv; d++) dvj[d] += p[j] * gi[d];
        }
      if (dk)
        for (j = 0; j < jend; j++) {
          float *dkj = dk + (b * S + j) * D;
          float c = scale * dp[j];
          for (d = 0; d < D; d++) dkj[d] += c * qi[d];
        }
      if (dq) {
        float *dqi = dq + (b * T + i) * D;
        for (d = 0; d < D; d++) {
          float acc = 0.0f;
          for (j = 0; j < jend; j++) acc += dp[j] * kb[j * D + d];
          dqi[d] += scale * acc;
        }
      }
    }
  }
}
