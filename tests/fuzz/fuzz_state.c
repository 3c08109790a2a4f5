/* libFuzzer target: learner-state chunks (RPLY, EWC, NCM, SLDA) read into
 * learners of fixed shapes: an error or a consistent learner, never a crash. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "odl/odl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void *take(odl_arena *a, size_t n)
{
    void *p;
    return odl_arena_alloc(a, n, ODL_MEM_BUFFERS, &p, NULL) == ODL_OK ? p : NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t arena_buf[1 << 20];
    void *buf = aligned_alloc(16, (size + 15) / 16 * 16 + 16);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    odl_arena a;
    odl_arena_init(&a, arena_buf, sizeof arena_buf);
    (void)take;
    odl_replay_cfg rc = {50, 8, 4, ODL_REPLAY_CLASS_BALANCED, ODL_REPLAY_INT8};
    odl_replay *rb = NULL;
    odl_ncm *ncm = NULL;
    odl_slda *slda = NULL;
    odl_diag d;
    (void)odl_replay_init(&rb, &rc, &a, &d);
    (void)odl_ncm_init(&ncm, 8, 4, &a, &d);
    (void)odl_slda_init(&slda, 8, 4, 0.01f, &a, &d);
    uint32_t found = 0;
    if (odl_state_load(buf, size, rb, NULL, ncm, slda, &found, &d) == ODL_OK) {
        /* whatever was restored must still work */
        float z[8] = {0.5f, -1, 2, 0, 1, 1, -0.5f, 3}, out[8];
        int32_t lab, cls;
        odl_rng r;
        odl_rng_seed(&r, 1, 1);
        for (int32_t k = 0; k < odl_replay_count(rb); k++)
            (void)odl_replay_get(rb, k, out, &lab);
        (void)odl_replay_add(rb, z, 1, &r, &d);
        (void)odl_ncm_predict(ncm, z, &cls, NULL);
        (void)odl_slda_predict(slda, z, &cls, NULL);
    }
    free(buf);
    return 0;
}
