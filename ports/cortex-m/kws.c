/* kws.c — an imported INT8 keyword-spotting model learning on a Cortex-M4F
 * in 128 KB of RAM.
 *
 * Flash holds the MLPerf Tiny DS-CNN (kws_ref_model.tflite, imported by
 * `odl import`: every node INT8 with the file's own scales), the same model
 * with its INT8 part ending before the dense layer (gen/kws_prefix.c, the
 * file's parameters), both embedded by `odl export-c`, and synthetic
 * MFCC-shaped inputs (gen/gen_kws.py: there is no speech data set here):
 * keyword prototypes, check inputs and the host tool's INT8 outputs for them.
 *
 *   1. inference: the whole INT8 model in place from flash (arena); its
 *      outputs on the check inputs must equal `odl predict --int8`'s on the
 *      host bit for bit;
 *   2. the same model labels "other speech": examples of KWS_N_OLD
 *      prototypes (prototype + Gaussian noise, drawn on the device), for the
 *      learner's replay and guard set and for a held-out set; the labels are
 *      the base's own predictions;
 *   3. learning: the INT8 prefix (nodes 0..18, in place from flash) feeds
 *      latents (64 floats after the average pool) to a learner whose head is
 *      the model's dense layer (FP32, copied from flash), with room for
 *      KWS_N_NEW new keywords (classes 12..); it is seeded with the other
 *      speech, then the user says each new keyword KWS_USER_PER times
 *      (prototype + noise), an update every KWS_UPDATE_EVERY;
 *   4. accuracy before/after on held-out examples: the new keywords, and
 *      the other speech (agreement with the base's labels: the new head must
 *      not take it for a new keyword);
 *   5. costs (instructions per inference, per prefix, per gated update, per
 *      batch-1 head step) and the stack.
 *
 * Any failure exits non-zero. The last line is "N passed, N failed". */
#include <string.h>

#include "odl/odl.h"
#include "target.h"
#include "fw_common.h"
#include "kws_data.h"
#include "kws_model.h"
#include "kws_prefix_model.h"

#define IN_SIZE (KWS_FRAMES * KWS_COEFS)
#define NODES 24             /* node storage: the DS-CNN has 20 */
#define Z_MAX 64             /* latent floats (checked at run time) */
#define NEW_CLASS0 KWS_OUTPUTS /* the first new keyword's class */
#define N_CLASSES (KWS_OUTPUTS + KWS_N_NEW)
#define NOISE 4.0f           /* example = prototype + NOISE · N(0, 1) (7 input steps) */
#define KWS_SEED_PER 6       /* other-speech examples per old prototype for the learner */
#define KWS_TEST_PER 10      /* held-out examples per prototype */
#ifndef KWS_USER_PER
#define KWS_USER_PER 20      /* the user's examples per new keyword */
#endif
#ifndef KWS_UPDATE_EVERY
#define KWS_UPDATE_EVERY 20
#endif
#ifndef KWS_LR
#define KWS_LR 1e-2f
#endif
#ifndef KWS_EPOCHS
#define KWS_EPOCHS 30
#endif
#define SEED_CHUNK 5
#ifndef KWS_RAM_KB
#define KWS_RAM_KB 128
#endif
#ifndef KWS_ARENA
#define KWS_ARENA 99328 /* max(whole INT8 model 23,104; INT8 prefix 22,800 + head source 1,056 + learner 75,040),
                           checked by the plans at run time */
#endif

static _Alignas(16) uint8_t arena_buf[KWS_ARENA];
static float xbuf[IN_SIZE];
static float zbuf[SEED_CHUNK * Z_MAX];
static float obuf[N_CLASSES];
static int32_t ybuf[SEED_CHUNK];
static int8_t old_seed_y[KWS_N_OLD * KWS_SEED_PER];
static int8_t old_test_y[KWS_N_OLD * KWS_TEST_PER];

static float bits_f(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Example k of prototype p (0..KWS_N_OLD+KWS_N_NEW-1) of a set: the
 * prototype plus Gaussian noise, drawn from stream `set` so that every set
 * (seed, test, user) is the same on every run and disjoint from the others. */
enum { SET_SEED = 1, SET_OLD_TEST, SET_USER, SET_NEW_TEST };
static void example(int32_t p, int32_t set, int32_t k, float *x)
{
    odl_rng r;
    odl_rng_seed(&r, (uint64_t)KWS_SEED * 1000003u + (uint64_t)p * 1009u + (uint64_t)k, (uint64_t)set);
    const uint32_t *src = kws_protos + (size_t)p * IN_SIZE;
    for (int i = 0; i < IN_SIZE; i++)
        x[i] = bits_f(src[i]) + NOISE * odl_rng_normal(&r);
}

static odl_qmodel *qmodel_in_place(const uint8_t *file, size_t len, odl_model_desc *desc, int32_t *boundary,
                                   odl_arena *a, odl_mem_plan *plan, odl_diag *dg)
{
    odl_diag diag;
    odl_diag_clear(&diag);
    odl_qmodel *q;
    TRY("read INT8 file", odl_qfile_read_desc(file, len, desc, boundary, &diag));
    TRY("plan INT8", odl_qmodel_plan_in_place(desc, *boundary, 1, plan, &diag));
    TRY("init INT8", odl_qmodel_init_in_place(&q, desc, *boundary, 1, a, &diag));
    TRY("load INT8", odl_qmodel_load_in_place(q, file, len, &diag));
    (void)dg;
    return q;
}

/* the latent of x through the INT8 prefix, and x's contrast for the drift monitor */
static void latent(odl_qmodel *q, const float *x, float *z, float *std, uint64_t *insns)
{
    odl_diag diag;
    odl_diag_clear(&diag);
    float mean;
    if (std)
        TRY("sample stats", odl_drift_sample_stats(x, IN_SIZE, &mean, std));
    uint64_t t0 = target_instructions();
    TRY("INT8 prefix", odl_qmodel_forward(q, x, 1, z, &diag));
    if (insns)
        *insns += target_instructions() - t0;
}

/* accuracy (per mille) of the learner on the held-out sets: the new
 * keywords, and the other speech against the base's labels */
static void accuracy(odl_learner *L, odl_qmodel *q, int32_t *other, int32_t *keywords, uint64_t *insns)
{
    odl_diag diag;
    odl_diag_clear(&diag);
    int32_t ok_o = 0, ok_k = 0;
    for (int32_t p = 0; p < KWS_N_OLD + KWS_N_NEW; p++)
        for (int32_t k = 0; k < KWS_TEST_PER; k++) {
            const int is_new = p >= KWS_N_OLD;
            example(p, is_new ? SET_NEW_TEST : SET_OLD_TEST, k, xbuf);
            float std, conf;
            latent(q, xbuf, zbuf, &std, insns);
            int32_t cls;
            TRY("predict", odl_learner_predict_latent(L, zbuf, std, &cls, &conf, &diag));
            if (is_new)
                ok_k += cls == NEW_CLASS0 + (p - KWS_N_OLD);
            else
                ok_o += cls == old_test_y[p * KWS_TEST_PER + k];
        }
    *other = ok_o * 1000 / (KWS_N_OLD * KWS_TEST_PER);
    *keywords = ok_k * 1000 / (KWS_N_NEW * KWS_TEST_PER);
}

#define PCT(v) (int)((v) / 10), (int)((v) % 10)

int main(void)
{
    static odl_node_desc full_nodes[NODES], pre_nodes[NODES];
    odl_diag diag;
    odl_diag_clear(&diag);
    target_counter_start();
    target_logf("odl %s KWS on Cortex-M4F (mps2-an386): RAM budget %d KB = stack %zu + static %zu + heap %zu",
                ODL_VERSION_STRING, KWS_RAM_KB, target_stack_size(), target_ram_static() - target_stack_size(),
                target_heap_size());
    target_logf("inputs: synthetic MFCC-shaped (%dx%d): %d keyword prototypes (a word envelope on c0, a spectral "
                "shape on c1..c9) + Gaussian noise (sigma %d), drawn on the device; no speech data",
                KWS_FRAMES, KWS_COEFS, KWS_N_OLD + KWS_N_NEW, (int)NOISE);

    /* 1. the whole INT8 model, bit for bit against the host */
    odl_model_desc fd;
    odl_desc_init(&fd, full_nodes, NODES, 1, 1, 1);
    int32_t fb;
    odl_arena a;
    odl_arena_init(&a, arena_buf, sizeof arena_buf);
    odl_mem_plan fp;
    odl_qmodel *qf = qmodel_in_place(odl_kws, odl_kws_len, &fd, &fb, &a, &fp, &diag);
    size_t i8b, f32b;
    odl_qmodel_param_bytes(qf, &i8b, &f32b);
    target_logf("[inference] imported DS-CNN from flash (%zu bytes, %d nodes, all INT8: %zu parameter bytes in place); "
                "RAM %zu bytes (params %zu, activations + scratch %zu, state %zu)",
                odl_kws_len, (int)fd.n_layers, i8b, fp.total, fp.bytes[ODL_MEM_PARAMS], fp.bytes[ODL_MEM_SCRATCH],
                fp.bytes[ODL_MEM_STATE]);
    if (odl_qmodel_latent_size(qf) != KWS_OUTPUTS)
        fw_die("the model's outputs are not the generated data's", ODL_ERR_SHAPE, NULL);
    uint64_t inf_insns = 0;
    int32_t exact = 0, same_top = 0;
    for (int32_t k = 0; k < KWS_N_CHECK; k++) {
        const uint32_t *xs = kws_check_x + (size_t)k * IN_SIZE, *ys = kws_check_y + (size_t)k * KWS_OUTPUTS;
        for (int i = 0; i < IN_SIZE; i++)
            xbuf[i] = bits_f(xs[i]);
        uint64_t t0 = target_instructions();
        TRY("INT8 forward", odl_qmodel_forward(qf, xbuf, 1, obuf, &diag));
        inf_insns += target_instructions() - t0;
        int eq = 1;
        for (int j = 0; j < KWS_OUTPUTS; j++) {
            uint32_t u;
            memcpy(&u, &obuf[j], sizeof u);
            eq &= u == ys[j];
        }
        float yh[KWS_OUTPUTS];
        for (int j = 0; j < KWS_OUTPUTS; j++)
            yh[j] = bits_f(ys[j]);
        exact += eq;
        same_top += fw_argmax(obuf, KWS_OUTPUTS) == fw_argmax(yh, KWS_OUTPUTS);
    }
    target_logf("[inference] %d of %d check inputs bit-identical to the host's odl predict --int8, same top class on %d",
                (int)exact, KWS_N_CHECK, (int)same_top);
    fw_check(exact == KWS_N_CHECK, "INT8 inference equals the host's bit for bit");

    /* 2. the base labels the other speech */
    int32_t hist[KWS_OUTPUTS] = {0};
    for (int32_t p = 0; p < KWS_N_OLD; p++) {
        for (int32_t k = 0; k < KWS_SEED_PER; k++) {
            example(p, SET_SEED, k, xbuf);
            TRY("INT8 forward", odl_qmodel_forward(qf, xbuf, 1, obuf, &diag));
            old_seed_y[p * KWS_SEED_PER + k] = (int8_t)fw_argmax(obuf, KWS_OUTPUTS);
        }
        for (int32_t k = 0; k < KWS_TEST_PER; k++) {
            example(p, SET_OLD_TEST, k, xbuf);
            TRY("INT8 forward", odl_qmodel_forward(qf, xbuf, 1, obuf, &diag));
            old_test_y[p * KWS_TEST_PER + k] = (int8_t)fw_argmax(obuf, KWS_OUTPUTS);
            hist[old_test_y[p * KWS_TEST_PER + k]]++;
        }
    }
    target_logf("[labels] the base's classes on the held-out other speech: %d %d %d %d %d %d %d %d %d %d %d %d",
                hist[0], hist[1], hist[2], hist[3], hist[4], hist[5], hist[6], hist[7], hist[8], hist[9], hist[10],
                hist[11]);
    const size_t full_used = a.used;

    /* 3. the INT8 prefix, the head source and the learner (the arena again) */
    odl_model_desc pd;
    odl_desc_init(&pd, pre_nodes, NODES, 1, 1, 1);
    int32_t pb;
    odl_arena_init(&a, arena_buf, sizeof arena_buf);
    odl_mem_plan pp;
    odl_qmodel *q = qmodel_in_place(odl_kws_pre, odl_kws_pre_len, &pd, &pb, &a, &pp, &diag);
    const size_t dim = odl_qmodel_latent_size(q);
    if (dim > Z_MAX)
        fw_die("latent larger than Z_MAX", ODL_ERR_SHAPE, NULL);
    const size_t pre_used = a.used;
    odl_mem_plan hp;
    odl_model *hsrc = fw_head_source(odl_kws_pre, odl_kws_pre_len, &pd, pb, &a, &hp);
    odl_learner_cfg lc = odl_learner_cfg_defaults();
    lc.boundary = 1;
    lc.max_classes = N_CLASSES;
    lc.max_collected = KWS_UPDATE_EVERY;
    lc.guard_size = 30;
    lc.versions = 1;
    lc.lr = KWS_LR;
    lc.adapt.epochs = KWS_EPOCHS;
    lc.replay.capacity = KWS_N_OLD * KWS_SEED_PER;
    lc.replay.dtype = ODL_REPLAY_INT8;
    odl_mem_plan lp;
    TRY("plan learner", odl_learner_plan(&lc, hsrc, &lp, &diag));
    odl_learner *L;
    TRY("init learner", odl_learner_init(&L, &lc, hsrc, &a, &diag));
    target_logf("[learner] INT8 prefix nodes 0..%d in place (RAM %zu), head source nodes %d..%d (FP32, weights in "
                "flash, RAM %zu), learner (replay of %d INT8 latents, %d classes) %zu; arena %zu of %d",
                (int)pb - 1, pre_used, (int)pb - 1, (int)pd.n_layers - 1, hp.total, (int)lc.replay.capacity,
                (int)N_CLASSES, lp.total, a.used, KWS_ARENA);
    fw_check(odl_learner_dim(L) == (int32_t)dim, "the learner's latent is the INT8 prefix's");
    odl_rng rng;
    odl_rng_seed(&rng, 7, 1);
    for (int32_t i = 0; i < KWS_N_OLD * KWS_SEED_PER;) {
        int n = 0;
        for (; i < KWS_N_OLD * KWS_SEED_PER && n < SEED_CHUNK; i++, n++) {
            example(i / KWS_SEED_PER, SET_SEED, i % KWS_SEED_PER, xbuf);
            latent(q, xbuf, zbuf + (size_t)n * dim, NULL, NULL);
            ybuf[n] = old_seed_y[i];
        }
        TRY("seed old", odl_learner_seed_old_latent(L, zbuf, ybuf, n, &rng, &diag));
    }

    /* 4. before, the user's keywords, after */
    int32_t other_before, kw_before, other_after, kw_after;
    uint64_t pre_insns = 0;
    accuracy(L, q, &other_before, &kw_before, &pre_insns);
    target_logf("[learn] before: other speech %d.%d%% as the base labels it, new keywords %d.%d%% (%d held-out "
                "examples each)",
                PCT(other_before), PCT(kw_before), KWS_N_OLD * KWS_TEST_PER, KWS_N_NEW * KWS_TEST_PER);
    uint64_t upd_insns = 0;
    int32_t n_upd = 0, n_ok = 0;
    const int32_t n_user = KWS_N_NEW * KWS_USER_PER;
    for (int32_t i = 0; i < n_user; i++) {
        const int32_t kw = i % KWS_N_NEW, k = i / KWS_N_NEW;
        example(KWS_N_OLD + kw, SET_USER, k, xbuf);
        float std, conf;
        int32_t cls;
        latent(q, xbuf, zbuf, &std, NULL);
        TRY("predict", odl_learner_predict_latent(L, zbuf, std, &cls, &conf, &diag));
        odl_reason why = ODL_REASON_NONE;
        TRY("feedback", odl_learner_feedback_latent(L, zbuf, NEW_CLASS0 + kw, &why, &diag));
        if ((i + 1) % KWS_UPDATE_EVERY == 0 || i + 1 == n_user) {
            uint64_t u0 = target_instructions();
            odl_status s = odl_learner_update(L, &rng, &diag);
            upd_insns += target_instructions() - u0;
            n_upd++;
            if (s < 0)
                fw_die("update", s, &diag);
            n_ok += s == ODL_OK;
            odl_learner_status st;
            odl_learner_get_status(L, &st);
            target_logf("[learn] update %d: %s", (int)n_upd, st.last_decision);
        }
    }
    accuracy(L, q, &other_after, &kw_after, NULL);
    target_logf("[learn] after %d examples (%d per keyword), %d of %d updates accepted: other speech %d.%d%%, new "
                "keywords %d.%d%%",
                (int)n_user, KWS_USER_PER, (int)n_ok, (int)n_upd, PCT(other_after), PCT(kw_after));
    target_logf("SCENARIO kws-new-keywords other_before=%d other_after=%d keywords_before=%d keywords_after=%d",
                (int)other_before, (int)other_after, (int)kw_before, (int)kw_after);
    fw_check(other_before >= 950, "before: the head on the INT8 prefix agrees with the whole INT8 model (>= 95%)");
    fw_check(n_ok >= 1, "at least one update accepted by the evaluation gate");
    fw_check(kw_after >= 900, "new keywords: at least 90% after the user's examples");
    /* measured: 100.0 -> 92.0 (the head takes 8 of 100 other-speech
     * examples for a new keyword); the check holds what is measured */
    fw_check(other_after + 100 >= other_before, "other speech: down by at most 10 points");

    /* 5. a batch-1 head step from a latent (the cost of one SGD step on
     * the head alone): a training copy of the head's shape, in the arena
     * after the INT8 prefix (the learner is done) */
    static odl_node_desc step_nodes[NODES];
    odl_model_desc hd;
    odl_desc_init(&hd, step_nodes, NODES, 1, 1, 1);
    TRY("step head desc", odl_desc_copy(&hd, odl_model_get_desc(odl_learner_head(L)), &diag));
    const size_t learn_used = a.used;
    odl_arena_init(&a, arena_buf + pre_used, sizeof arena_buf - pre_used);
    odl_model_cfg hc = odl_model_cfg_defaults();
    hc.mode = ODL_MODE_TRAIN;
    hc.max_batch = 1;
    odl_model *h1;
    odl_mem_plan sp;
    TRY("plan step head", odl_model_plan(&hd, &hc, &sp, &diag));
    TRY("init step head", odl_model_init(&h1, &hd, &hc, &a, &diag));
    TRY("init step head params", odl_model_init_params(h1, &rng));
    uint64_t step_insns = 0;
    const int reps = 8;
    for (int r = 0; r < reps; r++) {
        int32_t y = NEW_CLASS0 + r % KWS_N_NEW;
        float loss;
        example(KWS_N_OLD + r % KWS_N_NEW, SET_USER, r, xbuf);
        latent(q, xbuf, zbuf, NULL, NULL);
        uint64_t t0 = target_instructions();
        TRY("train step", odl_model_train_step(h1, 0, zbuf, &y, 1, &rng, &loss, &diag));
        step_insns += target_instructions() - t0;
    }
    target_logf("arena: %d bytes; used: %zu (whole INT8 model), then %zu (INT8 prefix %zu + head source + learner), "
                "then %zu (INT8 prefix + step head)",
                KWS_ARENA, full_used, learn_used, pre_used, pre_used + a.used);

    target_logf("COST insn_kws_inference %lu", (unsigned long)(inf_insns / KWS_N_CHECK));
    target_logf("COST insn_kws_prefix %lu",
                (unsigned long)(pre_insns / (uint64_t)((KWS_N_OLD + KWS_N_NEW) * KWS_TEST_PER)));
    target_logf("COST insn_kws_update %lu", (unsigned long)(upd_insns / (uint64_t)(n_upd ? n_upd : 1)));
    target_logf("COST insn_kws_head_step %lu", (unsigned long)(step_insns / reps));
    const size_t hw = target_stack_high_water();
    target_logf("COST kws_stack_high_water %lu", (unsigned long)hw);
    target_logf("stack: %zu of %zu bytes used at the deepest", hw, target_stack_size());
    fw_check(hw + 1024 <= target_stack_size(), "stack high-water mark at least 1 KB below the stack size");
    return fw_summary() ? 1 : 0;
}
