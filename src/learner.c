/* The learner façade: gates, versions and calibration around the core. */
#include "odl/learner.h"
#include "odl/ewc.h"
#include "odl/layers.h"
#include "odl/state.h"

#include <math.h>
#include <string.h>

#define PENDING 4

struct odl_learner {
    odl_learner_cfg cfg;
    odl_model *base, *head;
    odl_model_desc head_desc;
    int32_t boundary, dim, in_size, C, base_classes, active;
    size_t n_params;        /* head parameters, all layers */
    /* collected examples */
    float *col_z;
    int32_t *col_y;
    uint8_t *col_holdout;
    int32_t n_col;
    float *train_z;          /* contiguous train part, for the trainer */
    int32_t *train_y;
    /* old-task guard set: float latents, or INT8 ones with a scale each (guard_dtype) */
    float *guard_z;
    int8_t *guard_q;
    float *guard_s;
    int32_t *guard_y;
    int32_t n_guard;
    uint64_t guard_seen; /* old samples offered so far (seeding may come in chunks) */
    /* held-out examples of accepted updates: the user's verified data (stored as the guard set) */
    float *ug_z;
    int8_t *ug_q;
    float *ug_s;
    int32_t *ug_y;
    int32_t n_ug, ug_next;
    float *gz;               /* one dequantised guard latent (INT8 guard sets) */
    /* per-class latent statistics: mean, and mean/M2 of distances to it */
    float *cls_mean;
    float *cls_dmean, *cls_dm2;
    uint32_t *cls_n;
    /* contradictions held for confirmation */
    float *pend_z;
    int32_t pend_y[PENDING];
    int32_t n_pend, pend_next;
    /* versions: ring of accepted heads (+ their biases) */
    float *snap;             /* versions+1 slots of n_params + C */
    int32_t n_snap, cur_snap, snap_head;
    float *pre;              /* the head before an update */
    float *bias;             /* calibration biases, C */
    uint32_t *mark_right, *mark_wrong;
    float *z, *logits;       /* one sample */
    odl_replay *replay;
    odl_adapt *trainer;
    /* the strategy's own state, versioned with the head (n_extra floats) */
    odl_ewc *ewc;
    odl_ncm *ncm;
    odl_slda *slda;
    size_t n_extra;
    uint32_t *cnt_tmp;       /* class counts while restoring NCM/SLDA state */
    float *teacher;          /* LwF: the pre-update head's logits, max_collected × C */
    float *cand;             /* shadow evaluation: the candidate's whole state */
    odl_zscore_drift drift_input;
    odl_conf_drift drift_conf;
    odl_learner_status st;
};

static odl_status shadow_score(odl_learner *L, int32_t truth, int32_t wrong, odl_diag *d);

static const char *const reason_names[ODL_REASON_COUNT] = {
    "none", "non-finite input", "label out of range", "outlier", "contradicts a confident prediction (held)",
    "near-duplicate flood", "class imbalance spike", "collected buffer full"};

const char *odl_reason_str(odl_reason r)
{
    return (unsigned)r < ODL_REASON_COUNT ? reason_names[r] : "?";
}

static const char *const strategy_names[ODL_STRATEGY_COUNT] = {"replay", "ewc", "ewc-online", "lwf",
                                                               "ncm",    "slda", "bias",      "unfreeze"};

const char *odl_strategy_name(odl_strategy s)
{
    return (unsigned)s < ODL_STRATEGY_COUNT ? strategy_names[s] : "?";
}

odl_status odl_strategy_parse(const char *name, odl_strategy *out, odl_diag *d)
{
    for (int k = 0; name && k < ODL_STRATEGY_COUNT; k++)
        if (strcmp(name, strategy_names[k]) == 0) {
            *out = (odl_strategy)k;
            return ODL_OK;
        }
    return odl_fail(d, ODL_ERR_ARG,
                    "unknown strategy '%s' (replay, ewc, ewc-online, lwf, ncm, slda, bias, unfreeze)",
                    name ? name : "(null)");
}

/* Strategies that train the head by backpropagation. */
static int by_backprop(int32_t s)
{
    return s == ODL_STRATEGY_REPLAY || s == ODL_STRATEGY_EWC || s == ODL_STRATEGY_EWC_ONLINE ||
           s == ODL_STRATEGY_LWF || s == ODL_STRATEGY_UNFREEZE;
}

static int is_ewc(int32_t s) { return s == ODL_STRATEGY_EWC || s == ODL_STRATEGY_EWC_ONLINE; }
static int is_stats(int32_t s) { return s == ODL_STRATEGY_NCM || s == ODL_STRATEGY_SLDA; }

odl_learner_cfg odl_learner_cfg_defaults(void)
{
    odl_learner_cfg c;
    memset(&c, 0, sizeof c);
    c.boundary = -1;
    c.max_classes = 0;
    c.max_collected = 64;
    c.holdout_every = 4;
    c.guard_size = 100;
    c.versions = 4;
    c.replay.capacity = 200;
    c.replay.policy = ODL_REPLAY_CLASS_BALANCED;
    c.replay.dtype = ODL_REPLAY_INT8;
    c.adapt = odl_adapt_cfg_defaults();
    c.lr = 1e-3f;
    c.outlier_k = 4.0f;
    c.outlier_min = 20;
    c.confident = 0.95f;
    c.dup_eps = 1e-3f;
    c.max_dups = 2;
    c.max_class_share = 0.6f;
    c.gate.new_target = 0.5f;
    c.gate.max_old_drop = 0.05f;
    c.gate.new_weight = 0.5f;
    c.gate.require_avg_not_worse = 1;
    c.bias_step = 0.5f;
    c.drift = 1;
    c.drift_input = odl_zscore_cfg_defaults();
    c.drift_conf = odl_conf_cfg_defaults();
    c.strategy = ODL_STRATEGY_REPLAY;
    c.ewc_decay = 0.9f;
    c.slda_shrinkage = ODL_SLDA_DEFAULT_SHRINKAGE;
    c.stats_window = 20;
    c.shadow_n = 0;
    c.shadow_margin = 0.0f;
    return c;
}

odl_learner_cfg odl_learner_cfg_for(odl_strategy s)
{
    odl_learner_cfg c = odl_learner_cfg_defaults();
    c.strategy = (int32_t)s;
    if (s != ODL_STRATEGY_REPLAY && s != ODL_STRATEGY_UNFREEZE)
        c.replay.capacity = 0;
    if (is_ewc(s))
        c.adapt.ewc_lambda = 100.0f;
    if (s == ODL_STRATEGY_LWF)
        c.adapt.lwf_weight = 1.0f;
    return c;
}


/* Nodes a learner's head may have: its description is built on the stack
 * while planning (the head model then keeps its own copy in the arena). */
#define LEARNER_MAX_HEAD_NODES 16

/* The head's description: nodes [boundary, L) (boundary a cut point) with
 * max_classes outputs, all trainable, in hd (storage set up by the caller). */
static odl_status head_desc_of(const odl_model *base, int32_t boundary, int32_t classes, odl_model_desc *hd,
                               odl_diag *d)
{
    const odl_model_desc *bd = odl_model_get_desc(base);
    if (boundary <= 0 || boundary >= bd->n_layers)
        return odl_fail(d, ODL_ERR_ARG, "learner: boundary %d must be inside the model (1..%d)", (int)boundary,
                        (int)bd->n_layers - 1);
    if (!odl_desc_is_cut(bd, boundary))
        return odl_fail(d, ODL_ERR_ARG,
                        "learner: boundary %d is not a cut point (a later node reads an earlier tensor)",
                        (int)boundary);
    if (bd->n_layers - boundary > hd->cap_layers)
        return odl_fail(d, ODL_ERR_ARG, "learner: a head from node %d has %d nodes; the learner takes up to %d",
                        (int)boundary, (int)(bd->n_layers - boundary), (int)hd->cap_layers);
    odl_status s = odl_desc_tail(hd, bd, boundary, d);
    if (s != ODL_OK)
        return s;
    for (int32_t i = 0; i < hd->n_layers; i++)
        hd->layers[i].trainable = 1;
    if (odl_desc_set_classes(hd, classes) != ODL_OK)
        return odl_fail(d, ODL_ERR_ARG, "learner: the model must end in a dense layer");
    return ODL_OK;
}

static odl_status resolve(const odl_learner_cfg *in, const odl_model *base, odl_learner_cfg *c, odl_model_desc *hd,
                          odl_diag *d)
{
    if (!in || !base)
        return odl_fail(d, ODL_ERR_ARG, "learner: config and base must not be NULL");
    *c = *in;
    const odl_model_desc *bd = odl_model_get_desc(base);
    if (c->strategy < 0 || c->strategy >= ODL_STRATEGY_COUNT)
        return odl_fail(d, ODL_ERR_ARG, "learner: strategy %d is not one of 0..%d", (int)c->strategy,
                        (int)ODL_STRATEGY_COUNT - 1);
    if (c->boundary < 0 && c->strategy == ODL_STRATEGY_UNFREEZE) {
        /* the last block before the head trains too: one parameterised node further back */
        odl_status su = odl_desc_boundary_for_unfreeze(bd, 2, &c->boundary, d);
        if (su != ODL_OK)
            return su;
    }
    if (c->boundary < 0) {
        c->boundary = 0;
        for (int32_t i = bd->n_layers - 1; i >= 0; i--)
            if (bd->layers[i].type == ODL_LAYER_DENSE) {
                /* the latest cut at or before the last dense layer */
                if (odl_desc_boundary_for_unfreeze(bd, 1, &c->boundary, NULL) != ODL_OK)
                    c->boundary = i;
                break;
            }
    }
    const int32_t base_classes = odl_model_n_classes(base);
    if (c->max_classes <= 0)
        c->max_classes = base_classes;
    if (c->max_classes < base_classes || c->max_classes > 4096)
        return odl_fail(d, ODL_ERR_ARG, "learner: max_classes %d must be in %d..4096", (int)c->max_classes,
                        (int)base_classes);
    if (c->max_collected < 1 || c->holdout_every < 2 || c->guard_size < 0 || c->versions < 1 || c->versions > 64)
        return odl_fail(d, ODL_ERR_ARG, "learner: max_collected ≥ 1, holdout_every ≥ 2, versions 1..64");
    if (c->guard_dtype != ODL_REPLAY_F32 && c->guard_dtype != ODL_REPLAY_INT8)
        return odl_fail(d, ODL_ERR_ARG, "learner: guard_dtype %d is not ODL_REPLAY_F32 (0) or ODL_REPLAY_INT8 (1)",
                        (int)c->guard_dtype);
    if (!(c->gate.new_target >= 0 && c->gate.new_target <= 1) || !(c->gate.max_old_drop >= 0) ||
        !(c->gate.new_weight >= 0 && c->gate.new_weight <= 1) || c->gate.noise_examples < 0 ||
        c->gate.noise_examples > 1000)
        return odl_fail(d, ODL_ERR_ARG, "learner: gate policy values out of range (new_target and new_weight in "
                        "[0, 1], max_old_drop >= 0, noise_examples in 0..1000)");
    if (!(c->ewc_decay >= 0 && c->ewc_decay <= 1) || !(c->slda_shrinkage >= 0 && c->slda_shrinkage <= 1) ||
        c->shadow_n < 0 || c->shadow_n > 1000000 || c->stats_window < 0 || !(c->shadow_margin >= -1 && c->shadow_margin <= 1))
        return odl_fail(d, ODL_ERR_ARG,
                        "learner: ewc_decay and slda_shrinkage must be in [0, 1], shadow_n in 0..1000000, "
                        "shadow_margin in [-1, 1]");
    odl_status s = head_desc_of(base, c->boundary, c->max_classes, hd, d);
    if (s != ODL_OK)
        return s;
    if (is_stats(c->strategy) && (hd->n_layers != 1 || hd->layers[0].type != ODL_LAYER_DENSE))
        return odl_fail(d, ODL_ERR_ARG,
                        "learner: %s needs a head of one dense layer (boundary %d gives %d nodes)",
                        odl_strategy_name((odl_strategy)c->strategy), (int)c->boundary, (int)hd->n_layers);
    /* what each strategy uses: no buffer where it needs none */
    if (c->strategy != ODL_STRATEGY_REPLAY && c->strategy != ODL_STRATEGY_UNFREEZE &&
        c->strategy != ODL_STRATEGY_LWF)
        c->replay.capacity = 0;
    if (is_ewc(c->strategy)) {
        if (!(c->adapt.ewc_lambda > 0))
            c->adapt.ewc_lambda = 100.0f;
    } else {
        c->adapt.ewc_lambda = 0.0f;
    }
    if (c->strategy == ODL_STRATEGY_LWF) {
        if (!(c->adapt.lwf_weight > 0))
            c->adapt.lwf_weight = 1.0f;
        c->adapt.lwf_classes = odl_model_n_classes(base);
    } else {
        c->adapt.lwf_weight = 0.0f;
    }
    const int32_t dim = (int32_t)odl_model_layer_shape(base, c->boundary - 1).size;
    if (c->replay.capacity > 0) {
        c->replay.dim = dim;
        c->replay.n_classes = c->max_classes;
    }
    c->adapt.from = 0;
    return ODL_OK;
}

static odl_status layout(odl_learner *L, const odl_learner_cfg *c, const odl_model_desc *hd, odl_model *base,
                         odl_arena *a, odl_diag *d)
{
    odl_status s;
    void *p;
    const int32_t dim = (int32_t)odl_model_layer_shape(base, c->boundary - 1).size;
    const int32_t C = c->max_classes;
    const size_t nz = (size_t)dim * sizeof(float);
    size_t n_params = 0;
    odl_layer_shape hs[LEARNER_MAX_HEAD_NODES];
    odl_desc_count_params(hd, hs, &n_params, NULL);
    int32_t n_tensors = 0;
    for (int32_t i = 0; i < hd->n_layers; i++)
        n_tensors += (hs[i].n_weights > 0) + (hs[i].n_bias > 0);
    const int32_t strat = c->strategy;
    const int backprop = by_backprop(strat);
    /* the strategy's state kept with every version: EWC's Fisher and anchors;
     * NCM/SLDA's means and counts (+ SLDA's covariance and total count) */
    size_t n_extra = 0;
    if (is_ewc(strat))
        n_extra = 2 * n_params;
    else if (is_stats(strat))
        n_extra = ((size_t)dim + 1) * (size_t)C + (strat == ODL_STRATEGY_SLDA ? (size_t)dim * (size_t)dim + 2 : 0);
    const size_t n_state = n_params + (size_t)C + n_extra;
    if (L)
        L->n_extra = n_extra;
#define TAKE(field, bytes, kind)                                  \
    do {                                                          \
        s = odl_arena_alloc(a, (bytes), (kind), &p, d);           \
        if (s != ODL_OK)                                          \
            return s;                                             \
        if (L)                                                    \
            L->field = p;                                         \
    } while (0)
    odl_model_cfg hc = odl_model_cfg_defaults();
    hc.mode = backprop ? ODL_MODE_TRAIN : ODL_MODE_INFER;
    hc.max_batch = c->adapt.batch;
    hc.optim.lr = c->lr;
    if (L) {
        s = odl_model_init(&L->head, hd, &hc, a, d);
    } else {
        odl_mem_plan hp;
        s = odl_model_plan(hd, &hc, &hp, d);
        if (s == ODL_OK)
            for (int k = 0; k < ODL_MEM_KINDS && s == ODL_OK; k++)
                if (hp.bytes[k])
                    s = odl_arena_alloc(a, hp.bytes[k], (odl_mem_kind)k, &p, d);
    }
    if (s != ODL_OK)
        return s;
    TAKE(col_z, nz * (size_t)c->max_collected, ODL_MEM_BUFFERS);
    TAKE(col_y, sizeof(int32_t) * (size_t)c->max_collected, ODL_MEM_BUFFERS);
    TAKE(col_holdout, (size_t)c->max_collected, ODL_MEM_BUFFERS);
    TAKE(train_z, nz * (size_t)c->max_collected, ODL_MEM_SCRATCH);
    TAKE(train_y, sizeof(int32_t) * (size_t)c->max_collected, ODL_MEM_SCRATCH);
    if (c->guard_size > 0 && c->guard_dtype == ODL_REPLAY_INT8) {
        const size_t g = (size_t)c->guard_size;
        TAKE(guard_q, (size_t)dim * g, ODL_MEM_BUFFERS);
        TAKE(guard_s, sizeof(float) * g, ODL_MEM_BUFFERS);
        TAKE(guard_y, sizeof(int32_t) * g, ODL_MEM_BUFFERS);
        TAKE(ug_q, (size_t)dim * g, ODL_MEM_BUFFERS);
        TAKE(ug_s, sizeof(float) * g, ODL_MEM_BUFFERS);
        TAKE(ug_y, sizeof(int32_t) * g, ODL_MEM_BUFFERS);
        TAKE(gz, nz, ODL_MEM_SCRATCH);
    } else if (c->guard_size > 0) {
        TAKE(guard_z, nz * (size_t)c->guard_size, ODL_MEM_BUFFERS);
        TAKE(guard_y, sizeof(int32_t) * (size_t)c->guard_size, ODL_MEM_BUFFERS);
        TAKE(ug_z, nz * (size_t)c->guard_size, ODL_MEM_BUFFERS);
        TAKE(ug_y, sizeof(int32_t) * (size_t)c->guard_size, ODL_MEM_BUFFERS);
    }
    TAKE(cls_mean, nz * (size_t)C, ODL_MEM_BUFFERS);
    TAKE(cls_dmean, sizeof(float) * (size_t)C, ODL_MEM_BUFFERS);
    TAKE(cls_dm2, sizeof(float) * (size_t)C, ODL_MEM_BUFFERS);
    TAKE(cls_n, sizeof(uint32_t) * (size_t)C, ODL_MEM_BUFFERS);
    TAKE(pend_z, nz * PENDING, ODL_MEM_BUFFERS);
    TAKE(snap, sizeof(float) * n_state * (size_t)(c->versions + 1), ODL_MEM_BUFFERS);
    TAKE(pre, sizeof(float) * n_state, ODL_MEM_SCRATCH);
    if (c->shadow_n > 0)
        TAKE(cand, sizeof(float) * n_state, ODL_MEM_BUFFERS);
    if (is_stats(strat))
        TAKE(cnt_tmp, sizeof(uint32_t) * (size_t)C, ODL_MEM_SCRATCH);
    if (strat == ODL_STRATEGY_LWF)
        TAKE(teacher, sizeof(float) * (size_t)C * (size_t)c->max_collected, ODL_MEM_SCRATCH);
    TAKE(bias, sizeof(float) * (size_t)C, ODL_MEM_PARAMS);
    TAKE(mark_right, sizeof(uint32_t) * (size_t)C, ODL_MEM_STATE);
    TAKE(mark_wrong, sizeof(uint32_t) * (size_t)C, ODL_MEM_STATE);
    TAKE(z, nz, ODL_MEM_SCRATCH);
    TAKE(logits, sizeof(float) * (size_t)C, ODL_MEM_SCRATCH);
#undef TAKE
    if (c->replay.capacity > 0) {
        if (L) {
            s = odl_replay_init(&L->replay, &c->replay, a, d);
        } else {
            odl_mem_plan rp;
            s = odl_replay_plan(&c->replay, &rp, d);
            for (int k = 0; k < ODL_MEM_KINDS && s == ODL_OK; k++)
                if (rp.bytes[k])
                    s = odl_arena_alloc(a, rp.bytes[k], (odl_mem_kind)k, &p, d);
        }
        if (s != ODL_OK)
            return s;
    }
    odl_mem_plan sp;
    if (is_ewc(strat)) {
        if (L) {
            s = odl_ewc_init(&L->ewc, L->head, a, d);
        } else {
            s = odl_ewc_plan_sizes(n_params, n_tensors, C, &sp, d);
            for (int k = 0; k < ODL_MEM_KINDS && s == ODL_OK; k++)
                if (sp.bytes[k])
                    s = odl_arena_alloc(a, sp.bytes[k], (odl_mem_kind)k, &p, d);
        }
    } else if (strat == ODL_STRATEGY_NCM) {
        if (L) {
            s = odl_ncm_init(&L->ncm, dim, C, a, d);
        } else {
            s = odl_ncm_plan(dim, C, &sp, d);
            for (int k = 0; k < ODL_MEM_KINDS && s == ODL_OK; k++)
                if (sp.bytes[k])
                    s = odl_arena_alloc(a, sp.bytes[k], (odl_mem_kind)k, &p, d);
        }
    } else if (strat == ODL_STRATEGY_SLDA) {
        if (L) {
            s = odl_slda_init(&L->slda, dim, C, c->slda_shrinkage, a, d);
        } else {
            s = odl_slda_plan(dim, C, &sp, d);
            for (int k = 0; k < ODL_MEM_KINDS && s == ODL_OK; k++)
                if (sp.bytes[k])
                    s = odl_arena_alloc(a, sp.bytes[k], (odl_mem_kind)k, &p, d);
        }
    }
    if (s != ODL_OK || !backprop)
        return s;
    /* the trainer */
    if (L) {
        s = odl_adapt_init(&L->trainer, L->head, &c->adapt, c->max_collected, c->replay.capacity, a, d);
    } else {
        odl_mem_plan tp;
        s = odl_adapt_plan_dims((size_t)dim, C, &c->adapt, c->max_collected, c->replay.capacity, &tp, d);
        for (int k = 0; k < ODL_MEM_KINDS && s == ODL_OK; k++)
            if (tp.bytes[k])
                s = odl_arena_alloc(a, tp.bytes[k], (odl_mem_kind)k, &p, d);
    }
    return s;
}

/* The plan of a resolved configuration: the same layout over a counting
 * arena; sub-objects (head, replay, trainer) add their own plans, whose
 * blocks are all 16-byte multiples, so the totals match the real allocation
 * exactly. */
static odl_status plan_resolved(const odl_learner_cfg *c, const odl_model_desc *hd, const odl_model *base,
                                odl_mem_plan *plan, odl_diag *d)
{
    odl_arena a;
    void *p;
    odl_arena_init_counting(&a);
    odl_status s = odl_arena_alloc(&a, sizeof(odl_learner), ODL_MEM_STATE, &p, d);
    if (s == ODL_OK)
        s = layout(NULL, c, hd, (odl_model *)(uintptr_t)base, &a, d);
    if (s != ODL_OK)
        return s;
    *plan = a.plan;
    return ODL_OK;
}

odl_status odl_learner_plan(const odl_learner_cfg *cfg, const odl_model *base, odl_mem_plan *plan, odl_diag *d)
{
    odl_learner_cfg c;
    odl_node_desc hn[LEARNER_MAX_HEAD_NODES];
    odl_model_desc hd;
    odl_desc_init(&hd, hn, LEARNER_MAX_HEAD_NODES, 1, 1, 1);
    odl_status s = resolve(cfg, base, &c, &hd, d);
    if (s != ODL_OK)
        return s;
    return plan_resolved(&c, &hd, base, plan, d);
}

/* ---- helpers ----------------------------------------------------------------- */

/* The strategy's versioned state after the head and biases: EWC's Fisher and
 * anchors; NCM/SLDA's means, counts (their bits in floats), SLDA's covariance
 * and total count. */
static void extra_out(const odl_learner *L, float *dst)
{
    const size_t C = (size_t)L->C, D = (size_t)L->dim;
    if (L->ewc) {
        memcpy(dst, odl_ewc_fisher(L->ewc), sizeof(float) * L->n_params);
        memcpy(dst + L->n_params, odl_ewc_anchor(L->ewc), sizeof(float) * L->n_params);
    } else if (L->ncm || L->slda) {
        memcpy(dst, L->ncm ? odl_ncm_means(L->ncm) : odl_slda_means(L->slda), sizeof(float) * C * D);
        for (size_t c = 0; c < C; c++) {
            uint32_t n = (uint32_t)(L->ncm ? odl_ncm_count(L->ncm, (int32_t)c) : odl_slda_count(L->slda, (int32_t)c));
            memcpy(dst + C * D + c, &n, sizeof n);
        }
        if (L->slda) {
            odl_slda_covariance(L->slda, dst + C * D + C);
            uint64_t nt = odl_slda_n_total(L->slda);
            memcpy(dst + C * D + C + D * D, &nt, sizeof nt);
        }
    }
}

static void extra_in(odl_learner *L, const float *src)
{
    const size_t C = (size_t)L->C, D = (size_t)L->dim;
    if (L->ewc) {
        (void)odl_ewc_set(L->ewc, src, src + L->n_params, L->n_params, NULL);
    } else if (L->ncm || L->slda) {
        memcpy(L->cnt_tmp, src + C * D, sizeof(uint32_t) * C);
        if (L->ncm) {
            (void)odl_ncm_set(L->ncm, src, L->cnt_tmp, NULL);
        } else {
            uint64_t nt;
            memcpy(&nt, src + C * D + C + D * D, sizeof nt);
            (void)odl_slda_set(L->slda, src, L->cnt_tmp, src + C * D + C, nt, NULL);
        }
    }
}

static size_t state_floats(const odl_learner *L) { return L->n_params + (size_t)L->C + L->n_extra; }

/* The head's parameters and biases only (what a prediction reads). */
static void head_in(odl_learner *L, const float *src)
{
    size_t pos = 0;
    for (int32_t i = 0; i < L->head_desc.n_layers; i++)
        for (int which = 0; which < 2; which++) {
            size_t n;
            float *p = odl_model_param(L->head, i, which, &n);
            if (n) {
                memcpy(p, src + pos, sizeof(float) * n);
                pos += n;
            }
        }
    memcpy(L->bias, src + pos, sizeof(float) * (size_t)L->C);
}

static void params_out(const odl_learner *L, float *dst)
{
    extra_out(L, dst + L->n_params + (size_t)L->C);
    size_t pos = 0;
    for (int32_t i = 0; i < L->head_desc.n_layers; i++)
        for (int which = 0; which < 2; which++) {
            size_t n;
            const float *p = odl_model_param_const(L->head, i, which, &n);
            if (n) {
                memcpy(dst + pos, p, sizeof(float) * n);
                pos += n;
            }
        }
    memcpy(dst + pos, L->bias, sizeof(float) * (size_t)L->C);
}

static void params_in(odl_learner *L, const float *src)
{
    head_in(L, src);
    extra_in(L, src + L->n_params + (size_t)L->C);
}

static float *snap_slot(const odl_learner *L, int32_t k)
{
    return L->snap + (size_t)k * state_floats(L);
}

/* NCM and SLDA heads as the dense head's weights (same argmax): SLDA's
 * W·z + b directly; NCM's −‖z − μ_c‖² / 2σ² as z·μ_c/σ² − ‖μ_c‖²/2σ² (the
 * ‖z‖² term is the same for every class), σ² the mean within-class squared
 * distance of a latent to its class mean. A class never seen scores −1e30. */
static odl_status head_from_stats(odl_learner *L, odl_diag *d)
{
    size_t nw, nb;
    float *W = odl_model_param(L->head, 0, 0, &nw);
    float *b = odl_model_param(L->head, 0, 1, &nb);
    const size_t D = (size_t)L->dim;
    if (!W || !b || nw != D * (size_t)L->C || nb != (size_t)L->C)
        return odl_fail(d, ODL_ERR_STATE, "learner: the class-statistics head is not one dense layer");
    if (L->slda) {
        odl_status s = odl_slda_fit(L->slda, d);
        if (s != ODL_OK)
            return s;
        memcpy(W, odl_slda_weights(L->slda), sizeof(float) * nw);
        memcpy(b, odl_slda_bias(L->slda), sizeof(float) * nb);
        for (int32_t c = 0; c < L->C; c++)
            if (odl_slda_count(L->slda, c) == 0)
                b[c] = -1e30f;
        return ODL_OK;
    }
    float var = 0.0f;
    int32_t nv = 0;
    for (int32_t c = 0; c < L->C; c++)
        if (L->cls_n[c] >= 2) {
            var += L->cls_dmean[c] * L->cls_dmean[c] + L->cls_dm2[c] / (float)(L->cls_n[c] - 1);
            nv++;
        }
    /* the spread of a whole latent, not per dimension: a per-dimension
     * Gaussian is far too sure of itself on correlated latents, and the
     * contradiction screen would hold every example of a new class */
    var = nv ? var / (float)nv : 1.0f;
    if (!(var > 1e-12f))
        var = 1.0f;
    const float *mu = odl_ncm_means(L->ncm);
    for (int32_t c = 0; c < L->C; c++) {
        float *w = W + (size_t)c * D;
        const float *m = mu + (size_t)c * D;
        if (odl_ncm_count(L->ncm, c) == 0) {
            memset(w, 0, sizeof(float) * D);
            b[c] = -1e30f;
            continue;
        }
        float mm = 0.0f;
        for (size_t j = 0; j < D; j++) {
            w[j] = m[j] / var;
            mm += m[j] * m[j];
        }
        b[c] = -0.5f * mm / var;
    }
    return ODL_OK;
}

static int params_finite(const odl_learner *L)
{
    for (int32_t i = 0; i < L->head_desc.n_layers; i++)
        for (int which = 0; which < 2; which++) {
            size_t n;
            const float *p = odl_model_param_const(L->head, i, which, &n);
            for (size_t k = 0; k < n; k++)
                if (!isfinite(p[k]))
                    return 0;
        }
    return 1;
}

static odl_status latent(odl_learner *L, const float *x, odl_diag *d)
{
    return odl_model_forward_range(L->base, 0, L->boundary, x, 1, L->z, d);
}

/* class and confidence of the head on latent z (active classes only) */
static odl_status head_predict(odl_learner *L, const float *z, int32_t *cls, float *conf, odl_diag *d)
{
    const float *o;
    odl_status s = odl_model_forward(L->head, 0, z, 1, &o, d);
    if (s != ODL_OK)
        return s;
    for (int32_t j = 0; j < L->active; j++)
        L->logits[j] = o[j] + L->bias[j];
    int32_t best = 0;
    for (int32_t j = 1; j < L->active; j++)
        if (L->logits[j] > L->logits[best])
            best = j;
    if (conf) {
        odl_softmax_f32(L->active, L->logits, L->logits);
        *conf = L->logits[best];
    }
    *cls = best;
    return ODL_OK;
}

static float accuracy(odl_learner *L, const float *z, const int32_t *y, int32_t n, const uint8_t *only_holdout,
                      int32_t *count)
{
    int32_t ok = 0, tot = 0;
    for (int32_t k = 0; k < n; k++) {
        if (only_holdout && !only_holdout[k])
            continue;
        int32_t c;
        if (head_predict(L, z + (size_t)k * L->dim, &c, NULL, NULL) != ODL_OK)
            return 0.0f; /* an evaluation that cannot run scores nothing: the gate refuses */
        ok += c == y[k];
        tot++;
    }
    if (count)
        *count = tot;
    return tot ? (float)ok / (float)tot : 0.0f; /* callers check the count */
}

/* The guard sets: GUARD_OLD the old-task examples, GUARD_USER the held-out
 * examples of accepted updates. INT8 storage quantises each latent as the
 * replay buffer does (odl/replay.h: symmetric, scale = max|z|/127, rounded
 * half away from zero), so |z - read| <= scale/2. */
enum { GUARD_OLD = 0, GUARD_USER = 1 };

static void guard_store(odl_learner *L, int set, int32_t slot, const float *z, int32_t y)
{
    const size_t dim = (size_t)L->dim, off = (size_t)slot * dim;
    (set == GUARD_OLD ? L->guard_y : L->ug_y)[slot] = y;
    if (L->cfg.guard_dtype != ODL_REPLAY_INT8) {
        memcpy((set == GUARD_OLD ? L->guard_z : L->ug_z) + off, z, sizeof(float) * dim);
        return;
    }
    int8_t *q = (set == GUARD_OLD ? L->guard_q : L->ug_q) + off;
    float maxabs = 0.0f;
    for (size_t i = 0; i < dim; i++)
        if (fabsf(z[i]) > maxabs)
            maxabs = fabsf(z[i]);
    float scale = maxabs / 127.0f;
    if (scale > 0.0f) {
        for (size_t i = 0; i < dim; i++) {
            float v = roundf(z[i] / scale);
            q[i] = (int8_t)(v > 127.0f ? 127.0f : v < -127.0f ? -127.0f : v);
        }
    } else {
        scale = 0.0f; /* all zero, or so small that the scale underflows */
        memset(q, 0, dim);
    }
    (set == GUARD_OLD ? L->guard_s : L->ug_s)[slot] = scale;
}

/* The k-th latent of a guard set: in place (F32), or dequantised into L->gz. */
static const float *guard_latent(odl_learner *L, int set, int32_t k)
{
    const size_t dim = (size_t)L->dim, off = (size_t)k * dim;
    if (L->cfg.guard_dtype != ODL_REPLAY_INT8)
        return (set == GUARD_OLD ? L->guard_z : L->ug_z) + off;
    const int8_t *q = (set == GUARD_OLD ? L->guard_q : L->ug_q) + off;
    const float scale = (set == GUARD_OLD ? L->guard_s : L->ug_s)[k];
    for (size_t i = 0; i < dim; i++)
        L->gz[i] = (float)q[i] * scale;
    return L->gz;
}

/* The head's accuracy on a guard set (0 when it is empty: callers check the count). */
static float guard_accuracy(odl_learner *L, int set)
{
    const int32_t n = set == GUARD_OLD ? L->n_guard : L->n_ug;
    const int32_t *y = set == GUARD_OLD ? L->guard_y : L->ug_y;
    int32_t ok = 0;
    for (int32_t k = 0; k < n; k++) {
        int32_t c;
        if (head_predict(L, guard_latent(L, set, k), &c, NULL, NULL) != ODL_OK)
            return 0.0f; /* an evaluation that cannot run scores nothing: the gate refuses */
        ok += c == y[k];
    }
    return n ? (float)ok / (float)n : 0.0f;
}

/* EWC's Fisher on the old-task guard set (decay 0: replaced), anchors the
 * current head. INT8 guard sets: odl_ewc_estimate's loop, one dequantised
 * latent at a time (the same calls in the same order, so the same draws). */
static odl_status ewc_from_guard(odl_learner *L, odl_rng *rng, odl_diag *d)
{
    if (L->cfg.guard_dtype != ODL_REPLAY_INT8)
        return odl_ewc_estimate(L->ewc, L->head, 0, L->guard_z, L->guard_y, L->n_guard, 0.0f, rng, d);
    const int32_t C = odl_model_n_classes(L->head);
    odl_status s = odl_ewc_begin(L->ewc);
    for (int32_t k = 0; k < L->n_guard && s == ODL_OK; k++) {
        const float *logits = NULL;
        s = odl_model_forward_train(L->head, 0, guard_latent(L, GUARD_OLD, k), 1, rng, &logits, d);
        if (s != ODL_OK)
            break;
        /* L->logits: C floats of scratch, free outside predictions */
        const float l = odl_softmax_xent_f32(1, C, logits, &L->guard_y[k], NULL, L->logits);
        if (!isfinite(l)) {
            s = odl_fail(d, ODL_ERR_NUMERIC, "learner: EWC's Fisher: the loss of guard example %d is not finite",
                         (int)k);
            break;
        }
        s = odl_model_backward(L->head, L->logits, 1, d);
        if (s == ODL_OK && (s = odl_ewc_accumulate(L->ewc, L->head)) != ODL_OK)
            s = odl_fail(d, s, "learner: EWC's Fisher: the head does not match its EWC state");
    }
    return s == ODL_OK ? odl_ewc_end(L->ewc, L->head, 0.0f, d) : s;
}

static void class_stat_add(odl_learner *L, const float *z, int32_t c)
{
    float *mu = L->cls_mean + (size_t)c * L->dim;
    uint32_t n = ++L->cls_n[c];
    float dist = 0.0f;
    for (int32_t j = 0; j < L->dim; j++) {
        mu[j] += (z[j] - mu[j]) / (float)n;
        float e = z[j] - mu[j];
        dist += e * e;
    }
    dist = sqrtf(dist);
    float delta = dist - L->cls_dmean[c];
    L->cls_dmean[c] += delta / (float)n;
    L->cls_dm2[c] += delta * (dist - L->cls_dmean[c]);
}

static float dist2(const float *a, const float *b, int32_t n)
{
    float s = 0.0f;
    for (int32_t j = 0; j < n; j++) {
        float e = a[j] - b[j];
        s += e * e;
    }
    return s;
}

/* ---- public ------------------------------------------------------------------- */

odl_status odl_learner_init(odl_learner **out, const odl_learner_cfg *cfg, odl_model *base, odl_arena *a,
                            odl_diag *d)
{
    if (!out || !a)
        return odl_fail(d, ODL_ERR_ARG, "learner: out and arena must not be NULL");
    *out = NULL;
    odl_learner_cfg c;
    odl_node_desc hn[LEARNER_MAX_HEAD_NODES];
    odl_model_desc hd;
    odl_desc_init(&hd, hn, LEARNER_MAX_HEAD_NODES, 1, 1, 1);
    odl_mem_plan plan;
    /* resolved once: the head's description lives on this stack frame only */
    odl_status s = resolve(cfg, base, &c, &hd, d);
    if (s == ODL_OK)
        s = plan_resolved(&c, &hd, base, &plan, d);
    if (s != ODL_OK)
        return s;
    if (odl_arena_remaining(a) < plan.total)
        return odl_fail(d, ODL_ERR_NOMEM,
                        "arena too small for the learner: needs %zu bytes (params %zu, grads %zu, optimizer %zu, "
                        "buffers %zu, scratch %zu), %zu available",
                        plan.total, plan.bytes[ODL_MEM_PARAMS], plan.bytes[ODL_MEM_GRADS], plan.bytes[ODL_MEM_OPTIM],
                        plan.bytes[ODL_MEM_BUFFERS], plan.bytes[ODL_MEM_SCRATCH], odl_arena_remaining(a));
    void *p;
    s = odl_arena_alloc(a, sizeof(odl_learner), ODL_MEM_STATE, &p, d);
    if (s != ODL_OK)
        return s;
    odl_learner *L = p;
    s = layout(L, &c, &hd, base, a, d);
    if (s != ODL_OK)
        return s;
    L->cfg = c;
    L->base = base;
    L->head_desc = *odl_model_get_desc(L->head); /* the head model's own nodes, in the arena */
    L->boundary = c.boundary;
    L->dim = (int32_t)odl_model_layer_shape(base, c.boundary - 1).size;
    L->in_size = (int32_t)odl_model_layer_shape(base, -1).size;
    L->C = c.max_classes;
    L->base_classes = odl_model_n_classes(base);
    L->active = L->base_classes;
    L->n_params = 0; /* every parameter of the head (the same count layout took) */
    for (int32_t i = 0; i < hd.n_layers; i++)
        for (int which = 0; which < 2; which++) {
            size_t n = 0;
            (void)odl_model_param_const(L->head, i, which, &n);
            L->n_params += n;
        }
    /* the head starts as the base's: its layers copied, extra class rows zero
     * (masked out of predictions until a label activates them) */
    for (int32_t i = 0; i < hd.n_layers; i++)
        for (int which = 0; which < 2; which++) {
            size_t nh, nb;
            float *dst = odl_model_param(L->head, i, which, &nh);
            const float *src = odl_model_param_const(base, c.boundary + i, which, &nb);
            if (!nh)
                continue;
            if (!src || nb > nh)
                return odl_fail(d, ODL_ERR_STATE, "learner: the base's layer %d has no parameters loaded",
                                (int)(c.boundary + i));
            memcpy(dst, src, sizeof(float) * nb);
        }
    if (c.drift) {
        s = odl_zscore_init(&L->drift_input, &c.drift_input, d);
        if (s == ODL_OK)
            s = odl_conf_init(&L->drift_conf, &c.drift_conf, d);
        if (s != ODL_OK)
            return s;
    }
    params_out(L, snap_slot(L, 0));
    L->n_snap = 1;
    L->cur_snap = 0;
    L->st.active_classes = L->active;
    *out = L;
    return ODL_OK;
}

/* One old sample (its latent in L->z): statistics, replay, guard reservoir. */
static odl_status seed_one(odl_learner *L, int32_t y, odl_rng *rng, odl_diag *d)
{
    if (y < 0 || y >= L->base_classes)
        return odl_fail(d, ODL_ERR_ARG, "learner_seed_old: label %d is not a base class", (int)y);
    class_stat_add(L, L->z, y);
    odl_status s;
    if (L->replay && (s = odl_replay_add(L->replay, L->z, y, rng, d)) != ODL_OK)
        return s;
    if (L->ncm && (s = odl_ncm_add(L->ncm, L->z, y)) != ODL_OK)
        return odl_fail(d, s, "learner_seed_old: the class means refused a sample of class %d", (int)y);
    if (L->slda && (s = odl_slda_add(L->slda, L->z, y)) != ODL_OK)
        return odl_fail(d, s, "learner_seed_old: streaming LDA refused a sample of class %d", (int)y);
    L->guard_seen++;
    if (L->cfg.guard_size > 0) {
        int32_t slot = -1;
        if (L->n_guard < L->cfg.guard_size)
            slot = L->n_guard++;
        else {
            uint32_t j = odl_rng_below(rng, (uint32_t)(L->guard_seen > 0xffffffffu ? 0xffffffffu : L->guard_seen));
            if (j < (uint32_t)L->cfg.guard_size)
                slot = (int32_t)j;
        }
        if (slot >= 0)
            guard_store(L, GUARD_OLD, slot, L->z, y);
    }
    return ODL_OK;
}

/* After seeding: the class-statistics head is fitted, EWC's Fisher taken on
 * the old-task guard set (anchors: the base's head), and the current
 * version holds the result. */
static odl_status after_seed(odl_learner *L, odl_rng *rng, odl_diag *d)
{
    odl_status s = ODL_OK;
    if (L->ncm || L->slda)
        s = head_from_stats(L, d);
    if (s == ODL_OK && L->ewc && L->n_guard > 0)
        s = ewc_from_guard(L, rng, d);
    if (s == ODL_OK)
        params_out(L, snap_slot(L, L->cur_snap));
    return s;
}

/* ODL_OK when all n × size values are finite; else names the first bad one. */
static odl_status seed_check_finite(const float *x, int32_t n, size_t size, const char *what, odl_diag *d)
{
    for (int32_t k = 0; k < n; k++)
        for (size_t j = 0; j < size; j++)
            if (!isfinite(x[(size_t)k * size + j]))
                return odl_fail(d, ODL_ERR_NUMERIC, "%s %d, value %zu is %s (seed data must be finite)", what, (int)k,
                                j, isnan(x[(size_t)k * size + j]) ? "NaN" : "infinite");
    return ODL_OK;
}

odl_status odl_learner_seed_old(odl_learner *L, const float *x, const int32_t *y, int32_t n, odl_rng *rng,
                                odl_diag *d)
{
    if (!L || !x || !y || n <= 0 || !rng)
        return odl_fail(d, ODL_ERR_ARG, "learner_seed_old: bad arguments");
    /* one NaN/Inf in the seed poisons the class statistics and the outlier
     * screen for good: refuse the whole seed before taking any of it */
    odl_status s = seed_check_finite(x, n, L->in_size, "learner_seed_old: sample", d);
    if (s != ODL_OK)
        return s;
    for (int32_t k = 0; k < n; k++) {
        s = latent(L, x + (size_t)k * L->in_size, d);
        if (s == ODL_OK)
            for (int32_t j = 0; j < L->dim; j++)
                if (!isfinite(L->z[j]))
                    return odl_fail(d, ODL_ERR_NUMERIC, "learner_seed_old: sample %d gives a non-finite latent "
                                    "(seed data must be finite and within the model's range)", (int)k);
        if (s == ODL_OK)
            s = seed_one(L, y[k], rng, d);
        if (s != ODL_OK)
            return s;
    }
    return after_seed(L, rng, d);
}

odl_status odl_learner_seed_old_latent(odl_learner *L, const float *z, const int32_t *y, int32_t n, odl_rng *rng,
                                       odl_diag *d)
{
    if (!L || !z || !y || n <= 0 || !rng)
        return odl_fail(d, ODL_ERR_ARG, "learner_seed_old_latent: bad arguments");
    odl_status sf = seed_check_finite(z, n, (size_t)L->dim, "learner_seed_old_latent: sample", d);
    if (sf != ODL_OK)
        return sf;
    for (int32_t k = 0; k < n; k++) {
        memcpy(L->z, z + (size_t)k * L->dim, sizeof(float) * (size_t)L->dim);
        odl_status s = seed_one(L, y[k], rng, d);
        if (s != ODL_OK)
            return s;
    }
    return after_seed(L, rng, d);
}

int32_t odl_learner_dim(const odl_learner *L) { return L->dim; }

/* Prediction on L->z, with the drift monitors fed (input_std < 0: no input monitor). */
static odl_status predict_z(odl_learner *L, float input_std, int32_t *cls, float *confidence, odl_diag *d)
{
    float conf = 0.0f;
    odl_status s = head_predict(L, L->z, cls, &conf, d);
    if (s != ODL_OK)
        return s;
    L->st.predictions++;
    if (confidence)
        *confidence = conf;
    if (!L->cfg.drift)
        return ODL_OK;
    odl_status a = input_std >= 0.0f ? odl_zscore_update(&L->drift_input, input_std) : ODL_OK;
    odl_status b = odl_conf_update(&L->drift_conf, conf);
    if (a == ODL_EVENT_DRIFT || b == ODL_EVENT_DRIFT) {
        L->st.drift_events++;
        L->st.last_drift_at = L->st.predictions;
        return ODL_EVENT_DRIFT;
    }
    return ODL_OK;
}

odl_status odl_learner_predict(odl_learner *L, const float *x, int32_t *cls, float *confidence, odl_diag *d)
{
    if (!L || !x || !cls)
        return odl_fail(d, ODL_ERR_ARG, "learner_predict: bad arguments");
    odl_status s = latent(L, x, d);
    if (s != ODL_OK)
        return s;
    float mean, std;
    odl_drift_sample_stats(x, (size_t)L->in_size, &mean, &std);
    return predict_z(L, std, cls, confidence, d);
}

odl_status odl_learner_predict_latent(odl_learner *L, const float *z, float input_std, int32_t *cls,
                                      float *confidence, odl_diag *d)
{
    if (!L || !z || !cls)
        return odl_fail(d, ODL_ERR_ARG, "learner_predict_latent: bad arguments");
    memcpy(L->z, z, sizeof(float) * (size_t)L->dim);
    return predict_z(L, input_std, cls, confidence, d);
}

static odl_status reject(odl_learner *L, odl_reason r, odl_reason *why)
{
    L->st.rejected[r]++;
    if (why)
        *why = r;
    return ODL_EVENT_REJECTED;
}

/* The data-quality gate and collection of latent L->z with label. */
static odl_status collect(odl_learner *L, int32_t label, odl_reason *why, odl_diag *d)
{
    const int32_t dim = L->dim;
    const float *z = L->z;
    /* outlier: distance from the class mean beyond mean + k·std of distances */
    if (L->cfg.outlier_k > 0.0f && L->cls_n[label] >= (uint32_t)L->cfg.outlier_min) {
        float dd = sqrtf(dist2(z, L->cls_mean + (size_t)label * dim, dim));
        float sd = sqrtf(L->cls_dm2[label] / (float)(L->cls_n[label] - 1));
        if (dd > L->cls_dmean[label] + L->cfg.outlier_k * sd)
            return reject(L, ODL_REASON_OUTLIER, why);
    }
    /* a label contradicting a very confident prediction waits for confirmation */
    int32_t pred = 0;
    float conf = 0.0f;
    odl_status s = head_predict(L, z, &pred, &conf, d);
    if (s != ODL_OK)
        return s;
    /* "near" is relative to the latent's own length */
    float zn2 = 1e-12f;
    for (int32_t j = 0; j < dim; j++)
        zn2 += z[j] * z[j];
    const float eps2 = L->cfg.dup_eps * L->cfg.dup_eps * zn2;
    /* a class with no statistics yet is new to the learner: nothing to contradict */
    if (pred != label && label < L->active && L->cls_n[label] > 0 && conf >= L->cfg.confident) {
        int32_t confirmed = 0;
        for (int32_t k = 0; k < L->n_pend; k++)
            if (L->pend_y[k] == label && dist2(L->pend_z + (size_t)k * dim, z, dim) <= eps2) {
                confirmed = 1;
                L->pend_y[k] = -1; /* used */
                break;
            }
        if (!confirmed) {
            int32_t slot = L->n_pend < PENDING ? L->n_pend++ : L->pend_next;
            L->pend_next = (slot + 1) % PENDING;
            memcpy(L->pend_z + (size_t)slot * dim, z, sizeof(float) * (size_t)dim);
            L->pend_y[slot] = label;
            return reject(L, ODL_REASON_CONTRADICTS, why);
        }
    }
    /* floods of near-duplicates, and one class flooding the buffer */
    int32_t dups = 0, same_class = 0;
    for (int32_t k = 0; k < L->n_col; k++) {
        same_class += L->col_y[k] == label;
        if (L->col_y[k] == label && dist2(L->col_z + (size_t)k * dim, z, dim) <= eps2)
            dups++;
    }
    if (dups >= L->cfg.max_dups)
        return reject(L, ODL_REASON_DUPLICATE, why);
    if (L->n_col >= 10 && (float)(same_class + 1) > L->cfg.max_class_share * (float)(L->n_col + 1))
        return reject(L, ODL_REASON_IMBALANCE, why);
    if (L->n_col >= L->cfg.max_collected)
        return reject(L, ODL_REASON_FULL, why);
    const int32_t k = L->n_col++;
    memcpy(L->col_z + (size_t)k * dim, z, sizeof(float) * (size_t)dim);
    L->col_y[k] = label;
    L->st.accepted_examples++;
    L->col_holdout[k] = (L->st.accepted_examples % (uint32_t)L->cfg.holdout_every) == 0;
    class_stat_add(L, z, label);
    if (label >= L->active)
        L->active = label + 1;
    if (why)
        *why = ODL_REASON_NONE;
    return ODL_OK;
}

/* The first screen of a labelled example (raw input or latent, n values):
 * counted as feedback, refused when non-finite or labelled out of range. */
static odl_status screen(odl_learner *L, const float *v, int32_t n, int32_t label, odl_reason *why)
{
    L->st.feedback++;
    if (why)
        *why = ODL_REASON_NONE;
    for (int32_t k = 0; k < n; k++)
        if (!isfinite(v[k]))
            return reject(L, ODL_REASON_NONFINITE, why);
    if (label < 0 || label >= L->C)
        return reject(L, ODL_REASON_LABEL, why);
    return ODL_OK;
}

odl_status odl_learner_feedback(odl_learner *L, const float *x, int32_t label, odl_reason *why, odl_diag *d)
{
    if (!L || !x)
        return odl_fail(d, ODL_ERR_ARG, "learner_feedback: bad arguments");
    odl_status s = screen(L, x, L->in_size, label, why);
    if (s == ODL_OK)
        s = latent(L, x, d);
    if (s == ODL_OK)
        s = shadow_score(L, label, -1, d);
    if (s != ODL_OK)
        return s;
    return collect(L, label, why, d);
}

odl_status odl_learner_feedback_latent(odl_learner *L, const float *z, int32_t label, odl_reason *why, odl_diag *d)
{
    if (!L || !z)
        return odl_fail(d, ODL_ERR_ARG, "learner_feedback_latent: bad arguments");
    odl_status s = screen(L, z, L->dim, label, why);
    if (s != ODL_OK)
        return s;
    memcpy(L->z, z, sizeof(float) * (size_t)L->dim);
    s = shadow_score(L, label, -1, d);
    if (s != ODL_OK)
        return s;
    return collect(L, label, why, d);
}

static odl_status mark_z(odl_learner *L, int32_t correct, odl_reason *why, odl_diag *d);

odl_status odl_learner_mark_latent(odl_learner *L, const float *z, int32_t correct, odl_reason *why, odl_diag *d)
{
    if (!L || !z)
        return odl_fail(d, ODL_ERR_ARG, "learner_mark_latent: bad arguments");
    memcpy(L->z, z, sizeof(float) * (size_t)L->dim);
    return mark_z(L, correct, why, d);
}

odl_status odl_learner_mark(odl_learner *L, const float *x, int32_t correct, odl_reason *why, odl_diag *d)
{
    if (!L || !x)
        return odl_fail(d, ODL_ERR_ARG, "learner_mark: bad arguments");
    odl_status s = latent(L, x, d);
    if (s != ODL_OK)
        return s;
    return mark_z(L, correct, why, d);
}

/* A right/wrong mark on the prediction for the latent in L->z. */
static odl_status mark_z(odl_learner *L, int32_t correct, odl_reason *why, odl_diag *d)
{
    int32_t pred = 0;
    float conf;
    odl_status s = head_predict(L, L->z, &pred, &conf, d);
    if (s != ODL_OK)
        return s;
    if (why)
        *why = ODL_REASON_NONE;
    s = shadow_score(L, correct ? pred : -1, correct ? -1 : pred, d);
    if (s != ODL_OK)
        return s;
    if (!correct) {
        L->mark_wrong[pred]++;
        L->st.marks_wrong++;
        return ODL_OK;
    }
    L->mark_right[pred]++;
    L->st.marks_right++;
    L->st.feedback++;
    return collect(L, pred, why, d);
}

/* A new version from the current state: drop any versions after the
 * current one, then push. */
static void push_version(odl_learner *L)
{
    int32_t next = L->cur_snap + 1;
    if (next > L->cfg.versions) {
        /* full: slide the ring down by one (oldest version forgotten) */
        const size_t stride = state_floats(L);
        memmove(L->snap, L->snap + stride, sizeof(float) * stride * (size_t)L->cfg.versions);
        next = L->cfg.versions;
    }
    params_out(L, snap_slot(L, next));
    L->cur_snap = next;
    L->n_snap = next + 1;
    L->st.version++;
}

static void set_msg(char *dst, size_t cap, const char *msg)
{
    size_t len = strlen(msg);
    if (len >= cap)
        len = cap - 1;
    memcpy(dst, msg, len);
    dst[len] = '\0';
}

/* Shadow evaluation: scores the current head and the waiting candidate on
 * the latent in L->z. truth ≥ 0: the user's label (or a prediction marked
 * right); else `wrong` is a class marked wrong for the current head's
 * prediction: the current head scores 0, the candidate ½ if it predicts
 * another class (a wrong mark does not say which class is right). After
 * shadow_n scored, the candidate is promoted when its score is at least the
 * current head's + shadow_margin·shadow_n, and dropped otherwise. */
static odl_status shadow_score(odl_learner *L, int32_t truth, int32_t wrong, odl_diag *d)
{
    odl_learner_status *st = &L->st;
    if (!st->shadow_active)
        return ODL_OK;
    int32_t pc = 0, pq = 0;
    odl_status s = head_predict(L, L->z, &pc, NULL, d);
    if (s != ODL_OK)
        return s;
    head_in(L, L->cand);
    s = head_predict(L, L->z, &pq, NULL, d);
    head_in(L, snap_slot(L, L->cur_snap));
    if (s != ODL_OK)
        return s;
    if (truth >= 0) {
        st->shadow_cur_correct += pc == truth ? 1.0f : 0.0f;
        st->shadow_cand_correct += pq == truth ? 1.0f : 0.0f;
    } else {
        st->shadow_cand_correct += pq != wrong ? 0.5f : 0.0f;
    }
    if (++st->shadow_scored < L->cfg.shadow_n)
        return ODL_OK;
    const float need = st->shadow_cur_correct + L->cfg.shadow_margin * (float)st->shadow_scored;
    const int promote = st->shadow_cand_correct >= need - 1e-6f;
    st->shadow_active = 0;
    if (promote) {
        params_in(L, L->cand);
        push_version(L);
        st->shadow_promoted++;
    } else {
        st->shadow_dropped++;
    }
    odl_diag tmp;
    char f0[ODL_FMT_F32_MAX], f1[ODL_FMT_F32_MAX], f2[ODL_FMT_F32_MAX];
    odl_fail(&tmp, ODL_OK, "candidate %s: %s of %d right against the current head's %s (needs >= %s)",
             promote ? "promoted" : "dropped", odl_fmt_f32(f0, st->shadow_cand_correct, 1), (int)st->shadow_scored,
             odl_fmt_f32(f1, st->shadow_cur_correct, 1), odl_fmt_f32(f2, need, 1));
    set_msg(st->shadow_decision, sizeof st->shadow_decision, tmp.msg);
    return ODL_OK;
}

/* Appends "NAME 0.583 -> 0.750 on N" to a gate message's figures (N = 0:
 * not measured, nothing); t is the caller's scratch diag (small stacks).
 * Accuracies in [0, 1] print as whole thousandths: no double on the device. */
static void append_figure(char *figs, size_t cap, odl_diag *t, const char *name, int32_t n, float before, float after)
{
    if (n <= 0)
        return;
    const int b = (int)(before * 1000.0f + 0.5f), a = (int)(after * 1000.0f + 0.5f);
    odl_fail(t, ODL_OK, "%s%s%s %d.%d%d%d -> %d.%d%d%d on %d", figs, figs[0] ? ", " : "", name, b / 1000,
             b / 100 % 10, b / 10 % 10, b % 10, a / 1000, a / 100 % 10, a / 10 % 10, a % 10, (int)n);
    set_msg(figs, cap, t->msg);
}

/* Evaluates, then accepts or restores L->pre; returns OK or ROLLED_BACK.
 * An accepted update of online EWC is consolidated on its training
 * examples (tz, ty: n; rng may be NULL for none); with shadow evaluation on,
 * it waits as a candidate instead of becoming the current version. */
static odl_status gate(odl_learner *L, float old_before, float user_before, float new_before, int32_t n_new,
                       const char *what, int diverged, odl_rng *rng, const float *tz, const int32_t *ty)
{
    odl_learner_status *st = &L->st;
    const odl_gate_policy *g = &L->cfg.gate;
    /* each set is measured only when it has examples: its count says so */
    int32_t cnt = 0;
    float new_after = accuracy(L, L->col_z, L->col_y, L->n_col, L->col_holdout, &cnt);
    const int32_t old_n = L->n_guard, user_n = L->n_ug, new_n = cnt ? cnt : (n_new ? L->n_col : 0);
    if (cnt == 0)
        new_after = new_n ? accuracy(L, L->col_z, L->col_y, L->n_col, NULL, NULL) : 0.0f;
    const float old_after = old_n ? guard_accuracy(L, GUARD_OLD) : 0.0f;
    const float user_after = user_n ? guard_accuracy(L, GUARD_USER) : 0.0f;
    st->last_old_n = old_n;
    st->last_new_n = new_n;
    st->last_user_n = user_n;
    st->last_old_before = old_n ? old_before : 0.0f;
    st->last_old_after = old_after;
    st->last_new_before = new_n ? new_before : 0.0f;
    st->last_new_after = new_after;
    st->last_user_before = user_n ? user_before : 0.0f;
    st->last_user_after = user_after;
    st->user_guard = user_n;
    /* noise_examples of each set, as accuracy (0 when the policy counts every difference) */
    const float k = (float)g->noise_examples;
    const float old_tol = old_n ? k / (float)old_n : 0.0f, new_tol = new_n ? k / (float)new_n : 0.0f;
    const float user_tol = user_n ? k / (float)user_n : 0.0f;
    const char *why = NULL;
    if (diverged)
        why = "training diverged";
    else if (!params_finite(L))
        why = "non-finite weights";
    else if (new_n && new_after < g->new_target - new_tol)
        why = "new-task accuracy below target";
    else if (old_n && old_after < old_before - g->max_old_drop - old_tol)
        why = "old-task accuracy dropped too far";
    else if (user_n && user_after < user_before - g->max_old_drop - user_tol)
        why = "accuracy on the user's earlier examples dropped too far";
    else if (g->require_avg_not_worse && old_n && new_n) {
        float w = g->new_weight;
        if (w * new_after + (1 - w) * old_after <
            w * new_before + (1 - w) * old_before - 1e-6f - (w * new_tol + (1 - w) * old_tol))
            why = "weighted average fell";
    }
    char *m = st->last_decision;
    size_t cap = sizeof st->last_decision;
    /* the core has no stdio: a fixed-format message via odl_fail into a diag;
     * the figures name only the sets that were measured */
    odl_diag tmp;
    char figs[128] = "";
    append_figure(figs, sizeof figs, &tmp, "old", old_n, st->last_old_before, old_after);
    append_figure(figs, sizeof figs, &tmp, "earlier user", user_n, st->last_user_before, user_after);
    append_figure(figs, sizeof figs, &tmp, "new", new_n, st->last_new_before, new_after);
    if (!figs[0])
        set_msg(figs, sizeof figs, "nothing held out to measure");
    if (why) {
        params_in(L, L->pre);
        st->last_accepted = 0;
        odl_fail(&tmp, ODL_EVENT_ROLLED_BACK, "%s rolled back: %s (%s)", what, why, figs);
    } else {
        st->last_accepted = 1;
        odl_fail(&tmp, ODL_OK, "%s accepted (%s)", what, figs);
    }
    set_msg(m, cap, tmp.msg);
    if (why)
        return ODL_EVENT_ROLLED_BACK;
    if (L->cfg.strategy == ODL_STRATEGY_EWC_ONLINE && L->ewc && rng && tz && n_new > 0)
        (void)odl_ewc_estimate(L->ewc, L->head, 0, tz, ty, n_new, L->cfg.ewc_decay, rng, NULL);
    if (L->cfg.shadow_n > 0) {
        params_out(L, L->cand);
        params_in(L, L->pre);
        st->shadow_active = 1;
        st->shadow_scored = 0;
        st->shadow_cand_correct = st->shadow_cur_correct = 0.0f;
        odl_fail(&tmp, ODL_OK, "%s; a candidate for the next %d labelled or marked predictions", m,
                 (int)L->cfg.shadow_n);
        set_msg(m, cap, tmp.msg);
        return ODL_OK;
    }
    push_version(L);
    return ODL_OK;
}

odl_status odl_learner_update(odl_learner *L, odl_rng *rng, odl_diag *d)
{
    if (!L || !rng)
        return odl_fail(d, ODL_ERR_ARG, "learner_update: bad arguments");
    if (L->st.shadow_active)
        return odl_fail(d, ODL_ERR_STATE, "learner_update: a candidate is in shadow evaluation (%d of %d scored); "
                        "update after it is promoted or dropped", (int)L->st.shadow_scored, (int)L->cfg.shadow_n);
    int32_t n_train = 0;
    for (int32_t k = 0; k < L->n_col; k++)
        if (!L->col_holdout[k]) {
            memcpy(L->train_z + (size_t)n_train * L->dim, L->col_z + (size_t)k * L->dim, sizeof(float) * L->dim);
            L->train_y[n_train++] = L->col_y[k];
        }
    if (n_train == 0)
        return odl_fail(d, ODL_ERR_STATE, "learner_update: nothing collected to learn from (%d held out)",
                        (int)L->n_col);
    L->st.updates++;
    params_out(L, L->pre);
    const float old_before = L->n_guard ? guard_accuracy(L, GUARD_OLD) : 0.0f;
    const float user_before = L->n_ug ? guard_accuracy(L, GUARD_USER) : 0.0f;
    int32_t cnt = 0;
    float new_before = accuracy(L, L->col_z, L->col_y, L->n_col, L->col_holdout, &cnt);
    if (cnt == 0)
        new_before = accuracy(L, L->col_z, L->col_y, L->n_col, NULL, NULL);
    odl_diag td;
    odl_diag_clear(&td);
    odl_status s = ODL_OK;
    const int32_t strat = L->cfg.strategy;
    if (by_backprop(strat)) {
        odl_model_reset_optimizer(L->head);
        if (L->teacher) /* LwF: the pre-update head's logits of the training examples */
            for (int32_t k = 0; k < n_train && s == ODL_OK; k++) {
                const float *o;
                s = odl_model_forward(L->head, 0, L->train_z + (size_t)k * L->dim, 1, &o, &td);
                if (s == ODL_OK)
                    memcpy(L->teacher + (size_t)k * L->C, o, sizeof(float) * (size_t)L->C);
            }
        odl_adapt_stats as;
        if (s == ODL_OK)
            s = odl_adapt_run(L->trainer, L->head, L->train_z, L->train_y, n_train, L->teacher,
                              L->teacher ? L->C : 0, L->replay, L->ewc, rng, &as, &td);
    } else if (is_stats(strat)) {
        /* one pass: the class statistics take the examples, the head is refitted;
         * counts capped first (from the copy in pre) so the user's examples weigh */
        if (L->cfg.stats_window > 0) {
            const size_t C = (size_t)L->C, D = (size_t)L->dim;
            const float *ex = L->pre + L->n_params + C;
            uint64_t total = 0;
            memcpy(L->cnt_tmp, ex + C * D, sizeof(uint32_t) * C);
            for (size_t c = 0; c < C; c++) {
                if (L->cnt_tmp[c] > (uint32_t)L->cfg.stats_window)
                    L->cnt_tmp[c] = (uint32_t)L->cfg.stats_window;
                total += L->cnt_tmp[c];
            }
            s = L->ncm ? odl_ncm_set(L->ncm, ex, L->cnt_tmp, &td)
                       : odl_slda_set(L->slda, ex, L->cnt_tmp, ex + C * D + C, total, &td);
        }
        for (int32_t k = 0; k < n_train && s == ODL_OK; k++) {
            const float *z = L->train_z + (size_t)k * L->dim;
            s = L->ncm ? odl_ncm_add(L->ncm, z, L->train_y[k]) : odl_slda_add(L->slda, z, L->train_y[k]);
        }
        if (s == ODL_OK)
            s = head_from_stats(L, &td);
        if (s != ODL_OK)
            s = ODL_ERR_NUMERIC; /* refused like a diverged training: rolled back */
    } else {
        /* bias calibration: the examples count as right/wrong marks of the current head */
        for (int32_t k = 0; k < n_train && s == ODL_OK; k++) {
            int32_t pred;
            s = head_predict(L, L->train_z + (size_t)k * L->dim, &pred, NULL, &td);
            if (s == ODL_OK && pred == L->train_y[k])
                L->mark_right[pred]++;
            else if (s == ODL_OK)
                L->mark_wrong[pred]++;
        }
        for (int32_t c = 0; c < L->C && s == ODL_OK; c++) {
            uint32_t n = L->mark_right[c] + L->mark_wrong[c];
            if (n)
                L->bias[c] -= L->cfg.bias_step * (float)L->mark_wrong[c] / (float)n;
            L->mark_right[c] = L->mark_wrong[c] = 0;
        }
    }
    if (s != ODL_OK && s != ODL_ERR_NUMERIC) {
        params_in(L, L->pre);
        if (d)
            *d = td;
        return s;
    }
    s = gate(L, old_before, user_before, new_before, n_train, "update", s == ODL_ERR_NUMERIC, rng, L->train_z,
             L->train_y);
    if (s == ODL_OK) {
        L->st.updates_accepted++;
        for (int32_t k = 0; L->replay && k < L->n_col; k++)
            odl_replay_add(L->replay, L->col_z + (size_t)k * L->dim, L->col_y[k], rng, NULL);
        /* the accepted update's held-out examples now guard it (a ring) */
        for (int32_t k = 0; L->cfg.guard_size > 0 && k < L->n_col; k++) {
            if (!L->col_holdout[k])
                continue;
            int32_t slot = L->n_ug < L->cfg.guard_size ? L->n_ug++ : L->ug_next;
            L->ug_next = (slot + 1) % L->cfg.guard_size;
            guard_store(L, GUARD_USER, slot, L->col_z + (size_t)k * L->dim, L->col_y[k]);
        }
    } else {
        L->st.updates_rolled_back++;
    }
    /* either way the collected examples are spent: learned, or refused */
    L->n_col = 0;
    return s;
}

odl_status odl_learner_calibrate(odl_learner *L, odl_diag *d)
{
    if (!L)
        return odl_fail(d, ODL_ERR_ARG, "learner_calibrate: NULL learner");
    uint32_t total = 0;
    for (int32_t c = 0; c < L->C; c++)
        total += L->mark_right[c] + L->mark_wrong[c];
    if (!total)
        return odl_fail(d, ODL_ERR_STATE, "learner_calibrate: no right/wrong marks since the last calibration");
    if (L->st.shadow_active)
        return odl_fail(d, ODL_ERR_STATE, "learner_calibrate: a candidate is in shadow evaluation (%d of %d scored)",
                        (int)L->st.shadow_scored, (int)L->cfg.shadow_n);
    L->st.updates++;
    params_out(L, L->pre);
    const float old_before = L->n_guard ? guard_accuracy(L, GUARD_OLD) : 0.0f;
    const float user_before = L->n_ug ? guard_accuracy(L, GUARD_USER) : 0.0f;
    int32_t cnt = 0;
    float new_before = accuracy(L, L->col_z, L->col_y, L->n_col, L->col_holdout, &cnt);
    /* a class predicted wrongly often gets its logit lowered in proportion */
    for (int32_t c = 0; c < L->C; c++) {
        uint32_t n = L->mark_right[c] + L->mark_wrong[c];
        if (n)
            L->bias[c] -= L->cfg.bias_step * (float)L->mark_wrong[c] / (float)n;
        L->mark_right[c] = L->mark_wrong[c] = 0;
    }
    odl_status s = gate(L, old_before, user_before, cnt ? new_before : 0.0f, cnt, "calibration", 0, NULL, NULL,
                        NULL);
    if (s == ODL_OK)
        L->st.updates_accepted++;
    else
        L->st.updates_rolled_back++;
    return s;
}

odl_status odl_learner_rollback(odl_learner *L, int32_t steps, odl_diag *d)
{
    if (!L || steps < 1)
        return odl_fail(d, ODL_ERR_ARG, "learner_rollback: steps must be ≥ 1");
    if (steps > L->cur_snap)
        return odl_fail(d, ODL_ERR_NOT_FOUND, "learner_rollback: only %d earlier version(s) kept in memory",
                        (int)L->cur_snap);
    if (L->st.shadow_active) { /* a waiting candidate was built on the version left */
        L->st.shadow_active = 0;
        L->st.shadow_dropped++;
        set_msg(L->st.shadow_decision, sizeof L->st.shadow_decision, "candidate dropped: rolled back before it was decided");
    }
    L->cur_snap -= steps;
    params_in(L, snap_slot(L, L->cur_snap));
    L->st.rollbacks++;
    L->st.version = L->st.version >= (uint32_t)steps ? L->st.version - (uint32_t)steps : 0;
    return ODL_OK;
}

void odl_learner_get_status(const odl_learner *L, odl_learner_status *st)
{
    *st = L->st;
    st->collected = L->n_col;
    int32_t h = 0;
    for (int32_t k = 0; k < L->n_col; k++)
        h += L->col_holdout[k];
    st->held_out = h;
    st->active_classes = L->active;
    st->strategy = L->cfg.strategy;
}

const odl_model *odl_learner_head(const odl_learner *L) { return L->head; }
int32_t odl_learner_boundary(const odl_learner *L) { return L->boundary; }
const float *odl_learner_bias(const odl_learner *L) { return L->bias; }
const odl_replay *odl_learner_replay(const odl_learner *L) { return L->replay; }
const odl_ewc *odl_learner_ewc(const odl_learner *L) { return L->ewc; }
const odl_ncm *odl_learner_ncm(const odl_learner *L) { return L->ncm; }
const odl_slda *odl_learner_slda(const odl_learner *L) { return L->slda; }

odl_status odl_learner_load_state(odl_learner *L, const void *buf, size_t len, odl_diag *d)
{
    if (!L || !buf)
        return odl_fail(d, ODL_ERR_ARG, "learner_load_state: bad arguments");
    uint32_t found = 0;
    odl_status s = odl_state_load(buf, len, L->replay, L->ewc, L->ncm, L->slda, &found, d);
    if (s != ODL_OK)
        return s;
    if ((L->ewc && !(found & ODL_STATE_HAS_EWC)) || (L->ncm && !(found & ODL_STATE_HAS_NCM)) ||
        (L->slda && !(found & ODL_STATE_HAS_SLDA)))
        return odl_fail(d, ODL_ERR_NOT_FOUND, "learner_load_state: the file has no %s state chunk",
                        odl_strategy_name((odl_strategy)L->cfg.strategy));
    if (L->ncm || L->slda)
        s = head_from_stats(L, d);
    if (s == ODL_OK)
        params_out(L, snap_slot(L, L->cur_snap));
    return s;
}
