#include "odl/adapt.h"
#include "odl/layers.h"
#include "odl/lwf.h"

#include <math.h>
#include <string.h>

struct odl_adapt {
    odl_adapt_cfg cfg;
    int32_t max_new, max_replay;
    size_t in_size;
    int32_t classes;
    uint32_t *order;  /* indices: [0, n) new, [n, n + r) replayed */
    uint32_t *pick;   /* replay subset of an epoch */
    float *xb;        /* batch × in_size */
    int32_t *yb;
    float *dl;        /* batch × classes */
    const float *replay_teacher; /* slot-indexed logits (dark experience replay) */
    int32_t replay_teacher_stride;
};

void odl_adapt_set_replay_teacher(odl_adapt *t, const float *logits, int32_t stride)
{
    t->replay_teacher = logits;
    t->replay_teacher_stride = stride;
}

odl_adapt_cfg odl_adapt_cfg_defaults(void)
{
    odl_adapt_cfg c;
    memset(&c, 0, sizeof c);
    c.from = -1;
    c.epochs = 10;
    c.batch = 16;
    c.replay_per_epoch = -1;
    c.lwf_T = 2.0f;
    return c;
}

/* Checks that the model can be trained from cfg.from at cfg.batch. */
static odl_status check_model(const odl_model *m, const odl_adapt_cfg *cfg, int32_t *from, odl_diag *d)
{
    if (!m || !cfg)
        return odl_fail(d, ODL_ERR_ARG, "adapt: model and config must not be NULL");
    const odl_model_cfg *mc = odl_model_get_cfg(m);
    const int32_t L = odl_model_get_desc(m)->n_layers;
    *from = cfg->from < 0 ? odl_model_first_trainable(m) : cfg->from;
    if (mc->mode != ODL_MODE_TRAIN || odl_model_first_trainable(m) >= L)
        return odl_fail(d, ODL_ERR_STATE, "adapt: the model has no trainable layer (set up for training?)");
    if (*from < 0 || *from > odl_model_first_trainable(m))
        return odl_fail(d, ODL_ERR_ARG, "adapt: samples enter at layer %d, after the first trainable layer %d",
                        (int)*from, (int)odl_model_first_trainable(m));
    if (cfg->batch > mc->max_batch)
        return odl_fail(d, ODL_ERR_ARG, "adapt: batch %d exceeds the model's max_batch %d", (int)cfg->batch,
                        (int)mc->max_batch);
    const int32_t classes = odl_model_n_classes(m);
    if ((cfg->lwf_weight > 0.0f || cfg->replay_distill > 0.0f) && (cfg->lwf_classes <= 0 || cfg->lwf_classes > classes))
        return odl_fail(d, ODL_ERR_ARG, "adapt: lwf_classes %d out of range 1..%d", (int)cfg->lwf_classes,
                        (int)classes);
    return ODL_OK;
}

static odl_status layout(odl_adapt *t, size_t in_size, int32_t classes, const odl_adapt_cfg *cfg, int32_t max_new,
                         int32_t max_replay, odl_arena *a, odl_diag *d)
{
    if (!cfg || in_size == 0 || classes <= 0)
        return odl_fail(d, ODL_ERR_ARG, "adapt: bad dimensions");
    if (cfg->epochs <= 0 || cfg->batch <= 0)
        return odl_fail(d, ODL_ERR_ARG, "adapt: epochs %d / batch %d must be positive", (int)cfg->epochs,
                        (int)cfg->batch);
    /* n + r is an int32_t in odl_adapt_run: the sum must fit */
    if (max_new < 0 || max_replay < 0 || max_new > INT32_MAX - max_replay || max_new + max_replay <= 0)
        return odl_fail(d, ODL_ERR_ARG,
                        "adapt: capacities %d new + %d replayed must be positive and sum to at most %d",
                        (int)max_new, (int)max_replay, (int)INT32_MAX);
    if (!(cfg->ewc_lambda >= 0.0f) || !(cfg->lwf_weight >= 0.0f) || !(cfg->lwf_T > 0.0f) ||
        !(cfg->replay_distill >= 0.0f))
        return odl_fail(d, ODL_ERR_ARG, "adapt: ewc_lambda, lwf_weight, replay_distill must be ≥ 0 and lwf_T > 0");
    const size_t B = (size_t)cfg->batch;
    void *p;
    odl_status s;
#define TAKE(field, bytes, kind)                                  \
    do {                                                          \
        s = odl_arena_alloc(a, (bytes), (kind), &p, d);           \
        if (s != ODL_OK)                                          \
            return s;                                             \
        if (t)                                                    \
            t->field = p;                                         \
    } while (0)
    TAKE(order, sizeof(uint32_t) * (size_t)(max_new + max_replay), ODL_MEM_SCRATCH);
    TAKE(pick, sizeof(uint32_t) * (size_t)(max_replay ? max_replay : 1), ODL_MEM_SCRATCH);
    TAKE(xb, sizeof(float) * B * in_size, ODL_MEM_SCRATCH);
    TAKE(yb, sizeof(int32_t) * B, ODL_MEM_SCRATCH);
    TAKE(dl, sizeof(float) * B * (size_t)classes, ODL_MEM_SCRATCH);
#undef TAKE
    if (t) {
        t->cfg = *cfg;
        t->max_new = max_new;
        t->max_replay = max_replay;
        t->in_size = in_size;
        t->classes = classes;
    }
    return ODL_OK;
}

odl_status odl_adapt_plan_dims(size_t in_size, int32_t classes, const odl_adapt_cfg *cfg, int32_t max_new,
                               int32_t max_replay, odl_mem_plan *plan, odl_diag *d)
{
    odl_arena a;
    void *p;
    odl_arena_init_counting(&a);
    odl_status s = odl_arena_alloc(&a, sizeof(odl_adapt), ODL_MEM_STATE, &p, d);
    if (s == ODL_OK)
        s = layout(NULL, in_size, classes, cfg, max_new, max_replay, &a, d);
    if (s == ODL_OK)
        *plan = a.plan;
    return s;
}

odl_status odl_adapt_plan(const odl_model *m, const odl_adapt_cfg *cfg, int32_t max_new, int32_t max_replay,
                          odl_mem_plan *plan, odl_diag *d)
{
    int32_t from;
    odl_status s = check_model(m, cfg, &from, d);
    if (s != ODL_OK)
        return s;
    return odl_adapt_plan_dims(odl_model_layer_shape(m, from - 1).size, odl_model_n_classes(m), cfg, max_new,
                               max_replay, plan, d);
}

odl_status odl_adapt_init(odl_adapt **out, const odl_model *m, const odl_adapt_cfg *cfg, int32_t max_new,
                          int32_t max_replay, odl_arena *a, odl_diag *d)
{
    odl_mem_plan plan;
    *out = NULL;
    int32_t from;
    odl_status s = check_model(m, cfg, &from, d);
    if (s != ODL_OK)
        return s;
    const size_t in_size = odl_model_layer_shape(m, from - 1).size;
    s = odl_adapt_plan_dims(in_size, odl_model_n_classes(m), cfg, max_new, max_replay, &plan, d);
    if (s != ODL_OK)
        return s;
    if (odl_arena_remaining(a) < plan.total)
        return odl_fail(d, ODL_ERR_NOMEM, "arena too small for the adaptation run: needs %zu bytes, %zu available",
                        plan.total, odl_arena_remaining(a));
    void *p;
    s = odl_arena_alloc(a, sizeof(odl_adapt), ODL_MEM_STATE, &p, d);
    if (s != ODL_OK)
        return s;
    s = layout(p, in_size, odl_model_n_classes(m), cfg, max_new, max_replay, a, d);
    if (s == ODL_OK) {
        ((odl_adapt *)p)->cfg.from = from;
        *out = p;
    }
    return s;
}

odl_status odl_adapt_run(odl_adapt *t, odl_model *m, const float *x, const int32_t *y, int32_t n,
                         const float *teacher, int32_t teacher_stride, const odl_replay *replay,
                         const odl_ewc *ewc, odl_rng *rng, odl_adapt_stats *stats, odl_diag *d)
{
    if (!t || !m || !rng || (n > 0 && (!x || !y)))
        return odl_fail(d, ODL_ERR_ARG, "adapt_run: NULL argument");
    const odl_adapt_cfg *c = &t->cfg;
    const int32_t have_replay = replay ? odl_replay_count(replay) : 0;
    int32_t r = c->replay_per_epoch < 0 ? have_replay
                                         : (c->replay_per_epoch < have_replay ? c->replay_per_epoch : have_replay);
    if (n < 0 || n > t->max_new || r > t->max_replay)
        return odl_fail(d, ODL_ERR_ARG, "adapt_run: %d new / %d replayed samples exceed the planned %d / %d",
                        (int)n, (int)r, (int)t->max_new, (int)t->max_replay);
    if (n + r == 0)
        return odl_fail(d, ODL_ERR_ARG, "adapt_run: nothing to learn from");
    const int lwf = c->lwf_weight > 0.0f;
    if (lwf && (!teacher || teacher_stride < c->lwf_classes))
        return odl_fail(d, ODL_ERR_ARG, "adapt_run: LwF needs teacher logits with ≥ %d columns", (int)c->lwf_classes);
    const int der = c->replay_distill > 0.0f && r > 0;
    if (der && (!t->replay_teacher || t->replay_teacher_stride < c->lwf_classes))
        return odl_fail(d, ODL_ERR_ARG, "adapt_run: replay distillation needs the replay buffer's teacher logits");
    for (int32_t k = 0; k < n; k++)
        if (y[k] < 0 || y[k] >= t->classes)
            return odl_fail(d, ODL_ERR_ARG, "adapt_run: label %d of sample %d is outside the model's %d classes",
                            (int)y[k], (int)k, (int)t->classes);
    if (stats)
        memset(stats, 0, sizeof *stats);
    const int32_t total = n + r;
    const size_t in = t->in_size;
    odl_status s = ODL_OK;
    for (int32_t ep = 0; ep < c->epochs; ep++) {
        /* this epoch's replay subset, then everything shuffled together */
        if (r) {
            for (int32_t k = 0; k < have_replay && k < t->max_replay; k++)
                t->pick[k] = (uint32_t)k;
            if (r < have_replay) {
                /* partial Fisher–Yates: a uniform r-subset */
                for (int32_t k = 0; k < r; k++) {
                    uint32_t j = (uint32_t)k + odl_rng_below(rng, (uint32_t)(have_replay - k));
                    uint32_t tmp = t->pick[k];
                    t->pick[k] = t->pick[j];
                    t->pick[j] = tmp;
                }
            }
        }
        for (int32_t k = 0; k < total; k++)
            t->order[k] = (uint32_t)k;
        odl_rng_shuffle_u32(rng, t->order, (uint32_t)total);
        float loss_sum = 0.0f;
        int32_t batches = 0;
        for (int32_t start = 0; start < total; start += c->batch) {
            const int32_t nb = total - start < c->batch ? total - start : c->batch;
            for (int32_t k = 0; k < nb; k++) {
                uint32_t idx = t->order[start + k];
                float *dst = t->xb + (size_t)k * in;
                if ((int32_t)idx < n) {
                    memcpy(dst, x + (size_t)idx * in, sizeof(float) * in);
                    t->yb[k] = y[idx];
                } else {
                    s = odl_replay_get(replay, (int32_t)t->pick[idx - (uint32_t)n], dst, &t->yb[k]);
                    if (s != ODL_OK)
                        return odl_fail(d, s, "adapt_run: replay sample unreadable");
                }
            }
            const float *logits;
            s = odl_model_forward_train(m, c->from, t->xb, nb, rng, &logits, d);
            if (s != ODL_OK)
                return s;
            float loss = odl_softmax_xent_f32(nb, t->classes, logits, t->yb, NULL, t->dl);
            if (lwf || der)
                for (int32_t k = 0; k < nb; k++) {
                    uint32_t idx = t->order[start + k];
                    const float *tl;
                    int32_t stride;
                    float w;
                    if ((int32_t)idx < n) { /* LwF: the new inputs */
                        if (!lwf)
                            continue;
                        tl = teacher + (size_t)idx * teacher_stride;
                        stride = teacher_stride;
                        w = c->lwf_weight;
                    } else { /* dark experience replay: the replayed slots */
                        if (!der)
                            continue;
                        tl = t->replay_teacher + (size_t)t->pick[idx - (uint32_t)n] * t->replay_teacher_stride;
                        stride = t->replay_teacher_stride;
                        w = c->replay_distill;
                    }
                    loss += odl_lwf_loss_f32(1, t->classes, c->lwf_classes, logits + (size_t)k * t->classes, tl,
                                             stride, c->lwf_T, w / (float)nb, t->dl + (size_t)k * t->classes);
                }
            if (!isfinite(loss))
                return odl_fail(d, ODL_ERR_NUMERIC, "adapt_run: loss became non-finite at epoch %d (diverged)",
                                (int)ep + 1);
            s = odl_model_backward(m, t->dl, nb, d);
            if (s == ODL_OK && ewc && c->ewc_lambda > 0.0f)
                s = odl_ewc_add_grad(ewc, m, c->ewc_lambda);
            if (s == ODL_OK)
                s = odl_model_step(m, c->lr_scale, d);
            if (s != ODL_OK)
                return s;
            loss_sum += loss;
            batches++;
            if (stats)
                stats->steps++;
        }
        if (stats) {
            float mean = loss_sum / (float)batches;
            if (ep == 0)
                stats->first_epoch_loss = mean;
            stats->last_epoch_loss = mean;
        }
    }
    return ODL_OK;
}
