/* libFuzzer target: the version store opened over arbitrary medium contents:
 * it opens (or refuses) and only ever hands out versions whose CRCs check. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "odl/odl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    enum { CAP = 8192 };
    static uint8_t mem[CAP];
    static uint8_t arena_buf[1 << 16];
    static uint8_t payload[CAP];
    memset(mem, 0xFF, sizeof mem);
    memcpy(mem, data, size < CAP ? size : CAP);
    odl_store_ram ram = {mem, CAP, 0};
    odl_store_flash fl = {odl_store_ram_read, odl_store_ram_write, NULL, NULL, &ram, CAP, 0, 4, 0, 0};
    odl_store_io io;
    odl_diag d;
    if (odl_store_flash_io(&fl, &io, &d) != ODL_OK)
        return 0;
    odl_arena a;
    odl_arena_init(&a, arena_buf, sizeof arena_buf);
    odl_store *s;
    if (odl_store_open(&s, &io, &a, &d) != ODL_OK)
        return 0;
    for (int32_t k = 0; k < odl_store_count(s); k++) {
        odl_store_version v;
        odl_store_meta meta;
        size_t len;
        if (odl_store_get(s, k, &v) == ODL_OK)
            (void)odl_store_read(s, v.meta.id, payload, sizeof payload, &len, &meta, &d);
    }
    /* a commit on top of whatever was there must work or fail cleanly */
    odl_store_meta m;
    odl_store_meta_init(&m, "fuzz", "a commit on a fuzzed medium", 1);
    uint32_t id;
    (void)odl_store_commit(s, "payload", 7, &m, &id, &d);
    return 0;
}
