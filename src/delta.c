/* Signed head deltas (odl/delta.h; the layout is in docs/format.md, "Head
 * deltas"). The encoder streams the message through the caller's writer and
 * signs it on the way; the verifier reads it in place. Every length, count
 * and index in a message is checked, in 64-bit arithmetic, before use. */
#include "odl/delta.h"
#include "odl/state.h"
#include "bytes_le.h"

#include <string.h>

#define DLTA_HEADER 64u
#define DLTA_RECORD 16u
#define AUTH_PAYLOAD 48u
#define NODE_RECORD 116u
#define MAX_COUNT ((uint64_t)1 << 26) /* the .odl limit on one tensor's values */

static uint64_t al16(uint64_t v) { return (v + 15u) & ~(uint64_t)15u; }

static int f32_finite(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return (u & 0x7f800000u) != 0x7f800000u;
}

static int bits_finite(uint32_t u) { return (u & 0x7f800000u) != 0x7f800000u; }

const char *odl_delta_reason_name(int32_t reason)
{
    switch (reason) {
    case ODL_DELTA_ACCEPTED: return "accepted";
    case ODL_DELTA_MALFORMED: return "malformed";
    case ODL_DELTA_UNSUPPORTED: return "unsupported_version";
    case ODL_DELTA_UNSIGNED: return "unsigned";
    case ODL_DELTA_UNKNOWN_DEVICE: return "unknown_device";
    case ODL_DELTA_BAD_SIGNATURE: return "bad_signature";
    case ODL_DELTA_STALE_ROUND: return "stale_round";
    case ODL_DELTA_FUTURE_ROUND: return "future_round";
    case ODL_DELTA_REPLAY: return "replay";
    case ODL_DELTA_WRONG_BASE: return "wrong_base";
    case ODL_DELTA_OUT_OF_SHAPE: return "out_of_shape";
    case ODL_DELTA_NON_FINITE: return "non_finite";
    }
    return "?";
}

/* ---- the model's identity ------------------------------------------------- */

/* A node as a 1.1 TOPO record (docs/format.md) with the trainable field 0:
 * what the node computes, not where the freeze boundary was. */
static void node_record(const odl_node_desc *l, uint8_t out[NODE_RECORD])
{
    memset(out, 0, NODE_RECORD);
    const int32_t f[] = {l->type, 0, l->n_in};
    for (int k = 0; k < 3; k++)
        le_put_u32(out + 4 * k, (uint32_t)f[k]);
    for (int32_t k = 0; k < l->n_in && k < ODL_NODE_MAX_IN; k++)
        le_put_u32(out + 12 + 4 * k, (uint32_t)l->in[k]);
    const int32_t g[] = {l->units, l->groups, l->k_h, l->k_w, l->stride_h, l->stride_w, l->pad_t, l->pad_l,
                         l->pad_b, l->pad_r, l->dil_h, l->dil_w, l->flags, l->shape_c, l->shape_h, l->shape_w};
    for (int k = 0; k < 16; k++)
        le_put_u32(out + 44 + 4 * k, (uint32_t)g[k]);
    le_put_f32(out + 108, l->alpha);
    le_put_f32(out + 112, l->beta);
}

static void hash_floats(odl_sha256_ctx *c, const float *v, size_t n)
{
    uint8_t buf[256];
    size_t fill = 0;
    for (size_t i = 0; i < n; i++) {
        le_put_f32(buf + fill, v[i]);
        fill += 4;
        if (fill == sizeof buf) {
            odl_sha256_update(c, buf, fill);
            fill = 0;
        }
    }
    odl_sha256_update(c, buf, fill);
}

odl_status odl_delta_model_id(const odl_model *m, uint8_t id[ODL_SHA256_BYTES], odl_diag *d)
{
    if (!m || !id)
        return odl_fail(d, ODL_ERR_ARG, "odl_delta_model_id: model and id must not be NULL");
    const odl_model_desc *md = odl_model_get_desc(m);
    static const char tag[16] = "odl-model-id-v1";
    uint8_t rec[NODE_RECORD];
    odl_sha256_ctx c;
    odl_sha256_init(&c);
    odl_sha256_update(&c, tag, sizeof tag);
    const int32_t h[] = {md->in_c, md->in_h, md->in_w, md->n_layers, md->softmax_output};
    for (int k = 0; k < 5; k++) {
        le_put_u32(rec, (uint32_t)h[k]);
        odl_sha256_update(&c, rec, 4);
    }
    for (int32_t i = 0; i < md->n_layers; i++) {
        node_record(&md->layers[i], rec);
        odl_sha256_update(&c, rec, NODE_RECORD);
    }
    for (int32_t i = 0; i < md->n_layers; i++)
        for (int which = 0; which < 2; which++) {
            size_t n = 0;
            const float *p = odl_model_param_const(m, i, which, &n);
            if (!p || !n)
                continue;
            le_put_u32(rec, (uint32_t)i);
            le_put_u32(rec + 4, (uint32_t)which);
            le_put_u64(rec + 8, (uint64_t)n);
            odl_sha256_update(&c, rec, 16);
            hash_floats(&c, p, n);
        }
    odl_sha256_final(&c, id);
    return ODL_OK;
}

/* ---- the head ------------------------------------------------------------- */

/* Checks that `boundary` starts a head of m and counts its tensors and values. */
static odl_status head_shape(const odl_model *m, int32_t boundary, int32_t *n_tensors, uint64_t *data_bytes,
                             odl_diag *d)
{
    const odl_model_desc *md = odl_model_get_desc(m);
    if (boundary < 0 || boundary >= md->n_layers)
        return odl_fail(d, ODL_ERR_ARG, "delta: head boundary %d out of range 0..%d (the model has %d nodes)",
                        (int)boundary, (int)md->n_layers - 1, (int)md->n_layers);
    if (!odl_desc_is_cut(md, boundary))
        return odl_fail(d, ODL_ERR_ARG,
                        "delta: head boundary %d is not a cut point (a node after it reads an earlier tensor)",
                        (int)boundary);
    int32_t nt = 0;
    uint64_t bytes = 0;
    for (int32_t i = boundary; i < md->n_layers; i++)
        for (int which = 0; which < 2; which++) {
            size_t n = 0;
            if (odl_model_param_const(m, i, which, &n) && n) {
                nt++;
                bytes += al16((uint64_t)n * 4u);
            }
        }
    if (nt == 0)
        return odl_fail(d, ODL_ERR_ARG, "delta: no parameters after node %d: the head is empty", (int)boundary);
    if (nt > ODL_DELTA_MAX_TENSORS)
        return odl_fail(d, ODL_ERR_UNSUPPORTED, "delta: the head has %d parameter tensors, more than %d",
                        (int)nt, ODL_DELTA_MAX_TENSORS);
    *n_tensors = nt;
    *data_bytes = bytes;
    return ODL_OK;
}

static uint64_t message_bytes(int32_t n_tensors, uint64_t data_bytes)
{
    const uint64_t payload = DLTA_HEADER + DLTA_RECORD * (uint64_t)n_tensors + data_bytes;
    return ODL_FILE_HEADER_BYTES + ODL_CHUNK_HEADER_BYTES + payload + ODL_CHUNK_HEADER_BYTES + AUTH_PAYLOAD +
           ODL_CHUNK_HEADER_BYTES;
}

odl_status odl_delta_size(const odl_model *m, int32_t boundary, size_t *bytes, odl_diag *d)
{
    if (!m || !bytes)
        return odl_fail(d, ODL_ERR_ARG, "odl_delta_size: model and bytes must not be NULL");
    int32_t nt = 0;
    uint64_t data = 0;
    odl_status s = head_shape(m, boundary, &nt, &data, d);
    if (s != ODL_OK)
        return s;
    const uint64_t total = message_bytes(nt, data);
    if (total > (uint64_t)SIZE_MAX)
        return odl_fail(d, ODL_ERR_NOMEM, "delta: a %lu-byte message does not fit this machine's size_t",
                        (unsigned long)total);
    *bytes = (size_t)total;
    return ODL_OK;
}

/* ---- encoding ------------------------------------------------------------- */

typedef struct {
    odl_writer *inner;
    odl_hmac_sha256_ctx mac;
} tee_ctx;

/* Everything before the AUTH chunk goes to the caller's writer and into the MAC. */
static odl_status tee_write(void *ctx, const void *data, size_t n)
{
    tee_ctx *t = ctx;
    odl_status s = t->inner->write(t->inner->ctx, data, n);
    if (s == ODL_OK)
        odl_hmac_sha256_update(&t->mac, data, n);
    return s;
}

typedef struct {
    const odl_model *dev, *glob;
    const odl_delta_info *info;
    const uint8_t *base_id;
    int32_t n_tensors;
} fill_ctx;

static void dlta_fill(odl_chunk_out *o, const void *ctx)
{
    const fill_ctx *f = ctx;
    const odl_model_desc *md = odl_model_get_desc(f->glob);
    odl_chunk_put_u32(o, ODL_DELTA_LAYOUT_VERSION);
    odl_chunk_put_u32(o, f->info->device_id);
    odl_chunk_put_u64(o, f->info->seq);
    odl_chunk_put_u32(o, f->info->round);
    odl_chunk_put_u32(o, f->info->examples);
    odl_chunk_put_u32(o, (uint32_t)f->info->boundary);
    odl_chunk_put_u32(o, (uint32_t)f->n_tensors);
    odl_chunk_put_bytes(o, f->base_id, ODL_SHA256_BYTES);
    for (int32_t i = f->info->boundary; i < md->n_layers; i++)
        for (int which = 0; which < 2; which++) {
            size_t n = 0;
            if (!odl_model_param_const(f->glob, i, which, &n) || !n)
                continue;
            odl_chunk_put_u32(o, (uint32_t)i);
            odl_chunk_put_u32(o, (uint32_t)which);
            odl_chunk_put_u64(o, (uint64_t)n);
        }
    for (int32_t i = f->info->boundary; i < md->n_layers; i++)
        for (int which = 0; which < 2; which++) {
            size_t n = 0, nd = 0;
            const float *g = odl_model_param_const(f->glob, i, which, &n);
            const float *v = odl_model_param_const(f->dev, i, which, &nd);
            if (!g || !n)
                continue;
            for (size_t k = 0; k < n; k++)
                odl_chunk_put_f32(o, v[k] - g[k]);
            odl_chunk_align16(o);
        }
}

odl_status odl_delta_encode(const odl_model *device, const odl_model *global, const odl_delta_info *info,
                            const uint8_t *key, size_t key_len, odl_writer *w, odl_diag *d)
{
    if (!device || !global || !info || !key || !w || !w->write)
        return odl_fail(d, ODL_ERR_ARG, "odl_delta_encode: models, info, key and writer must not be NULL");
    if (key_len < ODL_DELTA_KEY_MIN || key_len > ODL_DELTA_KEY_MAX)
        return odl_fail(d, ODL_ERR_ARG, "delta: a %zu-byte key; device keys are %d..%d bytes", key_len,
                        ODL_DELTA_KEY_MIN, ODL_DELTA_KEY_MAX);
    if (info->seq == 0)
        return odl_fail(d, ODL_ERR_ARG, "delta: sequence number 0; they start at 1 and only grow");
    if (info->examples == 0)
        return odl_fail(d, ODL_ERR_ARG, "delta: 0 examples; a delta comes from at least one example");
    const odl_model_desc *dd = odl_model_get_desc(device), *gd = odl_model_get_desc(global);
    if (dd->n_layers != gd->n_layers || dd->in_c != gd->in_c || dd->in_h != gd->in_h || dd->in_w != gd->in_w ||
        dd->softmax_output != gd->softmax_output)
        return odl_fail(d, ODL_ERR_SHAPE,
                        "delta: the device model (%d nodes, input %dx%dx%d) and the global model (%d nodes, "
                        "input %dx%dx%d) differ",
                        (int)dd->n_layers, (int)dd->in_c, (int)dd->in_h, (int)dd->in_w, (int)gd->n_layers,
                        (int)gd->in_c, (int)gd->in_h, (int)gd->in_w);
    uint8_t ra[NODE_RECORD], rb[NODE_RECORD];
    for (int32_t i = 0; i < gd->n_layers; i++) {
        node_record(&dd->layers[i], ra);
        node_record(&gd->layers[i], rb);
        if (memcmp(ra, rb, NODE_RECORD) != 0)
            return odl_fail(d, ODL_ERR_SHAPE, "delta: node %d (%s) differs between the device and global models",
                            (int)i, odl_layer_type_name(gd->layers[i].type));
    }
    int32_t nt = 0;
    uint64_t data = 0;
    odl_status s = head_shape(global, info->boundary, &nt, &data, d);
    if (s != ODL_OK)
        return s;
    for (int32_t i = 0; i < gd->n_layers; i++)
        for (int which = 0; which < 2; which++) {
            size_t n = 0, nd = 0;
            const float *g = odl_model_param_const(global, i, which, &n);
            const float *v = odl_model_param_const(device, i, which, &nd);
            if (n != nd || (n && (!g || !v)))
                return odl_fail(d, ODL_ERR_SHAPE, "delta: node %d's %s: %zu values in the device model, %zu in "
                                "the global model", (int)i, which ? "bias" : "weights", nd, n);
            if (!n)
                continue;
            if (i < info->boundary) {
                if (memcmp(g, v, n * sizeof(float)) != 0)
                    return odl_fail(d, ODL_ERR_SHAPE,
                                    "delta: node %d (%s) is below the head (boundary %d) but its %s differ from "
                                    "the global model's: the device trained more than the head (a lower "
                                    "boundary?)",
                                    (int)i, odl_layer_type_name(gd->layers[i].type), (int)info->boundary,
                                    which ? "bias" : "weights");
                continue;
            }
            for (size_t k = 0; k < n; k++)
                if (!f32_finite(v[k] - g[k]))
                    return odl_fail(d, ODL_ERR_NUMERIC,
                                    "delta: node %d's %s[%zu]: the difference device - global is not finite",
                                    (int)i, which ? "bias" : "weights", k);
        }
    uint8_t base_id[ODL_SHA256_BYTES];
    s = odl_delta_model_id(global, base_id, d);
    if (s != ODL_OK)
        return s;

    tee_ctx t;
    t.inner = w;
    odl_hmac_sha256_init(&t.mac, key, key_len);
    odl_writer tw = {tee_write, &t, 0};
    fill_ctx f = {device, global, info, base_id, nt};
    s = odl_file_write_header(&tw, d);
    if (s == ODL_OK)
        s = odl_state_write_chunk_fn(&tw, ODL_CHUNK_DELTA, dlta_fill, &f, d);
    uint8_t auth[AUTH_PAYLOAD];
    memset(auth, 0, sizeof auth);
    le_put_u32(auth, ODL_DELTA_LAYOUT_VERSION);
    le_put_u32(auth + 4, ODL_DELTA_AUTH_HMAC_SHA256);
    odl_hmac_sha256_final(&t.mac, auth + 16);
    memset(&t.mac, 0, sizeof t.mac);
    if (s != ODL_OK)
        return s;
    w->offset = tw.offset;
    s = odl_file_write_chunk(w, ODL_CHUNK_AUTH, auth, sizeof auth, d);
    if (s == ODL_OK)
        s = odl_file_write_end(w, d);
    return s;
}

/* ---- reading -------------------------------------------------------------- */

/* A refusal keeps its message; the status says "refused", not "broken". */
static odl_status rejected(odl_diag *d)
{
    if (d)
        d->status = ODL_EVENT_REJECTED;
    return ODL_EVENT_REJECTED;
}

static odl_status refuse(odl_delta_reason *out, odl_delta_reason why, odl_status s)
{
    if (out)
        *out = why;
    return s;
}

/* The message's structure, nothing that needs a key or a receiver. *auth is
 * the AUTH payload (NULL when unsigned), *signed_len the bytes it covers. */
static odl_status read_structure(const void *buf, size_t len, odl_delta_view *v, const uint8_t **auth,
                                 size_t *signed_len, odl_delta_reason *why, odl_diag *d)
{
    memset(v, 0, sizeof *v);
    *auth = NULL;
    *signed_len = 0;
    odl_file_iter it;
    odl_status s = odl_file_open(&it, buf, len, d);
    if (s != ODL_OK) {
        odl_diag_prefix(d, "delta message");
        return refuse(why, s == ODL_ERR_VERSION ? ODL_DELTA_UNSUPPORTED : ODL_DELTA_MALFORMED, s);
    }
    uint32_t type = 0;
    const uint8_t *p = NULL;
    size_t n = 0;
    s = odl_file_next(&it, &type, &p, &n, d);
    if (s == ODL_ERR_NOT_FOUND)
        s = odl_fail(d, ODL_ERR_FORMAT, "delta message: no chunk");
    if (s != ODL_OK) {
        odl_diag_prefix(d, "delta message");
        return refuse(why, ODL_DELTA_MALFORMED, s);
    }
    if (type != ODL_CHUNK_DELTA)
        return refuse(why, ODL_DELTA_MALFORMED,
                      odl_fail(d, ODL_ERR_FORMAT, "delta message: the first chunk is not DLTA (a model file?)"));
    if (n < DLTA_HEADER)
        return refuse(why, ODL_DELTA_MALFORMED,
                      odl_fail(d, ODL_ERR_FORMAT, "delta message: DLTA payload of %zu bytes, shorter than its "
                               "%u-byte header", n, (unsigned)DLTA_HEADER));
    const uint32_t version = le_get_u32(p);
    if (version != ODL_DELTA_LAYOUT_VERSION)
        return refuse(why, ODL_DELTA_UNSUPPORTED,
                      odl_fail(d, ODL_ERR_UNSUPPORTED, "delta message: DLTA layout version %u (this odl reads %u)",
                               (unsigned)version, (unsigned)ODL_DELTA_LAYOUT_VERSION));
    v->info.device_id = le_get_u32(p + 4);
    v->info.seq = le_get_u64(p + 8);
    v->info.round = le_get_u32(p + 16);
    v->info.examples = le_get_u32(p + 20);
    const int32_t boundary = le_get_i32(p + 24);
    const uint32_t nt = le_get_u32(p + 28);
    memcpy(v->base_id, p + 32, ODL_SHA256_BYTES);
    if (v->info.seq == 0)
        return refuse(why, ODL_DELTA_MALFORMED,
                      odl_fail(d, ODL_ERR_FORMAT, "delta message: sequence number 0 (they start at 1)"));
    if (v->info.examples == 0)
        return refuse(why, ODL_DELTA_MALFORMED, odl_fail(d, ODL_ERR_FORMAT, "delta message: 0 examples"));
    if (boundary < 0)
        return refuse(why, ODL_DELTA_MALFORMED,
                      odl_fail(d, ODL_ERR_FORMAT, "delta message: head boundary %d is negative", (int)boundary));
    if (nt < 1 || nt > ODL_DELTA_MAX_TENSORS)
        return refuse(why, ODL_DELTA_MALFORMED,
                      odl_fail(d, ODL_ERR_FORMAT, "delta message: %u tensors, out of range 1..%d", (unsigned)nt,
                               ODL_DELTA_MAX_TENSORS));
    const uint64_t table_end = DLTA_HEADER + (uint64_t)DLTA_RECORD * nt;
    if (table_end > n)
        return refuse(why, ODL_DELTA_MALFORMED,
                      odl_fail(d, ODL_ERR_FORMAT, "delta message: a table of %u tensors does not fit a %zu-byte "
                               "DLTA payload", (unsigned)nt, n));
    uint64_t data = 0, prev = 0;
    for (uint32_t i = 0; i < nt; i++) {
        const uint8_t *r = p + DLTA_HEADER + (size_t)DLTA_RECORD * i;
        const uint32_t node = le_get_u32(r), which = le_get_u32(r + 4);
        const uint64_t count = le_get_u64(r + 8);
        const uint64_t key = ((uint64_t)node << 1) | (which & 1u);
        if (node < (uint32_t)boundary || node > 0x7fffffffu || which > 1 || count < 1 || count > MAX_COUNT ||
            (i && key <= prev))
            return refuse(why, ODL_DELTA_MALFORMED,
                          odl_fail(d, ODL_ERR_FORMAT, "delta message: tensor %u: node %u, which %u, %lu values "
                                   "(want node >= the boundary %d, in increasing order, which 0 or 1, 1..%lu "
                                   "values)", (unsigned)i, (unsigned)node, (unsigned)which, (unsigned long)count,
                                   (int)boundary, (unsigned long)MAX_COUNT));
        prev = key;
        data += al16(count * 4u);
    }
    if (table_end + data != n)
        return refuse(why, ODL_DELTA_MALFORMED,
                      odl_fail(d, ODL_ERR_FORMAT, "delta message: DLTA payload of %zu bytes; its table says %lu",
                               n, (unsigned long)(table_end + data)));
    /* the zero padding after each tensor */
    size_t off = (size_t)table_end;
    for (uint32_t i = 0; i < nt; i++) {
        const uint64_t count = le_get_u64(p + DLTA_HEADER + (size_t)DLTA_RECORD * i + 8);
        const size_t used = (size_t)count * 4u, padded = (size_t)al16(count * 4u);
        for (size_t k = used; k < padded; k++)
            if (p[off + k])
                return refuse(why, ODL_DELTA_MALFORMED,
                              odl_fail(d, ODL_ERR_FORMAT, "delta message: tensor %u: non-zero padding",
                                       (unsigned)i));
        off += padded;
    }
    v->info.boundary = boundary;
    v->n_tensors = (int32_t)nt;
    v->table = p + DLTA_HEADER;
    v->data = p + table_end;
    v->bytes = len;

    const size_t auth_at = it.pos;
    s = odl_file_next(&it, &type, &p, &n, d);
    if (s == ODL_ERR_NOT_FOUND)
        s = odl_fail(d, ODL_ERR_FORMAT, "delta message: ends without END");
    if (s != ODL_OK) {
        odl_diag_prefix(d, "delta message");
        return refuse(why, ODL_DELTA_MALFORMED, s);
    }
    if (type == ODL_CHUNK_END)
        return ODL_OK; /* unsigned: the caller decides */
    if (type != ODL_CHUNK_AUTH)
        return refuse(why, ODL_DELTA_MALFORMED,
                      odl_fail(d, ODL_ERR_FORMAT, "delta message: the chunk after DLTA is neither AUTH nor END"));
    if (n != AUTH_PAYLOAD)
        return refuse(why, ODL_DELTA_MALFORMED,
                      odl_fail(d, ODL_ERR_FORMAT, "delta message: AUTH payload of %zu bytes (want %u)", n,
                               (unsigned)AUTH_PAYLOAD));
    if (le_get_u32(p) != ODL_DELTA_LAYOUT_VERSION || le_get_u32(p + 4) != ODL_DELTA_AUTH_HMAC_SHA256)
        return refuse(why, ODL_DELTA_UNSUPPORTED,
                      odl_fail(d, ODL_ERR_UNSUPPORTED, "delta message: AUTH layout %u, algorithm %u (this odl "
                               "reads layout 1, algorithm 1 = HMAC-SHA256)", (unsigned)le_get_u32(p),
                               (unsigned)le_get_u32(p + 4)));
    if (le_get_u64(p + 8) != 0)
        return refuse(why, ODL_DELTA_MALFORMED,
                      odl_fail(d, ODL_ERR_FORMAT, "delta message: AUTH reserved field is not zero"));
    const uint8_t *mac = p + 16;
    s = odl_file_next(&it, &type, &p, &n, d);
    if (s == ODL_ERR_NOT_FOUND)
        s = odl_fail(d, ODL_ERR_FORMAT, "delta message: ends without END");
    if (s != ODL_OK) {
        odl_diag_prefix(d, "delta message");
        return refuse(why, ODL_DELTA_MALFORMED, s);
    }
    if (type != ODL_CHUNK_END)
        return refuse(why, ODL_DELTA_MALFORMED,
                      odl_fail(d, ODL_ERR_FORMAT, "delta message: a chunk after AUTH other than END"));
    v->signed_ = 1;
    *auth = mac;
    *signed_len = auth_at;
    return ODL_OK;
}

static odl_status check_finite(const odl_delta_view *v, odl_delta_reason *why, odl_diag *d)
{
    const uint8_t *p = v->data;
    for (int32_t i = 0; i < v->n_tensors; i++) {
        const size_t count = (size_t)le_get_u64(v->table + (size_t)DLTA_RECORD * i + 8);
        for (size_t k = 0; k < count; k++)
            if (!bits_finite(le_get_u32(p + 4 * k)))
                return refuse(why, ODL_DELTA_NON_FINITE,
                              odl_fail(d, ODL_ERR_NUMERIC, "delta message: tensor %d (node %u): value %zu is not "
                                       "finite", (int)i, (unsigned)le_get_u32(v->table + (size_t)DLTA_RECORD * i),
                                       k));
        p += (size_t)al16((uint64_t)count * 4u);
    }
    return ODL_OK;
}

odl_status odl_delta_parse(const void *buf, size_t len, odl_delta_view *view, odl_delta_reason *reason,
                           odl_diag *d)
{
    if (reason)
        *reason = ODL_DELTA_MALFORMED;
    if (!buf || !view)
        return odl_fail(d, ODL_ERR_ARG, "odl_delta_parse: buffer and view must not be NULL");
    const uint8_t *mac;
    size_t signed_len;
    odl_status s = read_structure(buf, len, view, &mac, &signed_len, reason, d);
    if (s == ODL_OK)
        s = check_finite(view, reason, d);
    if (s == ODL_OK && reason)
        *reason = ODL_DELTA_ACCEPTED;
    return s;
}

/* The message's tensor table against the receiver's head. */
static odl_status check_shape(const odl_delta_receiver *r, const odl_delta_view *v, odl_delta_reason *why,
                              odl_diag *d)
{
    if (v->info.boundary != r->boundary)
        return refuse(why, ODL_DELTA_OUT_OF_SHAPE,
                      odl_fail(d, ODL_EVENT_REJECTED, "delta from device %u: a head from node %d; this round's "
                               "head starts at node %d", (unsigned)v->info.device_id, (int)v->info.boundary,
                               (int)r->boundary));
    const odl_model_desc *md = odl_model_get_desc(r->global);
    int32_t i = 0;
    for (int32_t node = r->boundary; node < md->n_layers; node++)
        for (uint32_t which = 0; which < 2; which++) {
            size_t n = 0;
            if (!odl_model_param_const(r->global, node, (int)which, &n) || !n)
                continue;
            if (i >= v->n_tensors)
                return refuse(why, ODL_DELTA_OUT_OF_SHAPE,
                              odl_fail(d, ODL_EVENT_REJECTED, "delta from device %u: %d tensors; the head has more "
                                       "(node %d's %s is missing)", (unsigned)v->info.device_id,
                                       (int)v->n_tensors, (int)node, which ? "bias" : "weights"));
            const uint8_t *rec = v->table + (size_t)DLTA_RECORD * i;
            if (le_get_u32(rec) != (uint32_t)node || le_get_u32(rec + 4) != which ||
                le_get_u64(rec + 8) != (uint64_t)n)
                return refuse(why, ODL_DELTA_OUT_OF_SHAPE,
                              odl_fail(d, ODL_EVENT_REJECTED, "delta from device %u: tensor %d is node %u's %s "
                                       "with %lu values; the head's is node %d's %s with %zu",
                                       (unsigned)v->info.device_id, (int)i, (unsigned)le_get_u32(rec),
                                       le_get_u32(rec + 4) ? "bias" : "weights", (unsigned long)le_get_u64(rec + 8),
                                       (int)node, which ? "bias" : "weights", n));
            i++;
        }
    if (i != v->n_tensors)
        return refuse(why, ODL_DELTA_OUT_OF_SHAPE,
                      odl_fail(d, ODL_EVENT_REJECTED, "delta from device %u: %d tensors; the head has %d",
                               (unsigned)v->info.device_id, (int)v->n_tensors, (int)i));
    return ODL_OK;
}

odl_status odl_delta_verify(odl_delta_receiver *r, const void *buf, size_t len, odl_delta_view *view,
                            odl_delta_reason *reason, odl_diag *d)
{
    odl_delta_reason local;
    odl_delta_reason *why = reason ? reason : &local;
    *why = ODL_DELTA_MALFORMED;
    if (!r || !r->global || !buf || !view || (r->n_keys > 0 && !r->keys) || r->n_keys < 0)
        return odl_fail(d, ODL_ERR_ARG, "odl_delta_verify: receiver (with its global model and keys), buffer and "
                        "view must not be NULL");
    const uint8_t *mac;
    size_t signed_len;
    odl_status s = read_structure(buf, len, view, &mac, &signed_len, why, d);
    if (s != ODL_OK)
        return rejected(d);
    const uint32_t dev = view->info.device_id;
    if (!view->signed_)
        return refuse(why, ODL_DELTA_UNSIGNED,
                      odl_fail(d, ODL_EVENT_REJECTED, "delta from device %u: unsigned (no AUTH chunk)",
                               (unsigned)dev));
    /* binary search: the keys are sorted by device id (odl/delta.h) */
    odl_delta_key *k = NULL;
    int32_t lo = 0, hi = r->n_keys;
    while (lo < hi) {
        const int32_t mid = lo + (hi - lo) / 2;
        if (r->keys[mid].device_id < dev)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < r->n_keys && r->keys[lo].device_id == dev)
        k = &r->keys[lo];
    if (!k)
        return refuse(why, ODL_DELTA_UNKNOWN_DEVICE,
                      odl_fail(d, ODL_EVENT_REJECTED, "delta from device %u: no key for this device",
                               (unsigned)dev));
    if (k->key_len < ODL_DELTA_KEY_MIN || k->key_len > ODL_DELTA_KEY_MAX) {
        *why = ODL_DELTA_MALFORMED;
        return odl_fail(d, ODL_ERR_ARG, "odl_delta_verify: device %u's key is %u bytes; keys are %d..%d bytes",
                        (unsigned)dev, (unsigned)k->key_len, ODL_DELTA_KEY_MIN, ODL_DELTA_KEY_MAX);
    }
    uint8_t want[ODL_SHA256_BYTES];
    odl_hmac_sha256(k->key, k->key_len, buf, signed_len, want);
    const int good = odl_ct_equal(want, mac, ODL_SHA256_BYTES);
    memset(want, 0, sizeof want);
    if (!good)
        return refuse(why, ODL_DELTA_BAD_SIGNATURE,
                      odl_fail(d, ODL_EVENT_REJECTED, "delta from device %u: bad signature (tampered, or signed "
                               "with another key)", (unsigned)dev));
    if (view->info.round < r->round)
        return refuse(why, ODL_DELTA_STALE_ROUND,
                      odl_fail(d, ODL_EVENT_REJECTED, "delta from device %u: round %u, stale (collecting round "
                               "%u)", (unsigned)dev, (unsigned)view->info.round, (unsigned)r->round));
    if (view->info.round > r->round)
        return refuse(why, ODL_DELTA_FUTURE_ROUND,
                      odl_fail(d, ODL_EVENT_REJECTED, "delta from device %u: round %u, ahead of the round "
                               "being collected (%u)", (unsigned)dev, (unsigned)view->info.round,
                               (unsigned)r->round));
    if (view->info.seq <= k->last_seq)
        return refuse(why, ODL_DELTA_REPLAY,
                      odl_fail(d, ODL_EVENT_REJECTED, "delta from device %u: sequence number %lu, not above the "
                               "last accepted (%lu): a replay", (unsigned)dev, (unsigned long)view->info.seq,
                               (unsigned long)k->last_seq));
    if (memcmp(view->base_id, r->base_id, ODL_SHA256_BYTES) != 0)
        return refuse(why, ODL_DELTA_WRONG_BASE,
                      odl_fail(d, ODL_EVENT_REJECTED, "delta from device %u: made against another global model "
                               "(base identity differs)", (unsigned)dev));
    s = check_shape(r, view, why, d);
    if (s == ODL_OK)
        s = check_finite(view, why, d);
    if (s != ODL_OK)
        return rejected(d);
    k->last_seq = view->info.seq;
    *why = ODL_DELTA_ACCEPTED;
    return ODL_OK;
}

static odl_status tensor_at(const odl_delta_view *v, int32_t i, size_t *off, size_t *count, odl_diag *d)
{
    if (!v || !v->table || i < 0 || i >= v->n_tensors)
        return odl_fail(d, ODL_ERR_ARG, "delta: tensor %d out of range 0..%d", (int)i, v ? (int)v->n_tensors - 1 : -1);
    size_t o = 0;
    for (int32_t j = 0; j < i; j++)
        o += (size_t)al16(le_get_u64(v->table + (size_t)DLTA_RECORD * j + 8) * 4u);
    *off = o;
    *count = (size_t)le_get_u64(v->table + (size_t)DLTA_RECORD * i + 8);
    return ODL_OK;
}

odl_status odl_delta_tensor_info(const odl_delta_view *v, int32_t i, int32_t *node, int32_t *which, size_t *count,
                                 odl_diag *d)
{
    size_t off, n;
    odl_status s = tensor_at(v, i, &off, &n, d);
    if (s != ODL_OK)
        return s;
    if (node)
        *node = (int32_t)le_get_u32(v->table + (size_t)DLTA_RECORD * i);
    if (which)
        *which = (int32_t)le_get_u32(v->table + (size_t)DLTA_RECORD * i + 4);
    if (count)
        *count = n;
    return ODL_OK;
}

odl_status odl_delta_tensor_copy(const odl_delta_view *v, int32_t i, float *out, size_t count, odl_diag *d)
{
    size_t off, n;
    odl_status s = tensor_at(v, i, &off, &n, d);
    if (s != ODL_OK)
        return s;
    if (!out || count != n)
        return odl_fail(d, ODL_ERR_ARG, "delta: tensor %d has %zu values; room for %zu given", (int)i, n, count);
    const uint8_t *p = v->data + off;
    for (size_t k = 0; k < n; k++)
        out[k] = le_get_f32(p + 4 * k);
    return ODL_OK;
}
