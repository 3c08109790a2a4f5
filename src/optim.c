#include "odl/optim.h"

#include <math.h>

odl_optim_cfg odl_optim_defaults(odl_optim_kind kind)
{
    odl_optim_cfg c;
    c.kind = kind;
    c.lr = kind == ODL_OPTIM_ADAM ? 1e-3f : 1e-2f;
    c.momentum = 0.0f;
    c.weight_decay = 0.0f;
    c.beta1 = 0.9f;
    c.beta2 = 0.999f;
    c.eps = 1e-8f;
    return c;
}

int odl_optim_state_per_param(const odl_optim_cfg *c)
{
    if (c->kind == ODL_OPTIM_ADAM)
        return 2;
    return c->momentum != 0.0f ? 1 : 0;
}

void odl_sgd_step_f32(const odl_optim_cfg *c, float lr, uint32_t step, size_t n, float *w,
                      const float *g, float *buf)
{
    const float wd = c->weight_decay, mom = c->momentum;
    for (size_t i = 0; i < n; i++) {
        float gi = g[i] + wd * w[i];
        if (mom != 0.0f && buf) {
            buf[i] = step <= 1 ? gi : mom * buf[i] + gi;
            gi = buf[i];
        }
        w[i] -= lr * gi;
    }
}

void odl_adam_step_f32(const odl_optim_cfg *c, float lr, uint32_t step, size_t n, float *w,
                       const float *g, float *m, float *v)
{
    const float b1 = c->beta1, b2 = c->beta2, wd = c->weight_decay;
    /* torch: step_size = lr / bc1; denom = sqrt(v)/sqrt(bc2) + eps */
    const float bc1 = 1.0f - powf(b1, (float)step);
    const float bc2 = 1.0f - powf(b2, (float)step);
    const float step_size = lr / bc1;
    const float inv_sqrt_bc2 = 1.0f / sqrtf(bc2);
    for (size_t i = 0; i < n; i++) {
        float gi = g[i] + wd * w[i];
        m[i] = b1 * m[i] + (1.0f - b1) * gi;
        v[i] = b2 * v[i] + (1.0f - b2) * gi * gi;
        float denom = sqrtf(v[i]) * inv_sqrt_bc2 + c->eps;
        w[i] -= step_size * m[i] / denom;
    }
}
