/* libFuzzer target: the ONNX importer (odl/onnx.h). Any bytes: an error or
 * an imported model whose description odl accepts and can plan, never a
 * crash, an overread or an allocation sized from unchecked input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "odl/onnx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    odl_onnx_opts o = odl_onnx_opts_defaults();
    /* models with dynamic dimensions get a small shape, as --input-shape */
    if (size & 1) {
        o.in_c = 3;
        o.in_h = 8;
        o.in_w = 8;
    }
    odl_onnx_model m;
    odl_diag d;
    if (odl_onnx_import(data, size, &o, &m, &d) != ODL_OK)
        return 0;
    odl_layer_shape *shapes = calloc((size_t)m.desc.n_layers + 1, sizeof *shapes);
    if (shapes && odl_desc_check(&m.desc, shapes, &d) == ODL_OK) {
        odl_model_cfg cfg = odl_model_cfg_defaults();
        odl_mem_plan plan;
        /* build and run what fits a fuzz run's memory */
        if (odl_model_plan(&m.desc, &cfg, &plan, &d) == ODL_OK && plan.total < (64u << 20)) {
            odl_onnx_built b;
            if (odl_onnx_build(&m, &cfg, &b, &d) == ODL_OK) {
                size_t in = (size_t)m.desc.in_c * (size_t)m.desc.in_h * (size_t)m.desc.in_w;
                float *x = calloc(in ? in : 1, sizeof *x);
                const float *out;
                if (x)
                    (void)odl_model_forward(b.m, 0, x, 1, &out, &d);
                free(x);
                odl_onnx_built_free(&b);
            }
        }
    }
    free(shapes);
    odl_onnx_free(&m);
    return 0;
}
