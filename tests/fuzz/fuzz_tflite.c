/* libFuzzer target: the TFLite reader, importer and writer (odl/tflite.h).
 * Any bytes: an error, or an imported model odl accepts and can plan; a
 * model that builds is run once, written back as TFLite and re-imported,
 * and the re-import must succeed with the same node count. Never a crash,
 * an overread or an allocation sized from unchecked input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "odl/tflite.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    odl_onnx_model m;
    odl_tflite_int8 q;
    odl_diag d;
    if (odl_tflite_import(data, size, &m, &q, &d) != ODL_OK)
        return 0;
    odl_model_cfg cfg = odl_model_cfg_defaults();
    odl_mem_plan plan;
    if (odl_model_plan(&m.desc, &cfg, &plan, &d) == ODL_OK && plan.total < (64u << 20)) {
        odl_onnx_built b;
        if (odl_onnx_build(&m, &cfg, &b, &d) == ODL_OK) {
            size_t in = (size_t)m.desc.in_c * (size_t)m.desc.in_h * (size_t)m.desc.in_w;
            float *x = calloc(in ? in : 1, sizeof *x);
            const float *out;
            if (x)
                (void)odl_model_forward(b.m, 0, x, 1, &out, &d);
            free(x);
            void *buf;
            size_t len;
            if (odl_tflite_export(b.m, m.names, &buf, &len, &d) == ODL_OK) {
                odl_onnx_model r;
                if (odl_tflite_import(buf, len, &r, NULL, &d) == ODL_OK) {
                    if (r.desc.n_layers < m.desc.n_layers - 1)
                        abort(); /* the writer lost nodes (dropout alone may go) */
                    odl_onnx_free(&r);
                } else {
                    abort(); /* odl's own export must import */
                }
                free(buf);
            }
            odl_onnx_built_free(&b);
        }
    }
    odl_tflite_int8_free(&q);
    odl_onnx_free(&m);
    return 0;
}
