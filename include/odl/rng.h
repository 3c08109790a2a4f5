/* odl/rng.h — an explicit, seedable random number generator (PCG32).
 * There is no global RNG: everything stochastic takes an `odl_rng *`, so two
 * learners never interfere and a run repeats bit for bit from its seed. */
#ifndef ODL_RNG_H
#define ODL_RNG_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct odl_rng {
    uint64_t state;
    uint64_t inc;
} odl_rng;

/* Seeds the generator; the same (seed, stream) always gives the same sequence. */
void odl_rng_seed(odl_rng *r, uint64_t seed, uint64_t stream);
/* Uniform 32-bit value. These cannot fail: they return values, not a status. */
uint32_t odl_rng_u32(odl_rng *r);
/* Uniform integer in [0, n) without modulo bias; n > 0. */
uint32_t odl_rng_below(odl_rng *r, uint32_t n);
/* Uniform float in [0, 1). */
float odl_rng_uniform(odl_rng *r);
/* Standard normal (Box–Muller, one value per call). */
float odl_rng_normal(odl_rng *r);
/* Fisher–Yates shuffle of an index array. */
void odl_rng_shuffle_u32(odl_rng *r, uint32_t *v, uint32_t n);

#ifdef __cplusplus
}
#endif
#endif
