#include "odl/rng.h"

#include <math.h>

void odl_rng_seed(odl_rng *r, uint64_t seed, uint64_t stream)
{
    r->state = 0u;
    r->inc = (stream << 1u) | 1u;
    (void)odl_rng_u32(r);
    r->state += seed;
    (void)odl_rng_u32(r);
}

uint32_t odl_rng_u32(odl_rng *r)
{
    uint64_t old = r->state;
    r->state = old * 6364136223846793005ULL + r->inc;
    uint32_t xorshifted = (uint32_t)(((old >> 18u) ^ old) >> 27u);
    uint32_t rot = (uint32_t)(old >> 59u);
    return (xorshifted >> rot) | (xorshifted << ((32u - rot) & 31u));
}

uint32_t odl_rng_below(odl_rng *r, uint32_t n)
{
    if (n <= 1)
        return 0;
    /* Lemire-free simple rejection: reject the biased low tail. */
    uint32_t threshold = (uint32_t)(-n) % n;
    for (;;) {
        uint32_t v = odl_rng_u32(r);
        if (v >= threshold)
            return v % n;
    }
}

float odl_rng_uniform(odl_rng *r)
{
    return (float)(odl_rng_u32(r) >> 8) * (1.0f / 16777216.0f);
}

float odl_rng_normal(odl_rng *r)
{
    float u1 = ((float)(odl_rng_u32(r) >> 8) + 0.5f) * (1.0f / 16777216.0f);
    float u2 = odl_rng_uniform(r);
    return sqrtf(-2.0f * logf(u1)) * cosf(6.28318530718f * u2);
}

void odl_rng_shuffle_u32(odl_rng *r, uint32_t *v, uint32_t n)
{
    for (uint32_t i = n; i > 1; i--) {
        uint32_t j = odl_rng_below(r, i);
        uint32_t t = v[i - 1];
        v[i - 1] = v[j];
        v[j] = t;
    }
}
