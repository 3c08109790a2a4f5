/* odl drift: runs every drift detector of odl/drift.h over a data stream (or
 * over synthetic streams) and reports, per detector, the delay of the first
 * alarm after a known change point and the false alarms per 10,000 samples
 * before it, beside an always-fire and a never-fire detector.
 *
 * Real stream: the samples of a dataset in file order, the first --change-at
 * of them unchanged and the rest transformed by --shift (docs/protocol.md's S1:
 * gain:0.8,0.1). Monitored per sample: the mean and the standard deviation
 * of its values (input statistics), and with --model the confidence of the
 * prediction (max softmax probability).
 *
 * Synthetic streams: 0.5 + 0.1·N(0,1) with a change at the middle (an abrupt
 * mean drop of 1 sd and of 0.5 sd, a linear drop of 1 sd over 2,000 values,
 * a doubled sd), several seeds each. Everything is deterministic. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "odl/drift.h"
#include "odl/layers.h"

static void help(FILE *f)
{
    fputs("usage: odl drift --data PATH [--model MODEL.odl] [options]\n"
          "       odl drift --synthetic [options]\n"
          "\n"
          "Runs the drift detectors (z-score, Page-Hinkley, ADWIN, confidence EWMA)\n"
          "and an always-fire and a never-fire detector over a stream; reports the\n"
          "delay of the first alarm after the change and false alarms per 10,000\n"
          "samples before it.\n"
          "\n"
          "  --data PATH       the stream: a directory with MNIST-style IDX files,\n"
          "                    an IDX images file, or a CSV file (samples in file order)\n"
          "  --model M.odl     also monitor the model's confidence (max softmax prob)\n"
          "  --split S         train | test                     (default test)\n"
          "  --shape CxHxW     input shape for CSV data\n"
          "  --shift S         gain:A,B or translate:DX,DY applied from --change-at on\n"
          "                    (default none: a plain stream, false alarms only)\n"
          "  --change-at N     index of the first shifted sample (default 2000)\n"
          "  --limit N         use the first N samples only     (default all)\n"
          "  --synthetic       synthetic streams instead of --data (no model)\n"
          "  --seeds N         synthetic: seeds per stream      (default 10)\n"
          "  --ref N           reference window of the z-score and confidence\n"
          "                    detectors                        (default 500)\n"
          "  --z Z             their threshold in sd            (default 4)\n"
          "  --alpha A         their EWMA weight                (default 0.05)\n"
          "  --ph-lambda L     Page-Hinkley threshold in sd     (default 25)\n"
          "  --ph-delta D      Page-Hinkley allowance in sd     (default 0.25)\n"
          "  --adwin-delta D   ADWIN confidence                 (default 0.002)\n"
          "  --json            machine-readable output\n"
          "\n"
          "Other settings are the library defaults (docs/drift.md).\n",
          f);
}

/* ---- detectors behind one interface ------------------------------------- */

typedef enum { D_ZSCORE, D_PH, D_ADWIN, D_CONF, D_ALWAYS, D_NEVER } det_kind;
static const char *const det_names[] = {"zscore", "page-hinkley", "adwin", "conf-ewma", "always-fire", "never-fire"};

typedef struct det_cfgs {
    odl_zscore_cfg z;
    odl_ph_cfg ph;
    odl_adwin_cfg ad;
    odl_conf_cfg cf;
} det_cfgs;

typedef struct det {
    det_kind kind;
    union {
        odl_zscore_drift z;
        odl_ph_drift ph;
        odl_adwin_drift ad;
        odl_conf_drift cf;
    } u;
} det;

static odl_status det_init(det *d, det_kind k, const det_cfgs *c, odl_diag *dg)
{
    memset(d, 0, sizeof *d);
    d->kind = k;
    switch (k) {
    case D_ZSCORE: return odl_zscore_init(&d->u.z, &c->z, dg);
    case D_PH: return odl_ph_init(&d->u.ph, &c->ph, dg);
    case D_ADWIN: return odl_adwin_init(&d->u.ad, &c->ad, dg);
    case D_CONF: return odl_conf_init(&d->u.cf, &c->cf, dg);
    default: return ODL_OK;
    }
}

static odl_status det_update(det *d, double x)
{
    switch (d->kind) {
    case D_ZSCORE: return odl_zscore_update(&d->u.z, x);
    case D_PH: return odl_ph_update(&d->u.ph, x);
    case D_ADWIN: return odl_adwin_update(&d->u.ad, x);
    case D_CONF: return odl_conf_update(&d->u.cf, x);
    case D_ALWAYS: return ODL_EVENT_DRIFT;
    default: return ODL_OK;
    }
}

typedef struct run_result {
    int64_t before;      /* alarms at t < t0 */
    int64_t after;       /* alarms at t >= t0 */
    int64_t first_after; /* index of the first alarm at t >= t0, -1 if none */
} run_result;

/* Feeds v[0..n) to a fresh detector; t0 = n for a stream without change. */
static odl_status run_det(det_kind k, const det_cfgs *c, const double *v, int64_t n, int64_t t0, run_result *r)
{
    det d;
    odl_diag dg;
    odl_diag_clear(&dg);
    odl_status s = det_init(&d, k, c, &dg);
    if (s != ODL_OK) {
        cli_fail("drift", s, &dg);
        return s;
    }
    memset(r, 0, sizeof *r);
    r->first_after = -1;
    for (int64_t t = 0; t < n; t++) {
        s = det_update(&d, v[t]);
        if (s < 0) {
            cli_error("drift: %s: value %lld (%g): %s", det_names[k], (long long)t, v[t], odl_status_str(s));
            return s;
        }
        if (s != ODL_EVENT_DRIFT)
            continue;
        if (t < t0) {
            r->before++;
        } else {
            if (r->first_after < 0)
                r->first_after = t;
            r->after++;
        }
    }
    return ODL_OK;
}

/* ---- synthetic streams --------------------------------------------------- */

typedef enum { SY_ABRUPT, SY_ABRUPT_SMALL, SY_GRADUAL, SY_VARIANCE, SY_KINDS } sy_kind;
static const char *const sy_names[] = {"abrupt -1 sd", "abrupt -0.5 sd", "gradual -1 sd over 2000",
                                       "variance x4 (sd x2)"};

#define SY_LEN 20000
#define SY_T0 10000

static void sy_stream(sy_kind k, uint64_t seed, double *v)
{
    odl_rng r;
    odl_rng_seed(&r, seed, 1000 + (uint64_t)k);
    for (int64_t t = 0; t < SY_LEN; t++) {
        const double n = (double)odl_rng_normal(&r);
        double mu = 0.5, sd = 0.1;
        if (t >= SY_T0) {
            switch (k) {
            case SY_ABRUPT: mu -= 0.1; break;
            case SY_ABRUPT_SMALL: mu -= 0.05; break;
            case SY_GRADUAL: {
                const double f = (double)(t - SY_T0) / 2000.0;
                mu -= 0.1 * (f < 1.0 ? f : 1.0);
                break;
            }
            default: sd = 0.2; break;
            }
        }
        v[t] = mu + sd * n;
    }
}

static int cmp_i64(const void *a, const void *b)
{
    const int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int run_synthetic(const det_cfgs *c, int32_t seeds, int json)
{
    static const det_kind kinds[] = {D_ZSCORE, D_PH, D_ADWIN, D_CONF, D_ALWAYS, D_NEVER};
    const int nk = (int)(sizeof kinds / sizeof kinds[0]);
    double *v = malloc(sizeof(double) * SY_LEN);
    int64_t *delays = malloc(sizeof(int64_t) * (size_t)seeds);
    if (!v || !delays) {
        free(v);
        free(delays);
        return cli_error("out of memory");
    }
    if (json)
        printf("{\"synthetic\": true, \"length\": %d, \"change_at\": %d, \"seeds\": %d, \"base\": \"0.5 + 0.1 N(0,1)\", "
               "\"streams\": [",
               SY_LEN, SY_T0, (int)seeds);
    else
        printf("synthetic streams: 0.5 + 0.1 N(0,1), %d values, change at %d, %d seeds (1..%d)\n", SY_LEN, SY_T0,
               (int)seeds, (int)seeds);
    int rc = 0;
    for (int sk = 0; sk < SY_KINDS && !rc; sk++) {
        if (json)
            printf("%s{\"stream\": \"%s\", \"detectors\": [", sk ? ", " : "", sy_names[sk]);
        else
            printf("\nstream: %s\n  %-14s %9s %11s %13s %10s %18s\n", sy_names[sk], "detector", "detected",
                   "mean delay", "median delay", "max delay", "false alarms/10k");
        for (int di = 0; di < nk && !rc; di++) {
            int32_t detected = 0;
            int64_t before = 0;
            double sum = 0.0;
            for (int32_t s = 0; s < seeds; s++) {
                run_result r;
                sy_stream((sy_kind)sk, (uint64_t)s + 1, v);
                if (run_det(kinds[di], c, v, SY_LEN, SY_T0, &r) != ODL_OK) {
                    rc = 1;
                    break;
                }
                before += r.before;
                if (r.first_after >= 0) {
                    delays[detected++] = r.first_after - SY_T0;
                    sum += (double)(r.first_after - SY_T0);
                }
            }
            if (rc)
                break;
            qsort(delays, (size_t)detected, sizeof delays[0], cmp_i64);
            const double fa = 1e4 * (double)before / ((double)SY_T0 * seeds);
            const double med = detected == 0 ? 0.0
                               : detected % 2 ? (double)delays[detected / 2]
                                              : 0.5 * (double)(delays[detected / 2 - 1] + delays[detected / 2]);
            if (json) {
                printf("%s{\"detector\": \"%s\", \"detected\": %d, \"runs\": %d, ", di ? ", " : "",
                       det_names[kinds[di]], (int)detected, (int)seeds);
                if (detected)
                    printf("\"mean_delay\": %.1f, \"median_delay\": %.1f, \"max_delay\": %lld, ",
                           sum / detected, med, (long long)delays[detected - 1]);
                else
                    printf("\"mean_delay\": null, \"median_delay\": null, \"max_delay\": null, ");
                printf("\"false_alarms_per_10k\": %.3f}", fa);
            } else if (detected) {
                printf("  %-14s %5d/%-3d %11.1f %13.1f %10lld %18.3f\n", det_names[kinds[di]], (int)detected,
                       (int)seeds, sum / detected, med, (long long)delays[detected - 1], fa);
            } else {
                printf("  %-14s %5d/%-3d %11s %13s %10s %18.3f\n", det_names[kinds[di]], 0, (int)seeds, "-", "-",
                       "-", fa);
            }
        }
        if (json)
            printf("]}");
    }
    if (json && !rc)
        printf("]}\n");
    free(v);
    free(delays);
    return rc;
}

/* ---- a real stream ------------------------------------------------------ */

/* Max softmax probability of every sample (and accuracy before/after t0). */
static int confidences(odl_model *m, const odl_dataset *ds, int32_t batch, int64_t t0, double *conf,
                       int64_t correct[2], int64_t total[2])
{
    const int32_t C = odl_model_n_classes(m);
    const size_t in = (size_t)ds->c * ds->h * ds->w;
    float *p = malloc(sizeof(float) * (size_t)C);
    if (!p)
        return cli_error("out of memory");
    odl_diag d;
    odl_diag_clear(&d);
    for (int32_t start = 0; start < ds->n; start += batch) {
        const int32_t n = ds->n - start < batch ? ds->n - start : batch;
        const float *out;
        odl_status s = odl_model_forward(m, 0, ds->x + (size_t)start * in, n, &out, &d);
        if (s != ODL_OK) {
            free(p);
            return cli_fail("drift", s, &d);
        }
        for (int32_t k = 0; k < n; k++) {
            const float *z = out + (size_t)k * C;
            odl_softmax_f32(C, z, p);
            int32_t best = 0;
            for (int32_t j = 1; j < C; j++)
                if (p[j] > p[best])
                    best = j;
            const int64_t i = (int64_t)start + k;
            conf[i] = (double)p[best];
            const int side = i >= t0;
            total[side]++;
            correct[side] += best == ds->y[i];
        }
    }
    free(p);
    return 0;
}

typedef struct row {
    det_kind kind;
    const char *stat;
    const double *v;
} row;

int cmd_drift(int argc, char **argv)
{
    const char *model = NULL, *data = NULL, *shape = NULL, *shift = NULL, *v = NULL;
    odl_split split = ODL_SPLIT_TEST;
    int32_t limit = 0, change_at = 2000, seeds = 10;
    int json = 0, synthetic = 0, change_given = 0;
    det_cfgs c;
    c.z = odl_zscore_cfg_defaults();
    c.ph = odl_ph_cfg_defaults();
    c.ad = odl_adwin_cfg_defaults();
    c.cf = odl_conf_cfg_defaults();
    cli_args a = {argc, argv, 1, "drift"};
    for (; a.i < argc; a.i++) {
        int r;
        float f;
        int32_t iv;
        if (cli_flag(&a, "--help") || cli_flag(&a, "-h")) {
            help(stdout);
            return 0;
        } else if (cli_flag(&a, "--json")) {
            json = 1;
        } else if (cli_flag(&a, "--synthetic")) {
            synthetic = 1;
        } else if ((r = cli_opt(&a, "--data", &data)) || (r = cli_opt(&a, "--model", &model)) ||
                   (r = cli_opt(&a, "--shape", &shape)) || (r = cli_opt(&a, "--shift", &shift))) {
            if (r < 0) return 2;
        } else if ((r = cli_opt(&a, "--split", &v))) {
            if (r < 0 || cli_parse_split(v, &split)) return 2;
        } else if ((r = cli_opt(&a, "--change-at", &v))) {
            if (r < 0 || cli_parse_int("--change-at", v, 1, 2147483647L, &change_at)) return 2;
            change_given = 1;
        } else if ((r = cli_opt(&a, "--limit", &v))) {
            if (r < 0 || cli_parse_int("--limit", v, 1, 2147483647L, &limit)) return 2;
        } else if ((r = cli_opt(&a, "--seeds", &v))) {
            if (r < 0 || cli_parse_int("--seeds", v, 1, 10000, &seeds)) return 2;
        } else if ((r = cli_opt(&a, "--ref", &v))) {
            if (r < 0 || cli_parse_int("--ref", v, 2, 10000000, &iv)) return 2;
            c.z.ref_n = c.cf.ref_n = iv;
        } else if ((r = cli_opt(&a, "--z", &v))) {
            if (r < 0 || cli_parse_float("--z", v, 0.01, 1000.0, &f)) return 2;
            c.z.z = c.cf.z = f;
        } else if ((r = cli_opt(&a, "--alpha", &v))) {
            if (r < 0 || cli_parse_float("--alpha", v, 1e-6, 1.0, &f)) return 2;
            c.z.alpha = c.cf.alpha = f;
        } else if ((r = cli_opt(&a, "--ph-lambda", &v))) {
            if (r < 0 || cli_parse_float("--ph-lambda", v, 0.01, 1e6, &c.ph.lambda)) return 2;
        } else if ((r = cli_opt(&a, "--ph-delta", &v))) {
            if (r < 0 || cli_parse_float("--ph-delta", v, 0.0, 1e3, &c.ph.delta)) return 2;
        } else if ((r = cli_opt(&a, "--adwin-delta", &v))) {
            if (r < 0 || cli_parse_float("--adwin-delta", v, 1e-12, 0.5, &c.ad.delta)) return 2;
        } else {
            cli_error("drift: unknown argument '%s' (see odl drift --help)", argv[a.i]);
            return 2;
        }
    }
    if (synthetic) {
        if (data || model || shift) {
            cli_error("drift: --synthetic takes no --data, --model or --shift");
            return 2;
        }
        return run_synthetic(&c, seeds, json);
    }
    if (!data) {
        cli_error("drift: --data (or --synthetic) is required (see odl drift --help)");
        return 2;
    }
    odl_shift sh;
    odl_diag sd;
    odl_diag_clear(&sd);
    if (odl_shift_parse(shift, &sh, &sd) != ODL_OK) {
        cli_error("%s", sd.msg);
        return 2;
    }
    if (change_given && sh.kind == 0) {
        cli_error("drift: --change-at needs a --shift (without one the stream has no change)");
        return 2;
    }
    cli_model cm;
    memset(&cm, 0, sizeof cm);
    odl_model_cfg mcfg = odl_model_cfg_defaults();
    const int32_t batch = 256;
    mcfg.max_batch = batch;
    if (model && cli_model_load(model, &mcfg, &cm))
        return 1;
    odl_dataset ds;
    if (cli_load_data(data, split, ODL_SPLIT_TEST, NULL, shape, limit, &ds)) {
        if (model)
            cli_model_free(&cm);
        return 1;
    }
    int rc = 0;
    double *stats = NULL;
    const int64_t n = ds.n;
    const int64_t t0 = sh.kind ? change_at : n;
    if (sh.kind && change_at >= ds.n) {
        rc = cli_error("drift: --change-at %d is not before the end of the stream (%d samples)", (int)change_at,
                       (int)ds.n);
        goto done;
    }
    if (model) {
        const odl_model_desc *md = &cm.desc;
        const size_t want = (size_t)md->in_c * md->in_h * md->in_w;
        if (!shape && (ds.c != md->in_c || ds.h != md->in_h || ds.w != md->in_w) &&
            (size_t)ds.c * ds.h * ds.w == want) {
            odl_diag d;
            odl_dataset_reshape(&ds, md->in_c, md->in_h, md->in_w, &d);
        }
        if ((size_t)ds.c * ds.h * ds.w != want) {
            rc = cli_error("data samples have %d×%d×%d values; the model takes %d×%d×%d", (int)ds.c, (int)ds.h,
                           (int)ds.w, (int)md->in_c, (int)md->in_h, (int)md->in_w);
            goto done;
        }
    }
    const size_t in = (size_t)ds.c * ds.h * ds.w;
    if (sh.kind)
        odl_shift_apply(&sh, ds.x + (size_t)t0 * in, (int32_t)(n - t0), ds.c, ds.h, ds.w);
    stats = malloc(sizeof(double) * (size_t)n * 3);
    if (!stats) {
        rc = cli_error("out of memory");
        goto done;
    }
    double *smean = stats, *sstd = stats + n, *sconf = stats + 2 * n;
    for (int64_t i = 0; i < n; i++) {
        float mu, sdv;
        odl_status s = odl_drift_sample_stats(ds.x + (size_t)i * in, in, &mu, &sdv);
        if (s != ODL_OK) {
            rc = cli_error("drift: sample %lld: %s", (long long)i, odl_status_str(s));
            goto done;
        }
        smean[i] = mu;
        sstd[i] = sdv;
    }
    int64_t correct[2] = {0, 0}, total[2] = {0, 0};
    if (model) {
        const int32_t C = odl_model_n_classes(cm.m);
        for (int64_t i = 0; i < n; i++)
            if (ds.y[i] < 0 || ds.y[i] >= C) {
                rc = cli_error("label %d (sample %lld) is outside the model's %d classes", (int)ds.y[i],
                               (long long)i, (int)C);
                goto done;
            }
        if ((rc = confidences(cm.m, &ds, batch, t0, sconf, correct, total)))
            goto done;
    }
    row rows[16];
    int nr = 0;
    const char *stat_names[3] = {"mean", "std", "confidence"};
    const double *stat_v[3] = {smean, sstd, sconf};
    for (int st = 0; st < (model ? 3 : 2); st++) {
        rows[nr++] = (row){D_ZSCORE, stat_names[st], stat_v[st]};
        rows[nr++] = (row){D_PH, stat_names[st], stat_v[st]};
        rows[nr++] = (row){D_ADWIN, stat_names[st], stat_v[st]};
    }
    if (model)
        rows[nr++] = (row){D_CONF, "confidence", sconf};
    rows[nr++] = (row){D_ALWAYS, "-", smean};
    rows[nr++] = (row){D_NEVER, "-", smean};

    if (json) {
        printf("{\"data\": ");
        json_str(stdout, data);
        printf(", \"split\": \"%s\", \"samples\": %lld, \"shift\": ", split == ODL_SPLIT_TRAIN ? "train" : "test",
               (long long)n);
        if (sh.kind) {
            json_str(stdout, shift);
            printf(", \"change_at\": %lld", (long long)t0);
        } else {
            printf("null, \"change_at\": null");
        }
        printf(", \"model\": ");
        if (model) {
            json_str(stdout, model);
            printf(", \"accuracy_before\": %.6f", total[0] ? (double)correct[0] / (double)total[0] : 0.0);
            if (total[1])
                printf(", \"accuracy_after\": %.6f", (double)correct[1] / (double)total[1]);
        } else {
            printf("null");
        }
        printf(", \"detectors\": [");
    } else {
        printf("stream: %s (%s split), %lld samples", data, split == ODL_SPLIT_TRAIN ? "train" : "test",
               (long long)n);
        if (sh.kind)
            printf("; %s from sample %lld on\n", shift, (long long)t0);
        else
            printf("; no shift (false alarms only)\n");
        if (model) {
            printf("model: %s, accuracy %.2f%% before", model,
                   total[0] ? 100.0 * (double)correct[0] / (double)total[0] : 0.0);
            if (total[1])
                printf(", %.2f%% after the change", 100.0 * (double)correct[1] / (double)total[1]);
            printf("\n");
        }
        printf("statistics per sample: mean and std of its values%s\n\n",
               model ? ", max softmax probability (confidence)" : "");
        printf("%-13s %-11s %13s %16s %12s %8s %12s\n", "detector", "statistic", "alarms before",
               "false alarms/10k", "first after", "delay", "alarms after");
    }
    for (int i = 0; i < nr; i++) {
        run_result r;
        if (run_det(rows[i].kind, &c, rows[i].v, n, t0, &r) != ODL_OK) {
            rc = 1;
            break;
        }
        const double fa = t0 > 0 ? 1e4 * (double)r.before / (double)t0 : 0.0;
        if (json) {
            printf("%s{\"detector\": \"%s\", \"statistic\": \"%s\", \"alarms_before\": %lld, "
                   "\"false_alarms_per_10k\": %.3f, ",
                   i ? ", " : "", det_names[rows[i].kind], rows[i].stat, (long long)r.before, fa);
            if (sh.kind && r.first_after >= 0)
                printf("\"detected\": true, \"first_alarm_after\": %lld, \"delay\": %lld, ", (long long)r.first_after,
                       (long long)(r.first_after - t0));
            else
                printf("\"detected\": false, \"first_alarm_after\": null, \"delay\": null, ");
            printf("\"alarms_after\": %lld}", (long long)r.after);
        } else {
            char first[32] = "-", delay[32] = "-", after[32] = "-";
            if (sh.kind) {
                snprintf(after, sizeof after, "%lld", (long long)r.after);
                if (r.first_after >= 0) {
                    snprintf(first, sizeof first, "%lld", (long long)r.first_after);
                    snprintf(delay, sizeof delay, "%lld", (long long)(r.first_after - t0));
                } else {
                    snprintf(first, sizeof first, "none");
                }
            }
            printf("%-13s %-11s %13lld %16.2f %12s %8s %12s\n", det_names[rows[i].kind], rows[i].stat,
                   (long long)r.before, fa, first, delay, after);
        }
    }
    if (json && !rc)
        printf("]}\n");
done:
    free(stats);
    odl_dataset_free(&ds);
    if (model)
        cli_model_free(&cm);
    return rc;
}
