/* rt-min/x86/ck_x86_kernels.c - pooled attention forward and backward,
 * bitwise equal to the reference kernels (see ck_x86_kernels.h). */
#include "ck_x86_kernels.h"

#include <math.h>
#include <stddef.h>

#include "ck_grad.h"
#include "ck_kernels.h"
#include "ck_x86_math.h"

/* y[0..n) += a * x[0..n): whole blocks of 16 lanes (a constant trip count,
 * so -O2 vectorizes them) then a scalar tail. Each y[j] gets exactly one
 * multiply and one add, as in the reference loops (-ffp-contract=off). */
static void ck_x86_axpy(float *restrict y, float a, const float *restrict x, int64_t n) {
  int64_t j = 0;
  for (; j + CK_X86_LANES <= n; j += CK_X86_LANES)
    for (int l = 0; l < CK_X86_LANES; l++) y[j + l] += a * x[j + l];
  for (; j < n; j++) y[j] += a * x[j];
}

/* xt (cols x ld) = x (rows x cols, rows ldx apart)^T, columns rows..ld-1
 * zeroed: keys become contiguous per feature (padded to whole 16-lane
 * blocks), so a query's scores are lanes over keys, each key's sum still
 * in d order. */
static void ck_x86_transpose(float *restrict xt, const float *restrict x, int64_t ldx, int64_t rows,
                             int64_t cols, int64_t ld) {
  int64_t r0 = 0;
  /* whole blocks of 16 rows: each feature's 16 values one vector store
   * (a gather), instead of 16 scalar stores a row stride apart */
  for (; r0 + CK_X86_LANES <= rows; r0 += CK_X86_LANES)
    for (int64_t c = 0; c < cols; c++)
      for (int l = 0; l < CK_X86_LANES; l++) xt[c * ld + r0 + l] = x[(r0 + l) * ldx + c];
  for (int64_t c = 0; c < cols; c++)
    for (int64_t r = rows; r < ld; r++) xt[c * ld + r] = 0.0f;
  for (int64_t r = r0; r < rows; r++)
    for (int64_t c = 0; c < cols; c++) xt[c * ld + r] = x[r * ldx + c];
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

/* Where the operands live (ck_x86_attention_heads_f32): lay[4 * X + 0..3]
 * = element offset, batch stride, head stride, row stride of operand X. */
enum { CK_X86_AQ, CK_X86_AK, CK_X86_AV, CK_X86_AO, CK_X86_ADQ, CK_X86_ADK, CK_X86_ADV, CK_X86_ANOPS };

typedef struct CkX86Attn {
  CkPool *pool;
  float *out, *dq, *dk, *dv;
  const float *dout, *q, *k, *v;
  int64_t T, S, D, Dv, Sp; /* Sp: S rounded up to whole 16-lane blocks */
  int causal;
  float scale;
  size_t scratch_bytes;
  int64_t heads;                  /* items are (batch, head) pairs, head fastest */
  int64_t lay[4 * CK_X86_ANOPS]; /* see the enum */
} CkX86Attn;

/* Element offset of item b's first row in operand X. */
static int64_t ck_x86_at(const CkX86Attn *c, int X, int64_t b) {
  const int64_t *l = c->lay + 4 * X;
  return l[0] + (b / c->heads) * l[1] + (b % c->heads) * l[2];
}

/* Row stride of operand X. */
static int64_t ck_x86_ld(const CkX86Attn *c, int X) { return c->lay[4 * X + 3]; }

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
static void ck_x86_tile_scores(float *sc, int64_t ldsc, const float *a, int64_t lda, int64_t D,
                               const float *bt, int64_t Sp, const CkX86Tile *t, float scale) {
  const float *a0 = a + t->row[0] * lda, *a1 = a + t->row[1] * lda, *a2 = a + t->row[2] * lda,
              *a3 = a + t->row[3] * lda;
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

/* Sum of 16 lane partials in a fixed tree (8, 4, 2, 1 apart): the same
 * order for every call, so every thread count gives the same bits. */
static float ck_x86_tree16(float *s) {
  for (int h = CK_X86_LANES / 2; h >= 1; h /= 2)
    for (int l = 0; l < h; l++) s[l] += s[l + h];
  return s[0];
}

/* 16 int32 lanes: what a comparison of two CkX86Vec16 gives (-1 / 0). */
typedef int32_t CkX86Vec16i __attribute__((vector_size(64)));

/* Lane-wise max of two 16-float values as compare and select on the bits
 * (C has no vector `?:`): lane x where x > m, else m, so NaN keys are
 * skipped exactly as by the reference's `if (x > m) m = x`. */
#define CK_X86_VMAX16(x, m)                                                                                  \
  ((CkX86Vec16)(((CkX86Vec16i)((x) > (m)) & (CkX86Vec16i)(x)) | (~(CkX86Vec16i)((x) > (m)) & (CkX86Vec16i)(m))))

/* The 16 lanes of *v added in ck_x86_tree16's fixed tree (8, 4, 2, 1
 * apart), in registers with shuffles: the same bits as ck_x86_tree16 of
 * the stored lanes. Storing the vector and reading the lanes back as
 * floats, pairs and halves stalled store forwarding on every row, which
 * made the softmax ten times slower than its exps. */
static inline float ck_x86_vtree16(const CkX86Vec16 *v) {
  CkX86Vec16 s = *v;
  s += __builtin_shufflevector(s, s, 8, 9, 10, 11, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15);
  s += __builtin_shufflevector(s, s, 4, 5, 6, 7, 4, 5, 6, 7, 4, 5, 6, 7, 4, 5, 6, 7);
  s += __builtin_shufflevector(s, s, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3);
  s += __builtin_shufflevector(s, s, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1);
  return s[0];
}

/* The largest lane of *v (exact in any order; NaN lanes never win). */
static inline float ck_x86_vmax16(const CkX86Vec16 *v) {
  CkX86Vec16 m = *v, x;
  x = __builtin_shufflevector(m, m, 8, 9, 10, 11, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15);
  m = CK_X86_VMAX16(x, m);
  x = __builtin_shufflevector(m, m, 4, 5, 6, 7, 4, 5, 6, 7, 4, 5, 6, 7, 4, 5, 6, 7);
  m = CK_X86_VMAX16(x, m);
  x = __builtin_shufflevector(m, m, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3);
  m = CK_X86_VMAX16(x, m);
  x = __builtin_shufflevector(m, m, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1);
  m = CK_X86_VMAX16(x, m);
  return m[0];
}

/* The tiled paths' softmax of one row's je scores, vectorised over keys
 * (the reference's scalar expf loop was a tenth of a tiny_gpt step): the
 * max (exact in any order), p = ck_x86_expf(x - max) (<= 1 ulp, lanes over
 * keys) summed as 16 lane partials in j order then the fixed tree of
 * ck_x86_tree16, and p * (1 / sum) (a vector divide per block cost more
 * than the exps). Rounding-level from the reference; the keys
 * je..round16(je) are set to 0 (the tile buffers are whole 16-key blocks
 * wide). The padding is masked (not stored as -inf, whose narrow stores
 * under the block's wide load stalled store forwarding) and selected to 0,
 * never exp(-inf): that exp underflows through a subnormal product, and
 * the microcode assist for it was most of this function's time (tiny_gpt's
 * causal rows are half padding in their last block). Every reduction
 * stays in registers (ck_x86_vtree16). */
static inline void ck_x86_softmax_vec(float *p, int64_t je) {
  const CkX86Vec16i lane = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
  int64_t nb = ck_x86_round16(je);
  CkX86Vec16 vm = CK_X86_VSET16(-INFINITY), vs;
  float s[CK_X86_LANES];
  for (int64_t j = 0; j < nb; j += CK_X86_LANES) {
    CkX86Vec16 x = CK_X86_VLOAD16(p + j);
    int32_t left = je - j < CK_X86_LANES ? (int32_t)(je - j) : CK_X86_LANES;
    CkX86Vec16i key = lane < left; /* the last block's padding never wins */
    x = (CkX86Vec16)((key & (CkX86Vec16i)x) | (~key & (CkX86Vec16i)vm));
    vm = CK_X86_VMAX16(x, vm);
  }
  float m = ck_x86_vmax16(&vm);
  for (int l = 0; l < CK_X86_LANES; l++) s[l] = 0.0f;
  for (int64_t j = 0; j < nb; j += CK_X86_LANES)
    for (int l = 0; l < CK_X86_LANES; l++) {
      int key = j + l < je; /* the padding gets 0 without an exp */
      float e = ck_x86_expf(key ? p[j + l] - m : 0.0f);
      e = key ? e : 0.0f;
      p[j + l] = e;
      s[l] += e;
    }
  vs = CK_X86_VLOAD16(s);
  float inv = 1.0f / ck_x86_vtree16(&vs);
  for (int64_t j = 0; j < nb; j += CK_X86_LANES) CK_X86_VSTORE16(p + j, CK_X86_VLOAD16(p + j) * inv);
}

/* sum_j p[j] * d[j] for j < n: 16 lane partials in j order, then the tree. */
static inline float ck_x86_dot16(const float *p, const float *d, int64_t n) {
  const CkX86Vec16i lane = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
  CkX86Vec16 s = CK_X86_VSET16(0.0f);
  int64_t j = 0;
  for (; j + CK_X86_LANES <= n; j += CK_X86_LANES) s += CK_X86_VLOAD16(p + j) * CK_X86_VLOAD16(d + j);
  if (j < n) { /* the tail: lanes past n add +0, which leaves every lane's bits (it starts at +0) */
    CkX86Vec16i in = lane < (int32_t)(n - j);
    s += (CkX86Vec16)(in & (CkX86Vec16i)(CK_X86_VLOAD16(p + j) * CK_X86_VLOAD16(d + j)));
  }
  return ck_x86_vtree16(&s); /* in registers: the bits of ck_x86_tree16 */
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
  const float *qb = c->q + ck_x86_at(c, CK_X86_AQ, b), *vb = c->v + ck_x86_at(c, CK_X86_AV, b);
  float *ob = c->out + ck_x86_at(c, CK_X86_AO, b);
  int64_t ldq = ck_x86_ld(c, CK_X86_AQ), ldv = ck_x86_ld(c, CK_X86_AV), ldo = ck_x86_ld(c, CK_X86_AO);
  ck_x86_transpose(kt, c->k + ck_x86_at(c, CK_X86_AK, b), ck_x86_ld(c, CK_X86_AK), S, D, Sp);
  for (int64_t i0 = 0; i0 < T; i0 += CK_X86_TR) {
    CkX86Tile t = ck_x86_tile(i0, T, S, c->causal);
    ck_x86_tile_scores(p, Sp, qb, ldq, D, kt, Sp, &t, c->scale);
    for (int r = 0; r < t.nr; r++) ck_x86_softmax_vec(p + r * Sp, t.je[r]);
    for (int64_t db = 0; db < Dv; db += CK_X86_LANES) {
      CkX86Vec16 acc[CK_X86_TR];
      for (int r = 0; r < CK_X86_TR; r++) acc[r] = CK_X86_VSET16(0.0f);
      ck_x86_tile_wsum(acc, p, Sp, vb + db, ldv, &t);
      for (int r = 0; r < t.nr; r++) CK_X86_VSTORE16(ob + t.row[r] * ldo + db, acc[r]);
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
  const float *qb = c->q + ck_x86_at(c, CK_X86_AQ, b), *vb = c->v + ck_x86_at(c, CK_X86_AV, b);
  float *ob = c->out + ck_x86_at(c, CK_X86_AO, b);
  int64_t ldq = ck_x86_ld(c, CK_X86_AQ), ldv = ck_x86_ld(c, CK_X86_AV), ldo = ck_x86_ld(c, CK_X86_AO);
  ck_x86_transpose(kt, c->k + ck_x86_at(c, CK_X86_AK, b), ck_x86_ld(c, CK_X86_AK), S, D, c->Sp);
  for (int64_t i = 0; i < T; i++) {
    int64_t jend = ck_x86_jend(i, T, S, c->causal);
    float m = -INFINITY, s = 0.0f, *oi = ob + i * ldo;
    ck_x86_scores(sc, qb + i * ldq, kt, D, c->Sp, jend);
    for (int64_t j = 0; j < jend; j++) {
      sc[j] *= c->scale;
      if (sc[j] > m) m = sc[j];
    }
    for (int64_t j = 0; j < jend; j++) {
      sc[j] = expf(sc[j] - m);
      s += sc[j];
    }
    for (int64_t d = 0; d < Dv; d++) oi[d] = 0.0f;
    for (int64_t j = 0; j < jend; j++) ck_x86_axpy(oi, sc[j] / s, vb + j * ldv, Dv);
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

/* The reference's forward (rt-min/ck_kernels.c, ck_attention_f32) on the
 * layout of c, operation for operation, one item after another: what runs
 * without a pool or scratch, bitwise the reference. scratch: S floats. */
static void ck_x86_attention_ref(const CkX86Attn *c, int64_t items, float *scratch) {
  int64_t T = c->T, S = c->S, D = c->D, Dv = c->Dv;
  for (int64_t b = 0; b < items; b++) {
    const float *qb = c->q + ck_x86_at(c, CK_X86_AQ, b), *kb = c->k + ck_x86_at(c, CK_X86_AK, b);
    const float *vb = c->v + ck_x86_at(c, CK_X86_AV, b);
    float *ob = c->out + ck_x86_at(c, CK_X86_AO, b);
    for (int64_t i = 0; i < T; i++) {
      const float *qi = qb + i * ck_x86_ld(c, CK_X86_AQ);
      float *oi = ob + i * ck_x86_ld(c, CK_X86_AO), m = -INFINITY, s = 0.0f;
      int64_t jend = ck_x86_jend(i, T, S, c->causal);
      for (int64_t j = 0; j < jend; j++) {
        const float *kj = kb + j * ck_x86_ld(c, CK_X86_AK);
        float acc = 0.0f;
        for (int64_t d = 0; d < D; d++) acc += qi[d] * kj[d];
        acc *= c->scale;
        scratch[j] = acc;
        if (acc > m) m = acc;
      }
      for (int64_t j = 0; j < jend; j++) {
        scratch[j] = expf(scratch[j] - m);
        s += scratch[j];
      }
      for (int64_t d = 0; d < Dv; d++) oi[d] = 0.0f;
      for (int64_t j = 0; j < jend; j++) {
        const float *vj = vb + j * ck_x86_ld(c, CK_X86_AV);
        float pj = scratch[j] / s;
        for (int64_t d = 0; d < Dv; d++) oi[d] += pj * vj[d];
      }
    }
  }
}

/* Both entry points: the layout filled in, scratch sized, one chunk per
 * (batch, head) item. */
static void ck_x86_attention_run(CkX86Attn *c, int64_t items, float *scratch) {
  c->scratch_bytes = (size_t)(c->D * c->Sp + CK_X86_TR * c->Sp) * sizeof(float);
  if (items <= 0 || c->T <= 0) return;
  if (!ck_x86_scratch_ready(c->pool, c->scratch_bytes)) {
    ck_x86_attention_ref(c, items, scratch);
    return;
  }
  ck_pool_parallel_for(c->pool, items, ck_x86_attention_item, c);
}

/* Contiguous [batch, T, D] operands: the layout with one head. */
static void ck_x86_attention_dense(CkX86Attn *c) {
  const int64_t rows[CK_X86_ANOPS] = {c->T, c->S, c->S, c->T, c->T, c->S, c->S};
  const int64_t cols[CK_X86_ANOPS] = {c->D, c->D, c->Dv, c->Dv, c->D, c->D, c->Dv};
  c->heads = 1;
  for (int x = 0; x < CK_X86_ANOPS; x++) {
    c->lay[4 * x] = 0, c->lay[4 * x + 1] = rows[x] * cols[x];
    c->lay[4 * x + 2] = 0, c->lay[4 * x + 3] = cols[x];
  }
}

void ck_x86_attention_f32(CkPool *pool, float *out, const float *q, const float *k, const float *v,
                          int64_t batch, int64_t T, int64_t S, int64_t D, int64_t Dv, int causal,
                          float scale, float *scratch) {
  CkX86Attn c = {pool, out, NULL, NULL, NULL, NULL, q, k, v, T, S, D, Dv, ck_x86_round16(S), causal, scale,
                 0, 1, {0}};
  ck_x86_attention_dense(&c);
  ck_x86_attention_run(&c, batch, scratch);
}

void ck_x86_attention_heads_f32(CkPool *pool, float *out, const float *q, const float *k, const float *v,
                                const int64_t *lay, int64_t batch, int64_t heads, int64_t T, int64_t S,
                                int64_t D, int64_t Dv, int causal, float scale, float *scratch) {
  CkX86Attn c = {pool, out, NULL, NULL, NULL, NULL, q, k, v, T, S, D, Dv, ck_x86_round16(S), causal, scale,
                 0, heads, {0}};
  if (heads <= 0) return;
  for (int x = 0; x < 4 * (CK_X86_AO + 1); x++) c.lay[x] = lay[x];
  ck_x86_attention_run(&c, batch * heads, scratch);
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
  const float *qb = c->q + ck_x86_at(c, CK_X86_AQ, b), *kb = c->k + ck_x86_at(c, CK_X86_AK, b);
  const float *gb = c->dout + ck_x86_at(c, CK_X86_AO, b);
  int64_t ldq = ck_x86_ld(c, CK_X86_AQ), ldk = ck_x86_ld(c, CK_X86_AK), ldg = ck_x86_ld(c, CK_X86_AO);
  ck_x86_transpose(kt, kb, ldk, S, D, Sp);
  ck_x86_transpose(vt, c->v + ck_x86_at(c, CK_X86_AV, b), ck_x86_ld(c, CK_X86_AV), S, Dv, Sp);
  for (int64_t i0 = 0; i0 < T; i0 += CK_X86_TR) {
    CkX86Tile t = ck_x86_tile(i0, T, S, c->causal);
    ck_x86_tile_scores(p, Sp, qb, ldq, D, kt, Sp, &t, c->scale);
    ck_x86_tile_scores(ds, Sp, gb, ldg, Dv, vt, Sp, &t, 1.0f);
    for (int r = 0; r < t.nr; r++) {
      float *pr = p + r * Sp, *dr = ds + r * Sp, pdp;
      ck_x86_softmax_vec(pr, t.je[r]);
      pdp = ck_x86_dot16(pr, dr, t.je[r]);
      for (int64_t j = 0; j < t.je[r]; j++) dr[j] = pr[j] * (dr[j] - pdp);
    }
    if (c->dv)
      ck_x86_tile_scatter(c->dv + ck_x86_at(c, CK_X86_ADV, b), ck_x86_ld(c, CK_X86_ADV), p, Sp, 1.0f, gb, ldg,
                          Dv, &t);
    if (c->dk)
      ck_x86_tile_scatter(c->dk + ck_x86_at(c, CK_X86_ADK, b), ck_x86_ld(c, CK_X86_ADK), ds, Sp, c->scale, qb,
                          ldq, D, &t);
    if (c->dq)
      for (int64_t db = 0; db < D; db += CK_X86_LANES) {
        CkX86Vec16 acc[CK_X86_TR];
        for (int r = 0; r < CK_X86_TR; r++) acc[r] = CK_X86_VSET16(0.0f);
        ck_x86_tile_wsum(acc, ds, Sp, kb + db, ldk, &t);
        for (int r = 0; r < t.nr; r++) {
          float *dqi = c->dq + ck_x86_at(c, CK_X86_ADQ, b) + t.row[r] * ck_x86_ld(c, CK_X86_ADQ) + db;
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
  const float *qb = c->q + ck_x86_at(c, CK_X86_AQ, b), *kb = c->k + ck_x86_at(c, CK_X86_AK, b);
  const float *gb = c->dout + ck_x86_at(c, CK_X86_AO, b);
  int64_t ldk = ck_x86_ld(c, CK_X86_AK);
  ck_x86_transpose(kt, kb, ldk, S, D, Sp);
  ck_x86_transpose(vt, c->v + ck_x86_at(c, CK_X86_AV, b), ck_x86_ld(c, CK_X86_AV), S, Dv, Sp);
  for (int64_t i = 0; i < T; i++) {
    const float *qi = qb + i * ck_x86_ld(c, CK_X86_AQ), *gi = gb + i * ck_x86_ld(c, CK_X86_AO);
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
      for (int64_t j = 0; j < jend; j++)
        ck_x86_axpy(c->dv + ck_x86_at(c, CK_X86_ADV, b) + j * ck_x86_ld(c, CK_X86_ADV), p[j], gi, Dv);
    if (c->dk)
      for (int64_t j = 0; j < jend; j++)
        ck_x86_axpy(c->dk + ck_x86_at(c, CK_X86_ADK, b) + j * ck_x86_ld(c, CK_X86_ADK), c->scale * dp[j], qi, D);
    if (c->dq) {
      float *dqi = c->dq + ck_x86_at(c, CK_X86_ADQ, b) + i * ck_x86_ld(c, CK_X86_ADQ);
      for (int64_t d = 0; d < D; d++) acc[d] = 0.0f;
      for (int64_t j = 0; j < jend; j++) ck_x86_axpy(acc, dp[j], kb + j * ldk, D);
      for (int64_t d = 0; d < D; d++) dqi[d] += c->scale * acc[d];
    }
  }
}

/* The reference's backward (rt-min/ck_grad.c, ck_attention_backward_f32)
 * on the layout of c, operation for operation: the path without a pool or
 * scratch, bitwise the reference. scratch: 2*S floats. */
static void ck_x86_attention_bwd_ref(const CkX86Attn *c, int64_t items, float *scratch) {
  int64_t T = c->T, S = c->S, D = c->D, Dv = c->Dv;
  int64_t ldk = ck_x86_ld(c, CK_X86_AK), ldv = ck_x86_ld(c, CK_X86_AV);
  float *p = scratch, *dp = scratch + S;
  for (int64_t b = 0; b < items; b++) {
    const float *qb = c->q + ck_x86_at(c, CK_X86_AQ, b), *kb = c->k + ck_x86_at(c, CK_X86_AK, b);
    const float *vb = c->v + ck_x86_at(c, CK_X86_AV, b), *gb = c->dout + ck_x86_at(c, CK_X86_AO, b);
    for (int64_t i = 0; i < T; i++) {
      const float *qi = qb + i * ck_x86_ld(c, CK_X86_AQ), *gi = gb + i * ck_x86_ld(c, CK_X86_AO);
      int64_t jend = ck_x86_jend(i, T, S, c->causal);
      float m = -INFINITY, s = 0.0f, pdp = 0.0f;
      for (int64_t j = 0; j < jend; j++) {
        const float *kj = kb + j * ldk;
        float acc = 0.0f;
        for (int64_t d = 0; d < D; d++) acc += qi[d] * kj[d];
        acc *= c->scale;
        p[j] = acc;
        if (acc > m) m = acc;
      }
      for (int64_t j = 0; j < jend; j++) {
        p[j] = expf(p[j] - m);
        s += p[j];
      }
      for (int64_t j = 0; j < jend; j++) {
        const float *vj = vb + j * ldv;
        float acc = 0.0f;
        p[j] /= s;
        for (int64_t d = 0; d < Dv; d++) acc += gi[d] * vj[d];
        dp[j] = acc;
        pdp += p[j] * acc;
      }
      for (int64_t j = 0; j < jend; j++) dp[j] = p[j] * (dp[j] - pdp);
      if (c->dv)
        for (int64_t j = 0; j < jend; j++) {
          float *dvj = c->dv + ck_x86_at(c, CK_X86_ADV, b) + j * ck_x86_ld(c, CK_X86_ADV);
          for (int64_t d = 0; d < Dv; d++) dvj[d] += p[j] * gi[d];
        }
      if (c->dk)
        for (int64_t j = 0; j < jend; j++) {
          float *dkj = c->dk + ck_x86_at(c, CK_X86_ADK, b) + j * ck_x86_ld(c, CK_X86_ADK), cj = c->scale * dp[j];
          for (int64_t d = 0; d < D; d++) dkj[d] += cj * qi[d];
        }
      if (c->dq) {
        float *dqi = c->dq + ck_x86_at(c, CK_X86_ADQ, b) + i * ck_x86_ld(c, CK_X86_ADQ);
        for (int64_t d = 0; d < D; d++) {
          float acc = 0.0f;
          for (int64_t j = 0; j < jend; j++) acc += dp[j] * kb[j * ldk + d];
          dqi[d] += c->scale * acc;
        }
      }
    }
  }
}

/* Both backward entry points: scratch = k^T and v^T (padded), then p and
 * dp / ds: 2 tiles of 4 rows, or 2 rows + a D accumulator in the
 * row-at-a-time path; one chunk per (batch, head) item. */
static void ck_x86_attention_bwd_run(CkX86Attn *c, int64_t items, float *scratch) {
  c->scratch_bytes = (size_t)(c->D * c->Sp + c->Dv * c->Sp + 2 * CK_X86_TR * c->Sp + c->D) * sizeof(float);
  if (items <= 0 || c->T <= 0) return;
  if (!ck_x86_scratch_ready(c->pool, c->scratch_bytes)) {
    ck_x86_attention_bwd_ref(c, items, scratch);
    return;
  }
  ck_pool_parallel_for(c->pool, items, ck_x86_attention_bwd_item, c);
}

void ck_x86_attention_backward_f32(CkPool *pool, float *dq, float *dk, float *dv, const float *dout,
                                   const float *q, const float *k, const float *v, int64_t batch,
                                   int64_t T, int64_t S, int64_t D, int64_t Dv, int causal, float scale,
                                   float *scratch) {
  CkX86Attn c = {pool, NULL, dq, dk, dv, dout, q, k, v, T, S, D, Dv, ck_x86_round16(S), causal, scale,
                 0, 1, {0}};
  ck_x86_attention_dense(&c);
  ck_x86_attention_bwd_run(&c, batch, scratch);
}

void ck_x86_attention_heads_backward_f32(CkPool *pool, float *dq, float *dk, float *dv, const float *dout,
                                         const float *q, const float *k, const float *v, const int64_t *lay,
                                         int64_t batch, int64_t heads, int64_t T, int64_t S, int64_t D,
                                         int64_t Dv, int causal, float scale, float *scratch) {
  CkX86Attn c = {pool, NULL, dq, dk, dv, dout, q, k, v, T, S, D, Dv, ck_x86_round16(S), causal, scale,
                 0, heads, {0}};
  if (heads <= 0) return;
  for (int x = 0; x < 4 * CK_X86_ANOPS; x++) c.lay[x] = lay[x];
  ck_x86_attention_bwd_run(&c, batch * heads, scratch);
}


typedef struct CkX86Norm {
  float *out, *mean, *rstd, *dx, *dweight, *dbias;
  const float *x, *weight, *bias, *dy, *cmean, *crstd;
  int64_t rows, n;
  float eps;
  int set;          /* the fused backward: outputs set, not accumulated */
  const float *res; /* the fused backward: a residual gradient added to dx (or NULL) */
} CkX86Norm;

/* 16 double lane partials added in the fixed tree of ck_x86_tree16. */
static double ck_x86_tree16d(double *s) {
  for (int h = CK_X86_LANES / 2; h >= 1; h /= 2)
    for (int l = 0; l < h; l++) s[l] += s[l + h];
  return s[0];
}

/* One row's mean and rstd: the reference's double sums (sum x, then
 * sum (x - mu)^2), each as 16 lane partials in j order (lane j % 16) added
 * in a fixed tree, so they vectorise; the reference's single chains were
 * latency-bound. Rounding-level from the reference (double sums, rounded
 * to float at the end: nearly always the same bits). */
static void ck_x86_ln_stats(const float *x, int64_t n, float eps, float *m, float *rs) {
  double s[CK_X86_LANES], v[CK_X86_LANES], mu, sum;
  int64_t j = 0, t;
  for (int l = 0; l < CK_X86_LANES; l++) s[l] = v[l] = 0.0;
  for (; j + CK_X86_LANES <= n; j += CK_X86_LANES)
    for (int l = 0; l < CK_X86_LANES; l++) s[l] += (double)x[j + l];
  for (t = j; t < n; t++) s[t - j] += (double)x[t];
  sum = ck_x86_tree16d(s);
  mu = sum / (double)n;
  for (j = 0; j + CK_X86_LANES <= n; j += CK_X86_LANES)
    for (int l = 0; l < CK_X86_LANES; l++) {
      double d = (double)x[j + l] - mu;
      v[l] += d * d;
    }
  for (t = j; t < n; t++) {
    double d = (double)x[t] - mu;
    v[t - j] += d * d;
  }
  *m = (float)(sum / (double)n);
  *rs = (float)(1.0 / sqrt(ck_x86_tree16d(v) / (double)n + (double)eps));
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
 * each row's statistics, then the row normalised. */
static void ck_x86_layernorm_rows(void *ctx, int64_t chunk, int tid) {
  const CkX86Norm *c = ctx;
  int64_t r0 = chunk * CK_X86_ROWS, r1 = r0 + CK_X86_ROWS < c->rows ? r0 + CK_X86_ROWS : c->rows, n = c->n;
  (void)tid;
  for (int64_t r = r0; r < r1; r++) {
    float m, rs;
    ck_x86_ln_stats(c->x + r * n, n, c->eps, &m, &rs);
    ck_x86_ln_apply(c->out + r * n, c->x + r * n, c->weight, c->bias, n, m, rs);
    if (c->mean) c->mean[r] = m;
    if (c->rstd) c->rstd[r] = rs;
  }
}

static int64_t ck_x86_blocks(int64_t n, int64_t block) { return (n + block - 1) / block; }

void ck_x86_layernorm_f32(CkPool *pool, float *out, float *mean, float *rstd, const float *x,
                          const float *weight, const float *bias, int64_t rows, int64_t n, float eps) {
  CkX86Norm c = {out, mean, rstd, NULL, NULL, NULL, x, weight, bias, NULL, NULL, NULL, rows, n, eps, 0, NULL};
  if (rows <= 0) return;
  ck_pool_parallel_for(pool, ck_x86_blocks(rows, CK_X86_ROWS), ck_x86_layernorm_rows, &c);
}

/* dx of one row r with its statistics (mr, rr), the reference's row loop:
 * the two float sums per row (sum g, sum g xhat, g = dy w) as 16 lane
 * partials in j order added in ck_x86_tree16 (vectorised; rounding-level
 * from the reference's single chains), then dx += rs (g - gmean - xhat
 * gxmean) in 16 lanes; with `set`, dx = 0 + (...): the bits of adding into
 * a zeroed dx, without reading it; with a residual row too (set only),
 * dx = res + (0 + (...)): the bits of adding that dx to res afterwards. */
static void ck_x86_ln_bwd_row(const CkX86Norm *c, int64_t r, float mr, float rr, int set) {
  const float *resr = c->res ? c->res + r * c->n : NULL;
  const int64_t n = c->n;
  const float *w = c->weight, *xr = c->x + r * n, *dyr = c->dy + r * n;
  float *dxr = c->dx + r * n, sa[CK_X86_LANES], sb[CK_X86_LANES];
  int64_t j = 0, t;
  for (int l = 0; l < CK_X86_LANES; l++) sa[l] = sb[l] = 0.0f;
  for (; j + CK_X86_LANES <= n; j += CK_X86_LANES)
    for (int l = 0; l < CK_X86_LANES; l++) {
      float g = w ? dyr[j + l] * w[j + l] : dyr[j + l];
      sa[l] += g;
      sb[l] += g * ((xr[j + l] - mr) * rr);
    }
  for (t = j; t < n; t++) {
    float g = w ? dyr[t] * w[t] : dyr[t];
    sa[t - j] += g;
    sb[t - j] += g * ((xr[t] - mr) * rr);
  }
  float a = ck_x86_tree16(sa) / (float)n, bx = ck_x86_tree16(sb) / (float)n;
  for (j = 0; j + CK_X86_LANES <= n; j += CK_X86_LANES) {
    CkX86Vec16 xhat = (CK_X86_VLOAD16(xr + j) - mr) * rr, g = CK_X86_VLOAD16(dyr + j);
    CkX86Vec16 base = CK_X86_VSET16(0.0f), y;
    if (!set) base = CK_X86_VLOAD16(dxr + j);
    if (w) g *= CK_X86_VLOAD16(w + j);
    y = base + rr * (g - a - xhat * bx);
    if (resr) y = CK_X86_VLOAD16(resr + j) + y;
    CK_X86_VSTORE16(dxr + j, y);
  }
  for (; j < n; j++) {
    float xhat = (xr[j] - mr) * rr, g = w ? dyr[j] * w[j] : dyr[j];
    float y = (set ? 0.0f : dxr[j]) + rr * (g - a - xhat * bx);
    dxr[j] = resr ? resr[j] + y : y;
  }
}

/* dx of rows [r0, r1) from the saved statistics, accumulated. */
static void ck_x86_layernorm_bwd_rows(void *ctx, int64_t chunk, int tid) {
  const CkX86Norm *c = ctx;
  int64_t r0 = chunk * CK_X86_ROWS, r1 = r0 + CK_X86_ROWS < c->rows ? r0 + CK_X86_ROWS : c->rows;
  (void)tid;
  for (int64_t r = r0; r < r1; r++) ck_x86_ln_bwd_row(c, r, c->cmean[r], c->crstd[r], 0);
}

/* Rows [r0, r1) of the fused backward: each row's statistics as the
 * forward computes them (saved for the column pass), then dx set. */
static void ck_x86_layernorm_bwd_set_rows(void *ctx, int64_t chunk, int tid) {
  const CkX86Norm *c = ctx;
  int64_t r0 = chunk * CK_X86_ROWS, r1 = r0 + CK_X86_ROWS < c->rows ? r0 + CK_X86_ROWS : c->rows;
  (void)tid;
  for (int64_t r = r0; r < r1; r++) {
    float m, rs;
    ck_x86_ln_stats(c->x + r * c->n, c->n, c->eps, &m, &rs);
    c->mean[r] = m;
    c->rstd[r] = rs;
    if (c->dx) ck_x86_ln_bwd_row(c, r, m, rs, 1);
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
  if (j1 - j0 == CK_X86_COLS && CK_X86_COLS == CK_X86_LANES) { /* a whole block: the same sums in 16 lanes */
    CkX86Vec16 vw = CK_X86_VSET16(0.0f), vb = vw;
    for (int64_t r = 0; r < c->rows; r++) {
      const float *dyr = c->dy + r * n + j0, *xr = c->x + r * n + j0;
      CkX86Vec16 d = CK_X86_VLOAD16(dyr);
      if (c->dweight) vw += d * ((CK_X86_VLOAD16(xr) - c->cmean[r]) * c->crstd[r]);
      if (c->dbias) vb += d;
    }
    CK_X86_VSTORE16(aw, vw);
    CK_X86_VSTORE16(ab, vb);
  } else {
    for (int64_t r = 0; r < c->rows; r++) {
      const float *dyr = c->dy + r * n + j0, *xr = c->x + r * n + j0;
      float m = c->cmean[r], rs = c->crstd[r];
      if (c->dweight)
        for (int64_t j = 0; j < j1 - j0; j++) aw[j] += dyr[j] * ((xr[j] - m) * rs);
      if (c->dbias)
        for (int64_t j = 0; j < j1 - j0; j++) ab[j] += dyr[j];
    }
  }
  for (int64_t j = 0; j < j1 - j0; j++) { /* set: 0 + sum, the bits of adding into zeros */
    if (c->dweight) c->dweight[j0 + j] = (c->set ? 0.0f : c->dweight[j0 + j]) + aw[j];
    if (c->dbias) c->dbias[j0 + j] = (c->set ? 0.0f : c->dbias[j0 + j]) + ab[j];
  }
}

void ck_x86_layernorm_backward_f32(CkPool *pool, float *dx, float *dweight, float *dbias, const float *dy,
                                   const float *x, const float *weight, const float *mean,
                                   const float *rstd, int64_t rows, int64_t n) {
  CkX86Norm c = {NULL, NULL, NULL, dx, dweight, dbias, x, weight, NULL, dy, mean, rstd, rows, n, 0.0f, 0, NULL};
  if (rows <= 0 || n <= 0) {
    ck_layernorm_backward_f32(dx, dweight, dbias, dy, x, weight, mean, rstd, rows, n);
    return;
  }
  if (dx) ck_pool_parallel_for(pool, ck_x86_blocks(rows, CK_X86_ROWS), ck_x86_layernorm_bwd_rows, &c);
  if (dweight || dbias) ck_pool_parallel_for(pool, ck_x86_blocks(n, CK_X86_COLS), ck_x86_layernorm_bwd_cols, &c);
}

/* The backward in one call instead of recompute + memsets + accumulate +
 * a bias sum (+ the residual add): the row pass recomputes each row's
 * statistics (into mean and rstd, as ck_x86_layernorm_f32 would) and sets
 * dx (res + dx when res is given), the column pass sets dweight and dbias.
 * Every value is the one the step sequence gives, bit for bit (0 + v where
 * that sequence added v into zeros, then res + that). */
void ck_x86_layernorm_backward_set_f32(CkPool *pool, float *dx, float *dweight, float *dbias, float *mean,
                                       float *rstd, const float *dy, const float *x, const float *weight,
                                       const float *res, int64_t rows, int64_t n, float eps) {
  CkX86Norm c = {NULL, mean, rstd, dx, dweight, dbias, x, weight, NULL, dy, mean, rstd, rows, n, eps, 1, res};
  if (rows <= 0) return;
  ck_pool_parallel_for(pool, ck_x86_blocks(rows, CK_X86_ROWS), ck_x86_layernorm_bwd_set_rows, &c);
  if (n > 0 && (dweight || dbias)) ck_pool_parallel_for(pool, ck_x86_blocks(n, CK_X86_COLS), ck_x86_layernorm_bwd_cols, &c);
}

typedef struct CkX86Sum {
  float *out;
  const float *x;
  int64_t outer, n, inner, cblocks;
} CkX86Sum;

/* One (outer block, inner block) of the sum: lanes are the inner indices,
 * each lane's sum runs over j in order from 0, as in the reference. A block
 * is CK_X86_SUM_COLS = 4 x 16 columns, four independent vector chains: one
 * chain of adds (4 cycles each) over a bias gradient's 512 rows was
 * latency-bound at a quarter of the load rate. */
static void ck_x86_sum_block(void *ctx, int64_t chunk, int tid) {
  const CkX86Sum *c = ctx;
  const int64_t inner = c->inner;
  int64_t a0 = (chunk / c->cblocks) * CK_X86_ROWS, c0 = (chunk % c->cblocks) * CK_X86_SUM_COLS;
  int64_t a1 = a0 + CK_X86_ROWS < c->outer ? a0 + CK_X86_ROWS : c->outer;
  int64_t w = c0 + CK_X86_SUM_COLS < inner ? CK_X86_SUM_COLS : inner - c0;
  (void)tid;
  for (int64_t a = a0; a < a1; a++) {
    const float *p = c->x + a * c->n * inner + c0;
    float *o = c->out + a * inner + c0;
    int64_t l = 0;
    if (w == CK_X86_SUM_COLS) {
      CkX86Vec16 s0 = CK_X86_VSET16(0.0f), s1 = s0, s2 = s0, s3 = s0;
      for (int64_t j = 0; j < c->n; j++) {
        const float *q = p + j * inner;
        s0 += CK_X86_VLOAD16(q);
        s1 += CK_X86_VLOAD16(q + 16);
        s2 += CK_X86_VLOAD16(q + 32);
        s3 += CK_X86_VLOAD16(q + 48);
      }
      CK_X86_VSTORE16(o, s0);
      CK_X86_VSTORE16(o + 16, s1);
      CK_X86_VSTORE16(o + 32, s2);
      CK_X86_VSTORE16(o + 48, s3);
      continue;
    }
    for (; l + CK_X86_LANES <= w; l += CK_X86_LANES) {
      CkX86Vec16 sv = CK_X86_VSET16(0.0f);
      for (int64_t j = 0; j < c->n; j++) sv += CK_X86_VLOAD16(p + j * inner + l);
      CK_X86_VSTORE16(o + l, sv);
    }
    for (; l < w; l++) {
      float sl = 0.0f;
      for (int64_t j = 0; j < c->n; j++) sl += p[j * inner + l];
      o[l] = sl;
    }
  }
}

void ck_x86_sum_f32(CkPool *pool, float *out, const float *x, int64_t outer, int64_t n, int64_t inner) {
  CkX86Sum c = {out, x, outer, n, inner, ck_x86_blocks(inner, CK_X86_SUM_COLS)};
  if (outer <= 0 || inner <= 0) return;
  ck_pool_parallel_for(pool, ck_x86_blocks(outer, CK_X86_ROWS) * c.cblocks, ck_x86_sum_block, &c);
}
