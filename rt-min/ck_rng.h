/* rt-min/ck_rng.h - deterministic random numbers for initialisation, data
 * sampling and dropout: the same seed gives the same bits on every host
 * (integer generator; floats derived with exactly-rounded operations only). */
#ifndef CK_RNG_H
#define CK_RNG_H

#include <stdint.h>

typedef struct CkRng {
  uint64_t s[4]; /* xoshiro256** state */
} CkRng;

void ck_rng_seed(CkRng *r, uint64_t seed);
/* An independent stream for a named purpose (e.g. a parameter name), so that
 * adding a parameter does not change the values of the others. */
void ck_rng_seed_stream(CkRng *r, uint64_t seed, const char *stream);
uint64_t ck_rng_u64(CkRng *r);
float ck_rng_uniform(CkRng *r);              /* [0, 1) with 24 random bits */
float ck_rng_normal(CkRng *r, float mean, float std);
void ck_rng_fill_uniform(CkRng *r, float *out, int64_t n, float low, float high);
void ck_rng_fill_normal(CkRng *r, float *out, int64_t n, float mean, float std);

#endif
