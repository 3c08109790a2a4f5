/* Sequential models: checks, planning, memory layout, forward, backward.
 *
 * Memory layout (train mode, b = first layer needing backward):
 *   act[i] for i in [b, L]  the input of layer i (act[L] = logits), kept for
 *                           backward; flatten aliases its input.
 *   ping/pong               the frozen prefix's outputs (and everything in
 *                           inference mode), reused layer to layer.
 *   gbuf[2]                 backward ping-pong for d(activation).
 * One code path (build) lays out both the counting arena of a plan and the
 * real one, so the plan is exact. */
#include "odl/model.h"
#include "odl/layers.h"

#include <math.h>
#include <string.h>

typedef struct odl_layer_rt {
    odl_layer_shape in, out;
    float *w, *b;
    size_t n_w, n_b;
    int32_t external; /* params point outside the arena (in-place frozen weights) */
    float *dw, *db;
    float *opt_w[2], *opt_b[2];
    odl_rng dropout_rng; /* state before the last training forward */
} odl_layer_rt;

struct odl_model {
    odl_model_desc desc;
    odl_model_cfg cfg;
    odl_layer_shape in_shape;
    odl_layer_rt rt[ODL_MAX_LAYERS];
    int32_t first_bw;
    float *act[ODL_MAX_LAYERS + 1];
    float *ping, *pong;
    float *gbuf[2];
    float *dlogits;
    float *conv_scratch;
    float *adapter_h, *adapter_dh; /* batch × bottleneck */
    uint32_t step;
    int32_t train_n, train_from; /* what the last forward_train stored; -1 = nothing */
    int32_t params_ready; /* every parameterised layer has w and b (checked when they change) */
};

/* ---- descriptions ------------------------------------------------------ */

const char *odl_layer_type_name(int32_t type)
{
    switch (type) {
    case ODL_LAYER_DENSE: return "dense";
    case ODL_LAYER_CONV2D: return "conv2d";
    case ODL_LAYER_DEPTHWISE: return "depthwise";
    case ODL_LAYER_MAXPOOL: return "maxpool";
    case ODL_LAYER_AVGPOOL: return "avgpool";
    case ODL_LAYER_GAP: return "gap";
    case ODL_LAYER_RELU: return "relu";
    case ODL_LAYER_RELU6: return "relu6";
    case ODL_LAYER_FLATTEN: return "flatten";
    case ODL_LAYER_DROPOUT: return "dropout";
    case ODL_LAYER_ADAPTER: return "adapter";
    }
    return "?";
}

/* Per-sample sizes above this are refused: they cannot be meant and would
 * overflow 32-bit index arithmetic on an MCU. */
#define ODL_MAX_DIM 65536
#define ODL_MAX_SAMPLE ((size_t)1 << 26)

odl_status odl_desc_init(odl_model_desc *d, int32_t c, int32_t h, int32_t w)
{
    if (!d || c <= 0 || h <= 0 || w <= 0)
        return ODL_ERR_ARG;
    memset(d, 0, sizeof *d);
    d->in_c = c;
    d->in_h = h;
    d->in_w = w;
    return ODL_OK;
}

static odl_status push(odl_model_desc *d, odl_layer_desc l)
{
    if (!d || d->n_layers < 0 || d->n_layers >= ODL_MAX_LAYERS)
        return ODL_ERR_ARG;
    l.trainable = 1;
    d->layers[d->n_layers++] = l;
    return ODL_OK;
}

static odl_layer_desc mk(int32_t type, int32_t units, int32_t k, int32_t stride, int32_t pad)
{
    odl_layer_desc l;
    memset(&l, 0, sizeof l);
    l.type = type;
    l.units = units;
    l.k_h = l.k_w = k;
    l.stride_h = l.stride_w = stride;
    l.pad_h = l.pad_w = pad;
    return l;
}

odl_status odl_desc_dense(odl_model_desc *d, int32_t units)
{
    return units > 0 ? push(d, mk(ODL_LAYER_DENSE, units, 0, 0, 0)) : ODL_ERR_ARG;
}
odl_status odl_desc_conv2d(odl_model_desc *d, int32_t out_c, int32_t k, int32_t stride, int32_t pad)
{
    return out_c > 0 ? push(d, mk(ODL_LAYER_CONV2D, out_c, k, stride, pad)) : ODL_ERR_ARG;
}
odl_status odl_desc_depthwise(odl_model_desc *d, int32_t mult, int32_t k, int32_t stride, int32_t pad)
{
    return mult > 0 ? push(d, mk(ODL_LAYER_DEPTHWISE, mult, k, stride, pad)) : ODL_ERR_ARG;
}
odl_status odl_desc_maxpool(odl_model_desc *d, int32_t k, int32_t stride)
{
    return push(d, mk(ODL_LAYER_MAXPOOL, 0, k, stride, 0));
}
odl_status odl_desc_avgpool(odl_model_desc *d, int32_t k, int32_t stride)
{
    return push(d, mk(ODL_LAYER_AVGPOOL, 0, k, stride, 0));
}
odl_status odl_desc_gap(odl_model_desc *d) { return push(d, mk(ODL_LAYER_GAP, 0, 0, 0, 0)); }
odl_status odl_desc_relu(odl_model_desc *d) { return push(d, mk(ODL_LAYER_RELU, 0, 0, 0, 0)); }
odl_status odl_desc_relu6(odl_model_desc *d) { return push(d, mk(ODL_LAYER_RELU6, 0, 0, 0, 0)); }
odl_status odl_desc_flatten(odl_model_desc *d) { return push(d, mk(ODL_LAYER_FLATTEN, 0, 0, 0, 0)); }
odl_status odl_desc_dropout(odl_model_desc *d, float rate)
{
    if (!(rate >= 0.0f && rate < 1.0f))
        return ODL_ERR_ARG;
    odl_layer_desc l = mk(ODL_LAYER_DROPOUT, 0, 0, 0, 0);
    l.rate = rate;
    return push(d, l);
}

odl_status odl_desc_adapter(odl_model_desc *d, int32_t bottleneck)
{
    return bottleneck > 0 ? push(d, mk(ODL_LAYER_ADAPTER, bottleneck, 0, 0, 0)) : ODL_ERR_ARG;
}

odl_status odl_desc_insert_adapter(odl_model_desc *d, int32_t at, int32_t bottleneck)
{
    if (!d || at < 0 || at > d->n_layers || d->n_layers >= ODL_MAX_LAYERS || bottleneck <= 0)
        return ODL_ERR_ARG;
    for (int32_t i = d->n_layers; i > at; i--)
        d->layers[i] = d->layers[i - 1];
    d->layers[at] = mk(ODL_LAYER_ADAPTER, bottleneck, 0, 0, 0);
    d->layers[at].trainable = 1;
    d->n_layers++;
    return ODL_OK;
}

odl_status odl_desc_edge_cnn(odl_model_desc *d, int32_t c, int32_t h, int32_t w, int32_t n_classes)
{
    odl_status s = odl_desc_init(d, c, h, w);
    if (s == ODL_OK) s = odl_desc_conv2d(d, 8, 3, 1, 1);
    if (s == ODL_OK) s = odl_desc_relu(d);
    if (s == ODL_OK) s = odl_desc_maxpool(d, 2, 2);
    if (s == ODL_OK) s = odl_desc_conv2d(d, 16, 3, 1, 1);
    if (s == ODL_OK) s = odl_desc_relu(d);
    if (s == ODL_OK) s = odl_desc_maxpool(d, 2, 2);
    if (s == ODL_OK) s = odl_desc_flatten(d);
    if (s == ODL_OK) s = odl_desc_dense(d, 64);
    if (s == ODL_OK) s = odl_desc_relu(d);
    if (s == ODL_OK) s = odl_desc_dense(d, n_classes);
    return s;
}

odl_status odl_desc_mlp(odl_model_desc *d, int32_t c, int32_t h, int32_t w, const int32_t *hidden,
                        int32_t n_hidden, int32_t n_classes)
{
    odl_status s = odl_desc_init(d, c, h, w);
    if (s == ODL_OK) s = odl_desc_flatten(d);
    for (int32_t i = 0; i < n_hidden && s == ODL_OK; i++) {
        s = odl_desc_dense(d, hidden[i]);
        if (s == ODL_OK) s = odl_desc_relu(d);
    }
    if (s == ODL_OK) s = odl_desc_dense(d, n_classes);
    return s;
}

odl_status odl_desc_freeze_below(odl_model_desc *d, int32_t boundary)
{
    if (!d || boundary < 0 || boundary > d->n_layers)
        return ODL_ERR_ARG;
    for (int32_t i = 0; i < d->n_layers; i++)
        d->layers[i].trainable = i >= boundary;
    return ODL_OK;
}

static int has_params(int32_t type)
{
    return type == ODL_LAYER_DENSE || type == ODL_LAYER_CONV2D || type == ODL_LAYER_DEPTHWISE ||
           type == ODL_LAYER_ADAPTER;
}

static int is_window(int32_t type)
{
    return type == ODL_LAYER_CONV2D || type == ODL_LAYER_DEPTHWISE || type == ODL_LAYER_MAXPOOL ||
           type == ODL_LAYER_AVGPOOL;
}

static odl_status check_window(const odl_layer_desc *l, int32_t i, odl_diag *diag)
{
    if (l->k_h <= 0 || l->k_w <= 0 || l->k_h > 64 || l->k_w > 64)
        return odl_fail(diag, ODL_ERR_SHAPE, "layer %d (%s): kernel %dx%d out of range 1..64", (int)i,
                        odl_layer_type_name(l->type), (int)l->k_h, (int)l->k_w);
    if (l->stride_h <= 0 || l->stride_w <= 0 || l->stride_h > 64 || l->stride_w > 64)
        return odl_fail(diag, ODL_ERR_SHAPE, "layer %d (%s): stride %dx%d out of range 1..64", (int)i,
                        odl_layer_type_name(l->type), (int)l->stride_h, (int)l->stride_w);
    if (l->pad_h < 0 || l->pad_w < 0 || l->pad_h >= l->k_h || l->pad_w >= l->k_w)
        return odl_fail(diag, ODL_ERR_SHAPE, "layer %d (%s): padding %dx%d must be below the kernel size",
                        (int)i, odl_layer_type_name(l->type), (int)l->pad_h, (int)l->pad_w);
    return ODL_OK;
}

odl_status odl_desc_check(const odl_model_desc *d, odl_layer_shape *shapes, odl_diag *diag)
{
    if (!d)
        return odl_fail(diag, ODL_ERR_ARG, "model description is NULL");
    if (d->n_layers <= 0 || d->n_layers > ODL_MAX_LAYERS)
        return odl_fail(diag, ODL_ERR_SHAPE, "model has %d layers (1..%d allowed)", (int)d->n_layers,
                        ODL_MAX_LAYERS);
    if (d->in_c <= 0 || d->in_h <= 0 || d->in_w <= 0 || d->in_c > ODL_MAX_DIM ||
        d->in_h > ODL_MAX_DIM || d->in_w > ODL_MAX_DIM ||
        (uint64_t)d->in_c * (uint64_t)d->in_h * (uint64_t)d->in_w > ODL_MAX_SAMPLE)
        return odl_fail(diag, ODL_ERR_SHAPE, "input shape %dx%dx%d is not possible", (int)d->in_c,
                        (int)d->in_h, (int)d->in_w);
    odl_layer_shape cur = {d->in_c, d->in_h, d->in_w, (size_t)d->in_c * d->in_h * d->in_w, 0, 0};
    for (int32_t i = 0; i < d->n_layers; i++) {
        const odl_layer_desc *l = &d->layers[i];
        odl_layer_shape out = cur;
        out.n_weights = out.n_bias = 0;
        if (l->trainable != 0 && l->trainable != 1)
            return odl_fail(diag, ODL_ERR_SHAPE, "layer %d: trainable flag %d is not 0 or 1", (int)i,
                            (int)l->trainable);
        if (is_window(l->type)) {
            odl_status s = check_window(l, i, diag);
            if (s != ODL_OK)
                return s;
            int32_t oh = odl_window_out_size(cur.h, l->k_h, l->stride_h, l->pad_h);
            int32_t ow = odl_window_out_size(cur.w, l->k_w, l->stride_w, l->pad_w);
            if (oh <= 0 || ow <= 0)
                return odl_fail(diag, ODL_ERR_SHAPE,
                                "layer %d (%s): a %dx%d window does not fit the %dx%d input", (int)i,
                                odl_layer_type_name(l->type), (int)l->k_h, (int)l->k_w, (int)cur.h,
                                (int)cur.w);
            out.h = oh;
            out.w = ow;
        }
        switch (l->type) {
        case ODL_LAYER_DENSE:
            if (l->units <= 0 || l->units > ODL_MAX_DIM)
                return odl_fail(diag, ODL_ERR_SHAPE, "layer %d (dense): %d units out of range 1..%d",
                                (int)i, (int)l->units, ODL_MAX_DIM);
            if (cur.size > ODL_MAX_SAMPLE / (size_t)l->units)
                return odl_fail(diag, ODL_ERR_SHAPE, "layer %d (dense): %zu x %d weights is too many",
                                (int)i, cur.size, (int)l->units);
            out.c = l->units;
            out.h = out.w = 1;
            out.n_weights = cur.size * (size_t)l->units;
            out.n_bias = (size_t)l->units;
            break;
        case ODL_LAYER_CONV2D:
            if (l->units <= 0 || l->units > ODL_MAX_DIM)
                return odl_fail(diag, ODL_ERR_SHAPE, "layer %d (conv2d): %d output channels out of range",
                                (int)i, (int)l->units);
            /* < 2^16 * 2^26 * 2^12: exact in 64 bits, checked before it becomes a size_t */
            if ((uint64_t)l->units * (uint64_t)cur.c * (uint64_t)(l->k_h * l->k_w) > ODL_MAX_SAMPLE)
                return odl_fail(diag, ODL_ERR_SHAPE, "layer %d (conv2d): %d x %d x %dx%d weights is too many",
                                (int)i, (int)l->units, (int)cur.c, (int)l->k_h, (int)l->k_w);
            out.c = l->units;
            out.n_weights = (size_t)l->units * (size_t)cur.c * (size_t)(l->k_h * l->k_w);
            out.n_bias = (size_t)l->units;
            break;
        case ODL_LAYER_DEPTHWISE:
            if (l->units <= 0 || l->units > 64)
                return odl_fail(diag, ODL_ERR_SHAPE, "layer %d (depthwise): multiplier %d out of range 1..64",
                                (int)i, (int)l->units);
            /* cur.c (up to 2^26 after a flatten) times 64 overflows an int32_t */
            if ((uint64_t)cur.c * (uint64_t)l->units * (uint64_t)(l->k_h * l->k_w) > ODL_MAX_SAMPLE)
                return odl_fail(diag, ODL_ERR_SHAPE, "layer %d (depthwise): %d channels x %d x %dx%d is too large",
                                (int)i, (int)cur.c, (int)l->units, (int)l->k_h, (int)l->k_w);
            out.c = cur.c * l->units;
            out.n_weights = (size_t)out.c * (size_t)(l->k_h * l->k_w);
            out.n_bias = (size_t)out.c;
            break;
        case ODL_LAYER_MAXPOOL:
        case ODL_LAYER_AVGPOOL:
            break;
        case ODL_LAYER_GAP:
            out.h = out.w = 1;
            break;
        case ODL_LAYER_FLATTEN:
            out.c = (int32_t)cur.size;
            out.h = out.w = 1;
            break;
        case ODL_LAYER_RELU:
        case ODL_LAYER_RELU6:
            break;
        case ODL_LAYER_ADAPTER:
            if (l->units <= 0 || l->units > ODL_MAX_DIM || cur.size > ODL_MAX_SAMPLE / 2 / (size_t)l->units)
                return odl_fail(diag, ODL_ERR_SHAPE, "layer %d (adapter): bottleneck %d out of range for %zu inputs",
                                (int)i, (int)l->units, cur.size);
            out.n_weights = 2 * cur.size * (size_t)l->units;
            out.n_bias = cur.size + (size_t)l->units;
            break;
        case ODL_LAYER_DROPOUT:
            if (!(l->rate >= 0.0f && l->rate < 1.0f))
                return odl_fail(diag, ODL_ERR_SHAPE, "layer %d (dropout): rate must be in [0, 1)", (int)i);
            break;
        default:
            return odl_fail(diag, ODL_ERR_FORMAT, "layer %d: unknown layer type %d", (int)i, (int)l->type);
        }
        if (out.c <= 0 || (size_t)out.c > ODL_MAX_SAMPLE ||
            (uint64_t)out.c * (uint64_t)out.h * (uint64_t)out.w > ODL_MAX_SAMPLE || out.n_weights > ODL_MAX_SAMPLE)
            return odl_fail(diag, ODL_ERR_SHAPE, "layer %d (%s): output %dx%dx%d is too large", (int)i,
                            odl_layer_type_name(l->type), (int)out.c, (int)out.h, (int)out.w);
        out.size = (size_t)out.c * out.h * out.w;
        if (shapes)
            shapes[i] = out;
        cur = out;
    }
    return ODL_OK;
}

odl_status odl_desc_count_params(const odl_model_desc *d, size_t *total, size_t *trainable)
{
    odl_layer_shape shapes[ODL_MAX_LAYERS];
    odl_status s = odl_desc_check(d, shapes, NULL);
    if (s != ODL_OK)
        return s;
    size_t t = 0, tr = 0;
    for (int32_t i = 0; i < d->n_layers; i++) {
        size_t n = shapes[i].n_weights + shapes[i].n_bias;
        t += n;
        if (d->layers[i].trainable)
            tr += n;
    }
    if (total)
        *total = t;
    if (trainable)
        *trainable = tr;
    return ODL_OK;
}

/* ---- configuration and layout ------------------------------------------ */

odl_model_cfg odl_model_cfg_defaults(void)
{
    odl_model_cfg c;
    memset(&c, 0, sizeof c);
    c.mode = ODL_MODE_INFER;
    c.max_batch = 1;
    c.optim = odl_optim_defaults(ODL_OPTIM_ADAM);
    c.frozen_weights_in_place = 0;
    return c;
}

static int32_t first_backward_layer(const odl_model_desc *d, const odl_model_cfg *cfg)
{
    if (cfg->mode != ODL_MODE_TRAIN)
        return d->n_layers;
    for (int32_t i = 0; i < d->n_layers; i++)
        if (d->layers[i].trainable && has_params(d->layers[i].type))
            return i;
    return d->n_layers;
}

static odl_window_dims window_dims(const odl_layer_desc *l, const odl_layer_shape *in,
                                   const odl_layer_shape *out, int32_t batch)
{
    odl_window_dims w;
    w.batch = batch;
    w.in_c = in->c;
    w.in_h = in->h;
    w.in_w = in->w;
    w.out_c = out->c;
    w.out_h = out->h;
    w.out_w = out->w;
    w.k_h = l->k_h;
    w.k_w = l->k_w;
    w.stride_h = l->stride_h;
    w.stride_w = l->stride_w;
    w.pad_h = l->pad_h;
    w.pad_w = l->pad_w;
    return w;
}

#define FLOATS(n) ((size_t)(n) * sizeof(float))

/* Lays the model out in `a`; m == NULL (with a counting arena) only counts. */
static odl_status build(odl_model *m, const odl_model_desc *desc, const odl_model_cfg *cfg,
                        odl_arena *a, odl_diag *diag)
{
    odl_layer_shape shapes[ODL_MAX_LAYERS];
    odl_status s;
    void *p;
#define ALLOC(target, bytes, kind)                                   \
    do {                                                             \
        s = odl_arena_alloc(a, (bytes), (kind), &p, diag);           \
        if (s != ODL_OK)                                             \
            return s;                                                \
        if (m)                                                       \
            target = p;                                              \
    } while (0)

    const int32_t L = desc->n_layers;
    const size_t B = (size_t)cfg->max_batch;
    const int32_t fb = first_backward_layer(desc, cfg);
    const int train = cfg->mode == ODL_MODE_TRAIN;
    const odl_layer_shape in_shape = {desc->in_c, desc->in_h, desc->in_w,
                                      (size_t)desc->in_c * desc->in_h * desc->in_w, 0, 0};
    s = odl_desc_check(desc, shapes, diag);
    if (s != ODL_OK)
        return s;
    const int32_t nstate = train ? odl_optim_state_per_param(&cfg->optim) : 0;

    if (m) {
        m->desc = *desc;
        m->cfg = *cfg;
        m->in_shape = in_shape;
        m->first_bw = fb;
        m->train_n = -1;
        m->train_from = -1;
        m->params_ready = 1; /* cleared below for in-place layers until they are set */
    }
    size_t ping = 0, gmax = 0, conv_scratch = 0, adapter_r = 0;
    for (int32_t i = 0; i < L; i++) {
        const odl_layer_desc *l = &desc->layers[i];
        const odl_layer_shape *in = i ? &shapes[i - 1] : &in_shape;
        const odl_layer_shape *out = &shapes[i];
        odl_layer_rt *rt = m ? &m->rt[i] : NULL;
        if (rt) {
            rt->in = *in;
            rt->out = *out;
            rt->n_w = out->n_weights;
            rt->n_b = out->n_bias;
        }
        if (has_params(l->type)) {
            const int in_place = cfg->frozen_weights_in_place && !(train && l->trainable);
            if (!in_place) {
                ALLOC(rt->w, FLOATS(out->n_weights), ODL_MEM_PARAMS);
                ALLOC(rt->b, FLOATS(out->n_bias), ODL_MEM_PARAMS);
            } else if (rt) {
                rt->external = 1;
                m->params_ready = 0;
            }
            if (train && l->trainable) {
                ALLOC(rt->dw, FLOATS(out->n_weights), ODL_MEM_GRADS);
                ALLOC(rt->db, FLOATS(out->n_bias), ODL_MEM_GRADS);
                for (int32_t k = 0; k < nstate; k++) {
                    ALLOC(rt->opt_w[k], FLOATS(out->n_weights), ODL_MEM_OPTIM);
                    ALLOC(rt->opt_b[k], FLOATS(out->n_bias), ODL_MEM_OPTIM);
                }
            }
        }
        if (l->type == ODL_LAYER_ADAPTER && (size_t)l->units > adapter_r)
            adapter_r = (size_t)l->units;
        if (l->type == ODL_LAYER_CONV2D) {
            odl_window_dims wd = window_dims(l, in, out, 1);
            size_t sc = odl_conv2d_scratch_floats(&wd);
            if (sc > conv_scratch)
                conv_scratch = sc;
        }
        /* outputs of layers before fb-1 go through ping-pong */
        if (i < fb - 1 || fb >= L)
            if (out->size > ping)
                ping = out->size;
        /* d(input) of layers after fb */
        if (fb < L && i > fb && in->size > gmax)
            gmax = in->size;
    }
    if (ping) {
        ALLOC(m->ping, FLOATS(ping * B), ODL_MEM_SCRATCH);
        ALLOC(m->pong, FLOATS(ping * B), ODL_MEM_SCRATCH);
    }
    if (fb < L) {
        for (int32_t i = fb; i <= L; i++) {
            const odl_layer_shape *sh = i ? &shapes[i - 1] : &in_shape;
            /* flatten's output is its input, reinterpreted */
            if (i > fb && desc->layers[i - 1].type == ODL_LAYER_FLATTEN) {
                if (m)
                    m->act[i] = m->act[i - 1];
                continue;
            }
            ALLOC(m->act[i], FLOATS(sh->size * B), ODL_MEM_ACTIVATIONS);
        }
        if (gmax) {
            ALLOC(m->gbuf[0], FLOATS(gmax * B), ODL_MEM_SCRATCH);
            ALLOC(m->gbuf[1], FLOATS(gmax * B), ODL_MEM_SCRATCH);
        }
        ALLOC(m->dlogits, FLOATS(shapes[L - 1].size * B), ODL_MEM_SCRATCH);
    }
    if (conv_scratch)
        ALLOC(m->conv_scratch, FLOATS(conv_scratch), ODL_MEM_SCRATCH);
    if (adapter_r) {
        ALLOC(m->adapter_h, FLOATS(adapter_r * B), ODL_MEM_SCRATCH);
        if (fb < L)
            ALLOC(m->adapter_dh, FLOATS(adapter_r * B), ODL_MEM_SCRATCH);
    }
#undef ALLOC
    return ODL_OK;
}

static odl_status check_cfg(const odl_model_cfg *cfg, odl_diag *diag)
{
    if (!cfg)
        return odl_fail(diag, ODL_ERR_ARG, "model config is NULL");
    if (cfg->mode != ODL_MODE_INFER && cfg->mode != ODL_MODE_TRAIN)
        return odl_fail(diag, ODL_ERR_ARG, "model mode %d is neither inference nor training", (int)cfg->mode);
    if (cfg->max_batch <= 0 || cfg->max_batch > 65536)
        return odl_fail(diag, ODL_ERR_ARG, "max_batch %d out of range 1..65536", (int)cfg->max_batch);
    if (cfg->mode == ODL_MODE_TRAIN && cfg->optim.kind != ODL_OPTIM_SGD && cfg->optim.kind != ODL_OPTIM_ADAM)
        return odl_fail(diag, ODL_ERR_ARG, "unknown optimizer %d", (int)cfg->optim.kind);
    return ODL_OK;
}

odl_status odl_model_plan(const odl_model_desc *desc, const odl_model_cfg *cfg, odl_mem_plan *plan,
                          odl_diag *diag)
{
    odl_status s = check_cfg(cfg, diag);
    if (s != ODL_OK)
        return s;
    odl_arena a;
    void *p;
    odl_arena_init_counting(&a);
    s = odl_arena_alloc(&a, sizeof(odl_model), ODL_MEM_STATE, &p, diag);
    if (s == ODL_OK)
        s = build(NULL, desc, cfg, &a, diag);
    if (s != ODL_OK)
        return s;
    *plan = a.plan;
    return ODL_OK;
}

odl_status odl_model_init(odl_model **out, const odl_model_desc *desc, const odl_model_cfg *cfg,
                          odl_arena *arena, odl_diag *diag)
{
    if (!out || !arena)
        return odl_fail(diag, ODL_ERR_ARG, "odl_model_init: out and arena must not be NULL");
    *out = NULL;
    odl_mem_plan plan;
    odl_status s = odl_model_plan(desc, cfg, &plan, diag);
    if (s != ODL_OK)
        return s;
    if (odl_arena_is_counting(arena))
        return odl_fail(diag, ODL_ERR_ARG, "odl_model_init needs a real arena (use odl_model_plan to count)");
    if (odl_arena_remaining(arena) < plan.total)
        return odl_fail(diag, ODL_ERR_NOMEM,
                        "arena too small for the model: needs %zu bytes (params %zu, grads %zu, "
                        "optimizer %zu, activations %zu, scratch %zu), %zu available",
                        plan.total, plan.bytes[ODL_MEM_PARAMS], plan.bytes[ODL_MEM_GRADS],
                        plan.bytes[ODL_MEM_OPTIM], plan.bytes[ODL_MEM_ACTIVATIONS],
                        plan.bytes[ODL_MEM_SCRATCH], odl_arena_remaining(arena));
    void *p;
    s = odl_arena_alloc(arena, sizeof(odl_model), ODL_MEM_STATE, &p, diag);
    if (s != ODL_OK)
        return s;
    odl_model *m = p;
    s = build(m, desc, cfg, arena, diag);
    if (s != ODL_OK)
        return s;
    *out = m;
    return ODL_OK;
}

odl_status odl_model_init_params(odl_model *m, odl_rng *rng)
{
    return odl_model_init_params_as(m, rng, ODL_INIT_HE);
}

odl_status odl_model_init_params_as(odl_model *m, odl_rng *rng, odl_init_kind kind)
{
    if (!m || !rng || (kind != ODL_INIT_HE && kind != ODL_INIT_TORCH))
        return ODL_ERR_ARG;
    for (int32_t i = 0; i < m->desc.n_layers; i++) {
        odl_layer_rt *rt = &m->rt[i];
        if (!has_params(m->desc.layers[i].type) || rt->external)
            continue;
        if (m->desc.layers[i].type == ODL_LAYER_ADAPTER) {
            /* W_down He-uniform (a ReLU follows), W_up and biases zero: identity */
            const size_t D = rt->in.size, r = (size_t)m->desc.layers[i].units;
            const float bound = sqrtf(6.0f / (float)D);
            for (size_t k = 0; k < r * D; k++)
                rt->w[k] = (2.0f * odl_rng_uniform(rng) - 1.0f) * bound;
            memset(rt->w + r * D, 0, FLOATS(r * D));
            memset(rt->b, 0, FLOATS(rt->n_b));
            continue;
        }
        size_t fan_in = rt->n_w / rt->n_b;
        int relu_next = kind == ODL_INIT_HE && i + 1 < m->desc.n_layers && (m->desc.layers[i + 1].type == ODL_LAYER_RELU ||
                                                     m->desc.layers[i + 1].type == ODL_LAYER_RELU6);
        float bound = (relu_next ? sqrtf(6.0f) : 1.0f) / sqrtf((float)fan_in);
        for (size_t k = 0; k < rt->n_w; k++)
            rt->w[k] = (2.0f * odl_rng_uniform(rng) - 1.0f) * bound;
        for (size_t k = 0; k < rt->n_b; k++)
            rt->b[k] = relu_next ? 0.0f : (2.0f * odl_rng_uniform(rng) - 1.0f) / sqrtf((float)fan_in);
    }
    m->step = 0;
    return ODL_OK;
}

const odl_model_desc *odl_model_get_desc(const odl_model *m) { return &m->desc; }
const odl_model_cfg *odl_model_get_cfg(const odl_model *m) { return &m->cfg; }

odl_layer_shape odl_model_layer_shape(const odl_model *m, int32_t i)
{
    if (i < 0 || i >= m->desc.n_layers)
        return m->in_shape;
    return m->rt[i].out;
}

int32_t odl_model_n_classes(const odl_model *m)
{
    return (int32_t)m->rt[m->desc.n_layers - 1].out.size;
}

int32_t odl_model_first_trainable(const odl_model *m) { return m->first_bw; }

float *odl_model_param(odl_model *m, int32_t layer, int which, size_t *n)
{
    *n = 0;
    if (!m || layer < 0 || layer >= m->desc.n_layers || m->rt[layer].external)
        return NULL;
    odl_layer_rt *rt = &m->rt[layer];
    *n = which ? rt->n_b : rt->n_w;
    return which ? rt->b : rt->w;
}

const float *odl_model_param_const(const odl_model *m, int32_t layer, int which, size_t *n)
{
    *n = 0;
    if (!m || layer < 0 || layer >= m->desc.n_layers)
        return NULL;
    const odl_layer_rt *rt = &m->rt[layer];
    *n = which ? rt->n_b : rt->n_w;
    return which ? rt->b : rt->w;
}

odl_status odl_model_set_param_external(odl_model *m, int32_t layer, int which, const float *data,
                                        size_t n, odl_diag *diag)
{
    if (!m || layer < 0 || layer >= m->desc.n_layers || !data)
        return odl_fail(diag, ODL_ERR_ARG, "set_param_external: bad layer %d", (int)layer);
    odl_layer_rt *rt = &m->rt[layer];
    if (!rt->external)
        return odl_fail(diag, ODL_ERR_STATE, "layer %d keeps its parameters in the arena", (int)layer);
    if (n != (which ? rt->n_b : rt->n_w))
        return odl_fail(diag, ODL_ERR_SHAPE, "layer %d: %zu parameters given, %zu expected", (int)layer, n,
                        which ? rt->n_b : rt->n_w);
    if ((uintptr_t)data % sizeof(float))
        return odl_fail(diag, ODL_ERR_ARG, "layer %d: parameters are not aligned for float", (int)layer);
    /* External weights are read-only: the const is honoured by never writing
     * through them (frozen layers are never stepped). */
    union {
        const float *c;
        float *p;
    } u = {data};
    if (which)
        rt->b = u.p;
    else
        rt->w = u.p;
    m->params_ready = 1;
    for (int32_t i = 0; i < m->desc.n_layers; i++)
        if (has_params(m->desc.layers[i].type) && (!m->rt[i].w || !m->rt[i].b))
            m->params_ready = 0;
    return ODL_OK;
}

void odl_model_set_lr(odl_model *m, float lr) { m->cfg.optim.lr = lr; }

/* ---- forward ------------------------------------------------------------ */

static odl_status check_call(const odl_model *m, int32_t from, const float *x, int32_t n, odl_diag *diag)
{
    if (!m || !x)
        return odl_fail(diag, ODL_ERR_ARG, "forward: model and input must not be NULL");
    if (from < 0 || from >= m->desc.n_layers)
        return odl_fail(diag, ODL_ERR_ARG, "forward: start layer %d out of range 0..%d", (int)from,
                        (int)m->desc.n_layers - 1);
    if (n <= 0 || n > m->cfg.max_batch)
        return odl_fail(diag, ODL_ERR_ARG, "forward: batch %d out of range 1..%d (max_batch)", (int)n,
                        (int)m->cfg.max_batch);
    if (!m->params_ready) /* only in-place layers can lack parameters; found once set */
        for (int32_t i = 0; i < m->desc.n_layers; i++)
            if ((!m->rt[i].w || !m->rt[i].b) && has_params(m->desc.layers[i].type))
                return odl_fail(diag, ODL_ERR_STATE, "layer %d (%s) has no parameters loaded", (int)i,
                                odl_layer_type_name(m->desc.layers[i].type));
    return ODL_OK;
}

/* Layer i is a conv2d or dense followed by a ReLU that the kernel can apply
 * on the way out. Backward never reads the pre-ReLU values (the ReLU's
 * backward uses its output, the layer's backward its input), so act[i+1]
 * is simply not written. */
static int relu_fusable(const odl_model *m, int32_t i)
{
    const int32_t t = m->desc.layers[i].type;
    return (t == ODL_LAYER_CONV2D || t == ODL_LAYER_DENSE) && i + 1 < m->desc.n_layers &&
           m->desc.layers[i + 1].type == ODL_LAYER_RELU;
}

/* One layer forward (flags: ODL_FUSE_RELU for conv2d/dense). Returns the
 * output pointer (which may be x itself for flatten, or for dropout outside
 * training). */
static const float *layer_forward(odl_model *m, int32_t i, const float *x, float *y, int32_t n,
                                  odl_rng *train_rng, unsigned flags)
{
    const odl_layer_desc *l = &m->desc.layers[i];
    odl_layer_rt *rt = &m->rt[i];
    const size_t total = rt->out.size * (size_t)n;
    switch (l->type) {
    case ODL_LAYER_DENSE: {
        odl_dense_dims d = {n, (int32_t)rt->in.size, (int32_t)rt->out.size};
        odl_dense_forward_f32_ex(&d, x, rt->w, rt->b, y, flags);
        return y;
    }
    case ODL_LAYER_CONV2D: {
        odl_window_dims d = window_dims(l, &rt->in, &rt->out, n);
        odl_conv2d_forward_f32_ex(&d, x, rt->w, rt->b, y, m->conv_scratch, flags);
        return y;
    }
    case ODL_LAYER_DEPTHWISE: {
        odl_window_dims d = window_dims(l, &rt->in, &rt->out, n);
        odl_depthwise_forward_f32(&d, x, rt->w, rt->b, y);
        return y;
    }
    case ODL_LAYER_MAXPOOL: {
        odl_window_dims d = window_dims(l, &rt->in, &rt->out, n);
        odl_maxpool_forward_f32(&d, x, y);
        return y;
    }
    case ODL_LAYER_AVGPOOL: {
        odl_window_dims d = window_dims(l, &rt->in, &rt->out, n);
        odl_avgpool_forward_f32(&d, x, y);
        return y;
    }
    case ODL_LAYER_GAP:
        odl_gap_forward_f32(n, rt->in.c, rt->in.h * rt->in.w, x, y);
        return y;
    case ODL_LAYER_RELU:
        odl_relu_forward_f32(total, x, y);
        return y;
    case ODL_LAYER_RELU6:
        odl_relu6_forward_f32(total, x, y);
        return y;
    case ODL_LAYER_FLATTEN:
        return x;
    case ODL_LAYER_ADAPTER: {
        const int32_t D = (int32_t)rt->in.size, r = l->units;
        odl_dense_dims down = {n, D, r}, up = {n, r, D};
        odl_dense_forward_f32_ex(&down, x, rt->w, rt->b, m->adapter_h, ODL_FUSE_RELU);
        odl_dense_forward_f32(&up, m->adapter_h, rt->w + (size_t)r * D, rt->b + r, y);
        for (size_t k = 0; k < total; k++)
            y[k] += x[k];
        return y;
    }
    case ODL_LAYER_DROPOUT:
        if (train_rng) {
            rt->dropout_rng = *train_rng;
            odl_dropout_forward_f32(total, l->rate, train_rng, x, y);
            return y;
        }
        if (y != x)
            memcpy(y, x, FLOATS(total));
        return y;
    }
    return y;
}

/* Runs [from, to); output of the last layer is returned. In train mode the
 * layers from fb-1 on write into act[] (what backward reads). */
static const float *run(odl_model *m, int32_t from, int32_t to, const float *x, int32_t n,
                        odl_rng *train_rng)
{
    const int32_t fb = m->first_bw;
    const int keeps = fb < m->desc.n_layers; /* a training layout */
    const float *cur = x;
    if (keeps && from >= fb) {
        /* the input of a trainable stretch is kept for backward */
        if (m->act[from] != x)
            memcpy(m->act[from], x, FLOATS(m->rt[from].in.size * (size_t)n));
        cur = m->act[from];
    }
    for (int32_t i = from; i < to; i++) {
        /* a conv2d/dense + ReLU pair runs as one layer writing the ReLU's slot */
        const int fuse = i + 1 < to && relu_fusable(m, i);
        const int32_t last = fuse ? i + 1 : i;
        const int stored = keeps && last >= fb - 1;
        float *dst = stored ? m->act[last + 1] : (cur == m->ping) ? m->pong : m->ping;
        const float *o = layer_forward(m, i, cur, dst, n, train_rng, fuse ? ODL_FUSE_RELU : 0u);
        if (stored && o != dst) /* flatten just before the boundary */
            memcpy(dst, o, FLOATS(m->rt[last].out.size * (size_t)n));
        cur = stored ? dst : o;
        i = last;
    }
    return cur;
}

odl_status odl_model_forward(odl_model *m, int32_t from, const float *x, int32_t n, const float **out,
                             odl_diag *diag)
{
    odl_status s = check_call(m, from, x, n, diag);
    if (s != ODL_OK)
        return s;
    *out = run(m, from, m->desc.n_layers, x, n, NULL);
    m->train_n = -1; /* a plain forward may overwrite what backward needs */
    return ODL_OK;
}

odl_status odl_model_forward_range(odl_model *m, int32_t from, int32_t to, const float *x, int32_t n,
                                   float *y, odl_diag *diag)
{
    odl_status s = check_call(m, from, x, n, diag);
    if (s != ODL_OK)
        return s;
    if (to <= from || to > m->desc.n_layers || !y)
        return odl_fail(diag, ODL_ERR_ARG, "forward_range: end layer %d must be in %d..%d", (int)to,
                        (int)from + 1, (int)m->desc.n_layers);
    const float *out = run(m, from, to, x, n, NULL);
    memmove(y, out, FLOATS(m->rt[to - 1].out.size * (size_t)n));
    m->train_n = -1;
    return ODL_OK;
}

odl_status odl_model_forward_train(odl_model *m, int32_t from, const float *x, int32_t n, odl_rng *rng,
                                   const float **logits, odl_diag *diag)
{
    odl_status s = check_call(m, from, x, n, diag);
    if (s != ODL_OK)
        return s;
    if (m->cfg.mode != ODL_MODE_TRAIN || m->first_bw >= m->desc.n_layers)
        return odl_fail(diag, ODL_ERR_STATE, "model was not set up for training (no trainable layer)");
    if (!rng)
        return odl_fail(diag, ODL_ERR_ARG, "forward_train needs an RNG (dropout)");
    *logits = run(m, from, m->desc.n_layers, x, n, rng);
    m->train_n = n;
    m->train_from = from;
    return ODL_OK;
}

/* ---- backward ----------------------------------------------------------- */

odl_status odl_model_backward(odl_model *m, const float *dlogits, int32_t n, odl_diag *diag)
{
    if (!m || !dlogits)
        return odl_fail(diag, ODL_ERR_ARG, "backward: model and dlogits must not be NULL");
    if (m->train_n < 0 || n != m->train_n)
        return odl_fail(diag, ODL_ERR_STATE, "backward: call forward_train with the same batch first");
    const int32_t L = m->desc.n_layers;
    const int32_t lo = m->train_from > m->first_bw ? m->train_from : m->first_bw;
    /* Every layer in [lo, L) runs its backward once, so the dense, conv2d and
     * adapter kernels overwrite dw/db (ODL_GRAD_OVERWRITE) instead of
     * accumulating into zeroed buffers; only depthwise still needs zeroing. */
    for (int32_t i = lo; i < L; i++) {
        odl_layer_rt *rt = &m->rt[i];
        if (rt->dw && m->desc.layers[i].type == ODL_LAYER_DEPTHWISE) {
            memset(rt->dw, 0, FLOATS(rt->n_w));
            memset(rt->db, 0, FLOATS(rt->n_b));
        }
    }
    const float *g = dlogits;
    int relu_done = 0; /* layer i's ReLU backward was fused into the maxpool after it */
    int which = 0;
    for (int32_t i = L - 1; i >= lo; i--) {
        const odl_layer_desc *l = &m->desc.layers[i];
        odl_layer_rt *rt = &m->rt[i];
        const float *x = m->act[i];
        const float *y = m->act[i + 1];
        float *dx = i > lo ? m->gbuf[which] : NULL;
        const size_t total = rt->out.size * (size_t)n;
        switch (l->type) {
        case ODL_LAYER_DENSE: {
            odl_dense_dims d = {n, (int32_t)rt->in.size, (int32_t)rt->out.size};
            odl_dense_backward_f32_ex(&d, x, rt->w, g, dx, rt->dw, rt->db, ODL_GRAD_OVERWRITE);
            break;
        }
        case ODL_LAYER_CONV2D: {
            odl_window_dims d = window_dims(l, &rt->in, &rt->out, n);
            odl_conv2d_backward_f32_ex(&d, x, rt->w, g, dx, rt->dw, rt->db, m->conv_scratch,
                                       ODL_GRAD_OVERWRITE);
            break;
        }
        case ODL_LAYER_DEPTHWISE: {
            odl_window_dims d = window_dims(l, &rt->in, &rt->out, n);
            odl_depthwise_backward_f32(&d, x, rt->w, g, dx, rt->dw, rt->db);
            break;
        }
        case ODL_LAYER_MAXPOOL:
            if (dx) {
                /* a ReLU just before (one that needs its dx) is done here too:
                 * the pool's input x is the ReLU's output */
                const int fuse = i - 1 > lo && m->desc.layers[i - 1].type == ODL_LAYER_RELU;
                odl_window_dims d = window_dims(l, &rt->in, &rt->out, n);
                odl_maxpool_backward_f32_ex(&d, x, g, dx, fuse ? ODL_FUSE_RELU : 0u);
                relu_done = fuse;
            }
            break;
        case ODL_LAYER_AVGPOOL:
            if (dx) {
                odl_window_dims d = window_dims(l, &rt->in, &rt->out, n);
                odl_avgpool_backward_f32(&d, g, dx);
            }
            break;
        case ODL_LAYER_GAP:
            if (dx)
                odl_gap_backward_f32(n, rt->in.c, rt->in.h * rt->in.w, g, dx);
            break;
        case ODL_LAYER_RELU:
            if (relu_done) {
                dx = (float *)(uintptr_t)g; /* already masked by the maxpool's backward */
                relu_done = 0;
            } else if (dx) {
                odl_relu_backward_f32(total, y, g, dx);
            }
            break;
        case ODL_LAYER_RELU6:
            if (dx)
                odl_relu6_backward_f32(total, y, g, dx);
            break;
        case ODL_LAYER_FLATTEN:
            dx = (float *)(uintptr_t)g; /* same values, new shape: no copy, no write */
            break;
        case ODL_LAYER_ADAPTER: {
            /* recompute the hidden activations rather than keep them */
            const int32_t D = (int32_t)rt->in.size, r = l->units;
            odl_dense_dims down = {n, D, r}, up = {n, r, D};
            odl_dense_forward_f32_ex(&down, x, rt->w, rt->b, m->adapter_h, ODL_FUSE_RELU);
            odl_dense_backward_f32_ex(&up, m->adapter_h, rt->w + (size_t)r * D, g, m->adapter_dh,
                                      rt->dw ? rt->dw + (size_t)r * D : NULL, rt->db ? rt->db + r : NULL,
                                      ODL_GRAD_OVERWRITE);
            odl_relu_backward_f32((size_t)n * r, m->adapter_h, m->adapter_dh, m->adapter_dh);
            odl_dense_backward_f32_ex(&down, x, rt->w, m->adapter_dh, dx, rt->dw, rt->db, ODL_GRAD_OVERWRITE);
            if (dx)
                for (size_t k = 0; k < total; k++)
                    dx[k] += g[k];
            break;
        }
        case ODL_LAYER_DROPOUT:
            if (dx)
                odl_dropout_backward_f32(total, l->rate, &rt->dropout_rng, g, dx);
            break;
        }
        if (dx && dx != g)
            which ^= 1;
        g = dx;
    }
    return ODL_OK;
}

float *odl_model_grad(odl_model *m, int32_t layer, int which, size_t *n)
{
    *n = 0;
    if (!m || layer < 0 || layer >= m->desc.n_layers || !m->rt[layer].dw)
        return NULL;
    *n = which ? m->rt[layer].n_b : m->rt[layer].n_w;
    return which ? m->rt[layer].db : m->rt[layer].dw;
}

odl_status odl_model_step(odl_model *m, const float *lr_scale, odl_diag *diag)
{
    if (!m || m->cfg.mode != ODL_MODE_TRAIN)
        return odl_fail(diag, ODL_ERR_STATE, "step: model was not set up for training");
    m->step++;
    const odl_optim_cfg *oc = &m->cfg.optim;
    const int32_t lo = m->train_from > m->first_bw ? m->train_from : m->first_bw;
    /* Adam's bias corrections once per step (odl_adam_step_f32 recomputes
     * them per tensor); the same float operations, so the same bits */
    odl_adam_coef k;
    float bc1 = 1.0f;
    if (oc->kind == ODL_OPTIM_ADAM) {
        bc1 = 1.0f - powf(oc->beta1, (float)m->step);
        const float bc2 = 1.0f - powf(oc->beta2, (float)m->step);
        k.b1 = oc->beta1;
        k.b2 = oc->beta2;
        k.one_m_b1 = 1.0f - oc->beta1;
        k.one_m_b2 = 1.0f - oc->beta2;
        k.wd = oc->weight_decay;
        k.eps = oc->eps;
        k.inv_sqrt_bc2 = 1.0f / sqrtf(bc2);
    }
    for (int32_t i = lo; i < m->desc.n_layers; i++) {
        odl_layer_rt *rt = &m->rt[i];
        if (!rt->dw)
            continue;
        float lr = oc->lr * (lr_scale ? lr_scale[i] : 1.0f);
        if (oc->kind == ODL_OPTIM_ADAM) {
            k.step_size = lr / bc1;
            odl_adam_update_f32(&k, rt->n_w, rt->w, rt->dw, rt->opt_w[0], rt->opt_w[1]);
            odl_adam_update_f32(&k, rt->n_b, rt->b, rt->db, rt->opt_b[0], rt->opt_b[1]);
        } else {
            odl_sgd_step_f32(oc, lr, m->step, rt->n_w, rt->w, rt->dw, rt->opt_w[0]);
            odl_sgd_step_f32(oc, lr, m->step, rt->n_b, rt->b, rt->db, rt->opt_b[0]);
        }
    }
    return ODL_OK;
}

odl_status odl_model_train_step(odl_model *m, int32_t from, const float *x, const int32_t *labels,
                                int32_t n, odl_rng *rng, float *loss, odl_diag *diag)
{
    const float *logits = NULL;
    odl_status s = odl_model_forward_train(m, from, x, n, rng, &logits, diag);
    if (s != ODL_OK)
        return s;
    const int32_t c = odl_model_n_classes(m);
    for (int32_t k = 0; k < n; k++)
        if (labels[k] < 0 || labels[k] >= c)
            return odl_fail(diag, ODL_ERR_ARG, "label %d of sample %d out of range 0..%d", (int)labels[k],
                            (int)k, (int)c - 1);
    float l = odl_softmax_xent_f32(n, c, logits, labels, NULL, m->dlogits);
    if (!isfinite(l))
        return odl_fail(diag, ODL_ERR_NUMERIC, "training loss is not finite (diverged?)");
    if (loss)
        *loss = l;
    s = odl_model_backward(m, m->dlogits, n, diag);
    if (s != ODL_OK)
        return s;
    return odl_model_step(m, NULL, diag);
}

/* ---- transfer, growth ---------------------------------------------------- */

odl_status odl_desc_set_classes(odl_model_desc *d, int32_t n_classes)
{
    if (!d || d->n_layers <= 0 || n_classes <= 0 || d->layers[d->n_layers - 1].type != ODL_LAYER_DENSE)
        return ODL_ERR_ARG;
    d->layers[d->n_layers - 1].units = n_classes;
    return ODL_OK;
}

odl_status odl_model_transfer_params(odl_model *dst, const odl_model *src, odl_rng *rng, odl_diag *diag)
{
    if (!dst || !src || !rng)
        return odl_fail(diag, ODL_ERR_ARG, "transfer_params: NULL argument");
    const int32_t L = dst->desc.n_layers;
    if (src->desc.n_layers != L)
        return odl_fail(diag, ODL_ERR_SHAPE, "transfer_params: %d layers into %d", (int)src->desc.n_layers, (int)L);
    for (int32_t i = 0; i < L; i++) {
        const odl_layer_rt *a = &src->rt[i];
        odl_layer_rt *b = &dst->rt[i];
        const int32_t type = dst->desc.layers[i].type;
        if (src->desc.layers[i].type != type || a->in.size != b->in.size)
            return odl_fail(diag, ODL_ERR_SHAPE, "transfer_params: layer %d (%s) differs", (int)i,
                            odl_layer_type_name(type));
        if (!has_params(type))
            continue;
        if (!a->w || !b->w)
            return odl_fail(diag, ODL_ERR_STATE, "transfer_params: layer %d has no parameters", (int)i);
        if (b->external) {
            if (a->w != b->w || a->n_w != b->n_w)
                return odl_fail(diag, ODL_ERR_STATE, "transfer_params: layer %d is in place and differs", (int)i);
            continue;
        }
        if (a->n_w == b->n_w && a->n_b == b->n_b) {
            memcpy(b->w, a->w, FLOATS(a->n_w));
            memcpy(b->b, a->b, FLOATS(a->n_b));
        } else if (i == L - 1 && type == ODL_LAYER_DENSE && b->n_b > a->n_b) {
            memcpy(b->w, a->w, FLOATS(a->n_w));
            memcpy(b->b, a->b, FLOATS(a->n_b));
            for (size_t k = a->n_w; k < b->n_w; k++)
                b->w[k] = 0.01f * odl_rng_normal(rng);
            for (size_t k = a->n_b; k < b->n_b; k++)
                b->b[k] = 0.0f;
        } else {
            return odl_fail(diag, ODL_ERR_SHAPE, "transfer_params: layer %d (%s) has %zu parameters, %zu expected",
                            (int)i, odl_layer_type_name(type), a->n_w + a->n_b, b->n_w + b->n_b);
        }
    }
    odl_model_reset_optimizer(dst);
    return ODL_OK;
}

void odl_model_reset_optimizer(odl_model *m)
{
    m->step = 0;
    for (int32_t i = 0; i < m->desc.n_layers; i++)
        for (int k = 0; k < 2; k++) {
            odl_layer_rt *rt = &m->rt[i];
            if (rt->opt_w[k])
                memset(rt->opt_w[k], 0, FLOATS(rt->n_w));
            if (rt->opt_b[k])
                memset(rt->opt_b[k], 0, FLOATS(rt->n_b));
        }
}
