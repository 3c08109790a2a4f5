#include "odl/layers.h"

#include <math.h>

void odl_softmax_f32(int32_t c, const float *logits, float *probs)
{
    float mx = logits[0];
    for (int32_t j = 1; j < c; j++)
        if (logits[j] > mx)
            mx = logits[j];
    float sum = 0.0f;
    for (int32_t j = 0; j < c; j++) {
        probs[j] = expf(logits[j] - mx);
        sum += probs[j];
    }
    const float inv = 1.0f / sum;
    for (int32_t j = 0; j < c; j++)
        probs[j] *= inv;
}

float odl_softmax_xent_f32(int32_t batch, int32_t c, const float *logits, const int32_t *labels,
                           float *probs, float *dlogits)
{
    float total = 0.0f; /* the reported loss: single precision (no double on a device) */
    const float inv_b = 1.0f / (float)batch;
    for (int32_t n = 0; n < batch; n++) {
        const float *z = logits + (size_t)n * c;
        float mx = z[0];
        for (int32_t j = 1; j < c; j++)
            if (z[j] > mx)
                mx = z[j];
        float sum = 0.0f;
        for (int32_t j = 0; j < c; j++)
            sum += expf(z[j] - mx);
        const float lse = mx + logf(sum);
        total += lse - z[labels[n]];
        for (int32_t j = 0; j < c; j++) {
            float p = expf(z[j] - lse);
            if (probs)
                probs[(size_t)n * c + j] = p;
            if (dlogits)
                dlogits[(size_t)n * c + j] = (p - (j == labels[n] ? 1.0f : 0.0f)) * inv_b;
        }
    }
    return total / (float)batch;
}
