/* Elastic Weight Consolidation: diagonal empirical Fisher, anchors, penalty
 * and its gradient, online decay (odl/ewc.h).
 *
 * The trainable tensors are recorded once, at init, as segments (layer,
 * which, size) of one flat parameter vector; every later call checks
 * the model against them. One code path (build) lays out both the counting
 * arena of a plan and the real one, so the plan is exact. */
#include "odl/ewc.h"
#include "odl/layers.h"

#include <math.h>
#include <string.h>

/* One trainable tensor; its offset in the flat vectors is the sum of the
 * sizes before it (n ≤ 2^26 by odl_desc_check, so 32 bits hold it). */
typedef struct odl_ewc_seg {
    int32_t layer, which;
    uint32_t n;
} odl_ewc_seg;

struct odl_ewc {
    size_t n;                 /* trainable parameters */
    int32_t n_seg;
    odl_ewc_seg *seg;         /* n_seg, in the arena */
    float *fisher, *sum, *anchor;
    float *dlogits;           /* n_classes floats, for odl_ewc_estimate */
    int32_t n_classes;
    uint32_t count;           /* samples in the running sum */
};

#define FLOATS(n) ((size_t)(n) * sizeof(float))

/* odl_model_grad takes a mutable model but only reads; the const is honoured. */
static float *grad_of(const odl_model *m, int32_t layer, int which, size_t *n)
{
    union {
        const odl_model *c;
        odl_model *p;
    } u = {m};
    return odl_model_grad(u.p, layer, which, n);
}

/* Counts m's trainable tensors (and fills seg when not NULL); returns the
 * parameter count. */
static size_t segments(const odl_model *m, odl_ewc_seg *seg, int32_t *n_seg)
{
    const odl_model_desc *desc = odl_model_get_desc(m);
    size_t total = 0;
    int32_t k = 0;
    for (int32_t i = 0; i < desc->n_layers; i++)
        for (int which = 0; which < 2; which++) {
            size_t n = 0;
            if (!grad_of(m, i, which, &n) || n == 0)
                continue;
            if (seg) {
                seg[k].layer = i;
                seg[k].which = which;
                seg[k].n = (uint32_t)n;
            }
            total += n;
            k++;
        }
    *n_seg = k;
    return total;
}

/* Lays out the arrays of an EWC of n parameters in n_seg tensors; e == NULL
 * (with a counting arena) only counts. */
static odl_status build_sizes(odl_ewc *e, size_t n, int32_t n_seg, int32_t n_classes, odl_arena *a, odl_diag *d)
{
    odl_status s;
    void *p;
#define ALLOC(target, bytes, kind)                           \
    do {                                                     \
        s = odl_arena_alloc(a, (bytes), (kind), &p, d);      \
        if (s != ODL_OK)                                     \
            return s;                                        \
        if (e)                                               \
            target = p;                                      \
    } while (0)
    ALLOC(e->fisher, FLOATS(n), ODL_MEM_BUFFERS);
    ALLOC(e->sum, FLOATS(n), ODL_MEM_BUFFERS);
    ALLOC(e->anchor, FLOATS(n), ODL_MEM_BUFFERS);
    ALLOC(e->dlogits, FLOATS(n_classes), ODL_MEM_SCRATCH);
    ALLOC(e->seg, sizeof(odl_ewc_seg) * (size_t)n_seg, ODL_MEM_STATE);
#undef ALLOC
    return ODL_OK;
}

/* Lays the EWC out in `a`; e == NULL (with a counting arena) only counts. */
static odl_status build(odl_ewc *e, const odl_model *m, odl_arena *a, odl_diag *d)
{
    int32_t n_seg = 0;
    const size_t n = segments(m, NULL, &n_seg);
    const int32_t n_classes = odl_model_n_classes(m);
    odl_status s = build_sizes(e, n, n_seg, n_classes, a, d);
    if (s != ODL_OK)
        return s;
    if (e) {
        e->n = n;
        e->n_seg = n_seg;
        segments(m, e->seg, &n_seg);
        e->n_classes = n_classes;
        e->count = 0;
    }
    return ODL_OK;
}

static odl_status check_model(const odl_model *m, odl_diag *d)
{
    if (!m)
        return odl_fail(d, ODL_ERR_ARG, "ewc: model is NULL");
    const odl_model_cfg *cfg = odl_model_get_cfg(m);
    if (cfg->mode != ODL_MODE_TRAIN || cfg->max_batch < 1)
        return odl_fail(d, ODL_ERR_STATE, "ewc: the model must be set up for training (train mode, max_batch >= 1)");
    int32_t n_seg = 0;
    if (segments(m, NULL, &n_seg) == 0)
        return odl_fail(d, ODL_ERR_STATE, "ewc: the model has no trainable parameters");
    return ODL_OK;
}

odl_status odl_ewc_plan(const odl_model *m, odl_mem_plan *plan, odl_diag *d)
{
    if (!plan)
        return odl_fail(d, ODL_ERR_ARG, "odl_ewc_plan: plan is NULL");
    odl_status s = check_model(m, d);
    if (s != ODL_OK)
        return s;
    odl_arena a;
    void *p;
    odl_arena_init_counting(&a);
    s = odl_arena_alloc(&a, sizeof(odl_ewc), ODL_MEM_STATE, &p, d);
    if (s == ODL_OK)
        s = build(NULL, m, &a, d);
    if (s != ODL_OK)
        return s;
    *plan = a.plan;
    return ODL_OK;
}

odl_status odl_ewc_plan_sizes(size_t n_params, int32_t n_tensors, int32_t n_classes, odl_mem_plan *plan,
                              odl_diag *d)
{
    if (!plan || n_params == 0 || n_tensors < 1 || n_classes < 1 || n_params > SIZE_MAX / (4 * sizeof(float)))
        return odl_fail(d, ODL_ERR_ARG, "odl_ewc_plan_sizes: %zu parameters in %d tensors, %d classes: need >= 1 each",
                        n_params, (int)n_tensors, (int)n_classes);
    odl_arena a;
    void *p;
    odl_arena_init_counting(&a);
    odl_status s = odl_arena_alloc(&a, sizeof(odl_ewc), ODL_MEM_STATE, &p, d);
    if (s == ODL_OK)
        s = build_sizes(NULL, n_params, n_tensors, n_classes, &a, d);
    if (s != ODL_OK)
        return s;
    *plan = a.plan;
    return ODL_OK;
}

odl_status odl_ewc_init(odl_ewc **out, const odl_model *m, odl_arena *a, odl_diag *d)
{
    if (!out || !a)
        return odl_fail(d, ODL_ERR_ARG, "odl_ewc_init: out and arena must not be NULL");
    *out = NULL;
    odl_mem_plan plan;
    odl_status s = odl_ewc_plan(m, &plan, d);
    if (s != ODL_OK)
        return s;
    if (odl_arena_is_counting(a))
        return odl_fail(d, ODL_ERR_ARG, "odl_ewc_init needs a real arena (use odl_ewc_plan to count)");
    if (odl_arena_remaining(a) < plan.total)
        return odl_fail(d, ODL_ERR_NOMEM,
                        "arena too small for EWC: needs %zu bytes (buffers %zu, state %zu, scratch %zu), "
                        "%zu available",
                        plan.total, plan.bytes[ODL_MEM_BUFFERS], plan.bytes[ODL_MEM_STATE],
                        plan.bytes[ODL_MEM_SCRATCH], odl_arena_remaining(a));
    void *p;
    s = odl_arena_alloc(a, sizeof(odl_ewc), ODL_MEM_STATE, &p, d);
    if (s != ODL_OK)
        return s;
    odl_ewc *e = p;
    s = build(e, m, a, d);
    if (s != ODL_OK)
        return s;
    *out = e;
    return ODL_OK;
}

/* 1 if m's trainable tensors are the ones e was built for. */
static int same_model(const odl_ewc *e, const odl_model *m)
{
    if (!e || !m)
        return 0;
    int32_t n_seg = 0;
    if (segments(m, NULL, &n_seg) != e->n || n_seg != e->n_seg)
        return 0;
    for (int32_t k = 0; k < n_seg; k++) {
        size_t n = 0;
        if (!grad_of(m, e->seg[k].layer, e->seg[k].which, &n) || n != e->seg[k].n)
            return 0;
    }
    return odl_model_n_classes(m) == e->n_classes;
}

static odl_status mismatch(odl_diag *d)
{
    return odl_fail(d, ODL_ERR_SHAPE, "ewc: the model's trainable tensors differ from those the EWC was built for");
}

odl_status odl_ewc_begin(odl_ewc *e)
{
    if (!e)
        return ODL_ERR_ARG;
    memset(e->sum, 0, FLOATS(e->n));
    e->count = 0;
    return ODL_OK;
}

/* Running sum += grad² for the tensors of layers ≥ from (earlier ones were
 * not part of the backward). */
static void accumulate_from(odl_ewc *e, odl_model *m, int32_t from)
{
    size_t off = 0;
    for (int32_t k = 0; k < e->n_seg; off += e->seg[k].n, k++) {
        const odl_ewc_seg *sg = &e->seg[k];
        if (sg->layer < from)
            continue;
        size_t n = 0;
        const float *g = odl_model_grad(m, sg->layer, sg->which, &n);
        float *sum = e->sum + off;
        for (size_t i = 0; i < n; i++)
            sum[i] += g[i] * g[i];
    }
    e->count++;
}

odl_status odl_ewc_accumulate(odl_ewc *e, odl_model *m)
{
    if (!e || !m)
        return ODL_ERR_ARG;
    if (!same_model(e, m))
        return ODL_ERR_SHAPE;
    if (e->count == UINT32_MAX)
        return ODL_ERR_STATE;
    accumulate_from(e, m, 0);
    return ODL_OK;
}

odl_status odl_ewc_end(odl_ewc *e, odl_model *m, float decay, odl_diag *d)
{
    if (!e || !m)
        return odl_fail(d, ODL_ERR_ARG, "odl_ewc_end: ewc and model must not be NULL");
    if (!same_model(e, m))
        return mismatch(d);
    if (!(decay >= 0.0f && decay <= 1.0f))
        return odl_fail(d, ODL_ERR_ARG, "odl_ewc_end: decay must be in [0, 1]");
    if (e->count == 0)
        return odl_fail(d, ODL_ERR_STATE, "odl_ewc_end: no sample accumulated since odl_ewc_begin");
    const float inv = 1.0f / (float)e->count;
    for (size_t i = 0; i < e->n; i++)
        if (!isfinite(decay * e->fisher[i] + e->sum[i] * inv))
            return odl_fail(d, ODL_ERR_NUMERIC, "odl_ewc_end: Fisher entry %zu is not finite", i);
    for (size_t i = 0; i < e->n; i++)
        e->fisher[i] = decay * e->fisher[i] + e->sum[i] * inv;
    size_t off = 0;
    for (int32_t k = 0; k < e->n_seg; k++) {
        size_t n = 0;
        const float *p = odl_model_param_const(m, e->seg[k].layer, e->seg[k].which, &n);
        memcpy(e->anchor + off, p, FLOATS(n));
        off += n;
    }
    e->count = 0;
    return ODL_OK;
}

odl_status odl_ewc_estimate(odl_ewc *e, odl_model *m, int32_t from, const float *x, const int32_t *y,
                            int32_t n, float decay, odl_rng *rng, odl_diag *d)
{
    if (!e || !m || !x || !y || !rng)
        return odl_fail(d, ODL_ERR_ARG, "odl_ewc_estimate: ewc, model, x, y and rng must not be NULL");
    if (!same_model(e, m))
        return mismatch(d);
    if (n < 1)
        return odl_fail(d, ODL_ERR_ARG, "odl_ewc_estimate: %d samples (at least 1 needed)", (int)n);
    if (!(decay >= 0.0f && decay <= 1.0f))
        return odl_fail(d, ODL_ERR_ARG, "odl_ewc_estimate: decay must be in [0, 1]");
    const int32_t c = e->n_classes;
    for (int32_t k = 0; k < n; k++)
        if (y[k] < 0 || y[k] >= c)
            return odl_fail(d, ODL_ERR_ARG, "odl_ewc_estimate: label %d of sample %d out of range 0..%d",
                            (int)y[k], (int)k, (int)c - 1);
    const size_t in_size = odl_model_layer_shape(m, from - 1).size;
    odl_status s = odl_ewc_begin(e);
    for (int32_t k = 0; k < n && s == ODL_OK; k++) {
        const float *logits = NULL;
        s = odl_model_forward_train(m, from, x + (size_t)k * in_size, 1, rng, &logits, d);
        if (s != ODL_OK)
            break;
        const float l = odl_softmax_xent_f32(1, c, logits, &y[k], NULL, e->dlogits);
        if (!isfinite(l)) {
            s = odl_fail(d, ODL_ERR_NUMERIC, "odl_ewc_estimate: loss of sample %d is not finite", (int)k);
            break;
        }
        s = odl_model_backward(m, e->dlogits, 1, d);
        if (s == ODL_OK)
            accumulate_from(e, m, from);
    }
    if (s != ODL_OK) {
        e->count = 0;
        return s;
    }
    return odl_ewc_end(e, m, decay, d);
}

float odl_ewc_penalty(const odl_ewc *e, const odl_model *m, float lambda)
{
    if (!same_model(e, m))
        return NAN;
    double total = 0.0;
    size_t off = 0;
    for (int32_t k = 0; k < e->n_seg; off += e->seg[k].n, k++) {
        size_t n = 0;
        const float *p = odl_model_param_const(m, e->seg[k].layer, e->seg[k].which, &n);
        const float *f = e->fisher + off;
        const float *a = e->anchor + off;
        for (size_t i = 0; i < n; i++) {
            const double dv = (double)p[i] - (double)a[i];
            total += (double)f[i] * dv * dv;
        }
    }
    return (float)(0.5 * (double)lambda * total);
}

odl_status odl_ewc_add_grad(const odl_ewc *e, odl_model *m, float lambda)
{
    if (!e || !m)
        return ODL_ERR_ARG;
    if (!same_model(e, m))
        return ODL_ERR_SHAPE;
    size_t off = 0;
    for (int32_t k = 0; k < e->n_seg; off += e->seg[k].n, k++) {
        size_t n = 0, ng = 0;
        const float *p = odl_model_param_const(m, e->seg[k].layer, e->seg[k].which, &n);
        float *g = odl_model_grad(m, e->seg[k].layer, e->seg[k].which, &ng);
        const float *f = e->fisher + off;
        const float *a = e->anchor + off;
        for (size_t i = 0; i < n; i++)
            g[i] += lambda * f[i] * (p[i] - a[i]);
    }
    return ODL_OK;
}

size_t odl_ewc_n_params(const odl_ewc *e) { return e ? e->n : 0; }
const float *odl_ewc_fisher(const odl_ewc *e) { return e ? e->fisher : NULL; }
const float *odl_ewc_anchor(const odl_ewc *e) { return e ? e->anchor : NULL; }

odl_status odl_ewc_set(odl_ewc *e, const float *fisher, const float *anchor, size_t n, odl_diag *d)
{
    if (!e || !fisher || !anchor)
        return odl_fail(d, ODL_ERR_ARG, "odl_ewc_set: ewc, fisher and anchor must not be NULL");
    if (n != e->n)
        return odl_fail(d, ODL_ERR_SHAPE, "odl_ewc_set: %zu parameters given, %zu expected", n, e->n);
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(fisher[i]) || fisher[i] < 0.0f)
            return odl_fail(d, ODL_ERR_NUMERIC, "odl_ewc_set: Fisher entry %zu is negative or not finite", i);
        if (!isfinite(anchor[i]))
            return odl_fail(d, ODL_ERR_NUMERIC, "odl_ewc_set: anchor entry %zu is not finite", i);
    }
    memmove(e->fisher, fisher, FLOATS(n));
    memmove(e->anchor, anchor, FLOATS(n));
    return ODL_OK;
}
