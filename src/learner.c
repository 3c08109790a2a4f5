/* The learner façade: gates, versions and calibration around the core. */
#include "odl/learner.h"
#include "odl/layers.h"

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
    /* old-task guard set */
    float *guard_z;
    int32_t *guard_y;
    int32_t n_guard;
    uint64_t guard_seen; /* old samples offered so far (seeding may come in chunks) */
    /* held-out examples of accepted updates: the user's verified data */
    float *ug_z;
    int32_t *ug_y;
    int32_t n_ug, ug_next;
    /* per-class latent statistics: mean, and mean/M2 of distances to it */
    float *cls_mean;
    double *cls_dmean, *cls_dm2;
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
    odl_zscore_drift drift_input;
    odl_conf_drift drift_conf;
    odl_learner_status st;
};

static const char *const reason_names[ODL_REASON_COUNT] = {
    "none", "non-finite input", "label out of range", "outlier", "contradicts a confident prediction (held)",
    "near-duplicate flood", "class imbalance spike", "collected buffer full"};

const char *odl_reason_str(odl_reason r)
{
    return (unsigned)r < ODL_REASON_COUNT ? reason_names[r] : "?";
}

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
    if (!(c->gate.new_target >= 0 && c->gate.new_target <= 1) || !(c->gate.max_old_drop >= 0) ||
        !(c->gate.new_weight >= 0 && c->gate.new_weight <= 1))
        return odl_fail(d, ODL_ERR_ARG, "learner: gate policy values out of range");
    odl_status s = head_desc_of(base, c->boundary, c->max_classes, hd, d);
    if (s != ODL_OK)
        return s;
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
#define TAKE(field, bytes, kind)                                  \
    do {                                                          \
        s = odl_arena_alloc(a, (bytes), (kind), &p, d);           \
        if (s != ODL_OK)                                          \
            return s;                                             \
        if (L)                                                    \
            L->field = p;                                         \
    } while (0)
    odl_model_cfg hc = odl_model_cfg_defaults();
    hc.mode = ODL_MODE_TRAIN;
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
    if (c->guard_size > 0) {
        TAKE(guard_z, nz * (size_t)c->guard_size, ODL_MEM_BUFFERS);
        TAKE(guard_y, sizeof(int32_t) * (size_t)c->guard_size, ODL_MEM_BUFFERS);
        TAKE(ug_z, nz * (size_t)c->guard_size, ODL_MEM_BUFFERS);
        TAKE(ug_y, sizeof(int32_t) * (size_t)c->guard_size, ODL_MEM_BUFFERS);
    }
    TAKE(cls_mean, nz * (size_t)C, ODL_MEM_BUFFERS);
    TAKE(cls_dmean, sizeof(double) * (size_t)C, ODL_MEM_BUFFERS);
    TAKE(cls_dm2, sizeof(double) * (size_t)C, ODL_MEM_BUFFERS);
    TAKE(cls_n, sizeof(uint32_t) * (size_t)C, ODL_MEM_BUFFERS);
    TAKE(pend_z, nz * PENDING, ODL_MEM_BUFFERS);
    TAKE(snap, sizeof(float) * (n_params + (size_t)C) * (size_t)(c->versions + 1), ODL_MEM_BUFFERS);
    TAKE(pre, sizeof(float) * (n_params + (size_t)C), ODL_MEM_SCRATCH);
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

static void params_out(const odl_learner *L, float *dst)
{
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

static float *snap_slot(const odl_learner *L, int32_t k)
{
    return L->snap + (size_t)k * (L->n_params + (size_t)L->C);
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
            return -1.0f;
        ok += c == y[k];
        tot++;
    }
    if (count)
        *count = tot;
    return tot ? (float)ok / (float)tot : -1.0f;
}

static void class_stat_add(odl_learner *L, const float *z, int32_t c)
{
    float *mu = L->cls_mean + (size_t)c * L->dim;
    uint32_t n = ++L->cls_n[c];
    double dist = 0.0;
    for (int32_t j = 0; j < L->dim; j++) {
        mu[j] += (z[j] - mu[j]) / (float)n;
        double e = (double)z[j] - mu[j];
        dist += e * e;
    }
    dist = sqrt(dist);
    double delta = dist - L->cls_dmean[c];
    L->cls_dmean[c] += delta / n;
    L->cls_dm2[c] += delta * (dist - L->cls_dmean[c]);
}

static double dist2(const float *a, const float *b, int32_t n)
{
    double s = 0.0;
    for (int32_t j = 0; j < n; j++) {
        double e = (double)a[j] - b[j];
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
        if (slot >= 0) {
            memcpy(L->guard_z + (size_t)slot * L->dim, L->z, sizeof(float) * (size_t)L->dim);
            L->guard_y[slot] = y;
        }
    }
    return ODL_OK;
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
    return ODL_OK;
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
    return ODL_OK;
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
        double dd = sqrt(dist2(z, L->cls_mean + (size_t)label * dim, dim));
        double sd = sqrt(L->cls_dm2[label] / (L->cls_n[label] - 1));
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
    double zn2 = 1e-12;
    for (int32_t j = 0; j < dim; j++)
        zn2 += (double)z[j] * z[j];
    const double eps2 = (double)L->cfg.dup_eps * L->cfg.dup_eps * zn2;
    if (pred != label && label < L->active && conf >= L->cfg.confident) {
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

/* Evaluates, then accepts or restores L->pre; returns OK or ROLLED_BACK. */
static odl_status gate(odl_learner *L, float old_before, float user_before, float new_before, int32_t n_new,
                       const char *what, int diverged)
{
    odl_learner_status *st = &L->st;
    const odl_gate_policy *g = &L->cfg.gate;
    float old_after = L->n_guard ? accuracy(L, L->guard_z, L->guard_y, L->n_guard, NULL, NULL) : -1.0f;
    float user_after = L->n_ug ? accuracy(L, L->ug_z, L->ug_y, L->n_ug, NULL, NULL) : -1.0f;
    int32_t cnt = 0;
    float new_after = accuracy(L, L->col_z, L->col_y, L->n_col, L->col_holdout, &cnt);
    if (cnt == 0)
        new_after = n_new ? accuracy(L, L->col_z, L->col_y, L->n_col, NULL, NULL) : -1.0f;
    st->last_old_before = old_before;
    st->last_old_after = old_after;
    st->last_new_before = new_before;
    st->last_new_after = new_after;
    st->last_user_before = user_before;
    st->last_user_after = user_after;
    st->user_guard = L->n_ug;
    const char *why = NULL;
    if (diverged)
        why = "training diverged";
    else if (!params_finite(L))
        why = "non-finite weights";
    else if (new_after >= 0.0f && new_after < g->new_target)
        why = "new-task accuracy below target";
    else if (old_after >= 0.0f && old_before >= 0.0f && old_after < old_before - g->max_old_drop)
        why = "old-task accuracy dropped too far";
    else if (user_after >= 0.0f && user_before >= 0.0f && user_after < user_before - g->max_old_drop)
        why = "accuracy on the user's earlier examples dropped too far";
    else if (g->require_avg_not_worse && old_after >= 0.0f && new_after >= 0.0f) {
        float w = g->new_weight;
        if (w * new_after + (1 - w) * old_after < w * new_before + (1 - w) * old_before - 1e-6f)
            why = "weighted average fell";
    }
    char *m = st->last_decision;
    size_t cap = sizeof st->last_decision;
    /* the core has no stdio: a fixed-format message via odl_fail into a diag */
    odl_diag tmp;
    if (why) {
        params_in(L, L->pre);
        st->last_accepted = 0;
        odl_fail(&tmp, ODL_EVENT_ROLLED_BACK, "%s rolled back: %s (old %.3f -> %.3f, earlier user %.3f -> %.3f, new %.3f -> %.3f)",
                 what, why, (double)old_before, (double)old_after, (double)user_before, (double)user_after,
                 (double)new_before, (double)new_after);
    } else {
        st->last_accepted = 1;
        odl_fail(&tmp, ODL_OK, "%s accepted (old %.3f -> %.3f, earlier user %.3f -> %.3f, new %.3f -> %.3f)", what,
                 (double)old_before, (double)old_after, (double)user_before, (double)user_after,
                 (double)new_before, (double)new_after);
    }
    size_t len = strlen(tmp.msg);
    if (len >= cap)
        len = cap - 1;
    memcpy(m, tmp.msg, len);
    m[len] = '\0';
    if (why)
        return ODL_EVENT_ROLLED_BACK;
    /* a new version: drop any versions after the current one, then push */
    int32_t next = L->cur_snap + 1;
    if (next > L->cfg.versions) {
        /* full: slide the ring down by one (oldest version forgotten) */
        const size_t stride = L->n_params + (size_t)L->C;
        memmove(L->snap, L->snap + stride, sizeof(float) * stride * (size_t)L->cfg.versions);
        next = L->cfg.versions;
    }
    params_out(L, snap_slot(L, next));
    L->cur_snap = next;
    L->n_snap = next + 1;
    st->version++;
    return ODL_OK;
}

odl_status odl_learner_update(odl_learner *L, odl_rng *rng, odl_diag *d)
{
    if (!L || !rng)
        return odl_fail(d, ODL_ERR_ARG, "learner_update: bad arguments");
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
    const float old_before = L->n_guard ? accuracy(L, L->guard_z, L->guard_y, L->n_guard, NULL, NULL) : -1.0f;
    const float user_before = L->n_ug ? accuracy(L, L->ug_z, L->ug_y, L->n_ug, NULL, NULL) : -1.0f;
    int32_t cnt = 0;
    float new_before = accuracy(L, L->col_z, L->col_y, L->n_col, L->col_holdout, &cnt);
    if (cnt == 0)
        new_before = accuracy(L, L->col_z, L->col_y, L->n_col, NULL, NULL);
    odl_model_reset_optimizer(L->head);
    odl_adapt_stats as;
    odl_diag td;
    odl_status s = odl_adapt_run(L->trainer, L->head, L->train_z, L->train_y, n_train, NULL, 0, L->replay, NULL,
                                 rng, &as, &td);
    if (s != ODL_OK && s != ODL_ERR_NUMERIC) {
        params_in(L, L->pre);
        if (d)
            *d = td;
        return s;
    }
    s = gate(L, old_before, user_before, new_before, n_train, "update", s == ODL_ERR_NUMERIC);
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
            memcpy(L->ug_z + (size_t)slot * L->dim, L->col_z + (size_t)k * L->dim, sizeof(float) * (size_t)L->dim);
            L->ug_y[slot] = L->col_y[k];
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
    L->st.updates++;
    params_out(L, L->pre);
    const float old_before = L->n_guard ? accuracy(L, L->guard_z, L->guard_y, L->n_guard, NULL, NULL) : -1.0f;
    const float user_before = L->n_ug ? accuracy(L, L->ug_z, L->ug_y, L->n_ug, NULL, NULL) : -1.0f;
    int32_t cnt = 0;
    float new_before = accuracy(L, L->col_z, L->col_y, L->n_col, L->col_holdout, &cnt);
    /* a class predicted wrongly often gets its logit lowered in proportion */
    for (int32_t c = 0; c < L->C; c++) {
        uint32_t n = L->mark_right[c] + L->mark_wrong[c];
        if (n)
            L->bias[c] -= L->cfg.bias_step * (float)L->mark_wrong[c] / (float)n;
        L->mark_right[c] = L->mark_wrong[c] = 0;
    }
    odl_status s = gate(L, old_before, user_before, cnt ? new_before : -1.0f, cnt, "calibration", 0);
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
}

const odl_model *odl_learner_head(const odl_learner *L) { return L->head; }
int32_t odl_learner_boundary(const odl_learner *L) { return L->boundary; }
const float *odl_learner_bias(const odl_learner *L) { return L->bias; }
