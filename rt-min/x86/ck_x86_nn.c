/* rt-min/x86/ck_x86_nn.c - pooled, vectorised cross-entropy forward and
 * backward over long rows (see ck_x86_nn.h for the numerics). */
#include "ck_x86_nn.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

#include "ck_optim.h"
#include "ck_x86_kernels.h"

typedef int32_t CkX86Int16 __attribute__((vector_size(64)));

/* Lane-wise "mask ? a : b" for a comparison result mask (all ones or all
 * zeros per lane): C has no vector ?:, so a bitwise select. */
#define CK_X86_VSELECT(mask, a, b) ((CkX86Vec16)(((mask) & (CkX86Int16)(a)) | (~(mask) & (CkX86Int16)(b))))

/* Elements per chunk the row blocks aim at: whole rows, at least one. */
#define CK_X86_NN_CHUNK 16384

/* exp(x) for x in [-87.3, 0] (smaller x are clamped there: the result,
 * about 1e-38, is then below what any sum it joins can hold): n =
 * round(x log2 e), r = x - n ln2 in two steps (Cody-Waite), Cephes' minimax
 * polynomial for e^r, times 2^n built in the exponent bits. The same
 * operations lane by lane as ck_x86_exp1 below, so both give the same bits. */
#define CK_X86_EXP_LO -87.3f
#define CK_X86_LOG2E 1.44269504088896341f
#define CK_X86_LN2_HI 0.693359375f
#define CK_X86_LN2_LO -2.12194440e-4f
#define CK_X86_RND 12582912.0f /* 1.5 * 2^23: adding it rounds to an integer */
#define CK_X86_EXP_POLY(p, r)                                                                 \
  do {                                                                                        \
    p = 1.9875691500e-4f * r + 1.3981999507e-3f;                                              \
    p = p * r + 8.3334519073e-3f;                                                             \
    p = p * r + 4.1665795894e-2f;                                                             \
    p = p * r + 1.6666665459e-1f;                                                             \
    p = p * r + 5.0000001201e-1f;                                                             \
  } while (0)

static void ck_x86_exp16(float *out, const float *in, float shift) {
  CkX86Vec16 x = CK_X86_VLOAD16(in) - shift, n, r, p, y;
  CkX86Int16 e;
  x = CK_X86_VSELECT(x < CK_X86_EXP_LO, CK_X86_VSET16(CK_X86_EXP_LO), x);
  n = (x * CK_X86_LOG2E + CK_X86_RND) - CK_X86_RND;
  r = x - n * CK_X86_LN2_HI;
  r = r - n * CK_X86_LN2_LO;
  CK_X86_EXP_POLY(p, r);
  y = p * r * r + r + 1.0f;
  e = (__builtin_convertvector(n, CkX86Int16) + 127) << 23;
  CK_X86_VSTORE16(out, y * (CkX86Vec16)e);
}

/* One lane of ck_x86_exp16 (row tails and single elements). */
static float ck_x86_exp1(float x) {
  float n, r, p, y, two_n;
  int32_t e;
  if (x < CK_X86_EXP_LO) x = CK_X86_EXP_LO;
  n = (x * CK_X86_LOG2E + CK_X86_RND) - CK_X86_RND;
  r = x - n * CK_X86_LN2_HI;
  r = r - n * CK_X86_LN2_LO;
  CK_X86_EXP_POLY(p, r);
  y = p * r * r + r + 1.0f;
  e = ((int32_t)n + 127) << 23;
  memcpy(&two_n, &e, sizeof two_n);
  return y * two_n;
}

/* The 16 lanes of v added in a fixed tree (8, 4, 2, 1 apart). */
static float ck_x86_hsum16(const CkX86Vec16 *v) {
  float a[CK_X86_LANES];
  CK_X86_VSTORE16(a, *v);
  for (int h = CK_X86_LANES / 2; h > 0; h /= 2)
    for (int l = 0; l < h; l++) a[l] += a[l + h];
  return a[0];
}

/* The reference's log-sum-exp of one row (max, then expf summed in order):
 * used for rows with an infinity or a NaN, so those give c99's results. */
static float ck_x86_row_lse_ref(const float *x, int64_t V) {
  float m = -INFINITY, s = 0.0f;
  for (int64_t j = 0; j < V; j++)
    if (x[j] > m) m = x[j];
  for (int64_t j = 0; j < V; j++) s += expf(x[j] - m);
  return m + logf(s);
}

/* Log-sum-exp of one row: the max in 16 lanes (and x * 0, which is NaN
 * exactly when some x is infinite or NaN: then the reference path), then
 * sum exp(x - max) in 16 lanes plus a scalar tail, the lanes in a fixed tree.
 * *ref is set when the row took the reference path. */
static float ck_x86_row_lse(const float *x, int64_t V, int *ref) {
  CkX86Vec16 mv = CK_X86_VSET16(-INFINITY), z = CK_X86_VSET16(0.0f), sv = z;
  float m, mt = -INFINITY, zt = 0.0f, st = 0.0f, e[CK_X86_LANES], a[CK_X86_LANES];
  int64_t j = 0, vend = V / CK_X86_LANES * CK_X86_LANES;
  for (; j < vend; j += CK_X86_LANES) {
    CkX86Vec16 v = CK_X86_VLOAD16(x + j);
    mv = CK_X86_VSELECT(v > mv, v, mv);
    z += v * 0.0f;
  }
  for (; j < V; j++) {
    mt = x[j] > mt ? x[j] : mt;
    zt += x[j] * 0.0f;
  }
  *ref = ck_x86_hsum16(&z) + zt != 0.0f;
  if (*ref) return ck_x86_row_lse_ref(x, V);
  CK_X86_VSTORE16(a, mv);
  m = mt;
  for (int l = 0; l < CK_X86_LANES; l++) m = a[l] > m ? a[l] : m;
  for (j = 0; j < vend; j += CK_X86_LANES) {
    ck_x86_exp16(e, x + j, m);
    sv += CK_X86_VLOAD16(e);
  }
  for (; j < V; j++) st += ck_x86_exp1(x[j] - m);
  return m + logf(ck_x86_hsum16(&sv) + st);
}

/* sum_j (lse - x[j]) in 16 lanes plus a tail (label smoothing). */
static float ck_x86_row_smooth(const float *x, int64_t V, float lse) {
  CkX86Vec16 sv = CK_X86_VSET16(0.0f);
  float st = 0.0f;
  int64_t j = 0;
  for (; j + CK_X86_LANES <= V; j += CK_X86_LANES) sv += lse - CK_X86_VLOAD16(x + j);
  for (; j < V; j++) st += lse - x[j];
  return ck_x86_hsum16(&sv) + st;
}

typedef struct CkX86Xent {
  float *dlogits, *nll, *smooth;
  const float *logits;
  const int32_t *targets;
  int64_t rows, V, per;
  int32_t ignore_index;
  float e, c, on, off;
} CkX86Xent;

static int64_t ck_x86_xent_per(int64_t V) { return V >= CK_X86_NN_CHUNK ? 1 : CK_X86_NN_CHUNK / V; }

/* A target is usable when it is ignore_index or a class in [0, V). */
static int64_t ck_x86_bad_target(const int32_t *targets, int64_t rows, int64_t V, int32_t ignore_index) {
  for (int64_t r = 0; r < rows; r++) {
    int32_t t = targets[r];
    if (t != ignore_index && (t < 0 || (int64_t)t >= V)) return r;
  }
  return -1;
}

/* Forward rows of one chunk: nll[r] = lse - x[t] (and the smoothing sum);
 * ignored rows are skipped (the caller skips them too). */
static void ck_x86_xent_rows(void *ctx, int64_t chunk, int tid) {
  const CkX86Xent *c = ctx;
  int64_t r0 = chunk * c->per, r1 = r0 + c->per < c->rows ? r0 + c->per : c->rows;
  (void)tid;
  for (int64_t r = r0; r < r1; r++) {
    const float *x = c->logits + r * c->V;
    float lse;
    int ref;
    if (c->targets[r] == c->ignore_index) continue;
    lse = ck_x86_row_lse(x, c->V, &ref);
    c->nll[r] = lse - x[c->targets[r]];
    if (c->e != 0.0f) c->smooth[r] = ck_x86_row_smooth(x, c->V, lse);
  }
}

int64_t ck_x86_cross_entropy_f32(CkPool *pool, float *loss, const float *logits, const int32_t *targets,
                                 int64_t rows, int64_t V, int32_t ignore_index, float label_smoothing) {
  int64_t bad = ck_x86_bad_target(targets, rows, V, ignore_index), count = 0;
  double nll = 0.0, smooth = 0.0, e = (double)label_smoothing;
  float *buf = V > 0 && rows > 0 ? ck_pool_scratch(pool, -1, (size_t)(2 * rows) * sizeof(float)) : NULL;
  CkX86Xent c = {NULL, buf, buf ? buf + rows : NULL, logits, targets, rows, V, ck_x86_xent_per(V),
                 ignore_index, label_smoothing, 0.0f, 0.0f, 0.0f};
  if (bad >= 0) return bad;
  if (!buf) return ck_cross_entropy_f32(loss, logits, targets, rows, V, ignore_index, label_smoothing);
  ck_pool_parallel_for(pool, (rows + c.per - 1) / c.per, ck_x86_xent_rows, &c);
  for (int64_t r = 0; r < rows; r++) {
    if (targets[r] == ignore_index) continue;
    count++;
    nll += (double)c.nll[r];
    if (label_smoothing != 0.0f) smooth += (double)c.smooth[r];
  }
  if (count == 0) {
    *loss = NAN; /* mean over no rows: PyTorch's 0/0 */
    return -1;
  }
  *loss = (float)(((1.0 - e) * nll + e / (double)V * smooth) / (double)count);
  return -1;
}

/* Backward rows of one chunk: the row's lse again, then dx += c (p - off),
 * and at the target c (p - off - on), as the reference composes it. */
static void ck_x86_xent_bwd_rows(void *ctx, int64_t chunk, int tid) {
  const CkX86Xent *c = ctx;
  int64_t r0 = chunk * c->per, r1 = r0 + c->per < c->rows ? r0 + c->per : c->rows, V = c->V;
  float e[CK_X86_LANES];
  (void)tid;
  for (int64_t r = r0; r < r1; r++) {
    const float *x = c->logits + r * V;
    float *dx = c->dlogits + r * V, lse, dt;
    int32_t t = c->targets[r];
    int64_t j = 0;
    int ref;
    if (t == c->ignore_index) continue;
    lse = ck_x86_row_lse(x, V, &ref);
    if (ref) { /* the reference's expf path for rows with infinities / NaN */
      for (j = 0; j < V; j++) {
        float g = expf(x[j] - lse) - c->off;
        if (j == t) g -= c->on;
        dx[j] += c->c * g;
      }
      continue;
    }
    dt = dx[t];
    for (; j + CK_X86_LANES <= V; j += CK_X86_LANES) {
      ck_x86_exp16(e, x + j, lse);
      CK_X86_VSTORE16(dx + j, CK_X86_VLOAD16(dx + j) + c->c * (CK_X86_VLOAD16(e) - c->off));
    }
    for (; j < V; j++) dx[j] += c->c * (ck_x86_exp1(x[j] - lse) - c->off);
    dx[t] = dt + c->c * (ck_x86_exp1(x[t] - lse) - c->off - c->on);
  }
}

int64_t ck_x86_cross_entropy_backward_f32(CkPool *pool, float *dlogits, const float *dloss,
                                          const float *logits, const int32_t *targets, int64_t rows,
                                          int64_t V, int32_t ignore_index, float label_smoothing) {
  int64_t bad = ck_x86_bad_target(targets, rows, V, ignore_index), count = 0;
  CkX86Xent c = {dlogits, NULL, NULL, logits, targets, rows, V, ck_x86_xent_per(V), ignore_index,
                 label_smoothing, 0.0f, 0.0f, 0.0f};
  if (bad >= 0) return bad;
  if (!pool)
    return ck_cross_entropy_backward_f32(dlogits, dloss, logits, targets, rows, V, ignore_index,
                                         label_smoothing);
  for (int64_t r = 0; r < rows; r++)
    if (targets[r] != ignore_index) count++;
  if (count == 0 || V <= 0) return -1;
  c.c = *dloss / (float)count;
  c.on = (float)(1.0 - (double)label_smoothing);
  c.off = (float)((double)label_smoothing / (double)V);
  ck_pool_parallel_for(pool, (rows + c.per - 1) / c.per, ck_x86_xent_bwd_rows, &c);
  return -1;
}

/* ---- embedding gradient straight into grads ---------------------------------------------- */

typedef struct CkX86Emb {
  float *grads;
  const float *base, *dy;
  const int32_t *first, *order;
  int64_t V, C;
} CkX86Emb;

/* Rows [v0, v1) of the table: g = g + (base + e) (or g + e), e = 0 + the
 * dy rows that hit v in index order, 16 columns at a time in registers. */
static void ck_x86_emb_rows(void *ctx, int64_t chunk, int tid) {
  const CkX86Emb *c = ctx;
  int64_t v0 = chunk * CK_X86_EMB_ROWS, v1 = v0 + CK_X86_EMB_ROWS < c->V ? v0 + CK_X86_EMB_ROWS : c->V;
  const int64_t C = c->C;
  (void)tid;
  for (int64_t v = v0; v < v1; v++) {
    float *g = c->grads + v * C;
    const float *t = c->base ? c->base + v * C : NULL;
    int32_t h0 = c->first[v], h1 = c->first[v + 1];
    int64_t j = 0;
    for (; j + CK_X86_LANES <= C; j += CK_X86_LANES) {
      CkX86Vec16 e = CK_X86_VSET16(0.0f);
      for (int32_t h = h0; h < h1; h++) e += CK_X86_VLOAD16(c->dy + (int64_t)c->order[h] * C + j);
      if (t) e = CK_X86_VLOAD16(t + j) + e;
      CK_X86_VSTORE16(g + j, CK_X86_VLOAD16(g + j) + e);
    }
    for (; j < C; j++) {
      float e = 0.0f;
      for (int32_t h = h0; h < h1; h++) e += c->dy[(int64_t)c->order[h] * C + j];
      if (t) e = t[j] + e;
      g[j] = g[j] + e;
    }
  }
}

int64_t ck_x86_embedding_grad_f32(CkPool *pool, float *grads, const float *base, const float *dy,
                                  const int32_t *idx, int64_t n_idx, int64_t V, int64_t C, void *ws) {
  int32_t *first = (int32_t *)ws, *order = first + V + 1;
  int64_t i, v;
  for (i = 0; i < n_idx; i++)
    if (idx[i] < 0 || (int64_t)idx[i] >= V) return i;
  if (V <= 0 || C <= 0) return -1;
  /* a stable counting sort: the positions hitting row v, in index order,
   * are order[first[v] .. first[v+1]) */
  for (v = 0; v <= V; v++) first[v] = 0;
  for (i = 0; i < n_idx; i++) first[idx[i] + 1]++;
  for (v = 0; v < V; v++) first[v + 1] += first[v];
  for (i = 0; i < n_idx; i++) order[first[idx[i]]++] = (int32_t)i;
  for (v = V; v > 0; v--) first[v] = first[v - 1]; /* first[v] was advanced to the end of row v */
  first[0] = 0;
  {
    CkX86Emb c = {grads, base, dy, first, order, V, C};
    ck_pool_parallel_for(pool, (V + CK_X86_EMB_ROWS - 1) / CK_X86_EMB_ROWS, ck_x86_emb_rows, &c);
  }
  return -1;
}
