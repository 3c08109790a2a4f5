/* ONNX import (host only): ModelProto -> odl graph description and
 * parameters. See include/odl/onnx.h and docs/onnx.md.
 *
 * Every value the graph names is either a constant (an initializer, a
 * Constant node, or something computed from constants here: the shape
 * arithmetic PyTorch exports) or a runtime tensor (an odl tensor). Nodes
 * whose inputs are all constant are evaluated; the others are lowered to
 * odl nodes. Anything else is refused with one message naming the node. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "odl/onnx.h"
#include "odl/posix_io.h"
#include "onnx.pb-c.h"

#define MAXR 8                      /* ranks of constants */
#define MAX_ELEMS ((size_t)1 << 28) /* elements of one tensor */
#define MAX_DIM ((int64_t)1 << 24)  /* one dimension of the input */
/* Constants computed at import (shape arithmetic, ConstantOfShape) are
 * small; a bound keeps a tiny hostile file from asking for gigabytes. */
#define MAX_COMPUTED ((size_t)1 << 22)

enum { V_NONE = 0, V_CONST, V_RT };

typedef struct val {
    const char *name;
    int kind;
    int consumers;   /* readers in the graph (graph outputs count) */
    int rank;
    int64_t dims[MAXR];
    /* constants */
    int is_int;
    size_t count;
    float *f;
    int64_t *i;
    /* runtime tensors: dims[0] is the batch */
    int32_t t;
    int softmax;     /* this is the output of a final Softmax over tensor t */
} val;

typedef struct ctx {
    odl_diag *d;
    const odl_onnx_opts *o;
    int64_t opset;
    int64_t batch;
    val *tab;
    size_t tab_cap;
    /* the description being built */
    odl_node_desc *nodes;
    float **w, **b;
    size_t *nw, *nb;
    char **names;      /* n_nodes + 1 */
    int32_t *aliases;  /* extra names bound to each tensor */
    int32_t n_nodes, cap;
    int data_backed;   /* new_const is copying data present in the file */
    /* current node, for messages */
    size_t node_i;
    const Onnx__NodeProto *node;
    /* allocations owned until the end of the import */
    void **allocs;
    size_t n_allocs, cap_allocs;
} ctx;

/* ---- errors ------------------------------------------------------------- */

static odl_status failv(odl_diag *d, odl_status s, const char *fmt, va_list ap)
{
    if (d) {
        d->status = s;
        vsnprintf(d->msg, sizeof d->msg, fmt, ap);
    }
    return s;
}

static odl_status gfail(ctx *c, odl_status s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    failv(c->d, s, fmt, ap);
    va_end(ap);
    return s;
}

/* "node 12 'Conv_7' (Conv): <msg>" */
static odl_status nfail(ctx *c, odl_status s, const char *fmt, ...)
{
    char msg[ODL_DIAG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const Onnx__NodeProto *n = c->node;
    const char *name = n && n->name && n->name[0] ? n->name : NULL;
    const char *op = n && n->op_type ? n->op_type : "?";
    if (name)
        return gfail(c, s, "node %zu '%.60s' (%.40s): %s", c->node_i, name, op, msg);
    return gfail(c, s, "node %zu (%.40s): %s", c->node_i, op, msg);
}

/* ---- memory ------------------------------------------------------------- */

static void *cmalloc(ctx *c, size_t n)
{
    if (c->n_allocs == c->cap_allocs) {
        size_t cap = c->cap_allocs ? 2 * c->cap_allocs : 256;
        void **p = realloc(c->allocs, cap * sizeof *p);
        if (!p)
            return NULL;
        c->allocs = p;
        c->cap_allocs = cap;
    }
    void *p = malloc(n ? n : 1);
    if (p)
        c->allocs[c->n_allocs++] = p;
    return p;
}

static odl_status oom(ctx *c)
{
    return gfail(c, ODL_ERR_NOMEM, "out of memory while importing the ONNX model");
}

/* ---- the value table (open addressing on names) ------------------------- */

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

/* The entry for `name`, created empty if absent. */
static val *lookup(ctx *c, const char *name)
{
    size_t i = (size_t)(hash_str(name) & (c->tab_cap - 1));
    for (;;) {
        val *v = &c->tab[i];
        if (!v->name) {
            v->name = name;
            return v;
        }
        if (!strcmp(v->name, name))
            return v;
        i = (i + 1) & (c->tab_cap - 1);
    }
}

static size_t elems_of(int rank, const int64_t *dims, int *ok)
{
    size_t n = 1;
    *ok = 1;
    for (int k = 0; k < rank; k++) {
        if (dims[k] < 0 || (dims[k] > 0 && n > MAX_ELEMS / (size_t)dims[k])) {
            *ok = 0;
            return 0;
        }
        n *= (size_t)dims[k];
    }
    return n;
}

/* ---- constants ---------------------------------------------------------- */

static odl_status new_const(ctx *c, val *v, int is_int, int rank, const int64_t *dims)
{
    if (rank < 0 || rank > MAXR)
        return nfail(c, ODL_ERR_UNSUPPORTED, "a constant of rank %d (at most %d)", rank, MAXR);
    int ok;
    size_t n = elems_of(rank, dims, &ok);
    if (!ok)
        return nfail(c, ODL_ERR_UNSUPPORTED, "a constant with more than %zu elements", MAX_ELEMS);
    if (!c->data_backed && n > MAX_COMPUTED)
        return nfail(c, ODL_ERR_UNSUPPORTED, "a constant of %zu elements computed at import (at most "
                     "%zu)", n, MAX_COMPUTED);
    v->kind = V_CONST;
    v->is_int = is_int;
    v->rank = rank;
    for (int k = 0; k < rank; k++)
        v->dims[k] = dims[k];
    v->count = n;
    v->f = NULL;
    v->i = NULL;
    if (is_int)
        v->i = cmalloc(c, n * sizeof(int64_t));
    else
        v->f = cmalloc(c, n * sizeof(float));
    if (is_int ? !v->i : !v->f)
        return oom(c);
    return ODL_OK;
}

static const char *dtype_name(int32_t t)
{
    static const char *names[] = {"undefined", "float32", "uint8", "int8", "uint16", "int16",
                                  "int32", "int64", "string", "bool", "float16", "float64",
                                  "uint32", "uint64", "complex64", "complex128", "bfloat16"};
    return t >= 0 && t < (int32_t)(sizeof names / sizeof names[0]) ? names[t] : "unknown";
}

/* A TensorProto (initializer or Constant) as a constant value. */
static odl_status tensor_to_val(ctx *c, const Onnx__TensorProto *tp, val *v)
{
    const char *nm = tp->name && tp->name[0] ? tp->name : v->name;
    if ((tp->has_data_location && tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL) ||
        tp->n_external_data)
        return gfail(c, ODL_ERR_UNSUPPORTED,
                     "tensor '%.80s' keeps its data in an external file (odl reads models with "
                     "their data inside: re-save without external data)", nm);
    if (tp->segment)
        return gfail(c, ODL_ERR_UNSUPPORTED, "tensor '%.80s' is segmented (not supported)", nm);
    if (tp->n_dims > MAXR)
        return gfail(c, ODL_ERR_UNSUPPORTED, "tensor '%.80s' has rank %zu (at most %d)", nm,
                     tp->n_dims, MAXR);
    for (size_t k = 0; k < tp->n_dims; k++)
        if (tp->dims[k] < 0)
            return gfail(c, ODL_ERR_FORMAT, "tensor '%.80s' has a negative dimension", nm);
    int32_t dt = tp->has_data_type ? tp->data_type : 0;
    int is_int;
    size_t esz;
    if (dt == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT) {
        is_int = 0;
        esz = 4;
    } else if (dt == ONNX__TENSOR_PROTO__DATA_TYPE__INT64) {
        is_int = 1;
        esz = 8;
    } else if (dt == ONNX__TENSOR_PROTO__DATA_TYPE__INT32) {
        is_int = 1;
        esz = 4;
    } else {
        return gfail(c, ODL_ERR_UNSUPPORTED,
                     "tensor '%.80s' is %s: odl imports float32 models (int64/int32 only for "
                     "shapes); convert the model to float32", nm, dtype_name(dt));
    }
    int ok;
    size_t n = elems_of((int)tp->n_dims, tp->dims, &ok);
    if (!ok)
        return gfail(c, ODL_ERR_UNSUPPORTED, "tensor '%.80s' has more than %zu elements", nm, MAX_ELEMS);
    size_t have;
    const uint8_t *raw = NULL;
    if (tp->has_raw_data) {
        raw = tp->raw_data.data;
        have = tp->raw_data.len / esz;
        if (tp->raw_data.len % esz)
            return gfail(c, ODL_ERR_FORMAT, "tensor '%.80s': raw_data of %zu bytes is not a whole "
                         "number of %zu-byte elements", nm, tp->raw_data.len, esz);
    } else if (dt == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT) {
        have = tp->n_float_data;
    } else if (dt == ONNX__TENSOR_PROTO__DATA_TYPE__INT64) {
        have = tp->n_int64_data;
    } else {
        have = tp->n_int32_data;
    }
    if (have != n)
        return gfail(c, ODL_ERR_FORMAT, "tensor '%.80s': %zu values for a shape of %zu elements",
                     nm, have, n);
    int64_t dims[MAXR];
    for (size_t k = 0; k < tp->n_dims; k++)
        dims[k] = tp->dims[k];
    /* messages from new_const name the node; initializers have none */
    c->data_backed = 1;
    odl_status s = new_const(c, v, is_int, (int)tp->n_dims, dims);
    c->data_backed = 0;
    if (s != ODL_OK)
        return s;
    for (size_t k = 0; k < n; k++) {
        if (raw) {
            /* little-endian in the file; read byte by byte (raw_data has no alignment) */
            uint64_t u = 0;
            for (size_t b = 0; b < esz; b++)
                u |= (uint64_t)raw[k * esz + b] << (8 * b);
            if (!is_int) {
                uint32_t u32 = (uint32_t)u;
                memcpy(&v->f[k], &u32, 4);
            } else if (esz == 8) {
                v->i[k] = (int64_t)u;
            } else {
                v->i[k] = (int32_t)(uint32_t)u;
            }
        } else if (!is_int) {
            v->f[k] = tp->float_data[k];
        } else if (esz == 8) {
            v->i[k] = tp->int64_data[k];
        } else {
            v->i[k] = tp->int32_data[k];
        }
    }
    return ODL_OK;
}

/* ---- attributes --------------------------------------------------------- */

static const Onnx__AttributeProto *attr(const Onnx__NodeProto *n, const char *name)
{
    for (size_t k = 0; k < n->n_attribute; k++)
        if (n->attribute[k]->name && !strcmp(n->attribute[k]->name, name))
            return n->attribute[k];
    return NULL;
}

/* Every attribute of the node must be in `allowed` (comma-separated): an
 * attribute odl does not know could change the meaning. */
static odl_status check_attrs(ctx *c, const char *allowed)
{
    const Onnx__NodeProto *n = c->node;
    for (size_t k = 0; k < n->n_attribute; k++) {
        const char *a = n->attribute[k]->name ? n->attribute[k]->name : "";
        size_t la = strlen(a);
        const char *p = allowed;
        int found = 0;
        while (*p) {
            const char *e = strchr(p, ',');
            size_t l = e ? (size_t)(e - p) : strlen(p);
            if (l == la && !strncmp(p, a, l)) {
                found = 1;
                break;
            }
            p += l + (e ? 1 : 0);
        }
        if (!found)
            return nfail(c, ODL_ERR_UNSUPPORTED, "attribute '%.40s' is not supported", a);
    }
    return ODL_OK;
}

static odl_status attr_int(ctx *c, const char *name, int64_t def, int64_t *out)
{
    *out = def;
    const Onnx__AttributeProto *a = attr(c->node, name);
    if (!a) {
        *out = def;
        return ODL_OK;
    }
    if (!a->has_i && a->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT)
        return nfail(c, ODL_ERR_FORMAT, "attribute '%s' should be an integer", name);
    *out = a->i;
    return ODL_OK;
}

static odl_status attr_float(ctx *c, const char *name, float def, float *out)
{
    *out = def;
    const Onnx__AttributeProto *a = attr(c->node, name);
    if (!a) {
        *out = def;
        return ODL_OK;
    }
    if (!a->has_f && a->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT)
        return nfail(c, ODL_ERR_FORMAT, "attribute '%s' should be a float", name);
    *out = a->f;
    return ODL_OK;
}

/* Integer list attribute: *n = -1 when absent. */
static odl_status attr_ints(ctx *c, const char *name, int64_t *vals, int cap, int *n)
{
    const Onnx__AttributeProto *a = attr(c->node, name);
    *n = -1;
    if (!a)
        return ODL_OK;
    if (a->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS && a->n_ints == 0 && a->has_i)
        return nfail(c, ODL_ERR_FORMAT, "attribute '%s' should be a list of integers", name);
    if (a->n_ints > (size_t)cap)
        return nfail(c, ODL_ERR_UNSUPPORTED, "attribute '%s' has %zu values (at most %d)", name,
                     a->n_ints, cap);
    for (size_t k = 0; k < a->n_ints; k++)
        vals[k] = a->ints[k];
    *n = (int)a->n_ints;
    return ODL_OK;
}

/* String attribute, "" when absent. */
static const char *attr_str(ctx *c, const char *name, char *buf, size_t cap)
{
    const Onnx__AttributeProto *a = attr(c->node, name);
    buf[0] = 0;
    if (a && a->has_s) {
        size_t l = a->s.len < cap - 1 ? a->s.len : cap - 1;
        if (l)
            memcpy(buf, a->s.data, l);
        buf[l] = 0;
    }
    return buf;
}

/* ---- inputs ------------------------------------------------------------- */

static int n_inputs(const Onnx__NodeProto *n)
{
    /* trailing empty names are absent optional inputs */
    size_t k = n->n_input;
    while (k > 0 && (!n->input[k - 1] || !n->input[k - 1][0]))
        k--;
    return (int)k;
}

/* Input k: NULL when absent (optional), else the defined value. */
static odl_status input(ctx *c, int k, val **out)
{
    const Onnx__NodeProto *n = c->node;
    *out = NULL;
    if ((size_t)k >= n->n_input || !n->input[k] || !n->input[k][0])
        return ODL_OK;
    val *v = lookup(c, n->input[k]);
    if (v->kind == V_NONE)
        return nfail(c, ODL_ERR_FORMAT, "reads '%.80s', which no earlier node, initializer or "
                     "input defines", n->input[k]);
    if (v->kind == V_RT && v->softmax)
        return nfail(c, ODL_ERR_UNSUPPORTED, "reads the output of a Softmax: odl supports Softmax "
                     "only as the model's last node");
    *out = v;
    return ODL_OK;
}

static odl_status need_input(ctx *c, int k, val **out, const char *what)
{
    odl_status s = input(c, k, out);
    if (s == ODL_OK && !*out)
        return nfail(c, ODL_ERR_FORMAT, "input %d (%s) is missing", k, what);
    return s;
}

static odl_status need_const(ctx *c, int k, val **out, const char *what, int want_int)
{
    odl_status s = need_input(c, k, out, what);
    if (s != ODL_OK)
        return s;
    if ((*out)->kind != V_CONST)
        return nfail(c, ODL_ERR_UNSUPPORTED, "input %d (%s, '%.60s') must be a constant (it is "
                     "computed from the model's input)", k, what, (*out)->name);
    if (want_int >= 0 && (*out)->is_int != want_int)
        return nfail(c, ODL_ERR_UNSUPPORTED, "input %d (%s) must be %s", k, what,
                     want_int ? "int64" : "float32");
    return ODL_OK;
}

static odl_status need_rt(ctx *c, int k, val **out, const char *what)
{
    odl_status s = need_input(c, k, out, what);
    if (s != ODL_OK)
        return s;
    if ((*out)->kind != V_RT)
        return nfail(c, ODL_ERR_UNSUPPORTED, "input %d (%s) is a constant; odl runs this "
                     "operator only on tensors computed from the model's input", k, what);
    return ODL_OK;
}

/* The output value of the node (output k), which must be new. */
static odl_status output(ctx *c, int k, val **out)
{
    const Onnx__NodeProto *n = c->node;
    if ((size_t)k >= n->n_output || !n->output[k] || !n->output[k][0])
        return nfail(c, ODL_ERR_FORMAT, "output %d is missing", k);
    val *v = lookup(c, n->output[k]);
    if (v->kind != V_NONE)
        return nfail(c, ODL_ERR_FORMAT, "output '%.80s' is defined twice", n->output[k]);
    *out = v;
    return ODL_OK;
}

/* Outputs beyond the first (masks, indices, running statistics) must be
 * unused. */
static odl_status only_first_output(ctx *c)
{
    const Onnx__NodeProto *n = c->node;
    for (size_t k = 1; k < n->n_output; k++) {
        if (!n->output[k] || !n->output[k][0])
            continue;
        val *v = lookup(c, n->output[k]);
        if (v->consumers)
            return nfail(c, ODL_ERR_UNSUPPORTED, "its output %zu ('%.60s') is used; odl computes "
                         "only the first output of this operator", k, n->output[k]);
    }
    return ODL_OK;
}

/* ---- runtime tensors ---------------------------------------------------- */

static void rt_chw(const val *v, int32_t *cc, int32_t *h, int32_t *w)
{
    *cc = (int32_t)(v->rank > 1 ? v->dims[1] : 1);
    *h = (int32_t)(v->rank > 2 ? v->dims[2] : 1);
    *w = (int32_t)(v->rank > 3 ? v->dims[3] : 1);
}

static odl_status grow(ctx *c)
{
    if (c->n_nodes < c->cap)
        return ODL_OK;
    int32_t cap = c->cap ? 2 * c->cap : 64;
    odl_node_desc *nodes = realloc(c->nodes, (size_t)cap * sizeof *nodes);
    if (nodes)
        c->nodes = nodes;
    float **w = realloc(c->w, (size_t)cap * sizeof *w);
    if (w)
        c->w = w;
    float **b = realloc(c->b, (size_t)cap * sizeof *b);
    if (b)
        c->b = b;
    size_t *nw = realloc(c->nw, (size_t)cap * sizeof *nw);
    if (nw)
        c->nw = nw;
    size_t *nb = realloc(c->nb, (size_t)cap * sizeof *nb);
    if (nb)
        c->nb = nb;
    char **names = realloc(c->names, ((size_t)cap + 1) * sizeof *names);
    if (names)
        c->names = names;
    int32_t *aliases = realloc(c->aliases, ((size_t)cap + 1) * sizeof *aliases);
    if (aliases)
        c->aliases = aliases;
    if (!nodes || !w || !b || !nw || !nb || !names || !aliases)
        return oom(c);
    c->cap = cap;
    return ODL_OK;
}

static char *dupstr(const char *s)
{
    size_t l = strlen(s);
    char *p = malloc(l + 1);
    if (p)
        memcpy(p, s, l + 1);
    return p;
}

static odl_node_desc node_defaults(int32_t type)
{
    odl_node_desc n;
    memset(&n, 0, sizeof n);
    n.type = type;
    n.trainable = 1;
    n.n_in = 1;
    n.groups = 1;
    n.k_h = n.k_w = 1;
    n.stride_h = n.stride_w = 1;
    n.dil_h = n.dil_w = 1;
    return n;
}

/* Appends a node producing the node's output `ov` with ONNX dims
 * (rank, dims); takes ownership of w and b (malloc'd). */
static odl_status emit(ctx *c, const odl_node_desc *nd, float *w, size_t nw, float *b, size_t nb,
                       val *ov, int rank, const int64_t *dims)
{
    odl_status s = grow(c);
    if (s != ODL_OK) {
        free(w);
        free(b);
        return s;
    }
    int32_t i = c->n_nodes;
    char *nm = dupstr(ov->name);
    if (!nm) {
        free(w);
        free(b);
        return oom(c);
    }
    c->nodes[i] = *nd;
    c->w[i] = w;
    c->b[i] = b;
    c->nw[i] = nw;
    c->nb[i] = nb;
    c->names[i + 1] = nm;
    c->aliases[i + 1] = 0;
    c->n_nodes++;
    ov->kind = V_RT;
    ov->t = i + 1;
    ov->rank = rank;
    for (int k = 0; k < rank; k++)
        ov->dims[k] = dims[k];
    return ODL_OK;
}

/* Binds the output to an existing runtime tensor with (maybe) other ONNX dims. */
static void alias(ctx *c, val *ov, const val *src, int rank, const int64_t *dims)
{
    ov->kind = V_RT;
    ov->t = src->t;
    ov->softmax = 0;
    ov->rank = rank;
    for (int k = 0; k < rank; k++)
        ov->dims[k] = dims[k];
    c->aliases[src->t]++;
}

/* A unary node on runtime input 0 with output 0 of the same shape. */
static odl_status emit_unary(ctx *c, odl_node_desc nd)
{
    val *x, *y;
    odl_status s = need_rt(c, 0, &x, "X");
    if (s == ODL_OK)
        s = output(c, 0, &y);
    if (s != ODL_OK)
        return s;
    nd.in[0] = x->t;
    return emit(c, &nd, NULL, 0, NULL, 0, y, x->rank, x->dims);
}

/* The output becomes the input (with new dims) when the odl shape is the
 * same, else a reshape node. */
static odl_status emit_reshape(ctx *c, val *x, val *y, int rank, const int64_t *dims)
{
    if (rank < 2 || rank > 4)
        return nfail(c, ODL_ERR_UNSUPPORTED, "a result of rank %d (odl tensors are [N,C,H,W], "
                     "[N,C,L] or [N,F])", rank);
    if (dims[0] != c->batch)
        return nfail(c, ODL_ERR_UNSUPPORTED, "the result's first dimension is %lld, not the "
                     "batch (%lld): reshapes across samples are not supported",
                     (long long)dims[0], (long long)c->batch);
    val tmp = *y;
    tmp.rank = rank;
    for (int k = 0; k < rank; k++)
        tmp.dims[k] = dims[k];
    int32_t c0, h0, w0, c1, h1, w1;
    rt_chw(x, &c0, &h0, &w0);
    rt_chw(&tmp, &c1, &h1, &w1);
    if (c0 == c1 && h0 == h1 && w0 == w1) {
        alias(c, y, x, rank, dims);
        return ODL_OK;
    }
    odl_node_desc nd = node_defaults(ODL_LAYER_RESHAPE);
    nd.in[0] = x->t;
    nd.shape_c = c1;
    nd.shape_h = h1;
    nd.shape_w = w1;
    return emit(c, &nd, NULL, 0, NULL, 0, y, rank, dims);
}

/* ---- constant evaluation ------------------------------------------------ */

static double cget(const val *v, size_t k)
{
    return v->is_int ? (double)v->i[k] : (double)v->f[k];
}

/* Strides of `in` broadcast (numpy rules) to `out` (rank ro); 0 on
 * broadcast axes. Returns 0 when the shapes do not broadcast. */
static int bcast_strides(const val *in, int ro, const int64_t *od, size_t *st)
{
    size_t s = 1;
    for (int k = ro - 1; k >= 0; k--) {
        int ki = k - (ro - in->rank);
        if (ki < 0) {
            st[k] = 0;
            continue;
        }
        int64_t di = in->dims[ki];
        if (di == od[k])
            st[k] = di == 1 ? 0 : s;
        else if (di == 1)
            st[k] = 0;
        else
            return 0;
        s *= (size_t)di;
    }
    return 1;
}

static odl_status const_binary(ctx *c, const char *op, val *a, val *b, val *y)
{
    int ro = a->rank > b->rank ? a->rank : b->rank;
    int64_t od[MAXR] = {0};
    for (int k = 0; k < ro; k++) {
        int ka = k - (ro - a->rank), kb = k - (ro - b->rank);
        int64_t da = ka >= 0 ? a->dims[ka] : 1, db = kb >= 0 ? b->dims[kb] : 1;
        if (da != db && da != 1 && db != 1)
            return nfail(c, ODL_ERR_SHAPE, "operands of shapes that do not broadcast");
        od[k] = da == 1 ? db : da;
    }
    int is_int = a->is_int && b->is_int;
    if (a->is_int != b->is_int)
        return nfail(c, ODL_ERR_UNSUPPORTED, "operands of different types (int64 and float32)");
    odl_status s = new_const(c, y, is_int, ro, od);
    if (s != ODL_OK)
        return s;
    size_t sa[MAXR], sb[MAXR];
    bcast_strides(a, ro, od, sa);
    bcast_strides(b, ro, od, sb);
    int64_t idx[MAXR] = {0};
    for (size_t e = 0; e < y->count; e++) {
        size_t ia = 0, ib = 0;
        for (int k = 0; k < ro; k++) {
            ia += (size_t)idx[k] * sa[k];
            ib += (size_t)idx[k] * sb[k];
        }
        if (is_int) {
            int64_t x1 = a->i[ia], x2 = b->i[ib], r;
            if (!strcmp(op, "Add"))
                r = (int64_t)((uint64_t)x1 + (uint64_t)x2);
            else if (!strcmp(op, "Sub"))
                r = (int64_t)((uint64_t)x1 - (uint64_t)x2);
            else if (!strcmp(op, "Mul"))
                r = (int64_t)((uint64_t)x1 * (uint64_t)x2);
            else {
                if (x2 == 0 || (x1 == INT64_MIN && x2 == -1))
                    return nfail(c, ODL_ERR_ARG, "integer division by zero or overflow");
                r = x1 / x2;
            }
            y->i[e] = r;
        } else {
            float x1 = a->f[ia], x2 = b->f[ib];
            y->f[e] = !strcmp(op, "Add") ? x1 + x2 : !strcmp(op, "Sub") ? x1 - x2
                    : !strcmp(op, "Mul") ? x1 * x2 : x1 / x2;
        }
        for (int k = ro - 1; k >= 0; k--) {
            if (++idx[k] < od[k])
                break;
            idx[k] = 0;
        }
    }
    return ODL_OK;
}

/* y is src's data (same element count and type) with new dims; the data
 * is shared, not copied (weights pass through Identity and Reshape). */
static odl_status const_redim(ctx *c, const val *src, val *y, int rank, const int64_t *dims)
{
    if (rank < 0 || rank > MAXR)
        return nfail(c, ODL_ERR_UNSUPPORTED, "a constant of rank %d (at most %d)", rank, MAXR);
    int ok;
    size_t n = elems_of(rank, dims, &ok);
    if (!ok || n != src->count)
        return nfail(c, ODL_ERR_SHAPE, "%zu elements cannot take a shape of %zu", src->count, n);
    y->kind = V_CONST;
    y->is_int = src->is_int;
    y->rank = rank;
    for (int k = 0; k < rank; k++)
        y->dims[k] = dims[k];
    y->count = n;
    y->f = src->f;
    y->i = src->i;
    return ODL_OK;
}

static odl_status axes_arg(ctx *c, int first_input, int64_t *axes, int *n)
{
    /* axes: an attribute before opset 13 (Squeeze/Unsqueeze), an input after */
    odl_status s = attr_ints(c, "axes", axes, MAXR, n);
    if (s != ODL_OK || *n >= 0)
        return s;
    val *a;
    s = input(c, first_input, &a);
    if (s != ODL_OK || !a)
        return s;
    if (a->kind != V_CONST || !a->is_int)
        return nfail(c, ODL_ERR_UNSUPPORTED, "axes must be a constant int64 tensor");
    if (a->count > MAXR)
        return nfail(c, ODL_ERR_UNSUPPORTED, "%zu axes (at most %d)", a->count, MAXR);
    for (size_t k = 0; k < a->count; k++)
        axes[k] = a->i[k];
    *n = (int)a->count;
    return ODL_OK;
}

static int norm_axis(int64_t a, int rank, int *out)
{
    if (a < -rank || a >= rank)
        return 0;
    *out = (int)(a < 0 ? a + rank : a);
    return 1;
}

/* Dims after Unsqueeze (axes on the output rank). */
static odl_status unsqueeze_dims(ctx *c, int rank, const int64_t *dims, const int64_t *axes, int na,
                                 int *orank, int64_t *od)
{
    int ro = rank + na;
    if (ro > MAXR)
        return nfail(c, ODL_ERR_UNSUPPORTED, "a result of rank %d", ro);
    int mark[MAXR] = {0};
    for (int k = 0; k < na; k++) {
        int ax;
        if (!norm_axis(axes[k], ro, &ax) || mark[ax])
            return nfail(c, ODL_ERR_ARG, "axis %lld is out of range or repeated", (long long)axes[k]);
        mark[ax] = 1;
    }
    int j = 0;
    for (int k = 0; k < ro; k++)
        od[k] = mark[k] ? 1 : dims[j++];
    *orank = ro;
    return ODL_OK;
}

static odl_status squeeze_dims(ctx *c, int rank, const int64_t *dims, const int64_t *axes, int na,
                               int *orank, int64_t *od)
{
    int mark[MAXR] = {0};
    if (na < 0) {
        for (int k = 0; k < rank; k++)
            mark[k] = dims[k] == 1;
    } else {
        for (int k = 0; k < na; k++) {
            int ax;
            if (!norm_axis(axes[k], rank, &ax))
                return nfail(c, ODL_ERR_ARG, "axis %lld is out of range", (long long)axes[k]);
            if (dims[ax] != 1)
                return nfail(c, ODL_ERR_SHAPE, "axis %d has size %lld, not 1", ax, (long long)dims[ax]);
            mark[ax] = 1;
        }
    }
    int j = 0;
    for (int k = 0; k < rank; k++)
        if (!mark[k])
            od[j++] = dims[k];
    *orank = j;
    return ODL_OK;
}

/* Reshape's target: 0 copies, -1 is inferred. */
static odl_status reshape_dims(ctx *c, int rank, const int64_t *dims, const val *shape,
                               int allowzero, int *orank, int64_t *od)
{
    if (shape->rank != 1 || shape->count > MAXR)
        return nfail(c, ODL_ERR_UNSUPPORTED, "a target shape of %zu dimensions", shape->count);
    int ok;
    size_t total = elems_of(rank, dims, &ok);
    if (!ok)
        return nfail(c, ODL_ERR_SHAPE, "a tensor too large");
    int infer = -1;
    size_t known = 1;
    for (size_t k = 0; k < shape->count; k++) {
        int64_t v = shape->i[k];
        if (v == 0 && !allowzero) {
            if ((int)k >= rank)
                return nfail(c, ODL_ERR_SHAPE, "target dimension %zu copies a dimension the input "
                             "does not have", k);
            v = dims[k];
        }
        if (v == -1) {
            if (infer >= 0)
                return nfail(c, ODL_ERR_SHAPE, "two -1 dimensions in the target shape");
            infer = (int)k;
            od[k] = 1;
            continue;
        }
        if (v < 0 || v > (int64_t)MAX_ELEMS)
            return nfail(c, ODL_ERR_SHAPE, "target dimension %lld", (long long)v);
        od[k] = v;
        if (v && known > MAX_ELEMS / (size_t)v)
            return nfail(c, ODL_ERR_SHAPE, "a target shape too large");
        known *= (size_t)v;
    }
    if (infer >= 0) {
        if (known == 0 || total % known)
            return nfail(c, ODL_ERR_SHAPE, "cannot infer -1: %zu elements over %zu", total, known);
        od[infer] = (int64_t)(total / known);
    } else if (known != total) {
        return nfail(c, ODL_ERR_SHAPE, "target shape of %zu elements for %zu", known, total);
    }
    *orank = (int)shape->count;
    return ODL_OK;
}

/* Slice on a constant (opset < 10: attributes; >= 10: inputs). */
static odl_status const_slice(ctx *c, val *x, val *y)
{
    int64_t st[MAXR], en[MAXR], ax[MAXR], sp[MAXR];
    int ns, ne, na = -1, nsp = -1;
    odl_status s;
    if (c->opset < 10) {
        if ((s = attr_ints(c, "starts", st, MAXR, &ns)) != ODL_OK ||
            (s = attr_ints(c, "ends", en, MAXR, &ne)) != ODL_OK ||
            (s = attr_ints(c, "axes", ax, MAXR, &na)) != ODL_OK)
            return s;
    } else {
        val *v[4];
        for (int k = 0; k < 4; k++) {
            if ((s = input(c, k + 1, &v[k])) != ODL_OK)
                return s;
            if (v[k] && (v[k]->kind != V_CONST || !v[k]->is_int || v[k]->count > MAXR))
                return nfail(c, ODL_ERR_UNSUPPORTED, "slice input %d must be a constant int64 "
                             "list", k + 1);
        }
        if (!v[0] || !v[1])
            return nfail(c, ODL_ERR_FORMAT, "starts and ends are required");
        ns = (int)v[0]->count;
        ne = (int)v[1]->count;
        for (int k = 0; k < ns; k++)
            st[k] = v[0]->i[k];
        for (int k = 0; k < ne; k++)
            en[k] = v[1]->i[k];
        if (v[2]) {
            na = (int)v[2]->count;
            for (int k = 0; k < na; k++)
                ax[k] = v[2]->i[k];
        }
        if (v[3]) {
            nsp = (int)v[3]->count;
            for (int k = 0; k < nsp; k++)
                sp[k] = v[3]->i[k];
        }
    }
    if (ns < 0 || ne != ns || (na >= 0 && na != ns) || (nsp >= 0 && nsp != ns))
        return nfail(c, ODL_ERR_FORMAT, "starts, ends, axes and steps differ in length");
    int64_t start[MAXR], step[MAXR], od[MAXR];
    for (int k = 0; k < x->rank; k++) {
        start[k] = 0;
        step[k] = 1;
        od[k] = x->dims[k];
    }
    int seen[MAXR] = {0};
    for (int k = 0; k < ns; k++) {
        int a;
        if (!norm_axis(na >= 0 ? ax[k] : k, x->rank, &a) || seen[a])
            return nfail(c, ODL_ERR_ARG, "slice axis out of range or repeated");
        seen[a] = 1;
        int64_t dim = x->dims[a], p = nsp >= 0 ? sp[k] : 1, b = st[k], e = en[k];
        if (p == 0)
            return nfail(c, ODL_ERR_ARG, "slice step 0");
        if (b < 0)
            b += dim;
        if (e < 0)
            e += dim;
        if (p > 0) {
            b = b < 0 ? 0 : b > dim ? dim : b;
            e = e < 0 ? 0 : e > dim ? dim : e;
            od[a] = e > b ? (e - b + p - 1) / p : 0;
        } else {
            b = b < 0 ? -1 : b > dim - 1 ? dim - 1 : b;
            e = e < -1 ? -1 : e > dim - 1 ? dim - 1 : e;
            od[a] = b > e ? (b - e + (-p) - 1) / (-p) : 0;
        }
        start[a] = b;
        step[a] = p;
    }
    s = new_const(c, y, x->is_int, x->rank, od);
    if (s != ODL_OK)
        return s;
    size_t xs[MAXR];
    size_t acc = 1;
    for (int k = x->rank - 1; k >= 0; k--) {
        xs[k] = acc;
        acc *= (size_t)x->dims[k];
    }
    int64_t idx[MAXR] = {0};
    for (size_t e = 0; e < y->count; e++) {
        size_t src = 0;
        for (int k = 0; k < x->rank; k++)
            src += (size_t)(start[k] + idx[k] * step[k]) * xs[k];
        if (x->is_int)
            y->i[e] = x->i[src];
        else
            y->f[e] = x->f[src];
        for (int k = x->rank - 1; k >= 0; k--) {
            if (++idx[k] < od[k])
                break;
            idx[k] = 0;
        }
    }
    return ODL_OK;
}

static odl_status const_gather(ctx *c, val *x, val *ind, val *y)
{
    int64_t axis;
    odl_status s = attr_int(c, "axis", 0, &axis);
    if (s != ODL_OK)
        return s;
    int a;
    if (!norm_axis(axis, x->rank, &a))
        return nfail(c, ODL_ERR_ARG, "axis %lld out of range", (long long)axis);
    if (!ind->is_int)
        return nfail(c, ODL_ERR_FORMAT, "indices must be integers");
    int ro = x->rank - 1 + ind->rank;
    if (ro > MAXR)
        return nfail(c, ODL_ERR_UNSUPPORTED, "a result of rank %d", ro);
    int64_t od[MAXR] = {0};
    int j = 0;
    for (int k = 0; k < a; k++)
        od[j++] = x->dims[k];
    for (int k = 0; k < ind->rank; k++)
        od[j++] = ind->dims[k];
    for (int k = a + 1; k < x->rank; k++)
        od[j++] = x->dims[k];
    if ((s = new_const(c, y, x->is_int, ro, od)) != ODL_OK)
        return s;
    size_t outer = 1, inner = 1;
    for (int k = 0; k < a; k++)
        outer *= (size_t)x->dims[k];
    for (int k = a + 1; k < x->rank; k++)
        inner *= (size_t)x->dims[k];
    int64_t dim = x->dims[a];
    size_t e = 0;
    for (size_t o = 0; o < outer; o++)
        for (size_t q = 0; q < ind->count; q++) {
            int64_t i = ind->i[q];
            if (i < 0)
                i += dim;
            if (i < 0 || i >= dim)
                return nfail(c, ODL_ERR_ARG, "index %lld out of range (size %lld)",
                             (long long)ind->i[q], (long long)dim);
            size_t src = (o * (size_t)dim + (size_t)i) * inner;
            for (size_t r = 0; r < inner; r++, e++) {
                if (x->is_int)
                    y->i[e] = x->i[src + r];
                else
                    y->f[e] = x->f[src + r];
            }
        }
    return ODL_OK;
}

static odl_status const_concat(ctx *c, val *y)
{
    int64_t axis;
    odl_status s = attr_int(c, "axis", 0, &axis);
    if (s != ODL_OK)
        return s;
    int ni = n_inputs(c->node);
    val *v0;
    if ((s = need_input(c, 0, &v0, "inputs")) != ODL_OK)
        return s;
    int a;
    if (!norm_axis(axis, v0->rank, &a))
        return nfail(c, ODL_ERR_ARG, "axis %lld out of range", (long long)axis);
    int64_t od[MAXR] = {0};
    for (int k = 0; k < v0->rank; k++)
        od[k] = v0->dims[k];
    od[a] = 0;
    for (int q = 0; q < ni; q++) {
        val *v;
        if ((s = need_input(c, q, &v, "inputs")) != ODL_OK)
            return s;
        if (v->rank != v0->rank || v->is_int != v0->is_int)
            return nfail(c, ODL_ERR_SHAPE, "inputs of different ranks or types");
        for (int k = 0; k < v0->rank; k++)
            if (k != a && v->dims[k] != v0->dims[k])
                return nfail(c, ODL_ERR_SHAPE, "inputs differ in dimension %d", k);
        od[a] += v->dims[a];
    }
    if ((s = new_const(c, y, v0->is_int, v0->rank, od)) != ODL_OK)
        return s;
    size_t outer = 1;
    for (int k = 0; k < a; k++)
        outer *= (size_t)od[k];
    size_t e = 0;
    for (size_t o = 0; o < outer; o++)
        for (int q = 0; q < ni; q++) {
            val *v;
            input(c, q, &v);
            size_t blk = outer ? v->count / outer : 0;
            for (size_t r = 0; r < blk; r++, e++) {
                if (v->is_int)
                    y->i[e] = v->i[o * blk + r];
                else
                    y->f[e] = v->f[o * blk + r];
            }
        }
    return ODL_OK;
}

/* Transpose of a constant (PyTorch's F.pad exports its pads through one). */
static odl_status const_transpose(ctx *c, val *x, val *y)
{
    int64_t perm[MAXR];
    int np;
    odl_status s = attr_ints(c, "perm", perm, MAXR, &np);
    if (s != ODL_OK)
        return s;
    if (np < 0) /* default: reverse the axes */
        for (np = 0; np < x->rank; np++)
            perm[np] = x->rank - 1 - np;
    if (np != x->rank)
        return nfail(c, ODL_ERR_FORMAT, "perm has %d axes for a rank-%d tensor", np, x->rank);
    int seen[MAXR] = {0};
    int64_t od[MAXR] = {0};
    for (int k = 0; k < np; k++) {
        if (perm[k] < 0 || perm[k] >= x->rank || seen[perm[k]])
            return nfail(c, ODL_ERR_ARG, "perm is not a permutation");
        seen[perm[k]] = 1;
        od[k] = x->dims[perm[k]];
    }
    if ((s = new_const(c, y, x->is_int, x->rank, od)) != ODL_OK)
        return s;
    size_t xs[MAXR];
    size_t acc = 1;
    for (int k = x->rank - 1; k >= 0; k--) {
        xs[k] = acc;
        acc *= (size_t)x->dims[k];
    }
    int64_t idx[MAXR] = {0};
    for (size_t e = 0; e < y->count; e++) {
        size_t src = 0;
        for (int k = 0; k < np; k++)
            src += (size_t)idx[k] * xs[perm[k]];
        if (x->is_int)
            y->i[e] = x->i[src];
        else
            y->f[e] = x->f[src];
        for (int k = np - 1; k >= 0; k--) {
            if (++idx[k] < od[k])
                break;
            idx[k] = 0;
        }
    }
    return ODL_OK;
}

/* Nodes all of whose inputs are constants. Returns ODL_ERR_NOT_FOUND (no
 * message) when the operator is not one evaluated here. */
static odl_status eval_const(ctx *c, const char *op)
{
    const Onnx__NodeProto *n = c->node;
    val *x = NULL, *y;
    odl_status s;
    int ni = n_inputs(n);
    for (int k = 0; k < ni; k++) {
        val *v;
        if ((s = input(c, k, &v)) != ODL_OK)
            return s;
        if (v && v->kind != V_CONST)
            return ODL_ERR_NOT_FOUND;
        if (k == 0)
            x = v;
    }
    if (!strcmp(op, "Constant")) {
        if ((s = output(c, 0, &y)) != ODL_OK)
            return s;
        const Onnx__AttributeProto *a;
        if ((a = attr(n, "value")) && a->t)
            return tensor_to_val(c, a->t, y);
        int64_t none[1] = {0};
        if ((a = attr(n, "value_float"))) {
            if ((s = new_const(c, y, 0, 0, none)) == ODL_OK)
                y->f[0] = a->f;
            return s;
        }
        if ((a = attr(n, "value_int"))) {
            if ((s = new_const(c, y, 1, 0, none)) == ODL_OK)
                y->i[0] = a->i;
            return s;
        }
        if ((a = attr(n, "value_floats"))) {
            int64_t dd[1] = {(int64_t)a->n_floats};
            if ((s = new_const(c, y, 0, 1, dd)) == ODL_OK)
                for (size_t k = 0; k < a->n_floats; k++)
                    y->f[k] = a->floats[k];
            return s;
        }
        if ((a = attr(n, "value_ints"))) {
            int64_t dd[1] = {(int64_t)a->n_ints};
            if ((s = new_const(c, y, 1, 1, dd)) == ODL_OK)
                for (size_t k = 0; k < a->n_ints; k++)
                    y->i[k] = a->ints[k];
            return s;
        }
        return nfail(c, ODL_ERR_UNSUPPORTED, "a constant other than a dense tensor or number");
    }
    if (!strcmp(op, "ConstantOfShape")) {
        if ((s = need_const(c, 0, &x, "shape", 1)) != ODL_OK || (s = output(c, 0, &y)) != ODL_OK)
            return s;
        if (x->rank != 1 || x->count > MAXR)
            return nfail(c, ODL_ERR_UNSUPPORTED, "a shape of %zu dimensions", x->count);
        val fill;
        memset(&fill, 0, sizeof fill);
        fill.name = y->name;
        const Onnx__AttributeProto *a = attr(n, "value");
        int is_int = 0;
        double value = 0;
        if (a && a->t) {
            if ((s = tensor_to_val(c, a->t, &fill)) != ODL_OK)
                return s;
            if (fill.count != 1)
                return nfail(c, ODL_ERR_FORMAT, "value must hold one element");
            is_int = fill.is_int;
            value = cget(&fill, 0);
        }
        if ((s = new_const(c, y, is_int, (int)x->count, x->i)) != ODL_OK)
            return s;
        for (size_t k = 0; k < y->count; k++) {
            if (is_int)
                y->i[k] = (int64_t)value;
            else
                y->f[k] = (float)value;
        }
        return ODL_OK;
    }
    if (!x)
        return ODL_ERR_NOT_FOUND;
    if ((s = output(c, 0, &y)) != ODL_OK)
        return s;
    if (!strcmp(op, "Identity") || !strcmp(op, "Dropout"))
        return const_redim(c, x, y, x->rank, x->dims);
    if (!strcmp(op, "Shape")) {
        int64_t dd[1] = {x->rank};
        if ((s = new_const(c, y, 1, 1, dd)) != ODL_OK)
            return s;
        for (int k = 0; k < x->rank; k++)
            y->i[k] = x->dims[k];
        return ODL_OK;
    }
    if (!strcmp(op, "Cast")) {
        int64_t to;
        if ((s = attr_int(c, "to", 0, &to)) != ODL_OK)
            return s;
        int is_int = to == ONNX__TENSOR_PROTO__DATA_TYPE__INT64 || to == ONNX__TENSOR_PROTO__DATA_TYPE__INT32;
        if (!is_int && to != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT)
            return nfail(c, ODL_ERR_UNSUPPORTED, "a cast to %s", dtype_name((int32_t)to));
        if ((s = new_const(c, y, is_int, x->rank, x->dims)) != ODL_OK)
            return s;
        for (size_t k = 0; k < x->count; k++) {
            double v = cget(x, k);
            if (is_int) {
                if (!(v > -9.2e18 && v < 9.2e18))
                    return nfail(c, ODL_ERR_NUMERIC, "value %g does not fit int64", v);
                y->i[k] = (int64_t)v;
                if (to == ONNX__TENSOR_PROTO__DATA_TYPE__INT32)
                    y->i[k] = (int32_t)(uint32_t)(uint64_t)y->i[k];
            } else {
                y->f[k] = (float)v;
            }
        }
        return ODL_OK;
    }
    if (!strcmp(op, "Gather")) {
        val *ind;
        if ((s = need_const(c, 1, &ind, "indices", 1)) != ODL_OK)
            return s;
        return const_gather(c, x, ind, y);
    }
    if (!strcmp(op, "Unsqueeze") || !strcmp(op, "Squeeze")) {
        int64_t axes[MAXR] = {0}, od[MAXR] = {0};
        int na = -1, ro = 0;
        if ((s = axes_arg(c, 1, axes, &na)) != ODL_OK)
            return s;
        if (!strcmp(op, "Unsqueeze")) {
            if (na < 0)
                return nfail(c, ODL_ERR_FORMAT, "axes are required");
            s = unsqueeze_dims(c, x->rank, x->dims, axes, na, &ro, od);
        } else {
            s = squeeze_dims(c, x->rank, x->dims, axes, na, &ro, od);
        }
        return s != ODL_OK ? s : const_redim(c, x, y, ro, od);
    }
    if (!strcmp(op, "Reshape")) {
        val *shape;
        int64_t az = 0, od[MAXR] = {0};
        int ro = 0;
        if ((s = need_const(c, 1, &shape, "shape", 1)) != ODL_OK ||
            (s = attr_int(c, "allowzero", 0, &az)) != ODL_OK ||
            (s = reshape_dims(c, x->rank, x->dims, shape, (int)az, &ro, od)) != ODL_OK)
            return s;
        return const_redim(c, x, y, ro, od);
    }
    if (!strcmp(op, "Flatten")) {
        int64_t axis;
        int a;
        if ((s = attr_int(c, "axis", 1, &axis)) != ODL_OK)
            return s;
        if (!norm_axis(axis, x->rank + 1, &a))
            return nfail(c, ODL_ERR_ARG, "axis out of range");
        int64_t od[2] = {1, 1};
        for (int k = 0; k < x->rank; k++)
            od[k < a ? 0 : 1] *= x->dims[k];
        return const_redim(c, x, y, 2, od);
    }
    if (!strcmp(op, "Concat"))
        return const_concat(c, y);
    if (!strcmp(op, "Transpose"))
        return const_transpose(c, x, y);
    if (!strcmp(op, "Slice"))
        return const_slice(c, x, y);
    if (!strcmp(op, "Add") || !strcmp(op, "Sub") || !strcmp(op, "Mul") || !strcmp(op, "Div")) {
        val *b;
        if ((s = need_const(c, 1, &b, "B", -1)) != ODL_OK)
            return s;
        return const_binary(c, op, x, b, y);
    }
    /* unevaluated: let the caller name it */
    y->kind = V_NONE;
    return ODL_ERR_NOT_FOUND;
}

/* ---- lowering ----------------------------------------------------------- */

static int is_param_node(int32_t type)
{
    return type == ODL_LAYER_CONV2D || type == ODL_LAYER_DEPTHWISE || type == ODL_LAYER_DENSE ||
           type == ODL_LAYER_BATCHNORM;
}

/* The node producing x, if its parameters may absorb a per-channel affine:
 * conv/dense/batchnorm whose output nothing else reads. */
static int32_t foldable_producer(ctx *c, const val *x, int allow_affine)
{
    if (x->t <= 0 || x->consumers != 1 || c->aliases[x->t] != 0)
        return -1;
    if (strcmp(c->names[x->t], x->name))
        return -1;
    int32_t i = x->t - 1;
    int32_t type = c->nodes[i].type;
    if (type == ODL_LAYER_BATCHNORM ? !allow_affine : !is_param_node(type))
        return -1;
    return i;
}

/* y = x * scale[ch] + shift[ch] over channels (dims[1]); scale/shift in double. */
static odl_status emit_affine(ctx *c, val *x, val *y, const double *scale, const double *shift,
                              int32_t ch, int allow_fold_conv)
{
    int32_t p = foldable_producer(c, x, 1);
    if (p >= 0 && (allow_fold_conv || c->nodes[p].type == ODL_LAYER_BATCHNORM) &&
        c->nb[p] == (size_t)ch && c->nw[p] % (size_t)ch == 0) {
        size_t per = c->nw[p] / (size_t)ch;
        for (int32_t o = 0; o < ch; o++) {
            for (size_t k = 0; k < per; k++)
                c->w[p][(size_t)o * per + k] = (float)((double)c->w[p][(size_t)o * per + k] * scale[o]);
            c->b[p][o] = (float)((double)c->b[p][o] * scale[o] + shift[o]);
        }
        /* the folded tensor now carries the affine's output name */
        char *nm = dupstr(y->name);
        if (!nm)
            return oom(c);
        free(c->names[x->t]);
        c->names[x->t] = nm;
        y->kind = V_RT;
        y->t = x->t;
        y->rank = x->rank;
        memcpy(y->dims, x->dims, sizeof y->dims);
        x->consumers = 0; /* x's name is gone: nothing may fold into it again */
        return ODL_OK;
    }
    float *w = malloc((size_t)ch * sizeof *w), *b = malloc((size_t)ch * sizeof *b);
    if (!w || !b) {
        free(w);
        free(b);
        return oom(c);
    }
    for (int32_t o = 0; o < ch; o++) {
        w[o] = (float)scale[o];
        b[o] = (float)shift[o];
    }
    odl_node_desc nd = node_defaults(ODL_LAYER_BATCHNORM);
    nd.in[0] = x->t;
    return emit(c, &nd, w, (size_t)ch, b, (size_t)ch, y, x->rank, x->dims);
}

/* A constant operand broadcast over a runtime tensor x: per channel
 * (dims[1]) or a scalar. Fills vals[ch]. */
static odl_status per_channel(ctx *c, const val *x, const val *k, double *vals, int32_t ch)
{
    if (k->rank > x->rank)
        return nfail(c, ODL_ERR_UNSUPPORTED, "a constant operand of rank %d on a tensor of rank %d",
                     k->rank, x->rank);
    int per_ch = 0;
    for (int a = 0; a < x->rank; a++) {
        int ka = a - (x->rank - k->rank);
        int64_t dk = ka >= 0 ? k->dims[ka] : 1;
        if (dk == 1)
            continue;
        if (a == 1 && dk == ch) {
            per_ch = 1;
            continue;
        }
        return nfail(c, ODL_ERR_UNSUPPORTED, "a constant operand that varies along dimension %d "
                     "(odl broadcasts constants per channel or as scalars)", a);
    }
    for (int32_t o = 0; o < ch; o++)
        vals[o] = cget(k, per_ch ? (size_t)o : 0);
    return ODL_OK;
}

static odl_status lower_binary(ctx *c, const char *op)
{
    val *a, *b, *y;
    odl_status s;
    if ((s = need_input(c, 0, &a, "A")) != ODL_OK || (s = need_input(c, 1, &b, "B")) != ODL_OK ||
        (s = output(c, 0, &y)) != ODL_OK)
        return s;
    if (a->kind == V_CONST && b->kind == V_CONST)
        return nfail(c, ODL_ERR_UNSUPPORTED, "constant operands odl does not evaluate");
    int is_add = !strcmp(op, "Add"), is_mul = !strcmp(op, "Mul");
    int is_sub = !strcmp(op, "Sub"), is_div = !strcmp(op, "Div");
    if (a->kind == V_RT && b->kind == V_RT) {
        if (!is_add && !is_mul)
            return nfail(c, ODL_ERR_UNSUPPORTED, "%s of two computed tensors (odl has Add and Mul)", op);
        if (a->rank != b->rank)
            return nfail(c, ODL_ERR_UNSUPPORTED, "operands of ranks %d and %d", a->rank, b->rank);
        int a_full = 1, b_full = 1;
        for (int k = 1; k < a->rank; k++) {
            if (a->dims[k] != b->dims[k]) {
                if (a->dims[k] != 1 && b->dims[k] != 1)
                    return nfail(c, ODL_ERR_SHAPE, "operands differ in dimension %d", k);
                if (a->dims[k] == 1)
                    a_full = 0;
                else
                    b_full = 0;
            }
        }
        if (!a_full && !b_full)
            return nfail(c, ODL_ERR_UNSUPPORTED, "both operands broadcast");
        val *big = a_full ? a : b, *small = a_full ? b : a;
        /* the broadcast operand must be full, c x 1 x 1 or 1 x 1 x 1 */
        int ok_full = 1, ok_ch = 1, ok_scalar = 1;
        for (int k = 1; k < big->rank; k++) {
            if (small->dims[k] != big->dims[k])
                ok_full = 0;
            if (small->dims[k] != (k == 1 ? big->dims[1] : 1))
                ok_ch = 0;
            if (small->dims[k] != 1)
                ok_scalar = 0;
        }
        if (!ok_full && !ok_ch && !ok_scalar)
            return nfail(c, ODL_ERR_UNSUPPORTED, "a broadcast other than per channel or scalar");
        odl_node_desc nd = node_defaults(is_add ? ODL_LAYER_ADD : ODL_LAYER_MUL);
        nd.n_in = 2;
        nd.in[0] = big->t;
        nd.in[1] = small->t;
        return emit(c, &nd, NULL, 0, NULL, 0, y, big->rank, big->dims);
    }
    val *x = a->kind == V_RT ? a : b, *k = a->kind == V_RT ? b : a;
    int k_first = k == a;
    if (k->is_int)
        return nfail(c, ODL_ERR_UNSUPPORTED, "an integer constant operand on a float tensor");
    if (x->rank < 2)
        return nfail(c, ODL_ERR_UNSUPPORTED, "an operand of rank %d", x->rank);
    int32_t ch = (int32_t)x->dims[1];
    double *kv = malloc((size_t)ch * 2 * sizeof *kv);
    if (!kv)
        return oom(c);
    double *scale = kv, *shift = kv + ch;
    s = per_channel(c, x, k, shift, ch);
    if (s == ODL_OK) {
        for (int32_t o = 0; o < ch; o++) {
            double kk = shift[o];
            if (is_add) {
                scale[o] = 1;
            } else if (is_sub) {
                scale[o] = k_first ? -1 : 1;
                shift[o] = k_first ? kk : -kk;
            } else if (is_mul) {
                scale[o] = kk;
                shift[o] = 0;
            } else if (is_div && !k_first) {
                if (kk == 0) {
                    s = nfail(c, ODL_ERR_NUMERIC, "division by a constant zero");
                    break;
                }
                scale[o] = 1.0 / kk;
                shift[o] = 0;
            } else {
                s = nfail(c, ODL_ERR_UNSUPPORTED, "a constant divided by a computed tensor");
                break;
            }
        }
    }
    if (s == ODL_OK)
        s = emit_affine(c, x, y, scale, shift, ch, is_add || (is_sub && !k_first));
    free(kv);
    return s;
}

/* Window parameters common to Conv and the pools, for 1 or 2 spatial dims.
 * k: kernel; out: output dims; fills the node's window fields. */
static odl_status window(ctx *c, const val *x, const int64_t *kernel, int is_pool, odl_node_desc *nd,
                         int64_t *od)
{
    int sp = x->rank - 2;
    if (sp < 1 || sp > 2)
        return nfail(c, ODL_ERR_UNSUPPORTED, "an input of rank %d (odl windows run on [N,C,H,W] "
                     "or [N,C,L])", x->rank);
    int64_t strides[MAXR], dil[MAXR], pads[2 * MAXR], ks[MAXR];
    int n_str, n_dil, n_pad, n_ks;
    odl_status s;
    if ((s = attr_ints(c, "strides", strides, MAXR, &n_str)) != ODL_OK ||
        (s = attr_ints(c, "dilations", dil, MAXR, &n_dil)) != ODL_OK ||
        (s = attr_ints(c, "pads", pads, 2 * MAXR, &n_pad)) != ODL_OK ||
        (s = attr_ints(c, "kernel_shape", ks, MAXR, &n_ks)) != ODL_OK)
        return s;
    if ((n_str >= 0 && n_str != sp) || (n_dil >= 0 && n_dil != sp) || (n_pad >= 0 && n_pad != 2 * sp) ||
        (n_ks >= 0 && n_ks != sp))
        return nfail(c, ODL_ERR_FORMAT, "strides, dilations, pads or kernel_shape do not match %d "
                     "spatial dimensions", sp);
    for (int k = 0; k < sp; k++) {
        if (n_ks >= 0 && ks[k] != kernel[k])
            return nfail(c, ODL_ERR_FORMAT, "kernel_shape disagrees with the weights");
        if (n_str < 0)
            strides[k] = 1;
        if (n_dil < 0)
            dil[k] = 1;
        if (n_pad < 0)
            pads[k] = pads[k + sp] = 0;
        if (is_pool && dil[k] != 1)
            return nfail(c, ODL_ERR_UNSUPPORTED, "dilations %lld (pools with dilation are not "
                         "supported)", (long long)dil[k]);
        if (strides[k] < 1 || strides[k] > 1 << 16 || dil[k] < 1 || dil[k] > 1 << 16 ||
            kernel[k] < 1 || kernel[k] > 1 << 16)
            return nfail(c, ODL_ERR_UNSUPPORTED, "kernel %lld, stride %lld, dilation %lld",
                         (long long)kernel[k], (long long)strides[k], (long long)dil[k]);
    }
    char ap[32];
    attr_str(c, "auto_pad", ap, sizeof ap);
    int64_t ceil_mode = 0;
    if (is_pool && (s = attr_int(c, "ceil_mode", 0, &ceil_mode)) != ODL_OK)
        return s;
    for (int k = 0; k < sp; k++) {
        int64_t in = x->dims[2 + k], ext = (kernel[k] - 1) * dil[k] + 1;
        if (!strcmp(ap, "SAME_UPPER") || !strcmp(ap, "SAME_LOWER")) {
            int64_t out = (in + strides[k] - 1) / strides[k];
            int64_t total = (out - 1) * strides[k] + ext - in;
            if (total < 0)
                total = 0;
            pads[k] = !strcmp(ap, "SAME_UPPER") ? total / 2 : total - total / 2;
            pads[k + sp] = total - pads[k];
        } else if (!strcmp(ap, "VALID")) {
            pads[k] = pads[k + sp] = 0;
        } else if (ap[0] && strcmp(ap, "NOTSET")) {
            return nfail(c, ODL_ERR_UNSUPPORTED, "auto_pad '%s'", ap);
        }
        if (pads[k] < 0 || pads[k + sp] < 0 || pads[k] > 1 << 16 || pads[k + sp] > 1 << 16)
            return nfail(c, ODL_ERR_UNSUPPORTED, "padding %lld/%lld", (long long)pads[k],
                         (long long)pads[k + sp]);
        int64_t span = in + pads[k] + pads[k + sp] - ext;
        if (span < 0)
            return nfail(c, ODL_ERR_SHAPE, "a window of %lld larger than the padded input (%lld)",
                         (long long)ext, (long long)(in + pads[k] + pads[k + sp]));
        int64_t out = ceil_mode ? (span + strides[k] - 1) / strides[k] + 1 : span / strides[k] + 1;
        if (ceil_mode && (out - 1) * strides[k] >= in + pads[k]) {
            /* ONNX keeps a last window that starts in the end padding; odl
             * (as PyTorch) drops it. Refused rather than computed differently. */
            return nfail(c, ODL_ERR_UNSUPPORTED, "ceil_mode with a last window that starts in "
                         "the end padding (odl drops that window, as PyTorch does)");
        }
        od[2 + k] = out;
    }
    if (sp == 2) {
        nd->k_h = (int32_t)kernel[0];
        nd->k_w = (int32_t)kernel[1];
        nd->stride_h = (int32_t)strides[0];
        nd->stride_w = (int32_t)strides[1];
        nd->dil_h = (int32_t)dil[0];
        nd->dil_w = (int32_t)dil[1];
        nd->pad_t = (int32_t)pads[0];
        nd->pad_l = (int32_t)pads[1];
        nd->pad_b = (int32_t)pads[2];
        nd->pad_r = (int32_t)pads[3];
    } else {
        nd->k_h = (int32_t)kernel[0];
        nd->stride_h = (int32_t)strides[0];
        nd->dil_h = (int32_t)dil[0];
        nd->pad_t = (int32_t)pads[0];
        nd->pad_b = (int32_t)pads[1];
    }
    if (ceil_mode)
        nd->flags |= ODL_NODE_CEIL_MODE;
    od[0] = x->dims[0];
    od[1] = x->dims[1];
    return ODL_OK;
}

static float *fdup(const float *src, size_t n)
{
    float *p = malloc((n ? n : 1) * sizeof *p);
    if (p && n)
        memcpy(p, src, n * sizeof *p);
    return p;
}

static odl_status lower_conv(ctx *c)
{
    val *x, *wv, *bv, *y;
    odl_status s;
    if ((s = check_attrs(c, "auto_pad,dilations,group,kernel_shape,pads,strides")) != ODL_OK ||
        (s = need_rt(c, 0, &x, "X")) != ODL_OK || (s = need_const(c, 1, &wv, "W", 0)) != ODL_OK ||
        (s = input(c, 2, &bv)) != ODL_OK || (s = output(c, 0, &y)) != ODL_OK)
        return s;
    if (wv->rank != x->rank)
        return nfail(c, ODL_ERR_SHAPE, "weights of rank %d for an input of rank %d", wv->rank, x->rank);
    int64_t group;
    if ((s = attr_int(c, "group", 1, &group)) != ODL_OK)
        return s;
    int64_t cin = x->dims[1], m = wv->dims[0];
    if (group < 1 || cin % group || m % group || wv->dims[1] != cin / group || m < 1 || m > INT32_MAX)
        return nfail(c, ODL_ERR_SHAPE, "weights [%lld, %lld, ...] with group %lld do not fit %lld "
                     "input channels", (long long)m, (long long)wv->dims[1], (long long)group,
                     (long long)cin);
    if (bv && (bv->kind != V_CONST || bv->is_int || bv->count != (size_t)m))
        return nfail(c, ODL_ERR_UNSUPPORTED, "the bias must be a float32 constant of %lld values",
                     (long long)m);
    int64_t od[4] = {0};
    odl_node_desc nd = node_defaults(ODL_LAYER_CONV2D);
    if ((s = window(c, x, wv->dims + 2, 0, &nd, od)) != ODL_OK)
        return s;
    od[1] = m;
    if (group > 1 && group == cin) {
        nd.type = ODL_LAYER_DEPTHWISE;
        nd.units = (int32_t)(m / cin);
    } else {
        nd.units = (int32_t)m;
        nd.groups = (int32_t)group;
    }
    nd.in[0] = x->t;
    float *w = fdup(wv->f, wv->count), *b = calloc((size_t)m, sizeof *b);
    if (!w || !b) {
        free(w);
        free(b);
        return oom(c);
    }
    if (bv)
        memcpy(b, bv->f, (size_t)m * sizeof *b);
    return emit(c, &nd, w, wv->count, b, (size_t)m, y, x->rank, od);
}

static odl_status lower_pool(ctx *c, int is_max)
{
    val *x, *y;
    odl_status s;
    if ((s = check_attrs(c, is_max ? "auto_pad,ceil_mode,dilations,kernel_shape,pads,storage_order,strides"
                                   : "auto_pad,ceil_mode,count_include_pad,kernel_shape,pads,strides")) != ODL_OK ||
        (s = need_rt(c, 0, &x, "X")) != ODL_OK || (s = only_first_output(c)) != ODL_OK ||
        (s = output(c, 0, &y)) != ODL_OK)
        return s;
    int64_t ks[MAXR];
    int nks;
    if ((s = attr_ints(c, "kernel_shape", ks, MAXR, &nks)) != ODL_OK)
        return s;
    if (nks != x->rank - 2)
        return nfail(c, ODL_ERR_FORMAT, "kernel_shape has %d values for %d spatial dimensions",
                     nks, x->rank - 2);
    odl_node_desc nd = node_defaults(is_max ? ODL_LAYER_MAXPOOL : ODL_LAYER_AVGPOOL);
    int64_t od[4] = {0};
    if ((s = window(c, x, ks, 1, &nd, od)) != ODL_OK)
        return s;
    int64_t cip = 0;
    if (!is_max && (s = attr_int(c, "count_include_pad", 0, &cip)) != ODL_OK)
        return s;
    if (cip)
        nd.flags |= ODL_NODE_COUNT_PAD;
    nd.units = (int32_t)x->dims[1];
    nd.in[0] = x->t;
    return emit(c, &nd, NULL, 0, NULL, 0, y, x->rank, od);
}

static odl_status emit_gap(ctx *c, val *x, val *y, int keep)
{
    if (x->rank < 3)
        return nfail(c, ODL_ERR_UNSUPPORTED, "an input of rank %d", x->rank);
    int64_t od[4] = {x->dims[0], x->dims[1], 1, 1};
    odl_node_desc nd = node_defaults(ODL_LAYER_GAP);
    nd.in[0] = x->t;
    return emit(c, &nd, NULL, 0, NULL, 0, y, keep ? x->rank : 2, od);
}

/* Dense y = x W^T + b from W (units x in, row-major) and b. */
static odl_status emit_dense(ctx *c, val *x, val *y, float *w, size_t in, size_t units, float *b)
{
    if (x->rank != 2) {
        free(w);
        free(b);
        return nfail(c, ODL_ERR_UNSUPPORTED, "an input of rank %d (odl's dense layer takes [N, F]; "
                     "flatten first)", x->rank);
    }
    odl_node_desc nd = node_defaults(ODL_LAYER_DENSE);
    nd.units = (int32_t)units;
    nd.in[0] = x->t;
    int64_t od[2] = {x->dims[0], (int64_t)units};
    return emit(c, &nd, w, in * units, b, units, y, 2, od);
}

static odl_status lower_gemm(ctx *c, int matmul)
{
    val *x, *bm, *cv = NULL, *y;
    odl_status s;
    int64_t ta = 0, tb = 0;
    float alpha = 1, beta = 1;
    if (!matmul) {
        if ((s = check_attrs(c, "alpha,beta,transA,transB")) != ODL_OK ||
            (s = attr_int(c, "transA", 0, &ta)) != ODL_OK || (s = attr_int(c, "transB", 0, &tb)) != ODL_OK ||
            (s = attr_float(c, "alpha", 1, &alpha)) != ODL_OK || (s = attr_float(c, "beta", 1, &beta)) != ODL_OK)
            return s;
        if (ta)
            return nfail(c, ODL_ERR_UNSUPPORTED, "transA = 1 (the input must not be transposed)");
    } else if ((s = check_attrs(c, "")) != ODL_OK) {
        return s;
    }
    if ((s = need_rt(c, 0, &x, "A")) != ODL_OK)
        return s;
    if ((s = need_input(c, 1, &bm, "B")) != ODL_OK)
        return s;
    if (bm->kind != V_CONST || bm->is_int)
        return nfail(c, ODL_ERR_UNSUPPORTED, "B must be a float32 constant (odl multiplies by "
                     "weights, not by another computed tensor)");
    if (!matmul && (s = input(c, 2, &cv)) != ODL_OK)
        return s;
    if ((s = output(c, 0, &y)) != ODL_OK)
        return s;
    if (bm->rank != 2)
        return nfail(c, ODL_ERR_UNSUPPORTED, "B of rank %d (odl needs a 2-D weight matrix)", bm->rank);
    if (x->rank != 2)
        return nfail(c, ODL_ERR_UNSUPPORTED, "A of rank %d (odl's dense layer takes [N, F])", x->rank);
    int64_t k = tb ? bm->dims[1] : bm->dims[0], n = tb ? bm->dims[0] : bm->dims[1];
    if (k != x->dims[1] || n < 1 || n > INT32_MAX)
        return nfail(c, ODL_ERR_SHAPE, "B is [%lld, %lld] for an input of %lld features",
                     (long long)bm->dims[0], (long long)bm->dims[1], (long long)x->dims[1]);
    float *w = malloc((size_t)(k * n) * sizeof *w), *b = calloc((size_t)n, sizeof *b);
    if (!w || !b) {
        free(w);
        free(b);
        return oom(c);
    }
    for (int64_t o = 0; o < n; o++)
        for (int64_t i = 0; i < k; i++) {
            float v = tb ? bm->f[o * k + i] : bm->f[i * n + o];
            w[o * k + i] = alpha == 1 ? v : (float)((double)alpha * v);
        }
    if (cv) {
        if (cv->kind != V_CONST || cv->is_int) {
            free(w);
            free(b);
            return nfail(c, ODL_ERR_UNSUPPORTED, "C must be a float32 constant");
        }
        /* C broadcast to [batch, n]: a scalar, [n], [1, n] */
        int per = 0, ok = cv->rank <= 2;
        for (int a = 0; a < cv->rank && ok; a++) {
            int64_t dd = cv->dims[a];
            if (a == cv->rank - 1 && dd == n)
                per = 1;
            else if (dd != 1)
                ok = 0;
        }
        if (!ok) {
            free(w);
            free(b);
            return nfail(c, ODL_ERR_UNSUPPORTED, "C must be a scalar or a row of %lld values (one "
                         "bias per output)", (long long)n);
        }
        for (int64_t o = 0; o < n; o++) {
            float v = cv->f[per ? o : 0];
            b[o] = beta == 1 ? v : (float)((double)beta * v);
        }
    }
    return emit_dense(c, x, y, w, (size_t)k, (size_t)n, b);
}

static odl_status lower_batchnorm(ctx *c)
{
    val *x, *p[4], *y;
    odl_status s;
    static const char *what[4] = {"scale", "B", "mean", "var"};
    if ((s = check_attrs(c, "epsilon,momentum,training_mode,spatial")) != ODL_OK ||
        (s = need_rt(c, 0, &x, "X")) != ODL_OK)
        return s;
    for (int k = 0; k < 4; k++)
        if ((s = need_const(c, k + 1, &p[k], what[k], 0)) != ODL_OK)
            return s;
    int64_t tm, spatial;
    float eps;
    if ((s = attr_int(c, "training_mode", 0, &tm)) != ODL_OK ||
        (s = attr_int(c, "spatial", 1, &spatial)) != ODL_OK ||
        (s = attr_float(c, "epsilon", 1e-5f, &eps)) != ODL_OK)
        return s;
    if (tm)
        return nfail(c, ODL_ERR_UNSUPPORTED, "training_mode = 1 (odl imports inference graphs)");
    if (spatial != 1)
        return nfail(c, ODL_ERR_UNSUPPORTED, "spatial = %lld", (long long)spatial);
    if ((s = only_first_output(c)) != ODL_OK || (s = output(c, 0, &y)) != ODL_OK)
        return s;
    if (x->rank < 2)
        return nfail(c, ODL_ERR_UNSUPPORTED, "an input of rank %d", x->rank);
    int32_t ch = (int32_t)x->dims[1];
    for (int k = 0; k < 4; k++)
        if (p[k]->count != (size_t)ch)
            return nfail(c, ODL_ERR_SHAPE, "%s has %zu values for %d channels", what[k], p[k]->count, ch);
    double *kv = malloc((size_t)ch * 2 * sizeof *kv);
    if (!kv)
        return oom(c);
    for (int32_t o = 0; o < ch; o++) {
        double var = (double)p[3]->f[o] + (double)eps;
        if (!(var > 0)) {
            free(kv);
            return nfail(c, ODL_ERR_NUMERIC, "variance + epsilon of channel %d is %g (not positive)",
                         o, var);
        }
        kv[o] = (double)p[0]->f[o] / sqrt(var);
        kv[ch + o] = (double)p[1]->f[o] - (double)p[2]->f[o] * kv[o];
    }
    s = emit_affine(c, x, y, kv, kv + ch, ch, 1);
    free(kv);
    return s;
}

static odl_status lower_clip(ctx *c)
{
    float lo = -FLT_MAX, hi = FLT_MAX;
    odl_status s;
    int has_lo = 0, has_hi = 0;
    if (c->opset < 11) {
        if ((s = check_attrs(c, "min,max")) != ODL_OK)
            return s;
        has_lo = attr(c->node, "min") != NULL;
        has_hi = attr(c->node, "max") != NULL;
        if ((s = attr_float(c, "min", lo, &lo)) != ODL_OK || (s = attr_float(c, "max", hi, &hi)) != ODL_OK)
            return s;
    } else {
        if ((s = check_attrs(c, "")) != ODL_OK)
            return s;
        for (int k = 1; k <= 2; k++) {
            val *v;
            if ((s = input(c, k, &v)) != ODL_OK)
                return s;
            if (!v)
                continue;
            if (v->kind != V_CONST || v->is_int || v->count != 1)
                return nfail(c, ODL_ERR_UNSUPPORTED, "%s must be a float32 constant scalar",
                             k == 1 ? "min" : "max");
            if (k == 1) {
                lo = v->f[0];
                has_lo = 1;
            } else {
                hi = v->f[0];
                has_hi = 1;
            }
        }
    }
    if (!(lo == lo) || !(hi == hi))
        return nfail(c, ODL_ERR_NUMERIC, "a NaN bound");
    odl_node_desc nd;
    if (has_lo && lo == 0 && has_hi && hi == 6) {
        nd = node_defaults(ODL_LAYER_RELU6);
    } else if (has_lo && lo == 0 && !has_hi) {
        nd = node_defaults(ODL_LAYER_RELU);
    } else {
        nd = node_defaults(ODL_LAYER_CLIP);
        nd.alpha = lo;
        nd.beta = hi;
    }
    return emit_unary(c, nd);
}

static odl_status lower_act(ctx *c, const char *op)
{
    odl_status s;
    odl_node_desc nd;
    if (!strcmp(op, "Relu") || !strcmp(op, "Sigmoid") || !strcmp(op, "Tanh") || !strcmp(op, "HardSwish")) {
        if ((s = check_attrs(c, "")) != ODL_OK)
            return s;
        nd = node_defaults(!strcmp(op, "Relu") ? ODL_LAYER_RELU : !strcmp(op, "Sigmoid") ? ODL_LAYER_SIGMOID
                           : !strcmp(op, "Tanh") ? ODL_LAYER_TANH : ODL_LAYER_HARD_SWISH);
    } else if (!strcmp(op, "LeakyRelu")) {
        nd = node_defaults(ODL_LAYER_LEAKY_RELU);
        if ((s = check_attrs(c, "alpha")) != ODL_OK || (s = attr_float(c, "alpha", 0.01f, &nd.alpha)) != ODL_OK)
            return s;
    } else {
        nd = node_defaults(ODL_LAYER_HARD_SIGMOID);
        if ((s = check_attrs(c, "alpha,beta")) != ODL_OK ||
            (s = attr_float(c, "alpha", 0.2f, &nd.alpha)) != ODL_OK ||
            (s = attr_float(c, "beta", 0.5f, &nd.beta)) != ODL_OK)
            return s;
    }
    return emit_unary(c, nd);
}

static odl_status lower_concat(ctx *c)
{
    val *y;
    odl_status s;
    int64_t axis;
    if ((s = check_attrs(c, "axis")) != ODL_OK || (s = attr_int(c, "axis", 1, &axis)) != ODL_OK)
        return s;
    int ni = n_inputs(c->node);
    if (ni < 1)
        return nfail(c, ODL_ERR_FORMAT, "no inputs");
    val *v0 = NULL;
    int64_t od[4] = {0};
    for (int k = 0; k < ni; k++) {
        val *v;
        if ((s = need_rt(c, k, &v, "inputs")) != ODL_OK)
            return s;
        if (!k) {
            v0 = v;
            int a;
            if (!norm_axis(axis, v->rank, &a) || a != 1)
                return nfail(c, ODL_ERR_UNSUPPORTED, "axis %lld (odl concatenates channels, axis 1)",
                             (long long)axis);
            memcpy(od, v->dims, sizeof od);
            od[1] = 0;
        }
        if (v->rank != v0->rank)
            return nfail(c, ODL_ERR_SHAPE, "inputs of different ranks");
        for (int a = 2; a < v->rank; a++)
            if (v->dims[a] != v0->dims[a])
                return nfail(c, ODL_ERR_SHAPE, "inputs differ in dimension %d", a);
        od[1] += v->dims[1];
        if (od[1] > INT32_MAX)
            return nfail(c, ODL_ERR_SHAPE, "too many channels");
    }
    if ((s = output(c, 0, &y)) != ODL_OK)
        return s;
    /* more inputs than one odl node takes: concatenations chained (exact:
     * channels are only copied), the partial results named <output>/partN */
    int done = 0, part = 0;
    int32_t prev = -1;
    int64_t prev_c = 0;
    while (done < ni) {
        odl_node_desc nd = node_defaults(ODL_LAYER_CONCAT);
        int k = 0;
        int64_t ch = 0;
        if (prev >= 0) {
            nd.in[k++] = prev;
            ch = prev_c;
        }
        for (; k < ODL_NODE_MAX_IN && done < ni; done++) {
            val *v;
            input(c, done, &v);
            nd.in[k++] = v->t;
            ch += v->dims[1];
        }
        nd.n_in = k;
        od[1] = ch;
        if (done == ni)
            return emit(c, &nd, NULL, 0, NULL, 0, y, v0->rank, od);
        char nm[512];
        snprintf(nm, sizeof nm, "%.480s/part%d", y->name, part++);
        val tmp;
        memset(&tmp, 0, sizeof tmp);
        tmp.name = nm;
        if ((s = emit(c, &nd, NULL, 0, NULL, 0, &tmp, v0->rank, od)) != ODL_OK)
            return s;
        prev = tmp.t;
        prev_c = ch;
    }
    return ODL_OK;
}

static odl_status lower_pad(ctx *c)
{
    val *x, *y;
    odl_status s;
    int64_t pads[2 * MAXR];
    int np;
    float value = 0;
    char mode[32];
    if ((s = need_rt(c, 0, &x, "data")) != ODL_OK)
        return s;
    if (c->opset < 11) {
        if ((s = check_attrs(c, "mode,pads,value")) != ODL_OK ||
            (s = attr_ints(c, "pads", pads, 2 * MAXR, &np)) != ODL_OK ||
            (s = attr_float(c, "value", 0, &value)) != ODL_OK)
            return s;
    } else {
        val *pv, *cv, *av;
        if ((s = check_attrs(c, "mode")) != ODL_OK || (s = need_const(c, 1, &pv, "pads", 1)) != ODL_OK ||
            (s = input(c, 2, &cv)) != ODL_OK || (s = input(c, 3, &av)) != ODL_OK)
            return s;
        if (av)
            return nfail(c, ODL_ERR_UNSUPPORTED, "the axes input");
        if (pv->count > 2 * MAXR)
            return nfail(c, ODL_ERR_FORMAT, "%zu pads", pv->count);
        np = (int)pv->count;
        for (int k = 0; k < np; k++)
            pads[k] = pv->i[k];
        if (cv) {
            if (cv->kind != V_CONST || cv->is_int || cv->count != 1)
                return nfail(c, ODL_ERR_UNSUPPORTED, "constant_value must be a float32 constant scalar");
            value = cv->f[0];
        }
    }
    attr_str(c, "mode", mode, sizeof mode);
    if (mode[0] && strcmp(mode, "constant"))
        return nfail(c, ODL_ERR_UNSUPPORTED, "mode '%s' (odl pads with a constant)", mode);
    if (np != 2 * x->rank)
        return nfail(c, ODL_ERR_FORMAT, "%d pads for rank %d", np, x->rank);
    int r = x->rank;
    for (int k = 0; k < 2 * r; k++) {
        int a = k % r;
        if (pads[k] < 0)
            return nfail(c, ODL_ERR_UNSUPPORTED, "negative padding (cropping)");
        if (pads[k] > 1 << 16)
            return nfail(c, ODL_ERR_UNSUPPORTED, "padding %lld", (long long)pads[k]);
        if (a < 2 && pads[k])
            return nfail(c, ODL_ERR_UNSUPPORTED, "padding of dimension %d (odl pads H and W only)", a);
    }
    if ((s = output(c, 0, &y)) != ODL_OK)
        return s;
    int64_t od[4] = {0};
    memcpy(od, x->dims, sizeof od);
    odl_node_desc nd = node_defaults(ODL_LAYER_PAD);
    nd.alpha = value;
    nd.in[0] = x->t;
    if (r >= 3) {
        nd.pad_t = (int32_t)pads[2];
        nd.pad_b = (int32_t)pads[2 + r];
        od[2] += pads[2] + pads[2 + r];
    }
    if (r == 4) {
        nd.pad_l = (int32_t)pads[3];
        nd.pad_r = (int32_t)pads[3 + r];
        od[3] += pads[3] + pads[3 + r];
    }
    if (!nd.pad_t && !nd.pad_b && !nd.pad_l && !nd.pad_r) {
        alias(c, y, x, x->rank, x->dims);
        return ODL_OK;
    }
    return emit(c, &nd, NULL, 0, NULL, 0, y, r, od);
}

static odl_status lower_softmax(ctx *c)
{
    val *x, *y;
    odl_status s;
    int64_t axis;
    if ((s = check_attrs(c, "axis")) != ODL_OK ||
        (s = attr_int(c, "axis", c->opset < 13 ? 1 : -1, &axis)) != ODL_OK ||
        (s = need_rt(c, 0, &x, "input")) != ODL_OK || (s = output(c, 0, &y)) != ODL_OK)
        return s;
    int a;
    if (!norm_axis(axis, x->rank, &a))
        return nfail(c, ODL_ERR_ARG, "axis %lld out of range", (long long)axis);
    /* the softmax must run over the whole sample: before opset 13 over
     * dims [axis, rank), from 13 over dim axis alone */
    int ok = a == 1 || (c->opset >= 13 && a == x->rank - 1);
    for (int k = 1; k < x->rank && ok; k++)
        if (k != a && x->dims[k] != 1 && c->opset >= 13)
            ok = 0;
    if (!ok)
        return nfail(c, ODL_ERR_UNSUPPORTED, "a softmax over axis %d of a rank-%d tensor (odl "
                     "applies softmax over all of a sample's outputs)", a, x->rank);
    alias(c, y, x, x->rank, x->dims);
    y->softmax = 1;
    return ODL_OK;
}

static odl_status lower_reshape_like(ctx *c, const char *op)
{
    val *x, *y;
    odl_status s;
    int64_t od[MAXR] = {0};
    int ro = 0;
    if ((s = need_rt(c, 0, &x, "data")) != ODL_OK)
        return s;
    if (!strcmp(op, "Reshape")) {
        val *shape;
        int64_t az;
        if ((s = check_attrs(c, "allowzero")) != ODL_OK || (s = need_const(c, 1, &shape, "shape", 1)) != ODL_OK ||
            (s = attr_int(c, "allowzero", 0, &az)) != ODL_OK ||
            (s = reshape_dims(c, x->rank, x->dims, shape, (int)az, &ro, od)) != ODL_OK)
            return s;
    } else if (!strcmp(op, "Flatten")) {
        int64_t axis;
        int a;
        if ((s = check_attrs(c, "axis")) != ODL_OK || (s = attr_int(c, "axis", 1, &axis)) != ODL_OK)
            return s;
        if (!norm_axis(axis, x->rank + 1, &a) || a != 1)
            return nfail(c, ODL_ERR_UNSUPPORTED, "axis %lld (odl flattens from axis 1, keeping the "
                         "batch)", (long long)axis);
        ro = 2;
        od[0] = x->dims[0];
        od[1] = 1;
        for (int k = 1; k < x->rank; k++)
            od[1] *= x->dims[k];
    } else {
        int64_t axes[MAXR] = {0};
        int na;
        if ((s = check_attrs(c, "axes")) != ODL_OK || (s = axes_arg(c, 1, axes, &na)) != ODL_OK)
            return s;
        if (!strcmp(op, "Unsqueeze")) {
            if (na < 0)
                return nfail(c, ODL_ERR_FORMAT, "axes are required");
            s = unsqueeze_dims(c, x->rank, x->dims, axes, na, &ro, od);
        } else {
            if (na < 0) /* every 1 but the batch */
                for (int k = na = 0; k < x->rank; k++)
                    if (k > 0 && x->dims[k] == 1)
                        axes[na++] = k;
            s = squeeze_dims(c, x->rank, x->dims, axes, na, &ro, od);
        }
        if (s != ODL_OK)
            return s;
        int r_axes = !strcmp(op, "Unsqueeze") ? ro : x->rank;
        for (int k = 0; k < na; k++) {
            int a;
            if (norm_axis(axes[k], r_axes, &a) && a == 0)
                return nfail(c, ODL_ERR_UNSUPPORTED, "axis 0 (the batch)");
        }
    }
    if ((s = output(c, 0, &y)) != ODL_OK)
        return s;
    return emit_reshape(c, x, y, ro, od);
}

static odl_status lower_node(ctx *c)
{
    const Onnx__NodeProto *n = c->node;
    const char *op = n->op_type ? n->op_type : "";
    if (n->domain && n->domain[0] && strcmp(n->domain, "ai.onnx"))
        return nfail(c, ODL_ERR_UNSUPPORTED, "operator domain '%.60s' (odl imports the standard "
                     "ONNX operators)", n->domain);
    for (size_t k = 0; k < n->n_attribute; k++)
        if (n->attribute[k]->g || n->attribute[k]->n_graphs)
            return nfail(c, ODL_ERR_UNSUPPORTED, "a subgraph (control flow is not supported)");
    odl_status s = eval_const(c, op);
    if (s != ODL_ERR_NOT_FOUND)
        return s;
    if (c->d)
        odl_diag_clear(c->d);
    if (!strcmp(op, "Conv"))
        return lower_conv(c);
    if (!strcmp(op, "Gemm"))
        return lower_gemm(c, 0);
    if (!strcmp(op, "MatMul"))
        return lower_gemm(c, 1);
    if (!strcmp(op, "BatchNormalization"))
        return lower_batchnorm(c);
    if (!strcmp(op, "Relu") || !strcmp(op, "Sigmoid") || !strcmp(op, "Tanh") || !strcmp(op, "HardSwish") ||
        !strcmp(op, "LeakyRelu") || !strcmp(op, "HardSigmoid"))
        return lower_act(c, op);
    if (!strcmp(op, "Clip"))
        return lower_clip(c);
    if (!strcmp(op, "Add") || !strcmp(op, "Mul") || !strcmp(op, "Sub") || !strcmp(op, "Div")) {
        if ((s = check_attrs(c, "")) != ODL_OK)
            return s;
        return lower_binary(c, op);
    }
    if (!strcmp(op, "Concat"))
        return lower_concat(c);
    if (!strcmp(op, "MaxPool") || !strcmp(op, "AveragePool"))
        return lower_pool(c, op[0] == 'M');
    if (!strcmp(op, "GlobalAveragePool")) {
        val *x, *y;
        if ((s = check_attrs(c, "")) != ODL_OK || (s = need_rt(c, 0, &x, "X")) != ODL_OK ||
            (s = output(c, 0, &y)) != ODL_OK)
            return s;
        return emit_gap(c, x, y, 1);
    }
    if (!strcmp(op, "ReduceMean")) {
        val *x, *y;
        int64_t axes[MAXR] = {0}, keep = 1;
        int na;
        if ((s = check_attrs(c, "axes,keepdims")) != ODL_OK || (s = need_rt(c, 0, &x, "data")) != ODL_OK ||
            (s = attr_ints(c, "axes", axes, MAXR, &na)) != ODL_OK ||
            (s = attr_int(c, "keepdims", 1, &keep)) != ODL_OK)
            return s;
        if (n_inputs(n) > 1)
            return nfail(c, ODL_ERR_UNSUPPORTED, "axes given as an input");
        int mark[MAXR] = {0}, ok = na == x->rank - 2 && x->rank >= 3;
        for (int k = 0; k < na && ok; k++) {
            int a;
            if (!norm_axis(axes[k], x->rank, &a) || a < 2 || mark[a])
                ok = 0;
            else
                mark[a] = 1;
        }
        if (!ok)
            return nfail(c, ODL_ERR_UNSUPPORTED, "axes other than the spatial ones (odl reduces "
                         "[N,C,H,W] over H and W)");
        if ((s = output(c, 0, &y)) != ODL_OK)
            return s;
        return emit_gap(c, x, y, keep != 0);
    }
    if (!strcmp(op, "Flatten") || !strcmp(op, "Reshape") || !strcmp(op, "Squeeze") ||
        !strcmp(op, "Unsqueeze"))
        return lower_reshape_like(c, op);
    if (!strcmp(op, "Pad"))
        return lower_pad(c);
    if (!strcmp(op, "Softmax"))
        return lower_softmax(c);
    if (!strcmp(op, "Identity") || !strcmp(op, "Dropout") || !strcmp(op, "Cast")) {
        val *x, *y;
        if (!strcmp(op, "Dropout")) {
            val *tm;
            if ((s = check_attrs(c, "ratio,seed,is_test")) != ODL_OK || (s = input(c, 2, &tm)) != ODL_OK)
                return s;
            if (tm && (tm->kind != V_CONST || (tm->count == 1 && cget(tm, 0) != 0)))
                return nfail(c, ODL_ERR_UNSUPPORTED, "training_mode is not a constant false");
            if ((s = only_first_output(c)) != ODL_OK)
                return s;
        } else if (!strcmp(op, "Cast")) {
            int64_t to;
            if ((s = check_attrs(c, "to,saturate")) != ODL_OK || (s = attr_int(c, "to", 0, &to)) != ODL_OK)
                return s;
            if (to != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT)
                return nfail(c, ODL_ERR_UNSUPPORTED, "a cast of a computed tensor to %s",
                             dtype_name((int32_t)to));
        } else if ((s = check_attrs(c, "")) != ODL_OK) {
            return s;
        }
        if ((s = need_rt(c, 0, &x, "input")) != ODL_OK || (s = output(c, 0, &y)) != ODL_OK)
            return s;
        alias(c, y, x, x->rank, x->dims);
        return ODL_OK;
    }
    if (!strcmp(op, "Shape")) {
        val *x, *y;
        int64_t start, end;
        if ((s = check_attrs(c, "start,end")) != ODL_OK || (s = need_rt(c, 0, &x, "data")) != ODL_OK ||
            (s = attr_int(c, "start", 0, &start)) != ODL_OK ||
            (s = attr_int(c, "end", x->rank, &end)) != ODL_OK || (s = output(c, 0, &y)) != ODL_OK)
            return s;
        if (start < 0)
            start += x->rank;
        if (end < 0)
            end += x->rank;
        start = start < 0 ? 0 : start > x->rank ? x->rank : start;
        end = end < start ? start : end > x->rank ? x->rank : end;
        int64_t dd[1] = {end - start};
        if ((s = new_const(c, y, 1, 1, dd)) != ODL_OK)
            return s;
        for (int64_t k = start; k < end; k++)
            y->i[k - start] = x->dims[k];
        return ODL_OK;
    }
    return nfail(c, ODL_ERR_UNSUPPORTED, "operator %s is not supported by odl (docs/onnx.md lists "
                 "the supported operators)", op[0] ? op : "(empty)");
}

/* ---- the graph ---------------------------------------------------------- */

static odl_status read_input(ctx *c, const Onnx__ValueInfoProto *vi, val *v)
{
    const char *nm = vi->name;
    const Onnx__TypeProto *tp = vi->type;
    if (!tp || !tp->tensor_type)
        return gfail(c, ODL_ERR_UNSUPPORTED, "input '%.80s' is not a tensor", nm);
    const Onnx__TypeProto__Tensor *tt = tp->tensor_type;
    if (!tt->has_elem_type || tt->elem_type != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT)
        return gfail(c, ODL_ERR_UNSUPPORTED, "input '%.80s' is %s: odl models take float32 input", nm,
                     dtype_name(tt->has_elem_type ? tt->elem_type : 0));
    if (!tt->shape)
        return gfail(c, ODL_ERR_UNSUPPORTED, "input '%.80s' has no declared shape", nm);
    size_t r = tt->shape->n_dim;
    if (r < 2 || r > 4)
        return gfail(c, ODL_ERR_UNSUPPORTED, "input '%.80s' has rank %zu (odl takes [N,C,H,W], "
                     "[N,C,L] or [N,F])", nm, r);
    int64_t given[3] = {c->o->in_c, c->o->in_h, c->o->in_w};
    int have_given = given[0] > 0;
    if (have_given) {
        /* the given shape, padded as odl pads: [N,F] is F x 1 x 1, [N,C,L] C x L x 1 */
        for (size_t k = r - 1; k < 3; k++)
            if (given[k] != 1)
                return gfail(c, ODL_ERR_SHAPE, "--input-shape %lldx%lldx%lld does not fit input "
                             "'%.80s' of rank %zu (use %s)", (long long)given[0], (long long)given[1],
                             (long long)given[2], nm, r, r == 2 ? "Fx1x1" : "CxLx1");
    }
    v->kind = V_RT;
    v->t = 0;
    v->rank = (int)r;
    for (size_t k = 0; k < r; k++) {
        const Onnx__TensorShapeProto__Dimension *dm = tt->shape->dim[k];
        int fixed = dm->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
        int64_t dv = fixed ? dm->dim_value : -1;
        if (fixed && (dv < 1 || dv > MAX_DIM))
            return gfail(c, ODL_ERR_UNSUPPORTED, "input '%.80s' dimension %zu is %lld (1 to %lld "
                         "allowed)", nm, k, (long long)dv, (long long)MAX_DIM);
        if (k == 0) {
            if (fixed && dv != 1 && dv != c->o->batch)
                return gfail(c, ODL_ERR_UNSUPPORTED, "input '%.80s' has a fixed batch of %lld: odl "
                             "needs a batch dimension of 1 or a symbolic one", nm, (long long)dv);
            v->dims[0] = fixed ? dv : (c->o->batch > 0 ? c->o->batch : 1);
            continue;
        }
        if (!fixed && !have_given)
            return gfail(c, ODL_ERR_SHAPE, "input '%.80s' dimension %zu is dynamic ('%.40s'): fix it "
                         "with --input-shape CxHxW", nm, k,
                         dm->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM ?
                         dm->dim_param : "unknown");
        if (have_given && fixed && dv != given[k - 1])
            return gfail(c, ODL_ERR_SHAPE, "--input-shape gives %lld for dimension %zu of input "
                         "'%.80s', which the model fixes at %lld", (long long)given[k - 1], k, nm,
                         (long long)dv);
        v->dims[k] = fixed ? dv : given[k - 1];
    }
    c->batch = v->dims[0];
    int ok;
    elems_of(v->rank, v->dims, &ok);
    if (!ok)
        return gfail(c, ODL_ERR_UNSUPPORTED, "input '%.80s' is larger than %zu values", nm, MAX_ELEMS);
    return ODL_OK;
}

static void ctx_free(ctx *c, int keep_model)
{
    for (size_t k = 0; k < c->n_allocs; k++)
        free(c->allocs[k]);
    free(c->allocs);
    free(c->tab);
    if (!keep_model) {
        for (int32_t i = 0; i < c->n_nodes; i++) {
            free(c->w[i]);
            free(c->b[i]);
        }
        if (c->names)
            for (int32_t i = 0; i <= c->n_nodes; i++)
                free(c->names[i]);
        free(c->nodes);
        free(c->w);
        free(c->b);
        free(c->nw);
        free(c->nb);
        free(c->names);
    }
    free(c->aliases);
}

/* Removes nodes the output does not depend on (shape branches, unused
 * outputs) and renumbers tensors so the output is the last one. */
static odl_status prune(ctx *c, int32_t out_t)
{
    int32_t n = c->n_nodes;
    unsigned char *live = calloc((size_t)n + 1, 1);
    int32_t *map = malloc(((size_t)n + 1) * sizeof *map);
    if (!live || !map) {
        free(live);
        free(map);
        return oom(c);
    }
    live[out_t] = 1;
    for (int32_t i = n - 1; i >= 0; i--)
        if (live[i + 1])
            for (int32_t k = 0; k < c->nodes[i].n_in; k++)
                live[c->nodes[i].in[k]] = 1;
    live[0] = 1;
    map[0] = 0;
    int32_t j = 0;
    for (int32_t i = 0; i < n; i++) {
        if (!live[i + 1] || i + 1 > out_t) {
            free(c->w[i]);
            free(c->b[i]);
            free(c->names[i + 1]);
            map[i + 1] = -1;
            continue;
        }
        odl_node_desc nd = c->nodes[i];
        for (int32_t k = 0; k < nd.n_in; k++)
            nd.in[k] = map[nd.in[k]];
        c->nodes[j] = nd;
        c->w[j] = c->w[i];
        c->b[j] = c->b[i];
        c->nw[j] = c->nw[i];
        c->nb[j] = c->nb[i];
        c->names[j + 1] = c->names[i + 1];
        map[i + 1] = ++j;
    }
    c->n_nodes = j;
    free(live);
    free(map);
    return ODL_OK;
}

odl_onnx_opts odl_onnx_opts_defaults(void)
{
    odl_onnx_opts o;
    memset(&o, 0, sizeof o);
    o.max_bytes = ODL_ONNX_MAX_BYTES;
    return o;
}

int odl_onnx_detect(const void *buf, size_t len)
{
    const uint8_t *p = buf;
    if (len >= 8 && !memcmp(p + 4, "TFL3", 4))
        return 0;
    /* a ModelProto starts with a field key: ir_version (field 1, varint:
     * 0x08) in every exporter seen, or any other field of ModelProto */
    if (len < 2)
        return 0;
    uint8_t key = p[0];
    unsigned field = key >> 3, wt = key & 7;
    return field >= 1 && field <= 20 && (wt == 0 || wt == 2);
}

static odl_status import_graph(ctx *c, const Onnx__ModelProto *mp, odl_onnx_model *out)
{
    const Onnx__GraphProto *g = mp->graph;
    if (!g)
        return gfail(c, ODL_ERR_FORMAT, "the model has no graph");
    /* opset of the default domain */
    c->opset = -1;
    for (size_t k = 0; k < mp->n_opset_import; k++) {
        const Onnx__OperatorSetIdProto *op = mp->opset_import[k];
        if (!op->domain || !op->domain[0] || !strcmp(op->domain, "ai.onnx"))
            c->opset = op->has_version ? op->version : -1;
    }
    if (c->opset < 0)
        return gfail(c, ODL_ERR_FORMAT, "the model imports no ONNX operator set (opset_import)");
    if (c->opset < 9 || c->opset > 17)
        return gfail(c, ODL_ERR_VERSION, "the model uses ONNX opset %lld; odl imports opsets 9 to 17 "
                     "(re-export with one of them)", (long long)c->opset);
    /* the table: every name the graph may define */
    size_t want = g->n_initializer + g->n_input + g->n_output + (size_t)c->o->n_consts + 16;
    for (size_t k = 0; k < g->n_node; k++)
        want += g->node[k]->n_output + g->node[k]->n_input;
    size_t cap = 64;
    while (cap < 2 * want) {
        if (cap > ((size_t)1 << 40))
            return oom(c);
        cap *= 2;
    }
    c->tab = calloc(cap, sizeof *c->tab);
    if (!c->tab)
        return oom(c);
    c->tab_cap = cap;
    for (size_t k = 0; k < g->n_node; k++)
        for (size_t q = 0; q < g->node[k]->n_input; q++)
            if (g->node[k]->input[q] && g->node[k]->input[q][0])
                lookup(c, g->node[k]->input[q])->consumers++;
    if (g->n_output != 1)
        return gfail(c, ODL_ERR_UNSUPPORTED, "the graph has %zu outputs; odl models have one",
                     g->n_output);
    const char *out_name = g->output[0]->name ? g->output[0]->name : "";
    lookup(c, out_name)->consumers++;
    odl_status s;
    for (size_t k = 0; k < g->n_initializer; k++) {
        const Onnx__TensorProto *tp = g->initializer[k];
        if (!tp->name || !tp->name[0])
            return gfail(c, ODL_ERR_FORMAT, "initializer %zu has no name", k);
        val *v = lookup(c, tp->name);
        if (v->kind != V_NONE)
            return gfail(c, ODL_ERR_FORMAT, "initializer '%.80s' is defined twice", tp->name);
        if ((s = tensor_to_val(c, tp, v)) != ODL_OK)
            return s;
    }
    for (int32_t k = 0; k < c->o->n_consts; k++) {
        const odl_onnx_const *k0 = &c->o->consts[k];
        if (!k0->name)
            continue;
        val *v = lookup(c, k0->name);
        if (v->kind != V_NONE)
            continue;
        c->data_backed = 1;
        s = new_const(c, v, k0->is_int64, k0->rank, k0->dims);
        c->data_backed = 0;
        if (s != ODL_OK)
            return s;
        if (v->count && !(k0->is_int64 ? (const void *)k0->data64 : (const void *)k0->data))
            return gfail(c, ODL_ERR_ARG, "constant '%.80s' has no data", k0->name);
        if (v->count && k0->is_int64)
            memcpy(v->i, k0->data64, v->count * sizeof(int64_t));
        else if (v->count)
            memcpy(v->f, k0->data, v->count * sizeof(float));
    }
    const Onnx__ValueInfoProto *in = NULL;
    for (size_t k = 0; k < g->n_input; k++) {
        const Onnx__ValueInfoProto *vi = g->input[k];
        if (!vi->name || !vi->name[0])
            return gfail(c, ODL_ERR_FORMAT, "graph input %zu has no name", k);
        if (lookup(c, vi->name)->kind != V_NONE)
            continue; /* an initializer listed as an input (IR < 4) */
        if (in)
            return gfail(c, ODL_ERR_UNSUPPORTED, "the graph has several inputs ('%.60s', '%.60s'); "
                         "odl models have one", in->name, vi->name);
        in = vi;
    }
    if (!in)
        return gfail(c, ODL_ERR_UNSUPPORTED, "the graph has no input that is not a constant");
    val *iv = lookup(c, in->name);
    if ((s = read_input(c, in, iv)) != ODL_OK)
        return s;
    c->cap = 0;
    if ((s = grow(c)) != ODL_OK)
        return s;
    c->names[0] = dupstr(in->name);
    if (!c->names[0])
        return oom(c);
    c->aliases[0] = 0;
    for (size_t k = 0; k < g->n_node; k++) {
        c->node_i = k;
        c->node = g->node[k];
        if ((s = lower_node(c)) != ODL_OK)
            return s;
    }
    c->node = NULL;
    val *ov = lookup(c, out_name);
    if (ov->kind == V_NONE)
        return gfail(c, ODL_ERR_FORMAT, "the graph output '%.80s' is never computed", out_name);
    if (ov->kind != V_RT)
        return gfail(c, ODL_ERR_UNSUPPORTED, "the graph output '%.80s' is a constant (it does not "
                     "depend on the input)", out_name);
    if (ov->t == 0)
        return gfail(c, ODL_ERR_UNSUPPORTED, "the graph output '%.80s' is its input: no operator "
                     "is left for odl to run", out_name);
    if ((s = prune(c, ov->t)) != ODL_OK)
        return s;
    /* the output keeps its ONNX name (a softmax or alias renames the tensor) */
    char *nm = dupstr(out_name);
    if (!nm)
        return oom(c);
    free(c->names[c->n_nodes]);
    c->names[c->n_nodes] = nm;
    memset(out, 0, sizeof *out);
    out->nodes = c->nodes;
    out->w = c->w;
    out->b = c->b;
    out->n_w = c->nw;
    out->n_b = c->nb;
    out->names = c->names;
    out->desc.in_c = (int32_t)(iv->rank > 1 ? iv->dims[1] : 1);
    out->desc.in_h = (int32_t)(iv->rank > 2 ? iv->dims[2] : 1);
    out->desc.in_w = (int32_t)(iv->rank > 3 ? iv->dims[3] : 1);
    out->desc.n_layers = c->n_nodes;
    out->desc.cap_layers = c->cap;
    out->desc.softmax_output = ov->softmax;
    out->desc.layers = c->nodes;
    out->out_rank = ov->rank;
    memcpy(out->out_dims, ov->dims, sizeof out->out_dims);
    out->opset = c->opset;
    if (mp->producer_name)
        snprintf(out->producer, sizeof out->producer, "%s", mp->producer_name);
    return ODL_OK;
}

odl_status odl_onnx_import(const void *buf, size_t len, const odl_onnx_opts *opts,
                           odl_onnx_model *out, odl_diag *d)
{
    odl_onnx_opts def = odl_onnx_opts_defaults();
    if (!opts)
        opts = &def;
    if (out)
        memset(out, 0, sizeof *out);
    if (!buf || !out)
        return odl_fail(d, ODL_ERR_ARG, "odl_onnx_import: NULL buffer or output");
    size_t max = opts->max_bytes ? opts->max_bytes : ODL_ONNX_MAX_BYTES;
    if (len > max)
        return odl_fail(d, ODL_ERR_UNSUPPORTED, "the ONNX file is %zu bytes, above the limit of %zu",
                        len, max);
    if (len >= 8 && !memcmp((const uint8_t *)buf + 4, "TFL3", 4))
        return odl_fail(d, ODL_ERR_UNSUPPORTED, "this is a TensorFlow Lite model; odl imports ONNX "
                        "(TFLite import is not implemented yet)");
    if (opts->in_c < 0 || opts->in_h < 0 || opts->in_w < 0 || opts->batch < 0 ||
        (opts->in_c > 0 && (opts->in_h < 1 || opts->in_w < 1)) || opts->n_consts < 0)
        return odl_fail(d, ODL_ERR_ARG, "odl_onnx_import: bad options");
    Onnx__ModelProto *mp = onnx__model_proto__unpack(NULL, len, buf);
    if (!mp)
        return odl_fail(d, ODL_ERR_FORMAT, "not a valid ONNX model (the protobuf does not parse: "
                        "truncated or not ONNX)");
    ctx c;
    memset(&c, 0, sizeof c);
    c.d = d;
    c.o = opts;
    c.batch = 1;
    odl_status s = import_graph(&c, mp, out);
    ctx_free(&c, s == ODL_OK);
    onnx__model_proto__free_unpacked(mp, NULL);
    if (s != ODL_OK)
        memset(out, 0, sizeof *out);
    return s;
}

odl_status odl_onnx_import_file(const char *path, const odl_onnx_opts *opts, odl_onnx_model *out,
                                odl_diag *d)
{
    struct stat st;
    size_t max = opts && opts->max_bytes ? opts->max_bytes : ODL_ONNX_MAX_BYTES;
    if (out)
        memset(out, 0, sizeof *out);
    if (stat(path, &st) != 0)
        return odl_fail(d, errno == ENOENT ? ODL_ERR_NOT_FOUND : ODL_ERR_IO, "%s: cannot read it", path);
    if (!S_ISREG(st.st_mode))
        return odl_fail(d, ODL_ERR_ARG, "%s: not a regular file", path);
    if ((uint64_t)st.st_size > (uint64_t)max)
        return odl_fail(d, ODL_ERR_UNSUPPORTED, "%s: %lu bytes, above the ONNX size limit of %zu",
                        path, (unsigned long)st.st_size, max);
    void *buf;
    size_t len;
    odl_status s = odl_host_read_file(path, &buf, &len, d);
    if (s != ODL_OK)
        return s;
    s = odl_onnx_import(buf, len, opts, out, d);
    odl_host_free(buf);
    return s;
}

void odl_onnx_free(odl_onnx_model *m)
{
    if (!m)
        return;
    for (int32_t i = 0; i < m->desc.n_layers; i++) {
        if (m->w)
            free(m->w[i]);
        if (m->b)
            free(m->b[i]);
    }
    if (m->names)
        for (int32_t i = 0; i <= m->desc.n_layers; i++)
            free(m->names[i]);
    free(m->nodes);
    free(m->w);
    free(m->b);
    free(m->n_w);
    free(m->n_b);
    free(m->names);
    memset(m, 0, sizeof *m);
}

/* ---- building and saving ------------------------------------------------ */

odl_status odl_onnx_build(const odl_onnx_model *im, const odl_model_cfg *cfg, odl_onnx_built *out,
                          odl_diag *d)
{
    memset(out, 0, sizeof *out);
    odl_model_cfg def = odl_model_cfg_defaults();
    if (!cfg)
        cfg = &def;
    odl_mem_plan plan;
    odl_status s = odl_model_plan(&im->desc, cfg, &plan, d);
    if (s != ODL_OK)
        return s;
    out->arena_buf = malloc(plan.total + ODL_ALIGN);
    if (!out->arena_buf)
        return odl_fail(d, ODL_ERR_NOMEM, "out of memory (%zu bytes for the model)", plan.total);
    if ((s = odl_arena_init(&out->arena, out->arena_buf, plan.total + ODL_ALIGN)) != ODL_OK ||
        (s = odl_model_init(&out->m, &im->desc, cfg, &out->arena, d)) != ODL_OK) {
        odl_onnx_built_free(out);
        return s;
    }
    for (int32_t i = 0; i < im->desc.n_layers; i++)
        for (int which = 0; which < 2; which++) {
            size_t n;
            float *p = odl_model_param(out->m, i, which, &n);
            size_t have = which ? im->n_b[i] : im->n_w[i];
            const float *src = which ? im->b[i] : im->w[i];
            if (n != have || (n && (!p || !src))) {
                odl_onnx_built_free(out);
                return odl_fail(d, ODL_ERR_SHAPE, "node %d (%s, tensor '%s'): %zu %s values imported, "
                                "the odl layer has %zu", i, odl_layer_type_name(im->nodes[i].type),
                                im->names[i + 1], have, which ? "bias" : "weight", n);
            }
            if (n)
                memcpy(p, src, n * sizeof *p);
        }
    return ODL_OK;
}

void odl_onnx_built_free(odl_onnx_built *b)
{
    if (!b)
        return;
    free(b->arena_buf);
    memset(b, 0, sizeof *b);
}

odl_status odl_names_encode(char *const *names, int32_t n, void **payload, size_t *len, odl_diag *d)
{
    size_t total = 4;
    for (int32_t i = 0; i < n; i++) {
        size_t l = names[i] ? strlen(names[i]) : 0;
        if (l > UINT32_MAX || total > SIZE_MAX - 4 - l)
            return odl_fail(d, ODL_ERR_ARG, "tensor name %d is too long", i);
        total += 4 + l;
    }
    uint8_t *p = malloc(total);
    if (!p)
        return odl_fail(d, ODL_ERR_NOMEM, "out of memory (names)");
    size_t o = 0;
    uint32_t cnt = (uint32_t)n;
    for (int b = 0; b < 4; b++)
        p[o++] = (uint8_t)(cnt >> (8 * b));
    for (int32_t i = 0; i < n; i++) {
        uint32_t l = names[i] ? (uint32_t)strlen(names[i]) : 0;
        for (int b = 0; b < 4; b++)
            p[o++] = (uint8_t)(l >> (8 * b));
        memcpy(p + o, names[i] ? names[i] : "", l);
        o += l;
    }
    *payload = p;
    *len = total;
    return ODL_OK;
}

void odl_names_free(char **names, int32_t n)
{
    if (!names)
        return;
    for (int32_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

odl_status odl_names_read(const void *buf, size_t len, char ***names, int32_t *n, odl_diag *d)
{
    *names = NULL;
    *n = 0;
    odl_file_iter it;
    odl_status s = odl_file_open(&it, buf, len, d);
    if (s != ODL_OK)
        return s;
    for (;;) {
        uint32_t type;
        const uint8_t *p;
        size_t pl;
        s = odl_file_next(&it, &type, &p, &pl, d);
        if (s == ODL_ERR_NOT_FOUND)
            return odl_fail(d, ODL_ERR_NOT_FOUND, "the file has no tensor names (NAME chunk)");
        if (s != ODL_OK)
            return s;
        if (type != ODL_CHUNK_NAMES)
            continue;
        if (pl < 4)
            return odl_fail(d, ODL_ERR_FORMAT, "NAME chunk of %zu bytes", pl);
        uint32_t cnt = rd32(p);
        if (cnt > (pl - 4) / 4 || cnt > INT32_MAX)
            return odl_fail(d, ODL_ERR_FORMAT, "NAME chunk: %u names in %zu bytes", cnt, pl);
        char **out = calloc(cnt ? cnt : 1, sizeof *out);
        if (!out)
            return odl_fail(d, ODL_ERR_NOMEM, "out of memory (names)");
        size_t o = 4;
        for (uint32_t i = 0; i < cnt; i++) {
            if (pl - o < 4) {
                odl_names_free(out, (int32_t)cnt);
                return odl_fail(d, ODL_ERR_FORMAT, "NAME chunk: name %u is cut off", i);
            }
            uint32_t l = rd32(p + o);
            o += 4;
            if (l > pl - o) {
                odl_names_free(out, (int32_t)cnt);
                return odl_fail(d, ODL_ERR_FORMAT, "NAME chunk: name %u of %u bytes is cut off", i, l);
            }
            out[i] = malloc((size_t)l + 1);
            if (!out[i]) {
                odl_names_free(out, (int32_t)cnt);
                return odl_fail(d, ODL_ERR_NOMEM, "out of memory (names)");
            }
            memcpy(out[i], p + o, l);
            out[i][l] = 0;
            o += l;
        }
        *names = out;
        *n = (int32_t)cnt;
        return ODL_OK;
    }
}

odl_status odl_onnx_save(const odl_onnx_model *im, const odl_model *m, const odl_meta_kv *meta,
                         int32_t n_meta, const char *path, odl_diag *d)
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
        (s = odl_file_write_chunk(&w, ODL_CHUNK_NAMES, payload, plen, d)) != ODL_OK ||
        (s = odl_file_write_end(&w, d)) != ODL_OK) {
        free(payload);
        odl_posix_writer_abort(&f);
        return s;
    }
    free(payload);
    return odl_posix_writer_commit(&f, d);
}
