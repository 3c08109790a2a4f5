/* kws_prefix — host tool of the KWS firmware's build (run.sh): reads an INT8
 * .odl file (an imported INT8 TFLite model: every node in INT8) and writes
 * the same model with its INT8 part ending at node K, so a device runs the
 * INT8 prefix [0, K) and learns an FP32 head on its latents. The INT8
 * parameters are the file's own (odl_qmodel_node_params of the whole INT8
 * model given to odl_qmodel_set_params of the shorter one), not a new
 * calibration; the FP32 model in the file is kept as it is.
 *
 *   kws_prefix IN.odl K OUT.odl
 *
 * Host only (malloc, stdio). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "odl/quant.h"

static odl_qmodel *qmodel_new(const odl_model_desc *desc, int32_t boundary, void **mem, odl_diag *d)
{
    odl_mem_plan plan;
    odl_qmodel *q = NULL;
    *mem = NULL;
    if (odl_qmodel_plan(desc, boundary, 1, &plan, d) != ODL_OK)
        return NULL;
    *mem = aligned_alloc(16, (plan.total + 15) / 16 * 16);
    if (!*mem)
        return NULL;
    odl_arena a;
    odl_arena_init(&a, *mem, plan.total);
    if (odl_qmodel_init(&q, desc, boundary, 1, &a, d) != ODL_OK)
        return NULL;
    return q;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: kws_prefix IN.odl K OUT.odl (K: the INT8 part becomes nodes 0..K-1)\n");
        return 2;
    }
    const char *in = argv[1], *out = argv[3];
    char *end;
    const long k = strtol(argv[2], &end, 10);
    odl_diag d;
    odl_diag_clear(&d);
    odl_model_cfg cfg = odl_model_cfg_defaults();
    cli_model cm;
    if (cli_model_load(in, &cfg, &cm))
        return 1;
    odl_model_desc qd;
    int32_t boundary = 0;
    odl_status s = odl_host_desc_copy(&qd, &cm.desc, cm.desc.n_layers, &d);
    if (s == ODL_OK)
        s = odl_qfile_read_desc(cm.file, cm.file_len, &qd, &boundary, &d);
    if (s != ODL_OK)
        return cli_fail(in, s, &d);
    if (*end || k < 1 || k >= boundary) {
        fprintf(stderr, "kws_prefix: K is '%s'; %s's INT8 part is nodes 0..%d, K must be in 1..%d\n", argv[2], in,
                (int)boundary - 1, (int)boundary - 1);
        return 2;
    }
    void *mem_full, *mem_pre;
    odl_qmodel *full = qmodel_new(&qd, boundary, &mem_full, &d);
    if (!full || (s = odl_qmodel_load(full, cm.file, cm.file_len, &d)) != ODL_OK)
        return cli_fail(in, full ? s : ODL_ERR_ARG, &d);
    odl_qmodel *pre = qmodel_new(&qd, (int32_t)k, &mem_pre, &d);
    if (!pre)
        return cli_fail(in, ODL_ERR_UNSUPPORTED, &d);
    odl_qnode_params *p = calloc((size_t)k, sizeof *p);
    if (!p)
        return cli_error("out of memory") + 1;
    for (int32_t i = 0; i < (int32_t)k; i++)
        if ((s = odl_qmodel_node_params(full, i, &p[i], &d)) != ODL_OK)
            return cli_fail(in, s, &d);
    if ((s = odl_qmodel_set_params(pre, odl_qmodel_input_params(full), p, &d)) != ODL_OK)
        return cli_fail(in, s, &d);
    odl_posix_file f;
    odl_writer w;
    const odl_meta_kv meta[] = {{"created_by", "kws_prefix (ports/cortex-m/gen)"}};
    if ((s = odl_posix_writer_open(&f, &w, out, &d)) != ODL_OK)
        return cli_fail(out, s, &d);
    if ((s = odl_qmodel_save(pre, cm.m, meta, 1, &w, &d)) != ODL_OK) {
        odl_posix_writer_abort(&f);
        return cli_fail(out, s, &d);
    }
    if ((s = odl_posix_writer_commit(&f, &d)) != ODL_OK)
        return cli_fail(out, s, &d);
    printf("kws_prefix: %s: INT8 nodes 0..%d of %d (the file's parameters) -> %s\n", in, (int)k - 1,
           (int)boundary - 1, out);
    free(p);
    free(mem_full);
    free(mem_pre);
    odl_host_desc_free(&qd);
    cli_model_free(&cm);
    return 0;
}
