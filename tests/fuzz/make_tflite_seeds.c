/* Writes TFLite seed files for fuzz_tflite into DIR: odl models (edge-cnn,
 * an MLP) with random parameters exported by odl_tflite_export. */
#include <stdio.h>
#include <stdlib.h>

#include "odl/tflite.h"

static int seed(const char *dir, const char *name, odl_model_desc *desc)
{
    odl_model_cfg cfg = odl_model_cfg_defaults();
    odl_mem_plan plan;
    odl_diag d;
    odl_arena a;
    odl_model *m;
    odl_rng rng;
    odl_rng_seed(&rng, 1, 0);
    if (odl_model_plan(desc, &cfg, &plan, &d) != ODL_OK)
        return 1;
    void *mem = malloc(plan.total + ODL_ALIGN);
    void *buf = NULL;
    size_t len = 0;
    int rc = 1;
    if (mem && odl_arena_init(&a, mem, plan.total + ODL_ALIGN) == ODL_OK &&
        odl_model_init(&m, desc, &cfg, &a, &d) == ODL_OK && odl_model_init_params(m, &rng) == ODL_OK &&
        odl_tflite_export(m, NULL, &buf, &len, &d) == ODL_OK) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, name);
        FILE *f = fopen(path, "wb");
        if (f && fwrite(buf, 1, len, f) == len)
            rc = 0;
        if (f)
            fclose(f);
    }
    if (rc)
        fprintf(stderr, "seed %s: %s\n", name, d.msg);
    free(buf);
    free(mem);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc != 2)
        return 2;
    odl_node_desc nodes[ODL_EDGE_CNN_NODES + ODL_MLP_NODES(2)];
    odl_model_desc desc;
    int rc = 0;
    odl_desc_init(&desc, nodes, ODL_EDGE_CNN_NODES, 1, 12, 12);
    rc |= odl_desc_edge_cnn(&desc, 1, 12, 12, 4) != ODL_OK || seed(argv[1], "edge_cnn.tflite", &desc);
    const int32_t hidden[2] = {16, 8};
    odl_desc_init(&desc, nodes, ODL_MLP_NODES(2), 20, 1, 1);
    rc |= odl_desc_mlp(&desc, 20, 1, 1, hidden, 2, 3) != ODL_OK || seed(argv[1], "mlp.tflite", &desc);
    /* small enough for the fuzzer's 16 KB inputs: conv (SAME pads), pool,
     * depthwise, flatten of a 3x3 map (the permuted dense columns) */
    odl_desc_init(&desc, nodes, 8, 2, 6, 6);
    rc |= odl_desc_conv2d(&desc, 4, 3, 1, 1) != ODL_OK || odl_desc_relu(&desc) != ODL_OK ||
          odl_desc_maxpool(&desc, 2, 2) != ODL_OK || odl_desc_depthwise(&desc, 1, 3, 1, 1) != ODL_OK ||
          odl_desc_relu6(&desc) != ODL_OK || odl_desc_flatten(&desc) != ODL_OK || odl_desc_dense(&desc, 3) != ODL_OK ||
          seed(argv[1], "small_cnn.tflite", &desc);
    /* small enough for the fuzzer's 16 KB inputs: conv (SAME pads), pool,
     * depthwise, flatten of a 3x3 map (the permuted dense columns) */
    odl_desc_init(&desc, nodes, 8, 2, 6, 6);
    rc |= odl_desc_conv2d(&desc, 4, 3, 1, 1) != ODL_OK || odl_desc_relu(&desc) != ODL_OK ||
          odl_desc_maxpool(&desc, 2, 2) != ODL_OK || odl_desc_depthwise(&desc, 1, 3, 1, 1) != ODL_OK ||
          odl_desc_relu6(&desc) != ODL_OK || odl_desc_flatten(&desc) != ODL_OK || odl_desc_dense(&desc, 3) != ODL_OK ||
          seed(argv[1], "small_cnn.tflite", &desc);
    return rc;
}
