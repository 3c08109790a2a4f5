/* The .odl file format (docs/format.md). Every length and index read from a
 * file is checked before use; a damaged file is an error, never a crash. */
#include "odl/file.h"
#include "bytes_le.h"
#include "file_topo.h"

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

static odl_status write_header(odl_writer *w, uint32_t minor, odl_diag *d)
{
    uint8_t h[ODL_FILE_HEADER_BYTES];
    memcpy(h, odl_magic, 8);
    le_put_u16(h + 8, ODL_FILE_VERSION_MAJOR);
    le_put_u16(h + 10, minor);
    le_put_u32(h + 12, odl_crc32(0, h, 12));
    w->offset = 0;
    return emit(w, h, sizeof h, d);
}

/* A file is marked with the lowest version that holds it: chunks without a
 * graph topology are 1.0 (odl_model_write_chunks raises it when needed). */
odl_status odl_file_write_header(odl_writer *w, odl_diag *d)
{
    return write_header(w, 0, d);
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

/* Format 1.0: a 16-byte header (nodes, c, h, w) and 40-byte sequential
 * records. Format 1.1: a 32-byte header (nodes, c, h, w, record bytes,
 * flags, two reserved words) and graph records of TOPO11_NODE bytes. A
 * writer uses 1.0 whenever the description fits it, so sequential models
 * stay byte for byte what older odl wrote and read. */
#define TOPO10_HEADER 16
#define TOPO10_NODE 40
#define TOPO11_HEADER 32
#define TOPO11_NODE 116
#define TOPO11_MAX_RECORD 4096u    /* later minors may append fields, within reason */
#define TOPO_FLAG_SOFTMAX 1u
#define TOPO_STACK_SHAPES 32       /* odl_file_read_desc's own scratch (as many as 1.0 allowed) */

static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Whether node i fits a 1.0 record (sequential, symmetric padding, the
 * fields 1.0 had). */
static int node_fits_v10(const odl_node_desc *l, int32_t i)
{
    return l->type >= ODL_LAYER_DENSE && l->type <= ODL_LAYER_ADAPTER && l->n_in == 1 && l->in[0] == i &&
           l->groups == 1 && l->dil_h == 1 && l->dil_w == 1 && l->pad_b == l->pad_t && l->pad_r == l->pad_l &&
           l->flags == 0 && l->shape_c == 0 && l->shape_h == 0 && l->shape_w == 0 && f32_bits(l->beta) == 0;
}

static int desc_fits_v10(const odl_model_desc *m)
{
    if (m->softmax_output)
        return 0;
    for (int32_t i = 0; i < m->n_layers; i++)
        if (!node_fits_v10(&m->layers[i], i))
            return 0;
    return 1;
}

static void topo_header(const odl_model_desc *m, int v10, uint8_t *out)
{
    memset(out, 0, TOPO11_HEADER);
    le_put_u32(out, (uint32_t)m->n_layers);
    le_put_u32(out + 4, (uint32_t)m->in_c);
    le_put_u32(out + 8, (uint32_t)m->in_h);
    le_put_u32(out + 12, (uint32_t)m->in_w);
    if (!v10) {
        le_put_u32(out + 16, TOPO11_NODE);
        le_put_u32(out + 20, m->softmax_output ? TOPO_FLAG_SOFTMAX : 0u);
    }
}

static void topo_node(const odl_node_desc *l, int v10, uint8_t *out)
{
    if (v10) {
        const int32_t v[9] = {l->type, l->trainable, l->units, l->k_h, l->k_w,
                              l->stride_h, l->stride_w, l->pad_t, l->pad_l};
        for (int k = 0; k < 9; k++)
            le_put_u32(out + 4 * k, (uint32_t)v[k]);
        le_put_u32(out + 36, f32_bits(l->alpha));
        return;
    }
    int32_t v[27];
    int k = 0;
    v[k++] = l->type;
    v[k++] = l->trainable;
    v[k++] = l->n_in;
    for (int j = 0; j < ODL_NODE_MAX_IN; j++)
        v[k++] = l->in[j];
    const int32_t rest[16] = {l->units, l->groups, l->k_h, l->k_w, l->stride_h, l->stride_w,
                              l->pad_t, l->pad_l, l->pad_b, l->pad_r, l->dil_h, l->dil_w,
                              l->flags, l->shape_c, l->shape_h, l->shape_w};
    for (int j = 0; j < 16; j++)
        v[k++] = rest[j];
    for (int j = 0; j < k; j++)
        le_put_u32(out + 4 * j, (uint32_t)v[j]);
    le_put_u32(out + 4 * k, f32_bits(l->alpha));
    le_put_u32(out + 4 * k + 4, f32_bits(l->beta));
}

/* The TOPO chunk, written record by record (no buffer sized by the model):
 * the CRC is taken over the encoded records first, then they are written. */
static odl_status write_topo(odl_writer *w, const odl_model_desc *m, int v10, odl_diag *d)
{
    static const uint8_t zeros[16] = {0};
    const size_t hn = v10 ? TOPO10_HEADER : TOPO11_HEADER, rn = v10 ? TOPO10_NODE : TOPO11_NODE;
    uint8_t hdr[TOPO11_HEADER], rec[TOPO11_NODE], tl[12], ch[ODL_CHUNK_HEADER_BYTES];
    topo_header(m, v10, hdr);
    const uint64_t len = (uint64_t)hn + (uint64_t)m->n_layers * rn;
    le_put_u32(tl, ODL_CHUNK_TOPOLOGY);
    le_put_u64(tl + 4, len);
    uint32_t crc = odl_crc32(0, tl, sizeof tl);
    crc = odl_crc32(crc, hdr, hn);
    for (int32_t i = 0; i < m->n_layers; i++) {
        topo_node(&m->layers[i], v10, rec);
        crc = odl_crc32(crc, rec, rn);
    }
    le_put_u32(ch, ODL_CHUNK_TOPOLOGY);
    le_put_u32(ch + 4, crc);
    le_put_u64(ch + 8, len);
    odl_status s = emit(w, ch, sizeof ch, d);
    if (s == ODL_OK)
        s = emit(w, hdr, hn, d);
    for (int32_t i = 0; i < m->n_layers && s == ODL_OK; i++) {
        topo_node(&m->layers[i], v10, rec);
        s = emit(w, rec, rn, d);
    }
    if (s == ODL_OK)
        s = emit(w, zeros, (size_t)((16u - (len & 15u)) & 15u), d);
    return s;
}

static odl_status topo_open(const uint8_t *p, size_t n, uint32_t minor, topo_view *v, odl_diag *d)
{
    memset(v, 0, sizeof *v);
    v->p = p;
    v->n = n;
    v->v10 = minor == 0;
    v->header = v->v10 ? TOPO10_HEADER : TOPO11_HEADER;
    if (n < v->header)
        return odl_fail(d, ODL_ERR_FORMAT, "topology chunk is %zu bytes, shorter than its %zu-byte header", n,
                        v->header);
    v->n_nodes = le_get_u32(p);
    if (v->v10) {
        v->record = TOPO10_NODE;
    } else {
        const uint32_t rb = le_get_u32(p + 16), flags = le_get_u32(p + 20);
        if (rb < TOPO11_NODE || rb > TOPO11_MAX_RECORD || rb % 4u)
            return odl_fail(d, ODL_ERR_FORMAT, "topology records are %lu bytes (a multiple of 4, %d..%u allowed)",
                            (unsigned long)rb, TOPO11_NODE, TOPO11_MAX_RECORD);
        if (flags & ~TOPO_FLAG_SOFTMAX)
            return odl_fail(d, ODL_ERR_FORMAT, "topology flags 0x%lx: unknown bits (only 0x1, softmax output, is defined)",
                            (unsigned long)flags);
        if (le_get_u32(p + 24) || le_get_u32(p + 28))
            return odl_fail(d, ODL_ERR_FORMAT, "topology header: reserved words are not zero");
        v->record = rb;
    }
    if (v->n_nodes == 0 || v->n_nodes > (uint32_t)INT32_MAX)
        return odl_fail(d, ODL_ERR_FORMAT, "topology declares %lu nodes (1..%ld allowed)", (unsigned long)v->n_nodes,
                        (long)INT32_MAX);
    /* n == header + n_nodes * record, without forming the product */
    const size_t body = n - v->header;
    if (body % v->record || body / v->record != v->n_nodes)
        return odl_fail(d, ODL_ERR_FORMAT, "topology chunk is %zu bytes: %lu records of %zu bytes do not fit it", n,
                        (unsigned long)v->n_nodes, v->record);
    return ODL_OK;
}

static int f32_finite(uint32_t bits) { return (bits & 0x7f800000u) != 0x7f800000u; }

/* Decodes and checks record i (everything but shapes: odl_desc_check does
 * those). */
odl_status odl_topo_get(const topo_view *v, int32_t i, odl_node_desc *l, odl_diag *d)
{
    const uint8_t *q = v->p + v->header + (size_t)i * v->record;
    memset(l, 0, sizeof *l);
    uint32_t ab, bb = 0;
    if (v->v10) {
        int32_t *f[9] = {&l->type, &l->trainable, &l->units, &l->k_h, &l->k_w,
                         &l->stride_h, &l->stride_w, &l->pad_t, &l->pad_l};
        for (int k = 0; k < 9; k++)
            *f[k] = le_get_i32(q + 4 * k);
        l->pad_b = l->pad_t;
        l->pad_r = l->pad_l;
        l->n_in = 1;
        l->in[0] = i;
        l->groups = 1;
        l->dil_h = l->dil_w = 1;
        ab = le_get_u32(q + 36);
        if (l->type < ODL_LAYER_DENSE || l->type > ODL_LAYER_ADAPTER)
            return odl_fail(d, ODL_ERR_FORMAT, "node %ld: layer type %ld is not one format 1.0 knows", (long)i,
                            (long)l->type);
    } else {
        int k = 0;
        l->type = le_get_i32(q + 4 * k++);
        l->trainable = le_get_i32(q + 4 * k++);
        l->n_in = le_get_i32(q + 4 * k++);
        for (int j = 0; j < ODL_NODE_MAX_IN; j++)
            l->in[j] = le_get_i32(q + 4 * k++);
        int32_t *f[16] = {&l->units, &l->groups, &l->k_h, &l->k_w, &l->stride_h, &l->stride_w,
                          &l->pad_t, &l->pad_l, &l->pad_b, &l->pad_r, &l->dil_h, &l->dil_w,
                          &l->flags, &l->shape_c, &l->shape_h, &l->shape_w};
        for (int j = 0; j < 16; j++)
            *f[j] = le_get_i32(q + 4 * k++);
        ab = le_get_u32(q + 4 * k++);
        bb = le_get_u32(q + 4 * k++);
        for (size_t b = TOPO11_NODE; b < v->record; b++)
            if (q[b])
                return odl_fail(d, ODL_ERR_FORMAT,
                                "node %ld: byte %zu of its record is set, a field this odl does not know "
                                "(written by a newer odl?)",
                                (long)i, b);
    }
    if (l->trainable != 0 && l->trainable != 1)
        return odl_fail(d, ODL_ERR_FORMAT, "node %ld (%s): trainable flag %ld (0 or 1 allowed)", (long)i,
                        odl_layer_type_name(l->type), (long)l->trainable);
    if (l->n_in < 1 || l->n_in > ODL_NODE_MAX_IN)
        return odl_fail(d, ODL_ERR_FORMAT, "node %ld (%s): %ld inputs (1..%d allowed)", (long)i,
                        odl_layer_type_name(l->type), (long)l->n_in, ODL_NODE_MAX_IN);
    for (int32_t j = 0; j < ODL_NODE_MAX_IN; j++) {
        if (j < l->n_in && (l->in[j] < 0 || l->in[j] > i))
            return odl_fail(d, ODL_ERR_FORMAT,
                            "node %ld (%s): input %ld reads tensor %ld; only tensors 0..%ld exist before it "
                            "(nodes must be in topological order)",
                            (long)i, odl_layer_type_name(l->type), (long)j, (long)l->in[j], (long)i);
        if (j >= l->n_in && l->in[j] != 0)
            return odl_fail(d, ODL_ERR_FORMAT, "node %ld (%s): unused input slot %ld is %ld, not 0", (long)i,
                            odl_layer_type_name(l->type), (long)j, (long)l->in[j]);
    }
    if (!f32_finite(ab) || !f32_finite(bb))
        return odl_fail(d, ODL_ERR_FORMAT, "node %ld (%s): alpha or beta is not a finite number", (long)i,
                        odl_layer_type_name(l->type));
    l->alpha = bits_f32(ab);
    l->beta = bits_f32(bb);
    return ODL_OK;
}

/* Finds the topology chunk (the whole file checked: every CRC, END). */
odl_status odl_topo_find(const void *buf, size_t len, topo_view *v, odl_diag *d)
{
    odl_file_iter it;
    odl_status s = odl_file_open(&it, buf, len, d);
    if (s != ODL_OK)
        return s;
    const uint32_t minor = le_get_u16((const uint8_t *)buf + 10);
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
            s = topo_open(p, n, minor, v, d);
            if (s != ODL_OK)
                return s;
            have_topo = 1;
        }
        if (t == ODL_CHUNK_END)
            break;
    }
    if (!have_topo)
        return odl_fail(d, ODL_ERR_FORMAT, "no topology chunk: not a model file");
    return ODL_OK;
}

odl_status odl_file_count_nodes(const void *buf, size_t len, int32_t *n_nodes, odl_diag *d)
{
    if (!n_nodes)
        return odl_fail(d, ODL_ERR_ARG, "file_count_nodes: no output");
    topo_view v;
    odl_status s = odl_topo_find(buf, len, &v, d);
    if (s != ODL_OK)
        return s;
    *n_nodes = (int32_t)v.n_nodes;
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
    const int v10 = desc_fits_v10(desc);
    odl_status s = write_header(w, v10 ? 0u : (uint32_t)ODL_FILE_VERSION_MINOR, d);
    if (s == ODL_OK)
        s = write_topo(w, desc, v10, d);
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

/* The expected value count of a parameter tensor, from a shape getter:
 * the caller's checked shapes (read_desc) or the model's (load_params). */
typedef struct tensor_shapes {
    const odl_layer_shape *shapes; /* or NULL: ask the model */
    const odl_model *m;
} tensor_shapes;

static size_t expected_count(const tensor_shapes *ts, uint32_t layer, uint32_t which)
{
    const odl_layer_shape sh = ts->shapes ? ts->shapes[layer] : odl_model_layer_shape(ts->m, (int32_t)layer);
    return which ? sh.n_bias : sh.n_weights;
}

/* Checks one tensor chunk against the topology's shapes; the chunks before
 * it (already valid) are walked for a duplicate, so no per-node table is
 * needed. */
static odl_status check_tensor(const uint8_t *file, size_t file_len, const uint8_t *p, size_t n, int32_t chunk,
                               const odl_model_desc *desc, const tensor_shapes *ts, odl_diag *d)
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
    size_t expect = expected_count(ts, layer, which);
    if (expect == 0)
        return odl_fail(d, ODL_ERR_FORMAT, "chunk %d: layer %lu (%s) has no parameters, yet the file has a tensor",
                        (int)chunk, (unsigned long)layer, odl_layer_type_name(desc->layers[layer].type));
    if (count != expect || n - TENS_HEADER != expect * sizeof(float))
        return odl_fail(d, ODL_ERR_FORMAT, "layer %lu (%s): %lu values in the file, %zu expected", (unsigned long)layer,
                        odl_layer_type_name(desc->layers[layer].type), (unsigned long)count, expect);
    /* the earlier chunks passed their CRC and bounds checks: walk headers only */
    size_t pos = ODL_FILE_HEADER_BYTES;
    while (pos <= file_len - ODL_CHUNK_HEADER_BYTES) {
        const uint8_t *h = file + pos;
        const uint64_t cn = le_get_u64(h + 8);
        const uint8_t *pl = h + ODL_CHUNK_HEADER_BYTES;
        if (pl == p)
            break;
        if (le_get_u32(h) == ODL_CHUNK_TENSOR && cn >= TENS_HEADER && le_get_u32(pl) == layer &&
            le_get_u32(pl + 4) == which)
            return odl_fail(d, ODL_ERR_FORMAT, "layer %lu: tensor appears twice", (unsigned long)layer);
        pos += ODL_CHUNK_HEADER_BYTES + (size_t)cn + (size_t)((16u - (cn & 15u)) & 15u);
    }
    return ODL_OK;
}

/* Every tensor chunk checked, and every parameter the topology needs present
 * (with no duplicates, the count of valid tensors tells). */
static odl_status check_tensors(const void *buf, size_t len, const odl_model_desc *desc, const tensor_shapes *ts,
                                odl_diag *d)
{
    odl_file_iter it;
    odl_status s = odl_file_open(&it, buf, len, d);
    uint64_t found = 0;
    while (s == ODL_OK) {
        uint32_t t;
        const uint8_t *p;
        size_t n;
        s = odl_file_next(&it, &t, &p, &n, d);
        if (s != ODL_OK)
            return s;
        if (t == ODL_CHUNK_END)
            break;
        if (t == ODL_CHUNK_TENSOR) {
            s = check_tensor(buf, len, p, n, it.index - 1, desc, ts, d);
            found++;
        }
    }
    if (s != ODL_OK)
        return s;
    uint64_t needed = 0;
    for (int32_t i = 0; i < desc->n_layers; i++)
        needed += (expected_count(ts, (uint32_t)i, 0) != 0) + (expected_count(ts, (uint32_t)i, 1) != 0);
    if (found == needed)
        return ODL_OK;
    for (int32_t i = 0; i < desc->n_layers; i++)
        for (uint32_t which = 0; which < 2; which++) {
            if (!expected_count(ts, (uint32_t)i, which))
                continue;
            int have = 0;
            odl_file_open(&it, buf, len, NULL);
            for (;;) {
                uint32_t t;
                const uint8_t *p;
                size_t n;
                if (odl_file_next(&it, &t, &p, &n, NULL) != ODL_OK || t == ODL_CHUNK_END)
                    break;
                if (t == ODL_CHUNK_TENSOR && le_get_u32(p) == (uint32_t)i && le_get_u32(p + 4) == which)
                    have = 1;
            }
            if (!have)
                return odl_fail(d, ODL_ERR_FORMAT, "layer %d (%s): %s missing from the file", (int)i,
                                odl_layer_type_name(desc->layers[i].type), which ? "bias" : "weights");
        }
    return odl_fail(d, ODL_ERR_FORMAT, "the file's parameter tensors do not match its topology");
}

/* Walks the whole file (every CRC checked), returns its topology, and checks
 * that every parameter tensor the topology needs is there with the right
 * size — so nothing is ever sized from a topology the file cannot back. */
odl_status odl_file_read_desc_ws(const void *buf, size_t len, odl_model_desc *desc, odl_layer_shape *shapes,
                                 int32_t cap_shapes, odl_diag *d)
{
    if (!desc || (!desc->layers && desc->cap_layers) || desc->cap_layers < 0)
        return odl_fail(d, ODL_ERR_ARG, "file_read_desc: the description has no node storage (odl_desc_init)");
    topo_view v;
    odl_status s = odl_topo_find(buf, len, &v, d);
    if (s != ODL_OK)
        return s;
    if (v.n_nodes > (uint32_t)desc->cap_layers || !shapes || v.n_nodes > (uint32_t)cap_shapes) {
        const int short_nodes = v.n_nodes > (uint32_t)desc->cap_layers;
        desc->n_layers = (int32_t)v.n_nodes;
        return odl_fail(d, ODL_ERR_NOMEM, "the model has %lu nodes; room for %ld %s given",
                        (unsigned long)v.n_nodes, (long)(short_nodes ? desc->cap_layers : cap_shapes),
                        short_nodes ? "nodes" : "shapes");
    }
    desc->n_layers = 0;
    desc->in_c = (int32_t)le_get_u32(v.p + 4);
    desc->in_h = (int32_t)le_get_u32(v.p + 8);
    desc->in_w = (int32_t)le_get_u32(v.p + 12);
    desc->softmax_output = v.v10 ? 0 : (int32_t)(le_get_u32(v.p + 20) & TOPO_FLAG_SOFTMAX);
    for (uint32_t i = 0; i < v.n_nodes; i++) {
        s = odl_topo_get(&v, (int32_t)i, &desc->layers[i], d);
        if (s != ODL_OK) {
            odl_diag_prefix(d, "topology");
            return s;
        }
    }
    desc->n_layers = (int32_t)v.n_nodes;
    /* every shape must be possible before anything is sized from it */
    s = odl_desc_check(desc, shapes, d);
    if (s != ODL_OK) {
        odl_diag_prefix(d, "topology");
        if (d)
            d->status = ODL_ERR_FORMAT;
        return ODL_ERR_FORMAT;
    }
    const tensor_shapes ts = {shapes, NULL};
    return check_tensors(buf, len, desc, &ts, d);
}

odl_status odl_file_read_desc(const void *buf, size_t len, odl_model_desc *desc, odl_diag *d)
{
    odl_layer_shape shapes[TOPO_STACK_SHAPES];
    odl_status s = odl_file_read_desc_ws(buf, len, desc, shapes, TOPO_STACK_SHAPES, d);
    if (s == ODL_ERR_NOMEM && desc && desc->n_layers <= desc->cap_layers && desc->n_layers > TOPO_STACK_SHAPES)
        return odl_fail(d, ODL_ERR_NOMEM,
                        "the model has %ld nodes; odl_file_read_desc checks up to %d "
                        "(odl_file_read_desc_ws takes scratch for more)",
                        (long)desc->n_layers, TOPO_STACK_SHAPES);
    return s;
}

/* Node i of the file and of the model describe the same computation and
 * parameters (trainable, dropout rate and activation constants may differ). */
static int same_node(const odl_node_desc *a, const odl_node_desc *b)
{
    if (a->type != b->type || a->n_in != b->n_in || a->units != b->units || a->groups != b->groups ||
        a->k_h != b->k_h || a->k_w != b->k_w || a->stride_h != b->stride_h || a->stride_w != b->stride_w ||
        a->pad_t != b->pad_t || a->pad_l != b->pad_l || a->pad_b != b->pad_b || a->pad_r != b->pad_r ||
        a->dil_h != b->dil_h || a->dil_w != b->dil_w || a->flags != b->flags || a->shape_c != b->shape_c ||
        a->shape_h != b->shape_h || a->shape_w != b->shape_w)
        return 0;
    for (int32_t j = 0; j < a->n_in && j < ODL_NODE_MAX_IN; j++)
        if (a->in[j] != b->in[j])
            return 0;
    return 1;
}

odl_status odl_model_load_params(odl_model *m, const void *buf, size_t len, odl_diag *d)
{
    if (!m)
        return odl_fail(d, ODL_ERR_ARG, "model_load_params: no model");
    topo_view v;
    odl_status s = odl_topo_find(buf, len, &v, d);
    if (s != ODL_OK)
        return s;
    const odl_model_desc *md = odl_model_get_desc(m);
    const int32_t fc = (int32_t)le_get_u32(v.p + 4), fh = (int32_t)le_get_u32(v.p + 8),
                  fw = (int32_t)le_get_u32(v.p + 12);
    if (v.n_nodes != (uint32_t)md->n_layers || fc != md->in_c || fh != md->in_h || fw != md->in_w)
        return odl_fail(d, ODL_ERR_SHAPE, "file topology (%lu layers, input %dx%dx%d) differs from the model's",
                        (unsigned long)v.n_nodes, (int)fc, (int)fh, (int)fw);
    for (int32_t i = 0; i < md->n_layers; i++) {
        odl_node_desc a;
        s = odl_topo_get(&v, i, &a, d);
        if (s != ODL_OK) {
            odl_diag_prefix(d, "topology");
            return s;
        }
        if (!same_node(&a, &md->layers[i]))
            return odl_fail(d, ODL_ERR_SHAPE, "layer %d in the file (%s) differs from the model's (%s)", (int)i,
                            odl_layer_type_name(a.type), odl_layer_type_name(md->layers[i].type));
    }
    /* the model's shapes are the file's: the nodes match */
    const tensor_shapes ts = {NULL, m};
    s = check_tensors(buf, len, md, &ts, d);
    if (s != ODL_OK)
        return s;
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
        /* check_tensors above validated every tensor chunk */
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
