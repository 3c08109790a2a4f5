/* Graph models: descriptions, checks, planning, memory layout, forward,
 * backward.
 *
 * Memory layout (b = the backward cut, L = nodes):
 *   kept region        training: the tensors from b on that backward reads
 *                      (ODL_MEM_ACTIVATIONS), one after another.
 *   transient region   every other stored tensor at an offset planned from
 *                      its lifetime [producer, last reader], packed best fit
 *                      in node order (ODL_MEM_SCRATCH); an elementwise node
 *                      that is its input's last use takes over its slot.
 *   gradient region    d(tensor) for the tensors after b, packed the same way
 *                      over the same intervals (backward visits them reversed).
 * Flatten and reshape (and dropout outside training) alias their input; a
 * conv2d/dense whose only reader is a ReLU stores only the ReLU's output.
 * One code path (build) lays out both the counting arena of a plan and the
 * real one, so the plan is exact. */
#include "odl/model.h"
#include "odl/layers.h"

#include <math.h>
#include <string.h>

typedef struct odl_tensor_rt odl_tensor_rt;

typedef struct odl_layer_rt {
    odl_layer_shape in, out; /* in: the shape of input 0 */
    float *w, *b;
    size_t n_w, n_b;
    int32_t external; /* params point outside the arena (in-place frozen weights) */
    float *dw, *db;
    float *opt_w[2], *opt_b[2];
    odl_rng dropout_rng; /* state before the last training forward */
    uint8_t fused;       /* conv2d/dense whose ReLU (the next node) runs inside it */
    uint8_t pool_relu;   /* max pool whose backward also does the ReLU before it */
    uint8_t first;       /* bit k: this node writes (not adds) input k's gradient */
} odl_layer_rt;

struct odl_model {
    odl_model_desc desc; /* its nodes live in the arena */
    odl_model_cfg cfg;
    odl_layer_shape in_shape;
    odl_layer_rt *rt;     /* n_layers entries */
    odl_tensor_rt *tens;  /* n_layers + 1 entries: tensor t is node t-1's output */
    uint8_t *cut;         /* n_layers + 1 entries: 1 where a run may start */
    int32_t first_bw;
    float *gtmp;          /* gradients computed before being added to another reader's */
    float *dlogits;
    float *conv_scratch;
    float *adapter_h, *adapter_dh; /* batch × bottleneck */
    uint32_t step;
    int32_t train_n, train_from; /* what the last forward_train stored; -1 = nothing */
    int32_t params_ready; /* every parameterised layer has w and b (checked when they change) */
    odl_tensor_observer observe; /* set only during odl_model_forward_observe */
    void *observe_ctx;
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
    case ODL_LAYER_BATCHNORM: return "batchnorm";
    case ODL_LAYER_CLIP: return "clip";
    case ODL_LAYER_LEAKY_RELU: return "leaky_relu";
    case ODL_LAYER_SIGMOID: return "sigmoid";
    case ODL_LAYER_HARD_SIGMOID: return "hard_sigmoid";
    case ODL_LAYER_HARD_SWISH: return "hard_swish";
    case ODL_LAYER_TANH: return "tanh";
    case ODL_LAYER_ADD: return "add";
    case ODL_LAYER_MUL: return "mul";
    case ODL_LAYER_CONCAT: return "concat";
    case ODL_LAYER_RESHAPE: return "reshape";
    case ODL_LAYER_PAD: return "pad";
    }
    return "?";
}

/* Per-sample sizes above this are refused: they cannot be meant and would
 * overflow 32-bit index arithmetic on an MCU. */
#define ODL_MAX_DIM 65536
#define ODL_MAX_SAMPLE ((size_t)1 << 26)
/* Nodes in one description: far above any real network, low enough that
 * every count derived from it fits 32 bits with room to spare. */
#define ODL_MAX_NODES (1 << 18)

odl_status odl_desc_init(odl_model_desc *d, odl_node_desc *storage, int32_t capacity, int32_t c,
                         int32_t h, int32_t w)
{
    if (!d || (!storage && capacity != 0) || capacity < 0 || c <= 0 || h <= 0 || w <= 0)
        return ODL_ERR_ARG;
    memset(d, 0, sizeof *d);
    d->in_c = c;
    d->in_h = h;
    d->in_w = w;
    d->cap_layers = capacity;
    d->layers = storage;
    return ODL_OK;
}

odl_status odl_desc_copy(odl_model_desc *dst, const odl_model_desc *src, odl_diag *diag)
{
    if (!dst || !src || src->n_layers < 0 || (src->n_layers > 0 && !src->layers))
        return odl_fail(diag, ODL_ERR_ARG, "desc_copy: NULL description");
    if (!dst->layers || dst->cap_layers < src->n_layers)
        return odl_fail(diag, ODL_ERR_NOMEM, "desc_copy: %d nodes do not fit the destination's room for %d",
                        (int)src->n_layers, (int)dst->cap_layers);
    if (dst->layers != src->layers && src->n_layers > 0)
        memmove(dst->layers, src->layers, (size_t)src->n_layers * sizeof *src->layers);
    dst->in_c = src->in_c;
    dst->in_h = src->in_h;
    dst->in_w = src->in_w;
    dst->n_layers = src->n_layers;
    dst->softmax_output = src->softmax_output;
    return ODL_OK;
}

odl_node_desc odl_node_defaults(const odl_model_desc *d, int32_t type)
{
    odl_node_desc l;
    memset(&l, 0, sizeof l);
    l.type = type;
    l.trainable = 1;
    l.n_in = 1;
    l.in[0] = d && d->n_layers > 0 ? d->n_layers : 0;
    l.groups = 1;
    l.k_h = l.k_w = 1;
    l.stride_h = l.stride_w = 1;
    l.dil_h = l.dil_w = 1;
    switch (type) {
    case ODL_LAYER_ADD:
    case ODL_LAYER_MUL:
        l.n_in = 2;
        l.in[1] = l.in[0];
        break;
    case ODL_LAYER_CLIP: /* relu6 as a clip */
        l.alpha = 0.0f;
        l.beta = 6.0f;
        break;
    case ODL_LAYER_LEAKY_RELU:
        l.alpha = 0.01f;
        break;
    case ODL_LAYER_HARD_SIGMOID: /* PyTorch's */
        l.alpha = 1.0f / 6.0f;
        l.beta = 0.5f;
        break;
    default:
        break;
    }
    return l;
}

odl_status odl_desc_add_node(odl_model_desc *d, const odl_node_desc *node, int32_t *tensor)
{
    if (!d || !node || !d->layers || d->n_layers < 0 || d->n_layers >= d->cap_layers ||
        d->n_layers >= ODL_MAX_NODES)
        return ODL_ERR_ARG;
    d->layers[d->n_layers++] = *node;
    if (tensor)
        *tensor = d->n_layers;
    return ODL_OK;
}

static odl_status push(odl_model_desc *d, odl_node_desc l)
{
    l.trainable = 1;
    return odl_desc_add_node(d, &l, NULL);
}

static odl_node_desc mk(const odl_model_desc *d, int32_t type, int32_t units, int32_t k, int32_t stride,
                        int32_t pad)
{
    odl_node_desc l = odl_node_defaults(d, type);
    l.units = units;
    l.k_h = l.k_w = k;
    l.stride_h = l.stride_w = stride;
    l.pad_t = l.pad_l = l.pad_b = l.pad_r = pad;
    return l;
}

odl_status odl_desc_dense(odl_model_desc *d, int32_t units)
{
    return units > 0 ? push(d, mk(d, ODL_LAYER_DENSE, units, 0, 0, 0)) : ODL_ERR_ARG;
}
odl_status odl_desc_conv2d(odl_model_desc *d, int32_t out_c, int32_t k, int32_t stride, int32_t pad)
{
    return out_c > 0 ? push(d, mk(d, ODL_LAYER_CONV2D, out_c, k, stride, pad)) : ODL_ERR_ARG;
}
odl_status odl_desc_depthwise(odl_model_desc *d, int32_t mult, int32_t k, int32_t stride, int32_t pad)
{
    return mult > 0 ? push(d, mk(d, ODL_LAYER_DEPTHWISE, mult, k, stride, pad)) : ODL_ERR_ARG;
}
odl_status odl_desc_maxpool(odl_model_desc *d, int32_t k, int32_t stride)
{
    return push(d, mk(d, ODL_LAYER_MAXPOOL, 0, k, stride, 0));
}
odl_status odl_desc_avgpool(odl_model_desc *d, int32_t k, int32_t stride)
{
    return push(d, mk(d, ODL_LAYER_AVGPOOL, 0, k, stride, 0));
}
odl_status odl_desc_gap(odl_model_desc *d) { return push(d, mk(d, ODL_LAYER_GAP, 0, 0, 0, 0)); }
odl_status odl_desc_relu(odl_model_desc *d) { return push(d, mk(d, ODL_LAYER_RELU, 0, 0, 0, 0)); }
odl_status odl_desc_relu6(odl_model_desc *d) { return push(d, mk(d, ODL_LAYER_RELU6, 0, 0, 0, 0)); }
odl_status odl_desc_flatten(odl_model_desc *d) { return push(d, mk(d, ODL_LAYER_FLATTEN, 0, 0, 0, 0)); }
odl_status odl_desc_dropout(odl_model_desc *d, float rate)
{
    if (!(rate >= 0.0f && rate < 1.0f))
        return ODL_ERR_ARG;
    odl_node_desc l = mk(d, ODL_LAYER_DROPOUT, 0, 0, 0, 0);
    l.alpha = rate;
    return push(d, l);
}

odl_status odl_desc_adapter(odl_model_desc *d, int32_t bottleneck)
{
    return bottleneck > 0 ? push(d, mk(d, ODL_LAYER_ADAPTER, bottleneck, 0, 0, 0)) : ODL_ERR_ARG;
}

odl_status odl_desc_insert_adapter(odl_model_desc *d, int32_t at, int32_t bottleneck)
{
    if (!d || !d->layers || at < 0 || at > d->n_layers || d->n_layers >= d->cap_layers || bottleneck <= 0 ||
        !odl_desc_is_cut(d, at))
        return ODL_ERR_ARG;
    /* every tensor from `at` on moves up by one; nodes after the cut read
     * nothing below it, so only their references >= at change */
    for (int32_t i = d->n_layers; i > at; i--) {
        odl_node_desc l = d->layers[i - 1];
        for (int32_t k = 0; k < l.n_in && k < ODL_NODE_MAX_IN; k++)
            if (l.in[k] >= at)
                l.in[k]++;
        d->layers[i] = l;
    }
    odl_model_desc before = *d;
    before.n_layers = at;
    d->layers[at] = mk(&before, ODL_LAYER_ADAPTER, bottleneck, 0, 0, 0);
    d->layers[at].trainable = 1;
    d->n_layers++;
    return ODL_OK;
}

/* Replaces d's nodes: keeps its storage, resets the shape. */
static odl_status restart(odl_model_desc *d, int32_t c, int32_t h, int32_t w)
{
    if (!d)
        return ODL_ERR_ARG;
    return odl_desc_init(d, d->layers, d->cap_layers, c, h, w);
}

odl_status odl_desc_edge_cnn(odl_model_desc *d, int32_t c, int32_t h, int32_t w, int32_t n_classes)
{
    odl_status s = restart(d, c, h, w);
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
    odl_status s = restart(d, c, h, w);
    if (s == ODL_OK && n_hidden > 0 && !hidden)
        s = ODL_ERR_ARG;
    if (s == ODL_OK) s = odl_desc_flatten(d);
    for (int32_t i = 0; i < n_hidden && s == ODL_OK; i++) {
        s = odl_desc_dense(d, hidden[i]);
        if (s == ODL_OK) s = odl_desc_relu(d);
    }
    if (s == ODL_OK) s = odl_desc_dense(d, n_classes);
    return s;
}

/* Tensor t is a cut when no node at index >= t reads a tensor below t. */
int odl_desc_is_cut(const odl_model_desc *d, int32_t t)
{
    if (!d || t < 0 || t > d->n_layers || (d->n_layers > 0 && !d->layers))
        return 0;
    for (int32_t i = t; i < d->n_layers; i++) {
        const odl_node_desc *l = &d->layers[i];
        if (l->n_in < 1 || l->n_in > ODL_NODE_MAX_IN)
            return 0;
        for (int32_t k = 0; k < l->n_in; k++)
            if (l->in[k] < t)
                return 0;
    }
    return 1;
}

/* The latest cut point at or before p, in one pass from the end: t is a
 * cut when the lowest tensor read by nodes t.. is t or above. */
static int32_t cut_at_or_before(const odl_model_desc *d, int32_t p)
{
    if (p >= d->n_layers)
        return d->n_layers;
    int32_t lowest = INT32_MAX;
    for (int32_t j = d->n_layers - 1; j >= 0; j--) {
        const odl_node_desc *l = &d->layers[j];
        if (l->n_in < 1 || l->n_in > ODL_NODE_MAX_IN)
            lowest = -1;
        for (int32_t k = 0; k < l->n_in && k < ODL_NODE_MAX_IN; k++)
            if (l->in[k] < lowest)
                lowest = l->in[k];
        if (j <= p && lowest >= j)
            return j;
    }
    return 0;
}

static int has_params(int32_t type)
{
    return type == ODL_LAYER_DENSE || type == ODL_LAYER_CONV2D || type == ODL_LAYER_DEPTHWISE ||
           type == ODL_LAYER_ADAPTER || type == ODL_LAYER_BATCHNORM;
}

odl_status odl_desc_boundary_for_unfreeze(const odl_model_desc *d, int32_t k, int32_t *boundary,
                                          odl_diag *diag)
{
    if (!d || !boundary || d->n_layers <= 0 || !d->layers)
        return odl_fail(diag, ODL_ERR_ARG, "boundary_for_unfreeze: empty or NULL description");
    if (k < 1)
        return odl_fail(diag, ODL_ERR_ARG, "unfreeze count %d must be at least 1", (int)k);
    int32_t seen = 0, at = -1;
    for (int32_t i = d->n_layers - 1; i >= 0; i--)
        if (has_params(d->layers[i].type) && ++seen == k) {
            at = i;
            break;
        }
    if (at < 0)
        return odl_fail(diag, ODL_ERR_ARG, "cannot unfreeze %d parameterised nodes: the model has %d", (int)k,
                        (int)seen);
    *boundary = cut_at_or_before(d, at);
    return ODL_OK;
}

odl_status odl_desc_freeze_below(odl_model_desc *d, int32_t boundary)
{
    if (!d || boundary < 0 || boundary > d->n_layers || (d->n_layers > 0 && !d->layers) ||
        !odl_desc_is_cut(d, boundary))
        return ODL_ERR_ARG;
    for (int32_t i = 0; i < d->n_layers; i++)
        d->layers[i].trainable = i >= boundary;
    return ODL_OK;
}

static int is_window(int32_t type)
{
    return type == ODL_LAYER_CONV2D || type == ODL_LAYER_DEPTHWISE || type == ODL_LAYER_MAXPOOL ||
           type == ODL_LAYER_AVGPOOL;
}

/* Inputs a node of this type takes: exactly lo..hi. */
static void n_in_range(int32_t type, int32_t *lo, int32_t *hi)
{
    *lo = *hi = 1;
    if (type == ODL_LAYER_ADD || type == ODL_LAYER_MUL)
        *lo = *hi = 2;
    else if (type == ODL_LAYER_CONCAT)
        *hi = ODL_NODE_MAX_IN;
}

static odl_status check_window(const odl_node_desc *l, int32_t i, const odl_layer_shape *in,
                               odl_layer_shape *out, odl_diag *diag)
{
    const char *name = odl_layer_type_name(l->type);
    if (l->k_h <= 0 || l->k_w <= 0 || l->k_h > 64 || l->k_w > 64)
        return odl_fail(diag, ODL_ERR_SHAPE, "layer %d (%s): kernel %dx%d out of range 1..64", (int)i, name,
                        (int)l->k_h, (int)l->k_w);
    if (l->stride_h <= 0 || l->stride_w <= 0 || l->stride_h > 64 || l->stride_w > 64)
        return odl_fail(diag, ODL_ERR_SHAPE, "layer %d (%s): stride %dx%d out of range 1..64", (int)i, name,
                        (int)l->stride_h, (int)l->stride_w);
    if (l->dil_h <= 0 || l->dil_w <= 0 || l->dil_h > 64 || l->dil_w > 64 ||
        (l->type == ODL_LAYER_AVGPOOL && (l->dil_h != 1 || l->dil_w != 1)))
        return odl_fail(diag, ODL_ERR_SHAPE, "layer %d (%s): dilation %dx%d out of range (1..64; 1 for avgpool)",
                        (int)i, name, (int)l->dil_h, (int)l->dil_w);
    const int32_t ext_h = l->dil_h * (l->k_h - 1) + 1, ext_w = l->dil_w * (l->k_w - 1) + 1;
    /* a pad reaching a whole window makes windows of padding only: pools
     * have nothing to take, a conv only its bias; never meant */
    if (l->pad_t < 0 || l->pad_l < 0 || l->pad_b < 0 || l->pad_r < 0 || l->pad_t >= ext_h ||
        l->pad_b >= ext_h || l->pad_l >= ext_w || l->pad_r >= ext_w)
        return odl_fail(diag, ODL_ERR_SHAPE,
                        "layer %d (%s): padding %d,%d,%d,%d (top, left, bottom, right) must be below the kernel size",
                        (int)i, name, (int)l->pad_t, (int)l->pad_l, (int)l->pad_b, (int)l->pad_r);
    const uint32_t allowed = l->type == ODL_LAYER_AVGPOOL   ? (ODL_NODE_CEIL_MODE | ODL_NODE_COUNT_PAD)
                             : l->type == ODL_LAYER_MAXPOOL ? ODL_NODE_CEIL_MODE
                                                            : 0u;
    if ((uint32_t)l->flags & ~allowed)
        return odl_fail(diag, ODL_ERR_SHAPE, "layer %d (%s): flags 0x%x not allowed (0x%x allowed)", (int)i, name,
                        (unsigned)l->flags, (unsigned)allowed);
    const int ceil = (l->flags & ODL_NODE_CEIL_MODE) != 0;
    int32_t oh = odl_window_out_size_ex(in->h, l->k_h, l->stride_h, l->pad_t, l->pad_b, l->dil_h, ceil);
    int32_t ow = odl_window_out_size_ex(in->w, l->k_w, l->stride_w, l->pad_l, l->pad_r, l->dil_w, ceil);
    if (oh <= 0 || ow <= 0)
        return odl_fail(diag, ODL_ERR_SHAPE, "layer %d (%s): a %dx%d window does not fit the %dx%d input", (int)i,
                        name, (int)l->k_h, (int)l->k_w, (int)in->h, (int)in->w);
    out->h = oh;
    out->w = ow;
    return ODL_OK;
}

static int finite_f(float v) { return v == v && v - v == 0.0f; }

/* Output shape and parameter counts of node i from its inputs' shapes (all
 * counts in 64 bits, bounded before they narrow). */
static odl_status node_shape(const odl_node_desc *l, int32_t i, const odl_layer_shape *const *ins,
                             odl_layer_shape *res, odl_diag *diag)
{
    const odl_layer_shape *in = ins[0];
    const char *name = odl_layer_type_name(l->type);
    uint64_t oc = (uint64_t)in->c, oh = (uint64_t)in->h, ow = (uint64_t)in->w, nw = 0, nb = 0;
    odl_layer_shape out = *in;
    if (is_window(l->type)) {
        odl_status s = check_window(l, i, in, &out, diag);
        if (s != ODL_OK)
            return s;
        oh = (uint64_t)out.h;
        ow = (uint64_t)out.w;
    }
    if (l->type != ODL_LAYER_CONV2D && l->type != ODL_LAYER_DEPTHWISE && l->groups != 1)
        return odl_fail(diag, ODL_ERR_SHAPE, "layer %d (%s): groups %d (only conv2d has groups)", (int)i, name,
                        (int)l->groups);
    switch (l->type) {
    case ODL_LAYER_DENSE:
        if (l->units <= 0 || l->units > ODL_MAX_DIM)
            return odl_fail(diag, ODL_ERR_SHAPE, "layer %d (dense): %d units out of range 1..%d", (int)i,
                            (int)l->units, ODL_MAX_DIM);
        if (in->size > ODL_MAX_SAMPLE / (size_t)l->units)
            return odl_fail(diag, ODL_ERR_SHAPE, "layer %d (dense): %zu x %d weights is too many", (int)i, in->size,
                            (int)l->units);
        oc = (uint64_t)l->units;
        oh = ow = 1;
        nw = (uint64_t)in->size * (uint64_t)l->units;
        nb = (uint64_t)l->units;
        break;
    case ODL_LAYER_CONV2D:
        if (l->units <= 0 || l->units > ODL_MAX_DIM)
            return odl_fail(diag, ODL_ERR_SHAPE, "layer %d (conv2d): %d output channels out of range 1..%d", (int)i,
                            (int)l->units, ODL_MAX_DIM);
        if (l->groups <= 0 || in->c % l->groups != 0 || l->units % l->groups != 0)
            return odl_fail(diag, ODL_ERR_SHAPE,
                            "layer %d (conv2d): groups %d must divide the %d input and %d output channels", (int)i,
                            (int)l->groups, (int)in->c, (int)l->units);
        oc = (uint64_t)l->units;
        nw = oc * (uint64_t)(in->c / l->groups) * (uint64_t)l->k_h * (uint64_t)l->k_w;
        nb = oc;
        break;
    case ODL_LAYER_DEPTHWISE:
        if (l->units <= 0 || l->units > 64)
            return odl_fail(diag, ODL_ERR_SHAPE, "layer %d (depthwise): multiplier %d out of range 1..64", (int)i,
                            (int)l->units);
        if (l->groups != 1 && l->groups != in->c)
            return odl_fail(diag, ODL_ERR_SHAPE, "layer %d (depthwise): groups %d (1 or the %d input channels)",
                            (int)i, (int)l->groups, (int)in->c);
        oc = (uint64_t)in->c * (uint64_t)l->units;
        nw = oc * (uint64_t)l->k_h * (uint64_t)l->k_w;
        nb = oc;
        break;
    case ODL_LAYER_MAXPOOL:
    case ODL_LAYER_AVGPOOL:
        break;
    case ODL_LAYER_GAP:
        oh = ow = 1;
        break;
    case ODL_LAYER_FLATTEN:
        oc = (uint64_t)in->size;
        oh = ow = 1;
        break;
    case ODL_LAYER_RELU:
    case ODL_LAYER_RELU6:
    case ODL_LAYER_SIGMOID:
    case ODL_LAYER_HARD_SWISH:
    case ODL_LAYER_TANH:
        break;
    case ODL_LAYER_CLIP:
        /* ±inf are fine (an open side), NaN or an empty range are not */
        if (l->alpha != l->alpha || l->beta != l->beta || !(l->alpha <= l->beta)) {
            char lo[ODL_FMT_F32_MAX], hi[ODL_FMT_F32_MAX];
            return odl_fail(diag, ODL_ERR_SHAPE, "layer %d (clip): range [%s, %s] is empty or not a number", (int)i,
                            odl_fmt_f32(lo, l->alpha, 3), odl_fmt_f32(hi, l->beta, 3));
        }
        break;
    case ODL_LAYER_LEAKY_RELU:
        if (!finite_f(l->alpha))
            return odl_fail(diag, ODL_ERR_SHAPE, "layer %d (leaky_relu): slope is not finite", (int)i);
        break;
    case ODL_LAYER_HARD_SIGMOID:
        if (!finite_f(l->alpha) || !finite_f(l->beta))
            return odl_fail(diag, ODL_ERR_SHAPE, "layer %d (hard_sigmoid): alpha and beta must be finite", (int)i);
        break;
    case ODL_LAYER_ADAPTER:
        if (l->units <= 0 || l->units > ODL_MAX_DIM || in->size > ODL_MAX_SAMPLE / 2 / (size_t)l->units)
            return odl_fail(diag, ODL_ERR_SHAPE, "layer %d (adapter): bottleneck %d out of range for %zu inputs",
                            (int)i, (int)l->units, in->size);
        nw = 2 * (uint64_t)in->size * (uint64_t)l->units;
        nb = (uint64_t)in->size + (uint64_t)l->units;
        break;
    case ODL_LAYER_DROPOUT:
        if (!(l->alpha >= 0.0f && l->alpha < 1.0f))
            return odl_fail(diag, ODL_ERR_SHAPE, "layer %d (dropout): rate must be in [0, 1)", (int)i);
        break;
    case ODL_LAYER_BATCHNORM:
        nw = nb = (uint64_t)in->c;
        break;
    case ODL_LAYER_ADD:
    case ODL_LAYER_MUL: {
        const odl_layer_shape *b = ins[1];
        const int same = b->c == in->c && b->h == in->h && b->w == in->w;
        const int per_c = b->c == in->c && b->h == 1 && b->w == 1;
        const int scalar = b->c == 1 && b->h == 1 && b->w == 1;
        if (!same && !per_c && !scalar)
            return odl_fail(diag, ODL_ERR_SHAPE,
                            "layer %d (%s): second input %dx%dx%d does not broadcast to %dx%dx%d (same, %dx1x1 or 1x1x1)",
                            (int)i, name, (int)b->c, (int)b->h, (int)b->w, (int)in->c, (int)in->h, (int)in->w,
                            (int)in->c);
        break;
    }
    case ODL_LAYER_CONCAT: {
        oc = 0;
        for (int32_t k = 0; k < l->n_in; k++) {
            if (ins[k]->h != in->h || ins[k]->w != in->w)
                return odl_fail(diag, ODL_ERR_SHAPE,
                                "layer %d (concat): input %d is %dx%d, input 0 is %dx%d (h and w must agree)", (int)i,
                                (int)k, (int)ins[k]->h, (int)ins[k]->w, (int)in->h, (int)in->w);
            oc += (uint64_t)ins[k]->c;
        }
        break;
    }
    case ODL_LAYER_RESHAPE:
        if (l->shape_c <= 0 || l->shape_h <= 0 || l->shape_w <= 0 ||
            (uint64_t)l->shape_c * (uint64_t)l->shape_h * (uint64_t)l->shape_w != (uint64_t)in->size)
            return odl_fail(diag, ODL_ERR_SHAPE, "layer %d (reshape): %dx%dx%d does not hold the %zu input values",
                            (int)i, (int)l->shape_c, (int)l->shape_h, (int)l->shape_w, in->size);
        oc = (uint64_t)l->shape_c;
        oh = (uint64_t)l->shape_h;
        ow = (uint64_t)l->shape_w;
        break;
    case ODL_LAYER_PAD:
        if (l->pad_t < 0 || l->pad_l < 0 || l->pad_b < 0 || l->pad_r < 0 || l->pad_t > ODL_MAX_DIM ||
            l->pad_l > ODL_MAX_DIM || l->pad_b > ODL_MAX_DIM || l->pad_r > ODL_MAX_DIM || !finite_f(l->alpha))
            return odl_fail(diag, ODL_ERR_SHAPE, "layer %d (pad): padding %d,%d,%d,%d out of range 0..%d (or value not finite)",
                            (int)i, (int)l->pad_t, (int)l->pad_l, (int)l->pad_b, (int)l->pad_r, ODL_MAX_DIM);
        oh += (uint64_t)l->pad_t + (uint64_t)l->pad_b;
        ow += (uint64_t)l->pad_l + (uint64_t)l->pad_r;
        break;
    default:
        return odl_fail(diag, ODL_ERR_FORMAT, "layer %d: unknown layer type %d", (int)i, (int)l->type);
    }
    if (oc == 0 || oh == 0 || ow == 0 || oc > ODL_MAX_SAMPLE || oh > ODL_MAX_DIM || ow > ODL_MAX_DIM ||
        oc * oh * ow > ODL_MAX_SAMPLE || nw > ODL_MAX_SAMPLE || nb > ODL_MAX_SAMPLE)
        return odl_fail(diag, ODL_ERR_SHAPE, "layer %d (%s): output %llux%llux%llu or its parameters too large",
                        (int)i, name, (unsigned long long)oc, (unsigned long long)oh, (unsigned long long)ow);
    res->c = (int32_t)oc;
    res->h = (int32_t)oh;
    res->w = (int32_t)ow;
    res->size = (size_t)(oc * oh * ow);
    res->n_weights = (size_t)nw;
    res->n_bias = (size_t)nb;
    return ODL_OK;
}

static odl_layer_shape input_shape(const odl_model_desc *d)
{
    odl_layer_shape s = {d->in_c, d->in_h, d->in_w, (size_t)d->in_c * (size_t)d->in_h * (size_t)d->in_w, 0, 0};
    return s;
}

/* Checks node i's own fields and its inputs' numbers (not shapes). */
static odl_status check_node_inputs(const odl_node_desc *l, int32_t i, odl_diag *diag)
{
    if (l->trainable != 0 && l->trainable != 1)
        return odl_fail(diag, ODL_ERR_SHAPE, "layer %d: trainable flag %d is not 0 or 1", (int)i, (int)l->trainable);
    int32_t lo, hi;
    n_in_range(l->type, &lo, &hi);
    if (l->n_in < lo || l->n_in > hi)
        return odl_fail(diag, ODL_ERR_SHAPE, "layer %d (%s): %d inputs (%d..%d allowed)", (int)i,
                        odl_layer_type_name(l->type), (int)l->n_in, (int)lo, (int)hi);
    for (int32_t k = 0; k < l->n_in; k++)
        if (l->in[k] < 0 || l->in[k] > i)
            return odl_fail(diag, ODL_ERR_SHAPE,
                            "layer %d (%s): input %d reads tensor %d; only tensors 0..%d exist before it", (int)i,
                            odl_layer_type_name(l->type), (int)k, (int)l->in[k], (int)i);
    return ODL_OK;
}

static odl_status check_header(const odl_model_desc *d, odl_diag *diag)
{
    if (!d)
        return odl_fail(diag, ODL_ERR_ARG, "model description is NULL");
    if (d->n_layers <= 0 || d->n_layers > ODL_MAX_NODES || !d->layers)
        return odl_fail(diag, ODL_ERR_SHAPE, "model has %d layers (1..%d allowed)", (int)d->n_layers,
                        (int)ODL_MAX_NODES);
    if (d->in_c <= 0 || d->in_h <= 0 || d->in_w <= 0 || d->in_c > ODL_MAX_DIM || d->in_h > ODL_MAX_DIM ||
        d->in_w > ODL_MAX_DIM || (uint64_t)d->in_c * (uint64_t)d->in_h * (uint64_t)d->in_w > ODL_MAX_SAMPLE)
        return odl_fail(diag, ODL_ERR_SHAPE, "input shape %dx%dx%d is not possible", (int)d->in_c, (int)d->in_h,
                        (int)d->in_w);
    if (d->softmax_output != 0 && d->softmax_output != 1)
        return odl_fail(diag, ODL_ERR_SHAPE, "softmax_output flag %d is not 0 or 1", (int)d->softmax_output);
    return ODL_OK;
}

/* ---- the streaming walk -----------------------------------------------------
 * Checking, planning and laying out a model all walk its nodes in order
 * holding only the tensors still to be read: memory in the graph's width,
 * not its length, so odl_model_plan is exact with no buffer of its own (the
 * core has no heap). A tensor's last reader is found by a scan from the
 * end, so a walk costs at most O(nodes^2), bounded by ODL_MAX_NODES. */

/* Tensors held at once by a walk (a graph's width); ports may lower it. */
#ifndef ODL_PLAN_LIVE
#define ODL_PLAN_LIVE 48
#endif
/* Last readers found per scan from the end: a walk costs O(nodes^2 / this). */
#ifndef ODL_PLAN_WINDOW
#define ODL_PLAN_WINDOW 256
#endif

#define FLOATS(n) ((size_t)(n) * sizeof(float))
#define ALIGN_UP(n) (((n) + (ODL_ALIGN - 1)) & ~(size_t)(ODL_ALIGN - 1))

/* Where a tensor lives. */
enum {
    REG_NONE = 0, /* the caller's input (tensor 0, or a run's start) */
    REG_TRANS,    /* the transient region, at a planned offset shared over time */
    REG_KEPT,     /* the kept region (training: what backward reads) */
    REG_ALIAS,    /* the floats of the tensor its producer reads (flatten, reshape) */
    REG_VIRTUAL   /* never stored: a conv/dense output whose ReLU is fused */
};

typedef struct odl_tensor_rt {
    float *data;      /* REG_TRANS / REG_KEPT storage */
    float *grad;      /* d(loss)/d(tensor) during backward; NULL when not needed */
    const float *cur; /* where the current run finds it */
    size_t off, goff; /* offsets in the transient (or kept) and gradient regions */
    int32_t region;
    int32_t froot;    /* storage owner (itself unless a view) */
    int32_t groot;    /* gradient storage owner (itself, a tensor it aliases, or -1: none) */
} odl_tensor_rt;

typedef struct live_ent {
    int32_t t, c, h, w;
    int32_t last;         /* last reader (n_layers for the output) */
    int32_t flast, glast; /* last step its storage / gradient storage must survive */
    int32_t froot;        /* storage owner (itself unless an alias) */
    int32_t region;
    int32_t gplaced;      /* holds a slot of the gradient region */
    int32_t groot;        /* gradient slot owner, -1: no gradient */
    size_t bytes, off, goff;
} live_ent;

typedef struct walk_st {
    const odl_model_desc *d;
    const odl_model_cfg *cfg; /* NULL: checking only */
    odl_model *m;             /* non-NULL: record the layout in it */
    odl_arena *a;             /* planning: parameters are allocated on the way */
    odl_layer_shape *shapes;  /* optional: every node's output shape */
    odl_diag *diag;
    int32_t L, fb, train;
    size_t B;
    int32_t n;
    live_ent e[ODL_PLAN_LIVE];
    uint64_t total, trainable;
    size_t trans_peak, grad_peak, kept, naive, lower, tmp, conv_scratch, adapter_r;
    odl_layer_shape out; /* the last tensor's shape */
    int32_t lr_base;     /* lr[k]: last reader of tensor lr_base + k (-1: none); lr_base -1: empty */
    int32_t lr[ODL_PLAN_WINDOW];
    size_t elem;             /* bytes per value (4; 1 for an INT8 layout) */
    int32_t fuse_wide;       /* INT8: also fuse depthwise and relu6/clip (odl_desc_plan_tensors) */
    odl_tensor_slot *slots;  /* odl_desc_plan_tensors: where each tensor went */
    odl_node_visitor visit;  /* odl_desc_visit */
    void *visit_ctx;
} walk_st;

/* The last node reading tensor t, -1 if none: one scan from the end
 * finds them for a window of tensors. */
static int32_t last_reader(walk_st *w, int32_t t)
{
    if (w->lr_base < 0 || t < w->lr_base || t >= w->lr_base + ODL_PLAN_WINDOW) {
        const int32_t base = t > 2 ? t - 2 : 0; /* a little behind: the walk also asks for t - 1 */
        for (int32_t k = 0; k < ODL_PLAN_WINDOW; k++)
            w->lr[k] = -1;
        for (int32_t j = w->d->n_layers - 1; j >= base; j--) {
            const odl_node_desc *l = &w->d->layers[j];
            for (int32_t k = 0; k < l->n_in && k < ODL_NODE_MAX_IN; k++) {
                const int32_t x = l->in[k] - base;
                if (x >= 0 && x < ODL_PLAN_WINDOW && w->lr[x] < 0)
                    w->lr[x] = j;
            }
        }
        w->lr_base = base;
    }
    return w->lr[t - w->lr_base];
}

/* Backward of this node type reads its input x (kept in training). */
static int needs_input(int32_t type)
{
    switch (type) {
    case ODL_LAYER_DENSE:
    case ODL_LAYER_CONV2D:
    case ODL_LAYER_DEPTHWISE:
    case ODL_LAYER_MAXPOOL:
    case ODL_LAYER_ADAPTER:
    case ODL_LAYER_BATCHNORM:
    case ODL_LAYER_MUL:
    case ODL_LAYER_CLIP:
    case ODL_LAYER_LEAKY_RELU:
    case ODL_LAYER_HARD_SIGMOID:
    case ODL_LAYER_HARD_SWISH:
        return 1;
    }
    return 0;
}

/* Backward of this node type reads its output y. */
static int needs_output(int32_t type)
{
    return type == ODL_LAYER_RELU || type == ODL_LAYER_RELU6 || type == ODL_LAYER_SIGMOID ||
           type == ODL_LAYER_TANH;
}

static int is_view(const odl_model_desc *d, const odl_model_cfg *cfg, int32_t i)
{
    const int32_t t = d->layers[i].type;
    return t == ODL_LAYER_FLATTEN || t == ODL_LAYER_RESHAPE ||
           (t == ODL_LAYER_DROPOUT && cfg->mode != ODL_MODE_TRAIN);
}

/* Node i is a conv2d or dense whose output only a ReLU right after reads:
 * the kernel applies it on the way out (ODL_FUSE_RELU) and the pre-ReLU
 * tensor is never stored (backward reads the ReLU's output and the conv's
 * input, never the pre-ReLU values). */
static int relu_fusable(walk_st *w, int32_t i)
{
    const odl_model_desc *d = w->d;
    const int32_t t = d->layers[i].type;
    const int wide = w->fuse_wide && (t == ODL_LAYER_DEPTHWISE || t == ODL_LAYER_BATCHNORM);
    if ((t != ODL_LAYER_CONV2D && t != ODL_LAYER_DENSE && !wide) || i + 1 >= d->n_layers)
        return 0;
    const odl_node_desc *r = &d->layers[i + 1];
    const int act = r->type == ODL_LAYER_RELU ||
                    (w->fuse_wide && (r->type == ODL_LAYER_RELU6 || r->type == ODL_LAYER_CLIP));
    return act && r->n_in == 1 && r->in[0] == i + 1 && last_reader(w, i + 1) == i + 1;
}

/* Max pool i reads only a ReLU's output that nothing else reads: its
 * backward also does the ReLU's (the pool's input is that ReLU's output). */
static int pool_relu_fusable(walk_st *w, int32_t i)
{
    const odl_model_desc *d = w->d;
    const odl_node_desc *l = &d->layers[i];
    if (l->type != ODL_LAYER_MAXPOOL || i < 1 || l->in[0] != i)
        return 0;
    const odl_node_desc *r = &d->layers[i - 1];
    return r->type == ODL_LAYER_RELU && last_reader(w, i) == i;
}

/* Training keeps tensor t (t >= the backward cut) when backward reads it. */
static int needs_kept(walk_st *w, int32_t t, int depth)
{
    const odl_model_desc *d = w->d;
    const odl_model_cfg *cfg = w->cfg;
    if (t == d->n_layers || (t >= 1 && needs_output(d->layers[t - 1].type)))
        return 1;
    if (depth > 64) /* a chain of views that long: keep rather than recurse */
        return 1;
    const int32_t last = last_reader(w, t); /* readers lie in [t, last]: the tensor's lifetime */
    for (int32_t j = t; j <= last; j++) {
        const odl_node_desc *l = &d->layers[j];
        for (int32_t k = 0; k < l->n_in; k++)
            if (l->in[k] == t && (needs_input(l->type) || (is_view(d, cfg, j) && needs_kept(w, j + 1, depth + 1))))
                return 1;
    }
    return 0;
}

/* Gradient of node i's input k is written, not added: node i is the last
 * reader of that tensor and k its first use there (backward runs in
 * reverse, so the last reader comes first). */
static live_ent *find_ent(walk_st *w, int32_t t);

static int grad_first(walk_st *w, int32_t i, int32_t k)
{
    const odl_node_desc *l = &w->d->layers[i];
    const int32_t t = l->in[k];
    for (int32_t q = 0; q < k; q++)
        if (l->in[q] == t)
            return 0;
    const live_ent *e = find_ent(w, t); /* an input of the node being walked: held */
    return e && e->last == i;
}

static int32_t first_backward_layer(const odl_model_desc *d, const odl_model_cfg *cfg)
{
    if (cfg->mode != ODL_MODE_TRAIN)
        return d->n_layers;
    for (int32_t i = 0; i < d->n_layers; i++)
        if (d->layers[i].trainable && has_params(d->layers[i].type))
            return cut_at_or_before(d, i);
    return d->n_layers;
}

static live_ent *find_ent(walk_st *w, int32_t t)
{
    for (int32_t k = 0; k < w->n; k++)
        if (w->e[k].t == t)
            return &w->e[k];
    return NULL;
}

/* Where `bytes` go beside every entry still holding a slot at `step`: the
 * smallest free gap that holds them (lowest offset on a tie), else above
 * everything; deterministic. grad: the gradient region. Placed in node
 * order as the walk meets tensors, since a walk holds only the live ones
 * (a largest-first packing would need every tensor at once). */
static size_t best_fit(const walk_st *w, const live_ent *self, int grad, int32_t step, size_t bytes)
{
    /* the slots held at `step`, by offset (insertion sort: a graph's width) */
    size_t off[ODL_PLAN_LIVE], end[ODL_PLAN_LIVE];
    int32_t n = 0;
    for (int32_t k = 0; k < w->n; k++) {
        const live_ent *o = &w->e[k];
        if (o == self)
            continue;
        const int holds = grad ? (o->gplaced && o->glast >= step)
                               : (o->region == REG_TRANS && o->froot == o->t && o->flast >= step);
        if (!holds)
            continue;
        const size_t ooff = grad ? o->goff : o->off;
        int32_t j = n++;
        while (j > 0 && off[j - 1] > ooff) {
            off[j] = off[j - 1];
            end[j] = end[j - 1];
            j--;
        }
        off[j] = ooff;
        end[j] = ooff + o->bytes;
    }
    /* best fit: the smallest free gap that holds it, else above everything */
    size_t at = 0, top = 0, best_gap = SIZE_MAX, best = 0;
    for (int32_t k = 0; k <= n; k++) {
        if (k < n && off[k] > at && off[k] - at >= bytes && off[k] - at < best_gap) {
            best_gap = off[k] - at;
            best = at;
        }
        if (k < n) {
            if (end[k] > at)
                at = end[k];
            if (end[k] > top)
                top = end[k];
        }
    }
    return best_gap != SIZE_MAX ? best : top;
}

/* Nodes computing elementwise over input 0 with the same shape out, whose
 * kernels are safe with y == x (and dx == dy). */
static int elementwise_in_place(int32_t type)
{
    return type == ODL_LAYER_RELU || type == ODL_LAYER_RELU6 || type == ODL_LAYER_CLIP ||
           type == ODL_LAYER_LEAKY_RELU || type == ODL_LAYER_SIGMOID || type == ODL_LAYER_HARD_SIGMOID ||
           type == ODL_LAYER_HARD_SWISH || type == ODL_LAYER_TANH || type == ODL_LAYER_BATCHNORM ||
           type == ODL_LAYER_ADD || type == ODL_LAYER_MUL;
}

/* Node i computes elementwise over input 0 (same shape out) and is that
 * tensor's last use, which holds a transient slot of its own: the output
 * can take the slot over (the kernels are plain elementwise loops, safe
 * with y == x). Outside training's kept tensors only. */
static live_ent *in_place_source(walk_st *w, int32_t i)
{
    const odl_node_desc *l = &w->d->layers[i];
    const int32_t type = l->type;
    if (!elementwise_in_place(type))
        return NULL;
    live_ent *src = find_ent(w, l->in[0]);
    if (!src || src->region != REG_TRANS || src->froot != src->t || src->last != i || src->flast != i)
        return NULL;
    for (int32_t k = 1; k < l->n_in; k++) { /* the other operand must not live in that slot */
        const live_ent *o = find_ent(w, l->in[k]);
        if (!o || o->froot == src->t)
            return NULL;
    }
    return src;
}

/* Backward of node i turns d(output) into d(input 0) elementwise and is
 * the first (only) writer of that gradient, whose slot ends here: the
 * output's gradient (e) can live in that slot and be overwritten in place
 * (the kernels read dy[k] before writing dx[k]). */
static live_ent *grad_in_place_source(walk_st *w, int32_t i, const live_ent *e)
{
    const odl_node_desc *l = &w->d->layers[i];
    const int32_t type = l->type;
    if (!(elementwise_in_place(type) || type == ODL_LAYER_DROPOUT) || !grad_first(w, i, 0))
        return NULL;
    live_ent *src = find_ent(w, l->in[0]);
    if (!src || !src->gplaced || src->groot != src->t || src->glast != i || src->bytes != e->bytes)
        return NULL;
    for (int32_t k = 1; k < l->n_in; k++) { /* the other operand's gradient must not share it */
        const live_ent *o = find_ent(w, l->in[k]);
        if (!o || o->groot == src->t)
            return NULL;
    }
    return src;
}

/* Bytes of transient tensors holding their slots at `step`. */
static size_t live_trans(const walk_st *w, int32_t step)
{
    size_t sum = 0;
    for (int32_t k = 0; k < w->n; k++) {
        const live_ent *o = &w->e[k];
        if (o->region == REG_TRANS && o->froot == o->t && o->flast >= step)
            sum += o->bytes;
    }
    return sum;
}

static odl_status walk_alloc(walk_st *w, float **target, size_t bytes, odl_mem_kind kind)
{
    void *p;
    odl_status s = odl_arena_alloc(w->a, bytes, kind, &p, w->diag);
    if (s == ODL_OK && w->m)
        *target = p;
    return s;
}

/* Adds tensor t (shape sh) to the walk, planning its storage when w->cfg is
 * set. i is its producer (-1 for the input). */
static odl_status add_tensor(walk_st *w, int32_t t, const odl_layer_shape *sh, int32_t i)
{
    const odl_model_desc *d = w->d;
    const int32_t last = t == w->L ? w->L : last_reader(w, t);
    if (last < 0 && i < 0)
        return odl_fail(w->diag, ODL_ERR_SHAPE, "no layer reads the model's input (tensor 0)");
    if (last < 0)
        return odl_fail(w->diag, ODL_ERR_SHAPE,
                        "layer %d (%s): its output (tensor %d) is never read; only the last layer's may be unused",
                        (int)i, odl_layer_type_name(d->layers[i].type), (int)t);
    /* the output of a ReLU fused into the conv2d/dense before it is written
     * by that node, while the node still reads its input: it is placed at
     * the conv's step, beside everything that step reads */
    const int32_t at = i >= 1 && relu_fusable(w, i - 1) ? i - 1 : (i < 0 ? 0 : i);
    for (int32_t k = 0; k < w->n;) { /* tensors no longer needed leave */
        live_ent *o = &w->e[k];
        int32_t keep = o->last > o->flast ? o->last : o->flast;
        keep = keep > o->glast ? keep : o->glast;
        if (keep < at)
            *o = w->e[--w->n];
        else
            k++;
    }
    if (w->n >= ODL_PLAN_LIVE)
        return odl_fail(w->diag, ODL_ERR_UNSUPPORTED,
                        "layer %d: more than %d tensors are waiting for readers at once (a graph this wide is not supported)",
                        (int)i, (int)ODL_PLAN_LIVE);
    live_ent *e = &w->e[w->n++];
    memset(e, 0, sizeof *e);
    e->t = t;
    e->c = sh->c;
    e->h = sh->h;
    e->w = sh->w;
    e->last = last;
    e->flast = e->glast = -1;
    e->froot = t;
    e->groot = -1;
    e->region = REG_NONE;
    if (!w->cfg)
        return ODL_OK;
    /* bytes at max_batch, bounded so sums of the tensors held at once (and
     * of the kept ones, checked below) cannot wrap on a 32-bit target */
    if ((uint64_t)sh->size * w->B > (uint64_t)(SIZE_MAX / sizeof(float) / 4 / ODL_PLAN_LIVE))
        return odl_fail(w->diag, ODL_ERR_NOMEM, "tensor %d: %zu values x batch %zu are more than memory can address",
                        (int)t, sh->size, w->B);
    e->bytes = ALIGN_UP(sh->size * w->B * w->elem);
    if (w->kept > SIZE_MAX / 2 - e->bytes)
        return odl_fail(w->diag, ODL_ERR_NOMEM, "tensor %d: the tensors kept for training exceed addressable memory",
                        (int)t);
    w->naive = w->naive > SIZE_MAX - e->bytes ? SIZE_MAX : w->naive; /* a figure: saturates */
    e->flast = last;
    const int kept = w->train && t >= w->fb && needs_kept(w, t, 0);
    odl_tensor_rt *tr = w->m ? &w->m->tens[t] : NULL;
    const int32_t step = at;
    if (i < 0) {
        if (kept) {
            e->region = REG_KEPT;
            e->off = w->kept;
            w->kept += e->bytes;
            w->naive = w->naive == SIZE_MAX ? SIZE_MAX : w->naive + e->bytes;
        }
    } else if (relu_fusable(w, i)) {
        e->region = REG_VIRTUAL;
    } else if (is_view(d, w->cfg, i)) {
        live_ent *src = find_ent(w, d->layers[i].in[0]);
        live_ent *root = src ? find_ent(w, src->froot) : NULL;
        if (!root)
            return odl_fail(w->diag, ODL_ERR_STATE, "layer %d: internal planning error (input not held)", (int)i);
        if (kept && root->region != REG_KEPT) {
            e->region = REG_KEPT; /* backward reads it; its source is not kept: a copy */
            e->off = w->kept;
            w->kept += e->bytes;
            w->naive = w->naive == SIZE_MAX ? SIZE_MAX : w->naive + e->bytes;
        } else {
            e->region = REG_ALIAS;
            e->froot = root->t;
            if (root->flast < last)
                root->flast = last;
        }
    } else if (kept) {
        e->region = REG_KEPT;
        e->off = w->kept;
        w->kept += e->bytes;
        w->naive = w->naive == SIZE_MAX ? SIZE_MAX : w->naive + e->bytes;
    } else {
        e->region = REG_TRANS;
        live_ent *src = in_place_source(w, i);
        if (src) { /* elementwise over a tensor read last here: it takes over that slot */
            e->off = src->off;
            src->flast = i - 1;
        } else {
            e->off = best_fit(w, e, 0, step, e->bytes);
        }
        if (e->off + e->bytes > w->trans_peak)
            w->trans_peak = e->off + e->bytes;
        w->naive = w->naive == SIZE_MAX ? SIZE_MAX : w->naive + e->bytes;
    }
    /* gradients: tensors strictly inside the trainable part; the output's is the caller's */
    if (w->train && t > w->fb && t < w->L) {
        const odl_node_desc *l = &d->layers[i];
        live_ent *src = NULL, *root = NULL;
        if ((l->type == ODL_LAYER_FLATTEN || l->type == ODL_LAYER_RESHAPE) && l->in[0] > w->fb) {
            src = find_ent(w, l->in[0]);
            if (src && src->last != i)
                src = NULL; /* read elsewhere too: its gradient is a sum, not this one */
        }
        if (src && src->groot >= 0)
            root = find_ent(w, src->groot);
        if (pool_relu_fusable(w, t) && i > w->fb) {
            /* the pool (node t) writes the ReLU's input gradient directly: none
             * here, and that one must live until the pool's step */
            live_ent *rin = find_ent(w, l->in[0]);
            live_ent *rg = rin && rin->groot >= 0 ? find_ent(w, rin->groot) : NULL;
            if (rg && rg->glast < t)
                rg->glast = t;
        } else if (root) {
            /* same floats, new shape: the gradient passes through in place */
            e->groot = root->t;
            if (root->glast < last)
                root->glast = last;
        } else {
            live_ent *gsrc = grad_in_place_source(w, i, e);
            e->glast = last;
            if (gsrc) { /* backward writes the input's gradient over this one, elementwise */
                e->goff = gsrc->goff;
                gsrc->glast = i - 1;
            } else {
                e->goff = best_fit(w, e, 1, step, e->bytes);
            }
            e->gplaced = 1;
            e->groot = t;
            if (e->goff + e->bytes > w->grad_peak)
                w->grad_peak = e->goff + e->bytes;
        }
    }
    /* the lower bound: every tensor live at this step, kept ones included */
    const size_t live = live_trans(w, step) + w->kept;
    if (live > w->lower)
        w->lower = live;
    if (w->slots) {
        odl_tensor_slot *sl = &w->slots[t];
        sl->stored = e->region == REG_TRANS;
        sl->root = e->region == REG_ALIAS ? e->froot : e->region == REG_VIRTUAL ? -1 : t;
        sl->off = e->off;
    }
    if (tr) {
        tr->region = e->region;
        tr->off = e->off;
        tr->goff = e->goff;
        tr->groot = e->groot;
        tr->froot = e->froot;
    }
    return ODL_OK;
}

static odl_window_dims window_dims(const odl_node_desc *l, const odl_layer_shape *in, const odl_layer_shape *out,
                                   int32_t batch);

/* Walks every node: checks it, computes its shape and (with a config)
 * plans its memory, allocating its parameters in w->a on the way. */
static odl_status walk_run(walk_st *w)
{
    const odl_model_desc *d = w->d;
    odl_status s = check_header(d, w->diag);
    if (s != ODL_OK)
        return s;
    w->L = d->n_layers;
    for (int32_t i = 0; i < w->L; i++) /* every input number first: a bad one is named as such */
        if ((s = check_node_inputs(&d->layers[i], i, w->diag)) != ODL_OK)
            return s;
    const odl_layer_shape in0 = input_shape(d);
    if ((s = add_tensor(w, 0, &in0, -1)) != ODL_OK)
        return s;
    const int32_t nstate = w->train ? odl_optim_state_per_param(&w->cfg->optim) : 0;
    odl_layer_shape out = in0;
    for (int32_t i = 0; i < w->L; i++) {
        const odl_node_desc *l = &d->layers[i];
        odl_layer_shape in_sh[ODL_NODE_MAX_IN];
        const odl_layer_shape *ins[ODL_NODE_MAX_IN];
        for (int32_t k = 0; k < l->n_in; k++) {
            const live_ent *e = find_ent(w, l->in[k]);
            if (!e)
                return odl_fail(w->diag, ODL_ERR_STATE, "layer %d: internal planning error (input %d not held)",
                                (int)i, (int)l->in[k]);
            odl_layer_shape sh = {e->c, e->h, e->w, (size_t)e->c * (size_t)e->h * (size_t)e->w, 0, 0};
            in_sh[k] = sh;
            ins[k] = &in_sh[k];
        }
        if ((s = node_shape(l, i, ins, &out, w->diag)) != ODL_OK)
            return s;
        if (w->visit && (s = w->visit(w->visit_ctx, i, ins, &out, w->diag)) != ODL_OK)
            return s;
        w->total += (uint64_t)out.n_weights + out.n_bias;
        if (l->trainable)
            w->trainable += (uint64_t)out.n_weights + out.n_bias;
        if (w->shapes)
            w->shapes[i] = out;
        if (w->cfg) {
            odl_layer_rt *rt = w->m ? &w->m->rt[i] : NULL;
            if (rt) {
                rt->in = in_sh[0];
                rt->out = out;
                rt->n_w = out.n_weights;
                rt->n_b = out.n_bias;
                rt->fused = (uint8_t)relu_fusable(w, i);
                rt->pool_relu = (uint8_t)pool_relu_fusable(w, i);
                rt->first = 0;
                for (int32_t k = 0; k < l->n_in; k++)
                    if (grad_first(w, i, k))
                        rt->first |= (uint8_t)(1u << k);
            }
            if (has_params(l->type)) {
                const int in_place = w->cfg->frozen_weights_in_place && !(w->train && l->trainable);
                if (!in_place) {
                    if ((s = walk_alloc(w, rt ? &rt->w : NULL, FLOATS(out.n_weights), ODL_MEM_PARAMS)) != ODL_OK ||
                        (s = walk_alloc(w, rt ? &rt->b : NULL, FLOATS(out.n_bias), ODL_MEM_PARAMS)) != ODL_OK)
                        return s;
                } else if (rt) {
                    rt->external = 1;
                    w->m->params_ready = 0;
                }
                if (w->train && l->trainable) {
                    if ((s = walk_alloc(w, rt ? &rt->dw : NULL, FLOATS(out.n_weights), ODL_MEM_GRADS)) != ODL_OK ||
                        (s = walk_alloc(w, rt ? &rt->db : NULL, FLOATS(out.n_bias), ODL_MEM_GRADS)) != ODL_OK)
                        return s;
                    for (int32_t k = 0; k < nstate; k++)
                        if ((s = walk_alloc(w, rt ? &rt->opt_w[k] : NULL, FLOATS(out.n_weights), ODL_MEM_OPTIM)) !=
                                ODL_OK ||
                            (s = walk_alloc(w, rt ? &rt->opt_b[k] : NULL, FLOATS(out.n_bias), ODL_MEM_OPTIM)) != ODL_OK)
                            return s;
                }
            }
            if (l->type == ODL_LAYER_ADAPTER && (size_t)l->units > w->adapter_r)
                w->adapter_r = (size_t)l->units;
            if (l->type == ODL_LAYER_CONV2D) {
                odl_window_dims wd = window_dims(l, ins[0], &out, 1);
                size_t sc = odl_conv2d_scratch_floats(&wd);
                if (sc > w->conv_scratch)
                    w->conv_scratch = sc;
            }
            if (w->train && i >= w->fb) { /* gradients added to another reader's: a scratch to compute them in */
                size_t acc = 0;
                for (int32_t k = 0; k < l->n_in; k++)
                    if (l->in[k] > w->fb && !grad_first(w, i, k))
                        acc += ALIGN_UP(FLOATS(in_sh[k].size * w->B));
                if (acc > w->tmp)
                    w->tmp = acc;
            }
        }
        if ((s = add_tensor(w, i + 1, &out, i)) != ODL_OK)
            return s;
    }
    w->out = out;
    return ODL_OK;
}

static void walk_init(walk_st *w, const odl_model_desc *d, const odl_model_cfg *cfg, odl_layer_shape *shapes,
                      odl_diag *diag)
{
    memset(w, 0, sizeof *w);
    w->d = d;
    w->cfg = cfg;
    w->shapes = shapes;
    w->diag = diag;
    w->lr_base = -1;
    w->elem = sizeof(float);
    if (cfg) {
        w->train = cfg->mode == ODL_MODE_TRAIN;
        w->B = (size_t)cfg->max_batch;
        w->fb = first_backward_layer(d, cfg);
    }
}

odl_status odl_desc_check(const odl_model_desc *d, odl_layer_shape *shapes, odl_diag *diag)
{
    walk_st w;
    walk_init(&w, d, NULL, shapes, diag);
    return walk_run(&w);
}

static odl_status check_cfg(const odl_model_cfg *cfg, odl_diag *diag);

odl_status odl_desc_visit(const odl_model_desc *d, odl_node_visitor cb, void *ctx, odl_diag *diag)
{
    if (!cb)
        return odl_fail(diag, ODL_ERR_ARG, "desc_visit: no callback");
    walk_st w;
    walk_init(&w, d, NULL, NULL, diag);
    w.visit = cb;
    w.visit_ctx = ctx;
    return walk_run(&w);
}

odl_status odl_desc_plan_tensors(const odl_model_desc *d, int32_t max_batch, size_t elem_bytes,
                                  odl_tensor_slot *slots, size_t *peak, odl_diag *diag)
{
    if (!d || !peak || (elem_bytes != 1 && elem_bytes != 2 && elem_bytes != 4))
        return odl_fail(diag, ODL_ERR_ARG, "plan_tensors: NULL argument or element size %zu not 1, 2 or 4",
                        elem_bytes);
    odl_model_cfg cfg = odl_model_cfg_defaults();
    cfg.max_batch = max_batch;
    odl_status s = check_cfg(&cfg, diag);
    if (s != ODL_OK)
        return s;
    odl_arena a; /* the walk counts parameters on the way: a counting arena takes them */
    odl_arena_init_counting(&a);
    walk_st w;
    walk_init(&w, d, &cfg, NULL, diag);
    w.a = &a;
    w.elem = elem_bytes;
    w.fuse_wide = elem_bytes == 1;
    w.slots = slots;
    if ((s = walk_run(&w)) != ODL_OK)
        return s;
    *peak = w.trans_peak;
    return ODL_OK;
}

odl_status odl_desc_count_params(const odl_model_desc *d, odl_layer_shape *shapes, size_t *total,
                                 size_t *trainable)
{
    walk_st w;
    walk_init(&w, d, NULL, shapes, NULL);
    odl_status s = walk_run(&w);
    if (s != ODL_OK)
        return s;
    if (w.total > SIZE_MAX / sizeof(float))
        return ODL_ERR_SHAPE;
    if (total)
        *total = (size_t)w.total;
    if (trainable)
        *trainable = (size_t)w.trainable;
    return ODL_OK;
}

/* Shape of tensor t (1..n_layers) by walking the nodes before it. */
static odl_status tensor_shape(const odl_model_desc *d, int32_t t, odl_layer_shape *out, odl_diag *diag)
{
    odl_model_desc prefix = *d;
    prefix.n_layers = t;
    walk_st w;
    walk_init(&w, &prefix, NULL, NULL, diag);
    odl_status s = walk_run(&w);
    if (s == ODL_OK)
        *out = w.out;
    return s;
}
odl_status odl_desc_tail(odl_model_desc *dst, const odl_model_desc *src, int32_t boundary, odl_diag *diag)
{
    odl_status s = check_header(src, diag);
    if (s != ODL_OK)
        return s;
    if (!dst || boundary < 0 || boundary >= src->n_layers)
        return odl_fail(diag, ODL_ERR_ARG, "desc_tail: boundary %d out of range 0..%d", (int)boundary,
                        (int)src->n_layers - 1);
    if (!odl_desc_is_cut(src, boundary))
        return odl_fail(diag, ODL_ERR_ARG,
                        "desc_tail: tensor %d is not a cut point (a node after it reads an earlier tensor)",
                        (int)boundary);
    const int32_t n = src->n_layers - boundary;
    if (!dst->layers || dst->cap_layers < n)
        return odl_fail(diag, ODL_ERR_NOMEM, "desc_tail: %d nodes do not fit the destination's room for %d", (int)n,
                        (int)dst->cap_layers);
    odl_layer_shape in = input_shape(src);
    if (boundary > 0 && (s = tensor_shape(src, boundary, &in, diag)) != ODL_OK)
        return s;
    const int softmax = src->softmax_output;
    /* dst may be src itself: nodes move down, so a forward copy is safe */
    for (int32_t i = 0; i < n; i++) {
        odl_node_desc l = src->layers[boundary + i];
        for (int32_t k = 0; k < l.n_in && k < ODL_NODE_MAX_IN; k++)
            l.in[k] -= boundary;
        dst->layers[i] = l;
    }
    dst->n_layers = n;
    dst->in_c = in.c;
    dst->in_h = in.h;
    dst->in_w = in.w;
    dst->softmax_output = softmax;
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

static odl_window_dims window_dims(const odl_node_desc *l, const odl_layer_shape *in, const odl_layer_shape *out,
                                   int32_t batch)
{
    odl_window_dims w = odl_window_dims_simple(batch, in->c, in->h, in->w, out->c, out->h, out->w, l->k_h, l->k_w,
                                               l->stride_h, l->stride_w, l->pad_t, l->pad_l);
    w.pad_b = l->pad_b;
    w.pad_r = l->pad_r;
    w.dil_h = l->dil_h;
    w.dil_w = l->dil_w;
    w.groups = l->type == ODL_LAYER_CONV2D ? l->groups : 1;
    w.flags = (uint32_t)l->flags;
    return w;
}

/* Lays the model out in `a`; m == NULL (with a counting arena) only counts.
 * Order: bookkeeping, then each node's parameters as the walk meets them,
 * then the activation, gradient and scratch regions the walk sized. */
static odl_status build(odl_model *m, const odl_model_desc *desc, const odl_model_cfg *cfg, odl_arena *a,
                        odl_diag *diag, odl_act_stats *stats)
{
    odl_status s = check_header(desc, diag);
    if (s != ODL_OK)
        return s;
    void *p;
#define ALLOC(target, bytes, kind)                         \
    do {                                                   \
        s = odl_arena_alloc(a, (bytes), (kind), &p, diag); \
        if (s != ODL_OK)                                   \
            return s;                                      \
        if (m)                                             \
            target = p;                                    \
    } while (0)
    const int32_t L = desc->n_layers;
    const size_t B = (size_t)cfg->max_batch;
    const int train = cfg->mode == ODL_MODE_TRAIN;
    ALLOC(m->desc.layers, (size_t)L * sizeof(odl_node_desc), ODL_MEM_STATE);
    ALLOC(m->rt, (size_t)L * sizeof(odl_layer_rt), ODL_MEM_STATE);
    ALLOC(m->tens, (size_t)(L + 1) * sizeof(odl_tensor_rt), ODL_MEM_STATE);
    ALLOC(m->cut, (size_t)(L + 1), ODL_MEM_STATE);
    walk_st w;
    walk_init(&w, desc, cfg, NULL, diag);
    w.m = m;
    w.a = a;
    if (m) {
        memcpy(m->desc.layers, desc->layers, (size_t)L * sizeof(odl_node_desc));
        m->desc.in_c = desc->in_c;
        m->desc.in_h = desc->in_h;
        m->desc.in_w = desc->in_w;
        m->desc.n_layers = L;
        m->desc.cap_layers = L;
        m->desc.softmax_output = desc->softmax_output;
        m->cfg = *cfg;
        m->in_shape = input_shape(desc);
        m->first_bw = w.fb;
        m->train_n = -1;
        m->train_from = -1;
        m->params_ready = 1; /* cleared by the walk for in-place layers until they are set */
        /* cut points in one pass: t is a cut when every node from t on reads tensors >= t */
        int32_t lowest = L;
        for (int32_t t = L; t >= 0; t--) {
            if (t < L) {
                const odl_node_desc *l = &desc->layers[t];
                for (int32_t k = 0; k < l->n_in && k < ODL_NODE_MAX_IN; k++)
                    if (l->in[k] < lowest)
                        lowest = l->in[k];
            }
            m->cut[t] = (uint8_t)(lowest >= t);
        }
    }
    if ((s = walk_run(&w)) != ODL_OK)
        return s;
    float *kept = NULL, *trans = NULL, *grads = NULL;
    if (w.kept)
        ALLOC(kept, w.kept, ODL_MEM_ACTIVATIONS);
    if (w.trans_peak)
        ALLOC(trans, w.trans_peak, ODL_MEM_SCRATCH);
    if (w.grad_peak)
        ALLOC(grads, w.grad_peak, ODL_MEM_SCRATCH);
    if (w.tmp)
        ALLOC(m->gtmp, w.tmp, ODL_MEM_SCRATCH);
    if (train && w.fb < L)
        ALLOC(m->dlogits, FLOATS(w.out.size * B), ODL_MEM_SCRATCH);
    if (w.conv_scratch)
        ALLOC(m->conv_scratch, FLOATS(w.conv_scratch), ODL_MEM_SCRATCH);
    if (w.adapter_r) {
        ALLOC(m->adapter_h, FLOATS(w.adapter_r * B), ODL_MEM_SCRATCH);
        if (train && w.fb < L)
            ALLOC(m->adapter_dh, FLOATS(w.adapter_r * B), ODL_MEM_SCRATCH);
    }
#undef ALLOC
    if (stats) {
        stats->peak = w.kept + w.trans_peak;
        stats->naive_sum = w.naive;
        stats->lower_bound = w.lower;
    }
    if (m) {
        for (int32_t t = 0; t <= L; t++) {
            odl_tensor_rt *tr = &m->tens[t];
            tr->data = tr->region == REG_KEPT ? (float *)(void *)((uint8_t *)kept + tr->off)
                       : tr->region == REG_TRANS ? (float *)(void *)((uint8_t *)trans + tr->off)
                                                 : NULL;
            /* a view of a kept tensor: a run starting at it copies its input there */
            if (tr->region == REG_ALIAS && tr->froot >= 0 && m->tens[tr->froot].region == REG_KEPT)
                tr->data = m->tens[tr->froot].data;
            tr->grad = tr->groot == t ? (float *)(void *)((uint8_t *)grads + tr->goff)
                       : tr->groot >= 0 ? m->tens[tr->groot].grad
                                        : NULL;
            tr->cur = tr->data;
        }
    }
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

static odl_status plan_with(const odl_model_desc *desc, const odl_model_cfg *cfg, odl_mem_plan *plan,
                            odl_act_stats *stats, odl_diag *diag)
{
    odl_status s = check_cfg(cfg, diag);
    if (s != ODL_OK)
        return s;
    odl_arena a;
    void *p;
    odl_arena_init_counting(&a);
    s = odl_arena_alloc(&a, sizeof(odl_model), ODL_MEM_STATE, &p, diag);
    if (s == ODL_OK)
        s = build(NULL, desc, cfg, &a, diag, stats);
    if (s != ODL_OK)
        return s;
    if (plan)
        *plan = a.plan;
    return ODL_OK;
}

odl_status odl_model_plan(const odl_model_desc *desc, const odl_model_cfg *cfg, odl_mem_plan *plan,
                          odl_diag *diag)
{
    if (!plan)
        return odl_fail(diag, ODL_ERR_ARG, "odl_model_plan: plan must not be NULL");
    return plan_with(desc, cfg, plan, NULL, diag);
}

odl_status odl_model_plan_activations(const odl_model_desc *desc, const odl_model_cfg *cfg, odl_act_stats *stats,
                                      odl_diag *diag)
{
    if (!stats)
        return odl_fail(diag, ODL_ERR_ARG, "odl_model_plan_activations: stats must not be NULL");
    return plan_with(desc, cfg, NULL, stats, diag);
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
    s = build(m, desc, cfg, arena, diag, NULL);
    if (s != ODL_OK)
        return s;
    *out = m;
    return ODL_OK;
}

/* Shape of tensor t of a built model. */
static const odl_layer_shape *tshape(const odl_model *m, int32_t t)
{
    return t == 0 ? &m->in_shape : &m->rt[t - 1].out;
}

odl_status odl_model_init_params(odl_model *m, odl_rng *rng)
{
    return odl_model_init_params_as(m, rng, ODL_INIT_HE);
}

odl_status odl_model_init_params_as(odl_model *m, odl_rng *rng, odl_init_kind kind)
{
    if (!m || !rng || (kind != ODL_INIT_HE && kind != ODL_INIT_TORCH))
        return ODL_ERR_ARG;
    const int32_t L = m->desc.n_layers;
    for (int32_t i = 0; i < L; i++) {
        odl_layer_rt *rt = &m->rt[i];
        const odl_node_desc *l = &m->desc.layers[i];
        if (!has_params(l->type) || rt->external)
            continue;
        if (l->type == ODL_LAYER_ADAPTER) {
            /* W_down He-uniform (a ReLU follows), W_up and biases zero: identity */
            const size_t D = rt->in.size, r = (size_t)l->units;
            const float bound = sqrtf(6.0f / (float)D);
            for (size_t k = 0; k < r * D; k++)
                rt->w[k] = (2.0f * odl_rng_uniform(rng) - 1.0f) * bound;
            memset(rt->w + r * D, 0, FLOATS(r * D));
            memset(rt->b, 0, FLOATS(rt->n_b));
            continue;
        }
        if (l->type == ODL_LAYER_BATCHNORM) { /* the identity, as a fresh batch norm */
            for (size_t k = 0; k < rt->n_w; k++)
                rt->w[k] = 1.0f;
            memset(rt->b, 0, FLOATS(rt->n_b));
            continue;
        }
        size_t fan_in = rt->n_w / rt->n_b;
        const odl_node_desc *nx = i + 1 < L ? &m->desc.layers[i + 1] : NULL;
        int relu_next = kind == ODL_INIT_HE && nx && (nx->type == ODL_LAYER_RELU || nx->type == ODL_LAYER_RELU6) &&
                        nx->in[0] == i + 1;
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
    if (!m->cut[from])
        return odl_fail(diag, ODL_ERR_ARG,
                        "forward: cannot start at tensor %d: it is not a cut point (a layer after it also reads an "
                        "earlier tensor); start at a cut point such as the freeze boundary",
                        (int)from);
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

/* One node forward into y (flags: ODL_FUSE_RELU for conv2d/dense). */
static void node_forward(odl_model *m, int32_t i, float *y, int32_t n, odl_rng *train_rng, unsigned flags)
{
    const odl_node_desc *l = &m->desc.layers[i];
    odl_layer_rt *rt = &m->rt[i];
    const float *x = m->tens[l->in[0]].cur;
    const size_t total = rt->out.size * (size_t)n;
    switch (l->type) {
    case ODL_LAYER_DENSE: {
        odl_dense_dims d = {n, (int32_t)rt->in.size, (int32_t)rt->out.size};
        odl_dense_forward_f32_ex(&d, x, rt->w, rt->b, y, flags);
        return;
    }
    case ODL_LAYER_CONV2D: {
        odl_window_dims d = window_dims(l, &rt->in, &rt->out, n);
        odl_conv2d_forward_f32_ex(&d, x, rt->w, rt->b, y, m->conv_scratch, flags);
        return;
    }
    case ODL_LAYER_DEPTHWISE: {
        odl_window_dims d = window_dims(l, &rt->in, &rt->out, n);
        odl_depthwise_forward_f32(&d, x, rt->w, rt->b, y);
        return;
    }
    case ODL_LAYER_MAXPOOL: {
        odl_window_dims d = window_dims(l, &rt->in, &rt->out, n);
        odl_maxpool_forward_f32(&d, x, y);
        return;
    }
    case ODL_LAYER_AVGPOOL: {
        odl_window_dims d = window_dims(l, &rt->in, &rt->out, n);
        odl_avgpool_forward_f32(&d, x, y);
        return;
    }
    case ODL_LAYER_GAP:
        odl_gap_forward_f32(n, rt->in.c, rt->in.h * rt->in.w, x, y);
        return;
    case ODL_LAYER_RELU:
        odl_relu_forward_f32(total, x, y);
        return;
    case ODL_LAYER_RELU6:
        odl_relu6_forward_f32(total, x, y);
        return;
    case ODL_LAYER_CLIP:
    case ODL_LAYER_LEAKY_RELU:
    case ODL_LAYER_SIGMOID:
    case ODL_LAYER_HARD_SIGMOID:
    case ODL_LAYER_HARD_SWISH:
    case ODL_LAYER_TANH:
        odl_act_forward_f32(l->type, l->alpha, l->beta, total, x, y);
        return;
    case ODL_LAYER_BATCHNORM:
        odl_affine_forward_f32(n, rt->in.c, rt->in.h * rt->in.w, x, rt->w, rt->b, y);
        return;
    case ODL_LAYER_ADD:
    case ODL_LAYER_MUL: {
        const odl_layer_shape *bs = tshape(m, l->in[1]);
        const float *b = m->tens[l->in[1]].cur;
        const int32_t hw = rt->in.h * rt->in.w, b_hw = bs->h * bs->w;
        if (l->type == ODL_LAYER_ADD)
            odl_add_forward_f32(n, rt->in.c, hw, x, b, bs->c, b_hw, y);
        else
            odl_mul_forward_f32(n, rt->in.c, hw, x, b, bs->c, b_hw, y);
        return;
    }
    case ODL_LAYER_CONCAT: {
        const float *xs[ODL_NODE_MAX_IN];
        int32_t cs[ODL_NODE_MAX_IN];
        for (int32_t k = 0; k < l->n_in; k++) {
            xs[k] = m->tens[l->in[k]].cur;
            cs[k] = tshape(m, l->in[k])->c;
        }
        odl_concat_forward_f32(n, l->n_in, xs, cs, rt->out.h * rt->out.w, y);
        return;
    }
    case ODL_LAYER_PAD: {
        odl_window_dims d = window_dims(l, &rt->in, &rt->out, n);
        odl_pad_forward_f32(&d, l->alpha, x, y);
        return;
    }
    case ODL_LAYER_ADAPTER: {
        const int32_t D = (int32_t)rt->in.size, r = l->units;
        odl_dense_dims down = {n, D, r}, up = {n, r, D};
        odl_dense_forward_f32_ex(&down, x, rt->w, rt->b, m->adapter_h, ODL_FUSE_RELU);
        odl_dense_forward_f32(&up, m->adapter_h, rt->w + (size_t)r * D, rt->b + r, y);
        for (size_t k = 0; k < total; k++)
            y[k] += x[k];
        return;
    }
    case ODL_LAYER_DROPOUT:
        if (train_rng) {
            rt->dropout_rng = *train_rng;
            odl_dropout_forward_f32(total, l->alpha, train_rng, x, y);
            return;
        }
        if (y != x)
            memcpy(y, x, FLOATS(total));
        return;
    case ODL_LAYER_FLATTEN:
    case ODL_LAYER_RESHAPE: /* stored apart from its input (kept for backward): a copy */
        if (y != x)
            memcpy(y, x, FLOATS(total));
        return;
    }
}

/* Runs nodes [from, to) on x; returns tensor `to`. A tensor `to` that is
 * never stored (a conv whose ReLU is fused) is written to `spill`. */
static const float *run(odl_model *m, int32_t from, int32_t to, const float *x, int32_t n, odl_rng *train_rng,
                        float *spill)
{
    odl_tensor_rt *tens = m->tens;
    odl_tensor_rt *t0 = &tens[from];
    if (t0->data && (t0->region == REG_KEPT || t0->region == REG_ALIAS)) {
        /* the input of a trainable stretch is kept for backward (a view's, in its source's place) */
        if (t0->data != x)
            memcpy(t0->data, x, FLOATS(tshape(m, from)->size * (size_t)n));
        t0->cur = t0->data;
    } else {
        t0->cur = x;
    }
    for (int32_t i = from; i < to; i++) {
        const odl_layer_rt *rt = &m->rt[i];
        odl_tensor_rt *o = &tens[i + 1];
        if (o->region == REG_ALIAS) {
            o->cur = tens[m->desc.layers[i].in[0]].cur;
            continue;
        }
        if (rt->fused && i + 1 < to) {
            /* the conv2d/dense + ReLU pair runs as one node writing the ReLU's tensor */
            odl_tensor_rt *r = &tens[i + 2];
            node_forward(m, i, r->data, n, train_rng, ODL_FUSE_RELU);
            r->cur = r->data;
            i++;
            if (m->observe)
                m->observe(m->observe_ctx, i + 1, r->cur, m->rt[i].out.size * (size_t)n);
            continue;
        }
        float *y = o->data ? o->data : spill;
        node_forward(m, i, y, n, train_rng, 0u);
        o->cur = y;
        if (m->observe)
            m->observe(m->observe_ctx, i + 1, o->cur, rt->out.size * (size_t)n);
    }
    return tens[to].cur;
}

odl_status odl_model_forward(odl_model *m, int32_t from, const float *x, int32_t n, const float **out,
                             odl_diag *diag)
{
    odl_status s = check_call(m, from, x, n, diag);
    if (s != ODL_OK)
        return s;
    if (!out)
        return odl_fail(diag, ODL_ERR_ARG, "forward: out must not be NULL");
    *out = run(m, from, m->desc.n_layers, x, n, NULL, NULL);
    m->train_n = -1; /* a plain forward may overwrite what backward needs */
    return ODL_OK;
}

odl_status odl_model_forward_range(odl_model *m, int32_t from, int32_t to, const float *x, int32_t n, float *y,
                                   odl_diag *diag)
{
    odl_status s = check_call(m, from, x, n, diag);
    if (s != ODL_OK)
        return s;
    if (to <= from || to > m->desc.n_layers || !y)
        return odl_fail(diag, ODL_ERR_ARG, "forward_range: end layer %d must be in %d..%d", (int)to,
                        (int)from + 1, (int)m->desc.n_layers);
    const float *out = run(m, from, to, x, n, NULL, y);
    if (out != y)
        memmove(y, out, FLOATS(m->rt[to - 1].out.size * (size_t)n));
    m->train_n = -1;
    return ODL_OK;
}

odl_status odl_model_forward_observe(odl_model *m, int32_t to, const float *x, int32_t n, float *spill,
                                     odl_tensor_observer cb, void *ctx, odl_diag *diag)
{
    odl_status s = check_call(m, 0, x, n, diag);
    if (s != ODL_OK)
        return s;
    if (to < 1 || to > m->desc.n_layers || !cb || !spill)
        return odl_fail(diag, ODL_ERR_ARG, "forward_observe: end layer %d must be in 1..%d (callback and spill given)",
                        (int)to, (int)m->desc.n_layers);
    m->observe = cb;
    m->observe_ctx = ctx;
    cb(ctx, 0, x, m->in_shape.size * (size_t)n);
    run(m, 0, to, x, n, NULL, spill);
    m->observe = NULL;
    m->observe_ctx = NULL;
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
    if (!rng || !logits)
        return odl_fail(diag, ODL_ERR_ARG, "forward_train needs an RNG (dropout) and a logits pointer");
    *logits = run(m, from, m->desc.n_layers, x, n, rng, NULL);
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
    odl_tensor_rt *tens = m->tens;
    /* Every node in [lo, L) runs its backward once, so the dense, conv2d and
     * adapter kernels overwrite dw/db (ODL_GRAD_OVERWRITE) instead of
     * accumulating into zeroed buffers; depthwise and batch norm accumulate. */
    for (int32_t i = lo; i < L; i++) {
        odl_layer_rt *rt = &m->rt[i];
        const int32_t type = m->desc.layers[i].type;
        if (rt->dw && (type == ODL_LAYER_DEPTHWISE || type == ODL_LAYER_BATCHNORM)) {
            memset(rt->dw, 0, FLOATS(rt->n_w));
            memset(rt->db, 0, FLOATS(rt->n_b));
        }
    }
    int relu_done = 0; /* the next node (a ReLU) had its backward done by the max pool after it */
    for (int32_t i = L - 1; i >= lo; i--) {
        const odl_node_desc *l = &m->desc.layers[i];
        odl_layer_rt *rt = &m->rt[i];
        if (relu_done) {
            relu_done = 0;
            continue;
        }
        const float *g = i + 1 == L ? dlogits : tens[i + 1].grad;
        const float *x = tens[l->in[0]].cur;
        const float *y = tens[i + 1].cur;
        const size_t total = rt->out.size * (size_t)n;
        /* where each input's gradient goes: its own buffer for the first
         * writer, else a scratch added to it afterwards */
        float *dxs[ODL_NODE_MAX_IN];
        int adds = 0;
        size_t toff = 0;
        for (int32_t k = 0; k < l->n_in; k++) {
            const int32_t t = l->in[k];
            dxs[k] = NULL;
            if (t <= lo)
                continue;
            if (rt->first & (1u << k)) {
                dxs[k] = tens[t].grad;
            } else {
                dxs[k] = (float *)(void *)((uint8_t *)m->gtmp + toff);
                toff += ALIGN_UP(FLOATS(tshape(m, t)->size * (size_t)n)); /* planned at max_batch >= n */
                adds = 1;
            }
        }
        float *dx = dxs[0];
        switch (l->type) {
        case ODL_LAYER_DENSE: {
            odl_dense_dims d = {n, (int32_t)rt->in.size, (int32_t)rt->out.size};
            odl_dense_backward_f32_ex(&d, x, rt->w, g, dx, rt->dw, rt->db, ODL_GRAD_OVERWRITE);
            break;
        }
        case ODL_LAYER_CONV2D: {
            odl_window_dims d = window_dims(l, &rt->in, &rt->out, n);
            odl_conv2d_backward_f32_ex(&d, x, rt->w, g, dx, rt->dw, rt->db, m->conv_scratch, ODL_GRAD_OVERWRITE);
            break;
        }
        case ODL_LAYER_DEPTHWISE: {
            odl_window_dims d = window_dims(l, &rt->in, &rt->out, n);
            odl_depthwise_backward_f32(&d, x, rt->w, g, dx, rt->dw, rt->db);
            break;
        }
        case ODL_LAYER_MAXPOOL: {
            odl_window_dims d = window_dims(l, &rt->in, &rt->out, n);
            if (rt->pool_relu && i - 1 >= lo) {
                /* the ReLU before (x is its output) is done here too: its
                 * input's gradient is written directly */
                const odl_node_desc *r = &m->desc.layers[i - 1];
                const int32_t t = r->in[0];
                relu_done = 1;
                if (t <= lo || i - 1 == lo)
                    break; /* nobody needs the ReLU's input gradient */
                const int first = (m->rt[i - 1].first & 1u) != 0;
                float *target = first ? tens[t].grad : m->gtmp;
                odl_maxpool_backward_f32_ex(&d, x, g, target, ODL_FUSE_RELU);
                if (!first)
                    odl_accumulate_f32(tshape(m, t)->size * (size_t)n, m->gtmp, tens[t].grad);
                adds = 0;
            } else if (dx) {
                odl_maxpool_backward_f32_ex(&d, x, g, dx, 0u);
            }
            break;
        }
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
            if (dx)
                odl_relu_backward_f32(total, y, g, dx);
            break;
        case ODL_LAYER_RELU6:
            if (dx)
                odl_relu6_backward_f32(total, y, g, dx);
            break;
        case ODL_LAYER_CLIP:
        case ODL_LAYER_LEAKY_RELU:
        case ODL_LAYER_SIGMOID:
        case ODL_LAYER_HARD_SIGMOID:
        case ODL_LAYER_HARD_SWISH:
        case ODL_LAYER_TANH:
            if (dx)
                odl_act_backward_f32(l->type, l->alpha, l->beta, total, x, y, g, dx);
            break;
        case ODL_LAYER_BATCHNORM:
            if (dx || rt->dw)
                odl_affine_backward_f32(n, rt->in.c, rt->in.h * rt->in.w, x, rt->w, g, dx, rt->dw, rt->db);
            break;
        case ODL_LAYER_ADD:
        case ODL_LAYER_MUL: {
            const odl_layer_shape *bs = tshape(m, l->in[1]);
            const int32_t hw = rt->in.h * rt->in.w, b_hw = bs->h * bs->w;
            if (!dxs[0] && !dxs[1])
                break;
            if (l->type == ODL_LAYER_ADD)
                odl_add_backward_f32(n, rt->in.c, hw, bs->c, b_hw, g, dxs[0], dxs[1]);
            else
                odl_mul_backward_f32(n, rt->in.c, hw, x, tens[l->in[1]].cur, bs->c, b_hw, g, dxs[0], dxs[1]);
            break;
        }
        case ODL_LAYER_CONCAT: {
            int32_t cs[ODL_NODE_MAX_IN];
            int any = 0;
            for (int32_t k = 0; k < l->n_in; k++) {
                cs[k] = tshape(m, l->in[k])->c;
                any |= dxs[k] != NULL;
            }
            if (any)
                odl_concat_backward_f32(n, l->n_in, cs, rt->out.h * rt->out.w, g, dxs);
            break;
        }
        case ODL_LAYER_PAD:
            if (dx) {
                odl_window_dims d = window_dims(l, &rt->in, &rt->out, n);
                odl_pad_backward_f32(&d, g, dx);
            }
            break;
        case ODL_LAYER_FLATTEN:
        case ODL_LAYER_RESHAPE:
            if (dx && dx != g) /* same floats, new shape: usually the same buffer */
                memcpy(dx, g, FLOATS(total));
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
                odl_dropout_backward_f32(total, l->alpha, &rt->dropout_rng, g, dx);
            break;
        }
        if (adds)
            for (int32_t k = 0; k < l->n_in; k++)
                if (dxs[k] && !(rt->first & (1u << k)))
                    odl_accumulate_f32(tshape(m, l->in[k])->size * (size_t)n, dxs[k], tens[l->in[k]].grad);
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
        const odl_node_desc *la = &src->desc.layers[i], *lb = &dst->desc.layers[i];
        int wired = la->n_in == lb->n_in;
        for (int32_t k = 0; wired && k < la->n_in; k++)
            wired = la->in[k] == lb->in[k];
        if (la->type != type || a->in.size != b->in.size || !wired)
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
