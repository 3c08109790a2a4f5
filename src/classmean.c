/* Gradient-free heads: nearest class mean and streaming LDA (odl/classmean.h).
 *
 * One code path (the layout functions) lays out both the counting arena of a
 * plan and the real one, so plans are exact. No malloc, no stdio, no global
 * mutable state. */
#include "odl/classmean.h"

#include <math.h>
#include <string.h>

static int all_finite(const float *z, int32_t n)
{
    for (int32_t i = 0; i < n; i++)
        if (!isfinite(z[i]))
            return 0;
    return 1;
}

static odl_status check_shape(const char *who, int32_t dim, int32_t max_classes, int square,
                              odl_diag *d)
{
    if (dim <= 0 || dim > ODL_CM_MAX_DIM)
        return odl_fail(d, ODL_ERR_SHAPE, "%s: dim %d out of range 1..%d", who, (int)dim,
                        ODL_CM_MAX_DIM);
    if (max_classes <= 0 || max_classes > ODL_CM_MAX_CLASSES)
        return odl_fail(d, ODL_ERR_SHAPE, "%s: max_classes %d out of range 1..%d", who,
                        (int)max_classes, ODL_CM_MAX_CLASSES);
    /* Byte counts must fit size_t (32-bit MCUs included). */
    const size_t lim = (size_t)-1 / 4 / sizeof(float);
    if ((size_t)max_classes > lim / (size_t)dim ||
        (square && (size_t)dim > lim / (size_t)dim))
        return odl_fail(d, ODL_ERR_SHAPE, "%s: dim %d x max_classes %d does not fit this address space",
                        who, (int)dim, (int)max_classes);
    return ODL_OK;
}

/* Lays out a head's arrays after its struct (h NULL: only count them). */
typedef odl_status (*head_layout)(void *h, int32_t dim, int32_t max_classes, odl_arena *a, odl_diag *d);

/* What tells the two heads apart where they are planned and placed. */
typedef struct head_kind {
    const char *api;   /* prefix of the public names in messages */
    const char *name;  /* check_shape's name */
    const char *title; /* the name in the arena-too-small message */
    int square;        /* 1: also a dim x dim matrix */
    size_t bytes;      /* the head struct */
    head_layout layout;
} head_kind;

/* The head struct, then its arrays: one code path for a counting arena
 * (where the struct pointer is NULL) and a real one, so plans are exact. */
static odl_status head_alloc(const head_kind *k, int32_t dim, int32_t max_classes, odl_arena *a, void **out,
                             odl_diag *d)
{
    void *p;
    odl_status s = odl_arena_alloc(a, k->bytes, ODL_MEM_STATE, &p, d);
    if (s == ODL_OK)
        s = k->layout(p, dim, max_classes, a, d);
    if (s == ODL_OK)
        *out = p;
    return s;
}

static odl_status head_plan(const head_kind *k, int32_t dim, int32_t max_classes, odl_mem_plan *plan, odl_diag *d)
{
    if (!plan)
        return odl_fail(d, ODL_ERR_ARG, "%s_plan: plan must not be NULL", k->api);
    odl_status s = check_shape(k->name, dim, max_classes, k->square, d);
    if (s != ODL_OK)
        return s;
    odl_arena a;
    void *p;
    odl_arena_init_counting(&a);
    s = head_alloc(k, dim, max_classes, &a, &p, d);
    if (s != ODL_OK)
        return s;
    *plan = a.plan;
    return ODL_OK;
}

/* An init after its own argument checks: plan, refuse an arena that only
 * counts or is too small, lay the head out. */
static odl_status head_init(const head_kind *k, int32_t dim, int32_t max_classes, odl_arena *a, void **out,
                            odl_diag *d)
{
    odl_mem_plan plan;
    odl_status s = head_plan(k, dim, max_classes, &plan, d);
    if (s != ODL_OK)
        return s;
    if (odl_arena_is_counting(a))
        return odl_fail(d, ODL_ERR_ARG, "%s_init needs a real arena (use %s_plan to count)", k->api, k->api);
    if (odl_arena_remaining(a) < plan.total)
        return odl_fail(d, ODL_ERR_NOMEM,
                        "arena too small for the %s head (dim %d, %d classes): needs %zu bytes, "
                        "%zu available",
                        k->title, (int)dim, (int)max_classes, plan.total, odl_arena_remaining(a));
    return head_alloc(k, dim, max_classes, a, out, d);
}

/* mu += (z - mu) / (n + 1): Welford's running mean. */
static void mean_update(float *mu, const float *z, int32_t dim, uint32_t n_before)
{
    const float nf = n_before < UINT32_MAX ? (float)(n_before + 1u) : 4294967296.0f;
    for (int32_t i = 0; i < dim; i++)
        mu[i] += (z[i] - mu[i]) / nf;
}

/* What an add checks (after the handle) before it changes anything. */
static odl_status add_check(const float *z, int32_t label, int32_t dim, int32_t max_classes, const uint32_t *counts)
{
    if (!z || label < 0 || label >= max_classes)
        return ODL_ERR_ARG;
    if (!all_finite(z, dim))
        return ODL_ERR_NUMERIC;
    if (counts[label] >= (uint32_t)INT32_MAX)
        return ODL_ERR_STATE;
    return ODL_OK;
}

/* Folds z into the mean and count of class label. */
static void add_to_class(float *means, uint32_t *counts, int32_t *n_seen, int32_t dim, const float *z,
                         int32_t label)
{
    uint32_t *n = &counts[label];
    mean_update(means + (size_t)label * dim, z, dim, *n);
    if (*n == 0)
        (*n_seen)++;
    (*n)++;
}

/* What a predict checks (after the handle) before it scores. */
static odl_status predict_check(const float *z, const int32_t *cls, int32_t dim, int32_t n_seen)
{
    if (!z || !cls)
        return ODL_ERR_ARG;
    if (!all_finite(z, dim))
        return ODL_ERR_NUMERIC;
    if (n_seen == 0)
        return ODL_ERR_STATE;
    return ODL_OK;
}

/* The score of a class seen at least once. */
typedef float (*class_score)(const void *h, int32_t c, const float *z);

/* The best-scoring class seen at least once (the lowest index on a tie);
 * scores, if given, gets every score, -inf for the unseen classes. */
static int32_t best_class(const void *h, const uint32_t *counts, int32_t max_classes, class_score score,
                          const float *z, float *scores)
{
    int32_t best = -1;
    float best_s = 0.0f;
    for (int32_t c = 0; c < max_classes; c++) {
        float sc = -INFINITY;
        if (counts[c]) {
            sc = score(h, c, z);
            if (best < 0 || sc > best_s) {
                best = c;
                best_s = sc;
            }
        }
        if (scores)
            scores[c] = sc;
    }
    return best;
}

/* The checks of a set's means and counts (messages "<api>_set: ...");
 * *sum gets the counts' total. */
static odl_status check_class_stats(const char *api, const float *means, const uint32_t *counts, int32_t dim,
                                    int32_t max_classes, uint64_t *sum, odl_diag *d)
{
    *sum = 0;
    for (int32_t c = 0; c < max_classes; c++) {
        if (counts[c] > (uint32_t)INT32_MAX)
            return odl_fail(d, ODL_ERR_ARG, "%s_set: class %d count %u exceeds %d", api, (int)c,
                            (unsigned)counts[c], (int)INT32_MAX);
        *sum += counts[c];
        if (counts[c])
            for (int32_t i = 0; i < dim; i++)
                if (!isfinite(means[(size_t)c * dim + i]))
                    return odl_fail(d, ODL_ERR_NUMERIC, "%s_set: class %d mean component %d is not finite", api,
                                    (int)c, (int)i);
    }
    return ODL_OK;
}

/* Copies checked means and counts in (zero means for the unseen classes);
 * returns the number of classes seen. */
static int32_t set_class_stats(float *dst_means, uint32_t *dst_counts, const float *means, const uint32_t *counts,
                               int32_t dim, int32_t max_classes)
{
    int32_t seen = 0;
    for (int32_t c = 0; c < max_classes; c++) {
        float *mu = dst_means + (size_t)c * dim;
        if (counts[c]) {
            memcpy(mu, means + (size_t)c * dim, sizeof(float) * (size_t)dim);
            seen++;
        } else {
            memset(mu, 0, sizeof(float) * (size_t)dim);
        }
        dst_counts[c] = counts[c];
    }
    return seen;
}

/* ==== nearest class mean ================================================== */

struct odl_ncm {
    int32_t dim, max_classes;
    int32_t n_seen; /* classes with count > 0 */
    float *means;
    uint32_t *counts;
};

static odl_status ncm_layout(void *head, int32_t dim, int32_t max_classes, odl_arena *a,
                             odl_diag *d)
{
    odl_ncm *h = head;
    void *p[2];
    odl_status s = odl_arena_alloc(a, sizeof(float) * (size_t)dim * (size_t)max_classes,
                                   ODL_MEM_PARAMS, &p[0], d);
    if (s == ODL_OK)
        s = odl_arena_alloc(a, sizeof(uint32_t) * (size_t)max_classes, ODL_MEM_STATE, &p[1], d);
    if (s != ODL_OK || !h)
        return s;
    h->dim = dim;
    h->max_classes = max_classes;
    h->n_seen = 0;
    h->means = p[0];
    h->counts = p[1];
    return ODL_OK;
}

static const head_kind ncm_kind = {"odl_ncm", "ncm", "NCM", 0, sizeof(odl_ncm), ncm_layout};

odl_status odl_ncm_plan(int32_t dim, int32_t max_classes, odl_mem_plan *plan, odl_diag *d)
{
    return head_plan(&ncm_kind, dim, max_classes, plan, d);
}

odl_status odl_ncm_init(odl_ncm **out, int32_t dim, int32_t max_classes, odl_arena *a, odl_diag *d)
{
    if (!out || !a)
        return odl_fail(d, ODL_ERR_ARG, "odl_ncm_init: out and arena must not be NULL");
    *out = NULL;
    void *p = NULL;
    odl_status s = head_init(&ncm_kind, dim, max_classes, a, &p, d);
    if (s != ODL_OK)
        return s;
    *out = p;
    return ODL_OK;
}

odl_status odl_ncm_add(odl_ncm *h, const float *z, int32_t label)
{
    if (!h)
        return ODL_ERR_ARG;
    odl_status s = add_check(z, label, h->dim, h->max_classes, h->counts);
    if (s != ODL_OK)
        return s;
    add_to_class(h->means, h->counts, &h->n_seen, h->dim, z, label);
    return ODL_OK;
}

/* Minus the squared Euclidean distance to the class mean. */
static float ncm_score(const void *head, int32_t c, const float *z)
{
    const odl_ncm *h = head;
    const int32_t D = h->dim;
    const float *mu = h->means + (size_t)c * D;
    float acc = 0.0f;
    for (int32_t i = 0; i < D; i++) {
        const float e = z[i] - mu[i];
        acc += e * e;
    }
    return -acc;
}

odl_status odl_ncm_predict(const odl_ncm *h, const float *z, int32_t *cls, float *scores)
{
    if (!h)
        return ODL_ERR_ARG;
    odl_status s = predict_check(z, cls, h->dim, h->n_seen);
    if (s != ODL_OK)
        return s;
    *cls = best_class(h, h->counts, h->max_classes, ncm_score, z, scores);
    return ODL_OK;
}

int32_t odl_ncm_count(const odl_ncm *h, int32_t cls)
{
    if (!h || cls < 0 || cls >= h->max_classes)
        return 0;
    return (int32_t)h->counts[cls];
}

int32_t odl_ncm_dim(const odl_ncm *h) { return h ? h->dim : 0; }
int32_t odl_ncm_max_classes(const odl_ncm *h) { return h ? h->max_classes : 0; }
const float *odl_ncm_means(const odl_ncm *h) { return h ? h->means : NULL; }

odl_status odl_ncm_set(odl_ncm *h, const float *means, const uint32_t *counts, odl_diag *d)
{
    if (!h || !means || !counts)
        return odl_fail(d, ODL_ERR_ARG, "odl_ncm_set: handle, means and counts must not be NULL");
    uint64_t sum;
    odl_status s = check_class_stats("odl_ncm", means, counts, h->dim, h->max_classes, &sum, d);
    if (s != ODL_OK)
        return s;
    h->n_seen = set_class_stats(h->means, h->counts, means, counts, h->dim, h->max_classes);
    return ODL_OK;
}

/* ==== streaming LDA ======================================================= */

struct odl_slda {
    int32_t dim, max_classes;
    int32_t n_seen;    /* classes with count > 0 */
    int32_t stale;     /* W, b do not reflect the statistics */
    float shrinkage;
    uint64_t n_total;  /* samples added */
    float *sigma;      /* D x D, lower triangle maintained */
    float *factor;     /* D x D, Cholesky factor (lower) during fit */
    float *means;      /* max_classes x D */
    uint32_t *counts;  /* max_classes */
    float *w;          /* max_classes x D */
    float *b;          /* max_classes */
};

static odl_status slda_layout(void *head, int32_t dim, int32_t max_classes, odl_arena *a,
                              odl_diag *d)
{
    odl_slda *h = head;
    const size_t D = (size_t)dim, C = (size_t)max_classes;
    void *p[6];
    odl_status s = odl_arena_alloc(a, sizeof(float) * D * D, ODL_MEM_BUFFERS, &p[0], d);
    if (s == ODL_OK)
        s = odl_arena_alloc(a, sizeof(float) * D * D, ODL_MEM_SCRATCH, &p[1], d);
    if (s == ODL_OK)
        s = odl_arena_alloc(a, sizeof(float) * C * D, ODL_MEM_BUFFERS, &p[2], d);
    if (s == ODL_OK)
        s = odl_arena_alloc(a, sizeof(uint32_t) * C, ODL_MEM_STATE, &p[3], d);
    if (s == ODL_OK)
        s = odl_arena_alloc(a, sizeof(float) * C * D, ODL_MEM_PARAMS, &p[4], d);
    if (s == ODL_OK)
        s = odl_arena_alloc(a, sizeof(float) * C, ODL_MEM_PARAMS, &p[5], d);
    if (s != ODL_OK || !h)
        return s;
    h->dim = dim;
    h->max_classes = max_classes;
    h->n_seen = 0;
    h->stale = 1;
    h->n_total = 0;
    h->sigma = p[0];
    h->factor = p[1];
    h->means = p[2];
    h->counts = p[3];
    h->w = p[4];
    h->b = p[5];
    return ODL_OK;
}

static const head_kind slda_kind = {"odl_slda", "slda", "SLDA", 1, sizeof(odl_slda), slda_layout};

odl_status odl_slda_plan(int32_t dim, int32_t max_classes, odl_mem_plan *plan, odl_diag *d)
{
    return head_plan(&slda_kind, dim, max_classes, plan, d);
}

odl_status odl_slda_init(odl_slda **out, int32_t dim, int32_t max_classes, float shrinkage,
                         odl_arena *a, odl_diag *d)
{
    if (!out || !a)
        return odl_fail(d, ODL_ERR_ARG, "odl_slda_init: out and arena must not be NULL");
    *out = NULL;
    if (!(shrinkage >= 0.0f && shrinkage <= 1.0f))
        return odl_fail(d, ODL_ERR_ARG, "odl_slda_init: shrinkage must be in [0, 1]");
    void *p = NULL;
    odl_status s = head_init(&slda_kind, dim, max_classes, a, &p, d);
    if (s != ODL_OK)
        return s;
    odl_slda *h = p;
    h->shrinkage = shrinkage;
    *out = h;
    return ODL_OK;
}

odl_status odl_slda_add(odl_slda *h, const float *z, int32_t label)
{
    if (!h)
        return ODL_ERR_ARG;
    odl_status s = add_check(z, label, h->dim, h->max_classes, h->counts);
    if (s != ODL_OK)
        return s;
    const int32_t D = h->dim;
    const float *mu = h->means + (size_t)label * D;
    /* Sigma <- a Sigma + c delta delta^T with a = n/(n+1) and
     * c = (n_y/(n_y+1)) / (n+1); the first sample of a class has c = 0. */
    const float n = (float)h->n_total, ny = (float)h->counts[label];
    const float ka = n / (n + 1.0f);
    const float kc = ny / (ny + 1.0f) / (n + 1.0f);
    if (h->n_total > 0) {
        for (int32_t i = 0; i < D; i++) {
            float *row = h->sigma + (size_t)i * D;
            const float di = kc * (z[i] - mu[i]);
            for (int32_t j = 0; j <= i; j++) {
                const float dj = z[j] - mu[j];
                row[j] = ka * row[j] + di * dj;
            }
        }
    }
    add_to_class(h->means, h->counts, &h->n_seen, D, z, label);
    h->n_total++;
    h->stale = 1;
    return ODL_OK;
}

odl_status odl_slda_fit(odl_slda *h, odl_diag *d)
{
    if (!h)
        return odl_fail(d, ODL_ERR_ARG, "odl_slda_fit: handle must not be NULL");
    if (h->n_total == 0)
        return odl_fail(d, ODL_ERR_STATE, "odl_slda_fit: no samples added yet");
    const int32_t D = h->dim;
    const float eps = h->shrinkage, keep = 1.0f - eps;
    float *L = h->factor;
    /* Cholesky of (1-eps) Sigma + eps I, lower triangle, row by row. */
    for (int32_t i = 0; i < D; i++) {
        float *Li = L + (size_t)i * D;
        const float *Si = h->sigma + (size_t)i * D;
        for (int32_t j = 0; j <= i; j++) {
            const float *Lj = L + (size_t)j * D;
            float acc = keep * Si[j] + (i == j ? eps : 0.0f);
            for (int32_t k = 0; k < j; k++)
                acc -= Li[k] * Lj[k];
            if (i == j) {
                char b[ODL_FMT_F32_MAX];
                if (!(acc > 0.0f) || !isfinite(acc))
                    return odl_fail(d, ODL_ERR_NUMERIC,
                                    "odl_slda_fit: shrunk covariance not positive definite "
                                    "(pivot %d of %d; raise shrinkage above %s)",
                                    (int)i + 1, (int)D, odl_fmt_f32(b, h->shrinkage, 6));
                Li[i] = sqrtf(acc);
                if (!(Li[i] > 0.0f))
                    return odl_fail(d, ODL_ERR_NUMERIC,
                                    "odl_slda_fit: pivot %d of %d underflows in float", (int)i + 1,
                                    (int)D);
            } else {
                Li[j] = acc / Lj[j];
            }
        }
    }
    /* W_c = Lambda mu_c: solve L y = mu_c, then L^T w = y, in the W row. */
    for (int32_t c = 0; c < h->max_classes; c++) {
        float *w = h->w + (size_t)c * D;
        const float *mu = h->means + (size_t)c * D;
        if (!h->counts[c]) {
            memset(w, 0, sizeof(float) * (size_t)D);
            h->b[c] = 0.0f;
            continue;
        }
        for (int32_t i = 0; i < D; i++) {
            const float *Li = L + (size_t)i * D;
            float acc = mu[i];
            for (int32_t k = 0; k < i; k++)
                acc -= Li[k] * w[k];
            w[i] = acc / Li[i];
        }
        for (int32_t i = D - 1; i >= 0; i--) {
            float acc = w[i];
            for (int32_t k = i + 1; k < D; k++)
                acc -= L[(size_t)k * D + i] * w[k];
            w[i] = acc / L[(size_t)i * D + i];
        }
        float q = 0.0f;
        for (int32_t i = 0; i < D; i++)
            q += mu[i] * w[i];
        h->b[c] = -0.5f * q;
        if (!all_finite(w, D) || !isfinite(h->b[c]))
            return odl_fail(d, ODL_ERR_NUMERIC, "odl_slda_fit: class %d weights are not finite",
                            (int)c);
    }
    h->stale = 0;
    return ODL_OK;
}

/* The linear discriminant w_c . z + b_c (W, b fitted). */
static float slda_score(const void *head, int32_t c, const float *z)
{
    const odl_slda *h = head;
    const int32_t D = h->dim;
    const float *w = h->w + (size_t)c * D;
    float acc = h->b[c];
    for (int32_t i = 0; i < D; i++)
        acc += w[i] * z[i];
    return acc;
}

odl_status odl_slda_predict(odl_slda *h, const float *z, int32_t *cls, float *scores)
{
    if (!h)
        return ODL_ERR_ARG;
    odl_status s = predict_check(z, cls, h->dim, h->n_seen);
    if (s != ODL_OK)
        return s;
    if (h->stale) {
        s = odl_slda_fit(h, NULL);
        if (s != ODL_OK)
            return s;
    }
    *cls = best_class(h, h->counts, h->max_classes, slda_score, z, scores);
    return ODL_OK;
}

int32_t odl_slda_count(const odl_slda *h, int32_t cls)
{
    if (!h || cls < 0 || cls >= h->max_classes)
        return 0;
    return (int32_t)h->counts[cls];
}

int32_t odl_slda_dim(const odl_slda *h) { return h ? h->dim : 0; }
int32_t odl_slda_max_classes(const odl_slda *h) { return h ? h->max_classes : 0; }
float odl_slda_shrinkage(const odl_slda *h) { return h ? h->shrinkage : 0.0f; }
int odl_slda_stale(const odl_slda *h) { return h ? h->stale != 0 : 1; }
const float *odl_slda_means(const odl_slda *h) { return h ? h->means : NULL; }
const float *odl_slda_weights(const odl_slda *h) { return h && !h->stale ? h->w : NULL; }
const float *odl_slda_bias(const odl_slda *h) { return h && !h->stale ? h->b : NULL; }

odl_status odl_slda_covariance(const odl_slda *h, float *out)
{
    if (!h || !out)
        return ODL_ERR_ARG;
    const int32_t D = h->dim;
    for (int32_t i = 0; i < D; i++)
        for (int32_t j = 0; j <= i; j++) {
            const float v = h->sigma[(size_t)i * D + j];
            out[(size_t)i * D + j] = v;
            out[(size_t)j * D + i] = v;
        }
    return ODL_OK;
}

uint64_t odl_slda_n_total(const odl_slda *h) { return h ? h->n_total : 0; }

float odl_slda_cov_at(const odl_slda *h, int32_t i, int32_t j)
{
    if (!h || i < 0 || j < 0 || i >= h->dim || j >= h->dim)
        return 0.0f;
    return i >= j ? h->sigma[(size_t)i * h->dim + j] : h->sigma[(size_t)j * h->dim + i];
}

odl_status odl_slda_set(odl_slda *h, const float *means, const uint32_t *counts, const float *covariance,
                        uint64_t n_total, odl_diag *d)
{
    if (!h || !means || !counts || !covariance)
        return odl_fail(d, ODL_ERR_ARG, "odl_slda_set: handle, means, counts and covariance must not be NULL");
    const int32_t D = h->dim;
    uint64_t sum;
    odl_status s = check_class_stats("odl_slda", means, counts, D, h->max_classes, &sum, d);
    if (s != ODL_OK)
        return s;
    if (sum != n_total)
        return odl_fail(d, ODL_ERR_ARG, "odl_slda_set: the class counts sum to %lu, n_total is %lu",
                        (unsigned long)sum, (unsigned long)n_total);
    for (int32_t i = 0; i < D; i++)
        for (int32_t j = 0; j <= i; j++) {
            const float v = covariance[(size_t)i * D + j];
            if (!isfinite(v))
                return odl_fail(d, ODL_ERR_NUMERIC, "odl_slda_set: covariance (%d, %d) is not finite", (int)i,
                                (int)j);
            if (memcmp(&v, &covariance[(size_t)j * D + i], sizeof v) != 0)
                return odl_fail(d, ODL_ERR_ARG, "odl_slda_set: covariance (%d, %d) differs from (%d, %d)", (int)i,
                                (int)j, (int)j, (int)i);
            char b[ODL_FMT_F32_MAX];
            if ((i == j && v < 0.0f) || (n_total == 0 && v != 0.0f))
                return odl_fail(d, ODL_ERR_ARG, "odl_slda_set: covariance (%d, %d) = %s is impossible%s", (int)i,
                                (int)j, odl_fmt_f32(b, v, 6), n_total == 0 ? " with no samples" : "");
        }
    h->n_seen = set_class_stats(h->means, h->counts, means, counts, D, h->max_classes);
    for (int32_t i = 0; i < D; i++)
        memcpy(h->sigma + (size_t)i * D, covariance + (size_t)i * D, sizeof(float) * (size_t)(i + 1));
    h->n_total = n_total;
    h->stale = 1;
    return ODL_OK;
}
