/* TFLite reading (odl/tflite.h): a bounds-checked FlatBuffers reader for the
 * schema subset odl needs, and the lowering of a TFLite subgraph to an odl
 * graph description. Field ids are the slots of schema.fbs (version 3). */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdarg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "odl/tflite.h"
#include "odl/posix_io.h"
#include "odl/quant.h"

/* ---- FlatBuffers primitives ---------------------------------------------- */

typedef struct fb {
    const uint8_t *p;
    size_t n;
    odl_diag *d;
} fb;

/* A table: its position, its vtable's position and both sizes. */
typedef struct fbt {
    size_t pos, vt;
    uint16_t vt_len, tbl_len;
} fbt;

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static uint64_t rd64(const uint8_t *p) { return rd32(p) | ((uint64_t)rd32(p + 4) << 32); }

/* Every table, vector and string of a file is at least 4 bytes, so a file
 * of n bytes has fewer than n/4 of any of them: counts are capped by it. */
static odl_status fb_table(fb *f, size_t pos, fbt *t, const char *what)
{
    if (pos > f->n || f->n - pos < 4)
        return odl_fail(f->d, ODL_ERR_FORMAT, "%s: table at byte %zu is outside the %zu-byte file",
                        what, pos, f->n);
    int64_t vt = (int64_t)pos - (int64_t)(int32_t)rd32(f->p + pos);
    if (vt < 0 || (uint64_t)vt > f->n || f->n - (size_t)vt < 4)
        return odl_fail(f->d, ODL_ERR_FORMAT, "%s: the vtable of the table at byte %zu is outside "
                        "the file (offset %lld)", what, pos, (long long)vt);
    t->pos = pos;
    t->vt = (size_t)vt;
    t->vt_len = rd16(f->p + t->vt);
    t->tbl_len = rd16(f->p + t->vt + 2);
    if (t->vt_len < 4 || (t->vt_len & 1) || t->vt_len > f->n - t->vt)
        return odl_fail(f->d, ODL_ERR_FORMAT, "%s: vtable at byte %zu has size %u (even, >= 4 and "
                        "inside the file required)", what, t->vt, (unsigned)t->vt_len);
    if (t->tbl_len < 4 || t->tbl_len > f->n - pos)
        return odl_fail(f->d, ODL_ERR_FORMAT, "%s: table at byte %zu claims %u bytes (4 to %zu "
                        "possible)", what, pos, (unsigned)t->tbl_len, f->n - pos);
    return ODL_OK;
}

/* Position of field `id` of size `size`, 0 when absent. */
static odl_status fb_field(fb *f, const fbt *t, int id, size_t size, size_t *at, const char *what)
{
    *at = 0;
    size_t slot = 4 + 2 * (size_t)id;
    if (slot + 2 > t->vt_len)
        return ODL_OK;
    uint16_t off = rd16(f->p + t->vt + slot);
    if (!off)
        return ODL_OK;
    if (off < 4 || (size_t)off + size > t->tbl_len)
        return odl_fail(f->d, ODL_ERR_FORMAT, "%s: field %d at offset %u overruns its %u-byte table",
                        what, id, (unsigned)off, (unsigned)t->tbl_len);
    *at = t->pos + off;
    return ODL_OK;
}

static odl_status fb_i32(fb *f, const fbt *t, int id, int32_t def, int32_t *v, const char *what)
{
    size_t at;
    odl_status s = fb_field(f, t, id, 4, &at, what);
    *v = at ? (int32_t)rd32(f->p + at) : def;
    return s;
}

static odl_status fb_u8(fb *f, const fbt *t, int id, int32_t def, int32_t *v, const char *what)
{
    size_t at;
    odl_status s = fb_field(f, t, id, 1, &at, what);
    *v = at ? f->p[at] : def;
    return s;
}

/* An int8 field (deprecated_builtin_code is a signed byte). */
static odl_status fb_i8(fb *f, const fbt *t, int id, int32_t def, int32_t *v, const char *what)
{
    size_t at;
    odl_status s = fb_field(f, t, id, 1, &at, what);
    *v = at ? (int32_t)(int8_t)f->p[at] : def;
    return s;
}

static odl_status fb_f32(fb *f, const fbt *t, int id, float def, float *v, const char *what)
{
    size_t at;
    odl_status s = fb_field(f, t, id, 4, &at, what);
    if (at) {
        uint32_t u = rd32(f->p + at);
        memcpy(v, &u, 4);
    } else {
        *v = def;
    }
    return s;
}

/* The target of an offset field (0 when absent). */
static odl_status fb_ref(fb *f, const fbt *t, int id, size_t *target, const char *what)
{
    size_t at;
    odl_status s = fb_field(f, t, id, 4, &at, what);
    *target = 0;
    if (s != ODL_OK || !at)
        return s;
    uint64_t tg = (uint64_t)at + rd32(f->p + at);
    if (tg >= f->n)
        return odl_fail(f->d, ODL_ERR_FORMAT, "%s: field %d points to byte %llu, past the end of the "
                        "%zu-byte file", what, id, (unsigned long long)tg, f->n);
    *target = (size_t)tg;
    return ODL_OK;
}

/* A vector field: its first element and its length (0, 0 when absent). */
static odl_status fb_vec(fb *f, const fbt *t, int id, size_t elem, size_t *start, uint32_t *count,
                         const char *what)
{
    size_t v;
    odl_status s = fb_ref(f, t, id, &v, what);
    *start = 0;
    *count = 0;
    if (s != ODL_OK || !v)
        return s;
    if (f->n - v < 4)
        return odl_fail(f->d, ODL_ERR_TRUNCATED, "%s: the length of vector field %d is cut off",
                        what, id);
    uint32_t c = rd32(f->p + v);
    if ((uint64_t)c * elem > f->n - v - 4)
        return odl_fail(f->d, ODL_ERR_FORMAT, "%s: vector field %d claims %u elements of %zu bytes, "
                        "the file has %zu bytes after it", what, id, c, elem, f->n - v - 4);
    *start = v + 4;
    *count = c;
    return ODL_OK;
}

/* The i-th table of a vector of tables. */
static odl_status fb_vec_table(fb *f, size_t start, uint32_t i, fbt *t, const char *what)
{
    size_t at = start + 4 * (size_t)i;
    uint64_t tg = (uint64_t)at + rd32(f->p + at);
    if (tg >= f->n)
        return odl_fail(f->d, ODL_ERR_FORMAT, "%s %u: offset past the end of the file", what, i);
    return fb_table(f, (size_t)tg, t, what);
}

/* A string field, copied (malloc'd, NUL-terminated; "" when absent). */
static odl_status fb_str(fb *f, const fbt *t, int id, char **out, const char *what)
{
    size_t st;
    uint32_t n;
    odl_status s = fb_vec(f, t, id, 1, &st, &n, what);
    *out = NULL;
    if (s != ODL_OK)
        return s;
    char *c = malloc((size_t)n + 1);
    if (!c)
        return odl_fail(f->d, ODL_ERR_NOMEM, "out of memory (a %u-byte string)", n);
    if (n)
        memcpy(c, f->p + st, n);
    c[n] = 0;
    *out = c;
    return ODL_OK;
}

/* A vector of int32 copied into malloc'd memory (NULL, 0 when absent). */
static odl_status fb_ivec(fb *f, const fbt *t, int id, int32_t **out, int32_t *n, int32_t max,
                          const char *what)
{
    size_t st;
    uint32_t c;
    odl_status s = fb_vec(f, t, id, 4, &st, &c, what);
    *out = NULL;
    *n = 0;
    if (s != ODL_OK || !c)
        return s;
    if (c > (uint32_t)max)
        return odl_fail(f->d, ODL_ERR_UNSUPPORTED, "%s: field %d has %u entries (at most %d)", what,
                        id, c, max);
    int32_t *v = malloc((size_t)c * sizeof *v);
    if (!v)
        return odl_fail(f->d, ODL_ERR_NOMEM, "out of memory");
    for (uint32_t i = 0; i < c; i++)
        v[i] = (int32_t)rd32(f->p + st + 4 * (size_t)i);
    *out = v;
    *n = (int32_t)c;
    return ODL_OK;
}

/* ---- the schema subset --------------------------------------------------- */

int odl_tflite_detect(const void *buf, size_t len)
{
    return buf && len >= 8 && !memcmp((const uint8_t *)buf + 4, "TFL3", 4);
}

const char *odl_tflite_op_name(int32_t op)
{
    static const char *const names[] = {
        "ADD", "AVERAGE_POOL_2D", "CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D", "DEPTH_TO_SPACE",
        "DEQUANTIZE", "EMBEDDING_LOOKUP", "FLOOR", "FULLY_CONNECTED", "HASHTABLE_LOOKUP",
        "L2_NORMALIZATION", "L2_POOL_2D", "LOCAL_RESPONSE_NORMALIZATION", "LOGISTIC",
        "LSH_PROJECTION", "LSTM", "MAX_POOL_2D", "MUL", "RELU", "RELU_N1_TO_1", "RELU6", "RESHAPE",
        "RESIZE_BILINEAR", "RNN", "SOFTMAX", "SPACE_TO_DEPTH", "SVDF", "TANH", "CONCAT_EMBEDDINGS",
        "SKIP_GRAM", "CALL", "CUSTOM", "EMBEDDING_LOOKUP_SPARSE", "PAD",
        "UNIDIRECTIONAL_SEQUENCE_RNN", "GATHER", "BATCH_TO_SPACE_ND", "SPACE_TO_BATCH_ND",
        "TRANSPOSE", "MEAN", "SUB", "DIV", "SQUEEZE", "UNIDIRECTIONAL_SEQUENCE_LSTM",
        "STRIDED_SLICE", "BIDIRECTIONAL_SEQUENCE_RNN", "EXP", "TOPK_V2", "SPLIT", "LOG_SOFTMAX",
        "DELEGATE", "BIDIRECTIONAL_SEQUENCE_LSTM", "CAST", "PRELU", "MAXIMUM", "ARG_MAX",
        "MINIMUM", "LESS", "NEG", "PADV2", "GREATER", "GREATER_EQUAL", "LESS_EQUAL", "SELECT",
        "SLICE", "SIN", "TRANSPOSE_CONV", "SPARSE_TO_DENSE", "TILE", "EXPAND_DIMS", "EQUAL",
        "NOT_EQUAL", "LOG", "SUM", "SQRT", "RSQRT", "SHAPE", "POW", "ARG_MIN", "FAKE_QUANT",
        "REDUCE_PROD", "REDUCE_MAX", "PACK", "LOGICAL_OR", "ONE_HOT", "LOGICAL_AND", "LOGICAL_NOT",
        "UNPACK", "REDUCE_MIN", "FLOOR_DIV", "REDUCE_ANY", "SQUARE", "ZEROS_LIKE", "FILL",
        "FLOOR_MOD", "RANGE", "RESIZE_NEAREST_NEIGHBOR", "LEAKY_RELU", "SQUARED_DIFFERENCE",
        "MIRROR_PAD", "ABS", "SPLIT_V", "UNIQUE", "CEIL", "REVERSE_V2", "ADD_N", "GATHER_ND", "COS",
        "WHERE", "RANK", "ELU", "REVERSE_SEQUENCE", "MATRIX_DIAG", "QUANTIZE", "MATRIX_SET_DIAG",
        "ROUND", "HARD_SWISH", "IF", "WHILE", "NON_MAX_SUPPRESSION_V4", "NON_MAX_SUPPRESSION_V5",
        "SCATTER_ND", "SELECT_V2", "DENSIFY", "SEGMENT_SUM", "BATCH_MATMUL"};
    if (op >= 0 && (size_t)op < sizeof names / sizeof names[0])
        return names[op];
    return "?";
}

void odl_tflite_file_free(odl_tfl_file *f)
{
    if (!f)
        return;
    if (f->custom)
        for (int32_t i = 0; i < f->n_codes; i++)
            free(f->custom[i]);
    free(f->custom);
    free(f->codes);
    if (f->tensors)
        for (int32_t i = 0; i < f->n_tensors; i++) {
            free(f->tensors[i].name);
            free(f->tensors[i].q_scale);
            free(f->tensors[i].q_zero);
        }
    free(f->tensors);
    if (f->ops)
        for (int32_t i = 0; i < f->n_ops; i++) {
            free(f->ops[i].in);
            free(f->ops[i].out);
        }
    free(f->ops);
    free(f->buffers);
    free(f->inputs);
    free(f->outputs);
    free(f->description);
    memset(f, 0, sizeof *f);
}

static odl_status parse_quant(fb *f, size_t pos, odl_tfl_tensor *t, int32_t ti)
{
    char what[48];
    snprintf(what, sizeof what, "tensor %d quantization", (int)ti);
    fbt q;
    odl_status s = fb_table(f, pos, &q, what);
    if (s != ODL_OK)
        return s;
    size_t ss, zs;
    uint32_t ns, nz;
    int32_t details;
    if ((s = fb_vec(f, &q, 2, 4, &ss, &ns, what)) != ODL_OK ||
        (s = fb_vec(f, &q, 3, 8, &zs, &nz, what)) != ODL_OK ||
        (s = fb_u8(f, &q, 4, 0, &details, what)) != ODL_OK ||
        (s = fb_i32(f, &q, 6, 0, &t->q_dim, what)) != ODL_OK)
        return s;
    if (details)
        return odl_fail(f->d, ODL_ERR_UNSUPPORTED, "tensor %d '%s': custom quantization details "
                        "(type %d); odl reads scale/zero point quantization only", (int)ti, t->name,
                        (int)details);
    if (!ns)
        return ODL_OK;
    if (nz != ns && nz != 0)
        return odl_fail(f->d, ODL_ERR_FORMAT, "tensor %d '%s': %u scales but %u zero points", (int)ti,
                        t->name, ns, nz);
    t->q_scale = malloc((size_t)ns * sizeof *t->q_scale);
    t->q_zero = calloc((size_t)ns, sizeof *t->q_zero);
    if (!t->q_scale || !t->q_zero)
        return odl_fail(f->d, ODL_ERR_NOMEM, "out of memory");
    for (uint32_t i = 0; i < ns; i++) {
        uint32_t u = rd32(f->p + ss + 4 * (size_t)i);
        memcpy(&t->q_scale[i], &u, 4);
        if (nz)
            t->q_zero[i] = (int64_t)rd64(f->p + zs + 8 * (size_t)i);
        if (!(t->q_scale[i] > 0) || !isfinite(t->q_scale[i]))
            return odl_fail(f->d, ODL_ERR_FORMAT, "tensor %d '%s': scale %u is %g (a positive finite "
                            "number is required)", (int)ti, t->name, i, (double)t->q_scale[i]);
    }
    t->n_q = (int32_t)ns;
    return ODL_OK;
}

static odl_status parse_tensor(fb *f, size_t start, uint32_t i, odl_tfl_tensor *t)
{
    char what[32];
    snprintf(what, sizeof what, "tensor %u", i);
    fbt tt;
    odl_status s = fb_vec_table(f, start, i, &tt, "tensor");
    if (s != ODL_OK)
        return s;
    int32_t *dims = NULL, nd = 0, buffer = 0;
    size_t qpos;
    if ((s = fb_str(f, &tt, 3, &t->name, what)) != ODL_OK ||
        (s = fb_ivec(f, &tt, 0, &dims, &nd, ODL_TFL_MAX_RANK, what)) != ODL_OK)
        return s;
    t->rank = nd;
    for (int32_t k = 0; k < nd; k++)
        t->dims[k] = dims[k];
    free(dims);
    for (int32_t k = 0; k < nd; k++)
        if (t->dims[k] < 0)
            return odl_fail(f->d, ODL_ERR_UNSUPPORTED, "tensor %u '%s': dimension %d is %d (odl needs "
                            "static shapes)", i, t->name, (int)k, (int)t->dims[k]);
    if ((s = fb_i8(f, &tt, 1, 0, &t->type, what)) != ODL_OK ||
        (s = fb_i32(f, &tt, 2, 0, &buffer, what)) != ODL_OK ||
        (s = fb_ref(f, &tt, 4, &qpos, what)) != ODL_OK)
        return s;
    t->buffer = (uint32_t)buffer;
    if (qpos && (s = parse_quant(f, qpos, t, (int32_t)i)) != ODL_OK)
        return s;
    return ODL_OK;
}

/* Options by BuiltinOptions union type (schema order). */
enum {
    OPT_CONV = 1, OPT_DWCONV = 2, OPT_POOL = 5, OPT_FC = 8, OPT_SOFTMAX = 9, OPT_CONCAT = 10,
    OPT_ADD = 11, OPT_MUL = 21, OPT_REDUCER = 27, OPT_LEAKY = 75
};

static odl_status parse_options(fb *f, odl_tfl_op *op, size_t pos, int32_t i)
{
    odl_tfl_options *o = &op->opt;
    char what[48];
    snprintf(what, sizeof what, "operator %d options", (int)i);
    fbt t;
    odl_status s = fb_table(f, pos, &t, what);
    if (s != ODL_OK)
        return s;
    switch (op->options_type) {
    case OPT_CONV:
        if ((s = fb_u8(f, &t, 0, 0, &o->padding, what)) || (s = fb_i32(f, &t, 1, 0, &o->stride_w, what)) ||
            (s = fb_i32(f, &t, 2, 0, &o->stride_h, what)) || (s = fb_u8(f, &t, 3, 0, &o->fused, what)) ||
            (s = fb_i32(f, &t, 4, 1, &o->dil_w, what)) || (s = fb_i32(f, &t, 5, 1, &o->dil_h, what)))
            return s;
        break;
    case OPT_DWCONV:
        if ((s = fb_u8(f, &t, 0, 0, &o->padding, what)) || (s = fb_i32(f, &t, 1, 0, &o->stride_w, what)) ||
            (s = fb_i32(f, &t, 2, 0, &o->stride_h, what)) ||
            (s = fb_i32(f, &t, 3, 0, &o->depth_multiplier, what)) ||
            (s = fb_u8(f, &t, 4, 0, &o->fused, what)) || (s = fb_i32(f, &t, 5, 1, &o->dil_w, what)) ||
            (s = fb_i32(f, &t, 6, 1, &o->dil_h, what)))
            return s;
        break;
    case OPT_POOL:
        if ((s = fb_u8(f, &t, 0, 0, &o->padding, what)) || (s = fb_i32(f, &t, 1, 0, &o->stride_w, what)) ||
            (s = fb_i32(f, &t, 2, 0, &o->stride_h, what)) ||
            (s = fb_i32(f, &t, 3, 0, &o->filter_w, what)) ||
            (s = fb_i32(f, &t, 4, 0, &o->filter_h, what)) || (s = fb_u8(f, &t, 5, 0, &o->fused, what)))
            return s;
        break;
    case OPT_FC:
        if ((s = fb_u8(f, &t, 0, 0, &o->fused, what)) || (s = fb_u8(f, &t, 1, 0, &o->weights_format, what)) ||
            (s = fb_u8(f, &t, 2, 0, &o->keep_dims, what)))
            return s;
        break;
    case OPT_SOFTMAX:
        if ((s = fb_f32(f, &t, 0, 0.0f, &o->beta, what)))
            return s;
        break;
    case OPT_CONCAT:
        if ((s = fb_i32(f, &t, 0, 0, &o->axis, what)) || (s = fb_u8(f, &t, 1, 0, &o->fused, what)))
            return s;
        break;
    case OPT_ADD:
    case OPT_MUL:
        if ((s = fb_u8(f, &t, 0, 0, &o->fused, what)))
            return s;
        break;
    case OPT_REDUCER:
        if ((s = fb_u8(f, &t, 0, 0, &o->keep_dims, what)))
            return s;
        break;
    case OPT_LEAKY:
        if ((s = fb_f32(f, &t, 0, 0.0f, &o->alpha, what)))
            return s;
        break;
    default:
        break; /* options odl does not read (reshape's new_shape: the output tensor says it) */
    }
    return ODL_OK;
}

static odl_status parse_op(fb *f, size_t start, uint32_t i, odl_tfl_op *op, int32_t n_tensors,
                           int32_t n_codes)
{
    char what[32];
    snprintf(what, sizeof what, "operator %u", i);
    fbt t;
    odl_status s = fb_vec_table(f, start, i, &t, "operator");
    if (s != ODL_OK)
        return s;
    size_t opt;
    if ((s = fb_i32(f, &t, 0, 0, &op->opcode_index, what)) != ODL_OK ||
        (s = fb_ivec(f, &t, 1, &op->in, &op->n_in, 64, what)) != ODL_OK ||
        (s = fb_ivec(f, &t, 2, &op->out, &op->n_out, 64, what)) != ODL_OK ||
        (s = fb_u8(f, &t, 3, 0, &op->options_type, what)) != ODL_OK ||
        (s = fb_ref(f, &t, 4, &opt, what)) != ODL_OK)
        return s;
    if (op->opcode_index < 0 || op->opcode_index >= n_codes)
        return odl_fail(f->d, ODL_ERR_FORMAT, "operator %u: operator code %d (the file has %d)", i,
                        (int)op->opcode_index, (int)n_codes);
    for (int32_t k = 0; k < op->n_in; k++)
        if (op->in[k] < -1 || op->in[k] >= n_tensors)
            return odl_fail(f->d, ODL_ERR_FORMAT, "operator %u: input %d is tensor %d (the subgraph "
                            "has %d)", i, (int)k, (int)op->in[k], (int)n_tensors);
    for (int32_t k = 0; k < op->n_out; k++)
        if (op->out[k] < 0 || op->out[k] >= n_tensors)
            return odl_fail(f->d, ODL_ERR_FORMAT, "operator %u: output %d is tensor %d (the subgraph "
                            "has %d)", i, (int)k, (int)op->out[k], (int)n_tensors);
    op->opt.dil_w = op->opt.dil_h = 1;
    op->opt.beta = 1.0f;
    if (opt && (s = parse_options(f, op, opt, (int32_t)i)) != ODL_OK)
        return s;
    return ODL_OK;
}

odl_status odl_tflite_parse(const void *buf, size_t len, odl_tfl_file *out, odl_diag *d)
{
    memset(out, 0, sizeof *out);
    fb f = {buf, len, d};
    if (!buf || len < 8)
        return odl_fail(d, ODL_ERR_TRUNCATED, "a TFLite file has at least 8 bytes (this one has %zu)",
                        len);
    if (!odl_tflite_detect(buf, len))
        return odl_fail(d, ODL_ERR_FORMAT, "not a TFLite model (\"TFL3\" expected at byte 4)");
    odl_tfl_file *m = out;
    fbt root;
    odl_status s = fb_table(&f, rd32(f.p), &root, "model");
    if (s != ODL_OK)
        goto fail;
    int32_t version;
    if ((s = fb_i32(&f, &root, 0, 0, &version, "model")) != ODL_OK)
        goto fail;
    m->version = (uint32_t)version;
    if (m->version != 3) {
        s = odl_fail(d, ODL_ERR_VERSION, "TFLite schema version %u (odl reads version 3)", m->version);
        goto fail;
    }
    if ((s = fb_str(&f, &root, 3, &m->description, "model")) != ODL_OK)
        goto fail;

    /* operator codes */
    size_t st;
    uint32_t n;
    if ((s = fb_vec(&f, &root, 1, 4, &st, &n, "model operator_codes")) != ODL_OK)
        goto fail;
    m->codes = calloc((size_t)n + 1, sizeof *m->codes);
    m->custom = calloc((size_t)n + 1, sizeof *m->custom);
    if (!m->codes || !m->custom) {
        s = odl_fail(d, ODL_ERR_NOMEM, "out of memory");
        goto fail;
    }
    m->n_codes = (int32_t)n;
    for (uint32_t i = 0; i < n; i++) {
        fbt c;
        int32_t dep, bc;
        if ((s = fb_vec_table(&f, st, i, &c, "operator code")) != ODL_OK ||
            (s = fb_i8(&f, &c, 0, 0, &dep, "operator code")) != ODL_OK ||
            (s = fb_i32(&f, &c, 3, 0, &bc, "operator code")) != ODL_OK)
            goto fail;
        /* files written before builtin_code existed have only the byte;
         * newer writers put 127 (the placeholder) in the byte for codes > 127 */
        m->codes[i] = dep > bc ? dep : bc;
        if (m->codes[i] == 32) {
            if ((s = fb_str(&f, &c, 1, &m->custom[i], "operator code")) != ODL_OK)
                goto fail;
        }
    }

    /* buffers */
    if ((s = fb_vec(&f, &root, 4, 4, &st, &n, "model buffers")) != ODL_OK)
        goto fail;
    m->buffers = calloc((size_t)n + 1, sizeof *m->buffers);
    if (!m->buffers) {
        s = odl_fail(d, ODL_ERR_NOMEM, "out of memory");
        goto fail;
    }
    m->n_buffers = (int32_t)n;
    for (uint32_t i = 0; i < n; i++) {
        fbt b;
        size_t ds, off_at;
        uint32_t dn;
        if ((s = fb_vec_table(&f, st, i, &b, "buffer")) != ODL_OK ||
            (s = fb_vec(&f, &b, 0, 1, &ds, &dn, "buffer")) != ODL_OK ||
            (s = fb_field(&f, &b, 1, 8, &off_at, "buffer")) != ODL_OK)
            goto fail;
        if (off_at && rd64(f.p + off_at) > 1) {
            s = odl_fail(d, ODL_ERR_UNSUPPORTED, "buffer %u is stored outside the flatbuffer (offset "
                         "field, the >2 GB layout); odl reads buffers inside it", i);
            goto fail;
        }
        m->buffers[i].data = dn ? f.p + ds : NULL;
        m->buffers[i].len = dn;
    }

    /* the first subgraph */
    if ((s = fb_vec(&f, &root, 2, 4, &st, &n, "model subgraphs")) != ODL_OK)
        goto fail;
    if (n < 1) {
        s = odl_fail(d, ODL_ERR_FORMAT, "the model has no subgraph");
        goto fail;
    }
    m->n_subgraphs = (int32_t)n;
    fbt sg;
    if ((s = fb_vec_table(&f, st, 0, &sg, "subgraph")) != ODL_OK ||
        (s = fb_vec(&f, &sg, 0, 4, &st, &n, "subgraph tensors")) != ODL_OK)
        goto fail;
    m->tensors = calloc((size_t)n + 1, sizeof *m->tensors);
    if (!m->tensors) {
        s = odl_fail(d, ODL_ERR_NOMEM, "out of memory");
        goto fail;
    }
    m->n_tensors = (int32_t)n;
    for (uint32_t i = 0; i < n; i++) {
        if ((s = parse_tensor(&f, st, i, &m->tensors[i])) != ODL_OK)
            goto fail;
        if (m->tensors[i].buffer >= (uint32_t)m->n_buffers) {
            s = odl_fail(d, ODL_ERR_FORMAT, "tensor %u '%s': buffer %u (the file has %d)", i,
                         m->tensors[i].name, m->tensors[i].buffer, (int)m->n_buffers);
            goto fail;
        }
    }
    if ((s = fb_ivec(&f, &sg, 1, &m->inputs, &m->n_inputs, 64, "subgraph inputs")) != ODL_OK ||
        (s = fb_ivec(&f, &sg, 2, &m->outputs, &m->n_outputs, 64, "subgraph outputs")) != ODL_OK)
        goto fail;
    for (int32_t i = 0; i < m->n_inputs + m->n_outputs; i++) {
        int32_t v = i < m->n_inputs ? m->inputs[i] : m->outputs[i - m->n_inputs];
        if (v < 0 || v >= m->n_tensors) {
            s = odl_fail(d, ODL_ERR_FORMAT, "subgraph %s %d is tensor %d (the subgraph has %d)",
                         i < m->n_inputs ? "input" : "output",
                         (int)(i < m->n_inputs ? i : i - m->n_inputs), (int)v, (int)m->n_tensors);
            goto fail;
        }
    }
    if ((s = fb_vec(&f, &sg, 3, 4, &st, &n, "subgraph operators")) != ODL_OK)
        goto fail;
    m->ops = calloc((size_t)n + 1, sizeof *m->ops);
    if (!m->ops) {
        s = odl_fail(d, ODL_ERR_NOMEM, "out of memory");
        goto fail;
    }
    m->n_ops = (int32_t)n;
    for (uint32_t i = 0; i < n; i++) {
        if ((s = parse_op(&f, st, i, &m->ops[i], m->n_tensors, m->n_codes)) != ODL_OK)
            goto fail;
        m->ops[i].builtin = m->codes[m->ops[i].opcode_index];
    }
    return ODL_OK;
fail:
    odl_tflite_file_free(m);
    return s;
}

/* ---- import: TFLite subgraph -> odl graph description --------------------- */

/* What a TFLite tensor is on the odl side. */
typedef struct tmap {
    int32_t t;         /* odl tensor number, -1: not (yet) computed */
    int32_t c, h, w;   /* odl shape */
    /* 1: the odl tensor is a flattened NHWC map whose odl order is C-major
     * (odl flattens c,h,w) while TFLite's order is h,w,c of (ph, pw, pc) */
    int32_t perm, ph, pw, pc;
    int32_t const_src; /* >= 0: a constant (the tensor holding the data, through DEQUANTIZE) */
} tmap;

typedef struct ictx {
    const odl_tfl_file *f;
    odl_diag *d;
    odl_onnx_model *m;
    tmap *tm;
    int32_t cap;
    int32_t op;        /* operator being lowered */
    int int8;          /* int8 activations somewhere */
    int32_t *nsrc;     /* per node: TFLite output, weight and bias tensors (-1: none) */
} ictx;

static odl_status ofail(ictx *c, odl_status s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static odl_status ofail(ictx *c, odl_status s, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const odl_tfl_op *op = &c->f->ops[c->op];
    return odl_fail(c->d, s, "operator %d (%s): %s", (int)c->op, odl_tflite_op_name(op->builtin), msg);
}

static size_t tcount(const odl_tfl_tensor *t)
{
    size_t n = 1;
    for (int32_t k = 0; k < t->rank; k++)
        n *= (size_t)t->dims[k]; /* dims < 2^31, rank <= 8: checked below before use */
    return n;
}

/* The odl shape of a TFLite activation: [1,H,W,C] -> C x H x W, [1,F] or
 * [F] -> F x 1 x 1. */
static odl_status act_shape(ictx *c, int32_t ti, int32_t *oc, int32_t *oh, int32_t *ow)
{
    const odl_tfl_tensor *t = &c->f->tensors[ti];
    const int32_t *d = t->dims;
    if (t->rank == 4 && d[0] == 1) {
        *oc = d[3], *oh = d[1], *ow = d[2];
    } else if (t->rank == 2 && d[0] == 1) {
        *oc = d[1], *oh = 1, *ow = 1;
    } else if (t->rank == 1) {
        *oc = d[0], *oh = 1, *ow = 1;
    } else if (t->rank == 3 && d[0] == 1) {
        /* [1, L, C]: a sequence, C x L x 1 */
        *oc = d[2], *oh = d[1], *ow = 1;
    } else {
        char dims[96] = "";
        size_t n = 0;
        for (int32_t k = 0; k < t->rank && n < sizeof dims - 16; k++)
            n += (size_t)snprintf(dims + n, sizeof dims - n, "%s%d", k ? "," : "", (int)d[k]);
        return odl_fail(c->d, ODL_ERR_UNSUPPORTED, "tensor %d '%s' has shape [%s]; odl takes one "
                        "sample: [1,H,W,C], [1,L,C], [1,F] or [F]", (int)ti, t->name, dims);
    }
    if (*oc < 1 || *oh < 1 || *ow < 1)
        return odl_fail(c->d, ODL_ERR_UNSUPPORTED, "tensor %d '%s' has an empty dimension", (int)ti,
                        t->name);
    return ODL_OK;
}

/* 1 when TFLite's flat order of the tensor equals odl's (C x H x W). */
static int same_order(const tmap *m) { return !m->perm && (m->c == 1 || (int64_t)m->h * m->w == 1); }

static float half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 31, mant = h & 1023u, u;
    if (e == 0) {
        if (!mant) {
            u = sign;
        } else { /* subnormal: renormalise */
            e = 127 - 15 + 1;
            while (!(mant & 1024u)) {
                mant <<= 1;
                e--;
            }
            u = sign | (e << 23) | ((mant & 1023u) << 13);
        }
    } else if (e == 31) {
        u = sign | 0x7f800000u | (mant << 13);
    } else {
        u = sign | ((e - 15 + 127) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* A constant tensor as floats (malloc'd, *n values): float32, float16, or
 * int8/uint8/int32 dequantised with its (per-channel) parameters. */
static odl_status const_f32(ictx *c, int32_t ti, float **out, size_t *n)
{
    *out = NULL;
    if (ti < 0 || c->tm[ti].const_src < 0)
        return ofail(c, ODL_ERR_UNSUPPORTED, "input tensor %d must be a constant", (int)ti);
    const odl_tfl_tensor *shape_t = &c->f->tensors[ti];
    const odl_tfl_tensor *t = &c->f->tensors[c->tm[ti].const_src];
    const odl_tfl_buffer *b = &c->f->buffers[t->buffer];
    size_t cnt = tcount(shape_t);
    if (tcount(t) != cnt)
        return ofail(c, ODL_ERR_FORMAT, "tensor %d '%s' and its dequantised form differ in size",
                     (int)ti, t->name);
    size_t esz = t->type == ODL_TFL_FLOAT32 || t->type == ODL_TFL_INT32 ? 4
               : t->type == ODL_TFL_FLOAT16 ? 2
               : t->type == ODL_TFL_INT8 || t->type == ODL_TFL_UINT8 ? 1 : 0;
    if (!esz)
        return ofail(c, ODL_ERR_UNSUPPORTED, "constant tensor '%s' has type %d (float32, float16, "
                     "int8, uint8 or int32 needed)", t->name, (int)t->type);
    if (cnt > SIZE_MAX / 4 || b->len != cnt * esz)
        return ofail(c, ODL_ERR_FORMAT, "constant tensor '%s' holds %zu bytes, its shape needs %zu",
                     t->name, b->len, cnt * esz);
    int quant = t->type != ODL_TFL_FLOAT32 && t->type != ODL_TFL_FLOAT16;
    /* per-channel parameters run along q_dim: index = (i / inner) % dim */
    size_t inner = 1, qd = 1;
    if (quant) {
        if (!t->n_q)
            return ofail(c, ODL_ERR_UNSUPPORTED, "constant tensor '%s' is integer without "
                         "quantization parameters", t->name);
        for (int32_t k = 0; k < t->n_q; k++) /* q - zero point must fit in 64 bits */
            if (t->q_zero[k] < INT32_MIN || t->q_zero[k] > INT32_MAX)
                return ofail(c, ODL_ERR_FORMAT, "constant tensor '%s': zero point %lld is outside int32",
                             t->name, (long long)t->q_zero[k]);
        if (t->n_q > 1) {
            if (t->q_dim < 0 || t->q_dim >= t->rank || t->dims[t->q_dim] != t->n_q)
                return ofail(c, ODL_ERR_FORMAT, "tensor '%s': %d scales along dimension %d of a "
                             "rank-%d tensor", t->name, (int)t->n_q, (int)t->q_dim, (int)t->rank);
            for (int32_t k = t->q_dim + 1; k < t->rank; k++)
                inner *= (size_t)t->dims[k];
            qd = (size_t)t->n_q;
        }
    }
    float *v = malloc((cnt ? cnt : 1) * sizeof *v);
    if (!v)
        return ofail(c, ODL_ERR_NOMEM, "out of memory (%zu values)", cnt);
    for (size_t i = 0; i < cnt; i++) {
        const uint8_t *p = b->data + i * esz;
        if (!quant) {
            if (t->type == ODL_TFL_FLOAT32) {
                uint32_t u = rd32(p);
                memcpy(&v[i], &u, 4);
            } else {
                v[i] = half_to_float(rd16(p));
            }
            continue;
        }
        size_t k = t->n_q > 1 ? (i / inner) % qd : 0;
        int64_t q = t->type == ODL_TFL_INT32 ? (int64_t)(int32_t)rd32(p)
                  : t->type == ODL_TFL_INT8 ? (int64_t)(int8_t)p[0] : (int64_t)p[0];
        v[i] = (float)((double)t->q_scale[k] * (double)(q - t->q_zero[k]));
    }
    for (size_t i = 0; i < cnt; i++)
        if (!isfinite(v[i])) {
            free(v);
            return ofail(c, ODL_ERR_NUMERIC, "constant tensor '%s' holds a non-finite value at %zu",
                         t->name, i);
        }
    *out = v;
    *n = cnt;
    return ODL_OK;
}

/* An int32 constant (shapes, axes, paddings). */
static odl_status const_i32(ictx *c, int32_t ti, int32_t *v, size_t cap, size_t *n)
{
    if (ti < 0 || c->tm[ti].const_src != ti)
        return ofail(c, ODL_ERR_UNSUPPORTED, "input tensor %d must be an int32 constant", (int)ti);
    const odl_tfl_tensor *t = &c->f->tensors[ti];
    const odl_tfl_buffer *b = &c->f->buffers[t->buffer];
    size_t cnt = tcount(t);
    if (t->type != ODL_TFL_INT32 || cnt > cap || b->len != cnt * 4)
        return ofail(c, ODL_ERR_UNSUPPORTED, "tensor '%s' must be an int32 constant of at most %zu "
                     "values", t->name, cap);
    for (size_t i = 0; i < cnt; i++)
        v[i] = (int32_t)rd32(b->data + 4 * i);
    *n = cnt;
    return ODL_OK;
}

/* An activation input (computed by the graph, not a constant). */
static odl_status act_in(ictx *c, int32_t k, tmap **x)
{
    const odl_tfl_op *op = &c->f->ops[c->op];
    if (k >= op->n_in || op->in[k] < 0)
        return ofail(c, ODL_ERR_FORMAT, "input %d is missing", (int)k);
    tmap *m = &c->tm[op->in[k]];
    if (m->const_src >= 0)
        return ofail(c, ODL_ERR_UNSUPPORTED, "input %d (tensor '%s') is a constant; odl needs a "
                     "computed tensor there", (int)k, c->f->tensors[op->in[k]].name);
    if (m->t < 0)
        return ofail(c, ODL_ERR_FORMAT, "input %d (tensor '%s') is read before it is computed "
                     "(operators must be in execution order)", (int)k, c->f->tensors[op->in[k]].name);
    *x = m;
    return ODL_OK;
}

/* Appends a node producing TFLite tensor `ti` (or an internal one when
 * ti < 0, named after `base`). Takes ownership of w and b. */
static odl_status emit(ictx *c, const odl_node_desc *nd, float *w, size_t nw, float *b, size_t nb,
                       int32_t ti, const char *suffix)
{
    odl_onnx_model *m = c->m;
    int32_t i = m->desc.n_layers;
    if (i >= c->cap) {
        free(w);
        free(b);
        return ofail(c, ODL_ERR_NOMEM, "more nodes than planned (%d)", (int)c->cap);
    }
    const odl_tfl_op *op = &c->f->ops[c->op];
    const char *base = c->f->tensors[op->out[0]].name;
    size_t len = strlen(base) + (suffix ? strlen(suffix) : 0) + 1;
    char *name = malloc(len);
    if (!name) {
        free(w);
        free(b);
        return ofail(c, ODL_ERR_NOMEM, "out of memory");
    }
    snprintf(name, len, "%s%s", base, suffix ? suffix : "");
    odl_status s = odl_desc_add_node(&m->desc, nd, NULL);
    if (s != ODL_OK) {
        free(w);
        free(b);
        free(name);
        return ofail(c, s, "odl refuses the node (%s)", odl_layer_type_name(nd->type));
    }
    m->w[i] = w;
    m->b[i] = b;
    m->n_w[i] = w ? nw : 0;
    m->n_b[i] = b ? nb : 0;
    m->names[i + 1] = name;
    int params = nd->type == ODL_LAYER_CONV2D || nd->type == ODL_LAYER_DEPTHWISE || nd->type == ODL_LAYER_DENSE;
    c->nsrc[3 * i] = op->out[0];
    c->nsrc[3 * i + 1] = params && op->n_in > 1 ? op->in[1] : -1;
    c->nsrc[3 * i + 2] = params && op->n_in > 2 ? op->in[2] : -1;
    if (ti >= 0)
        c->tm[ti].t = i + 1;
    return ODL_OK;
}

static odl_node_desc node(ictx *c, int32_t type, int32_t in0)
{
    odl_node_desc nd = odl_node_defaults(&c->m->desc, type);
    nd.in[0] = in0;
    return nd;
}

/* The output's map: its shape from the TFLite tensor. */
static odl_status out_map(ictx *c, int32_t k, tmap **y)
{
    const odl_tfl_op *op = &c->f->ops[c->op];
    if (k >= op->n_out)
        return ofail(c, ODL_ERR_FORMAT, "output %d is missing", (int)k);
    tmap *m = &c->tm[op->out[k]];
    if (m->t >= 0 || m->const_src >= 0)
        return ofail(c, ODL_ERR_FORMAT, "tensor '%s' is written twice", c->f->tensors[op->out[k]].name);
    odl_status s = act_shape(c, op->out[k], &m->c, &m->h, &m->w);
    if (s != ODL_OK)
        return s;
    *y = m;
    return ODL_OK;
}

/* A fused activation after the node that produced y: another node, and y's
 * TFLite tensor moves to it. */
static odl_status fused(ictx *c, int32_t act, tmap *y)
{
    const odl_tfl_op *op = &c->f->ops[c->op];
    odl_node_desc nd;
    switch (act) {
    case 0:
        return ODL_OK;
    case 1:
        nd = node(c, ODL_LAYER_RELU, y->t);
        break;
    case 3:
        nd = node(c, ODL_LAYER_RELU6, y->t);
        break;
    case 2:
        nd = node(c, ODL_LAYER_CLIP, y->t);
        nd.alpha = -1.0f;
        nd.beta = 1.0f;
        break;
    case 4:
        nd = node(c, ODL_LAYER_TANH, y->t);
        break;
    default:
        return ofail(c, ODL_ERR_UNSUPPORTED, "fused activation %d (odl fuses none, RELU, "
                     "RELU_N1_TO_1, RELU6, TANH)", (int)act);
    }
    /* the node before keeps the tensor's name with "/preact" */
    char **prev = &c->m->names[c->m->desc.n_layers];
    size_t len = strlen(*prev) + 8;
    char *nm = malloc(len);
    if (!nm)
        return ofail(c, ODL_ERR_NOMEM, "out of memory");
    snprintf(nm, len, "%s/preact", *prev);
    free(*prev);
    *prev = nm;
    return emit(c, &nd, NULL, 0, NULL, 0, op->out[0], NULL);
}

static void same_pad(int32_t in, int32_t k, int32_t stride, int32_t dil, int32_t *before, int32_t *after)
{
    int64_t out = ((int64_t)in + stride - 1) / stride;
    int64_t eff = (int64_t)(k - 1) * dil + 1;
    int64_t total = (out - 1) * stride + eff - in;
    if (total < 0)
        total = 0;
    *before = (int32_t)(total / 2);
    *after = (int32_t)(total - total / 2);
}

static odl_status window(ictx *c, const odl_tfl_options *o, const tmap *x, int32_t kh, int32_t kw,
                         odl_node_desc *nd)
{
    if (o->stride_h < 1 || o->stride_w < 1 || o->stride_h > 1024 || o->stride_w > 1024 ||
        o->dil_h < 1 || o->dil_w < 1 || o->dil_h > 1024 || o->dil_w > 1024 || kh < 1 || kw < 1 ||
        kh > 4096 || kw > 4096)
        return ofail(c, ODL_ERR_FORMAT, "window %dx%d, strides %dx%d, dilation %dx%d (each 1..1024, "
                     "kernel 1..4096)", (int)kh, (int)kw, (int)o->stride_h, (int)o->stride_w,
                     (int)o->dil_h, (int)o->dil_w);
    if (o->padding != 0 && o->padding != 1)
        return ofail(c, ODL_ERR_UNSUPPORTED, "padding %d (SAME = 0 or VALID = 1)", (int)o->padding);
    nd->k_h = kh;
    nd->k_w = kw;
    nd->stride_h = o->stride_h;
    nd->stride_w = o->stride_w;
    nd->dil_h = o->dil_h;
    nd->dil_w = o->dil_w;
    if (o->padding == 0) {
        same_pad(x->h, kh, o->stride_h, o->dil_h, &nd->pad_t, &nd->pad_b);
        same_pad(x->w, kw, o->stride_w, o->dil_w, &nd->pad_l, &nd->pad_r);
    }
    return ODL_OK;
}

static odl_status no_perm(ictx *c, const tmap *x, const char *what)
{
    if (x->perm)
        return ofail(c, ODL_ERR_UNSUPPORTED, "%s a flattened [1,%d,%d,%d] feature map (odl keeps it "
                     "channel-major; only FULLY_CONNECTED and RESHAPE can read it)", what, (int)x->ph,
                     (int)x->pw, (int)x->pc);
    return ODL_OK;
}

static odl_status bias_of(ictx *c, int32_t k, size_t units, float **b)
{
    const odl_tfl_op *op = &c->f->ops[c->op];
    size_t nb = 0;
    *b = NULL;
    if (k < op->n_in && op->in[k] >= 0) {
        odl_status s = const_f32(c, op->in[k], b, &nb);
        if (s != ODL_OK)
            return s;
        if (nb != units) {
            free(*b);
            *b = NULL;
            return ofail(c, ODL_ERR_SHAPE, "the bias has %zu values for %zu outputs", nb, units);
        }
        return ODL_OK;
    }
    *b = calloc(units ? units : 1, sizeof **b);
    return *b ? ODL_OK : ofail(c, ODL_ERR_NOMEM, "out of memory");
}

static odl_status lower_conv(ictx *c, int depthwise)
{
    const odl_tfl_op *op = &c->f->ops[c->op];
    tmap *x = NULL, *y = NULL;
    odl_status s;
    if ((s = act_in(c, 0, &x)) || (s = no_perm(c, x, "reads")) || (s = out_map(c, 0, &y)))
        return s;
    if (op->n_in < 2 || op->in[1] < 0)
        return ofail(c, ODL_ERR_FORMAT, "no filter");
    const odl_tfl_tensor *wt = &c->f->tensors[op->in[1]];
    if (wt->rank != 4)
        return ofail(c, ODL_ERR_FORMAT, "the filter has rank %d (4 needed)", (int)wt->rank);
    int32_t o = wt->dims[0], kh = wt->dims[1], kw = wt->dims[2], ci = wt->dims[3];
    odl_node_desc nd = node(c, depthwise ? ODL_LAYER_DEPTHWISE : ODL_LAYER_CONV2D, x->t);
    if ((s = window(c, &op->opt, x, kh, kw, &nd)))
        return s;
    float *w, *b;
    size_t nw;
    int32_t units;
    if (depthwise) {
        /* filter [1, KH, KW, C*M] -> odl [C*M, 1, KH, KW]; output channel c*M + m in both */
        int32_t oc = ci;
        if (o != 1 || oc % x->c || oc != y->c)
            return ofail(c, ODL_ERR_SHAPE, "filter [%d,%d,%d,%d] for %d input and %d output channels",
                         (int)o, (int)kh, (int)kw, (int)ci, (int)x->c, (int)y->c);
        units = oc / x->c;
        nd.units = units;
        float *src;
        if ((s = const_f32(c, op->in[1], &src, &nw)))
            return s;
        w = malloc(nw * sizeof *w);
        if (!w) {
            free(src);
            return ofail(c, ODL_ERR_NOMEM, "out of memory");
        }
        for (int32_t q = 0; q < oc; q++)
            for (int32_t i = 0; i < kh * kw; i++)
                w[(size_t)q * (size_t)(kh * kw) + (size_t)i] = src[(size_t)i * (size_t)oc + (size_t)q];
        free(src);
        if ((s = bias_of(c, 2, (size_t)oc, &b))) {
            free(w);
            return s;
        }
        s = emit(c, &nd, w, nw, b, (size_t)oc, op->out[0], NULL);
    } else {
        /* filter [O, KH, KW, I] -> odl [O, I, KH, KW]; I < C: grouped */
        if (ci < 1 || x->c % ci || o % (x->c / ci) || o != y->c)
            return ofail(c, ODL_ERR_SHAPE, "filter [%d,%d,%d,%d] for %d input and %d output channels",
                         (int)o, (int)kh, (int)kw, (int)ci, (int)x->c, (int)y->c);
        nd.units = o;
        nd.groups = x->c / ci;
        float *src;
        if ((s = const_f32(c, op->in[1], &src, &nw)))
            return s;
        w = malloc(nw * sizeof *w);
        if (!w) {
            free(src);
            return ofail(c, ODL_ERR_NOMEM, "out of memory");
        }
        size_t K = (size_t)kh * (size_t)kw;
        for (size_t q = 0; q < (size_t)o; q++)
            for (size_t i = 0; i < (size_t)ci; i++)
                for (size_t k = 0; k < K; k++)
                    w[(q * (size_t)ci + i) * K + k] = src[(q * K + k) * (size_t)ci + i];
        free(src);
        if ((s = bias_of(c, 2, (size_t)o, &b))) {
            free(w);
            return s;
        }
        s = emit(c, &nd, w, nw, b, (size_t)o, op->out[0], NULL);
    }
    if (s != ODL_OK)
        return s;
    return fused(c, op->opt.fused, y);
}

static odl_status lower_fc(ictx *c)
{
    const odl_tfl_op *op = &c->f->ops[c->op];
    tmap *x = NULL, *y = NULL;
    odl_status s;
    if ((s = act_in(c, 0, &x)) || (s = out_map(c, 0, &y)))
        return s;
    if (op->opt.weights_format != 0)
        return ofail(c, ODL_ERR_UNSUPPORTED, "weights format %d (odl reads the default layout)",
                     (int)op->opt.weights_format);
    if (op->n_in < 2 || op->in[1] < 0)
        return ofail(c, ODL_ERR_FORMAT, "no weights");
    const odl_tfl_tensor *wt = &c->f->tensors[op->in[1]];
    size_t in = (size_t)x->c * (size_t)x->h * (size_t)x->w;
    if (wt->rank != 2 || (size_t)wt->dims[1] != in || wt->dims[0] != y->c || y->h != 1 || y->w != 1)
        return ofail(c, ODL_ERR_SHAPE, "weights of rank %d ([%d,%d]) for %zu inputs and output '%s'",
                     (int)wt->rank, (int)wt->dims[0], (int)(wt->rank > 1 ? wt->dims[1] : 0), in,
                     c->f->tensors[op->out[0]].name);
    size_t units = (size_t)wt->dims[0], nw;
    float *src, *w, *b;
    if ((s = const_f32(c, op->in[1], &src, &nw)))
        return s;
    /* TFLite reads the input in its h,w,c order; odl in c,h,w order */
    int32_t ph = x->perm ? x->ph : x->h, pw = x->perm ? x->pw : x->w, pc = x->perm ? x->pc : x->c;
    if (x->perm || !same_order(x)) {
        w = malloc(nw * sizeof *w);
        if (!w) {
            free(src);
            return ofail(c, ODL_ERR_NOMEM, "out of memory");
        }
        size_t HW = (size_t)ph * (size_t)pw;
        for (size_t u = 0; u < units; u++)
            for (size_t ch = 0; ch < (size_t)pc; ch++)
                for (size_t p = 0; p < HW; p++)
                    w[u * in + ch * HW + p] = src[u * in + p * (size_t)pc + ch];
        free(src);
    } else {
        w = src;
    }
    if ((s = bias_of(c, 2, units, &b))) {
        free(w);
        return s;
    }
    odl_node_desc nd = node(c, ODL_LAYER_DENSE, x->t);
    nd.units = (int32_t)units;
    if ((s = emit(c, &nd, w, nw, b, units, op->out[0], NULL)))
        return s;
    return fused(c, op->opt.fused, y);
}

static odl_status lower_binary(ictx *c, int32_t type)
{
    const odl_tfl_op *op = &c->f->ops[c->op];
    tmap *a = NULL, *b = NULL, *y = NULL;
    odl_status s;
    if (op->n_in != 2)
        return ofail(c, ODL_ERR_FORMAT, "%d inputs (2 expected)", (int)op->n_in);
    if ((s = act_in(c, 0, &a)) || (s = act_in(c, 1, &b)) || (s = out_map(c, 0, &y)))
        return s;
    size_t sa = (size_t)a->c * (size_t)a->h * (size_t)a->w, sb = (size_t)b->c * (size_t)b->h * (size_t)b->w;
    if (sb > sa) {
        tmap *t = a;
        a = b;
        b = t;
    }
    if (a->perm != b->perm || (a->perm && (a->ph != b->ph || a->pw != b->pw || a->pc != b->pc)))
        return ofail(c, ODL_ERR_UNSUPPORTED, "operands in different layouts (a flattened feature map "
                     "and another tensor)");
    odl_node_desc nd = node(c, type, a->t);
    nd.n_in = 2;
    nd.in[1] = b->t;
    if ((s = emit(c, &nd, NULL, 0, NULL, 0, op->out[0], NULL)))
        return s;
    y->perm = a->perm, y->ph = a->ph, y->pw = a->pw, y->pc = a->pc;
    return fused(c, op->opt.fused, y);
}

static odl_status lower_concat(ictx *c)
{
    const odl_tfl_op *op = &c->f->ops[c->op];
    tmap *y = NULL, *x = NULL;
    odl_status s;
    if ((s = out_map(c, 0, &y)))
        return s;
    if (op->n_in < 1 || op->n_in > ODL_NODE_MAX_IN)
        return ofail(c, ODL_ERR_UNSUPPORTED, "%d inputs (odl concatenates 1 to %d)", (int)op->n_in,
                     ODL_NODE_MAX_IN);
    int32_t rank = c->f->tensors[op->out[0]].rank, axis = op->opt.axis;
    if (axis < 0)
        axis += rank;
    if (axis != rank - 1)
        return ofail(c, ODL_ERR_UNSUPPORTED, "axis %d of a rank-%d tensor (odl concatenates channels, "
                     "the last axis)", (int)op->opt.axis, (int)rank);
    odl_node_desc nd = node(c, ODL_LAYER_CONCAT, 0);
    nd.n_in = op->n_in;
    for (int32_t k = 0; k < op->n_in; k++) {
        if ((s = act_in(c, k, &x)) || (s = no_perm(c, x, "concatenates")))
            return s;
        nd.in[k] = x->t;
    }
    if ((s = emit(c, &nd, NULL, 0, NULL, 0, op->out[0], NULL)))
        return s;
    return fused(c, op->opt.fused, y);
}

static odl_status lower_pool(ictx *c, int32_t type)
{
    const odl_tfl_op *op = &c->f->ops[c->op];
    tmap *x = NULL, *y = NULL;
    odl_status s;
    if ((s = act_in(c, 0, &x)) || (s = no_perm(c, x, "pools")) || (s = out_map(c, 0, &y)))
        return s;
    odl_node_desc nd = node(c, type, x->t);
    odl_tfl_options o = op->opt;
    o.dil_h = o.dil_w = 1;
    if ((s = window(c, &o, x, o.filter_h, o.filter_w, &nd)))
        return s;
    nd.units = x->c;
    /* TFLite's average pool divides by the cells inside the input (no COUNT_PAD) */
    if ((s = emit(c, &nd, NULL, 0, NULL, 0, op->out[0], NULL)))
        return s;
    return fused(c, op->opt.fused, y);
}

static odl_status lower_mean(ictx *c)
{
    const odl_tfl_op *op = &c->f->ops[c->op];
    tmap *x = NULL, *y = NULL;
    odl_status s;
    int32_t ax[8];
    size_t na;
    if ((s = act_in(c, 0, &x)) || (s = no_perm(c, x, "averages")) || (s = out_map(c, 0, &y)))
        return s;
    if (op->n_in < 2 || (s = const_i32(c, op->in[1], ax, 8, &na)))
        return op->n_in < 2 ? ofail(c, ODL_ERR_FORMAT, "no axes") : s;
    int32_t rank = c->f->tensors[op->in[0]].rank, got = 0;
    for (size_t k = 0; k < na; k++) {
        int32_t a = ax[k] < 0 ? ax[k] + rank : ax[k];
        got |= a == 1 ? 1 : a == 2 ? 2 : 4;
    }
    if (rank != 4 || got != 3)
        return ofail(c, ODL_ERR_UNSUPPORTED, "mean over %zu axes of a rank-%d tensor (odl averages "
                     "over height and width, axes 1 and 2 of [1,H,W,C])", na, (int)rank);
    odl_node_desc nd = node(c, ODL_LAYER_GAP, x->t);
    return emit(c, &nd, NULL, 0, NULL, 0, op->out[0], NULL);
}

static odl_status lower_pad(ictx *c)
{
    const odl_tfl_op *op = &c->f->ops[c->op];
    tmap *x = NULL, *y = NULL;
    odl_status s;
    int32_t p[8];
    size_t np;
    if ((s = act_in(c, 0, &x)) || (s = no_perm(c, x, "pads")) || (s = out_map(c, 0, &y)))
        return s;
    if (op->n_in < 2 || (s = const_i32(c, op->in[1], p, 8, &np)))
        return op->n_in < 2 ? ofail(c, ODL_ERR_FORMAT, "no paddings") : s;
    if (np != 8 || p[0] || p[1] || p[6] || p[7])
        return ofail(c, ODL_ERR_UNSUPPORTED, "paddings other than [[0,0],[t,b],[l,r],[0,0]] of a "
                     "[1,H,W,C] tensor");
    for (int k = 2; k < 6; k++)
        if (p[k] < 0 || p[k] > 4096)
            return ofail(c, ODL_ERR_UNSUPPORTED, "padding %d (0..4096)", (int)p[k]);
    odl_node_desc nd = node(c, ODL_LAYER_PAD, x->t);
    nd.pad_t = p[2], nd.pad_b = p[3], nd.pad_l = p[4], nd.pad_r = p[5];
    nd.alpha = 0.0f;
    return emit(c, &nd, NULL, 0, NULL, 0, op->out[0], NULL);
}

/* RESHAPE / SQUEEZE: the output tensor's shape decides. */
static odl_status lower_reshape(ictx *c)
{
    const odl_tfl_op *op = &c->f->ops[c->op];
    tmap *x = NULL, *y = NULL;
    odl_status s;
    if ((s = act_in(c, 0, &x)) || (s = out_map(c, 0, &y)))
        return s;
    int32_t ti = op->out[0];
    int32_t rank = c->f->tensors[ti].rank;
    if ((size_t)x->c * (size_t)x->h * (size_t)x->w != (size_t)y->c * (size_t)y->h * (size_t)y->w)
        return ofail(c, ODL_ERR_SHAPE, "%d x %d x %d elements into %d x %d x %d", (int)x->c, (int)x->h,
                     (int)x->w, (int)y->c, (int)y->h, (int)y->w);
    int flat_out = y->h == 1 && y->w == 1;
    if (x->perm || !same_order(x)) {
        if (!flat_out)
            return ofail(c, ODL_ERR_UNSUPPORTED, "a [1,H,W,C] map reshaped to rank %d with its "
                         "elements reordered (odl keeps maps channel-major; only flattening is "
                         "supported)", (int)rank);
        y->perm = 1;
        y->ph = x->perm ? x->ph : x->h;
        y->pw = x->perm ? x->pw : x->w;
        y->pc = x->perm ? x->pc : x->c;
    } else if (!same_order(y)) {
        return ofail(c, ODL_ERR_UNSUPPORTED, "a reshape to [1,%d,%d,%d] (odl would order its elements "
                     "channel-major, TFLite height-major)", (int)y->h, (int)y->w, (int)y->c);
    }
    if (x->c == y->c && x->h == y->h && x->w == y->w) {
        y->t = x->t; /* nothing to do on the odl side */
        return ODL_OK;
    }
    odl_node_desc nd = node(c, flat_out ? ODL_LAYER_FLATTEN : ODL_LAYER_RESHAPE, x->t);
    nd.shape_c = y->c, nd.shape_h = y->h, nd.shape_w = y->w;
    return emit(c, &nd, NULL, 0, NULL, 0, ti, NULL);
}

static odl_status lower_unary(ictx *c, int32_t type)
{
    const odl_tfl_op *op = &c->f->ops[c->op];
    tmap *x = NULL, *y = NULL;
    odl_status s;
    if ((s = act_in(c, 0, &x)) || (s = out_map(c, 0, &y)))
        return s;
    odl_node_desc nd = node(c, type, x->t);
    if (type == ODL_LAYER_CLIP)
        nd.alpha = -1.0f, nd.beta = 1.0f;
    if (type == ODL_LAYER_LEAKY_RELU)
        nd.alpha = op->opt.alpha;
    if ((s = emit(c, &nd, NULL, 0, NULL, 0, op->out[0], NULL)))
        return s;
    y->perm = x->perm, y->ph = x->ph, y->pw = x->pw, y->pc = x->pc;
    return ODL_OK;
}

/* QUANTIZE / DEQUANTIZE of a computed tensor, and SOFTMAX at the output:
 * the odl tensor is the input's. */
static odl_status lower_alias(ictx *c)
{
    tmap *x = NULL, *y = NULL;
    odl_status s;
    if ((s = act_in(c, 0, &x)) || (s = out_map(c, 0, &y)))
        return s;
    if (x->c != y->c || x->h != y->h || x->w != y->w)
        return ofail(c, ODL_ERR_SHAPE, "the output's shape differs from the input's");
    y->t = x->t;
    y->perm = x->perm, y->ph = x->ph, y->pw = x->pw, y->pc = x->pc;
    return ODL_OK;
}

static odl_status lower(ictx *c, int32_t *softmax_out)
{
    const odl_tfl_op *op = &c->f->ops[c->op];
    if (op->n_out != 1)
        return ofail(c, ODL_ERR_UNSUPPORTED, "%d outputs (odl operators have one)", (int)op->n_out);
    switch (op->builtin) {
    case ODL_TFL_OP_CONV_2D: return lower_conv(c, 0);
    case ODL_TFL_OP_DEPTHWISE_CONV_2D: return lower_conv(c, 1);
    case ODL_TFL_OP_FULLY_CONNECTED: return lower_fc(c);
    case ODL_TFL_OP_ADD: return lower_binary(c, ODL_LAYER_ADD);
    case ODL_TFL_OP_MUL: return lower_binary(c, ODL_LAYER_MUL);
    case ODL_TFL_OP_CONCATENATION: return lower_concat(c);
    case ODL_TFL_OP_AVERAGE_POOL_2D: return lower_pool(c, ODL_LAYER_AVGPOOL);
    case ODL_TFL_OP_MAX_POOL_2D: return lower_pool(c, ODL_LAYER_MAXPOOL);
    case ODL_TFL_OP_MEAN: return lower_mean(c);
    case ODL_TFL_OP_PAD: return lower_pad(c);
    case ODL_TFL_OP_RESHAPE:
    case ODL_TFL_OP_SQUEEZE: return lower_reshape(c);
    case ODL_TFL_OP_LOGISTIC: return lower_unary(c, ODL_LAYER_SIGMOID);
    case ODL_TFL_OP_HARD_SWISH: return lower_unary(c, ODL_LAYER_HARD_SWISH);
    case ODL_TFL_OP_RELU: return lower_unary(c, ODL_LAYER_RELU);
    case ODL_TFL_OP_RELU6: return lower_unary(c, ODL_LAYER_RELU6);
    case ODL_TFL_OP_RELU_N1_TO_1: return lower_unary(c, ODL_LAYER_CLIP);
    case ODL_TFL_OP_TANH: return lower_unary(c, ODL_LAYER_TANH);
    case ODL_TFL_OP_LEAKY_RELU: return lower_unary(c, ODL_LAYER_LEAKY_RELU);
    case ODL_TFL_OP_QUANTIZE:
    case ODL_TFL_OP_DEQUANTIZE: return lower_alias(c);
    case ODL_TFL_OP_SOFTMAX:
        if (op->opt.beta != 1.0f)
            return ofail(c, ODL_ERR_UNSUPPORTED, "beta %g (odl's softmax has beta 1)", (double)op->opt.beta);
        *softmax_out = op->out[0];
        return lower_alias(c);
    default:
        if (op->builtin == 32)
            return ofail(c, ODL_ERR_UNSUPPORTED, "custom operator '%s' is not supported",
                         c->f->custom[op->opcode_index] ? c->f->custom[op->opcode_index] : "");
        return ofail(c, ODL_ERR_UNSUPPORTED, "odl does not import this operator (docs/tflite.md "
                     "lists the supported ones)");
    }
}

static int is_int_type(int32_t t) { return t == ODL_TFL_INT8 || t == ODL_TFL_UINT8 || t == ODL_TFL_INT16; }

static void build_int8(ictx *c, odl_tflite_int8 *q);

odl_status odl_tflite_import(const void *buf, size_t len, odl_onnx_model *out, odl_tflite_int8 *q,
                             odl_diag *d)
{
    memset(out, 0, sizeof *out);
    if (q)
        memset(q, 0, sizeof *q);
    odl_tfl_file f;
    odl_status s = odl_tflite_parse(buf, len, &f, d);
    if (s != ODL_OK)
        return s;
    ictx c = {&f, d, out, NULL, 0, 0, 0, NULL};
    odl_onnx_model *m = out;
    if (f.n_inputs != 1 || f.n_outputs != 1) {
        s = odl_fail(d, ODL_ERR_UNSUPPORTED, "the subgraph has %d inputs and %d outputs (odl models "
                     "have one of each)", (int)f.n_inputs, (int)f.n_outputs);
        goto fail;
    }
    c.tm = malloc(((size_t)f.n_tensors + 1) * sizeof *c.tm);
    /* each operator gives at most two nodes (itself and a fused activation) */
    c.cap = 2 * f.n_ops + 1;
    size_t cap = (size_t)c.cap;
    m->nodes = calloc(cap, sizeof *m->nodes);
    m->w = calloc(cap, sizeof *m->w);
    m->b = calloc(cap, sizeof *m->b);
    m->n_w = calloc(cap, sizeof *m->n_w);
    m->n_b = calloc(cap, sizeof *m->n_b);
    m->names = calloc(cap + 1, sizeof *m->names);
    c.nsrc = malloc(3 * cap * sizeof *c.nsrc);
    if (!c.nsrc ||!c.tm || !m->nodes || !m->w || !m->b || !m->n_w || !m->n_b || !m->names) {
        s = odl_fail(d, ODL_ERR_NOMEM, "out of memory (%d tensors, %d operators)", (int)f.n_tensors,
                     (int)f.n_ops);
        goto fail;
    }
    /* constants: tensors with data, and DEQUANTIZE of one (float16 weights) */
    for (int32_t i = 0; i < f.n_tensors; i++) {
        c.tm[i] = (tmap){-1, 0, 0, 0, 0, 0, 0, 0, -1};
        const odl_tfl_tensor *t = &f.tensors[i];
        if (f.buffers[t->buffer].len)
            c.tm[i].const_src = i;
        if (is_int_type(t->type) && !f.buffers[t->buffer].len)
            c.int8 = 1;
        size_t cnt = 1;
        for (int32_t k = 0; k < t->rank; k++) {
            if (t->dims[k] && cnt > (size_t)INT32_MAX / (size_t)t->dims[k]) {
                s = odl_fail(d, ODL_ERR_UNSUPPORTED, "tensor %d '%s' has more than 2^31 elements",
                             (int)i, t->name);
                goto fail;
            }
            cnt *= (size_t)t->dims[k];
        }
    }
    for (int32_t i = 0; i < f.n_ops; i++) {
        const odl_tfl_op *op = &f.ops[i];
        if (op->builtin == ODL_TFL_OP_DEQUANTIZE && op->n_in == 1 && op->n_out == 1 && op->in[0] >= 0 &&
            c.tm[op->in[0]].const_src >= 0)
            c.tm[op->out[0]].const_src = c.tm[op->in[0]].const_src;
    }
    int32_t in_t = f.inputs[0], out_t = f.outputs[0];
    const odl_tfl_tensor *it = &f.tensors[in_t];
    if (c.tm[in_t].const_src >= 0) {
        s = odl_fail(d, ODL_ERR_FORMAT, "the input tensor '%s' holds constant data", it->name);
        goto fail;
    }
    if (it->type != ODL_TFL_FLOAT32 && it->type != ODL_TFL_INT8 && it->type != ODL_TFL_UINT8) {
        s = odl_fail(d, ODL_ERR_UNSUPPORTED, "the input tensor '%s' has type %d (float32 or int8)",
                     it->name, (int)it->type);
        goto fail;
    }
    int32_t ic, ih, iw;
    if ((s = act_shape(&c, in_t, &ic, &ih, &iw)) != ODL_OK)
        goto fail;
    if ((s = odl_desc_init(&m->desc, m->nodes, c.cap, ic, ih, iw)) != ODL_OK) {
        s = odl_fail(d, s, "input shape %d x %d x %d refused", (int)ic, (int)ih, (int)iw);
        goto fail;
    }
    c.tm[in_t].t = 0, c.tm[in_t].c = ic, c.tm[in_t].h = ih, c.tm[in_t].w = iw;
    if (!(m->names[0] = strdup(it->name))) {
        s = odl_fail(d, ODL_ERR_NOMEM, "out of memory");
        goto fail;
    }
    int32_t softmax_out = -1;
    for (c.op = 0; c.op < f.n_ops; c.op++) {
        const odl_tfl_op *op = &f.ops[c.op];
        if (op->builtin == ODL_TFL_OP_DEQUANTIZE && op->n_out == 1 && c.tm[op->out[0]].const_src >= 0)
            continue; /* folded into the constant */
        if ((s = lower(&c, &softmax_out)) != ODL_OK)
            goto fail;
    }
    const tmap *om = &c.tm[out_t];
    if (om->t < 0 || om->t != m->desc.n_layers || m->desc.n_layers == 0) {
        s = odl_fail(d, ODL_ERR_UNSUPPORTED, "the output tensor '%s' is %s (odl's output is the last "
                     "node's)", f.tensors[out_t].name,
                     om->t < 0 ? "never computed" : "not the last operator's result");
        goto fail;
    }
    if (om->perm) {
        s = odl_fail(d, ODL_ERR_UNSUPPORTED, "the output tensor '%s' is a flattened [1,H,W,C] map "
                     "(odl would give its elements channel-major)", f.tensors[out_t].name);
        goto fail;
    }
    if (softmax_out >= 0) {
        if (softmax_out != out_t) {
            s = odl_fail(d, ODL_ERR_UNSUPPORTED, "SOFTMAX on tensor '%s' before the output (odl applies "
                         "softmax at the output only)", f.tensors[softmax_out].name);
            goto fail;
        }
        m->desc.softmax_output = 1;
    }
    /* every node's shape, checked against the TFLite tensors' */
    odl_layer_shape *shapes = calloc((size_t)m->desc.n_layers + 1, sizeof *shapes);
    if (!shapes) {
        s = odl_fail(d, ODL_ERR_NOMEM, "out of memory");
        goto fail;
    }
    if ((s = odl_desc_check(&m->desc, shapes, d)) != ODL_OK) {
        free(shapes);
        goto fail;
    }
    for (int32_t i = 0; i < f.n_tensors; i++) {
        const tmap *t = &c.tm[i];
        if (t->t < 1)
            continue;
        const odl_layer_shape *sh = &shapes[t->t - 1];
        if (sh->c != t->c || sh->h != t->h || sh->w != t->w) {
            s = odl_fail(d, ODL_ERR_SHAPE, "tensor %d '%s': odl computes %d x %d x %d, the file says "
                         "%d x %d x %d (C x H x W)", (int)i, f.tensors[i].name, (int)sh->c, (int)sh->h,
                         (int)sh->w, (int)t->c, (int)t->h, (int)t->w);
            free(shapes);
            goto fail;
        }
    }
    free(shapes);
    const odl_tfl_tensor *ot = &f.tensors[out_t];
    m->out_rank = ot->rank;
    for (int32_t k = 0; k < ot->rank; k++)
        m->out_dims[k] = ot->dims[k];
    m->opset = f.version;
    snprintf(m->producer, sizeof m->producer, "%s", f.description ? f.description : "");
    if (q && c.int8) {
        q->is_int8 = 1;
        build_int8(&c, q);
    }
    free(c.tm);
    free(c.nsrc);
    odl_tflite_file_free(&f);
    return ODL_OK;
fail:
    free(c.tm);
    free(c.nsrc);
    /* names/params of nodes emitted so far */
    odl_onnx_free(m);
    odl_tflite_file_free(&f);
    return s;
}

odl_status odl_tflite_import_file(const char *path, size_t max_bytes, odl_onnx_model *out,
                                  odl_tflite_int8 *q, odl_diag *d)
{
    memset(out, 0, sizeof *out);
    if (!max_bytes)
        max_bytes = ODL_TFLITE_MAX_BYTES;
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return odl_fail(d, ODL_ERR_NOT_FOUND, "%s: cannot open it (%s)", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(fp), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(fp);
        return odl_fail(d, ODL_ERR_IO, "%s: not a regular file", path);
    }
    if ((uint64_t)st.st_size > max_bytes) {
        fclose(fp);
        return odl_fail(d, ODL_ERR_UNSUPPORTED, "%s: %lld bytes, above the limit of %zu", path,
                        (long long)st.st_size, max_bytes);
    }
    size_t n = (size_t)st.st_size;
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf) {
        fclose(fp);
        return odl_fail(d, ODL_ERR_NOMEM, "out of memory (%zu bytes)", n);
    }
    size_t got = fread(buf, 1, n, fp);
    fclose(fp);
    if (got != n) {
        free(buf);
        return odl_fail(d, ODL_ERR_IO, "%s: read %zu of %zu bytes", path, got, n);
    }
    odl_status s = odl_tflite_import(buf, n, out, q, d);
    free(buf);
    return s;
}

/* ---- the INT8 form -------------------------------------------------------- */

void odl_tflite_int8_free(odl_tflite_int8 *q)
{
    if (!q)
        return;
    for (int32_t i = 0; i < q->n_chunks; i++)
        free(q->payload[i]);
    free(q->payload);
    free(q->len);
    free(q->type);
    q->n_chunks = 0;
    q->payload = NULL;
    q->len = NULL;
    q->type = NULL;
}

/* The per-tensor parameters of an int8 activation tensor; 0 when it has none. */
static int act_q(const odl_tfl_file *f, int32_t ti, odl_qparams *p)
{
    const odl_tfl_tensor *t = &f->tensors[ti];
    if (t->type != ODL_TFL_INT8 || t->n_q != 1 || t->q_zero[0] < -128 || t->q_zero[0] > 127)
        return 0;
    p->scale = t->q_scale[0];
    p->zero_point = (int32_t)t->q_zero[0];
    return 1;
}

#define QWHY(...) do { snprintf(q->why, sizeof q->why, __VA_ARGS__); goto fail; } while (0)

/* 1 when node i's type runs in odl's INT8 runtime with TFLite's arithmetic:
 * layers with weights, pools, pad, the reshapes, ReLU/ReLU6 (fused or
 * keeping the scale), add, mul, concatenation with their requantisation,
 * and LOGISTIC, TANH, HARD_SWISH as 256-entry tables of TFLite's results. */
static int int8_importable(int32_t type)
{
    switch (type) {
    case ODL_LAYER_CONV2D: case ODL_LAYER_DEPTHWISE: case ODL_LAYER_DENSE:
    case ODL_LAYER_MAXPOOL: case ODL_LAYER_AVGPOOL: case ODL_LAYER_GAP: case ODL_LAYER_PAD:
    case ODL_LAYER_FLATTEN: case ODL_LAYER_RESHAPE: case ODL_LAYER_DROPOUT:
    case ODL_LAYER_RELU: case ODL_LAYER_RELU6:
    case ODL_LAYER_ADD: case ODL_LAYER_MUL: case ODL_LAYER_CONCAT:
    case ODL_LAYER_SIGMOID: case ODL_LAYER_TANH: case ODL_LAYER_HARD_SWISH:
        return 1;
    }
    return 0;
}

/* The file's own parameters (every int8 tensor's scale and zero point, int8
 * weights, int32 biases) given to an odl_qmodel, which computes the
 * multipliers exactly as TFLite's kernels do; its chunks are q's. */
static void build_int8(ictx *c, odl_tflite_int8 *q)
{
    const odl_tfl_file *f = c->f;
    const odl_onnx_model *m = c->m;
    const int32_t L = m->desc.n_layers;
    odl_qnode_params *np = calloc((size_t)L + 1, sizeof *np);
    int8_t **wq = calloc((size_t)L + 1, sizeof *wq);
    float **wsc = calloc((size_t)L + 1, sizeof *wsc);
    int32_t **bq = calloc((size_t)L + 1, sizeof *bq);
    void *arena_buf = NULL;
    odl_host_membuf mb = {0};
    if (!np || !wq || !wsc || !bq)
        QWHY("out of memory");
    /* the input's parameters: an int8 tensor that is odl tensor 0 (the
     * input itself, or what a QUANTIZE of a float input gives) */
    odl_qparams in_q = {0, 0};
    int found = 0;
    for (int32_t i = 0; i < f->n_tensors && !found; i++)
        if (c->tm[i].t == 0 && c->tm[i].const_src < 0)
            found = act_q(f, i, &in_q);
    if (!found)
        QWHY("the input has no int8 tensor with one scale and zero point");
    /* a QUANTIZE from int8 to int8 requantises; odl folds it only into a
     * concatenation (which requantises its inputs the same way) */
    for (int32_t k = 0; k < f->n_ops; k++) {
        const odl_tfl_op *op = &f->ops[k];
        odl_qparams a, b;
        if (op->builtin != ODL_TFL_OP_QUANTIZE || op->n_in < 1 || op->n_out < 1 || op->in[0] < 0 ||
            !act_q(f, op->in[0], &a) || !act_q(f, op->out[0], &b) ||
            (a.scale == b.scale && a.zero_point == b.zero_point))
            continue;
        for (int32_t r = 0; r < f->n_ops; r++)
            for (int32_t j = 0; j < f->ops[r].n_in; j++)
                if (f->ops[r].in[j] == op->out[0] && f->ops[r].builtin != ODL_TFL_OP_CONCATENATION)
                    QWHY("operator %d (QUANTIZE) requantises int8 for operator %d (%s); odl's INT8 runtime "
                         "folds such requantisation into CONCATENATION only", (int)k, (int)r,
                         odl_tflite_op_name(f->ops[r].builtin));
    }
    int32_t B = L;
    for (int32_t i = 0; i < L; i++) {
        const odl_node_desc *l = &m->desc.layers[i];
        const char *tn = f->tensors[c->nsrc[3 * i]].name;
        if (!act_q(f, c->nsrc[3 * i], &np[i].out)) {
            /* an INT8 base with a float head (after a DEQUANTIZE): the INT8
             * part ends at this node when it is a cut point */
            if (i > 0 && f->tensors[c->nsrc[3 * i]].type == ODL_TFL_FLOAT32 && odl_desc_is_cut(&m->desc, i)) {
                B = i;
                break;
            }
            QWHY("node %d ('%s'): its output is not int8 with one scale and zero point", (int)i, tn);
        }
        if (!int8_importable(l->type))
            QWHY("node %d ('%s', %s): odl's INT8 runtime has no TFLite-exact kernel for it", (int)i, tn,
                 odl_layer_type_name(l->type));
        /* pools, pad and reshapes move bytes; TFLite's MEAN with a new
         * scale rounds its own way: these must keep their input's parameters */
        if (l->type == ODL_LAYER_GAP || l->type == ODL_LAYER_MAXPOOL || l->type == ODL_LAYER_AVGPOOL ||
            l->type == ODL_LAYER_PAD || l->type == ODL_LAYER_FLATTEN || l->type == ODL_LAYER_RESHAPE ||
            l->type == ODL_LAYER_DROPOUT) {
            const odl_qparams a = l->in[0] == 0 ? in_q : np[l->in[0] - 1].out;
            if (a.scale != np[i].out.scale || a.zero_point != np[i].out.zero_point)
                QWHY("node %d ('%s', %s) changes the scale or zero point (%g, %d to %g, %d); odl's INT8 "
                     "layers of this kind keep their input's", (int)i, tn, odl_layer_type_name(l->type),
                     (double)a.scale, (int)a.zero_point, (double)np[i].out.scale, (int)np[i].out.zero_point);
        }
        if (l->type != ODL_LAYER_CONV2D && l->type != ODL_LAYER_DEPTHWISE && l->type != ODL_LAYER_DENSE)
            continue;
        const size_t C = m->n_b[i], W = m->n_w[i];
        const odl_tfl_tensor *wt = &f->tensors[c->nsrc[3 * i + 1]];
        if (wt->type != ODL_TFL_INT8 || (wt->n_q != 1 && (size_t)wt->n_q != C) || !C || W % C)
            QWHY("node %d ('%s'): weights '%s' are not int8 with per-tensor or per-channel scales", (int)i, tn,
                 wt->name);
        for (int32_t k = 0; k < wt->n_q; k++)
            if (wt->q_zero[k])
                QWHY("node %d ('%s'): weights '%s' have zero point %lld (odl's are symmetric)", (int)i, tn,
                     wt->name, (long long)wt->q_zero[k]);
        int32_t bt = c->nsrc[3 * i + 2];
        const odl_tfl_tensor *btt = bt >= 0 ? &f->tensors[bt] : NULL;
        if (btt && (btt->type != ODL_TFL_INT32 || f->buffers[btt->buffer].len != 4 * C))
            QWHY("node %d ('%s'): bias '%s' is not %zu int32 values", (int)i, tn, btt->name, C);
        wq[i] = malloc(W + 1);
        wsc[i] = malloc(C * sizeof **wsc);
        bq[i] = malloc(C * sizeof **bq);
        if (!wq[i] || !wsc[i] || !bq[i])
            QWHY("out of memory");
        const size_t per = W / C;
        for (size_t o = 0; o < C; o++) {
            const float ws = wt->q_scale[wt->n_q == 1 ? 0 : o];
            wsc[i][o] = ws;
            bq[i][o] = btt ? (int32_t)rd32(f->buffers[btt->buffer].data + 4 * o) : 0;
            if (bq[i][o] > ODL_QUANT_MAX_BIAS || bq[i][o] < -ODL_QUANT_MAX_BIAS)
                QWHY("node %d ('%s'): bias %d of channel %zu is beyond odl's +-2^30", (int)i, tn, (int)bq[i][o], o);
            /* odl's layout is already in m->w (dequantised exactly): w / scale
             * gives the int8 values back */
            for (size_t k = 0; k < per; k++) {
                double v = (double)m->w[i][o * per + k] / (double)ws;
                long r = lround(v);
                if (r < -128 || r > 127 || fabs(v - (double)r) > 1e-3)
                    QWHY("node %d ('%s'): weight %zu does not round-trip to int8", (int)i, tn, o * per + k);
                wq[i][o * per + k] = (int8_t)r;
            }
        }
        np[i].w = wq[i];
        np[i].w_scale = wsc[i];
        np[i].bias = bq[i];
    }
    odl_diag dg;
    odl_diag_clear(&dg);
    odl_mem_plan plan;
    odl_qmodel *qm = NULL;
    odl_arena a;
    odl_writer w;
    odl_host_membuf_writer(&mb, &w);
    if (odl_qmodel_plan(&m->desc, B, 1, &plan, &dg) != ODL_OK ||
        !(arena_buf = malloc(plan.total + ODL_ALIGN)) ||
        odl_arena_init(&a, arena_buf, plan.total + ODL_ALIGN) != ODL_OK ||
        odl_qmodel_init(&qm, &m->desc, B, 1, &a, &dg) != ODL_OK ||
        odl_qmodel_set_params(qm, in_q, np, &dg) != ODL_OK || odl_qmodel_write_chunks(qm, &w, &dg) != ODL_OK)
        QWHY("%s", dg.msg[0] ? dg.msg : "out of memory");
    /* the chunks as q's payloads: header (type, crc, length), payload padded to 16 */
    size_t n = 0;
    for (size_t pos = 0; pos + ODL_CHUNK_HEADER_BYTES <= mb.n; n++) {
        uint64_t len = rd64(mb.p + pos + 8);
        pos += ODL_CHUNK_HEADER_BYTES + (size_t)((len + 15) & ~(uint64_t)15);
    }
    q->payload = calloc(n + 1, sizeof *q->payload);
    q->len = calloc(n + 1, sizeof *q->len);
    q->type = calloc(n + 1, sizeof *q->type);
    if (!q->payload || !q->len || !q->type)
        QWHY("out of memory");
    for (size_t pos = 0; pos + ODL_CHUNK_HEADER_BYTES <= mb.n;) {
        const size_t len = (size_t)rd64(mb.p + pos + 8);
        void *p = malloc(len + 1);
        if (!p)
            QWHY("out of memory");
        memcpy(p, mb.p + pos + ODL_CHUNK_HEADER_BYTES, len);
        q->type[q->n_chunks] = rd32(mb.p + pos);
        q->payload[q->n_chunks] = p;
        q->len[q->n_chunks++] = len;
        pos += ODL_CHUNK_HEADER_BYTES + ((len + 15) & ~(size_t)15);
    }
    q->boundary = B;
    goto done;
fail:
    odl_tflite_int8_free(q);
done:
    for (int32_t i = 0; i < L && wq && wsc && bq; i++) {
        free(wq[i]);
        free(wsc[i]);
        free(bq[i]);
    }
    free(wq);
    free(wsc);
    free(bq);
    free(np);
    free(arena_buf);
    free(mb.p);
}

odl_status odl_tflite_save(const odl_onnx_model *im, const odl_model *m, const odl_tflite_int8 *q,
                           const odl_meta_kv *meta, int32_t n_meta, const char *path, odl_diag *d)
{
    void *payload;
    size_t plen;
    odl_status s = odl_names_encode(im->names, im->desc.n_layers + 1, &payload, &plen, d);
    if (s != ODL_OK)
        return s;
    odl_posix_file f;
    odl_writer w;
    if ((s = odl_posix_writer_open(&f, &w, path, d)) != ODL_OK) {
        free(payload);
        return s;
    }
    if ((s = odl_model_write_chunks(m, meta, n_meta, &w, d)) != ODL_OK ||
        (s = odl_file_write_chunk(&w, ODL_CHUNK_NAMES, payload, plen, d)) != ODL_OK)
        goto fail;
    for (int32_t i = 0; q && i < q->n_chunks; i++)
        if ((s = odl_file_write_chunk(&w, q->type[i], q->payload[i], q->len[i], d)) != ODL_OK)
            goto fail;
    if ((s = odl_file_write_end(&w, d)) != ODL_OK)
        goto fail;
    free(payload);
    return odl_posix_writer_commit(&f, d);
fail:
    free(payload);
    odl_posix_writer_abort(&f);
    return s;
}
