/* firmware.c — on-device learning on a Cortex-M4F in 256 KB of RAM, on the
 * INT8 base.
 *
 * Flash holds the edge-cnn base (`odl quantize`'s INT8 .odl file: the FP32
 * model plus INT8 layers [0, boundary), embedded by `odl export-c`), 200 old
 * training images, 100 user examples (10 per class, seen through the S1 gain
 * drift) and a 500-image test slice. The program:
 *
 *   1. loads the INT8 prefix from the file in flash (arena A): every latent
 *      the learner sees comes from odl_qmodel_forward;
 *   2. builds the head's source, an FP32 model of the file's layers
 *      [boundary-1, L) whose weights stay in flash (the learner copies its
 *      head from it), then the learner (replay, gates) and a RAM-backed
 *      version store (arena B); seeds the learner with the latents of the
 *      old images, SEED_CHUNK at a time (odl_learner_seed_old_latent);
 *   3. measures test accuracy (original and drifted) before: INT8 prefix +
 *      head, through odl_learner_predict_latent;
 *   4. streams the user examples through predict_latent + feedback_latent,
 *      updating every UPDATE_EVERY examples; accepted heads are committed to
 *      the store;
 *   5. measures accuracy after and checks that the store's current version
 *      is the learner's head;
 *   6. measures instructions per head update (batch 1 from a latent, and
 *      from a raw image through the INT8 prefix) with a head loaded from the
 *      store's bytes (arena B, the learner is done);
 *   7. compares with the FP32 base: the whole arena now holds the FP32 base
 *      (weights in flash) and the learned head;
 *   8. checks the stack.
 *
 * Any failure exits non-zero (a fault included: startup.c). The last line is
 * "N passed, N failed" over the firmware's checks. */
#include <string.h>

#include "odl/odl.h"
#include "target.h"
#include "data.h"
#include "model_data.h"

#define IN_SIZE (ODL_DATA_C * ODL_DATA_H * ODL_DATA_W)
#define UPDATE_EVERY 20
#define FW_NODES ODL_EDGE_CNN_NODES /* node storage: the firmware's models are edge-cnn and its head */
#define SEED_CHUNK 10 /* old latents per odl_learner_seed_old_latent call */
#define Z_MAX 64      /* latent floats (edge-cnn: 64; checked at run time) */
#define CLASSES_MAX 64

/* One arena buffer (sizes checked against the plans at run time; the linker
 * script checks that it, .data and the stack fit in 256 KB):
 *   A = the first FW_ARENA_A bytes: the INT8 prefix;
 *   B = the rest: the head's source, the learner and the store; after the
 *       stream, the cost-measurement head.
 * At the end the whole buffer holds the FP32 base (scratch only: its weights
 * are in flash) and the learned head, for the comparison. */
#ifndef FW_ARENA_A
#define FW_ARENA_A 98928 /* INT8 prefix 98,928 */
#endif
#ifndef FW_ARENA_B
#define FW_ARENA_B 101184 /* head source 5,648 + learner 93,936 + store 1,088, + 512 headroom for
                             internal structs growing (the plans at boot say what is used) */
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

static void image(const uint8_t *src, int drift, float *x)
{
    for (int i = 0; i < IN_SIZE; i++) {
        float v = (float)src[i] / 255.0f;
        if (drift) {
            v = ODL_DATA_GAIN * v + ODL_DATA_OFFSET;
            v = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
        }
        x[i] = v;
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

/* accuracy (per mille) of the learner (INT8 prefix + head) on the test slice */
static int32_t learner_accuracy(odl_learner *L, odl_qmodel *q, int drift, uint64_t *insns, odl_diag *dg)
{
    int32_t ok = 0;
    for (int k = 0; k < ODL_DATA_N_TEST; k++) {
        float std;
        int8_latent(q, odl_data_test_x + (size_t)k * IN_SIZE, drift, zbuf, &std, insns, dg);
        int32_t cls;
        float conf;
        odl_status s = odl_learner_predict_latent(L, zbuf, std, &cls, &conf, dg);
        if (s < 0)
            die("predict", s, dg);
        ok += cls == odl_data_test_y[k];
    }
    return ok * 1000 / ODL_DATA_N_TEST;
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
#define PAYLOAD_MAX 4096
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

int main(void)
{
    odl_diag diag;
    odl_diag_clear(&diag);
    target_counter_start();
    target_logf("odl %s on Cortex-M4F (mps2-an386): RAM budget 256 KB = stack %zu + static %zu + heap %zu",
                ODL_VERSION_STRING, target_stack_size(), target_ram_static() - target_stack_size(),
                target_heap_size());
    target_logf("instruction counter: SysTick, %lu ticks per 4,000,000 instructions (calibrated)",
                (unsigned long)target_cal_ticks());

    /* 1. the INT8 prefix, from the file in flash (arena A) */
    const uint8_t *file = odl_base;
    const size_t file_len = odl_base_len;
    static odl_node_desc desc_nodes[FW_NODES];
    odl_model_desc desc;
    odl_desc_init(&desc, desc_nodes, FW_NODES, 1, 1, 1);
    int32_t boundary;
    TRY("read INT8 file", odl_qfile_read_desc(file, file_len, &desc, &boundary, &diag));
    odl_mem_plan qp;
    TRY("plan INT8", odl_qmodel_plan(&desc, boundary, 1, &qp, &diag));
    odl_arena aa, ab;
    odl_arena_init(&aa, arena_buf, FW_ARENA_A);
    odl_arena_init(&ab, arena_buf + FW_ARENA_A, FW_ARENA_B);
    odl_qmodel *q;
    TRY("init INT8", odl_qmodel_init(&q, &desc, boundary, 1, &aa, &diag));
    TRY("load INT8", odl_qmodel_load(q, file, file_len, &diag));
    const size_t dim = odl_qmodel_latent_size(q);
    if (dim > Z_MAX)
        die("latent larger than Z_MAX", ODL_ERR_SHAPE, NULL);
    size_t int8_bytes, fp32_bytes;
    odl_qmodel_param_bytes(q, &int8_bytes, &fp32_bytes);
    target_logf("base: edge-cnn from flash at 0x%x (%zu bytes); INT8 prefix (layers 0..%d, %zu parameter bytes "
                "for %zu FP32) in RAM %zu bytes (params %zu, scratch %zu, state %zu); latent %zu floats",
                (unsigned)(uintptr_t)file, file_len, (int)boundary - 1, int8_bytes, fp32_bytes, qp.total,
                qp.bytes[ODL_MEM_PARAMS], qp.bytes[ODL_MEM_SCRATCH], qp.bytes[ODL_MEM_STATE], dim);

    /* 2. the head's source (FP32, weights in flash), the learner, the store (arena B) */
    odl_mem_plan hp;
    odl_model *hsrc = head_source(file, file_len, &desc, boundary, &ab, &hp, &diag);
    target_logf("head source: FP32 layers %d..%d of the file, weights in place in flash; RAM %zu bytes",
                (int)boundary - 1, (int)desc.n_layers - 1, hp.total);
    odl_learner_cfg lc = odl_learner_cfg_defaults();
    lc.boundary = 1; /* the head source's layer 1 is the file's layer `boundary` */
    lc.max_collected = 32;
    lc.guard_size = 50;
    lc.versions = 2;
    lc.replay.capacity = 100;
    lc.replay.dtype = ODL_REPLAY_INT8;
    odl_mem_plan lp;
    TRY("plan learner", odl_learner_plan(&lc, hsrc, &lp, &diag));
    target_logf("learner plan: %zu bytes (params %zu, grads %zu, optimizer %zu, activations %zu, scratch %zu, "
                "buffers %zu, state %zu)",
                lp.total, lp.bytes[0], lp.bytes[1], lp.bytes[2], lp.bytes[3], lp.bytes[4], lp.bytes[5], lp.bytes[6]);
    odl_learner *L;
    TRY("init learner", odl_learner_init(&L, &lc, hsrc, &ab, &diag));
    check(odl_learner_dim(L) == (int32_t)dim, "the learner's latent is the INT8 prefix's");
    odl_rng rng;
    odl_rng_seed(&rng, 7, 1);

    /* the version store over RAM */
    odl_store_ram ram = {store_mem, sizeof store_mem, 0};
    odl_store_flash fl;
    memset(&fl, 0, sizeof fl);
    fl.read = odl_store_ram_read;
    fl.write = odl_store_ram_write;
    fl.erase = odl_store_ram_erase;
    fl.sync = ram_sync;
    fl.ctx = &ram;
    fl.capacity = sizeof store_mem;
    fl.erase_size = 0;
    fl.n_slots = STORE_SLOTS;
    odl_store_io io;
    TRY("store layout", odl_store_flash_io(&fl, &io, &diag));
    odl_store *store;
    TRY("store open", odl_store_open(&store, &io, &ab, &diag));
    target_logf("arenas: A %zu of %d bytes (INT8 prefix), B %zu of %d (head source, learner, store)", aa.used,
                FW_ARENA_A, ab.used, FW_ARENA_B);

    /* seed with the old data: INT8 latents, SEED_CHUNK at a time */
    uint64_t t0 = target_instructions();
    for (int k = 0; k < ODL_DATA_N_OLD; k += SEED_CHUNK) {
        int n = ODL_DATA_N_OLD - k < SEED_CHUNK ? ODL_DATA_N_OLD - k : SEED_CHUNK;
        for (int j = 0; j < n; j++) {
            int8_latent(q, odl_data_old_x + (size_t)(k + j) * IN_SIZE, 0, zbuf + (size_t)j * dim, NULL, NULL, &diag);
            ybuf[j] = odl_data_old_y[k + j];
        }
        TRY("seed old", odl_learner_seed_old_latent(L, zbuf, ybuf, n, &rng, &diag));
    }
    const uint64_t insn_seed_image = (target_instructions() - t0) / ODL_DATA_N_OLD;

    /* 3. accuracy before */
    const int32_t orig_before = learner_accuracy(L, q, 0, NULL, &diag);
    const int32_t drift_before = learner_accuracy(L, q, 1, NULL, &diag);
    target_logf("before: test accuracy %d.%d%% original, %d.%d%% drifted (S1 gain %d/100, offset %d/100), %d images, "
                "INT8 prefix + head",
                (int)(orig_before / 10), (int)(orig_before % 10), (int)(drift_before / 10), (int)(drift_before % 10),
                (int)(ODL_DATA_GAIN * 100.0f + 0.5f), (int)(ODL_DATA_OFFSET * 100.0f + 0.5f), ODL_DATA_N_TEST);

    /* 4. the user's stream */
    int32_t accepted = 0, rejected = 0, updates_ok = 0, updates_back = 0, drift_events = 0;
    uint64_t update_insns = 0, update_count = 0, example_insns = 0;
    for (int k = 0; k < ODL_DATA_N_USER; k++) {
        uint64_t e0 = target_instructions();
        float std;
        int8_latent(q, odl_data_user_x + (size_t)k * IN_SIZE, 1, zbuf, &std, NULL, &diag);
        int32_t cls;
        float conf;
        odl_status s = odl_learner_predict_latent(L, zbuf, std, &cls, &conf, &diag);
        if (s < 0)
            die("predict", s, &diag);
        drift_events += s == ODL_EVENT_DRIFT;
        odl_reason why = ODL_REASON_NONE;
        s = odl_learner_feedback_latent(L, zbuf, odl_data_user_y[k], &why, &diag);
        example_insns += target_instructions() - e0;
        if (s < 0)
            die("feedback", s, &diag);
        if (s == ODL_EVENT_REJECTED)
            rejected++;
        else
            accepted++;
        if ((k + 1) % UPDATE_EVERY == 0 || k + 1 == ODL_DATA_N_USER) {
            uint64_t u0 = target_instructions();
            s = odl_learner_update(L, &rng, &diag);
            update_insns += target_instructions() - u0;
            update_count++;
            if (s < 0)
                die("update", s, &diag);
            odl_learner_status st;
            odl_learner_get_status(L, &st);
            target_logf("update %d: %s", (int)update_count, st.last_decision);
            if (s == ODL_OK) {
                updates_ok++;
                membuf mb = {payload, sizeof payload, 0};
                odl_writer w = {mem_write, &mb, 0};
                TRY("serialise head", odl_model_save(odl_learner_head(L), NULL, 0, &w, &diag));
                odl_store_meta meta;
                odl_store_meta_init(&meta, "replay", "on-device update", update_count);
                odl_store_meta_add_metric(&meta, "old", st.last_old_after, NULL);
                odl_store_meta_add_metric(&meta, "new", st.last_new_after, NULL);
                uint32_t id;
                TRY("store commit", odl_store_commit(store, payload, mb.n, &meta, &id, &diag));
                target_logf("  committed version %u to the RAM store (%zu bytes)", (unsigned)id, mb.n);
            } else {
                updates_back++;
            }
        }
    }
    odl_learner_status st;
    odl_learner_get_status(L, &st);
    target_logf("stream: %d user examples, %d collected, %d refused by the gate; %d updates accepted, %d rolled "
                "back; %d drift events",
                ODL_DATA_N_USER, (int)accepted, (int)rejected, (int)updates_ok, (int)updates_back, (int)drift_events);

    /* 5. accuracy after */
    uint64_t q_insns = 0;
    const int32_t orig_after = learner_accuracy(L, q, 0, NULL, &diag);
    const int32_t drift_after = learner_accuracy(L, q, 1, &q_insns, &diag);
    target_logf("after:  test accuracy %d.%d%% original, %d.%d%% drifted", (int)(orig_after / 10),
                (int)(orig_after % 10), (int)(drift_after / 10), (int)(drift_after % 10));
    check(updates_ok >= 1, "at least one update accepted by the evaluation gate");
    check(drift_after + 20 >= drift_before, "drifted accuracy fell by at most 2 points");
    check(orig_after + 20 >= orig_before, "original accuracy fell by at most 2 points");

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
    /* what the FP32 comparison needs from the learner (it goes with arena B) */
    float bias[CLASSES_MAX];
    const int32_t active = st.active_classes;
    if (active > CLASSES_MAX)
        die("too many classes", ODL_ERR_SHAPE, NULL);
    memcpy(bias, odl_learner_bias(L), sizeof(float) * (size_t)active);
    const size_t b_used = ab.used;

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
                bp.total, bp.bytes[ODL_MEM_SCRATCH], (int)(ok32 / 10), (int)(ok32 % 10), (int)(drift_after / 10),
                (int)(drift_after % 10));
    check(drift_after + 30 >= ok32, "INT8 prefix within 3 points of FP32 on the drifted slice");

    target_logf("COST insn_update_latent %lu", (unsigned long)(lat_insns / reps));
    target_logf("COST insn_update_raw_int8 %lu", (unsigned long)(raw_insns / reps));
    target_logf("COST insn_int8_prefix %lu", (unsigned long)(q_insns / ODL_DATA_N_TEST));
    target_logf("COST insn_int8_image_seed %lu", (unsigned long)insn_seed_image);
    target_logf("COST insn_sample_stats %lu", (unsigned long)(stats_insns / reps));
    target_logf("COST insn_example_int8 %lu", (unsigned long)(example_insns / ODL_DATA_N_USER));
    target_logf("COST insn_learner_update %lu", (unsigned long)(update_insns / (update_count ? update_count : 1)));
    target_logf("COST insn_fp32_prefix %lu", (unsigned long)(f_insns / ODL_DATA_N_TEST));
    target_logf("arenas: %zu bytes = A %d + B %d; used: A %zu (INT8 prefix), B %zu (head source, learner, store), "
                "then B %zu (cost head), then %zu (FP32 base + head)",
                sizeof arena_buf, FW_ARENA_A, FW_ARENA_B, qp.total, b_used, b_cost, aa.used);

    const size_t hw = target_stack_high_water();
    target_logf("COST stack_high_water %lu", (unsigned long)hw);
    target_logf("stack: %zu of %zu bytes used at the deepest", hw, target_stack_size());
    check(hw + 1024 <= target_stack_size(), "stack high-water mark at least 1 KB below the stack size");
    target_logf("%d passed, %d failed", n_pass, n_fail);
    return n_fail ? 1 : 0;
}
