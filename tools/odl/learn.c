#define _POSIX_C_SOURCE 200809L
#include "learn.h"
#include "odl/imatch.h"
#include "odl/state.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- base training ---------------------------------------------------------- */

/* The learning curve (report.h): the mean loss of blocks of steps, at most
 * about 200 points over a run, x in epochs. */
static void curve_step(train_result *res, double *sum, int64_t *n, int64_t block, double loss, int32_t ep,
                       int32_t st, int32_t steps, int last)
{
    *sum += loss;
    if (++*n == block || last) {
        if (res->n_curve < LEARN_CURVE_MAX) {
            res->curve_x[res->n_curve] = ep + (double)(st + 1) / steps;
            res->curve_loss[res->n_curve++] = *sum / (double)*n;
        }
        *sum = 0.0;
        *n = 0;
    }
}

/* The progress bar on a terminal (at most every 0.1 s). */
static void progress_bar(cli_progress *pr, int quiet, const char *label, int32_t ep, int32_t epochs, int32_t st,
                         int32_t steps, double loss_mean, int32_t batch, double t_ep)
{
    double now = cli_now();
    if (quiet || !pr->tty || !(now - pr->last > 0.1 || st == steps - 1))
        return;
    pr->last = now;
    int width = 30, done = (int)((int64_t)(st + 1) * width / steps);
    fprintf(stderr, "\r%sepoch %d/%d [", label ? label : "", (int)ep + 1, (int)epochs);
    for (int b = 0; b < width; b++)
        fputc(b < done ? '#' : '.', stderr);
    fprintf(stderr, "] loss %.4f  %.0f img/s ", loss_mean, (double)((int64_t)(st + 1) * batch) / (now - t_ep + 1e-9));
    fflush(stderr);
}

/* An epoch's results into res, and its line (or the bar's end) on stderr. */
static void epoch_end(train_result *res, cli_progress *pr, int quiet, const char *label, int32_t ep, int32_t epochs,
                      double loss, int64_t correct, int32_t n, double dt, int32_t threads)
{
    res->last_loss = loss;
    res->last_epoch_accuracy = (double)correct / n;
    if (res->n_epoch_loss < LEARN_CURVE_MAX)
        res->epoch_loss[res->n_epoch_loss++] = loss;
    if (quiet)
        return;
    if (pr->tty) {
        fputc('\n', stderr);
        return;
    }
    fprintf(stderr, "%sepoch %d/%d loss %.4f train-acc %.2f%% %.0f img/s %.1fs", label ? label : "", (int)ep + 1,
            (int)epochs, loss, 100.0 * res->last_epoch_accuracy, n / dt, dt);
    if (threads > 1)
        fprintf(stderr, " (%d threads)", (int)threads);
    fputc('\n', stderr);
}

/* One shard of a step: forward, loss, backward on its slice of the batch. */
typedef struct slice_job {
    odl_model *m;
    const float *x;
    const int32_t *y;
    int32_t n, classes;
    float *dl;
    odl_rng rng;
    float loss;
    int64_t correct;
    odl_status status;
    odl_diag diag;
} slice_job;

static void slice_run(slice_job *j)
{
    const float *logits = NULL;
    j->correct = 0;
    j->status = odl_model_forward_train(j->m, 0, j->x, j->n, &j->rng, &logits, &j->diag);
    if (j->status != ODL_OK)
        return;
    for (int32_t k = 0; k < j->n; k++) {
        const float *z = logits + (size_t)k * j->classes;
        int32_t best = 0;
        for (int32_t c = 1; c < j->classes; c++)
            if (z[c] > z[best])
                best = c;
        j->correct += best == j->y[k];
    }
    j->loss = odl_softmax_xent_f32(j->n, j->classes, logits, j->y, NULL, j->dl);
    if (!isfinite(j->loss))
        j->status = odl_fail(&j->diag, ODL_ERR_NUMERIC, "loss became %f (lower --lr?)", (double)j->loss);
    else
        j->status = odl_model_backward(j->m, j->dl, j->n, &j->diag);
}

/* A worker thread runs shards first, first + stride, ... of a step. Which
 * thread runs a shard does not change its arithmetic. */
typedef struct shard_worker {
    slice_job *jobs;
    int32_t first, stride, used;
} shard_worker;

static void *shard_worker_run(void *arg)
{
    shard_worker *w = arg;
    for (int32_t t = w->first; t < w->used; t += w->stride)
        slice_run(&w->jobs[t]);
    return NULL;
}

int learn_threads_default(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 64 ? 64 : (int)n;
}

int learn_train(odl_model *m, const odl_dataset *ds, const learn_train_opts *o, odl_rng *rng, train_result *res)
{
    const int32_t batch = o->batch, epochs = o->epochs;
    int32_t shards = o->shards < 1 ? 1 : o->shards > LEARN_SHARDS_MAX ? LEARN_SHARDS_MAX : o->shards;
    if (shards > batch)
        shards = batch;
    int32_t threads = o->threads < 1 ? 1 : o->threads > shards ? shards : o->threads;
    const int quiet = o->quiet;
    const char *label = o->label;
    const int32_t C = odl_model_n_classes(m);
    const size_t in = (size_t)ds->c * ds->h * ds->w;
    const int32_t per = (batch + shards - 1) / shards;
    odl_model_cfg rc = *odl_model_get_cfg(m);
    rc.max_batch = per;
    owned_model rep[LEARN_SHARDS_MAX];
    slice_job job[LEARN_SHARDS_MAX];
    shard_worker worker[LEARN_SHARDS_MAX];
    pthread_t tid[LEARN_SHARDS_MAX];
    memset(rep, 0, sizeof rep);
    int rcode = 0;
    for (int32_t t = 0; t < shards && !rcode; t++)
        rcode = owned_model_make(&rep[t], odl_model_get_desc(m), &rc);
    float *xb = malloc(sizeof(float) * in * (size_t)batch);
    int32_t *yb = malloc(sizeof(int32_t) * (size_t)batch);
    uint32_t *order = malloc(sizeof(uint32_t) * (size_t)ds->n);
    float *dl = malloc(sizeof(float) * (size_t)C * (size_t)batch);
    if (rcode || !xb || !yb || !order || !dl) {
        for (int32_t t = 0; t < shards; t++)
            owned_model_free(&rep[t]);
        free(xb); free(yb); free(order); free(dl);
        return rcode ? 1 : cli_error("out of memory");
    }
    const odl_model_desc *md = odl_model_get_desc(m);
    cli_progress pr;
    cli_progress_init(&pr, quiet);
    odl_diag d;
    odl_diag_clear(&d);
    odl_status s = ODL_OK;
    const int32_t steps = (ds->n + batch - 1) / batch;
    const double t_start = cli_now();
    int64_t seen = 0;
    memset(res, 0, sizeof *res);
    const int64_t block = ((int64_t)epochs * steps + 199) / 200;
    double blk_sum = 0.0;
    int64_t blk_n = 0;
    for (int32_t ep = 0; ep < epochs && s == ODL_OK; ep++) {
        for (int32_t k = 0; k < ds->n; k++)
            order[k] = (uint32_t)k;
        odl_rng_shuffle_u32(rng, order, (uint32_t)ds->n);
        double loss_sum = 0.0, t_ep = cli_now();
        int64_t ep_correct = 0;
        for (int32_t st = 0; st < steps && s == ODL_OK; st++) {
            const int32_t n = ds->n - st * batch < batch ? ds->n - st * batch : batch;
            for (int32_t k = 0; k < n; k++) {
                uint32_t idx = order[(size_t)st * batch + k];
                memcpy(xb + (size_t)k * in, ds->x + (size_t)idx * in, sizeof(float) * in);
                yb[k] = ds->y[idx];
            }
            /* the replicas take the current weights, then a shard each */
            int32_t used = 0;
            for (int32_t t = 0; t < shards; t++) {
                const int32_t lo = t * per, cnt = n - lo < per ? n - lo : per;
                if (cnt <= 0)
                    break;
                for (int32_t i = 0; i < md->n_layers; i++)
                    for (int which = 0; which < 2; which++) {
                        size_t np, nr;
                        const float *src = odl_model_param_const(m, i, which, &np);
                        float *dst = odl_model_param(rep[t].m, i, which, &nr);
                        if (np)
                            memcpy(dst, src, sizeof(float) * np);
                    }
                job[t] = (slice_job){rep[t].m, xb + (size_t)lo * in, yb + lo, cnt, C, dl + (size_t)lo * C,
                                     {0, 0}, 0.0f, 0, ODL_OK, {ODL_OK, {0}}};
                odl_rng_seed(&job[t].rng, odl_rng_u32(rng), (uint64_t)t + 1);
                used++;
            }
            const int32_t run = threads < used ? threads : used;
            for (int32_t w = 0; w < run; w++)
                worker[w] = (shard_worker){job, w, run, used};
            for (int32_t w = 1; w < run; w++)
                pthread_create(&tid[w], NULL, shard_worker_run, &worker[w]);
            shard_worker_run(&worker[0]);
            for (int32_t w = 1; w < run; w++)
                pthread_join(tid[w], NULL);
            float loss = 0.0f;
            for (int32_t t = 0; t < used && s == ODL_OK; t++) {
                if (job[t].status != ODL_OK) {
                    s = job[t].status;
                    d = job[t].diag;
                }
                loss += job[t].loss * (float)job[t].n / (float)n;
                ep_correct += job[t].correct;
            }
            if (s != ODL_OK)
                break;
            /* mean over the whole batch: shards weighted by their share, in
             * shard order whatever the thread count; the model's step needs
             * a backward of its own, so its gradient buffers are filled
             * directly */
            for (int32_t i = 0; i < md->n_layers; i++)
                for (int which = 0; which < 2; which++) {
                    size_t ng;
                    float *g = odl_model_grad(m, i, which, &ng);
                    if (!g)
                        continue;
                    for (size_t q = 0; q < ng; q++) {
                        float acc = 0.0f;
                        for (int32_t t = 0; t < used; t++) {
                            size_t nt;
                            const float *gt = odl_model_grad(rep[t].m, i, which, &nt);
                            acc += gt[q] * ((float)job[t].n / (float)n);
                        }
                        g[q] = acc;
                    }
                }
            s = odl_model_step(m, NULL, &d);
            loss_sum += loss;
            seen += n;
            curve_step(res, &blk_sum, &blk_n, block, loss, ep, st, steps, ep == epochs - 1 && st == steps - 1);
            progress_bar(&pr, quiet, label, ep, epochs, st, steps, loss_sum / (st + 1), batch, t_ep);
        }
        if (s != ODL_OK)
            break;
        epoch_end(res, &pr, quiet, label, ep, epochs, loss_sum / steps, ep_correct, ds->n, cli_now() - t_ep, threads);
    }
    res->seconds = cli_now() - t_start;
    res->images_per_second = (double)seen / (res->seconds > 0 ? res->seconds : 1e-9);
    for (int32_t t = 0; t < shards; t++)
        owned_model_free(&rep[t]);
    free(xb);
    free(yb);
    free(order);
    free(dl);
    if (s != ODL_OK)
        return cli_fail("train", s, &d);
    return 0;
}

int owned_model_make(owned_model *om, const odl_model_desc *desc, const odl_model_cfg *cfg)
{
    memset(om, 0, sizeof *om);
    odl_diag d;
    odl_diag_clear(&d);
    odl_status s = odl_model_plan(desc, cfg, &om->plan, &d);
    if (s != ODL_OK)
        return cli_fail("model", s, &d);
    om->buf = cli_alloc("model plan", om->plan.total);
    if (!om->buf)
        return 1;
    odl_arena a;
    odl_arena_init(&a, om->buf, om->plan.total);
    s = odl_model_init(&om->m, desc, cfg, &a, &d);
    if (s != ODL_OK) {
        owned_model_free(om);
        return cli_fail("model", s, &d);
    }
    om->desc = *odl_model_get_desc(om->m); /* the model's own nodes: the caller's desc may go */
    return 0;
}

void owned_model_free(owned_model *om)
{
    free(om->buf);
    memset(om, 0, sizeof *om);
}

int learn_count_trainable(const odl_model_desc *desc, size_t *trainable)
{
    *trainable = 0;
    odl_layer_shape *shapes = odl_host_shapes(desc, NULL);
    if (!shapes)
        return cli_error("out of memory");
    odl_desc_count_params(desc, shapes, NULL, trainable);
    free(shapes);
    return 0;
}

/* ---- latents ------------------------------------------------------------------- */

/* Layers the discriminative learning rates and gradual unfreezing count. */
static int has_params(int32_t t)
{
    return t == ODL_LAYER_DENSE || t == ODL_LAYER_CONV2D || t == ODL_LAYER_DEPTHWISE || t == ODL_LAYER_BATCHNORM;
}

int32_t learn_boundary(const odl_model_desc *d, int32_t unfreeze)
{
    /* the latest cut at or before the (unfreeze+1)-th parameterised node
     * from the end (in a sequential model: that node) */
    int32_t b = 0;
    if (odl_desc_boundary_for_unfreeze(d, unfreeze + 1, &b, NULL) != ODL_OK)
        return 0;
    return b;
}

int learn_latents(odl_model *m, int32_t boundary, const float *x, int32_t n, float **z, int32_t *dim)
{
    const odl_model_desc *md = odl_model_get_desc(m);
    const size_t in = (size_t)md->in_c * md->in_h * md->in_w;
    const size_t zd = boundary > 0 ? odl_model_layer_shape(m, boundary - 1).size : in;
    const int32_t B = odl_model_get_cfg(m)->max_batch;
    *dim = (int32_t)zd;
    *z = malloc(sizeof(float) * zd * (size_t)(n ? n : 1));
    if (!*z)
        return cli_error("out of memory");
    if (boundary == 0) {
        memcpy(*z, x, sizeof(float) * zd * (size_t)n);
        return 0;
    }
    odl_diag d;
    odl_diag_clear(&d);
    for (int32_t s = 0; s < n; s += B) {
        int32_t nb = n - s < B ? n - s : B;
        odl_status st = odl_model_forward_range(m, 0, boundary, x + (size_t)s * in, nb, *z + (size_t)s * zd, &d);
        if (st != ODL_OK) {
            free(*z);
            *z = NULL;
            return cli_fail("latents", st, &d);
        }
    }
    return 0;
}

int learn_tail_desc(odl_model_desc *t, const odl_model_desc *full, int32_t boundary, int32_t n_classes,
                    int32_t extra)
{
    memset(t, 0, sizeof *t);
    const int32_t n = full->n_layers - boundary;
    if (n < 1 || extra < 0)
        return cli_error("internal: no head after node %d", (int)boundary);
    odl_node_desc *nodes = calloc((size_t)n + (size_t)extra, sizeof *nodes);
    if (!nodes)
        return cli_error("out of memory");
    odl_diag d;
    odl_diag_clear(&d);
    odl_status s = odl_desc_init(t, nodes, n + extra, 1, 1, 1);
    if (s == ODL_OK)
        s = odl_desc_tail(t, full, boundary, &d);
    if (s != ODL_OK) {
        free(nodes);
        memset(t, 0, sizeof *t);
        return cli_fail("head", s, &d);
    }
    for (int32_t i = 0; i < t->n_layers; i++)
        t->layers[i].trainable = 1;
    odl_desc_set_classes(t, n_classes);
    return 0;
}

/* ---- strategies ------------------------------------------------------------------ */

static const char *const kind_names[] = {"naive", "replay", "ewc", "lwf", "full", "ncm", "slda"};

const char *strat_kind_name(strat_kind k) { return kind_names[k]; }

int strat_kind_parse(const char *s, strat_kind *k)
{
    for (int i = 0; i < (int)(sizeof kind_names / sizeof kind_names[0]); i++)
        if (!strcmp(s, kind_names[i])) {
            *k = (strat_kind)i;
            return 0;
        }
    return 1;
}

int strat_parse(const char *spec, strat *out)
{
    char buf[256];
    if (strlen(spec) >= sizeof buf)
        return cli_error("strategy '%s' is too long", spec);
    strcpy(buf, spec);
    char *opts = strchr(buf, ':');
    if (opts)
        *opts++ = '\0';
    strat_kind k;
    if (strat_kind_parse(buf, &k))
        return cli_error("strategy '%s': unknown kind '%s' (naive, replay, ewc, lwf, full, ncm, slda)", spec, buf);
    *out = strat_default(k);
    snprintf(out->name, sizeof out->name, "%s", spec);
    while (opts && *opts) {
        char *next = strchr(opts, ',');
        if (next)
            *next++ = '\0';
        char *val = strchr(opts, '=');
        if (val)
            *val++ = '\0';
        char *end = NULL;
        double x = val ? strtod(val, &end) : 0.0;
        int bad_num = val && (end == val || *end || !isfinite(x) || x < 0);
        if (!strcmp(opts, "balanced") && !val)
            out->replay_balanced = 1;
        else if (!strcmp(opts, "int8") && !val)
            out->replay_int8 = 1;
        else if (!strcmp(opts, "herding") && !val)
            out->replay_herding = 1;
        else if (!val || bad_num)
            return cli_error("strategy '%s': option '%s' needs a value ≥ 0 (e.g. size=200)", spec, opts);
        else if (!strcmp(opts, "size") && x >= 1 && x <= (1 << 24))
            out->replay_size = (int32_t)x;
        else if (!strcmp(opts, "unfreeze") && x <= 65536)
            out->unfreeze = (int32_t)x;
        else if (!strcmp(opts, "lambda"))
            out->ewc_lambda = (float)x;
        else if (!strcmp(opts, "decay") && x <= 1)
            out->ewc_decay = (float)x;
        else if (!strcmp(opts, "lwf"))
            out->lwf_weight = (float)x;
        else if (!strcmp(opts, "T") && x > 0)
            out->lwf_T = (float)x;
        else if (!strcmp(opts, "epochs") && x >= 1 && x <= 100000)
            out->epochs = (int32_t)x;
        else if (!strcmp(opts, "lr") && x > 0 && x <= 10)
            out->lr = (float)x;
        else if (!strcmp(opts, "batch") && x >= 1 && x <= 65536)
            out->batch = (int32_t)x;
        else if (!strcmp(opts, "lrdecay") && x <= 10)
            out->lr_decay = (float)x;
        else if (!strcmp(opts, "shrink") && x > 0 && x < 1)
            out->slda_shrinkage = (float)x;
        else if (!strcmp(opts, "adapter") && x >= 1 && x <= 4096)
            out->adapter = (int32_t)x;
        else if (!strcmp(opts, "gradual") && x >= 1 && x <= 100000)
            out->gradual = (int32_t)x;
        else if (!strcmp(opts, "mix") && x > 0 && x <= 1000)
            out->mix = (float)x;
        else if (!strcmp(opts, "der") && x <= 1e6)
            out->der = (float)x;
        else if (!strcmp(opts, "match") && x >= 1 && x <= (1 << 20))
            out->match = (int32_t)x;
        else if (!strcmp(opts, "augment") && x <= 64)
            out->augment = (int32_t)x;
        else
            return cli_error("strategy '%s': unknown option or value out of range '%s=%s'", spec, opts, val);
        opts = next;
    }
    return 0;
}

strat strat_default(strat_kind kind)
{
    strat s;
    memset(&s, 0, sizeof s);
    s.kind = kind;
    snprintf(s.name, sizeof s.name, "%s", kind_names[kind]);
    s.epochs = 10;
    s.batch = 16;
    s.lr = 1e-3f;
    s.lwf_T = 2.0f;
    s.lwf_weight = kind == STRAT_LWF ? 1.0f : 0.0f;
    s.ewc_lambda = kind == STRAT_EWC ? 10.0f : 0.0f;
    s.ewc_decay = 1.0f;
    s.replay_size = kind == STRAT_REPLAY ? 200 : 0;
    s.lr_decay = 1.0f;
    s.slda_shrinkage = 1e-2f;
    return s;
}


/* Copies the base's layers [boundary, L) into the head (same shapes); the
 * head's first `skip` layers (an inserted adapter) keep their own init. */
static int copy_tail_params(odl_model *head, const odl_model *base, int32_t boundary, int32_t skip)
{
    const odl_model_desc *hd = odl_model_get_desc(head);
    for (int32_t i = skip; i < hd->n_layers; i++)
        for (int which = 0; which < 2; which++) {
            size_t nh, nb;
            float *dst = odl_model_param(head, i, which, &nh);
            const float *src = odl_model_param_const(base, boundary + i - skip, which, &nb);
            if (!nh)
                continue;
            if (!dst || !src || nh != nb)
                return cli_error("internal: head layer %d does not match the base", (int)i);
            memcpy(dst, src, sizeof(float) * nh);
        }
    return 0;
}

static int make_head(session *s, int32_t n_classes, owned_model *out)
{
    odl_model_cfg cfg = odl_model_cfg_defaults();
    cfg.mode = ODL_MODE_TRAIN;
    cfg.max_batch = s->st.batch;
    cfg.optim = odl_optim_defaults(ODL_OPTIM_ADAM);
    cfg.optim.lr = s->st.lr;
    odl_model_desc d;
    if (s->st.kind == STRAT_FULL) {
        odl_diag dg;
        odl_diag_clear(&dg);
        odl_status e = odl_host_desc_copy(&d, &s->base_desc, s->base_desc.n_layers, &dg);
        if (e != ODL_OK)
            return cli_fail(s->st.name, e, &dg);
        odl_desc_freeze_below(&d, 0);
        odl_desc_set_classes(&d, n_classes);
    } else {
        if (learn_tail_desc(&d, &s->base_desc, s->boundary, n_classes, 1))
            return 1;
        if (s->st.adapter > 0 && odl_desc_insert_adapter(&d, 0, s->st.adapter) != ODL_OK) {
            odl_host_desc_free(&d);
            return cli_error("%s: cannot insert an adapter", s->st.name);
        }
    }
    const int rc = owned_model_make(out, &d, &cfg);
    odl_host_desc_free(&d);
    if (rc)
        return 1;
    odl_model_init_params(out->m, &s->rng); /* the adapter's identity init; the rest is copied over */
    return 0;
}

/* EWC state for the current head; old Fisher/anchors kept as prefixes of
 * each tensor when the head grew (old rows come first in row-major w). */
static int ewc_rebuild(session *s, const odl_ewc *old, const odl_model *old_head)
{
    odl_mem_plan p;
    odl_diag d;
    odl_diag_clear(&d);
    odl_status st = odl_ewc_plan(s->head.m, &p, &d);
    if (st != ODL_OK)
        return cli_fail("ewc", st, &d);
    void *buf = cli_alloc("ewc", p.total);
    if (!buf)
        return 1;
    odl_arena a;
    odl_arena_init(&a, buf, p.total);
    odl_ewc *e;
    st = odl_ewc_init(&e, s->head.m, &a, &d);
    if (st != ODL_OK) {
        free(buf);
        return cli_fail("ewc", st, &d);
    }
    if (old) {
        size_t n = odl_ewc_n_params(e);
        float *f = calloc(n, sizeof(float)), *an = calloc(n, sizeof(float));
        const float *of = odl_ewc_fisher(old), *oa = odl_ewc_anchor(old);
        const odl_model_desc *hd = odl_model_get_desc(s->head.m);
        size_t pos_new = 0, pos_old = 0;
        for (int32_t i = 0; i < hd->n_layers; i++)
            for (int which = 0; which < 2; which++) {
                size_t nn, no;
                const float *cur = odl_model_param_const(s->head.m, i, which, &nn);
                (void)odl_model_param_const(old_head, i, which, &no);
                if (!nn)
                    continue;
                memcpy(an + pos_new, cur, sizeof(float) * nn);
                memcpy(f + pos_new, of + pos_old, sizeof(float) * (no < nn ? no : nn));
                memcpy(an + pos_new, oa + pos_old, sizeof(float) * (no < nn ? no : nn));
                pos_new += nn;
                pos_old += no;
            }
        st = odl_ewc_set(e, f, an, n, &d);
        free(f);
        free(an);
        if (st != ODL_OK) {
            free(buf);
            return cli_fail("ewc", st, &d);
        }
    }
    free(s->ewc_buf);
    s->ewc_buf = buf;
    s->ewc = e;
    return 0;
}

int session_start(session *s, const strat *st, odl_model *base, int32_t max_classes, const old_data *old,
                  uint64_t seed)
{
    memset(s, 0, sizeof *s);
    s->st = *st;
    s->base = base;
    s->base_desc = *odl_model_get_desc(base);
    s->n_classes = odl_model_n_classes(base);
    s->max_classes = max_classes;
    odl_rng_seed(&s->rng, seed, 0x5e55);
    s->boundary = st->kind == STRAT_FULL ? 0 : learn_boundary(&s->base_desc, st->unfreeze);
    s->dim = (int32_t)(s->boundary ? odl_model_layer_shape(base, s->boundary - 1).size : old->in_size);
    odl_diag d;
    odl_diag_clear(&d);

    if (st->kind != STRAT_NCM && st->kind != STRAT_SLDA) {
        if (make_head(s, s->n_classes, &s->head))
            return 1;
        if (copy_tail_params(s->head.m, base, s->boundary, st->kind != STRAT_FULL && st->adapter > 0))
            return 1;
        learn_count_trainable(&s->head.desc, &s->trainable);
        odl_mem_plan_add(&s->learn_plan, &s->head.plan);
    }

    /* old data's latents at this boundary */
    const float *oz = NULL;
    float *oz_owned = NULL;
    int need_old = st->replay_size > 0 || st->match > 0 || st->kind == STRAT_EWC || st->kind == STRAT_NCM ||
                   st->kind == STRAT_SLDA;
    if (need_old && old && old->n) {
        if (old->z && old->z_boundary == s->boundary) {
            oz = old->z;
        } else {
            int32_t dim;
            if (learn_latents(base, s->boundary, old->x, old->n, &oz_owned, &dim))
                return 1;
            oz = oz_owned;
        }
    }

    /* replay buffer, class statistics */
    odl_mem_plan aux_plan;
    memset(&aux_plan, 0, sizeof aux_plan);
    odl_replay_cfg rc = {st->replay_size, s->dim, max_classes,
                         st->replay_balanced ? ODL_REPLAY_CLASS_BALANCED : ODL_REPLAY_RESERVOIR,
                         st->replay_int8 ? ODL_REPLAY_INT8 : ODL_REPLAY_F32};
    odl_mem_plan p;
    odl_status e = ODL_OK;
    if (st->replay_size > 0 && (e = odl_replay_plan(&rc, &p, &d)) == ODL_OK)
        odl_mem_plan_add(&aux_plan, &p);
    /* sensor matching keeps raw samples, at the latents' precision */
    const int use_raw = st->match > 0 && st->kind != STRAT_NCM && st->kind != STRAT_SLDA;
    const int32_t in_size = s->base_desc.in_c * s->base_desc.in_h * s->base_desc.in_w;
    odl_replay_cfg raw_cfg = {st->match, in_size, max_classes, ODL_REPLAY_CLASS_BALANCED,
                              st->replay_int8 ? ODL_REPLAY_INT8 : ODL_REPLAY_F32};
    if (e == ODL_OK && use_raw && (e = odl_replay_plan(&raw_cfg, &p, &d)) == ODL_OK)
        odl_mem_plan_add(&aux_plan, &p);
    if (e == ODL_OK && st->kind == STRAT_NCM && (e = odl_ncm_plan(s->dim, max_classes, &p, &d)) == ODL_OK)
        odl_mem_plan_add(&aux_plan, &p);
    if (e == ODL_OK && st->kind == STRAT_SLDA && (e = odl_slda_plan(s->dim, max_classes, &p, &d)) == ODL_OK)
        odl_mem_plan_add(&aux_plan, &p);
    if (e != ODL_OK) {
        free(oz_owned);
        return cli_fail(st->name, e, &d);
    }
    odl_mem_plan_add(&s->learn_plan, &aux_plan);
    s->aux_buf = cli_alloc("learner state (replay buffer, statistics)", aux_plan.total + ODL_ALIGN);
    if (!s->aux_buf) {
        free(oz_owned);
        return 1;
    }
    odl_arena_init(&s->aux, s->aux_buf, aux_plan.total + ODL_ALIGN);
    if (st->replay_size > 0)
        e = odl_replay_init(&s->replay, &rc, &s->aux, &d);
    if (e == ODL_OK && use_raw)
        e = odl_replay_init(&s->raw, &raw_cfg, &s->aux, &d);
    if (e == ODL_OK && st->kind == STRAT_NCM)
        e = odl_ncm_init(&s->ncm, s->dim, max_classes, &s->aux, &d);
    if (e == ODL_OK && st->kind == STRAT_SLDA)
        e = odl_slda_init(&s->slda, s->dim, max_classes, st->slda_shrinkage, &s->aux, &d);
    if (e != ODL_OK) {
        free(oz_owned);
        return cli_fail(st->name, e, &d);
    }

    if (oz) {
        /* the base-training stream, in a seeded order */
        uint32_t *order = malloc(sizeof(uint32_t) * (size_t)old->n);
        for (int32_t k = 0; k < old->n; k++)
            order[k] = (uint32_t)k;
        odl_rng_shuffle_u32(&s->rng, order, (uint32_t)old->n);
        if (s->replay && st->replay_herding) {
            /* exemplars whose mean best matches each class's mean */
            size_t nsc = odl_replay_herding_scratch_floats(&rc, old->n);
            float *sc = malloc(sizeof(float) * nsc);
            e = sc ? odl_replay_herding_fill(s->replay, oz, old->y, old->n, sc, nsc, &d) : ODL_ERR_NOMEM;
            free(sc);
        }
        for (int32_t k = 0; k < old->n && e == ODL_OK; k++) {
            const float *zk = oz + (size_t)order[k] * s->dim;
            int32_t yk = old->y[order[k]];
            if (s->replay && !st->replay_herding)
                e = odl_replay_add(s->replay, zk, yk, &s->rng, &d);
            if (e == ODL_OK && s->ncm)
                e = odl_ncm_add(s->ncm, zk, yk);
            if (e == ODL_OK && s->slda)
                e = odl_slda_add(s->slda, zk, yk);
            if (e == ODL_OK && s->raw)
                e = odl_replay_add(s->raw, old->x + (size_t)order[k] * old->in_size, yk, &s->rng, &d);
        }
        if (e == ODL_OK && st->kind == STRAT_EWC) {
            int32_t nf = old->fisher_samples > 0 ? old->fisher_samples : 1000;
            if (nf > old->n)
                nf = old->n;
            float *fz = malloc(sizeof(float) * (size_t)nf * s->dim);
            int32_t *fy = malloc(sizeof(int32_t) * (size_t)nf);
            for (int32_t k = 0; k < nf; k++) {
                memcpy(fz + (size_t)k * s->dim, oz + (size_t)order[k] * s->dim, sizeof(float) * s->dim);
                fy[k] = old->y[order[k]];
            }
            if (ewc_rebuild(s, NULL, NULL) == 0)
                e = odl_ewc_estimate(s->ewc, s->head.m, 0, fz, fy, nf, 0.0f, &s->rng, &d);
            else
                e = ODL_ERR_STATE;
            free(fz);
            free(fy);
        }
        free(order);
    }
    free(oz_owned);
    if (e != ODL_OK)
        return cli_fail(st->name, e, &d);
    if (s->ewc) {
        odl_mem_plan ep;
        odl_ewc_plan(s->head.m, &ep, NULL);
        odl_mem_plan_add(&s->learn_plan, &ep);
    }
    return 0;
}

static float *head_logits(session *s, const float *z, int32_t n)
{
    const int32_t C = odl_model_n_classes(s->head.m);
    float *out = malloc(sizeof(float) * (size_t)n * C);
    const size_t in = (size_t)s->dim;
    for (int32_t k = 0; k < n; k += s->st.batch) {
        int32_t nb = n - k < s->st.batch ? n - k : s->st.batch;
        const float *o;
        if (odl_model_forward(s->head.m, 0, z + (size_t)k * in, nb, &o, NULL) != ODL_OK) {
            free(out);
            return NULL;
        }
        memcpy(out + (size_t)k * C, o, sizeof(float) * (size_t)nb * C);
    }
    return out;
}

static int learn_set(session *s, const float *in, const int32_t *y, int32_t n, int32_t n_classes);

/* Appends m extra raw samples to the training set, as latents at the
 * session's boundary (raw for STRAT_FULL). Takes ownership of raw and ry.
 * The set is (*in_all, *y_all) when *in_all is set, else (in_cur, y_cur),
 * *n_all samples; it is replaced by new arrays (the old owned ones freed). */
static int append_extra(session *s, float *raw, int32_t *ry, int32_t m, const float *in_cur, const int32_t *y_cur,
                        float **in_all, int32_t **y_all, int32_t *n_all)
{
    const odl_model_desc *bd = &s->base_desc;
    float *zr = raw;
    int32_t dim = (int32_t)((size_t)bd->in_c * bd->in_h * bd->in_w);
    if (s->st.kind != STRAT_FULL) {
        zr = NULL;
        int rc = learn_latents(s->base, s->boundary, raw, m, &zr, &dim);
        free(raw);
        if (rc) {
            free(ry);
            return 1;
        }
    }
    const int32_t n0 = *n_all;
    const float *old_in = *in_all ? *in_all : in_cur;
    const int32_t *old_y = *y_all ? *y_all : y_cur;
    float *ni = malloc(sizeof(float) * (size_t)dim * (size_t)(n0 + m));
    int32_t *ny = malloc(sizeof(int32_t) * (size_t)(n0 + m));
    if (ni && ny) {
        memcpy(ni, old_in, sizeof(float) * (size_t)dim * (size_t)n0);
        memcpy(ni + (size_t)dim * n0, zr, sizeof(float) * (size_t)dim * (size_t)m);
        memcpy(ny, old_y, sizeof(int32_t) * (size_t)n0);
        memcpy(ny + n0, ry, sizeof(int32_t) * (size_t)m);
    }
    free(zr);
    free(ry);
    if (!ni || !ny) {
        free(ni);
        free(ny);
        return cli_error("out of memory");
    }
    free(*in_all);
    free(*y_all);
    *in_all = ni;
    *y_all = ny;
    *n_all = n0 + m;
    return 0;
}

/* Sensor matching, geometry: the move (within 3 pixels) that best aligns
 * the kept originals' class means, already through the curve, with the
 * user's; every kept original is then moved by it (the uncovered pixels
 * get the curve's black). Images of at least 7×7 only. */
static int match_geometry(session *s, float *raw, const int32_t *ry, int32_t r, const float *x, const int32_t *y,
                          int32_t n, const odl_imatch_map *map)
{
    const odl_model_desc *bd = &s->base_desc;
    s->match_dx = s->match_dy = 0;
    if (bd->in_h < 7 || bd->in_w < 7)
        return 0;
    const size_t isz = (size_t)bd->in_c * bd->in_h * bd->in_w;
    const int32_t C = s->max_classes;
    float *mr = calloc((size_t)C * isz, sizeof(float)), *mo = calloc((size_t)C * isz, sizeof(float));
    int32_t *cr = calloc((size_t)C, sizeof(int32_t)), *co = calloc((size_t)C, sizeof(int32_t));
    uint8_t *use = calloc((size_t)C, 1);
    float *tmp = malloc(sizeof(float) * isz);
    int rc = 0;
    if (!mr || !mo || !cr || !co || !use || !tmp) {
        rc = cli_error("out of memory");
        goto out;
    }
    for (int32_t k = 0; k < r; k++) {
        cr[ry[k]]++;
        for (size_t i = 0; i < isz; i++)
            mr[(size_t)ry[k] * isz + i] += raw[(size_t)k * isz + i];
    }
    for (int32_t k = 0; k < n; k++) {
        co[y[k]]++;
        for (size_t i = 0; i < isz; i++)
            mo[(size_t)y[k] * isz + i] += x[(size_t)k * isz + i];
    }
    for (int32_t c = 0; c < C; c++) {
        use[c] = cr[c] >= 3 && co[c] >= 3;
        for (size_t i = 0; use[c] && i < isz; i++) {
            mr[(size_t)c * isz + i] /= (float)cr[c];
            mo[(size_t)c * isz + i] /= (float)co[c];
        }
    }
    int32_t dx = 0, dy = 0;
    if (odl_imatch_fit_shift(mr, mo, use, C, bd->in_c, bd->in_h, bd->in_w, 3, &dx, &dy, NULL, NULL) != ODL_OK)
        goto out;
    s->match_dx = dx;
    s->match_dy = dy;
    s->match_scratch += 2 * sizeof(float) * (size_t)C * isz;
    if (dx || dy) {
        float black;
        const float zero = map->lo;
        odl_imatch_apply(map, &zero, &black, 1);
        for (int32_t k = 0; k < r; k++) {
            odl_imatch_shift_image(raw + (size_t)k * isz, tmp, bd->in_c, bd->in_h, bd->in_w, dx, dy, black);
            memcpy(raw + (size_t)k * isz, tmp, sizeof(float) * isz);
        }
    }
out:
    free(mr);
    free(mo);
    free(cr);
    free(co);
    free(use);
    free(tmp);
    return rc;
}

/* Sensor matching: fits the intensity curve from the kept original samples
 * to the new samples x (class by class, odl/imatch.h), passes every kept
 * sample through it and returns the new samples followed by the matched ones
 * (latents at the boundary, or raw for STRAT_FULL) in *in_all / *y_all. Returns
 * 0 with *n_all = n and nothing allocated when there is nothing to match. */
static int match_augment(session *s, const float *x, const float *in, const int32_t *y, int32_t n, float **in_all,
                         int32_t **y_all, int32_t *n_all)
{
    *in_all = NULL;
    *y_all = NULL;
    *n_all = n;
    const int32_t r = s->raw ? odl_replay_count(s->raw) : 0;
    if (r == 0 || !x || n == 0)
        return 0;
    const odl_model_desc *bd = &s->base_desc;
    const size_t isz = (size_t)bd->in_c * bd->in_h * bd->in_w;
    float *raw = malloc(sizeof(float) * isz * (size_t)r);
    int32_t *ry = malloc(sizeof(int32_t) * (size_t)r);
    if (!raw || !ry) {
        free(raw);
        free(ry);
        return cli_error("out of memory");
    }
    for (int32_t k = 0; k < r; k++)
        odl_replay_get(s->raw, k, raw + (size_t)k * isz, &ry[k]);
    float lo = x[0], hi = x[0];
    for (size_t k = 0; k < isz * (size_t)r; k++) {
        lo = raw[k] < lo ? raw[k] : lo;
        hi = raw[k] > hi ? raw[k] : hi;
    }
    for (size_t k = 0; k < isz * (size_t)n; k++) {
        lo = x[k] < lo ? x[k] : lo;
        hi = x[k] > hi ? x[k] : hi;
    }
    odl_diag d;
    odl_diag_clear(&d);
    odl_mem_plan hp;
    odl_status e = odl_imatch_hist_plan(s->max_classes, 256, &hp, &d);
    void *hbuf = e == ODL_OK ? malloc(2 * hp.total + ODL_ALIGN) : NULL;
    odl_arena ha;
    odl_imatch_hist ref, obs;
    odl_imatch_map map;
    if (e == ODL_OK && !hbuf)
        e = odl_fail(&d, ODL_ERR_NOMEM, "out of memory");
    if (e == ODL_OK)
        e = odl_arena_init(&ha, hbuf, 2 * hp.total + ODL_ALIGN);
    if (e == ODL_OK && !(lo < hi))
        e = ODL_ERR_STATE; /* constant data: nothing to match */
    if (e == ODL_OK)
        e = odl_imatch_hist_init(&ref, s->max_classes, 256, lo, hi, &ha, &d);
    if (e == ODL_OK)
        e = odl_imatch_hist_init(&obs, s->max_classes, 256, lo, hi, &ha, &d);
    for (int32_t k = 0; k < r && e == ODL_OK; k++)
        e = odl_imatch_hist_add(&ref, ry[k], raw + (size_t)k * isz, isz, &d);
    for (int32_t k = 0; k < n && e == ODL_OK; k++)
        e = odl_imatch_hist_add(&obs, y[k], x + (size_t)k * isz, isz, &d);
    /* a class counts once both sides have a few samples of it */
    if (e == ODL_OK)
        e = odl_imatch_fit(&ref, &obs, 3 * (uint64_t)isz, &map, &d);
    free(hbuf);
    if (e == ODL_ERR_STATE) { /* no class in common: new classes, not a new sensor */
        free(raw);
        free(ry);
        return 0;
    }
    if (e != ODL_OK) {
        free(raw);
        free(ry);
        return cli_fail(s->st.name, e, &d);
    }
    s->match_scratch = 2 * hp.total; /* the two histograms, while fitting */
    s->match_shift = map.mean_shift;
    s->match_classes = map.classes_used;
    odl_imatch_apply(&map, raw, raw, isz * (size_t)r);
    if (match_geometry(s, raw, ry, r, x, y, n, &map)) {
        free(raw);
        free(ry);
        return 1;
    }
    return append_extra(s, raw, ry, r, in, y, in_all, y_all, n_all);
}

/* Augmentation: `augment` copies of each new sample, each moved by a
 * random (dx, dy) in [-2, 2]² other than (0, 0), zero fill, appended (as
 * latents, or raw for STRAT_FULL) to the training set *in_all / *y_all of
 * *n_all samples (taking ownership of those arrays). Images only: a model
 * whose input is 1 pixel high gets no copies. */
static int shift_augment(session *s, const float *x, const int32_t *y, int32_t n, const float *in_cur,
                         const int32_t *y_cur, float **in_all, int32_t **y_all, int32_t *n_all)
{
    const odl_model_desc *bd = &s->base_desc;
    const int32_t K = s->st.augment;
    if (K <= 0 || !x || n == 0 || bd->in_h < 5 || bd->in_w < 5)
        return 0;
    const size_t isz = (size_t)bd->in_c * bd->in_h * bd->in_w;
    const int32_t m = n * K;
    float *raw = malloc(sizeof(float) * isz * (size_t)m);
    int32_t *ry = malloc(sizeof(int32_t) * (size_t)m);
    if (!raw || !ry) {
        free(raw);
        free(ry);
        return cli_error("out of memory");
    }
    for (int32_t k = 0; k < n; k++)
        for (int32_t c = 0; c < K; c++) {
            const int32_t j = k * K + c;
            odl_shift sh = {2, 0.0f, 0.0f, 0, 0};
            do {
                sh.dx = (int32_t)odl_rng_below(&s->rng, 5) - 2;
                sh.dy = (int32_t)odl_rng_below(&s->rng, 5) - 2;
            } while (sh.dx == 0 && sh.dy == 0);
            memcpy(raw + (size_t)j * isz, x + (size_t)k * isz, sizeof(float) * isz);
            odl_shift_apply(&sh, raw + (size_t)j * isz, 1, bd->in_c, bd->in_h, bd->in_w);
            ry[j] = y[k];
        }
    return append_extra(s, raw, ry, m, in_cur, y_cur, in_all, y_all, n_all);
}

int session_learn(session *s, const float *x, const float *z, const int32_t *y, int32_t n, int32_t n_classes)
{
    odl_diag d;
    odl_diag_clear(&d);
    odl_status e = ODL_OK;
    if (n_classes > s->max_classes)
        return cli_error("%s: %d classes exceed the session's %d", s->st.name, (int)n_classes, (int)s->max_classes);
    if (s->st.kind == STRAT_NCM || s->st.kind == STRAT_SLDA) {
        for (int32_t k = 0; k < n && e == ODL_OK; k++)
            e = s->ncm ? odl_ncm_add(s->ncm, z + (size_t)k * s->dim, y[k])
                       : odl_slda_add(s->slda, z + (size_t)k * s->dim, y[k]);
        s->n_classes = n_classes > s->n_classes ? n_classes : s->n_classes;
        return e == ODL_OK ? 0 : cli_fail(s->st.name, e, &d);
    }
    const float *in_new = s->st.kind == STRAT_FULL ? x : z;
    /* the training set: the new samples, plus the kept originals as the
     * user's sensor would see them (sensor matching) */
    float *in_owned = NULL;
    int32_t *y_owned = NULL, n_all = n;
    if (match_augment(s, x, in_new, y, n, &in_owned, &y_owned, &n_all))
        return 1;
    if (shift_augment(s, x, y, n, in_owned ? in_owned : in_new, y_owned ? y_owned : y, &in_owned, &y_owned,
                      &n_all)) {
        free(in_owned);
        free(y_owned);
        return 1;
    }
    int rc = learn_set(s, in_owned ? in_owned : in_new, y_owned ? y_owned : y, n_all, n_classes);
    free(in_owned);
    free(y_owned);
    if (rc)
        return 1;
    /* what was learned joins the old data (the matched samples already are) */
    for (int32_t k = 0; s->replay && k < n && e == ODL_OK; k++)
        e = odl_replay_add(s->replay, z + (size_t)k * s->dim, y[k], &s->rng, &d);
    if (e == ODL_OK && s->ewc)
        e = odl_ewc_estimate(s->ewc, s->head.m, 0, in_new, y, n, s->st.ewc_decay, &s->rng, &d);
    if (e != ODL_OK)
        return cli_fail(s->st.name, e, &d);
    return 0;
}

/* Trains the head on (in, y), n samples, grown to n_classes first. */
static int learn_set(session *s, const float *in, const int32_t *y, int32_t n, int32_t n_classes)
{
    odl_diag d;
    odl_diag_clear(&d);
    odl_status e = ODL_OK;
    const int32_t old_classes = s->n_classes;
    float *teacher = NULL, *replay_teacher = NULL;
    if (s->st.der > 0.0f && s->replay && odl_replay_count(s->replay) > 0 && s->st.kind != STRAT_FULL) {
        /* dark experience replay: the head's outputs on every slot, now */
        const int32_t r = odl_replay_count(s->replay);
        float *rz = malloc(sizeof(float) * (size_t)r * s->dim);
        int32_t lab;
        for (int32_t k = 0; rz && k < r; k++)
            odl_replay_get(s->replay, k, rz + (size_t)k * s->dim, &lab);
        replay_teacher = rz ? head_logits(s, rz, r) : NULL;
        free(rz);
        if (!replay_teacher)
            return cli_error("%s: replay teacher logits failed", s->st.name);
    }
    if (s->st.lwf_weight > 0.0f && (teacher = head_logits(s, in, n)) == NULL)
        return cli_error("%s: teacher logits failed", s->st.name);
    if (n_classes > s->n_classes) {
        owned_model grown;
        if (make_head(s, n_classes, &grown)) {
            free(teacher);
            return 1;
        }
        e = odl_model_transfer_params(grown.m, s->head.m, &s->rng, &d);
        if (e != ODL_OK) {
            owned_model_free(&grown);
            free(teacher);
            return cli_fail(s->st.name, e, &d);
        }
        owned_model old = s->head;
        s->head = grown;
        s->n_classes = n_classes;
        if (s->ewc && ewc_rebuild(s, s->ewc, old.m)) {
            owned_model_free(&old);
            free(teacher);
            return 1;
        }
        owned_model_free(&old);
        learn_count_trainable(&s->head.desc, &s->trainable);
    }
    odl_model_reset_optimizer(s->head.m);
    /* discriminative learning rates: γ per parameterised layer below the head */
    const odl_model_desc *hd = odl_model_get_desc(s->head.m);
    float *lr_scale = malloc(sizeof(float) * 2 * (size_t)hd->n_layers);
    if (!lr_scale) {
        free(teacher);
        free(replay_teacher);
        return cli_error("out of memory");
    }
    float *full_scale = lr_scale + hd->n_layers;
    float f = 1.0f;
    for (int32_t i = hd->n_layers - 1; i >= 0; i--) {
        lr_scale[i] = f;
        if (has_params(hd->layers[i].type))
            f *= s->st.lr_decay;
    }
    odl_adapt_cfg ac = odl_adapt_cfg_defaults();
    ac.from = 0;
    ac.epochs = s->st.epochs;
    ac.batch = s->st.batch;
    ac.ewc_lambda = s->ewc ? s->st.ewc_lambda : 0.0f;
    ac.lwf_weight = s->st.lwf_weight;
    ac.lwf_T = s->st.lwf_T;
    ac.lwf_classes = old_classes;
    ac.lr_scale = lr_scale;
    ac.replay_distill = replay_teacher ? s->st.der : 0.0f;
    const int32_t nr = s->replay ? odl_replay_count(s->replay) : 0;
    if (s->st.mix > 0.0f)
        ac.replay_per_epoch = (int32_t)(s->st.mix * (float)n + 0.5f);
    /* gradual unfreezing: stage k trains the top k+1 parameterised layers */
    int32_t stages = 1, per_stage = s->st.epochs;
    if (s->st.gradual > 0) {
        per_stage = s->st.gradual;
        stages = (s->st.epochs + per_stage - 1) / per_stage;
    }
    odl_mem_plan tp;
    ac.epochs = per_stage < s->st.epochs ? per_stage : s->st.epochs;
    e = odl_adapt_plan(s->head.m, &ac, n, nr, &tp, &d);
    if (e != ODL_OK) {
        free(teacher);
        free(replay_teacher);
        free(lr_scale);
        return cli_fail(s->st.name, e, &d);
    }
    {
        /* what this update holds besides the session: the trainer, the
         * training set's latents and the teachers' logits; the plan keeps
         * the largest update */
        odl_mem_plan up = tp;
        const size_t C = (size_t)odl_model_n_classes(s->head.m);
        up.bytes[ODL_MEM_BUFFERS] += sizeof(float) * (size_t)n * (size_t)s->dim +
                                     (teacher ? sizeof(float) * (size_t)n * C : 0) +
                                     (replay_teacher ? sizeof(float) * (size_t)nr * C : 0);
        up.bytes[ODL_MEM_SCRATCH] += s->match_scratch;
        up.total = 0;
        for (int k = 0; k < ODL_MEM_KINDS; k++)
            up.total += up.bytes[k];
        if (up.total > s->update_plan.total)
            s->update_plan = up;
    }
    void *tbuf = cli_alloc("training plan", tp.total);
    if (!tbuf) {
        free(teacher);
        free(replay_teacher);
        return 1;
    }
    odl_arena ta;
    odl_arena_init(&ta, tbuf, tp.total);
    odl_adapt *tr;
    e = odl_adapt_init(&tr, s->head.m, &ac, n, nr, &ta, &d);
    if (e == ODL_OK && replay_teacher)
        odl_adapt_set_replay_teacher(tr, replay_teacher, old_classes);
    odl_adapt_stats stats;
    memcpy(full_scale, lr_scale, sizeof(float) * (size_t)hd->n_layers);
    for (int32_t stage = 0; stage < stages && e == ODL_OK; stage++) {
        if (s->st.gradual > 0) {
            int32_t seen = 0;
            for (int32_t i = hd->n_layers - 1; i >= 0; i--) {
                lr_scale[i] = seen <= stage ? full_scale[i] : 0.0f;
                if (has_params(hd->layers[i].type))
                    seen++;
            }
        }
        /* the trainer keeps cfg.epochs from init; the last stage may be shorter */
        int32_t left = s->st.epochs - stage * per_stage;
        if (left < per_stage) {
            odl_adapt_cfg last = ac;
            last.epochs = left;
            odl_arena_init(&ta, tbuf, tp.total);
            e = odl_adapt_init(&tr, s->head.m, &last, n, nr, &ta, &d);
            if (e != ODL_OK)
                break;
            if (replay_teacher)
                odl_adapt_set_replay_teacher(tr, replay_teacher, old_classes);
        }
        e = odl_adapt_run(tr, s->head.m, in, y, n, teacher, old_classes, s->replay, s->ewc, &s->rng, &stats, &d);
    }
    free(tbuf);
    free(teacher);
    free(replay_teacher);
    free(lr_scale);
    if (e != ODL_OK)
        return cli_fail(s->st.name, e, &d);
    return 0;
}

odl_mem_plan session_plan(const session *s)
{
    odl_mem_plan p = s->learn_plan;
    odl_mem_plan_add(&p, &s->update_plan);
    return p;
}

int session_predict(session *s, const float *in, int32_t n, int32_t *pred)
{
    if (s->ncm || s->slda) {
        for (int32_t k = 0; k < n; k++) {
            odl_status e = s->ncm ? odl_ncm_predict(s->ncm, in + (size_t)k * s->dim, &pred[k], NULL)
                                  : odl_slda_predict(s->slda, in + (size_t)k * s->dim, &pred[k], NULL);
            if (e != ODL_OK)
                return cli_error("%s: predict failed (%s)", s->st.name, odl_status_str(e));
        }
        return 0;
    }
    const int32_t C = odl_model_n_classes(s->head.m);
    const odl_model_desc *hd = odl_model_get_desc(s->head.m);
    const size_t isz = (size_t)hd->in_c * hd->in_h * hd->in_w;
    for (int32_t k = 0; k < n; k += s->st.batch) {
        int32_t nb = n - k < s->st.batch ? n - k : s->st.batch;
        const float *o;
        odl_diag d;
        odl_status e = odl_model_forward(s->head.m, 0, in + (size_t)k * isz, nb, &o, &d);
        if (e != ODL_OK)
            return cli_fail(s->st.name, e, &d);
        for (int32_t j = 0; j < nb; j++) {
            int32_t best = 0;
            for (int32_t c = 1; c < C; c++)
                if (o[(size_t)j * C + c] > o[(size_t)j * C + best])
                    best = c;
            pred[k + j] = best;
        }
    }
    return 0;
}

void session_end(session *s)
{
    owned_model_free(&s->head);
    free(s->aux_buf);
    free(s->ewc_buf);
    memset(s, 0, sizeof *s);
}

int session_restore(session *s, const void *file, size_t len, uint32_t *restored)
{
    odl_diag d;
    odl_diag_clear(&d);
    *restored = 0;
    const uint8_t *p;
    size_t n;
    odl_status e;
    if (s->replay) {
        e = odl_state_find(file, len, ODL_CHUNK_REPLAY, &p, &n, &d);
        if (e == ODL_OK) {
            e = odl_state_read_replay(s->replay, p, n, &d);
            if (e != ODL_OK)
                return cli_fail("replay state", e, &d);
            *restored |= ODL_STATE_HAS_REPLAY;
        } else if (e != ODL_ERR_NOT_FOUND) {
            return cli_fail("replay state", e, &d);
        }
    }
    if (s->raw) {
        e = odl_state_find(file, len, ODL_CHUNK_RAW_REPLAY, &p, &n, &d);
        if (e == ODL_OK) {
            e = odl_state_read_replay(s->raw, p, n, &d);
            if (e != ODL_OK)
                return cli_fail("sensor-matching samples", e, &d);
            *restored |= ODL_STATE_HAS_RAW_REPLAY;
        } else if (e != ODL_ERR_NOT_FOUND) {
            return cli_fail("sensor-matching samples", e, &d);
        }
    }
    if (s->ncm || s->slda) {
        e = odl_state_find(file, len, s->ncm ? ODL_CHUNK_NCM : ODL_CHUNK_SLDA, &p, &n, &d);
        if (e == ODL_OK) {
            e = s->ncm ? odl_state_read_ncm(s->ncm, p, n, &d) : odl_state_read_slda(s->slda, p, n, &d);
            if (e != ODL_OK)
                return cli_fail("class statistics", e, &d);
            *restored |= s->ncm ? ODL_STATE_HAS_NCM : ODL_STATE_HAS_SLDA;
        } else if (e != ODL_ERR_NOT_FOUND) {
            return cli_fail("class statistics", e, &d);
        }
    }
    if (s->st.kind == STRAT_EWC) {
        e = odl_state_find(file, len, ODL_CHUNK_EWC, &p, &n, &d);
        if (e == ODL_OK) {
            if (!s->ewc && ewc_rebuild(s, NULL, NULL))
                return 1;
            e = odl_state_read_ewc(s->ewc, p, n, &d);
            if (e != ODL_OK)
                return cli_fail("EWC state", e, &d);
            *restored |= ODL_STATE_HAS_EWC;
        } else if (e != ODL_ERR_NOT_FOUND) {
            return cli_fail("EWC state", e, &d);
        }
    }
    return 0;
}

int session_save(session *s, const odl_model *base, const odl_model_desc *out_desc, const odl_meta_kv *meta,
                 int32_t n_meta, const char *path)
{
    owned_model om;
    odl_model_cfg cfg = odl_model_cfg_defaults();
    if (owned_model_make(&om, out_desc, &cfg))
        return 1;
    const int32_t b = s->boundary;
    odl_diag d;
    odl_diag_clear(&d);
    if (s->ncm || s->slda) {
        /* a class-statistics head is linear in the latent: it becomes the
         * model's last dense layer (the layers below are the base's) */
        if (b != out_desc->n_layers - 1) {
            owned_model_free(&om);
            return cli_error("internal: a class-statistics head sits on the last layer");
        }
        size_t nw, nb;
        float *w = odl_model_param(om.m, b, 0, &nw), *bias = odl_model_param(om.m, b, 1, &nb);
        const int32_t C = (int32_t)nb, D = s->dim;
        odl_status fe = s->slda ? odl_slda_fit(s->slda, &d) : ODL_OK;
        if (fe != ODL_OK) {
            owned_model_free(&om);
            return cli_fail("slda", fe, &d);
        }
        for (int32_t c = 0; c < C; c++) {
            const int seen = s->ncm ? odl_ncm_count(s->ncm, c) > 0 : odl_slda_count(s->slda, c) > 0;
            float *wr = w + (size_t)c * D;
            if (!seen) { /* never predicted */
                memset(wr, 0, sizeof(float) * (size_t)D);
                bias[c] = -1e30f;
            } else if (s->slda) {
                memcpy(wr, odl_slda_weights(s->slda) + (size_t)c * D, sizeof(float) * (size_t)D);
                bias[c] = odl_slda_bias(s->slda)[c];
            } else {
                /* argmin |z - mu|^2 = argmax 2 mu.z - |mu|^2 */
                const float *mu = odl_ncm_means(s->ncm) + (size_t)c * D;
                double q = 0.0;
                for (int32_t k = 0; k < D; k++) {
                    wr[k] = 2.0f * mu[k];
                    q += (double)mu[k] * mu[k];
                }
                bias[c] = (float)-q;
            }
        }
    }
    for (int32_t i = 0; i < out_desc->n_layers; i++)
        for (int which = 0; which < 2; which++) {
            if ((s->ncm || s->slda) && i >= b)
                continue;
            size_t n, ns;
            float *dst = odl_model_param(om.m, i, which, &n);
            const float *src = i < b ? odl_model_param_const(base, i, which, &ns)
                                     : odl_model_param_const(s->head.m, i - b, which, &ns);
            if (n && (!src || n != ns)) {
                owned_model_free(&om);
                return cli_error("internal: layer %d does not match", (int)i);
            }
            if (n)
                memcpy(dst, src, sizeof(float) * n);
        }
    odl_posix_file f;
    odl_writer w;
    odl_status e = odl_posix_writer_open(&f, &w, path, &d);
    if (e == ODL_OK) {
        const odl_state_parts parts = {s->replay, s->raw, s->ewc, s->ncm, s->slda};
        e = odl_state_save_model_with_parts(om.m, meta, n_meta, &parts, &w, &d);
        if (e == ODL_OK)
            e = odl_posix_writer_commit(&f, &d);
        else
            odl_posix_writer_abort(&f);
    }
    owned_model_free(&om);
    return e == ODL_OK ? 0 : cli_fail(path, e, &d);
}
