/* rt-min/x86/ck_x86_conv.c - conv2d as im2col + the pooled GEMM, and pooled
 * max pooling (see ck_x86_conv.h for the layout and the numerics). */
#include "ck_x86_conv.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

#include "ck_gemm.h"
#include "ck_grad.h"
#include "ck_kernels.h"

/* dx columns gathered per pass of col2im (a stack block, no scratch). */
#define CK_X86_CONV_WBLOCK 256
/* Lanes of the conv bias gradient's sum (a power of two). */
#define CK_X86_DBIAS_LANES 16
/* (n, c) planes per max-pooling chunk. */
#define CK_X86_POOL_PLANES 8
/* Columns (samples x OH*OW) a batch-parallel slab aims at: the slab size is
 * ceil(this / (OH*OW)) samples, from the shape alone. */
#define CK_X86_CONV_SLAB_COLS 768

static int64_t ck_x86_min(int64_t a, int64_t b) { return a < b ? a : b; }
static int64_t ck_x86_max(int64_t a, int64_t b) { return a > b ? a : b; }

/* y[0..n) += x[0..n): blocks of 16 lanes (a constant trip count, so -O2
 * vectorizes them), then a scalar tail; one add per element either way. */
static void ck_x86_conv_add(float *restrict y, const float *restrict x, int64_t n) {
  int64_t j = 0;
  int l;
  for (; j + 16 <= n; j += 16)
    for (l = 0; l < 16; l++) y[j + l] += x[j + l];
  for (; j < n; j++) y[j] += x[j];
}

/* y[0..n) = x[0..n) + b, blocked like ck_x86_conv_add. */
static void ck_x86_conv_add_bias(float *restrict y, const float *restrict x, float b, int64_t n) {
  int64_t j = 0;
  int l;
  for (; j + 16 <= n; j += 16)
    for (l = 0; l < 16; l++) y[j + l] = x[j + l] + b;
  for (; j < n; j++) y[j] = x[j] + b;
}

/* out[0..n) = relu(out[0..n)) as ck_x86_reluf (x < 0 ? 0 : x), blocked
 * like ck_x86_conv_add. */
static void ck_x86_conv_relu(float *restrict y, int64_t n) {
  int64_t j = 0;
  int l;
  for (; j + 16 <= n; j += 16)
    for (l = 0; l < 16; l++) y[j + l] = y[j + l] < 0.0f ? 0.0f : y[j + l];
  for (; j < n; j++) y[j] = y[j] < 0.0f ? 0.0f : y[j];
}

struct CkX86Pool2d;
/* The forward max pooling of planes [c, cend) (defined with the pooling below). */
static void ck_x86_maxpool_planes(const struct CkX86Pool2d *p, int64_t c, int64_t cend);

/* One call's shape, slab plan and buffers: the ctx of every chunk body. */
typedef struct CkX86Conv {
  int64_t N, C, H, W, OC, KH, KW, sh, sw, ph, pw, groups, OH, OW;
  int64_t P, cpg, opg, kc; /* OH*OW, C/groups, OC/groups, cpg*KH*KW */
  int64_t nb;              /* samples per slab */
  int64_t n0, cnt, L;      /* the current slab: first sample, samples, columns cnt*P */
  float *col, *dys;        /* workspace: col [C*KH*KW][L], dys [OC][L] */
  const float *x, *dy, *bias, *w;
  float *out, *dx, *dw, *dbias;
  CkPool *pool;        /* the batch-parallel slabs' per-thread workspaces */
  CkPool *gemm_pool;   /* the pool their GEMMs may use (one thread), or NULL */
  size_t slab_bytes;   /* bytes of one slab's workspace (col + dys) */
  CkX86Direct direct; /* the AVX-512 kernels' shape (ck_x86_conv_direct) */
  int rows512;        /* im2col / col2im by the AVX-512 plane kernels */
  int has512;         /* the CPU has AVX-512F (the conv bias gradient's lanes) */
  int relu;           /* the forward stores relu(out) */
  int64_t ndw;        /* direct dw blocks ahead of the bias chunks (ck_x86_conv_dwdb_chunk) */
  const struct CkX86Pool2d *pl; /* the max pooling of out that a chunk runs on its own samples, or NULL */
  int pooled;                   /* the chunks ran pl (else the caller runs it after) */
} CkX86Conv;

/* Fills the shape and picks the slab size from the shape and the workspace
 * alone; 0 means "run the reference" (arguments it does not cover, or a
 * workspace smaller than one sample). */
static int ck_x86_conv_plan(CkX86Conv *c, int64_t N, int64_t C, int64_t H, int64_t W, int64_t OC,
                            int64_t KH, int64_t KW, int64_t sh, int64_t sw, int64_t ph, int64_t pw,
                            int64_t groups, int64_t OH, int64_t OW, float *scratch, int64_t scratch_floats) {
  int64_t per, nslab;
  memset(c, 0, sizeof *c);
  if (N < 0 || C < 0 || H < 0 || W < 0 || OC < 0 || KH < 1 || KW < 1 || sh < 1 || sw < 1 || ph < 0 ||
      pw < 0 || groups < 1 || C % groups || OC % groups || OH < 1 || OW < 1 || !scratch)
    return 0;
  c->N = N, c->C = C, c->H = H, c->W = W, c->OC = OC, c->KH = KH, c->KW = KW;
  c->sh = sh, c->sw = sw, c->ph = ph, c->pw = pw, c->groups = groups, c->OH = OH, c->OW = OW;
  c->P = OH * OW;
  c->cpg = C / groups;
  c->opg = OC / groups;
  c->kc = c->cpg * KH * KW;
  per = CK_X86_CONV_SCRATCH(C, OC, KH, KW, OH, OW, 1);
  c->nb = per > 0 ? scratch_floats / per : 0;
  if (c->nb < 1) return 0;
  if (c->nb > N) c->nb = N > 0 ? N : 1;
  nslab = N > 0 ? (N + c->nb - 1) / c->nb : 0;
  if (nslab > 0) c->nb = (N + nslab - 1) / nslab; /* even slabs */
  c->col = scratch;
  c->dys = scratch + C * KH * KW * c->P * c->nb;
#if !defined(CK_GEMM_NO_AVX512)
  c->has512 = ck_gemm_cpu_has(CK_GEMM_AVX512);
  if (sw == 1 && c->has512) {
    CkX86Direct *d = &c->direct;
    d->N = N, d->C = C, d->H = H, d->W = W, d->OC = OC, d->KH = KH, d->KW = KW;
    d->sh = sh, d->ph = ph, d->pw = pw, d->OH = OH, d->OW = OW;
    c->rows512 = 1;
  }
#endif
  return 1;
}

/* The batch-parallel plan: slabs of ceil(CK_X86_CONV_SLAB_COLS / P)
 * samples (from the shape alone, evened out over the batch), one chunk per
 * slab doing its im2col, GEMM and scatter on one thread in a workspace of
 * its own, so a step pays one parallel region per conv instead of several
 * per slab. One thread whose caller workspace holds a slab uses that (and
 * its GEMM the pool's packing slot); otherwise every thread gets a pool
 * scratch slot and the GEMMs run pool-less. 0: not possible (no pool,
 * or no memory); the slab loop below then runs as before. The bits are
 * those of any other slab size (ck_x86_conv.h). */
static int ck_x86_conv_batch_plan(CkX86Conv *c, CkPool *pool, float *scratch, int64_t scratch_floats) {
  int64_t nb, nslab;
  int t, threads = ck_pool_threads(pool);
  if (!pool || c->N < 2) return 0;
  nb = (CK_X86_CONV_SLAB_COLS + c->P - 1) / c->P;
  if (nb > c->N) nb = c->N;
  nslab = (c->N + nb - 1) / nb;
  nb = (c->N + nslab - 1) / nslab;
  if (CK_X86_CONV_SCRATCH(c->C, c->OC, c->KH, c->KW, c->OH, c->OW, nb) > ((int64_t)1 << 40)) return 0;
  c->nb = nb;
  c->slab_bytes = (size_t)CK_X86_CONV_SCRATCH(c->C, c->OC, c->KH, c->KW, c->OH, c->OW, nb) * sizeof(float);
  c->pool = c->gemm_pool = NULL;
  if (threads == 1 && scratch_floats >= CK_X86_CONV_SCRATCH(c->C, c->OC, c->KH, c->KW, c->OH, c->OW, nb)) {
    c->col = scratch; /* the caller's workspace; the GEMMs may use the pool */
    c->gemm_pool = pool;
    return 1;
  }
  for (t = 0; t < threads; t++)
    if (!ck_pool_scratch(pool, t, c->slab_bytes)) return 0;
  c->pool = pool;
  return 1;
}

/* Points c (a chunk's copy of the plan) at slab s and its workspace: the
 * caller's (one thread) or thread tid's pool slot. */
static void ck_x86_conv_batch_slab(CkX86Conv *c, int64_t s, int tid) {
  float *ws = c->pool ? (float *)ck_pool_scratch(c->pool, tid, c->slab_bytes) : c->col;
  c->n0 = s * c->nb;
  c->cnt = ck_x86_min(c->nb, c->N - c->n0);
  c->L = c->cnt * c->P;
  c->col = ws;
  c->dys = ws + c->C * c->KH * c->KW * c->P * c->nb;
}

/* Selects slab [n0, n0 + nb) clipped to N. */
static void ck_x86_conv_slab(CkX86Conv *c, int64_t n0) {
  c->n0 = n0;
  c->cnt = ck_x86_min(c->nb, c->N - n0);
  c->L = c->cnt * c->P;
}

#if !defined(CK_GEMM_NO_AVX512)
/* Whether the direct kernels apply: the AVX-512 row kernels (c->direct
 * filled), groups 1, at most CK_X86_DIRECT_TAPS taps. */
static int ck_x86_conv_direct(const CkX86Conv *c) {
  return c->rows512 && c->groups == 1 && c->kc <= CK_X86_DIRECT_TAPS;
}
#endif

/* ---- im2col and col2im ---------------------------------------------------------- */

/* Output columns [lo, hi) whose tap kw lands inside the row (0 <= iw < W). */
static void ck_x86_conv_span(const CkX86Conv *c, int64_t kw, int64_t *lo, int64_t *hi) {
  int64_t t = c->W + c->pw - kw;
  *lo = c->pw - kw <= 0 ? 0 : (c->pw - kw + c->sw - 1) / c->sw;
  *hi = t <= 0 ? 0 : (t + c->sw - 1) / c->sw;
  if (*hi > c->OW) *hi = c->OW;
  if (*lo > *hi) *lo = *hi;
}

/* Chunk (sample nl of the slab, channel ch): its KH*KW rows of col, with
 * zeros where the window reads padding. */
static void ck_x86_im2col_chunk(void *ctx, int64_t chunk, int tid) {
  const CkX86Conv *c = ctx;
  int64_t nl = chunk / c->C, ch = chunk % c->C, kh, kw, oh, ow;
  const float *xc = c->x + ((c->n0 + nl) * c->C + ch) * c->H * c->W;
  (void)tid;
#if !defined(CK_GEMM_NO_AVX512)
  if (c->rows512) {
    ck_x86_im2col_plane_avx512(&c->direct, c->col + ch * c->KH * c->KW * c->L + nl * c->P, c->L, xc);
    return;
  }
#endif
  for (kh = 0; kh < c->KH; kh++)
    for (kw = 0; kw < c->KW; kw++) {
      float *dst = c->col + ((ch * c->KH + kh) * c->KW + kw) * c->L + nl * c->P;
      int64_t lo, hi;
      ck_x86_conv_span(c, kw, &lo, &hi);
      for (oh = 0; oh < c->OH; oh++) {
        int64_t ih = oh * c->sh - c->ph + kh;
        float *d = dst + oh * c->OW;
        const float *src;
        if (ih < 0 || ih >= c->H) {
          memset(d, 0, (size_t)c->OW * sizeof *d);
          continue;
        }
        src = xc + ih * c->W + kw - c->pw;
        for (ow = 0; ow < lo; ow++) d[ow] = 0.0f;
        if (c->sw == 1)
          memcpy(d + lo, src + lo, (size_t)(hi - lo) * sizeof *d);
        else
          for (ow = lo; ow < hi; ow++) d[ow] = src[ow * c->sw];
        for (ow = hi; ow < c->OW; ow++) d[ow] = 0.0f;
      }
    }
}

/* Chunk (sample nl, channel ch): every dx element of the plane gathers its
 * dcol terms in (kh, kw) order in a float, then is added once, like the
 * reference's `dx += acc`. */
static void ck_x86_col2im_chunk(void *ctx, int64_t chunk, int tid) {
  const CkX86Conv *c = ctx;
  int64_t nl = chunk / c->C, ch = chunk % c->C, ih, iw0, kh, kw, j;
  float *dxc = c->dx + ((c->n0 + nl) * c->C + ch) * c->H * c->W;
  float acc[CK_X86_CONV_WBLOCK];
  (void)tid;
#if !defined(CK_GEMM_NO_AVX512)
  if (c->rows512) {
    ck_x86_col2im_plane_avx512(&c->direct, dxc, c->L, c->col + ch * c->KH * c->KW * c->L + nl * c->P);
    return;
  }
#endif
  for (ih = 0; ih < c->H; ih++)
    for (iw0 = 0; iw0 < c->W; iw0 += CK_X86_CONV_WBLOCK) {
      int64_t nw = ck_x86_min(CK_X86_CONV_WBLOCK, c->W - iw0);
      for (j = 0; j < nw; j++) acc[j] = 0.0f;
      for (kh = 0; kh < c->KH; kh++) {
        int64_t th = ih + c->ph - kh, oh;
        if (th < 0 || th % c->sh) continue;
        oh = th / c->sh;
        if (oh >= c->OH) continue;
        for (kw = 0; kw < c->KW; kw++) {
          const float *row = c->col + ((ch * c->KH + kh) * c->KW + kw) * c->L + nl * c->P + oh * c->OW;
          if (c->sw == 1) {
            /* ow = iw + pw - kw must lie in [0, OW) */
            int64_t lo = ck_x86_max(iw0, kw - c->pw), hi = ck_x86_min(iw0 + nw, c->OW + kw - c->pw);
            if (hi > lo) ck_x86_conv_add(acc + (lo - iw0), row + c->pw - kw + lo, hi - lo);
          } else {
            for (j = 0; j < nw; j++) {
              int64_t tw = iw0 + j + c->pw - kw;
              if (tw < 0 || tw % c->sw || tw / c->sw >= c->OW) continue;
              acc[j] += row[tw / c->sw];
            }
          }
        }
      }
      ck_x86_conv_add(dxc + ih * c->W + iw0, acc, nw);
    }
}

/* ---- forward -------------------------------------------------------------------- */

/* Chunk (sample nl, channel oc): out row = GEMM row (+ bias, rounded once as
 * the reference's `acc += bias`). */
static void ck_x86_conv_out_chunk(void *ctx, int64_t chunk, int tid) {
  const CkX86Conv *c = ctx;
  int64_t nl = chunk / c->OC, oc = chunk % c->OC;
  const float *src = c->dys + oc * c->L + nl * c->P;
  float *dst = c->out + ((c->n0 + nl) * c->OC + oc) * c->P;
  (void)tid;
  if (c->bias) {
    ck_x86_conv_add_bias(dst, src, c->bias[oc], c->P);
  } else {
    memcpy(dst, src, (size_t)c->P * sizeof *dst);
  }
  if (c->relu) ck_x86_conv_relu(dst, c->P);
}

/* Chunk oc of a one-sample slab, whose GEMM wrote straight into out: the
 * bias (if any), then relu (if asked). */
static void ck_x86_conv_bias_chunk(void *ctx, int64_t oc, int tid) {
  const CkX86Conv *c = ctx;
  float *dst = c->out + (c->n0 * c->OC + oc) * c->P;
  int64_t p = 0;
  int l;
  (void)tid;
  if (c->bias) {
    float b = c->bias[oc];
    for (; p + 16 <= c->P; p += 16)
      for (l = 0; l < 16; l++) dst[p + l] += b;
    for (; p < c->P; p++) dst[p] += b;
  }
  if (c->relu) ck_x86_conv_relu(dst, c->P);
}

#if !defined(CK_GEMM_NO_AVX512)
/* Chunk n of the direct forward: sample n. */
static void ck_x86_direct_fwd_chunk(void *ctx, int64_t n, int tid) {
  const CkX86Conv *c = ctx;
  (void)tid;
  ck_x86_direct_fwd_avx512(&c->direct, c->out + n * c->OC * c->P, c->x + n * c->C * c->H * c->W, c->w, c->bias);
  if (c->pl) ck_x86_maxpool_planes(c->pl, n * c->OC, (n + 1) * c->OC); /* while in cache */
}

/* Chunk b of the direct dw: output channels [16 b, 16 b + 16), its own
 * CK_X86_DIRECT_PAD floats of the workspace. */
static void ck_x86_direct_dw_chunk(void *ctx, int64_t b, int tid) {
  const CkX86Conv *c = ctx;
  (void)tid;
  ck_x86_direct_dw_avx512(&c->direct, c->dw, c->dy, c->x, 16 * b, ck_x86_min(16, c->OC - 16 * b),
                          c->col + b * CK_X86_DIRECT_PAD(c->C, c->KH, c->KW, c->sh, c->OH, c->OW));
}

/* Most floats of the zero-padded plane the slab dw kernel keeps on the stack. */
#define CK_X86_DWC_PAD_MAX 4096

/* Whether dw runs as ck_x86_direct_dwc_avx512 (the AVX-512 row kernels,
 * groups 1, few taps per channel, a padded plane that fits the stack). */
static int ck_x86_conv_dwc(const CkX86Conv *c) {
  return c->rows512 && c->groups == 1 && c->KH * c->KW <= CK_X86_DWC_TAPS && c->P < ((int64_t)1 << 26) &&
         c->C * c->KH * c->KW * 32 < ((int64_t)1 << 31) &&
         CK_X86_DWC_PAD(c->KH, c->KW, c->sh, c->OH, c->OW) <= CK_X86_DWC_PAD_MAX;
}

/* Chunk (sample nl of the slab): its dy transposed into dys as
 * dyt[(nl*P + p)*OC + oc], the layout the slab dw kernel reads. */
static void ck_x86_conv_dyt_chunk(void *ctx, int64_t nl, int tid) {
  const CkX86Conv *c = ctx;
  const float *src = c->dy + (c->n0 + nl) * c->OC * c->P;
  float *dst = c->dys + nl * c->P * c->OC;
  (void)tid;
  ck_x86_dyt_avx512(dst, src, c->OC, c->P);
}

/* Chunk (block of 32 output channels, input channel): its dw rows over the
 * current slab (ck_x86_direct_dwc_avx512). */
static void ck_x86_conv_dwc_chunk(void *ctx, int64_t chunk, int tid) {
  const CkX86Conv *c = ctx;
  int64_t ob = chunk / c->C, ci = chunk % c->C;
  float xp[CK_X86_DWC_PAD_MAX];
  (void)tid;
  ck_x86_direct_dwc_avx512(&c->direct, c->dw, c->dys, c->OC, c->x + c->n0 * c->C * c->H * c->W, c->cnt, ci,
                           32 * ob, ck_x86_min(32, c->OC - 32 * ob), xp);
}
#endif

/* Chunk s of the batch-parallel forward: slab s's im2col, GEMM and
 * out = GEMM row (+ bias), all on this thread. */
static void ck_x86_conv_fwd_slab_chunk(void *ctx, int64_t s, int tid) {
  const CkX86Conv *base = ctx;
  CkX86Conv c = *base;
  int64_t i, g;
  ck_x86_conv_batch_slab(&c, s, tid);
  for (i = 0; i < c.cnt * c.C; i++) ck_x86_im2col_chunk(&c, i, tid);
  for (g = 0; g < c.groups; g++)
    ck_gemm_f32(c.gemm_pool, c.dys + g * c.opg * c.L, c.w + g * c.opg * c.kc, c.col + g * c.kc * c.L, 1, c.opg, c.L,
                c.kc, 0, 0, 0, 0, 0);
  for (i = 0; i < c.cnt * c.OC; i++) ck_x86_conv_out_chunk(&c, i, tid);
  if (c.pl) ck_x86_maxpool_planes(c.pl, c.n0 * c.OC, (c.n0 + c.cnt) * c.OC); /* while in cache */
}

/* The forward of both entries: relu(conv) when relu is set. */
static void ck_x86_conv2d_run(CkPool *pool, float *out, const float *x, const float *w, const float *bias,
                              int64_t N, int64_t C, int64_t H, int64_t W, int64_t OC, int64_t KH, int64_t KW,
                              int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t groups, int64_t OH,
                              int64_t OW, float *scratch, int64_t scratch_floats, int relu,
                              const struct CkX86Pool2d *pl, int *pooled) {
  CkX86Conv c;
  int64_t n0, g;
  if (!ck_x86_conv_plan(&c, N, C, H, W, OC, KH, KW, sh, sw, ph, pw, groups, OH, OW, scratch,
                        scratch_floats)) {
    ck_conv2d_f32(out, x, w, bias, N, C, H, W, OC, KH, KW, sh, sw, ph, pw, groups, OH, OW);
    if (relu && N > 0 && OC > 0 && OH > 0 && OW > 0) ck_x86_conv_relu(out, N * OC * OH * OW);
    return;
  }
  c.relu = relu;
  c.direct.relu = relu;
  c.pl = pl;
  c.x = x;
  c.bias = bias;
  c.out = out;
  c.w = w;
#if !defined(CK_GEMM_NO_AVX512)
  if (ck_x86_conv_direct(&c)) {
    ck_pool_parallel_for(pool, N, ck_x86_direct_fwd_chunk, &c);
    *pooled = pl != NULL;
    return;
  }
#endif
  if (ck_x86_conv_batch_plan(&c, pool, scratch, scratch_floats)) {
    ck_pool_parallel_for(pool, (N + c.nb - 1) / c.nb, ck_x86_conv_fwd_slab_chunk, &c);
    *pooled = pl != NULL;
    return;
  }
  c.pl = NULL; /* the slab loop below: the caller pools after */
  for (n0 = 0; n0 < N; n0 += c.nb) {
    ck_x86_conv_slab(&c, n0);
    ck_pool_parallel_for(pool, c.cnt * C, ck_x86_im2col_chunk, &c);
    if (c.cnt == 1) { /* one sample: [OC][P] is already out's layout */
      float *o = out + n0 * OC * c.P;
      for (g = 0; g < groups; g++)
        ck_gemm_f32(pool, o + g * c.opg * c.P, w + g * c.opg * c.kc, c.col + g * c.kc * c.L, 1, c.opg,
                    c.L, c.kc, 0, 0, 0, 0, 0);
      if (bias || relu) ck_pool_parallel_for(pool, OC, ck_x86_conv_bias_chunk, &c);
      continue;
    }
    for (g = 0; g < groups; g++)
      ck_gemm_f32(pool, c.dys + g * c.opg * c.L, w + g * c.opg * c.kc, c.col + g * c.kc * c.L, 1, c.opg,
                  c.L, c.kc, 0, 0, 0, 0, 0);
    ck_pool_parallel_for(pool, c.cnt * OC, ck_x86_conv_out_chunk, &c);
  }
}

void ck_x86_conv2d_f32(CkPool *pool, float *out, const float *x, const float *w, const float *bias,
                       int64_t N, int64_t C, int64_t H, int64_t W, int64_t OC, int64_t KH, int64_t KW,
                       int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t groups, int64_t OH,
                       int64_t OW, float *scratch, int64_t scratch_floats) {
  int pooled = 0;
  ck_x86_conv2d_run(pool, out, x, w, bias, N, C, H, W, OC, KH, KW, sh, sw, ph, pw, groups, OH, OW, scratch,
                    scratch_floats, 0, NULL, &pooled);
}

void ck_x86_conv2d_relu_f32(CkPool *pool, float *out, const float *x, const float *w, const float *bias,
                            int64_t N, int64_t C, int64_t H, int64_t W, int64_t OC, int64_t KH, int64_t KW,
                            int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t groups, int64_t OH,
                            int64_t OW, float *scratch, int64_t scratch_floats) {
  int pooled = 0;
  ck_x86_conv2d_run(pool, out, x, w, bias, N, C, H, W, OC, KH, KW, sh, sw, ph, pw, groups, OH, OW, scratch,
                    scratch_floats, 1, NULL, &pooled);
}

/* ---- backward ------------------------------------------------------------------- */

/* Chunk (sample nl, channel oc): dys[oc][nl*P ..] = dy[n0 + nl, oc]. */
static void ck_x86_conv_dys_chunk(void *ctx, int64_t chunk, int tid) {
  const CkX86Conv *c = ctx;
  int64_t nl = chunk / c->OC, oc = chunk % c->OC;
  (void)tid;
  memcpy(c->dys + oc * c->L + nl * c->P, c->dy + ((c->n0 + nl) * c->OC + oc) * c->P,
         (size_t)c->P * sizeof(float));
}

/* Chunk oc: dbias[oc] += the sum of dy[:, oc] in 16 lanes (lane l takes
 * the positions p with p % 16 == l, in (n, p) order), then the fixed tree
 * ((l, l+8), then (l, l+4), (l, l+2), (l, l+1)); added once. The shape alone
 * fixes the order, so the bits do not depend on the threads, and the lanes
 * vectorize where the reference's single chain runs at the add latency. */
static void ck_x86_conv_dbias_chunk(void *ctx, int64_t oc, int tid) {
  const CkX86Conv *c = ctx;
  float acc[CK_X86_DBIAS_LANES] = {0.0f};
  int64_t n, p;
  int l, half;
  (void)tid;
#if !defined(CK_GEMM_NO_AVX512)
  if (c->has512) {
    c->dbias[oc] += ck_x86_dbias_avx512(c->dy, c->N, c->OC, c->P, oc);
    return;
  }
#endif
  for (n = 0; n < c->N; n++) {
    const float *dyo = c->dy + (n * c->OC + oc) * c->P;
    for (p = 0; p + CK_X86_DBIAS_LANES <= c->P; p += CK_X86_DBIAS_LANES)
      for (l = 0; l < CK_X86_DBIAS_LANES; l++) acc[l] += dyo[p + l];
    for (l = 0; p + l < c->P; l++) acc[l] += dyo[p + l];
  }
  for (half = CK_X86_DBIAS_LANES / 2; half >= 1; half /= 2)
    for (l = 0; l < half; l++) acc[l] += acc[l + half];
  c->dbias[oc] += acc[0];
}

/* Chunk s of the batch-parallel dx: slab s's dy regrouped, the GEMM
 * dcol = w^T @ dys and col2im into its own samples of dx, on this thread. */
static void ck_x86_conv_dx_slab_chunk(void *ctx, int64_t s, int tid) {
  const CkX86Conv *base = ctx;
  CkX86Conv c = *base;
  int64_t i, g;
  ck_x86_conv_batch_slab(&c, s, tid);
  for (i = 0; i < c.cnt * c.OC; i++) ck_x86_conv_dys_chunk(&c, i, tid);
  for (g = 0; g < c.groups; g++)
    ck_gemm_f32(c.gemm_pool, c.col + g * c.kc * c.L, c.w + g * c.opg * c.kc, c.dys + g * c.opg * c.L, 1, c.kc,
                c.L, c.opg, 1, 0, 0, 0, 0);
  for (i = 0; i < c.cnt * c.C; i++) ck_x86_col2im_chunk(&c, i, tid);
}

#if !defined(CK_GEMM_NO_AVX512)
/* dw by the slab kernel over the whole batch at once: dy of every sample
 * transposed into the pool's shared slot, then one chunk per (block of 32
 * output channels, input channel) running its chains through all N
 * samples in order (the bits of the slab loop). Two parallel regions in
 * all. 0 when the slot cannot be had. */
static int ck_x86_conv_dwc_batch(CkX86Conv *c, CkPool *pool) {
  CkX86Conv b = *c;
  float *dyt;
  if (!pool) return 0;
  dyt = (float *)ck_pool_scratch(pool, -1, (size_t)(c->N * c->P * c->OC) * sizeof(float));
  if (!dyt) return 0;
  b.dys = dyt;
  b.n0 = 0;
  b.cnt = c->N;
  ck_pool_parallel_for(pool, c->N, ck_x86_conv_dyt_chunk, &b);
  ck_pool_parallel_for(pool, (c->OC + 31) / 32 * c->C, ck_x86_conv_dwc_chunk, &b);
  return 1;
}
#endif

#if !defined(CK_GEMM_NO_AVX512)
/* Chunk of the direct dw with the bias gradient alongside: chunks
 * [0, ndw) are dw blocks (the longest, claimed first), the rest one bias
 * channel each, so a second thread sums the bias while the first runs a
 * dw block (conv1 of the cnn has a single one). */
static void ck_x86_conv_dwdb_chunk(void *ctx, int64_t chunk, int tid) {
  const CkX86Conv *c = ctx;
  if (chunk < c->ndw)
    ck_x86_direct_dw_chunk(ctx, chunk, tid);
  else
    ck_x86_conv_dbias_chunk(ctx, chunk - c->ndw, tid);
}
#endif

void ck_x86_conv2d_backward_f32(CkPool *pool, float *dx, float *dw, float *dbias, const float *dy,
                                const float *x, const float *w, int64_t N, int64_t C, int64_t H,
                                int64_t W, int64_t OC, int64_t KH, int64_t KW, int64_t sh, int64_t sw,
                                int64_t ph, int64_t pw, int64_t groups, int64_t OH, int64_t OW,
                                float *scratch, int64_t scratch_floats) {
  CkX86Conv c;
  int64_t n0, g;
  int dwc = 0; /* dw by the slab kernel ck_x86_direct_dwc_avx512 */
  if (!ck_x86_conv_plan(&c, N, C, H, W, OC, KH, KW, sh, sw, ph, pw, groups, OH, OW, scratch,
                        scratch_floats)) {
    ck_conv2d_backward_f32(dx, dw, dbias, dy, x, w, N, C, H, W, OC, KH, KW, sh, sw, ph, pw, groups, OH, OW);
    return;
  }
  c.x = x;
  c.dy = dy;
  c.dx = dx;
  c.dbias = dbias;
  c.dw = dw;
  c.w = w;
#if !defined(CK_GEMM_NO_AVX512)
  if (dw && ck_x86_conv_direct(&c) &&
      (OC + 15) / 16 * CK_X86_DIRECT_PAD(C, KH, KW, sh, OH, OW) <= scratch_floats) {
    /* the direct dw blocks first, then the bias channels, in one region */
    c.ndw = (OC + 15) / 16;
    ck_pool_parallel_for(pool, c.ndw + (dbias ? OC : 0), ck_x86_conv_dwdb_chunk, &c);
    dw = NULL; /* done */
    dbias = NULL;
  }
#endif
  if (dbias) ck_pool_parallel_for(pool, OC, ck_x86_conv_dbias_chunk, &c);
  if (!dx && !dw) return;
#if !defined(CK_GEMM_NO_AVX512)
  dwc = dw && ck_x86_conv_dwc(&c);
  if (dwc && c.N > 1 && ck_x86_conv_dwc_batch(&c, pool)) {
    dw = NULL; /* done */
    dwc = 0;
  }
#endif
  if (!dw && dx && ck_x86_conv_batch_plan(&c, pool, scratch, scratch_floats)) {
    ck_pool_parallel_for(pool, (N + c.nb - 1) / c.nb, ck_x86_conv_dx_slab_chunk, &c);
    return;
  }
  if (!dx && !dw) return;
  for (n0 = 0; n0 < N; n0 += c.nb) {
    ck_x86_conv_slab(&c, n0);
#if !defined(CK_GEMM_NO_AVX512)
    if (dwc) { /* dy transposed into dys, then dw; dys is refilled for dx below */
      ck_pool_parallel_for(pool, c.cnt, ck_x86_conv_dyt_chunk, &c);
      ck_pool_parallel_for(pool, (OC + 31) / 32 * C, ck_x86_conv_dwc_chunk, &c);
      if (!dx) continue;
    }
#endif
    ck_pool_parallel_for(pool, c.cnt * OC, ck_x86_conv_dys_chunk, &c);
    if (dw && !dwc) {
      /* the chain over (n, oh, ow) continues through dw from slab to slab */
      ck_pool_parallel_for(pool, c.cnt * C, ck_x86_im2col_chunk, &c);
      for (g = 0; g < groups; g++)
        ck_gemm_f32(pool, dw + g * c.opg * c.kc, c.dys + g * c.opg * c.L, c.col + g * c.kc * c.L, 1,
                    c.opg, c.kc, c.L, 0, 1, 0, 0, CK_GEMM_ACCUMULATE);
    }
    if (dx) {
      for (g = 0; g < groups; g++)
        ck_gemm_f32(pool, c.col + g * c.kc * c.L, w + g * c.opg * c.kc, c.dys + g * c.opg * c.L, 1, c.kc,
                    c.L, c.opg, 1, 0, 0, 0, 0);
      ck_pool_parallel_for(pool, c.cnt * C, ck_x86_col2im_chunk, &c);
    }
  }
}

/* ---- max pooling ---------------------------------------------------------------- */

/* Lanes of the max-pooling blocks: a constant trip count, so -O2 vectorizes. */
#define CK_X86_POOL_LANES 16
/* Most window cells a block handles (larger windows take the scalar loop). */
#define CK_X86_POOL_TAPS 64

typedef struct CkX86Pool2d {
  float *out, *dx;
  const float *x, *dy;
  int64_t NC, H, W, KH, KW, sh, sw, ph, pw, OH, OW;
  int64_t lo, hi; /* outputs whose windows lie inside the row: ow in [lo, hi) */
  int inside;     /* every window of a plane lies inside it (no padding reached) */
  int blocks;     /* 16-output blocks usable: few enough taps, int32 plane offsets */
  int avx512;     /* the blocks run ck_x86_maxpool16*_avx512 */
  int pair;       /* 2x2, stride 2, no padding, AVX-512: whole rows by ck_x86_maxpool2x2_*_avx512 */
  int pair2;      /* the same pool on an AVX2 CPU without AVX-512F: ck_x86_maxpool2x2_*_avx2 */
  int relu;       /* backward: dx planes set to x > 0 ? (zeroed + pool gradient) : 0 */
  int ntaps;
  int32_t taps[CK_X86_POOL_TAPS]; /* kh * W + kw in (kh, kw) order */
} CkX86Pool2d;

/* Fills the call's shape; finds the output columns whose whole window is
 * inside [0, W), whether every window of a plane is, and the block taps. */
static void ck_x86_pool_plan(CkX86Pool2d *p, float *out, float *dx, const float *x, const float *dy, int64_t NC,
                             int64_t H, int64_t W, int64_t KH, int64_t KW, int64_t sh, int64_t sw, int64_t ph,
                             int64_t pw, int64_t OH, int64_t OW) {
  int64_t t = W + pw - KW;
  memset(p, 0, sizeof *p);
  p->out = out, p->dx = dx, p->x = x, p->dy = dy, p->NC = NC, p->H = H, p->W = W, p->KH = KH, p->KW = KW;
  p->sh = sh, p->sw = sw, p->ph = ph, p->pw = pw, p->OH = OH, p->OW = OW;
  p->lo = (p->pw + p->sw - 1) / p->sw;
  p->hi = t < 0 ? 0 : t / p->sw + 1;
  if (p->hi > p->OW) p->hi = p->OW;
  if (p->lo > p->hi) p->lo = p->hi;
  p->inside = p->ph == 0 && p->pw == 0 && (p->OH - 1) * p->sh + p->KH <= p->H &&
              (p->OW - 1) * p->sw + p->KW <= p->W;
  p->blocks = p->KH * p->KW <= CK_X86_POOL_TAPS && p->H * p->W <= INT32_MAX;
  if (p->blocks) {
    int64_t kh, kw;
    p->ntaps = 0;
    for (kh = 0; kh < p->KH; kh++)
      for (kw = 0; kw < p->KW; kw++) p->taps[p->ntaps++] = (int32_t)(kh * p->W + kw);
  }
#if !defined(CK_GEMM_NO_AVX512)
  p->avx512 = ck_gemm_cpu_has(CK_GEMM_AVX512);
#endif
  if (KH == 2 && KW == 2 && sh == 2 && sw == 2 && ph == 0 && pw == 0 && 2 * OH <= H && 2 * OW <= W) {
    p->pair = p->avx512;
    p->pair2 = !p->avx512 && ck_gemm_cpu_has(CK_GEMM_AVX2);
  }
}

/* One output of the reference forward, verbatim: max in (kh, kw) order,
 * padding skipped, the first NaN wins. */
static float ck_x86_maxpool_one(const CkX86Pool2d *p, const float *xc, int64_t oh, int64_t ow) {
  float m = -INFINITY;
  int64_t kh, kw;
  for (kh = 0; kh < p->KH; kh++) {
    int64_t ih = oh * p->sh - p->ph + kh;
    if (ih < 0 || ih >= p->H) continue;
    for (kw = 0; kw < p->KW; kw++) {
      int64_t iw = ow * p->sw - p->pw + kw;
      float v;
      if (iw < 0 || iw >= p->W) continue;
      v = xc[ih * p->W + iw];
      if (v > m || v != v) m = v;
      if (m != m) break;
    }
    if (m != m) break;
  }
  return m;
}

/* One output of the reference backward, verbatim: dy goes to the first
 * maximum of the clipped window in (kh, kw) order, or its last NaN. */
static void ck_x86_maxpool_bwd_one(const CkX86Pool2d *p, float *dxc, const float *xc, float g, int64_t oh,
                                   int64_t ow) {
  int64_t h0 = oh * p->sh - p->ph, w0 = ow * p->sw - p->pw, ih, iw, best;
  int64_t h1 = h0 + p->KH < p->H ? h0 + p->KH : p->H, w1 = w0 + p->KW < p->W ? w0 + p->KW : p->W;
  float m = -INFINITY;
  if (h0 < 0) h0 = 0;
  if (w0 < 0) w0 = 0;
  if (h0 >= h1 || w0 >= w1) return; /* window entirely in the padding */
  best = h0 * p->W + w0;
  for (ih = h0; ih < h1; ih++)
    for (iw = w0; iw < w1; iw++) {
      float v = xc[ih * p->W + iw];
      if (v > m || v != v) {
        m = v;
        best = ih * p->W + iw;
      }
    }
  dxc[best] += g;
}

/* 16 window maxima, o[l] over the taps from xc + off[l]: the AVX-512 block
 * where the CPU has it, else the same comparisons lane by lane. */
static void ck_x86_maxpool16(const CkX86Pool2d *p, float *o, const float *xc, const int32_t *off) {
  int l, t;
#if !defined(CK_GEMM_NO_AVX512)
  if (p->avx512) {
    ck_x86_maxpool16_avx512(o, xc, off, p->taps, p->ntaps);
    return;
  }
#endif
  for (l = 0; l < CK_X86_POOL_LANES; l++) {
    float m = xc[off[l] + p->taps[0]];
    for (t = 1; t < p->ntaps && m == m; t++) {
      float v = xc[off[l] + p->taps[t]];
      if (v > m || v != v) m = v;
    }
    o[l] = m;
  }
}

/* The backward of 16 such windows: each lane's recorded cell, then dy
 * added in lane order (the reference's output order). */
static void ck_x86_maxpool16_bwd(const CkX86Pool2d *p, float *dxc, const float *xc, const float *g,
                                 const int32_t *off) {
  int32_t best[CK_X86_POOL_LANES];
  int l, t;
#if !defined(CK_GEMM_NO_AVX512)
  if (p->avx512) {
    ck_x86_maxpool16_bwd_avx512(best, xc, off, p->taps, p->ntaps);
  } else
#endif
  {
    for (l = 0; l < CK_X86_POOL_LANES; l++) {
      float m = xc[off[l] + p->taps[0]];
      best[l] = off[l] + p->taps[0];
      for (t = 1; t < p->ntaps; t++) {
        float v = xc[off[l] + p->taps[t]];
        if (v > m || v != v) {
          m = v;
          best[l] = off[l] + p->taps[t];
        }
      }
    }
  }
  for (l = 0; l < CK_X86_POOL_LANES; l++) dxc[best[l]] += g[l];
}

/* First-cell offsets of 16 outputs: from (oh, ow) along a row, or from the
 * flattened output index q of a plane whose windows are all inside (rows
 * wrap inside one block, so narrow planes take blocks too). */
static void ck_x86_pool_row_offsets(const CkX86Pool2d *p, int32_t *off, int64_t oh, int64_t ow) {
  int l;
  for (l = 0; l < CK_X86_POOL_LANES; l++)
    off[l] = (int32_t)((oh * p->sh - p->ph) * p->W + (ow + l) * p->sw - p->pw);
}

static void ck_x86_pool_flat_offsets(const CkX86Pool2d *p, int32_t *off, int64_t q) {
  int l;
  for (l = 0; l < CK_X86_POOL_LANES; l++)
    off[l] = (int32_t)((q + l) / p->OW * p->sh * p->W + (q + l) % p->OW * p->sw);
}

/* Chunk: planes [chunk*CK_X86_POOL_PLANES, ...), row by row, outputs in ow
 * order: blocks where the window is inside, the reference's loop elsewhere. */
static void ck_x86_maxpool_chunk(void *ctx, int64_t chunk, int tid) {
  const CkX86Pool2d *p = ctx;
  (void)tid;
  ck_x86_maxpool_planes(p, chunk * CK_X86_POOL_PLANES, ck_x86_min(chunk * CK_X86_POOL_PLANES + CK_X86_POOL_PLANES, p->NC));
}

/* Planes [c, cend) of the forward (a chunk's, or a conv chunk's own). */
static void ck_x86_maxpool_planes(const CkX86Pool2d *p, int64_t c, int64_t cend) {
  int64_t oh, ow;
  int32_t off[CK_X86_POOL_LANES];
  for (; c < cend; c++) {
    const float *xc = p->x + c * p->H * p->W;
    float *o = p->out + c * p->OH * p->OW;
#if !defined(CK_GEMM_NO_AVX512)
    if (p->pair) {
      for (oh = 0; oh < p->OH; oh++)
        ck_x86_maxpool2x2_row_avx512(o + oh * p->OW, xc + 2 * oh * p->W, xc + (2 * oh + 1) * p->W, p->OW);
      continue;
    }
#endif
    if (p->pair2) {
      for (oh = 0; oh < p->OH; oh++)
        ck_x86_maxpool2x2_row_avx2(o + oh * p->OW, xc + 2 * oh * p->W, xc + (2 * oh + 1) * p->W, p->OW);
      continue;
    }
    if (p->inside) {
      int64_t q = 0, nq = p->OH * p->OW;
      for (; p->blocks && q + CK_X86_POOL_LANES <= nq; q += CK_X86_POOL_LANES) {
        ck_x86_pool_flat_offsets(p, off, q);
        ck_x86_maxpool16(p, o + q, xc, off);
      }
      for (; q < nq; q++) o[q] = ck_x86_maxpool_one(p, xc, q / p->OW, q % p->OW);
      continue;
    }
    for (oh = 0; oh < p->OH; oh++) {
      int64_t ih0 = oh * p->sh - p->ph;
      int inside = ih0 >= 0 && ih0 + p->KH <= p->H;
      float *orow = o + oh * p->OW;
      ow = 0;
      if (inside) {
        for (; ow < p->lo; ow++) orow[ow] = ck_x86_maxpool_one(p, xc, oh, ow);
        for (; p->blocks && ow + CK_X86_POOL_LANES <= p->hi; ow += CK_X86_POOL_LANES) {
          ck_x86_pool_row_offsets(p, off, oh, ow);
          ck_x86_maxpool16(p, orow + ow, xc, off);
        }
      }
      for (; ow < p->OW; ow++) orow[ow] = ck_x86_maxpool_one(p, xc, oh, ow);
    }
  }
}

/* The backward of plane (xc, g) into dxc (+=): the 2x2 plane or row
 * kernels (plane: CK_X86_POOL2_PLANE_MAX floats of addends), the 16-window
 * blocks, or the reference's loop. */
static void ck_x86_maxpool_bwd_plane(const CkX86Pool2d *p, float *dxc, const float *xc, const float *g,
                                     float *plane) {
  int64_t oh, ow;
  int32_t off[CK_X86_POOL_LANES];
  (void)plane;
#if !defined(CK_GEMM_NO_AVX512)
  if (p->pair && p->H * p->W <= CK_X86_POOL2_PLANE_MAX) {
    ck_x86_maxpool2x2_bwd_plane_avx512(dxc, xc, g, p->H, p->W, p->OH, p->OW, plane);
    return;
  }
  if (p->pair) {
    for (oh = 0; oh < p->OH; oh++)
      ck_x86_maxpool2x2_bwd_row_avx512(dxc + 2 * oh * p->W, dxc + (2 * oh + 1) * p->W, xc + 2 * oh * p->W,
                                       xc + (2 * oh + 1) * p->W, g + oh * p->OW, p->OW);
    return;
  }
#endif
  if (p->pair2) {
    for (oh = 0; oh < p->OH; oh++)
      ck_x86_maxpool2x2_bwd_row_avx2(dxc + 2 * oh * p->W, dxc + (2 * oh + 1) * p->W, xc + 2 * oh * p->W,
                                     xc + (2 * oh + 1) * p->W, g + oh * p->OW, p->OW);
    return;
  }
  if (p->inside) {
    int64_t q = 0, nq = p->OH * p->OW;
    for (; p->blocks && q + CK_X86_POOL_LANES <= nq; q += CK_X86_POOL_LANES) {
      ck_x86_pool_flat_offsets(p, off, q);
      ck_x86_maxpool16_bwd(p, dxc, xc, g + q, off);
    }
    for (; q < nq; q++) ck_x86_maxpool_bwd_one(p, dxc, xc, g[q], q / p->OW, q % p->OW);
    return;
  }
  for (oh = 0; oh < p->OH; oh++) {
    int64_t ih0 = oh * p->sh - p->ph;
    int inside = ih0 >= 0 && ih0 + p->KH <= p->H;
    const float *grow = g + oh * p->OW;
    ow = 0;
    if (inside) {
      for (; ow < p->lo; ow++) ck_x86_maxpool_bwd_one(p, dxc, xc, grow[ow], oh, ow);
      for (; p->blocks && ow + CK_X86_POOL_LANES <= p->hi; ow += CK_X86_POOL_LANES) {
        ck_x86_pool_row_offsets(p, off, oh, ow);
        ck_x86_maxpool16_bwd(p, dxc, xc, grow + ow, off);
      }
    }
    for (; ow < p->OW; ow++) ck_x86_maxpool_bwd_one(p, dxc, xc, grow[ow], oh, ow);
  }
}

/* Chunk: planes [chunk*CK_X86_POOL_PLANES, ...); with relu each plane is
 * zeroed, gets the pool gradient and is masked by x > 0 while in cache
 * (the 2x2 plane kernel does all three in one pass). */
static void ck_x86_maxpool_bwd_chunk(void *ctx, int64_t chunk, int tid) {
  const CkX86Pool2d *p = ctx;
  int64_t c = chunk * CK_X86_POOL_PLANES, cend = ck_x86_min(c + CK_X86_POOL_PLANES, p->NC), i;
#if !defined(CK_GEMM_NO_AVX512)
  float plane[CK_X86_POOL2_PLANE_MAX]; /* the 2x2 planes' addends (16 KiB of stack) */
#else
  float *plane = NULL;
#endif
  (void)tid;
  for (; c < cend; c++) {
    const float *xc = p->x + c * p->H * p->W, *g = p->dy + c * p->OH * p->OW;
    float *dxc = p->dx + c * p->H * p->W;
#if !defined(CK_GEMM_NO_AVX512)
    if (p->relu && p->pair && p->H * p->W <= CK_X86_POOL2_PLANE_MAX) {
      ck_x86_maxpool2x2_relu_bwd_plane_avx512(dxc, xc, g, p->H, p->W, p->OH, p->OW, plane);
      continue;
    }
#endif
    if (p->relu && p->pair2 && 2 * p->OH == p->H && 2 * p->OW == p->W) {
      ck_x86_maxpool2x2_relu_bwd_rows_avx2(dxc, xc, g, p->W, p->OH, p->OW);
      continue;
    }
    if (p->relu)
      for (i = 0; i < p->H * p->W; i++) dxc[i] = 0.0f;
    ck_x86_maxpool_bwd_plane(p, dxc, xc, g, plane);
    if (p->relu)
      for (i = 0; i < p->H * p->W; i++) dxc[i] = xc[i] > 0.0f ? dxc[i] : 0.0f;
  }
}

void ck_x86_maxpool2d_f32(CkPool *pool, float *out, const float *x, int64_t N, int64_t C, int64_t H,
                          int64_t W, int64_t KH, int64_t KW, int64_t sh, int64_t sw, int64_t ph,
                          int64_t pw, int64_t OH, int64_t OW) {
  CkX86Pool2d p;
  if (N * C <= 0 || OH <= 0 || OW <= 0) return;
  if (KH < 1 || KW < 1 || sh < 1 || sw < 1 || ph < 0 || pw < 0) {
    ck_maxpool2d_f32(out, x, N, C, H, W, KH, KW, sh, sw, ph, pw, OH, OW);
    return;
  }
  ck_x86_pool_plan(&p, out, NULL, x, NULL, N * C, H, W, KH, KW, sh, sw, ph, pw, OH, OW);
  ck_pool_parallel_for(pool, (N * C + CK_X86_POOL_PLANES - 1) / CK_X86_POOL_PLANES, ck_x86_maxpool_chunk, &p);
}

void ck_x86_maxpool2d_backward_f32(CkPool *pool, float *dx, const float *dy, const float *x, int64_t N,
                                   int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW, int64_t sh,
                                   int64_t sw, int64_t ph, int64_t pw, int64_t OH, int64_t OW) {
  CkX86Pool2d p;
  if (N * C <= 0 || OH <= 0 || OW <= 0) return;
  if (KH < 1 || KW < 1 || sh < 1 || sw < 1 || ph < 0 || pw < 0) {
    ck_maxpool2d_backward_f32(dx, dy, x, N, C, H, W, KH, KW, sh, sw, ph, pw, OH, OW);
    return;
  }
  ck_x86_pool_plan(&p, NULL, dx, x, dy, N * C, H, W, KH, KW, sh, sw, ph, pw, OH, OW);
  ck_pool_parallel_for(pool, (N * C + CK_X86_POOL_PLANES - 1) / CK_X86_POOL_PLANES, ck_x86_maxpool_bwd_chunk,
                       &p);
}

void ck_x86_maxpool2d_relu_backward_f32(CkPool *pool, float *dx, const float *dy, const float *x, int64_t N,
                                        int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW, int64_t sh,
                                        int64_t sw, int64_t ph, int64_t pw, int64_t OH, int64_t OW) {
  CkX86Pool2d p;
  int64_t i, n = N * C * H * W;
  if (N * C <= 0 || H <= 0 || W <= 0) return;
  if (OH <= 0 || OW <= 0 || KH < 1 || KW < 1 || sh < 1 || sw < 1 || ph < 0 || pw < 0) {
    /* the three steps as written (no outputs: dx is all zeros) */
    memset(dx, 0, (size_t)n * sizeof *dx);
    if (OH > 0 && OW > 0) ck_maxpool2d_backward_f32(dx, dy, x, N, C, H, W, KH, KW, sh, sw, ph, pw, OH, OW);
    for (i = 0; i < n; i++) dx[i] = x[i] > 0.0f ? dx[i] : 0.0f;
    return;
  }
  ck_x86_pool_plan(&p, NULL, dx, x, dy, N * C, H, W, KH, KW, sh, sw, ph, pw, OH, OW);
  p.relu = 1;
  ck_pool_parallel_for(pool, (N * C + CK_X86_POOL_PLANES - 1) / CK_X86_POOL_PLANES, ck_x86_maxpool_bwd_chunk,
                       &p);
}

void ck_x86_conv2d_relu_maxpool2d_f32(CkPool *pool, float *out, const float *x, const float *w, const float *bias,
                                      int64_t N, int64_t C, int64_t H, int64_t W, int64_t OC, int64_t KH,
                                      int64_t KW, int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t groups,
                                      int64_t OH, int64_t OW, float *scratch, int64_t scratch_floats, float *pout,
                                      int64_t PKH, int64_t PKW, int64_t psh, int64_t psw, int64_t pph, int64_t ppw,
                                      int64_t POH, int64_t POW) {
  CkX86Pool2d p;
  int pooled = 0, ok = N > 0 && OC > 0 && OH > 0 && OW > 0 && POH > 0 && POW > 0 && PKH >= 1 && PKW >= 1 &&
                       psh >= 1 && psw >= 1 && pph >= 0 && ppw >= 0;
  if (ok) ck_x86_pool_plan(&p, pout, NULL, out, NULL, N * OC, OH, OW, PKH, PKW, psh, psw, pph, ppw, POH, POW);
  ck_x86_conv2d_run(pool, out, x, w, bias, N, C, H, W, OC, KH, KW, sh, sw, ph, pw, groups, OH, OW, scratch,
                    scratch_floats, 1, ok ? &p : NULL, &pooled);
  if (!pooled)
    ck_x86_maxpool2d_f32(pool, pout, out, N, OC, OH, OW, PKH, PKW, psh, psw, pph, ppw, POH, POW);
}
