#define _POSIX_C_SOURCE 200809L
#include "cli.h"

#include <errno.h>
#include <signal.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

size_t cli_max_memory = CLI_MAX_MEMORY_DEFAULT;

int cli_parse_size(const char *s, size_t *out)
{
    if (!s || *s < '0' || *s > '9')
        return 1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno)
        return 1;
    unsigned shift = 0;
    if (*end) {
        switch (*end) {
        case 'k': case 'K': shift = 10; break;
        case 'm': case 'M': shift = 20; break;
        case 'g': case 'G': shift = 30; break;
        case 't': case 'T': shift = 40; break;
        default: return 1;
        }
        end++;
        if (*end == 'i' && end[1] == 'B')
            end += 2;
        else if (*end == 'B')
            end++;
        if (*end)
            return 1;
    }
    if (v == 0 || v > ((unsigned long long)SIZE_MAX >> shift))
        return 1;
    *out = (size_t)(v << shift);
    return 0;
}

static void human_bytes(char *buf, size_t cap, size_t n)
{
    const char *unit[] = {"bytes", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)n;
    int u = 0;
    while (v >= 1024.0 && u < 4) {
        v /= 1024.0;
        u++;
    }
    if (u == 0)
        snprintf(buf, cap, "%zu bytes", n);
    else
        snprintf(buf, cap, "%.1f %s", v, unit[u]);
}

int cli_memory_check(const char *what, size_t bytes)
{
    if (bytes <= cli_max_memory)
        return 0;
    char need[32], lim[32];
    human_bytes(need, sizeof need, bytes);
    human_bytes(lim, sizeof lim, cli_max_memory);
    return cli_error("%s needs %zu bytes (%s), over the memory limit of %s (raise it with --max-memory SIZE)", what,
                     bytes, need, lim);
}

void *cli_alloc(const char *what, size_t bytes)
{
    if (cli_memory_check(what, bytes))
        return NULL;
    void *p = malloc(bytes ? bytes : 1);
    if (!p)
        cli_error("%s: out of memory (%zu bytes)", what, bytes);
    return p;
}

int cli_error(const char *fmt, ...)
{
    va_list ap;
    fputs("odl: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 1;
}

int cli_fail(const char *context, odl_status s, const odl_diag *d)
{
    const char *msg = (d && d->msg[0]) ? d->msg : odl_status_str(s);
    if (context && context[0])
        return cli_error("%s: %s", context, msg);
    return cli_error("%s", msg);
}

int cli_opt(cli_args *a, const char *name, const char **val)
{
    const char *arg = a->argv[a->i];
    size_t n = strlen(name);
    if (strncmp(arg, name, n) != 0)
        return 0;
    if (arg[n] == '=') {
        *val = arg + n + 1;
        return 1;
    }
    if (arg[n] != '\0')
        return 0;
    if (a->i + 1 >= a->argc) {
        cli_error("%s: option %s needs a value", a->cmd, name);
        return -1;
    }
    *val = a->argv[++a->i];
    return 1;
}

int cli_flag(cli_args *a, const char *name)
{
    return strcmp(a->argv[a->i], name) == 0;
}

int cli_parse_int(const char *opt, const char *s, long lo, long hi, int32_t *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return cli_error("%s: '%s' is not a whole number in %ld..%ld", opt, s, lo, hi);
    *out = (int32_t)v;
    return 0;
}

int cli_parse_split(const char *s, odl_split *out)
{
    if (!strcmp(s, "train"))
        *out = ODL_SPLIT_TRAIN;
    else if (!strcmp(s, "test"))
        *out = ODL_SPLIT_TEST;
    else
        return cli_error("--split: '%s' is not train or test", s);
    return 0;
}

int cli_parse_float(const char *opt, const char *s, double lo, double hi, float *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < lo || v > hi)
        return cli_error("%s: '%s' is not a number in %g..%g", opt, s, lo, hi);
    *out = (float)v;
    return 0;
}

int cli_parse_shape(const char *s, int32_t *c, int32_t *h, int32_t *w)
{
    long v[3];
    const char *p = s;
    for (int k = 0; k < 3; k++) {
        char *end;
        errno = 0;
        v[k] = strtol(p, &end, 10);
        if (errno || end == p || v[k] <= 0 || v[k] > 65536)
            return cli_error("--shape: '%s' is not CxHxW (e.g. 1x28x28)", s);
        p = end;
        if (k < 2) {
            if (*p != 'x' && *p != 'X')
                return cli_error("--shape: '%s' is not CxHxW (e.g. 1x28x28)", s);
            p++;
        }
    }
    if (*p)
        return cli_error("--shape: '%s' is not CxHxW (e.g. 1x28x28)", s);
    *c = (int32_t)v[0];
    *h = (int32_t)v[1];
    *w = (int32_t)v[2];
    return 0;
}

int cli_check_classes(const char *classes)
{
    if (!classes)
        return 0;
    odl_class_set *set = malloc(sizeof *set);
    if (!set)
        return cli_error("out of memory");
    odl_diag d;
    odl_diag_clear(&d);
    odl_status s = odl_class_set_parse(classes, set, &d);
    free(set);
    return s == ODL_OK ? 0 : cli_fail("--classes", s, &d);
}

const char *cli_label_col = NULL;

int cli_load_data(const char *path, odl_split split, odl_split default_split, const char *classes,
                  const char *shape, int32_t limit, odl_dataset *ds)
{
    odl_class_set *set = NULL;
    odl_data_opts o = odl_data_opts_defaults();
    o.label_col = cli_label_col;
    odl_diag d;
    odl_diag_clear(&d);
    o.split = split;
    o.default_split = default_split;
    o.limit = limit;
    o.max_bytes = cli_max_memory;
    if (shape && cli_parse_shape(shape, &o.c, &o.h, &o.w))
        return 1;
    if (classes) {
        set = malloc(sizeof *set);
        if (!set)
            return cli_error("out of memory");
        odl_status s = odl_class_set_parse(classes, set, &d);
        if (s != ODL_OK) {
            free(set);
            return cli_fail("--classes", s, &d);
        }
        o.classes = set;
    }
    odl_status s = odl_data_load(path, &o, ds, &d);
    free(set);
    if (s != ODL_OK) {
        if (s == ODL_ERR_NOMEM && strstr(d.msg, "memory limit"))
            return cli_error("%s (raise it with --max-memory SIZE)", d.msg);
        return cli_fail("", s, &d);
    }
    if (ds->n == 0)
        return cli_error("%s: no samples%s", path, classes ? " in the selected classes" : "");
    return 0;
}

int cli_fit_shape(odl_dataset *ds, const odl_model_desc *md, const char *path)
{
    if (ds->c == md->in_c && ds->h == md->in_h && ds->w == md->in_w)
        return 0;
    if ((uint64_t)ds->c * ds->h * ds->w == (uint64_t)md->in_c * md->in_h * md->in_w) {
        odl_diag d;
        odl_diag_clear(&d);
        if (odl_dataset_reshape(ds, md->in_c, md->in_h, md->in_w, &d) == ODL_OK)
            return 0;
    }
    return cli_error("%s: samples are %dx%dx%d; the model takes %dx%dx%d", path, (int)ds->c, (int)ds->h, (int)ds->w,
                     (int)md->in_c, (int)md->in_h, (int)md->in_w);
}

int cli_model_load(const char *path, const odl_model_cfg *cfg, cli_model *cm)
{
    odl_diag d;
    odl_diag_clear(&d);
    void *file;
    size_t len;
    odl_status s = odl_host_read_file(path, &file, &len, &d);
    if (s != ODL_OK) {
        memset(cm, 0, sizeof *cm);
        return cli_fail("", s, &d);
    }
    return cli_model_from_bytes(path, file, len, cfg, cm);
}

int cli_model_from_bytes(const char *name, void *file, size_t len, const odl_model_cfg *cfg, cli_model *cm)
{
    memset(cm, 0, sizeof *cm);
    cm->file = file;
    cm->file_len = len;
    odl_diag d;
    odl_diag_clear(&d);
    odl_status s = odl_host_read_desc(cm->file, cm->file_len, &cm->desc, &d);
    if (s != ODL_OK) {
        cli_fail(name, s, &d);
        cli_model_free(cm);
        return 1;
    }
    odl_mem_plan plan;
    s = odl_model_plan(&cm->desc, cfg, &plan, &d);
    if (s == ODL_OK) {
        char what[64];
        snprintf(what, sizeof what, "model %.40s", name);
        cm->arena_buf = cli_alloc(what, plan.total + ODL_ALIGN);
        if (!cm->arena_buf) {
            cli_model_free(cm);
            return 1;
        }
        s = odl_arena_init(&cm->arena, cm->arena_buf, plan.total + ODL_ALIGN);
    }
    if (s == ODL_OK)
        s = odl_model_init(&cm->m, &cm->desc, cfg, &cm->arena, &d);
    if (s == ODL_OK)
        s = odl_model_load_params(cm->m, cm->file, cm->file_len, &d);
    if (s != ODL_OK) {
        cli_fail(name, s, &d);
        cli_model_free(cm);
        return 1;
    }
    return 0;
}

void cli_model_free(cli_model *cm)
{
    odl_host_free(cm->file);
    free(cm->arena_buf);
    odl_host_desc_free(&cm->desc);
    memset(cm, 0, sizeof *cm);
}

double cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void cli_progress_init(cli_progress *p, int quiet)
{
    p->tty = isatty(fileno(stderr));
    p->quiet = quiet;
    p->t0 = p->last = cli_now();
}

int cli_evaluate(odl_model *m, const odl_dataset *ds, int32_t batch, cli_eval *ev)
{
    memset(ev, 0, sizeof *ev);
    const int32_t C = odl_model_n_classes(m);
    const size_t in = (size_t)ds->c * ds->h * ds->w;
    const odl_model_desc *md = odl_model_get_desc(m);
    if (in != (size_t)md->in_c * md->in_h * md->in_w)
        return cli_error("data samples have %d×%d×%d = %zu values; the model takes %d×%d×%d", (int)ds->c, (int)ds->h,
                         (int)ds->w, in, (int)md->in_c, (int)md->in_h, (int)md->in_w);
    for (int32_t k = 0; k < ds->n; k++)
        if (ds->y[k] >= C)
            return cli_error("label %d (sample %d) is outside the model's %d classes (use --classes)", (int)ds->y[k],
                             (int)k, (int)C);
    ev->n_classes = C;
    ev->confusion = calloc((size_t)C * C, sizeof(int64_t));
    if (!ev->confusion)
        return cli_error("out of memory");
    odl_diag d;
    odl_diag_clear(&d);
    for (int32_t start = 0; start < ds->n; start += batch) {
        int32_t n = ds->n - start < batch ? ds->n - start : batch;
        const float *out;
        odl_status s = odl_model_forward(m, 0, ds->x + (size_t)start * in, n, &out, &d);
        if (s != ODL_OK) {
            cli_eval_free(ev);
            return cli_fail("eval", s, &d);
        }
        for (int32_t k = 0; k < n; k++) {
            const float *z = out + (size_t)k * C;
            int32_t best = 0;
            for (int32_t j = 1; j < C; j++)
                if (z[j] > z[best])
                    best = j;
            int32_t y = ds->y[start + k];
            ev->confusion[(size_t)y * C + best]++;
            ev->correct += best == y;
            ev->n++;
        }
    }
    return 0;
}

void cli_eval_free(cli_eval *ev)
{
    free(ev->confusion);
    ev->confusion = NULL;
}

void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

/* 1 when `a` and `b` name the same existing file (or are the same string). */
static int same_file(const char *a, const char *b)
{
    if (!strcmp(a, b))
        return 1;
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

int cli_check_output(const char *opt, const char *path, const char *const *inputs, int n_inputs)
{
    for (int i = 0; i < n_inputs; i++)
        if (inputs[i] && same_file(path, inputs[i])) {
            cli_error("%s %s: names the input %s (choose another output; the input is never overwritten)", opt,
                      path, inputs[i]);
            return 2;
        }
    odl_diag d;
    odl_diag_clear(&d);
    odl_status s = odl_posix_output_check(path, &d);
    if (s != ODL_OK)
        return cli_fail(opt, s, &d);
    return 0;
}

int cli_outfile_open(cli_outfile *o, const char *path)
{
    memset(o, 0, sizeof *o);
    o->path = path;
    o->f = open_memstream(&o->buf, &o->len);
    if (!o->f)
        return cli_error("%s: out of memory", path);
    return 0;
}

void cli_outfile_discard(cli_outfile *o)
{
    if (o->f)
        fclose(o->f);
    free(o->buf);
    o->f = NULL;
    o->buf = NULL;
}

int cli_outfile_commit(cli_outfile *o)
{
    if (!o->f)
        return cli_error("%s: not open", o->path ? o->path : "output");
    int bad = ferror(o->f) != 0;
    bad |= fclose(o->f) != 0;
    o->f = NULL;
    if (bad) {
        cli_outfile_discard(o);
        return cli_error("%s: out of memory while writing", o->path);
    }
    odl_diag d;
    odl_diag_clear(&d);
    odl_posix_file pf;
    odl_writer w;
    odl_status s = odl_posix_writer_open(&pf, &w, o->path, &d);
    if (s == ODL_OK) {
        errno = 0;
        s = w.write(w.ctx, o->buf, o->len);
        if (s != ODL_OK) {
            int e = errno;
            odl_posix_writer_abort(&pf);
            odl_fail(&d, s, "write failed: %s", strerror(e ? e : EIO));
        } else {
            s = odl_posix_writer_commit(&pf, &d);
        }
    }
    cli_outfile_discard(o);
    return s == ODL_OK ? 0 : cli_fail(o->path, s, &d);
}

/* Length of the valid UTF-8 sequence at s (not C1 controls), or 0. */
static int utf8_len(const unsigned char *s)
{
    if (s[0] >= 0xC2 && s[0] <= 0xDF)
        return (s[1] & 0xC0) == 0x80 && !(s[0] == 0xC2 && s[1] < 0xA0) ? 2 : 0;
    if (s[0] >= 0xE0 && s[0] <= 0xEF) {
        if ((s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80)
            return 0;
        if ((s[0] == 0xE0 && s[1] < 0xA0) || (s[0] == 0xED && s[1] >= 0xA0))
            return 0; /* overlong, surrogate */
        return 3;
    }
    if (s[0] >= 0xF0 && s[0] <= 0xF4) {
        if ((s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80)
            return 0;
        if ((s[0] == 0xF0 && s[1] < 0x90) || (s[0] == 0xF4 && s[1] >= 0x90))
            return 0;
        return 4;
    }
    return 0;
}

size_t cli_escape_text(const char *s, char *out, size_t cap)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = 0;
    if (!cap)
        return 0;
    while (*p) {
        char piece[8];
        size_t k, adv;
        if (*p >= 0x20 && *p < 0x7f) {
            piece[0] = (char)*p;
            k = adv = 1;
        } else if (*p >= 0x80 && (adv = (size_t)utf8_len(p)) != 0) {
            memcpy(piece, p, adv);
            k = adv;
        } else {
            snprintf(piece, sizeof piece, "\\x%02x", *p);
            k = 4;
            adv = 1;
        }
        if (n + k >= cap)
            break; /* whole pieces only: never half an escape or a character */
        memcpy(out + n, piece, k);
        n += k;
        p += adv;
    }
    out[n] = '\0';
    return n;
}

static char cleanup_dir_path[1024], cleanup_file_path[1100];
static volatile sig_atomic_t cleanup_armed;

void cli_cleanup_dir(const char *dir, const char *file)
{
    cleanup_armed = 0;
    if (!dir || strlen(dir) >= sizeof cleanup_dir_path || (file && strlen(file) >= sizeof cleanup_file_path))
        return;
    memcpy(cleanup_dir_path, dir, strlen(dir) + 1);
    cleanup_file_path[0] = '\0';
    if (file)
        memcpy(cleanup_file_path, file, strlen(file) + 1);
    cleanup_armed = 1;
}

/* Async-signal-safe only: unlink, rmdir, signal, raise. */
static void on_signal(int sig)
{
    odl_posix_remove_pending();
    if (cleanup_armed) {
        if (cleanup_file_path[0])
            unlink(cleanup_file_path);
        rmdir(cleanup_dir_path);
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

void cli_install_cleanup(void)
{
    static const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_signal;
        sigemptyset(&sa.sa_mask);
        struct sigaction old;
        /* keep a signal ignored if it was (nohup) */
        if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler == SIG_IGN)
            continue;
        sigaction(sigs[i], &sa, NULL);
    }
}

/* ---- INT8 models on the host (quantize, export --int8-head) ---- */

odl_status cli_qmodel_init(cli_qmodel *h, const odl_model_desc *desc, int32_t boundary, int32_t batch, odl_diag *d)
{
    memset(h, 0, sizeof *h);
    odl_status s = odl_qmodel_plan(desc, boundary, batch, &h->plan, d);
    if (s != ODL_OK)
        return s;
    h->buf = malloc(h->plan.total + ODL_ALIGN);
    if (!h->buf)
        return odl_fail(d, ODL_ERR_NOMEM, "out of memory (%zu bytes)", h->plan.total);
    odl_arena a;
    odl_arena_init(&a, h->buf, h->plan.total + ODL_ALIGN);
    return odl_qmodel_init(&h->q, desc, boundary, batch, &a, d);
}

int cli_calibrate(odl_model *m, int32_t boundary, const odl_dataset *ds, int32_t samples, int32_t batch,
                  uint64_t seed, odl_qcalib *c, float *ranges)
{
    odl_diag d;
    odl_diag_clear(&d);
    const odl_model_desc *md = odl_model_get_desc(m);
    const size_t in = (size_t)ds->c * ds->h * ds->w;
    int32_t *idx = malloc(sizeof(int32_t) * (size_t)ds->n);
    float *xb = malloc(sizeof(float) * in * (size_t)batch);
    const size_t wf = odl_qcalib_work_floats(md, boundary, batch);
    float *work = malloc(sizeof(float) * (wf ? wf : 1));
    int rc = 0;
    if (!idx || !xb || !work) {
        rc = cli_error("out of memory");
        goto out;
    }
    for (int32_t k = 0; k < ds->n; k++)
        idx[k] = k;
    odl_rng r;
    odl_rng_seed(&r, seed, 0x7175616e74ULL);
    for (int32_t k = 0; k < samples; k++) { /* partial Fisher-Yates */
        int32_t j = k + (int32_t)odl_rng_below(&r, (uint32_t)(ds->n - k));
        int32_t t = idx[k];
        idx[k] = idx[j];
        idx[j] = t;
    }
    odl_status s = odl_qcalib_begin(c, md, boundary, ranges, &d);
    for (int32_t start = 0; start < samples && s == ODL_OK; start += batch) {
        const int32_t n = samples - start < batch ? samples - start : batch;
        for (int32_t k = 0; k < n; k++)
            memcpy(xb + (size_t)k * in, ds->x + (size_t)idx[start + k] * in, sizeof(float) * in);
        s = odl_qcalib_observe(c, m, xb, n, work, wf, &d);
    }
    if (s != ODL_OK)
        rc = cli_fail("calibration", s, &d);
out:
    free(idx);
    free(xb);
    free(work);
    return rc;
}
