/* TFLite writing (odl/tflite.h): an odl FP32 model as a TFLite flatbuffer.
 *
 * The builder writes front to back: a table's offset fields are patched
 * when the objects they point to are written after it (FlatBuffers offsets
 * point forward), and vtables sit just before their tables. Scalars are
 * aligned to their size from the start of the buffer, as the FlatBuffers
 * verifier of other runtimes requires. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "odl/tflite.h"
#include "odl/posix_io.h"
#include "odl/quant.h"

typedef struct wb {
    uint8_t *p;
    size_t n, cap;
    int oom;
} wb;

static void wb_reserve(wb *w, size_t more)
{
    if (w->oom)
        return;
    if (more > SIZE_MAX / 2 - w->n) {
        w->oom = 1;
        return;
    }
    if (w->n + more <= w->cap)
        return;
    size_t cap = w->cap ? w->cap : 4096;
    while (cap < w->n + more)
        cap *= 2;
    uint8_t *q = realloc(w->p, cap);
    if (!q) {
        w->oom = 1;
        return;
    }
    memset(q + w->cap, 0, cap - w->cap);
    w->p = q;
    w->cap = cap;
}

static size_t wb_put(wb *w, const void *data, size_t len)
{
    wb_reserve(w, len);
    if (w->oom)
        return w->n;
    size_t at = w->n;
    if (len)
        memcpy(w->p + at, data, len);
    w->n += len;
    return at;
}

/* Zero bytes until (n + extra) % align == 0. */
static void wb_align(wb *w, size_t align, size_t extra)
{
    static const uint8_t z[16];
    while ((w->n + extra) % align && !w->oom)
        wb_put(w, z, 1);
}

static void wb_set32(wb *w, size_t at, uint32_t v)
{
    if (w->oom)
        return;
    uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    memcpy(w->p + at, b, 4);
}

static size_t wb_u32(wb *w, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    return wb_put(w, b, 4);
}

/* An offset field at `at` now points at `target` (written later). */
static void wb_patch(wb *w, size_t at, size_t target) { wb_set32(w, at, (uint32_t)(target - at)); }

/* A table field: id, size (1, 4 or 8 bytes; offsets are 4 with is_off). */
typedef struct tf {
    int id, size, is_off;
    uint64_t v;
} tf;

#define MAX_FIELDS 12

/* Writes a table; pos[k] is where field k landed (for offsets to patch). */
static size_t wb_table(wb *w, const tf *f, int nf, size_t *pos)
{
    int maxid = -1, has8 = 0;
    for (int k = 0; k < nf; k++) {
        maxid = f[k].id > maxid ? f[k].id : maxid;
        has8 |= f[k].size == 8;
    }
    /* layout: soffset, then 8-, 4- and 1-byte fields */
    uint16_t off[MAX_FIELDS];
    size_t at = 4;
    for (int size = 8; size >= 1; size /= 2)
        for (int k = 0; k < nf; k++)
            if (f[k].size == size) {
                at = (at + (size_t)size - 1) / (size_t)size * (size_t)size;
                if (size == 8 && at % 8 != 4)
                    at += 4; /* the table starts at 4 mod 8, so 8-byte fields at 4 mod 8 of it */
                off[k] = (uint16_t)at;
                at += (size_t)size;
            }
    size_t tbl_len = (at + 3) / 4 * 4;
    size_t vt_len = 4 + 2 * (size_t)(maxid + 1);
    /* the vtable, then the table aligned (4, or 4 mod 8 when it has 8-byte fields) */
    wb_align(w, 2, 0);
    size_t a = has8 ? 8 : 4;
    while (!w->oom && (w->n + vt_len + (has8 ? 4 : 0)) % a)
        wb_put(w, "\0\0", 2);
    uint8_t vt[4 + 2 * 64] = {0};
    vt[0] = (uint8_t)vt_len;
    vt[1] = (uint8_t)(vt_len >> 8);
    vt[2] = (uint8_t)tbl_len;
    vt[3] = (uint8_t)(tbl_len >> 8);
    for (int k = 0; k < nf; k++) {
        vt[4 + 2 * f[k].id] = (uint8_t)off[k];
        vt[5 + 2 * f[k].id] = (uint8_t)(off[k] >> 8);
    }
    size_t vpos = wb_put(w, vt, vt_len);
    uint8_t tb[256] = {0};
    uint32_t so = (uint32_t)vt_len; /* table - vtable */
    tb[0] = (uint8_t)so;
    tb[1] = (uint8_t)(so >> 8);
    for (int k = 0; k < nf; k++)
        for (int b = 0; b < f[k].size; b++)
            tb[off[k] + b] = (uint8_t)(f[k].v >> (8 * b));
    size_t tpos = wb_put(w, tb, tbl_len);
    (void)vpos;
    for (int k = 0; k < nf && pos; k++)
        pos[k] = tpos + off[k];
    return tpos;
}

/* A vector of `count` elements of `esz` bytes; returns the length's position. */
static size_t wb_vec(wb *w, const void *data, size_t count, size_t esz, size_t align)
{
    wb_align(w, align > 4 ? align : 4, 4);
    size_t at = wb_u32(w, (uint32_t)count);
    wb_put(w, data, count * esz);
    return at;
}

static size_t wb_ivec(wb *w, const int32_t *v, size_t n)
{
    wb_align(w, 4, 0);
    size_t at = wb_u32(w, (uint32_t)n);
    for (size_t i = 0; i < n; i++)
        wb_u32(w, (uint32_t)v[i]);
    return at;
}

static size_t wb_str(wb *w, const char *s)
{
    size_t n = strlen(s);
    wb_align(w, 4, 0);
    size_t at = wb_u32(w, (uint32_t)n);
    wb_put(w, s, n + 1); /* strings are NUL-terminated in FlatBuffers */
    return at;
}

/* ---- the model being written --------------------------------------------- */

typedef struct xtensor {
    int32_t rank, dims[4];
    int32_t type;
    int32_t buffer;        /* 0: none */
    char name[160];
    int32_t n_q, q_dim;    /* quantisation: n_q scales (zero points) along q_dim */
    float *q_s;            /* malloc'd */
    int64_t *q_z;
} xtensor;

typedef struct xop {
    int32_t code;          /* builtin */
    int32_t in[4], n_in, out;
    int32_t opt_type;      /* BuiltinOptions */
    tf opt[8];
    int n_opt;
    int32_t new_shape[4], n_new_shape; /* ReshapeOptions */
} xop;

typedef struct xbuf {
    uint8_t *data;
    size_t len;
} xbuf;

typedef struct xm {
    xtensor *t;
    int32_t nt, capt;
    xop *o;
    int32_t no, capo;
    xbuf *b;
    int32_t nb, capb;
    odl_diag *d;
} xm;

static int grow(void **p, int32_t *cap, int32_t need, size_t esz)
{
    if (need <= *cap)
        return 1;
    int32_t nc = *cap ? *cap * 2 : 64;
    while (nc < need)
        nc *= 2;
    void *q = realloc(*p, (size_t)nc * esz);
    if (!q)
        return 0;
    *p = q;
    *cap = nc;
    return 1;
}

static int32_t add_buffer(xm *x, const void *data, size_t len)
{
    if (!grow((void **)&x->b, &x->capb, x->nb + 1, sizeof *x->b))
        return -1;
    xbuf *b = &x->b[x->nb];
    b->data = NULL;
    b->len = len;
    if (len) {
        if (!(b->data = malloc(len)))
            return -1;
        memcpy(b->data, data, len);
    }
    return x->nb++;
}

static int32_t add_tensor(xm *x, const char *name, int32_t rank, const int32_t *dims, int32_t type,
                          int32_t buffer)
{
    if (!grow((void **)&x->t, &x->capt, x->nt + 1, sizeof *x->t))
        return -1;
    xtensor *t = &x->t[x->nt];
    memset(t, 0, sizeof *t);
    t->rank = rank;
    for (int32_t k = 0; k < rank; k++)
        t->dims[k] = dims[k];
    t->type = type;
    t->buffer = buffer;
    snprintf(t->name, sizeof t->name, "%s", name);
    return x->nt++;
}

/* Quantisation parameters of tensor t: n scales (zero points zp, or 0). */
static int set_q(xm *x, int32_t t, int32_t n, const float *scale, const int32_t *zp, int32_t dim)
{
    if (t < 0)
        return -1;
    xtensor *e = &x->t[t];
    free(e->q_s);
    free(e->q_z);
    e->q_s = malloc((size_t)n * sizeof *e->q_s);
    e->q_z = calloc((size_t)n, sizeof *e->q_z);
    if (!e->q_s || !e->q_z)
        return -1;
    for (int32_t k = 0; k < n; k++) {
        e->q_s[k] = scale[k];
        e->q_z[k] = zp ? zp[k] : 0;
    }
    e->n_q = n;
    e->q_dim = dim;
    return t;
}

static int32_t const_f(xm *x, const char *name, int32_t rank, const int32_t *dims, const float *v, size_t n)
{
    uint8_t *bytes = malloc(n * 4 + 1);
    if (!bytes)
        return -1;
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &v[i], 4);
        bytes[4 * i] = (uint8_t)u, bytes[4 * i + 1] = (uint8_t)(u >> 8);
        bytes[4 * i + 2] = (uint8_t)(u >> 16), bytes[4 * i + 3] = (uint8_t)(u >> 24);
    }
    int32_t b = add_buffer(x, bytes, n * 4);
    free(bytes);
    return b < 0 ? -1 : add_tensor(x, name, rank, dims, ODL_TFL_FLOAT32, b);
}

static int32_t const_i(xm *x, const char *name, int32_t rank, const int32_t *dims, const int32_t *v, size_t n)
{
    uint8_t bytes[64];
    if (n > 16)
        return -1;
    for (size_t i = 0; i < n; i++) {
        uint32_t u = (uint32_t)v[i];
        bytes[4 * i] = (uint8_t)u, bytes[4 * i + 1] = (uint8_t)(u >> 8);
        bytes[4 * i + 2] = (uint8_t)(u >> 16), bytes[4 * i + 3] = (uint8_t)(u >> 24);
    }
    int32_t b = add_buffer(x, bytes, n * 4);
    return b < 0 ? -1 : add_tensor(x, name, rank, dims, ODL_TFL_INT32, b);
}

static xop *add_op(xm *x, int32_t code, int32_t out)
{
    if (!grow((void **)&x->o, &x->capo, x->no + 1, sizeof *x->o))
        return NULL;
    xop *o = &x->o[x->no++];
    memset(o, 0, sizeof *o);
    o->code = code;
    o->out = out;
    return o;
}

static void opt(xop *o, int id, int size, uint64_t v)
{
    o->opt[o->n_opt++] = (tf){id, size, 0, v};
}

/* Serialises everything into one flatbuffer. */
static odl_status serialise(xm *x, int32_t in_t, int32_t out_t, void **out, size_t *out_len)
{
    wb w = {0};
    /* operator codes: the distinct builtins, in first-use order */
    int32_t codes[64], nc = 0;
    int32_t *op_code = malloc(((size_t)x->no + 1) * sizeof *op_code);
    if (!op_code)
        return odl_fail(x->d, ODL_ERR_NOMEM, "out of memory");
    for (int32_t i = 0; i < x->no; i++) {
        int32_t k = 0;
        while (k < nc && codes[k] != x->o[i].code)
            k++;
        if (k == nc && nc == (int32_t)(sizeof codes / sizeof codes[0])) {
            free(op_code);
            return odl_fail(x->d, ODL_ERR_UNSUPPORTED, "more than %d kinds of operator", (int)nc);
        }
        if (k == nc)
            codes[nc++] = x->o[i].code;
        op_code[i] = k;
    }
    wb_u32(&w, 0); /* root offset, patched */
    wb_put(&w, "TFL3", 4);
    /* Model: version 0, operator_codes 1, subgraphs 2, description 3, buffers 4 */
    tf mf[] = {{0, 4, 0, 3}, {1, 4, 1, 0}, {2, 4, 1, 0}, {3, 4, 1, 0}, {4, 4, 1, 0}};
    size_t mpos[5];
    size_t root = wb_table(&w, mf, 5, mpos);
    wb_set32(&w, 0, (uint32_t)root);
    wb_patch(&w, mpos[3], wb_str(&w, "odl"));
    /* operator codes */
    size_t cv = wb_vec(&w, NULL, 0, 0, 4);
    wb_patch(&w, mpos[1], cv);
    wb_set32(&w, cv, (uint32_t)nc);
    size_t slots = w.n;
    for (int32_t k = 0; k < nc; k++)
        wb_u32(&w, 0);
    for (int32_t k = 0; k < nc; k++) {
        /* deprecated_builtin_code (byte) 0, version 2, builtin_code 3 */
        tf cf[] = {{0, 1, 0, (uint64_t)(codes[k] < 127 ? codes[k] : 127)}, {2, 4, 0, 1}, {3, 4, 0, (uint64_t)codes[k]}};
        wb_patch(&w, slots + 4 * (size_t)k, wb_table(&w, cf, 3, NULL));
    }
    /* one subgraph: tensors 0, inputs 1, outputs 2, operators 3, name 4 */
    size_t sv = wb_vec(&w, NULL, 0, 0, 4);
    wb_patch(&w, mpos[2], sv);
    wb_set32(&w, sv, 1);
    size_t sslot = wb_u32(&w, 0);
    tf sf[] = {{0, 4, 1, 0}, {1, 4, 1, 0}, {2, 4, 1, 0}, {3, 4, 1, 0}, {4, 4, 1, 0}};
    size_t spos[5];
    wb_patch(&w, sslot, wb_table(&w, sf, 5, spos));
    wb_patch(&w, spos[1], wb_ivec(&w, &in_t, 1));
    wb_patch(&w, spos[2], wb_ivec(&w, &out_t, 1));
    wb_patch(&w, spos[4], wb_str(&w, "main"));
    size_t tv = wb_vec(&w, NULL, 0, 0, 4);
    wb_patch(&w, spos[0], tv);
    wb_set32(&w, tv, (uint32_t)x->nt);
    slots = w.n;
    for (int32_t k = 0; k < x->nt; k++)
        wb_u32(&w, 0);
    for (int32_t k = 0; k < x->nt; k++) {
        const xtensor *t = &x->t[k];
        /* shape 0, type 1, buffer 2, name 3, quantization 4 */
        tf tfs[] = {{0, 4, 1, 0}, {1, 1, 0, (uint64_t)t->type}, {2, 4, 0, (uint64_t)t->buffer}, {3, 4, 1, 0},
                    {4, 4, 1, 0}};
        size_t tpos[5];
        wb_patch(&w, slots + 4 * (size_t)k, wb_table(&w, tfs, t->n_q ? 5 : 4, tpos));
        wb_patch(&w, tpos[0], wb_ivec(&w, t->dims, (size_t)t->rank));
        wb_patch(&w, tpos[3], wb_str(&w, t->name));
        if (t->n_q) {
            /* QuantizationParameters: scale 2, zero_point 3, quantized_dimension 6 */
            tf qf[] = {{2, 4, 1, 0}, {3, 4, 1, 0}, {6, 4, 0, (uint64_t)(uint32_t)t->q_dim}};
            size_t qpos[3];
            wb_patch(&w, tpos[4], wb_table(&w, qf, 3, qpos));
            uint8_t *sb = malloc((size_t)t->n_q * 8);
            if (!sb) {
                w.oom = 1;
                continue;
            }
            for (int32_t q = 0; q < t->n_q; q++) {
                uint32_t u;
                memcpy(&u, &t->q_s[q], 4);
                for (int b = 0; b < 4; b++)
                    sb[4 * q + b] = (uint8_t)(u >> (8 * b));
            }
            wb_patch(&w, qpos[0], wb_vec(&w, sb, (size_t)t->n_q, 4, 4));
            for (int32_t q = 0; q < t->n_q; q++)
                for (int b = 0; b < 8; b++)
                    sb[8 * q + b] = (uint8_t)((uint64_t)t->q_z[q] >> (8 * b));
            wb_patch(&w, qpos[1], wb_vec(&w, sb, (size_t)t->n_q, 8, 8));
            free(sb);
        }
    }
    size_t ov = wb_vec(&w, NULL, 0, 0, 4);
    wb_patch(&w, spos[3], ov);
    wb_set32(&w, ov, (uint32_t)x->no);
    slots = w.n;
    for (int32_t k = 0; k < x->no; k++)
        wb_u32(&w, 0);
    for (int32_t k = 0; k < x->no; k++) {
        const xop *o = &x->o[k];
        /* opcode_index 0, inputs 1, outputs 2, builtin_options_type 3, builtin_options 4 */
        tf of[] = {{0, 4, 0, (uint64_t)op_code[k]}, {1, 4, 1, 0}, {2, 4, 1, 0}, {3, 1, 0, (uint64_t)o->opt_type},
                   {4, 4, 1, 0}};
        size_t opos[5];
        int nf = o->opt_type ? 5 : 3;
        wb_patch(&w, slots + 4 * (size_t)k, wb_table(&w, of, nf, opos));
        wb_patch(&w, opos[1], wb_ivec(&w, o->in, (size_t)o->n_in));
        wb_patch(&w, opos[2], wb_ivec(&w, &o->out, 1));
        if (o->opt_type) {
            tf f2[MAX_FIELDS];
            int n2 = o->n_opt;
            memcpy(f2, o->opt, (size_t)n2 * sizeof *f2);
            if (o->n_new_shape)
                f2[n2++] = (tf){0, 4, 1, 0};
            size_t p2[MAX_FIELDS];
            wb_patch(&w, opos[4], wb_table(&w, f2, n2, p2));
            if (o->n_new_shape)
                wb_patch(&w, p2[n2 - 1], wb_ivec(&w, o->new_shape, (size_t)o->n_new_shape));
        }
    }
    /* buffers: data 0 (16-byte aligned) */
    size_t bv = wb_vec(&w, NULL, 0, 0, 4);
    wb_patch(&w, mpos[4], bv);
    wb_set32(&w, bv, (uint32_t)x->nb);
    slots = w.n;
    for (int32_t k = 0; k < x->nb; k++)
        wb_u32(&w, 0);
    for (int32_t k = 0; k < x->nb; k++) {
        const xbuf *b = &x->b[k];
        tf bf[] = {{0, 4, 1, 0}};
        size_t bpos[1];
        wb_patch(&w, slots + 4 * (size_t)k, wb_table(&w, bf, b->len ? 1 : 0, bpos));
        if (b->len)
            wb_patch(&w, bpos[0], wb_vec(&w, b->data, b->len, 1, 16));
    }
    wb_align(&w, 16, 0);
    free(op_code);
    if (w.oom || w.n > UINT32_MAX) {
        free(w.p);
        return odl_fail(x->d, ODL_ERR_NOMEM, "out of memory writing the flatbuffer (or above 4 GB)");
    }
    *out = w.p;
    *out_len = w.n;
    return ODL_OK;
}

/* ---- lowering an odl model ----------------------------------------------- */

typedef struct xt {
    int32_t t;              /* TFLite tensor */
    int32_t c, h, w;
    int32_t rank;           /* 2: [1, C] (h = w = 1), 4: [1, H, W, C] */
    int32_t perm, ph, pw, pc; /* flattened map: TFLite order h,w,c; odl c,h,w */
} xt;

static const char *tname(char *const *names, int32_t t, char *buf, size_t cap)
{
    if (names && names[t])
        return names[t];
    snprintf(buf, cap, "t%d", (int)t);
    return buf;
}

/* dst = a + b, cut to fit (tensor names are informative) */
static void join(char *dst, size_t cap, const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b);
    if (nb >= cap)
        nb = cap - 1;
    if (na > cap - 1 - nb)
        na = cap - 1 - nb;
    memmove(dst, a, na);
    memcpy(dst + na, b, nb);
    dst[na + nb] = 0;
}

static int32_t act_tensor(xm *x, const char *name, int32_t c, int32_t h, int32_t w, int rank2)
{
    int32_t d4[4] = {1, h, w, c}, d2[2] = {1, c};
    return rank2 ? add_tensor(x, name, 2, d2, ODL_TFL_FLOAT32, 0) : add_tensor(x, name, 4, d4, ODL_TFL_FLOAT32, 0);
}

/* A rank-4 view of a [1, C] tensor (conv, pool, mean, pad read [1,H,W,C]). */
static odl_status as4(xm *x, xt *s, int32_t *t4)
{
    if (s->rank == 4) {
        *t4 = s->t;
        return ODL_OK;
    }
    char nm[128];
    join(nm, sizeof nm, x->t[s->t].name, "/4d");
    int32_t shp[4] = {1, 1, 1, s->c}, sd[1] = {4};
    int32_t st = const_i(x, "shape4", 1, sd, shp, 4);
    int32_t y = act_tensor(x, nm, s->c, 1, 1, 0);
    if (y >= 0 && x->t[s->t].n_q) { /* an int8 view keeps its parameters */
        x->t[y].type = x->t[s->t].type;
        y = set_q(x, y, 1, x->t[s->t].q_s, NULL, 0);
        if (y >= 0)
            x->t[y].q_z[0] = x->t[s->t].q_z[0];
    }
    xop *o = st < 0 || y < 0 ? NULL : add_op(x, ODL_TFL_OP_RESHAPE, y);
    if (!o)
        return odl_fail(x->d, ODL_ERR_NOMEM, "out of memory");
    o->in[0] = s->t, o->in[1] = st, o->n_in = 2;
    o->opt_type = 17;
    memcpy(o->new_shape, shp, sizeof shp);
    o->n_new_shape = 4;
    *t4 = y;
    return ODL_OK;
}

/* TFLite padding for explicit pads: 1 VALID, 0 SAME, -1 neither. */
static int padding_kind(const odl_node_desc *l, int32_t ih, int32_t iw)
{
    if (!l->pad_t && !l->pad_l && !l->pad_b && !l->pad_r)
        return 1;
    int32_t b, a, bl, al;
    int64_t oh = ((int64_t)ih + l->stride_h - 1) / l->stride_h, ow = ((int64_t)iw + l->stride_w - 1) / l->stride_w;
    int64_t th = (oh - 1) * l->stride_h + (int64_t)(l->k_h - 1) * (l->dil_h ? l->dil_h : 1) + 1 - ih;
    int64_t tw = (ow - 1) * l->stride_w + (int64_t)(l->k_w - 1) * (l->dil_w ? l->dil_w : 1) + 1 - iw;
    th = th < 0 ? 0 : th;
    tw = tw < 0 ? 0 : tw;
    b = (int32_t)(th / 2), a = (int32_t)(th - th / 2), bl = (int32_t)(tw / 2), al = (int32_t)(tw - tw / 2);
    return l->pad_t == b && l->pad_b == a && l->pad_l == bl && l->pad_r == al ? 0 : -1;
}

/* The INT8 layers of a quantised .odl file (docs/quant.md), as views into it. */
typedef struct qv {
    int32_t fused;
    float s;
    int32_t zp;
    const uint8_t *bias, *wscale;
    const int8_t *w;
} qv;

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static odl_status read_q(const odl_model_desc *desc, const void *file, size_t len, int from_base, qv **out,
                         int32_t *K, float *in_s, int32_t *in_zp, odl_diag *d)
{
    odl_model_desc qd;
    *out = NULL;
    odl_status s = odl_host_desc_copy(&qd, desc, desc->n_layers, d);
    if (s != ODL_OK)
        return s;
    s = odl_qfile_read_desc(file, len, &qd, K, d); /* every Q chunk checked against the topology */
    if (s == ODL_ERR_NOT_FOUND) { /* no INT8 layers: an FP32 export */
        odl_host_desc_free(&qd);
        *K = 0;
        return ODL_OK;
    }
    /* the INT8 layers may come from the base an adapted model was made
     * from: they apply up to the first trainable node, where the nodes agree */
    int32_t k = 0;
    while (s == ODL_OK && k < *K && k < desc->n_layers && (!from_base || !desc->layers[k].trainable)) {
        odl_node_desc a = qd.layers[k], b = desc->layers[k];
        a.trainable = b.trainable = 0;
        if (memcmp(&a, &b, sizeof a))
            break;
        k++;
    }
    if (s == ODL_OK && (qd.in_c != desc->in_c || qd.in_h != desc->in_h || qd.in_w != desc->in_w))
        k = 0;
    while (k > 0 && !odl_desc_is_cut(desc, k))
        k--;
    odl_host_desc_free(&qd);
    if (s != ODL_OK)
        return s;
    if (k < *K && k == 0)
        return odl_fail(d, ODL_ERR_ARG, "the INT8 layers' file has another topology than the model (its "
                        "first node differs, or the model's first node is trainable)");
    int32_t file_k = *K;
    *K = k;
    qv *q = calloc((size_t)file_k + 1, sizeof *q);
    if (!q)
        return odl_fail(d, ODL_ERR_NOMEM, "out of memory");
    odl_file_iter it;
    if ((s = odl_file_open(&it, file, len, d)) != ODL_OK) {
        free(q);
        return s;
    }
    uint32_t type;
    const uint8_t *p;
    size_t n;
    while ((s = odl_file_next(&it, &type, &p, &n, d)) == ODL_OK) {
        if (type == ODL_CHUNK_QUANT && n >= 16) {
            uint32_t u = le32(p + 8);
            memcpy(in_s, &u, 4);
            *in_zp = (int32_t)le32(p + 12);
        } else if (type == ODL_CHUNK_QLAYER && n >= 48 && le32(p) < (uint32_t)file_k) {
            qv *v = &q[le32(p)];
            uint32_t u = le32(p + 12);
            size_t C = le32(p + 28);
            v->fused = (int32_t)le32(p + 8);
            memcpy(&v->s, &u, 4);
            v->zp = (int32_t)le32(p + 16);
            v->bias = p + 48;
            v->wscale = p + 48 + 12 * C;
            v->w = (const int8_t *)(p + 48 + 16 * C);
        }
    }
    if (s != ODL_ERR_NOT_FOUND) {
        free(q);
        return s;
    }
    *out = q;
    return ODL_OK;
}

/* A DEQUANTIZE of *src to float; *src becomes the float tensor. */
static odl_status dequant(xm *x, xt *src)
{
    char nm[160];
    join(nm, sizeof nm, x->t[src->t].name, "/dequantized");
    int32_t y = act_tensor(x, nm, src->c, src->h, src->w, src->rank == 2);
    xop *o = y < 0 ? NULL : add_op(x, ODL_TFL_OP_DEQUANTIZE, y);
    if (!o)
        return odl_fail(x->d, ODL_ERR_NOMEM, "out of memory");
    o->in[0] = src->t, o->n_in = 1;
    src->t = y;
    return ODL_OK;
}

odl_status odl_tflite_export(const odl_model *m, char *const *names, void **out, size_t *out_len,
                             odl_diag *d)
{
    return odl_tflite_export_ex(m, names, NULL, 0, 0, out, out_len, d);
}

#define NEED(cond, ...) do { if (!(cond)) { s = odl_fail(d, ODL_ERR_UNSUPPORTED, "node %d (%s): " __VA_ARGS__); goto done; } } while (0)
#define OOM(p) do { if ((p) < 0) { s = odl_fail(d, ODL_ERR_NOMEM, "out of memory"); goto done; } } while (0)

odl_status odl_tflite_export_ex(const odl_model *m, char *const *names, const void *file, size_t file_len,
                                int int8, void **out, size_t *out_len, odl_diag *d)
{
    *out = NULL;
    *out_len = 0;
    const odl_model_desc *desc = odl_model_get_desc(m);
    xm x = {0};
    x.d = d;
    odl_status s = ODL_OK;
    int32_t L = desc->n_layers;
    xt *map = calloc((size_t)L + 1, sizeof *map);
    if (!map || add_buffer(&x, NULL, 0) != 0) { /* buffer 0: the empty one, by convention */
        free(map);
        return odl_fail(d, ODL_ERR_NOMEM, "out of memory");
    }
    char nb[32];
    qv *ql = NULL;
    int32_t K = 0, in_zp = 0;
    float in_s = 1.0f;
    if (int8 && (s = read_q(desc, file, file_len, int8 == 2, &ql, &K, &in_s, &in_zp, d)) != ODL_OK)
        goto done;
    xt *in = &map[0];
    in->c = desc->in_c, in->h = desc->in_h, in->w = desc->in_w;
    in->rank = in->h == 1 && in->w == 1 ? 2 : 4;
    in->t = act_tensor(&x, tname(names, 0, nb, sizeof nb), in->c, in->h, in->w, in->rank == 2);
    if (K > 0 && in->t >= 0) {
        x.t[in->t].type = ODL_TFL_INT8;
        in->t = set_q(&x, in->t, 1, &in_s, &in_zp, 0);
    }
    OOM(in->t);
    for (int32_t i = 0; i < L && s == ODL_OK; i++) {
        const odl_node_desc *l = &desc->layers[i];
        const int q8 = i < K;
        if (i == K && K > 0 && (s = dequant(&x, &map[K])) != ODL_OK)
            goto done; /* the FP32 head reads the INT8 base's output as float */
        odl_layer_shape sh = odl_model_layer_shape(m, i);
        xt *y = &map[i + 1], *a = &map[l->in[0]];
        const char *name = tname(names, i + 1, nb, sizeof nb);
        char nm[160];
        y->c = sh.c, y->h = sh.h, y->w = sh.w;
        y->rank = 4;
        size_t nw, nbias;
        const float *w = odl_model_param_const(m, i, 0, &nw), *b = odl_model_param_const(m, i, 1, &nbias);
        xop *o = NULL;
        int32_t t4;
        if (q8 && i > 0 && ql[i - 1].fused && (l->type == ODL_LAYER_RELU || l->type == ODL_LAYER_RELU6)) {
            *y = *a; /* fused into the layer before */
            continue;
        }
        NEED(!q8 || l->type == ODL_LAYER_DENSE || l->type == ODL_LAYER_CONV2D || l->type == ODL_LAYER_DEPTHWISE ||
                 l->type == ODL_LAYER_MAXPOOL || l->type == ODL_LAYER_AVGPOOL || l->type == ODL_LAYER_GAP ||
                 l->type == ODL_LAYER_RELU || l->type == ODL_LAYER_RELU6 || l->type == ODL_LAYER_FLATTEN ||
                 l->type == ODL_LAYER_RESHAPE || l->type == ODL_LAYER_DROPOUT || l->type == ODL_LAYER_ADD ||
                 l->type == ODL_LAYER_MUL || l->type == ODL_LAYER_CONCAT || l->type == ODL_LAYER_PAD ||
                 l->type == ODL_LAYER_SIGMOID || l->type == ODL_LAYER_TANH || l->type == ODL_LAYER_HARD_SWISH,
             "no INT8 export for this operator", i, odl_layer_type_name(l->type));
        /* TFLite's int8 LOGISTIC and TANH take only these output parameters */
        NEED(!q8 || l->type != ODL_LAYER_SIGMOID || (ql[i].s == 1.0f / 256.0f && ql[i].zp == -128),
             "int8 output scale %g, zero point %d (TFLite's int8 LOGISTIC needs 1/256, -128; re-quantise with "
             "this version of odl)", i, odl_layer_type_name(l->type), (double)ql[i].s, (int)ql[i].zp);
        NEED(!q8 || l->type != ODL_LAYER_TANH || (ql[i].s == 1.0f / 128.0f && ql[i].zp == 0),
             "int8 output scale %g, zero point %d (TFLite's int8 TANH needs 1/128, 0; re-quantise with "
             "this version of odl)", i, odl_layer_type_name(l->type), (double)ql[i].s, (int)ql[i].zp);
        switch (l->type) {
        case ODL_LAYER_DENSE:
        case ODL_LAYER_CONV2D:
        case ODL_LAYER_DEPTHWISE: {
            NEED(l->type == ODL_LAYER_DENSE || !a->perm, "reads a flattened map", i, odl_layer_type_name(l->type));
            int dense = l->type == ODL_LAYER_DENSE;
            int dw = l->type == ODL_LAYER_DEPTHWISE || (l->type == ODL_LAYER_CONV2D && l->groups == a->c && l->groups > 1);
            NEED(dense || dw || l->groups == 1, "groups = %d (TFLite has full and depthwise convolutions)", i,
                 odl_layer_type_name(l->type), (int)l->groups);
            int pk = dense ? 1 : padding_kind(l, a->h, a->w);
            t4 = a->t;
            if (!dense && (s = as4(&x, a, &t4)) != ODL_OK)
                goto done;
            if (pk < 0) { /* explicit pads: a PAD (real zeros: the zero point in int8), then VALID */
                int32_t pv[8] = {0, 0, l->pad_t, l->pad_b, l->pad_l, l->pad_r, 0, 0}, pd[2] = {4, 2};
                join(nm, sizeof nm, name, "/pad");
                int32_t pt = const_i(&x, "paddings", 2, pd, pv, 8);
                int32_t py = act_tensor(&x, nm, a->c, a->h + l->pad_t + l->pad_b, a->w + l->pad_l + l->pad_r, 0);
                OOM(pt);
                OOM(py);
                if (q8) {
                    x.t[py].type = ODL_TFL_INT8;
                    OOM(set_q(&x, py, 1, x.t[t4].q_s, NULL, 0));
                    x.t[py].q_z[0] = x.t[t4].q_z[0];
                }
                o = add_op(&x, ODL_TFL_OP_PAD, py);
                OOM(o ? 0 : -1);
                o->in[0] = t4, o->in[1] = pt, o->n_in = 2;
                o->opt_type = 22;
                t4 = py;
                pk = 1;
            }
            y->rank = dense ? 2 : 4;
            y->t = act_tensor(&x, name, y->c, y->h, y->w, dense);
            OOM(y->t);
            size_t O = (size_t)y->c, K2 = dense ? 1 : (size_t)l->k_h * (size_t)l->k_w;
            size_t I = dense ? (size_t)a->c * (size_t)a->h * (size_t)a->w : dw ? 1 : (size_t)a->c;
            NEED(nw == O * I * K2 && nbias == O, "%zu weights, %zu biases", i, odl_layer_type_name(l->type), nw, nbias);
            /* ix[TFLite index] = odl index */
            size_t *ix = malloc(nw * sizeof *ix + 1);
            OOM(ix ? 0 : -1);
            int32_t wd[4], wr;
            if (dense) { /* TFLite flattens [1,H,W,C] in h,w,c order; odl in c,h,w order */
                int32_t ph = a->perm ? a->ph : a->h, pw = a->perm ? a->pw : a->w, pc = a->perm ? a->pc : a->c;
                size_t HW = (size_t)ph * (size_t)pw;
                for (size_t u = 0; u < O; u++)
                    for (size_t ch = 0; ch < (size_t)pc; ch++)
                        for (size_t p = 0; p < HW; p++)
                            ix[u * I + p * (size_t)pc + ch] = u * I + ch * HW + p;
                wd[0] = (int32_t)O, wd[1] = (int32_t)I, wr = 2;
            } else if (dw) { /* odl [C*M, 1, KH, KW] -> [1, KH, KW, C*M] */
                for (size_t q = 0; q < O; q++)
                    for (size_t k = 0; k < K2; k++)
                        ix[k * O + q] = q * K2 + k;
                wd[0] = 1, wd[1] = l->k_h, wd[2] = l->k_w, wd[3] = (int32_t)O, wr = 4;
            } else { /* odl [O, I, KH, KW] -> [O, KH, KW, I] */
                for (size_t q = 0; q < O; q++)
                    for (size_t ci = 0; ci < I; ci++)
                        for (size_t k = 0; k < K2; k++)
                            ix[(q * K2 + k) * I + ci] = (q * I + ci) * K2 + k;
                wd[0] = (int32_t)O, wd[1] = l->k_h, wd[2] = l->k_w, wd[3] = (int32_t)I, wr = 4;
            }
            int32_t wt_t, b_t, bd[1] = {(int32_t)O};
            join(nm, sizeof nm, name, dense ? "/weights" : "/filter");
            if (q8) { /* the file's int8 weights and int32 biases, per-channel scales */
                const qv *v = &ql[i];
                int8_t *wq = malloc(nw + 1);
                float *ws = malloc(O * sizeof *ws + 1), *bs = malloc(O * sizeof *bs + 1);
                int32_t *bq = malloc(O * sizeof *bq + 1);
                if (!wq || !ws || !bs || !bq) {
                    free(wq), free(ws), free(bs), free(bq), free(ix);
                    OOM(-1);
                }
                for (size_t k = 0; k < nw; k++)
                    wq[k] = v->w[ix[k]];
                float s_in = x.t[t4].q_s[0];
                for (size_t q = 0; q < O; q++) {
                    uint32_t u = (uint32_t)v->wscale[4 * q] | ((uint32_t)v->wscale[4 * q + 1] << 8) |
                                 ((uint32_t)v->wscale[4 * q + 2] << 16) | ((uint32_t)v->wscale[4 * q + 3] << 24);
                    memcpy(&ws[q], &u, 4);
                    bq[q] = (int32_t)((uint32_t)v->bias[4 * q] | ((uint32_t)v->bias[4 * q + 1] << 8) |
                                      ((uint32_t)v->bias[4 * q + 2] << 16) | ((uint32_t)v->bias[4 * q + 3] << 24));
                    bs[q] = s_in * ws[q];
                }
                /* one scale when every channel has the same (per-tensor in the source) */
                int32_t nq = (int32_t)O;
                for (size_t q = 1; q < O && nq > 1; q++)
                    if (ws[q] != ws[0])
                        nq = -1;
                nq = nq < 0 ? (int32_t)O : 1;
                int32_t wbuf = add_buffer(&x, wq, nw);
                wt_t = wbuf < 0 ? -1 : add_tensor(&x, nm, wr, wd, ODL_TFL_INT8, wbuf);
                if (wt_t >= 0)
                    wt_t = set_q(&x, wt_t, nq, ws, NULL, dw ? 3 : 0);
                join(nm, sizeof nm, name, "/bias");
                uint8_t *bb = malloc(4 * O + 1);
                if (bb)
                    for (size_t q = 0; q < O; q++)
                        for (int k = 0; k < 4; k++)
                            bb[4 * q + (size_t)k] = (uint8_t)((uint32_t)bq[q] >> (8 * k));
                int32_t bbuf = bb ? add_buffer(&x, bb, 4 * O) : -1;
                b_t = bbuf < 0 ? -1 : add_tensor(&x, nm, 1, bd, ODL_TFL_INT32, bbuf);
                if (b_t >= 0)
                    b_t = set_q(&x, b_t, nq, bs, NULL, 0);
                free(bb), free(wq), free(ws), free(bs), free(bq);
            } else {
                float *wt = malloc(nw * sizeof *wt + 1);
                if (!wt) {
                    free(ix);
                    OOM(-1);
                }
                for (size_t k = 0; k < nw; k++)
                    wt[k] = w[ix[k]];
                wt_t = const_f(&x, nm, wr, wd, wt, nw);
                free(wt);
                join(nm, sizeof nm, name, "/bias");
                b_t = const_f(&x, nm, 1, bd, b, nbias);
            }
            free(ix);
            OOM(wt_t);
            OOM(b_t);
            uint64_t fz = q8 && ql[i].fused ? (ql[i].fused == ODL_LAYER_RELU ? 1u : 3u) : 0u;
            o = add_op(&x, dense ? ODL_TFL_OP_FULLY_CONNECTED : dw ? ODL_TFL_OP_DEPTHWISE_CONV_2D : ODL_TFL_OP_CONV_2D,
                       y->t);
            OOM(o ? 0 : -1);
            o->in[0] = t4, o->in[1] = wt_t, o->in[2] = b_t, o->n_in = 3;
            if (dense) {
                o->opt_type = 8;
                opt(o, 0, 1, fz);
                break;
            }
            o->opt_type = dw ? 2 : 1;
            opt(o, 0, 1, (uint64_t)pk);
            opt(o, 1, 4, (uint64_t)l->stride_w);
            opt(o, 2, 4, (uint64_t)l->stride_h);
            if (dw) {
                opt(o, 3, 4, (uint64_t)(y->c / a->c));
                opt(o, 4, 1, fz);
                opt(o, 5, 4, (uint64_t)(l->dil_w ? l->dil_w : 1));
                opt(o, 6, 4, (uint64_t)(l->dil_h ? l->dil_h : 1));
            } else {
                opt(o, 3, 1, fz);
                opt(o, 4, 4, (uint64_t)(l->dil_w ? l->dil_w : 1));
                opt(o, 5, 4, (uint64_t)(l->dil_h ? l->dil_h : 1));
            }
            break;
        }
        case ODL_LAYER_MAXPOOL:
        case ODL_LAYER_AVGPOOL: {
            NEED(!a->perm, "reads a flattened map", i, odl_layer_type_name(l->type));
            int pk = padding_kind(l, a->h, a->w);
            NEED(pk >= 0, "pads %d,%d,%d,%d are neither SAME nor VALID", i, odl_layer_type_name(l->type),
                 (int)l->pad_t, (int)l->pad_l, (int)l->pad_b, (int)l->pad_r);
            NEED(pk == 1 || !(l->flags & ODL_NODE_COUNT_PAD), "padded cells counted in the average "
                 "(TFLite does not count them)", i, odl_layer_type_name(l->type));
            NEED(l->dil_h <= 1 && l->dil_w <= 1, "dilation", i, odl_layer_type_name(l->type));
            if ((s = as4(&x, a, &t4)) != ODL_OK)
                goto done;
            y->t = act_tensor(&x, name, y->c, y->h, y->w, 0);
            OOM(y->t);
            o = add_op(&x, l->type == ODL_LAYER_MAXPOOL ? ODL_TFL_OP_MAX_POOL_2D : ODL_TFL_OP_AVERAGE_POOL_2D, y->t);
            OOM(o ? 0 : -1);
            o->in[0] = t4, o->n_in = 1;
            o->opt_type = 5;
            opt(o, 0, 1, (uint64_t)pk);
            opt(o, 1, 4, (uint64_t)l->stride_w);
            opt(o, 2, 4, (uint64_t)l->stride_h);
            opt(o, 3, 4, (uint64_t)l->k_w);
            opt(o, 4, 4, (uint64_t)l->k_h);
            opt(o, 5, 1, 0);
            break;
        }
        case ODL_LAYER_GAP: {
            NEED(!a->perm, "reads a flattened map", i, odl_layer_type_name(l->type));
            if ((s = as4(&x, a, &t4)) != ODL_OK)
                goto done;
            int32_t axes[2] = {1, 2}, ad[1] = {2};
            int32_t at = const_i(&x, "axes", 1, ad, axes, 2);
            y->t = act_tensor(&x, name, y->c, 1, 1, 0);
            OOM(at);
            OOM(y->t);
            o = add_op(&x, ODL_TFL_OP_MEAN, y->t);
            OOM(o ? 0 : -1);
            o->in[0] = t4, o->in[1] = at, o->n_in = 2;
            o->opt_type = 27;
            opt(o, 0, 1, 1);
            break;
        }
        case ODL_LAYER_PAD: {
            NEED(!a->perm, "reads a flattened map", i, odl_layer_type_name(l->type));
            NEED(l->alpha == 0.0f, "pads with %g (TFLite's PAD pads with 0)", i, odl_layer_type_name(l->type),
                 (double)l->alpha);
            if ((s = as4(&x, a, &t4)) != ODL_OK)
                goto done;
            int32_t pv[8] = {0, 0, l->pad_t, l->pad_b, l->pad_l, l->pad_r, 0, 0}, pd[2] = {4, 2};
            int32_t pt = const_i(&x, "paddings", 2, pd, pv, 8);
            y->t = act_tensor(&x, name, y->c, y->h, y->w, 0);
            OOM(pt);
            OOM(y->t);
            o = add_op(&x, ODL_TFL_OP_PAD, y->t);
            OOM(o ? 0 : -1);
            o->in[0] = t4, o->in[1] = pt, o->n_in = 2;
            o->opt_type = 22;
            break;
        }
        case ODL_LAYER_FLATTEN:
        case ODL_LAYER_RESHAPE: {
            int flat = y->h == 1 && y->w == 1;
            int a_same = !a->perm && (a->c == 1 || (int64_t)a->h * a->w == 1);
            int y_same = y->c == 1 || (int64_t)y->h * y->w == 1;
            NEED(flat || (a_same && y_same), "a reshape that TFLite's NHWC order would do differently", i,
                 odl_layer_type_name(l->type));
            if (flat) {
                y->rank = 2;
                if (!a_same) {
                    y->perm = 1;
                    y->ph = a->perm ? a->ph : a->h;
                    y->pw = a->perm ? a->pw : a->w;
                    y->pc = a->perm ? a->pc : a->c;
                }
            }
            y->t = act_tensor(&x, name, y->c, y->h, y->w, y->rank == 2);
            int32_t shp[4] = {1, y->h, y->w, y->c}, sd[1] = {4};
            if (y->rank == 2)
                shp[1] = y->c, sd[0] = 2;
            int32_t st = const_i(&x, "shape", 1, sd, shp, (size_t)sd[0]);
            OOM(y->t);
            OOM(st);
            o = add_op(&x, ODL_TFL_OP_RESHAPE, y->t);
            OOM(o ? 0 : -1);
            o->in[0] = a->t, o->in[1] = st, o->n_in = 2;
            o->opt_type = 17;
            memcpy(o->new_shape, shp, sizeof shp);
            o->n_new_shape = sd[0];
            break;
        }
        case ODL_LAYER_DROPOUT:
            *y = *a; /* identity at inference */
            continue;
        case ODL_LAYER_ADD:
        case ODL_LAYER_MUL:
        case ODL_LAYER_CONCAT:
        case ODL_LAYER_RELU:
        case ODL_LAYER_RELU6:
        case ODL_LAYER_SIGMOID:
        case ODL_LAYER_TANH:
        case ODL_LAYER_HARD_SWISH:
        case ODL_LAYER_LEAKY_RELU:
        case ODL_LAYER_CLIP: {
            int32_t code;
            switch (l->type) {
            case ODL_LAYER_ADD: code = ODL_TFL_OP_ADD; break;
            case ODL_LAYER_MUL: code = ODL_TFL_OP_MUL; break;
            case ODL_LAYER_CONCAT: code = ODL_TFL_OP_CONCATENATION; break;
            case ODL_LAYER_RELU: code = ODL_TFL_OP_RELU; break;
            case ODL_LAYER_RELU6: code = ODL_TFL_OP_RELU6; break;
            case ODL_LAYER_SIGMOID: code = ODL_TFL_OP_LOGISTIC; break;
            case ODL_LAYER_TANH: code = ODL_TFL_OP_TANH; break;
            case ODL_LAYER_HARD_SWISH: code = ODL_TFL_OP_HARD_SWISH; break;
            case ODL_LAYER_LEAKY_RELU: code = ODL_TFL_OP_LEAKY_RELU; break;
            default:
                code = l->alpha == 0.0f && l->beta == 6.0f ? ODL_TFL_OP_RELU6
                     : l->alpha == -1.0f && l->beta == 1.0f ? ODL_TFL_OP_RELU_N1_TO_1 : -1;
                NEED(code >= 0, "clip to [%g, %g] (TFLite has [0, 6] and [-1, 1])", i,
                     odl_layer_type_name(l->type), (double)l->alpha, (double)l->beta);
            }
            /* the result keeps the layout of the first operand */
            y->rank = a->rank, y->perm = a->perm, y->ph = a->ph, y->pw = a->pw, y->pc = a->pc;
            if (l->type == ODL_LAYER_CONCAT) {
                for (int32_t k = 0; k < l->n_in; k++)
                    NEED(!map[l->in[k]].perm && map[l->in[k]].rank == a->rank, "operands of different layouts",
                         i, odl_layer_type_name(l->type));
            }
            if (l->n_in == 2 && l->type != ODL_LAYER_CONCAT) {
                const xt *b2 = &map[l->in[1]];
                NEED(b2->perm == a->perm && (b2->rank == a->rank || (a->rank == 4 && b2->c * b2->h * b2->w == b2->c)),
                     "operands of different layouts", i, odl_layer_type_name(l->type));
            }
            NEED(l->n_in <= 4, "%d inputs (the writer takes up to 4)", i, odl_layer_type_name(l->type), (int)l->n_in);
            /* TFLite's int8 CONCATENATION takes inputs with the output's
             * scale and zero point only: an input with others goes through
             * an int8 QUANTIZE first (the same fixed-point requantisation
             * odl's concat does) */
            int32_t requant[4] = {-1, -1, -1, -1};
            for (int32_t k = 0; q8 && l->type == ODL_LAYER_CONCAT && k < l->n_in; k++) {
                const xt *src = &map[l->in[k]];
                const xtensor *st = &x.t[src->t];
                if (st->q_s && st->q_s[0] == ql[i].s && st->q_z[0] == ql[i].zp)
                    continue;
                char rn[200];
                snprintf(rn, sizeof rn, "%s/requantised", st->name);
                int32_t rt = act_tensor(&x, rn, src->c, src->h, src->w, src->rank == 2);
                OOM(rt);
                x.t[rt].type = ODL_TFL_INT8;
                OOM(set_q(&x, rt, 1, &ql[i].s, &ql[i].zp, 0));
                xop *qo = add_op(&x, ODL_TFL_OP_QUANTIZE, rt);
                OOM(qo ? 0 : -1);
                qo->in[0] = src->t, qo->n_in = 1;
                requant[k] = rt;
            }
            y->t = act_tensor(&x, name, y->c, y->h, y->w, y->rank == 2);
            OOM(y->t);
            o = add_op(&x, code, y->t);
            OOM(o ? 0 : -1);
            o->n_in = l->n_in > 4 ? 4 : l->n_in;
            for (int32_t k = 0; k < o->n_in; k++) {
                xt *src = &map[l->in[k]];
                if (y->rank == 4 && src->rank == 2) {
                    if ((s = as4(&x, src, &t4)) != ODL_OK)
                        goto done;
                    o = &x.o[x.no - 2]; /* as4 appended a RESHAPE: o moved */
                    /* keep the reshape before this operator */
                    xop tmp = x.o[x.no - 1];
                    x.o[x.no - 1] = x.o[x.no - 2];
                    x.o[x.no - 2] = tmp;
                    o = &x.o[x.no - 1];
                    o->in[k] = t4;
                } else {
                    o->in[k] = requant[k] >= 0 ? requant[k] : src->t;
                }
            }
            if (l->type == ODL_LAYER_ADD || l->type == ODL_LAYER_MUL) {
                o->opt_type = l->type == ODL_LAYER_ADD ? 11 : 21;
                opt(o, 0, 1, 0);
            } else if (l->type == ODL_LAYER_CONCAT) {
                o->opt_type = 10;
                opt(o, 0, 4, (uint64_t)(uint32_t)(y->rank - 1));
                opt(o, 1, 1, 0);
            } else if (l->type == ODL_LAYER_LEAKY_RELU) {
                uint32_t u;
                memcpy(&u, &l->alpha, 4);
                o->opt_type = 75;
                opt(o, 0, 4, u);
            }
            break;
        }
        default:
            NEED(0, "no TFLite equivalent in odl's writer (docs/tflite.md lists what exports)", i,
                 odl_layer_type_name(l->type));
        }
        if (q8 && y->t >= 0) { /* the INT8 layer's output parameters */
            x.t[y->t].type = ODL_TFL_INT8;
            OOM(set_q(&x, y->t, 1, &ql[i].s, &ql[i].zp, 0));
        }
    }
    if (K > 0 && K == L && (s = dequant(&x, &map[L])) != ODL_OK)
        goto done;
    {
        xt *last = &map[L];
        NEED(!last->perm, "the output is a flattened map", L - 1, odl_layer_type_name(desc->layers[L - 1].type));
        int32_t out_t = last->t;
        if (desc->softmax_output) {
            char nm[160];
            join(nm, sizeof nm, x.t[last->t].name, "/softmax");
            out_t = act_tensor(&x, nm, last->c, last->h, last->w, last->rank == 2);
            OOM(out_t);
            xop *o = add_op(&x, ODL_TFL_OP_SOFTMAX, out_t);
            OOM(o ? 0 : -1);
            o->in[0] = last->t, o->n_in = 1;
            o->opt_type = 9;
            uint32_t one = 0x3f800000u;
            opt(o, 0, 4, one);
        }
        s = serialise(&x, map[0].t, out_t, out, out_len);
    }
done:
    for (int32_t k = 0; k < x.nb; k++)
        free(x.b[k].data);
    free(x.b);
    for (int32_t k = 0; k < x.nt; k++) {
        free(x.t[k].q_s);
        free(x.t[k].q_z);
    }
    free(x.t);
    free(x.o);
    free(map);
    free(ql);
    return s;
}
