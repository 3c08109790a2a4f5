/* The .odl file format (docs/format.md). Every length and index read from a
 * file is checked before use; a damaged file is an error, never a crash. */
#include "odl/file.h"
#include "bytes_le.h"

#include <string.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "odl's file code assumes a little-endian target (tensor data is stored as raw LE floats)"
#endif

static const uint8_t odl_magic[8] = {0x89, 'O', 'D', 'L', '\r', '\n', 0x1a, '\n'};

/* ---- CRC-32 (reflected, poly 0xEDB88320), table built at compile time --- */
#define C1(c) (((c) & 1u) ? 0xEDB88320u ^ ((c) >> 1) : ((c) >> 1))
#define C8(c) C1(C1(C1(C1(C1(C1(C1(C1(c))))))))
#define R4(n) C8(n), C8(n + 1u), C8(n + 2u), C8(n + 3u)
#define R16(n) R4(n), R4(n + 4u), R4(n + 8u), R4(n + 12u)
#define R64(n) R16(n), R16(n + 16u), R16(n + 32u), R16(n + 48u)
static const uint32_t crc_table[256] = {R64(0u), R64(64u), R64(128u), R64(192u)};

uint32_t odl_crc32(uint32_t crc, const void *data, size_t n)
{
    const uint8_t *p = data;
    crc = ~crc;
    while (n--)
        crc = crc_table[(crc ^ *p++) & 0xffu] ^ (crc >> 8);
    return ~crc;
}

static void fourcc_str(uint32_t t, char out[5])
{
    for (int i = 0; i < 4; i++) {
        char c = (char)(t >> (8 * i));
        out[i] = (c >= 32 && c < 127) ? c : '?';
    }
    out[4] = '\0';
}

/* ---- writing ------------------------------------------------------------ */

static odl_status emit(odl_writer *w, const void *p, size_t n, odl_diag *d)
{
    if (!n)
        return ODL_OK;
    odl_status s = w->write(w->ctx, p, n);
    if (s != ODL_OK)
        return odl_fail(d, ODL_ERR_IO, "write failed at byte %lu", (unsigned long)w->offset);
    w->offset += n;
    return ODL_OK;
}

odl_status odl_file_write_header(odl_writer *w, odl_diag *d)
{
    uint8_t h[ODL_FILE_HEADER_BYTES];
    memcpy(h, odl_magic, 8);
    le_put_u16(h + 8, ODL_FILE_VERSION_MAJOR);
    le_put_u16(h + 10, ODL_FILE_VERSION_MINOR);
    le_put_u32(h + 12, odl_crc32(0, h, 12));
    w->offset = 0;
    return emit(w, h, sizeof h, d);
}

odl_status odl_file_write_chunk_parts(odl_writer *w, uint32_t type, const void *const *parts, const size_t *sizes,
                                      int np, odl_diag *d)
{
    static const uint8_t zeros[16] = {0};
    uint64_t len = 0;
    for (int k = 0; k < np; k++)
        len += sizes[k];
    uint8_t tl[12], h[ODL_CHUNK_HEADER_BYTES];
    le_put_u32(tl, type);
    le_put_u64(tl + 4, len);
    uint32_t crc = odl_crc32(0, tl, sizeof tl);
    for (int k = 0; k < np; k++)
        crc = odl_crc32(crc, parts[k], sizes[k]);
    le_put_u32(h, type);
    le_put_u32(h + 4, crc);
    le_put_u64(h + 8, len);
    odl_status s = emit(w, h, sizeof h, d);
    for (int k = 0; k < np && s == ODL_OK; k++)
        s = emit(w, parts[k], sizes[k], d);
    if (s == ODL_OK)
        s = emit(w, zeros, (size_t)((16u - (len & 15u)) & 15u), d);
    return s;
}

odl_status odl_file_write_chunk2(odl_writer *w, uint32_t type, const void *p1, size_t n1, const void *p2,
                                 size_t n2, odl_diag *d)
{
    const void *parts[2] = {p1, p2};
    const size_t sizes[2] = {n1, n2};
    return odl_file_write_chunk_parts(w, type, parts, sizes, 2, d);
}

odl_status odl_file_write_chunk(odl_writer *w, uint32_t type, const void *payload, size_t len, odl_diag *d)
{
    return odl_file_write_chunk2(w, type, payload, len, NULL, 0, d);
}

odl_status odl_file_write_end(odl_writer *w, odl_diag *d)
{
    return odl_file_write_chunk(w, ODL_CHUNK_END, NULL, 0, d);
}

/* ---- reading ------------------------------------------------------------ */

odl_status odl_file_open(odl_file_iter *it, const void *buf, size_t len, odl_diag *d)
{
    memset(it, 0, sizeof *it);
    if (!buf)
        return odl_fail(d, ODL_ERR_ARG, "no file data");
    const uint8_t *p = buf;
    if (len < ODL_FILE_HEADER_BYTES)
        return odl_fail(d, ODL_ERR_TRUNCATED, "file is %zu bytes, shorter than the %d-byte header (truncated?)",
                        len, ODL_FILE_HEADER_BYTES);
    if (memcmp(p, odl_magic, 8) != 0)
        return odl_fail(d, ODL_ERR_FORMAT, "not an .odl model file (bad magic bytes)");
    if (le_get_u32(p + 12) != odl_crc32(0, p, 12))
        return odl_fail(d, ODL_ERR_CRC, "CRC mismatch in the file header (file corrupted?)");
    uint16_t major = le_get_u16(p + 8), minor = le_get_u16(p + 10);
    if (major != ODL_FILE_VERSION_MAJOR)
        return odl_fail(d, ODL_ERR_VERSION, "file format version %u.%u; this odl reads %d.x", (unsigned)major,
                        (unsigned)minor, ODL_FILE_VERSION_MAJOR);
    it->buf = p;
    it->len = len;
    it->pos = ODL_FILE_HEADER_BYTES;
    return ODL_OK;
}

odl_status odl_file_next(odl_file_iter *it, uint32_t *type, const uint8_t **payload, size_t *len, odl_diag *d)
{
    if (it->done)
        return ODL_ERR_NOT_FOUND;
    const size_t remaining = it->len - it->pos;
    if (remaining < ODL_CHUNK_HEADER_BYTES)
        return odl_fail(d, ODL_ERR_TRUNCATED, "chunk %d: file ends at byte %zu inside a chunk header (truncated?)",
                        (int)it->index, it->len);
    const uint8_t *h = it->buf + it->pos;
    uint32_t t = le_get_u32(h), crc = le_get_u32(h + 4);
    uint64_t n = le_get_u64(h + 8);
    char tn[5];
    fourcc_str(t, tn);
    const size_t body = remaining - ODL_CHUNK_HEADER_BYTES;
    if (n > body)
        return odl_fail(d, ODL_ERR_TRUNCATED,
                        "chunk %d ('%s'): %lu payload bytes declared, %zu left in the file (truncated?)",
                        (int)it->index, tn, (unsigned long)n, body);
    const size_t pad = (size_t)((16u - (n & 15u)) & 15u);
    if ((size_t)n + pad > body)
        return odl_fail(d, ODL_ERR_TRUNCATED, "chunk %d ('%s'): padding missing at the end of the file (truncated?)",
                        (int)it->index, tn);
    const uint8_t *pl = h + ODL_CHUNK_HEADER_BYTES;
    uint32_t c = odl_crc32(0, h, 4);
    c = odl_crc32(c, h + 8, 8);
    c = odl_crc32(c, pl, (size_t)n);
    if (c != crc)
        return odl_fail(d, ODL_ERR_CRC, "CRC mismatch in chunk %d ('%s') (file corrupted?)", (int)it->index, tn);
    for (size_t k = 0; k < pad; k++)
        if (pl[n + k] != 0)
            return odl_fail(d, ODL_ERR_FORMAT, "chunk %d ('%s'): non-zero padding (file corrupted?)", (int)it->index,
                            tn);
    it->pos += ODL_CHUNK_HEADER_BYTES + (size_t)n + pad;
    it->index++;
    if (t == ODL_CHUNK_END) {
        it->done = 1;
        if (it->pos != it->len)
            return odl_fail(d, ODL_ERR_FORMAT, "%zu bytes of garbage after the END chunk", it->len - it->pos);
    }
    *type = t;
    *payload = pl;
    *len = (size_t)n;
    return ODL_OK;
}

/* ---- topology ----------------------------------------------------------- */

#define TOPO_HEADER 16
#define TOPO_LAYER 40

static void topo_encode(const odl_model_desc *m, uint8_t *out)
{
    le_put_u32(out, (uint32_t)m->n_layers);
    le_put_u32(out + 4, (uint32_t)m->in_c);
    le_put_u32(out + 8, (uint32_t)m->in_h);
    le_put_u32(out + 12, (uint32_t)m->in_w);
    for (int32_t i = 0; i < m->n_layers; i++) {
        const odl_layer_desc *l = &m->layers[i];
        uint8_t *p = out + TOPO_HEADER + (size_t)i * TOPO_LAYER;
        int32_t v[9] = {l->type, l->trainable, l->units, l->k_h, l->k_w, l->stride_h, l->stride_w, l->pad_h, l->pad_w};
        for (int k = 0; k < 9; k++)
            le_put_u32(p + 4 * k, (uint32_t)v[k]);
        uint32_t r;
        memcpy(&r, &l->rate, 4);
        le_put_u32(p + 36, r);
    }
}

static odl_status topo_decode(const uint8_t *p, size_t n, odl_model_desc *m, odl_diag *d)
{
    if (n < TOPO_HEADER)
        return odl_fail(d, ODL_ERR_FORMAT, "topology chunk is %zu bytes, too short", n);
    uint32_t nl = le_get_u32(p);
    if (nl == 0 || nl > ODL_MAX_LAYERS)
        return odl_fail(d, ODL_ERR_FORMAT, "topology declares %lu layers (1..%d supported)", (unsigned long)nl,
                        ODL_MAX_LAYERS);
    if (n != TOPO_HEADER + (size_t)nl * TOPO_LAYER)
        return odl_fail(d, ODL_ERR_FORMAT, "topology chunk is %zu bytes, %zu expected for %lu layers", n,
                        TOPO_HEADER + (size_t)nl * TOPO_LAYER, (unsigned long)nl);
    memset(m, 0, sizeof *m);
    m->n_layers = (int32_t)nl;
    m->in_c = (int32_t)le_get_u32(p + 4);
    m->in_h = (int32_t)le_get_u32(p + 8);
    m->in_w = (int32_t)le_get_u32(p + 12);
    for (uint32_t i = 0; i < nl; i++) {
        const uint8_t *q = p + TOPO_HEADER + (size_t)i * TOPO_LAYER;
        odl_layer_desc *l = &m->layers[i];
        int32_t *v[9] = {&l->type, &l->trainable, &l->units, &l->k_h, &l->k_w,
                         &l->stride_h, &l->stride_w, &l->pad_h, &l->pad_w};
        for (int k = 0; k < 9; k++)
            *v[k] = (int32_t)le_get_u32(q + 4 * k);
        uint32_t r = le_get_u32(q + 36);
        memcpy(&l->rate, &r, 4);
    }
    /* every shape must be possible before anything is sized from it */
    odl_status s = odl_desc_check(m, NULL, d);
    if (s != ODL_OK) {
        odl_diag_prefix(d, "topology");
        if (d)
            d->status = ODL_ERR_FORMAT;
        return ODL_ERR_FORMAT;
    }
    return ODL_OK;
}

/* ---- tensors ------------------------------------------------------------ */

#define TENS_HEADER 32
#define ODL_DTYPE_F32 0u

odl_status odl_model_write_chunks(const odl_model *m, const odl_meta_kv *meta, int32_t n_meta, odl_writer *w,
                                  odl_diag *d)
{
    if (!m || !w || !w->write || (n_meta && !meta) || n_meta < 0)
        return odl_fail(d, ODL_ERR_ARG, "model_save: bad arguments");
    const odl_model_desc *desc = odl_model_get_desc(m);
    uint8_t topo[TOPO_HEADER + ODL_MAX_LAYERS * TOPO_LAYER];
    topo_encode(desc, topo);
    odl_status s = odl_file_write_header(w, d);
    if (s == ODL_OK)
        s = odl_file_write_chunk(w, ODL_CHUNK_TOPOLOGY, topo, TOPO_HEADER + (size_t)desc->n_layers * TOPO_LAYER, d);
    for (int32_t i = 0; i < desc->n_layers && s == ODL_OK; i++)
        for (int which = 0; which < 2 && s == ODL_OK; which++) {
            size_t n;
            const float *p = odl_model_param_const(m, i, which, &n);
            if (!n)
                continue;
            if (!p)
                return odl_fail(d, ODL_ERR_STATE, "model_save: layer %d has no parameters loaded", (int)i);
            uint8_t h[TENS_HEADER] = {0};
            le_put_u32(h, (uint32_t)i);
            le_put_u32(h + 4, (uint32_t)which);
            le_put_u32(h + 8, ODL_DTYPE_F32);
            le_put_u32(h + 12, 1);
            le_put_u64(h + 16, (uint64_t)n);
            s = odl_file_write_chunk2(w, ODL_CHUNK_TENSOR, h, sizeof h, p, n * sizeof(float), d);
        }
    for (int32_t k = 0; k < n_meta && s == ODL_OK; k++) {
        if (!meta[k].key || !meta[k].value)
            return odl_fail(d, ODL_ERR_ARG, "model_save: metadata entry %d is NULL", (int)k);
        size_t kl = strlen(meta[k].key) + 1, vl = strlen(meta[k].value) + 1;
        s = odl_file_write_chunk2(w, ODL_CHUNK_META, meta[k].key, kl, meta[k].value, vl, d);
    }
    return s;
}

odl_status odl_model_save(const odl_model *m, const odl_meta_kv *meta, int32_t n_meta, odl_writer *w, odl_diag *d)
{
    odl_status s = odl_model_write_chunks(m, meta, n_meta, w, d);
    if (s == ODL_OK)
        s = odl_file_write_end(w, d);
    return s;
}

/* Checks one tensor chunk against the topology's shapes. */
static odl_status check_tensor(const uint8_t *p, size_t n, int32_t chunk, const odl_model_desc *desc,
                               const odl_layer_shape *shapes, uint8_t seen[][2], odl_diag *d)
{
    if (n < TENS_HEADER)
        return odl_fail(d, ODL_ERR_FORMAT, "chunk %d: tensor header too short", (int)chunk);
    uint32_t layer = le_get_u32(p), which = le_get_u32(p + 4), dtype = le_get_u32(p + 8), ndim = le_get_u32(p + 12);
    uint64_t count = le_get_u64(p + 16);
    if (layer >= (uint32_t)desc->n_layers || which > 1)
        return odl_fail(d, ODL_ERR_FORMAT, "chunk %d: tensor for layer %lu/%lu does not exist", (int)chunk,
                        (unsigned long)layer, (unsigned long)which);
    if (dtype != ODL_DTYPE_F32 || ndim != 1)
        return odl_fail(d, ODL_ERR_UNSUPPORTED, "layer %lu: tensor dtype %lu / %lu dims is not supported",
                        (unsigned long)layer, (unsigned long)dtype, (unsigned long)ndim);
    if (le_get_u64(p + 24) != 0)
        return odl_fail(d, ODL_ERR_FORMAT, "chunk %d: layer %lu: the tensor header's reserved bytes are not zero",
                        (int)chunk, (unsigned long)layer);
    size_t expect = which ? shapes[layer].n_bias : shapes[layer].n_weights;
    if (expect == 0)
        return odl_fail(d, ODL_ERR_FORMAT, "chunk %d: layer %lu (%s) has no parameters, yet the file has a tensor",
                        (int)chunk, (unsigned long)layer, odl_layer_type_name(desc->layers[layer].type));
    if (count != expect || n - TENS_HEADER != expect * sizeof(float))
        return odl_fail(d, ODL_ERR_FORMAT, "layer %lu (%s): %lu values in the file, %zu expected", (unsigned long)layer,
                        odl_layer_type_name(desc->layers[layer].type), (unsigned long)count, expect);
    if (seen[layer][which]++)
        return odl_fail(d, ODL_ERR_FORMAT, "layer %lu: tensor appears twice", (unsigned long)layer);
    return ODL_OK;
}

/* Walks the whole file (every CRC checked), returns its topology, and checks
 * that every parameter tensor the topology needs is there with the right
 * size — so nothing is ever sized from a topology the file cannot back. */
odl_status odl_file_read_desc(const void *buf, size_t len, odl_model_desc *desc, odl_diag *d)
{
    odl_file_iter it;
    odl_status s = odl_file_open(&it, buf, len, d);
    if (s != ODL_OK)
        return s;
    /* pass 1: the topology (it may come after tensors in a valid file) */
    int have_topo = 0;
    for (;;) {
        uint32_t t;
        const uint8_t *p;
        size_t n;
        s = odl_file_next(&it, &t, &p, &n, d);
        if (s != ODL_OK)
            return s;
        if (t == ODL_CHUNK_TOPOLOGY) {
            if (have_topo)
                return odl_fail(d, ODL_ERR_FORMAT, "two topology chunks");
            s = topo_decode(p, n, desc, d);
            if (s != ODL_OK)
                return s;
            have_topo = 1;
        }
        if (t == ODL_CHUNK_END)
            break;
    }
    if (!have_topo)
        return odl_fail(d, ODL_ERR_FORMAT, "no topology chunk: not a model file");
    /* pass 2: the tensors */
    odl_layer_shape shapes[ODL_MAX_LAYERS];
    s = odl_desc_check(desc, shapes, d);
    if (s != ODL_OK)
        return s;
    uint8_t seen[ODL_MAX_LAYERS][2];
    memset(seen, 0, sizeof seen);
    odl_file_open(&it, buf, len, NULL);
    for (;;) {
        uint32_t t;
        const uint8_t *p;
        size_t n;
        s = odl_file_next(&it, &t, &p, &n, d);
        if (s != ODL_OK)
            return s;
        if (t == ODL_CHUNK_END)
            break;
        if (t == ODL_CHUNK_TENSOR) {
            s = check_tensor(p, n, it.index - 1, desc, shapes, seen, d);
            if (s != ODL_OK)
                return s;
        }
    }
    for (int32_t i = 0; i < desc->n_layers; i++)
        for (int which = 0; which < 2; which++)
            if ((which ? shapes[i].n_bias : shapes[i].n_weights) && !seen[i][which])
                return odl_fail(d, ODL_ERR_FORMAT, "layer %d (%s): %s missing from the file", (int)i,
                                odl_layer_type_name(desc->layers[i].type), which ? "bias" : "weights");
    return ODL_OK;
}

odl_status odl_model_load_params(odl_model *m, const void *buf, size_t len, odl_diag *d)
{
    odl_model_desc fdesc;
    odl_status s = odl_file_read_desc(buf, len, &fdesc, d);
    if (s != ODL_OK)
        return s;
    const odl_model_desc *md = odl_model_get_desc(m);
    if (fdesc.n_layers != md->n_layers || fdesc.in_c != md->in_c || fdesc.in_h != md->in_h || fdesc.in_w != md->in_w)
        return odl_fail(d, ODL_ERR_SHAPE, "file topology (%d layers, input %dx%dx%d) differs from the model's",
                        (int)fdesc.n_layers, (int)fdesc.in_c, (int)fdesc.in_h, (int)fdesc.in_w);
    for (int32_t i = 0; i < md->n_layers; i++) {
        const odl_layer_desc *a = &fdesc.layers[i], *b = &md->layers[i];
        if (a->type != b->type || a->units != b->units || a->k_h != b->k_h || a->k_w != b->k_w ||
            a->stride_h != b->stride_h || a->stride_w != b->stride_w || a->pad_h != b->pad_h || a->pad_w != b->pad_w)
            return odl_fail(d, ODL_ERR_SHAPE, "layer %d in the file (%s) differs from the model's (%s)", (int)i,
                            odl_layer_type_name(a->type), odl_layer_type_name(b->type));
    }
    odl_file_iter it;
    s = odl_file_open(&it, buf, len, d);
    while (s == ODL_OK) {
        uint32_t t;
        const uint8_t *p;
        size_t n;
        s = odl_file_next(&it, &t, &p, &n, d);
        if (s != ODL_OK)
            return s;
        if (t == ODL_CHUNK_END)
            break;
        if (t != ODL_CHUNK_TENSOR)
            continue;
        /* read_desc above validated every tensor chunk */
        uint32_t layer = le_get_u32(p), which = le_get_u32(p + 4);
        size_t expect = (size_t)le_get_u64(p + 16);
        const float *src = (const float *)(const void *)(p + TENS_HEADER);
        size_t have;
        float *dst = odl_model_param(m, (int32_t)layer, (int)which, &have);
        if (dst) {
            memcpy(dst, p + TENS_HEADER, expect * sizeof(float));
        } else {
            s = odl_model_set_param_external(m, (int32_t)layer, (int)which, src, expect, d);
            if (s != ODL_OK)
                return s;
        }
    }
    return ODL_OK;
}

odl_status odl_file_meta_get(const void *buf, size_t len, const char *key, char *value, size_t cap, odl_diag *d)
{
    odl_file_iter it;
    odl_status s = odl_file_open(&it, buf, len, d);
    if (s != ODL_OK)
        return s;
    for (;;) {
        uint32_t t;
        const uint8_t *p;
        size_t n;
        s = odl_file_next(&it, &t, &p, &n, d);
        if (s != ODL_OK)
            return s;
        if (t == ODL_CHUNK_END)
            return ODL_ERR_NOT_FOUND;
        if (t != ODL_CHUNK_META || n < 2 || p[n - 1] != '\0')
            continue;
        const uint8_t *nul = memchr(p, 0, n);
        if (!nul || nul == p + n - 1)
            continue;
        if (strcmp((const char *)p, key) != 0)
            continue;
        const char *v = (const char *)nul + 1;
        size_t vl = strlen(v);
        if (cap) {
            size_t c = vl < cap - 1 ? vl : cap - 1;
            memcpy(value, v, c);
            value[c] = '\0';
        }
        return ODL_OK;
    }
}
