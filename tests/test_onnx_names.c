/* The NAME chunk (tensor names kept by odl import): round trip, and hostile
 * payloads (counts and lengths beyond the chunk) refused without reading
 * past it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "odl/onnx.h"

typedef struct membuf {
    uint8_t *p;
    size_t n, cap;
} membuf;

static odl_status mem_write(void *ctx, const void *data, size_t n)
{
    membuf *m = ctx;
    if (m->n + n > m->cap)
        return ODL_ERR_IO;
    memcpy(m->p + m->n, data, n);
    m->n += n;
    return ODL_OK;
}

/* A file holding only a NAME chunk with this payload. */
static size_t file_with(uint8_t *out, size_t cap, const void *payload, size_t len)
{
    membuf m = {out, 0, cap};
    odl_writer w = {mem_write, &m, 0};
    odl_diag d;
    if (odl_file_write_header(&w, &d) != ODL_OK ||
        odl_file_write_chunk(&w, ODL_CHUNK_NAMES, payload, len, &d) != ODL_OK ||
        odl_file_write_end(&w, &d) != ODL_OK)
        return 0;
    return m.n;
}

static void t_round_trip(odl_test_ctx *t)
{
    char *names[] = {"input", "/conv1/Conv_output_0", "", "logits"};
    void *payload;
    size_t len;
    odl_diag d;
    CHECK_OK(odl_names_encode(names, 4, &payload, &len, &d));
    static _Alignas(16) uint8_t file[4096];
    size_t n = file_with(file, sizeof file, payload, len);
    free(payload);
    REQUIRE(n > 0);
    char **got;
    int32_t count;
    CHECK_OK(odl_names_read(file, n, &got, &count, &d));
    REQUIRE(count == 4);
    for (int i = 0; i < 4; i++)
        CHECK(!strcmp(got[i], names[i]));
    odl_names_free(got, count);
}

static void t_absent(odl_test_ctx *t)
{
    static _Alignas(16) uint8_t file[256];
    membuf m = {file, 0, sizeof file};
    odl_writer w = {mem_write, &m, 0};
    odl_diag d;
    REQUIRE(odl_file_write_header(&w, &d) == ODL_OK && odl_file_write_end(&w, &d) == ODL_OK);
    char **got;
    int32_t count;
    CHECK(odl_names_read(file, m.n, &got, &count, &d) == ODL_ERR_NOT_FOUND);
    CHECK(got == NULL && count == 0);
}

static void t_hostile(odl_test_ctx *t)
{
    /* count, then records: each payload is wrong in one way */
    static const uint8_t bad[][16] = {
        {0x01, 0, 0, 0},                                     /* one name, no record */
        {0xff, 0xff, 0xff, 0x7f, 1, 0, 0, 0, 'a'},           /* count far beyond the bytes */
        {0x01, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 'a', 'b'},   /* length beyond the chunk */
        {0x02, 0, 0, 0, 0x01, 0, 0, 0, 'a', 0x05, 0, 0, 0}, /* second name cut off */
        {0x01, 0},                                           /* shorter than the count */
    };
    static const size_t lens[] = {4, 9, 10, 13, 2};
    static _Alignas(16) uint8_t file[512];
    for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++) {
        size_t n = file_with(file, sizeof file, bad[k], lens[k]);
        REQUIRE(n > 0);
        char **got = (char **)1;
        int32_t count = -1;
        odl_diag d;
        odl_status s = odl_names_read(file, n, &got, &count, &d);
        if (s != ODL_ERR_FORMAT)
            odl_test_logf(t, "    payload %zu: status %d", k, (int)s);
        CHECK(s == ODL_ERR_FORMAT);
        CHECK(got == NULL && count == 0);
    }
}

static const odl_test_case cases[] = {
    {"names_round_trip", t_round_trip},
    {"names_absent", t_absent},
    {"names_hostile", t_hostile},
};

TEST_MAIN(cases)
