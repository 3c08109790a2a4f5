/* Learning without Forgetting: temperature-scaled KL distillation toward a
 * teacher's logits over the old classes (odl/lwf.h). */
#include "odl/lwf.h"

#include <math.h>
#include <stddef.h>

/* log Σ_j exp(v_j / T) over the first c values, stably. */
static float lse_scaled(int32_t c, const float *v, float inv_t)
{
    float mx = v[0] * inv_t;
    for (int32_t j = 1; j < c; j++)
        if (v[j] * inv_t > mx)
            mx = v[j] * inv_t;
    float sum = 0.0f;
    for (int32_t j = 0; j < c; j++)
        sum += expf(v[j] * inv_t - mx);
    return mx + logf(sum);
}

float odl_lwf_loss_f32(int32_t batch, int32_t c, int32_t c_old, const float *logits,
                       const float *teacher_logits, int32_t teacher_stride, float T, float weight,
                       float *dlogits)
{
    if (batch < 1 || c_old < 1 || c_old > c || teacher_stride < c_old || !(T > 0.0f) || !logits ||
        !teacher_logits)
        return NAN;
    const float inv_t = 1.0f / T;
    /* d(loss)/dz_j = weight·T²/batch · (1/T)·(q_j − p_j) */
    const float gscale = weight * T / (float)batch;
    float total = 0.0f; /* single precision: no double on a device */
    for (int32_t n = 0; n < batch; n++) {
        const float *z = logits + (size_t)n * (size_t)c;
        const float *t = teacher_logits + (size_t)n * (size_t)teacher_stride;
        const float lse_z = lse_scaled(c_old, z, inv_t);
        const float lse_t = lse_scaled(c_old, t, inv_t);
        float row = 0.0f;
        for (int32_t j = 0; j < c_old; j++) {
            const float log_p = t[j] * inv_t - lse_t; /* teacher */
            const float log_q = z[j] * inv_t - lse_z; /* student */
            const float p = expf(log_p);
            if (p > 0.0f) /* 0·log 0 = 0, as torch's kl_div */
                row += p * (log_p - log_q);
            if (dlogits)
                dlogits[(size_t)n * (size_t)c + (size_t)j] += gscale * (expf(log_q) - p);
        }
        total += row;
    }
    return total * weight * T * T / (float)batch;
}
