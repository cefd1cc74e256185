/* rt-min/x86/ck_x86_kernels.c - pooled attention forward and backward,
 * bitwise equal to the reference kernels (see ck_x86_kernels.h). */
#include "ck_x86_kernels.h"

#include <math.h>
#include <stddef.h>

#include "ck_grad.h"
#include "ck_kernels.h"

/* y[0..n) += a * x[0..n): whole blocks of 16 lanes (a constant trip count,
 * so -O2 vectorizes them) then a scalar tail. Each y[j] gets exactly one
 * multiply and one add, as in the reference loops (-ffp-contract=off). */
static void ck_x86_axpy(float *restrict y, float a, const float *restrict x, int64_t n) {
  int64_t j = 0;
  for (; j + CK_X86_LANES <= n; j += CK_X86_LANES)
    for (int l = 0; l < CK_X86_LANES; l++) y[j + l] += a * x[j + l];
  for (; j < n; j++) y[j] += a * x[j];
}

/* xt (cols x ld) = x (rows x cols)^T, columns rows..ld-1 zeroed: keys
 * become contiguous per feature (padded to whole 16-lane blocks), so a
 * query's scores are lanes over keys, each key's sum still in d order. */
static void ck_x86_transpose(float *restrict xt, const float *restrict x, int64_t rows, int64_t cols,
                             int64_t ld) {
  for (int64_t c = 0; c < cols; c++)
    for (int64_t r = rows; r < ld; r++) xt[c * ld + r] = 0.0f;
  for (int64_t r = 0; r < rows; r++)
    for (int64_t c = 0; c < cols; c++) xt[c * ld + r] = x[r * cols + c];
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

static int64_t ck_x86_round16(int64_t n) { return (n + CK_X86_LANES - 1) / CK_X86_LANES * CK_X86_LANES; }

typedef struct CkX86Attn {
  CkPool *pool;
  float *out, *dq, *dk, *dv;
  const float *dout, *q, *k, *v;
  int64_t T, S, D, Dv, Sp; /* Sp: S rounded up to whole 16-lane blocks */
  int causal;
  float scale;
  size_t scratch_bytes;
} CkX86Attn;

/* ---- register tiles (D and Dv whole 16-lane blocks) ---------------------------------
 * A tile is CK_X86_TR = 4 query rows. Rows past T repeat row T-1 so the
 * tile body has a fixed shape; they get je = 0 (no visible key) and are never
 * written. je[r] is row r's visible key count, jlo the smallest and jhi the
 * largest of them: keys below jlo are visible to every row of the tile. */
#define CK_X86_TR 4

typedef struct CkX86Tile {
  int64_t row[CK_X86_TR], je[CK_X86_TR], jlo, jhi;
  int nr; /* real rows */
} CkX86Tile;

static CkX86Tile ck_x86_tile(int64_t i0, int64_t T, int64_t S, int causal) {
  CkX86Tile t;
  t.nr = T - i0 < CK_X86_TR ? (int)(T - i0) : CK_X86_TR;
  t.jlo = S;
  t.jhi = 0;
  for (int r = 0; r < CK_X86_TR; r++) {
    t.row[r] = r < t.nr ? i0 + r : T - 1;
    t.je[r] = r < t.nr ? ck_x86_jend(i0 + r, T, S, causal) : 0;
    if (t.je[r] < t.jlo) t.jlo = t.je[r];
    if (t.je[r] > t.jhi) t.jhi = t.je[r];
  }
  return t;
}

/* sc[r, j] = scale * sum_d a[row r, d] * bt[d, j] for the tile's 4 rows and
 * keys j < jhi (whole 16-key blocks; bt is D x Sp, zero padded): each lane
 * is the reference's `acc = 0; acc += a[d] * b_j[d]` in d order, then
 * `acc *= scale`. */
static void ck_x86_tile_scores(float *sc, int64_t ldsc, const float *a, int64_t D, const float *bt,
                               int64_t Sp, const CkX86Tile *t, float scale) {
  const float *a0 = a + t->row[0] * D, *a1 = a + t->row[1] * D, *a2 = a + t->row[2] * D,
              *a3 = a + t->row[3] * D;
  for (int64_t jb = 0; jb < t->jhi; jb += CK_X86_LANES) {
    CkX86Vec16 c0 = CK_X86_VSET16(0.0f), c1 = c0, c2 = c0, c3 = c0;
    for (int64_t d = 0; d < D; d++) {
      CkX86Vec16 bv = CK_X86_VLOAD16(bt + d * Sp + jb);
      c0 += a0[d] * bv;
      c1 += a1[d] * bv;
      c2 += a2[d] * bv;
      c3 += a3[d] * bv;
    }
    CK_X86_VSTORE16(sc + jb, c0 * scale);
    CK_X86_VSTORE16(sc + ldsc + jb, c1 * scale);
    CK_X86_VSTORE16(sc + 2 * ldsc + jb, c2 * scale);
    CK_X86_VSTORE16(sc + 3 * ldsc + jb, c3 * scale);
  }
}

/* The reference's softmax of one row's je scores, in its order: the max,
 * p = expf(x - max) summed in j order, then p / sum. */
static void ck_x86_softmax_row(float *p, int64_t je) {
  float m = -INFINITY, s = 0.0f;
  for (int64_t j = 0; j < je; j++)
    if (p[j] > m) m = p[j];
  for (int64_t j = 0; j < je; j++) {
    p[j] = expf(p[j] - m);
    s += p[j];
  }
  for (int64_t j = 0; j < je; j++) p[j] /= s;
}

/* acc[r] (16 lanes each) += w[r, j] * x[j, 0..16) for j < jhi, in j order,
 * only where j < je[r]: the reference's per-row weighted sums of key rows
 * (x rows ldx apart, w rows ldw apart). */
static void ck_x86_tile_wsum(CkX86Vec16 acc[CK_X86_TR], const float *w, int64_t ldw, const float *x,
                             int64_t ldx, const CkX86Tile *t) {
  CkX86Vec16 c0 = acc[0], c1 = acc[1], c2 = acc[2], c3 = acc[3];
  const float *w0 = w, *w1 = w + ldw, *w2 = w + 2 * ldw, *w3 = w + 3 * ldw;
  int64_t j = 0;
  for (; j < t->jlo; j++) {
    CkX86Vec16 xv = CK_X86_VLOAD16(x + j * ldx);
    c0 += w0[j] * xv;
    c1 += w1[j] * xv;
    c2 += w2[j] * xv;
    c3 += w3[j] * xv;
  }
  for (; j < t->jhi; j++) {
    CkX86Vec16 xv = CK_X86_VLOAD16(x + j * ldx);
    if (j < t->je[0]) c0 += w0[j] * xv;
    if (j < t->je[1]) c1 += w1[j] * xv;
    if (j < t->je[2]) c2 += w2[j] * xv;
    if (j < t->je[3]) c3 += w3[j] * xv;
  }
  acc[0] = c0, acc[1] = c1, acc[2] = c2, acc[3] = c3;
}

/* y[j, 0..n) += sum over the tile's rows r in order, where j < je[r], of
 * (f * w[r, j]) * x[row r, 0..n) (f = 1: w[r, j] itself), for every key
 * j < jhi: the reference's scatter of one query row into the key rows
 * (dv += p g, dk += (scale ds) q), four rows at a time in row order. */
static void ck_x86_tile_scatter(float *y, int64_t ldy, const float *w, int64_t ldw, float f, const float *x,
                                int64_t ldx, int64_t n, const CkX86Tile *t) {
  const float *x0 = x + t->row[0] * ldx, *x1 = x + t->row[1] * ldx, *x2 = x + t->row[2] * ldx,
              *x3 = x + t->row[3] * ldx;
  for (int64_t j = 0; j < t->jhi; j++) {
    float *yj = y + j * ldy;
    int all = j < t->jlo;
    float w0 = f * w[j], w1 = f * w[ldw + j], w2 = f * w[2 * ldw + j], w3 = f * w[3 * ldw + j];
    for (int64_t db = 0; db < n; db += CK_X86_LANES) {
      CkX86Vec16 acc = CK_X86_VLOAD16(yj + db);
      if (all) {
        acc += w0 * CK_X86_VLOAD16(x0 + db);
        acc += w1 * CK_X86_VLOAD16(x1 + db);
        acc += w2 * CK_X86_VLOAD16(x2 + db);
        acc += w3 * CK_X86_VLOAD16(x3 + db);
      } else {
        if (j < t->je[0]) acc += w0 * CK_X86_VLOAD16(x0 + db);
        if (j < t->je[1]) acc += w1 * CK_X86_VLOAD16(x1 + db);
        if (j < t->je[2]) acc += w2 * CK_X86_VLOAD16(x2 + db);
        if (j < t->je[3]) acc += w3 * CK_X86_VLOAD16(x3 + db);
      }
      CK_X86_VSTORE16(yj + db, acc);
    }
  }
}

/* Forward of one batch item, register-tiled: per tile of 4 query rows the
 * scores (lanes over keys), the reference's scalar softmax per row, then
 * the output rows as weighted sums of value rows (lanes over features). */
static void ck_x86_attention_tiled(const CkX86Attn *c, int64_t b, int tid) {
  int64_t T = c->T, S = c->S, D = c->D, Dv = c->Dv, Sp = c->Sp;
  float *kt = ck_pool_scratch(c->pool, tid, c->scratch_bytes), *p = kt + D * Sp;
  const float *qb = c->q + b * T * D, *vb = c->v + b * S * Dv;
  float *ob = c->out + b * T * Dv;
  ck_x86_transpose(kt, c->k + b * S * D, S, D, Sp);
  for (int64_t i0 = 0; i0 < T; i0 += CK_X86_TR) {
    CkX86Tile t = ck_x86_tile(i0, T, S, c->causal);
    ck_x86_tile_scores(p, Sp, qb, D, kt, Sp, &t, c->scale);
    for (int r = 0; r < t.nr; r++) ck_x86_softmax_row(p + r * Sp, t.je[r]);
    for (int64_t db = 0; db < Dv; db += CK_X86_LANES) {
      CkX86Vec16 acc[CK_X86_TR];
      for (int r = 0; r < CK_X86_TR; r++) acc[r] = CK_X86_VSET16(0.0f);
      ck_x86_tile_wsum(acc, p, Sp, vb + db, Dv, &t);
      for (int r = 0; r < t.nr; r++) CK_X86_VSTORE16(ob + t.row[r] * Dv + db, acc[r]);
    }
  }
}

/* Forward of one batch item: the reference's row loop, with the scores and
 * the output row as axpys over keys and features (any D, Dv). */
static void ck_x86_attention_item(void *ctx, int64_t b, int tid) {
  const CkX86Attn *c = ctx;
  int64_t T = c->T, S = c->S, D = c->D, Dv = c->Dv;
  if (D % CK_X86_LANES == 0 && Dv % CK_X86_LANES == 0) {
    ck_x86_attention_tiled(c, b, tid);
    return;
  }
  float *kt = ck_pool_scratch(c->pool, tid, c->scratch_bytes), *sc = kt + D * c->Sp;
  const float *qb = c->q + b * T * D, *vb = c->v + b * S * Dv;
  float *ob = c->out + b * T * Dv;
  ck_x86_transpose(kt, c->k + b * S * D, S, D, c->Sp);
  for (int64_t i = 0; i < T; i++) {
    int64_t jend = ck_x86_jend(i, T, S, c->causal);
    float m = -INFINITY, s = 0.0f, *oi = ob + i * Dv;
    ck_x86_scores(sc, qb + i * D, kt, D, c->Sp, jend);
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
  int64_t Sp = ck_x86_round16(S);
  CkX86Attn c = {pool, out, NULL, NULL, NULL, NULL, q, k, v, T, S, D, Dv, Sp, causal, scale,
                 (size_t)(D * Sp + CK_X86_TR * Sp) * sizeof(float)};
  if (batch <= 0 || T <= 0) return;
  if (!ck_x86_scratch_ready(pool, c.scratch_bytes)) {
    ck_attention_f32(out, q, k, v, batch, T, S, D, Dv, causal, scale, scratch);
    return;
  }
  ck_pool_parallel_for(pool, batch, ck_x86_attention_item, &c);
}

/* Backward of one batch item, register-tiled, one tile of 4 query rows at a
 * time in row order: p (normalised) and dp = g v^T of the tile, the
 * reference's scalar ds = p (dp - <p, dp>) per row, then dv += p^T g and
 * dk += (scale ds)^T q scattered row by row in row order (so each dk / dv
 * element gets its terms in the reference's i order), and dq += scale *
 * (ds k) as weighted sums in j order. No T x S matrix: 2 tiles of 4 x Sp. */
static void ck_x86_attention_bwd_tiled(const CkX86Attn *c, int64_t b, int tid) {
  int64_t T = c->T, S = c->S, D = c->D, Dv = c->Dv, Sp = c->Sp;
  float *kt = ck_pool_scratch(c->pool, tid, c->scratch_bytes);
  float *vt = kt + D * Sp, *p = vt + Dv * Sp, *ds = p + CK_X86_TR * Sp;
  const float *qb = c->q + b * T * D, *kb = c->k + b * S * D, *gb = c->dout + b * T * Dv;
  ck_x86_transpose(kt, kb, S, D, Sp);
  ck_x86_transpose(vt, c->v + b * S * Dv, S, Dv, Sp);
  for (int64_t i0 = 0; i0 < T; i0 += CK_X86_TR) {
    CkX86Tile t = ck_x86_tile(i0, T, S, c->causal);
    ck_x86_tile_scores(p, Sp, qb, D, kt, Sp, &t, c->scale);
    ck_x86_tile_scores(ds, Sp, gb, Dv, vt, Sp, &t, 1.0f);
    for (int r = 0; r < t.nr; r++) {
      float *pr = p + r * Sp, *dr = ds + r * Sp, pdp = 0.0f;
      ck_x86_softmax_row(pr, t.je[r]);
      for (int64_t j = 0; j < t.je[r]; j++) pdp += pr[j] * dr[j];
      for (int64_t j = 0; j < t.je[r]; j++) dr[j] = pr[j] * (dr[j] - pdp);
    }
    if (c->dv) ck_x86_tile_scatter(c->dv + b * S * Dv, Dv, p, Sp, 1.0f, gb, Dv, Dv, &t);
    if (c->dk) ck_x86_tile_scatter(c->dk + b * S * D, D, ds, Sp, c->scale, qb, D, D, &t);
    if (c->dq)
      for (int64_t db = 0; db < D; db += CK_X86_LANES) {
        CkX86Vec16 acc[CK_X86_TR];
        for (int r = 0; r < CK_X86_TR; r++) acc[r] = CK_X86_VSET16(0.0f);
        ck_x86_tile_wsum(acc, ds, Sp, kb + db, D, &t);
        for (int r = 0; r < t.nr; r++) {
          float *dqi = c->dq + (b * T + t.row[r]) * D + db;
          CK_X86_VSTORE16(dqi, CK_X86_VLOAD16(dqi) + c->scale * acc[r]);
        }
      }
  }
}
/* Backward of one batch item (any D, Dv): the reference's row loop (probabilities
 * recomputed per query row), dk / dv scattered in i order, dq gathered in j
 * order, every sum in the reference's order. */
static void ck_x86_attention_bwd_item(void *ctx, int64_t b, int tid) {
  const CkX86Attn *c = ctx;
  int64_t T = c->T, S = c->S, D = c->D, Dv = c->Dv, Sp = c->Sp;
  if (D % CK_X86_LANES == 0 && Dv % CK_X86_LANES == 0) {
    ck_x86_attention_bwd_tiled(c, b, tid);
    return;
  }
  float *kt = ck_pool_scratch(c->pool, tid, c->scratch_bytes);
  float *vt = kt + D * Sp, *p = vt + Dv * Sp, *dp = p + Sp, *acc = dp + Sp;
  const float *qb = c->q + b * T * D, *kb = c->k + b * S * D, *gb = c->dout + b * T * Dv;
  ck_x86_transpose(kt, kb, S, D, Sp);
  ck_x86_transpose(vt, c->v + b * S * Dv, S, Dv, Sp);
  for (int64_t i = 0; i < T; i++) {
    const float *qi = qb + i * D, *gi = gb + i * Dv;
    int64_t jend = ck_x86_jend(i, T, S, c->causal);
    float m = -INFINITY, s = 0.0f, pdp = 0.0f;
    ck_x86_scores(p, qi, kt, D, Sp, jend);
    for (int64_t j = 0; j < jend; j++) {
      p[j] *= c->scale;
      if (p[j] > m) m = p[j];
    }
    for (int64_t j = 0; j < jend; j++) {
      p[j] = expf(p[j] - m);
      s += p[j];
    }
    ck_x86_scores(dp, gi, vt, Dv, Sp, jend);
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
  int64_t Sp = ck_x86_round16(S);
  /* scratch: k^T and v^T (padded), then p and dp / ds: 2 tiles of 4 rows, or
   * 2 rows + a D accumulator in the row-at-a-time path */
  CkX86Attn c = {pool, NULL, dq, dk, dv, dout, q, k, v, T, S, D, Dv, Sp, causal, scale,
                 (size_t)(D * Sp + Dv * Sp + 2 * CK_X86_TR * Sp + D) * sizeof(float)};
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

/* Row statistics of up to CK_X86_RG = 4 rows at once: the reference's
 * double sums, each row's sum still in j order from 0, but the rows' chains
 * interleaved (named accumulators, so they stay in registers), and the adds
 * overlap instead of waiting on one another's latency (the reference's row
 * loop is latency-bound). Rows past nr repeat row 0 and are dropped. */
#define CK_X86_RG 4
static void ck_x86_ln_stats(const float *x, int64_t n, int nr, float eps, float *m, float *rs) {
  const float *x0 = x, *x1 = x + (nr > 1 ? n : 0), *x2 = x + (nr > 2 ? 2 * n : 0), *x3 = x + (nr > 3 ? 3 * n : 0);
  double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0, v0 = 0.0, v1 = 0.0, v2 = 0.0, v3 = 0.0, mu0, mu1, mu2, mu3;
  double sum[CK_X86_RG], var[CK_X86_RG];
  for (int64_t j = 0; j < n; j++) {
    s0 += x0[j];
    s1 += x1[j];
    s2 += x2[j];
    s3 += x3[j];
  }
  mu0 = s0 / (double)n, mu1 = s1 / (double)n, mu2 = s2 / (double)n, mu3 = s3 / (double)n;
  for (int64_t j = 0; j < n; j++) {
    double d0 = (double)x0[j] - mu0, d1 = (double)x1[j] - mu1, d2 = (double)x2[j] - mu2, d3 = (double)x3[j] - mu3;
    v0 += d0 * d0;
    v1 += d1 * d1;
    v2 += d2 * d2;
    v3 += d3 * d3;
  }
  sum[0] = s0, sum[1] = s1, sum[2] = s2, sum[3] = s3;
  var[0] = v0, var[1] = v1, var[2] = v2, var[3] = v3;
  for (int r = 0; r < nr; r++) {
    m[r] = (float)(sum[r] / (double)n);
    rs[r] = (float)(1.0 / sqrt(var[r] / (double)n + (double)eps));
  }
}

/* q[j] = ((p[j] - m) * rs) [* w[j]] [+ b[j]]: the reference's per-element
 * expression, 16 lanes at a time, the weight/bias tests hoisted. */
static void ck_x86_ln_apply(float *q, const float *p, const float *w, const float *b, int64_t n, float m,
                            float rs) {
  int64_t j = 0;
  for (; j + CK_X86_LANES <= n; j += CK_X86_LANES) {
    CkX86Vec16 y = (CK_X86_VLOAD16(p + j) - m) * rs;
    if (w) y *= CK_X86_VLOAD16(w + j);
    if (b) y += CK_X86_VLOAD16(b + j);
    CK_X86_VSTORE16(q + j, y);
  }
  for (; j < n; j++) {
    float y = (p[j] - m) * rs;
    if (w) y *= w[j];
    if (b) y += b[j];
    q[j] = y;
  }
}

/* Rows [r0, r1) of the forward: rows are independent in the reference;
 * statistics CK_X86_RG rows at a time, then the rows normalised. */
static void ck_x86_layernorm_rows(void *ctx, int64_t chunk, int tid) {
  const CkX86Norm *c = ctx;
  int64_t r0 = chunk * CK_X86_ROWS, r1 = r0 + CK_X86_ROWS < c->rows ? r0 + CK_X86_ROWS : c->rows, n = c->n;
  (void)tid;
  for (int64_t g = r0; g < r1; g += CK_X86_RG) {
    int nr = r1 - g < CK_X86_RG ? (int)(r1 - g) : CK_X86_RG;
    float m[CK_X86_RG], rs[CK_X86_RG];
    ck_x86_ln_stats(c->x + g * n, n, nr, c->eps, m, rs);
    for (int r = 0; r < nr; r++) {
      ck_x86_ln_apply(c->out + (g + r) * n, c->x + (g + r) * n, c->weight, c->bias, n, m[r], rs[r]);
      if (c->mean) c->mean[g + r] = m[r];
      if (c->rstd) c->rstd[g + r] = rs[r];
    }
  }
}

static int64_t ck_x86_blocks(int64_t n, int64_t block) { return (n + block - 1) / block; }

void ck_x86_layernorm_f32(CkPool *pool, float *out, float *mean, float *rstd, const float *x,
                          const float *weight, const float *bias, int64_t rows, int64_t n, float eps) {
  CkX86Norm c = {out, mean, rstd, NULL, NULL, NULL, x, weight, bias, NULL, NULL, NULL, rows, n, eps};
  if (rows <= 0) return;
  ck_pool_parallel_for(pool, ck_x86_blocks(rows, CK_X86_ROWS), ck_x86_layernorm_rows, &c);
}

/* dx of rows [r0, r1): the reference's row loop, CK_X86_RG rows at a time:
 * the two float sums per row (sum g, sum g xhat) in j order with the rows'
 * chains interleaved, then dx += rs (g - gmean - xhat gxmean) in 16 lanes. */
static void ck_x86_layernorm_bwd_rows(void *ctx, int64_t chunk, int tid) {
  const CkX86Norm *c = ctx;
  int64_t r0 = chunk * CK_X86_ROWS, r1 = r0 + CK_X86_ROWS < c->rows ? r0 + CK_X86_ROWS : c->rows, n = c->n;
  const float *w = c->weight;
  (void)tid;
  for (int64_t g0 = r0; g0 < r1; g0 += CK_X86_RG) {
    int nr = r1 - g0 < CK_X86_RG ? (int)(r1 - g0) : CK_X86_RG;
    const float *xr[CK_X86_RG], *dyr[CK_X86_RG];
    float m[CK_X86_RG], rs[CK_X86_RG], gm[CK_X86_RG], gxm[CK_X86_RG];
    for (int r = 0; r < CK_X86_RG; r++) {
      int64_t row = g0 + (r < nr ? r : 0);
      xr[r] = c->x + row * n, dyr[r] = c->dy + row * n;
      m[r] = c->cmean[row], rs[r] = c->crstd[row];
    }
    {
      const float *x0 = xr[0], *x1 = xr[1], *x2 = xr[2], *x3 = xr[3];
      const float *y0 = dyr[0], *y1 = dyr[1], *y2 = dyr[2], *y3 = dyr[3];
      float m0 = m[0], m1 = m[1], m2 = m[2], m3 = m[3], rs0 = rs[0], rs1 = rs[1], rs2 = rs[2], rs3 = rs[3];
      float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f, b0 = 0.0f, b1 = 0.0f, b2 = 0.0f, b3 = 0.0f;
      for (int64_t j = 0; j < n; j++) {
        float wj = w ? w[j] : 1.0f;
        float g0 = w ? y0[j] * wj : y0[j], g1 = w ? y1[j] * wj : y1[j];
        float g2 = w ? y2[j] * wj : y2[j], g3 = w ? y3[j] * wj : y3[j];
        a0 += g0, a1 += g1, a2 += g2, a3 += g3;
        b0 += g0 * ((x0[j] - m0) * rs0);
        b1 += g1 * ((x1[j] - m1) * rs1);
        b2 += g2 * ((x2[j] - m2) * rs2);
        b3 += g3 * ((x3[j] - m3) * rs3);
      }
      gm[0] = a0, gm[1] = a1, gm[2] = a2, gm[3] = a3;
      gxm[0] = b0, gxm[1] = b1, gxm[2] = b2, gxm[3] = b3;
    }
    for (int r = 0; r < nr; r++) {
      float *dxr = c->dx + (g0 + r) * n, mr = m[r], rr = rs[r], a = gm[r] / (float)n, bx = gxm[r] / (float)n;
      int64_t j = 0;
      for (; j + CK_X86_LANES <= n; j += CK_X86_LANES) {
        CkX86Vec16 xhat = (CK_X86_VLOAD16(xr[r] + j) - mr) * rr, g = CK_X86_VLOAD16(dyr[r] + j);
        if (w) g *= CK_X86_VLOAD16(w + j);
        CK_X86_VSTORE16(dxr + j, CK_X86_VLOAD16(dxr + j) + rr * (g - a - xhat * bx));
      }
      for (; j < n; j++) {
        float xhat = (xr[r][j] - mr) * rr, g = w ? dyr[r][j] * w[j] : dyr[r][j];
        dxr[j] += rr * (g - a - xhat * bx);
      }
    }
  }
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
