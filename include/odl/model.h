/* odl/model.h — sequential models: description, memory plan, init, forward,
 * training steps.
 *
 * Life of a model:
 *   odl_model_desc desc;                 // what the layers are (plain data)
 *   odl_model_cfg cfg = odl_model_cfg_defaults();
 *   odl_mem_plan plan;
 *   odl_model_plan(&desc, &cfg, &plan, &diag);   // exact bytes, nothing allocated
 *   odl_arena_init(&arena, buf, plan.total);
 *   odl_model *m;
 *   odl_model_init(&m, &desc, &cfg, &arena, &diag); // everything, the handle too, from the arena
 *
 * The freeze boundary: layers whose `trainable` flag is 0 get no gradient
 * and no optimizer state; layers before the first trainable one also keep no
 * activations for backward (they run through two reused scratch buffers). */
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

#define ODL_MAX_LAYERS 32

typedef enum odl_layer_type {
    ODL_LAYER_DENSE = 1,
    ODL_LAYER_CONV2D = 2,
    ODL_LAYER_DEPTHWISE = 3,
    ODL_LAYER_MAXPOOL = 4,
    ODL_LAYER_AVGPOOL = 5,
    ODL_LAYER_GAP = 6,
    ODL_LAYER_RELU = 7,
    ODL_LAYER_RELU6 = 8,
    ODL_LAYER_FLATTEN = 9,
    ODL_LAYER_DROPOUT = 10,
    /* Residual bottleneck adapter on the flattened input (size D), units = r:
     * y = x + W_up·relu(W_down·x + b_down) + b_up. Parameters are stored as
     * w = [W_down (r×D) | W_up (D×r)], b = [b_down (r) | b_up (D)]. W_up and
     * the biases start at zero, so inserting an adapter changes nothing. */
    ODL_LAYER_ADAPTER = 11
} odl_layer_type;

/* Static lower-case name ("dense", "conv2d", ...), "?" if unknown. */
const char *odl_layer_type_name(int32_t type);

typedef struct odl_layer_desc {
    int32_t type;      /* odl_layer_type */
    int32_t trainable; /* 1: gets gradients and optimizer state */
    int32_t units;     /* dense: outputs; conv2d: output channels; depthwise: multiplier */
    int32_t k_h, k_w, stride_h, stride_w, pad_h, pad_w; /* window ops */
    float rate;        /* dropout probability */
} odl_layer_desc;

typedef struct odl_model_desc {
    int32_t in_c, in_h, in_w; /* input shape of one sample */
    int32_t n_layers;
    odl_layer_desc layers[ODL_MAX_LAYERS];
} odl_model_desc;

/* Builders: append a layer (trainable by default). ODL_ERR_ARG when full or a
 * value is out of range. */
odl_status odl_desc_init(odl_model_desc *d, int32_t c, int32_t h, int32_t w);
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
/* Inserts an adapter (bottleneck r) before layer `at` (0..n_layers). */
odl_status odl_desc_insert_adapter(odl_model_desc *d, int32_t at, int32_t bottleneck);

/* The docs/protocol.md edge-cnn for a c×h×w input and n_classes outputs. */
odl_status odl_desc_edge_cnn(odl_model_desc *d, int32_t c, int32_t h, int32_t w, int32_t n_classes);
/* An MLP: flatten, then dense+ReLU for each hidden width, then dense n_classes. */
odl_status odl_desc_mlp(odl_model_desc *d, int32_t c, int32_t h, int32_t w,
                        const int32_t *hidden, int32_t n_hidden, int32_t n_classes);

/* Marks layers [0, boundary) frozen and [boundary, n) trainable. */
odl_status odl_desc_freeze_below(odl_model_desc *d, int32_t boundary);

/* Shape of a layer's output, per sample. */
typedef struct odl_layer_shape {
    int32_t c, h, w;
    size_t size;       /* c*h*w */
    size_t n_weights;  /* 0 for layers without parameters */
    size_t n_bias;
} odl_layer_shape;

/* Checks a description (every shape possible, types known) and fills
 * shapes[0..n_layers-1] with each layer's output shape (shapes may be NULL). */
odl_status odl_desc_check(const odl_model_desc *d, odl_layer_shape *shapes, odl_diag *diag);

/* Parameters in total and in trainable layers. */
odl_status odl_desc_count_params(const odl_model_desc *d, size_t *total, size_t *trainable);

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

/* Builds the model in the arena (the handle included). Parameters are zero;
 * call odl_model_init_params or load them from a file. */
odl_status odl_model_init(odl_model **out, const odl_model_desc *desc,
                          const odl_model_cfg *cfg, odl_arena *arena, odl_diag *diag);

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
/* Index of the first layer that needs backward (n_layers when none). */
int32_t odl_model_first_trainable(const odl_model *m);

/* Parameter access: weights (which = 0) or bias (which = 1) of layer i;
 * NULL with *n = 0 when the layer has none. */
float *odl_model_param(odl_model *m, int32_t layer, int which, size_t *n);
const float *odl_model_param_const(const odl_model *m, int32_t layer, int which, size_t *n);
/* Points a layer's parameter at external memory (in-place frozen weights). */
odl_status odl_model_set_param_external(odl_model *m, int32_t layer, int which,
                                        const float *data, size_t n, odl_diag *diag);

/* Runs layers [from, n_layers) on n samples x (each the input of layer
 * `from`, so from = first trainable layer runs a head on cached latents).
 * *out points at the logits (n × n_classes), valid until the next call.
 * Dropout is off. n ≤ max_batch. */
odl_status odl_model_forward(odl_model *m, int32_t from, const float *x, int32_t n,
                             const float **out, odl_diag *diag);

/* Runs layers [from, to) and copies the output of layer to-1 into y
 * (n × its size): the frozen base's latent when `to` is the boundary. */
odl_status odl_model_forward_range(odl_model *m, int32_t from, int32_t to,
                                   const float *x, int32_t n, float *y, odl_diag *diag);

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

/* Sets the number of outputs of the last (dense) layer of a description. */
odl_status odl_desc_set_classes(odl_model_desc *d, int32_t n_classes);

/* Resets the optimizer (moments, step count): a new adaptation starts. */
void odl_model_reset_optimizer(odl_model *m);

/* Sets the learning rate of the optimizer (schedules). */
void odl_model_set_lr(odl_model *m, float lr);

#ifdef __cplusplus
}
#endif
#endif
