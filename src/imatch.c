/* Sensor response matching (odl/imatch.h): class-conditional quantile
 * mapping between two sets of intensities. */
#include "odl/imatch.h"

#include <math.h>

static odl_status check_shape(int32_t classes, int32_t bins, odl_diag *d)
{
    if (classes < 1 || classes > ODL_IMATCH_MAX_CLASSES)
        return odl_fail(d, ODL_ERR_ARG, "imatch: %d classes (1..%d)", (int)classes, ODL_IMATCH_MAX_CLASSES);
    if (bins < 2 || bins > ODL_IMATCH_MAX_BINS)
        return odl_fail(d, ODL_ERR_ARG, "imatch: %d bins (2..%d)", (int)bins, ODL_IMATCH_MAX_BINS);
    return ODL_OK;
}

static odl_status hist_alloc(odl_imatch_hist *h, int32_t classes, int32_t bins, odl_arena *a, odl_diag *d)
{
    void *counts = NULL, *totals = NULL;
    odl_status s = odl_arena_alloc(a, sizeof(uint32_t) * (size_t)classes * (size_t)bins, ODL_MEM_BUFFERS, &counts, d);
    if (s == ODL_OK)
        s = odl_arena_alloc(a, sizeof(uint64_t) * (size_t)classes, ODL_MEM_BUFFERS, &totals, d);
    if (s == ODL_OK && h) {
        h->counts = counts;
        h->totals = totals;
    }
    return s;
}

odl_status odl_imatch_hist_plan(int32_t classes, int32_t bins, odl_mem_plan *plan, odl_diag *d)
{
    if (!plan)
        return odl_fail(d, ODL_ERR_ARG, "odl_imatch_hist_plan: plan must not be NULL");
    odl_status s = check_shape(classes, bins, d);
    if (s != ODL_OK)
        return s;
    odl_arena a;
    odl_arena_init_counting(&a);
    s = hist_alloc(NULL, classes, bins, &a, d);
    if (s == ODL_OK)
        *plan = a.plan;
    return s;
}

odl_status odl_imatch_hist_init(odl_imatch_hist *h, int32_t classes, int32_t bins, float lo, float hi,
                                odl_arena *a, odl_diag *d)
{
    if (!h || !a)
        return odl_fail(d, ODL_ERR_ARG, "odl_imatch_hist_init: h and arena must not be NULL");
    odl_status s = check_shape(classes, bins, d);
    if (s != ODL_OK)
        return s;
    if (!isfinite(lo) || !isfinite(hi) || !(lo < hi))
        return odl_fail(d, ODL_ERR_ARG, "imatch: range [%g, %g] is not finite and increasing", (double)lo, (double)hi);
    if (odl_arena_is_counting(a))
        return odl_fail(d, ODL_ERR_ARG, "odl_imatch_hist_init needs a real arena (use odl_imatch_hist_plan to count)");
    odl_imatch_hist t = {classes, bins, lo, hi, NULL, NULL};
    s = hist_alloc(&t, classes, bins, a, d);
    if (s == ODL_OK)
        *h = t;
    return s;
}

static int32_t bin_of(float v, int32_t bins, float lo, float hi)
{
    double p = ((double)v - lo) / ((double)hi - lo) * bins;
    if (p < 0.0)
        return 0;
    if (p >= bins)
        return bins - 1;
    return (int32_t)p;
}

odl_status odl_imatch_hist_add(odl_imatch_hist *h, int32_t cls, const float *x, size_t n, odl_diag *d)
{
    if (!h || !h->counts || (!x && n))
        return odl_fail(d, ODL_ERR_ARG, "odl_imatch_hist_add: NULL histogram or values");
    if (cls < 0 || cls >= h->classes)
        return odl_fail(d, ODL_ERR_ARG, "imatch: class %d outside 0..%d", (int)cls, (int)h->classes - 1);
    for (size_t k = 0; k < n; k++)
        if (!isfinite(x[k]))
            return odl_fail(d, ODL_ERR_NUMERIC, "imatch: value %zu of a class-%d sample is %f", k, (int)cls,
                            (double)x[k]);
    uint32_t *row = h->counts + (size_t)cls * (size_t)h->bins;
    if (h->totals[cls] + n > UINT32_MAX)
        return odl_fail(d, ODL_ERR_STATE, "imatch: class %d histogram full (%llu values)", (int)cls,
                        (unsigned long long)h->totals[cls]);
    for (size_t k = 0; k < n; k++)
        row[bin_of(x[k], h->bins, h->lo, h->hi)]++;
    h->totals[cls] += n;
    return ODL_OK;
}

/* A class is used when both sides have enough of it; recomputed, not
 * stored, so fitting needs no memory of its own. */
static int class_used(const odl_imatch_hist *ref, const odl_imatch_hist *obs, int32_t c, uint64_t min_values)
{
    return ref->totals[c] >= min_values && obs->totals[c] >= min_values;
}

/* Bin i's mass in h: the equal-weight mixture of the used classes. */
static double mixture_mass(const odl_imatch_hist *h, const odl_imatch_hist *ref, const odl_imatch_hist *obs,
                           uint64_t min_values, int32_t n_used, int32_t i)
{
    double m = 0.0;
    for (int32_t c = 0; c < h->classes; c++)
        if (class_used(ref, obs, c, min_values))
            m += (double)h->counts[(size_t)c * (size_t)h->bins + (size_t)i] / (double)h->totals[c];
    return m / n_used;
}

odl_status odl_imatch_fit(const odl_imatch_hist *ref, const odl_imatch_hist *obs, uint64_t min_values,
                          odl_imatch_map *map, odl_diag *d)
{
    if (!ref || !obs || !map || !ref->counts || !obs->counts)
        return odl_fail(d, ODL_ERR_ARG, "odl_imatch_fit: NULL argument");
    if (ref->classes != obs->classes || ref->bins != obs->bins || ref->lo != obs->lo || ref->hi != obs->hi)
        return odl_fail(d, ODL_ERR_ARG, "imatch: the two histograms differ in classes, bins or range");
    int32_t n_used = 0;
    if (min_values < 1)
        min_values = 1;
    for (int32_t c = 0; c < ref->classes; c++)
        n_used += class_used(ref, obs, c, min_values);
    if (n_used == 0)
        return odl_fail(d, ODL_ERR_STATE,
                        "imatch: no class has %llu values on both sides (the user's examples share no class with "
                        "the stored ones)",
                        (unsigned long long)min_values);
    const int32_t bins = ref->bins;
    const double lo = ref->lo, width = ((double)ref->hi - lo) / bins;
    /* one sweep: bin i of the original goes to the user's quantile at its
     * mid-rank; both CDFs rise with i, so the user's bin only moves on */
    float *lut = map->lut;
    double f_ref = 0.0, f_obs_before = 0.0, shift = 0.0;
    int32_t j = 0;
    double m_obs = mixture_mass(obs, ref, obs, min_values, n_used, 0);
    for (int32_t i = 0; i < bins; i++) {
        const double m_ref = mixture_mass(ref, ref, obs, min_values, n_used, i);
        const double q = f_ref + 0.5 * m_ref;
        f_ref += m_ref;
        while (j < bins - 1 && f_obs_before + m_obs < q) {
            f_obs_before += m_obs;
            m_obs = mixture_mass(obs, ref, obs, min_values, n_used, ++j);
        }
        double frac = m_obs > 0.0 ? (q - f_obs_before) / m_obs : 0.5;
        frac = frac < 0.0 ? 0.0 : frac > 1.0 ? 1.0 : frac;
        lut[i] = (float)(lo + (j + frac) * width);
        shift += m_ref * fabs((double)lut[i] - (lo + (i + 0.5) * width));
    }
    map->bins = bins;
    map->lo = ref->lo;
    map->hi = ref->hi;
    map->classes_used = n_used;
    map->mean_shift = (float)shift;
    return ODL_OK;
}

void odl_imatch_apply(const odl_imatch_map *map, const float *in, float *out, size_t n)
{
    const double scale = (double)map->bins / ((double)map->hi - map->lo);
    for (size_t k = 0; k < n; k++) {
        const float v = in[k];
        if (!isfinite(v)) {
            out[k] = v;
            continue;
        }
        /* position in units of bin centres */
        const double p = ((double)v - map->lo) * scale - 0.5;
        if (p <= 0.0) {
            out[k] = map->lut[0];
        } else if (p >= map->bins - 1) {
            out[k] = map->lut[map->bins - 1];
        } else {
            const int32_t i = (int32_t)p;
            const double t = p - i;
            out[k] = (float)((1.0 - t) * map->lut[i] + t * map->lut[i + 1]);
        }
    }
}

static int32_t iabs(int32_t v) { return v < 0 ? -v : v; }

/* Mean squared difference between obs and ref moved by (dx, dy), zero fill. */
static double shifted_mse(const float *ref, const float *obs, int32_t c, int32_t h, int32_t w, int32_t dx, int32_t dy)
{
    double e = 0.0;
    for (int32_t ch = 0; ch < c; ch++)
        for (int32_t y = 0; y < h; y++)
            for (int32_t x = 0; x < w; x++) {
                const int32_t sy = y - dy, sx = x - dx;
                const float r = (sy >= 0 && sy < h && sx >= 0 && sx < w) ? ref[((size_t)ch * h + sy) * w + sx] : 0.0f;
                const double diff = (double)obs[((size_t)ch * h + y) * w + x] - r;
                e += diff * diff;
            }
    return e / ((double)c * h * w);
}

odl_status odl_imatch_fit_shift(const float *ref_means, const float *obs_means, const uint8_t *use, int32_t classes,
                                int32_t c, int32_t h, int32_t w, int32_t max_shift, int32_t *dx, int32_t *dy,
                                float *gain, odl_diag *d)
{
    if (!ref_means || !obs_means || !use || !dx || !dy || classes < 1 || c < 1 || h < 1 || w < 1 || max_shift < 0)
        return odl_fail(d, ODL_ERR_ARG, "odl_imatch_fit_shift: bad arguments");
    if (max_shift >= h || max_shift >= w)
        return odl_fail(d, ODL_ERR_ARG, "imatch: a shift of %d does not fit a %dx%d image", (int)max_shift, (int)h,
                        (int)w);
    int32_t n_used = 0;
    for (int32_t k = 0; k < classes; k++)
        n_used += use[k] != 0;
    if (!n_used)
        return odl_fail(d, ODL_ERR_STATE, "imatch: no class to align");
    const size_t in = (size_t)c * h * w;
    double best = 0.0, still = 0.0;
    int32_t bx = 0, by = 0;
    for (int32_t sy = -max_shift; sy <= max_shift; sy++)
        for (int32_t sx = -max_shift; sx <= max_shift; sx++) {
            double e = 0.0;
            for (int32_t k = 0; k < classes; k++)
                if (use[k])
                    e += shifted_mse(ref_means + (size_t)k * in, obs_means + (size_t)k * in, c, h, w, sx, sy);
            if (sx == 0 && sy == 0)
                still = e;
            /* strictly better only: ties keep the smaller move */
            if ((sx == -max_shift && sy == -max_shift) || e < best ||
                (e == best && iabs(sx) + iabs(sy) < iabs(bx) + iabs(by))) {
                best = e;
                bx = sx;
                by = sy;
            }
        }
    *dx = bx;
    *dy = by;
    if (gain)
        *gain = still > 0.0 ? (float)(1.0 - best / still) : 0.0f;
    return ODL_OK;
}

void odl_imatch_shift_image(const float *in, float *out, int32_t c, int32_t h, int32_t w, int32_t dx, int32_t dy,
                            float fill)
{
    for (int32_t ch = 0; ch < c; ch++)
        for (int32_t y = 0; y < h; y++)
            for (int32_t x = 0; x < w; x++) {
                const int32_t sy = y - dy, sx = x - dx;
                out[((size_t)ch * h + y) * w + x] =
                    (sy >= 0 && sy < h && sx >= 0 && sx < w) ? in[((size_t)ch * h + sy) * w + sx] : fill;
            }
}
