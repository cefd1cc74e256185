/* rt-min/x86/ck_x86_kernels.c - pooled attention forward and backward,
 * bitwise equal to the reference kernels (see ck_x86_kernels.h). */
#include "ck_x86_kernels.h"

#include <math.h>
#include <stddef.h>

#include "ck_grad.h"
#include "ck_kernels.h"

#define CK_X86_LANES 16

/* y[0..n) += a * x[0..n): whole blocks of 16 lanes (a constant trip count,
 * so -O2 vectorizes them) then a scalar tail. Each y[j] gets exactly one
 * multiply and one add, as in the reference loops (-ffp-contract=off). */
static void ck_x86_axpy(float *restrict y, float a, const float *restrict x, int64_t n) {
  int64_t j = 0;
  for (; j + CK_X86_LANES <= n; j += CK_X86_LANES)
    for (int l = 0; l < CK_X86_LANES; l++) y[j + l] += a * x[j + l];
  for (; j < n; j++) y[j] += a * x[j];
}

/* xt (cols x rows) = x (rows x cols)^T: keys become contiguous per feature,
 * so a query's scores are axpys over keys, each key's sum still in d order. */
static void ck_x86_transpose(float *restrict xt, const float *restrict x, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; r++)
    for (int64_t c = 0; c < cols; c++) xt[c * rows + r] = x[r * cols + c];
}

/* sc[j] = sum_d a[d] * bt[d, j] for j < n (bt: D x S), summed in d order from
 * 0 like the reference dot product `acc = 0; acc += a[d] * b_j[d]`. */
static void ck_x86_scores(float *restrict sc, const float *a, const float *bt, int64_t D, int64_t S,
                          int64_t n) {
  for (int64_t j = 0; j < n; j++) sc[j] = 0.0f;
  for (int64_t d = 0; d < D; d++) ck_x86_axpy(sc, a[d], bt + d * S, n);
}

/* Keys visible to query i: all S, or j <= i + (S - T) when causal. */
static int64_t ck_x86_jend(int64_t i, int64_t T, int64_t S, int causal) {
  int64_t off = S > T ? S - T : 0;
  return causal ? (i + off + 1 < S ? i + off + 1 : S) : S;
}

typedef struct CkX86Attn {
  CkPool *pool;
  float *out, *dq, *dk, *dv;
  const float *dout, *q, *k, *v;
  int64_t T, S, D, Dv;
  int causal;
  float scale;
  size_t scratch_bytes;
} CkX86Attn;

/* Forward of one batch item: the reference's row loop, with the scores and
 * the output row as axpys over keys and features. */
static void ck_x86_attention_item(void *ctx, int64_t b, int tid) {
  const CkX86Attn *c = ctx;
  int64_t T = c->T, S = c->S, D = c->D, Dv = c->Dv;
  float *kt = ck_pool_scratch(c->pool, tid, c->scratch_bytes), *sc = kt + D * S;
  const float *qb = c->q + b * T * D, *vb = c->v + b * S * Dv;
  float *ob = c->out + b * T * Dv;
  ck_x86_transpose(kt, c->k + b * S * D, S, D);
  for (int64_t i = 0; i < T; i++) {
    int64_t jend = ck_x86_jend(i, T, S, c->causal);
    float m = -INFINITY, s = 0.0f, *oi = ob + i * Dv;
    ck_x86_scores(sc, qb + i * D, kt, D, S, jend);
    for (int64_t j = 0; j < jend; j++) {
      sc[j] *= c->scale;
      if (sc[j] > m) m = sc[j];
    }
    for (int64_t j = 0; j < jend; j++) {
      sc[j] = expf(sc[j] - m);
      s += sc[j];
    }
    for (int64_t d = 0; d < Dv; d++) oi[d] = 0.0f;
    for (int64_t j = 0; j < jend; j++) ck_x86_axpy(oi, sc[j] / s, vb + j * Dv, Dv);
  }
}

/* Sizes every thread's scratch before the parallel-for (the pool allows it
 * only from the caller there); false means: run the reference instead. */
static int ck_x86_scratch_ready(CkPool *pool, size_t bytes) {
  if (!pool) return 0;
  for (int t = 0; t < ck_pool_threads(pool); t++)
    if (!ck_pool_scratch(pool, t, bytes)) return 0;
  return 1;
}

void ck_x86_attention_f32(CkPool *pool, float *out, const float *q, const float *k, const float *v,
                          int64_t batch, int64_t T, int64_t S, int64_t D, int64_t Dv, int causal,
                          float scale, float *scratch) {
  CkX86Attn c = {pool, out, NULL, NULL, NULL, NULL, q, k, v, T, S, D, Dv, causal, scale,
                 (size_t)(D * S + S) * sizeof(float)};
  if (batch <= 0 || T <= 0) return;
  if (!ck_x86_scratch_ready(pool, c.scratch_bytes)) {
    ck_attention_f32(out, q, k, v, batch, T, S, D, Dv, causal, scale, scratch);
    return;
  }
  ck_pool_parallel_for(pool, batch, ck_x86_attention_item, &c);
}

/* Backward of one batch item: the reference's row loop (probabilities
 * recomputed per query row), dk / dv scattered in i order, dq gathered in j
 * order, every sum in the reference's order. */
static void ck_x86_attention_bwd_item(void *ctx, int64_t b, int tid) {
  const CkX86Attn *c = ctx;
  int64_t T = c->T, S = c->S, D = c->D, Dv = c->Dv;
  float *kt = ck_pool_scratch(c->pool, tid, c->scratch_bytes);
  float *vt = kt + D * S, *p = vt + Dv * S, *dp = p + S, *acc = dp + S;
  const float *qb = c->q + b * T * D, *kb = c->k + b * S * D, *gb = c->dout + b * T * Dv;
  ck_x86_transpose(kt, kb, S, D);
  ck_x86_transpose(vt, c->v + b * S * Dv, S, Dv);
  for (int64_t i = 0; i < T; i++) {
    const float *qi = qb + i * D, *gi = gb + i * Dv;
    int64_t jend = ck_x86_jend(i, T, S, c->causal);
    float m = -INFINITY, s = 0.0f, pdp = 0.0f;
    ck_x86_scores(p, qi, kt, D, S, jend);
    for (int64_t j = 0; j < jend; j++) {
      p[j] *= c->scale;
      if (p[j] > m) m = p[j];
    }
    for (int64_t j = 0; j < jend; j++) {
      p[j] = expf(p[j] - m);
      s += p[j];
    }
    ck_x86_scores(dp, gi, vt, Dv, S, jend);
    for (int64_t j = 0; j < jend; j++) {
      p[j] /= s;
      pdp += p[j] * dp[j];
    }
    for (int64_t j = 0; j < jend; j++) dp[j] = p[j] * (dp[j] - pdp);
    if (c->dv)
      for (int64_t j = 0; j < jend; j++) ck_x86_axpy(c->dv + (b * S + j) * Dv, p[j], gi, Dv);
    if (c->dk)
      for (int64_t j = 0; j < jend; j++) ck_x86_axpy(c->dk + (b * S + j) * D, c->scale * dp[j], qi, D);
    if (c->dq) {
      float *dqi = c->dq + (b * T + i) * D;
      for (int64_t d = 0; d < D; d++) acc[d] = 0.0f;
      for (int64_t j = 0; j < jend; j++) ck_x86_axpy(acc, dp[j], kb + j * D, D);
      for (int64_t d = 0; d < D; d++) dqi[d] += c->scale * acc[d];
    }
  }
}

void ck_x86_attention_backward_f32(CkPool *pool, float *dq, float *dk, float *dv, const float *dout,
                                   const float *q, const float *k, const float *v, int64_t batch,
                                   int64_t T, int64_t S, int64_t D, int64_t Dv, int causal, float scale,
                                   float *scratch) {
  CkX86Attn c = {pool, NULL, dq, dk, dv, dout, q, k, v, T, S, D, Dv, causal, scale,
                 (size_t)(D * S + Dv * S + 2 * S + D) * sizeof(float)};
  if (batch <= 0 || T <= 0) return;
  if (!ck_x86_scratch_ready(pool, c.scratch_bytes)) {
    ck_attention_backward_f32(dq, dk, dv, dout, q, k, v, batch, T, S, D, Dv, causal, scale, scratch);
    return;
  }
  ck_pool_parallel_for(pool, batch, ck_x86_attention_bwd_item, &c);
}

typedef struct CkX86Norm {
  float *out, *mean, *rstd, *dx, *dweight, *dbias;
  const float *x, *weight, *bias, *dy, *cmean, *crstd;
  int64_t rows, n;
  float eps;
} CkX86Norm;

/* Rows [r0, r1) of the forward: rows are independent in the reference. */
static void ck_x86_layernorm_rows(void *ctx, int64_t chunk, int tid) {
  const CkX86Norm *c = ctx;
  int64_t r0 = chunk * CK_X86_ROWS, r1 = r0 + CK_X86_ROWS < c->rows ? r0 + CK_X86_ROWS : c->rows;
  (void)tid;
  ck_layernorm_f32(c->out + r0 * c->n, c->mean ? c->mean + r0 : NULL, c->rstd ? c->rstd + r0 : NULL,
                   c->x + r0 * c->n, c->weight, c->bias, r1 - r0, c->n, c->eps);
}

static int64_t ck_x86_blocks(int64_t n, int64_t block) { return (n + block - 1) / block; }

void ck_x86_layernorm_f32(CkPool *pool, float *out, float *mean, float *rstd, const float *x,
                          const float *weight, const float *bias, int64_t rows, int64_t n, float eps) {
  CkX86Norm c = {out, mean, rstd, NULL, NULL, NULL, x, weight, bias, NULL, NULL, NULL, rows, n, eps};
  if (rows <= 0) return;
  ck_pool_parallel_for(pool, ck_x86_blocks(rows, CK_X86_ROWS), ck_x86_layernorm_rows, &c);
}

/* dx of rows [r0, r1): the reference's row loop (per-row sums only). */
static void ck_x86_layernorm_bwd_rows(void *ctx, int64_t chunk, int tid) {
  const CkX86Norm *c = ctx;
  int64_t r0 = chunk * CK_X86_ROWS, r1 = r0 + CK_X86_ROWS < c->rows ? r0 + CK_X86_ROWS : c->rows;
  (void)tid;
  ck_layernorm_backward_f32(c->dx + r0 * c->n, NULL, NULL, c->dy + r0 * c->n, c->x + r0 * c->n, c->weight,
                            c->cmean + r0, c->crstd + r0, r1 - r0, c->n);
}

/* dweight / dbias of columns [j0, j1): each column's sum over the rows in
 * row order from 0, then added once, as in the reference; rows outermost
 * so the block's columns are read contiguously. */
static void ck_x86_layernorm_bwd_cols(void *ctx, int64_t chunk, int tid) {
  const CkX86Norm *c = ctx;
  int64_t j0 = chunk * CK_X86_COLS, j1 = j0 + CK_X86_COLS < c->n ? j0 + CK_X86_COLS : c->n, n = c->n;
  float aw[CK_X86_COLS], ab[CK_X86_COLS];
  (void)tid;
  for (int64_t j = 0; j < j1 - j0; j++) aw[j] = ab[j] = 0.0f;
  for (int64_t r = 0; r < c->rows; r++) {
    const float *dyr = c->dy + r * n + j0, *xr = c->x + r * n + j0;
    float m = c->cmean[r], rs = c->crstd[r];
    if (c->dweight)
      for (int64_t j = 0; j < j1 - j0; j++) aw[j] += dyr[j] * ((xr[j] - m) * rs);
    if (c->dbias)
      for (int64_t j = 0; j < j1 - j0; j++) ab[j] += dyr[j];
  }
  for (int64_t j = 0; j < j1 - j0; j++) {
    if (c->dweight) c->dweight[j0 + j] += aw[j];
    if (c->dbias) c->dbias[j0 + j] += ab[j];
  }
}

void ck_x86_layernorm_backward_f32(CkPool *pool, float *dx, float *dweight, float *dbias, const float *dy,
                                   const float *x, const float *weight, const float *mean,
                                   const float *rstd, int64_t rows, int64_t n) {
  CkX86Norm c = {NULL, NULL, NULL, dx, dweight, dbias, x, weight, NULL, dy, mean, rstd, rows, n, 0.0f};
  if (rows <= 0 || n <= 0) {
    ck_layernorm_backward_f32(dx, dweight, dbias, dy, x, weight, mean, rstd, rows, n);
    return;
  }
  if (dx) ck_pool_parallel_for(pool, ck_x86_blocks(rows, CK_X86_ROWS), ck_x86_layernorm_bwd_rows, &c);
  if (dweight || dbias) ck_pool_parallel_for(pool, ck_x86_blocks(n, CK_X86_COLS), ck_x86_layernorm_bwd_cols, &c);
}

typedef struct CkX86Sum {
  float *out;
  const float *x;
  int64_t outer, n, inner, cblocks;
} CkX86Sum;

/* One (outer block, inner block) of the sum: lanes are the inner indices,
 * each lane's sum runs over j in order from 0, as in the reference. */
static void ck_x86_sum_block(void *ctx, int64_t chunk, int tid) {
  const CkX86Sum *c = ctx;
  int64_t a0 = (chunk / c->cblocks) * CK_X86_ROWS, c0 = (chunk % c->cblocks) * CK_X86_COLS;
  int64_t a1 = a0 + CK_X86_ROWS < c->outer ? a0 + CK_X86_ROWS : c->outer;
  int64_t w = c0 + CK_X86_COLS < c->inner ? CK_X86_COLS : c->inner - c0;
  (void)tid;
  for (int64_t a = a0; a < a1; a++) {
    const float *p = c->x + a * c->n * c->inner + c0;
    float acc[CK_X86_COLS];
    if (w == CK_X86_COLS) {
      for (int l = 0; l < CK_X86_COLS; l++) acc[l] = 0.0f;
      for (int64_t j = 0; j < c->n; j++)
        for (int l = 0; l < CK_X86_COLS; l++) acc[l] += p[j * c->inner + l];
    } else {
      for (int64_t l = 0; l < w; l++) acc[l] = 0.0f;
      for (int64_t j = 0; j < c->n; j++)
        for (int64_t l = 0; l < w; l++) acc[l] += p[j * c->inner + l];
    }
    for (int64_t l = 0; l < w; l++) c->out[a * c->inner + c0 + l] = acc[l];
  }
}

void ck_x86_sum_f32(CkPool *pool, float *out, const float *x, int64_t outer, int64_t n, int64_t inner) {
  CkX86Sum c = {out, x, outer, n, inner, ck_x86_blocks(inner, CK_X86_COLS)};
  if (outer <= 0 || inner <= 0) return;
  ck_pool_parallel_for(pool, ck_x86_blocks(outer, CK_X86_ROWS) * c.cblocks, ck_x86_sum_block, &c);
}
