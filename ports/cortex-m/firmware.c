/* firmware.c — on-device learning on a Cortex-M4F in 256 KB of RAM.
 *
 * Flash holds the edge-cnn base (an INT8 .odl file: the FP32 model plus its
 * INT8 prefix, embedded by `odl export-c`), 100 user examples (10 per class)
 * seen through the S1 gain drift, 200 old training images and a 200-image
 * test slice. The program:
 *
 *   1. loads the FP32 base in place from flash (frozen weights stay there);
 *   2. builds the learner (replay, gates) and a RAM-backed version store;
 *   3. measures test accuracy (original and drifted) before;
 *   4. streams the user examples through predict + feedback, updating every
 *      UPDATE_EVERY examples; accepted heads are committed to the store;
 *   5. measures accuracy after, then again with the INT8 prefix feeding the
 *      learned head (the arena of the FP32 base is reused for it);
 *   6. measures instructions per head update (batch 1 from a latent, and
 *      from a raw image through the INT8 base) and checks the stack.
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
#define SEED_CHUNK 2

/* The arenas (sizes checked against the plans at run time; the linker
 * script checks that they, .data and the stack fit in 256 KB). A: the FP32
 * base (scratch only: its weights are in flash), then the INT8 prefix.
 * B: the learner, the store and the cost-measurement head. */
#ifndef FW_ARENA_A
#define FW_ARENA_A 114848 /* INT8 prefix 98,928 + cost head 15,920 (FP32 base: 111,760) */
#endif
#ifndef FW_ARENA_B
#define FW_ARENA_B 95008 /* learner 93,904 + store 1,088 + 16 */
#endif
static _Alignas(16) uint8_t arena_a_buf[FW_ARENA_A];
static _Alignas(16) uint8_t arena_b_buf[FW_ARENA_B];
static float xbuf[SEED_CHUNK * IN_SIZE];
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

/* accuracy (per mille) of the learner on the test slice */
static int32_t learner_accuracy(odl_learner *L, int drift, odl_diag *dg)
{
    int32_t ok = 0;
    for (int k = 0; k < ODL_DATA_N_TEST; k++) {
        image(odl_data_test_x + (size_t)k * IN_SIZE, drift, xbuf);
        int32_t cls;
        float conf;
        odl_status s = odl_learner_predict(L, xbuf, &cls, &conf, dg);
        if (s < 0)
            die("predict", s, dg);
        ok += cls == odl_data_test_y[k];
    }
    return ok * 1000 / ODL_DATA_N_TEST;
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

    /* 1. the base, FP32, in place from flash */
    const uint8_t *file = odl_base;
    const size_t file_len = odl_base_len;
    odl_model_desc desc;
    TRY("read model", odl_file_read_desc(file, file_len, &desc, &diag));
    odl_desc_freeze_below(&desc, desc.n_layers); /* everything frozen: weights stay in flash */
    odl_model_cfg mc = odl_model_cfg_defaults();
    mc.mode = ODL_MODE_INFER;
    mc.max_batch = 1;
    mc.frozen_weights_in_place = 1;
    odl_mem_plan bp;
    TRY("plan base", odl_model_plan(&desc, &mc, &bp, &diag));
    odl_arena aa, ab;
    odl_arena_init(&aa, arena_a_buf, sizeof arena_a_buf);
    odl_arena_init(&ab, arena_b_buf, sizeof arena_b_buf);
    odl_model *base;
    TRY("init base", odl_model_init(&base, &desc, &mc, &aa, &diag));
    TRY("load base", odl_model_load_params(base, file, file_len, &diag));
    target_logf("base: edge-cnn from flash at 0x%x (%zu bytes), FP32 weights in place; RAM %zu bytes (scratch %zu, "
                "state %zu)",
                (unsigned)(uintptr_t)file, file_len, bp.total, bp.bytes[ODL_MEM_SCRATCH], bp.bytes[ODL_MEM_STATE]);

    /* 2. the learner, configured for the MCU */
    odl_learner_cfg lc = odl_learner_cfg_defaults();
    lc.max_collected = 32;
    lc.guard_size = 50;
    lc.versions = 2;
    lc.replay.capacity = 100;
    lc.replay.dtype = ODL_REPLAY_INT8;
    odl_mem_plan lp;
    TRY("plan learner", odl_learner_plan(&lc, base, &lp, &diag));
    target_logf("learner plan: %zu bytes (params %zu, grads %zu, optimizer %zu, activations %zu, scratch %zu, "
                "buffers %zu, state %zu)",
                lp.total, lp.bytes[0], lp.bytes[1], lp.bytes[2], lp.bytes[3], lp.bytes[4], lp.bytes[5], lp.bytes[6]);
    odl_learner *L;
    TRY("init learner", odl_learner_init(&L, &lc, base, &ab, &diag));
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

    /* seed with the old data, a few images at a time (RAM) */
    uint64_t t0 = target_instructions();
    for (int k = 0; k < ODL_DATA_N_OLD; k += SEED_CHUNK) {
        int n = ODL_DATA_N_OLD - k < SEED_CHUNK ? ODL_DATA_N_OLD - k : SEED_CHUNK;
        for (int j = 0; j < n; j++) {
            image(odl_data_old_x + (size_t)(k + j) * IN_SIZE, 0, xbuf + (size_t)j * IN_SIZE);
            ybuf[j] = odl_data_old_y[k + j];
        }
        TRY("seed old", odl_learner_seed_old(L, xbuf, ybuf, n, &rng, &diag));
    }
    const uint64_t insn_fp32_image = (target_instructions() - t0) / ODL_DATA_N_OLD;

    /* 3. accuracy before */
    const int32_t orig_before = learner_accuracy(L, 0, &diag);
    const int32_t drift_before = learner_accuracy(L, 1, &diag);
    target_logf("before: test accuracy %d.%d%% original, %d.%d%% drifted (S1 gain %.2f, offset %.2f), %d images",
                (int)(orig_before / 10), (int)(orig_before % 10), (int)(drift_before / 10), (int)(drift_before % 10),
                (double)ODL_DATA_GAIN, (double)ODL_DATA_OFFSET, ODL_DATA_N_TEST);

    /* 4. the user's stream */
    int32_t accepted = 0, rejected = 0, updates_ok = 0, updates_back = 0, drift_events = 0;
    uint64_t update_insns = 0, update_count = 0;
    for (int k = 0; k < ODL_DATA_N_USER; k++) {
        image(odl_data_user_x + (size_t)k * IN_SIZE, 1, xbuf);
        int32_t cls;
        float conf;
        odl_status s = odl_learner_predict(L, xbuf, &cls, &conf, &diag);
        if (s < 0)
            die("predict", s, &diag);
        drift_events += s == ODL_EVENT_DRIFT;
        odl_reason why = ODL_REASON_NONE;
        s = odl_learner_feedback(L, xbuf, odl_data_user_y[k], &why, &diag);
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
    const int32_t orig_after = learner_accuracy(L, 0, &diag);
    const int32_t drift_after = learner_accuracy(L, 1, &diag);
    target_logf("after:  test accuracy %d.%d%% original, %d.%d%% drifted", (int)(orig_after / 10),
                (int)(orig_after % 10), (int)(drift_after / 10), (int)(drift_after % 10));
    check(updates_ok >= 1, "at least one update accepted by the evaluation gate");
    check(drift_after + 20 >= drift_before, "drifted accuracy fell by at most 2 points");
    check(orig_after + 20 >= orig_before, "original accuracy fell by at most 2 points");

    /* the store holds the current head, bit for bit */
    if (updates_ok) {
        size_t len = 0;
        uint8_t *back = (uint8_t *)xbuf; /* free here: the readback goes there */
        TRY("store read", odl_store_read(store, odl_store_current(store), back, sizeof xbuf, &len, NULL, &diag));
        membuf mb = {payload, sizeof payload, 0};
        odl_writer w = {mem_write, &mb, 0};
        TRY("serialise head", odl_model_save(odl_learner_head(L), NULL, 0, &w, &diag));
        check(len == mb.n && memcmp(back, payload, len) == 0, "the store's current version is the learner's head");
        check(odl_store_count(store) == (updates_ok < STORE_SLOTS - 1 ? updates_ok : STORE_SLOTS - 1),
              "the store keeps the last versions");
    }

    /* 6. the INT8 prefix, in arena A (the FP32 base is done) */
    odl_model_desc qdesc;
    int32_t boundary;
    TRY("read INT8 file", odl_qfile_read_desc(file, file_len, &qdesc, &boundary, &diag));
    odl_mem_plan qp;
    TRY("plan INT8", odl_qmodel_plan(&qdesc, boundary, 1, &qp, &diag));
    odl_arena_init(&aa, arena_a_buf, sizeof arena_a_buf);
    odl_qmodel *q;
    TRY("init INT8", odl_qmodel_init(&q, &qdesc, boundary, 1, &aa, &diag));
    TRY("load INT8", odl_qmodel_load(q, file, file_len, &diag));
    target_logf("INT8 prefix (layers 0..%d): RAM %zu bytes (params %zu, scratch %zu, state %zu)", (int)boundary - 1,
                qp.total, qp.bytes[ODL_MEM_PARAMS], qp.bytes[ODL_MEM_SCRATCH], qp.bytes[ODL_MEM_STATE]);
    check(boundary == odl_learner_boundary(L), "INT8 boundary is the learner's");
    const size_t dim = odl_qmodel_latent_size(q);
    float z[256];
    if (dim > sizeof z / sizeof z[0])
        die("latent too large", ODL_ERR_SHAPE, NULL);
    odl_model *head = (odl_model *)(uintptr_t)odl_learner_head(L); /* forward only writes its scratch */
    const float *bias = odl_learner_bias(L);
    int32_t ok8 = 0;
    uint64_t q_insns = 0;
    for (int k = 0; k < ODL_DATA_N_TEST; k++) {
        image(odl_data_test_x + (size_t)k * IN_SIZE, 1, xbuf);
        uint64_t q0 = target_instructions();
        TRY("INT8 forward", odl_qmodel_forward(q, xbuf, 1, z, &diag));
        q_insns += target_instructions() - q0;
        const float *o;
        TRY("head forward", odl_model_forward(head, 0, z, 1, &o, &diag));
        int32_t best = 0;
        for (int32_t j = 1; j < st.active_classes; j++)
            if (o[j] + bias[j] > o[best] + bias[best])
                best = j;
        ok8 += best == odl_data_test_y[k];
    }
    ok8 = ok8 * 1000 / ODL_DATA_N_TEST;
    target_logf("after, INT8 prefix + learned FP32 head: %d.%d%% drifted", (int)(ok8 / 10), (int)(ok8 % 10));
    check(ok8 + 30 >= drift_after, "INT8 prefix within 3 points of FP32 on the drifted slice");

    /* 7. cost: a head update at batch 1 (a separate head like the learner's) */
    /* (the FP32 base is gone: its arena now holds the INT8 prefix; the
     * learner's predict must not be called from here on) */
    odl_model_desc hd = *odl_model_get_desc(head);
    odl_model_cfg hc = odl_model_cfg_defaults();
    hc.mode = ODL_MODE_TRAIN;
    hc.max_batch = 1;
    odl_model *h1;
    TRY("init cost head", odl_model_init(&h1, &hd, &hc, &aa, &diag));
    TRY("load cost head", odl_model_transfer_params(h1, head, &rng, &diag));
    const int reps = 16;
    uint64_t lat_insns = 0, raw_insns = 0;
    for (int r = 0; r < reps; r++) {
        image(odl_data_user_x + (size_t)r * IN_SIZE, 1, xbuf);
        int32_t y = odl_data_user_y[r];
        float loss;
        uint64_t c0 = target_instructions();
        TRY("INT8 forward", odl_qmodel_forward(q, xbuf, 1, z, &diag));
        uint64_t c1 = target_instructions();
        TRY("train step", odl_model_train_step(h1, 0, z, &y, 1, &rng, &loss, &diag));
        uint64_t c2 = target_instructions();
        lat_insns += c2 - c1;
        raw_insns += c2 - c0;
    }
    target_logf("COST insn_update_latent %lu", (unsigned long)(lat_insns / reps));
    target_logf("COST insn_update_raw_int8 %lu", (unsigned long)(raw_insns / reps));
    target_logf("COST insn_int8_prefix %lu", (unsigned long)(q_insns / ODL_DATA_N_TEST));
    target_logf("COST insn_fp32_image_seed %lu", (unsigned long)insn_fp32_image);
    target_logf("COST insn_learner_update %lu", (unsigned long)(update_insns / (update_count ? update_count : 1)));
    target_logf("arenas: A %zu of %zu bytes used (FP32 base %zu, then INT8 prefix + cost head), B %zu of %zu",
                bp.total > aa.used ? bp.total : aa.used, sizeof arena_a_buf, bp.total, ab.used, sizeof arena_b_buf);

    const size_t hw = target_stack_high_water();
    target_logf("COST stack_high_water %lu", (unsigned long)hw);
    target_logf("stack: %zu of %zu bytes used at the deepest", hw, target_stack_size());
    check(hw + 1024 <= target_stack_size(), "stack high-water mark at least 1 KB below the stack size");
    target_logf("%d passed, %d failed", n_pass, n_fail);
    return n_fail ? 1 : 0;
}
