/* odl/capi.h — a flat C API for language bindings (HOST ONLY: uses malloc,
 * stdio and the file system; lives in libodl_host and in libodl_py.so).
 *
 * Everything crossing this boundary is an opaque handle, an int, a float or
 * double, a pointer to a flat array, or a NUL-terminated string, so a binding
 * needs no struct layouts (Python's ctypes, Go's cgo, ...). docs/python.md
 * describes the Python package built on it.
 *
 * Conventions:
 *  - Calls that can fail return an odl_status as an int (0 OK, > 0 an event
 *    such as ODL_EVENT_DRIFT / ODL_EVENT_ROLLED_BACK / ODL_EVENT_REJECTED,
 *    < 0 an error) or a handle (NULL on failure). When `err` is not NULL the
 *    reason is written there as one line (at most errcap bytes, always
 *    NUL-terminated).
 *  - Inputs x are float32 arrays, row-major, n samples of `input_size`
 *    values each (c·h·w of the model). Labels are int32.
 *  - Options are strings of comma-separated key=value pairs ("z=3,ref_n=200");
 *    NULL or "" keeps the library defaults. An unknown key or a bad value is
 *    ODL_ERR_ARG with the key named in err.
 *  - Functions returning JSON write it into (buf, cap), always NUL-terminated,
 *    and return the length the full text needs (excluding the NUL): call again
 *    with a larger buffer when the result is >= cap.
 *  - Handles are not thread-safe; use one handle from one thread at a time. */
#ifndef ODL_CAPI_H
#define ODL_CAPI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ABI revision of this header; bumped when a signature changes. */
#define ODL_CAPI_ABI 1

/* "0.1.0" (the library version) and ODL_CAPI_ABI. */
const char *odl_capi_version(void);
int odl_capi_abi(void);
/* Static names: odl_status_str of a status ("ODL_OK", ...), odl_reason_str
 * of a learner rejection reason ("outlier", ...). Never NULL. */
const char *odl_capi_status_str(int status);
const char *odl_capi_reason_str(int reason);
int odl_capi_reason_count(void);

/* ---- models --------------------------------------------------------------- */
typedef struct odl_capi_model odl_capi_model;

/* Loads a .odl file for inference (parameters copied into a malloc'd arena;
 * the file is not kept open). NULL on failure. */
odl_capi_model *odl_capi_model_load(const char *path, char *err, size_t errcap);
/* Releases the caller's reference. A learner created on the model keeps its
 * own reference, so the model lives until the learner is freed too. NULL ok. */
void odl_capi_model_free(odl_capi_model *m);
/* Shape: out[0..4] = in_c, in_h, in_w, n_classes, n_layers. Returns 0. */
int odl_capi_model_shape(const odl_capi_model *m, int32_t out[5]);
/* Values per sample (in_c·in_h·in_w). */
int32_t odl_capi_model_input_size(const odl_capi_model *m);
int32_t odl_capi_model_n_classes(const odl_capi_model *m);
/* Layers, parameters and the inference memory plan as JSON (see top). */
size_t odl_capi_model_info_json(const odl_capi_model *m, char *buf, size_t cap);
/* Runs n samples; any output pointer may be NULL: out_class (n), out_conf
 * (n, the max softmax probability), out_logits (n × n_classes). */
int odl_capi_model_predict(odl_capi_model *m, const float *x, int32_t n, int32_t *out_class, float *out_conf,
                           float *out_logits, char *err, size_t errcap);
/* Writes the model to PATH atomically (PATH.tmp, fsync, rename). */
int odl_capi_model_save(const odl_capi_model *m, const char *path, char *err, size_t errcap);
/* The model's parameter tensors, for exchanging a head between processes
 * (federated learning: python/odl/fleet.py). Lists, in layer order, each
 * layer's weights (which = 0) then bias (which = 1), only layers marked
 * trainable when trainable_only != 0 (the head after a freeze, or a learner's
 * model): layer[i], which[i] and count[i] (float values) for i < cap (any
 * array may be NULL). Returns how many tensors there are, or < 0 (no model). */
int odl_capi_model_param_list(const odl_capi_model *m, int trainable_only, int32_t *layer, int32_t *which,
                              int64_t *count, int cap);
/* Copies tensor (layer, which) out into `out` / in from `x`; n must be the
 * tensor's exact count (odl_capi_model_param_list), non-finite values are
 * refused by set. ODL_ERR_ARG names the layer and the counts otherwise. */
int odl_capi_model_get_param(const odl_capi_model *m, int32_t layer, int32_t which, float *out, int64_t n,
                             char *err, size_t errcap);
int odl_capi_model_set_param(odl_capi_model *m, int32_t layer, int32_t which, const float *x, int64_t n,
                             char *err, size_t errcap);

/* ---- the learner (odl/learner.h) ------------------------------------------ */
typedef struct odl_capi_learner odl_capi_learner;

/* A learner over model m (which it keeps a reference to) with
 * odl_learner_cfg_defaults() changed by `options`:
 *   boundary max_collected holdout_every guard_size versions replay (capacity,
 *   0 = none) replay_f32 (0/1) replay_balanced (0/1) epochs batch lr
 *   outlier_k outlier_min confident dup_eps max_dups max_class_share
 *   new_target max_old_drop new_weight require_avg_not_worse bias_step
 *   drift (0/1) drift_ref_n drift_z drift_alpha conf_ref_n conf_z conf_alpha
 *   strategy (replay ewc ewc-online lwf ncm slda bias unfreeze: the strategy's
 *   defaults, odl_learner_cfg_for) ewc_lambda ewc_decay lwf_weight lwf_T
 *   slda_shrinkage stats_window shadow (candidates scored over this many
 *   labelled/marked samples; 0 = off) shadow_margin
 * max_classes <= 0 keeps the model's class count. Every random choice comes
 * from one generator seeded with `seed`. */
odl_capi_learner *odl_capi_learner_new(odl_capi_model *m, int32_t max_classes, uint64_t seed, const char *options,
                                       char *err, size_t errcap);
void odl_capi_learner_free(odl_capi_learner *L);
/* Bytes of the learner's arena (odl_learner_plan). */
size_t odl_capi_learner_bytes(const odl_capi_learner *L);
/* The old data the device ships with: n raw inputs and labels. */
int odl_capi_learner_seed(odl_capi_learner *L, const float *x, const int32_t *y, int32_t n, char *err,
                          size_t errcap);
/* n predictions; out_status (n, may be NULL) gets ODL_OK or ODL_EVENT_DRIFT
 * per sample. Returns ODL_EVENT_DRIFT if any prediction reported drift, ODL_OK
 * otherwise, or an error. */
int odl_capi_learner_predict(odl_capi_learner *L, const float *x, int32_t n, int32_t *out_class,
                             float *out_conf, int32_t *out_status, char *err, size_t errcap);
/* One labelled example: ODL_OK (collected) or ODL_EVENT_REJECTED with *why
 * (an odl_reason; may be NULL) set. */
int odl_capi_learner_feedback(odl_capi_learner *L, const float *x, int32_t label, int32_t *why, char *err,
                              size_t errcap);
/* A right (correct = 1) or wrong (0) mark on the prediction for x. */
int odl_capi_learner_mark(odl_capi_learner *L, const float *x, int32_t correct, int32_t *why, char *err,
                          size_t errcap);
/* ODL_OK (accepted, version + 1) or ODL_EVENT_ROLLED_BACK. */
int odl_capi_learner_update(odl_capi_learner *L, char *err, size_t errcap);
int odl_capi_learner_calibrate(odl_capi_learner *L, char *err, size_t errcap);
int odl_capi_learner_rollback(odl_capi_learner *L, int32_t steps, char *err, size_t errcap);
/* The status as JSON: {"version", "predictions", "feedback", "accepted_examples",
 * "marks_right", "marks_wrong", "rejected": {reason: count, ...}, "updates",
 * "updates_accepted", "updates_rolled_back", "rollbacks", "drift_events",
 * "last_drift_at", "collected", "held_out", "active_classes", "last_old_before",
 * "last_old_after", "last_new_before", "last_new_after", "last_user_before",
 * "last_user_after", "user_guard", "last_accepted", "last_decision", "last_old_n",
 * "last_new_n", "last_user_n", ...}: each last_* accuracy is null when its set was
 * not measured (its _n is 0). */
size_t odl_capi_learner_status_json(const odl_capi_learner *L, char *buf, size_t cap);
/* The same counters as integers, in this order (returns how many there are,
 * writing at most cap): version predictions feedback accepted_examples
 * marks_right marks_wrong updates updates_accepted updates_rolled_back rollbacks
 * drift_events last_drift_at collected held_out active_classes last_accepted,
 * then rejected[0..odl_capi_reason_count()-1]. */
int odl_capi_learner_status_ints(const odl_capi_learner *L, int64_t *out, int cap);
/* The current model (frozen base + the learner's head with its active classes,
 * calibration biases folded into the last bias) as a new model handle, or
 * written to PATH (metadata: created_by, version, last_decision). */
odl_capi_model *odl_capi_learner_model(const odl_capi_learner *L, char *err, size_t errcap);
int odl_capi_learner_save(const odl_capi_learner *L, const char *path, char *err, size_t errcap);

/* ---- drift detectors (odl/drift.h) ------------------------------------------ */
typedef struct odl_capi_drift odl_capi_drift;

/* kind: "zscore", "ph" (Page-Hinkley), "adwin" or "conf" (confidence EWMA).
 * options: the fields of the kind's cfg struct (zscore: ref_n alpha z min_run
 * check_var z_var; ph: warmup delta lambda alpha; adwin: delta m max_rows
 * clock min_sub; conf: ref_n alpha z min_run two_sided). */
odl_capi_drift *odl_capi_drift_new(const char *kind, const char *options, char *err, size_t errcap);
void odl_capi_drift_free(odl_capi_drift *D);
/* ODL_OK, ODL_EVENT_DRIFT or ODL_ERR_NUMERIC (value ignored). */
int odl_capi_drift_update(odl_capi_drift *D, double x);
/* Feeds n values; out_status (may be NULL) gets each result. Returns the
 * number of ODL_EVENT_DRIFT results. */
int64_t odl_capi_drift_update_many(odl_capi_drift *D, const double *x, int64_t n, int32_t *out_status);
void odl_capi_drift_reset(odl_capi_drift *D);
/* Values seen and alarms since creation. */
int64_t odl_capi_drift_t(const odl_capi_drift *D);
int64_t odl_capi_drift_alarms(const odl_capi_drift *D);
/* The detector's kind, configuration and state as JSON. */
size_t odl_capi_drift_state_json(const odl_capi_drift *D, char *buf, size_t cap);

/* odl_drift_sample_stats of n values. */
int odl_capi_sample_stats(const float *x, size_t n, float *mean, float *std);
/* Mean and std of each of n samples of `size` values (out arrays of n). */
int odl_capi_sample_stats_many(const float *x, int32_t n, int32_t size, float *mean, float *std);

/* ---- datasets (odl/data.h) -------------------------------------------------- */
typedef struct odl_capi_data odl_capi_data;

/* Loads PATH (IDX directory, IDX images file or CSV). split: "train", "test"
 * or NULL/"" (train for a directory); classes: "0-7", "8,9" or NULL (all);
 * limit 0 = all; shift: "gain:A,B", "translate:DX,DY" or NULL. */
odl_capi_data *odl_capi_data_load(const char *path, const char *split, const char *classes, int32_t limit,
                                  const char *shift, char *err, size_t errcap);
void odl_capi_data_free(odl_capi_data *D);
/* out[0..4] = n, c, h, w, n_classes. */
int odl_capi_data_shape(const odl_capi_data *D, int32_t out[5]);
/* Copies the samples (n × c·h·w floats) and the labels (n) out; either may be NULL. */
int odl_capi_data_copy(const odl_capi_data *D, float *x, int32_t *y);
/* Applies a shift spec in place to n samples of c×h×w. */
int odl_capi_shift(const char *spec, float *x, int32_t n, int32_t c, int32_t h, int32_t w, char *err,
                   size_t errcap);

/* ---- building and training models (fit/evaluate in bindings) -------------- */
/* A new model: arch "edge-cnn" or "mlp:H1,H2,..." for a c×h×w input and
 * n_classes outputs, parameters initialised from `seed` (odl_model_init_params). */
odl_capi_model *odl_capi_model_new(const char *arch, int32_t c, int32_t h, int32_t w, int32_t n_classes,
                                   uint64_t seed, char *err, size_t errcap);
/* Layers [0, boundary) frozen, the rest trainable (for trainers created after). */
int odl_capi_model_freeze(odl_capi_model *m, int32_t boundary, char *err, size_t errcap);
/* The first trainable layer (n_layers when none is). */
int32_t odl_capi_model_first_trainable(const odl_capi_model *m);
/* The memory plan of this model for `batch` samples, train (1) or inference
 * (0) mode, as JSON {"mode", "max_batch", "total", <kind>: bytes, ...}. */
size_t odl_capi_model_plan_json(const odl_capi_model *m, int32_t batch, int train, char *buf, size_t cap);

/* A trainer: m's description (its freeze included) in TRAIN mode with Adam
 * at `lr`, batches of at most `batch`, shuffled by a generator seeded with
 * `seed`. It keeps a reference to m and its optimizer state across epochs. */
typedef struct odl_capi_trainer odl_capi_trainer;
odl_capi_trainer *odl_capi_trainer_new(odl_capi_model *m, int32_t batch, float lr, uint64_t seed, char *err,
                                       size_t errcap);
void odl_capi_trainer_free(odl_capi_trainer *t);
/* One shuffled epoch over n samples (labels in 0..n_classes-1), then the
 * parameters are copied back into the model. out_loss: the mean batch loss;
 * out_acc: the model's accuracy on (x, y) after the epoch (either may be NULL). */
int odl_capi_trainer_epoch(odl_capi_trainer *t, const float *x, const int32_t *y, int32_t n, float *out_loss,
                           float *out_acc, char *err, size_t errcap);

/* ---- head deltas (odl/delta.h; docs/fleet-transport.md) --------------------- */
typedef struct odl_capi_delta odl_capi_delta;

/* Reads a delta message file (as `odl fleet collect` writes them), checking
 * its framing, CRCs, layout, lengths and values (not its signature, which
 * was checked when it was received). NULL on failure. */
odl_capi_delta *odl_capi_delta_load(const char *path, char *err, size_t errcap);
void odl_capi_delta_free(odl_capi_delta *D);
/* {"device", "round", "seq", "examples", "boundary", "base_id" (hex),
 * "signed", "bytes", "tensors": [{"node", "which" ("weights"/"bias"), "count"}]}. */
size_t odl_capi_delta_meta_json(const odl_capi_delta *D, char *buf, size_t cap);
int32_t odl_capi_delta_n_tensors(const odl_capi_delta *D);
/* Values in tensor i (-1 when i is out of range). */
int64_t odl_capi_delta_tensor_count(const odl_capi_delta *D, int32_t i);
/* Copies tensor i (n must be its count) into out: device − global, float32. */
int odl_capi_delta_tensor_copy(const odl_capi_delta *D, int32_t i, float *out, int64_t n, char *err, size_t errcap);
/* What a delta against model m must carry (an aggregator's check): m's
 * identity (odl_delta_model_id) as 64 hex digits in hex (65 bytes with the
 * NUL) and the head's first node for `unfreeze` (as `odl adapt --unfreeze K`
 * and `odl fleet collect --unfreeze K` choose it) in *boundary. */
int odl_capi_model_delta_id(const odl_capi_model *m, int32_t unfreeze, char *hex, int32_t *boundary, char *err,
                            size_t errcap);

#ifdef __cplusplus
}
#endif
#endif
