/* odl/ewc.h — Elastic Weight Consolidation (Kirkpatrick et al. 2017) with
 * the online variant (Schwarz et al. 2018): a diagonal empirical Fisher F over
 * the model's trainable parameters, anchors θ* (the parameters when the
 * Fisher was taken), and the penalty
 *
 *     λ/2 · Σ_i F_i (θ_i − θ*_i)²        gradient: λ · F_i (θ_i − θ*_i)
 *
 * Trainable parameters are the tensors with a gradient
 * (odl_model_grad(m, layer, which) != NULL), in a fixed order: layers
 * 0..n_layers-1, weights then bias. odl_ewc_fisher / odl_ewc_anchor /
 * odl_ewc_set use that order, so they can be saved and restored.
 *
 * Memory (all from the caller's arena, sized exactly by odl_ewc_plan):
 *   ODL_MEM_STATE    the handle
 *   ODL_MEM_BUFFERS  3 floats per trainable parameter (Fisher, running sum, anchor)
 *   ODL_MEM_SCRATCH  n_classes floats (d(loss)/d(logits) of one sample, for odl_ewc_estimate)
 *
 * Typical use, after training on a task:
 *     odl_ewc_estimate(e, m, from, x, y, n, decay, &rng, &diag); // F, θ* := current
 * then, for each step on the next task:
 *     odl_model_forward_train(...); loss gradient; odl_model_backward(...);
 *     odl_ewc_add_grad(e, m, lambda);
 *     odl_model_step(m, NULL, &diag);
 *
 * The EWC is bound to the model it was built for: every call checks that the
 * model's trainable tensors still have the sizes recorded at init. */
#ifndef ODL_EWC_H
#define ODL_EWC_H

#include <stddef.h>
#include <stdint.h>
#include "odl/status.h"
#include "odl/arena.h"
#include "odl/rng.h"
#include "odl/model.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct odl_ewc odl_ewc;

/* Exact bytes odl_ewc_init takes for model m (a training-mode model with at
 * least one trainable layer; ODL_ERR_STATE otherwise). */
odl_status odl_ewc_plan(const odl_model *m, odl_mem_plan *plan, odl_diag *d);

/* The same plan from sizes alone (for planning before the model exists): the
 * trainable parameters, how many tensors hold them, and the class count. */
odl_status odl_ewc_plan_sizes(size_t n_params, int32_t n_tensors, int32_t n_classes, odl_mem_plan *plan,
                              odl_diag *d);

/* Builds the EWC state in `a` (a real arena; ODL_ERR_NOMEM with needed and
 * available bytes when it is too small, the arena left unchanged). The
 * Fisher starts at zero (penalty 0), the anchors at zero. */
odl_status odl_ewc_init(odl_ewc **out, const odl_model *m, odl_arena *a, odl_diag *d);

/* Starts a new Fisher estimate: clears the running sum and sample count. */
odl_status odl_ewc_begin(odl_ewc *e);

/* Adds the squares of the model's current gradients to the running sum and
 * counts one sample. Call after odl_model_backward of ONE sample's loss
 * (batch 1) — the empirical Fisher is a mean of per-sample squared
 * gradients, not the square of a batch gradient. Every trainable tensor's
 * gradient is read, so the backward must have covered all trainable layers
 * (forward_train from a layer ≤ odl_model_first_trainable). ODL_ERR_SHAPE if
 * m is not the model e was built for. */
odl_status odl_ewc_accumulate(odl_ewc *e, odl_model *m);

/* Finishes an estimate: F = decay·F + sum/count (decay 0: plain EWC, F is
 * replaced; 0 < decay ≤ 1: online EWC), then anchors θ* = the model's current
 * parameters. ODL_ERR_STATE when no sample was accumulated, ODL_ERR_ARG when
 * decay is outside [0, 1], ODL_ERR_NUMERIC when the Fisher is not finite
 * (F and θ* are then left as they were). */
odl_status odl_ewc_end(odl_ewc *e, odl_model *m, float decay, odl_diag *d);

/* Convenience: begin; for each of the n samples (x: n inputs of layer
 * `from`, y: their labels), one odl_model_forward_train of batch 1 (dropout
 * drawn from rng), the softmax cross-entropy gradient of the TRUE label
 * (the empirical Fisher: gradient of −log p(y|x)), one odl_model_backward,
 * odl_ewc_accumulate; then odl_ewc_end(decay).
 * Side effects: the model's gradients and stored activations are overwritten
 * (call it between training steps, not between a backward and its step).
 * Trainable layers before `from` (if any) take no part and contribute 0 to
 * this estimate. */
odl_status odl_ewc_estimate(odl_ewc *e, odl_model *m, int32_t from, const float *x, const int32_t *y,
                            int32_t n, float decay, odl_rng *rng, odl_diag *d);

/* λ/2 · Σ F_i (θ_i − θ*_i)², summed in double. NAN if m is not the model e
 * was built for (or an argument is NULL). */
float odl_ewc_penalty(const odl_ewc *e, const odl_model *m, float lambda);

/* Gradients += λ · F_i (θ_i − θ*_i): the penalty's gradient, added to what
 * odl_model_backward left. Call between odl_model_backward and
 * odl_model_step. ODL_ERR_SHAPE if m is not the model e was built for. */
odl_status odl_ewc_add_grad(const odl_ewc *e, odl_model *m, float lambda);

/* Access, for saving in a file: n_params floats each, in the order above. */
size_t odl_ewc_n_params(const odl_ewc *e);
const float *odl_ewc_fisher(const odl_ewc *e);
const float *odl_ewc_anchor(const odl_ewc *e);

/* Restores a saved Fisher and anchors (n must equal odl_ewc_n_params).
 * ODL_ERR_SHAPE on a size mismatch, ODL_ERR_NUMERIC on a non-finite value
 * or a negative Fisher entry (nothing is changed then). */
odl_status odl_ewc_set(odl_ewc *e, const float *fisher, const float *anchor, size_t n, odl_diag *d);

#ifdef __cplusplus
}
#endif
#endif
