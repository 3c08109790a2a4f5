/* odl/learner.h — the small façade an application uses.
 *
 *   predict   x → class + confidence (frozen base once, then the head)
 *   feedback  an example with its label, or a mark that a prediction was
 *             right or wrong; screened by the data-quality gate
 *   update    learns what was collected (+ replay), then the evaluation gate
 *             accepts the new head or rolls it back automatically
 *   rollback  restores an earlier accepted head
 *   status    counters, every rejection by reason
 *
 * Built only on the public core (model, replay, adapt). All state lives in
 * the caller's arena (odl_learner_plan sizes it). The base is the caller's
 * model (inference mode, usually with frozen weights in place in flash);
 * the learner owns a copy of the head, allocated for max_classes outputs
 * from the start so new classes need no allocation. */
#ifndef ODL_LEARNER_H
#define ODL_LEARNER_H

#include <stdint.h>
#include "odl/adapt.h"
#include "odl/arena.h"
#include "odl/classmean.h"
#include "odl/drift.h"
#include "odl/model.h"
#include "odl/replay.h"
#include "odl/rng.h"
#include "odl/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Why the data-quality gate refused an example (counted in the status). */
typedef enum odl_reason {
    ODL_REASON_NONE = 0,
    ODL_REASON_NONFINITE,   /* NaN or Inf in the input */
    ODL_REASON_LABEL,       /* label outside [0, max_classes) */
    ODL_REASON_OUTLIER,     /* latent too far from its class's statistics */
    ODL_REASON_CONTRADICTS, /* held: contradicts a very confident prediction (send again to confirm) */
    ODL_REASON_DUPLICATE,   /* near-duplicate flood */
    ODL_REASON_IMBALANCE,   /* one class flooding the collected examples */
    ODL_REASON_FULL,        /* the collected-examples buffer is full: call update */
    ODL_REASON_COUNT
} odl_reason;

const char *odl_reason_str(odl_reason r);

/* How update learns. Every strategy goes through the same data-quality and
 * evaluation gates, keeps its versions, and saves its state in .odl files. */
typedef enum odl_strategy {
    ODL_STRATEGY_REPLAY = 0,  /* the head trained on the new examples + a replay buffer (default) */
    ODL_STRATEGY_EWC,         /* no buffer: an EWC penalty, Fisher taken on the old data at seeding */
    ODL_STRATEGY_EWC_ONLINE,  /* EWC whose Fisher and anchors move with every accepted update */
    ODL_STRATEGY_LWF,         /* no buffer: distillation toward the pre-update head's logits */
    ODL_STRATEGY_NCM,         /* nearest class mean over the latents: no backpropagation */
    ODL_STRATEGY_SLDA,        /* streaming LDA over the latents: no backpropagation */
    ODL_STRATEGY_BIAS,        /* per-class bias calibration only (labels count as marks) */
    ODL_STRATEGY_UNFREEZE,    /* replay with the last block before the head trainable too */
    ODL_STRATEGY_COUNT
} odl_strategy;

/* "replay", "ewc", "ewc-online", "lwf", "ncm", "slda", "bias", "unfreeze"; "?" otherwise. */
const char *odl_strategy_name(odl_strategy s);
/* The strategy of a name above; ODL_ERR_ARG (naming the choices) otherwise. */
odl_status odl_strategy_parse(const char *name, odl_strategy *out, odl_diag *d);

/* The evaluation gate's policy: data, not code. */
typedef struct odl_gate_policy {
    float new_target;    /* accuracy on the held-out user examples after the update (default 0.5) */
    float max_old_drop;  /* allowed drop of accuracy on the old-task guard set (default 0.05) */
    float new_weight;    /* weight of "new" in the weighted average (default 0.5) */
    int32_t require_avg_not_worse; /* the weighted average may not fall (default 1) */
    int32_t noise_examples; /* a set of n examples resolves 1/n: each rule above tolerates this many
                               examples' worth (noise_examples/n) of that set as noise before it
                               rolls back, so one example of a 5-example held-out set cannot veto
                               an update (default 0: every difference counts) */
} odl_gate_policy;

typedef struct odl_learner_cfg {
    int32_t boundary;       /* first head node, a cut point (-1: the latest cut at or before the last dense layer); heads of up to 16 nodes */
    int32_t max_classes;    /* head outputs, room for new classes (default: the base's) */
    int32_t max_collected;  /* examples collected between updates (default 64) */
    int32_t holdout_every;  /* every k-th accepted example is held out for the gate (default 4) */
    int32_t guard_size;     /* old-task examples kept to check forgetting (default 100); as many
                               held-out examples of accepted updates are kept too, so a
                               later update may not undo what the user taught before */
    int32_t guard_dtype;    /* odl_replay_dtype of both guard sets' latents (default ODL_REPLAY_F32);
                               ODL_REPLAY_INT8 keeps each as the replay buffer does (INT8 with a
                               scale per latent, dim + 4 bytes instead of 4·dim) and measures the
                               gate on the dequantised latents */
    int32_t versions;       /* accepted heads kept in memory for rollback (default 4) */
    odl_replay_cfg replay;  /* capacity 0: no replay (dim and n_classes are filled in) */
    odl_adapt_cfg adapt;    /* epochs, batch, ewc (unused), lwf... (defaults: 10, 16) */
    float lr;               /* Adam learning rate (default 1e-3) */
    /* data-quality gate */
    float outlier_k;        /* reject beyond mean + k·std of the class's latent distances (default 4; 0 = off) */
    int32_t outlier_min;    /* ... once the class has this many statistics samples (default 20) */
    float confident;        /* a label contradicting a prediction this confident is held (default 0.95) */
    float dup_eps;          /* relative latent distance counted as a near-duplicate (default 1e-3) */
    int32_t max_dups;       /* near-duplicates accepted per example (default 2) */
    float max_class_share;  /* a class may hold at most this share of the collected (default 0.6) */
    odl_gate_policy gate;
    float bias_step;        /* calibration: bias change per net wrong mark rate (default 0.5) */
    /* drift monitoring on every prediction: a z-score detector on the input's
     * contrast (per-sample std) and an EWMA of the confidence; predict
     * returns ODL_EVENT_DRIFT when either fires. */
    int32_t drift;          /* 1 = on (default) */
    odl_zscore_cfg drift_input;
    odl_conf_cfg drift_conf;
    /* the strategy (odl_learner_cfg_for sets its defaults) */
    int32_t strategy;       /* odl_strategy (default ODL_STRATEGY_REPLAY) */
    float ewc_decay;        /* online EWC: F = decay·F + F_update (default 0.9) */
    float slda_shrinkage;   /* streaming LDA's covariance shrinkage (default ODL_SLDA_DEFAULT_SHRINKAGE) */
    int32_t stats_window;   /* NCM/SLDA: before an update, each class's count is capped at this, so
                               the user's examples move its mean as much as that many old ones
                               would (default 20; 0 = never capped: the old data weigh for ever) */
    /* shadow evaluation: an update the gate accepted waits as a candidate;
     * the next shadow_n labelled or marked predictions are scored by both
     * heads, and the candidate is promoted when its score is at least the
     * current head's + shadow_margin·(scored), dropped otherwise.
     * 0 = off (default): the gate's decision takes effect at once. */
    int32_t shadow_n;
    float shadow_margin;    /* default 0: promoted when not worse */
} odl_learner_cfg;

odl_learner_cfg odl_learner_cfg_defaults(void);
/* The defaults for a strategy: the replay buffer only for replay and
 * unfreeze; EWC λ, LwF weight and the class-statistics heads' settings set. */
odl_learner_cfg odl_learner_cfg_for(odl_strategy s);

typedef struct odl_learner_status {
    uint32_t version;          /* accepted updates so far (0 = the base) */
    uint32_t predictions, feedback, accepted_examples, marks_right, marks_wrong;
    uint32_t rejected[ODL_REASON_COUNT];
    uint32_t updates, updates_accepted, updates_rolled_back, rollbacks;
    uint32_t drift_events;     /* drift reported by predict */
    uint32_t last_drift_at;    /* prediction count at the last drift event */
    int32_t collected, held_out, active_classes;
    /* the last gate decision: accuracy before and after the update on three
     * sets, each measured over the _n examples named; _n = 0: that set was
     * not measured (empty), and its two accuracies are 0, not a figure.
     *   old  the old-task guard set (the examples seeded from the old data)
     *   new  the update's held-out examples (all collected when none was held out)
     *   user the held-out examples of earlier accepted updates */
    float last_old_before, last_old_after, last_new_before, last_new_after;
    float last_user_before, last_user_after;
    int32_t last_old_n, last_new_n, last_user_n;
    int32_t user_guard;        /* = last_user_n (the name older readers use) */
    int32_t last_accepted;     /* 1: the last decision accepted its update; 0 otherwise or none yet */
    char last_decision[228];   /* 228: the status keeps its size with the three counts above */
    int32_t strategy;          /* odl_strategy */
    /* shadow evaluation: a candidate waits (1) with its score so far */
    int32_t shadow_active, shadow_scored;
    float shadow_cand_correct, shadow_cur_correct;
    uint32_t shadow_promoted, shadow_dropped;
    char shadow_decision[160]; /* the last promotion or drop, with the scores */
} odl_learner_status;

typedef struct odl_learner odl_learner;

/* Exact bytes of a learner over `base` (an initialised inference model). */
odl_status odl_learner_plan(const odl_learner_cfg *cfg, const odl_model *base, odl_mem_plan *plan, odl_diag *d);
odl_status odl_learner_init(odl_learner **out, const odl_learner_cfg *cfg, odl_model *base, odl_arena *a,
                            odl_diag *d);

/* The old data the device ships with (latents at the boundary are computed
 * here): fills the replay buffer, the guard set and per-class statistics.
 * x: n raw inputs of the base. */
odl_status odl_learner_seed_old(odl_learner *L, const float *x, const int32_t *y, int32_t n, odl_rng *rng,
                                odl_diag *d);

/* ODL_OK, or ODL_EVENT_DRIFT (with *cls and *confidence set) when the drift
 * monitors fire on this prediction. */
odl_status odl_learner_predict(odl_learner *L, const float *x, int32_t *cls, float *confidence, odl_diag *d);

/* A labelled example. ODL_OK when collected; ODL_EVENT_REJECTED with *why
 * set when the gate refused or held it. */
odl_status odl_learner_feedback(odl_learner *L, const float *x, int32_t label, odl_reason *why, odl_diag *d);

/* A right/wrong mark on the prediction for x. A right mark collects x with
 * the predicted label (through the gate); both feed bias calibration. */
odl_status odl_learner_mark(odl_learner *L, const float *x, int32_t correct, odl_reason *why, odl_diag *d);

/* Learns the collected examples (+ replay) and gates the result: ODL_OK if
 * accepted (version + 1), ODL_EVENT_ROLLED_BACK if the gate refused it or
 * training diverged (the head is exactly as before). */
odl_status odl_learner_update(odl_learner *L, odl_rng *rng, odl_diag *d);

/* The cheapest adaptation: per-class biases moved by the right/wrong marks
 * since the last call, through the same evaluation gate. */
odl_status odl_learner_calibrate(odl_learner *L, odl_diag *d);

/* Restores the head of `steps` accepted versions ago. */
odl_status odl_learner_rollback(odl_learner *L, int32_t steps, odl_diag *d);

/* The same four calls for a device whose base runs elsewhere (an INT8
 * prefix, odl/quant.h): z is the latent at the boundary (odl_learner_dim
 * floats). predict_latent takes the input's contrast (per-sample std, see
 * odl_drift_sample_stats) for the input drift monitor; pass a negative
 * value to leave that monitor out. */
int32_t odl_learner_dim(const odl_learner *L);
odl_status odl_learner_seed_old_latent(odl_learner *L, const float *z, const int32_t *y, int32_t n, odl_rng *rng,
                                       odl_diag *d);
odl_status odl_learner_predict_latent(odl_learner *L, const float *z, float input_std, int32_t *cls,
                                      float *confidence, odl_diag *d);
odl_status odl_learner_feedback_latent(odl_learner *L, const float *z, int32_t label, odl_reason *why, odl_diag *d);
odl_status odl_learner_mark_latent(odl_learner *L, const float *z, int32_t correct, odl_reason *why, odl_diag *d);

void odl_learner_get_status(const odl_learner *L, odl_learner_status *st);

/* The current head (layers [boundary, L) of the base, max_classes outputs). */
const odl_model *odl_learner_head(const odl_learner *L);
int32_t odl_learner_boundary(const odl_learner *L);
/* Per-class calibration biases added to the head's logits (max_classes). */
const float *odl_learner_bias(const odl_learner *L);

/* The strategy's state objects, for saving in a .odl file with
 * odl_state_save_model_with_state (NULL where the strategy has none). NCM
 * and SLDA heads are also written into the head model (a dense layer with
 * the same argmax), so the head saves and predicts as any other. */
const odl_replay *odl_learner_replay(const odl_learner *L);
const odl_ewc *odl_learner_ewc(const odl_learner *L);
const odl_ncm *odl_learner_ncm(const odl_learner *L);
const odl_slda *odl_learner_slda(const odl_learner *L);
/* Restores the strategy's state from a .odl file written with the
 * objects above (odl_state_load; the file checked whole first), refits
 * the head from class statistics, and makes it the current version. */
odl_status odl_learner_load_state(odl_learner *L, const void *buf, size_t len, odl_diag *d);

#ifdef __cplusplus
}
#endif
#endif
