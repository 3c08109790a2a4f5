/* libFuzzer target: the .odl model reader. Any bytes: an error or a model,
 * never a crash, an overread or an allocation sized from unchecked input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "odl/odl.h"
#include "odl/quant.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* an aligned copy, as a loader would give it */
    void *buf = aligned_alloc(16, (size + 15) / 16 * 16 + 16);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    odl_model_desc desc;
    odl_diag d;
    int32_t n = 0;
    odl_node_desc *nodes = NULL;
    odl_layer_shape *shapes = NULL;
    /* storage sized by the checked count: the file backs every node with
     * record bytes, so the count is bounded by the input's size */
    if (odl_file_count_nodes(buf, size, &n, &d) == ODL_OK) {
        nodes = calloc((size_t)n, sizeof *nodes);
        shapes = calloc((size_t)n, sizeof *shapes);
    }
    if (nodes && shapes && odl_desc_init(&desc, nodes, n, 1, 1, 1) == ODL_OK &&
        odl_file_read_desc_ws(buf, size, &desc, shapes, n, &d) == ODL_OK) {
        odl_model_cfg cfg = odl_model_cfg_defaults();
        odl_mem_plan plan;
        /* a file the reader accepted has its tensors present, so its plan is
         * backed by its own size; still cap what a fuzz run allocates */
        if (odl_model_plan(&desc, &cfg, &plan, &d) == ODL_OK && plan.total < (64u << 20)) {
            void *arena_buf = malloc(plan.total);
            odl_arena a;
            odl_model *m;
            if (arena_buf && odl_arena_init(&a, arena_buf, plan.total) == ODL_OK &&
                odl_model_init(&m, &desc, &cfg, &a, &d) == ODL_OK)
                (void)odl_model_load_params(m, buf, size, &d);
            free(arena_buf);
        }
        char v[64];
        (void)odl_file_meta_get(buf, size, "arch", v, sizeof v, &d);
        /* INT8 chunks (QNT/QLAY): checked, then loaded and run once */
        int32_t boundary = 0;
        odl_mem_plan qp;
        if (odl_qfile_read_desc(buf, size, &desc, &boundary, &d) == ODL_OK &&
            odl_qmodel_plan(&desc, boundary, 1, &qp, &d) == ODL_OK && qp.total < (64u << 20)) {
            void *qbuf = malloc(qp.total);
            const size_t in = (size_t)desc.in_c * desc.in_h * desc.in_w;
            float *x = in <= (1u << 20) ? calloc(in, sizeof(float)) : NULL;
            odl_arena a;
            odl_qmodel *q;
            if (qbuf && x && odl_arena_init(&a, qbuf, qp.total) == ODL_OK &&
                odl_qmodel_init(&q, &desc, boundary, 1, &a, &d) == ODL_OK &&
                odl_qmodel_load(q, buf, size, &d) == ODL_OK) {
                float *z = malloc(sizeof(float) * odl_qmodel_latent_size(q));
                if (z)
                    (void)odl_qmodel_forward(q, x, 1, z, &d);
                free(z);
            }
            free(x);
            free(qbuf);
        }
    }
    free(nodes);
    free(shapes);
    free(buf);
    return 0;
}
