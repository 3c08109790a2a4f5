/* Host-only dataset readers: IDX (MNIST-style, plain or gzip) and CSV.
 *
 * Everything is read through zlib's gz* calls, which read plain files
 * transparently, so every reader also accepts gzip-compressed input.
 * Buffers grow with the data actually read, never with what a header
 * claims, so a lying header cannot trigger a huge allocation. */
#define _POSIX_C_SOURCE 200809L

#include "odl/data.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#define IDX_MAGIC_LABELS 0x00000801u
#define IDX_MAGIC_IMAGES 0x00000803u
#define PATH_CAP 4096

#if defined(__GNUC__)
#define ODL_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define ODL_PRINTF(a, b)
#endif

/* ------------------------------------------------------------------ */
/* diagnostics                                                         */

static odl_status failf(odl_diag *d, odl_status s, const char *fmt, ...) ODL_PRINTF(3, 4);

static odl_status failf(odl_diag *d, odl_status s, const char *fmt, ...)
{
    if (!d)
        return s;
    d->status = s;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->msg, sizeof d->msg, fmt, ap);
    va_end(ap);
    /* one line: a path with a newline in it must not split the message */
    for (char *p = d->msg; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    return s;
}

static odl_status errno_fail(odl_diag *d, const char *path, int e)
{
    return failf(d, e == ENOENT || e == ENOTDIR ? ODL_ERR_NOT_FOUND : ODL_ERR_IO,
                 "%s: %s", path, strerror(e));
}

/* ------------------------------------------------------------------ */
/* gz reading                                                          */

/* A file read plain or, when it starts with the gzip magic, through
 * inflate. zlib's own gz* reader silently ignores anything after the last
 * gzip member; this one accepts further members (concatenated gzip is
 * valid) and refuses any other trailing bytes. */
typedef struct zsrc {
    FILE *f;
    int gzip;      /* 1: gzip members; 0: a plain file */
    int in_member; /* inflate is inside a member */
    int ended;     /* the data ended cleanly */
    int members;   /* gzip members completed */
    size_t member_out; /* bytes the current member has produced */
    z_stream zs;
    unsigned char in[1u << 15]; /* 32 KB: reads stream, and memory stays small */
} zsrc;

static void gz_close(zsrc *z)
{
    if (!z)
        return;
    if (z->gzip)
        inflateEnd(&z->zs);
    if (z->f)
        fclose(z->f);
    free(z);
}

static odl_status gz_open(const char *path, zsrc **out, odl_diag *d)
{
    zsrc *z = calloc(1, sizeof *z);
    if (!z)
        return failf(d, ODL_ERR_NOMEM, "%s: cannot open (out of memory)", path);
    errno = 0;
    z->f = fopen(path, "rb");
    if (!z->f) {
        int e = errno;
        free(z);
        return errno_fail(d, path, e ? e : EIO);
    }
    size_t n = fread(z->in, 1, 2, z->f);
    if (ferror(z->f)) {
        int e = errno;
        gz_close(z);
        return failf(d, ODL_ERR_IO, "%s: read error: %s", path, strerror(e ? e : EIO));
    }
    z->zs.next_in = z->in;
    z->zs.avail_in = (uInt)n;
    if (n == 2 && z->in[0] == 0x1f && z->in[1] == 0x8b) {
        if (inflateInit2(&z->zs, 16 + MAX_WBITS) != Z_OK) {
            fclose(z->f);
            free(z);
            return failf(d, ODL_ERR_NOMEM, "%s: cannot open (out of memory)", path);
        }
        z->gzip = z->in_member = 1;
    }
    *out = z;
    return ODL_OK;
}

/* More input when the buffer is empty: 1, 0 at the end of the file, -1 on error. */
static int gz_fill(zsrc *z)
{
    if (z->zs.avail_in)
        return 1;
    size_t n = fread(z->in, 1, sizeof z->in, z->f);
    if (n == 0)
        return ferror(z->f) ? -1 : 0;
    z->zs.next_in = z->in;
    z->zs.avail_in = (uInt)n;
    return 1;
}

/* Reads up to `want` bytes into buf. *got is what arrived before the end of
 * the data; *gz_eof is set when a gzip stream ended before its end marker.
 * Errors for unreadable or corrupted streams and data after the gzip stream. */
static odl_status gz_read_upto(zsrc *z, const char *path, unsigned char *buf, size_t want, size_t *got,
                               int *gz_eof, odl_diag *d)
{
    size_t total = 0;
    *gz_eof = 0;
    odl_status st = ODL_OK;
    while (total < want && !z->ended) {
        errno = 0;
        const int fr = gz_fill(z);
        if (fr < 0) {
            st = failf(d, ODL_ERR_IO, "%s: read error: %s", path, strerror(errno ? errno : EIO));
            break;
        }
        if (fr == 0) {
            z->ended = 1;
            if (z->gzip && z->in_member) {
                if (z->members > 0 && z->member_out == 0)
                    st = failf(d, ODL_ERR_FORMAT, "%s: unexpected data after the end of the gzip stream", path);
                else
                    *gz_eof = 1;
            }
            break;
        }
        size_t chunk = want - total;
        if (!z->gzip) {
            if (chunk > z->zs.avail_in)
                chunk = z->zs.avail_in;
            memcpy(buf + total, z->zs.next_in, chunk);
            z->zs.next_in += chunk;
            z->zs.avail_in -= (uInt)chunk;
            total += chunk;
            continue;
        }
        if (!z->in_member) {
            /* more bytes after a member: another member, or refused below */
            if (inflateReset(&z->zs) != Z_OK) {
                st = failf(d, ODL_ERR_FORMAT, "%s: corrupted gzip stream", path);
                break;
            }
            z->in_member = 1;
            z->member_out = 0;
        }
        if (chunk > (1u << 30))
            chunk = 1u << 30;
        z->zs.next_out = buf + total;
        z->zs.avail_out = (uInt)chunk;
        const int r = inflate(&z->zs, Z_NO_FLUSH);
        const size_t produced = chunk - z->zs.avail_out;
        total += produced;
        z->member_out += produced;
        if (r == Z_STREAM_END) {
            z->in_member = 0;
            z->members++;
            continue;
        }
        if (r == Z_OK || r == Z_BUF_ERROR)
            continue;
        if (r == Z_MEM_ERROR)
            st = failf(d, ODL_ERR_NOMEM, "%s: out of memory while decompressing", path);
        else if (z->members > 0 && z->member_out == 0)
            st = failf(d, ODL_ERR_FORMAT, "%s: unexpected data after the end of the gzip stream", path);
        else
            st = failf(d, ODL_ERR_FORMAT, "%s: corrupted gzip stream (%s)", path,
                       z->zs.msg ? z->zs.msg : "invalid data");
        break;
    }
    *got = total;
    return st;
}

static int gz_direct(const zsrc *z)
{
    return !z->gzip;
}

static const char *gz_note(zsrc *gz)
{
    return gz_direct(gz) ? "" : " after decompression";
}

/* Reads the rest of the stream, expected to be exactly `want` bytes, into a
 * buffer that grows with the data read (never with what a header claims).
 * It asks for want + 1 bytes: that both detects trailing data and makes
 * zlib run to the end of the gzip stream (checking its CRC and length, and
 * noticing a missing trailer) even when the data ends exactly there.
 * Returns ODL_OK with *out set, or an error worded with `what` (e.g.
 * "10000 images of 28x28") and the expected/actual byte counts. */
static odl_status gz_read_body(zsrc *gz, const char *path, size_t hdr_bytes, size_t want,
                               const char *what, unsigned char **out, odl_diag *d)
{
    *out = NULL;
    if (want >= SIZE_MAX - hdr_bytes - 1)
        return failf(d, ODL_ERR_FORMAT, "%s: %s do not fit in memory", path, what);
    const size_t total_want = want + 1;
    size_t cap = total_want < ((size_t)1 << 20) ? total_want : ((size_t)1 << 20);
    unsigned char *buf = malloc(cap);
    if (!buf)
        return failf(d, ODL_ERR_NOMEM, "%s: out of memory", path);
    size_t total = 0;
    int eof = 0;
    for (;;) {
        size_t step = cap - total;
        size_t n = 0;
        odl_status st = gz_read_upto(gz, path, buf + total, step, &n, &eof, d);
        total += n;
        if (st != ODL_OK) {
            free(buf);
            return st;
        }
        if (n < step || total == total_want)
            break;
        size_t ncap = cap > total_want / 2 ? total_want : cap * 2;
        unsigned char *nb = realloc(buf, ncap);
        if (!nb) {
            free(buf);
            return failf(d, ODL_ERR_NOMEM, "%s: out of memory (%zu bytes)", path, ncap);
        }
        buf = nb;
        cap = ncap;
    }
    odl_status st = ODL_OK;
    if (total < want)
        st = failf(d, ODL_ERR_TRUNCATED,
                   "%s: truncated: expected %zu bytes (%zu-byte header + %s), got %zu%s", path,
                   hdr_bytes + want, hdr_bytes, what, hdr_bytes + total, gz_note(gz));
    else if (total > want)
        st = failf(d, ODL_ERR_FORMAT,
                   "%s: unexpected data after the %zu bytes the header declares (%zu-byte header + %s)",
                   path, hdr_bytes + want, hdr_bytes, what);
    else if (eof)
        st = failf(d, ODL_ERR_TRUNCATED,
                   "%s: truncated: the gzip stream ends before its trailer (after all %zu bytes of data)",
                   path, hdr_bytes + want);
    if (st != ODL_OK) {
        free(buf);
        return st;
    }
    *out = buf;
    return ODL_OK;
}

/* ------------------------------------------------------------------ */
/* IDX                                                                 */

static uint32_t be32(const unsigned char *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

typedef struct idx_header {
    uint32_t magic;
    int ndims;
    uint32_t dims[3];
    size_t bytes; /* header size */
} idx_header;

static odl_status idx_read_header(zsrc *gz, const char *path, int labels, idx_header *h,
                                  odl_diag *d)
{
    unsigned char b[16];
    size_t n = 0;
    int eof = 0;
    const uint32_t expect = labels ? IDX_MAGIC_LABELS : IDX_MAGIC_IMAGES;
    const char *kind = labels ? "u8 labels" : "u8 images";
    memset(h, 0, sizeof *h);
    odl_status st = gz_read_upto(gz, path, b, 4, &n, &eof, d);
    if (st != ODL_OK)
        return st;
    if (n < 4)
        return failf(d, ODL_ERR_TRUNCATED,
                     "%s: truncated: expected at least 4 bytes (IDX magic), got %zu%s", path, n,
                     gz_note(gz));
    h->magic = be32(b);
    int nd = b[3];
    int ok_dims = labels ? nd == 1 : (nd == 2 || nd == 3);
    if (b[0] == 0 && b[1] == 0 && b[2] != 0x08 && ok_dims &&
        (b[2] == 0x09 || b[2] == 0x0B || b[2] == 0x0C || b[2] == 0x0D || b[2] == 0x0E))
        return failf(d, ODL_ERR_UNSUPPORTED,
                     "%s: IDX element type 0x%02x is not supported (expected 0x%08x for %s)", path,
                     (unsigned)b[2], (unsigned)expect, kind);
    if (b[0] != 0 || b[1] != 0 || b[2] != 0x08 || !ok_dims) {
        const char *hint = "";
        if (!labels && h->magic == IDX_MAGIC_LABELS)
            hint = "; this looks like a labels file";
        else if (labels && (h->magic == IDX_MAGIC_IMAGES || h->magic == 0x00000802u))
            hint = "; this looks like an images file";
        return failf(d, ODL_ERR_FORMAT, "%s: bad magic 0x%08x (expected 0x%08x for %s%s)", path,
                     (unsigned)h->magic, (unsigned)expect, kind, hint);
    }
    h->ndims = nd;
    h->bytes = 4 + 4 * (size_t)nd;
    st = gz_read_upto(gz, path, b + 4, 4 * (size_t)nd, &n, &eof, d);
    if (st != ODL_OK)
        return st;
    if (n < 4 * (size_t)nd)
        return failf(d, ODL_ERR_TRUNCATED,
                     "%s: truncated: expected %zu bytes of IDX header (%d dims), got %zu%s", path,
                     h->bytes, nd, 4 + n, gz_note(gz));
    for (int i = 0; i < nd; i++)
        h->dims[i] = be32(b + 4 + 4 * i);
    return ODL_OK;
}

static odl_status idx_check_images(const char *path, const idx_header *h, int32_t *n,
                                   int32_t *hh, int32_t *ww, size_t *data_bytes, odl_diag *d)
{
    uint32_t dn = h->dims[0];
    uint32_t dh = h->ndims == 3 ? h->dims[1] : 1;
    uint32_t dw = h->ndims == 3 ? h->dims[2] : h->dims[1];
    if (dn == 0)
        return failf(d, ODL_ERR_FORMAT, "%s: the header declares 0 images", path);
    if (dn > INT32_MAX)
        return failf(d, ODL_ERR_FORMAT, "%s: image count %u in the header is too large (max %d)",
                     path, (unsigned)dn, INT32_MAX);
    if (dh == 0 || dw == 0)
        return failf(d, ODL_ERR_FORMAT, "%s: image size %ux%u in the header has a zero dimension",
                     path, (unsigned)dh, (unsigned)dw);
    uint64_t sample = (uint64_t)dh * (uint64_t)dw; /* < 2^64: no overflow */
    if (sample > INT32_MAX)
        return failf(d, ODL_ERR_FORMAT, "%s: image size %ux%u in the header is too large", path,
                     (unsigned)dh, (unsigned)dw);
    if (sample > (SIZE_MAX / sizeof(float)) / dn)
        return failf(d, ODL_ERR_FORMAT,
                     "%s: %u images of %ux%u in the header overflow the address space", path,
                     (unsigned)dn, (unsigned)dh, (unsigned)dw);
    *n = (int32_t)dn;
    *hh = (int32_t)dh;
    *ww = (int32_t)dw;
    *data_bytes = (size_t)dn * (size_t)sample;
    return ODL_OK;
}

/* Reads an IDX pair keeping only samples whose label is in `classes` (NULL:
 * all), at most `limit` of them (0: all). Labels are read first; the image
 * body then streams through a buffer of whole images, so memory is what is
 * kept plus ~64 KB, not the whole file as floats. Every size check of the
 * plain read still applies (truncation, trailing data, the gzip trailer). */
/* The size of a plain file (0 when it cannot be told). */
static uint64_t file_bytes(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode) ? (uint64_t)sb.st_size : 0;
}

static odl_status over_limit(odl_diag *d, const char *path, const char *what, uint64_t bytes, size_t max_bytes)
{
    return failf(d, ODL_ERR_NOMEM, "%s: %s need %llu bytes, over the memory limit of %zu bytes", path, what,
                 (unsigned long long)bytes, max_bytes);
}

static odl_status idx_read_sel(const char *images_path, const char *labels_path, const odl_class_set *classes,
                               int32_t limit, size_t max_bytes, odl_dataset *out, odl_diag *d)
{
    if (!out)
        return failf(d, ODL_ERR_ARG, "odl_idx_read: out is NULL");
    memset(out, 0, sizeof *out);
    if (!images_path || !labels_path)
        return failf(d, ODL_ERR_ARG, "odl_idx_read: NULL path");

    zsrc *gi = NULL, *gl = NULL;
    unsigned char *lab = NULL, *chunk = NULL;
    float *x = NULL;
    int32_t *y = NULL;
    uint8_t *keep = NULL;
    odl_status st;
    idx_header hi, hl;
    int32_t n = 0, h = 0, w = 0;
    size_t pix_bytes = 0;

    if ((st = gz_open(images_path, &gi, d)) != ODL_OK)
        goto done;
    if ((st = idx_read_header(gi, images_path, 0, &hi, d)) != ODL_OK)
        goto done;
    if ((st = idx_check_images(images_path, &hi, &n, &h, &w, &pix_bytes, d)) != ODL_OK)
        goto done;
    {
        char what[96];
        snprintf(what, sizeof what, "%d images of %dx%d", (int)n, (int)h, (int)w);
        /* what the header declares, against the bytes present (a plain
         * file) and the memory limit (which also bounds decompression)
         * before anything is allocated */
        const uint64_t have = file_bytes(images_path);
        if (gz_direct(gi) && have && have < (uint64_t)hi.bytes + pix_bytes) {
            st = failf(d, ODL_ERR_TRUNCATED, "%s: truncated: expected %zu bytes (%zu-byte header + %s), got %llu",
                       images_path, hi.bytes + pix_bytes, hi.bytes, what, (unsigned long long)have);
            goto done;
        }
        if (pix_bytes > max_bytes) {
            st = over_limit(d, images_path, what, pix_bytes, max_bytes);
            goto done;
        }
    }
    if ((st = gz_open(labels_path, &gl, d)) != ODL_OK)
        goto done;
    if ((st = idx_read_header(gl, labels_path, 1, &hl, d)) != ODL_OK)
        goto done;
    if (hl.dims[0] != (uint32_t)n) {
        st = failf(d, ODL_ERR_FORMAT, "%s: %u labels, but %s has %d images", labels_path,
                   (unsigned)hl.dims[0], images_path, (int)n);
        goto done;
    }
    {
        char what[96];
        snprintf(what, sizeof what, "%d labels", (int)n);
        if ((st = gz_read_body(gl, labels_path, hl.bytes, (size_t)n, what, &lab, d)) != ODL_OK)
            goto done;
    }
    /* which samples are kept */
    const size_t img = (size_t)h * (size_t)w;
    int32_t maxl = 0, kept = 0;
    keep = calloc((size_t)(n ? n : 1), 1);
    if (!keep) {
        st = failf(d, ODL_ERR_NOMEM, "%s: out of memory", labels_path);
        goto done;
    }
    for (int32_t i = 0; i < n; i++) {
        if (lab[i] > maxl)
            maxl = lab[i];
        if ((!classes || classes->any || classes->member[lab[i]]) && (limit <= 0 || kept < limit)) {
            keep[i] = 1;
            kept++;
        }
    }
    if ((uint64_t)kept * img * sizeof(float) > max_bytes) {
        char what[96];
        snprintf(what, sizeof what, "%d images of %dx%d as floats", (int)kept, (int)h, (int)w);
        st = over_limit(d, images_path, what, (uint64_t)kept * img * sizeof(float), max_bytes);
        goto done;
    }
    /* x grows with the images that arrive, never with what the header claims */
    size_t xcap = ((size_t)1 << 20) / (img * sizeof(float));
    if (xcap < 1)
        xcap = 1;
    if (xcap > (size_t)(kept ? kept : 1))
        xcap = (size_t)(kept ? kept : 1);
    x = malloc(sizeof(float) * img * xcap);
    y = malloc(sizeof(int32_t) * (size_t)(kept ? kept : 1));
    size_t per = img ? ((size_t)1 << 16) / img : 1; /* ~64 KB of whole images per read */
    if (per < 1)
        per = 1;
    chunk = malloc(per * img + 1);
    if (!x || !y || !chunk) {
        st = failf(d, ODL_ERR_NOMEM, "%s: out of memory (%d images of %dx%d)", images_path, (int)kept, (int)h,
                   (int)w);
        goto done;
    }
    {
        size_t total = 0;
        int32_t next = 0, j = 0;
        int eof = 0;
        char what[96];
        snprintf(what, sizeof what, "%d images of %dx%d", (int)n, (int)h, (int)w);
        for (;;) {
            const size_t remaining = pix_bytes - total;
            /* the last read asks for one byte more: zlib reports a missing
             * gzip trailer (and trailing data shows) only on such a read */
            const int last = remaining <= per * img;
            const size_t want = last ? remaining + 1 : per * img;
            size_t got = 0;
            st = gz_read_upto(gi, images_path, chunk, want, &got, &eof, d);
            if (st != ODL_OK)
                goto done;
            const size_t data = got > remaining ? remaining : got;
            for (size_t k = 0; k + img <= data; k += img, next++)
                if (keep[next]) {
                    if ((size_t)j == xcap) {
                        size_t nc = xcap * 2 < (size_t)kept ? xcap * 2 : (size_t)kept;
                        float *nx = realloc(x, sizeof(float) * img * nc);
                        if (!nx) {
                            st = failf(d, ODL_ERR_NOMEM, "%s: out of memory (%zu images of %dx%d)", images_path, nc,
                                       (int)h, (int)w);
                            goto done;
                        }
                        x = nx;
                        xcap = nc;
                    }
                    float *dst = x + (size_t)j * img;
                    for (size_t q = 0; q < img; q++)
                        dst[q] = (float)chunk[k + q] / 255.0f;
                    y[j++] = lab[next];
                }
            total += data;
            if (got > remaining) {
                st = failf(d, ODL_ERR_FORMAT,
                           "%s: unexpected data after the %zu bytes the header declares (%zu-byte header + %s)",
                           images_path, hi.bytes + pix_bytes, hi.bytes, what);
                goto done;
            }
            if (last || got < want)
                break;
        }
        if (total < pix_bytes) {
            st = failf(d, ODL_ERR_TRUNCATED, "%s: truncated: expected %zu bytes (%zu-byte header + %s), got %zu%s",
                       images_path, hi.bytes + pix_bytes, hi.bytes, what, hi.bytes + total, gz_note(gi));
            goto done;
        }
        if (eof) {
            st = failf(d, ODL_ERR_TRUNCATED,
                       "%s: truncated: the gzip stream ends before its trailer (after all %zu bytes of data)",
                       images_path, hi.bytes + pix_bytes);
            goto done;
        }
        out->n = j;
    }
    out->c = 1;
    out->h = h;
    out->w = w;
    out->n_classes = maxl + 1;
    out->x = x;
    out->y = y;
    x = NULL;
    y = NULL;
    st = ODL_OK;

done:
    free(x);
    free(y);
    free(keep);
    free(chunk);
    free(lab);
    if (gi)
        gz_close(gi);
    if (gl)
        gz_close(gl);
    return st;
}

odl_status odl_idx_read(const char *images_path, const char *labels_path, odl_dataset *out, odl_diag *d)
{
    return idx_read_sel(images_path, labels_path, NULL, 0, ODL_DATA_MAX_BYTES_DEFAULT, out, d);
}

/* ------------------------------------------------------------------ */
/* CSV                                                                 */

static int is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static void trim(const char **s, const char **e)
{
    while (*s < *e && is_blank(**s))
        (*s)++;
    while (*e > *s && is_blank((*e)[-1]))
        (*e)--;
}

/* A whole field [s, e) as a float; 1 on success. */
static int parse_float(const char *s, const char *e, float *v)
{
    if (s == e)
        return 0;
    char *end = NULL;
    errno = 0;
    *v = strtof(s, &end);
    return end == e;
}

static int parse_double(const char *s, const char *e, double *v)
{
    if (s == e)
        return 0;
    char *end = NULL;
    *v = strtod(s, &end);
    return end == e;
}

static int field_len(const char *s, const char *e)
{
    ptrdiff_t n = e - s;
    return n > 40 ? 40 : (int)n;
}

/* Case-insensitive equality of a field [s, e) and a NUL-terminated name. */
static int field_is(const char *s, const char *e, const char *name)
{
    size_t n = strlen(name);
    if ((size_t)(e - s) != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (tolower((unsigned char)s[i]) != tolower((unsigned char)name[i]))
            return 0;
    return 1;
}

/* The 1-based column of the label from a header line [ls, le): the column
 * named `want` (or "label" when want is NULL); 0 when there is none. */
static long header_label_field(const char *ls, const char *le, const char *want)
{
    long field = 0;
    for (const char *fs = ls;;) {
        const char *fe = memchr(fs, ',', (size_t)(le - fs));
        const char *end = fe ? fe : le;
        const char *a = fs, *b = end;
        trim(&a, &b);
        if (b - a >= 2 && ((*a == '"' && b[-1] == '"') || (*a == '\'' && b[-1] == '\''))) {
            a++;
            b--;
        }
        field++;
        if (field_is(a, b, want ? want : "label"))
            return field;
        if (!fe)
            return 0;
        fs = fe + 1;
    }
}

static odl_status csv_read(const char *path, size_t max_bytes, const char *label_col, odl_dataset *out,
                           odl_diag *d);

odl_status odl_csv_read(const char *path, odl_dataset *out, odl_diag *d)
{
    return csv_read(path, ODL_DATA_MAX_BYTES_DEFAULT, NULL, out, d);
}

/* label_col: NULL (a header's "label" column, else the first), a column
 * number counted from 1, or a header name. */
static odl_status csv_read(const char *path, size_t max_bytes, const char *label_col, odl_dataset *out,
                           odl_diag *d)
{
    if (!out)
        return failf(d, ODL_ERR_ARG, "odl_csv_read: out is NULL");
    memset(out, 0, sizeof *out);
    if (!path)
        return failf(d, ODL_ERR_ARG, "odl_csv_read: NULL path");

    zsrc *gz = NULL;
    char *text = NULL;
    float *x = NULL, *row = NULL;
    int32_t *y = NULL;
    size_t len = 0, cap = 0, rows = 0, rows_cap = 0, row_cap = 0, nf = 0;
    long nf_line = 0, line = 0, blank_line = 0;
    int32_t maxl = 0;
    int seen_first = 0, header = 0;
    long label_field = 1; /* 1-based */
    const char *label_name = NULL;
    if (label_col && *label_col) {
        char *end = NULL;
        errno = 0;
        long v = strtol(label_col, &end, 10);
        if (end != label_col && *end == '\0') {
            if (errno || v < 1 || v > 1000000)
                return failf(d, ODL_ERR_ARG, "--label-col: column %s is outside 1..1000000 (columns count from 1)",
                             label_col);
            label_field = v;
        } else {
            label_name = label_col;
        }
    }
    odl_status st = gz_open(path, &gz, d);
    if (st != ODL_OK)
        return st;

    /* the whole file, NUL-terminated */
    cap = max_bytes < ((size_t)1 << 16) ? max_bytes + 1 : ((size_t)1 << 16);
    text = malloc(cap);
    if (!text) {
        st = failf(d, ODL_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    for (;;) {
        size_t n = 0;
        int eof = 0;
        st = gz_read_upto(gz, path, (unsigned char *)text + len, cap - 1 - len, &n, &eof, d);
        if (st != ODL_OK)
            goto done;
        len += n;
        if (eof) {
            st = failf(d, ODL_ERR_TRUNCATED, "%s: truncated: the gzip stream ends early", path);
            goto done;
        }
        if (len < cap - 1)
            break;
        /* the text (decompressed, for .csv.gz) stops at the memory limit */
        if (cap > SIZE_MAX / 2 || len >= max_bytes) {
            st = failf(d, ODL_ERR_NOMEM, "%s: the text%s reaches the memory limit of %zu bytes", path, gz_note(gz),
                       max_bytes);
            goto done;
        }
        /* room for max_bytes of text and its NUL at most */
        const size_t ncap = cap * 2 < max_bytes + 1 ? cap * 2 : max_bytes + 1;
        char *nt = realloc(text, ncap);
        if (!nt) {
            st = failf(d, ODL_ERR_NOMEM, "%s: out of memory (%zu bytes)", path, ncap);
            goto done;
        }
        text = nt;
        cap = ncap;
    }
    text[len] = '\0';
    if (len == 0) {
        st = failf(d, ODL_ERR_FORMAT, "%s: empty file", path);
        goto done;
    }

    /* a UTF-8 byte order mark (spreadsheet exports) is not part of the first field */
    size_t start = len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0;
    for (size_t pos = start; pos < len;) {
        const char *ls = text + pos;
        const char *nl = memchr(ls, '\n', len - pos);
        const char *le = nl ? nl : text + len;
        pos = (size_t)(le - text) + 1;
        line++;
        if (le > ls && le[-1] == '\r')
            le--;
        const char *ts = ls, *te = le;
        trim(&ts, &te);
        if (ts == te) {
            if (!blank_line)
                blank_line = line;
            continue;
        }
        if (blank_line) {
            st = failf(d, ODL_ERR_FORMAT, "%s:%ld: blank line inside the data", path, blank_line);
            goto done;
        }

        /* a first line whose first field is not a number is a header: it may name the label column */
        if (!seen_first) {
            seen_first = 1;
            const char *f1 = ls, *f1e = memchr(ls, ',', (size_t)(le - ls));
            double dummy;
            const char *a = f1, *b = f1e ? f1e : le;
            trim(&a, &b);
            if (!parse_double(a, b, &dummy)) {
                header = 1;
                long named = header_label_field(ls, le, label_name);
                if (label_name && !named) {
                    st = failf(d, ODL_ERR_FORMAT, "%s:%ld: no column named '%.40s' in the header", path, line,
                               label_name);
                    goto done;
                }
                if (named && (!label_col || label_name)) /* a number given wins over the header */
                    label_field = named;
                continue;
            }
            if (label_name) {
                st = failf(d, ODL_ERR_FORMAT, "%s: --label-col %.40s names a column, but the file has no header line "
                                              "(give the column's number instead)", path, label_name);
                goto done;
            }
        }

        /* split into fields: the label's (the first unless a header or --label-col said otherwise), features */
        const char *fs = ls;
        size_t nfeat = 0;
        int field = 0, is_header = 0, have_label = 0;
        int32_t label = 0;
        for (;;) {
            const char *fe = memchr(fs, ',', (size_t)(le - fs));
            int last = fe == NULL;
            if (last)
                fe = le;
            const char *s = fs, *e = fe;
            trim(&s, &e);
            field++;
            if (field == label_field) {
                double lv = 0;
                int ok = parse_double(s, e, &lv);
                have_label = 1;
                if (s == e) {
                    st = failf(d, ODL_ERR_FORMAT, "%s:%ld: empty label field", path, line);
                    goto done;
                }
                if (!ok || !isfinite(lv)) {
                    st = failf(d, ODL_ERR_FORMAT, "%s:%ld: label '%.*s' is not a number", path,
                               line, field_len(s, e), s);
                    goto done;
                }
                if (!(lv >= 0)) {
                    st = failf(d, ODL_ERR_FORMAT,
                               "%s:%ld: label '%.*s' is negative (labels are 0, 1, 2, ...)", path,
                               line, field_len(s, e), s);
                    goto done;
                }
                if (lv != floor(lv)) {
                    st = failf(d, ODL_ERR_FORMAT, "%s:%ld: label '%.*s' is not an integer", path,
                               line, field_len(s, e), s);
                    goto done;
                }
                if (lv >= ODL_MAX_CLASSES) {
                    st = failf(d, ODL_ERR_FORMAT, "%s:%ld: label '%.*s' is too large (max %d)",
                               path, line, field_len(s, e), s, ODL_MAX_CLASSES - 1);
                    goto done;
                }
                label = (int32_t)lv;
            } else {
                float v = 0;
                if (s == e) {
                    st = failf(d, ODL_ERR_FORMAT, "%s:%ld: field %d is empty", path, line, field);
                    goto done;
                }
                if (!parse_float(s, e, &v)) {
                    st = failf(d, ODL_ERR_FORMAT, "%s:%ld: field %d ('%.*s') is not a number",
                               path, line, field, field_len(s, e), s);
                    goto done;
                }
                if (!isfinite(v)) {
                    st = failf(d, ODL_ERR_NUMERIC,
                               "%s:%ld: field %d ('%.*s') is not a finite float", path, line,
                               field, field_len(s, e), s);
                    goto done;
                }
                if (nfeat == row_cap) {
                    size_t nc = row_cap ? row_cap * 2 : 64;
                    float *nr = realloc(row, nc * sizeof *nr);
                    if (!nr) {
                        st = failf(d, ODL_ERR_NOMEM, "%s: out of memory", path);
                        goto done;
                    }
                    row = nr;
                    row_cap = nc;
                }
                row[nfeat++] = v;
            }
            if (last)
                break;
            fs = fe + 1;
        }
        if (is_header) {
            header = 1;
            continue;
        }
        if (!have_label) {
            st = failf(d, ODL_ERR_FORMAT, "%s:%ld: %d fields, so no label column %ld", path, line, field, label_field);
            goto done;
        }
        if (nfeat == 0) {
            st = failf(d, ODL_ERR_FORMAT, "%s:%ld: a label but no features", path, line);
            goto done;
        }
        if (rows == 0) {
            if (nfeat > (size_t)INT32_MAX) {
                st = failf(d, ODL_ERR_FORMAT, "%s:%ld: too many features", path, line);
                goto done;
            }
            nf = nfeat;
            nf_line = line;
        } else if (nfeat != nf) {
            st = failf(d, ODL_ERR_FORMAT, "%s:%ld: %zu features, but line %ld has %zu", path, line,
                       nfeat, nf_line, nf);
            goto done;
        }
        if (rows >= (size_t)INT32_MAX) {
            st = failf(d, ODL_ERR_FORMAT, "%s:%ld: too many rows", path, line);
            goto done;
        }
        if (rows == rows_cap) {
            size_t nc = rows_cap ? rows_cap * 2 : 256;
            const size_t fit = max_bytes / sizeof(float) / nf; /* rows the limit holds */
            if (nc > fit)
                nc = fit;
            if (nc <= rows) {
                char what[64];
                snprintf(what, sizeof what, "%zu rows of %zu features", rows + 1, nf);
                st = over_limit(d, path, what, (uint64_t)(rows + 1) * nf * sizeof(float), max_bytes);
                goto done;
            }
            float *nx = realloc(x, nc * nf * sizeof *nx);
            if (!nx) {
                st = failf(d, ODL_ERR_NOMEM, "%s: out of memory", path);
                goto done;
            }
            x = nx;
            int32_t *ny = realloc(y, nc * sizeof *ny);
            if (!ny) {
                st = failf(d, ODL_ERR_NOMEM, "%s: out of memory", path);
                goto done;
            }
            y = ny;
            rows_cap = nc;
        }
        memcpy(x + rows * nf, row, nf * sizeof *row);
        y[rows] = label;
        if (label > maxl)
            maxl = label;
        rows++;
    }
    if (rows == 0) {
        st = failf(d, ODL_ERR_FORMAT, header ? "%s: no data rows (only a header line)"
                                             : "%s: no data rows (empty file)", path);
        goto done;
    }
    out->n = (int32_t)rows;
    out->c = 1;
    out->h = 1;
    out->w = (int32_t)nf;
    out->n_classes = maxl + 1;
    out->x = x;
    out->y = y;
    x = NULL;
    y = NULL;
    st = ODL_OK;

done:
    free(text);
    free(row);
    free(x);
    free(y);
    if (gz)
        gz_close(gz);
    return st;
}

/* ------------------------------------------------------------------ */
/* class sets                                                          */

static const char *skip_sp(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

/* Parses a decimal number at *p (no sign); -1: no digits, -2: too large. */
static long parse_class(const char **p)
{
    const char *s = *p;
    long v = 0;
    int digits = 0;
    while (*s >= '0' && *s <= '9') {
        if (v <= ODL_MAX_CLASSES)
            v = v * 10 + (*s - '0');
        digits++;
        s++;
    }
    *p = s;
    if (!digits)
        return -1;
    return v >= ODL_MAX_CLASSES ? -2 : v;
}

odl_status odl_class_set_parse(const char *spec, odl_class_set *s, odl_diag *d)
{
    if (!s)
        return failf(d, ODL_ERR_ARG, "odl_class_set_parse: s is NULL");
    memset(s, 0, sizeof *s);
    if (!spec)
        return failf(d, ODL_ERR_ARG, "class set: NULL");
    const char *p = skip_sp(spec);
    if (!*p)
        return failf(d, ODL_ERR_ARG, "class set \"%s\": empty (expected e.g. 0-7 or 1,3,5)", spec);
    for (;;) {
        p = skip_sp(p);
        const char *item = p;
        long a = parse_class(&p);
        if (a == -1) {
            memset(s, 0, sizeof *s);
            if (*p == ',' || !*p)
                return failf(d, ODL_ERR_ARG, "class set \"%s\": empty item at position %d",
                             spec, (int)(item - spec) + 1);
            return failf(d, ODL_ERR_ARG,
                         "class set \"%s\": unexpected '%c' at position %d (expected a class number)",
                         spec, *p, (int)(p - spec) + 1);
        }
        if (a == -2) {
            memset(s, 0, sizeof *s);
            return failf(d, ODL_ERR_ARG, "class set \"%s\": class %.*s out of range (0..%d)", spec,
                         (int)(p - item), item, ODL_MAX_CLASSES - 1);
        }
        long b = a;
        p = skip_sp(p);
        if (*p == '-') {
            p = skip_sp(p + 1);
            const char *bs = p;
            b = parse_class(&p);
            if (b == -1) {
                memset(s, 0, sizeof *s);
                return failf(d, ODL_ERR_ARG,
                             "class set \"%s\": range at position %d has no end (expected e.g. 0-7)",
                             spec, (int)(item - spec) + 1);
            }
            if (b == -2) {
                memset(s, 0, sizeof *s);
                return failf(d, ODL_ERR_ARG, "class set \"%s\": class %.*s out of range (0..%d)",
                             spec, (int)(p - bs), bs, ODL_MAX_CLASSES - 1);
            }
            if (b < a) {
                memset(s, 0, sizeof *s);
                return failf(d, ODL_ERR_ARG, "class set \"%s\": reversed range %ld-%ld", spec, a, b);
            }
            p = skip_sp(p);
        }
        for (long c = a; c <= b; c++)
            s->member[c] = 1;
        if (!*p)
            break;
        if (*p != ',') {
            memset(s, 0, sizeof *s);
            return failf(d, ODL_ERR_ARG,
                         "class set \"%s\": unexpected '%c' at position %d (expected ',' or '-')",
                         spec, *p, (int)(p - spec) + 1);
        }
        p++;
    }
    s->any = 0;
    return ODL_OK;
}

/* ------------------------------------------------------------------ */
/* dataset operations                                                  */

odl_data_opts odl_data_opts_defaults(void)
{
    odl_data_opts o;
    memset(&o, 0, sizeof o);
    o.split = ODL_SPLIT_AUTO;
    o.default_split = ODL_SPLIT_TRAIN;
    o.classes = NULL;
    return o;
}

void odl_dataset_filter(odl_dataset *ds, const odl_class_set *s)
{
    if (!ds || !s || s->any || ds->n <= 0)
        return;
    size_t sample = (size_t)ds->c * (size_t)ds->h * (size_t)ds->w;
    int32_t k = 0;
    for (int32_t i = 0; i < ds->n; i++) {
        int32_t l = ds->y[i];
        if (l < 0 || l >= ODL_MAX_CLASSES || !s->member[l])
            continue;
        if (k != i) {
            ds->y[k] = l;
            memmove(ds->x + (size_t)k * sample, ds->x + (size_t)i * sample,
                    sample * sizeof(float));
        }
        k++;
    }
    ds->n = k;
}

odl_status odl_dataset_reshape(odl_dataset *ds, int32_t c, int32_t h, int32_t w, odl_diag *d)
{
    if (!ds)
        return failf(d, ODL_ERR_ARG, "reshape: dataset is NULL");
    if (c <= 0 || h <= 0 || w <= 0)
        return failf(d, ODL_ERR_SHAPE, "shape %dx%dx%d: every dimension must be positive", (int)c,
                     (int)h, (int)w);
    int64_t want = (int64_t)c * h * w; /* < 2^63 */
    int64_t have = (int64_t)ds->c * ds->h * ds->w;
    if (want != have)
        return failf(d, ODL_ERR_SHAPE,
                     "shape %dx%dx%d has %lld values per sample, but the data has %lld (%dx%dx%d)",
                     (int)c, (int)h, (int)w, (long long)want, (long long)have, (int)ds->c,
                     (int)ds->h, (int)ds->w);
    ds->c = c;
    ds->h = h;
    ds->w = w;
    return ODL_OK;
}

void odl_dataset_free(odl_dataset *ds)
{
    if (!ds)
        return;
    free(ds->x);
    free(ds->y);
    memset(ds, 0, sizeof *ds);
}

/* ------------------------------------------------------------------ */
/* the loader                                                          */

/* Gives back the memory of samples dropped by filtering or a limit. */
static void shrink(odl_dataset *ds)
{
    size_t n = ds->n > 0 ? (size_t)ds->n : 1;
    size_t sample = (size_t)ds->c * (size_t)ds->h * (size_t)ds->w;
    float *x = realloc(ds->x, n * sample * sizeof(float));
    if (x)
        ds->x = x;
    int32_t *y = realloc(ds->y, n * sizeof(int32_t));
    if (y)
        ds->y = y;
}

static int ends_with_ci(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    if (m > n)
        return 0;
    s += n - m;
    for (size_t i = 0; i < m; i++) {
        char a = s[i], b = suffix[i];
        if (a >= 'A' && a <= 'Z')
            a = (char)(a - 'A' + 'a');
        if (a != b)
            return 0;
    }
    return 1;
}

static int file_exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* dir/name or dir/name.gz, whichever exists (plain first). */
static int find_in_dir(const char *dir, const char *name, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= cap)
        return 0;
    if (file_exists(out))
        return 1;
    n = snprintf(out, cap, "%s/%s.gz", dir, name);
    if (n < 0 || (size_t)n >= cap)
        return 0;
    return file_exists(out);
}

static odl_status load_dir(const char *dir, odl_split split, const odl_class_set *cls, int32_t limit,
                           size_t max_bytes, odl_dataset *ds, odl_diag *d)
{
    const char *pre = split == ODL_SPLIT_TEST ? "t10k" : "train";
    char img[PATH_CAP], lab[PATH_CAP], name[64];
    snprintf(name, sizeof name, "%s-images-idx3-ubyte", pre);
    if (!find_in_dir(dir, name, img, sizeof img))
        return failf(d, ODL_ERR_NOT_FOUND, "%s: no %s or %s.gz in this directory", dir, name, name);
    snprintf(name, sizeof name, "%s-labels-idx1-ubyte", pre);
    if (!find_in_dir(dir, name, lab, sizeof lab))
        return failf(d, ODL_ERR_NOT_FOUND, "%s: no %s or %s.gz in this directory", dir, name, name);
    return idx_read_sel(img, lab, cls, limit, max_bytes, ds, d);
}

static odl_status load_idx_file(const char *path, const odl_class_set *cls, int32_t limit, size_t max_bytes,
                                odl_dataset *ds, odl_diag *d)
{
    char lab[PATH_CAP];
    size_t n = strlen(path);
    if (n + 4 >= sizeof lab)
        return failf(d, ODL_ERR_ARG, "%s: path too long", path);
    memcpy(lab, path, n + 1);
    char *base = strrchr(lab, '/');
    base = base ? base + 1 : lab;
    char *im = strstr(base, "images");
    if (!im) {
        if (strstr(base, "labels"))
            return failf(d, ODL_ERR_ARG,
                         "%s: this is a labels file; give the images file (e.g. train-images-idx3-ubyte.gz), the directory, or a .csv file",
                         path);
        return failf(d, ODL_ERR_ARG,
                     "%s: not a .csv file, and no 'images' in its name to find the labels by (expected e.g. train-images-idx3-ubyte.gz)",
                     path);
    }
    memcpy(im, "labels", 6);
    char *i3 = strstr(base, "idx3");
    if (i3)
        memcpy(i3, "idx1", 4);
    if (!file_exists(lab)) {
        /* the other compression: x.gz <-> x */
        char alt[PATH_CAP];
        size_t ln = strlen(lab);
        if (ends_with_ci(lab, ".gz")) {
            memcpy(alt, lab, ln - 3);
            alt[ln - 3] = '\0';
        } else {
            memcpy(alt, lab, ln);
            memcpy(alt + ln, ".gz", 4);
        }
        if (!file_exists(alt))
            return failf(d, ODL_ERR_NOT_FOUND, "%s: its labels file %s was not found", path, lab);
        memcpy(lab, alt, strlen(alt) + 1);
    }
    return idx_read_sel(path, lab, cls, limit, max_bytes, ds, d);
}

odl_status odl_data_load(const char *path, const odl_data_opts *opts_in, odl_dataset *out,
                         odl_diag *d)
{
    if (!out)
        return failf(d, ODL_ERR_ARG, "odl_data_load: out is NULL");
    memset(out, 0, sizeof *out);
    if (!path || !*path)
        return failf(d, ODL_ERR_ARG, "no dataset path given");
    odl_data_opts o = opts_in ? *opts_in : odl_data_opts_defaults();
    if (o.limit < 0)
        return failf(d, ODL_ERR_ARG, "%s: limit %d is negative", path, (int)o.limit);
    int any_shape = o.c || o.h || o.w;
    if (any_shape && (o.c <= 0 || o.h <= 0 || o.w <= 0))
        return failf(d, ODL_ERR_ARG, "%s: shape %dx%dx%d: every dimension must be positive", path,
                     (int)o.c, (int)o.h, (int)o.w);
    const size_t max_bytes = o.max_bytes ? o.max_bytes : ODL_DATA_MAX_BYTES_DEFAULT;
    odl_split split = o.split == ODL_SPLIT_AUTO ? o.default_split : o.split;
    if (split == ODL_SPLIT_AUTO)
        split = ODL_SPLIT_TRAIN;
    if (split != ODL_SPLIT_TRAIN && split != ODL_SPLIT_TEST)
        return failf(d, ODL_ERR_ARG, "%s: unknown split %d", path, (int)split);

    struct stat sb;
    if (stat(path, &sb) != 0)
        return errno_fail(d, path, errno);

    odl_dataset ds;
    memset(&ds, 0, sizeof ds);
    odl_status st;
    /* IDX readers filter while reading (memory: what is kept, not the file) */
    if (S_ISDIR(sb.st_mode))
        st = load_dir(path, split, o.classes, o.limit, max_bytes, &ds, d);
    else if (ends_with_ci(path, ".csv") || ends_with_ci(path, ".csv.gz"))
        st = csv_read(path, max_bytes, o.label_col, &ds, d);
    else
        st = load_idx_file(path, o.classes, o.limit, max_bytes, &ds, d);
    if (st != ODL_OK)
        return st;

    if (any_shape) {
        st = odl_dataset_reshape(&ds, o.c, o.h, o.w, d);
        if (st != ODL_OK) {
            odl_diag_prefix(d, path);
            odl_dataset_free(&ds);
            return st;
        }
    }
    if (o.classes && !o.classes->any) {
        odl_dataset_filter(&ds, o.classes);
        if (ds.n == 0) {
            odl_dataset_free(&ds);
            return failf(d, ODL_ERR_ARG, "%s: no samples have a label in the class set", path);
        }
    }
    if (o.limit > 0 && ds.n > o.limit)
        ds.n = o.limit;
    shrink(&ds);
    *out = ds;
    return ODL_OK;
}
