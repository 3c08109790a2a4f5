/* odl/imatch.h — sensor response matching: how the user's sensor maps
 * intensities, learned from labelled examples, so that stored original
 * samples can be shown to the model as the user's sensor would see them.
 *
 * A drifted sensor (gain, offset, gamma, saturation) changes every input by
 * the same monotone intensity curve v' = g(v). Given intensities of original
 * samples (the replay buffer) and of the user's samples, g is the quantile
 * map F_user^-1(F_orig(v)). Classes differ in brightness, so the two
 * distributions are compared class by class: each CDF is the equal-weight
 * mixture of the per-class CDFs over the classes present in both sets, and a
 * user who labels mostly one class does not bend the curve. A class seen on
 * one side only is ignored; with no class on both sides there is no map.
 *
 * A sensor that moved (a camera knocked sideways) shifts every image the
 * same way; odl_imatch_fit_shift finds the move from class-mean images.
 *
 * Histograms take their counts from a caller arena (odl/arena.h: plan, then
 * init); fitting and applying need no memory beyond the map struct. */
#ifndef ODL_IMATCH_H
#define ODL_IMATCH_H

#include <stddef.h>
#include <stdint.h>
#include "odl/arena.h"
#include "odl/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ODL_IMATCH_MAX_BINS 1024
#define ODL_IMATCH_MAX_CLASSES 65536

/* Per-class intensity histograms over [lo, hi]; values outside are clamped
 * to the end bins. */
typedef struct odl_imatch_hist {
    int32_t classes, bins;
    float lo, hi;
    uint32_t *counts;   /* classes × bins */
    uint64_t *totals;   /* per class */
} odl_imatch_hist;

/* Bytes of counts and totals (state). */
odl_status odl_imatch_hist_plan(int32_t classes, int32_t bins, odl_mem_plan *plan, odl_diag *d);
/* Takes the planned bytes from a; all counts zero. Needs lo < hi, both finite. */
odl_status odl_imatch_hist_init(odl_imatch_hist *h, int32_t classes, int32_t bins, float lo, float hi,
                                odl_arena *a, odl_diag *d);
/* Counts n intensities of one sample of class cls. Non-finite values are
 * refused (ODL_ERR_NUMERIC) and nothing is counted. A count that would
 * overflow is refused (ODL_ERR_STATE). */
odl_status odl_imatch_hist_add(odl_imatch_hist *h, int32_t cls, const float *x, size_t n, odl_diag *d);

/* The curve: lut[i] is where the centre of bin i goes; between centres it
 * is linear. */
typedef struct odl_imatch_map {
    int32_t bins;
    float lo, hi;
    int32_t classes_used;  /* classes present in both histograms */
    float mean_shift;      /* mean |g(v) - v| over the original intensities */
    float lut[ODL_IMATCH_MAX_BINS];
} odl_imatch_map;

/* Fits the map from the original (ref) to the user's (obs) intensities.
 * Both histograms must have the same classes, bins and range. A class is
 * used when it has at least min_values intensities on each side.
 * ODL_ERR_STATE (with a message) when no class qualifies. */
odl_status odl_imatch_fit(const odl_imatch_hist *ref, const odl_imatch_hist *obs, uint64_t min_values,
                          odl_imatch_map *map, odl_diag *d);

/* out[k] = g(in[k]) for k < n; in and out may be the same array. Non-finite
 * inputs pass through unchanged. */
void odl_imatch_apply(const odl_imatch_map *map, const float *in, float *out, size_t n);

/* ---- geometry: a sensor that moved ------------------------------------------
 *
 * The integer shift (dx right, dy down; |dx|, |dy| <= max_shift) that best
 * aligns the originals' class-mean images with the user's: the least sum,
 * over the classes marked in `use`, of each class's mean squared difference
 * between the user's mean and the originals' mean moved by (dx, dy) with
 * zero fill. Means are classes × (c·h·w) floats, channel-major like the
 * inputs; pass the originals' means already through the intensity curve.
 * *gain (optional) gets 1 − best/unmoved error: 0 when not moving is best.
 * ODL_ERR_STATE when no class is marked. No memory beyond the arguments. */
odl_status odl_imatch_fit_shift(const float *ref_means, const float *obs_means, const uint8_t *use, int32_t classes,
                                int32_t c, int32_t h, int32_t w, int32_t max_shift, int32_t *dx, int32_t *dy,
                                float *gain, odl_diag *d);

/* out = in moved by (dx, dy), the uncovered pixels `fill`; in and out must
 * not overlap. */
void odl_imatch_shift_image(const float *in, float *out, int32_t c, int32_t h, int32_t w, int32_t dx, int32_t dy,
                            float fill);

#ifdef __cplusplus
}
#endif

#endif
