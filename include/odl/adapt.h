/* odl/adapt.h — adaptation runs: training a model's trainable part on a
 * user's new samples, mixed with replayed old samples, optionally with an
 * EWC penalty and LwF distillation. The strategies of docs/protocol.md are
 * settings of this one loop:
 *   naive   new samples only
 *   replay  + a replay buffer (whole buffer each epoch, shuffled in)
 *   ewc     + ewc (lambda > 0)
 *   lwf     + teacher logits of the new samples (lwf_weight > 0)
 * Samples are the inputs of layer `from`: latents for a head over a frozen
 * base (the base then never runs again), raw inputs for full fine-tuning.
 * All buffers come from the arena (odl_adapt_plan sizes them). */
#ifndef ODL_ADAPT_H
#define ODL_ADAPT_H

#include <stdint.h>
#include "odl/arena.h"
#include "odl/ewc.h"
#include "odl/model.h"
#include "odl/replay.h"
#include "odl/rng.h"
#include "odl/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct odl_adapt_cfg {
    int32_t from;             /* layer whose inputs the samples are (default: first trainable) */
    int32_t epochs;           /* passes over new (+ replayed) samples (default 10) */
    int32_t batch;            /* minibatch (default 16; ≤ the model's max_batch) */
    int32_t replay_per_epoch; /* replayed samples per epoch; -1: the whole buffer (default) */
    float ewc_lambda;         /* EWC penalty strength; 0 = off */
    float lwf_weight;         /* distillation weight; 0 = off */
    float lwf_T;              /* distillation temperature (default 2) */
    int32_t lwf_classes;      /* teacher outputs distilled (the old classes) */
    const float *lr_scale;    /* per-layer learning-rate multipliers, NULL = all 1 */
    float replay_distill;     /* dark experience replay: distil replayed samples toward
                                 the teacher logits given by odl_adapt_set_replay_teacher
                                 (same T, lwf_classes); 0 = off */
} odl_adapt_cfg;

odl_adapt_cfg odl_adapt_cfg_defaults(void);

typedef struct odl_adapt_stats {
    int32_t steps;
    float first_epoch_loss; /* mean cross-entropy of the first epoch */
    float last_epoch_loss;  /* ... and of the last */
} odl_adapt_stats;

typedef struct odl_adapt odl_adapt;

/* Exact bytes of a trainer for up to max_new new and max_replay replayed
 * samples per epoch. */
odl_status odl_adapt_plan(const odl_model *m, const odl_adapt_cfg *cfg, int32_t max_new, int32_t max_replay,
                          odl_mem_plan *plan, odl_diag *d);
/* The same plan from dimensions alone: the input size of the first trained
 * layer and the class count (for planning before the model exists). */
odl_status odl_adapt_plan_dims(size_t in_size, int32_t classes, const odl_adapt_cfg *cfg, int32_t max_new,
                               int32_t max_replay, odl_mem_plan *plan, odl_diag *d);
odl_status odl_adapt_init(odl_adapt **out, const odl_model *m, const odl_adapt_cfg *cfg, int32_t max_new,
                          int32_t max_replay, odl_arena *a, odl_diag *d);

/* Teacher logits of the replay buffer's slots (slot i at logits + i·stride,
 * lwf_classes columns used), taken before the update; NULL clears. */
void odl_adapt_set_replay_teacher(odl_adapt *t, const float *logits, int32_t stride);

/* Runs cfg.epochs over (x, y) [n samples] and the replay buffer (may be
 * NULL). teacher: n × teacher_stride logits of the model before the update
 * (LwF only, else NULL). ewc may be NULL. A non-finite loss stops the run
 * with ODL_ERR_NUMERIC (the caller rolls back). */
odl_status odl_adapt_run(odl_adapt *t, odl_model *m, const float *x, const int32_t *y, int32_t n,
                         const float *teacher, int32_t teacher_stride, const odl_replay *replay,
                         const odl_ewc *ewc, odl_rng *rng, odl_adapt_stats *stats, odl_diag *d);

#ifdef __cplusplus
}
#endif
#endif
