/* Learner state in the .odl file (odl/state.h; layouts in docs/format.md):
 * a streaming chunk writer, the EWC / NCM / SLDA chunks, whole-file helpers
 * and the model-plus-state writer. The RPLY chunk itself is in replay.c
 * (it needs the buffer's internals). Every length, count and value read
 * from a chunk is checked before anything is changed. */
#include "odl/state.h"
#include "bytes_le.h"

#include <math.h>
#include <string.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "odl's state chunks hand payload floats to the learners in place: little-endian targets only"
#endif

/* ---- payload helpers ----------------------------------------------------- */

static uint64_t al16(uint64_t v) { return (v + 15u) & ~(uint64_t)15u; }

static int zeros(const uint8_t *p, uint64_t from, uint64_t to)
{
    for (uint64_t i = from; i < to; i++)
        if (p[i])
            return 0;
    return 1;
}

static int aligned4(const void *p) { return ((uintptr_t)p & 3u) == 0; }

/* ---- streaming chunk writer ------------------------------------------------ */

enum { PASS_COUNT = 0, PASS_CRC = 1, PASS_WRITE = 2 };

struct odl_chunk_out {
    int pass;
    uint64_t n;   /* payload bytes produced in this pass */
    uint32_t crc;
    odl_writer *w;
    odl_diag *d;
    odl_status s;
    size_t fill;
    uint8_t buf[256];
};

static odl_status raw_write(odl_writer *w, const void *p, size_t n, odl_diag *d)
{
    if (!n)
        return ODL_OK;
    odl_status s = w->write(w->ctx, p, n);
    if (s != ODL_OK)
        return odl_fail(d, s < 0 ? s : ODL_ERR_IO, "write failed at byte %lu", (unsigned long)w->offset);
    w->offset += n;
    return ODL_OK;
}

static void out_flush(odl_chunk_out *o)
{
    if (o->fill && o->s == ODL_OK) {
        if (o->pass == PASS_CRC)
            o->crc = odl_crc32(o->crc, o->buf, o->fill);
        else if (o->pass == PASS_WRITE)
            o->s = raw_write(o->w, o->buf, o->fill, o->d);
    }
    o->fill = 0;
}

void odl_chunk_put_bytes(odl_chunk_out *o, const void *p, size_t n)
{
    if (!o || !n || o->s != ODL_OK)
        return;
    o->n += n;
    if (o->pass == PASS_COUNT)
        return;
    if (n > sizeof o->buf - o->fill) {
        out_flush(o);
        if (n >= sizeof o->buf) { /* large: straight through */
            if (o->pass == PASS_CRC)
                o->crc = odl_crc32(o->crc, p, n);
            else if (o->s == ODL_OK)
                o->s = raw_write(o->w, p, n, o->d);
            return;
        }
    }
    memcpy(o->buf + o->fill, p, n);
    o->fill += n;
}

void odl_chunk_put_u32(odl_chunk_out *o, uint32_t v)
{
    uint8_t b[4];
    le_put_u32(b, v);
    odl_chunk_put_bytes(o, b, 4);
}

void odl_chunk_put_u64(odl_chunk_out *o, uint64_t v)
{
    uint8_t b[8];
    le_put_u64(b, v);
    odl_chunk_put_bytes(o, b, 8);
}

void odl_chunk_put_f32(odl_chunk_out *o, float v)
{
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    odl_chunk_put_u32(o, u);
}

void odl_chunk_put_f32s(odl_chunk_out *o, const float *v, size_t n)
{
    /* little-endian host (checked above): the bytes are the encoding */
    if (n)
        odl_chunk_put_bytes(o, v, n * sizeof(float));
}

void odl_chunk_align16(odl_chunk_out *o)
{
    static const uint8_t z[16] = {0};
    if (o)
        odl_chunk_put_bytes(o, z, (size_t)(al16(o->n) - o->n));
}

odl_status odl_state_write_chunk_fn(odl_writer *w, uint32_t type, odl_chunk_fill_fn fill, const void *ctx,
                                    odl_diag *d)
{
    if (!w || !w->write || !fill)
        return odl_fail(d, ODL_ERR_ARG, "state chunk writer: bad arguments");
    odl_chunk_out o;
    memset(&o, 0, sizeof o);
    o.w = w;
    o.d = d;
    o.pass = PASS_COUNT;
    fill(&o, ctx);
    const uint64_t len = o.n;
    uint8_t h[ODL_CHUNK_HEADER_BYTES];
    le_put_u32(h, type);
    le_put_u64(h + 8, len);
    o.pass = PASS_CRC;
    o.n = 0;
    o.crc = odl_crc32(0, h, 4);
    o.crc = odl_crc32(o.crc, h + 8, 8);
    fill(&o, ctx);
    out_flush(&o);
    if (o.n != len)
        return odl_fail(d, ODL_ERR_STATE, "state chunk writer: the producer gave %lu bytes, then %lu",
                        (unsigned long)len, (unsigned long)o.n);
    le_put_u32(h + 4, o.crc);
    odl_status s = raw_write(w, h, sizeof h, d);
    if (s != ODL_OK)
        return s;
    o.pass = PASS_WRITE;
    o.n = 0;
    fill(&o, ctx);
    out_flush(&o);
    if (o.s != ODL_OK)
        return o.s;
    if (o.n != len)
        return odl_fail(d, ODL_ERR_STATE, "state chunk writer: the producer gave %lu bytes, then %lu",
                        (unsigned long)len, (unsigned long)o.n);
    static const uint8_t z[16] = {0};
    return raw_write(w, z, (size_t)(al16(len) - len), d);
}

/* ---- EWC ------------------------------------------------------------------
 * 0 u32 version | 4 u32 reserved 0 | 8 u64 n | 16 fisher[n] f32 | pad16 | anchor[n] f32 */

#define EWC_HEADER 16u

static void ewc_fill(odl_chunk_out *o, const void *ctx)
{
    const odl_ewc *e = ctx;
    const size_t n = odl_ewc_n_params(e);
    odl_chunk_put_u32(o, ODL_STATE_LAYOUT_VERSION);
    odl_chunk_put_u32(o, 0);
    odl_chunk_put_u64(o, (uint64_t)n);
    odl_chunk_put_f32s(o, odl_ewc_fisher(e), n);
    odl_chunk_align16(o);
    odl_chunk_put_f32s(o, odl_ewc_anchor(e), n);
}

odl_status odl_state_write_ewc(odl_writer *w, const odl_ewc *e, odl_diag *d)
{
    if (!e || !w)
        return odl_fail(d, ODL_ERR_ARG, "odl_state_write_ewc: ewc and writer must not be NULL");
    return odl_state_write_chunk_fn(w, ODL_CHUNK_EWC, ewc_fill, e, d);
}

odl_status odl_state_ewc_n_params(const uint8_t *p, size_t len, size_t *n_params, odl_diag *d)
{
    if (!p || !n_params)
        return odl_fail(d, ODL_ERR_ARG, "EWC chunk: payload and n_params must not be NULL");
    if (len < EWC_HEADER)
        return odl_fail(d, ODL_ERR_FORMAT, "EWC chunk: %zu bytes, shorter than its %u-byte header", len,
                        (unsigned)EWC_HEADER);
    if (le_get_u32(p) != ODL_STATE_LAYOUT_VERSION)
        return odl_fail(d, ODL_ERR_UNSUPPORTED, "EWC chunk: layout version %u (this odl reads %u)",
                        (unsigned)le_get_u32(p), (unsigned)ODL_STATE_LAYOUT_VERSION);
    if (le_get_u32(p + 4) != 0)
        return odl_fail(d, ODL_ERR_FORMAT, "EWC chunk: reserved field is not zero");
    const uint64_t n = le_get_u64(p + 8);
    if (n == 0 || n > (uint64_t)len / 8u || al16(EWC_HEADER + 4u * n) + 4u * n != (uint64_t)len)
        return odl_fail(d, ODL_ERR_FORMAT, "EWC chunk: %lu parameters in %zu bytes", (unsigned long)n, len);
    *n_params = (size_t)n;
    return ODL_OK;
}

odl_status odl_state_read_ewc(odl_ewc *e, const uint8_t *p, size_t len, odl_diag *d)
{
    if (!e)
        return odl_fail(d, ODL_ERR_ARG, "odl_state_read_ewc: ewc must not be NULL");
    size_t n = 0;
    odl_status s = odl_state_ewc_n_params(p, len, &n, d);
    if (s != ODL_OK)
        return s;
    if (n != odl_ewc_n_params(e))
        return odl_fail(d, ODL_ERR_SHAPE, "EWC chunk: %zu parameters in the file, the model has %zu trainable", n,
                        odl_ewc_n_params(e));
    const uint64_t fe = EWC_HEADER + 4u * (uint64_t)n, ao = al16(fe);
    if (!zeros(p, fe, ao))
        return odl_fail(d, ODL_ERR_FORMAT, "EWC chunk: non-zero padding");
    if (!aligned4(p))
        return odl_fail(d, ODL_ERR_ARG, "EWC chunk: payload not 4-byte aligned (load files 16-byte aligned)");
    s = odl_ewc_set(e, (const float *)(const void *)(p + EWC_HEADER), (const float *)(const void *)(p + ao), n, d);
    if (s != ODL_OK)
        odl_diag_prefix(d, "EWC chunk");
    return s;
}

/* ---- NCM / SLDA ---------------------------------------------------------------
 * NCM:  0 u32 version | 4 i32 dim | 8 i32 max_classes | 12 u32 reserved 0 |
 *       16 counts[C] u32 | pad16 | means[C*D] f32
 * SLDA: 0 u32 version | 4 i32 dim | 8 i32 max_classes | 12 f32 shrinkage |
 *       16 u64 n_total | 24 u64 reserved 0 | 32 counts[C] u32 | pad16 |
 *       means[C*D] f32 | pad16 | cov[D*D] f32 */

#define NCM_HEADER 16u
#define SLDA_HEADER 32u

typedef struct cm_layout {
    uint64_t counts, means, cov, end;
} cm_layout;

static void cm_layout_of(int slda, int32_t dim, int32_t classes, cm_layout *L)
{
    const uint64_t D = (uint64_t)dim, C = (uint64_t)classes;
    L->counts = slda ? SLDA_HEADER : NCM_HEADER;
    L->means = al16(L->counts + 4u * C);
    if (slda) {
        L->cov = al16(L->means + 4u * C * D);
        L->end = L->cov + 4u * D * D;
    } else {
        L->cov = L->means + 4u * C * D;
        L->end = L->cov;
    }
}

static void cm_fill(odl_chunk_out *o, int slda, int32_t D, int32_t C, float shrinkage, uint64_t n_total,
                    const float *means, const void *h)
{
    odl_chunk_put_u32(o, ODL_STATE_LAYOUT_VERSION);
    odl_chunk_put_u32(o, (uint32_t)D);
    odl_chunk_put_u32(o, (uint32_t)C);
    if (slda) {
        odl_chunk_put_f32(o, shrinkage);
        odl_chunk_put_u64(o, n_total);
        odl_chunk_put_u64(o, 0);
    } else {
        odl_chunk_put_u32(o, 0);
    }
    for (int32_t c = 0; c < C; c++)
        odl_chunk_put_u32(o, (uint32_t)(slda ? odl_slda_count(h, c) : odl_ncm_count(h, c)));
    odl_chunk_align16(o);
    odl_chunk_put_f32s(o, means, (size_t)C * (size_t)D);
    if (slda) {
        odl_chunk_align16(o);
        for (int32_t i = 0; i < D; i++)
            for (int32_t j = 0; j < D; j++)
                odl_chunk_put_f32(o, odl_slda_cov_at(h, i, j));
    }
}

static void ncm_fill(odl_chunk_out *o, const void *ctx)
{
    const odl_ncm *h = ctx;
    cm_fill(o, 0, odl_ncm_dim(h), odl_ncm_max_classes(h), 0.0f, 0, odl_ncm_means(h), h);
}

static void slda_fill(odl_chunk_out *o, const void *ctx)
{
    const odl_slda *h = ctx;
    cm_fill(o, 1, odl_slda_dim(h), odl_slda_max_classes(h), odl_slda_shrinkage(h), odl_slda_n_total(h),
            odl_slda_means(h), h);
}

odl_status odl_state_write_ncm(odl_writer *w, const odl_ncm *h, odl_diag *d)
{
    if (!h || !w)
        return odl_fail(d, ODL_ERR_ARG, "odl_state_write_ncm: head and writer must not be NULL");
    return odl_state_write_chunk_fn(w, ODL_CHUNK_NCM, ncm_fill, h, d);
}

odl_status odl_state_write_slda(odl_writer *w, const odl_slda *h, odl_diag *d)
{
    if (!h || !w)
        return odl_fail(d, ODL_ERR_ARG, "odl_state_write_slda: head and writer must not be NULL");
    return odl_state_write_chunk_fn(w, ODL_CHUNK_SLDA, slda_fill, h, d);
}

/* Header checks shared by NCM and SLDA; fills the layout. */
static odl_status cm_header(int slda, const uint8_t *p, size_t len, int32_t *dim, int32_t *classes, float *shrinkage,
                            cm_layout *L, odl_diag *d)
{
    const char *who = slda ? "SLDA chunk" : "NCM chunk";
    const uint32_t hdr = slda ? SLDA_HEADER : NCM_HEADER;
    if (!p)
        return odl_fail(d, ODL_ERR_ARG, "%s: payload must not be NULL", who);
    if (len < hdr)
        return odl_fail(d, ODL_ERR_FORMAT, "%s: %zu bytes, shorter than its %u-byte header", who, len,
                        (unsigned)hdr);
    if (le_get_u32(p) != ODL_STATE_LAYOUT_VERSION)
        return odl_fail(d, ODL_ERR_UNSUPPORTED, "%s: layout version %u (this odl reads %u)", who, (unsigned)le_get_u32(p),
                        (unsigned)ODL_STATE_LAYOUT_VERSION);
    const int32_t D = (int32_t)le_get_u32(p + 4), C = (int32_t)le_get_u32(p + 8);
    odl_mem_plan plan;
    if ((slda ? odl_slda_plan(D, C, &plan, NULL) : odl_ncm_plan(D, C, &plan, NULL)) != ODL_OK)
        return odl_fail(d, ODL_ERR_FORMAT, "%s: dim %d, %d classes: out of range", who, (int)D, (int)C);
    float shr = 0.0f;
    if (slda) {
        shr = le_get_f32(p + 12);
        if (!(shr >= 0.0f && shr <= 1.0f))
            return odl_fail(d, ODL_ERR_FORMAT, "%s: shrinkage %.6f outside [0, 1]", who, (double)shr);
        if (le_get_u64(p + 24) != 0)
            return odl_fail(d, ODL_ERR_FORMAT, "%s: reserved field is not zero", who);
    } else if (le_get_u32(p + 12) != 0) {
        return odl_fail(d, ODL_ERR_FORMAT, "%s: reserved field is not zero", who);
    }
    cm_layout_of(slda, D, C, L);
    if (L->end != (uint64_t)len)
        return odl_fail(d, ODL_ERR_FORMAT, "%s: %zu bytes, %lu expected for dim %d and %d classes", who, len,
                        (unsigned long)L->end, (int)D, (int)C);
    if (dim)
        *dim = D;
    if (classes)
        *classes = C;
    if (shrinkage)
        *shrinkage = shr;
    return ODL_OK;
}

odl_status odl_state_ncm_shape(const uint8_t *p, size_t len, int32_t *dim, int32_t *max_classes, odl_diag *d)
{
    cm_layout L;
    return cm_header(0, p, len, dim, max_classes, NULL, &L, d);
}

odl_status odl_state_slda_shape(const uint8_t *p, size_t len, int32_t *dim, int32_t *max_classes, float *shrinkage,
                                odl_diag *d)
{
    cm_layout L;
    return cm_header(1, p, len, dim, max_classes, shrinkage, &L, d);
}

/* Body checks shared by NCM and SLDA: shape against the head, padding,
 * counts, zero rows of unseen classes; returns the counts' sum. */
static odl_status cm_body(int slda, const uint8_t *p, size_t len, int32_t hd, int32_t hc, cm_layout *L,
                          uint64_t *sum, odl_diag *d)
{
    const char *who = slda ? "SLDA chunk" : "NCM chunk";
    int32_t D = 0, C = 0;
    odl_status s = cm_header(slda, p, len, &D, &C, NULL, L, d);
    if (s != ODL_OK)
        return s;
    if (D != hd || C != hc)
        return odl_fail(d, ODL_ERR_SHAPE, "%s: dim %d, %d classes in the file; the head has dim %d, %d classes", who,
                        (int)D, (int)C, (int)hd, (int)hc);
    const uint64_t ce = L->counts + 4u * (uint64_t)C, me = L->means + 4u * (uint64_t)C * (uint64_t)D;
    if (!zeros(p, ce, L->means) || (slda && !zeros(p, me, L->cov)))
        return odl_fail(d, ODL_ERR_FORMAT, "%s: non-zero padding", who);
    uint64_t total = 0;
    for (int32_t c = 0; c < C; c++) {
        const uint32_t n = le_get_u32(p + L->counts + 4u * (uint64_t)c);
        if (n > (uint32_t)INT32_MAX)
            return odl_fail(d, ODL_ERR_FORMAT, "%s: class %d count %u exceeds %d", who, (int)c, (unsigned)n,
                            (int)INT32_MAX);
        total += n;
        if (!n && !zeros(p, L->means + 4u * (uint64_t)c * (uint64_t)D, L->means + 4u * (uint64_t)(c + 1) * (uint64_t)D))
            return odl_fail(d, ODL_ERR_FORMAT, "%s: class %d has no samples but a non-zero mean", who, (int)c);
    }
    if (!aligned4(p))
        return odl_fail(d, ODL_ERR_ARG, "%s: payload not 4-byte aligned (load files 16-byte aligned)", who);
    *sum = total;
    return ODL_OK;
}

/* The set functions' ODL_ERR_ARG (inconsistent content) is a format error
 * when the content comes from a file. */
static odl_status as_file_error(odl_status s, const char *who, odl_diag *d)
{
    if (s == ODL_OK)
        return s;
    odl_diag_prefix(d, who);
    if (s == ODL_ERR_ARG) {
        s = ODL_ERR_FORMAT;
        if (d)
            d->status = s;
    }
    return s;
}

odl_status odl_state_read_ncm(odl_ncm *h, const uint8_t *p, size_t len, odl_diag *d)
{
    if (!h)
        return odl_fail(d, ODL_ERR_ARG, "odl_state_read_ncm: head must not be NULL");
    cm_layout L;
    uint64_t sum;
    odl_status s = cm_body(0, p, len, odl_ncm_dim(h), odl_ncm_max_classes(h), &L, &sum, d);
    if (s != ODL_OK)
        return s;
    s = odl_ncm_set(h, (const float *)(const void *)(p + L.means), (const uint32_t *)(const void *)(p + L.counts), d);
    return as_file_error(s, "NCM chunk", d);
}

odl_status odl_state_read_slda(odl_slda *h, const uint8_t *p, size_t len, odl_diag *d)
{
    if (!h)
        return odl_fail(d, ODL_ERR_ARG, "odl_state_read_slda: head must not be NULL");
    cm_layout L;
    uint64_t sum;
    odl_status s = cm_body(1, p, len, odl_slda_dim(h), odl_slda_max_classes(h), &L, &sum, d);
    if (s != ODL_OK)
        return s;
    const uint64_t n_total = le_get_u64(p + 16);
    if (n_total != sum)
        return odl_fail(d, ODL_ERR_FORMAT, "SLDA chunk: the class counts sum to %lu, n_total is %lu",
                        (unsigned long)sum, (unsigned long)n_total);
    s = odl_slda_set(h, (const float *)(const void *)(p + L.means), (const uint32_t *)(const void *)(p + L.counts),
                     (const float *)(const void *)(p + L.cov), n_total, d);
    return as_file_error(s, "SLDA chunk", d);
}

/* ---- replay (the chunk code is in replay.c) ---------------------------------- */

odl_status odl_state_write_replay(odl_writer *w, const odl_replay *rb, odl_diag *d)
{
    return odl_replay_save(rb, w, d);
}

odl_status odl_state_read_replay(odl_replay *rb, const uint8_t *payload, size_t len, odl_diag *d)
{
    return odl_replay_load(rb, payload, len, d);
}

odl_status odl_state_replay_cfg(const uint8_t *payload, size_t len, odl_replay_cfg *cfg, odl_diag *d)
{
    return odl_replay_chunk_cfg(payload, len, cfg, d);
}

/* ---- all chunks ------------------------------------------------------------ */

odl_status odl_state_write_all(odl_writer *w, const odl_replay *rb, const odl_ewc *e, const odl_ncm *ncm,
                               const odl_slda *slda, odl_diag *d)
{
    if (!w)
        return odl_fail(d, ODL_ERR_ARG, "odl_state_write_all: writer must not be NULL");
    odl_status s = ODL_OK;
    if (rb)
        s = odl_replay_save(rb, w, d);
    if (s == ODL_OK && e)
        s = odl_state_write_ewc(w, e, d);
    if (s == ODL_OK && ncm)
        s = odl_state_write_ncm(w, ncm, d);
    if (s == ODL_OK && slda)
        s = odl_state_write_slda(w, slda, d);
    return s;
}

odl_status odl_state_save_model_with_parts(const odl_model *m, const odl_meta_kv *meta, int32_t n_meta,
                                           const odl_state_parts *parts, odl_writer *w, odl_diag *d)
{
    if (!m || !w || !w->write || !parts)
        return odl_fail(d, ODL_ERR_ARG, "odl_state_save_model_with_state: model, parts and writer must not be NULL");
    odl_status s = odl_model_write_chunks(m, meta, n_meta, w, d);
    if (s == ODL_OK)
        s = odl_state_write_all(w, parts->replay, parts->ewc, parts->ncm, parts->slda, d);
    if (s == ODL_OK && parts->raw_replay)
        s = odl_replay_save_as(parts->raw_replay, ODL_CHUNK_RAW_REPLAY, w, d);
    if (s == ODL_OK)
        s = odl_file_write_end(w, d);
    return s;
}

odl_status odl_state_save_model_with_state(const odl_model *m, const odl_meta_kv *meta, int32_t n_meta,
                                           const odl_replay *rb, const odl_ewc *e, const odl_ncm *ncm,
                                           const odl_slda *slda, odl_writer *w, odl_diag *d)
{
    const odl_state_parts parts = {rb, NULL, e, ncm, slda};
    return odl_state_save_model_with_parts(m, meta, n_meta, &parts, w, d);
}

/* ---- whole-file reading ---------------------------------------------------- */

odl_status odl_state_find(const void *buf, size_t len, uint32_t type, const uint8_t **payload, size_t *payload_len,
                          odl_diag *d)
{
    if (!payload || !payload_len)
        return odl_fail(d, ODL_ERR_ARG, "odl_state_find: payload and payload_len must not be NULL");
    odl_file_iter it;
    odl_status s = odl_file_open(&it, buf, len, d);
    if (s != ODL_OK)
        return s;
    const uint8_t *found = NULL;
    size_t found_len = 0;
    for (;;) {
        uint32_t t;
        const uint8_t *p;
        size_t n;
        s = odl_file_next(&it, &t, &p, &n, d);
        if (s != ODL_OK)
            return s;
        if (t == ODL_CHUNK_END)
            break;
        if (t == type && type != ODL_CHUNK_END) {
            if (found)
                return odl_fail(d, ODL_ERR_FORMAT, "chunk %d: a second chunk of type 0x%x", (int)it.index - 1,
                                (unsigned)t);
            found = p;
            found_len = n;
        }
    }
    if (!found)
        return ODL_ERR_NOT_FOUND;
    *payload = found;
    *payload_len = found_len;
    return ODL_OK;
}

odl_status odl_state_find_replay_cfg(const void *buf, size_t len, odl_replay_cfg *cfg, odl_diag *d)
{
    const uint8_t *p;
    size_t n;
    odl_status s = odl_state_find(buf, len, ODL_CHUNK_REPLAY, &p, &n, d);
    if (s != ODL_OK)
        return s;
    return odl_replay_chunk_cfg(p, n, cfg, d);
}

static uint32_t state_bit(uint32_t t)
{
    switch (t) {
    case ODL_CHUNK_REPLAY: return ODL_STATE_HAS_REPLAY;
    case ODL_CHUNK_EWC: return ODL_STATE_HAS_EWC;
    case ODL_CHUNK_NCM: return ODL_STATE_HAS_NCM;
    case ODL_CHUNK_SLDA: return ODL_STATE_HAS_SLDA;
    default: return 0;
    }
}

/* The chunk's configuration against the component's, without changing it. */
static odl_status check_shape(uint32_t t, const uint8_t *p, size_t n, const odl_replay *rb, const odl_ewc *e,
                              const odl_ncm *ncm, const odl_slda *slda, odl_diag *d)
{
    odl_status s = ODL_OK;
    int32_t D = 0, C = 0;
    if (t == ODL_CHUNK_REPLAY && rb) {
        odl_replay_cfg c;
        s = odl_replay_chunk_cfg(p, n, &c, d);
        const odl_replay_cfg *b = odl_replay_get_cfg(rb);
        if (s == ODL_OK && (c.capacity != b->capacity || c.dim != b->dim || c.n_classes != b->n_classes ||
                            c.policy != b->policy || c.dtype != b->dtype))
            s = odl_fail(d, ODL_ERR_SHAPE,
                         "replay chunk: capacity %d, dim %d, %d classes, policy %d, dtype %d in the file; the buffer "
                         "has %d, %d, %d, %d, %d",
                         (int)c.capacity, (int)c.dim, (int)c.n_classes, (int)c.policy, (int)c.dtype,
                         (int)b->capacity, (int)b->dim, (int)b->n_classes, (int)b->policy, (int)b->dtype);
    } else if (t == ODL_CHUNK_EWC && e) {
        size_t np = 0;
        s = odl_state_ewc_n_params(p, n, &np, d);
        if (s == ODL_OK && np != odl_ewc_n_params(e))
            s = odl_fail(d, ODL_ERR_SHAPE, "EWC chunk: %zu parameters in the file, the model has %zu trainable", np,
                         odl_ewc_n_params(e));
    } else if (t == ODL_CHUNK_NCM && ncm) {
        s = odl_state_ncm_shape(p, n, &D, &C, d);
        if (s == ODL_OK && (D != odl_ncm_dim(ncm) || C != odl_ncm_max_classes(ncm)))
            s = odl_fail(d, ODL_ERR_SHAPE, "NCM chunk: dim %d, %d classes in the file; the head has dim %d, %d classes",
                         (int)D, (int)C, (int)odl_ncm_dim(ncm), (int)odl_ncm_max_classes(ncm));
    } else if (t == ODL_CHUNK_SLDA && slda) {
        s = odl_state_slda_shape(p, n, &D, &C, NULL, d);
        if (s == ODL_OK && (D != odl_slda_dim(slda) || C != odl_slda_max_classes(slda)))
            s = odl_fail(d, ODL_ERR_SHAPE,
                         "SLDA chunk: dim %d, %d classes in the file; the head has dim %d, %d classes", (int)D,
                         (int)C, (int)odl_slda_dim(slda), (int)odl_slda_max_classes(slda));
    }
    return s;
}

odl_status odl_state_load(const void *buf, size_t len, odl_replay *rb, odl_ewc *e, odl_ncm *ncm, odl_slda *slda,
                          uint32_t *found, odl_diag *d)
{
    if (found)
        *found = 0;
    /* pass 1: the whole file, and every state chunk's configuration */
    odl_file_iter it;
    odl_status s = odl_file_open(&it, buf, len, d);
    if (s != ODL_OK)
        return s;
    uint32_t have = 0;
    for (;;) {
        uint32_t t;
        const uint8_t *p;
        size_t n;
        s = odl_file_next(&it, &t, &p, &n, d);
        if (s != ODL_OK)
            return s;
        if (t == ODL_CHUNK_END)
            break;
        const uint32_t bit = state_bit(t);
        if (!bit)
            continue;
        if (have & bit)
            return odl_fail(d, ODL_ERR_FORMAT, "chunk %d: a second learner-state chunk of the same type",
                            (int)it.index - 1);
        have |= bit;
        s = check_shape(t, p, n, rb, e, ncm, slda, d);
        if (s != ODL_OK)
            return s;
    }
    if (found)
        *found = have;
    /* pass 2: restore */
    odl_file_open(&it, buf, len, NULL);
    for (;;) {
        uint32_t t;
        const uint8_t *p;
        size_t n;
        s = odl_file_next(&it, &t, &p, &n, d);
        if (s != ODL_OK)
            return s;
        if (t == ODL_CHUNK_END)
            return ODL_OK;
        if (t == ODL_CHUNK_REPLAY && rb)
            s = odl_replay_load(rb, p, n, d);
        else if (t == ODL_CHUNK_EWC && e)
            s = odl_state_read_ewc(e, p, n, d);
        else if (t == ODL_CHUNK_NCM && ncm)
            s = odl_state_read_ncm(ncm, p, n, d);
        else if (t == ODL_CHUNK_SLDA && slda)
            s = odl_state_read_slda(slda, p, n, d);
        if (s != ODL_OK)
            return s;
    }
}
