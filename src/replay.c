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
#include "bytes_le.h"
#include "odl/state.h"

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


/* ---- herding ------------------------------------------------------------ */

size_t odl_replay_herding_scratch_floats(const odl_replay_cfg *cfg, int32_t n)
{
    if (!cfg || n < 0 || check_cfg(cfg, NULL) != ODL_OK)
        return 0;
    return 2 * (size_t)cfg->dim + (size_t)n + (size_t)cfg->n_classes;
}

/* Moves slot `from` to slot `to` (to < from), label included. */
static void move_slot(odl_replay *rb, int32_t to, int32_t from)
{
    const size_t dim = (size_t)rb->cfg.dim;
    if (rb->cfg.dtype == ODL_REPLAY_F32) {
        memcpy(rb->data + (size_t)to * dim, rb->data + (size_t)from * dim, dim * sizeof(float));
    } else {
        memcpy(rb->qdata + (size_t)to * dim, rb->qdata + (size_t)from * dim, dim);
        rb->scales[to] = rb->scales[from];
    }
    rb->labels[to] = rb->labels[from];
}

odl_status odl_replay_herding_fill(odl_replay *rb, const float *z, const int32_t *y, int32_t n,
                                   float *scratch, size_t scratch_floats, odl_diag *diag)
{
    if (!rb)
        return odl_fail(diag, ODL_ERR_ARG, "odl_replay_herding_fill: buffer must not be NULL");
    if (n < 0 || (n > 0 && (!z || !y)))
        return odl_fail(diag, ODL_ERR_ARG, "odl_replay_herding_fill: n = %d items with z/y %s", (int)n,
                        n < 0 ? "(negative)" : "NULL");
    const size_t need = odl_replay_herding_scratch_floats(&rb->cfg, n);
    if (!scratch || scratch_floats < need)
        return odl_fail(diag, ODL_ERR_ARG, "odl_replay_herding_fill: scratch of %zu floats, %zu needed",
                        scratch ? scratch_floats : (size_t)0, need);
    const int32_t C = rb->cfg.n_classes, D = rb->cfg.dim;
    for (int32_t i = 0; i < n; i++) {
        if (y[i] < 0 || y[i] >= C)
            return odl_fail(diag, ODL_ERR_ARG, "replay herding: label %d of item %d out of range 0..%d",
                            (int)y[i], (int)i, (int)C - 1);
        const float *zi = z + (size_t)i * (size_t)D;
        for (int32_t e = 0; e < D; e++)
            if (!isfinite(zi[e]))
                return odl_fail(diag, ODL_ERR_NUMERIC, "replay herding: z[%d][%d] is not finite", (int)i, (int)e);
    }
    float *mu = scratch, *sum = scratch + D, *taken = scratch + 2 * (size_t)D;
    float *present = taken + (size_t)n;
    for (int32_t c = 0; c < C; c++)
        present[c] = 0.0f;
    for (int32_t i = 0; i < n; i++) {
        present[y[i]] = 1.0f;
        taken[i] = 0.0f;
    }
    int32_t classes = 0;
    for (int32_t c = 0; c < C; c++)
        classes += present[c] != 0.0f || rb->class_count[c] > 0;
    if (classes == 0)
        return ODL_OK; /* empty buffer, no items */
    const int32_t quota = rb->cfg.capacity / classes;
    if (quota == 0)
        return odl_fail(diag, ODL_ERR_ARG, "replay herding: %d classes and %d slots: no room for one exemplar each",
                        (int)classes, (int)rb->cfg.capacity);

    /* Nothing can fail from here on. Keep (trimmed) the classes not in y. */
    for (int32_t c = 0; c < C; c++)
        rb->class_count[c] = 0;
    int32_t out = 0;
    for (int32_t i = 0; i < rb->count; i++) {
        const int32_t l = rb->labels[i];
        if (present[l] != 0.0f || rb->class_count[l] >= quota)
            continue;
        if (out != i)
            move_slot(rb, out, i);
        rb->class_count[l]++;
        out++;
    }
    rb->count = out;

    /* Herd each class of y. */
    for (int32_t c = 0; c < C; c++) {
        if (present[c] == 0.0f)
            continue;
        int32_t n_c = 0;
        for (int32_t e = 0; e < D; e++)
            mu[e] = 0.0f;
        for (int32_t i = 0; i < n; i++) {
            if (y[i] != c)
                continue;
            n_c++;
            const float *zi = z + (size_t)i * (size_t)D;
            const float inv = (float)(1.0 / (double)n_c);
            for (int32_t e = 0; e < D; e++)
                mu[e] += (zi[e] - mu[e]) * inv;
        }
        const int32_t m = n_c < quota ? n_c : quota;
        for (int32_t e = 0; e < D; e++)
            sum[e] = 0.0f;
        for (int32_t k = 1; k <= m; k++) {
            int32_t best = -1;
            double best_d = 0.0;
            const double inv_k = 1.0 / (double)k;
            for (int32_t i = 0; i < n; i++) {
                if (y[i] != c || taken[i] != 0.0f)
                    continue;
                const float *zi = z + (size_t)i * (size_t)D;
                double dist = 0.0;
                for (int32_t e = 0; e < D; e++) {
                    const double r = (double)mu[e] - ((double)sum[e] + (double)zi[e]) * inv_k;
                    dist += r * r;
                }
                if (best < 0 || dist < best_d) {
                    best = i;
                    best_d = dist;
                }
            }
            /* best >= 0: class c has n_c >= m >= k items, k-1 of them taken */
            taken[best] = 1.0f;
            const float *zb = z + (size_t)best * (size_t)D;
            for (int32_t e = 0; e < D; e++)
                sum[e] += zb[e];
            store(rb, rb->count, zb, c);
            rb->count++;
            rb->class_count[c]++;
        }
        rb->class_seen[c] += (uint64_t)n_c;
    }
    rb->seen += (uint64_t)n;
    return ODL_OK;
}

/* ---- the RPLY chunk ----------------------------------------------------- */

#define RPLY_HEADER 48u

typedef struct rply_layout {
    uint64_t cc, cs, labels, scales, data, end; /* payload offsets */
} rply_layout;

static uint64_t al16(uint64_t v) { return (v + 15u) & ~(uint64_t)15u; }

/* Offsets for a valid cfg (sizes bounded by check_cfg: no overflow). */
static void rply_layout_of(const odl_replay_cfg *cfg, int32_t count, rply_layout *L)
{
    const uint64_t C = (uint64_t)cfg->n_classes, n = (uint64_t)count, D = (uint64_t)cfg->dim;
    L->cc = RPLY_HEADER;
    L->cs = al16(L->cc + 4u * C);
    L->labels = al16(L->cs + 8u * C);
    if (cfg->dtype == ODL_REPLAY_F32) {
        L->scales = L->labels + 4u * n;
        L->data = al16(L->labels + 4u * n);
        L->end = L->data + 4u * n * D;
    } else {
        L->scales = al16(L->labels + 4u * n);
        L->data = al16(L->scales + 4u * n);
        L->end = L->data + n * D;
    }
}

static void rply_fill(odl_chunk_out *o, const void *ctx)
{
    const odl_replay *rb = ctx;
    const odl_replay_cfg *c = &rb->cfg;
    odl_chunk_put_u32(o, ODL_STATE_LAYOUT_VERSION);
    odl_chunk_put_u32(o, (uint32_t)c->capacity);
    odl_chunk_put_u32(o, (uint32_t)c->dim);
    odl_chunk_put_u32(o, (uint32_t)c->n_classes);
    odl_chunk_put_u32(o, (uint32_t)c->policy);
    odl_chunk_put_u32(o, (uint32_t)c->dtype);
    odl_chunk_put_u32(o, (uint32_t)rb->count);
    odl_chunk_put_u32(o, 0);
    odl_chunk_put_u64(o, rb->seen);
    odl_chunk_put_u64(o, 0);
    for (int32_t k = 0; k < c->n_classes; k++)
        odl_chunk_put_u32(o, (uint32_t)rb->class_count[k]);
    odl_chunk_align16(o);
    for (int32_t k = 0; k < c->n_classes; k++)
        odl_chunk_put_u64(o, rb->class_seen[k]);
    odl_chunk_align16(o);
    for (int32_t i = 0; i < rb->count; i++)
        odl_chunk_put_u32(o, (uint32_t)rb->labels[i]);
    odl_chunk_align16(o);
    const size_t nv = (size_t)rb->count * (size_t)c->dim;
    if (c->dtype == ODL_REPLAY_F32) {
        odl_chunk_put_f32s(o, rb->data, nv);
    } else {
        odl_chunk_put_f32s(o, rb->scales, (size_t)rb->count);
        odl_chunk_align16(o);
        odl_chunk_put_bytes(o, rb->qdata, nv);
    }
}

odl_status odl_replay_save_as(const odl_replay *rb, uint32_t chunk_type, odl_writer *w, odl_diag *diag)
{
    if (!rb || !w)
        return odl_fail(diag, ODL_ERR_ARG, "odl_replay_save: buffer and writer must not be NULL");
    return odl_state_write_chunk_fn(w, chunk_type, rply_fill, rb, diag);
}

odl_status odl_replay_save(const odl_replay *rb, odl_writer *w, odl_diag *diag)
{
    return odl_replay_save_as(rb, ODL_CHUNK_REPLAY, w, diag);
}

/* Header: configuration, count, seen and the exact length. */
static odl_status rply_header(const uint8_t *p, size_t len, odl_replay_cfg *cfg, int32_t *count, uint64_t *seen,
                              odl_diag *d)
{
    if (!p || !cfg)
        return odl_fail(d, ODL_ERR_ARG, "replay chunk: payload and cfg must not be NULL");
    if (len < RPLY_HEADER)
        return odl_fail(d, ODL_ERR_FORMAT, "replay chunk: %zu bytes, shorter than its %u-byte header", len,
                        (unsigned)RPLY_HEADER);
    if (le_get_u32(p) != ODL_STATE_LAYOUT_VERSION)
        return odl_fail(d, ODL_ERR_UNSUPPORTED, "replay chunk: layout version %u (this odl reads %u)",
                        (unsigned)le_get_u32(p), (unsigned)ODL_STATE_LAYOUT_VERSION);
    const uint32_t pol = le_get_u32(p + 16), dt = le_get_u32(p + 20);
    if (pol > 1u || dt > 1u)
        return odl_fail(d, ODL_ERR_FORMAT, "replay chunk: unknown policy %u or dtype %u", (unsigned)pol,
                        (unsigned)dt);
    if (le_get_u32(p + 28) != 0 || le_get_u64(p + 40) != 0)
        return odl_fail(d, ODL_ERR_FORMAT, "replay chunk: reserved header fields are not zero");
    odl_replay_cfg c;
    memset(&c, 0, sizeof c);
    c.capacity = (int32_t)le_get_u32(p + 4);
    c.dim = (int32_t)le_get_u32(p + 8);
    c.n_classes = (int32_t)le_get_u32(p + 12);
    c.policy = pol ? ODL_REPLAY_CLASS_BALANCED : ODL_REPLAY_RESERVOIR;
    c.dtype = dt ? ODL_REPLAY_INT8 : ODL_REPLAY_F32;
    if (check_cfg(&c, d) != ODL_OK) {
        odl_diag_prefix(d, "replay chunk");
        if (d)
            d->status = ODL_ERR_FORMAT;
        return ODL_ERR_FORMAT;
    }
    const uint32_t cnt = le_get_u32(p + 24);
    const uint64_t sn = le_get_u64(p + 32);
    if (cnt > (uint32_t)c.capacity || (uint64_t)cnt > sn)
        return odl_fail(d, ODL_ERR_FORMAT, "replay chunk: %u items held with capacity %d and %lu seen",
                        (unsigned)cnt, (int)c.capacity, (unsigned long)sn);
    rply_layout L;
    rply_layout_of(&c, (int32_t)cnt, &L);
    if (L.end != (uint64_t)len)
        return odl_fail(d, ODL_ERR_FORMAT, "replay chunk: %zu bytes, %lu expected for %u items of dim %d", len,
                        (unsigned long)L.end, (unsigned)cnt, (int)c.dim);
    *cfg = c;
    if (count)
        *count = (int32_t)cnt;
    if (seen)
        *seen = sn;
    return ODL_OK;
}

odl_status odl_replay_chunk_cfg(const uint8_t *payload, size_t len, odl_replay_cfg *cfg, odl_diag *diag)
{
    return rply_header(payload, len, cfg, NULL, NULL, diag);
}

static int zeros(const uint8_t *p, uint64_t from, uint64_t to)
{
    for (uint64_t i = from; i < to; i++)
        if (p[i])
            return 0;
    return 1;
}

/* Recounts class_count from the labels (restores the invariant). */
static void recount(odl_replay *rb)
{
    for (int32_t c = 0; c < rb->cfg.n_classes; c++)
        rb->class_count[c] = 0;
    for (int32_t i = 0; i < rb->count; i++)
        rb->class_count[rb->labels[i]]++;
}

odl_status odl_replay_load(odl_replay *rb, const uint8_t *p, size_t len, odl_diag *diag)
{
    if (!rb)
        return odl_fail(diag, ODL_ERR_ARG, "odl_replay_load: buffer must not be NULL");
    odl_replay_cfg fc = {0, 0, 0, ODL_REPLAY_RESERVOIR, ODL_REPLAY_F32};
    int32_t count = 0;
    uint64_t seen = 0;
    odl_status s = rply_header(p, len, &fc, &count, &seen, diag);
    if (s != ODL_OK)
        return s;
    const odl_replay_cfg *bc = &rb->cfg;
    static const char *const pol_names[] = {"reservoir", "class-balanced"};
    static const char *const dt_names[] = {"f32", "int8"};
    if (fc.capacity != bc->capacity || fc.dim != bc->dim || fc.n_classes != bc->n_classes)
        return odl_fail(diag, ODL_ERR_SHAPE,
                        "replay chunk: capacity %d, dim %d, %d classes in the file; the buffer has %d, %d, %d",
                        (int)fc.capacity, (int)fc.dim, (int)fc.n_classes, (int)bc->capacity, (int)bc->dim,
                        (int)bc->n_classes);
    if (fc.policy != bc->policy || fc.dtype != bc->dtype)
        return odl_fail(diag, ODL_ERR_SHAPE, "replay chunk: %s %s in the file; the buffer is %s %s",
                        pol_names[fc.policy], dt_names[fc.dtype], pol_names[bc->policy], dt_names[bc->dtype]);
    const int32_t C = fc.n_classes;
    const size_t D = (size_t)fc.dim;
    rply_layout L;
    rply_layout_of(&fc, count, &L);
    const uint64_t cc_end = L.cc + 4u * (uint64_t)C, cs_end = L.cs + 8u * (uint64_t)C;
    const uint64_t lab_end = L.labels + 4u * (uint64_t)count;
    if (!zeros(p, cc_end, L.cs) || !zeros(p, cs_end, L.labels) ||
        (fc.dtype == ODL_REPLAY_F32 ? !zeros(p, lab_end, L.data)
                                    : !zeros(p, lab_end, L.scales) || !zeros(p, L.scales + 4u * (uint64_t)count, L.data)))
        return odl_fail(diag, ODL_ERR_FORMAT, "replay chunk: non-zero padding between its arrays");
    /* counters */
    uint64_t cnt_sum = 0, seen_sum = 0;
    for (int32_t c = 0; c < C; c++) {
        const uint32_t m = le_get_u32(p + L.cc + 4u * (uint64_t)c);
        const uint64_t sc = le_get_u64(p + L.cs + 8u * (uint64_t)c);
        if ((uint64_t)m > sc)
            return odl_fail(diag, ODL_ERR_FORMAT, "replay chunk: class %d holds %u items of %lu seen", (int)c,
                            (unsigned)m, (unsigned long)sc);
        cnt_sum += m;
        if (seen_sum + sc < seen_sum)
            return odl_fail(diag, ODL_ERR_FORMAT, "replay chunk: per-class seen counts overflow");
        seen_sum += sc;
    }
    if (cnt_sum != (uint64_t)count || seen_sum != seen)
        return odl_fail(diag, ODL_ERR_FORMAT,
                        "replay chunk: class counts sum to %lu held and %lu seen; the header says %d and %lu",
                        (unsigned long)cnt_sum, (unsigned long)seen_sum, (int)count, (unsigned long)seen);
    for (int32_t i = 0; i < count; i++) {
        const uint32_t l = le_get_u32(p + L.labels + 4u * (uint64_t)i);
        if (l >= (uint32_t)C)
            return odl_fail(diag, ODL_ERR_FORMAT, "replay chunk: slot %d has label %u, out of range 0..%d", (int)i,
                            (unsigned)l, (int)C - 1);
    }
    /* values */
    const size_t nv = (size_t)count * D;
    if (fc.dtype == ODL_REPLAY_F32) {
        for (size_t k = 0; k < nv; k++)
            if (!isfinite(le_get_f32(p + L.data + 4u * (uint64_t)k)))
                return odl_fail(diag, ODL_ERR_NUMERIC, "replay chunk: slot %zu value %zu is not finite", k / D,
                                k % D);
    } else {
        for (int32_t i = 0; i < count; i++) {
            const float sc = le_get_f32(p + L.scales + 4u * (uint64_t)i);
            if (!isfinite(sc) || sc < 0.0f)
                return odl_fail(diag, ODL_ERR_NUMERIC, "replay chunk: slot %d has scale %.6f", (int)i, (double)sc);
        }
        for (size_t k = 0; k < nv; k++)
            if (p[L.data + k] == 0x80u)
                return odl_fail(diag, ODL_ERR_FORMAT, "replay chunk: slot %zu value %zu is -128", k / D, k % D);
    }
    /* the labels' histogram must equal the class counts: computed in the
     * buffer's class_count, which is recomputed from the buffer's own
     * (untouched) labels if it does not match */
    for (int32_t c = 0; c < C; c++)
        rb->class_count[c] = 0;
    for (int32_t i = 0; i < count; i++)
        rb->class_count[le_get_u32(p + L.labels + 4u * (uint64_t)i)]++;
    for (int32_t c = 0; c < C; c++)
        if ((uint32_t)rb->class_count[c] != le_get_u32(p + L.cc + 4u * (uint64_t)c)) {
            const int32_t got = rb->class_count[c];
            recount(rb);
            return odl_fail(diag, ODL_ERR_FORMAT, "replay chunk: class %d has %d labelled slots, its count says %u",
                            (int)c, (int)got, (unsigned)le_get_u32(p + L.cc + 4u * (uint64_t)c));
        }
    /* apply */
    for (int32_t c = 0; c < C; c++)
        rb->class_seen[c] = le_get_u64(p + L.cs + 8u * (uint64_t)c);
    for (int32_t i = 0; i < count; i++)
        rb->labels[i] = (int32_t)le_get_u32(p + L.labels + 4u * (uint64_t)i);
    if (fc.dtype == ODL_REPLAY_F32) {
        for (size_t k = 0; k < nv; k++)
            rb->data[k] = le_get_f32(p + L.data + 4u * (uint64_t)k);
    } else {
        for (int32_t i = 0; i < count; i++)
            rb->scales[i] = le_get_f32(p + L.scales + 4u * (uint64_t)i);
        memcpy(rb->qdata, p + L.data, nv);
    }
    rb->count = count;
    rb->seen = seen;
    return ODL_OK;
}
