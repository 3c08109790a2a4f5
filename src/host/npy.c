/* .npy arrays (host only): a strict reader and an atomic writer for the
 * float32 arrays odl predict reads and writes (include/odl/data.h). */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "odl/data.h"
#include "odl/posix_io.h"

#define NPY_MAX_ELEMS ((size_t)1 << 31)

static const unsigned char npy_magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    return p;
}

/* The value of `key` in the header dict (a Python literal), as the text
 * range [*v, *e). */
static int find_key(const char *h, const char *end, const char *key, const char **v, const char **e)
{
    char pat[32];
    snprintf(pat, sizeof pat, "'%s'", key);
    size_t pl = strlen(pat);
    for (const char *p = h; p + pl <= end; p++) {
        if (memcmp(p, pat, pl))
            continue;
        p = skip_ws(p + pl, end);
        if (p >= end || *p != ':')
            return 0;
        p = skip_ws(p + 1, end);
        const char *q = p;
        if (q < end && *q == '(') {
            while (q < end && *q != ')')
                q++;
            if (q >= end)
                return 0;
            q++;
        } else {
            while (q < end && *q != ',' && *q != '}')
                q++;
        }
        *v = p;
        *e = q;
        return 1;
    }
    return 0;
}

odl_status odl_npy_parse(const void *buf, size_t len, odl_npy *out, odl_diag *d)
{
    memset(out, 0, sizeof *out);
    const unsigned char *b = buf;
    if (len < 10 || memcmp(b, npy_magic, 6))
        return odl_fail(d, ODL_ERR_FORMAT, "not a .npy file (no \\x93NUMPY magic)");
    unsigned major = b[6];
    size_t hlen, off;
    if (major == 1) {
        hlen = (size_t)b[8] | (size_t)b[9] << 8;
        off = 10;
    } else if (major == 2 || major == 3) {
        if (len < 12)
            return odl_fail(d, ODL_ERR_TRUNCATED, ".npy header cut off");
        hlen = (size_t)b[8] | (size_t)b[9] << 8 | (size_t)b[10] << 16 | (size_t)b[11] << 24;
        off = 12;
    } else {
        return odl_fail(d, ODL_ERR_VERSION, ".npy version %u (1 to 3 supported)", major);
    }
    if (hlen > len - off || hlen > 1 << 20)
        return odl_fail(d, ODL_ERR_TRUNCATED, ".npy header of %zu bytes in a file of %zu", hlen, len);
    const char *h = (const char *)b + off, *he = h + hlen;
    const char *v, *e;
    if (!find_key(h, he, "descr", &v, &e))
        return odl_fail(d, ODL_ERR_FORMAT, ".npy header has no 'descr'");
    if (e - v != 5 || (memcmp(v, "'<f4'", 5) && memcmp(v, "'=f4'", 5)))
        return odl_fail(d, ODL_ERR_UNSUPPORTED, ".npy dtype %.*s: odl reads float32 ('<f4'); convert "
                        "with a.astype(np.float32)", (int)(e - v > 20 ? 20 : e - v), v);
    if (!find_key(h, he, "fortran_order", &v, &e))
        return odl_fail(d, ODL_ERR_FORMAT, ".npy header has no 'fortran_order'");
    if (e - v != 5 || memcmp(v, "False", 5))
        return odl_fail(d, ODL_ERR_UNSUPPORTED, ".npy array in Fortran order (save it in C order)");
    if (!find_key(h, he, "shape", &v, &e) || *v != '(')
        return odl_fail(d, ODL_ERR_FORMAT, ".npy header has no 'shape' tuple");
    const char *p = v + 1;
    int32_t rank = 0;
    size_t count = 1;
    for (;;) {
        p = skip_ws(p, e);
        if (p < e && *p == ')')
            break;
        if (p >= e || *p < '0' || *p > '9')
            return odl_fail(d, ODL_ERR_FORMAT, ".npy shape is not a tuple of integers");
        uint64_t x = 0;
        while (p < e && *p >= '0' && *p <= '9') {
            x = x * 10 + (uint64_t)(*p - '0');
            if (x > NPY_MAX_ELEMS)
                return odl_fail(d, ODL_ERR_UNSUPPORTED, ".npy dimension above %zu", NPY_MAX_ELEMS);
            p++;
        }
        if (rank == ODL_NPY_MAX_RANK)
            return odl_fail(d, ODL_ERR_UNSUPPORTED, ".npy array of rank above %d", ODL_NPY_MAX_RANK);
        out->dims[rank++] = (int64_t)x;
        if (x && count > NPY_MAX_ELEMS / x)
            return odl_fail(d, ODL_ERR_UNSUPPORTED, ".npy array of more than %zu values", NPY_MAX_ELEMS);
        count *= (size_t)x;
        p = skip_ws(p, e);
        if (p < e && *p == ',')
            p++;
    }
    if (rank == 0)
        return odl_fail(d, ODL_ERR_UNSUPPORTED, ".npy scalar (an array of rank 1 to %d expected)",
                        ODL_NPY_MAX_RANK);
    size_t data_off = off + hlen;
    if ((len - data_off) / 4 < count || (len - data_off) != count * 4)
        return odl_fail(d, ODL_ERR_TRUNCATED, ".npy data is %zu bytes; the shape needs %zu",
                        len - data_off, count * 4);
    out->data = malloc(count ? count * 4 : 1);
    if (!out->data)
        return odl_fail(d, ODL_ERR_NOMEM, "out of memory (.npy of %zu values)", count);
    const unsigned char *src = b + data_off;
    for (size_t k = 0; k < count; k++) {
        uint32_t u = (uint32_t)src[4 * k] | (uint32_t)src[4 * k + 1] << 8 |
                     (uint32_t)src[4 * k + 2] << 16 | (uint32_t)src[4 * k + 3] << 24;
        memcpy(&out->data[k], &u, 4);
    }
    out->rank = rank;
    out->count = count;
    return ODL_OK;
}

odl_status odl_npy_read(const char *path, odl_npy *out, odl_diag *d)
{
    void *buf;
    size_t len;
    memset(out, 0, sizeof *out);
    odl_status s = odl_host_read_file(path, &buf, &len, d);
    if (s != ODL_OK)
        return s;
    s = odl_npy_parse(buf, len, out, d);
    odl_host_free(buf);
    if (s != ODL_OK)
        odl_diag_prefix(d, path);
    return s;
}

void odl_npy_free(odl_npy *a)
{
    if (a) {
        free(a->data);
        memset(a, 0, sizeof *a);
    }
}

odl_status odl_npy_write(const char *path, const float *data, int32_t rank, const int64_t *dims,
                         odl_diag *d)
{
    if (rank < 1 || rank > ODL_NPY_MAX_RANK)
        return odl_fail(d, ODL_ERR_ARG, "odl_npy_write: rank %d", rank);
    char hdr[256];
    int n = snprintf(hdr, sizeof hdr, "{'descr': '<f4', 'fortran_order': False, 'shape': (");
    size_t count = 1;
    for (int32_t k = 0; k < rank; k++) {
        if (dims[k] < 0)
            return odl_fail(d, ODL_ERR_ARG, "odl_npy_write: negative dimension");
        count *= (size_t)dims[k];
        n += snprintf(hdr + n, sizeof hdr - (size_t)n, "%lld%s", (long long)dims[k],
                      rank == 1 ? "," : k + 1 < rank ? ", " : "");
    }
    n += snprintf(hdr + n, sizeof hdr - (size_t)n, "), }");
    /* pad with spaces and a newline so the data starts 64-byte aligned */
    size_t total = 10 + (size_t)n + 1;
    size_t pad = (64 - total % 64) % 64;
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, 0, 0};
    size_t hl = (size_t)n + pad + 1;
    pre[8] = (unsigned char)(hl & 0xff);
    pre[9] = (unsigned char)(hl >> 8);
    memset(hdr + n, ' ', pad);
    hdr[n + pad] = '\n';
    odl_posix_file f;
    odl_writer w;
    odl_status s = odl_posix_writer_open(&f, &w, path, d);
    if (s != ODL_OK)
        return s;
    if ((s = w.write(w.ctx, pre, sizeof pre)) == ODL_OK)
        s = w.write(w.ctx, hdr, hl);
    /* little-endian floats, in blocks */
    unsigned char blk[4096];
    for (size_t k = 0; k < count && s == ODL_OK;) {
        size_t m = 0;
        for (; k < count && m + 4 <= sizeof blk; k++, m += 4) {
            uint32_t u;
            memcpy(&u, &data[k], 4);
            blk[m] = (unsigned char)u;
            blk[m + 1] = (unsigned char)(u >> 8);
            blk[m + 2] = (unsigned char)(u >> 16);
            blk[m + 3] = (unsigned char)(u >> 24);
        }
        s = w.write(w.ctx, blk, m);
    }
    if (s != ODL_OK) {
        odl_posix_writer_abort(&f);
        return odl_fail(d, s, "%s: write failed", path);
    }
    return odl_posix_writer_commit(&f, d);
}

odl_status odl_npy_load_dataset(const char *path, odl_dataset *out, odl_diag *d)
{
    memset(out, 0, sizeof *out);
    odl_npy a;
    odl_status s = odl_npy_read(path, &a, d);
    if (s != ODL_OK)
        return s;
    int64_t n = a.dims[0], c = 1, h = 1, w = 1;
    if (a.rank == 2) {
        w = a.dims[1];
    } else if (a.rank == 3) {
        c = a.dims[1];
        h = a.dims[2];
    } else if (a.rank == 4) {
        c = a.dims[1];
        h = a.dims[2];
        w = a.dims[3];
    } else {
        odl_npy_free(&a);
        return odl_fail(d, ODL_ERR_SHAPE, "%s: a rank-1 array; samples are (N, F), (N, C, L) or "
                        "(N, C, H, W)", path);
    }
    if (n < 1 || n > INT32_MAX || c < 1 || c > INT32_MAX || h < 1 || h > INT32_MAX || w < 1 ||
        w > INT32_MAX) {
        odl_npy_free(&a);
        return odl_fail(d, ODL_ERR_SHAPE, "%s: an empty array or a dimension out of range", path);
    }
    out->y = calloc((size_t)n, sizeof *out->y);
    if (!out->y) {
        odl_npy_free(&a);
        return odl_fail(d, ODL_ERR_NOMEM, "out of memory");
    }
    out->x = a.data;
    out->n = (int32_t)n;
    out->c = (int32_t)c;
    out->h = (int32_t)h;
    out->w = (int32_t)w;
    out->n_classes = 0;
    return ODL_OK;
}
