/* odl/lwf.h — Learning without Forgetting (Li & Hoiem 2016): distillation of
 * the student's logits toward a teacher's (the model before the update) over
 * the classes the teacher knew. */
#ifndef ODL_LWF_H
#define ODL_LWF_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* weight · T² · KL(softmax(t/T) ‖ softmax(z/T)) over the first c_old of the c
 * logits of each row, averaged over the batch. In PyTorch:
 *
 *   F.kl_div(F.log_softmax(z[:, :c_old] / T, 1), F.softmax(t[:, :c_old] / T, 1),
 *            reduction='batchmean') * T * T * weight
 *
 * logits: batch × c (row stride c). teacher_logits: batch rows of
 * teacher_stride floats (≥ c_old: the teacher may have fewer outputs than the
 * grown student); only the first c_old of each row are read.
 * dlogits (batch × c, may be NULL): the gradient is ADDED (+=), so it can be
 * stacked on a cross-entropy gradient; columns ≥ c_old are not touched.
 * d/dz_j = weight · T / batch · (softmax(z/T)_j − softmax(t/T)_j).
 * Returns the loss; NAN (dlogits untouched) when batch < 1, c_old < 1,
 * c_old > c, teacher_stride < c_old, T ≤ 0 or a pointer is NULL. */
float odl_lwf_loss_f32(int32_t batch, int32_t c, int32_t c_old, const float *logits,
                       const float *teacher_logits, int32_t teacher_stride, float T, float weight,
                       float *dlogits);

#ifdef __cplusplus
}
#endif
#endif
