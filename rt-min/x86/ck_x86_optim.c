/* rt-min/x86/ck_x86_optim.c - the x86 optimizer step (ck_x86_optim.h).
 *
 * Built for the baseline ISA like ck_gemm.c: the AVX2 and AVX-512 loops are
 * functions with a target attribute, chosen at run time from what the CPU
 * has, so one object serves both x86 targets and the unit tests can run
 * every variant. The scalar loops are the executable definition of what the
 * vector ones compute, lane by lane: the same float operations in the same
 * order as rt-min/ck_optim.c's ck_sgd_update_f32 / ck_adam_update_f32. */
#include "ck_x86_optim.h"

#include <math.h>
#include <stddef.h>

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define CK_X86_OPTIM_SIMD 1
#include <immintrin.h>
#endif

/* ---- instruction set ------------------------------------------------------------------------ */

/* CK_GEMM_NO_AVX512 (the x86-avx2 target) keeps AVX-512 out of the program,
 * whatever the CPU, as for the GEMM. */
int ck_x86_optim_cpu_has(int isa) {
#ifdef CK_X86_OPTIM_SIMD
  __builtin_cpu_init();
#ifdef CK_GEMM_NO_AVX512
  if (isa == CK_X86_OPTIM_AVX512) return 0;
#else
  if (isa == CK_X86_OPTIM_AVX512) return __builtin_cpu_supports("avx512f") != 0;
#endif
  if (isa == CK_X86_OPTIM_AVX2) return __builtin_cpu_supports("avx2") != 0;
#endif
  return isa == CK_X86_OPTIM_SCALAR;
}

int ck_x86_optim_best_isa(void) {
  if (ck_x86_optim_cpu_has(CK_X86_OPTIM_AVX512)) return CK_X86_OPTIM_AVX512;
  if (ck_x86_optim_cpu_has(CK_X86_OPTIM_AVX2)) return CK_X86_OPTIM_AVX2;
  return CK_X86_OPTIM_SCALAR;
}

/* ---- squared norm of one block ---------------------------------------------------------------- */

/* The fixed tree over the 32 lanes: l[j] += l[j + w] for w = 16, 8, 4, 2, 1. */
static double ck_x86_lane_tree(double *l) {
  int w, j;
  for (w = CK_X86_OPTIM_LANES / 2; w >= 1; w /= 2)
    for (j = 0; j < w; j++) l[j] = l[j] + l[j + w];
  return l[0];
}

/* Element k of the block into lane k % 32, from lane accumulators already
 * holding the first `from` elements; then the tree. Used whole by the
 * scalar variant and for the tails of the vector ones. */
static double ck_x86_sq_finish(double *l, const float *g, int64_t from, int64_t n, float gscale) {
  int64_t k;
  for (k = from; k < n; k++) {
    double x = (double)(g[k] * gscale);
    l[k % CK_X86_OPTIM_LANES] += x * x;
  }
  return ck_x86_lane_tree(l);
}

static double ck_x86_sq_block_scalar(const float *g, int64_t n, float gscale) {
  double l[CK_X86_OPTIM_LANES] = {0};
  return ck_x86_sq_finish(l, g, 0, n, gscale);
}

#ifdef CK_X86_OPTIM_SIMD
/* Lanes 0-31 in four 8-double accumulators; 32 floats per iteration keep
 * four independent add chains in flight. */
__attribute__((target("avx512f"))) static double ck_x86_sq_block_avx512(const float *g, int64_t n,
                                                                         float gscale) {
  __m512d a0 = _mm512_setzero_pd(), a1 = _mm512_setzero_pd(), a2 = _mm512_setzero_pd(),
          a3 = _mm512_setzero_pd();
  __m512 s = _mm512_set1_ps(gscale);
  double l[CK_X86_OPTIM_LANES];
  int64_t k = 0;
  for (; k + CK_X86_OPTIM_LANES <= n; k += CK_X86_OPTIM_LANES) {
    __m512 x0 = _mm512_mul_ps(_mm512_loadu_ps(g + k), s), x1 = _mm512_mul_ps(_mm512_loadu_ps(g + k + 16), s);
    __m512d d0 = _mm512_cvtps_pd(_mm512_castps512_ps256(x0));
    __m512d d1 = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(x0), 1)));
    __m512d d2 = _mm512_cvtps_pd(_mm512_castps512_ps256(x1));
    __m512d d3 = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(x1), 1)));
    a0 = _mm512_add_pd(a0, _mm512_mul_pd(d0, d0));
    a1 = _mm512_add_pd(a1, _mm512_mul_pd(d1, d1));
    a2 = _mm512_add_pd(a2, _mm512_mul_pd(d2, d2));
    a3 = _mm512_add_pd(a3, _mm512_mul_pd(d3, d3));
  }
  _mm512_storeu_pd(l, a0);
  _mm512_storeu_pd(l + 8, a1);
  _mm512_storeu_pd(l + 16, a2);
  _mm512_storeu_pd(l + 24, a3);
  return ck_x86_sq_finish(l, g, k, n, gscale);
}

/* Lanes 0-31 in eight 4-double accumulators. */
__attribute__((target("avx2"))) static double ck_x86_sq_block_avx2(const float *g, int64_t n, float gscale) {
  __m256d a[8];
  __m256 s = _mm256_set1_ps(gscale);
  double l[CK_X86_OPTIM_LANES];
  int64_t k = 0;
  int q;
  for (q = 0; q < 8; q++) a[q] = _mm256_setzero_pd();
  for (; k + CK_X86_OPTIM_LANES <= n; k += CK_X86_OPTIM_LANES)
    for (q = 0; q < 4; q++) {
      __m256 x = _mm256_mul_ps(_mm256_loadu_ps(g + k + 8 * q), s);
      __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(x)), hi = _mm256_cvtps_pd(_mm256_extractf128_ps(x, 1));
      a[2 * q] = _mm256_add_pd(a[2 * q], _mm256_mul_pd(lo, lo));
      a[2 * q + 1] = _mm256_add_pd(a[2 * q + 1], _mm256_mul_pd(hi, hi));
    }
  for (q = 0; q < 8; q++) _mm256_storeu_pd(l + 4 * q, a[q]);
  return ck_x86_sq_finish(l, g, k, n, gscale);
}
#endif

static double ck_x86_sq_block(int isa, const float *g, int64_t n, float gscale) {
#ifdef CK_X86_OPTIM_SIMD
  if (isa == CK_X86_OPTIM_AVX512) return ck_x86_sq_block_avx512(g, n, gscale);
  if (isa == CK_X86_OPTIM_AVX2) return ck_x86_sq_block_avx2(g, n, gscale);
#endif
  return ck_x86_sq_block_scalar(g, n, gscale);
}

/* ---- the update of one block ---------------------------------------------------------------- */

/* The step's float scalars, rounded once from the doubles exactly as the
 * reference kernels round them; index [decay] picks the weight decay of a
 * param with decay off (0) or on (1). */
typedef struct CkX86OptimK {
  int kind;
  float gscale, coef;
  /* SGD */
  float mom, damp, neg_lr;
  int has_mom, nesterov, first;
  /* Adam / AdamW */
  float b1, omb1, b2, omb2, neg_step, bc2s, eps;
  int decoupled;
  /* both */
  float wd[2], shrink[2];
  int has_wd[2];
} CkX86OptimK;

/* ck_sgd_update_f32 and ck_adam_update_f32's scalar set-up, per decay. */
static void ck_x86_optim_scalars(CkX86OptimK *k, const CkOptimStep *s) {
  int d;
  double bc1 = 1.0 - pow(s->beta1, (double)s->t), bc2 = 1.0 - pow(s->beta2, (double)s->t);
  k->kind = s->optim;
  k->gscale = s->gscale;
  k->coef = s->coef;
  k->mom = (float)s->momentum;
  k->damp = (float)(1.0 - s->dampening);
  k->neg_lr = (float)(-s->lr);
  k->has_mom = s->momentum != 0.0;
  k->nesterov = s->nesterov;
  k->first = s->first_step;
  k->b1 = (float)s->beta1;
  k->omb1 = (float)(1.0 - s->beta1);
  k->b2 = (float)s->beta2;
  k->omb2 = (float)(1.0 - s->beta2);
  k->neg_step = (float)(-(s->lr / bc1));
  k->bc2s = (float)sqrt(bc2);
  k->eps = (float)s->eps;
  k->decoupled = s->optim == CK_OPTIM_ADAMW;
  for (d = 0; d < 2; d++) {
    double wd = d ? s->weight_decay : 0.0;
    k->wd[d] = (float)wd;
    k->shrink[d] = (float)(1.0 - s->lr * wd);
    k->has_wd[d] = wd != 0.0;
  }
}

/* ck_sgd_update_f32's element loop on (g * gscale) * coef. */
static void ck_x86_sgd_scalar(const CkX86OptimK *k, int dc, float *p, const float *g, float *buf, int64_t n) {
  int64_t i;
  for (i = 0; i < n; i++) {
    float d = g[i] * k->gscale * k->coef;
    if (k->has_wd[dc]) d = d + k->wd[dc] * p[i];
    if (k->has_mom) {
      buf[i] = k->first ? d : buf[i] * k->mom + k->damp * d;
      d = k->nesterov ? d + k->mom * buf[i] : buf[i];
    }
    p[i] = p[i] + k->neg_lr * d;
  }
}

/* ck_adam_update_f32's element loop on (g * gscale) * coef. */
static void ck_x86_adam_scalar(const CkX86OptimK *k, int dc, float *p, const float *g, float *m, float *v,
                               int64_t n) {
  int64_t i;
  for (i = 0; i < n; i++) {
    float gi = g[i] * k->gscale * k->coef, denom;
    if (k->decoupled)
      p[i] = p[i] * k->shrink[dc];
    else if (k->has_wd[dc])
      gi = gi + k->wd[dc] * p[i];
    m[i] = m[i] * k->b1 + k->omb1 * gi;
    v[i] = v[i] * k->b2 + k->omb2 * gi * gi;
    denom = sqrtf(v[i]) / k->bc2s + k->eps;
    p[i] = p[i] + k->neg_step * m[i] / denom;
  }
}

#ifdef CK_X86_OPTIM_SIMD
/* Subnormals. A float multiply, divide or square root that reads or makes a
 * subnormal takes a microcode assist (about 35 ns per instruction on the
 * benchmark VM's AVX-512 Xeon; adds, compares and conversions take none).
 * Adam's moments of a parameter whose gradient stays 0 (a dead ReLU unit)
 * decay geometrically through that range for hundreds of steps, which made
 * such steps 10-30x slower. So a vector with any lane near the range
 * (ck_x86_near_sub*: 0 < |x| below a threshold) runs its multiplies,
 * divides and square roots in double and rounds each result to float once:
 * the double product of two floats is exact, and for the quotient and the
 * square root double (53 bits >= 2*24 + 2) makes the two roundings equal to
 * one (Figueroa, "When is double rounding innocuous?", 1995), so every
 * result is the float operation's, subnormal or not, bit for bit. The
 * thresholds only decide speed, never values. */
#define CK_X86_NEAR_G 0x2B800000  /* 2^-40: g*g stays normal */
#define CK_X86_NEAR_M 0x0D800000  /* 2^-100: m, buf, p times a step size stay normal */
#define CK_X86_NEAR_V 0x03800000  /* 2^-120: v * beta2 and sqrt(v) stay normal */

/* Lanes with 0 < |x| < the float whose bits are `below`. */
__attribute__((target("avx512f"))) static __mmask16 ck_x86_near_sub16(__m512 x, int below) {
  __m512i a = _mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32(0x7fffffff));
  return _mm512_cmplt_epu32_mask(_mm512_sub_epi32(a, _mm512_set1_epi32(1)), _mm512_set1_epi32(below - 1));
}

/* Two halves of 8 doubles back into 16 floats, each rounded once. */
__attribute__((target("avx512f"))) static __m512 ck_x86_join16(__m512d lo, __m512d hi) {
  __m512d j = _mm512_castps_pd(_mm512_castps256_ps512(_mm512_cvtpd_ps(lo)));
  return _mm512_castpd_ps(_mm512_insertf64x4(j, _mm256_castps_pd(_mm512_cvtpd_ps(hi)), 1));
}

__attribute__((target("avx512f"))) static __m512d ck_x86_lo16(__m512 x) {
  return _mm512_cvtps_pd(_mm512_castps512_ps256(x));
}

__attribute__((target("avx512f"))) static __m512d ck_x86_hi16(__m512 x) {
  return _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(x), 1)));
}

/* a * b, a / b, sqrt(a) as float operations; wide: through double. */
__attribute__((target("avx512f"))) static __m512 ck_x86_mul16(int wide, __m512 a, __m512 b) {
  if (!wide) return _mm512_mul_ps(a, b);
  return ck_x86_join16(_mm512_mul_pd(ck_x86_lo16(a), ck_x86_lo16(b)), _mm512_mul_pd(ck_x86_hi16(a), ck_x86_hi16(b)));
}

__attribute__((target("avx512f"))) static __m512 ck_x86_div16(int wide, __m512 a, __m512 b) {
  if (!wide) return _mm512_div_ps(a, b);
  return ck_x86_join16(_mm512_div_pd(ck_x86_lo16(a), ck_x86_lo16(b)), _mm512_div_pd(ck_x86_hi16(a), ck_x86_hi16(b)));
}

__attribute__((target("avx512f"))) static __m512 ck_x86_sqrt16(int wide, __m512 a) {
  if (!wide) return _mm512_sqrt_ps(a);
  return ck_x86_join16(_mm512_sqrt_pd(ck_x86_lo16(a)), _mm512_sqrt_pd(ck_x86_hi16(a)));
}

/* 16 lanes of ck_x86_sgd_scalar; the tail runs the scalar loop. */
__attribute__((target("avx512f"))) static void ck_x86_sgd_avx512(const CkX86OptimK *k, int dc, float *p,
                                                                  const float *g, float *buf, int64_t n) {
  __m512 s = _mm512_set1_ps(k->gscale), c = _mm512_set1_ps(k->coef), wd = _mm512_set1_ps(k->wd[dc]);
  __m512 mom = _mm512_set1_ps(k->mom), damp = _mm512_set1_ps(k->damp), nlr = _mm512_set1_ps(k->neg_lr);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m512 pi = _mm512_loadu_ps(p + i), gi = _mm512_loadu_ps(g + i), bi = _mm512_setzero_ps(), d;
    __mmask16 near = ck_x86_near_sub16(gi, CK_X86_NEAR_M) | ck_x86_near_sub16(pi, CK_X86_NEAR_M);
    int w;
    if (k->has_mom && !k->first) {
      bi = _mm512_loadu_ps(buf + i);
      near |= ck_x86_near_sub16(bi, CK_X86_NEAR_M);
    }
    w = near != 0;
    d = ck_x86_mul16(w, ck_x86_mul16(w, gi, s), c);
    if (k->has_wd[dc]) d = _mm512_add_ps(d, ck_x86_mul16(w, wd, pi));
    if (k->has_mom) {
      bi = k->first ? d : _mm512_add_ps(ck_x86_mul16(w, bi, mom), ck_x86_mul16(w, damp, d));
      _mm512_storeu_ps(buf + i, bi);
      d = k->nesterov ? _mm512_add_ps(d, ck_x86_mul16(w, mom, bi)) : bi;
    }
    _mm512_storeu_ps(p + i, _mm512_add_ps(pi, ck_x86_mul16(w, nlr, d)));
  }
  ck_x86_sgd_scalar(k, dc, p + i, g + i, buf ? buf + i : NULL, n - i);
}

/* 16 lanes of ck_x86_adam_scalar (sqrt and div are exact, as sqrtf and /). */
__attribute__((target("avx512f"))) static void ck_x86_adam_avx512(const CkX86OptimK *k, int dc, float *p,
                                                                   const float *g, float *m, float *v,
                                                                   int64_t n) {
  __m512 s = _mm512_set1_ps(k->gscale), c = _mm512_set1_ps(k->coef), wd = _mm512_set1_ps(k->wd[dc]);
  __m512 shrink = _mm512_set1_ps(k->shrink[dc]), b1 = _mm512_set1_ps(k->b1), omb1 = _mm512_set1_ps(k->omb1);
  __m512 b2 = _mm512_set1_ps(k->b2), omb2 = _mm512_set1_ps(k->omb2), nstep = _mm512_set1_ps(k->neg_step);
  __m512 bc2s = _mm512_set1_ps(k->bc2s), eps = _mm512_set1_ps(k->eps);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m512 pi = _mm512_loadu_ps(p + i), gi = _mm512_loadu_ps(g + i);
    __m512 mi = _mm512_loadu_ps(m + i), vi = _mm512_loadu_ps(v + i), den;
    int w = (ck_x86_near_sub16(gi, CK_X86_NEAR_G) | ck_x86_near_sub16(pi, CK_X86_NEAR_M) |
             ck_x86_near_sub16(mi, CK_X86_NEAR_M) | ck_x86_near_sub16(vi, CK_X86_NEAR_V)) != 0;
    gi = ck_x86_mul16(w, ck_x86_mul16(w, gi, s), c);
    if (k->decoupled)
      pi = ck_x86_mul16(w, pi, shrink);
    else if (k->has_wd[dc])
      gi = _mm512_add_ps(gi, ck_x86_mul16(w, wd, pi));
    mi = _mm512_add_ps(ck_x86_mul16(w, mi, b1), ck_x86_mul16(w, omb1, gi));
    vi = _mm512_add_ps(ck_x86_mul16(w, vi, b2), ck_x86_mul16(w, ck_x86_mul16(w, omb2, gi), gi));
    den = _mm512_add_ps(ck_x86_div16(w, ck_x86_sqrt16(w, vi), bc2s), eps);
    _mm512_storeu_ps(m + i, mi);
    _mm512_storeu_ps(v + i, vi);
    _mm512_storeu_ps(p + i, _mm512_add_ps(pi, ck_x86_div16(w, ck_x86_mul16(w, nstep, mi), den)));
  }
  ck_x86_adam_scalar(k, dc, p + i, g + i, m + i, v + i, n - i);
}

/* AVX2 versions of the helpers above: 8 floats, two halves of 4 doubles. */
__attribute__((target("avx2"))) static int ck_x86_near_sub8(__m256 x, int below) {
  __m256i a = _mm256_and_si256(_mm256_castps_si256(x), _mm256_set1_epi32(0x7fffffff));
  __m256i in = _mm256_and_si256(_mm256_cmpgt_epi32(a, _mm256_setzero_si256()),
                                _mm256_cmpgt_epi32(_mm256_set1_epi32(below), a));
  return _mm256_movemask_ps(_mm256_castsi256_ps(in));
}

__attribute__((target("avx2"))) static __m256 ck_x86_join8(__m256d lo, __m256d hi) {
  return _mm256_insertf128_ps(_mm256_castps128_ps256(_mm256_cvtpd_ps(lo)), _mm256_cvtpd_ps(hi), 1);
}

__attribute__((target("avx2"))) static __m256d ck_x86_lo8(__m256 x) { return _mm256_cvtps_pd(_mm256_castps256_ps128(x)); }

__attribute__((target("avx2"))) static __m256d ck_x86_hi8(__m256 x) { return _mm256_cvtps_pd(_mm256_extractf128_ps(x, 1)); }

__attribute__((target("avx2"))) static __m256 ck_x86_mul8(int wide, __m256 a, __m256 b) {
  if (!wide) return _mm256_mul_ps(a, b);
  return ck_x86_join8(_mm256_mul_pd(ck_x86_lo8(a), ck_x86_lo8(b)), _mm256_mul_pd(ck_x86_hi8(a), ck_x86_hi8(b)));
}

__attribute__((target("avx2"))) static __m256 ck_x86_div8(int wide, __m256 a, __m256 b) {
  if (!wide) return _mm256_div_ps(a, b);
  return ck_x86_join8(_mm256_div_pd(ck_x86_lo8(a), ck_x86_lo8(b)), _mm256_div_pd(ck_x86_hi8(a), ck_x86_hi8(b)));
}

__attribute__((target("avx2"))) static __m256 ck_x86_sqrt8(int wide, __m256 a) {
  if (!wide) return _mm256_sqrt_ps(a);
  return ck_x86_join8(_mm256_sqrt_pd(ck_x86_lo8(a)), _mm256_sqrt_pd(ck_x86_hi8(a)));
}

/* 8 lanes of ck_x86_sgd_scalar. */
__attribute__((target("avx2"))) static void ck_x86_sgd_avx2(const CkX86OptimK *k, int dc, float *p,
                                                             const float *g, float *buf, int64_t n) {
  __m256 s = _mm256_set1_ps(k->gscale), c = _mm256_set1_ps(k->coef), wd = _mm256_set1_ps(k->wd[dc]);
  __m256 mom = _mm256_set1_ps(k->mom), damp = _mm256_set1_ps(k->damp), nlr = _mm256_set1_ps(k->neg_lr);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 pi = _mm256_loadu_ps(p + i), gi = _mm256_loadu_ps(g + i), bi = _mm256_setzero_ps(), d;
    int near = ck_x86_near_sub8(gi, CK_X86_NEAR_M) | ck_x86_near_sub8(pi, CK_X86_NEAR_M), w;
    if (k->has_mom && !k->first) {
      bi = _mm256_loadu_ps(buf + i);
      near |= ck_x86_near_sub8(bi, CK_X86_NEAR_M);
    }
    w = near != 0;
    d = ck_x86_mul8(w, ck_x86_mul8(w, gi, s), c);
    if (k->has_wd[dc]) d = _mm256_add_ps(d, ck_x86_mul8(w, wd, pi));
    if (k->has_mom) {
      bi = k->first ? d : _mm256_add_ps(ck_x86_mul8(w, bi, mom), ck_x86_mul8(w, damp, d));
      _mm256_storeu_ps(buf + i, bi);
      d = k->nesterov ? _mm256_add_ps(d, ck_x86_mul8(w, mom, bi)) : bi;
    }
    _mm256_storeu_ps(p + i, _mm256_add_ps(pi, ck_x86_mul8(w, nlr, d)));
  }
  ck_x86_sgd_scalar(k, dc, p + i, g + i, buf ? buf + i : NULL, n - i);
}

/* 8 lanes of ck_x86_adam_scalar. */
__attribute__((target("avx2"))) static void ck_x86_adam_avx2(const CkX86OptimK *k, int dc, float *p,
                                                              const float *g, float *m, float *v, int64_t n) {
  __m256 s = _mm256_set1_ps(k->gscale), c = _mm256_set1_ps(k->coef), wd = _mm256_set1_ps(k->wd[dc]);
  __m256 shrink = _mm256_set1_ps(k->shrink[dc]), b1 = _mm256_set1_ps(k->b1), omb1 = _mm256_set1_ps(k->omb1);
  __m256 b2 = _mm256_set1_ps(k->b2), omb2 = _mm256_set1_ps(k->omb2), nstep = _mm256_set1_ps(k->neg_step);
  __m256 bc2s = _mm256_set1_ps(k->bc2s), eps = _mm256_set1_ps(k->eps);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 pi = _mm256_loadu_ps(p + i), gi = _mm256_loadu_ps(g + i);
    __m256 mi = _mm256_loadu_ps(m + i), vi = _mm256_loadu_ps(v + i), den;
    int w = (ck_x86_near_sub8(gi, CK_X86_NEAR_G) | ck_x86_near_sub8(pi, CK_X86_NEAR_M) |
             ck_x86_near_sub8(mi, CK_X86_NEAR_M) | ck_x86_near_sub8(vi, CK_X86_NEAR_V)) != 0;
    gi = ck_x86_mul8(w, ck_x86_mul8(w, gi, s), c);
    if (k->decoupled)
      pi = ck_x86_mul8(w, pi, shrink);
    else if (k->has_wd[dc])
      gi = _mm256_add_ps(gi, ck_x86_mul8(w, wd, pi));
    mi = _mm256_add_ps(ck_x86_mul8(w, mi, b1), ck_x86_mul8(w, omb1, gi));
    vi = _mm256_add_ps(ck_x86_mul8(w, vi, b2), ck_x86_mul8(w, ck_x86_mul8(w, omb2, gi), gi));
    den = _mm256_add_ps(ck_x86_div8(w, ck_x86_sqrt8(w, vi), bc2s), eps);
    _mm256_storeu_ps(m + i, mi);
    _mm256_storeu_ps(v + i, vi);
    _mm256_storeu_ps(p + i, _mm256_add_ps(pi, ck_x86_div8(w, ck_x86_mul8(w, nstep, mi), den)));
  }
  ck_x86_adam_scalar(k, dc, p + i, g + i, m + i, v + i, n - i);
}
#endif

/* n elements of one param (decay dc) from p/g/m0/m1, already offset. */
static void ck_x86_update_block(int isa, const CkX86OptimK *k, int dc, float *p, const float *g, float *m0,
                                float *m1, int64_t n) {
  if (k->kind == CK_OPTIM_SGD) {
#ifdef CK_X86_OPTIM_SIMD
    if (isa == CK_X86_OPTIM_AVX512) {
      ck_x86_sgd_avx512(k, dc, p, g, m0, n);
      return;
    }
    if (isa == CK_X86_OPTIM_AVX2) {
      ck_x86_sgd_avx2(k, dc, p, g, m0, n);
      return;
    }
#endif
    ck_x86_sgd_scalar(k, dc, p, g, m0, n);
    return;
  }
#ifdef CK_X86_OPTIM_SIMD
  if (isa == CK_X86_OPTIM_AVX512) {
    ck_x86_adam_avx512(k, dc, p, g, m0, m1, n);
    return;
  }
  if (isa == CK_X86_OPTIM_AVX2) {
    ck_x86_adam_avx2(k, dc, p, g, m0, m1, n);
    return;
  }
#endif
  ck_x86_adam_scalar(k, dc, p, g, m0, m1, n);
}

/* ---- blocks over the pool ---------------------------------------------------------------------- */

/* Blocks of one param: trainable params only, ceil(numel / BLOCK). */
static int64_t ck_x86_optim_nblocks(const CkParamDesc *p) {
  if (!p->trainable || p->numel <= 0) return 0;
  return (p->numel + CK_X86_OPTIM_BLOCK - 1) / CK_X86_OPTIM_BLOCK;
}

typedef struct CkX86OptimJob {
  int isa;
  const CkParamDesc *params;
  int nparams;
  const int64_t *first; /* nparams + 1: the global index of each param's first block */
  const float *grads;
  float gscale;
  double *sums; /* norm: one per block */
  float *weights, *mom0, *mom1;
  const CkX86OptimK *k;
} CkX86OptimJob;

/* Global block c -> its param (binary search over `first`) and range. */
static const CkParamDesc *ck_x86_optim_locate(const CkX86OptimJob *j, int64_t c, int64_t *off, int64_t *n) {
  int lo = 0, hi = j->nparams - 1;
  const CkParamDesc *p;
  int64_t b;
  while (lo < hi) { /* the last param whose first block <= c */
    int mid = lo + (hi - lo + 1) / 2;
    if (j->first[mid] <= c) lo = mid;
    else hi = mid - 1;
  }
  p = &j->params[lo];
  b = c - j->first[lo];
  *off = p->offset + b * CK_X86_OPTIM_BLOCK;
  *n = p->numel - b * CK_X86_OPTIM_BLOCK < CK_X86_OPTIM_BLOCK ? p->numel - b * CK_X86_OPTIM_BLOCK
                                                              : CK_X86_OPTIM_BLOCK;
  return p;
}

static void ck_x86_norm_chunk(void *ctx, int64_t c, int tid) {
  const CkX86OptimJob *j = (const CkX86OptimJob *)ctx;
  int64_t off, n;
  (void)tid;
  ck_x86_optim_locate(j, c, &off, &n);
  j->sums[c] = ck_x86_sq_block(j->isa, j->grads + off, n, j->gscale);
}

static void ck_x86_update_chunk(void *ctx, int64_t c, int tid) {
  const CkX86OptimJob *j = (const CkX86OptimJob *)ctx;
  int64_t off, n;
  const CkParamDesc *p = ck_x86_optim_locate(j, c, &off, &n);
  (void)tid;
  ck_x86_update_block(j->isa, j->k, p->decay != 0, j->weights + off, j->grads + off,
                      j->mom0 ? j->mom0 + off : NULL, j->mom1 ? j->mom1 + off : NULL, n);
}

/* The block table in the pool's shared scratch (first[], then `extra`
 * doubles); NULL for one thread or no memory: the caller then walks the
 * blocks in order on its own thread, which gives the same results. */
static int64_t *ck_x86_optim_table(CkPool *pool, const CkParamDesc *params, int nparams, int64_t extra,
                                   int64_t *nblocks) {
  int64_t total = 0, *first;
  int i;
  for (i = 0; i < nparams; i++) total += ck_x86_optim_nblocks(&params[i]);
  *nblocks = total;
  if (ck_pool_threads(pool) <= 1 || total <= 1 || nparams <= 0) return NULL;
  first = (int64_t *)ck_pool_scratch(pool, -1, (size_t)(nparams + 1 + (extra ? total : 0)) * sizeof(int64_t));
  if (!first) return NULL;
  total = 0;
  for (i = 0; i < nparams; i++) {
    first[i] = total;
    total += ck_x86_optim_nblocks(&params[i]);
  }
  first[nparams] = total;
  return first;
}

double ck_x86_grad_sq_norm_f32_isa(int isa, CkPool *pool, const CkParamDesc *params, int nparams,
                                   const float *grads, float gscale) {
  CkX86OptimJob j;
  int64_t nblocks, c, b;
  double sum = 0.0;
  int i;
  if (!ck_x86_optim_cpu_has(isa)) isa = CK_X86_OPTIM_SCALAR;
  j.first = ck_x86_optim_table(pool, params, nparams, 1, &nblocks);
  if (!j.first) { /* one thread: the same blocks, summed as they come */
    for (i = 0; i < nparams; i++)
      for (b = 0; b < ck_x86_optim_nblocks(&params[i]); b++) {
        int64_t n = params[i].numel - b * CK_X86_OPTIM_BLOCK;
        sum += ck_x86_sq_block(isa, grads + params[i].offset + b * CK_X86_OPTIM_BLOCK,
                               n < CK_X86_OPTIM_BLOCK ? n : CK_X86_OPTIM_BLOCK, gscale);
      }
    return sum;
  }
  j.isa = isa;
  j.params = params;
  j.nparams = nparams;
  j.grads = grads;
  j.gscale = gscale;
  j.sums = (double *)(void *)(j.first + nparams + 1);
  j.weights = j.mom0 = j.mom1 = NULL;
  j.k = NULL;
  ck_pool_parallel_for(pool, nblocks, ck_x86_norm_chunk, &j);
  for (c = 0; c < nblocks; c++) sum += j.sums[c];
  return sum;
}

double ck_x86_grad_sq_norm_f32(CkPool *pool, const CkParamDesc *params, int nparams, const float *grads,
                               float gscale) {
  return ck_x86_grad_sq_norm_f32_isa(ck_x86_optim_best_isa(), pool, params, nparams, grads, gscale);
}

void ck_x86_optim_update_f32_isa(int isa, CkPool *pool, const CkParamDesc *params, int nparams,
                                 float *weights, const float *grads, float *mom0, float *mom1,
                                 const CkOptimStep *s) {
  CkX86OptimK k;
  CkX86OptimJob j;
  int64_t nblocks;
  int i;
  if (!ck_x86_optim_cpu_has(isa)) isa = CK_X86_OPTIM_SCALAR;
  ck_x86_optim_scalars(&k, s);
  if (k.kind == CK_OPTIM_SGD) {
    mom1 = NULL;
    if (!k.has_mom) mom0 = NULL;
  }
  j.first = ck_x86_optim_table(pool, params, nparams, 0, &nblocks);
  if (!j.first) { /* one thread: each param in one go */
    for (i = 0; i < nparams; i++) {
      const CkParamDesc *p = &params[i];
      int64_t o = p->offset;
      if (!p->trainable || p->numel <= 0) continue;
      ck_x86_update_block(isa, &k, p->decay != 0, weights + o, grads + o, mom0 ? mom0 + o : NULL,
                          mom1 ? mom1 + o : NULL, p->numel);
    }
    return;
  }
  j.isa = isa;
  j.params = params;
  j.nparams = nparams;
  j.grads = grads;
  j.gscale = s->gscale;
  j.sums = NULL;
  j.weights = weights;
  j.mom0 = mom0;
  j.mom1 = mom1;
  j.k = &k;
  ck_pool_parallel_for(pool, nblocks, ck_x86_update_chunk, &j);
}

void ck_x86_optim_update_f32(CkPool *pool, const CkParamDesc *params, int nparams, float *weights,
                             const float *grads, float *mom0, float *mom1, const CkOptimStep *s) {
  ck_x86_optim_update_f32_isa(ck_x86_optim_best_isa(), pool, params, nparams, weights, grads, mom0, mom1, s);
}

/* ---- the table for ck_main ---------------------------------------------------------------------- */

static double ck_x86_optim_norm_entry(void *ctx, const CkParamDesc *params, int nparams, const float *grads,
                                      float gscale) {
  return ck_x86_grad_sq_norm_f32((CkPool *)ctx, params, nparams, grads, gscale);
}

static void ck_x86_optim_update_entry(void *ctx, const CkParamDesc *params, int nparams, float *weights,
                                      const float *grads, float *mom0, float *mom1, const CkOptimStep *s) {
  ck_x86_optim_update_f32((CkPool *)ctx, params, nparams, weights, grads, mom0, mom1, s);
}

const CkOptimOps ck_x86_optim_ops = {ck_x86_optim_norm_entry, ck_x86_optim_update_entry};
