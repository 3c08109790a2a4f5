/* The flat C API for language bindings (odl/capi.h): opaque handles over the
 * core's structs, malloc'd arenas, options as key=value strings, JSON out. */
#define _POSIX_C_SOURCE 200809L

#include "odl/capi.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "odl/data.h"
#include "odl/odl.h"
#include "odl/posix_io.h"

#define CAPI_MAX_BATCH 64

/* ---- small helpers -------------------------------------------------------- */

static void set_err(char *err, size_t cap, const char *fmt, ...)
{
    if (!err || !cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
}

/* Fails with the diag's message (or the status name when it has none). */
static int fail_diag(char *err, size_t cap, odl_status s, const odl_diag *d)
{
    if (d && d->msg[0])
        set_err(err, cap, "%s", d->msg);
    else
        set_err(err, cap, "%s", odl_status_str(s));
    return (int)s;
}

static void clear_err(char *err, size_t cap)
{
    if (err && cap)
        err[0] = '\0';
}

/* A growing text buffer for JSON; writes what fits into (buf, cap), counts all. */
typedef struct jbuf {
    char *buf;
    size_t cap, len;
} jbuf;

static void jb_printf(jbuf *j, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *dst = j->buf && j->len < j->cap ? j->buf + j->len : NULL;
    size_t room = dst ? j->cap - j->len : 0;
    int n = vsnprintf(dst, room, fmt, ap);
    va_end(ap);
    if (n > 0)
        j->len += (size_t)n;
}

static void jb_str(jbuf *j, const char *s)
{
    jb_printf(j, "\"");
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            jb_printf(j, "\\%c", c);
        else if (c < 0x20)
            jb_printf(j, "\\u%04x", c);
        else
            jb_printf(j, "%c", c);
    }
    jb_printf(j, "\"");
}

/* A float as JSON: non-finite values become null. */
static void jb_float(jbuf *j, double v)
{
    if (isfinite(v))
        jb_printf(j, "%.6g", v);
    else
        jb_printf(j, "null");
}

static size_t jb_done(jbuf *j)
{
    if (j->buf && j->cap)
        j->buf[j->len < j->cap ? j->len : j->cap - 1] = '\0';
    return j->len;
}

/* key=value options ------------------------------------------------------------ */
enum { OPT_INT, OPT_FLOAT, OPT_STRATEGY };
typedef struct opt_entry {
    const char *key;
    int kind;
    void *p;
} opt_entry;

static int parse_options(const char *what, const char *opts, const opt_entry *tab, int n, char *err, size_t cap)
{
    if (!opts)
        return ODL_OK;
    const char *p = opts;
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        if (!*p)
            break;
        const char *end = p + strcspn(p, ",");
        const char *eq = memchr(p, '=', (size_t)(end - p));
        if (!eq) {
            set_err(err, cap, "%s: option '%.*s' needs a value (key=value)", what, (int)(end - p), p);
            return ODL_ERR_ARG;
        }
        size_t klen = (size_t)(eq - p);
        while (klen && p[klen - 1] == ' ')
            klen--;
        char val[64];
        size_t vlen = (size_t)(end - eq - 1);
        if (vlen >= sizeof val) { /* never cut a value: "0...01" cut short would read as 0 */
            set_err(err, cap, "%s: option %.*s: value too long (%zu bytes, at most %zu)", what, (int)klen, p, vlen,
                    sizeof val - 1);
            return ODL_ERR_ARG;
        }
        memcpy(val, eq + 1, vlen);
        val[vlen] = '\0';
        int found = 0;
        for (int i = 0; i < n; i++) {
            if (strlen(tab[i].key) != klen || strncmp(tab[i].key, p, klen))
                continue;
            found = 1;
            char *e;
            if (tab[i].kind == OPT_INT) {
                errno = 0;
                long v = strtol(val, &e, 10);
                if (errno || e == val || *e || v < -2147483647L || v > 2147483647L) {
                    set_err(err, cap, "%s: option %s: '%s' is not a whole number", what, tab[i].key, val);
                    return ODL_ERR_ARG;
                }
                *(int32_t *)tab[i].p = (int32_t)v;
            } else if (tab[i].kind == OPT_STRATEGY) {
                odl_strategy st;
                odl_diag sd;
                if (odl_strategy_parse(val, &st, &sd) != ODL_OK) {
                    set_err(err, cap, "%s: option %s: %s", what, tab[i].key, sd.msg);
                    return ODL_ERR_ARG;
                }
                *(int32_t *)tab[i].p = (int32_t)st;
            } else {
                double v = strtod(val, &e);
                if (e == val || *e || !isfinite(v)) {
                    set_err(err, cap, "%s: option %s: '%s' is not a number", what, tab[i].key, val);
                    return ODL_ERR_ARG;
                }
                *(float *)tab[i].p = (float)v;
            }
            break;
        }
        if (!found) {
            char known[512] = "";
            size_t used = 0;
            for (int i = 0; i < n && used < sizeof known; i++)
                used += (size_t)snprintf(known + used, sizeof known - used, "%s%s", i ? " " : "", tab[i].key);
            set_err(err, cap, "%s: unknown option '%.*s' (known: %s)", what, (int)klen, p, known);
            return ODL_ERR_ARG;
        }
        p = end;
    }
    return ODL_OK;
}

/* ---- version, names ----------------------------------------------------------- */

const char *odl_capi_version(void) { return ODL_VERSION_STRING; }
int odl_capi_abi(void) { return ODL_CAPI_ABI; }
const char *odl_capi_status_str(int status) { return odl_status_str((odl_status)status); }
const char *odl_capi_reason_str(int reason)
{
    if (reason < 0 || reason >= ODL_REASON_COUNT)
        return "?";
    return odl_reason_str((odl_reason)reason);
}
int odl_capi_reason_count(void) { return ODL_REASON_COUNT; }

/* ---- models -------------------------------------------------------------------- */

struct odl_capi_model {
    int refs;
    void *arena_buf;
    odl_model *m;
    odl_model_desc desc;
    odl_mem_plan plan;
    int32_t max_batch;
    float *probs; /* n_classes */
};

/* An inference model of `desc` in its own arena; parameters zero. */
static odl_capi_model *model_make(const odl_model_desc *desc, odl_diag *d)
{
    odl_capi_model *h = calloc(1, sizeof *h);
    if (!h) {
        odl_fail(d, ODL_ERR_NOMEM, "out of memory");
        return NULL;
    }
    h->refs = 1;
    h->max_batch = CAPI_MAX_BATCH;
    odl_model_cfg cfg = odl_model_cfg_defaults();
    cfg.mode = ODL_MODE_INFER;
    cfg.max_batch = h->max_batch;
    odl_status s = odl_model_plan(desc, &cfg, &h->plan, d);
    if (s == ODL_OK) {
        h->arena_buf = malloc(h->plan.total + ODL_ALIGN);
        if (!h->arena_buf)
            s = odl_fail(d, ODL_ERR_NOMEM, "out of memory (%zu bytes)", h->plan.total);
    }
    odl_arena a;
    if (s == ODL_OK)
        s = odl_arena_init(&a, h->arena_buf, h->plan.total + ODL_ALIGN);
    if (s == ODL_OK)
        s = odl_model_init(&h->m, desc, &cfg, &a, d);
    if (s == ODL_OK) {
        h->desc = *odl_model_get_desc(h->m); /* the model's own nodes, in its arena */
        h->probs = malloc(sizeof(float) * (size_t)odl_model_n_classes(h->m));
        if (!h->probs)
            s = odl_fail(d, ODL_ERR_NOMEM, "out of memory");
    }
    if (s != ODL_OK) {
        free(h->probs);
        free(h->arena_buf);
        free(h);
        return NULL;
    }
    return h;
}

static void model_unref(odl_capi_model *h)
{
    if (!h || --h->refs > 0)
        return;
    free(h->probs);
    free(h->arena_buf);
    free(h);
}

odl_capi_model *odl_capi_model_load(const char *path, char *err, size_t errcap)
{
    clear_err(err, errcap);
    if (!path) {
        set_err(err, errcap, "model load: no path");
        return NULL;
    }
    odl_diag d;
    odl_diag_clear(&d);
    void *file = NULL;
    size_t len = 0;
    odl_status s = odl_host_read_file(path, &file, &len, &d);
    if (s != ODL_OK) {
        fail_diag(err, errcap, s, &d);
        return NULL;
    }
    odl_model_desc desc;
    odl_capi_model *h = NULL;
    s = odl_host_read_desc(file, len, &desc, &d);
    if (s == ODL_OK) {
        h = model_make(&desc, &d);
        s = h ? ODL_OK : (d.status != ODL_OK ? d.status : ODL_ERR_NOMEM);
        odl_host_desc_free(&desc);
    }
    if (s == ODL_OK)
        s = odl_model_load_params(h->m, file, len, &d);
    odl_host_free(file);
    if (s != ODL_OK) {
        odl_diag_prefix(&d, path);
        fail_diag(err, errcap, s, &d);
        model_unref(h);
        return NULL;
    }
    return h;
}

void odl_capi_model_free(odl_capi_model *m) { model_unref(m); }

int odl_capi_model_shape(const odl_capi_model *m, int32_t out[5])
{
    if (!m || !out)
        return ODL_ERR_ARG;
    out[0] = m->desc.in_c;
    out[1] = m->desc.in_h;
    out[2] = m->desc.in_w;
    out[3] = odl_model_n_classes(m->m);
    out[4] = m->desc.n_layers;
    return ODL_OK;
}

int32_t odl_capi_model_input_size(const odl_capi_model *m)
{
    return m ? m->desc.in_c * m->desc.in_h * m->desc.in_w : 0;
}

int32_t odl_capi_model_n_classes(const odl_capi_model *m) { return m ? odl_model_n_classes(m->m) : 0; }

size_t odl_capi_model_info_json(const odl_capi_model *m, char *buf, size_t cap)
{
    jbuf j = {buf, cap, 0};
    if (!m) {
        jb_printf(&j, "null");
        return jb_done(&j);
    }
    size_t total = 0, trainable = 0;
    odl_layer_shape *shapes = odl_host_shapes(&m->desc, NULL);
    if (shapes)
        odl_desc_count_params(&m->desc, shapes, &total, &trainable);
    free(shapes);
    jb_printf(&j, "{\"input\": [%d, %d, %d], \"n_classes\": %d, \"params\": %zu, \"trainable_params\": %zu, ",
              (int)m->desc.in_c, (int)m->desc.in_h, (int)m->desc.in_w, (int)odl_model_n_classes(m->m), total,
              trainable);
    jb_printf(&j, "\"inference_plan\": {\"max_batch\": %d, \"total\": %zu", (int)m->max_batch, m->plan.total);
    for (int k = 0; k < ODL_MEM_KINDS; k++)
        jb_printf(&j, ", \"%s\": %zu", odl_mem_kind_name((odl_mem_kind)k), m->plan.bytes[k]);
    jb_printf(&j, "}, \"layers\": [");
    for (int32_t i = 0; i < m->desc.n_layers; i++) {
        const odl_node_desc *ld = &m->desc.layers[i];
        odl_layer_shape sh = odl_model_layer_shape(m->m, i);
        jb_printf(&j, "%s{\"type\": \"%s\", \"trainable\": %d, \"units\": %d, \"output\": [%d, %d, %d], "
                      "\"params\": %zu",
                  i ? ", " : "", odl_layer_type_name(ld->type), (int)ld->trainable, (int)ld->units, (int)sh.c,
                  (int)sh.h, (int)sh.w, sh.n_weights + sh.n_bias);
        /* graph nodes name their inputs (tensor numbers; 0 is the model input) */
        if (ld->n_in != 1 || ld->in[0] != i) {
            jb_printf(&j, ", \"inputs\": [");
            for (int32_t k = 0; k < ld->n_in; k++)
                jb_printf(&j, "%s%d", k ? ", " : "", (int)ld->in[k]);
            jb_printf(&j, "]");
        }
        jb_printf(&j, "}");
    }
    jb_printf(&j, "]}");
    return jb_done(&j);
}

int odl_capi_model_predict(odl_capi_model *m, const float *x, int32_t n, int32_t *out_class, float *out_conf,
                           float *out_logits, char *err, size_t errcap)
{
    clear_err(err, errcap);
    if (!m || (!x && n > 0) || n < 0) {
        set_err(err, errcap, "predict: bad arguments");
        return ODL_ERR_ARG;
    }
    const int32_t C = odl_model_n_classes(m->m);
    const size_t in = (size_t)odl_capi_model_input_size(m);
    odl_diag d;
    odl_diag_clear(&d);
    for (int32_t i0 = 0; i0 < n; i0 += m->max_batch) {
        const int32_t k = n - i0 < m->max_batch ? n - i0 : m->max_batch;
        const float *logits;
        odl_status s = odl_model_forward(m->m, 0, x + (size_t)i0 * in, k, &logits, &d);
        if (s != ODL_OK)
            return fail_diag(err, errcap, s, &d);
        for (int32_t r = 0; r < k; r++) {
            const float *l = logits + (size_t)r * C;
            int32_t best = 0;
            for (int32_t c = 1; c < C; c++)
                if (l[c] > l[best])
                    best = c;
            if (out_class)
                out_class[i0 + r] = best;
            if (out_conf) {
                odl_softmax_f32(C, l, m->probs);
                out_conf[i0 + r] = m->probs[best];
            }
            if (out_logits)
                memcpy(out_logits + (size_t)(i0 + r) * C, l, sizeof(float) * (size_t)C);
        }
    }
    return ODL_OK;
}

int odl_capi_model_save(const odl_capi_model *m, const char *path, char *err, size_t errcap)
{
    clear_err(err, errcap);
    if (!m || !path) {
        set_err(err, errcap, "model save: bad arguments");
        return ODL_ERR_ARG;
    }
    odl_meta_kv meta[] = {{"created_by", "odl capi " ODL_VERSION_STRING}};
    odl_diag d;
    odl_diag_clear(&d);
    odl_status s = odl_host_save_model(m->m, meta, 1, path, &d);
    return s == ODL_OK ? ODL_OK : fail_diag(err, errcap, s, &d);
}

/* Parameter tensors ------------------------------------------------------------------ */

int odl_capi_model_param_list(const odl_capi_model *m, int trainable_only, int32_t *layer, int32_t *which,
                              int64_t *count, int cap)
{
    if (!m)
        return ODL_ERR_ARG;
    int k = 0;
    for (int32_t i = 0; i < m->desc.n_layers; i++) {
        if (trainable_only && !m->desc.layers[i].trainable)
            continue;
        for (int32_t w = 0; w < 2; w++) {
            size_t n = 0;
            if (!odl_model_param_const(m->m, i, w, &n) || !n)
                continue;
            if (k < cap) {
                if (layer)
                    layer[k] = i;
                if (which)
                    which[k] = w;
                if (count)
                    count[k] = (int64_t)n;
            }
            k++;
        }
    }
    return k;
}

int odl_capi_model_delta_id(const odl_capi_model *m, int32_t unfreeze, char *hex, int32_t *boundary, char *err,
                            size_t errcap)
{
    clear_err(err, errcap);
    if (!m || !hex || !boundary || unfreeze < 0) {
        set_err(err, errcap, "odl_capi_model_delta_id: model, hex and boundary must not be NULL, unfreeze >= 0");
        return ODL_ERR_ARG;
    }
    odl_diag d;
    odl_diag_clear(&d);
    uint8_t id[ODL_SHA256_BYTES];
    odl_status s = odl_delta_model_id(m->m, id, &d);
    if (s == ODL_OK && unfreeze >= INT32_MAX)
        s = odl_fail(&d, ODL_ERR_ARG, "unfreeze %d is out of range", (int)unfreeze);
    if (s == ODL_OK)
        s = odl_desc_boundary_for_unfreeze(&m->desc, unfreeze + 1, boundary, &d);
    if (s != ODL_OK) {
        set_err(err, errcap, "%s", d.msg[0] ? d.msg : odl_status_str(s));
        return (int)s;
    }
    for (int i = 0; i < ODL_SHA256_BYTES; i++)
        snprintf(hex + 2 * i, 3, "%02x", id[i]);
    return ODL_OK;
}

/* The tensor (layer, which) of m holding exactly n values, or NULL with err set. */
static const float *param_tensor(const odl_capi_model *m, int32_t layer, int32_t which, int64_t n, const char *what,
                                 char *err, size_t errcap)
{
    if (!m) {
        set_err(err, errcap, "%s: no model", what);
        return NULL;
    }
    if (layer < 0 || layer >= m->desc.n_layers || (which != 0 && which != 1)) {
        set_err(err, errcap, "%s: layer %d / %s is outside the model (layers 0..%d; which 0 = weights, 1 = bias)",
                what, (int)layer, which == 1 ? "bias" : which == 0 ? "weights" : "?", (int)m->desc.n_layers - 1);
        return NULL;
    }
    size_t have = 0;
    const float *p = odl_model_param_const(m->m, layer, which, &have);
    if (!p || !have) {
        set_err(err, errcap, "%s: layer %d (%s) has no float %s", what, (int)layer,
                odl_layer_type_name(m->desc.layers[layer].type), which ? "bias" : "weights");
        return NULL;
    }
    if (n < 0 || (uint64_t)n != (uint64_t)have) {
        set_err(err, errcap, "%s: layer %d %s holds %zu values, not %lld", what, (int)layer,
                which ? "bias" : "weights", have, (long long)n);
        return NULL;
    }
    return p;
}

int odl_capi_model_get_param(const odl_capi_model *m, int32_t layer, int32_t which, float *out, int64_t n,
                             char *err, size_t errcap)
{
    clear_err(err, errcap);
    const float *p = param_tensor(m, layer, which, n, "get params", err, errcap);
    if (!p)
        return ODL_ERR_ARG;
    if (!out) {
        set_err(err, errcap, "get params: no output buffer");
        return ODL_ERR_ARG;
    }
    memcpy(out, p, sizeof(float) * (size_t)n);
    return ODL_OK;
}

int odl_capi_model_set_param(odl_capi_model *m, int32_t layer, int32_t which, const float *x, int64_t n,
                             char *err, size_t errcap)
{
    clear_err(err, errcap);
    if (!param_tensor(m, layer, which, n, "set params", err, errcap))
        return ODL_ERR_ARG;
    if (!x) {
        set_err(err, errcap, "set params: no values");
        return ODL_ERR_ARG;
    }
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x[i])) {
            set_err(err, errcap, "set params: layer %d %s value %lld is not finite (%g)", (int)layer,
                    which ? "bias" : "weights", (long long)i, (double)x[i]);
            return ODL_ERR_ARG;
        }
    size_t have = 0;
    float *dst = odl_model_param(m->m, layer, which, &have);
    if (!dst || have != (size_t)n) { /* in-place (external) parameters are read-only */
        set_err(err, errcap, "set params: layer %d %s cannot be written (read-only parameters)", (int)layer,
                which ? "bias" : "weights");
        return ODL_ERR_ARG;
    }
    memcpy(dst, x, sizeof(float) * (size_t)n);
    return ODL_OK;
}

/* ---- learner ---------------------------------------------------------------------- */

struct odl_capi_learner {
    odl_capi_model *base;
    void *buf;
    size_t bytes;
    odl_learner *L;
    odl_rng rng;
};

odl_capi_learner *odl_capi_learner_new(odl_capi_model *m, int32_t max_classes, uint64_t seed, const char *options,
                                       char *err, size_t errcap)
{
    clear_err(err, errcap);
    if (!m) {
        set_err(err, errcap, "learner: no model");
        return NULL;
    }
    odl_learner_cfg c = odl_learner_cfg_defaults();
    c.max_classes = max_classes > 0 ? max_classes : 0;
    int32_t replay = -1, replay_f32 = 0, replay_balanced = 1; /* -1: the strategy's default */
    const opt_entry tab[] = {
        {"boundary", OPT_INT, &c.boundary},
        {"max_collected", OPT_INT, &c.max_collected},
        {"holdout_every", OPT_INT, &c.holdout_every},
        {"guard_size", OPT_INT, &c.guard_size},
        {"versions", OPT_INT, &c.versions},
        {"replay", OPT_INT, &replay},
        {"replay_f32", OPT_INT, &replay_f32},
        {"replay_balanced", OPT_INT, &replay_balanced},
        {"epochs", OPT_INT, &c.adapt.epochs},
        {"batch", OPT_INT, &c.adapt.batch},
        {"lr", OPT_FLOAT, &c.lr},
        {"outlier_k", OPT_FLOAT, &c.outlier_k},
        {"outlier_min", OPT_INT, &c.outlier_min},
        {"confident", OPT_FLOAT, &c.confident},
        {"dup_eps", OPT_FLOAT, &c.dup_eps},
        {"max_dups", OPT_INT, &c.max_dups},
        {"max_class_share", OPT_FLOAT, &c.max_class_share},
        {"new_target", OPT_FLOAT, &c.gate.new_target},
        {"max_old_drop", OPT_FLOAT, &c.gate.max_old_drop},
        {"new_weight", OPT_FLOAT, &c.gate.new_weight},
        {"require_avg_not_worse", OPT_INT, &c.gate.require_avg_not_worse},
        {"bias_step", OPT_FLOAT, &c.bias_step},
        {"drift", OPT_INT, &c.drift},
        {"drift_ref_n", OPT_INT, &c.drift_input.ref_n},
        {"drift_z", OPT_FLOAT, &c.drift_input.z},
        {"drift_alpha", OPT_FLOAT, &c.drift_input.alpha},
        {"conf_ref_n", OPT_INT, &c.drift_conf.ref_n},
        {"conf_z", OPT_FLOAT, &c.drift_conf.z},
        {"conf_alpha", OPT_FLOAT, &c.drift_conf.alpha},
        {"strategy", OPT_STRATEGY, &c.strategy},
        {"ewc_lambda", OPT_FLOAT, &c.adapt.ewc_lambda},
        {"ewc_decay", OPT_FLOAT, &c.ewc_decay},
        {"lwf_weight", OPT_FLOAT, &c.adapt.lwf_weight},
        {"lwf_T", OPT_FLOAT, &c.adapt.lwf_T},
        {"slda_shrinkage", OPT_FLOAT, &c.slda_shrinkage},
        {"stats_window", OPT_INT, &c.stats_window},
        {"shadow", OPT_INT, &c.shadow_n},
        {"shadow_margin", OPT_FLOAT, &c.shadow_margin},
    };
    if (parse_options("learner", options, tab, (int)(sizeof tab / sizeof tab[0]), err, errcap) != ODL_OK)
        return NULL;
    if ((unsigned)c.strategy >= ODL_STRATEGY_COUNT) {
        set_err(err, errcap, "learner: strategy %d is not one of 0..%d", (int)c.strategy, (int)ODL_STRATEGY_COUNT - 1);
        return NULL;
    }
    c.replay.capacity = replay >= 0 ? replay : odl_learner_cfg_for((odl_strategy)c.strategy).replay.capacity;
    c.replay.dtype = replay_f32 ? ODL_REPLAY_F32 : ODL_REPLAY_INT8;
    c.replay.policy = replay_balanced ? ODL_REPLAY_CLASS_BALANCED : ODL_REPLAY_RESERVOIR;

    odl_capi_learner *h = calloc(1, sizeof *h);
    if (!h) {
        set_err(err, errcap, "learner: out of memory");
        return NULL;
    }
    odl_diag d;
    odl_diag_clear(&d);
    odl_mem_plan plan;
    odl_status s = odl_learner_plan(&c, m->m, &plan, &d);
    if (s == ODL_OK) {
        h->bytes = plan.total;
        h->buf = malloc(plan.total + ODL_ALIGN);
        if (!h->buf)
            s = odl_fail(&d, ODL_ERR_NOMEM, "learner: out of memory (%zu bytes)", plan.total);
    }
    odl_arena a;
    if (s == ODL_OK)
        s = odl_arena_init(&a, h->buf, plan.total + ODL_ALIGN);
    if (s == ODL_OK)
        s = odl_learner_init(&h->L, &c, m->m, &a, &d);
    if (s != ODL_OK) {
        fail_diag(err, errcap, s, &d);
        free(h->buf);
        free(h);
        return NULL;
    }
    odl_rng_seed(&h->rng, seed, 0x6c6561726eULL); /* "learn" */
    m->refs++;
    h->base = m;
    return h;
}

void odl_capi_learner_free(odl_capi_learner *L)
{
    if (!L)
        return;
    free(L->buf);
    model_unref(L->base);
    free(L);
}

size_t odl_capi_learner_bytes(const odl_capi_learner *L) { return L ? L->bytes : 0; }

#define LEARNER_CHECK(L, what)                                  \
    do {                                                        \
        clear_err(err, errcap);                                 \
        if (!(L)) {                                             \
            set_err(err, errcap, "%s: no learner", what);        \
            return ODL_ERR_ARG;                                 \
        }                                                       \
    } while (0)

int odl_capi_learner_seed(odl_capi_learner *L, const float *x, const int32_t *y, int32_t n, char *err,
                          size_t errcap)
{
    LEARNER_CHECK(L, "seed");
    if (n < 0 || (n > 0 && (!x || !y))) {
        set_err(err, errcap, "seed: bad arguments");
        return ODL_ERR_ARG;
    }
    odl_diag d;
    odl_diag_clear(&d);
    odl_status s = odl_learner_seed_old(L->L, x, y, n, &L->rng, &d);
    return s == ODL_OK ? ODL_OK : fail_diag(err, errcap, s, &d);
}

int odl_capi_learner_predict(odl_capi_learner *L, const float *x, int32_t n, int32_t *out_class,
                             float *out_conf, int32_t *out_status, char *err, size_t errcap)
{
    LEARNER_CHECK(L, "predict");
    if (n < 0 || (n > 0 && !x)) {
        set_err(err, errcap, "predict: bad arguments");
        return ODL_ERR_ARG;
    }
    const size_t in = (size_t)odl_capi_model_input_size(L->base);
    odl_status any = ODL_OK;
    odl_diag d;
    odl_diag_clear(&d);
    for (int32_t i = 0; i < n; i++) {
        int32_t c = -1;
        float conf = 0.0f;
        odl_status s = odl_learner_predict(L->L, x + (size_t)i * in, &c, &conf, &d);
        if (s < 0)
            return fail_diag(err, errcap, s, &d);
        if (s == ODL_EVENT_DRIFT)
            any = ODL_EVENT_DRIFT;
        if (out_class)
            out_class[i] = c;
        if (out_conf)
            out_conf[i] = conf;
        if (out_status)
            out_status[i] = (int32_t)s;
    }
    return (int)any;
}

int odl_capi_learner_feedback(odl_capi_learner *L, const float *x, int32_t label, int32_t *why, char *err,
                              size_t errcap)
{
    LEARNER_CHECK(L, "feedback");
    odl_reason r = ODL_REASON_NONE;
    odl_diag d;
    odl_diag_clear(&d);
    odl_status s = odl_learner_feedback(L->L, x, label, &r, &d);
    if (why)
        *why = (int32_t)r;
    return s < 0 ? fail_diag(err, errcap, s, &d) : (int)s;
}

int odl_capi_learner_mark(odl_capi_learner *L, const float *x, int32_t correct, int32_t *why, char *err,
                          size_t errcap)
{
    LEARNER_CHECK(L, "mark");
    odl_reason r = ODL_REASON_NONE;
    odl_diag d;
    odl_diag_clear(&d);
    odl_status s = odl_learner_mark(L->L, x, correct ? 1 : 0, &r, &d);
    if (why)
        *why = (int32_t)r;
    return s < 0 ? fail_diag(err, errcap, s, &d) : (int)s;
}

int odl_capi_learner_update(odl_capi_learner *L, char *err, size_t errcap)
{
    LEARNER_CHECK(L, "update");
    odl_diag d;
    odl_diag_clear(&d);
    odl_status s = odl_learner_update(L->L, &L->rng, &d);
    return s < 0 ? fail_diag(err, errcap, s, &d) : (int)s;
}

int odl_capi_learner_calibrate(odl_capi_learner *L, char *err, size_t errcap)
{
    LEARNER_CHECK(L, "calibrate");
    odl_diag d;
    odl_diag_clear(&d);
    odl_status s = odl_learner_calibrate(L->L, &d);
    return s < 0 ? fail_diag(err, errcap, s, &d) : (int)s;
}

int odl_capi_learner_rollback(odl_capi_learner *L, int32_t steps, char *err, size_t errcap)
{
    LEARNER_CHECK(L, "rollback");
    odl_diag d;
    odl_diag_clear(&d);
    odl_status s = odl_learner_rollback(L->L, steps, &d);
    return s < 0 ? fail_diag(err, errcap, s, &d) : (int)s;
}

size_t odl_capi_learner_status_json(const odl_capi_learner *L, char *buf, size_t cap)
{
    jbuf j = {buf, cap, 0};
    if (!L) {
        jb_printf(&j, "null");
        return jb_done(&j);
    }
    odl_learner_status st;
    odl_learner_get_status(L->L, &st);
    jb_printf(&j,
              "{\"version\": %u, \"predictions\": %u, \"feedback\": %u, \"accepted_examples\": %u, "
              "\"marks_right\": %u, \"marks_wrong\": %u, \"rejected\": {",
              st.version, st.predictions, st.feedback, st.accepted_examples, st.marks_right, st.marks_wrong);
    for (int r = 1; r < ODL_REASON_COUNT; r++)
        jb_printf(&j, "%s\"%s\": %u", r > 1 ? ", " : "", odl_reason_str((odl_reason)r), st.rejected[r]);
    jb_printf(&j,
              "}, \"updates\": %u, \"updates_accepted\": %u, \"updates_rolled_back\": %u, \"rollbacks\": %u, "
              "\"drift_events\": %u, \"last_drift_at\": %u, \"collected\": %d, \"held_out\": %d, "
              "\"active_classes\": %d, \"user_guard\": %d, \"last_accepted\": %d",
              st.updates, st.updates_accepted, st.updates_rolled_back, st.rollbacks, st.drift_events,
              st.last_drift_at, (int)st.collected, (int)st.held_out, (int)st.active_classes, (int)st.user_guard,
              (int)st.last_accepted);
    /* the last gate's accuracies: null for a set it did not measure (count 0) */
    const struct {
        const char *k;
        float v;
        int32_t n;
    } fl[] = {{"last_old_before", st.last_old_before, st.last_old_n},
              {"last_old_after", st.last_old_after, st.last_old_n},
              {"last_new_before", st.last_new_before, st.last_new_n},
              {"last_new_after", st.last_new_after, st.last_new_n},
              {"last_user_before", st.last_user_before, st.last_user_n},
              {"last_user_after", st.last_user_after, st.last_user_n}};
    for (size_t i = 0; i < sizeof fl / sizeof fl[0]; i++) {
        jb_printf(&j, ", \"%s\": ", fl[i].k);
        if (fl[i].n > 0)
            jb_float(&j, fl[i].v);
        else
            jb_printf(&j, "null");
    }
    jb_printf(&j, ", \"last_old_n\": %d, \"last_new_n\": %d, \"last_user_n\": %d", (int)st.last_old_n,
              (int)st.last_new_n, (int)st.last_user_n);
    st.last_decision[sizeof st.last_decision - 1] = '\0';
    jb_printf(&j, ", \"last_decision\": ");
    jb_str(&j, st.last_decision);
    jb_printf(&j, ", \"strategy\": ");
    jb_str(&j, odl_strategy_name((odl_strategy)st.strategy));
    jb_printf(&j, ", \"shadow_active\": %d, \"shadow_scored\": %d, \"shadow_promoted\": %u, \"shadow_dropped\": %u",
              (int)st.shadow_active, (int)st.shadow_scored, st.shadow_promoted, st.shadow_dropped);
    jb_printf(&j, ", \"shadow_candidate_correct\": ");
    jb_float(&j, st.shadow_cand_correct);
    jb_printf(&j, ", \"shadow_current_correct\": ");
    jb_float(&j, st.shadow_cur_correct);
    st.shadow_decision[sizeof st.shadow_decision - 1] = '\0';
    jb_printf(&j, ", \"shadow_decision\": ");
    jb_str(&j, st.shadow_decision);
    jb_printf(&j, ", \"bytes\": %zu}", L->bytes);
    return jb_done(&j);
}

int odl_capi_learner_status_ints(const odl_capi_learner *L, int64_t *out, int cap)
{
    if (!L)
        return 0;
    odl_learner_status st;
    odl_learner_get_status(L->L, &st);
    int64_t v[16 + ODL_REASON_COUNT] = {st.version,         st.predictions,       st.feedback,
                                        st.accepted_examples, st.marks_right,     st.marks_wrong,
                                        st.updates,         st.updates_accepted,  st.updates_rolled_back,
                                        st.rollbacks,       st.drift_events,      st.last_drift_at,
                                        st.collected,       st.held_out,          st.active_classes,
                                        st.last_accepted};
    for (int r = 0; r < ODL_REASON_COUNT; r++)
        v[16 + r] = st.rejected[r];
    const int total = 16 + ODL_REASON_COUNT;
    for (int i = 0; out && i < total && i < cap; i++)
        out[i] = v[i];
    return total;
}

odl_capi_model *odl_capi_learner_model(const odl_capi_learner *L, char *err, size_t errcap)
{
    clear_err(err, errcap);
    if (!L) {
        set_err(err, errcap, "learner model: no learner");
        return NULL;
    }
    odl_learner_status st;
    odl_learner_get_status(L->L, &st);
    const int32_t b = odl_learner_boundary(L->L);
    const odl_model *head = odl_learner_head(L->L);
    const odl_model *base = L->base->m;
    odl_model_desc nd;
    odl_diag d;
    odl_diag_clear(&d);
    odl_status s = odl_host_desc_copy(&nd, &L->base->desc, L->base->desc.n_layers, &d);
    if (s != ODL_OK) {
        fail_diag(err, errcap, s, &d);
        return NULL;
    }
    s = odl_desc_set_classes(&nd, st.active_classes);
    if (s == ODL_OK)
        s = odl_desc_freeze_below(&nd, b);
    odl_capi_model *h = NULL;
    if (s == ODL_OK) {
        h = model_make(&nd, &d);
        if (!h)
            s = d.status != ODL_OK ? d.status : ODL_ERR_NOMEM;
    }
    const int32_t last = nd.n_layers - 1, n_nodes = nd.n_layers;
    odl_host_desc_free(&nd);
    if (s != ODL_OK) {
        fail_diag(err, errcap, s, &d);
        return NULL;
    }
    const float *bias = odl_learner_bias(L->L);
    for (int32_t i = 0; i < n_nodes; i++)
        for (int which = 0; which < 2; which++) {
            size_t n = 0, ns = 0;
            float *dst = odl_model_param(h->m, i, which, &n);
            const float *src = i < b ? odl_model_param_const(base, i, which, &ns)
                                     : odl_model_param_const(head, i - b, which, &ns);
            if (!n)
                continue;
            if (!src || ns < n) {
                set_err(err, errcap, "learner model: layer %d does not match the head", (int)i);
                model_unref(h);
                return NULL;
            }
            memcpy(dst, src, sizeof(float) * n); /* the last layer: its first (active) rows */
            if (i == last && which == 1 && bias)
                for (size_t c = 0; c < n; c++)
                    dst[c] += bias[c];
        }
    return h;
}

int odl_capi_learner_save(const odl_capi_learner *L, const char *path, char *err, size_t errcap)
{
    clear_err(err, errcap);
    if (!L || !path) {
        set_err(err, errcap, "learner save: bad arguments");
        return ODL_ERR_ARG;
    }
    odl_capi_model *h = odl_capi_learner_model(L, err, errcap);
    if (!h)
        return ODL_ERR_NOMEM;
    odl_learner_status st;
    odl_learner_get_status(L->L, &st);
    st.last_decision[sizeof st.last_decision - 1] = '\0';
    char ver[32];
    snprintf(ver, sizeof ver, "%u", (unsigned)st.version);
    odl_meta_kv meta[] = {{"created_by", "odl capi " ODL_VERSION_STRING},
                          {"version", ver},
                          {"last_decision", st.last_decision}};
    odl_diag d;
    odl_diag_clear(&d);
    odl_status s = odl_host_save_model(h->m, meta, 3, path, &d);
    model_unref(h);
    return s == ODL_OK ? ODL_OK : fail_diag(err, errcap, s, &d);
}

/* ---- drift detectors ------------------------------------------------------------------ */

enum { DRIFT_ZSCORE, DRIFT_PH, DRIFT_ADWIN, DRIFT_CONF };
static const char *const drift_kind_names[] = {"zscore", "ph", "adwin", "conf"};

struct odl_capi_drift {
    int kind;
    union {
        odl_zscore_drift z;
        odl_ph_drift ph;
        odl_adwin_drift adwin;
        odl_conf_drift conf;
    } u;
};

odl_capi_drift *odl_capi_drift_new(const char *kind, const char *options, char *err, size_t errcap)
{
    clear_err(err, errcap);
    int k = -1;
    for (int i = 0; kind && i < 4; i++)
        if (!strcmp(kind, drift_kind_names[i]))
            k = i;
    if (kind && (!strcmp(kind, "page-hinkley") || !strcmp(kind, "page_hinkley")))
        k = DRIFT_PH;
    if (kind && (!strcmp(kind, "confidence") || !strcmp(kind, "conf-ewma")))
        k = DRIFT_CONF;
    if (k < 0) {
        set_err(err, errcap, "drift: unknown detector '%s' (zscore, ph, adwin, conf)", kind ? kind : "(null)");
        return NULL;
    }
    odl_capi_drift *D = calloc(1, sizeof *D);
    if (!D) {
        set_err(err, errcap, "drift: out of memory");
        return NULL;
    }
    D->kind = k;
    odl_diag d;
    odl_diag_clear(&d);
    odl_status s = ODL_OK;
    if (k == DRIFT_ZSCORE) {
        odl_zscore_cfg c = odl_zscore_cfg_defaults();
        const opt_entry tab[] = {{"ref_n", OPT_INT, &c.ref_n},     {"alpha", OPT_FLOAT, &c.alpha},
                                 {"z", OPT_FLOAT, &c.z},           {"min_run", OPT_INT, &c.min_run},
                                 {"check_var", OPT_INT, &c.check_var}, {"z_var", OPT_FLOAT, &c.z_var}};
        s = (odl_status)parse_options("zscore drift", options, tab, 6, err, errcap);
        if (s == ODL_OK && (s = odl_zscore_init(&D->u.z, &c, &d)) != ODL_OK)
            fail_diag(err, errcap, s, &d);
    } else if (k == DRIFT_PH) {
        odl_ph_cfg c = odl_ph_cfg_defaults();
        const opt_entry tab[] = {{"warmup", OPT_INT, &c.warmup},
                                 {"delta", OPT_FLOAT, &c.delta},
                                 {"lambda", OPT_FLOAT, &c.lambda},
                                 {"alpha", OPT_FLOAT, &c.alpha}};
        s = (odl_status)parse_options("page-hinkley drift", options, tab, 4, err, errcap);
        if (s == ODL_OK && (s = odl_ph_init(&D->u.ph, &c, &d)) != ODL_OK)
            fail_diag(err, errcap, s, &d);
    } else if (k == DRIFT_ADWIN) {
        odl_adwin_cfg c = odl_adwin_cfg_defaults();
        const opt_entry tab[] = {{"delta", OPT_FLOAT, &c.delta},
                                 {"m", OPT_INT, &c.m},
                                 {"max_rows", OPT_INT, &c.max_rows},
                                 {"clock", OPT_INT, &c.clock},
                                 {"min_sub", OPT_INT, &c.min_sub}};
        s = (odl_status)parse_options("adwin drift", options, tab, 5, err, errcap);
        if (s == ODL_OK && (s = odl_adwin_init(&D->u.adwin, &c, &d)) != ODL_OK)
            fail_diag(err, errcap, s, &d);
    } else {
        odl_conf_cfg c = odl_conf_cfg_defaults();
        const opt_entry tab[] = {{"ref_n", OPT_INT, &c.ref_n},
                                 {"alpha", OPT_FLOAT, &c.alpha},
                                 {"z", OPT_FLOAT, &c.z},
                                 {"min_run", OPT_INT, &c.min_run},
                                 {"two_sided", OPT_INT, &c.two_sided}};
        s = (odl_status)parse_options("confidence drift", options, tab, 5, err, errcap);
        if (s == ODL_OK && (s = odl_conf_init(&D->u.conf, &c, &d)) != ODL_OK)
            fail_diag(err, errcap, s, &d);
    }
    if (s != ODL_OK) {
        free(D);
        return NULL;
    }
    return D;
}

void odl_capi_drift_free(odl_capi_drift *D) { free(D); }

int odl_capi_drift_update(odl_capi_drift *D, double x)
{
    if (!D)
        return ODL_ERR_ARG;
    switch (D->kind) {
    case DRIFT_ZSCORE: return (int)odl_zscore_update(&D->u.z, x);
    case DRIFT_PH: return (int)odl_ph_update(&D->u.ph, x);
    case DRIFT_ADWIN: return (int)odl_adwin_update(&D->u.adwin, x);
    default: return (int)odl_conf_update(&D->u.conf, x);
    }
}

int64_t odl_capi_drift_update_many(odl_capi_drift *D, const double *x, int64_t n, int32_t *out_status)
{
    if (!D || (!x && n > 0))
        return 0;
    int64_t alarms = 0;
    for (int64_t i = 0; i < n; i++) {
        int s = odl_capi_drift_update(D, x[i]);
        if (s == ODL_EVENT_DRIFT)
            alarms++;
        if (out_status)
            out_status[i] = s;
    }
    return alarms;
}

void odl_capi_drift_reset(odl_capi_drift *D)
{
    if (!D)
        return;
    switch (D->kind) {
    case DRIFT_ZSCORE: odl_zscore_reset(&D->u.z); break;
    case DRIFT_PH: odl_ph_reset(&D->u.ph); break;
    case DRIFT_ADWIN: odl_adwin_reset(&D->u.adwin); break;
    default: odl_conf_reset(&D->u.conf); break;
    }
}

int64_t odl_capi_drift_t(const odl_capi_drift *D)
{
    if (!D)
        return 0;
    switch (D->kind) {
    case DRIFT_ZSCORE: return D->u.z.t;
    case DRIFT_PH: return D->u.ph.t;
    case DRIFT_ADWIN: return D->u.adwin.t;
    default: return D->u.conf.t;
    }
}

int64_t odl_capi_drift_alarms(const odl_capi_drift *D)
{
    if (!D)
        return 0;
    switch (D->kind) {
    case DRIFT_ZSCORE: return D->u.z.alarms;
    case DRIFT_PH: return D->u.ph.alarms;
    case DRIFT_ADWIN: return D->u.adwin.alarms;
    default: return D->u.conf.alarms;
    }
}

size_t odl_capi_drift_state_json(const odl_capi_drift *D, char *buf, size_t cap)
{
    jbuf j = {buf, cap, 0};
    if (!D) {
        jb_printf(&j, "null");
        return jb_done(&j);
    }
    jb_printf(&j, "{\"kind\": \"%s\", \"t\": %lld, \"alarms\": %lld", drift_kind_names[D->kind],
              (long long)odl_capi_drift_t(D), (long long)odl_capi_drift_alarms(D));
    if (D->kind == DRIFT_ZSCORE) {
        const odl_zscore_drift *z = &D->u.z;
        jb_printf(&j, ", \"cfg\": {\"ref_n\": %d, \"alpha\": ", (int)z->cfg.ref_n);
        jb_float(&j, z->cfg.alpha);
        jb_printf(&j, ", \"z\": ");
        jb_float(&j, z->cfg.z);
        jb_printf(&j, ", \"min_run\": %d, \"check_var\": %d, \"z_var\": ", (int)z->cfg.min_run, (int)z->cfg.check_var);
        jb_float(&j, z->cfg.z_var);
        jb_printf(&j, "}, \"ready\": %d, \"mu\": ", (int)z->ready);
        jb_float(&j, z->mu);
        jb_printf(&j, ", \"sd\": ");
        jb_float(&j, z->sd);
        jb_printf(&j, ", \"z_mean\": ");
        jb_float(&j, z->z_mean);
        jb_printf(&j, ", \"z_var\": ");
        jb_float(&j, z->z_var);
    } else if (D->kind == DRIFT_PH) {
        const odl_ph_drift *p = &D->u.ph;
        jb_printf(&j, ", \"cfg\": {\"warmup\": %d, \"delta\": ", (int)p->cfg.warmup);
        jb_float(&j, p->cfg.delta);
        jb_printf(&j, ", \"lambda\": ");
        jb_float(&j, p->cfg.lambda);
        jb_printf(&j, ", \"alpha\": ");
        jb_float(&j, p->cfg.alpha);
        jb_printf(&j, "}, \"mean\": ");
        jb_float(&j, p->mean);
        jb_printf(&j, ", \"sigma\": ");
        jb_float(&j, p->sigma);
        jb_printf(&j, ", \"last_dir\": %d", (int)p->last_dir);
    } else if (D->kind == DRIFT_ADWIN) {
        const odl_adwin_drift *a = &D->u.adwin;
        jb_printf(&j, ", \"cfg\": {\"delta\": ");
        jb_float(&j, a->cfg.delta);
        jb_printf(&j, ", \"m\": %d, \"max_rows\": %d, \"clock\": %d, \"min_sub\": %d}, \"width\": %lld, "
                      "\"buckets\": %d, \"mean\": ",
                  (int)a->cfg.m, (int)a->cfg.max_rows, (int)a->cfg.clock, (int)a->cfg.min_sub,
                  (long long)odl_adwin_width(a), (int)odl_adwin_buckets(a));
        jb_float(&j, a->width ? odl_adwin_mean(a) : NAN);
    } else {
        const odl_conf_drift *c = &D->u.conf;
        jb_printf(&j, ", \"cfg\": {\"ref_n\": %d, \"alpha\": ", (int)c->cfg.ref_n);
        jb_float(&j, c->cfg.alpha);
        jb_printf(&j, ", \"z\": ");
        jb_float(&j, c->cfg.z);
        jb_printf(&j, ", \"min_run\": %d, \"two_sided\": %d}, \"ready\": %d, \"mu\": ", (int)c->cfg.min_run,
                  (int)c->cfg.two_sided, (int)c->ready);
        jb_float(&j, c->mu);
        jb_printf(&j, ", \"sd\": ");
        jb_float(&j, c->sd);
        jb_printf(&j, ", \"e\": ");
        jb_float(&j, c->e);
    }
    jb_printf(&j, "}");
    return jb_done(&j);
}

int odl_capi_sample_stats(const float *x, size_t n, float *mean, float *std)
{
    return (int)odl_drift_sample_stats(x, n, mean, std);
}

int odl_capi_sample_stats_many(const float *x, int32_t n, int32_t size, float *mean, float *std)
{
    if (!x || n < 0 || size <= 0)
        return ODL_ERR_ARG;
    for (int32_t i = 0; i < n; i++) {
        float m = 0, s = 0;
        odl_status st = odl_drift_sample_stats(x + (size_t)i * size, (size_t)size, &m, &s);
        if (st != ODL_OK)
            return (int)st;
        if (mean)
            mean[i] = m;
        if (std)
            std[i] = s;
    }
    return ODL_OK;
}

/* ---- datasets ----------------------------------------------------------------------------- */

struct odl_capi_data {
    odl_dataset ds;
};

odl_capi_data *odl_capi_data_load(const char *path, const char *split, const char *classes, int32_t limit,
                                  const char *shift, char *err, size_t errcap)
{
    clear_err(err, errcap);
    if (!path) {
        set_err(err, errcap, "data: no path");
        return NULL;
    }
    odl_diag d;
    odl_diag_clear(&d);
    odl_data_opts o = odl_data_opts_defaults();
    o.default_split = ODL_SPLIT_TRAIN;
    if (split && *split) {
        if (!strcmp(split, "train"))
            o.split = ODL_SPLIT_TRAIN;
        else if (!strcmp(split, "test"))
            o.split = ODL_SPLIT_TEST;
        else {
            set_err(err, errcap, "data: split '%s' is not train or test", split);
            return NULL;
        }
    }
    o.limit = limit > 0 ? limit : 0;
    odl_class_set *cs = NULL;
    odl_shift sh;
    memset(&sh, 0, sizeof sh);
    odl_status s = ODL_OK;
    if (classes && *classes) {
        cs = malloc(sizeof *cs);
        if (!cs) {
            set_err(err, errcap, "data: out of memory");
            return NULL;
        }
        s = odl_class_set_parse(classes, cs, &d);
        o.classes = cs;
    }
    if (s == ODL_OK && shift && *shift)
        s = odl_shift_parse(shift, &sh, &d);
    odl_capi_data *D = s == ODL_OK ? calloc(1, sizeof *D) : NULL;
    if (s == ODL_OK && !D)
        s = odl_fail(&d, ODL_ERR_NOMEM, "data: out of memory");
    if (s == ODL_OK)
        s = odl_data_load(path, &o, &D->ds, &d);
    free(cs);
    if (s != ODL_OK) {
        fail_diag(err, errcap, s, &d);
        free(D);
        return NULL;
    }
    odl_dataset_shift(&D->ds, &sh);
    return D;
}

void odl_capi_data_free(odl_capi_data *D)
{
    if (!D)
        return;
    odl_dataset_free(&D->ds);
    free(D);
}

int odl_capi_data_shape(const odl_capi_data *D, int32_t out[5])
{
    if (!D || !out)
        return ODL_ERR_ARG;
    out[0] = D->ds.n;
    out[1] = D->ds.c;
    out[2] = D->ds.h;
    out[3] = D->ds.w;
    out[4] = D->ds.n_classes;
    return ODL_OK;
}

int odl_capi_data_copy(const odl_capi_data *D, float *x, int32_t *y)
{
    if (!D)
        return ODL_ERR_ARG;
    const size_t in = (size_t)D->ds.c * D->ds.h * D->ds.w;
    if (x && D->ds.n)
        memcpy(x, D->ds.x, sizeof(float) * in * (size_t)D->ds.n);
    if (y && D->ds.n)
        memcpy(y, D->ds.y, sizeof(int32_t) * (size_t)D->ds.n);
    return ODL_OK;
}

int odl_capi_shift(const char *spec, float *x, int32_t n, int32_t c, int32_t h, int32_t w, char *err,
                   size_t errcap)
{
    clear_err(err, errcap);
    if (!x || n < 0 || c <= 0 || h <= 0 || w <= 0) {
        set_err(err, errcap, "shift: bad arguments");
        return ODL_ERR_ARG;
    }
    odl_diag d;
    odl_diag_clear(&d);
    odl_shift sh;
    odl_status s = odl_shift_parse(spec, &sh, &d);
    if (s != ODL_OK)
        return fail_diag(err, errcap, s, &d);
    odl_shift_apply(&sh, x, n, c, h, w);
    return ODL_OK;
}

/* ---- building and training models (fit/evaluate in bindings) -------------- */

odl_capi_model *odl_capi_model_new(const char *arch, int32_t c, int32_t h, int32_t w, int32_t n_classes,
                                   uint64_t seed, char *err, size_t errcap)
{
    clear_err(err, errcap);
    if (!arch || c <= 0 || h <= 0 || w <= 0 || n_classes < 2 || n_classes > 65536) {
        set_err(err, errcap, "model new: needs an architecture, a positive input shape and 2..65536 classes "
                             "(got %dx%dx%d, %d classes)", (int)c, (int)h, (int)w, (int)n_classes);
        return NULL;
    }
    odl_diag d;
    odl_diag_clear(&d);
    /* the description's node storage: edge-cnn's or an MLP's of up to 16 hidden widths
       (model_make copies the nodes into the model) */
    odl_node_desc nodes[ODL_MLP_NODES(16) > ODL_EDGE_CNN_NODES ? ODL_MLP_NODES(16) : ODL_EDGE_CNN_NODES];
    odl_model_desc desc;
    odl_status s = odl_desc_init(&desc, nodes, (int32_t)(sizeof nodes / sizeof nodes[0]), c, h, w);
    if (s != ODL_OK) {
        set_err(err, errcap, "model new: input %dx%dx%d: %s", (int)c, (int)h, (int)w, odl_status_str(s));
        return NULL;
    }
    if (!strcmp(arch, "edge-cnn")) {
        s = odl_desc_edge_cnn(&desc, c, h, w, n_classes);
    } else if (!strncmp(arch, "mlp:", 4)) {
        int32_t hidden[16];
        int32_t nh = 0;
        const char *p = arch + 4;
        while (*p) {
            char *e;
            errno = 0;
            long v = strtol(p, &e, 10);
            if (errno || e == p || v <= 0 || v > 65536 || nh == 16 || (*e && *e != ',')) {
                set_err(err, errcap, "model new: '%s' is not mlp:H1,H2,... (1..16 widths of 1..65536)", arch);
                return NULL;
            }
            hidden[nh++] = (int32_t)v;
            p = *e ? e + 1 : e;
        }
        s = odl_desc_mlp(&desc, c, h, w, hidden, nh, n_classes);
    } else {
        set_err(err, errcap, "model new: unknown architecture '%s' (edge-cnn or mlp:H1,H2,...)", arch);
        return NULL;
    }
    if (s != ODL_OK) {
        set_err(err, errcap, "model new: cannot describe %s for %dx%dx%d input: %s", arch, (int)c, (int)h, (int)w,
                odl_status_str(s));
        return NULL;
    }
    odl_capi_model *m = model_make(&desc, &d);
    if (!m) {
        fail_diag(err, errcap, d.status != ODL_OK ? d.status : ODL_ERR_NOMEM, &d);
        return NULL;
    }
    odl_rng rng;
    odl_rng_seed(&rng, seed, 0);
    s = odl_model_init_params(m->m, &rng);
    if (s != ODL_OK) {
        model_unref(m);
        set_err(err, errcap, "model new: %s", odl_status_str(s));
        return NULL;
    }
    return m;
}

int odl_capi_model_freeze(odl_capi_model *m, int32_t boundary, char *err, size_t errcap)
{
    clear_err(err, errcap);
    if (!m || boundary < 0 || boundary >= m->desc.n_layers) {
        set_err(err, errcap, "freeze: layer %d is outside 0..%d (the first layer left trainable)", (int)boundary,
                m ? (int)m->desc.n_layers - 1 : 0);
        return ODL_ERR_ARG;
    }
    return (int)odl_desc_freeze_below(&m->desc, boundary);
}

int32_t odl_capi_model_first_trainable(const odl_capi_model *m)
{
    if (!m)
        return -1;
    for (int32_t i = 0; i < m->desc.n_layers; i++)
        if (m->desc.layers[i].trainable)
            return i;
    return m->desc.n_layers;
}

size_t odl_capi_model_plan_json(const odl_capi_model *m, int32_t batch, int train, char *buf, size_t cap)
{
    jbuf j = {buf, cap, 0};
    odl_model_cfg cfg = odl_model_cfg_defaults();
    cfg.mode = train ? ODL_MODE_TRAIN : ODL_MODE_INFER;
    cfg.max_batch = batch;
    odl_mem_plan plan;
    odl_diag d;
    odl_diag_clear(&d);
    if (!m || batch <= 0 || odl_model_plan(&m->desc, &cfg, &plan, &d) != ODL_OK) {
        jb_printf(&j, "null");
        return jb_done(&j);
    }
    jb_printf(&j, "{\"mode\": \"%s\", \"max_batch\": %d, \"total\": %zu", train ? "train" : "infer", (int)batch,
              plan.total);
    for (int k = 0; k < ODL_MEM_KINDS; k++)
        jb_printf(&j, ", \"%s\": %zu", odl_mem_kind_name((odl_mem_kind)k), plan.bytes[k]);
    jb_printf(&j, "}");
    return jb_done(&j);
}

struct odl_capi_trainer {
    odl_capi_model *src; /* referenced: parameters are copied back after each epoch */
    void *arena_buf;
    odl_model *m;        /* TRAIN mode, the source's description (its freeze included) */
    int32_t batch;
    odl_rng rng;
    float *xb;
    int32_t *yb;
    int32_t *order;
    int32_t order_n;
};

void odl_capi_trainer_free(odl_capi_trainer *t)
{
    if (!t)
        return;
    model_unref(t->src);
    free(t->arena_buf);
    free(t->xb);
    free(t->yb);
    free(t->order);
    free(t);
}

odl_capi_trainer *odl_capi_trainer_new(odl_capi_model *m, int32_t batch, float lr, uint64_t seed, char *err,
                                       size_t errcap)
{
    clear_err(err, errcap);
    if (!m || batch <= 0 || batch > 4096 || !(lr > 0.0f) || !isfinite(lr)) {
        set_err(err, errcap, "trainer: batch must be 1..4096 and lr a positive number (got batch %d, lr %g)",
                (int)batch, (double)lr);
        return NULL;
    }
    odl_capi_trainer *t = calloc(1, sizeof *t);
    if (!t) {
        set_err(err, errcap, "trainer: out of memory");
        return NULL;
    }
    m->refs++;
    t->src = m;
    t->batch = batch;
    odl_rng_seed(&t->rng, seed, 1);
    odl_diag d;
    odl_diag_clear(&d);
    odl_model_cfg cfg = odl_model_cfg_defaults();
    cfg.mode = ODL_MODE_TRAIN;
    cfg.max_batch = batch;
    cfg.optim.lr = lr;
    odl_mem_plan plan;
    odl_status s = odl_model_plan(&m->desc, &cfg, &plan, &d);
    size_t in = (size_t)m->desc.in_c * (size_t)m->desc.in_h * (size_t)m->desc.in_w;
    if (s == ODL_OK) {
        t->arena_buf = malloc(plan.total + ODL_ALIGN);
        t->xb = malloc(sizeof(float) * in * (size_t)batch);
        t->yb = malloc(sizeof(int32_t) * (size_t)batch);
        if (!t->arena_buf || !t->xb || !t->yb)
            s = odl_fail(&d, ODL_ERR_NOMEM, "trainer: out of memory (%zu bytes)", plan.total);
    }
    odl_arena a;
    if (s == ODL_OK)
        s = odl_arena_init(&a, t->arena_buf, plan.total + ODL_ALIGN);
    if (s == ODL_OK)
        s = odl_model_init(&t->m, &m->desc, &cfg, &a, &d);
    if (s == ODL_OK)
        s = odl_model_transfer_params(t->m, m->m, &t->rng, &d);
    if (s != ODL_OK) {
        fail_diag(err, errcap, s, &d);
        odl_capi_trainer_free(t);
        return NULL;
    }
    return t;
}

int odl_capi_trainer_epoch(odl_capi_trainer *t, const float *x, const int32_t *y, int32_t n, float *out_loss,
                           float *out_acc, char *err, size_t errcap)
{
    clear_err(err, errcap);
    if (!t || !x || !y || n <= 0) {
        set_err(err, errcap, "fit: bad arguments (n %d)", (int)n);
        return ODL_ERR_ARG;
    }
    const int32_t classes = odl_model_n_classes(t->m);
    for (int32_t i = 0; i < n; i++)
        if (y[i] < 0 || y[i] >= classes) {
            set_err(err, errcap, "fit: label %d of sample %d is outside 0..%d (the model's classes)", (int)y[i],
                    (int)i, (int)classes - 1);
            return ODL_ERR_ARG;
        }
    if (n > t->order_n) {
        int32_t *o = realloc(t->order, sizeof(int32_t) * (size_t)n);
        if (!o) {
            set_err(err, errcap, "fit: out of memory");
            return ODL_ERR_NOMEM;
        }
        t->order = o;
        t->order_n = n;
    }
    for (int32_t i = 0; i < n; i++)
        t->order[i] = i;
    for (int32_t i = n - 1; i > 0; i--) { /* Fisher-Yates from the trainer's generator */
        int32_t k = (int32_t)odl_rng_below(&t->rng, (uint32_t)i + 1);
        int32_t tmp = t->order[i];
        t->order[i] = t->order[k];
        t->order[k] = tmp;
    }
    const size_t in = (size_t)t->src->desc.in_c * (size_t)t->src->desc.in_h * (size_t)t->src->desc.in_w;
    odl_diag d;
    odl_diag_clear(&d);
    double loss_sum = 0.0;
    int64_t steps = 0;
    for (int32_t b = 0; b < n; b += t->batch) {
        int32_t nb = n - b < t->batch ? n - b : t->batch;
        for (int32_t i = 0; i < nb; i++) {
            memcpy(t->xb + (size_t)i * in, x + (size_t)t->order[b + i] * in, sizeof(float) * in);
            t->yb[i] = y[t->order[b + i]];
        }
        float loss = 0.0f;
        odl_status s = odl_model_train_step(t->m, 0, t->xb, t->yb, nb, &t->rng, &loss, &d);
        if (s != ODL_OK)
            return fail_diag(err, errcap, s, &d);
        loss_sum += loss;
        steps++;
    }
    odl_status s = odl_model_transfer_params(t->src->m, t->m, &t->rng, &d);
    if (s != ODL_OK)
        return fail_diag(err, errcap, s, &d);
    if (out_loss)
        *out_loss = steps ? (float)(loss_sum / (double)steps) : 0.0f;
    if (out_acc) {
        int64_t right = 0;
        for (int32_t b = 0; b < n; b += CAPI_MAX_BATCH) {
            int32_t nb = n - b < CAPI_MAX_BATCH ? n - b : CAPI_MAX_BATCH;
            int32_t cls[CAPI_MAX_BATCH];
            int r = odl_capi_model_predict(t->src, x + (size_t)b * in, nb, cls, NULL, NULL, err, errcap);
            if (r < 0)
                return r;
            for (int32_t i = 0; i < nb; i++)
                right += cls[i] == y[b + i];
        }
        *out_acc = (float)((double)right / (double)n);
    }
    return ODL_OK;
}
