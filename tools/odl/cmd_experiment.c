/* odl experiment: the standard scenarios of docs/protocol.md, end to end. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "learn.h"
#include "report.h"

static void help(FILE *f)
{
    fputs("usage: odl experiment s1|s2|s3|all [options]\n"
          "\n"
          "Runs the standard experiments of docs/protocol.md on Fashion-MNIST: trains (or\n"
          "reuses) the base models, adapts with every strategy, prints mean ± std over\n"
          "seeds with each strategy's trainable parameters and planned bytes.\n"
          "\n"
          "  --data DIR      MNIST-style IDX directory  (default /usr/share/datasets/fashion-mnist)\n"
          "  --work DIR      where base models are kept (default odl-work)\n"
          "  --base FILE     use this .odl model as the base instead of training edge-cnn\n"
          "                  (an imported ONNX/TFLite model, or any odl model): its input\n"
          "                  must be the data's sample shape, its outputs the scenario's\n"
          "                  base classes (s1: 10, s2: 8, s3: 4)\n"
          "  --init I        base init: torch (PyTorch's default, as the protocol's\n"
          "                  reference) | he (odl train's default)  (default torch)\n"
          "  --seeds N       seeds per strategy         (default 3)\n"
          "  --json FILE     also write every result as JSON\n"
          "  --report FILE   also write an HTML report (charts; see odl report)\n"
          "  --add SPEC      also run this strategy (repeatable), KIND[:OPT,...], e.g.\n"
          "                  replay:size=800,balanced,int8,unfreeze=1  (options: size=N\n"
          "                  balanced int8 herding unfreeze=K lrdecay=G gradual=E adapter=R\n"
          "                  mix=R der=W match=N augment=K lambda=X decay=X lwf=W T=X epochs=N lr=X\n"
          "                  batch=B shrink=X)\n"
          "  --per-class N   S1: the user's examples per class (default 10; the\n"
          "                  protocol's variants are 5 and 20)\n"
          "  --shift S       S1: the user's drift (default gain:0.8,0.1; the\n"
          "                  protocol's variant is translate:2,2)\n"
          "  --test-half H   evaluate on the even- or odd-numbered test images only:\n"
          "                  choose settings on one half, report them on the other\n"
          "  --only LIST     run only strategies whose name starts with one of\n"
          "                  these, comma separated (e.g. replay,slda)\n"
          "  --quiet         no progress output\n",
          f);
}

/* ---- small helpers ------------------------------------------------------------ */

typedef struct stats {
    double v[16];
    int n;
} stats;

static void stats_add(stats *s, double v)
{
    if (s->n < 16)
        s->v[s->n++] = v;
}
static double stats_mean(const stats *s)
{
    double m = 0;
    for (int i = 0; i < s->n; i++)
        m += s->v[i];
    return s->n ? m / s->n : NAN;
}
static double stats_std(const stats *s)
{
    if (s->n < 2)
        return 0.0;
    double m = stats_mean(s), q = 0;
    for (int i = 0; i < s->n; i++)
        q += (s->v[i] - m) * (s->v[i] - m);
    return sqrt(q / (s->n - 1));
}

typedef struct ctx {
    const char *data, *work, *only, *init;
    const char *base_path; /* --base: the user's model instead of edge-cnn */
    int seeds, quiet;
    strat added[16];
    int n_added;
    FILE *json;
    int json_first;
    odl_dataset train, test;
    int32_t s1_per_class;
    const char *s1_shift;
    /* per scenario run, for the JSON's summary: base accuracies, best EWC */
    struct {
        char name[80], best_ewc[64];
        double base[2];
        int n_base;
    } done[4];
    int n_done;
} ctx;

/* Records a scenario's base accuracies for the JSON summary; returns its slot. */
static int scenario_done(ctx *c, const char *name, const double *base, int n_base)
{
    if (c->n_done >= 4)
        return 3;
    int k = c->n_done++;
    snprintf(c->done[k].name, sizeof c->done[k].name, "%s", name);
    c->done[k].n_base = n_base;
    for (int i = 0; i < n_base; i++)
        c->done[k].base[i] = base[i];
    c->done[k].best_ewc[0] = '\0';
    return k;
}

/* The protocol asks for every λ and the best: the EWC row with the highest
 * mean of the scenario's headline metric. */
static void best_ewc(ctx *c, int slot, const char *const *names, const double *means, const strat_kind *kinds, int n,
                     const char *metric)
{
    int best = -1;
    for (int i = 0; i < n; i++)
        if (kinds[i] == STRAT_EWC && (best < 0 || means[i] > means[best]))
            best = i;
    if (best < 0)
        return;
    snprintf(c->done[slot].best_ewc, sizeof c->done[slot].best_ewc, "%s", names[best]);
    printf("  best EWC: %s (%s %.1f)\n", names[best], metric, means[best]);
}

static int wanted(const ctx *c, const char *name)
{
    for (int k = 0; k < c->n_added; k++)
        if (!strcmp(name, c->added[k].name))
            return 1; /* what was asked for by name always runs */
    if (!c->only)
        return 1;
    const char *p = c->only;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len && !strncmp(name, p, len))
            return 1;
        if (!e)
            break;
        p = e + 1;
    }
    return 0;
}

static void note(const ctx *c, const char *fmt, const char *a)
{
    if (!c->quiet) {
        fprintf(stderr, fmt, a);
        fflush(stderr);
    }
}

/* Subset of a dataset by label range [lo, hi]. */
static int subset(const odl_dataset *ds, int32_t lo, int32_t hi, odl_dataset *out)
{
    memset(out, 0, sizeof *out);
    const size_t in = (size_t)ds->c * ds->h * ds->w;
    int32_t n = 0;
    for (int32_t k = 0; k < ds->n; k++)
        n += ds->y[k] >= lo && ds->y[k] <= hi;
    *out = *ds;
    out->n = n;
    out->x = malloc(sizeof(float) * in * (size_t)(n ? n : 1));
    out->y = malloc(sizeof(int32_t) * (size_t)(n ? n : 1));
    if (!out->x || !out->y)
        return cli_error("out of memory");
    int32_t j = 0;
    for (int32_t k = 0; k < ds->n; k++)
        if (ds->y[k] >= lo && ds->y[k] <= hi) {
            memcpy(out->x + (size_t)j * in, ds->x + (size_t)k * in, sizeof(float) * in);
            out->y[j++] = ds->y[k];
        }
    return 0;
}

/* The base model for classes [0, hi], trained with the protocol's settings
 * (Adam 1e-3, batch 64, 3 epochs, seed 0) unless the work dir has it. */
/* The user's base (--base) for a scenario whose base knows classes [0, hi]:
 * its input must be the data's samples and its outputs hi + 1. */
static int get_user_base(ctx *c, int32_t hi, cli_model *cm)
{
    odl_model_cfg cfg = odl_model_cfg_defaults();
    cfg.max_batch = 256;
    if (cli_model_load(c->base_path, &cfg, cm))
        return 1;
    const odl_model_desc *d = &cm->desc;
    const int32_t outputs = odl_model_n_classes(cm->m);
    if (d->in_c != c->train.c || d->in_h != c->train.h || d->in_w != c->train.w) {
        cli_error("--base %s: its input is %dx%dx%d, the samples of %s are %dx%dx%d (CxHxW): the experiments need a "
                  "base made for this data set",
                  c->base_path, (int)d->in_c, (int)d->in_h, (int)d->in_w, c->data, (int)c->train.c, (int)c->train.h,
                  (int)c->train.w);
        cli_model_free(cm);
        return 1;
    }
    if (outputs != hi + 1) {
        cli_error("--base %s: %d outputs; this scenario's base knows classes 0-%d (%d outputs): run the scenario "
                  "it fits (s1: 10, s2: 8, s3: 4) or give a base trained on those classes",
                  c->base_path, (int)outputs, (int)hi, (int)hi + 1);
        cli_model_free(cm);
        return 1;
    }
    return 0;
}

static int get_base(ctx *c, int32_t hi, cli_model *cm)
{
    if (c->base_path)
        return get_user_base(c, hi, cm);
    char path[1024];
    snprintf(path, sizeof path, "%s/base-0-%d-%s-s%d.odl", c->work, (int)hi, c->init, LEARN_SHARDS_DEFAULT);
    struct stat sb;
    if (stat(path, &sb) != 0) {
        odl_dataset tr;
        if (subset(&c->train, 0, hi, &tr))
            return 1;
        odl_node_desc nodes[ODL_EDGE_CNN_NODES];
        odl_model_desc desc;
        odl_desc_init(&desc, nodes, ODL_EDGE_CNN_NODES, tr.c, tr.h, tr.w);
        odl_desc_edge_cnn(&desc, tr.c, tr.h, tr.w, hi + 1);
        odl_model_cfg cfg = odl_model_cfg_defaults();
        cfg.mode = ODL_MODE_TRAIN;
        cfg.max_batch = 64;
        owned_model om;
        if (owned_model_make(&om, &desc, &cfg)) {
            odl_dataset_free(&tr);
            return 1;
        }
        odl_rng rng;
        odl_rng_seed(&rng, 0, 0x6f646c);
        odl_model_init_params_as(om.m, &rng, strcmp(c->init, "he") ? ODL_INIT_TORCH : ODL_INIT_HE);
        char label[64];
        snprintf(label, sizeof label, "base 0-%d: ", (int)hi);
        train_result tres;
        const learn_train_opts topts = {3, 64, LEARN_SHARDS_DEFAULT, learn_threads_default(), c->quiet, label};
        int rc = learn_train(om.m, &tr, &topts, &rng, &tres);
        odl_dataset_free(&tr);
        if (!rc) {
            mkdir(c->work, 0755);
            char classes[32];
            snprintf(classes, sizeof classes, "0-%d", (int)hi);
            odl_meta_kv meta[] = {{"created_by", "odl experiment"}, {"arch", "edge-cnn"}, {"classes", classes},
                                  {"epochs", "3"}, {"batch", "64"}, {"lr", "0.001"}, {"seed", "0"},
                                  {"init", c->init}};
            odl_diag d;
            odl_status s = odl_host_save_model(om.m, meta, 8, path, &d);
            if (s != ODL_OK)
                rc = cli_fail(path, s, &d);
        }
        owned_model_free(&om);
        if (rc)
            return 1;
    }
    odl_model_cfg cfg = odl_model_cfg_defaults();
    cfg.max_batch = 256;
    return cli_model_load(path, &cfg, cm);
}

static int base_predict(odl_model *m, const float *x, int32_t n, int32_t *pred)
{
    const size_t in = odl_model_layer_shape(m, -1).size;
    const int32_t C = odl_model_n_classes(m), B = odl_model_get_cfg(m)->max_batch;
    for (int32_t k = 0; k < n; k += B) {
        int32_t nb = n - k < B ? n - k : B;
        const float *o;
        if (odl_model_forward(m, 0, x + (size_t)k * in, nb, &o, NULL) != ODL_OK)
            return 1;
        for (int32_t j = 0; j < nb; j++) {
            int32_t best = 0;
            for (int32_t q = 1; q < C; q++)
                if (o[(size_t)j * C + q] > o[(size_t)j * C + best])
                    best = q;
            pred[k + j] = best;
        }
    }
    return 0;
}

/* accuracy (%) of pred over samples whose label is in [lo, hi] */
static double acc_range(const int32_t *pred, const int32_t *y, int32_t n, int32_t lo, int32_t hi)
{
    int64_t ok = 0, tot = 0;
    for (int32_t k = 0; k < n; k++)
        if (y[k] >= lo && y[k] <= hi) {
            tot++;
            ok += pred[k] == y[k];
        }
    return tot ? 100.0 * (double)ok / (double)tot : NAN;
}

/* k examples per class of [lo, hi] from ds, chosen by seed: indices into ds */
static int32_t *pick_examples(const odl_dataset *ds, int32_t lo, int32_t hi, int32_t per_class, uint64_t seed,
                              int32_t *n_out)
{
    odl_rng r;
    odl_rng_seed(&r, seed, 0x75736572);
    uint32_t *order = malloc(sizeof(uint32_t) * (size_t)ds->n);
    int32_t *idx = malloc(sizeof(int32_t) * (size_t)(hi - lo + 1) * per_class);
    int32_t *have = calloc((size_t)(hi - lo + 1), sizeof(int32_t));
    for (int32_t k = 0; k < ds->n; k++)
        order[k] = (uint32_t)k;
    odl_rng_shuffle_u32(&r, order, (uint32_t)ds->n);
    int32_t n = 0;
    for (int32_t k = 0; k < ds->n; k++) {
        int32_t y = ds->y[order[k]];
        if (y < lo || y > hi || have[y - lo] >= per_class)
            continue;
        have[y - lo]++;
        idx[n++] = (int32_t)order[k];
    }
    free(order);
    free(have);
    *n_out = n;
    return idx;
}

static void gather(const float *src, size_t dim, const int32_t *idx, int32_t n, float *dst)
{
    for (int32_t k = 0; k < n; k++)
        memcpy(dst + (size_t)k * dim, src + (size_t)idx[k] * dim, sizeof(float) * dim);
}

/* Latents of a dataset at a boundary, cached per boundary. */
typedef struct view {
    int32_t boundary, dim;
    float *z;
} view;

typedef struct views {
    view v[4];
    int n;
    const float *x;
    int32_t count;
} views;

static const float *view_get(views *vs, odl_model *base, int32_t boundary, int32_t *dim)
{
    for (int i = 0; i < vs->n; i++)
        if (vs->v[i].boundary == boundary) {
            *dim = vs->v[i].dim;
            return vs->v[i].z;
        }
    if (vs->n == 4)
        return NULL;
    view *v = &vs->v[vs->n];
    if (learn_latents(base, boundary, vs->x, vs->count, &v->z, &v->dim))
        return NULL;
    v->boundary = boundary;
    vs->n++;
    *dim = v->dim;
    return v->z;
}

static void views_free(views *vs)
{
    for (int i = 0; i < vs->n; i++)
        free(vs->v[i].z);
    vs->n = 0;
}

/* ---- the strategy lists ---------------------------------------------------------- */

/* scenario: 1 (S1), 2 (S2), 3 (S3) */
static int build_strategies(const ctx *c, strat *out, int scenario)
{
    const int s2 = scenario == 2;
    int n = 0;
    for (int k = 0; k < c->n_added; k++)
        out[n++] = c->added[k];
    out[n++] = strat_default(STRAT_NAIVE);
    strat r = strat_default(STRAT_REPLAY);
    r.replay_size = s2 ? 160 : 200;
    snprintf(r.name, sizeof r.name, "replay reservoir %d", (int)r.replay_size);
    out[n++] = r;
    r.replay_balanced = 1;
    snprintf(r.name, sizeof r.name, "replay balanced %d", (int)r.replay_size);
    out[n++] = r;
    static const float lambdas[] = {1, 10, 100, 1000, 10000};
    for (int k = 0; k < 5; k++) {
        strat e = strat_default(STRAT_EWC);
        e.ewc_lambda = lambdas[k];
        snprintf(e.name, sizeof e.name, "ewc lambda=%g", (double)lambdas[k]);
        out[n++] = e;
    }
    out[n++] = strat_default(STRAT_LWF);
    strat f = strat_default(STRAT_FULL);
    snprintf(f.name, sizeof f.name, "full fine-tune");
    out[n++] = f;
    /* what odl adds */
    out[n++] = strat_default(STRAT_NCM);
    strat sl = strat_default(STRAT_SLDA);
    out[n++] = sl;
    strat ri = strat_default(STRAT_REPLAY);
    ri.replay_size = s2 ? 160 : 200;
    ri.replay_balanced = 1;
    ri.replay_int8 = 1;
    snprintf(ri.name, sizeof ri.name, "replay balanced %d int8", (int)ri.replay_size);
    out[n++] = ri;
    /* INT8 latents: 4x the samples in the bytes of the FP32 buffer */
    ri.replay_size *= 4;
    snprintf(ri.name, sizeof ri.name, "odl: replay bal %d int8", (int)ri.replay_size);
    out[n++] = ri;
    /* ... and one more layer learning, at a tenth of the head's rate */
    strat u = ri;
    u.unfreeze = 1;
    u.lr_decay = 0.1f;
    snprintf(u.name, sizeof u.name, "odl: replay bal %d int8 +1", (int)u.replay_size);
    out[n++] = u;
    /* ... or herded exemplars (iCaRL) in the same INT8 slots, longer training */
    strat hd = ri;
    hd.replay_herding = 1;
    hd.epochs = 20;
    snprintf(hd.name, sizeof hd.name, "odl: herding %d int8 20ep", (int)hd.replay_size);
    out[n++] = hd;
    /* ... or a small residual adapter instead: a tenth of the memory */
    strat ad = ri;
    ad.adapter = 32;
    snprintf(ad.name, sizeof ad.name, "odl: replay bal %d int8 +ad32", (int)ad.replay_size);
    out[n++] = ad;
    if (scenario == 2) {
        /* new classes from 50 examples each: 4 moved copies of each, a
         * class-balanced buffer of 200 per old class, one more layer */
        strat g = ri;
        g.replay_size = 1600;
        g.unfreeze = 1;
        g.lr_decay = 0.1f;
        g.augment = 4;
        snprintf(g.name, sizeof g.name, "odl: replay bal %d int8 +1 aug4", (int)g.replay_size);
        out[n++] = g;
    }
    if (scenario == 1) {
        /* a new sensor, not new classes: the kept originals, INT8, seen
         * through the intensity curve fitted on the user's examples */
        strat m = ri;
        m.match = ri.replay_size;
        snprintf(m.name, sizeof m.name, "odl: replay bal %d int8 match %d", (int)m.replay_size, (int)m.match);
        out[n++] = m;
        m.unfreeze = 1;
        m.lr_decay = 0.1f;
        snprintf(m.name, sizeof m.name, "odl: replay bal %d int8 +1 match %d", (int)m.replay_size, (int)m.match);
        out[n++] = m;
    }
    return n;
}

/* ---- output ------------------------------------------------------------------------ */

typedef struct row {
    strat st;
    stats m[4];
    size_t trainable, bytes;
    odl_mem_plan plan;
} row;

static void json_planned(FILE *f, const odl_mem_plan *p)
{
    fprintf(f, ", \"planned\": {");
    for (int k = 0; k < ODL_MEM_KINDS; k++)
        fprintf(f, "%s\"%s\": %zu", k ? ", " : "", odl_mem_kind_name((odl_mem_kind)k), p->bytes[k]);
    fprintf(f, "}");
}

static void json_row(ctx *c, const char *scenario, const row *r, const char *const *metric_names, int n_metrics)
{
    if (!c->json)
        return;
    fprintf(c->json, "%s\n  {\"scenario\": \"%s\", \"strategy\": ", c->json_first ? "" : ",", scenario);
    json_str(c->json, r->st.name);
    fprintf(c->json, ", \"trainable_params\": %zu, \"planned_bytes\": %zu", r->trainable, r->bytes);
    json_planned(c->json, &r->plan);
    for (int k = 0; k < n_metrics; k++) {
        fprintf(c->json, ", \"%s\": [", metric_names[k]);
        for (int i = 0; i < r->m[k].n; i++)
            fprintf(c->json, "%s%.4f", i ? ", " : "", r->m[k].v[i]);
        fprintf(c->json, "]");
    }
    fprintf(c->json, "}");
    c->json_first = 0;
}

static void print_rows(const row *rows, int n, const char *const *metric_names, int n_metrics)
{
    printf("  %-38s", "strategy");
    for (int k = 0; k < n_metrics; k++)
        printf(" %14s", metric_names[k]);
    printf(" %10s %12s\n", "trainable", "bytes");
    for (int i = 0; i < n; i++) {
        printf("  %-38s", rows[i].st.name);
        for (int k = 0; k < n_metrics; k++) {
            char cell[32];
            snprintf(cell, sizeof cell, "%.1f ± %.1f", stats_mean(&rows[i].m[k]), stats_std(&rows[i].m[k]));
            printf(" %14s", cell);
        }
        printf(" %10zu %12zu\n", rows[i].trainable, rows[i].bytes);
    }
}

/* ---- S1 and S2: one adaptation step ------------------------------------------------ */

typedef struct one_step {
    const char *name;
    int32_t base_hi;        /* base trained on [0, base_hi] */
    int32_t new_lo, new_hi; /* user's classes */
    int32_t per_class;
    const char *shift;      /* user data shift (S1) */
} one_step;

static int run_one_step(ctx *c, const one_step *sc)
{
    cli_model cm;
    if (get_base(c, sc->base_hi, &cm))
        return 1;
    odl_model *base = cm.m;
    const int32_t n_classes = sc->new_hi + 1 > sc->base_hi + 1 ? sc->new_hi + 1 : sc->base_hi + 1;
    const size_t in = (size_t)c->train.c * c->train.h * c->train.w;
    odl_shift sh;
    odl_diag d;
    odl_shift_parse(sc->shift, &sh, &d);

    odl_dataset old_tr, test_u, pool;
    subset(&c->train, 0, sc->base_hi, &old_tr);
    odl_dataset_copy(&c->test, &test_u);
    odl_dataset_shift(&test_u, &sh);
    odl_dataset_copy(&c->train, &pool);
    odl_dataset_shift(&pool, &sh);

    views v_old = {.x = old_tr.x, .count = old_tr.n}, v_test = {.x = c->test.x, .count = c->test.n},
          v_testu = {.x = test_u.x, .count = test_u.n}, v_pool = {.x = pool.x, .count = pool.n};
    int32_t *pred = malloc(sizeof(int32_t) * (size_t)c->test.n);
    /* the base before adaptation */
    double base_metrics[2] = {0.0, 0.0};
    base_predict(base, test_u.x, test_u.n, pred);
    int s1 = sc->shift != NULL;
    if (s1) {
        base_metrics[0] = acc_range(pred, test_u.y, test_u.n, 0, n_classes - 1);
        base_predict(base, c->test.x, c->test.n, pred);
        base_metrics[1] = acc_range(pred, c->test.y, c->test.n, 0, n_classes - 1);
        printf("\n%s: base %.1f user / %.1f original\n", sc->name, base_metrics[0], base_metrics[1]);
    } else {
        base_metrics[0] = acc_range(pred, test_u.y, test_u.n, 0, sc->base_hi);
        printf("\n%s: base %.1f on classes 0-%d\n", sc->name, base_metrics[0], (int)sc->base_hi);
    }
    odl_mem_plan bp;
    odl_model_cfg icfg = odl_model_cfg_defaults();
    odl_model_plan(&cm.desc, &icfg, &bp, NULL);
    printf("  (frozen base: %zu bytes for inference at batch 1, not counted below)\n", bp.total);

    strat strats[48];
    int ns = build_strategies(c, strats, s1 ? 1 : 2);
    row rows[48];
    int nr = 0;
    static const char *const s1_names[] = {"user", "original", "sum"};
    static const char *const s2_names[] = {"old", "new", "all"};
    int rc = 0;
    for (int si = 0; si < ns && !rc; si++) {
        if (!wanted(c, strats[si].name))
            continue;
        row *r = &rows[nr++];
        memset(r, 0, sizeof *r);
        r->st = strats[si];
        note(c, "  %s ...", r->st.name);
        double t0 = cli_now();
        for (int seed = 0; seed < c->seeds && !rc; seed++) {
            int32_t nn;
            int32_t *idx = pick_examples(&pool, sc->new_lo, sc->new_hi, sc->per_class, (uint64_t)seed, &nn);
            float *xr = malloc(sizeof(float) * in * (size_t)nn);
            int32_t *yr = malloc(sizeof(int32_t) * (size_t)nn);
            gather(pool.x, in, idx, nn, xr);
            for (int32_t k = 0; k < nn; k++)
                yr[k] = pool.y[idx[k]];
            session s;
            int32_t boundary = r->st.kind == STRAT_FULL ? 0 : learn_boundary(&cm.desc, r->st.unfreeze);
            int32_t dim = 0;
            old_data od = {old_tr.x, old_tr.y, old_tr.n, in, NULL, boundary, 1000};
            od.z = view_get(&v_old, base, boundary, &dim);
            const float *pz = view_get(&v_pool, base, boundary, &dim);
            float *zr = malloc(sizeof(float) * (size_t)dim * (size_t)nn);
            gather(pz, (size_t)dim, idx, nn, zr);
            rc = session_start(&s, &r->st, base, n_classes, &od, 1000u + (uint64_t)seed);
            if (!rc)
                rc = session_learn(&s, xr, zr, yr, nn, n_classes);
            if (!rc) {
                const float *tu = view_get(&v_testu, base, boundary, &dim);
                rc = session_predict(&s, tu, test_u.n, pred);
                if (s1) {
                    double u = acc_range(pred, test_u.y, test_u.n, 0, n_classes - 1);
                    const float *to = view_get(&v_test, base, boundary, &dim);
                    rc = rc || session_predict(&s, to, c->test.n, pred);
                    double o = acc_range(pred, c->test.y, c->test.n, 0, n_classes - 1);
                    stats_add(&r->m[0], u);
                    stats_add(&r->m[1], o);
                    stats_add(&r->m[2], u + o);
                } else {
                    stats_add(&r->m[0], acc_range(pred, test_u.y, test_u.n, 0, sc->base_hi));
                    stats_add(&r->m[1], acc_range(pred, test_u.y, test_u.n, sc->new_lo, sc->new_hi));
                    stats_add(&r->m[2], acc_range(pred, test_u.y, test_u.n, 0, n_classes - 1));
                }
                r->trainable = s.trainable;
                r->bytes = session_plan(&s).total;
                r->plan = session_plan(&s);
            }
            session_end(&s);
            free(idx);
            free(xr);
            free(yr);
            free(zr);
        }
        if (!c->quiet)
            fprintf(stderr, " %.1f s\n", cli_now() - t0);
    }
    if (!rc) {
        print_rows(rows, nr, s1 ? s1_names : s2_names, 3);
        for (int i = 0; i < nr; i++)
            json_row(c, sc->name, &rows[i], s1 ? s1_names : s2_names, 3);
        const int slot = scenario_done(c, sc->name, base_metrics, s1 ? 2 : 1);
        const char *names[48];
        double means[48];
        strat_kind kinds[48];
        for (int i = 0; i < nr; i++) {
            names[i] = rows[i].st.name;
            means[i] = stats_mean(&rows[i].m[2]);
            kinds[i] = rows[i].st.kind;
        }
        best_ewc(c, slot, names, means, kinds, nr, s1 ? "sum" : "all");
    }
    free(pred);
    views_free(&v_old);
    views_free(&v_test);
    views_free(&v_testu);
    views_free(&v_pool);
    odl_dataset_free(&old_tr);
    odl_dataset_free(&test_u);
    odl_dataset_free(&pool);
    cli_model_free(&cm);
    return rc;
}

/* ---- S3: a sequence of tasks ----------------------------------------------------------- */

static int run_s3(ctx *c)
{
    cli_model cm;
    if (get_base(c, 3, &cm))
        return 1;
    odl_model *base = cm.m;
    const size_t in = (size_t)c->train.c * c->train.h * c->train.w;
    static const int32_t task_lo[4] = {0, 4, 6, 8}, task_hi[4] = {3, 5, 7, 9};
    odl_dataset old_tr;
    subset(&c->train, 0, 3, &old_tr);
    views v_old = {.x = old_tr.x, .count = old_tr.n}, v_test = {.x = c->test.x, .count = c->test.n},
          v_train = {.x = c->train.x, .count = c->train.n};
    int32_t *pred = malloc(sizeof(int32_t) * (size_t)c->test.n);
    base_predict(base, c->test.x, c->test.n, pred);
    const double base_a = acc_range(pred, c->test.y, c->test.n, 0, 3);
    printf("\nS3 (tasks A=0-3 base, B=4-5, C=6-7, D=8-9; 100 examples per class): base %.1f on task A\n", base_a);
    const char *names[48];
    double means[48];
    strat_kind kinds[48];
    int n_means = 0;

    strat strats[48];
    int ns = build_strategies(c, strats, 3);
    int rc = 0;
    printf("  %-38s %16s %16s %10s %12s   R[i][j] (rows: after task i, columns: task j)\n", "strategy", "ACC", "BWT",
           "trainable", "bytes");
    for (int si = 0; si < ns && !rc; si++) {
        strat st = strats[si];
        if (!wanted(c, st.name) || st.kind == STRAT_FULL)
            continue;
        if (st.kind == STRAT_EWC)
            st.ewc_decay = 1.0f; /* online: Fisher of every task summed */
        note(c, "  %s ...", st.name);
        double t0 = cli_now();
        stats acc = {{0}, 0}, bwt = {{0}, 0};
        double Rsum[4][4] = {{0}};
        size_t trainable = 0, bytes = 0;
        odl_mem_plan plan = {{0}, 0};
        for (int seed = 0; seed < c->seeds && !rc; seed++) {
            session s;
            int32_t boundary = learn_boundary(&cm.desc, st.unfreeze), dim = 0;
            old_data od = {old_tr.x, old_tr.y, old_tr.n, in, NULL, boundary, 1000};
            od.z = view_get(&v_old, base, boundary, &dim);
            rc = session_start(&s, &st, base, 10, &od, 2000u + (uint64_t)seed);
            double R[4][4];
            for (int task = 0; task < 4 && !rc; task++) {
                if (task > 0) {
                    int32_t nn;
                    int32_t *idx = pick_examples(&c->train, task_lo[task], task_hi[task], 100,
                                                 (uint64_t)seed * 10 + (uint64_t)task, &nn);
                    float *xr = malloc(sizeof(float) * in * (size_t)nn);
                    int32_t *yr = malloc(sizeof(int32_t) * (size_t)nn);
                    gather(c->train.x, in, idx, nn, xr);
                    for (int32_t k = 0; k < nn; k++)
                        yr[k] = c->train.y[idx[k]];
                    const float *tz = view_get(&v_train, base, boundary, &dim);
                    float *zr = malloc(sizeof(float) * (size_t)dim * (size_t)nn);
                    gather(tz, (size_t)dim, idx, nn, zr);
                    rc = session_learn(&s, xr, zr, yr, nn, task_hi[task] + 1);
                    free(idx);
                    free(xr);
                    free(yr);
                    free(zr);
                }
                const float *tz = view_get(&v_test, base, boundary, &dim);
                rc = rc || session_predict(&s, tz, c->test.n, pred);
                for (int j = 0; j < 4; j++)
                    R[task][j] = acc_range(pred, c->test.y, c->test.n, task_lo[j], task_hi[j]);
            }
            if (!rc) {
                double a = 0, b = 0;
                for (int j = 0; j < 4; j++)
                    a += R[3][j] / 4;
                for (int j = 0; j < 3; j++)
                    b += (R[3][j] - R[j][j]) / 3;
                stats_add(&acc, a);
                stats_add(&bwt, b);
                for (int i = 0; i < 4; i++)
                    for (int j = 0; j < 4; j++)
                        Rsum[i][j] += R[i][j] / c->seeds;
                trainable = s.trainable;
                bytes = session_plan(&s).total;
                plan = session_plan(&s);
            }
            session_end(&s);
        }
        if (!c->quiet)
            fprintf(stderr, " %.1f s\n", cli_now() - t0);
        if (rc)
            break;
        char a[32], b[32];
        snprintf(a, sizeof a, "%.1f ± %.1f", stats_mean(&acc), stats_std(&acc));
        snprintf(b, sizeof b, "%.1f ± %.1f", stats_mean(&bwt), stats_std(&bwt));
        printf("  %-38s %16s %16s %10zu %12zu  ", st.name, a, b, trainable, bytes);
        names[n_means] = strats[si].name;
        means[n_means] = stats_mean(&acc);
        kinds[n_means++] = st.kind;
        for (int i = 0; i < 4; i++) {
            printf(" [");
            for (int j = 0; j < 4; j++)
                printf(j <= i ? "%5.1f" : "    -", Rsum[i][j]);
            printf("]");
        }
        printf("\n");
        if (c->json) {
            fprintf(c->json, "%s\n  {\"scenario\": \"S3\", \"strategy\": ", c->json_first ? "" : ",");
            json_str(c->json, st.name);
            fprintf(c->json, ", \"trainable_params\": %zu, \"planned_bytes\": %zu", trainable, bytes);
            json_planned(c->json, &plan);
            fprintf(c->json, ", \"ACC\": [");
            for (int i = 0; i < acc.n; i++)
                fprintf(c->json, "%s%.4f", i ? ", " : "", acc.v[i]);
            fprintf(c->json, "], \"BWT\": [");
            for (int i = 0; i < bwt.n; i++)
                fprintf(c->json, "%s%.4f", i ? ", " : "", bwt.v[i]);
            fprintf(c->json, "], \"R_mean\": [");
            for (int i = 0; i < 4; i++) {
                fprintf(c->json, "%s[", i ? ", " : "");
                for (int j = 0; j < 4; j++)
                    fprintf(c->json, "%s%.4f", j ? ", " : "", j <= i ? Rsum[i][j] : 0.0);
                fprintf(c->json, "]");
            }
            fprintf(c->json, "]}");
            c->json_first = 0;
        }
    }
    if (!rc)
        best_ewc(c, scenario_done(c, "S3", &base_a, 1), names, means, kinds, n_means, "ACC");
    free(pred);
    views_free(&v_old);
    views_free(&v_test);
    views_free(&v_train);
    odl_dataset_free(&old_tr);
    cli_model_free(&cm);
    return rc;
}

int cmd_experiment(int argc, char **argv)
{
    ctx c;
    memset(&c, 0, sizeof c);
    c.data = "/usr/share/datasets/fashion-mnist";
    c.work = "odl-work";
    c.init = "torch";
    c.seeds = 3;
    c.json_first = 1;
    c.s1_per_class = 10;
    c.s1_shift = "gain:0.8,0.1";
    const char *which = NULL, *json = NULL, *report_path = NULL, *v = NULL, *half = NULL;
    char tmp_json[1100] = "";
    cli_args a = {argc, argv, 1, "experiment"};
    for (; a.i < argc; a.i++) {
        int r;
        if (cli_flag(&a, "--help") || cli_flag(&a, "-h")) {
            help(stdout);
            return 0;
        } else if (cli_flag(&a, "--quiet")) {
            c.quiet = 1;
        } else if ((r = cli_opt(&a, "--data", &c.data)) || (r = cli_opt(&a, "--work", &c.work)) ||
                   (r = cli_opt(&a, "--json", &json)) || (r = cli_opt(&a, "--only", &c.only)) ||
                   (r = cli_opt(&a, "--report", &report_path)) || (r = cli_opt(&a, "--base", &c.base_path)) ||
                   (r = cli_opt(&a, "--init", &c.init))) {
            if (r < 0) return 2;
            if (strcmp(c.init, "torch") && strcmp(c.init, "he"))
                return cli_error("--init: '%s' is not torch or he", c.init) + 1;
        } else if ((r = cli_opt(&a, "--add", &v))) {
            if (r < 0) return 2;
            if (c.n_added >= 16)
                return cli_error("--add: at most 16 strategies") + 1;
            if (strat_parse(v, &c.added[c.n_added]))
                return 2;
            c.n_added++;
        } else if ((r = cli_opt(&a, "--test-half", &half))) {
            if (r < 0) return 2;
            if (strcmp(half, "even") && strcmp(half, "odd"))
                return cli_error("--test-half: '%s' is not even or odd", half) + 1;
        } else if ((r = cli_opt(&a, "--per-class", &v))) {
            if (r < 0 || cli_parse_int("--per-class", v, 1, 5000, &c.s1_per_class)) return 2;
        } else if ((r = cli_opt(&a, "--shift", &c.s1_shift))) {
            if (r < 0) return 2;
            odl_shift sh;
            odl_diag d;
            odl_diag_clear(&d);
            if (odl_shift_parse(c.s1_shift, &sh, &d) != ODL_OK)
                return cli_error("%s", d.msg) + 1;
        } else if ((r = cli_opt(&a, "--seeds", &v))) {
            int32_t n;
            if (r < 0 || cli_parse_int("--seeds", v, 1, 16, &n)) return 2;
            c.seeds = n;
        } else if (argv[a.i][0] == '-') {
            cli_error("experiment: unknown option '%s' (see odl experiment --help)", argv[a.i]);
            return 2;
        } else if (!which) {
            which = argv[a.i];
        } else {
            cli_error("experiment: one scenario at a time ('%s' is extra)", argv[a.i]);
            return 2;
        }
    }
    if (!which || (strcmp(which, "s1") && strcmp(which, "s2") && strcmp(which, "s3") && strcmp(which, "all"))) {
        cli_error("experiment: name a scenario: s1, s2, s3 or all (see odl experiment --help)");
        return 2;
    }
    /* outputs are checked before the work starts */
    {
        const char *ins[] = {c.data, json};
        int orc = json ? cli_check_output("--json", json, ins, 1) : 0;
        if (!orc && report_path)
            orc = cli_check_output("--report", report_path, ins, 2);
        if (orc)
            return orc;
    }
    double t0 = cli_now();
    if (cli_load_data(c.data, ODL_SPLIT_TRAIN, ODL_SPLIT_TRAIN, NULL, NULL, 0, &c.train) ||
        cli_load_data(c.data, ODL_SPLIT_TEST, ODL_SPLIT_TEST, NULL, NULL, 0, &c.test))
        return 1;
    /* the models are trained on the train split: the test split must have its sample shape */
    if (c.test.c != c.train.c || c.test.h != c.train.h || c.test.w != c.train.w) {
        cli_error("%s: test samples are %dx%dx%d; the training samples are %dx%dx%d", c.data, (int)c.test.c,
                  (int)c.test.h, (int)c.test.w, (int)c.train.c, (int)c.train.h, (int)c.train.w);
        odl_dataset_free(&c.train);
        odl_dataset_free(&c.test);
        return 1;
    }
    if (half) {
        /* a fixed split by file position: images 0, 2, 4... or 1, 3, 5... */
        const size_t in = (size_t)c.test.c * c.test.h * c.test.w;
        int32_t j = 0;
        for (int32_t k = strcmp(half, "even") ? 1 : 0; k < c.test.n; k += 2, j++) {
            memmove(c.test.x + (size_t)j * in, c.test.x + (size_t)k * in, sizeof(float) * in);
            c.test.y[j] = c.test.y[k];
        }
        c.test.n = j;
        printf("evaluating on the %s half of the test split: %d images\n", half, (int)j);
    }
    if (report_path && !json) {
        /* the results for the report: a private, unpredictable temporary file */
        const char *td = getenv("TMPDIR");
        snprintf(tmp_json, sizeof tmp_json, "%s/odl-experiment-XXXXXX", td && *td ? td : "/tmp");
        int fd = mkstemp(tmp_json);
        if (fd < 0) {
            odl_dataset_free(&c.train);
            odl_dataset_free(&c.test);
            return cli_error("%s: cannot create a temporary file: %s", tmp_json, strerror(errno));
        }
        close(fd);
        json = tmp_json;
    }
    cli_outfile jo;
    memset(&jo, 0, sizeof jo);
    if (json) {
        if (cli_outfile_open(&jo, json)) {
            odl_dataset_free(&c.train);
            odl_dataset_free(&c.test);
            if (tmp_json[0])
                remove(tmp_json);
            return 1;
        }
        c.json = jo.f;
    }
    if (c.json)
        fprintf(c.json, "{\"seeds\": %d, \"results\": [", c.seeds);
    int rc = 0;
    int all = !strcmp(which, "all");
    if (!rc && (all || !strcmp(which, "s1"))) {
        char name[80];
        if (!strcmp(c.s1_shift, "gain:0.8,0.1"))
            snprintf(name, sizeof name, "S1 (gain drift, %d per class)", (int)c.s1_per_class);
        else
            snprintf(name, sizeof name, "S1 (%s, %d per class)", c.s1_shift, (int)c.s1_per_class);
        one_step s1 = {name, 9, 0, 9, c.s1_per_class, c.s1_shift};
        rc = run_one_step(&c, &s1);
    }
    if (!rc && (all || !strcmp(which, "s2"))) {
        one_step s2 = {"S2 (new classes 8-9, 50 per class)", 7, 8, 9, 50, NULL};
        rc = run_one_step(&c, &s2);
    }
    if (!rc && (all || !strcmp(which, "s3")))
        rc = run_s3(&c);
    if (c.json) {
        /* per scenario: the base before adaptation, and the best EWC row */
        fprintf(c.json, "\n], \"scenarios\": [");
        for (int k = 0; k < c.n_done; k++) {
            fprintf(c.json, "%s\n  {\"scenario\": ", k ? "," : "");
            json_str(c.json, c.done[k].name);
            fprintf(c.json, ", \"base\": [");
            for (int i = 0; i < c.done[k].n_base; i++)
                fprintf(c.json, "%s%.4f", i ? ", " : "", c.done[k].base[i]);
            fprintf(c.json, "], \"best_ewc\": ");
            json_str(c.json, c.done[k].best_ewc);
            fprintf(c.json, "}");
        }
        fprintf(c.json, "\n]}\n");
        c.json = NULL;
        if (cli_outfile_commit(&jo) && !rc)
            rc = 1;
    }
    printf("\nstrategy names: replay N = N replayed latents (reservoir; balanced = class-balanced, herding = herded\n"
           "  exemplars), int8 = latents stored as INT8, ewc lambda=X = EWC at penalty X, +K = K more layers trained\n"
           "  below the head, +adR = a residual adapter of bottleneck R, match/mix/aug/der = the --add options\n"
           "  (docs/cli.md)\n");
    if (c.base_path)
        printf("\nexperiment %s: %.0f s (mean ± std over %d seeds; base: %s)\n", which, cli_now() - t0, c.seeds,
               c.base_path);
    else
        printf("\nexperiment %s: %.0f s (mean ± std over %d seeds; bases: %s init)\n", which, cli_now() - t0, c.seeds,
               c.init);
    odl_dataset_free(&c.train);
    odl_dataset_free(&c.test);
    if (!rc && report_path) {
        char *rargv[] = {"report", (char *)json, "-o", (char *)report_path, NULL};
        rc = cmd_report(4, rargv);
        if (!rc)
            printf("report: %s\n", report_path);
    }
    if (tmp_json[0])
        remove(tmp_json);
    return rc;
}
