/* Replay buffer tests: plans against the arena actually used, reservoir
 * sampling statistics (chi-square over a stream's items), class-balanced
 * invariants after every add, INT8 round-trip error, bad input, sampling and
 * bit-exact determinism. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <float.h>

#include "harness.h"
#include "odl/odl.h"
#include "odl/replay.h"

typedef struct rbox {
    uint8_t *buf;
    odl_arena arena;
    odl_replay *rb;
    odl_mem_plan plan;
} rbox;

static odl_replay_cfg mkcfg(int32_t cap, int32_t dim, int32_t ncls, odl_replay_policy pol,
                            odl_replay_dtype dt)
{
    odl_replay_cfg c;
    memset(&c, 0, sizeof c);
    c.capacity = cap;
    c.dim = dim;
    c.n_classes = ncls;
    c.policy = pol;
    c.dtype = dt;
    return c;
}

static odl_status rbox_open(rbox *b, const odl_replay_cfg *cfg)
{
    odl_diag d;
    memset(b, 0, sizeof *b);
    odl_status s = odl_replay_plan(cfg, &b->plan, &d);
    if (s != ODL_OK)
        return s;
    b->buf = malloc(b->plan.total);
    if (!b->buf)
        return ODL_ERR_NOMEM;
    odl_arena_init(&b->arena, b->buf, b->plan.total);
    return odl_replay_init(&b->rb, cfg, &b->arena, &d);
}

/* Empties the buffer by rebuilding it in the same memory. */
static odl_status rbox_reset(rbox *b, const odl_replay_cfg *cfg)
{
    odl_arena_init(&b->arena, b->buf, b->plan.total);
    return odl_replay_init(&b->rb, cfg, &b->arena, NULL);
}

static void rbox_close(rbox *b)
{
    free(b->buf);
    b->buf = NULL;
}

/* ---- plans ------------------------------------------------------------- */

/* The plan is the arena actually used, byte for byte, from a misaligned
 * start too; one byte less is refused with needs/available in the message
 * and leaves the arena untouched. */
static void test_plan_matches_arena(odl_test_ctx *t)
{
    static const int32_t caps[] = {1, 7, 100, 1000};
    static const int32_t dims[] = {1, 3, 64, 130};
    static const int32_t ncls[] = {1, 3, 10};
    int n = 0;
    for (size_t ci = 0; ci < sizeof caps / sizeof caps[0]; ci++)
        for (size_t di = 0; di < sizeof dims / sizeof dims[0]; di++)
            for (size_t ki = 0; ki < sizeof ncls / sizeof ncls[0]; ki++)
                for (int dt = 0; dt < 2; dt++)
                    for (int pol = 0; pol < 2; pol++) {
                        odl_replay_cfg cfg = mkcfg(caps[ci], dims[di], ncls[ki],
                                                   (odl_replay_policy)pol, (odl_replay_dtype)dt);
                        odl_mem_plan p;
                        odl_diag d;
                        CHECK_OK(odl_replay_plan(&cfg, &p, &d));
                        size_t sum = 0;
                        for (int k = 0; k < ODL_MEM_KINDS; k++)
                            sum += p.bytes[k];
                        CHECK(sum == p.total);
                        CHECK(p.bytes[ODL_MEM_BUFFERS] > 0 && p.bytes[ODL_MEM_STATE] > 0);
                        CHECK(p.bytes[ODL_MEM_BUFFERS] + p.bytes[ODL_MEM_STATE] == p.total);
                        uint8_t *buf = malloc(p.total + 32);
                        REQUIRE(buf);
                        odl_arena a;
                        odl_replay *rb = NULL;
                        CHECK_OK(odl_arena_init(&a, buf + 3, p.total + 16)); /* misaligned */
                        size_t before = a.used;
                        CHECK_OK(odl_replay_init(&rb, &cfg, &a, &d));
                        CHECK(a.used - before == p.total);
                        CHECK(odl_replay_count(rb) == 0 && odl_replay_seen(rb) == 0);
                        odl_arena exact;
                        CHECK_OK(odl_arena_init(&exact, buf + 16, p.total));
                        CHECK_OK(odl_replay_init(&rb, &cfg, &exact, &d));
                        CHECK(exact.used == p.total);
                        CHECK(memcmp(&exact.plan, &p, sizeof p) == 0);
                        odl_arena small;
                        CHECK_OK(odl_arena_init(&small, buf + 16, p.total - 1));
                        odl_diag_clear(&d);
                        rb = NULL;
                        CHECK(odl_replay_init(&rb, &cfg, &small, &d) == ODL_ERR_NOMEM);
                        CHECK(rb == NULL && small.used == 0);
                        CHECK(strstr(d.msg, "needs") != NULL);
                        CHECK(strstr(d.msg, "available") != NULL);
                        if (n++ == 0)
                            odl_test_logf(t, "    %s", d.msg);
                        free(buf);
                    }
    odl_arena counting;
    odl_arena_init_counting(&counting);
    odl_replay *rb;
    odl_replay_cfg cfg = mkcfg(4, 4, 2, ODL_REPLAY_RESERVOIR, ODL_REPLAY_F32);
    CHECK(odl_replay_init(&rb, &cfg, &counting, NULL) == ODL_ERR_ARG);
}

static size_t al(size_t v) { return (v + ODL_ALIGN - 1) / ODL_ALIGN * ODL_ALIGN; }

/* INT8 slots take dim + 4 bytes (vector + scale) against 4*dim for F32;
 * labels (4 bytes a slot) are the same for both. Exact numbers. */
static void test_plan_int8_bytes(odl_test_ctx *t)
{
    odl_mem_plan pf, pq;
    odl_replay_cfg f = mkcfg(100, 64, 10, ODL_REPLAY_RESERVOIR, ODL_REPLAY_F32);
    odl_replay_cfg q = mkcfg(100, 64, 10, ODL_REPLAY_RESERVOIR, ODL_REPLAY_INT8);
    CHECK_OK(odl_replay_plan(&f, &pf, NULL));
    CHECK_OK(odl_replay_plan(&q, &pq, NULL));
    /* F32: 100*64*4 vectors + 100*4 labels */
    CHECK(pf.bytes[ODL_MEM_BUFFERS] == 25600 + 400);
    /* INT8: 100*64 vectors + 100*4 scales + 100*4 labels */
    CHECK(pq.bytes[ODL_MEM_BUFFERS] == 6400 + 400 + 400);
    /* vector storage alone: 25600 vs 6800 bytes, 3.76x */
    CHECK((25600.0 / 6800.0) > 3.7);
    CHECK(pf.bytes[ODL_MEM_STATE] == pq.bytes[ODL_MEM_STATE]);
    /* state: the handle + 10 int32 counts + 10 uint64 seen counters */
    CHECK(pf.bytes[ODL_MEM_STATE] > al(40) + al(80));
    CHECK(pf.bytes[ODL_MEM_STATE] < al(40) + al(80) + 256);
    odl_test_logf(t, "    cap 100 dim 64: buffers f32 %zu, int8 %zu bytes; state %zu", pf.bytes[ODL_MEM_BUFFERS],
                  pq.bytes[ODL_MEM_BUFFERS], pf.bytes[ODL_MEM_STATE]);
    /* sizes that need alignment padding: cap 10, dim 5 */
    odl_replay_cfg f2 = mkcfg(10, 5, 3, ODL_REPLAY_CLASS_BALANCED, ODL_REPLAY_F32);
    odl_replay_cfg q2 = mkcfg(10, 5, 3, ODL_REPLAY_CLASS_BALANCED, ODL_REPLAY_INT8);
    CHECK_OK(odl_replay_plan(&f2, &pf, NULL));
    CHECK_OK(odl_replay_plan(&q2, &pq, NULL));
    CHECK(pf.bytes[ODL_MEM_BUFFERS] == 208 + 48); /* al(200) + al(40) */
    CHECK(pq.bytes[ODL_MEM_BUFFERS] == 64 + 48 + 48); /* al(50) + al(40) + al(40) */
}

static void test_bad_cfg(odl_test_ctx *t)
{
    odl_mem_plan p;
    odl_diag d;
    const odl_replay_cfg bad[] = {
        mkcfg(0, 4, 2, ODL_REPLAY_RESERVOIR, ODL_REPLAY_F32),
        mkcfg(-5, 4, 2, ODL_REPLAY_RESERVOIR, ODL_REPLAY_F32),
        mkcfg(ODL_REPLAY_MAX_CAPACITY + 1, 4, 2, ODL_REPLAY_RESERVOIR, ODL_REPLAY_F32),
        mkcfg(4, 0, 2, ODL_REPLAY_RESERVOIR, ODL_REPLAY_F32),
        mkcfg(4, ODL_REPLAY_MAX_DIM + 1, 2, ODL_REPLAY_RESERVOIR, ODL_REPLAY_F32),
        mkcfg(4, 4, 0, ODL_REPLAY_RESERVOIR, ODL_REPLAY_F32),
        mkcfg(4, 4, 2, (odl_replay_policy)7, ODL_REPLAY_F32),
        mkcfg(4, 4, 2, ODL_REPLAY_RESERVOIR, (odl_replay_dtype)-1),
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        odl_diag_clear(&d);
        CHECK(odl_replay_plan(&bad[i], &p, &d) == ODL_ERR_ARG);
        CHECK(d.status == ODL_ERR_ARG && d.msg[0] != 0);
    }
    CHECK(odl_replay_plan(NULL, &p, &d) == ODL_ERR_ARG);
    odl_replay_cfg ok = mkcfg(4, 4, 2, ODL_REPLAY_RESERVOIR, ODL_REPLAY_F32);
    CHECK(odl_replay_plan(&ok, NULL, &d) == ODL_ERR_ARG);
    CHECK(odl_replay_init(NULL, &ok, NULL, &d) == ODL_ERR_ARG);
}

/* ---- reservoir statistics ---------------------------------------------- */

/* Upper p-quantile of chi-square with `dof` degrees of freedom by the
 * Wilson-Hilferty approximation (accurate to ~0.1 at 99 dof). */
static double chi2_crit(double dof, double z_p)
{
    const double a = 2.0 / (9.0 * dof);
    const double c = 1.0 - a + z_p * sqrt(a);
    return dof * c * c * c;
}

/* Each trial keeps exactly k of the n items, so the per-item counts are not
 * independent: Cov = R p(1-p) (I - 11'/n) n/(n-1), p = k/n. Pearson's sum
 * divided by (1-p) n/(n-1) is then chi-square with n-1 dof (exactly in the
 * normal limit), so the p = 0.001 threshold means what it says. */
static double chi2_inclusion(const uint32_t *counts, int32_t n, int32_t k, int32_t trials)
{
    const double p = (double)k / n, e = (double)trials * p;
    double x = 0.0;
    for (int32_t i = 0; i < n; i++)
        x += ((double)counts[i] - e) * ((double)counts[i] - e) / e;
    return x / ((1.0 - p) * n / (n - 1.0));
}

/* Streams 0..n-1 (z = item index) through a capacity-k buffer `trials`
 * times and counts how often each item ends up in it. */
static void inclusion_counts(odl_test_ctx *t, odl_replay_policy pol, odl_replay_dtype dt,
                             int32_t k, int32_t n, int32_t trials, uint32_t *counts)
{
    odl_replay_cfg cfg = mkcfg(k, 1, 1, pol, dt);
    rbox b;
    CHECK_OK(rbox_open(&b, &cfg));
    memset(counts, 0, sizeof(uint32_t) * (size_t)n);
    int bad = 0;
    for (int32_t r = 0; r < trials; r++) {
        CHECK_OK(rbox_reset(&b, &cfg));
        odl_rng rng;
        odl_rng_seed(&rng, 1000u + (uint64_t)r, 11);
        for (int32_t i = 0; i < n; i++) {
            const float z = (float)i;
            CHECK_OK(odl_replay_add(b.rb, &z, 0, &rng, NULL));
        }
        if (odl_replay_count(b.rb) != k || odl_replay_seen(b.rb) != (uint64_t)n)
            bad++;
        uint8_t in[1024] = {0};
        for (int32_t s = 0; s < k; s++) {
            float z;
            int32_t lab;
            CHECK_OK(odl_replay_get(b.rb, s, &z, &lab));
            const int32_t id = (int32_t)lrintf(z);
            if (id < 0 || id >= n || in[id] || lab != 0) {
                bad++;
                continue;
            }
            in[id] = 1;
            counts[id]++;
        }
    }
    CHECK(bad == 0);
    rbox_close(&b);
}

static void reservoir_stats(odl_test_ctx *t, odl_replay_policy pol, odl_replay_dtype dt)
{
    enum { K = 10, N = 100, R = 20000 };
    uint32_t counts[N];
    inclusion_counts(t, pol, dt, K, N, R, counts);
    const double crit = chi2_crit(N - 1, 3.090232); /* p = 0.001 */
    CHECK_NEAR(crit, 148.23, 0.2);
    const double x = chi2_inclusion(counts, N, K, R);
    uint32_t early = 0, late = 0, lo = counts[0], hi = counts[0];
    for (int i = 0; i < 10; i++) {
        early += counts[i];
        late += counts[N - 1 - i];
    }
    for (int i = 0; i < N; i++) {
        lo = counts[i] < lo ? counts[i] : lo;
        hi = counts[i] > hi ? counts[i] : hi;
    }
    odl_test_logf(t, "    chi2 = %.1f (99 dof, crit %.1f); items 0-9 kept %u times, 90-99 %u (expected 20000);"
                     " per item %u..%u (expected 2000)", x, crit, early, late, lo, hi);
    CHECK(x < crit);
    /* Each 10-item group's total is 20000 with sd sqrt(R*0.818) = 128 (a
     * hypergeometric count per trial); the difference has sd 191. */
    CHECK(fabs((double)early - 20000.0) < 700.0);
    CHECK(fabs((double)late - 20000.0) < 700.0);
    CHECK(fabs((double)early - (double)late) < 1000.0);

    /* The test has power: a buffer keeping the first k items, or the last k,
     * or the first k/2 and last k/2, is far outside the threshold. */
    uint32_t fake[N];
    for (int mode = 0; mode < 3; mode++) {
        for (int i = 0; i < N; i++) {
            int kept = mode == 0 ? i < K : mode == 1 ? i >= N - K : (i < K / 2 || i >= N - K / 2);
            fake[i] = kept ? R : 0;
        }
        CHECK(chi2_inclusion(fake, N, K, R) > 100.0 * crit);
    }
}

static void test_reservoir_stats(odl_test_ctx *t)
{
    reservoir_stats(t, ODL_REPLAY_RESERVOIR, ODL_REPLAY_F32);
}

/* With a single class, class-balanced sampling is per-class reservoir
 * sampling: the same k/n inclusion law must hold. */
static void test_class_balanced_single_class_stats(odl_test_ctx *t)
{
    reservoir_stats(t, ODL_REPLAY_CLASS_BALANCED, ODL_REPLAY_F32);
}

/* Before the buffer fills everything is kept; the n-th item seen after is
 * kept at rate k/n, measured at several stream lengths (and INT8 storage
 * changes nothing about it). */
static void test_reservoir_lengths(odl_test_ctx *t)
{
    static const int32_t ns[] = {10, 11, 37, 300};
    for (size_t j = 0; j < sizeof ns / sizeof ns[0]; j++) {
        enum { K = 10, R = 4000 };
        const int32_t n = ns[j];
        uint32_t counts[300];
        inclusion_counts(t, ODL_REPLAY_RESERVOIR, ODL_REPLAY_INT8, K, n, R, counts);
        if (n == K) {
            for (int32_t i = 0; i < n; i++)
                CHECK(counts[i] == R);
            continue;
        }
        const double x = chi2_inclusion(counts, n, K, R);
        CHECK(x < chi2_crit(n - 1, 3.090232));
    }
}

/* ---- class-balanced invariants ----------------------------------------- */

/* Checks every invariant of the class-balanced buffer; returns the number of
 * failed checks (so a stream can stop at the first). */
static int check_cb_invariants(odl_test_ctx *t, const odl_replay *rb, int check_pairing)
{
    const odl_replay_cfg *cfg = odl_replay_get_cfg(rb);
    const int32_t C = cfg->n_classes, cap = cfg->capacity;
    int fails = 0;
#define INV(cond) do { if (!(cond)) { fails++; CHECK(cond); } } while (0)
    const int32_t count = odl_replay_count(rb);
    const uint64_t seen = odl_replay_seen(rb);
    INV(count <= cap);
    INV((uint64_t)count == (seen < (uint64_t)cap ? seen : (uint64_t)cap));
    int32_t scan[64] = {0};
    for (int32_t i = 0; i < count; i++) {
        float z[3];
        int32_t lab;
        if (odl_replay_get(rb, i, z, &lab) != ODL_OK || lab < 0 || lab >= C) {
            fails++;
            continue;
        }
        scan[lab]++;
        if (check_pairing)
            INV(z[0] == (float)lab); /* the vector moved with its label */
    }
    int32_t total = 0, m_max = 0, c_seen = 0;
    uint64_t seen_sum = 0;
    for (int32_t c = 0; c < C; c++) {
        const int32_t m = odl_replay_class_count(rb, c);
        const uint64_t n = odl_replay_class_seen(rb, c);
        INV(m == scan[c]);
        INV((uint64_t)m <= n);
        total += m;
        seen_sum += n;
        m_max = m > m_max ? m : m_max;
        c_seen += n > 0;
    }
    INV(total == count);
    INV(seen_sum == seen);
    if (count == cap) {
        /* every class keeps all its items or is within one of the largest */
        int all_above_share = 1;
        for (int32_t c = 0; c < C; c++) {
            const int32_t m = odl_replay_class_count(rb, c);
            const uint64_t n = odl_replay_class_seen(rb, c);
            INV((uint64_t)m >= (n < (uint64_t)(m_max - 1) ? n : (uint64_t)(m_max - 1)));
            if (n > 0 && (double)n < (double)cap / c_seen)
                all_above_share = 0;
        }
        /* and when every class seen has seen at least capacity/C items,
         * the counts differ by at most one */
        if (all_above_share)
            for (int32_t c = 0; c < C; c++)
                if (odl_replay_class_seen(rb, c) > 0)
                    INV(odl_replay_class_count(rb, c) >= m_max - 1);
    }
#undef INV
    return fails;
}

/* A labelled stream: z = {label, item id, -item id}. */
static odl_status offer(odl_replay *rb, int32_t label, int32_t id, odl_rng *rng)
{
    const float z[3] = {(float)label, (float)id, -(float)id};
    return odl_replay_add(rb, z, label, rng, NULL);
}

static void test_class_balanced_imbalanced(odl_test_ctx *t)
{
    enum { C = 5, CAP = 50, N = 3000 };
    for (int dt = 0; dt < 2; dt++)
        for (uint64_t seed = 1; seed <= 8; seed++) {
            odl_replay_cfg cfg = mkcfg(CAP, 3, C, ODL_REPLAY_CLASS_BALANCED, (odl_replay_dtype)dt);
            rbox b;
            CHECK_OK(rbox_open(&b, &cfg));
            odl_rng rng, data;
            odl_rng_seed(&rng, seed, 3);
            odl_rng_seed(&data, seed, 4);
            /* class 4 appears exactly 3 times (below its share 50/5 = 10),
             * once at a random place in each third of the stream; otherwise
             * 90% class 0, the rest 1..3 */
            int32_t rare_at[3];
            for (int i = 0; i < 3; i++)
                rare_at[i] = i * (N / 3) + (int32_t)odl_rng_below(&data, N / 3);
            for (int32_t i = 0; i < N; i++) {
                int32_t y = odl_rng_uniform(&data) < 0.9f ? 0 : 1 + (int32_t)odl_rng_below(&data, 3);
                for (int r = 0; r < 3; r++)
                    if (rare_at[r] == i)
                        y = 4;
                CHECK_OK(offer(b.rb, y, i, &rng));
                /* pairing is exact only in F32 (INT8 rounds label 0..4
                 * against ids up to 3000) */
                if (check_cb_invariants(t, b.rb, dt == ODL_REPLAY_F32)) {
                    odl_test_logf(t, "    seed %d dtype %d: invariant broken after item %d", (int)seed, dt,
                                  (int)i);
                    break;
                }
                /* the rare class keeps every item it has seen */
                CHECK(odl_replay_class_count(b.rb, 4) == (int32_t)odl_replay_class_seen(b.rb, 4));
            }
            CHECK(odl_replay_count(b.rb) == CAP);
            /* at the end classes 0..3 have each seen far more than 50/5:
             * they share the 47 slots left by class 4 equally (11 or 12) */
            CHECK(odl_replay_class_count(b.rb, 4) == 3);
            for (int32_t c = 0; c < 4; c++) {
                const int32_t m = odl_replay_class_count(b.rb, c);
                CHECK(m == 11 || m == 12);
            }
            if (seed == 1 && dt == 0)
                odl_test_logf(t, "    end counts %d %d %d %d %d (seen %d %d %d %d %d)",
                              (int)odl_replay_class_count(b.rb, 0), (int)odl_replay_class_count(b.rb, 1),
                              (int)odl_replay_class_count(b.rb, 2), (int)odl_replay_class_count(b.rb, 3),
                              (int)odl_replay_class_count(b.rb, 4), (int)odl_replay_class_seen(b.rb, 0),
                              (int)odl_replay_class_seen(b.rb, 1), (int)odl_replay_class_seen(b.rb, 2),
                              (int)odl_replay_class_seen(b.rb, 3), (int)odl_replay_class_seen(b.rb, 4));
            rbox_close(&b);
        }
}

/* Class-incremental: tasks {0,1}, {2,3}, {4,5,6} one after another. After
 * each task every class seen so far holds an equal share (±1). */
static void test_class_balanced_incremental(odl_test_ctx *t)
{
    enum { C = 7, CAP = 42 };
    static const int32_t task_lo[] = {0, 2, 4}, task_hi[] = {2, 4, 7};
    odl_replay_cfg cfg = mkcfg(CAP, 3, C, ODL_REPLAY_CLASS_BALANCED, ODL_REPLAY_F32);
    rbox b;
    CHECK_OK(rbox_open(&b, &cfg));
    odl_rng rng, data;
    odl_rng_seed(&rng, 5, 1);
    odl_rng_seed(&data, 6, 1);
    int32_t id = 0;
    for (int task = 0; task < 3; task++) {
        const int32_t lo = task_lo[task], span = task_hi[task] - lo;
        for (int32_t i = 0; i < 400; i++) {
            CHECK_OK(offer(b.rb, lo + (int32_t)odl_rng_below(&data, (uint32_t)span), id++, &rng));
            if (check_cb_invariants(t, b.rb, 1))
                return;
        }
        const int32_t classes = task_hi[task];
        for (int32_t c = 0; c < classes; c++) {
            const int32_t m = odl_replay_class_count(b.rb, c);
            CHECK(m == CAP / classes || m == CAP / classes + 1);
        }
    }
    rbox_close(&b);
}

/* Water-filling, deterministic (no draw decides anything here): 100 items of
 * class 0 fill the buffer, then 6 of class 1, 1 of class 2, 1 of class 3,
 * capacity 20. Each newcomer evicts class 0 (the largest), so the counts are
 * exactly 12, 6, 1, 1: classes 1..3 keep everything, class 0 takes what
 * they leave. (So "equal counts among classes that have seen capacity/C
 * items" holds only once every class has seen its share: class 1 has seen
 * 6 >= 20/4 items and holds 6 against class 0's 12.) */
static void test_class_balanced_water_filling(odl_test_ctx *t)
{
    odl_replay_cfg cfg = mkcfg(20, 3, 4, ODL_REPLAY_CLASS_BALANCED, ODL_REPLAY_F32);
    rbox b;
    CHECK_OK(rbox_open(&b, &cfg));
    odl_rng rng;
    odl_rng_seed(&rng, 77, 0);
    int32_t id = 0;
    for (int i = 0; i < 100; i++)
        CHECK_OK(offer(b.rb, 0, id++, &rng));
    CHECK(odl_replay_class_count(b.rb, 0) == 20);
    for (int i = 0; i < 6; i++)
        CHECK_OK(offer(b.rb, 1, id++, &rng));
    CHECK_OK(offer(b.rb, 2, id++, &rng));
    CHECK_OK(offer(b.rb, 3, id++, &rng));
    CHECK(odl_replay_class_count(b.rb, 0) == 12);
    CHECK(odl_replay_class_count(b.rb, 1) == 6);
    CHECK(odl_replay_class_count(b.rb, 2) == 1);
    CHECK(odl_replay_class_count(b.rb, 3) == 1);
    CHECK(check_cb_invariants(t, b.rb, 1) == 0);
    /* more of class 1: it grows until it ties with class 0, then both sit
     * at 9 (±1) */
    for (int i = 0; i < 200; i++)
        CHECK_OK(offer(b.rb, 1, id++, &rng));
    CHECK(odl_replay_class_count(b.rb, 0) + odl_replay_class_count(b.rb, 1) == 18);
    CHECK(abs(odl_replay_class_count(b.rb, 0) - odl_replay_class_count(b.rb, 1)) <= 1);
    CHECK(check_cb_invariants(t, b.rb, 1) == 0);
    rbox_close(&b);
}

/* ---- INT8 ---------------------------------------------------------------- */

static void test_int8_roundtrip(odl_test_ctx *t)
{
    enum { DIM = 64, N = 200 };
    odl_replay_cfg cfg = mkcfg(N, DIM, 3, ODL_REPLAY_RESERVOIR, ODL_REPLAY_INT8);
    rbox b;
    CHECK_OK(rbox_open(&b, &cfg));
    static float zs[N][DIM];
    odl_rng data, rng;
    odl_rng_seed(&data, 9, 9);
    odl_rng_seed(&rng, 10, 9);
    static const float mags[] = {1e-30f, 1e-3f, 1.0f, 3.7f, 1e3f, 1e30f};
    for (int i = 0; i < N; i++) {
        const float mag = mags[i % 6];
        for (int e = 0; e < DIM; e++)
            zs[i][e] = odl_rng_normal(&data) * mag;
        if (i % 7 == 0)
            zs[i][i % DIM] = 50.0f * mag; /* an outlier sets the scale */
        if (i % 11 == 0)
            for (int e = 0; e < DIM; e += 2)
                zs[i][e] = 0.0f;
        if (i == 5)
            memset(zs[i], 0, sizeof zs[i]); /* all zero */
        if (i == 6)
            for (int e = 0; e < DIM; e++)
                zs[i][e] = e % 2 ? -1.0f : 1.0f; /* |z| = max everywhere */
        CHECK_OK(odl_replay_add(b.rb, zs[i], i % 3, &rng, NULL));
    }
    REQUIRE(odl_replay_count(b.rb) == N); /* capacity N: all kept, in order */
    double worst = 0.0;
    int bad = 0;
    for (int i = 0; i < N; i++) {
        float out[DIM];
        int32_t lab;
        CHECK_OK(odl_replay_get(b.rb, i, out, &lab));
        CHECK(lab == i % 3);
        float maxabs = 0.0f;
        for (int e = 0; e < DIM; e++)
            maxabs = fabsf(zs[i][e]) > maxabs ? fabsf(zs[i][e]) : maxabs;
        const double scale = (double)maxabs / 127.0;
        for (int e = 0; e < DIM; e++) {
            const double err = fabs((double)out[e] - (double)zs[i][e]);
            if (err > 0.5 * scale + 4.0 * FLT_EPSILON * maxabs)
                bad++;
            if (scale > 0 && err / scale > worst)
                worst = err / scale;
            /* zeros stay zero; the largest element comes back (±1 ulp-ish) */
            if (zs[i][e] == 0.0f)
                CHECK(out[e] == 0.0f);
            if (fabsf(zs[i][e]) == maxabs)
                CHECK(fabs((double)out[e] - (double)zs[i][e]) <= 4.0 * FLT_EPSILON * maxabs);
        }
    }
    odl_test_logf(t, "    worst error %.4f * scale (bound 0.5)", worst);
    CHECK(bad == 0);
    CHECK(worst > 0.4); /* rounding really happens: the bound is tight */
    rbox_close(&b);
}

/* ---- bad input ----------------------------------------------------------- */

static void test_bad_input(odl_test_ctx *t)
{
    for (int dt = 0; dt < 2; dt++)
        for (int pol = 0; pol < 2; pol++) {
            odl_replay_cfg cfg = mkcfg(4, 3, 3, (odl_replay_policy)pol, (odl_replay_dtype)dt);
            rbox b;
            CHECK_OK(rbox_open(&b, &cfg));
            odl_rng rng;
            odl_rng_seed(&rng, 1, 1);
            const float good[3] = {1, 2, 3};
            for (int i = 0; i < 6; i++)
                CHECK_OK(odl_replay_add(b.rb, good, i % 3, &rng, NULL));
            odl_rng rng_before = rng;
            const int32_t count = odl_replay_count(b.rb);
            const uint64_t seen = odl_replay_seen(b.rb);
            uint8_t *snap = malloc(b.plan.total);
            REQUIRE(snap);
            memcpy(snap, b.buf, b.plan.total);
            odl_diag d;
            static const int32_t bad_labels[] = {-1, 3, 1000, INT32_MIN};
            for (size_t k = 0; k < sizeof bad_labels / sizeof bad_labels[0]; k++) {
                odl_diag_clear(&d);
                CHECK(odl_replay_add(b.rb, good, bad_labels[k], &rng, &d) == ODL_ERR_ARG);
                CHECK(strstr(d.msg, "label") != NULL);
            }
            const float nan = NAN, inf = INFINITY;
            const float bad_z[3][3] = {{nan, 0, 0}, {0, 0, inf}, {0, -inf, 0}};
            for (int k = 0; k < 3; k++) {
                odl_diag_clear(&d);
                CHECK(odl_replay_add(b.rb, bad_z[k], 1, &rng, &d) == ODL_ERR_NUMERIC);
                CHECK(strstr(d.msg, "finite") != NULL);
            }
            CHECK(odl_replay_add(b.rb, NULL, 1, &rng, &d) == ODL_ERR_ARG);
            CHECK(odl_replay_add(b.rb, good, 1, NULL, &d) == ODL_ERR_ARG);
            CHECK(odl_replay_add(NULL, good, 1, &rng, &d) == ODL_ERR_ARG);
            /* nothing stored, nothing counted, no draw taken */
            CHECK(odl_replay_count(b.rb) == count && odl_replay_seen(b.rb) == seen);
            CHECK(memcmp(snap, b.buf, b.plan.total) == 0);
            CHECK(memcmp(&rng, &rng_before, sizeof rng) == 0);
            free(snap);
            float z[3];
            int32_t lab;
            CHECK(odl_replay_get(b.rb, -1, z, &lab) == ODL_ERR_ARG);
            CHECK(odl_replay_get(b.rb, count, z, &lab) == ODL_ERR_ARG);
            CHECK(odl_replay_get(NULL, 0, z, &lab) == ODL_ERR_ARG);
            CHECK_OK(odl_replay_get(b.rb, 0, NULL, NULL));
            CHECK(odl_replay_class_count(b.rb, -1) == 0 && odl_replay_class_count(b.rb, 3) == 0);
            CHECK(odl_replay_sample(b.rb, -1, &rng, z, &lab, &d) == ODL_ERR_ARG);
            CHECK(odl_replay_sample(b.rb, 1, NULL, z, &lab, &d) == ODL_ERR_ARG);
            CHECK_OK(odl_replay_sample(b.rb, 0, &rng, NULL, NULL, &d));
            rbox_close(&b);
        }
    /* sampling from an empty buffer */
    odl_replay_cfg cfg = mkcfg(4, 3, 3, ODL_REPLAY_RESERVOIR, ODL_REPLAY_F32);
    rbox b;
    CHECK_OK(rbox_open(&b, &cfg));
    odl_rng rng;
    odl_rng_seed(&rng, 1, 1);
    float z[3];
    odl_diag d;
    CHECK(odl_replay_sample(b.rb, 1, &rng, z, NULL, &d) == ODL_ERR_STATE);
    CHECK(strstr(d.msg, "empty") != NULL);
    rbox_close(&b);
}

/* ---- sampling ------------------------------------------------------------ */

static void test_sample(odl_test_ctx *t)
{
    enum { CAP = 20, DIM = 2, NS = 5, R = 20000 };
    odl_replay_cfg cfg = mkcfg(CAP, DIM, 4, ODL_REPLAY_RESERVOIR, ODL_REPLAY_F32);
    rbox b;
    CHECK_OK(rbox_open(&b, &cfg));
    odl_rng rng;
    odl_rng_seed(&rng, 21, 2);
    for (int32_t i = 0; i < CAP; i++) {
        const float z[DIM] = {(float)i, (float)(i % 4) + 0.5f};
        CHECK_OK(odl_replay_add(b.rb, z, i % 4, &rng, NULL));
    }
    /* without replacement: distinct, paired, uniform over items and over
     * output positions */
    uint32_t hits[CAP] = {0}, first[CAP] = {0};
    int bad = 0;
    for (int r = 0; r < R; r++) {
        float zs[NS * DIM];
        int32_t ys[NS];
        CHECK_OK(odl_replay_sample(b.rb, NS, &rng, zs, ys, NULL));
        uint8_t used[CAP] = {0};
        for (int k = 0; k < NS; k++) {
            const int32_t id = (int32_t)zs[k * DIM];
            if (id < 0 || id >= CAP || used[id] || ys[k] != id % 4 || zs[k * DIM + 1] != (float)(id % 4) + 0.5f) {
                bad++;
                continue;
            }
            used[id] = 1;
            hits[id]++;
            if (k == 0)
                first[id]++;
        }
    }
    CHECK(bad == 0);
    const double x = chi2_inclusion(hits, CAP, NS, R);
    double xf = 0.0; /* the first output: plain multinomial over 20 items */
    for (int i = 0; i < CAP; i++)
        xf += ((double)first[i] - R / (double)CAP) * ((double)first[i] - R / (double)CAP) / (R / (double)CAP);
    const double crit = chi2_crit(CAP - 1, 3.090232);
    odl_test_logf(t, "    inclusion chi2 %.1f, first-position chi2 %.1f (19 dof, crit %.1f)", x, xf, crit);
    CHECK(x < crit);
    CHECK(xf < crit);
    /* n == count: a permutation of the whole buffer */
    {
        float zs[CAP * DIM];
        int32_t ys[CAP];
        CHECK_OK(odl_replay_sample(b.rb, CAP, &rng, zs, ys, NULL));
        uint8_t used[CAP] = {0};
        for (int k = 0; k < CAP; k++) {
            const int32_t id = (int32_t)zs[k * DIM];
            CHECK(id >= 0 && id < CAP && !used[id]);
            if (id >= 0 && id < CAP)
                used[id] = 1;
        }
    }
    /* n > count: with replacement, every draw a stored item */
    {
        enum { BIG = 100 };
        float zs[BIG * DIM];
        int32_t ys[BIG];
        CHECK_OK(odl_replay_sample(b.rb, BIG, &rng, zs, ys, NULL));
        int dup = 0;
        uint8_t used[CAP] = {0};
        for (int k = 0; k < BIG; k++) {
            const int32_t id = (int32_t)zs[k * DIM];
            REQUIRE(id >= 0 && id < CAP && ys[k] == id % 4);
            dup += used[id];
            used[id] = 1;
        }
        CHECK(dup >= BIG - CAP); /* pigeonhole: at most CAP distinct */
    }
    /* labels only */
    int32_t ys[3];
    CHECK_OK(odl_replay_sample(b.rb, 3, &rng, NULL, ys, NULL));
    rbox_close(&b);
}

/* ---- determinism ----------------------------------------------------------- */

static void run_stream(odl_test_ctx *t, rbox *b, const odl_replay_cfg *cfg, uint64_t seed)
{
    CHECK_OK(rbox_open(b, cfg));
    odl_rng rng, data;
    odl_rng_seed(&rng, seed, 1);
    odl_rng_seed(&data, 1234, 1); /* the same data stream every time */
    float z[16];
    for (int i = 0; i < 2000; i++) {
        for (int e = 0; e < cfg->dim; e++)
            z[e] = odl_rng_normal(&data);
        const int32_t y = odl_rng_uniform(&data) < 0.7f ? 0 : (int32_t)odl_rng_below(&data, (uint32_t)cfg->n_classes);
        CHECK_OK(odl_replay_add(b->rb, z, y, &rng, NULL));
    }
}

static int same_contents(const odl_replay *a, const odl_replay *b)
{
    if (odl_replay_count(a) != odl_replay_count(b) || odl_replay_seen(a) != odl_replay_seen(b))
        return 0;
    for (int32_t i = 0; i < odl_replay_count(a); i++) {
        float za[16], zb[16];
        int32_t la, lb;
        odl_replay_get(a, i, za, &la);
        odl_replay_get(b, i, zb, &lb);
        if (la != lb || memcmp(za, zb, sizeof(float) * (size_t)odl_replay_get_cfg(a)->dim) != 0)
            return 0;
    }
    return 1;
}

static void test_determinism(odl_test_ctx *t)
{
    for (int dt = 0; dt < 2; dt++)
        for (int pol = 0; pol < 2; pol++) {
            odl_replay_cfg cfg = mkcfg(32, 16, 4, (odl_replay_policy)pol, (odl_replay_dtype)dt);
            rbox a, b, c;
            run_stream(t, &a, &cfg, 42);
            run_stream(t, &b, &cfg, 42);
            run_stream(t, &c, &cfg, 43);
            REQUIRE(a.rb && b.rb && c.rb);
            CHECK(same_contents(a.rb, b.rb));
            CHECK(!same_contents(a.rb, c.rb)); /* another seed, another buffer */
            /* samples repeat too */
            odl_rng ra, rb2;
            odl_rng_seed(&ra, 5, 5);
            odl_rng_seed(&rb2, 5, 5);
            float sa[8 * 16], sb[8 * 16];
            int32_t la[8], lb[8];
            CHECK_OK(odl_replay_sample(a.rb, 8, &ra, sa, la, NULL));
            CHECK_OK(odl_replay_sample(b.rb, 8, &rb2, sb, lb, NULL));
            CHECK(memcmp(sa, sb, sizeof sa) == 0 && memcmp(la, lb, sizeof la) == 0);
            rbox_close(&a);
            rbox_close(&b);
            rbox_close(&c);
        }
}

/* ---- herding ------------------------------------------------------------- */

#define HD 8

/* Seeded synthetic classes: centre c*2 on axis c, anisotropic and skewed
 * noise (a squared normal on some axes), labels in random order. */
static void herd_data(float *z, int32_t *y, int32_t n, int32_t ncls, uint64_t seed)
{
    odl_rng r;
    odl_rng_seed(&r, seed, 11);
    for (int32_t i = 0; i < n; i++) {
        y[i] = (int32_t)odl_rng_below(&r, (uint32_t)ncls);
        for (int32_t e = 0; e < HD; e++) {
            const float g = odl_rng_normal(&r);
            float v = (e % 3 == 0) ? g * g : g * (1.0f + 0.3f * (float)e);
            if (e == y[i] % HD)
                v += 2.0f * (float)y[i];
            z[(size_t)i * HD + e] = v;
        }
    }
}

/* ||mean of the rows idx[0..m) of z - mu||. */
static double subset_err(const float *z, const int32_t *idx, int32_t m, const double *mu)
{
    double acc = 0.0;
    for (int32_t e = 0; e < HD; e++) {
        double s = 0.0;
        for (int32_t k = 0; k < m; k++)
            s += z[(size_t)idx[k] * HD + e];
        const double dv = s / m - mu[e];
        acc += dv * dv;
    }
    return sqrt(acc);
}

/* The herded exemplars' mean is much closer to the class mean than a random
 * subset of the same size; every class gets capacity / classes slots. */
static void herding_vs_random(odl_test_ctx *t, odl_replay_dtype dt)
{
    enum { N = 600, C = 3, CAP = 30 };
    static float z[N * HD];
    static int32_t y[N];
    herd_data(z, y, N, C, 77);
    odl_replay_cfg cfg = mkcfg(CAP, HD, C, ODL_REPLAY_CLASS_BALANCED, dt);
    rbox b;
    REQUIRE(rbox_open(&b, &cfg) == ODL_OK);
    const size_t ns = odl_replay_herding_scratch_floats(&cfg, N);
    CHECK(ns == 2 * HD + N + C);
    float *scratch = malloc(ns * sizeof(float));
    REQUIRE(scratch);
    odl_diag d;
    CHECK_OK(odl_replay_herding_fill(b.rb, z, y, N, scratch, ns, &d));
    CHECK(odl_replay_count(b.rb) == CAP && odl_replay_seen(b.rb) == N);
    odl_rng r;
    odl_rng_seed(&r, 5, 5);
    for (int32_t c = 0; c < C; c++) {
        CHECK(odl_replay_class_count(b.rb, c) == CAP / C);
        /* the class's items and mean (in double) */
        int32_t items[N], n_c = 0;
        double mu[HD] = {0};
        for (int32_t i = 0; i < N; i++)
            if (y[i] == c) {
                items[n_c++] = i;
                for (int32_t e = 0; e < HD; e++)
                    mu[e] += z[(size_t)i * HD + e];
            }
        CHECK(odl_replay_class_seen(b.rb, c) == (uint64_t)n_c);
        for (int32_t e = 0; e < HD; e++)
            mu[e] /= n_c;
        /* the herded mean, read back from the buffer */
        double hm[HD] = {0};
        int32_t m = 0;
        for (int32_t i = 0; i < odl_replay_count(b.rb); i++) {
            float v[HD];
            int32_t l;
            odl_replay_get(b.rb, i, v, &l);
            if (l != c)
                continue;
            m++;
            for (int32_t e = 0; e < HD; e++)
                hm[e] += v[e];
        }
        REQUIRE(m == CAP / C);
        double herr = 0.0;
        for (int32_t e = 0; e < HD; e++)
            herr += (hm[e] / m - mu[e]) * (hm[e] / m - mu[e]);
        herr = sqrt(herr);
        /* random subsets of the same size */
        const int trials = 1000;
        double sum = 0.0;
        int better = 0;
        for (int k = 0; k < trials; k++) {
            odl_rng_shuffle_u32(&r, (uint32_t *)items, (uint32_t)n_c);
            const double re = subset_err(z, items, m, mu);
            sum += re;
            better += re <= herr;
        }
        odl_test_logf(t, "    %s class %d (%d items): herded mean error %.4f, random %d-subsets %.4f on average, "
                      "%d of %d random subsets as good",
                      dt ? "int8" : "f32", (int)c, (int)n_c, herr, (int)m, sum / trials, better, trials);
        CHECK(herr < 0.25 * (sum / trials));
        CHECK(better <= trials / 100);
    }
    free(scratch);
    rbox_close(&b);
}

static void test_herding_vs_random(odl_test_ctx *t)
{
    herding_vs_random(t, ODL_REPLAY_F32);
    herding_vs_random(t, ODL_REPLAY_INT8);
}

/* Slots and labels of a buffer, for before/after comparisons. */
typedef struct snap {
    int32_t count;
    uint64_t seen;
    float z[64 * HD];
    int32_t l[64];
} snap;

static void take_snap(const odl_replay *rb, snap *s)
{
    memset(s, 0, sizeof *s);
    s->count = odl_replay_count(rb);
    s->seen = odl_replay_seen(rb);
    for (int32_t i = 0; i < s->count && i < 64; i++)
        odl_replay_get(rb, i, s->z + (size_t)i * HD, &s->l[i]);
}

/* Quotas with several calls: classes not in y are trimmed to their first
 * slots (their best exemplars), classes in y re-herded, small classes keep
 * everything. */
static void test_herding_quota_and_trim(odl_test_ctx *t)
{
    enum { N = 200 };
    static float z[N * HD];
    static int32_t y[N];
    odl_replay_cfg cfg = mkcfg(12, HD, 6, ODL_REPLAY_RESERVOIR, ODL_REPLAY_F32);
    rbox b;
    REQUIRE(rbox_open(&b, &cfg) == ODL_OK);
    float scratch[2 * HD + N + 6];
    /* task 1: classes 0 and 1, quota 6 */
    herd_data(z, y, N, 2, 1);
    CHECK_OK(odl_replay_herding_fill(b.rb, z, y, N, scratch, sizeof scratch / sizeof scratch[0], NULL));
    CHECK(odl_replay_count(b.rb) == 12 && odl_replay_class_count(b.rb, 0) == 6 && odl_replay_class_count(b.rb, 1) == 6);
    int32_t n1 = 0;
    for (int32_t i = 0; i < N; i++)
        n1 += y[i] == 1;
    CHECK(odl_replay_class_seen(b.rb, 1) == (uint64_t)n1);
    snap s1;
    take_snap(b.rb, &s1);
    for (int32_t i = 0; i < 12; i++)
        CHECK(s1.l[i] == (i < 6 ? 0 : 1)); /* classes in order */
    /* task 2: classes 2 and 3 (labels 0/1 shifted), quota 3 */
    herd_data(z, y, N, 2, 2);
    for (int32_t i = 0; i < N; i++)
        y[i] += 2;
    CHECK_OK(odl_replay_herding_fill(b.rb, z, y, N, scratch, sizeof scratch / sizeof scratch[0], NULL));
    snap s2;
    take_snap(b.rb, &s2);
    CHECK(s2.count == 12 && s2.seen == 2 * N);
    for (int32_t c = 0; c < 4; c++)
        CHECK(odl_replay_class_count(b.rb, c) == 3);
    /* the old classes kept their first three exemplars, in order */
    CHECK(memcmp(s2.z, s1.z, 3 * HD * sizeof(float)) == 0);
    CHECK(memcmp(s2.z + 3 * HD, s1.z + 6 * HD, 3 * HD * sizeof(float)) == 0);
    CHECK(s2.l[0] == 0 && s2.l[3] == 1 && s2.l[6] == 2 && s2.l[9] == 3);
    /* task 3: class 4 with a single item and class 1 again: 5 classes,
     * quota 2; class 4 keeps its one item, class 1 is re-herded */
    float z3[3 * HD];
    int32_t y3[3] = {4, 1, 1};
    for (int32_t k = 0; k < 3 * HD; k++)
        z3[k] = 100.0f + (float)k;
    CHECK_OK(odl_replay_herding_fill(b.rb, z3, y3, 3, scratch, sizeof scratch / sizeof scratch[0], NULL));
    CHECK(odl_replay_count(b.rb) == 2 + 2 + 2 + 2 + 1);
    CHECK(odl_replay_class_count(b.rb, 1) == 2 && odl_replay_class_count(b.rb, 4) == 1);
    CHECK(odl_replay_class_seen(b.rb, 1) == (uint64_t)n1 + 2 && odl_replay_class_seen(b.rb, 4) == 1);
    snap s3;
    take_snap(b.rb, &s3);
    for (int32_t i = 0; i < s3.count; i++)
        if (s3.l[i] == 1)
            CHECK(s3.z[(size_t)i * HD] >= 100.0f); /* the new class-1 items */
    CHECK(s3.seen == 2 * N + 3);
    /* then the policy takes over: free slots first, invariants hold */
    odl_rng rng;
    odl_rng_seed(&rng, 3, 3);
    for (int32_t i = 0; i < 50; i++)
        CHECK_OK(odl_replay_add(b.rb, z + (size_t)i * HD, i % 6, &rng, NULL));
    CHECK(odl_replay_count(b.rb) == 12);
    int32_t hist[6] = {0}, total = 0;
    uint64_t seen_sum = 0;
    for (int32_t i = 0; i < 12; i++) {
        int32_t l;
        CHECK_OK(odl_replay_get(b.rb, i, NULL, &l));
        hist[l]++;
    }
    for (int32_t c = 0; c < 6; c++) {
        CHECK(hist[c] == odl_replay_class_count(b.rb, c));
        CHECK((uint64_t)hist[c] <= odl_replay_class_seen(b.rb, c));
        total += hist[c];
        seen_sum += odl_replay_class_seen(b.rb, c);
    }
    CHECK(total == 12 && seen_sum == odl_replay_seen(b.rb));
    rbox_close(&b);
}

/* Class-balanced buffer after herding: adds keep every invariant. */
static void test_herding_then_balanced_adds(odl_test_ctx *t)
{
    enum { N = 300 };
    static float z[N * HD];
    static int32_t y[N];
    herd_data(z, y, N, 3, 9);
    odl_replay_cfg cfg = mkcfg(20, HD, 5, ODL_REPLAY_CLASS_BALANCED, ODL_REPLAY_INT8);
    rbox b;
    REQUIRE(rbox_open(&b, &cfg) == ODL_OK);
    float scratch[2 * HD + N + 5];
    CHECK_OK(odl_replay_herding_fill(b.rb, z, y, N, scratch, sizeof scratch / sizeof scratch[0], NULL));
    CHECK(odl_replay_count(b.rb) == 18); /* 3 classes x quota 6 */
    odl_rng rng;
    odl_rng_seed(&rng, 4, 4);
    for (int32_t i = 0; i < 500; i++) {
        const float v[HD] = {(float)i, 1, 2, 3, 4, 5, 6, 7};
        CHECK_OK(odl_replay_add(b.rb, v, (int32_t)odl_rng_below(&rng, 5), &rng, NULL));
        int32_t hist[5] = {0};
        for (int32_t k = 0; k < odl_replay_count(b.rb); k++) {
            int32_t l;
            odl_replay_get(b.rb, k, NULL, &l);
            hist[l]++;
        }
        for (int32_t c = 0; c < 5; c++)
            if (hist[c] != odl_replay_class_count(b.rb, c)) {
                CHECK(!"class counts follow the labels");
                i = 500;
                break;
            }
    }
    CHECK(odl_replay_count(b.rb) == 20);
    rbox_close(&b);
}

static void test_herding_errors(odl_test_ctx *t)
{
    enum { N = 40 };
    float z[N * HD];
    int32_t y[N];
    herd_data(z, y, N, 3, 5);
    odl_replay_cfg cfg = mkcfg(9, HD, 3, ODL_REPLAY_RESERVOIR, ODL_REPLAY_F32);
    rbox b;
    REQUIRE(rbox_open(&b, &cfg) == ODL_OK);
    float scratch[2 * HD + N + 3];
    const size_t ns = sizeof scratch / sizeof scratch[0];
    CHECK_OK(odl_replay_herding_fill(b.rb, z, y, N, scratch, ns, NULL));
    snap before, after;
    take_snap(b.rb, &before);
    odl_diag d;
    CHECK(odl_replay_herding_fill(NULL, z, y, N, scratch, ns, &d) == ODL_ERR_ARG);
    CHECK(odl_replay_herding_fill(b.rb, z, y, -1, scratch, ns, &d) == ODL_ERR_ARG);
    CHECK(odl_replay_herding_fill(b.rb, NULL, y, N, scratch, ns, &d) == ODL_ERR_ARG);
    CHECK(odl_replay_herding_fill(b.rb, z, y, N, NULL, ns, &d) == ODL_ERR_ARG);
    odl_diag_clear(&d);
    CHECK(odl_replay_herding_fill(b.rb, z, y, N, scratch, ns - 1, &d) == ODL_ERR_ARG);
    CHECK(strstr(d.msg, "needed") != NULL);
    y[7] = 3;
    CHECK(odl_replay_herding_fill(b.rb, z, y, N, scratch, ns, &d) == ODL_ERR_ARG);
    y[7] = 0;
    z[5 * HD + 2] = NAN;
    CHECK(odl_replay_herding_fill(b.rb, z, y, N, scratch, ns, &d) == ODL_ERR_NUMERIC);
    z[5 * HD + 2] = 0.0f;
    /* 3 classes in a 2-slot buffer: no room */
    odl_replay_cfg small = mkcfg(2, HD, 3, ODL_REPLAY_RESERVOIR, ODL_REPLAY_F32);
    rbox s;
    REQUIRE(rbox_open(&s, &small) == ODL_OK);
    odl_diag_clear(&d);
    CHECK(odl_replay_herding_fill(s.rb, z, y, N, scratch, ns, &d) == ODL_ERR_ARG);
    odl_test_logf(t, "    %s", d.msg);
    CHECK(odl_replay_count(s.rb) == 0 && odl_replay_seen(s.rb) == 0);
    /* n = 0 on an empty buffer: nothing to do */
    CHECK_OK(odl_replay_herding_fill(s.rb, NULL, NULL, 0, scratch, ns, &d));
    CHECK(odl_replay_count(s.rb) == 0);
    take_snap(b.rb, &after);
    CHECK(memcmp(&before, &after, sizeof before) == 0);
    CHECK(odl_replay_herding_scratch_floats(NULL, 3) == 0 && odl_replay_herding_scratch_floats(&cfg, -1) == 0);
    rbox_close(&s);
    rbox_close(&b);
}

/* The same inputs give the same buffer, bit for bit. */
static void test_herding_determinism(odl_test_ctx *t)
{
    enum { N = 150 };
    static float z[N * HD];
    static int32_t y[N];
    herd_data(z, y, N, 4, 6);
    odl_replay_cfg cfg = mkcfg(16, HD, 4, ODL_REPLAY_RESERVOIR, ODL_REPLAY_F32);
    rbox a, b;
    REQUIRE(rbox_open(&a, &cfg) == ODL_OK && rbox_open(&b, &cfg) == ODL_OK);
    float scratch[2 * HD + N + 4];
    CHECK_OK(odl_replay_herding_fill(a.rb, z, y, N, scratch, sizeof scratch / sizeof scratch[0], NULL));
    for (size_t k = 0; k < sizeof scratch / sizeof scratch[0]; k++)
        scratch[k] = NAN; /* scratch contents do not matter */
    CHECK_OK(odl_replay_herding_fill(b.rb, z, y, N, scratch, sizeof scratch / sizeof scratch[0], NULL));
    CHECK(same_contents(a.rb, b.rb));
    rbox_close(&a);
    rbox_close(&b);
}

static const odl_test_case cases[] = {
    {"plan_matches_arena", test_plan_matches_arena},
    {"plan_int8_bytes", test_plan_int8_bytes},
    {"bad_cfg", test_bad_cfg},
    {"reservoir_stats", test_reservoir_stats},
    {"reservoir_lengths", test_reservoir_lengths},
    {"class_balanced_single_class_stats", test_class_balanced_single_class_stats},
    {"class_balanced_imbalanced", test_class_balanced_imbalanced},
    {"class_balanced_incremental", test_class_balanced_incremental},
    {"class_balanced_water_filling", test_class_balanced_water_filling},
    {"int8_roundtrip", test_int8_roundtrip},
    {"bad_input", test_bad_input},
    {"sample", test_sample},
    {"determinism", test_determinism},
    {"herding_vs_random", test_herding_vs_random},
    {"herding_quota_and_trim", test_herding_quota_and_trim},
    {"herding_then_balanced_adds", test_herding_then_balanced_adds},
    {"herding_errors", test_herding_errors},
    {"herding_determinism", test_herding_determinism},
};

TEST_MAIN(cases)
