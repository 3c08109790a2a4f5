/* odl/model.h — graph models: description, memory plan, init, forward,
 * training steps.
 *
 * Life of a model:
 *   odl_node_desc nodes[ODL_EDGE_CNN_NODES];
 *   odl_model_desc desc;                 // what the nodes are (plain data)
 *   odl_desc_init(&desc, nodes, ODL_EDGE_CNN_NODES, 1, 28, 28);
 *   odl_desc_edge_cnn(&desc, 1, 28, 28, 10);
 *   odl_model_cfg cfg = odl_model_cfg_defaults();
 *   odl_mem_plan plan;
 *   odl_model_plan(&desc, &cfg, &plan, &diag);   // exact bytes, nothing allocated
 *   odl_arena_init(&arena, buf, plan.total);
 *   odl_model *m;
 *   odl_model_init(&m, &desc, &cfg, &arena, &diag); // everything, the handle too, from the arena
 *
 * The freeze boundary: nodes whose `trainable` flag is 0 get no gradient
 * and no optimizer state; nodes before the boundary (a cut point) keep no
 * activations for backward: their tensors share reused offsets planned from
 * each tensor's lifetime. */
#ifndef ODL_MODEL_H
#define ODL_MODEL_H

#include <stddef.h>
#include <stdint.h>
#include "odl/status.h"
#include "odl/arena.h"
#include "odl/rng.h"
#include "odl/optim.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A model is a directed acyclic graph of nodes over tensors, kept in
 * topological order. Tensor 0 is the model's input; node i produces exactly
 * one tensor, number i + 1, and reads tensors numbered below i + 1. A
 * sequential model is the case where node i reads tensor i. There is no
 * fixed cap on the number of nodes: the caller gives the description its
 * node storage (odl_desc_init), and a model copies its nodes into its arena.
 *
 * "Layer i" in the rest of the API is node i: parameters, shapes and the
 * freeze boundary are indexed by node. */

#define ODL_NODE_MAX_IN 8 /* inputs of one node (concat's operands) */

typedef enum odl_layer_type {
    ODL_LAYER_DENSE = 1,      /* y = x W^T + b on the flattened input */
    ODL_LAYER_CONV2D = 2,     /* groups (1 = full, in_c = depthwise), dilation, asymmetric padding */
    ODL_LAYER_DEPTHWISE = 3,  /* conv with groups = in_c and `units` outputs per input channel */
    ODL_LAYER_MAXPOOL = 4,    /* flags: ODL_NODE_CEIL_MODE */
    ODL_LAYER_AVGPOOL = 5,    /* flags: ODL_NODE_CEIL_MODE, ODL_NODE_COUNT_PAD */
    ODL_LAYER_GAP = 6,        /* global average pool (mean over H x W): c x 1 x 1 */
    ODL_LAYER_RELU = 7,
    ODL_LAYER_RELU6 = 8,
    ODL_LAYER_FLATTEN = 9,    /* c*h*w x 1 x 1 (the same floats) */
    ODL_LAYER_DROPOUT = 10,   /* alpha = rate; identity outside training */
    /* Residual bottleneck adapter on the flattened input (size D), units = r:
     * y = x + W_up·relu(W_down·x + b_down) + b_up. Parameters are stored as
     * w = [W_down (r×D) | W_up (D×r)], b = [b_down (r) | b_up (D)]. W_up and
     * the biases start at zero, so inserting an adapter changes nothing. */
    ODL_LAYER_ADAPTER = 11,
    /* Inference-form batch norm, a per-channel affine: y = x·w[c] + b[c]
     * (w = gamma/sqrt(var+eps), b = beta - mean·w, computed at import).
     * Folded into the producing conv/dense when frozen and sole consumer;
     * trainable (w and b) in a trainable part. */
    ODL_LAYER_BATCHNORM = 12,
    ODL_LAYER_CLIP = 13,      /* y = min(max(x, alpha), beta) */
    ODL_LAYER_LEAKY_RELU = 14,/* y = x > 0 ? x : alpha·x */
    ODL_LAYER_SIGMOID = 15,
    ODL_LAYER_HARD_SIGMOID = 16, /* y = max(0, min(1, alpha·x + beta)) (ONNX: alpha 0.2, beta 0.5; PyTorch 1/6, 1/2) */
    ODL_LAYER_HARD_SWISH = 17,   /* y = x·relu6(x + 3)/6 */
    ODL_LAYER_TANH = 18,
    ODL_LAYER_ADD = 19,       /* in[0] + in[1]; in[1] is c x h x w like in[0], or c x 1 x 1, or 1 x 1 x 1 (broadcast) */
    ODL_LAYER_MUL = 20,       /* in[0] * in[1], broadcasting as ADD (squeeze-and-excitation) */
    ODL_LAYER_CONCAT = 21,    /* along channels; all inputs share h x w */
    ODL_LAYER_RESHAPE = 22,   /* to shape_c x shape_h x shape_w (same count; reshape/squeeze/unsqueeze) */
    ODL_LAYER_PAD = 23        /* constant alpha around h and w: pad_t, pad_l, pad_b, pad_r */
} odl_layer_type;

/* Node flags. */
#define ODL_NODE_CEIL_MODE 1  /* pools: output size rounds up (the last window may start in the padding's reach) */
#define ODL_NODE_COUNT_PAD 2  /* avg pool: padded cells count in the divisor (count_include_pad) */

/* Static lower-case name ("dense", "conv2d", ...), "?" if unknown. */
const char *odl_layer_type_name(int32_t type);

typedef struct odl_node_desc {
    int32_t type;      /* odl_layer_type */
    int32_t trainable; /* 1: gets gradients and optimizer state */
    int32_t n_in;      /* 1..ODL_NODE_MAX_IN (2 for add/mul, >= 1 for concat, 1 otherwise) */
    int32_t in[ODL_NODE_MAX_IN]; /* tensor numbers read, each below this node's own (index + 1) */
    int32_t units;     /* dense: outputs; conv2d: output channels; depthwise: multiplier; adapter: bottleneck */
    int32_t groups;    /* conv2d: groups (in_c and units divisible by it); 1 otherwise */
    int32_t k_h, k_w, stride_h, stride_w;
    int32_t pad_t, pad_l, pad_b, pad_r; /* window ops and pad: top, left, bottom, right */
    int32_t dil_h, dil_w; /* conv2d/depthwise dilation (1 = none) */
    int32_t flags;     /* ODL_NODE_* */
    int32_t shape_c, shape_h, shape_w; /* reshape target */
    float alpha, beta; /* dropout rate; clip min/max; leaky slope; hard-sigmoid alpha/beta; pad value */
} odl_node_desc;

typedef struct odl_model_desc {
    int32_t in_c, in_h, in_w; /* input shape of one sample */
    int32_t n_layers;         /* nodes in use */
    int32_t cap_layers;       /* room in `layers` */
    /* 1: the graph's last node is followed by a softmax. Training and the
     * learner use the logits; predictions can apply it (odl predict --softmax). */
    int32_t softmax_output;
    odl_node_desc *layers;    /* caller's storage (odl_desc_init), or the model's arena */
} odl_model_desc;

/* A plain struct, so descriptions are copied with odl_desc_copy (which copies
 * the nodes into the destination's storage), never by assignment (which
 * would share them). */

/* Starts an empty description over `storage` (room for `capacity` nodes). */
odl_status odl_desc_init(odl_model_desc *d, odl_node_desc *storage, int32_t capacity,
                         int32_t c, int32_t h, int32_t w);
/* Copies src's shape, flags and nodes into dst's storage (set up by
 * odl_desc_init); ODL_ERR_NOMEM with a message if it is too small. */
odl_status odl_desc_copy(odl_model_desc *dst, const odl_model_desc *src, odl_diag *diag);
/* dst = the nodes of src from cut point `boundary` on, as a model of its own
 * whose input is src's tensor `boundary` (tensor t becomes t - boundary). */
odl_status odl_desc_tail(odl_model_desc *dst, const odl_model_desc *src, int32_t boundary, odl_diag *diag);

/* Builders: append a node reading the last tensor (trainable by default).
 * ODL_ERR_ARG when the storage is full or a value is out of range. */
odl_status odl_desc_dense(odl_model_desc *d, int32_t units);
odl_status odl_desc_conv2d(odl_model_desc *d, int32_t out_c, int32_t k, int32_t stride, int32_t pad);
odl_status odl_desc_depthwise(odl_model_desc *d, int32_t mult, int32_t k, int32_t stride, int32_t pad);
odl_status odl_desc_maxpool(odl_model_desc *d, int32_t k, int32_t stride);
odl_status odl_desc_avgpool(odl_model_desc *d, int32_t k, int32_t stride);
odl_status odl_desc_gap(odl_model_desc *d);
odl_status odl_desc_relu(odl_model_desc *d);
odl_status odl_desc_relu6(odl_model_desc *d);
odl_status odl_desc_flatten(odl_model_desc *d);
odl_status odl_desc_dropout(odl_model_desc *d, float rate);
odl_status odl_desc_adapter(odl_model_desc *d, int32_t bottleneck);
/* Inserts an adapter (bottleneck r) before node `at` (a cut point,
 * 0..n_layers), renumbering the tensors after it. */
odl_status odl_desc_insert_adapter(odl_model_desc *d, int32_t at, int32_t bottleneck);
/* General builder: appends *node as given (its inputs included; trainable
 * as given). Returns the new tensor's number in *tensor (may be NULL). */
odl_status odl_desc_add_node(odl_model_desc *d, const odl_node_desc *node, int32_t *tensor);
/* A node with every field at its neutral value (groups, dilation, strides 1;
 * n_in 1 reading the last tensor). */
odl_node_desc odl_node_defaults(const odl_model_desc *d, int32_t type);

/* Node counts of the built-in architectures, to size storage. */
#define ODL_EDGE_CNN_NODES 10
#define ODL_MLP_NODES(n_hidden) (2 + 2 * (n_hidden))

/* The docs/protocol.md edge-cnn for a c×h×w input and n_classes outputs, on a
 * description set up by odl_desc_init (its nodes are replaced). */
odl_status odl_desc_edge_cnn(odl_model_desc *d, int32_t c, int32_t h, int32_t w, int32_t n_classes);
/* An MLP: flatten, then dense+ReLU for each hidden width, then dense n_classes
 * (storage as for edge-cnn). */
odl_status odl_desc_mlp(odl_model_desc *d, int32_t c, int32_t h, int32_t w,
                        const int32_t *hidden, int32_t n_hidden, int32_t n_classes);

/* Cut points: tensor t (0..n_layers) is a cut when no node at index t or
 * later reads a tensor below t, so everything after it depends on the input
 * only through it. Tensor 0 and the last tensor always are; in a sequential
 * model every tensor is. */
int odl_desc_is_cut(const odl_model_desc *d, int32_t t);
/* The freeze boundary that unfreezes the last k parameterised nodes: the
 * latest cut point at or before the k-th parameterised node counted back
 * from the last node (k = 1: before the last dense layer, the usual head). */
odl_status odl_desc_boundary_for_unfreeze(const odl_model_desc *d, int32_t k, int32_t *boundary,
                                          odl_diag *diag);

/* Marks nodes [0, boundary) frozen and [boundary, n) trainable; boundary
 * must be a cut point. */
odl_status odl_desc_freeze_below(odl_model_desc *d, int32_t boundary);

/* Shape of a layer's output, per sample. */
typedef struct odl_layer_shape {
    int32_t c, h, w;
    size_t size;       /* c*h*w */
    size_t n_weights;  /* 0 for layers without parameters */
    size_t n_bias;
} odl_layer_shape;

/* Checks a description (every shape possible, types known, inputs in
 * topological order, sizes computed without overflow) and fills
 * shapes[0..n_layers-1] with each node's output shape. shapes must have room
 * for n_layers entries (a graph needs every shape to check the next). */
odl_status odl_desc_check(const odl_model_desc *d, odl_layer_shape *shapes, odl_diag *diag);

/* Parameters in total and in trainable layers (shapes: scratch of n_layers
 * entries, as for odl_desc_check). */
odl_status odl_desc_count_params(const odl_model_desc *d, odl_layer_shape *shapes,
                                 size_t *total, size_t *trainable);

typedef enum odl_model_mode {
    ODL_MODE_INFER = 0,  /* forward only; nothing kept for backward */
    ODL_MODE_TRAIN = 1   /* trainable layers get grads, optimizer state, stored activations */
} odl_model_mode;

typedef struct odl_model_cfg {
    odl_model_mode mode;
    int32_t max_batch;      /* largest batch passed to forward/train calls (default 1) */
    odl_optim_cfg optim;    /* train mode only (default Adam, lr 1e-3) */
    /* 1: frozen layers' weights are not copied into the arena but used in
     * place from the buffer given to odl_model_load (flash on an MCU). */
    int32_t frozen_weights_in_place;
} odl_model_cfg;

odl_model_cfg odl_model_cfg_defaults(void);

typedef struct odl_model odl_model;

/* Exact bytes odl_model_init will take for (desc, cfg), per kind. */
odl_status odl_model_plan(const odl_model_desc *desc, const odl_model_cfg *cfg,
                          odl_mem_plan *plan, odl_diag *diag);

/* The activation planner's figures for (desc, cfg), in bytes at max_batch:
 * every tensor gets a lifetime and the tensors are packed into reused
 * offsets. peak is what the model allocates for them; naive_sum is every
 * tensor at once; lower_bound is the largest set of tensors live at one
 * time, which no packing can beat. */
typedef struct odl_act_stats {
    size_t peak, naive_sum, lower_bound;
} odl_act_stats;
odl_status odl_model_plan_activations(const odl_model_desc *desc, const odl_model_cfg *cfg,
                                      odl_act_stats *stats, odl_diag *diag);

/* Builds the model in the arena (the handle included). Parameters are zero;
 * call odl_model_init_params or load them from a file. */
odl_status odl_model_init(odl_model **out, const odl_model_desc *desc,
                          const odl_model_cfg *cfg, odl_arena *arena, odl_diag *diag);

/* Checks d as odl_desc_check does and calls cb for every node in order with
 * the shapes of its inputs (ins[k] for in[k]) and of its output, holding
 * only the tensors still to be read (no storage of the caller's). A status
 * other than ODL_OK from cb stops the walk and is returned. */
typedef odl_status (*odl_node_visitor)(void *ctx, int32_t node, const odl_layer_shape *const *ins,
                                       const odl_layer_shape *out, odl_diag *diag);
odl_status odl_desc_visit(const odl_model_desc *d, odl_node_visitor cb, void *ctx, odl_diag *diag);

/* Where an executor of another element type (INT8) keeps each tensor of an
 * inference run of d at max_batch, by the same lifetime planner as the FP32
 * model, with values of elem_bytes (1, 2 or 4) bytes. slots: n_layers + 1
 * entries. With elem_bytes 1 a ReLU, ReLU6 or clip that is the only reader
 * of a conv2d, dense, depthwise or batch norm right before it is fused into
 * it (that tensor gets root -1), as INT8 kernels clamp on the way out. */
typedef struct odl_tensor_slot {
    size_t off;     /* offset in the activation region (stored tensors) */
    int32_t stored; /* 1: at off; 0: the caller's input, a view or never stored */
    int32_t root;   /* the tensor whose storage it is (itself, a view's source); -1: fused away */
} odl_tensor_slot;
odl_status odl_desc_plan_tensors(const odl_model_desc *d, int32_t max_batch, size_t elem_bytes,
                                 odl_tensor_slot *slots, size_t *peak, odl_diag *diag);

/* Initialises parameters: a layer followed by ReLU/ReLU6 gets He-uniform
 * weights (±sqrt(6/fan_in)) and zero biases; any other layer PyTorch's
 * default (weights and biases uniform in ±1/sqrt(fan_in)). He init lowers
 * edge-cnn's training loss after 3 epochs on every seed measured (see
 * docs/results.md). Layers with in-place (external) weights are skipped. */
odl_status odl_model_init_params(odl_model *m, odl_rng *rng);

typedef enum odl_init_kind {
    ODL_INIT_HE = 0,    /* the default above */
    ODL_INIT_TORCH = 1  /* PyTorch's default everywhere (±1/sqrt(fan_in) weights and biases) */
} odl_init_kind;
odl_status odl_model_init_params_as(odl_model *m, odl_rng *rng, odl_init_kind kind);

const odl_model_desc *odl_model_get_desc(const odl_model *m);
const odl_model_cfg *odl_model_get_cfg(const odl_model *m);
/* Output shape of layer i (i == -1: the input). */
odl_layer_shape odl_model_layer_shape(const odl_model *m, int32_t i);
int32_t odl_model_n_classes(const odl_model *m);
/* The cut point where backward starts: the latest cut at or before the first
 * trainable parameterised node (n_layers when none). */
int32_t odl_model_first_trainable(const odl_model *m);

/* Parameter access: weights (which = 0) or bias (which = 1) of layer i;
 * NULL with *n = 0 when the layer has none. */
float *odl_model_param(odl_model *m, int32_t layer, int which, size_t *n);
const float *odl_model_param_const(const odl_model *m, int32_t layer, int which, size_t *n);
/* Points a layer's parameter at external memory (in-place frozen weights). */
odl_status odl_model_set_param_external(odl_model *m, int32_t layer, int which,
                                        const float *data, size_t n, odl_diag *diag);

/* Runs nodes [from, n_layers) on n samples x (each tensor `from`, which must
 * be a cut point, so from = the freeze boundary runs a head on cached latents).
 * *out points at the logits (n × n_classes), valid until the next call.
 * Dropout is off. n ≤ max_batch. */
odl_status odl_model_forward(odl_model *m, int32_t from, const float *x, int32_t n,
                             const float **out, odl_diag *diag);

/* Runs nodes [from, to) (from a cut point) and copies tensor `to` (the output
 * of node to-1) into y (n × its size): the frozen base's latent when `to` is
 * the boundary. */
odl_status odl_model_forward_range(odl_model *m, int32_t from, int32_t to,
                                   const float *x, int32_t n, float *y, odl_diag *diag);

/* Runs nodes [0, to) on n samples and calls cb with every tensor a run
 * stores (tensor 0 included, in node order; a conv/dense whose ReLU is fused
 * is not seen, its ReLU's output is): calibration of INT8 ranges. spill
 * receives tensor `to` when the run keeps no storage for it (room for its
 * size × n floats). */
typedef void (*odl_tensor_observer)(void *ctx, int32_t tensor, const float *data, size_t count);
odl_status odl_model_forward_observe(odl_model *m, int32_t to, const float *x, int32_t n, float *spill,
                                     odl_tensor_observer cb, void *ctx, odl_diag *diag);

/* Training-step pieces, for strategies that add their own loss terms:
 * forward_train stores what backward needs (dropout on, drawing from rng);
 * backward takes d(loss)/d(logits) and leaves parameter gradients in the
 * model (zeroed at the start of each backward); step applies the optimizer
 * with per-layer learning-rate multipliers (lr_scale may be NULL: all 1). */
odl_status odl_model_forward_train(odl_model *m, int32_t from, const float *x, int32_t n,
                                   odl_rng *rng, const float **logits, odl_diag *diag);
odl_status odl_model_backward(odl_model *m, const float *dlogits, int32_t n, odl_diag *diag);
/* Gradient of a trainable layer's weights/bias after backward (NULL if frozen). */
float *odl_model_grad(odl_model *m, int32_t layer, int which, size_t *n);
odl_status odl_model_step(odl_model *m, const float *lr_scale, odl_diag *diag);

/* One whole step: forward, mean softmax cross-entropy, backward, optimizer. */
odl_status odl_model_train_step(odl_model *m, int32_t from, const float *x,
                                const int32_t *labels, int32_t n, odl_rng *rng,
                                float *loss, odl_diag *diag);

/* Copies parameters from src into dst, layer by layer. Layers must match
 * in type and shape, except that dst's LAST layer may be a dense layer with
 * more outputs (a head grown for new classes): its old rows and biases are
 * copied and the new rows drawn small, N(0, 0.01²), with zero biases.
 * Optimizer state is not copied (a fresh optimizer starts). */
odl_status odl_model_transfer_params(odl_model *dst, const odl_model *src, odl_rng *rng, odl_diag *diag);

/* Sets the number of outputs of the last (dense) node of a description. */
odl_status odl_desc_set_classes(odl_model_desc *d, int32_t n_classes);

/* Resets the optimizer (moments, step count): a new adaptation starts. */
void odl_model_reset_optimizer(odl_model *m);

/* Sets the learning rate of the optimizer (schedules). */
void odl_model_set_lr(odl_model *m, float lr);

#ifdef __cplusplus
}
#endif
#endif
