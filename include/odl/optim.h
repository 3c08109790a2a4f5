/* odl/optim.h — optimizers (SGD with momentum and weight decay, Adam) with
 * PyTorch's update rules, so a step matches torch.optim bit-for-tolerance. */
#ifndef ODL_OPTIM_H
#define ODL_OPTIM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum odl_optim_kind {
    ODL_OPTIM_SGD = 0,
    ODL_OPTIM_ADAM = 1
} odl_optim_kind;

typedef struct odl_optim_cfg {
    odl_optim_kind kind;
    float lr;           /* default 1e-3 (Adam) / 1e-2 (SGD) */
    float momentum;     /* SGD only; 0 = none (then no state is kept) */
    float weight_decay; /* L2 added to the gradient, as torch does */
    float beta1, beta2, eps; /* Adam: 0.9, 0.999, 1e-8 */
} odl_optim_cfg;

/* Defaults for a kind (the values documented above). */
odl_optim_cfg odl_optim_defaults(odl_optim_kind kind);

/* State floats kept per parameter: SGD 1 with momentum else 0, Adam 2. */
int odl_optim_state_per_param(const odl_optim_cfg *c);

/* One SGD step on n parameters: g += wd*w; buf = mom*buf + g (buf = g on the
 * first step, as torch); w -= lr*buf. `buf` may be NULL when momentum is 0.
 * `step` counts from 1. */
void odl_sgd_step_f32(const odl_optim_cfg *c, float lr, uint32_t step, size_t n,
                      float *w, const float *g, float *buf);

/* One Adam step (torch.optim.Adam, amsgrad off); `step` counts from 1. */
void odl_adam_step_f32(const odl_optim_cfg *c, float lr, uint32_t step, size_t n,
                       float *w, const float *g, float *m, float *v);

#ifdef __cplusplus
}
#endif
#endif
