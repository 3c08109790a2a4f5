/* odl/drift.h — concept-drift detectors in O(1) memory.
 *
 * Four detectors, each a plain struct the caller owns (a fixed size, no arena
 * needed), configured once by an init call and then fed one value per sample:
 *
 *   odl_zscore_drift  baseline mean/variance (Welford) over a reference
 *                     window, then an EWMA of the value and an EWMA of its
 *                     squared standardised deviation against that baseline
 *                     (mean shift and variance change), z threshold, minimum
 *                     run length
 *   odl_ph_drift      two-sided Page-Hinkley test (delta, lambda, alpha)
 *   odl_adwin_drift   ADWIN (Bifet & Gavaldà 2007) with exponential-histogram
 *                     buckets: at most M per row, at most ODL_ADWIN_MAX_ROWS
 *                     rows, so the bucket count is bounded by a compile-time
 *                     constant whatever the stream length
 *   odl_conf_drift    EWMA of the prediction confidence (e.g. max softmax
 *                     probability) against a baseline; one-sided (a drop)
 *
 * Every update returns ODL_OK (no drift), ODL_EVENT_DRIFT (a positive event,
 * not an error) or ODL_ERR_NUMERIC for a non-finite value (the value is
 * ignored, the state unchanged). What happens after a detector fires is part
 * of each detector's contract and is documented below.
 *
 * What to monitor: for input drift, per-sample summary statistics of x —
 * odl_drift_sample_stats gives the mean and the standard deviation of one
 * sample's values (mean intensity and contrast of an image); run one detector
 * per statistic. For model drift, the confidence of each prediction.
 *
 * The z-score and confidence detectors, which a device's learner runs, and
 * odl_drift_sample_stats, which runs on every input of a device, are single
 * precision (a Cortex-M4F's FPU has no double); Page-Hinkley and ADWIN
 * compute in double (a few operations per sample). No allocation, no stdio, no global state. */
#ifndef ODL_DRIFT_H
#define ODL_DRIFT_H

#include <stddef.h>
#include <stdint.h>
#include "odl/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Mean and (population) standard deviation of n values (two passes, float
 * sums in blocks of 256: relative error about 1e-5 for any n, and no double
 * arithmetic, which a single-precision FPU would do in software). ODL_ERR_ARG for n == 0 or NULL pointers, ODL_ERR_NUMERIC if
 * a value is not finite. */
odl_status odl_drift_sample_stats(const float *x, size_t n, float *mean, float *std);

/* ---- z-score against a Welford baseline ----------------------------------
 * Phase 1 (reference): the first ref_n values give the baseline mean mu,
 *   variance s² and kurtosis k (Welford / Pébay one-pass moments).
 * Phase 2 (monitoring): e_t = (1-alpha) e_{t-1} + alpha x_t (e_0 = mu) and
 *   q_t = (1-alpha) q_{t-1} + alpha ((x_t - mu)/s)² (q_0 = 1). Under the
 *   baseline e_t has standard deviation s·sqrt(alpha/(2-alpha)) and q_t has
 *   sqrt((k-1)·alpha/(2-alpha)) (the variance of a squared standardised value
 *   is k - 1). z_mean = (e_t - mu)/sd(e), z_var = (q_t - 1)/sd(q).
 *   Fires when |z_mean| > z or |z_var| > z_var (only if check_var) for
 *   min_run consecutive values.
 * After firing: back to phase 1 — the next ref_n values are the new baseline
 *   (no alarm can fire during them). */
typedef struct odl_zscore_cfg {
    int32_t ref_n;     /* reference window, >= 2 (default 500) */
    float alpha;       /* EWMA weight of a new value, (0, 1] (default 0.05) */
    float z;           /* threshold in standard deviations, > 0 (default 4) */
    int32_t min_run;   /* consecutive values over the threshold, >= 1 (default 5) */
    int32_t check_var; /* 1: also test the variance (default 1) */
    float z_var;       /* threshold for z_var, > 0 (default 6: the EWMA of a
                        * squared value is right-skewed, so the same z would
                        * fire ~30x more often than the mean test) */
} odl_zscore_cfg;

typedef struct odl_zscore_drift {
    odl_zscore_cfg cfg;
    int64_t n;                  /* values in the current reference window */
    float mean, m2, m3, m4;     /* Welford/Pébay central moments */
    float mu, sd, kurt;         /* the baseline (valid once n == ref_n) */
    float e, q;                 /* EWMAs */
    float z_mean, z_var;        /* last statistics (0 in phase 1) */
    int32_t run;
    int32_t ready;              /* 1: monitoring */
    int64_t t;                  /* values seen since init */
    int64_t alarms;             /* ODL_EVENT_DRIFT returned since init */
} odl_zscore_drift;

odl_zscore_cfg odl_zscore_cfg_defaults(void);
/* ODL_ERR_ARG (with a message in diag) for a bad configuration. */
odl_status odl_zscore_init(odl_zscore_drift *d, const odl_zscore_cfg *cfg, odl_diag *diag);
odl_status odl_zscore_update(odl_zscore_drift *d, float x);
/* Forgets the baseline (keeps cfg, t and alarms). */
void odl_zscore_reset(odl_zscore_drift *d);

/* ---- two-sided Page-Hinkley ----------------------------------------------
 * The first `warmup` values estimate the mean and standard deviation sigma
 * of the value (no alarm during them); delta and lambda are in units of
 * sigma, so one setting serves statistics of any scale (warmup = 0: sigma =
 * 1, raw units). Then with mean_t the running mean of every value since the
 * (re)start:
 *   U_t = alpha U_{t-1} + (x_t - mean_t - delta·sigma),  fire if U_t - min U > lambda·sigma
 *   L_t = alpha L_{t-1} + (x_t - mean_t + delta·sigma),  fire if max L - L_t > lambda·sigma
 * (U: an increase, L: a decrease). alpha = 1 is the classic test; alpha < 1
 * forgets old deviations.
 * After firing: everything restarts (warmup included). */
typedef struct odl_ph_cfg {
    int32_t warmup;  /* >= 0; >= 2 to estimate sigma (default 200) */
    float delta;     /* magnitude allowance, >= 0 (default 0.25) */
    float lambda;    /* threshold, > 0 (default 25) */
    float alpha;     /* forgetting factor, (0, 1] (default 1) */
} odl_ph_cfg;

typedef struct odl_ph_drift {
    odl_ph_cfg cfg;
    int64_t n;                 /* values since the (re)start */
    double mean, m2;           /* running mean; M2 during warmup */
    double sigma;
    double up, up_min, dn, dn_max;
    int32_t last_dir;          /* +1 an increase fired last, -1 a decrease, 0 none */
    int64_t t, alarms;
} odl_ph_drift;

odl_ph_cfg odl_ph_cfg_defaults(void);
odl_status odl_ph_init(odl_ph_drift *d, const odl_ph_cfg *cfg, odl_diag *diag);
odl_status odl_ph_update(odl_ph_drift *d, double x);
void odl_ph_reset(odl_ph_drift *d);

/* ---- ADWIN ------------------------------------------------------------------
 * A window W of recent values kept as an exponential histogram: row i holds
 * buckets of 2^i values (their sum and sum of squared deviations), at most
 * M per row (M+1 merges the two oldest into one bucket of the next row). Every
 * `clock` values each split of W into old W0 and new W1 at a bucket boundary
 * (both with >= min_sub values) is tested:
 *   |mean(W0) - mean(W1)| > sqrt(2 v m' ln(2 ln|W| / delta)) + (2/3) m' ln(2 ln|W| / delta)
 * with m' = 1/|W0| + 1/|W1| and v the variance of W (the bound assumes values
 * in [0, 1]). On a cut the oldest bucket is dropped and the test repeated
 * until no split is significant; the update then returns ODL_EVENT_DRIFT.
 * After firing: W holds only the values after the cut (ADWIN's own
 * adaptation; no further reset). When the last row is full, the oldest bucket
 * is dropped, so |W| <= M (2^max_rows - 1) and the bucket count <= max_rows (M+1). */
#define ODL_ADWIN_MAX_ROWS 24
#define ODL_ADWIN_MAX_M 7

typedef struct odl_adwin_cfg {
    float delta;       /* confidence, (0, 1) (default 0.002) */
    int32_t m;         /* buckets per row, 2..ODL_ADWIN_MAX_M (default 5) */
    int32_t max_rows;  /* rows, 1..ODL_ADWIN_MAX_ROWS (default 16) */
    int32_t clock;     /* test every clock values, >= 1 (default 32) */
    int32_t min_sub;   /* smallest sub-window tested, >= 1 (default 5) */
} odl_adwin_cfg;

typedef struct odl_adwin_drift {
    odl_adwin_cfg cfg;
    int64_t width;          /* |W| */
    double total, var;      /* sum and sum of squared deviations of W */
    int32_t rows;           /* rows in use */
    int32_t count[ODL_ADWIN_MAX_ROWS];                      /* buckets in each row */
    double sum[ODL_ADWIN_MAX_ROWS][ODL_ADWIN_MAX_M + 1];    /* [row][k], k = 0 oldest */
    double m2[ODL_ADWIN_MAX_ROWS][ODL_ADWIN_MAX_M + 1];
    int64_t t, alarms;
} odl_adwin_drift;

odl_adwin_cfg odl_adwin_cfg_defaults(void);
odl_status odl_adwin_init(odl_adwin_drift *d, const odl_adwin_cfg *cfg, odl_diag *diag);
odl_status odl_adwin_update(odl_adwin_drift *d, double x);
void odl_adwin_reset(odl_adwin_drift *d);
/* Values in W, and buckets holding them (bounded as above). */
int64_t odl_adwin_width(const odl_adwin_drift *d);
int32_t odl_adwin_buckets(const odl_adwin_drift *d);
double odl_adwin_mean(const odl_adwin_drift *d);

/* ---- EWMA of prediction confidence ---------------------------------------
 * An EWMA control chart on a confidence c in [0, 1] (the max softmax
 * probability): the first ref_n values give the baseline mean mu and standard
 * deviation s (Welford); then e_t = (1-alpha) e_{t-1} + alpha c_t (e_0 = mu)
 * and the detector fires when e_t < mu - z·s·sqrt(alpha/(2-alpha)) for
 * min_run consecutive values (confidence dropped). With two_sided, a rise
 * above mu + z·sd(e) fires as well.
 * After firing: back to the reference phase (new baseline from the next
 * ref_n values). */
typedef struct odl_conf_cfg {
    int32_t ref_n;     /* >= 2 (default 500) */
    float alpha;       /* (0, 1] (default 0.05) */
    float z;           /* > 0 (default 4) */
    int32_t min_run;   /* >= 1 (default 5) */
    int32_t two_sided; /* default 0 */
} odl_conf_cfg;

typedef struct odl_conf_drift {
    odl_conf_cfg cfg;
    int64_t n;
    float mean, m2;
    float mu, sd;
    float e, z_now;
    int32_t run, ready;
    int64_t t, alarms;
} odl_conf_drift;

odl_conf_cfg odl_conf_cfg_defaults(void);
odl_status odl_conf_init(odl_conf_drift *d, const odl_conf_cfg *cfg, odl_diag *diag);
odl_status odl_conf_update(odl_conf_drift *d, float confidence);
void odl_conf_reset(odl_conf_drift *d);

#ifdef __cplusplus
}
#endif
#endif
