/* odl/onnx.h — importing ONNX models (HOST ONLY: malloc, stdio, protobuf-c).
 *
 * odl_onnx_import reads an ONNX ModelProto (opsets 9 to 17) and lowers it to
 * an odl graph description with its parameters: the model's one input is
 * [N, C, H, W], [N, C, L] or [N, F] with N = 1 or symbolic; constant
 * subgraphs (the Shape/Gather/Concat chains PyTorch exports to feed Reshape)
 * are evaluated; batch norm after a conv or dense layer that nothing else
 * reads is folded into it; Dropout and Identity disappear. Anything odl
 * cannot represent exactly (an operator, an attribute value, external data,
 * a dynamic shape not fixed by the caller) is one error naming the node, its
 * operator and what is missing. docs/onnx.md lists the operators.
 *
 * Shapes: ONNX [N, C, H, W] is odl C x H x W; [N, C, L] is C x L x 1; [N, F]
 * is F x 1 x 1. Tensor names are kept (odl_onnx_model.names) and written
 * into the .odl file's NAME chunk (docs/format.md). */
#ifndef ODL_ONNX_H
#define ODL_ONNX_H

#include <stddef.h>
#include <stdint.h>
#include "odl/status.h"
#include "odl/model.h"
#include "odl/file.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ODL_CHUNK_NAMES ODL_FOURCC('N', 'A', 'M', 'E')

/* Largest ONNX file odl_onnx_import accepts unless told otherwise. */
#define ODL_ONNX_MAX_BYTES ((size_t)1 << 30)

/* A float32 tensor given by the caller for a graph input (the operator
 * tests' extra inputs: a weight, a shape), used as if it were an
 * initializer. */
typedef struct odl_onnx_const {
    const char *name;
    int32_t is_int64;       /* 1: data64 holds the values (shapes, axes) */
    int32_t rank;           /* 0..8 */
    int64_t dims[8];
    const float *data;      /* product(dims) floats (is_int64 = 0) */
    const int64_t *data64;  /* product(dims) values (is_int64 = 1) */
} odl_onnx_const;

typedef struct odl_onnx_opts {
    /* The sample shape C x H x W fixing dynamic dimensions (--input-shape);
     * 0 = every dimension but the batch must be fixed in the model. */
    int32_t in_c, in_h, in_w;
    /* A fixed batch size accepted in the input's first dimension besides 1
     * (the operator tests declare theirs); 0 = only 1 or symbolic. */
    int64_t batch;
    size_t max_bytes;       /* refuse larger files (0 = ODL_ONNX_MAX_BYTES) */
    const odl_onnx_const *consts; /* graph inputs given as constants (may be NULL) */
    int32_t n_consts;
} odl_onnx_opts;

odl_onnx_opts odl_onnx_opts_defaults(void);

/* An imported model: a description, every node's parameters and the
 * tensors' names. Free with odl_onnx_free. */
typedef struct odl_onnx_model {
    odl_model_desc desc;      /* desc.layers = nodes */
    odl_node_desc *nodes;
    float **w, **b;           /* per node: weights and bias (NULL when none), malloc'd */
    size_t *n_w, *n_b;
    char **names;             /* desc.n_layers + 1 tensor names (tensor 0 = the input) */
    /* The output's ONNX shape: out_rank dims, out_dims[0] the batch. */
    int32_t out_rank;
    int64_t out_dims[8];
    int64_t opset;
    char producer[64];        /* producer_name of the file, truncated */
} odl_onnx_model;

/* 1 if buf holds an ONNX ModelProto rather than another known format (a
 * TFLite flatbuffer has "TFL3" at offset 4); the check is cheap and only
 * looks at the first bytes. */
int odl_onnx_detect(const void *buf, size_t len);

/* Imports an ONNX model from memory. On failure *out is empty and d holds
 * one line naming the node ("node 12 'Conv_7' (Conv): ...") or the part of
 * the file that is wrong. */
odl_status odl_onnx_import(const void *buf, size_t len, const odl_onnx_opts *opts,
                           odl_onnx_model *out, odl_diag *d);
/* The same from a file (refused above opts->max_bytes before reading). */
odl_status odl_onnx_import_file(const char *path, const odl_onnx_opts *opts,
                                odl_onnx_model *out, odl_diag *d);
void odl_onnx_free(odl_onnx_model *m);

/* Builds the imported model in a malloc'd arena (freed with
 * odl_onnx_model_free_built) and copies its parameters in. cfg may be NULL
 * (inference, batch 1). */
typedef struct odl_onnx_built {
    void *arena_buf;
    odl_arena arena;
    odl_model *m;
} odl_onnx_built;
odl_status odl_onnx_build(const odl_onnx_model *im, const odl_model_cfg *cfg, odl_onnx_built *out,
                          odl_diag *d);
void odl_onnx_built_free(odl_onnx_built *b);

/* The NAME chunk: tensor names of a model, for odl_file_write_chunk.
 * Payload: u32 count, then per tensor u32 byte length and the UTF-8 bytes
 * (no terminator). *payload is malloc'd. */
odl_status odl_names_encode(char *const *names, int32_t n, void **payload, size_t *len,
                            odl_diag *d);
/* Reads the NAME chunk of a .odl file: *names (malloc'd array of n
 * malloc'd strings, free with odl_names_free); ODL_ERR_NOT_FOUND when the
 * file has none. */
odl_status odl_names_read(const void *buf, size_t len, char ***names, int32_t *n, odl_diag *d);
void odl_names_free(char **names, int32_t n);

/* Writes `m` (built from `im`) with the freeze boundary applied by the
 * caller, the metadata and the NAME chunk to PATH atomically. */
odl_status odl_onnx_save(const odl_onnx_model *im, const odl_model *m, const odl_meta_kv *meta,
                         int32_t n_meta, const char *path, odl_diag *d);

#ifdef __cplusplus
}
#endif
#endif
