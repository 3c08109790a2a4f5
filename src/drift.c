/* Drift detectors: z-score against a Welford baseline, two-sided
 * Page-Hinkley, ADWIN with a bounded exponential histogram, EWMA of the
 * prediction confidence. Each is a fixed-size struct the caller owns; see
 * odl/drift.h for the algorithms and for what happens after an alarm. */
#include "odl/drift.h"

#include <math.h>
#include <string.h>

/* Smallest standard deviation used as a divisor (a constant baseline makes
 * any change infinitely significant; this keeps the arithmetic finite). */
#define SD_FLOOR 1e-12

/* ---- shared by the detectors -------------------------------------------- */

static double floored_sd(double sd) { return sd > SD_FLOOR ? sd : SD_FLOOR; }

/* Sample standard deviation of n >= 2 values with sum of squared deviations m2. */
static double sample_sd(double m2, int64_t n) { return sqrt(m2 / (double)(n - 1)); }


/* The same in single precision, for the z-score and confidence detectors. */
static float floored_sdf(float sd) { return sd > (float)SD_FLOOR ? sd : (float)SD_FLOOR; }
static float sample_sdf(float m2, int64_t n) { return sqrtf(m2 / (float)(int32_t)(n - 1)); } /* n <= ref_n */

/* One step of an EWMA giving a new value the weight a. */
static float ewmaf(float e, float a, float x) { return (1.0f - a) * e + a * x; }

/* Stationary standard deviation of that EWMA, per unit sd of its input. */
static float ewma_sdf(float a) { return sqrtf(a / (2.0f - a)); }

/* Welford's step: x joins the count n and the running mean, and (m2 not
 * NULL) the sum of squared deviations. */
static void welford_add(int64_t *n, double *mean, double *m2, double x)
{
    (*n)++;
    const double dx = x - *mean;
    *mean += dx / (double)*n;
    if (m2)
        *m2 += dx * (x - *mean);
}

/* Extends the run of values over the threshold (any other value ends it);
 * 1 once it is min_run long. */
static int run_complete(int32_t *run, int over, int32_t min_run)
{
    *run = over ? *run + 1 : 0;
    return *run >= min_run;
}

/* The configuration the z-score and confidence detectors share: a reference
 * window, then an EWMA against a threshold for min_run values in a row. */
static odl_status check_ewma_cfg(const char *who, int32_t ref_n, float alpha, float z, int32_t min_run,
                                 odl_diag *diag)
{
    char b[ODL_FMT_F32_MAX];
    if (ref_n < 2)
        return odl_fail(diag, ODL_ERR_ARG, "%s drift: ref_n %d must be at least 2", who, (int)ref_n);
    if (!(alpha > 0.0f && alpha <= 1.0f))
        return odl_fail(diag, ODL_ERR_ARG, "%s drift: alpha %s must be in (0, 1]", who, odl_fmt_f32(b, alpha, 4));
    if (!(z > 0.0f) || !isfinite(z))
        return odl_fail(diag, ODL_ERR_ARG, "%s drift: z %s must be a positive number", who, odl_fmt_f32(b, z, 4));
    if (min_run < 1)
        return odl_fail(diag, ODL_ERR_ARG, "%s drift: min_run %d must be at least 1", who, (int)min_run);
    return ODL_OK;
}

/* Sums of SUM_BLOCK values, then a sum of those: single precision with an
 * error of about (SUM_BLOCK + n / SUM_BLOCK) ulp instead of n ulp, so a
 * device with a single-precision FPU runs it in hardware (no double). */
#define SUM_BLOCK 256

/* sum of x (squares of x - mu when sq) in blocks of SUM_BLOCK */
static float blocked_sum(const float *x, size_t n, int sq, float mu)
{
    float total = 0.0f;
    for (size_t i = 0; i < n; i += SUM_BLOCK) {
        const size_t end = n - i < SUM_BLOCK ? n : i + SUM_BLOCK;
        float part = 0.0f;
        for (size_t k = i; k < end; k++) {
            const float v = sq ? (x[k] - mu) * (x[k] - mu) : x[k];
            part += v;
        }
        total += part;
    }
    return total;
}

odl_status odl_drift_sample_stats(const float *x, size_t n, float *mean, float *std)
{
    if (!x || !mean || !std || n == 0)
        return ODL_ERR_ARG;
    const float s = blocked_sum(x, n, 0, 0.0f);
    if (!isfinite(s))
        return ODL_ERR_NUMERIC;
    const float mu = s / (float)n;
    const float v = blocked_sum(x, n, 1, mu);
    if (!isfinite(v))
        return ODL_ERR_NUMERIC;
    *mean = mu;
    *std = sqrtf(v / (float)n);
    return ODL_OK;
}

/* ---- z-score ------------------------------------------------------------ */

odl_zscore_cfg odl_zscore_cfg_defaults(void)
{
    odl_zscore_cfg c;
    c.ref_n = 500;
    c.alpha = 0.05f;
    c.z = 4.0f;
    c.min_run = 5;
    c.check_var = 1;
    c.z_var = 6.0f;
    return c;
}

odl_status odl_zscore_init(odl_zscore_drift *d, const odl_zscore_cfg *cfg, odl_diag *diag)
{
    if (!d || !cfg)
        return odl_fail(diag, ODL_ERR_ARG, "zscore drift: detector or configuration is NULL");
    const odl_status s = check_ewma_cfg("zscore", cfg->ref_n, cfg->alpha, cfg->z, cfg->min_run, diag);
    if (s != ODL_OK)
        return s;
    if (cfg->check_var != 0 && cfg->check_var != 1)
        return odl_fail(diag, ODL_ERR_ARG, "zscore drift: check_var %d must be 0 or 1", (int)cfg->check_var);
    char b[ODL_FMT_F32_MAX];
    if (cfg->check_var && (!(cfg->z_var > 0.0f) || !isfinite(cfg->z_var)))
        return odl_fail(diag, ODL_ERR_ARG, "zscore drift: z_var %s must be a positive number",
                        odl_fmt_f32(b, cfg->z_var, 4));
    memset(d, 0, sizeof *d);
    d->cfg = *cfg;
    return ODL_OK;
}

void odl_zscore_reset(odl_zscore_drift *d)
{
    const odl_zscore_cfg cfg = d->cfg;
    const int64_t t = d->t, alarms = d->alarms;
    memset(d, 0, sizeof *d);
    d->cfg = cfg;
    d->t = t;
    d->alarms = alarms;
}

odl_status odl_zscore_update(odl_zscore_drift *d, float x)
{
    if (!isfinite(x))
        return ODL_ERR_NUMERIC;
    d->t++;
    if (!d->ready) {
        /* one-pass central moments up to the fourth (Pébay 2008) */
        const float n1 = (float)(int32_t)d->n; /* n < ref_n */
        const float n = n1 + 1.0f;
        const float delta = x - d->mean;
        const float dn = delta / n;
        const float dn2 = dn * dn;
        const float term1 = delta * dn * n1;
        d->mean += dn;
        d->m4 += term1 * dn2 * (n * n - 3.0f * n + 3.0f) + 6.0f * dn2 * d->m2 - 4.0f * dn * d->m3;
        d->m3 += term1 * dn * (n - 2.0f) - 3.0f * dn * d->m2;
        d->m2 += term1;
        d->n++;
        if (d->n == d->cfg.ref_n) {
            d->mu = d->mean;
            d->sd = sample_sdf(d->m2, d->n);
            d->kurt = d->m2 > 0.0f ? n * d->m4 / (d->m2 * d->m2) : 3.0f;
            d->e = d->mu;
            d->q = 1.0f;
            d->run = 0;
            d->ready = 1;
        }
        return ODL_OK;
    }
    const float a = d->cfg.alpha;
    const float f = ewma_sdf(a);
    const float sd = floored_sdf(d->sd);
    const float u = (x - d->mu) / sd;
    d->e = ewmaf(d->e, a, x);
    d->q = (1.0f - a) * d->q + a * u * u;
    d->z_mean = (d->e - d->mu) / (sd * f);
    d->z_var = (d->q - 1.0f) / floored_sdf(sqrtf(d->kurt > 1.0f ? d->kurt - 1.0f : 0.0f) * f);
    const float z = d->cfg.z;
    const int over = fabsf(d->z_mean) > z || (d->cfg.check_var && fabsf(d->z_var) > d->cfg.z_var);
    if (run_complete(&d->run, over, d->cfg.min_run)) {
        d->alarms++;
        odl_zscore_reset(d);
        return ODL_EVENT_DRIFT;
    }
    return ODL_OK;
}

/* ---- Page-Hinkley ------------------------------------------------------- */

odl_ph_cfg odl_ph_cfg_defaults(void)
{
    odl_ph_cfg c;
    c.warmup = 200;
    c.delta = 0.25f;
    c.lambda = 25.0f;
    c.alpha = 1.0f;
    return c;
}

odl_status odl_ph_init(odl_ph_drift *d, const odl_ph_cfg *cfg, odl_diag *diag)
{
    if (!d || !cfg)
        return odl_fail(diag, ODL_ERR_ARG, "page-hinkley drift: detector or configuration is NULL");
    if (cfg->warmup < 0 || cfg->warmup == 1)
        return odl_fail(diag, ODL_ERR_ARG,
                        "page-hinkley drift: warmup %d must be 0 (raw units) or at least 2", (int)cfg->warmup);
    if (!(cfg->delta >= 0.0f) || !isfinite(cfg->delta))
        return odl_fail(diag, ODL_ERR_ARG, "page-hinkley drift: delta %.4f must be >= 0", (double)cfg->delta);
    if (!(cfg->lambda > 0.0f) || !isfinite(cfg->lambda))
        return odl_fail(diag, ODL_ERR_ARG, "page-hinkley drift: lambda %.4f must be > 0", (double)cfg->lambda);
    if (!(cfg->alpha > 0.0f && cfg->alpha <= 1.0f))
        return odl_fail(diag, ODL_ERR_ARG, "page-hinkley drift: alpha %.4f must be in (0, 1]",
                        (double)cfg->alpha);
    memset(d, 0, sizeof *d);
    d->cfg = *cfg;
    d->sigma = 1.0;
    return ODL_OK;
}

void odl_ph_reset(odl_ph_drift *d)
{
    const odl_ph_cfg cfg = d->cfg;
    const int64_t t = d->t, alarms = d->alarms;
    const int32_t dir = d->last_dir;
    memset(d, 0, sizeof *d);
    d->cfg = cfg;
    d->t = t;
    d->alarms = alarms;
    d->last_dir = dir;
    d->sigma = 1.0;
}

odl_status odl_ph_update(odl_ph_drift *d, double x)
{
    if (!isfinite(x))
        return ODL_ERR_NUMERIC;
    d->t++;
    /* the mean runs on; M2 only over the warmup */
    welford_add(&d->n, &d->mean, d->n < d->cfg.warmup ? &d->m2 : NULL, x);
    if (d->n <= d->cfg.warmup) {
        if (d->n == d->cfg.warmup)
            d->sigma = floored_sd(sample_sd(d->m2, d->n));
        return ODL_OK;
    }
    const double a = (double)d->cfg.alpha;
    const double del = (double)d->cfg.delta * d->sigma;
    const double lam = (double)d->cfg.lambda * d->sigma;
    d->up = a * d->up + (x - d->mean - del);
    if (d->up < d->up_min)
        d->up_min = d->up;
    d->dn = a * d->dn + (x - d->mean + del);
    if (d->dn > d->dn_max)
        d->dn_max = d->dn;
    int dir = 0;
    if (d->up - d->up_min > lam)
        dir = 1;
    else if (d->dn_max - d->dn > lam)
        dir = -1;
    if (dir) {
        d->alarms++;
        odl_ph_reset(d);
        d->last_dir = dir;
        return ODL_EVENT_DRIFT;
    }
    return ODL_OK;
}

/* ---- ADWIN -------------------------------------------------------------- */

odl_adwin_cfg odl_adwin_cfg_defaults(void)
{
    odl_adwin_cfg c;
    c.delta = 0.002f;
    c.m = 5;
    c.max_rows = 16;
    c.clock = 32;
    c.min_sub = 5;
    return c;
}

odl_status odl_adwin_init(odl_adwin_drift *d, const odl_adwin_cfg *cfg, odl_diag *diag)
{
    if (!d || !cfg)
        return odl_fail(diag, ODL_ERR_ARG, "adwin drift: detector or configuration is NULL");
    if (!(cfg->delta > 0.0f && cfg->delta < 1.0f))
        return odl_fail(diag, ODL_ERR_ARG, "adwin drift: delta %.4f must be in (0, 1)", (double)cfg->delta);
    if (cfg->m < 2 || cfg->m > ODL_ADWIN_MAX_M)
        return odl_fail(diag, ODL_ERR_ARG, "adwin drift: m %d (buckets per row) out of range 2..%d", (int)cfg->m,
                        (int)ODL_ADWIN_MAX_M);
    if (cfg->max_rows < 1 || cfg->max_rows > ODL_ADWIN_MAX_ROWS)
        return odl_fail(diag, ODL_ERR_ARG, "adwin drift: max_rows %d out of range 1..%d", (int)cfg->max_rows,
                        (int)ODL_ADWIN_MAX_ROWS);
    if (cfg->clock < 1)
        return odl_fail(diag, ODL_ERR_ARG, "adwin drift: clock %d must be at least 1", (int)cfg->clock);
    if (cfg->min_sub < 1)
        return odl_fail(diag, ODL_ERR_ARG, "adwin drift: min_sub %d must be at least 1", (int)cfg->min_sub);
    memset(d, 0, sizeof *d);
    d->cfg = *cfg;
    return ODL_OK;
}

void odl_adwin_reset(odl_adwin_drift *d)
{
    const odl_adwin_cfg cfg = d->cfg;
    const int64_t t = d->t, alarms = d->alarms;
    memset(d, 0, sizeof *d);
    d->cfg = cfg;
    d->t = t;
    d->alarms = alarms;
}

int64_t odl_adwin_width(const odl_adwin_drift *d)
{
    return d->width;
}

int32_t odl_adwin_buckets(const odl_adwin_drift *d)
{
    int32_t b = 0;
    for (int32_t r = 0; r < d->rows; r++)
        b += d->count[r];
    return b;
}

double odl_adwin_mean(const odl_adwin_drift *d)
{
    return d->width > 0 ? d->total / (double)d->width : 0.0;
}

/* Removes bucket k of row r from the row (shifting the newer ones down). */
static void row_remove(odl_adwin_drift *d, int32_t r, int32_t k, int32_t how_many)
{
    const int32_t c = d->count[r];
    for (int32_t j = k; j + how_many < c; j++) {
        d->sum[r][j] = d->sum[r][j + how_many];
        d->m2[r][j] = d->m2[r][j + how_many];
    }
    d->count[r] = c - how_many;
}

/* Drops the oldest bucket (row rows-1, index 0) from W. */
static void drop_oldest(odl_adwin_drift *d)
{
    const int32_t r = d->rows - 1;
    const double nb = ldexp(1.0, r);
    const double sb = d->sum[r][0], vb = d->m2[r][0];
    const double w = (double)d->width;
    const double w1 = w - nb;
    if (w1 <= 0.0) {
        d->total = 0.0;
        d->var = 0.0;
    } else {
        const double rest = (d->total - sb) / w1;
        const double ub = sb / nb;
        const double v = d->var - vb - nb * w1 / w * (ub - rest) * (ub - rest);
        d->var = v > 0.0 ? v : 0.0;
        d->total -= sb;
    }
    d->width -= (int64_t)nb;
    row_remove(d, r, 0, 1);
    while (d->rows > 0 && d->count[d->rows - 1] == 0)
        d->rows--;
}

static void insert(odl_adwin_drift *d, double x)
{
    if (d->width > 0) {
        const double w = (double)d->width;
        const double dm = x - d->total / w;
        d->var += dm * dm * w / (w + 1.0);
    }
    d->width++;
    d->total += x;
    if (d->rows == 0)
        d->rows = 1;
    d->sum[0][d->count[0]] = x;
    d->m2[0][d->count[0]] = 0.0;
    d->count[0]++;
    const int32_t m = d->cfg.m;
    for (int32_t r = 0; r < d->rows && d->count[r] > m; r++) {
        if (r + 1 >= d->cfg.max_rows) {
            /* the last row is full: forget the oldest bucket */
            drop_oldest(d);
            break;
        }
        /* merge the two oldest buckets of row r into the newest of row r+1 */
        const double nb = ldexp(1.0, r);
        const double u0 = d->sum[r][0] / nb, u1 = d->sum[r][1] / nb;
        const double s = d->sum[r][0] + d->sum[r][1];
        const double v = d->m2[r][0] + d->m2[r][1] + 0.5 * nb * (u0 - u1) * (u0 - u1);
        row_remove(d, r, 0, 2);
        if (r + 1 == d->rows)
            d->rows++;
        d->sum[r + 1][d->count[r + 1]] = s;
        d->m2[r + 1][d->count[r + 1]] = v;
        d->count[r + 1]++;
    }
}

/* 1 if some split of W into old/new parts has significantly different means. */
static int cut_found(const odl_adwin_drift *d)
{
    const int64_t W = d->width;
    const int64_t min_sub = d->cfg.min_sub;
    if (W < 2 * min_sub || W < 2)
        return 0;
    const double v = d->var / (double)W;
    const double dd = log(2.0 * log((double)W) / (double)d->cfg.delta);
    int64_t n0 = 0;
    double s0 = 0.0;
    for (int32_t r = d->rows - 1; r >= 0; r--) {
        const int64_t nb = (int64_t)1 << r;
        for (int32_t k = 0; k < d->count[r]; k++) {
            n0 += nb;
            s0 += d->sum[r][k];
            const int64_t n1 = W - n0;
            if (n1 < min_sub)
                return 0;
            if (n0 < min_sub)
                continue;
            const double mi = 1.0 / (double)n0 + 1.0 / (double)n1;
            const double diff = fabs(s0 / (double)n0 - (d->total - s0) / (double)n1);
            const double eps = sqrt(2.0 * v * mi * dd) + (2.0 / 3.0) * mi * dd;
            if (diff > eps)
                return 1;
        }
    }
    return 0;
}

odl_status odl_adwin_update(odl_adwin_drift *d, double x)
{
    if (!isfinite(x))
        return ODL_ERR_NUMERIC;
    d->t++;
    insert(d, x);
    if (d->t % d->cfg.clock != 0)
        return ODL_OK;
    int changed = 0;
    while (d->rows > 0 && cut_found(d)) {
        drop_oldest(d);
        changed = 1;
    }
    if (changed) {
        d->alarms++;
        return ODL_EVENT_DRIFT;
    }
    return ODL_OK;
}

/* ---- EWMA of prediction confidence -------------------------------------- */

odl_conf_cfg odl_conf_cfg_defaults(void)
{
    odl_conf_cfg c;
    c.ref_n = 500;
    c.alpha = 0.05f;
    c.z = 4.0f;
    c.min_run = 5;
    c.two_sided = 0;
    return c;
}

odl_status odl_conf_init(odl_conf_drift *d, const odl_conf_cfg *cfg, odl_diag *diag)
{
    if (!d || !cfg)
        return odl_fail(diag, ODL_ERR_ARG, "confidence drift: detector or configuration is NULL");
    const odl_status s = check_ewma_cfg("confidence", cfg->ref_n, cfg->alpha, cfg->z, cfg->min_run, diag);
    if (s != ODL_OK)
        return s;
    if (cfg->two_sided != 0 && cfg->two_sided != 1)
        return odl_fail(diag, ODL_ERR_ARG, "confidence drift: two_sided %d must be 0 or 1", (int)cfg->two_sided);
    memset(d, 0, sizeof *d);
    d->cfg = *cfg;
    return ODL_OK;
}

void odl_conf_reset(odl_conf_drift *d)
{
    const odl_conf_cfg cfg = d->cfg;
    const int64_t t = d->t, alarms = d->alarms;
    memset(d, 0, sizeof *d);
    d->cfg = cfg;
    d->t = t;
    d->alarms = alarms;
}

odl_status odl_conf_update(odl_conf_drift *d, float c)
{
    if (!isfinite(c))
        return ODL_ERR_NUMERIC;
    d->t++;
    if (!d->ready) {
        d->n++; /* Welford's step */
        const float dx = c - d->mean;
        d->mean += dx / (float)(int32_t)d->n; /* n <= ref_n */
        d->m2 += dx * (c - d->mean);
        if (d->n == d->cfg.ref_n) {
            d->mu = d->mean;
            d->sd = sample_sdf(d->m2, d->n);
            d->e = d->mu;
            d->run = 0;
            d->ready = 1;
        }
        return ODL_OK;
    }
    const float a = d->cfg.alpha;
    const float sd = floored_sdf(d->sd) * ewma_sdf(a);
    d->e = ewmaf(d->e, a, c);
    d->z_now = (d->e - d->mu) / sd;
    const float z = d->cfg.z;
    const int over = d->z_now < -z || (d->cfg.two_sided && d->z_now > z);
    if (run_complete(&d->run, over, d->cfg.min_run)) {
        d->alarms++;
        odl_conf_reset(d);
        return ODL_EVENT_DRIFT;
    }
    return ODL_OK;
}
