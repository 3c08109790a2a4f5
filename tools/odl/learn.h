/* Host-side learning machinery shared by `odl train`, `odl adapt` and
 * `odl experiment`: the base-training loop, latent extraction, tail
 * ("head") models over a frozen base, and strategy sessions that carry a
 * head, a replay buffer, EWC state and class statistics across tasks. */
#ifndef ODL_LEARN_H
#define ODL_LEARN_H

#include "cli.h"
#include "odl/adapt.h"
#include "odl/classmean.h"
#include "odl/ewc.h"
#include "odl/replay.h"

/* ---- base training ------------------------------------------------------ */
typedef struct train_result {
    double seconds, images_per_second, last_loss, last_epoch_accuracy;
#define LEARN_CURVE_MAX 256
    double epoch_loss[LEARN_CURVE_MAX];                           /* mean loss of each epoch (the first 256) */
    double curve_x[LEARN_CURVE_MAX], curve_loss[LEARN_CURVE_MAX]; /* mean loss of blocks of steps, x in epochs */
    int32_t n_epoch_loss, n_curve;
} train_result;

/* Base training. The batch is split into `shards` fixed slices, each run
 * on a replica of the model; their gradients are averaged in shard order.
 * Threads only decide which replica runs where, so the trained model is bit
 * for bit the same for any thread count (and any machine). */
#define LEARN_SHARDS_MAX 64
#define LEARN_SHARDS_DEFAULT 4
typedef struct learn_train_opts {
    int32_t epochs, batch;
    int32_t shards;  /* slices of each batch, 1..LEARN_SHARDS_MAX */
    int32_t threads; /* host threads, capped at shards */
    int quiet;       /* no progress on stderr */
    const char *label;
} learn_train_opts;

/* Trains every trainable layer of m on ds (softmax cross-entropy, the
 * model's optimizer), shuffling each epoch with rng. Progress on stderr
 * unless quiet. Returns 0 or prints the error and returns 1. */
int learn_train(odl_model *m, const odl_dataset *ds, const learn_train_opts *o, odl_rng *rng, train_result *res);
/* The machine's online CPUs (1..64): the default thread count. */
int learn_threads_default(void);

/* A model with its own malloc'd arena. */
typedef struct owned_model {
    void *buf;
    odl_model *m;
    odl_mem_plan plan;
    odl_model_desc desc;
} owned_model;
int owned_model_make(owned_model *om, const odl_model_desc *desc, const odl_model_cfg *cfg);
void owned_model_free(owned_model *om);

/* ---- latents -------------------------------------------------------------- */
/* The freeze boundary that unfreezes the last `k`+1 parameterised nodes (the
 * latest cut point at or before the first of them): the head boundary when
 * k = 0 (edge-cnn: 9), one more layer unfrozen when k = 1 (7). */
int32_t learn_boundary(const odl_model_desc *d, int32_t unfreeze);
/* Runs layers [0, boundary) of m over n samples; *z (malloc'd) gets n×dim. */
int learn_latents(odl_model *m, int32_t boundary, const float *x, int32_t n, float **z, int32_t *dim);
/* The description of nodes [boundary, L) (a cut point) as a model of its own,
 * all trainable, n_classes outputs, in malloc'd storage with room for
 * `extra` more nodes (free with odl_host_desc_free). */
int learn_tail_desc(odl_model_desc *t, const odl_model_desc *full, int32_t boundary, int32_t n_classes,
                    int32_t extra);
/* Trainable parameters of a description. */
int learn_count_trainable(const odl_model_desc *desc, size_t *trainable);

/* ---- strategies ------------------------------------------------------------ */
typedef enum strat_kind {
    STRAT_NAIVE, STRAT_REPLAY, STRAT_EWC, STRAT_LWF, STRAT_FULL, STRAT_NCM, STRAT_SLDA
} strat_kind;

typedef struct strat {
    char name[64];
    strat_kind kind;
    int32_t replay_size;      /* 0 = none */
    int32_t replay_balanced;
    int32_t replay_int8;
    int32_t replay_herding;   /* fill with herded exemplars (iCaRL) instead of reservoir sampling */
    float ewc_lambda;
    float ewc_decay;          /* online EWC across tasks (1 = sum) */
    float lwf_weight, lwf_T;
    int32_t unfreeze;         /* parameterised layers trained below the head */
    float lr_decay;           /* discriminative lr: γ per layer below the head */
    int32_t epochs, batch;
    float lr;
    float slda_shrinkage;
    int32_t adapter;          /* a residual adapter (this bottleneck) before the head; 0 = none */
    int32_t gradual;          /* gradual unfreezing: one more layer every N epochs; 0 = all at once */
    float mix;                /* replayed samples per new sample each epoch; 0 = the whole buffer */
    float der;                /* dark experience replay: distillation weight on replayed samples */
    int32_t match;            /* sensor matching: raw original samples kept (class-balanced); 0 = off */
    int32_t augment;          /* copies of each new sample, moved by up to 2 pixels (images only); 0 = off */
} strat;

strat strat_default(strat_kind kind);
/* Parses "naive", "replay", "ewc", "lwf", "full", "ncm", "slda". */
int strat_kind_parse(const char *s, strat_kind *k);
const char *strat_kind_name(strat_kind k);
/* Parses a strategy spec, KIND[:OPT,OPT,...], e.g. "replay:size=800,balanced,int8,unfreeze=1".
 * Options: size=N balanced int8 unfreeze=K lambda=X decay=X lwf=W T=X epochs=N lr=X
 * batch=B lrdecay=G shrink=X adapter=R gradual=E mix=R herding der=W match=N augment=K. The spec becomes the strategy's name. Prints
 * the error and returns 1 on a bad spec. */
int strat_parse(const char *spec, strat *out);

/* Old data the device had: original training samples (raw), in stream order. */
typedef struct old_data {
    const float *x;     /* raw inputs */
    const int32_t *y;
    int32_t n;
    size_t in_size;
    const float *z;     /* optional: their latents at boundary z_boundary (saves recomputing) */
    int32_t z_boundary;
    int32_t fisher_samples; /* EWC's Fisher: this many old samples (default 1000) */
} old_data;

/* A strategy's state over a sequence of tasks on one frozen base. */
typedef struct session {
    strat st;
    odl_model *base;          /* the frozen base (inference), not owned */
    odl_model_desc base_desc;
    int32_t boundary, dim, n_classes, max_classes;
    owned_model head;         /* layers [boundary, L) (or the whole model for STRAT_FULL) */
    void *aux_buf;            /* replay, EWC, class statistics */
    odl_arena aux;
    odl_replay *replay;
    odl_ewc *ewc;
    void *ewc_buf;
    odl_ncm *ncm;
    odl_slda *slda;
    odl_replay *raw;          /* sensor matching: raw original samples */
    float match_shift;        /* the last fitted map's mean |g(v) - v| (0: none fitted) */
    int32_t match_classes;    /* classes it was fitted on */
    size_t match_scratch;     /* bytes its histograms and class means took */
    int32_t match_dx, match_dy; /* the fitted move of the sensor (images) */
    odl_mem_plan learn_plan;  /* planned bytes beyond the frozen base's inference plan, per kind */
    odl_mem_plan update_plan; /* the largest update so far: trainer, training-set latents, teacher logits */
    size_t trainable;
    odl_rng rng;
} session;

/* Starts a session over `base` (its head has base_classes outputs), with the
 * old training data the device saw (for replay, EWC's Fisher, class stats). */
int session_start(session *s, const strat *st, odl_model *base, int32_t max_classes, const old_data *old,
                  uint64_t seed);
/* Learns new samples (raw x), the head grown to n_classes first. z: their
 * latents at the session's boundary (NULL for STRAT_FULL). */
int session_learn(session *s, const float *x, const float *z, const int32_t *y, int32_t n, int32_t n_classes);
/* Continues from learner state saved in a model file (odl/state.h chunks):
 * the replay buffer and EWC's Fisher and anchors, when the session has
 * them and the file does. *restored gets ODL_STATE_HAS_* bits. */
int session_restore(session *s, const void *file, size_t len, uint32_t *restored);
/* Saves the adapted model (base layers below the boundary + the head) with
 * the session's learner state to `path`, atomically. */
int session_save(session *s, const odl_model *base, const odl_model_desc *out_desc, const odl_meta_kv *meta,
                 int32_t n_meta, const char *path);

/* Every byte learning needs beyond the frozen base's inference plan: the
 * session's (head, buffers, statistics) plus its largest update's. */
odl_mem_plan session_plan(const session *s);

/* Predicts classes of n samples given as latents (raw for STRAT_FULL). */
int session_predict(session *s, const float *in, int32_t n, int32_t *pred);
void session_end(session *s);

#endif
