/* odl/tflite.h — TensorFlow Lite models in and out (HOST ONLY: malloc, stdio).
 *
 * Reading: a small FlatBuffers reader for the part of the TFLite schema
 * (schema.fbs, version 3) odl needs: the model, its first subgraph, tensors
 * with their quantisation parameters, buffers, operators with their builtin
 * options and operator codes. Every offset, vtable and length is checked
 * against the buffer before it is used; a file that is not a well-formed
 * TFLite flatbuffer is one error saying which table or field is wrong.
 *
 * Importing: odl_tflite_import lowers the subgraph to an odl graph
 * description (the same imported-model struct as ONNX import, odl/onnx.h),
 * converting TFLite's NHWC layout to odl's C x H x W: convolution weights
 * are transposed, SAME padding becomes explicit (asymmetric) pads, and a
 * fully connected layer reading a flattened NHWC feature map gets its weight
 * columns permuted to the channel-major order odl flattens in. Float models,
 * hybrid models (int8 weights) and float16 weights import as FP32; an INT8
 * model imports as its dequantised FP32 equivalent (weights and biases
 * exactly dequantised, activations in float). docs/tflite.md lists the
 * operators.
 *
 * Writing: odl_tflite_export writes an odl model as a TFLite flatbuffer
 * (FP32) that the same reader imports back to the same outputs. */
#ifndef ODL_TFLITE_H
#define ODL_TFLITE_H

#include <stddef.h>
#include <stdint.h>
#include "odl/status.h"
#include "odl/model.h"
#include "odl/onnx.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Largest .tflite file accepted unless told otherwise. */
#define ODL_TFLITE_MAX_BYTES ((size_t)1 << 30)

/* TensorType values of the schema. */
enum {
    ODL_TFL_FLOAT32 = 0, ODL_TFL_FLOAT16 = 1, ODL_TFL_INT32 = 2, ODL_TFL_UINT8 = 3,
    ODL_TFL_INT64 = 4, ODL_TFL_INT16 = 7, ODL_TFL_INT8 = 9
};

/* BuiltinOperator values odl knows. */
enum {
    ODL_TFL_OP_ADD = 0, ODL_TFL_OP_AVERAGE_POOL_2D = 1, ODL_TFL_OP_CONCATENATION = 2,
    ODL_TFL_OP_CONV_2D = 3, ODL_TFL_OP_DEPTHWISE_CONV_2D = 4, ODL_TFL_OP_DEQUANTIZE = 6,
    ODL_TFL_OP_FULLY_CONNECTED = 9, ODL_TFL_OP_LOGISTIC = 14, ODL_TFL_OP_MAX_POOL_2D = 17,
    ODL_TFL_OP_MUL = 18, ODL_TFL_OP_RELU = 19, ODL_TFL_OP_RELU_N1_TO_1 = 20, ODL_TFL_OP_RELU6 = 21,
    ODL_TFL_OP_RESHAPE = 22, ODL_TFL_OP_SOFTMAX = 25, ODL_TFL_OP_TANH = 28, ODL_TFL_OP_PAD = 34,
    ODL_TFL_OP_MEAN = 40, ODL_TFL_OP_SQUEEZE = 43, ODL_TFL_OP_LEAKY_RELU = 98,
    ODL_TFL_OP_QUANTIZE = 114, ODL_TFL_OP_HARD_SWISH = 117
};

#define ODL_TFL_MAX_RANK 8

typedef struct odl_tfl_tensor {
    int32_t rank;
    int32_t dims[ODL_TFL_MAX_RANK];
    int32_t type;        /* ODL_TFL_* TensorType */
    uint32_t buffer;     /* index into buffers (0: none) */
    char *name;          /* malloc'd, never NULL ("" when absent) */
    /* quantisation: real = scale[k] * (q - zero_point[k]) along q_dim */
    int32_t n_q;
    float *q_scale;      /* malloc'd, n_q values (NULL when n_q = 0) */
    int64_t *q_zero;     /* malloc'd, n_q values */
    int32_t q_dim;
} odl_tfl_tensor;

/* The builtin options odl reads, whatever the operator (unused ones keep
 * their schema defaults). */
typedef struct odl_tfl_options {
    int32_t padding;            /* 0 SAME, 1 VALID */
    int32_t stride_w, stride_h;
    int32_t dil_w, dil_h;       /* default 1 */
    int32_t filter_w, filter_h; /* pools */
    int32_t depth_multiplier;
    int32_t fused;              /* ActivationFunctionType: 0 none, 1 relu, 2 relu_n1_to_1, 3 relu6, 4 tanh */
    int32_t axis;               /* concatenation */
    int32_t keep_dims;          /* mean; fully connected keep_num_dims */
    int32_t weights_format;     /* fully connected: 0 default */
    float beta;                 /* softmax (default 1 when absent: the table field defaults to 0) */
    float alpha;                /* leaky relu */
} odl_tfl_options;

typedef struct odl_tfl_op {
    int32_t opcode_index;
    int32_t builtin;            /* the builtin operator (max of the two code fields) */
    int32_t n_in, n_out;
    int32_t *in, *out;          /* malloc'd; -1 = an omitted optional input */
    int32_t options_type;       /* BuiltinOptions union type (0: none) */
    odl_tfl_options opt;
} odl_tfl_op;

typedef struct odl_tfl_buffer {
    const uint8_t *data;        /* into the caller's bytes (NULL when empty) */
    size_t len;
} odl_tfl_buffer;

/* A parsed TFLite file: views into the caller's bytes plus malloc'd tables.
 * Only the first subgraph is read (odl models are one graph). */
typedef struct odl_tfl_file {
    uint32_t version;
    int32_t n_codes;
    int32_t *codes;             /* builtin operator per operator code (-1: custom) */
    char **custom;              /* custom_code per operator code (NULL when builtin) */
    int32_t n_subgraphs;
    int32_t n_tensors, n_ops, n_buffers, n_inputs, n_outputs;
    odl_tfl_tensor *tensors;
    odl_tfl_op *ops;
    odl_tfl_buffer *buffers;
    int32_t *inputs, *outputs;
    char *description;
} odl_tfl_file;

/* 1 if buf looks like a TFLite flatbuffer ("TFL3" at offset 4). */
int odl_tflite_detect(const void *buf, size_t len);

/* Parses (and checks) a flatbuffer. buf must outlive *f (buffers point into
 * it). On failure *f is empty and d says what is wrong. */
odl_status odl_tflite_parse(const void *buf, size_t len, odl_tfl_file *f, odl_diag *d);
void odl_tflite_file_free(odl_tfl_file *f);

/* The schema's name of a builtin operator ("CONV_2D"), "?" if unknown. */
const char *odl_tflite_op_name(int32_t builtin);

/* The INT8 form of an int8 TFLite model: the QNT and QLAY chunks
 * (docs/quant.md) with the file's own quantisation parameters (int8
 * weights and per-channel scales, int32 biases, activation scales and zero
 * points, requantisation multipliers computed as TFLite does), so that
 * every node runs in int8, add, mul and concatenation included, with
 * TFLite's requantisation (the boundary is the whole model, or the
 * DEQUANTIZE before a float head). n_chunks = 0
 * when the file is not int8 or odl's INT8 runtime cannot take it: `why`
 * says which (the FP32 equivalent is imported either way). */
typedef struct odl_tflite_int8 {
    int32_t n_chunks;
    uint32_t *type;
    void **payload;
    size_t *len;
    int is_int8;      /* the file's activations are int8 */
    int32_t boundary; /* nodes [0, boundary) run in int8 (the rest, after a DEQUANTIZE, in FP32) */
    char why[256];
} odl_tflite_int8;
void odl_tflite_int8_free(odl_tflite_int8 *q);

/* Imports a TFLite model (first subgraph, one input, one output) as an odl
 * model. On failure *out is empty and d names the operator and its index
 * ("operator 7 (SPLIT): ...") or the part of the file that is wrong.
 * q (may be NULL) receives the INT8 form of an int8 model. */
odl_status odl_tflite_import(const void *buf, size_t len, odl_onnx_model *out, odl_tflite_int8 *q,
                             odl_diag *d);
odl_status odl_tflite_import_file(const char *path, size_t max_bytes, odl_onnx_model *out,
                                  odl_tflite_int8 *q, odl_diag *d);

/* Writes the imported model `m` (built from `im`) like odl_onnx_save, plus
 * the INT8 chunks of q when it has them, to PATH atomically. */
odl_status odl_tflite_save(const odl_onnx_model *im, const odl_model *m, const odl_tflite_int8 *q,
                           const odl_meta_kv *meta, int32_t n_meta, const char *path, odl_diag *d);

/* Writes a built FP32 odl model (its description and parameters) as a
 * TFLite flatbuffer: a malloc'd buffer in *out (free()), *out_len bytes.
 * names may be NULL (tensors are then named t0, t1, ...). */
odl_status odl_tflite_export(const odl_model *m, char *const *names, void **out, size_t *out_len,
                             odl_diag *d);
/* The same, with INT8 layers: int8 = 1 writes the INT8 layers of `file`
 * (the quantised .odl file m was loaded from: its QNT/QLAY chunks,
 * docs/quant.md) as int8 TFLite operators with their scales, zero points,
 * int8 weights and int32 biases, then a DEQUANTIZE and the FP32 layers
 * after them (a file without INT8 layers exports as FP32); int8 = 2 takes
 * them from the INT8 base m was adapted from, up to m's first trainable
 * node (the head stays FP32) and only where the nodes agree. */
odl_status odl_tflite_export_ex(const odl_model *m, char *const *names, const void *file, size_t file_len,
                                int int8, void **out, size_t *out_len, odl_diag *d);

#ifdef __cplusplus
}
#endif
#endif
