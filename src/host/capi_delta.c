/* The flat C API's head deltas (odl/capi.h, "head deltas"): a delta file
 * that `odl fleet collect` accepted, read for an aggregator in another
 * language. The file is checked by odl_delta_parse (framing, CRCs, layouts,
 * lengths, finite values); its signature was checked when it was received. */
#define _POSIX_C_SOURCE 200809L
#include "odl/capi.h"
#include "odl/delta.h"
#include "odl/posix_io.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* The largest delta file read (a head of 2^28 values is already a large model). */
#define DELTA_FILE_MAX ((uint64_t)1 << 30)

struct odl_capi_delta {
    void *file;
    size_t len;
    odl_delta_view view;
};

static void put_err(char *err, size_t cap, const char *fmt, ...)
{
    if (!err || !cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
}

odl_capi_delta *odl_capi_delta_load(const char *path, char *err, size_t errcap)
{
    put_err(err, errcap, "%s", "");
    if (!path) {
        put_err(err, errcap, "odl_capi_delta_load: no path");
        return NULL;
    }
    struct stat st;
    if (stat(path, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size > DELTA_FILE_MAX) {
        put_err(err, errcap, "%s: %lld bytes, more than a delta file may hold (%llu)", path, (long long)st.st_size,
                (unsigned long long)DELTA_FILE_MAX);
        return NULL;
    }
    odl_capi_delta *D = calloc(1, sizeof *D);
    if (!D) {
        put_err(err, errcap, "%s: out of memory", path);
        return NULL;
    }
    odl_diag d;
    odl_diag_clear(&d);
    odl_status s = odl_host_read_file(path, &D->file, &D->len, &d);
    if (s == ODL_OK)
        s = odl_delta_parse(D->file, D->len, &D->view, NULL, &d);
    if (s != ODL_OK) {
        put_err(err, errcap, "%s: %s", path, d.msg[0] ? d.msg : odl_status_str(s));
        odl_capi_delta_free(D);
        return NULL;
    }
    return D;
}

void odl_capi_delta_free(odl_capi_delta *D)
{
    if (!D)
        return;
    odl_host_free(D->file);
    free(D);
}

size_t odl_capi_delta_meta_json(const odl_capi_delta *D, char *buf, size_t cap)
{
    char head[512], hex[2 * ODL_SHA256_BYTES + 1];
    if (!D) {
        if (buf && cap)
            buf[0] = '\0';
        return 0;
    }
    const odl_delta_view *v = &D->view;
    for (int i = 0; i < ODL_SHA256_BYTES; i++)
        snprintf(hex + 2 * i, 3, "%02x", v->base_id[i]);
    int n = snprintf(head, sizeof head,
                     "{\"device\": %u, \"round\": %u, \"seq\": %llu, \"examples\": %u, \"boundary\": %d, "
                     "\"base_id\": \"%s\", \"signed\": %s, \"bytes\": %zu, \"tensors\": [",
                     (unsigned)v->info.device_id, (unsigned)v->info.round, (unsigned long long)v->info.seq,
                     (unsigned)v->info.examples, (int)v->info.boundary, hex, v->signed_ ? "true" : "false", v->bytes);
    size_t need = n > 0 ? (size_t)n : 0;
    size_t used = 0;
    if (buf && cap) {
        used = need < cap - 1 ? need : cap - 1;
        memcpy(buf, head, used);
    }
    for (int32_t i = 0; i <= v->n_tensors; i++) {
        char item[96];
        int32_t node = 0, which = 0;
        size_t count = 0;
        if (i < v->n_tensors) {
            odl_delta_tensor_info(v, i, &node, &which, &count, NULL);
            n = snprintf(item, sizeof item, "%s{\"node\": %d, \"which\": \"%s\", \"count\": %zu}", i ? ", " : "",
                         (int)node, which ? "bias" : "weights", count);
        } else {
            n = snprintf(item, sizeof item, "]}");
        }
        const size_t k = n > 0 ? (size_t)n : 0;
        if (buf && cap && used < cap - 1) {
            const size_t take = k < cap - 1 - used ? k : cap - 1 - used;
            memcpy(buf + used, item, take);
            used += take;
        }
        need += k;
    }
    if (buf && cap)
        buf[used] = '\0';
    return need;
}

int32_t odl_capi_delta_n_tensors(const odl_capi_delta *D)
{
    return D ? D->view.n_tensors : 0;
}

int64_t odl_capi_delta_tensor_count(const odl_capi_delta *D, int32_t i)
{
    size_t count = 0;
    if (!D || odl_delta_tensor_info(&D->view, i, NULL, NULL, &count, NULL) != ODL_OK)
        return -1;
    return (int64_t)count;
}

int odl_capi_delta_tensor_copy(const odl_capi_delta *D, int32_t i, float *out, int64_t n, char *err, size_t errcap)
{
    put_err(err, errcap, "%s", "");
    if (!D || !out || n < 0) {
        put_err(err, errcap, "odl_capi_delta_tensor_copy: delta and output must not be NULL");
        return ODL_ERR_ARG;
    }
    odl_diag d;
    odl_diag_clear(&d);
    odl_status s = odl_delta_tensor_copy(&D->view, i, out, (size_t)n, &d);
    if (s != ODL_OK)
        put_err(err, errcap, "%s", d.msg[0] ? d.msg : odl_status_str(s));
    return (int)s;
}
