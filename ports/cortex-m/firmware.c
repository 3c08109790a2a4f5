/* firmware.c — on-device learning on a Cortex-M4F in 128 KB of RAM, on the
 * INT8 base, with every strategy of the learner.
 *
 * Flash holds two edge-cnn bases (`odl quantize`'s INT8 .odl files: the FP32
 * model plus INT8 layers [0, boundary), embedded by `odl export-c`; one on
 * all classes, one on classes below ODL_DATA_FIRST_NEW_CLASS), 200 old
 * training images, 100 user examples (10 per class, seen through the data's
 * shift: the protocol's 2-pixel translation), the new-class examples and a
 * 500-image test slice. Two scenarios run, each first under its headline
 * strategy (FW_DRIFT_STRATEGY, FW_NEW_STRATEGY; 500 test images, the checks
 * on the targets), then under every other strategy (the first
 * FW_EVAL_SMALL test images; the drift's runs record each strategy's
 * instructions per update and learner bytes):
 *
 *   1. builds the INT8 prefix with its weights in place in flash (arena A):
 *      every latent the learner sees comes from odl_qmodel_forward;
 *   2. builds the head's source, an FP32 model of the file's layers
 *      [boundary-1, L) whose weights stay in flash (the learner copies its
 *      head from it), then the learner (the strategy, gates) and a
 *      RAM-backed version store (arena B); a strategy whose learner does not
 *      fit runs with smaller guard sets; seeds the learner with the latents
 *      of the old images, SEED_CHUNK at a time (odl_learner_seed_old_latent);
 *   3. measures test accuracy (original and drifted) before: INT8 prefix +
 *      head, through odl_learner_predict_latent;
 *   4. streams the user examples through predict_latent + feedback_latent,
 *      updating every UPDATE_EVERY examples; accepted heads are committed to
 *      the store;
 *   5. measures accuracy after: the drift must gain 8 points with the
 *      original down 1 at most, the new classes reach 80% with the old ones
 *      down 3 at most; checks that the store's current version is the
 *      learner's head;
 *   6. measures instructions per head step (batch 1 from a latent, and
 *      from a raw image through the INT8 prefix) with a head loaded from the
 *      store's bytes (arena B, the learner is done);
 *   7. compares with the FP32 base: the whole arena now holds the FP32 base
 *      (weights in flash) and the learned head;
 *   8. every other strategy on the drift (unfreeze: its plan only, it does
 *      not fit), the new-class scenario the same way, shadow evaluation's
 *      cost, the stack.
 *
 * Any failure exits non-zero (a fault included: startup.c). The last line is
 * "N passed, N failed" over the firmware's checks. */
#include <string.h>

#include "odl/odl.h"
#include "target.h"
#include "data.h"
#include "model_data.h"
#include "model8_data.h"

#define IN_SIZE (ODL_DATA_C * ODL_DATA_H * ODL_DATA_W)
#ifndef UPDATE_EVERY
#define UPDATE_EVERY 20
#endif
#define FW_NODES ODL_EDGE_CNN_NODES /* node storage: the firmware's models are edge-cnn and its head */
#define SEED_CHUNK 5 /* old latents per odl_learner_seed_old_latent call */
#define Z_MAX 64      /* latent floats (edge-cnn: 64; checked at run time) */
#define CLASSES_MAX 64
#ifndef FW_RAM_KB
#define FW_RAM_KB 128 /* the linker script's RAM region (logged) */
#endif
/* the learner's buffers, sized to the RAM budget */
#ifndef LEARNER_COLLECTED
#define LEARNER_COLLECTED UPDATE_EVERY
#endif
#ifndef LEARNER_GUARD
#define LEARNER_GUARD 50
#endif
#define LEARNER_VERSIONS 1

/* One arena buffer (sizes checked against the plans at run time; the linker
 * script checks that it, .data and the stack fit in 128 KB):
 *   A = the first FW_ARENA_A bytes: the INT8 prefix;
 *   B = the rest: the head's source, the learner and the store; after the
 *       stream, the cost-measurement head.
 * At the end the whole buffer holds the FP32 base (scratch only: its weights
 * are in flash) and the learned head, for the comparison. */
#ifndef FW_ARENA_A
#define FW_ARENA_A 11856 /* INT8 prefix, weights in flash: input 784 + planner-placed activations 7,840 +
                            conv scratch 288 + state 2,944 */
#endif
#ifndef FW_ARENA_B
#define FW_ARENA_B 81472 /* head source 1,040 + learner 79,088 + store handle 1,088, + 256; A + B must
                            also hold the FP32 base's inference scratch for the comparison */
#endif
static _Alignas(16) uint8_t arena_buf[FW_ARENA_A + FW_ARENA_B];
static float xbuf[IN_SIZE];
static float zbuf[SEED_CHUNK * Z_MAX];
static int32_t ybuf[SEED_CHUNK];

static int n_pass, n_fail;

static void check(int ok, const char *what)
{
    if (ok) {
        n_pass++;
        target_logf("ok      %s", what);
    } else {
        n_fail++;
        target_logf("not ok  %s", what);
    }
}

static __attribute__((noreturn)) void die(const char *what, odl_status s, const odl_diag *d)
{
    target_logf("FAIL %s: %s%s%s", what, odl_status_str(s), d && d->msg[0] ? ": " : "", d ? d->msg : "");
    target_logf("%d passed, %d failed", n_pass, n_fail + 1);
    target_exit(1);
}

#define TRY(what, expr)                    \
    do {                                   \
        odl_status s_ = (expr);            \
        if (s_ < 0)                        \
            die(what, s_, &diag);          \
    } while (0)

/* uint8 image / 255; with drift, the data's shift as the host's --shift
 * applies it: moved ODL_DATA_DX right and ODL_DATA_DY down with zero fill,
 * then x' = clamp(gain·x + offset) */
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

/* The latent of one raw image through the INT8 prefix (z: dim floats) and,
 * unless input_std is NULL, the image's contrast (per-sample std, for the
 * learner's input drift monitor). *insns (may be NULL) accumulates the
 * instructions of odl_qmodel_forward. */
static void int8_latent(odl_qmodel *q, const uint8_t *src, int drift, float *z, float *input_std, uint64_t *insns,
                        odl_diag *dg)
{
    image(src, drift, xbuf);
    odl_status s;
    float mean;
    if (input_std && (s = odl_drift_sample_stats(xbuf, IN_SIZE, &mean, input_std)) < 0)
        die("sample stats", s, dg);
    uint64_t t0 = target_instructions();
    s = odl_qmodel_forward(q, xbuf, 1, z, dg);
    if (insns)
        *insns += target_instructions() - t0;
    if (s < 0)
        die("INT8 forward", s, dg);
}

static uint64_t get_le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* The head's source: the FP32 layers [boundary-1, L) of the file (the last
 * prefix layer, then the head), every weight used in place from flash. The
 * learner copies its head from the layers at and above its boundary (1
 * here), and takes the latent shape from layer 0's output: the prefix's. */
static odl_model *head_source(const uint8_t *file, size_t len, const odl_model_desc *desc, int32_t boundary,
                              odl_arena *a, odl_mem_plan *plan, odl_diag *dg)
{
    static odl_layer_shape shapes[FW_NODES];
    static odl_node_desc hs_nodes[FW_NODES];
    if (desc->n_layers > FW_NODES)
        die("head source: more nodes than FW_NODES", ODL_ERR_SHAPE, NULL);
    odl_status s = odl_desc_check(desc, shapes, dg);
    if (s < 0)
        die("head source: topology", s, dg);
    const int32_t first = boundary - 1;
    odl_model_desc hs;
    odl_desc_init(&hs, hs_nodes, FW_NODES, 1, 1, 1);
    if ((s = odl_desc_tail(&hs, desc, first, dg)) < 0)
        die("head source: tail", s, dg);
    odl_desc_freeze_below(&hs, hs.n_layers);
    odl_model_cfg mc = odl_model_cfg_defaults();
    mc.mode = ODL_MODE_INFER;
    mc.max_batch = 1;
    mc.frozen_weights_in_place = 1;
    if ((s = odl_model_plan(&hs, &mc, plan, dg)) < 0)
        die("plan head source", s, dg);
    odl_model *m;
    if ((s = odl_model_init(&m, &hs, &mc, a, dg)) < 0)
        die("init head source", s, dg);
    /* point its layers at the TENS chunks (docs/format.md: u32 layer, u32
     * which, u32 dtype, u32 ndim, u64 count, then the floats at offset 32);
     * odl_file_read_desc has checked every chunk against the topology */
    size_t expect = 0, found = 0;
    for (int32_t i = first; i < desc->n_layers; i++)
        expect += (shapes[i].n_weights > 0) + (shapes[i].n_bias > 0);
    odl_file_iter it;
    if ((s = odl_file_open(&it, file, len, dg)) < 0)
        die("head source: open", s, dg);
    for (;;) {
        uint32_t t;
        const uint8_t *p;
        size_t n;
        if ((s = odl_file_next(&it, &t, &p, &n, dg)) < 0)
            die("head source: chunk", s, dg);
        if (t == ODL_CHUNK_END)
            break;
        if (t != ODL_CHUNK_TENSOR || n < 32)
            continue;
        const int32_t layer = (int32_t)get_le(p, 4), which = (int32_t)get_le(p + 4, 4);
        if (layer < first)
            continue;
        s = odl_model_set_param_external(m, layer - first, which, (const float *)(const void *)(p + 32),
                                         (size_t)get_le(p + 16, 8), dg);
        if (s < 0)
            die("head source: tensor", s, dg);
        found++;
    }
    if (found != expect)
        die("head source: tensors missing", ODL_ERR_FORMAT, NULL);
    return m;
}

/* ---- a RAM-backed version store (odl/store.h) --------------------------- */

#define STORE_SLOTS 3            /* keep 2 versions */
#define STORE_BYTES (64 + STORE_SLOTS * 3584)
#define PAYLOAD_MAX 3072 /* a serialised head: 2,816 bytes */
#ifndef STORE_HANDLE
#define STORE_HANDLE 1088 /* odl_store_open's handle in arena B */
#endif
static _Alignas(16) uint8_t store_mem[STORE_BYTES];
static _Alignas(16) uint8_t payload[PAYLOAD_MAX];

typedef struct membuf {
    uint8_t *p;
    size_t cap, n;
} membuf;

static odl_status mem_write(void *ctx, const void *data, size_t n)
{
    membuf *m = ctx;
    if (n > m->cap - m->n)
        return ODL_ERR_IO;
    memcpy(m->p + m->n, data, n);
    m->n += n;
    return ODL_OK;
}

static odl_status ram_sync(void *ctx)
{
    (void)ctx;
    return ODL_OK;
}

/* ---- scenarios and strategies ------------------------------------------ */

/* A scenario: a base, the old data it was trained on and a user's stream.
 * Every strategy of the learner runs it (odl_learner_cfg_for, with the
 * firmware's buffer sizes); the strategy is named in the log and in the
 * metadata of each stored version. */
typedef struct scenario {
    const char *name;
    float lr;             /* the head's learning rate (Adam) */
    const uint8_t *file;
    size_t file_len;
    int32_t max_classes;  /* head outputs: room for the classes the user adds */
    int32_t old_below;    /* old images with a label below this seed the learner */
    const uint8_t *user_x, *user_y;
    int32_t n_user;
    int drift;            /* the user's examples come through the data's shift */
} scenario;

#ifndef FW_LR_DRIFT
#define FW_LR_DRIFT 1e-3f
#endif
#ifndef FW_LR_NEW
#define FW_LR_NEW 3e-3f
#endif
#ifndef FW_REPLAY_SLOTS
#define FW_REPLAY_SLOTS 200 /* INT8 latents (72 bytes each): replay and unfreeze */
#endif
/* the strategy whose numbers are the scenario's headline (500 test images,
 * the checks on the targets); the others are measured on FW_EVAL_SMALL */
#ifndef FW_DRIFT_STRATEGY
#define FW_DRIFT_STRATEGY ODL_STRATEGY_EWC_ONLINE
#endif
/* EWC's λ: 15 training examples per update pull hard on a 64 -> 10 head (the
 * learner's default, 100, lets them cost the original data 2 points) */
#ifndef FW_EWC_LAMBDA
#define FW_EWC_LAMBDA 1000.0f
#endif
/* the evaluation gate's tolerance (odl_gate_policy.noise_examples) */
#ifndef FW_NOISE_EXAMPLES
#define FW_NOISE_EXAMPLES 1
#endif
#ifndef FW_NEW_STRATEGY
#define FW_NEW_STRATEGY ODL_STRATEGY_REPLAY
#endif
/* the learner's random stream (minibatch order, replay draws); seed_sweep.sh
 * runs others, and sets the knobs below, which the firmware leaves at the
 * learner's defaults */
#ifndef FW_SEED
#define FW_SEED 7
#endif
#ifndef FW_EVAL_SMALL
#define FW_EVAL_SMALL 200
#endif
#if FW_EVAL_SMALL > ODL_DATA_N_TEST
#error "FW_EVAL_SMALL must not exceed the test slice"
#endif
/* seed_sweep.sh: the headline strategies only (-DFW_HEADLINE_ONLY) */
#ifdef FW_HEADLINE_ONLY
#define HEADLINE_ONLY 1
#else
#define HEADLINE_ONLY 0
#endif
/* shadow evaluation's cost: a candidate scored on the next SHADOW_N labelled examples */
#define SHADOW_N 10

static odl_learner_cfg strategy_cfg(const scenario *sc, odl_strategy strat, int32_t shadow_n)
{
    odl_learner_cfg lc = odl_learner_cfg_for(strat);
    lc.boundary = 1; /* the head source's layer 1 is the file's layer `boundary` */
    lc.max_classes = sc->max_classes;
    lc.max_collected = LEARNER_COLLECTED;
    lc.guard_size = LEARNER_GUARD;
    lc.versions = LEARNER_VERSIONS;
#ifndef FW_GUARD_F32
    lc.guard_dtype = ODL_REPLAY_INT8; /* the guard sets as replay keeps its buffer: a quarter of the bytes */
#endif
    /* 20 examples per update hold out 5: one of them must not veto an update */
    lc.gate.noise_examples = FW_NOISE_EXAMPLES;
#ifdef FW_HOLDOUT_EVERY
    lc.holdout_every = FW_HOLDOUT_EVERY;
#endif
#ifdef FW_GATE_OFF /* seed_sweep.sh's diagnosis only: what the updates would give with every one accepted */
    lc.gate.new_target = 0.0f;
    lc.gate.max_old_drop = 1.0f;
    lc.gate.require_avg_not_worse = 0;
#endif
    lc.lr = sc->lr;
    if (lc.replay.capacity > 0) {
        lc.replay.capacity = FW_REPLAY_SLOTS;
        lc.replay.dtype = ODL_REPLAY_INT8;
    }
    lc.shadow_n = shadow_n;
    if (lc.adapt.ewc_lambda > 0)
        lc.adapt.ewc_lambda = FW_EWC_LAMBDA;
#ifdef FW_LWF_WEIGHT
    if (lc.adapt.lwf_weight > 0)
        lc.adapt.lwf_weight = FW_LWF_WEIGHT;
#endif
#ifdef FW_EPOCHS
    lc.adapt.epochs = FW_EPOCHS;
#endif
#ifdef FW_GUARD
    lc.guard_size = FW_GUARD;
#endif
    return lc;
}

#define FB_LOG 40 /* examples whose feedback cost is kept (shadow evaluation's cost) */

/* What one run (a scenario under a strategy) holds (arenas A and B) */
typedef struct session {
    odl_model_desc desc;
    int32_t boundary;
    odl_qmodel *q;
    odl_model *hsrc;
    odl_learner *L;
    odl_store *store;
    odl_arena aa, ab;
    odl_mem_plan qp, lp;
    size_t dim;
    odl_rng rng;
    odl_strategy strat;
    int32_t guard; /* the guard sets' size it runs with */
    int32_t updates_ok, updates_back, update_count, accepted, rejected, drift_events;
    uint64_t update_insns, example_insns, insn_seed_image;
    uint32_t fb_insns[FB_LOG];   /* feedback_latent's instructions, per example */
    uint8_t fb_scored[FB_LOG];   /* 1 where a candidate was scored by it */
} session;

/* the runs, one after another (static: the stack is tight); the shadow
 * evaluation's cost compares two */
static session run_a, run_b;
static odl_learner_status fw_status; /* the learner's status, read by one function at a time */
static odl_store_ram store_ram;
static odl_store_flash store_fl;

/* The INT8 prefix (A) and the head's source (B, from file layer `first`) */
static void open_base(const scenario *sc, session *ss, int32_t first_back, int quiet)
{
    static odl_node_desc desc_nodes[FW_NODES];
    odl_diag diag;
    odl_diag_clear(&diag);
    odl_desc_init(&ss->desc, desc_nodes, FW_NODES, 1, 1, 1);
    TRY("read INT8 file", odl_qfile_read_desc(sc->file, sc->file_len, &ss->desc, &ss->boundary, &diag));
    TRY("plan INT8", odl_qmodel_plan_in_place(&ss->desc, ss->boundary, 1, &ss->qp, &diag));
    odl_arena_init(&ss->aa, arena_buf, FW_ARENA_A);
    odl_arena_init(&ss->ab, arena_buf + FW_ARENA_A, FW_ARENA_B);
    /* the INT8 weights stay in flash: the arena holds activations, conv scratch and state */
    TRY("init INT8", odl_qmodel_init_in_place(&ss->q, &ss->desc, ss->boundary, 1, &ss->aa, &diag));
    TRY("load INT8", odl_qmodel_load_in_place(ss->q, sc->file, sc->file_len, &diag));
    ss->dim = odl_qmodel_latent_size(ss->q);
    if (ss->dim > Z_MAX)
        die("latent larger than Z_MAX", ODL_ERR_SHAPE, NULL);
    if (!quiet) {
        size_t int8_bytes, fp32_bytes;
        odl_qmodel_param_bytes(ss->q, &int8_bytes, &fp32_bytes);
        target_logf("[%s] base: edge-cnn from flash at 0x%x (%zu bytes); INT8 prefix (layers 0..%d, %zu parameter "
                    "bytes for %zu FP32, in place in flash) in RAM %zu bytes (params %zu, scratch %zu, state %zu); "
                    "latent %zu floats",
                    sc->name, (unsigned)(uintptr_t)sc->file, sc->file_len, (int)ss->boundary - 1, int8_bytes,
                    fp32_bytes, ss->qp.total, ss->qp.bytes[ODL_MEM_PARAMS], ss->qp.bytes[ODL_MEM_SCRATCH],
                    ss->qp.bytes[ODL_MEM_STATE], ss->dim);
    }
    odl_mem_plan hp;
    ss->hsrc = head_source(sc->file, sc->file_len, &ss->desc, ss->boundary - first_back, &ss->ab, &hp, &diag);
    if (!quiet)
        target_logf("[%s] head source: FP32 layers %d..%d of the file, weights in place in flash; RAM %zu bytes",
                    sc->name, (int)(ss->boundary - 1 - first_back), (int)ss->desc.n_layers - 1, hp.total);
}

/* A run's steps 1-2: the INT8 prefix (A), the head source, the learner and
 * the store (B), seeded with the old latents (the first n_seed old images
 * considered). Returns 0 without a learner when the strategy's plan does
 * not fit arena B (logged). */
static int open_session(const scenario *sc, odl_strategy strat, int32_t shadow_n, int32_t n_seed, int32_t guard_max,
                        session *ss, int quiet)
{
    odl_diag diag;
    odl_diag_clear(&diag);
    memset(ss, 0, sizeof *ss);
    ss->strat = strat;
    const char *sn = odl_strategy_name(strat);
    open_base(sc, ss, 0, quiet);
    odl_learner_cfg lc = strategy_cfg(sc, strat, shadow_n);
    if (guard_max > 0 && lc.guard_size > guard_max)
        lc.guard_size = guard_max;
    /* room for the store handle too */
    const size_t room = ss->ab.capacity - ss->ab.used - STORE_HANDLE;
    /* a strategy that does not fit with the firmware's guard sets runs with
     * smaller ones (its Fisher, for EWC, is taken on the old guard set) */
    for (;;) {
        TRY("plan learner", odl_learner_plan(&lc, ss->hsrc, &ss->lp, &diag));
        if (ss->lp.total <= room || lc.guard_size <= 10)
            break;
        lc.guard_size -= 10;
    }
    target_logf("[%s] learner (%s%s, guard sets of %d): plan %zu bytes (params %zu, grads %zu, optimizer %zu, "
                "activations %zu, scratch %zu, buffers %zu, state %zu)%s",
                sc->name, sn, shadow_n ? ", shadow evaluation" : "", (int)lc.guard_size, ss->lp.total,
                ss->lp.bytes[0], ss->lp.bytes[1], ss->lp.bytes[2], ss->lp.bytes[3], ss->lp.bytes[4], ss->lp.bytes[5],
                ss->lp.bytes[6], ss->lp.total > room ? "; does not fit arena B even so" : "");
    ss->guard = lc.guard_size;
    if (ss->lp.total > room)
        return 0;
    TRY("init learner", odl_learner_init(&ss->L, &lc, ss->hsrc, &ss->ab, &diag));
    if (!quiet)
        check(odl_learner_dim(ss->L) == (int32_t)ss->dim, "the learner's latent is the INT8 prefix's");
    odl_rng_seed(&ss->rng, FW_SEED, 1);

    /* the version store over RAM, empty */
    memset(store_mem, 0, sizeof store_mem);
    store_ram = (odl_store_ram){store_mem, sizeof store_mem, 0};
    memset(&store_fl, 0, sizeof store_fl);
    store_fl.read = odl_store_ram_read;
    store_fl.write = odl_store_ram_write;
    store_fl.erase = odl_store_ram_erase;
    store_fl.sync = ram_sync;
    store_fl.ctx = &store_ram;
    store_fl.capacity = sizeof store_mem;
    store_fl.erase_size = 0;
    store_fl.n_slots = STORE_SLOTS;
    odl_store_io io;
    TRY("store layout", odl_store_flash_io(&store_fl, &io, &diag));
    TRY("store open", odl_store_open(&ss->store, &io, &ss->ab, &diag));
    if (!quiet)
        target_logf("[%s] arenas: A %zu of %d bytes (INT8 prefix), B %zu of %d (head source, learner, store)",
                    sc->name, ss->aa.used, FW_ARENA_A, ss->ab.used, FW_ARENA_B);

    /* seed with the old data: INT8 latents, SEED_CHUNK at a time */
    uint64_t t0 = target_instructions();
    int32_t seeded = 0;
    for (int k = 0; k < ODL_DATA_N_OLD && k < n_seed;) {
        int n = 0;
        for (; k < ODL_DATA_N_OLD && k < n_seed && n < SEED_CHUNK; k++) {
            if (odl_data_old_y[k] >= sc->old_below)
                continue;
            int8_latent(ss->q, odl_data_old_x + (size_t)k * IN_SIZE, 0, zbuf + (size_t)n * ss->dim, NULL, NULL,
                        &diag);
            ybuf[n++] = odl_data_old_y[k];
        }
        if (n)
            TRY("seed old", odl_learner_seed_old_latent(ss->L, zbuf, ybuf, n, &ss->rng, &diag));
        seeded += n;
    }
    ss->insn_seed_image = (target_instructions() - t0) / (uint64_t)(seeded ? seeded : 1);
    return 1;
}

/* A run's step 3: the first n of the user's examples through predict +
 * feedback, an update every UPDATE_EVERY; accepted heads are committed to
 * the store. */
static void run_stream(const scenario *sc, session *ss, int32_t n_user, int quiet)
{
    odl_diag diag;
    odl_diag_clear(&diag);
    const char *sn = odl_strategy_name(ss->strat);
    odl_learner_status *const st = &fw_status;
    for (int k = 0; k < n_user; k++) {
        uint64_t e0 = target_instructions();
        float std;
        int8_latent(ss->q, sc->user_x + (size_t)k * IN_SIZE, sc->drift, zbuf, &std, NULL, &diag);
        int32_t cls;
        float conf;
        odl_status s = odl_learner_predict_latent(ss->L, zbuf, std, &cls, &conf, &diag);
        if (s < 0)
            die("predict", s, &diag);
        ss->drift_events += s == ODL_EVENT_DRIFT;
        odl_reason why = ODL_REASON_NONE;
        odl_learner_get_status(ss->L, st);
        const int shadowing = st->shadow_active;
        uint64_t f0 = target_instructions();
        s = odl_learner_feedback_latent(ss->L, zbuf, sc->user_y[k], &why, &diag);
        uint64_t f1 = target_instructions();
        ss->example_insns += f1 - e0;
        if (k < FB_LOG) {
            ss->fb_insns[k] = (uint32_t)(f1 - f0);
            ss->fb_scored[k] = (uint8_t)shadowing;
        }
        if (shadowing) {
            odl_learner_get_status(ss->L, st);
            if (!st->shadow_active)
                target_logf("[%s] shadow evaluation (%s): %s", sc->name, sn, st->shadow_decision);
        }
        if (s < 0)
            die("feedback", s, &diag);
        if (s == ODL_EVENT_REJECTED)
            ss->rejected++;
        else
            ss->accepted++;
        odl_learner_get_status(ss->L, st);
        if (((k + 1) % UPDATE_EVERY == 0 || k + 1 == n_user) && st->collected > st->held_out && !st->shadow_active) {
            uint64_t u0 = target_instructions();
            s = odl_learner_update(ss->L, &ss->rng, &diag);
            ss->update_insns += target_instructions() - u0;
            ss->update_count++;
            if (s < 0)
                die("update", s, &diag);
            odl_learner_get_status(ss->L, st);
            target_logf("[%s] update %d (%s): %s", sc->name, (int)ss->update_count, sn, st->last_decision);
            if (s == ODL_OK) {
                ss->updates_ok++;
                membuf mb = {payload, sizeof payload, 0};
                odl_writer w = {mem_write, &mb, 0};
                TRY("serialise head", odl_model_save(odl_learner_head(ss->L), NULL, 0, &w, &diag));
                odl_store_meta meta;
                odl_store_meta_init(&meta, sn, "on-device update", ss->update_count);
                odl_store_meta_add_metric(&meta, "old", st->last_old_after, NULL);
                odl_store_meta_add_metric(&meta, "new", st->last_new_after, NULL);
                uint32_t id;
                TRY("store commit", odl_store_commit(ss->store, payload, mb.n, &meta, &id, &diag));
                if (!quiet)
                    target_logf("  committed version %u to the RAM store (%zu bytes)", (unsigned)id, mb.n);
            } else {
                ss->updates_back++;
            }
        }
    }
    target_logf("[%s] stream (%s): %d user examples, %d collected, %d refused by the gate; %d updates accepted, %d "
                "rolled back; %d drift events",
                sc->name, sn, (int)n_user, (int)ss->accepted, (int)ss->rejected, (int)ss->updates_ok,
                (int)ss->updates_back, (int)ss->drift_events);
}

/* Accuracies in per mille: the drift scenario's (a) original and (b)
 * drifted test images; the new-class scenario's (a) old classes (labels
 * below old_below) and (b) new ones. */
typedef struct acc2 {
    int32_t a, b;
} acc2;

/* The learner's accuracy (INT8 prefix + head) on the first n test images,
 * and on the first n_small of them (small may be NULL); *insns (may be NULL)
 * accumulates the INT8 prefix's instructions of the drifted pass. */
static void evaluate(const scenario *sc, session *ss, int n, int n_small, acc2 *big, acc2 *small, uint64_t *insns)
{
    odl_diag diag;
    odl_diag_clear(&diag);
    int32_t ok[2][2] = {{0, 0}, {0, 0}}, cnt[2][2] = {{0, 0}, {0, 0}}; /* [big/small][a/b] */
    for (int pass = 0; pass < (sc->drift ? 2 : 1); pass++)
        for (int k = 0; k < n; k++) {
            float std;
            int8_latent(ss->q, odl_data_test_x + (size_t)k * IN_SIZE, sc->drift && pass, zbuf, &std,
                        pass ? insns : NULL, &diag);
            int32_t cls;
            float conf;
            odl_status s = odl_learner_predict_latent(ss->L, zbuf, std, &cls, &conf, &diag);
            if (s < 0)
                die("predict", s, &diag);
            const int which = sc->drift ? pass : odl_data_test_y[k] >= sc->old_below;
            const int right = cls == odl_data_test_y[k];
            ok[0][which] += right;
            cnt[0][which]++;
            if (k < n_small) {
                ok[1][which] += right;
                cnt[1][which]++;
            }
        }
#define PM(o, c) ((c) ? (o) * 1000 / (c) : 0)
    big->a = PM(ok[0][0], cnt[0][0]);
    big->b = PM(ok[0][1], cnt[0][1]);
    if (small) {
        small->a = PM(ok[1][0], cnt[1][0]);
        small->b = PM(ok[1][1], cnt[1][1]);
    }
#undef PM
}

#define PCT(v) (int)((v) / 10), (int)((v) % 10)
#define SIGNED_PCT(v) (v) < 0 ? "-" : "+", (int)(((v) < 0 ? -(v) : (v)) / 10), (int)(((v) < 0 ? -(v) : (v)) % 10)

static const char *what_a(const scenario *sc) { return sc->drift ? "original" : "old classes"; }
static const char *what_b(const scenario *sc) { return sc->drift ? "drifted" : "new classes"; }

/* one line per strategy and scenario, for docs/mcu.md's table */
static void log_result(const scenario *sc, odl_strategy strat, int n_eval, acc2 before, acc2 after,
                       const session *ss)
{
    const int32_t da = after.a - before.a, db = after.b - before.b;
    target_logf("[%s] after (%s, %d test images): %s %d.%d%% -> %d.%d%% (%s%d.%d), %s %d.%d%% -> %d.%d%% (%s%d.%d)",
                sc->name, odl_strategy_name(strat), n_eval, what_a(sc), PCT(before.a), PCT(after.a), SIGNED_PCT(da),
                what_b(sc), PCT(before.b), PCT(after.b), SIGNED_PCT(db));
    target_logf("STRATEGY scenario=%s strategy=%s images=%d a_before=%d a_after=%d b_before=%d b_after=%d "
                "bytes=%lu guard=%d updates=%d accepted=%d insn_update=%lu",
                sc->drift ? "drift" : "new-classes", odl_strategy_name(strat), n_eval, (int)before.a, (int)after.a,
                (int)before.b, (int)after.b, (unsigned long)ss->lp.total, (int)ss->guard, (int)ss->update_count, (int)ss->updates_ok,
                (unsigned long)(ss->update_insns / (uint64_t)(ss->update_count ? ss->update_count : 1)));
}

/* "insn_update_ewc_online" from "ewc-online" */
static void cost_key(char *buf, size_t cap, const char *prefix, odl_strategy strat)
{
    size_t n = 0;
    for (const char *p = prefix; *p && n + 1 < cap; p++)
        buf[n++] = *p;
    for (const char *p = odl_strategy_name(strat); *p && n + 1 < cap; p++)
        buf[n++] = *p == '-' ? '_' : *p;
    buf[n] = 0;
}

/* Every strategy but the headline one on the scenario, on the first
 * FW_EVAL_SMALL test images (before: the base on the same images). The
 * drift scenario's runs record each strategy's instructions per update and
 * learner bytes. */
static void other_strategies(const scenario *sc, odl_strategy headline, acc2 before_small)
{
    for (int k = 0; k < ODL_STRATEGY_COUNT; k++) {
        const odl_strategy strat = (odl_strategy)k;
        if (strat == headline)
            continue;
        session *ss = &run_a;
        char key[48];
        if (strat == ODL_STRATEGY_UNFREEZE) {
            /* the last block before the head (dense 784->64 + ReLU) trains
             * too: its head source starts 2 nodes further back (flatten),
             * the learner's plan says whether it fits */
            memset(ss, 0, sizeof *ss);
            open_base(sc, ss, 2, 1);
            odl_diag diag;
            odl_diag_clear(&diag);
            odl_learner_cfg lc = strategy_cfg(sc, strat, 0);
            TRY("plan unfreeze", odl_learner_plan(&lc, ss->hsrc, &ss->lp, &diag));
            const size_t room = ss->ab.capacity - ss->ab.used;
            target_logf("[%s] learner (unfreeze: file layers %d..%d train, %d outputs): plan %zu bytes (params %zu, "
                        "grads %zu, optimizer %zu); arena B has %zu: does %sfit in 128 KB",
                        sc->name, (int)ss->boundary - 2, (int)ss->desc.n_layers - 1,
                        (int)(sc->max_classes ? sc->max_classes : odl_model_n_classes(ss->hsrc)), ss->lp.total,
                        ss->lp.bytes[ODL_MEM_PARAMS], ss->lp.bytes[ODL_MEM_GRADS], ss->lp.bytes[ODL_MEM_OPTIM], room,
                        ss->lp.total > room ? "not " : "");
            if (sc->drift) {
                cost_key(key, sizeof key, "bytes_learner_", strat);
                target_logf("COST %s %lu", key, (unsigned long)ss->lp.total);
            }
            continue;
        }
        if (!open_session(sc, strat, 0, ODL_DATA_N_OLD, 0, ss, 1))
            continue;
        run_stream(sc, ss, sc->n_user, 1);
        acc2 after;
        evaluate(sc, ss, FW_EVAL_SMALL, 0, &after, NULL, NULL);
        log_result(sc, strat, FW_EVAL_SMALL, before_small, after, ss);
        if (sc->drift) {
            cost_key(key, sizeof key, "insn_update_", strat);
            target_logf("COST %s %lu", key,
                        (unsigned long)(ss->update_insns / (uint64_t)(ss->update_count ? ss->update_count : 1)));
            cost_key(key, sizeof key, "bytes_learner_", strat);
            target_logf("COST %s %lu", key, (unsigned long)ss->lp.total);
        }
    }
}

/* The new-class scenario: a base trained on classes [0, FIRST_NEW), the user
 * teaches the others. Runs in the same arenas after the drift scenario. */
static void new_class_scenario(const scenario *sc, odl_strategy headline)
{
    session *ss = &run_a;
    if (!open_session(sc, headline, 0, ODL_DATA_N_OLD, 0, ss, 0))
        die("the new-class scenario's learner does not fit arena B", ODL_ERR_NOMEM, NULL);
    acc2 before, before_small, after;
    evaluate(sc, ss, ODL_DATA_N_TEST, FW_EVAL_SMALL, &before, &before_small, NULL);
    target_logf("[%s] before: test accuracy %d.%d%% on the old classes 0..%d, %d.%d%% on the new ones (INT8 prefix + "
                "head, %d test images)",
                sc->name, PCT(before.a), (int)sc->old_below - 1, PCT(before.b), ODL_DATA_N_TEST);
    run_stream(sc, ss, sc->n_user, 0);
    evaluate(sc, ss, ODL_DATA_N_TEST, 0, &after, NULL, NULL);
    log_result(sc, headline, ODL_DATA_N_TEST, before, after, ss);
    target_logf("SCENARIO new-classes strategy=%s old_before=%d old_after=%d new_before=%d new_after=%d",
                odl_strategy_name(headline), (int)before.a, (int)after.a, (int)before.b, (int)after.b);
    check(after.b >= 800, "new classes: at least 80% after the stream");
    check(after.a + 30 >= before.a, "new classes: old classes down by at most 3 points");
    if (!HEADLINE_ONLY)
        other_strategies(sc, headline, before_small);
}

/* Shadow evaluation's cost: the new-class scenario (its updates pass the
 * gate) with replay, seeded with the first 100 old images, 40 user
 * examples, twice: with a candidate scored on the next SHADOW_N labelled
 * examples after each accepted update, and without. Up to the first
 * accepted update the two runs are the same; on the scored examples the
 * feedback calls differ by the scoring (both heads predict), since the rest
 * of feedback (the data-quality gate) costs the same for either head. */
static void shadow_costs(const scenario *sc)
{
    session *ss = &run_a, *plain = &run_b;
    const odl_strategy strat = ODL_STRATEGY_REPLAY;
    const int32_t n_user = 40;
    if (!open_session(sc, strat, SHADOW_N, 100, 0, ss, 1))
        die("shadow evaluation: the learner does not fit", ODL_ERR_NOMEM, NULL);
    run_stream(sc, ss, n_user, 1);
    odl_learner_get_status(ss->L, &fw_status);
    const int32_t promoted = (int32_t)fw_status.shadow_promoted, dropped = (int32_t)fw_status.shadow_dropped;
    const size_t shadow_bytes = ss->lp.total;
    const int32_t guard = ss->guard;
    if (!open_session(sc, strat, 0, 100, guard, plain, 1) || plain->guard != guard)
        die("shadow evaluation: the plain learner does not fit", ODL_ERR_NOMEM, NULL);
    run_stream(sc, plain, n_user, 1);
    uint64_t with = 0, without = 0;
    int32_t scored = 0;
    for (int k = 0; k < n_user && k < FB_LOG; k++)
        if (ss->fb_scored[k]) {
            with += ss->fb_insns[k];
            without += plain->fb_insns[k];
            scored++;
        }
    const uint64_t per = scored && with > without ? (with - without) / (uint64_t)scored : 0;
    target_logf("[shadow] %s, a candidate scored on %d examples: %d promoted, %d dropped; %d scored feedback calls "
                "cost %lu instructions more than the same calls without a candidate (%lu each: both heads predict); "
                "%lu bytes more (the candidate's state)",
                odl_strategy_name(strat), SHADOW_N, (int)promoted, (int)dropped, (int)scored,
                (unsigned long)(with - without), (unsigned long)per, (unsigned long)(shadow_bytes - plain->lp.total));
    check(promoted + dropped >= 1 && scored >= SHADOW_N,
          "shadow evaluation: a candidate was scored and decided");
    target_logf("COST insn_shadow_score %lu", (unsigned long)per);
    target_logf("COST bytes_shadow %lu", (unsigned long)(shadow_bytes - plain->lp.total));
}

int main(void)
{
    odl_diag diag;
    odl_diag_clear(&diag);
    target_counter_start();
    target_logf("odl %s on Cortex-M4F (mps2-an386): RAM budget %d KB = stack %zu + static %zu + heap %zu",
                ODL_VERSION_STRING, FW_RAM_KB, target_stack_size(), target_ram_static() - target_stack_size(),
                target_heap_size());
    target_logf("instruction counter: SysTick, %lu ticks per 4,000,000 instructions (calibrated)",
                (unsigned long)target_cal_ticks());

    /* the drift scenario: the base on all classes, the user's examples
     * through the data's shift; the headline strategy first */
    const scenario drift_sc = {"drift", FW_LR_DRIFT, odl_base, odl_base_len, 0, 10000,
                               odl_data_user_x, odl_data_user_y, ODL_DATA_N_USER, 1};
    const odl_strategy drift_strat = FW_DRIFT_STRATEGY;
    const char *drift_name = odl_strategy_name(drift_strat);
    session *ss = &run_a;
    if (!open_session(&drift_sc, drift_strat, 0, ODL_DATA_N_OLD, 0, ss, 0))
        die("the drift scenario's learner does not fit arena B", ODL_ERR_NOMEM, NULL);
    odl_model_desc desc = ss->desc;
    const int32_t boundary = ss->boundary;
    odl_qmodel *q = ss->q;
    odl_learner *L = ss->L;
    odl_store *store = ss->store;
    odl_rng rng = ss->rng;
    const uint8_t *file = odl_base;
    const size_t file_len = odl_base_len;

    /* accuracy before: the base (INT8 prefix + the file's head) */
    acc2 before, before_small, after;
    evaluate(&drift_sc, ss, ODL_DATA_N_TEST, FW_EVAL_SMALL, &before, &before_small, NULL);
    target_logf("[drift] before: test accuracy %d.%d%% original, %d.%d%% drifted (%s), %d images, INT8 prefix + head",
                PCT(before.a), PCT(before.b), ODL_DATA_SHIFT, ODL_DATA_N_TEST);
    check(before.b + 100 <= before.a, "drift: the shift costs the base at least 10 points");

    run_stream(&drift_sc, ss, drift_sc.n_user, 0);
    const int32_t updates_ok = ss->updates_ok;

    /* accuracy after */
    uint64_t q_insns = 0;
    evaluate(&drift_sc, ss, ODL_DATA_N_TEST, 0, &after, NULL, &q_insns);
    log_result(&drift_sc, drift_strat, ODL_DATA_N_TEST, before, after, ss);
    target_logf("SCENARIO drift strategy=%s orig_before=%d orig_after=%d drift_before=%d drift_after=%d", drift_name,
                (int)before.a, (int)after.a, (int)before.b, (int)after.b);
    check(updates_ok >= 1, "at least one update accepted by the evaluation gate");
    check(after.b >= before.b + 80, "drift: drifted accuracy up by at least 8 points");
    check(after.a + 10 >= before.a, "drift: original accuracy down by at most 1 point");

    /* the store holds the current head, bit for bit; payload keeps it */
    size_t head_len = 0;
    {
        size_t len = 0;
        uint8_t *back = (uint8_t *)xbuf; /* free here: the readback goes there */
        membuf mb = {payload, sizeof payload, 0};
        odl_writer w = {mem_write, &mb, 0};
        TRY("serialise head", odl_model_save(odl_learner_head(L), NULL, 0, &w, &diag));
        head_len = mb.n;
        if (updates_ok) {
            TRY("store read", odl_store_read(store, odl_store_current(store), back, sizeof xbuf, &len, NULL, &diag));
            check(len == mb.n && memcmp(back, payload, len) == 0, "the store's current version is the learner's head");
            check(odl_store_count(store) == (updates_ok < STORE_SLOTS - 1 ? updates_ok : STORE_SLOTS - 1),
                  "the store keeps the last versions");
        }
    }
    /* the gate is not a formality: the user's examples again, each labelled
     * one class off (a confident contradiction sent twice, as a user who
     * insists), make an update that must be rolled back, the head left as
     * it was (payload holds it) */
    {
        odl_learner_status *const ms = &fw_status;
        int32_t wrong = 0;
        for (int k = 0; k < drift_sc.n_user; k++) {
            odl_learner_get_status(L, ms);
            if (ms->collected >= LEARNER_COLLECTED)
                break;
            int8_latent(q, drift_sc.user_x + (size_t)k * IN_SIZE, 1, zbuf, NULL, NULL, &diag);
            const int32_t bad = (drift_sc.user_y[k] + 3) % 10;
            odl_reason why = ODL_REASON_NONE;
            odl_status s = odl_learner_feedback_latent(L, zbuf, bad, &why, &diag);
            if (s == ODL_EVENT_REJECTED && why == ODL_REASON_CONTRADICTS)
                s = odl_learner_feedback_latent(L, zbuf, bad, &why, &diag);
            if (s < 0)
                die("feedback (mislabelled)", s, &diag);
            wrong += s == ODL_OK;
        }
        odl_status s = odl_learner_update(L, &rng, &diag);
        if (s < 0)
            die("update (mislabelled)", s, &diag);
        odl_learner_get_status(L, ms);
        target_logf("[drift] %d mislabelled examples (%s): %s", (int)wrong, drift_name, ms->last_decision);
        membuf mb = {(uint8_t *)xbuf, sizeof xbuf, 0};
        odl_writer w = {mem_write, &mb, 0};
        TRY("serialise head", odl_model_save(odl_learner_head(L), NULL, 0, &w, &diag));
        check(s == ODL_EVENT_ROLLED_BACK && mb.n == head_len && memcmp(xbuf, payload, head_len) == 0,
              "drift: a mislabelled update is rolled back, the head exactly as before");
    }
    /* what the FP32 comparison needs from the learner (it goes with arena B) */
    float bias[CLASSES_MAX];
    odl_learner_status *const st = &fw_status;
    odl_learner_get_status(L, st);
    const int32_t active = st->active_classes;
    if (active > CLASSES_MAX)
        die("too many classes", ODL_ERR_SHAPE, NULL);
    memcpy(bias, odl_learner_bias(L), sizeof(float) * (size_t)active);
    const size_t b_used = ss->ab.used;
    odl_arena aa, ab;

    /* 6. cost: a head update at batch 1, on a head loaded from the stored
     * bytes (arena B: the learner and the store are done from here on) */
    static odl_node_desc hd_nodes[FW_NODES];
    odl_model_desc hd;
    odl_desc_init(&hd, hd_nodes, FW_NODES, 1, 1, 1);
    TRY("read head", odl_file_read_desc(payload, head_len, &hd, &diag));
    odl_model_cfg hc = odl_model_cfg_defaults();
    hc.mode = ODL_MODE_TRAIN;
    hc.max_batch = 1;
    odl_arena_init(&ab, arena_buf + FW_ARENA_A, FW_ARENA_B);
    odl_model *h1;
    TRY("init cost head", odl_model_init(&h1, &hd, &hc, &ab, &diag));
    TRY("load cost head", odl_model_load_params(h1, payload, head_len, &diag));
    const int reps = 16;
    uint64_t lat_insns = 0, raw_insns = 0, stats_insns = 0;
    for (int r = 0; r < reps; r++) {
        int32_t y = odl_data_user_y[r];
        float loss, mean, std;
        image(odl_data_user_x + (size_t)r * IN_SIZE, 1, xbuf);
        uint64_t c0 = target_instructions();
        TRY("sample stats", odl_drift_sample_stats(xbuf, IN_SIZE, &mean, &std));
        uint64_t c1 = target_instructions();
        TRY("INT8 forward", odl_qmodel_forward(q, xbuf, 1, zbuf, &diag));
        uint64_t c2 = target_instructions();
        TRY("train step", odl_model_train_step(h1, 0, zbuf, &y, 1, &rng, &loss, &diag));
        uint64_t c3 = target_instructions();
        stats_insns += c1 - c0;
        lat_insns += c3 - c2;
        raw_insns += c3 - c1;
    }
    const size_t b_cost = ab.used;

    /* 7. the FP32 base (weights in flash, scratch in the whole arena: the
     * INT8 prefix is done too) and the learned head, on the drifted slice */
    odl_desc_freeze_below(&desc, desc.n_layers);
    odl_model_cfg mc = odl_model_cfg_defaults();
    mc.mode = ODL_MODE_INFER;
    mc.max_batch = 1;
    mc.frozen_weights_in_place = 1;
    odl_mem_plan bp;
    TRY("plan FP32 base", odl_model_plan(&desc, &mc, &bp, &diag));
    odl_arena_init(&aa, arena_buf, sizeof arena_buf);
    odl_model *base, *head;
    TRY("init FP32 base", odl_model_init(&base, &desc, &mc, &aa, &diag));
    TRY("load FP32 base", odl_model_load_params(base, file, file_len, &diag));
    odl_desc_freeze_below(&hd, hd.n_layers);
    TRY("init head", odl_model_init(&head, &hd, &mc, &aa, &diag)); /* in place from payload */
    TRY("load head", odl_model_load_params(head, payload, head_len, &diag));
    int32_t ok32 = 0;
    uint64_t f_insns = 0;
    for (int k = 0; k < ODL_DATA_N_TEST; k++) {
        image(odl_data_test_x + (size_t)k * IN_SIZE, 1, xbuf);
        uint64_t f0 = target_instructions();
        TRY("FP32 forward", odl_model_forward_range(base, 0, boundary, xbuf, 1, zbuf, &diag));
        f_insns += target_instructions() - f0;
        const float *o;
        TRY("head forward", odl_model_forward(head, 0, zbuf, 1, &o, &diag));
        int32_t best = 0;
        for (int32_t j = 1; j < active; j++)
            if (o[j] + bias[j] > o[best] + bias[best])
                best = j;
        ok32 += best == odl_data_test_y[k];
    }
    ok32 = ok32 * 1000 / ODL_DATA_N_TEST;
    target_logf("after, FP32 base (RAM %zu bytes, scratch %zu) + the same head: %d.%d%% drifted (INT8: %d.%d%%)",
                bp.total, bp.bytes[ODL_MEM_SCRATCH], PCT(ok32), PCT(after.b));
    check(after.b + 30 >= ok32, "INT8 prefix within 3 points of FP32 on the drifted slice");

    char key[48];
    target_logf("COST insn_update_latent %lu", (unsigned long)(lat_insns / reps));
    target_logf("COST insn_update_raw_int8 %lu", (unsigned long)(raw_insns / reps));
    target_logf("COST insn_int8_prefix %lu", (unsigned long)(q_insns / ODL_DATA_N_TEST));
    target_logf("COST insn_int8_image_seed %lu", (unsigned long)ss->insn_seed_image);
    target_logf("COST insn_sample_stats %lu", (unsigned long)(stats_insns / reps));
    target_logf("COST insn_example_int8 %lu", (unsigned long)(ss->example_insns / ODL_DATA_N_USER));
    cost_key(key, sizeof key, "insn_update_", drift_strat);
    target_logf("COST %s %lu", key,
                (unsigned long)(ss->update_insns / (uint64_t)(ss->update_count ? ss->update_count : 1)));
    cost_key(key, sizeof key, "bytes_learner_", drift_strat);
    target_logf("COST %s %lu", key, (unsigned long)ss->lp.total);
    target_logf("COST insn_fp32_prefix %lu", (unsigned long)(f_insns / ODL_DATA_N_TEST));
    target_logf("arenas: %zu bytes = A %d + B %d; used: A %zu (INT8 prefix), B %zu (head source, learner, store), "
                "then B %zu (cost head), then %zu (FP32 base + head)",
                sizeof arena_buf, FW_ARENA_A, FW_ARENA_B, ss->qp.total, b_used, b_cost, aa.used);

    /* every other strategy on the drift (the same arenas, now free) */
    if (!HEADLINE_ONLY)
        other_strategies(&drift_sc, drift_strat, before_small);

    /* the new-class scenario */
    const scenario new_sc = {"new classes", FW_LR_NEW, odl_base8, odl_base8_len, 10, ODL_DATA_FIRST_NEW_CLASS,
                             odl_data_new_x, odl_data_new_y, ODL_DATA_N_NEW, 0};
    new_class_scenario(&new_sc, FW_NEW_STRATEGY);
    if (!HEADLINE_ONLY)
        shadow_costs(&new_sc);

    const size_t hw = target_stack_high_water();
    target_logf("COST stack_high_water %lu", (unsigned long)hw);
    target_logf("stack: %zu of %zu bytes used at the deepest", hw, target_stack_size());
    check(hw + 1024 <= target_stack_size(), "stack high-water mark at least 1 KB below the stack size");
    target_logf("%d passed, %d failed", n_pass, n_fail);
    return n_fail ? 1 : 0;
}
