/* odl report: an HTML report (inline SVG) of the JSON `odl experiment --json` writes. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "report.h"

static void help(FILE *f)
{
    fputs("usage: odl report RESULTS.json -o REPORT.html [--title T]\n"
          "\n"
          "Renders the results `odl experiment --json` wrote as one self-contained\n"
          "HTML file (inline SVG, no script, nothing fetched): S1 and S2 accuracy\n"
          "bars per strategy (mean ± std over seeds), S3's accuracy matrix as a\n"
          "heatmap and forgetting curves per strategy, the planned memory per\n"
          "strategy (per kind when the JSON has \"planned\"), and training-loss\n"
          "curves when it has \"loss_curves\". See docs/reports.md.\n"
          "\n"
          "  -o, --output FILE   where to write the report (required)\n"
          "  --title T           the page title (default: odl experiment results)\n",
          f);
}

/* ---- a small strict JSON reader (RFC 8259; no extensions) --------------------------- */

typedef enum jtype { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ } jtype;

typedef struct jnode {
    jtype t;
    int line, col;
    double num;          /* J_NUM, J_BOOL */
    char *str;           /* J_STR */
    struct jnode *kids;  /* J_ARR, J_OBJ: n values */
    char **keys;         /* J_OBJ: n keys */
    int n;
} jnode;

typedef struct jparser {
    const char *file, *s, *p, *end, *line_start;
    int line, depth;
    char err[300];
} jparser;

static int jfail(jparser *j, const char *fmt, const char *arg)
{
    if (!j->err[0]) {
        char msg[200];
        snprintf(msg, sizeof msg, fmt, arg ? arg : "");
        snprintf(j->err, sizeof j->err, "%s:%d:%d: %s", j->file, j->line, (int)(j->p - j->line_start) + 1, msg);
    }
    return 1;
}

static void jspace(jparser *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')) {
        if (*j->p == '\n') {
            j->line++;
            j->line_start = j->p + 1;
        }
        j->p++;
    }
}

static const char *jwhat(jparser *j)
{
    static char b[32];
    if (j->p >= j->end)
        return "the end of the file";
    unsigned char c = (unsigned char)*j->p;
    if (c >= 0x20 && c < 0x7f)
        snprintf(b, sizeof b, "'%c'", c);
    else
        snprintf(b, sizeof b, "byte 0x%02x", c);
    return b;
}

static void jfree(jnode *n)
{
    if (n->t == J_STR)
        free(n->str);
    if (n->t == J_ARR || n->t == J_OBJ) {
        for (int i = 0; i < n->n; i++) {
            jfree(&n->kids[i]);
            if (n->keys)
                free(n->keys[i]);
        }
        free(n->kids);
        free(n->keys);
    }
    memset(n, 0, sizeof *n);
}

static int hex4(const char *p, unsigned *v)
{
    *v = 0;
    for (int k = 0; k < 4; k++) {
        char c = p[k];
        unsigned d = c >= '0' && c <= '9' ? (unsigned)(c - '0') : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                     : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10) : 16u;
        if (d > 15)
            return 1;
        *v = *v * 16 + d;
    }
    return 0;
}

static int jstring(jparser *j, char **out)
{
    /* at the opening quote */
    j->p++;
    size_t cap = 32, len = 0;
    char *b = malloc(cap);
    if (!b)
        return jfail(j, "out of memory", NULL);
    for (;;) {
        if (j->p >= j->end) {
            free(b);
            return jfail(j, "unterminated string", NULL);
        }
        unsigned char c = (unsigned char)*j->p;
        char tmp[4];
        size_t tl = 0;
        if (c == '"') {
            j->p++;
            break;
        } else if (c < 0x20) {
            free(b);
            return jfail(j, "a control character inside a string (escape it)", NULL);
        } else if (c == '\\') {
            if (j->p + 1 >= j->end) {
                free(b);
                return jfail(j, "unterminated string", NULL);
            }
            char e = j->p[1];
            j->p += 2;
            switch (e) {
            case '"': tmp[tl++] = '"'; break;
            case '\\': tmp[tl++] = '\\'; break;
            case '/': tmp[tl++] = '/'; break;
            case 'b': tmp[tl++] = '\b'; break;
            case 'f': tmp[tl++] = '\f'; break;
            case 'n': tmp[tl++] = '\n'; break;
            case 'r': tmp[tl++] = '\r'; break;
            case 't': tmp[tl++] = '\t'; break;
            case 'u': {
                unsigned u;
                if (j->end - j->p < 4 || hex4(j->p, &u)) {
                    free(b);
                    return jfail(j, "\\u needs four hex digits", NULL);
                }
                j->p += 4;
                if (u >= 0xD800 && u <= 0xDBFF) {
                    unsigned lo;
                    if (j->end - j->p < 6 || j->p[0] != '\\' || j->p[1] != 'u' || hex4(j->p + 2, &lo) || lo < 0xDC00 ||
                        lo > 0xDFFF) {
                        free(b);
                        return jfail(j, "a lone UTF-16 surrogate in \\u escapes", NULL);
                    }
                    j->p += 6;
                    u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
                } else if (u >= 0xDC00 && u <= 0xDFFF) {
                    free(b);
                    return jfail(j, "a lone UTF-16 surrogate in \\u escapes", NULL);
                }
                if (u == 0) {
                    free(b);
                    return jfail(j, "\\u0000 is not allowed here", NULL);
                }
                if (u < 0x80) {
                    tmp[tl++] = (char)u;
                } else if (u < 0x800) {
                    tmp[tl++] = (char)(0xC0 | (u >> 6));
                    tmp[tl++] = (char)(0x80 | (u & 0x3F));
                } else if (u < 0x10000) {
                    tmp[tl++] = (char)(0xE0 | (u >> 12));
                    tmp[tl++] = (char)(0x80 | ((u >> 6) & 0x3F));
                    tmp[tl++] = (char)(0x80 | (u & 0x3F));
                } else {
                    tmp[tl++] = (char)(0xF0 | (u >> 18));
                    tmp[tl++] = (char)(0x80 | ((u >> 12) & 0x3F));
                    tmp[tl++] = (char)(0x80 | ((u >> 6) & 0x3F));
                    tmp[tl++] = (char)(0x80 | (u & 0x3F));
                }
                break;
            }
            default:
                j->p -= 1;
                free(b);
                return jfail(j, "unknown escape \\%s in a string", (char[]){e, 0});
            }
        } else {
            tmp[tl++] = (char)c;
            j->p++;
        }
        if (len + tl + 1 > cap) {
            cap *= 2;
            char *nb = realloc(b, cap);
            if (!nb) {
                free(b);
                return jfail(j, "out of memory", NULL);
            }
            b = nb;
        }
        memcpy(b + len, tmp, tl);
        len += tl;
    }
    b[len] = 0;
    *out = b;
    return 0;
}

static int jnumber(jparser *j, double *out)
{
    const char *q = j->p;
    if (q < j->end && *q == '-')
        q++;
    if (q >= j->end || !(*q >= '0' && *q <= '9'))
        return jfail(j, "expected a value, found %s", jwhat(j));
    if (*q == '0' && q + 1 < j->end && q[1] >= '0' && q[1] <= '9')
        return jfail(j, "a number with a leading zero", NULL);
    while (q < j->end && *q >= '0' && *q <= '9')
        q++;
    if (q < j->end && *q == '.') {
        q++;
        if (q >= j->end || !(*q >= '0' && *q <= '9'))
            return jfail(j, "a digit must follow the decimal point", NULL);
        while (q < j->end && *q >= '0' && *q <= '9')
            q++;
    }
    if (q < j->end && (*q == 'e' || *q == 'E')) {
        q++;
        if (q < j->end && (*q == '+' || *q == '-'))
            q++;
        if (q >= j->end || !(*q >= '0' && *q <= '9'))
            return jfail(j, "a digit must follow the exponent", NULL);
        while (q < j->end && *q >= '0' && *q <= '9')
            q++;
    }
    char buf[64];
    size_t len = (size_t)(q - j->p);
    if (len >= sizeof buf)
        return jfail(j, "a number too long", NULL);
    memcpy(buf, j->p, len);
    buf[len] = 0;
    errno = 0;
    *out = strtod(buf, NULL);
    if (!isfinite(*out))
        return jfail(j, "a number out of range", NULL);
    j->p = q;
    return 0;
}

static int jvalue(jparser *j, jnode *n)
{
    memset(n, 0, sizeof *n);
    jspace(j);
    n->line = j->line;
    n->col = (int)(j->p - j->line_start) + 1;
    if (j->p >= j->end)
        return jfail(j, "expected a value, found the end of the file", NULL);
    char c = *j->p;
    if (c == '{' || c == '[') {
        if (++j->depth > 64)
            return jfail(j, "nested deeper than 64 levels", NULL);
        const int obj = c == '{';
        n->t = obj ? J_OBJ : J_ARR;
        j->p++;
        int cap = 0;
        jspace(j);
        if (j->p < j->end && *j->p == (obj ? '}' : ']')) {
            j->p++;
            j->depth--;
            return 0;
        }
        for (;;) {
            if (n->n == cap) {
                cap = cap ? cap * 2 : 8;
                jnode *nk = realloc(n->kids, sizeof(jnode) * (size_t)cap);
                if (!nk)
                    return jfail(j, "out of memory", NULL);
                n->kids = nk;
                if (obj) {
                    char **nkeys = realloc(n->keys, sizeof(char *) * (size_t)cap);
                    if (!nkeys)
                        return jfail(j, "out of memory", NULL);
                    n->keys = nkeys;
                }
            }
            memset(&n->kids[n->n], 0, sizeof(jnode));
            if (obj) {
                jspace(j);
                if (j->p >= j->end || *j->p != '"')
                    return jfail(j, "expected a key in double quotes, found %s", jwhat(j));
                char *key;
                if (jstring(j, &key))
                    return 1;
                for (int k = 0; k < n->n; k++)
                    if (!strcmp(n->keys[k], key)) {
                        jfail(j, "duplicate key \"%s\"", key);
                        free(key);
                        return 1;
                    }
                n->keys[n->n] = key;
                jspace(j);
                if (j->p >= j->end || *j->p != ':') {
                    n->n++; /* the key is owned now */
                    return jfail(j, "expected ':' after the key, found %s", jwhat(j));
                }
                j->p++;
            }
            int bad = jvalue(j, &n->kids[n->n]);
            n->n++;
            if (bad)
                return 1;
            jspace(j);
            if (j->p < j->end && *j->p == ',') {
                j->p++;
                continue;
            }
            if (j->p < j->end && *j->p == (obj ? '}' : ']')) {
                j->p++;
                break;
            }
            return jfail(j, obj ? "expected ',' or '}' in an object, found %s" : "expected ',' or ']' in an array, found %s",
                         jwhat(j));
        }
        j->depth--;
        return 0;
    }
    if (c == '"') {
        n->t = J_STR;
        return jstring(j, &n->str);
    }
    static const struct { const char *w; jtype t; double v; } lits[] = {
        {"true", J_BOOL, 1}, {"false", J_BOOL, 0}, {"null", J_NULL, 0}};
    for (int k = 0; k < 3; k++) {
        size_t l = strlen(lits[k].w);
        if ((size_t)(j->end - j->p) >= l && !strncmp(j->p, lits[k].w, l)) {
            n->t = lits[k].t;
            n->num = lits[k].v;
            j->p += l;
            return 0;
        }
    }
    if (!strncmp(j->p, "nan", 3) || !strncmp(j->p, "-nan", 4) || !strncmp(j->p, "inf", 3) || !strncmp(j->p, "-inf", 4) ||
        !strncmp(j->p, "NaN", 3) || !strncmp(j->p, "Infinity", 8))
        return jfail(j, "a non-finite number is not JSON (write null for a missing figure)", NULL);
    n->t = J_NUM;
    return jnumber(j, &n->num);
}

/* Parses a whole file; prints the error and returns 1 on failure. */
static int json_load(const char *path, jnode *root)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return cli_error("%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (!buf) {
            fclose(f);
            return cli_error("%s: out of memory", path);
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (len < cap)
            break;
        if (cap > ((size_t)1 << 30)) {
            free(buf);
            fclose(f);
            return cli_error("%s: larger than 1 GiB", path);
        }
        cap *= 2;
        char *nb = realloc(buf, cap);
        if (!nb)
            free(buf);
        buf = nb;
    }
    int rd_err = ferror(f);
    fclose(f);
    if (rd_err) {
        free(buf);
        return cli_error("%s: read error", path);
    }
    jparser j = {path, buf, buf, buf + len, buf, 1, 0, {0}};
    if (len >= 3 && !memcmp(buf, "\xEF\xBB\xBF", 3))
        j.p += 3, j.line_start = j.p;
    int bad = jvalue(&j, root);
    if (!bad) {
        jspace(&j);
        if (j.p < j.end)
            bad = jfail(&j, "unexpected %s after the JSON value", jwhat(&j));
    }
    free(buf);
    if (bad) {
        jfree(root);
        return cli_error("%s", j.err);
    }
    return 0;
}

static const jnode *jget(const jnode *o, const char *key)
{
    if (!o || o->t != J_OBJ)
        return NULL;
    for (int i = 0; i < o->n; i++)
        if (!strcmp(o->keys[i], key))
            return &o->kids[i];
    return NULL;
}

static const char *jtype_name(jtype t)
{
    static const char *const n[] = {"null", "a boolean", "a number", "a string", "an array", "an object"};
    return n[t];
}

/* ---- the results ------------------------------------------------------------------------------ */

#define MAX_METRICS 12
#define MAX_KINDS 16
#define MAX_TASKS 16

typedef struct metric {
    const char *name;
    double mean, std;
    int n;
} metric;

typedef struct xrow {
    const char *scenario, *strategy;
    double trainable, bytes;
    metric m[MAX_METRICS];
    int nm;
    const jnode *planned; /* object of numbers, or NULL */
    double R[MAX_TASKS * MAX_TASKS];
    int n_tasks; /* 0: no R_mean */
} xrow;

typedef struct results {
    const char *path;
    int seeds;
    xrow *rows;
    int n;
    const jnode *loss_curves;
    const jnode *scenarios; /* [{"scenario", "base": [...]}] or NULL */
} results;

static int where(const char *path, int i, const char *key, const jnode *n, const char *what)
{
    return cli_error("%s:%d:%d: results[%d]%s%s%s: %s", path, n ? n->line : 0, n ? n->col : 0, i, key ? "." : "",
                     key ? key : "", "", what);
}

static int numbers(const results *res, int i, const char *key, const jnode *a, double *mean, double *std, int *count)
{
    double s = 0, q = 0;
    int n = 0;
    for (int k = 0; k < a->n; k++) {
        const jnode *e = &a->kids[k];
        if (e->t == J_NULL)
            continue;
        if (e->t != J_NUM) {
            char msg[96];
            snprintf(msg, sizeof msg, "element %d is %s, expected a number or null", k, jtype_name(e->t));
            return where(res->path, i, key, e, msg);
        }
        s += e->num;
        n++;
    }
    *mean = n ? s / n : NAN;
    for (int k = 0; k < a->n; k++)
        if (a->kids[k].t == J_NUM)
            q += (a->kids[k].num - *mean) * (a->kids[k].num - *mean);
    *std = n > 1 ? sqrt(q / (n - 1)) : 0;
    *count = n;
    return 0;
}

static int read_results(const jnode *root, const char *path, results *res)
{
    memset(res, 0, sizeof *res);
    res->path = path;
    if (root->t != J_OBJ)
        return cli_error("%s: the top level is %s; expected the object odl experiment --json writes", path,
                         jtype_name(root->t));
    const jnode *seeds = jget(root, "seeds"), *rs = jget(root, "results");
    if (seeds && seeds->t != J_NUM)
        return cli_error("%s:%d:%d: \"seeds\" is %s, expected a number", path, seeds->line, seeds->col,
                         jtype_name(seeds->t));
    res->seeds = seeds ? (int)seeds->num : 0;
    if (!rs)
        return cli_error("%s: no \"results\" array (is this the output of odl experiment --json?)", path);
    if (rs->t != J_ARR)
        return cli_error("%s:%d:%d: \"results\" is %s, expected an array", path, rs->line, rs->col, jtype_name(rs->t));
    res->loss_curves = jget(root, "loss_curves");
    res->scenarios = jget(root, "scenarios");
    if (res->scenarios && res->scenarios->t != J_ARR)
        res->scenarios = NULL;
    if (res->loss_curves) {
        const jnode *lc = res->loss_curves;
        if (lc->t != J_OBJ)
            return cli_error("%s:%d:%d: \"loss_curves\" is %s, expected an object of arrays", path, lc->line, lc->col,
                             jtype_name(lc->t));
        for (int k = 0; k < lc->n; k++) {
            const jnode *a = &lc->kids[k];
            if (a->t != J_ARR)
                return cli_error("%s:%d:%d: loss_curves.%s is %s, expected an array of numbers", path, a->line, a->col,
                                 lc->keys[k], jtype_name(a->t));
            for (int e = 0; e < a->n; e++)
                if (a->kids[e].t != J_NUM && a->kids[e].t != J_NULL)
                    return cli_error("%s:%d:%d: loss_curves.%s[%d] is %s, expected a number", path, a->kids[e].line,
                                     a->kids[e].col, lc->keys[k], e, jtype_name(a->kids[e].t));
        }
    }
    res->rows = calloc((size_t)(rs->n ? rs->n : 1), sizeof(xrow));
    if (!res->rows)
        return cli_error("out of memory");
    for (int i = 0; i < rs->n; i++) {
        const jnode *o = &rs->kids[i];
        xrow *r = &res->rows[res->n];
        if (o->t != J_OBJ)
            return where(path, i, NULL, o, "expected an object");
        const jnode *sc = jget(o, "scenario"), *st = jget(o, "strategy"), *pb = jget(o, "planned_bytes"),
                    *tp = jget(o, "trainable_params");
        if (!sc || sc->t != J_STR)
            return where(path, i, "scenario", sc ? sc : o, sc ? "expected a string" : "missing");
        if (!st || st->t != J_STR)
            return where(path, i, "strategy", st ? st : o, st ? "expected a string" : "missing");
        if (!pb || pb->t != J_NUM)
            return where(path, i, "planned_bytes", pb ? pb : o, pb ? "expected a number" : "missing");
        if (tp && tp->t != J_NUM)
            return where(path, i, "trainable_params", tp, "expected a number");
        r->scenario = sc->str;
        r->strategy = st->str;
        r->bytes = pb->num;
        r->trainable = tp ? tp->num : NAN;
        for (int k = 0; k < o->n; k++) {
            const char *key = o->keys[k];
            const jnode *v = &o->kids[k];
            if (!strcmp(key, "R_mean")) {
                if (v->t != J_ARR || v->n < 1 || v->n > MAX_TASKS)
                    return where(path, i, key, v, "expected an array of 1 to 16 rows");
                r->n_tasks = v->n;
                for (int a = 0; a < v->n; a++) {
                    const jnode *row = &v->kids[a];
                    if (row->t != J_ARR || row->n != v->n)
                        return where(path, i, key, row, "expected a square matrix (each row as long as the matrix)");
                    for (int b = 0; b < row->n; b++) {
                        if (row->kids[b].t != J_NUM && row->kids[b].t != J_NULL)
                            return where(path, i, key, &row->kids[b], "expected numbers (or null)");
                        /* after task a, tasks b > a have not been seen: not measured */
                        r->R[a * v->n + b] = row->kids[b].t == J_NUM && b <= a ? row->kids[b].num : NAN;
                    }
                }
            } else if (!strcmp(key, "planned")) {
                if (v->t != J_OBJ)
                    return where(path, i, key, v, "expected an object of bytes per kind");
                for (int p = 0; p < v->n; p++)
                    if (v->kids[p].t != J_NUM || v->kids[p].num < 0)
                        return where(path, i, key, &v->kids[p], "expected a number of bytes");
                if (v->n > MAX_KINDS)
                    return where(path, i, key, v, "more than 16 kinds");
                r->planned = v;
            } else if (v->t == J_ARR) {
                if (r->nm == MAX_METRICS)
                    return where(path, i, key, v, "more than 12 metrics in one row");
                metric *m = &r->m[r->nm++];
                m->name = key;
                if (numbers(res, i, key, v, &m->mean, &m->std, &m->n))
                    return 1;
            }
        }
        res->n++;
    }
    if (res->n == 0)
        return cli_error("%s: \"results\" is empty: nothing to report", path);
    return 0;
}

/* ---- rendering ------------------------------------------------------------------------------------ */

static const char *metric_label(const char *name)
{
    static const char *const m[][2] = {
        {"user", "user (drifted test data)"}, {"original", "original (undrifted test set)"},
        {"old", "old classes"},               {"new", "new classes"},
        {"all", "all classes"},               {"ACC", "ACC: mean accuracy after the last task"},
        {"BWT", "BWT: backward transfer"}};
    for (size_t k = 0; k < sizeof m / sizeof m[0]; k++)
        if (!strcmp(name, m[k][0]))
            return m[k][1];
    return name;
}

static const char *scenario_text(const char *sc)
{
    if (!strncmp(sc, "S1", 2))
        return "One adaptation to a user whose sensor drifted: accuracy on the user's drifted test data and on the "
               "original test set, after learning from a few labelled examples. Bars: mean over seeds; whiskers: "
               "± one standard deviation.";
    if (!strncmp(sc, "S2", 2))
        return "New classes added to a model that knows the old ones: accuracy on the old classes, on the new ones and "
               "on all of them. Bars: mean over seeds; whiskers: ± one standard deviation.";
    if (!strncmp(sc, "S3", 2))
        return "A sequence of tasks (A = classes 0-3, the base; B = 4-5, C = 6-7, D = 8-9). ACC is the mean accuracy "
               "over all tasks after the last; BWT (backward transfer) is how much the earlier tasks' accuracy "
               "changed from when each was learnt (negative: forgotten).";
    return NULL;
}

/* Rows of one scenario, in file order. */
static int scenario_rows(const results *res, const char *sc, const xrow **out)
{
    int n = 0;
    for (int i = 0; i < res->n; i++)
        if (!strcmp(res->rows[i].scenario, sc))
            out[n++] = &res->rows[i];
    return n;
}

/* Metrics of a scenario: the union of its rows' metric names, in order ("sum" left out: it is user + original). */
static int scenario_metrics(const xrow *const *rows, int n, const char **names)
{
    int nm = 0;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < rows[i]->nm; k++) {
            const char *m = rows[i]->m[k].name;
            if (!strcmp(m, "sum"))
                continue;
            int seen = 0;
            for (int q = 0; q < nm; q++)
                seen |= !strcmp(names[q], m);
            if (!seen && nm < MAX_METRICS)
                names[nm++] = m;
        }
    return nm;
}

static const metric *row_metric(const xrow *r, const char *name)
{
    for (int k = 0; k < r->nm; k++)
        if (!strcmp(r->m[k].name, name))
            return &r->m[k];
    return NULL;
}

/* The base's accuracies before adaptation for scenario sc (the "scenarios"
 * array of odl experiment --json): how many, at most cap. */
static int scenario_base(const results *res, const char *sc, double *out, int cap)
{
    if (!res || !res->scenarios)
        return 0;
    for (int i = 0; i < res->scenarios->n; i++) {
        const jnode *o = &res->scenarios->kids[i];
        const jnode *name = o->t == J_OBJ ? jget(o, "scenario") : NULL;
        const jnode *b = o->t == J_OBJ ? jget(o, "base") : NULL;
        if (!name || name->t != J_STR || !b || b->t != J_ARR)
            continue;
        if (strcmp(name->str, sc) && strncmp(name->str, sc, strcspn(sc, " ")))
            continue;
        int n = 0;
        for (int k = 0; k < b->n && n < cap; k++)
            if (b->kids[k].t == J_NUM)
                out[n++] = b->kids[k].num;
        return n;
    }
    return 0;
}

static int render_metric_bars(report *rep, const results *res, const char *sc, const xrow *const *rows, int n,
                              int seeds)
{
    const char *names[MAX_METRICS];
    int nm = scenario_metrics(rows, n, names);
    if (!nm)
        return 0;
    const char *cats[1024], *labels[MAX_METRICS];
    double *v = malloc(sizeof(double) * (size_t)n * nm), *e = malloc(sizeof(double) * (size_t)n * nm);
    if (!v || !e) {
        free(v);
        free(e);
        return cli_error("out of memory");
    }
    int in_0_100 = 1, in_pm100 = 1;
    for (int i = 0; i < n; i++) {
        cats[i] = rows[i]->strategy;
        for (int k = 0; k < nm; k++) {
            const metric *m = row_metric(rows[i], names[k]);
            v[i * nm + k] = m ? m->mean : NAN;
            e[i * nm + k] = m ? m->std : NAN;
            if (m && isfinite(m->mean) && (m->mean < 0 || m->mean > 100))
                in_0_100 = 0;
            if (m && isfinite(m->mean) && (m->mean < -100 || m->mean > 100))
                in_pm100 = 0;
        }
    }
    for (int k = 0; k < nm; k++)
        labels[k] = metric_label(names[k]);
    char title[256], note[128];
    if (in_0_100)
        snprintf(title, sizeof title, "%s: accuracy per strategy", sc);
    else if (nm == 2)
        snprintf(title, sizeof title, "%s: %s and %s per strategy", sc, names[0], names[1]);
    else
        snprintf(title, sizeof title, "%s: results per strategy", sc);
    if (seeds > 1)
        snprintf(note, sizeof note, "mean \xC2\xB1 std over %d seeds; the exact value is at the end of each bar", seeds);
    else
        snprintf(note, sizeof note, "one seed; the exact value is at the end of each bar");
    report_bar_chart c = {0};
    c.title = title;
    c.value_label = in_0_100 ? "accuracy (%)" : in_pm100 ? "accuracy points (%)" : "value";
    c.categories = cats;
    c.n_categories = n;
    c.series = labels;
    c.n_series = nm;
    c.value = v;
    c.err = e;
    c.lo = in_0_100 ? 0 : NAN;
    c.hi = in_0_100 ? 100 : NAN;
    c.note = note;
    /* the base before adaptation, one line per metric it has (S1: user, original; S2: old) */
    double base[MAX_METRICS];
    char base_txt[MAX_METRICS][64];
    const char *base_labels[MAX_METRICS];
    int base_series[MAX_METRICS];
    int nb = scenario_base(res, sc, base, nm < MAX_METRICS ? nm : MAX_METRICS);
    for (int k = 0; k < nb; k++) {
        snprintf(base_txt[k], sizeof base_txt[k], "base %s %.1f", names[k], base[k]);
        base_labels[k] = base_txt[k];
        base_series[k] = k;
    }
    c.ref = base;
    c.ref_labels = base_labels;
    c.ref_series = base_series;
    c.n_ref = nb;
    int rc = report_bars(rep, &c);
    free(v);
    free(e);
    return rc;
}

static void task_names(int T, char names[][24], int s3)
{
    static const char *const s3n[] = {"A 0-3", "B 4-5", "C 6-7", "D 8-9"};
    for (int t = 0; t < T; t++) {
        if (s3 && T == 4)
            snprintf(names[t], 24, "%s", s3n[t]);
        else
            snprintf(names[t], 24, "task %d", t + 1);
    }
}

static int render_s3(report *rep, const char *sc, const xrow *const *rows, int n, int seeds)
{
    int rc = render_metric_bars(rep, NULL, sc, rows, n, seeds);
    /* the summary bars' title says accuracy; ACC and BWT are both in points */
    report_heading(rep, 3, "Accuracy matrix and forgetting, per strategy");
    report_text(rep, "Left: R[i][j], the accuracy (%) on task j after learning task i (rows: after task i; "
                     "columns: task j; mean over seeds; the upper triangle is not measured). Right: the forgetting "
                     "curves, each task's accuracy as later tasks arrive.");
    report_grid_begin(rep, 560);
    for (int i = 0; i < n && !rc; i++) {
        const xrow *r = rows[i];
        if (!r->n_tasks)
            continue;
        const int T = r->n_tasks;
        char tn[MAX_TASKS][24], rown[MAX_TASKS][32];
        const char *tnp[MAX_TASKS], *rnp[MAX_TASKS];
        task_names(T, tn, !strncmp(sc, "S3", 2));
        for (int t = 0; t < T; t++) {
            snprintf(rown[t], sizeof rown[t], "after %.1s", tn[t]);
            if (T != 4 || strncmp(sc, "S3", 2))
                snprintf(rown[t], sizeof rown[t], "after %d", t + 1);
            tnp[t] = tn[t];
            rnp[t] = rown[t];
        }
        report_card_begin(rep, r->strategy);
        report_heatmap h = {0};
        h.title = "accuracy matrix R (%)";
        h.row_label = "after learning task";
        h.col_label = "accuracy on task";
        h.rows = rnp;
        h.n_rows = T;
        h.cols = tnp;
        h.n_cols = T;
        h.v = r->R;
        h.lo = 0;
        h.hi = 100;
        h.unit = "%";
        h.width = 250;
        rc = report_heat(rep, &h);
        /* forgetting curves: series = task j, x = after task i */
        double y[MAX_TASKS * MAX_TASKS];
        const char *xt[MAX_TASKS];
        char xtn[MAX_TASKS][16];
        for (int t = 0; t < T; t++) {
            snprintf(xtn[t], sizeof xtn[t], "%.1s", tn[t]);
            if (T != 4 || strncmp(sc, "S3", 2))
                snprintf(xtn[t], sizeof xtn[t], "%d", t + 1);
            xt[t] = xtn[t];
        }
        for (int j = 0; j < T; j++)
            for (int t = 0; t < T; t++)
                y[j * T + t] = t >= j ? r->R[t * T + j] : NAN;
        report_line_chart lc = {0};
        lc.title = "forgetting curves";
        lc.x_label = "after learning task";
        lc.y_label = "accuracy (%)";
        lc.n_x = T;
        lc.x_ticks = xt;
        lc.series = tnp;
        lc.n_series = T;
        lc.y = y;
        lc.lo = 0;
        lc.hi = 100;
        lc.markers = 1;
        lc.width = 280;
        if (!rc)
            rc = report_lines(rep, &lc);
        report_card_end(rep);
    }
    report_grid_end(rep);
    return rc;
}

/* What the words in a strategy's name mean (odl experiment names each run by its settings). */
#define STRATEGY_LEGEND                                                                                              \
    "Strategy names: naive = the new examples only; replay N = N replayed latents of the original data "             \
    "(reservoir sampling; balanced = class-balanced; herding = herded exemplars); int8 = the replayed latents "      \
    "stored as INT8; ewc lambda=X = EWC with penalty X; lwf = distillation from the model before; full = every "     \
    "layer trained; ncm = nearest class mean; slda = streaming LDA; +K = K more layers trained below the head; "    \
    "+adR = a residual adapter with bottleneck R; match N = N original samples seen through the user's sensor; "    \
    "mix R, aug K, der W, lrdecay G, gradual E: the --add options of the same names (docs/cli.md)."

/* A device's RAM, drawn on the memory charts as the budget line. */
#define REPORT_BUDGET_BYTES (256.0 * 1024.0)

static int render_memory(report *rep, const char *sc, const xrow *const *rows, int n)
{
    /* the kinds: the union of the rows' "planned" keys, in order; a row without one counts as total only */
    const char *kinds[MAX_KINDS];
    int nk = 0, all_planned = 1;
    for (int i = 0; i < n; i++) {
        if (!rows[i]->planned) {
            all_planned = 0;
            continue;
        }
        for (int p = 0; p < rows[i]->planned->n; p++) {
            const char *k = rows[i]->planned->keys[p];
            if (!strcmp(k, "total"))
                continue;
            int seen = 0;
            for (int q = 0; q < nk; q++)
                seen |= !strcmp(kinds[q], k);
            if (!seen && nk < MAX_KINDS - 1)
                kinds[nk++] = k;
        }
    }
    if (!nk)
        all_planned = 0;
    const int ns = all_planned ? nk : 1;
    const char *cats[1024], *labels[MAX_KINDS], *colors[MAX_KINDS];
    double *v = malloc(sizeof(double) * (size_t)n * ns);
    if (!v)
        return cli_error("out of memory");
    static const struct { const char *key, *label, *color; } known[] = {
        {"params", "weights (params)", NULL},  {"grads", "gradients", NULL},
        {"optimizer", "optimizer state", NULL}, {"activations", "activations", NULL},
        {"scratch", "scratch", NULL},           {"buffers", "buffers (replay, Fisher, stats)", NULL},
        {"state", "state", NULL},               {"replay", "replay buffer", "#009E73"},
        {"fisher", "Fisher (EWC)", "#F0E442"},  {"stats", "class statistics", "#999933"}};
    static const char *const extra[] = {"#882255", "#44AA99", "#332288", "#AA4499", "#117733", "#88CCEE"};
    int n_extra = 0;
    for (int k = 0; k < ns; k++) {
        if (!all_planned) {
            labels[k] = "total planned bytes";
            colors[k] = "#5a5a5a";
            break;
        }
        labels[k] = kinds[k];
        colors[k] = extra[n_extra % 6];
        int found = 0;
        for (int q = 0; q < (int)(sizeof known / sizeof known[0]); q++)
            if (!strcmp(kinds[k], known[q].key)) {
                labels[k] = known[q].label;
                colors[k] = known[q].color ? known[q].color : report_mem_kind_color(q);
                found = 1;
            }
        if (!found)
            n_extra++;
    }
    for (int i = 0; i < n; i++) {
        cats[i] = rows[i]->strategy;
        for (int k = 0; k < ns; k++) {
            if (!all_planned) {
                v[i] = rows[i]->bytes;
                continue;
            }
            const jnode *b = jget(rows[i]->planned, kinds[k]);
            v[i * ns + k] = b ? b->num : 0;
        }
    }
    /* 1. each strategy's total against the budget, on a log axis: a 16 KiB
     * learner and a 3 MiB one both read, and the line says which fit */
    double *tot = malloc(sizeof(double) * (size_t)(n ? n : 1));
    if (!tot) {
        free(v);
        return cli_error("out of memory");
    }
    for (int i = 0; i < n; i++) {
        tot[i] = 0;
        for (int k = 0; k < ns; k++)
            tot[i] += v[i * ns + k];
    }
    char title[256];
    snprintf(title, sizeof title, "%s: memory each strategy plans for learning, against a 256 KB device", sc);
    const double budget = REPORT_BUDGET_BYTES;
    const char *budget_label = "256 KB budget";
    const char *total_color = "#0072B2";
    report_bar_chart t = {0};
    t.title = title;
    t.value_label = "planned bytes";
    t.categories = cats;
    t.n_categories = n;
    t.n_series = 1;
    t.value = tot;
    t.lo = NAN;
    t.hi = NAN;
    t.fmt = REPORT_FMT_BYTES;
    t.colors = &total_color;
    t.log_axis = 1;
    t.note = "total planned bytes beyond the frozen base's inference plan, log scale; the dashed line is a 256 KB "
             "device's RAM";
    t.ref = &budget;
    t.ref_labels = &budget_label;
    t.n_ref = 1;
    int rc = report_bars(rep, &t);
    /* 2. what each one is made of: its own total as 100%, each kind labelled
     * in bytes, so the parts of a small learner read as well as a large one's */
    if (!rc && all_planned) {
        snprintf(title, sizeof title, "%s: what each strategy's memory is made of", sc);
        report_bar_chart c = {0};
        c.title = title;
        c.value_label = "share of the strategy's planned bytes (%)";
        c.categories = cats;
        c.n_categories = n;
        c.series = labels;
        c.n_series = ns;
        c.value = v;
        c.lo = NAN;
        c.hi = NAN;
        c.stacked = 1;
        c.normalize = 1;
        c.fmt = REPORT_FMT_BYTES;
        c.colors = colors;
        c.note = "exact planned bytes per kind (the planning calls, 16-byte aligned blocks), each bar its strategy's "
                 "total; parts too narrow for a label show it on hover";
        rc = report_bars(rep, &c);
    }
    free(tot);
    free(v);
    return rc;
}

static int render_loss(report *rep, const jnode *lc)
{
    int ns = lc->n, nx = 0;
    if (ns <= 0)
        return 0;
    for (int s = 0; s < ns; s++)
        if (lc->kids[s].n > nx)
            nx = lc->kids[s].n;
    if (nx == 0)
        return 0;
    double *y = malloc(sizeof(double) * (size_t)ns * nx), *x = malloc(sizeof(double) * (size_t)nx);
    if (!y || !x) {
        free(y);
        free(x);
        return cli_error("out of memory");
    }
    for (int i = 0; i < nx; i++)
        x[i] = i + 1;
    for (int s = 0; s < ns; s++)
        for (int i = 0; i < nx; i++)
            y[s * nx + i] = i < lc->kids[s].n && lc->kids[s].kids[i].t == J_NUM ? lc->kids[s].kids[i].num : NAN;
    report_line_chart c = {0};
    c.title = "Training loss";
    c.x_label = "epoch";
    c.y_label = "loss (cross-entropy)";
    c.n_x = nx;
    c.x = x;
    c.series = (const char *const *)lc->keys;
    c.n_series = ns;
    c.y = y;
    c.lo = 0;
    c.hi = NAN;
    c.markers = nx <= 60;
    c.note = "mean training loss per epoch";
    int rc = report_lines(rep, &c);
    free(y);
    free(x);
    return rc;
}

static void render_table(report *rep, const xrow *const *rows, int n)
{
    const char *names[MAX_METRICS];
    int nm = scenario_metrics(rows, n, names);
    const int nc = nm + 3;
    const char **head = malloc(sizeof(char *) * (size_t)nc);
    char *cells = malloc((size_t)n * nc * 48);
    const char **cp = malloc(sizeof(char *) * (size_t)n * nc);
    if (!head || !cells || !cp) {
        free(head);
        free(cells);
        free(cp);
        return;
    }
    head[0] = "strategy";
    for (int k = 0; k < nm; k++)
        head[k + 1] = names[k];
    head[nm + 1] = "trainable params";
    head[nm + 2] = "planned bytes";
    for (int i = 0; i < n; i++) {
        for (int k = 0; k < nc; k++) {
            char *c = cells + ((size_t)i * nc + k) * 48;
            cp[i * nc + k] = c;
            c[0] = 0;
            if (k == 0)
                cp[i * nc + k] = rows[i]->strategy;
            else if (k <= nm) {
                const metric *m = row_metric(rows[i], names[k - 1]);
                if (m && isfinite(m->mean))
                    snprintf(c, 48, "%.1f \xC2\xB1 %.1f", m->mean, m->std);
            } else if (k == nm + 1) {
                if (isfinite(rows[i]->trainable))
                    snprintf(c, 48, "%.0f", rows[i]->trainable);
            } else {
                snprintf(c, 48, "%.0f", rows[i]->bytes);
            }
        }
    }
    report_table(rep, head, nc, cp, n);
    free(head);
    free(cells);
    free(cp);
}

int cmd_report(int argc, char **argv)
{
    const char *in = NULL, *out = NULL, *title = "odl experiment results";
    cli_args a = {argc, argv, 1, "report"};
    for (; a.i < argc; a.i++) {
        int r;
        if (cli_flag(&a, "--help") || cli_flag(&a, "-h")) {
            help(stdout);
            return 0;
        } else if ((r = cli_opt(&a, "--output", &out)) || (r = cli_opt(&a, "-o", &out)) ||
                   (r = cli_opt(&a, "--title", &title))) {
            if (r < 0) return 2;
        } else if (argv[a.i][0] == '-' && argv[a.i][1]) {
            cli_error("report: unknown option '%s' (see odl report --help)", argv[a.i]);
            return 2;
        } else if (!in) {
            in = argv[a.i];
        } else {
            cli_error("report: one results file at a time ('%s' is extra)", argv[a.i]);
            return 2;
        }
    }
    if (!in || !out) {
        cli_error("report: a RESULTS.json and -o REPORT.html are required (see odl report --help)");
        return 2;
    }
    {
        int orc = cli_check_output("-o", out, &in, 1);
        if (orc)
            return orc;
    }
    jnode root;
    if (json_load(in, &root))
        return 1;
    results res;
    if (read_results(&root, in, &res)) {
        free(res.rows);
        jfree(&root);
        return 1;
    }
    /* scenarios in order of appearance */
    const char *scen[64];
    int nsc = 0;
    for (int i = 0; i < res.n; i++) {
        int seen = 0;
        for (int k = 0; k < nsc; k++)
            seen |= !strcmp(scen[k], res.rows[i].scenario);
        if (!seen && nsc < 64)
            scen[nsc++] = res.rows[i].scenario;
    }
    const xrow **rows = malloc(sizeof(xrow *) * (size_t)res.n);
    report rep;
    char sub[512];
    snprintf(sub, sizeof sub, "From %s: %d result rows in %d scenario%s, %d seed%s each.", in, res.n, nsc,
             nsc == 1 ? "" : "s", res.seeds, res.seeds == 1 ? "" : "s");
    if (!rows || report_open(&rep, out, title, sub)) {
        free(rows);
        free(res.rows);
        jfree(&root);
        return 1;
    }
    int rc = 0;
    for (int k = 0; k < nsc && !rc; k++) {
        int n = scenario_rows(&res, scen[k], rows);
        if (n > 1024)
            n = 1024;
        report_heading(&rep, 2, scen[k]);
        if (scenario_text(scen[k]))
            report_text(&rep, scenario_text(scen[k]));
        int has_R = 0;
        for (int i = 0; i < n; i++)
            has_R |= rows[i]->n_tasks > 0;
        rc = has_R ? render_s3(&rep, scen[k], rows, n, res.seeds)
                   : render_metric_bars(&rep, &res, scen[k], rows, n, res.seeds);
        report_details_begin(&rep, "the figures as a table");
        render_table(&rep, rows, n);
        report_details_end(&rep);
        report_text(&rep, STRATEGY_LEGEND);
    }
    if (!rc) {
        report_heading(&rep, 2, "Memory");
        report_text(&rep, "What each strategy plans to allocate for learning, beyond the frozen base's inference plan: "
                          "exact bytes from the library's planning calls, the same on the device.");
    }
    for (int k = 0; k < nsc && !rc; k++) {
        int n = scenario_rows(&res, scen[k], rows);
        if (n > 1024)
            n = 1024;
        rc = render_memory(&rep, scen[k], rows, n);
    }
    if (!rc && res.loss_curves && res.loss_curves->n) {
        report_heading(&rep, 2, "Training loss");
        rc = render_loss(&rep, res.loss_curves);
    }
    int crc = report_close(&rep);
    if (!rc && !crc)
        printf("wrote %s: %d charts\n", out, rep.charts);
    free(rows);
    free(res.rows);
    jfree(&root);
    return rc || crc;
}
