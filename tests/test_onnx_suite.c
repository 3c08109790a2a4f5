/* ONNX's backend operator tests (Debian's libonnx-testdata) through odl:
 * every case whose operators odl claims is imported (its first input's
 * shape fixing the model's, the other graph inputs given as constants),
 * run, and compared with the expected output (relative 1e-4, absolute
 * 1e-5). Prints passed / failed / refused per operator. Fails when a case
 * of a claimed operator fails, or is refused for a reason not on the
 * documented list (docs/onnx.md).
 *
 * Usage: test_onnx_suite [--markdown] [DIR]   (DIR: the node tests, default
 * ODL_ONNX_TESTDATA) */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "odl/onnx.h"
#include "odl/posix_io.h"
#include "odl/layers.h"
#include "onnx.pb-c.h"

#ifndef ODL_ONNX_TESTDATA
#define ODL_ONNX_TESTDATA "/usr/share/libonnx-testdata/data/node"
#endif

static const char *claimed[] = {
    "Conv", "Gemm", "MatMul", "BatchNormalization", "Relu", "Clip", "LeakyRelu", "Sigmoid",
    "HardSigmoid", "HardSwish", "Tanh", "Add", "Mul", "Concat", "MaxPool", "AveragePool",
    "GlobalAveragePool", "ReduceMean", "Flatten", "Reshape", "Squeeze", "Unsqueeze", "Pad",
    "Dropout", "Identity", "Softmax",
};
#define N_CLAIMED (sizeof claimed / sizeof claimed[0])

/* Refusals that are odl's documented limits (docs/onnx.md, "What is
 * refused"): a substring of the importer's message, and why. */
static const struct {
    const char *pattern, *why;
} allowed[] = {
    {"several inputs", "two computed inputs: an odl model has one input"},
    {"has rank", "the input is not [N,C,H,W], [N,C,L] or [N,F]"},
    {"an input of rank", "the operator on a tensor of a rank odl does not have"},
    {"A of rank", "the operator on a tensor of a rank odl does not have"},
    {"operands of ranks", "the operator on a tensor of a rank odl does not have"},
    {"a result of rank", "a reshape to a rank odl does not have"},
    {"is float64", "a data type other than float32"},
    {"is int", "a data type other than float32"},
    {"is uint", "a data type other than float32"},
    {"is float16", "a data type other than float32"},
    {"is bool", "a data type other than float32"},
    {"is bfloat16", "a data type other than float32"},
    {"is a constant; odl runs", "the operator on constants only (nothing computed from the input)"},
    {"is a constant (it does not depend", "the output does not depend on the input"},
    {"the graph output", "the graph's output is its input (nothing left to run)"},
    {"outputs; odl models have one", "several graph outputs (masks, indices)"},
    {"is used; odl computes only the first output", "a second output (mask, indices) is used"},
    {"ceil_mode with a last window", "ONNX keeps a ceil-mode window that starts in the end padding"},
    {"dilations", "pools with dilation"},
    {"axis", "an axis other than channels (concat), batch-preserving flatten, softmax over a sample"},
    {"transA", "Gemm with a transposed input"},
    {"C must be a scalar or a row", "Gemm with a bias that varies over the batch"},
    {"a broadcast other than per channel", "broadcasting other than per channel or scalar"},
    {"both operands broadcast", "broadcasting other than per channel or scalar"},
    {"operands differ in dimension", "broadcasting other than per channel or scalar"},
    {"constant operand that varies", "broadcasting other than per channel or scalar"},
    {"padding of dimension", "padding of N or C"},
    {"negative padding", "negative padding (cropping)"},
    {"mode '", "a padding mode other than constant"},
    {"training_mode", "training-mode batch norm or dropout"},
    {"the first dimension is", "a reshape that moves data across samples"},
    {"reshapes across samples", "a reshape that moves data across samples"},
    {"axis 0 (the batch)", "squeezing or unsqueezing the batch dimension"},
    {"a fixed batch", "a batch dimension other than the samples'"},
    {"a softmax over axis", "softmax over part of a sample"},
    {"constant operands odl does not evaluate", "the operator on constants only"},
    {"must be a constant", "a weight or parameter computed from the input"},
    {"must be a float32 constant", "a weight or parameter computed from the input"},
    {"odl multiplies by weights", "MatMul of two computed tensors"},
    {"attribute '", "an attribute odl does not have"},
    {"B of rank", "MatMul with a batched (3-D or 4-D) weight"},
    {"axes other than the spatial", "ReduceMean over axes other than H and W"},
    {"(1 to", "an input dimension of 0"},
    {"opset", "an opset outside 9 to 17"},
};
#define N_ALLOWED (sizeof allowed / sizeof allowed[0])

#define MAX_REASONS 12
typedef struct opstat {
    const char *op;
    int passed, failed, refused;
    int n_reasons;
    char reason[MAX_REASONS][160];
    int reason_count[MAX_REASONS];
    char failed_cases[1024];
} opstat;

static opstat stats[N_CLAIMED];
static int bad_total;

static int is_claimed(const char *op)
{
    for (size_t k = 0; k < N_CLAIMED; k++)
        if (!strcmp(claimed[k], op))
            return (int)k;
    return -1;
}

static void *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *p = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (p && fread(p, 1, (size_t)n, f) != (size_t)n) {
        free(p);
        p = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return p;
}

/* A test tensor as floats (float32) or int64 values. */
typedef struct tens {
    int is_int;
    int rank;
    int64_t dims[8];
    size_t count;
    float *f;
    int64_t *i;
    int ok;     /* 0: a type the runner does not feed */
} tens;

static int read_tensor(const char *path, tens *t)
{
    memset(t, 0, sizeof *t);
    size_t len;
    void *buf = read_all(path, &len);
    if (!buf)
        return -1;
    Onnx__TensorProto *tp = onnx__tensor_proto__unpack(NULL, len, buf);
    free(buf);
    if (!tp)
        return -1;
    t->rank = (int)(tp->n_dims > 8 ? 8 : tp->n_dims);
    t->count = 1;
    for (int k = 0; k < t->rank; k++) {
        t->dims[k] = tp->dims[k];
        t->count *= (size_t)tp->dims[k];
    }
    int dt = tp->data_type;
    if (dt == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT) {
        t->f = malloc((t->count ? t->count : 1) * sizeof *t->f);
        if (t->count == 0)
            ;
        else if (tp->has_raw_data && tp->raw_data.len == t->count * 4)
            memcpy(t->f, tp->raw_data.data, t->count * 4);
        else if (tp->n_float_data == t->count)
            memcpy(t->f, tp->float_data, t->count * 4);
        else
            dt = -1;
        t->ok = dt != -1;
    } else if (dt == ONNX__TENSOR_PROTO__DATA_TYPE__BOOL) {
        /* fed as int64 0/1 (Dropout's training_mode) */
        t->is_int = 1;
        t->i = malloc((t->count ? t->count : 1) * sizeof *t->i);
        if (tp->has_raw_data && tp->raw_data.len == t->count)
            for (size_t k = 0; k < t->count; k++)
                t->i[k] = tp->raw_data.data[k] != 0;
        else if (tp->n_int32_data == t->count)
            for (size_t k = 0; k < t->count; k++)
                t->i[k] = tp->int32_data[k] != 0;
        else
            dt = -1;
        t->ok = dt != -1;
    } else if (dt == ONNX__TENSOR_PROTO__DATA_TYPE__INT64) {
        t->is_int = 1;
        t->i = malloc((t->count ? t->count : 1) * sizeof *t->i);
        if (t->count == 0)
            ;
        else if (tp->has_raw_data && tp->raw_data.len == t->count * 8)
            memcpy(t->i, tp->raw_data.data, t->count * 8);
        else if (tp->n_int64_data == t->count)
            memcpy(t->i, tp->int64_data, t->count * 8);
        else
            dt = -1;
        t->ok = dt != -1;
    }
    onnx__tensor_proto__free_unpacked(tp, NULL);
    return 0;
}

static void tens_free(tens *t)
{
    free(t->f);
    free(t->i);
}

static void add_reason(opstat *s, const char *msg)
{
    /* drop the "node N 'name' (Op): " prefix so equal reasons merge */
    const char *p = strstr(msg, "): ");
    p = p ? p + 3 : msg;
    for (int k = 0; k < s->n_reasons; k++)
        if (!strncmp(s->reason[k], p, sizeof s->reason[k] - 1)) {
            s->reason_count[k]++;
            return;
        }
    if (s->n_reasons < MAX_REASONS) {
        snprintf(s->reason[s->n_reasons], sizeof s->reason[0], "%.159s", p);
        s->reason_count[s->n_reasons++] = 1;
    }
}

static int allowed_reason(const char *msg)
{
    for (size_t k = 0; k < N_ALLOWED; k++)
        if (strstr(msg, allowed[k].pattern))
            return 1;
    return 0;
}

/* The operator a case tests: its one node's, or for several nodes (the
 * "_expanded" cases) the claimed operator the case's name starts with;
 * -1 when any node's operator is not claimed. */
static int case_op(const Onnx__GraphProto *g, const char *case_name)
{
    if (g->n_node == 0)
        return -1;
    for (size_t k = 0; k < g->n_node; k++)
        if (is_claimed(g->node[k]->op_type) < 0)
            return -1;
    if (g->n_node == 1)
        return is_claimed(g->node[0]->op_type);
    /* name: test_<op in lower case, maybe with underscores>... */
    char flat[256];
    size_t j = 0;
    for (const char *p = case_name + 5; *p && j + 1 < sizeof flat; p++)
        if (*p != '_')
            flat[j++] = *p;
    flat[j] = 0;
    int best = -1;
    size_t best_len = 0;
    for (size_t k = 0; k < g->n_node; k++) {
        const char *op = g->node[k]->op_type;
        size_t l = strlen(op), m;
        for (m = 0; m < l && flat[m] && (flat[m] | 32) == (op[m] | 32); m++)
            ;
        if (m == l && l > best_len) {
            best = is_claimed(op);
            best_len = l;
        }
    }
    return best;
}

/* Runs one case (every test_data_set_*). Returns 1 passed, 0 failed, -1
 * refused, with a message in msg. */
static int run_case(const char *dir, const Onnx__GraphProto *g, const void *mbuf, size_t mlen,
                    char *msg, size_t cap)
{
    /* the graph's inputs that are not initializers, in order */
    const char *in_names[16];
    int n_in = 0;
    for (size_t k = 0; k < g->n_input && n_in < 16; k++) {
        int init = 0;
        for (size_t q = 0; q < g->n_initializer; q++)
            if (!strcmp(g->initializer[q]->name, g->input[k]->name))
                init = 1;
        if (!init)
            in_names[n_in++] = g->input[k]->name;
    }
    int result = 1;
    int n_sets = 0;
    for (int set = 0; set < 100 && result == 1; set++) {
        char path[4096];
        snprintf(path, sizeof path, "%.3500s/test_data_set_%d/input_0.pb", dir, set);
        tens x;
        if (read_tensor(path, &x) != 0)
            break;
        n_sets++;
        tens extra[16];
        odl_onnx_const consts[16];
        int n_extra = 0;
        result = 1;
        if (!x.ok || x.is_int) {
            snprintf(msg, cap, "input 0 is not float32: odl takes float32 input (is int)");
            result = -1;
        }
        if (result == 1 && (x.rank < 2 || x.rank > 4)) {
            snprintf(msg, cap, "input 0 has rank %d (odl takes [N,C,H,W], [N,C,L] or [N,F])", x.rank);
            result = -1;
        }
        for (int k = 1; k < n_in && result == 1; k++) {
            snprintf(path, sizeof path, "%.3500s/test_data_set_%d/input_%d.pb", dir, set, k);
            if (read_tensor(path, &extra[n_extra]) != 0)
                continue; /* an optional input left out */
            tens *e = &extra[n_extra];
            if (!e->ok) {
                tens_free(e);
                snprintf(msg, cap, "input %d is int or another type the runner does not feed", k);
                result = -1;
                break;
            }
            consts[n_extra].name = in_names[k];
            consts[n_extra].is_int64 = e->is_int;
            consts[n_extra].rank = e->rank;
            memcpy(consts[n_extra].dims, e->dims, sizeof e->dims);
            consts[n_extra].data = e->f;
            consts[n_extra].data64 = e->i;
            n_extra++;
        }
        odl_onnx_model im;
        memset(&im, 0, sizeof im);
        odl_onnx_built b;
        memset(&b, 0, sizeof b);
        odl_diag d;
        odl_diag_clear(&d);
        if (result == 1) {
            odl_onnx_opts o = odl_onnx_opts_defaults();
            o.batch = x.dims[0];
            o.in_c = (int32_t)(x.rank > 1 ? x.dims[1] : 1);
            o.in_h = (int32_t)(x.rank > 2 ? x.dims[2] : 1);
            o.in_w = (int32_t)(x.rank > 3 ? x.dims[3] : 1);
            o.consts = consts;
            o.n_consts = n_extra;
            odl_status s = odl_onnx_import(mbuf, mlen, &o, &im, &d);
            if (s != ODL_OK) {
                snprintf(msg, cap, "%s", d.msg);
                result = -1;
            }
        }
        if (result == 1) {
            odl_layer_shape *sh = calloc((size_t)im.desc.n_layers + 1, sizeof *sh);
            odl_status s = odl_desc_check(&im.desc, sh, &d);
            free(sh);
            if (s != ODL_OK) {
                snprintf(msg, cap, "imported, but odl_desc_check refuses it: %s", d.msg);
                result = 0;
            }
        }
        if (result == 1) {
            odl_model_cfg cfg = odl_model_cfg_defaults();
            cfg.mode = ODL_MODE_INFER;
            cfg.max_batch = (int32_t)x.dims[0];
            odl_status s = odl_onnx_build(&im, &cfg, &b, &d);
            const float *out = NULL;
            if (s == ODL_OK)
                s = odl_model_forward(b.m, 0, x.f, (int32_t)x.dims[0], &out, &d);
            if (s != ODL_OK) {
                snprintf(msg, cap, "imported, but the model does not run: %s", d.msg);
                result = 0;
            } else {
                tens y;
                snprintf(path, sizeof path, "%.3500s/test_data_set_%d/output_0.pb", dir, set);
                if (read_tensor(path, &y) != 0 || !y.ok || y.is_int) {
                    snprintf(msg, cap, "cannot read %.400s", path);
                    result = 0;
                } else {
                    int32_t k = odl_model_n_classes(b.m);
                    size_t n = (size_t)x.dims[0] * (size_t)k;
                    float *p = malloc((n ? n : 1) * sizeof *p);
                    for (int64_t r = 0; r < x.dims[0]; r++) {
                        if (im.desc.softmax_output)
                            odl_softmax_f32(k, out + (size_t)r * k, p + (size_t)r * k);
                        else
                            memcpy(p + (size_t)r * k, out + (size_t)r * k, (size_t)k * sizeof *p);
                    }
                    if (n != y.count) {
                        snprintf(msg, cap, "odl gives %zu values, ONNX %zu", n, y.count);
                        result = 0;
                    } else {
                        double worst = 0;
                        size_t at = 0;
                        for (size_t e = 0; e < n; e++) {
                            double diff = fabs((double)p[e] - (double)y.f[e]);
                            double tol = 1e-5 + 1e-4 * fabs((double)y.f[e]);
                            if (!(diff <= tol) && (worst == 0 || diff > worst)) {
                                worst = diff > 0 ? diff : 1;
                                at = e;
                            }
                        }
                        if (worst > 0) {
                            snprintf(msg, cap, "set %d: value %zu is %g, expected %g", set, at,
                                     (double)p[at], (double)y.f[at]);
                            result = 0;
                        }
                    }
                    free(p);
                }
                tens_free(&y);
            }
        }
        odl_onnx_built_free(&b);
        odl_onnx_free(&im);
        for (int k = 0; k < n_extra; k++)
            tens_free(&extra[k]);
        tens_free(&x);
    }
    if (n_sets == 0) {
        snprintf(msg, cap, "no test_data_set_0/input_0.pb");
        return 0;
    }
    return result;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv)
{
    int markdown = 0;
    const char *root = ODL_ONNX_TESTDATA;
    for (int k = 1; k < argc; k++) {
        if (!strcmp(argv[k], "--markdown"))
            markdown = 1;
        else
            root = argv[k];
    }
    for (size_t k = 0; k < N_CLAIMED; k++)
        stats[k].op = claimed[k];
    DIR *dir = opendir(root);
    if (!dir) {
        printf("FAIL: cannot open %s (install Debian's libonnx-testdata)\n", root);
        return 1;
    }
    char **names = NULL;
    size_t n_names = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(dir))) {
        if (strncmp(e->d_name, "test_", 5))
            continue;
        if (n_names == cap) {
            cap = cap ? 2 * cap : 1024;
            names = realloc(names, cap * sizeof *names);
        }
        names[n_names++] = strdup(e->d_name);
    }
    closedir(dir);
    qsort(names, n_names, sizeof *names, cmp_names);
    int n_cases = 0;
    for (size_t c = 0; c < n_names; c++) {
        char path[4096], msg[512];
        snprintf(path, sizeof path, "%s/%s/model.onnx", root, names[c]);
        size_t len;
        void *buf = read_all(path, &len);
        if (!buf)
            continue;
        Onnx__ModelProto *mp = onnx__model_proto__unpack(NULL, len, buf);
        if (!mp || !mp->graph) {
            if (mp)
                onnx__model_proto__free_unpacked(mp, NULL);
            free(buf);
            continue;
        }
        int op = case_op(mp->graph, names[c]);
        if (op >= 0) {
            n_cases++;
            snprintf(path, sizeof path, "%s/%s", root, names[c]);
            msg[0] = 0;
            int r = run_case(path, mp->graph, buf, len, msg, sizeof msg);
            opstat *s = &stats[op];
            if (r == 1) {
                s->passed++;
                if (!markdown)
                    printf("pass    %-12s %s\n", claimed[op], names[c]);
            } else if (r < 0) {
                s->refused++;
                add_reason(s, msg);
                int ok = allowed_reason(msg);
                if (!ok)
                    bad_total++;
                if (!markdown)
                    printf("%s %-12s %s: %s\n", ok ? "refused" : "REFUSED (undocumented reason)",
                           claimed[op], names[c], msg);
            } else {
                s->failed++;
                bad_total++;
                size_t l = strlen(s->failed_cases);
                snprintf(s->failed_cases + l, sizeof s->failed_cases - l, "%s%s", l ? ", " : "",
                         names[c] + 5);
                if (!markdown)
                    printf("FAIL    %-12s %s: %s\n", claimed[op], names[c], msg);
            }
        }
        onnx__model_proto__free_unpacked(mp, NULL);
        free(buf);
    }
    for (size_t c = 0; c < n_names; c++)
        free(names[c]);
    free(names);
    if (markdown) {
        printf("| Operator | Passed | Failed | Refused | Refusals |\n|---|---:|---:|---:|---|\n");
        for (size_t k = 0; k < N_CLAIMED; k++) {
            opstat *s = &stats[k];
            printf("| %s | %d | %d | %d | ", s->op, s->passed, s->failed, s->refused);
            for (int r = 0; r < s->n_reasons; r++)
                printf("%s%s (%d)", r ? "; " : "", s->reason[r], s->reason_count[r]);
            printf(" |\n");
        }
        return bad_total ? 1 : 0;
    }
    printf("\n%-20s %6s %6s %7s\n", "operator", "passed", "failed", "refused");
    int tp = 0, tf = 0, tr = 0;
    for (size_t k = 0; k < N_CLAIMED; k++) {
        opstat *s = &stats[k];
        printf("%-20s %6d %6d %7d%s%s\n", s->op, s->passed, s->failed, s->refused,
               s->failed ? "   failed: " : "", s->failed_cases);
        for (int r = 0; r < s->n_reasons; r++)
            printf("%22s refused %dx: %s\n", "", s->reason_count[r], s->reason[r]);
        tp += s->passed;
        tf += s->failed;
        tr += s->refused;
    }
    printf("\n%d cases of claimed operators: %d passed, %d failed, %d refused; %d bad (failed or "
           "refused for an undocumented reason)\n", n_cases, tp, tf, tr, bad_total);
    return bad_total ? 1 : 0;
}
