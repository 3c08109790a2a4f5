/* Replay buffer: reservoir and class-balanced policies, F32 or INT8 slots.
 *
 * Memory layout (one code path, build, lays out both the counting arena of a
 * plan and the real one, so the plan is exact):
 *   state:   the handle; class_count[n_classes] (int32); class_seen[n_classes]
 *            (uint64)
 *   buffers: F32:  data[capacity*dim] (float), labels[capacity] (int32)
 *            INT8: qdata[capacity*dim] (int8), scales[capacity] (float),
 *                  labels[capacity] (int32)
 * Slots 0..count-1 are filled; they fill in order and are then only replaced,
 * never removed, so there are no holes. */
#include "odl/replay.h"

#include <math.h>
#include <string.h>

struct odl_replay {
    odl_replay_cfg cfg;
    int32_t count;
    uint64_t seen;
    int32_t *labels;
    float *data;     /* F32 */
    int8_t *qdata;   /* INT8 */
    float *scales;   /* INT8 */
    int32_t *class_count;
    uint64_t *class_seen;
};

static odl_status check_cfg(const odl_replay_cfg *cfg, odl_diag *diag)
{
    if (!cfg)
        return odl_fail(diag, ODL_ERR_ARG, "replay: configuration is NULL");
    if (cfg->capacity <= 0 || cfg->capacity > ODL_REPLAY_MAX_CAPACITY)
        return odl_fail(diag, ODL_ERR_ARG, "replay: capacity %d out of range 1..%d",
                        (int)cfg->capacity, (int)ODL_REPLAY_MAX_CAPACITY);
    if (cfg->dim <= 0 || cfg->dim > ODL_REPLAY_MAX_DIM)
        return odl_fail(diag, ODL_ERR_ARG, "replay: dim %d out of range 1..%d", (int)cfg->dim,
                        (int)ODL_REPLAY_MAX_DIM);
    if (cfg->n_classes <= 0 || cfg->n_classes > ODL_REPLAY_MAX_CLASSES)
        return odl_fail(diag, ODL_ERR_ARG, "replay: n_classes %d out of range 1..%d",
                        (int)cfg->n_classes, (int)ODL_REPLAY_MAX_CLASSES);
    if (cfg->policy != ODL_REPLAY_RESERVOIR && cfg->policy != ODL_REPLAY_CLASS_BALANCED)
        return odl_fail(diag, ODL_ERR_ARG, "replay: unknown policy %d", (int)cfg->policy);
    if (cfg->dtype != ODL_REPLAY_F32 && cfg->dtype != ODL_REPLAY_INT8)
        return odl_fail(diag, ODL_ERR_ARG, "replay: unknown dtype %d", (int)cfg->dtype);
    /* capacity*dim*4 must fit in size_t (matters on 32-bit targets). */
    if ((size_t)cfg->capacity > ((size_t)-1 / 8) / (size_t)cfg->dim)
        return odl_fail(diag, ODL_ERR_NOMEM, "replay: %d slots of %d values do not fit in memory",
                        (int)cfg->capacity, (int)cfg->dim);
    return ODL_OK;
}

/* Lays the buffer out in `a`; rb is NULL on a counting arena. */
static odl_status build(odl_replay *rb, const odl_replay_cfg *cfg, odl_arena *a, odl_diag *diag)
{
    odl_status s;
    void *p;
#define ALLOC(target, bytes, kind)                                   \
    do {                                                             \
        s = odl_arena_alloc(a, (bytes), (kind), &p, diag);           \
        if (s != ODL_OK)                                             \
            return s;                                                \
        if (rb)                                                      \
            target = p;                                              \
    } while (0)

    const size_t cap = (size_t)cfg->capacity, dim = (size_t)cfg->dim;
    const size_t ncls = (size_t)cfg->n_classes;
    if (rb) {
        memset(rb, 0, sizeof *rb);
        rb->cfg = *cfg;
    }
    ALLOC(rb->class_count, ncls * sizeof(int32_t), ODL_MEM_STATE);
    ALLOC(rb->class_seen, ncls * sizeof(uint64_t), ODL_MEM_STATE);
    if (cfg->dtype == ODL_REPLAY_F32) {
        ALLOC(rb->data, cap * dim * sizeof(float), ODL_MEM_BUFFERS);
    } else {
        ALLOC(rb->qdata, cap * dim * sizeof(int8_t), ODL_MEM_BUFFERS);
        ALLOC(rb->scales, cap * sizeof(float), ODL_MEM_BUFFERS);
    }
    ALLOC(rb->labels, cap * sizeof(int32_t), ODL_MEM_BUFFERS);
#undef ALLOC
    return ODL_OK;
}

odl_status odl_replay_plan(const odl_replay_cfg *cfg, odl_mem_plan *plan, odl_diag *diag)
{
    if (!plan)
        return odl_fail(diag, ODL_ERR_ARG, "odl_replay_plan: plan must not be NULL");
    odl_status s = check_cfg(cfg, diag);
    if (s != ODL_OK)
        return s;
    odl_arena a;
    void *p;
    odl_arena_init_counting(&a);
    s = odl_arena_alloc(&a, sizeof(odl_replay), ODL_MEM_STATE, &p, diag);
    if (s == ODL_OK)
        s = build(NULL, cfg, &a, diag);
    if (s != ODL_OK)
        return s;
    *plan = a.plan;
    return ODL_OK;
}

odl_status odl_replay_init(odl_replay **out, const odl_replay_cfg *cfg, odl_arena *arena,
                           odl_diag *diag)
{
    if (!out || !arena)
        return odl_fail(diag, ODL_ERR_ARG, "odl_replay_init: out and arena must not be NULL");
    *out = NULL;
    odl_mem_plan plan;
    odl_status s = odl_replay_plan(cfg, &plan, diag);
    if (s != ODL_OK)
        return s;
    if (odl_arena_is_counting(arena))
        return odl_fail(diag, ODL_ERR_ARG,
                        "odl_replay_init needs a real arena (use odl_replay_plan to count)");
    if (odl_arena_remaining(arena) < plan.total)
        return odl_fail(diag, ODL_ERR_NOMEM,
                        "arena too small for the replay buffer: needs %zu bytes (buffers %zu, "
                        "state %zu), %zu available",
                        plan.total, plan.bytes[ODL_MEM_BUFFERS], plan.bytes[ODL_MEM_STATE],
                        odl_arena_remaining(arena));
    void *p;
    s = odl_arena_alloc(arena, sizeof(odl_replay), ODL_MEM_STATE, &p, diag);
    if (s != ODL_OK)
        return s;
    odl_replay *rb = p;
    s = build(rb, cfg, arena, diag);
    if (s != ODL_OK)
        return s;
    *out = rb;
    return ODL_OK;
}

/* ---- slots ------------------------------------------------------------- */

/* Uniform integer in [0, n), n >= 1, for counts beyond 32 bits too. */
static uint64_t below64(odl_rng *r, uint64_t n)
{
    if (n <= 0xFFFFFFFFu)
        return odl_rng_below(r, (uint32_t)n);
    const uint64_t threshold = (uint64_t)(0 - n) % n;
    for (;;) {
        uint64_t hi = odl_rng_u32(r);
        uint64_t v = (hi << 32) | odl_rng_u32(r);
        if (v >= threshold)
            return v % n;
    }
}

static void store(odl_replay *rb, int32_t slot, const float *z, int32_t label)
{
    const size_t dim = (size_t)rb->cfg.dim;
    const size_t off = (size_t)slot * dim;
    if (rb->cfg.dtype == ODL_REPLAY_F32) {
        memcpy(rb->data + off, z, dim * sizeof(float));
    } else {
        float maxabs = 0.0f;
        for (size_t i = 0; i < dim; i++) {
            float v = fabsf(z[i]);
            if (v > maxabs)
                maxabs = v;
        }
        float scale = maxabs / 127.0f;
        int8_t *q = rb->qdata + off;
        if (scale > 0.0f) {
            for (size_t i = 0; i < dim; i++) {
                float v = roundf(z[i] / scale);
                if (v > 127.0f)
                    v = 127.0f;
                else if (v < -127.0f)
                    v = -127.0f;
                q[i] = (int8_t)v;
            }
        } else {
            /* all zero, or so small that the scale underflows */
            scale = 0.0f;
            memset(q, 0, dim);
        }
        rb->scales[slot] = scale;
    }
    rb->labels[slot] = label;
}

/* Puts (z, label) into `slot`, replacing its item when slot < count. */
static void put(odl_replay *rb, int32_t slot, const float *z, int32_t label)
{
    if (slot < rb->count)
        rb->class_count[rb->labels[slot]]--;
    else
        rb->count++;
    store(rb, slot, z, label);
    rb->class_count[label]++;
}

/* The slot of the r-th item (0-based, in slot order) whose class has exactly
 * `m` items in the buffer (cls < 0), or whose class is `cls`. */
static int32_t nth_slot(const odl_replay *rb, int32_t cls, int32_t m, uint64_t r)
{
    for (int32_t i = 0; i < rb->count; i++) {
        const int32_t l = rb->labels[i];
        if (cls >= 0 ? l == cls : rb->class_count[l] == m) {
            if (r == 0)
                return i;
            r--;
        }
    }
    return -1; /* not reached: counts and labels agree */
}

odl_status odl_replay_add(odl_replay *rb, const float *z, int32_t label, odl_rng *rng,
                          odl_diag *diag)
{
    if (!rb || !z || !rng)
        return odl_fail(diag, ODL_ERR_ARG, "odl_replay_add: buffer, z and rng must not be NULL");
    if (label < 0 || label >= rb->cfg.n_classes)
        return odl_fail(diag, ODL_ERR_ARG, "replay: label %d out of range 0..%d", (int)label,
                        (int)rb->cfg.n_classes - 1);
    for (int32_t i = 0; i < rb->cfg.dim; i++)
        if (!isfinite(z[i]))
            return odl_fail(diag, ODL_ERR_NUMERIC, "replay: z[%d] is not finite (label %d)", (int)i,
                            (int)label);

    rb->seen++;
    rb->class_seen[label]++;
    const int32_t k = rb->cfg.capacity;
    if (rb->count < k) {
        put(rb, rb->count, z, label);
        return ODL_OK;
    }
    if (rb->cfg.policy == ODL_REPLAY_RESERVOIR) {
        const uint64_t j = below64(rng, rb->seen);
        if (j < (uint64_t)k)
            put(rb, (int32_t)j, z, label);
        return ODL_OK;
    }
    /* class-balanced, buffer full */
    int32_t m_max = 0, n_tied = 0;
    for (int32_t c = 0; c < rb->cfg.n_classes; c++) {
        const int32_t m = rb->class_count[c];
        if (m > m_max) {
            m_max = m;
            n_tied = 1;
        } else if (m == m_max) {
            n_tied++;
        }
    }
    const int32_t m_y = rb->class_count[label];
    if (m_y < m_max) {
        /* evict a uniformly chosen item of the largest classes */
        const uint64_t r = below64(rng, (uint64_t)n_tied * (uint64_t)m_max);
        put(rb, nth_slot(rb, -1, m_max, r), z, label);
    } else {
        /* the item's own class is a largest one: reservoir within the class */
        if (below64(rng, rb->class_seen[label]) < (uint64_t)m_y) {
            const uint64_t r = below64(rng, (uint64_t)m_y);
            put(rb, nth_slot(rb, label, 0, r), z, label);
        }
    }
    return ODL_OK;
}

/* ---- reading ----------------------------------------------------------- */

int32_t odl_replay_count(const odl_replay *rb) { return rb ? rb->count : 0; }

uint64_t odl_replay_seen(const odl_replay *rb) { return rb ? rb->seen : 0; }

int32_t odl_replay_class_count(const odl_replay *rb, int32_t cls)
{
    return rb && cls >= 0 && cls < rb->cfg.n_classes ? rb->class_count[cls] : 0;
}

uint64_t odl_replay_class_seen(const odl_replay *rb, int32_t cls)
{
    return rb && cls >= 0 && cls < rb->cfg.n_classes ? rb->class_seen[cls] : 0;
}

const odl_replay_cfg *odl_replay_get_cfg(const odl_replay *rb) { return rb ? &rb->cfg : NULL; }

static void load(const odl_replay *rb, int32_t slot, float *z_out)
{
    const size_t dim = (size_t)rb->cfg.dim;
    const size_t off = (size_t)slot * dim;
    if (rb->cfg.dtype == ODL_REPLAY_F32) {
        memcpy(z_out, rb->data + off, dim * sizeof(float));
    } else {
        const float scale = rb->scales[slot];
        const int8_t *q = rb->qdata + off;
        for (size_t i = 0; i < dim; i++)
            z_out[i] = (float)q[i] * scale;
    }
}

odl_status odl_replay_get(const odl_replay *rb, int32_t i, float *z_out, int32_t *label_out)
{
    if (!rb || i < 0 || i >= rb->count)
        return ODL_ERR_ARG;
    if (z_out)
        load(rb, i, z_out);
    if (label_out)
        *label_out = rb->labels[i];
    return ODL_OK;
}

odl_status odl_replay_sample(const odl_replay *rb, int32_t n, odl_rng *rng, float *z_out,
                             int32_t *labels_out, odl_diag *diag)
{
    if (!rb || !rng)
        return odl_fail(diag, ODL_ERR_ARG, "odl_replay_sample: buffer and rng must not be NULL");
    if (n < 0)
        return odl_fail(diag, ODL_ERR_ARG, "odl_replay_sample: n = %d is negative", (int)n);
    if (n == 0)
        return ODL_OK;
    if (rb->count == 0)
        return odl_fail(diag, ODL_ERR_STATE, "odl_replay_sample: the replay buffer is empty");
    const size_t dim = (size_t)rb->cfg.dim;
    if (n > rb->count) {
        for (int32_t k = 0; k < n; k++) {
            const int32_t slot = (int32_t)odl_rng_below(rng, (uint32_t)rb->count);
            if (z_out)
                load(rb, slot, z_out + (size_t)k * dim);
            if (labels_out)
                labels_out[k] = rb->labels[slot];
        }
        return ODL_OK;
    }
    /* Selection sampling (Knuth's Algorithm S): slot i is taken with
     * probability (still needed)/(still left), which makes every n-subset
     * equally likely and needs no memory; then a Fisher-Yates shuffle of the
     * output rows makes the order uniform too. */
    int32_t got = 0;
    for (int32_t i = 0; i < rb->count && got < n; i++) {
        if ((int32_t)odl_rng_below(rng, (uint32_t)(rb->count - i)) < n - got) {
            if (z_out)
                load(rb, i, z_out + (size_t)got * dim);
            if (labels_out)
                labels_out[got] = rb->labels[i];
            got++;
        }
    }
    for (int32_t i = n; i > 1; i--) {
        const int32_t j = (int32_t)odl_rng_below(rng, (uint32_t)i);
        if (j == i - 1)
            continue;
        if (z_out) {
            float *a = z_out + (size_t)(i - 1) * dim, *b = z_out + (size_t)j * dim;
            for (size_t e = 0; e < dim; e++) {
                const float tmp = a[e];
                a[e] = b[e];
                b[e] = tmp;
            }
        }
        if (labels_out) {
            const int32_t tmp = labels_out[i - 1];
            labels_out[i - 1] = labels_out[j];
            labels_out[j] = tmp;
        }
    }
    return ODL_OK;
}
