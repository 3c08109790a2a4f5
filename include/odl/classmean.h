/* odl/classmean.h — gradient-free classifier heads over latent vectors.
 *
 * For devices where backpropagation is too costly: a frozen feature extractor
 * produces a latent vector z (dim D) and one of these heads classifies it.
 * Both learn a new class in a single pass over its samples and, having no
 * shared weights trained by gradient descent, forget nothing by construction:
 * adding class k never moves another class's mean.
 *
 *  - NCM (nearest class mean): running per-class means; the prediction is the
 *    class whose mean is nearest in squared Euclidean distance.
 *  - SLDA (streaming linear discriminant analysis, Hayes & Kanan 2020,
 *    "Lifelong Machine Learning with Deep Streaming Linear Discriminant
 *    Analysis"): running per-class means plus ONE covariance matrix shared by
 *    all classes, updated per sample; prediction is linear,
 *    score_c = W_c . z + b_c.
 *
 * Memory follows odl/arena.h: a plan call, then an init that takes exactly the
 * planned bytes from a caller-provided arena (the handle included) and refuses
 * a too-small arena with needed and available bytes in the diag.
 *
 * Sample-level calls (add, predict) take no diag; they fail with
 *   ODL_ERR_ARG      NULL pointer, label outside [0, max_classes)
 *   ODL_ERR_NUMERIC  a non-finite component in z
 *   ODL_ERR_STATE    predict before any class was seen; a class count at
 *                    INT32_MAX (add refused)
 * and a failed call changes nothing. */
#ifndef ODL_CLASSMEAN_H
#define ODL_CLASSMEAN_H

#include <stddef.h>
#include <stdint.h>
#include "odl/arena.h"
#include "odl/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Limits on dim and max_classes (both heads). */
#define ODL_CM_MAX_DIM 65536
#define ODL_CM_MAX_CLASSES 65536

/* ---- nearest class mean ---------------------------------------------------
 *
 * Memory: means max_classes*D floats (params), counts max_classes uint32
 * (state), the handle (state). Means are updated Welford-style in float:
 * mu_c += (z - mu_c) / (n_c + 1), which never sums raw samples and so stays
 * accurate for any count. */
typedef struct odl_ncm odl_ncm;

odl_status odl_ncm_plan(int32_t dim, int32_t max_classes, odl_mem_plan *plan, odl_diag *d);
odl_status odl_ncm_init(odl_ncm **out, int32_t dim, int32_t max_classes, odl_arena *a,
                        odl_diag *d);

/* Adds one sample of class `label` (see the error list above). */
odl_status odl_ncm_add(odl_ncm *h, const float *z, int32_t label);

/* *cls = argmax_c score_c (lowest index on ties). scores (optional, NULL or
 * max_classes floats): -||z - mu_c||^2, -INFINITY for classes never seen. */
odl_status odl_ncm_predict(const odl_ncm *h, const float *z, int32_t *cls, float *scores);

/* Samples seen of class cls; 0 for an out-of-range cls or a NULL handle. */
int32_t odl_ncm_count(const odl_ncm *h, int32_t cls);
int32_t odl_ncm_dim(const odl_ncm *h);
int32_t odl_ncm_max_classes(const odl_ncm *h);

/* The means, max_classes x dim row-major (rows of unseen classes are zero). */
const float *odl_ncm_means(const odl_ncm *h);

/* Replaces means and counts (e.g. restored from a file). means: max_classes x
 * dim, finite; counts: max_classes, each <= INT32_MAX. Rows with count 0 are
 * stored as zeros whatever `means` holds there. Invalid input changes
 * nothing. */
odl_status odl_ncm_set(odl_ncm *h, const float *means, const uint32_t *counts, odl_diag *d);

/* ---- streaming LDA --------------------------------------------------------
 *
 * Covariance update. For a sample z of class y, with n samples seen in all
 * before it and n_y of class y:
 *     delta = z - mu_y                      (mu_y before the update)
 *     Sigma <- (n * Sigma + (n_y / (n_y + 1)) * delta delta^T) / (n + 1)
 *     mu_y  <- mu_y + delta / (n_y + 1),  n_y <- n_y + 1,  n <- n + 1
 * Sigma is then exactly (in exact arithmetic) the biased (1/N) covariance of
 * the data centred on their class means — the pooled within-class covariance
 * — whatever the order of the samples. Hayes & Kanan write the weight as
 * n/(n+1) with n the TOTAL count and start mu_y at 0; that weight is the
 * Welford weight only when all samples share one class, and their first
 * sample of every class adds z z^T * n/(n+1) to Sigma, so their Sigma is not
 * the within-class covariance. Using the class count makes the result order
 * independent and equal to the batch estimate (tests/golden/gen_classmean.py
 * checks both claims). Each element's update is evaluated in double and
 * rounded to float once; only the lower triangle is stored and updated.
 *
 * Shrinkage (the form of Hayes & Kanan): Lambda = ((1 - eps) Sigma + eps I)^-1
 * with eps in [0, 1]. eps is absolute, so it is relative to the scale of the
 * latents: it is the variance floor given to directions the data never vary
 * in (dead ReLU units, constant pixels), and it bounds the condition number
 * of the matrix the float Cholesky factors by about lambda_max / eps.
 * ODL_SLDA_DEFAULT_SHRINKAGE = 1e-2 rather than Hayes' 1e-4: on the 64-d
 * ReLU latents of odl's edge-cnn (per-dimension variance ~3..7, a quarter to
 * 40% of the units dead) accuracy is flat for eps from 1e-4 to 1e-1, so the
 * choice is about numerics: 1e-2 keeps the condition number near 1e3, well
 * inside float's ~1.7e7, even when dead units make Sigma singular, and moves
 * the directions that carry signal (variances >> 1e-2) by ~1%. Latents
 * scaled much smaller (variances << 0.1) want a proportionally smaller eps.
 * eps = 0 is allowed (plain LDA) and fails in fit when Sigma is singular.
 *
 * fit: Cholesky factor L L^T of the shrunk matrix in place (dot products in
 * double), then for each seen class W_c = Lambda mu_c by two triangular
 * solves and b_c = -1/2 mu_c . W_c. score_c = W_c . z + b_c. Classes never
 * seen get score -INFINITY.
 *
 * Memory: Sigma D*D floats (buffers), factor D*D floats (scratch: needed only
 * during fit), means max_classes*D (buffers), counts max_classes uint32
 * (state), W max_classes*D and b max_classes floats (params), the handle. */
#define ODL_SLDA_DEFAULT_SHRINKAGE 1e-2f

typedef struct odl_slda odl_slda;

odl_status odl_slda_plan(int32_t dim, int32_t max_classes, odl_mem_plan *plan, odl_diag *d);
odl_status odl_slda_init(odl_slda **out, int32_t dim, int32_t max_classes, float shrinkage,
                         odl_arena *a, odl_diag *d);

/* Adds one sample (see the error list above); marks the fit stale. */
odl_status odl_slda_add(odl_slda *h, const float *z, int32_t label);

/* Recomputes W and b. ODL_ERR_STATE if no sample was added; ODL_ERR_NUMERIC
 * if the shrunk covariance is not positive definite in float (e.g. eps = 0
 * with fewer samples than dimensions). On failure the fit stays stale. */
odl_status odl_slda_fit(odl_slda *h, odl_diag *d);

/* Fits first if stale (returning fit's error if that fails); then as
 * odl_ncm_predict with score_c = W_c . z + b_c. */
odl_status odl_slda_predict(odl_slda *h, const float *z, int32_t *cls, float *scores);

int32_t odl_slda_count(const odl_slda *h, int32_t cls);
int32_t odl_slda_dim(const odl_slda *h);
int32_t odl_slda_max_classes(const odl_slda *h);
float odl_slda_shrinkage(const odl_slda *h);
/* 1 if an add happened since the last successful fit (or none succeeded). */
int odl_slda_stale(const odl_slda *h);

/* Class means, max_classes x dim (rows of unseen classes are zero). */
const float *odl_slda_means(const odl_slda *h);
/* Copies the current (unshrunk) covariance, D x D symmetric, into out. */
odl_status odl_slda_covariance(const odl_slda *h, float *out);
/* W (max_classes x dim) and b (max_classes) of the last fit, or NULL while
 * stale. Rows of unseen classes are zero. */
const float *odl_slda_weights(const odl_slda *h);
const float *odl_slda_bias(const odl_slda *h);

/* For saving and restoring (odl/state.h). */
/* Samples added in all (the sum of the class counts); 0 for NULL. */
uint64_t odl_slda_n_total(const odl_slda *h);
/* Covariance element (i, j) = (j, i); 0 for NULL or out of range. */
float odl_slda_cov_at(const odl_slda *h, int32_t i, int32_t j);
/* Replaces the statistics: means max_classes x dim, counts max_classes (each
 * <= INT32_MAX), covariance dim x dim row-major, n_total. Checked first
 * (invalid input changes nothing): every mean of a counted class and every
 * covariance element finite (ODL_ERR_NUMERIC), the covariance exactly
 * symmetric with a non-negative diagonal, all zero when n_total is 0, and
 * n_total equal to the sum of the counts (ODL_ERR_ARG). Rows of classes
 * with count 0 are stored as zeros. The shrinkage is kept; the fit is marked
 * stale. */
odl_status odl_slda_set(odl_slda *h, const float *means, const uint32_t *counts, const float *covariance,
                        uint64_t n_total, odl_diag *d);

#ifdef __cplusplus
}
#endif
#endif
