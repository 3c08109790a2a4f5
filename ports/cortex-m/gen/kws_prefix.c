/* kws_prefix — host tool of the KWS firmware's build (run.sh): reads an INT8
 * .odl file (an imported INT8 TFLite model: every node in INT8) and writes
 * the same model with its INT8 part ending at node K, so a device runs the
 * INT8 prefix [0, K) and learns an FP32 head on its latents. The INT8
 * parameters are the file's own (odl_qmodel_node_params of the whole INT8
 * model given to odl_qmodel_set_params of the shorter one), not a new
 * calibration; the FP32 model in the file is kept as it is.
 *
 *   kws_prefix IN.odl K|head OUT.odl    (head: K is the head's first node)
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
        fprintf(stderr, "usage: kws_prefix IN.odl K|head OUT.odl (the INT8 part becomes nodes 0..K-1; head: K is "
                        "the head's first node, the latest cut at or before the last dense layer)\n");
        return 2;
    }
    const char *in = argv[1], *out = argv[3];
    odl_diag d;
    odl_diag_clear(&d);
    odl_model_cfg cfg = odl_model_cfg_defaults();
    cli_model cm;
    if (cli_model_load(in, &cfg, &cm))
        return 1;
    int rc = 1;
    odl_model_desc qd;
    int have_qd = 0;
    void *mem_full = NULL, *mem_pre = NULL;
    odl_qnode_params *p = NULL;
    int32_t boundary = 0, k = 0;
    odl_status s = odl_host_desc_copy(&qd, &cm.desc, cm.desc.n_layers, &d);
    have_qd = s == ODL_OK;
    if (s == ODL_OK)
        s = odl_qfile_read_desc(cm.file, cm.file_len, &qd, &boundary, &d);
    if (s != ODL_OK) {
        rc = cli_fail(in, s, &d);
        goto done;
    }
    if (!strcmp(argv[2], "head")) {
        k = cm.desc.n_layers - 1;
        while (k > 0 && cm.desc.layers[k].type != ODL_LAYER_DENSE)
            k--;
        if (k > 0 && odl_desc_boundary_for_unfreeze(&cm.desc, 1, &k, NULL) != ODL_OK)
            k = 0;
    } else {
        char *end;
        const long v = strtol(argv[2], &end, 10);
        k = *end || v < 0 || v > boundary ? 0 : (int32_t)v;
    }
    if (k < 1 || k >= boundary) {
        fprintf(stderr, "kws_prefix: K is '%s' (%d); %s's INT8 part is nodes 0..%d, K must be in 1..%d\n", argv[2],
                (int)k, in, (int)boundary - 1, (int)boundary - 1);
        rc = 2;
        goto done;
    }
    odl_qmodel *full = qmodel_new(&qd, boundary, &mem_full, &d);
    if (!full || (s = odl_qmodel_load(full, cm.file, cm.file_len, &d)) != ODL_OK) {
        rc = cli_fail(in, full ? s : ODL_ERR_ARG, &d);
        goto done;
    }
    odl_qmodel *pre = qmodel_new(&qd, k, &mem_pre, &d);
    if (!pre) {
        rc = cli_fail(in, ODL_ERR_UNSUPPORTED, &d);
        goto done;
    }
    if (!(p = calloc((size_t)k, sizeof *p))) {
        rc = cli_error("out of memory") + 1;
        goto done;
    }
    for (int32_t i = 0; i < k; i++)
        if ((s = odl_qmodel_node_params(full, i, &p[i], &d)) != ODL_OK) {
            rc = cli_fail(in, s, &d);
            goto done;
        }
    if ((s = odl_qmodel_set_params(pre, odl_qmodel_input_params(full), p, &d)) != ODL_OK) {
        rc = cli_fail(in, s, &d);
        goto done;
    }
    odl_posix_file f;
    odl_writer w;
    const odl_meta_kv meta[] = {{"created_by", "kws_prefix (ports/cortex-m/gen)"}};
    if ((s = odl_posix_writer_open(&f, &w, out, &d)) != ODL_OK) {
        rc = cli_fail(out, s, &d);
        goto done;
    }
    if ((s = odl_qmodel_save(pre, cm.m, meta, 1, &w, &d)) != ODL_OK) {
        odl_posix_writer_abort(&f);
        rc = cli_fail(out, s, &d);
        goto done;
    }
    if ((s = odl_posix_writer_commit(&f, &d)) != ODL_OK) {
        rc = cli_fail(out, s, &d);
        goto done;
    }
    printf("kws_prefix: %s: INT8 nodes 0..%d of %d (the file's parameters) -> %s\n", in, (int)k - 1,
           (int)boundary - 1, out);
    rc = 0;
done:
    free(p);
    free(mem_full);
    free(mem_pre);
    if (have_qd)
        odl_host_desc_free(&qd);
    cli_model_free(&cm);
    return rc;
}
