/* resnet.c — an imported PyTorch residual network adapting on a Cortex-M4F
 * in 128 KB of RAM, on real Fashion-MNIST drift.
 *
 * Flash holds a small ResNet (tests/torch/models.py's SmallResNet: conv
 * stem, three residual stacks whose outputs are additions, average pool,
 * dense) trained in PyTorch and exported to ONNX (gen/torch_resnet.py),
 * imported by `odl import` and quantised by `odl quantize` below the head,
 * embedded by `odl export-c`; and the firmware's Fashion-MNIST slices
 * (gen/gen_data.py: 200 old training images, 100 user examples, 500 test
 * images, and the shift the user's sensor applies).
 *
 *   1. the INT8 prefix (every node below the dense layer, the additions
 *      included) in place from flash; the head source (FP32, in flash);
 *      the learner (replay of INT8 latents, the evaluation gate), seeded
 *      with the old images;
 *   2. test accuracy before, on the original and the shifted images;
 *   3. the user's examples through the shift: predict, feedback, an update
 *      every UPDATE_EVERY;
 *   4. accuracy after; costs (instructions per INT8 prefix and per gated
 *      update) and the stack.
 *
 * Any failure exits non-zero. The last line is "N passed, N failed". */
#include <string.h>

#include "odl/odl.h"
#include "target.h"
#include "fw_common.h"
#include "data.h"
#include "rn_model.h"

#define IN_SIZE (ODL_DATA_C * ODL_DATA_H * ODL_DATA_W)
#define NODES 48       /* node storage (the imported SmallResNet has fewer; checked by odl_desc_init's users) */
#define Z_MAX 64
#define SEED_CHUNK 5
#define UPDATE_EVERY 20
#ifndef RN_LR
#define RN_LR 1e-3f
#endif
#ifndef RN_ARENA
#define RN_ARENA 99584
#endif

static _Alignas(16) uint8_t arena_buf[RN_ARENA];
static float xbuf[IN_SIZE];
static float zbuf[SEED_CHUNK * Z_MAX];
static int32_t ybuf[SEED_CHUNK];

/* uint8 image / 255; with drift, the data's shift as the host's --shift
 * applies it (moved DX right and DY down with zero fill, then gain/offset) */
static void image(const uint8_t *src, int drift, float *x)
{
    const int dx = drift ? ODL_DATA_DX : 0, dy = drift ? ODL_DATA_DY : 0;
    for (int c = 0; c < ODL_DATA_C; c++)
        for (int r = 0; r < ODL_DATA_H; r++)
            for (int k = 0; k < ODL_DATA_W; k++) {
                const int sr = r - dy, sk = k - dx;
                const int in = sr >= 0 && sr < ODL_DATA_H && sk >= 0 && sk < ODL_DATA_W;
                float v = in ? (float)src[(c * ODL_DATA_H + sr) * ODL_DATA_W + sk] / 255.0f : 0.0f;
                if (drift) {
                    v = ODL_DATA_GAIN * v + ODL_DATA_OFFSET;
                    v = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
                }
                x[(c * ODL_DATA_H + r) * ODL_DATA_W + k] = v;
            }
}

static void latent(odl_qmodel *q, const uint8_t *src, int drift, float *z, float *std, uint64_t *insns)
{
    odl_diag diag;
    odl_diag_clear(&diag);
    float mean;
    image(src, drift, xbuf);
    if (std)
        TRY("sample stats", odl_drift_sample_stats(xbuf, IN_SIZE, &mean, std));
    uint64_t t0 = target_instructions();
    TRY("INT8 prefix", odl_qmodel_forward(q, xbuf, 1, z, &diag));
    if (insns)
        *insns += target_instructions() - t0;
}

static int32_t accuracy(odl_learner *L, odl_qmodel *q, int drift, uint64_t *insns)
{
    odl_diag diag;
    odl_diag_clear(&diag);
    int32_t ok = 0;
    for (int k = 0; k < ODL_DATA_N_TEST; k++) {
        float std, conf;
        int32_t cls;
        latent(q, odl_data_test_x + (size_t)k * IN_SIZE, drift, zbuf, &std, insns);
        TRY("predict", odl_learner_predict_latent(L, zbuf, std, &cls, &conf, &diag));
        ok += cls == odl_data_test_y[k];
    }
    return ok * 1000 / ODL_DATA_N_TEST;
}

#define PCT(v) (int)((v) / 10), (int)((v) % 10)

int main(void)
{
    static odl_node_desc nodes[NODES];
    odl_diag diag;
    odl_diag_clear(&diag);
    target_counter_start();
    target_logf("odl %s imported ResNet on Cortex-M4F (mps2-an386): RAM budget 128 KB = stack %zu + static %zu + heap "
                "%zu",
                ODL_VERSION_STRING, target_stack_size(), target_ram_static() - target_stack_size(),
                target_heap_size());
    odl_model_desc desc;
    odl_desc_init(&desc, nodes, NODES, 1, 1, 1);
    int32_t boundary;
    odl_arena a;
    odl_arena_init(&a, arena_buf, sizeof arena_buf);
    odl_mem_plan qp;
    TRY("read INT8 file", odl_qfile_read_desc(odl_rn, odl_rn_len, &desc, &boundary, &diag));
    TRY("plan INT8", odl_qmodel_plan_in_place(&desc, boundary, 1, &qp, &diag));
    odl_qmodel *q;
    TRY("init INT8", odl_qmodel_init_in_place(&q, &desc, boundary, 1, &a, &diag));
    TRY("load INT8", odl_qmodel_load_in_place(q, odl_rn, odl_rn_len, &diag));
    const size_t dim = odl_qmodel_latent_size(q);
    if (dim > Z_MAX)
        fw_die("latent larger than Z_MAX", ODL_ERR_SHAPE, NULL);
    int32_t adds = 0;
    for (int32_t i = 0; i < boundary; i++)
        adds += desc.layers[i].type == ODL_LAYER_ADD;
    size_t i8b, f32b;
    odl_qmodel_param_bytes(q, &i8b, &f32b);
    target_logf("[resnet] imported from ONNX (PyTorch), %d nodes, %d residual additions; INT8 nodes 0..%d in place "
                "(%zu parameter bytes in flash), RAM %zu bytes; latent %zu floats",
                (int)desc.n_layers, (int)adds, (int)boundary - 1, i8b, qp.total, dim);
    fw_check(adds >= 3, "the INT8 prefix holds the residual additions");
    const size_t pre_used = a.used;
    odl_mem_plan hp;
    odl_model *hsrc = fw_head_source(odl_rn, odl_rn_len, &desc, boundary, &a, &hp);
    odl_learner_cfg lc = odl_learner_cfg_defaults();
    lc.boundary = 1;
    lc.max_collected = UPDATE_EVERY;
    lc.guard_size = 50;
    lc.versions = 1;
    lc.lr = RN_LR;
    lc.replay.capacity = 100;
    lc.replay.dtype = ODL_REPLAY_INT8;
    odl_mem_plan lp;
    TRY("plan learner", odl_learner_plan(&lc, hsrc, &lp, &diag));
    odl_learner *L;
    TRY("init learner", odl_learner_init(&L, &lc, hsrc, &a, &diag));
    target_logf("[resnet] arena %zu of %d: INT8 prefix %zu, head source %zu, learner %zu (replay of 100 INT8 latents)",
                a.used, RN_ARENA, pre_used, hp.total, lp.total);
    fw_check(odl_learner_dim(L) == (int32_t)dim, "the learner's latent is the INT8 prefix's");
    odl_rng rng;
    odl_rng_seed(&rng, 7, 1);
    for (int k = 0; k < ODL_DATA_N_OLD;) {
        int n = 0;
        for (; k < ODL_DATA_N_OLD && n < SEED_CHUNK; k++, n++) {
            latent(q, odl_data_old_x + (size_t)k * IN_SIZE, 0, zbuf + (size_t)n * dim, NULL, NULL);
            ybuf[n] = odl_data_old_y[k];
        }
        TRY("seed old", odl_learner_seed_old_latent(L, zbuf, ybuf, n, &rng, &diag));
    }
    uint64_t pre_insns = 0;
    const int32_t orig_before = accuracy(L, q, 0, &pre_insns);
    const int32_t drift_before = accuracy(L, q, 1, NULL);
    target_logf("[resnet] before: test accuracy %d.%d%% original, %d.%d%% shifted (%s), %d images", PCT(orig_before),
                PCT(drift_before), ODL_DATA_SHIFT, ODL_DATA_N_TEST);
    uint64_t upd_insns = 0;
    int32_t n_upd = 0, n_ok = 0;
    for (int k = 0; k < ODL_DATA_N_USER; k++) {
        float std, conf;
        int32_t cls;
        latent(q, odl_data_user_x + (size_t)k * IN_SIZE, 1, zbuf, &std, NULL);
        TRY("predict", odl_learner_predict_latent(L, zbuf, std, &cls, &conf, &diag));
        odl_reason why = ODL_REASON_NONE;
        TRY("feedback", odl_learner_feedback_latent(L, zbuf, odl_data_user_y[k], &why, &diag));
        if ((k + 1) % UPDATE_EVERY == 0 || k + 1 == ODL_DATA_N_USER) {
            uint64_t u0 = target_instructions();
            odl_status s = odl_learner_update(L, &rng, &diag);
            upd_insns += target_instructions() - u0;
            n_upd++;
            if (s < 0)
                fw_die("update", s, &diag);
            n_ok += s == ODL_OK;
            odl_learner_status st;
            odl_learner_get_status(L, &st);
            target_logf("[resnet] update %d: %s", (int)n_upd, st.last_decision);
        }
    }
    const int32_t orig_after = accuracy(L, q, 0, NULL);
    const int32_t drift_after = accuracy(L, q, 1, NULL);
    target_logf("[resnet] after %d user examples, %d of %d updates accepted: %d.%d%% original, %d.%d%% shifted",
                ODL_DATA_N_USER, (int)n_ok, (int)n_upd, PCT(orig_after), PCT(drift_after));
    target_logf("SCENARIO resnet-drift orig_before=%d orig_after=%d drift_before=%d drift_after=%d", (int)orig_before,
                (int)orig_after, (int)drift_before, (int)drift_after);
    fw_check(n_ok >= 1, "at least one update accepted by the evaluation gate");
    fw_check(drift_after >= drift_before + 50, "shifted accuracy up by at least 5 points (measured +10.6)");
    fw_check(orig_after + 20 >= orig_before, "original accuracy down by at most 2 points");
    target_logf("COST insn_resnet_prefix %lu", (unsigned long)(pre_insns / ODL_DATA_N_TEST));
    target_logf("COST insn_resnet_update %lu", (unsigned long)(upd_insns / (uint64_t)(n_upd ? n_upd : 1)));
    const size_t hw = target_stack_high_water();
    target_logf("COST resnet_stack_high_water %lu", (unsigned long)hw);
    target_logf("stack: %zu of %zu bytes used at the deepest", hw, target_stack_size());
    fw_check(hw + 1024 <= target_stack_size(), "stack high-water mark at least 1 KB below the stack size");
    return fw_summary() ? 1 : 0;
}
