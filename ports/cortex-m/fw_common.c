/* fw_common.c — see fw_common.h. */
#include "fw_common.h"

#include "target.h"

static int n_pass, n_fail;

void fw_check(int ok, const char *what)
{
    if (ok) {
        n_pass++;
        target_logf("ok      %s", what);
    } else {
        n_fail++;
        target_logf("not ok  %s", what);
    }
}

int fw_summary(void)
{
    target_logf("%d passed, %d failed", n_pass, n_fail);
    return n_fail;
}

void fw_die(const char *what, odl_status s, const odl_diag *d)
{
    target_logf("FAIL %s: %s%s%s", what, odl_status_str(s), d && d->msg[0] ? ": " : "", d ? d->msg : "");
    target_logf("%d passed, %d failed", n_pass, n_fail + 1);
    target_exit(1);
}

int32_t fw_argmax(const float *v, int32_t n)
{
    int32_t b = 0;
    for (int32_t j = 1; j < n; j++)
        if (v[j] > v[b])
            b = j;
    return b;
}

static uint64_t get_le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

odl_model *fw_head_source(const uint8_t *file, size_t len, const odl_model_desc *desc, int32_t boundary,
                          odl_arena *a, odl_mem_plan *plan)
{
    static odl_layer_shape shapes[FW_HEAD_NODES];
    static odl_node_desc hs_nodes[FW_HEAD_NODES];
    odl_diag diag;
    odl_diag_clear(&diag);
    if (desc->n_layers > FW_HEAD_NODES)
        fw_die("head source: more nodes than FW_HEAD_NODES", ODL_ERR_NOMEM, NULL);
    TRY("head source: topology", odl_desc_check(desc, shapes, &diag));
    const int32_t first = boundary - 1;
    odl_model_desc hs;
    odl_desc_init(&hs, hs_nodes, FW_HEAD_NODES, 1, 1, 1);
    TRY("head source: tail", odl_desc_tail(&hs, desc, first, &diag));
    odl_desc_freeze_below(&hs, hs.n_layers);
    odl_model_cfg mc = odl_model_cfg_defaults();
    mc.mode = ODL_MODE_INFER;
    mc.max_batch = 1;
    mc.frozen_weights_in_place = 1;
    TRY("plan head source", odl_model_plan(&hs, &mc, plan, &diag));
    odl_model *m;
    TRY("init head source", odl_model_init(&m, &hs, &mc, a, &diag));
    /* TENS chunks (docs/format.md): u32 node, u32 which, u32 dtype, u32
     * ndim, u64 count, the floats at offset 32; odl_file_read_desc has
     * checked every chunk against the topology */
    size_t expect = 0, found = 0;
    for (int32_t i = first; i < desc->n_layers; i++)
        expect += (shapes[i].n_weights > 0) + (shapes[i].n_bias > 0);
    odl_file_iter it;
    TRY("head source: open", odl_file_open(&it, file, len, &diag));
    for (;;) {
        uint32_t t;
        const uint8_t *p;
        size_t n;
        TRY("head source: chunk", odl_file_next(&it, &t, &p, &n, &diag));
        if (t == ODL_CHUNK_END)
            break;
        if (t != ODL_CHUNK_TENSOR || n < 32)
            continue;
        const int32_t node = (int32_t)get_le(p, 4), which = (int32_t)get_le(p + 4, 4);
        if (node < first)
            continue;
        TRY("head source: tensor", odl_model_set_param_external(m, node - first, which,
                                                                (const float *)(const void *)(p + 32),
                                                                (size_t)get_le(p + 16, 8), &diag));
        found++;
    }
    if (found != expect)
        fw_die("head source: tensors missing", ODL_ERR_FORMAT, NULL);
    return m;
}
