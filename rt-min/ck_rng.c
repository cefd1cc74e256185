/* rt-min/ck_rng.c - deterministic random numbers (C99, freestanding apart
 * from <math.h>).
 *
 * Generator: xoshiro256** (Blackman & Vigna), state seeded by four successive
 * splitmix64 outputs. Integer bits are identical on every host; uniform floats
 * use only exact operations; normals use Box-Muller in double and so depend on
 * the host libm's log/cos/sqrt (identical on one libm, within an ulp across). */
#include "ck_rng.h"

#include <math.h>

/* splitmix64: the recommended seeder for xoshiro (never yields an all-zero
 * state from any seed in practice, and spreads nearby seeds apart). */
static uint64_t ck_splitmix64(uint64_t *x) {
  uint64_t z = (*x += UINT64_C(0x9e3779b97f4a7c15));
  z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
  z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
  return z ^ (z >> 31);
}

static uint64_t ck_rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

/* State = splitmix64 outputs 1..4 of the seed. */
void ck_rng_seed(CkRng *r, uint64_t seed) {
  uint64_t x = seed;
  int i;
  for (i = 0; i < 4; i++) r->s[i] = ck_splitmix64(&x);
}

/* Named stream: h = FNV-1a 64 over the 8 little-endian bytes of seed followed
 * by the bytes of the name; the state is then ck_rng_seed(h). Each name gets
 * its own stream, so adding a parameter never shifts the values of others. */
void ck_rng_seed_stream(CkRng *r, uint64_t seed, const char *stream) {
  uint64_t h = UINT64_C(0xcbf29ce484222325);
  const unsigned char *p = (const unsigned char *)stream;
  int i;
  for (i = 0; i < 8; i++) {
    h ^= (seed >> (8 * i)) & 0xffu;
    h *= UINT64_C(0x100000001b3);
  }
  for (; p && *p; p++) {
    h ^= *p;
    h *= UINT64_C(0x100000001b3);
  }
  ck_rng_seed(r, h);
}

/* xoshiro256**: next 64 bits. */
uint64_t ck_rng_u64(CkRng *r) {
  uint64_t *s = r->s;
  uint64_t result = ck_rotl(s[1] * 5, 7) * 9;
  uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = ck_rotl(s[3], 45);
  return result;
}

/* Top 24 bits times 2^-24: exactly representable, in [0, 1). */
float ck_rng_uniform(CkRng *r) {
  return (float)(ck_rng_u64(r) >> 40) * (1.0f / 16777216.0f);
}

/* Box-Muller in double, one variate per call (the sine partner is dropped so
 * the state is only the four words): u1 in (0, 1] so log never sees 0. */
float ck_rng_normal(CkRng *r, float mean, float std) {
  const double two_pi = 6.283185307179586476925286766559;
  double u1 = ((double)(ck_rng_u64(r) >> 11) + 1.0) * (1.0 / 9007199254740992.0);
  double u2 = (double)(ck_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
  double z = sqrt(-2.0 * log(u1)) * cos(two_pi * u2);
  return (float)((double)mean + (double)std * z);
}

/* low + (high - low) * u, computed in double and rounded once. */
void ck_rng_fill_uniform(CkRng *r, float *out, int64_t n, float low, float high) {
  int64_t i;
  double span = (double)high - (double)low;
  for (i = 0; i < n; i++) out[i] = (float)((double)low + span * (double)ck_rng_uniform(r));
}

void ck_rng_fill_normal(CkRng *r, float *out, int64_t n, float mean, float std) {
  int64_t i;
  for (i = 0; i < n; i++) out[i] = ck_rng_normal(r, mean, std);
}
