/* rt-min/x86/ck_x86_math.h - float math for the x86 targets' elementwise
 * loops: expf, logf, tanhf, erff, sigmoid, SiLU and both GELUs, written so
 * that gcc and clang vectorise a loop that calls them.
 *
 * libm's expf/tanhf/erff are out-of-line calls with branches, so a loop that
 * calls one stays scalar (in tiny_gpt, GELU-tanh through libm was 30% of a
 * training step). Here every function is static inline, straight-line C99:
 * all cases are computed and the answer is picked with selects (`c ? a : b`
 * on values already computed, never a branch around work), bit casts go
 * through memcpy, and there is no float-to-int conversion (which would be
 * undefined for NaN): exponents travel in the low mantissa bits of
 * x + 1.5*2^23. Polynomials run in Horner form with explicit fmaf, which the
 * x86-64-v3/v4 targets compile to vfmadd (the projects build with
 * -ffp-contract=off, so nothing else is fused); elsewhere fmaf is libm's
 * correctly rounded fma, so the bits are the same on any host.
 *
 * Accuracy, measured by test-suite/unit/check_x86_math.c against libm in
 * double over every 127th float bit pattern (all signs and exponents: 0,
 * subnormals, huge values) plus +-inf and NaN, in ulp of the exact result
 * (the float spacing at it, 2^-149 at least):
 *   ck_x86_expf     <= 1 ulp   (overflow to inf, underflow through subnormals to 0)
 *   ck_x86_logf     <= 1 ulp   (x < 0: NaN, +-0: -inf, inf: inf)
 *   ck_x86_tanhf    <= 2 ulp
 *   ck_x86_erff     <= 3 ulp
 *   ck_x86_sigmoidf <= 3 ulp   where e^x is a normal float (x > -87)
 *   ck_x86_siluf    <= 4 ulp   where e^x is a normal float (x > -87)
 *   ck_x86_gelu_tanhf <= 3 ulp for x >= -1; below, <= 3 + 3 |2u| ulp,
 *       u = 0.798 (x + 0.0447 x^3): the float argument's own rounding, which
 *       exp magnifies (the reference's 1 + tanh u cancels and is far worse);
 *       results below 2^-100 in magnitude (x < -9.9) may come out as -0
 *   ck_x86_gelu_erff  <= 3 ulp for x >= -0.5; below, the absolute error is
 *       <= 3 ulp + 2^-24 |x|: 1 + erf(x / sqrt 2) cancels, exactly as in the
 *       reference (and PyTorch) formula
 *   ck_x86_reluf, ck_x86_rsqrtf: exact (the reference's own expressions).
 * Against the reference helpers of rt-min/ck_kernels.c (libm) they differ by
 * rounding only: the sum of the two bounds. NaN in gives NaN out everywhere;
 * +-inf and +-0 give the C99 Annex F values.
 *
 * The coefficients were fitted for this file (weighted least squares on
 * Chebyshev nodes, refined towards minimax, rounded to float). */
#ifndef CK_X86_MATH_H
#define CK_X86_MATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/* A file that includes this header calls only some of the functions; that
 * is fine for static inline functions in a header, but clang (ckc-lint)
 * reports the others when it checks the header as a file of its own. */
#if defined(__clang__)
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wunused-function"
#endif

/* 1.5 * 2^23: adding it rounds a float of magnitude < 2^22 to an integer k
 * and leaves k in the low mantissa bits (bits = 0x4B400000 + k). */
#define CK_X86_MAGIC 12582912.0f

/* The bits of a float and back; memcpy is the C99 way that compilers turn
 * into a register move, vector lanes included. */
static inline uint32_t ck_x86_bits(float x) {
  uint32_t u;
  memcpy(&u, &x, sizeof u);
  return u;
}

static inline float ck_x86_from_bits(uint32_t u) {
  float x;
  memcpy(&x, &u, sizeof x);
  return x;
}

/* 2^k for an integer k in [-126, 127] held as k + CK_X86_MAGIC: the exponent
 * field is built in unsigned arithmetic, so any input (even NaN) is defined. */
static inline float ck_x86_pow2_magic(float k_magic) {
  return ck_x86_from_bits((ck_x86_bits(k_magic) - 0x4B400000u + 127u) << 23);
}

/* e^x: n = round(x / ln 2), r = x - n ln 2 (two-piece ln 2, |r| <= 0.35),
 * e^r = 1 + r + r^2 P(r), then times 2^n as 2^n1 * 2^n2 (n1 = round(n/2)) so
 * that results in the subnormal range round once and 2^128 needs no special
 * case. x is clamped to [-104, 89] first (e^-104 rounds to 0, e^89 to inf);
 * the comparisons are false for NaN, which passes through. */
static inline float ck_x86_expf(float x) {
  float xc = x > 89.0f ? 89.0f : x;
  xc = xc < -104.0f ? -104.0f : xc;
  const float n = (xc * 1.44269504088896341f + CK_X86_MAGIC) - CK_X86_MAGIC;
  float r = fmaf(n, -0.693145751953125f, xc); /* ln 2, high part: n * it is exact */
  r = fmaf(n, -1.42860682030941723e-6f, r);   /* ln 2, low part */
  float p = 0.000198785332f;
  p = fmaf(p, r, 0.00139318279f);
  p = fmaf(p, r, 0.00833332725f);
  p = fmaf(p, r, 0.0416664816f);
  p = fmaf(p, r, 0.166666672f);
  p = fmaf(p, r, 0.5f);
  const float y = 1.0f + fmaf(p, r * r, r);
  const float n1 = n * 0.5f + CK_X86_MAGIC;         /* round(n / 2), in magic form */
  const float n2 = (n - (n1 - CK_X86_MAGIC)) + CK_X86_MAGIC; /* n - n1 */
  return (y * ck_x86_pow2_magic(n1)) * ck_x86_pow2_magic(n2);
}

/* log x: x = 2^e m with m in [sqrt(1/2), sqrt 2), f = m - 1 (exact),
 * log(1 + f) = f - f^2/2 + f^3 R(f), plus e ln 2 in two pieces (the high
 * piece has few bits, so e * it is exact). Subnormals are scaled by 2^23
 * first; x < 0, 0, +inf and NaN are patched in at the end. */
static inline float ck_x86_logf(float x) {
  const int sub = x < 1.17549435e-38f;
  const uint32_t u = ck_x86_bits(sub ? x * 8388608.0f : x);
  const float m = ck_x86_from_bits((u & 0x007fffffu) | 0x3f000000u); /* [0.5, 1) */
  float e = (float)(int32_t)((u >> 23) & 0xffu) - (sub ? 149.0f : 126.0f);
  const int low = m < 0.707106781f;
  const float f = low ? (m + m) - 1.0f : m - 1.0f;
  e = low ? e - 1.0f : e;
  float p = 0.0738861188f;
  p = fmaf(p, f, -0.116897546f);
  p = fmaf(p, f, 0.116260387f);
  p = fmaf(p, f, -0.123914078f);
  p = fmaf(p, f, 0.142516628f);
  p = fmaf(p, f, -0.166693926f);
  p = fmaf(p, f, 0.200006589f);
  p = fmaf(p, f, -0.249999806f);
  p = fmaf(p, f, 0.333333313f);
  const float f2 = f * f;
  float y = (f * f2) * p;
  y = fmaf(e, -2.12194440054690583e-4f, y); /* ln 2 - 0.693359375 */
  y = fmaf(f2, -0.5f, y);
  float r = fmaf(e, 0.693359375f, f + y);
  r = x == HUGE_VALF ? x : r;
  r = x == 0.0f ? -HUGE_VALF : r;
  r = x < 0.0f ? NAN : r;
  return x != x ? x : r;
}

/* tanh x without expm1: |x| < 0.625 as x + x^3 Q(x^2) (no cancellation),
 * otherwise sign(x) (1 - 2 / (e^(2|x|) + 1)), which saturates to 1 by itself
 * (e^(2|x|) = inf for |x| > 44.4). */
static inline float ck_x86_tanhf(float x) {
  const float a = fabsf(x);
  const float z = x * x;
  float q = -0.00611562794f;
  q = fmaf(q, z, 0.0210048426f);
  q = fmaf(q, z, -0.0538503528f);
  q = fmaf(q, z, 0.133327305f);
  q = fmaf(q, z, -0.333333254f);
  const float small = copysignf(fmaf(a * z, q, a), x); /* keeps -0 */
  const float big = copysignf(1.0f - 2.0f / (ck_x86_expf(a + a) + 1.0f), x);
  return a < 0.625f ? small : big;
}

/* erf x: |x| <= 1 as x P(x^2); above, 1 - e^(-x^2) G(|x|) with G fitted to
 * erfc(x) e^(x^2) on [1, 4] (erf rounds to 1 beyond 3.84, so |x| is clamped
 * to 4, keeping inf out of G; the clamp keeps NaN). */
static inline float ck_x86_erff(float x) {
  const float a = fabsf(x);
  const float z = x * x;
  float p = 7.87045792e-05f;
  p = fmaf(p, z, -0.000801372575f);
  p = fmaf(p, z, 0.00518852286f);
  p = fmaf(p, z, -0.02685377f);
  p = fmaf(p, z, 0.112835787f);
  p = fmaf(p, z, -0.37612623f);
  p = fmaf(p, z, 1.12837911f);
  const float near0 = x * p;
  const float t = a > 4.0f ? 4.0f : a;
  const float s = t - 2.5f;
  float g = -4.26607158e-07f;
  g = fmaf(g, s, 1.66443613e-06f);
  g = fmaf(g, s, -3.74563479e-06f);
  g = fmaf(g, s, 1.43899733e-05f);
  g = fmaf(g, s, -5.95284109e-05f);
  g = fmaf(g, s, 0.000212910629f);
  g = fmaf(g, s, -0.00073314656f);
  g = fmaf(g, s, 0.00246602367f);
  g = fmaf(g, s, -0.00800169725f);
  g = fmaf(g, s, 0.0249381941f);
  g = fmaf(g, s, -0.0743473396f);
  g = fmaf(g, s, 0.210806355f);
  const float tail = copysignf(1.0f - ck_x86_expf(-(t * t)) * g, x);
  return a <= 1.0f ? near0 : tail;
}

/* 1 / (1 + e^-x), written with e = e^-|x| as 1 / (1 + e) for x >= 0 and
 * e / (1 + e) for x < 0, so that e never overflows: the reference's
 * 1 / (1 + expf(-x)) returns 0 for x < -88.7, where the true value is a
 * (small) normal or subnormal float. */
static inline float ck_x86_sigmoidf(float x) {
  const float e = ck_x86_expf(-fabsf(x));
  const float s = 1.0f / (1.0f + e);
  return x < 0.0f ? e * s : s;
}

/* x sigmoid(x): x / (1 + e^-x) (the reference's and PyTorch's form) for
 * x >= 0, x e^x / (1 + e^x) for x < 0, so that no exp overflows. */
static inline float ck_x86_siluf(float x) {
  const float e = ck_x86_expf(-fabsf(x));
  return (x < 0.0f ? x * e : x) / (1.0f + e);
}

/* Written as a comparison with 0 so that NaN propagates, like torch.relu. */
static inline float ck_x86_reluf(float x) { return x < 0.0f ? 0.0f : x; }

/* 1/sqrt(x), the reference's expression (vectorises with -fno-math-errno). */
static inline float ck_x86_rsqrtf(float x) { return 1.0f / sqrtf(x); }

/* PyTorch gelu(approximate='tanh'), 0.5 x (1 + tanh u) with
 * u = sqrt(2/pi) (x + 0.044715 x^3), computed as x / (1 + e^(-2u)): the same
 * function with one exp and no cancellation in 1 + tanh u for x < 0. */
static inline float ck_x86_gelu_tanhf(float x) {
  const float u = 0.79788456080286535588f * (x + 0.044715f * x * x * x);
  return x / (1.0f + ck_x86_expf(-2.0f * u));
}

/* PyTorch gelu(approximate='none'): 0.5 x (1 + erf(x / sqrt 2)), the
 * reference's formula. */
static inline float ck_x86_gelu_erff(float x) {
  return 0.5f * x * (1.0f + ck_x86_erff(x * 0.70710678118654752440f));
}

#if defined(__clang__)
#pragma clang diagnostic pop
#endif

#endif
