/* Kernels of the graph operators (odl/layers.h): general window ops
 * (groups, dilation, asymmetric padding, ceil mode, count_include_pad),
 * affine, activations, broadcast add/mul, concat, pad, accumulate.
 * Every backward is checked against central finite differences of its
 * forward, every fast path against its reference loop, and pooling and the
 * activations against values PyTorch produced. */
#include <stdio.h>
#include <stdlib.h>

#include "harness.h"
#include "odl/layers.h"
#include "odl/model.h"

/* ---- fixtures ------------------------------------------------------------ */

static uint32_t g_seed = 12345u;

static float frand(void) /* uniform in [-1, 1) */
{
    g_seed = g_seed * 1664525u + 1013904223u;
    return (float)(g_seed >> 8) / 8388608.0f - 1.0f;
}

static float *fbuf(size_t n) /* random contents */
{
    float *p = malloc(sizeof(float) * (n ? n : 1));
    if (p)
        for (size_t i = 0; i < n; i++)
            p[i] = frand();
    return p;
}

static float *fcopy(const float *src, size_t n)
{
    float *p = malloc(sizeof(float) * (n ? n : 1));
    if (p && n)
        memcpy(p, src, sizeof(float) * n);
    return p;
}

/* max |a-b| / (1 + |b|) */
static double max_rel_err(const float *a, const float *b, size_t n)
{
    double e = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]) / (1.0 + fabs((double)b[i]));
        if (!(d <= e)) /* NaN counts */
            e = isnan(d) ? INFINITY : d;
    }
    return e;
}

#define CHECK_CLOSE(a, b, n, tol) do { double e_ = max_rel_err((a), (b), (n)); \
    if (!(e_ <= (tol))) { odl_test_logf(t, "    max rel err %g (tol %g)", e_, (double)(tol)); \
    odl_test_fail_at(t, __FILE__, __LINE__, #a " ~ " #b); } } while (0)

/* Central finite differences of loss() = sum(r * y) with respect to every
 * element of p, compared with the analytic gradient g. The forward ops are
 * linear (or piecewise linear with inputs kept away from the kinks) in p, so
 * a large eps (a power of two: p +- eps is exact) leaves only rounding. */
typedef double (*loss_fn)(void *ctx);

static double fd_max_err(float *p, size_t n, const float *g, float eps, loss_fn loss, void *ctx)
{
    double worst = 0.0;
    for (size_t i = 0; i < n; i++) {
        const float keep = p[i];
        p[i] = keep + eps;
        const double lp = loss(ctx);
        p[i] = keep - eps;
        const double lm = loss(ctx);
        p[i] = keep;
        const double fd = (lp - lm) / (2.0 * (double)eps);
        const double e = fabs(fd - (double)g[i]) / (1.0 + fabs(fd));
        if (!(e <= worst))
            worst = isnan(e) ? INFINITY : e;
    }
    return worst;
}

#define CHECK_FD(p, n, g, eps, loss, ctx, tol) do { double e_ = fd_max_err((p), (n), (g), (eps), (loss), (ctx)); \
    if (!(e_ <= (tol))) { odl_test_logf(t, "    finite-difference err %g (tol %g)", e_, (double)(tol)); \
    odl_test_fail_at(t, __FILE__, __LINE__, "finite differences of " #g); } } while (0)

static double dot_d(const float *a, const float *b, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += (double)a[i] * (double)b[i];
    return s;
}

/* ---- window output sizes ------------------------------------------------- */

static void test_window_out_size(odl_test_ctx *t)
{
    /* (in, k, stride, pad_begin, pad_end, dilation, ceil) -> PyTorch's size
     * (torch 1.13 F.max_pool2d / conv2d output shapes) */
    static const int32_t cases[][8] = {
        {5, 2, 2, 0, 0, 1, 0, 2}, {5, 2, 2, 0, 0, 1, 1, 3},
        {5, 3, 2, 1, 1, 1, 1, 3}, {6, 3, 2, 1, 1, 1, 1, 4}, {6, 3, 2, 1, 1, 1, 0, 3},
        {7, 3, 2, 1, 1, 1, 1, 4}, {6, 2, 2, 1, 1, 1, 1, 4},
        /* ceil would add a window starting in the trailing padding: dropped */
        {5, 3, 3, 1, 1, 1, 1, 2}, {5, 3, 3, 1, 1, 1, 0, 2},
        {7, 3, 1, 0, 0, 2, 0, 3}, {5, 2, 1, 1, 1, 2, 0, 5},
        {8, 3, 2, 0, 2, 1, 0, 4}, {8, 3, 2, 2, 0, 1, 0, 4}, {4, 1, 1, 0, 3, 1, 0, 7},
        {3, 3, 1, 0, 0, 1, 0, 1},
        /* no window fits, or invalid arguments */
        {2, 3, 1, 0, 0, 1, 0, -1}, {5, 3, 1, 0, 0, 3, 0, -1}, {5, 3, 0, 0, 0, 1, 0, -1},
        {5, 3, 1, -1, 0, 1, 0, -1}, {5, 3, 1, 0, 0, 0, 0, -1}, {0, 1, 1, 0, 0, 1, 0, -1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const int32_t *c = cases[i];
        const int32_t got = odl_window_out_size_ex(c[0], c[1], c[2], c[3], c[4], c[5], c[6]);
        if (got != c[7])
            odl_test_logf(t, "    case %zu: in %d k %d s %d pads %d/%d dil %d ceil %d: %d, want %d", i,
                          c[0], c[1], c[2], c[3], c[4], c[5], c[6], got, c[7]);
        CHECK(got == c[7]);
    }
    /* the symmetric form agrees with the general one */
    for (int32_t in = 1; in < 12; in++)
        for (int32_t k = 1; k < 5; k++)
            for (int32_t s = 1; s < 4; s++)
                for (int32_t p = 0; p < 3; p++)
                    CHECK(odl_window_out_size(in, k, s, p) == odl_window_out_size_ex(in, k, s, p, p, 1, 0));
    /* no int32 overflow on huge arguments */
    CHECK(odl_window_out_size_ex(INT32_MAX, 3, 1, INT32_MAX, INT32_MAX, 1, 0) == -1);
    CHECK(odl_window_out_size_ex(INT32_MAX, 1, 1, 0, 0, 1, 0) == INT32_MAX);
    CHECK(odl_window_out_size_ex(100, INT32_MAX, 1, 0, 0, INT32_MAX, 0) == -1);

    const odl_window_dims d = odl_window_dims_simple(2, 3, 8, 9, 4, 4, 5, 3, 2, 2, 2, 1, 0);
    CHECK(d.batch == 2 && d.in_c == 3 && d.in_h == 8 && d.in_w == 9);
    CHECK(d.out_c == 4 && d.out_h == 4 && d.out_w == 5 && d.k_h == 3 && d.k_w == 2);
    CHECK(d.stride_h == 2 && d.stride_w == 2 && d.pad_h == 1 && d.pad_w == 0);
    CHECK(d.pad_b == 1 && d.pad_r == 0 && d.dil_h == 1 && d.dil_w == 1 && d.groups == 1 && d.flags == 0);
}

/* ---- conv2d and depthwise ------------------------------------------------ */

typedef struct conv_case {
    int32_t n, ci, h, w, co, kh, kw, sh, sw, pt, pl, pb, pr, dh, dw, g;
} conv_case;

static const conv_case conv_cases[] = {
    /* the simple case: the original fast paths */
    {2, 3, 7, 6, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1},  /* same width, stride 1 */
    {2, 3, 9, 8, 5, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1},  /* stride 2 */
    {1, 4, 5, 5, 6, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1},  /* 1x1: im2col is the input */
    {2, 4, 7, 7, 3, 1, 1, 2, 2, 0, 0, 0, 0, 1, 1, 1},  /* 1x1 stride 2 */
    {1, 2, 8, 9, 3, 5, 3, 1, 2, 2, 1, 2, 1, 1, 1, 1},  /* 5x3, mixed strides */
    /* asymmetric padding, groups 1, no dilation: still the fast im2col */
    {2, 3, 7, 6, 4, 3, 3, 1, 1, 0, 0, 2, 2, 1, 1, 1},  /* same size, all padding after */
    {2, 3, 7, 6, 4, 3, 3, 1, 1, 2, 1, 0, 1, 1, 1, 1},
    {1, 2, 8, 7, 3, 3, 2, 2, 2, 0, 1, 1, 0, 1, 1, 1},  /* stride 2 (TF "same") */
    {1, 3, 4, 5, 2, 1, 1, 1, 1, 0, 0, 1, 2, 1, 1, 1},  /* 1x1 with trailing pad: not the identity */
    /* dilation */
    {2, 3, 9, 8, 4, 3, 3, 1, 1, 2, 2, 2, 2, 2, 2, 1},
    {1, 2, 10, 9, 3, 3, 3, 2, 2, 1, 0, 2, 1, 2, 3, 1},
    /* groups */
    {2, 4, 7, 6, 6, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 2},
    {2, 4, 8, 9, 4, 3, 3, 2, 2, 0, 1, 2, 1, 2, 2, 2}, /* groups 2, dilation 2, stride 2, asymmetric */
    {1, 6, 5, 5, 6, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 3}, /* grouped 1x1 */
    {2, 3, 6, 7, 6, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 3}, /* depthwise as groups = in_c, multiplier 2 */
    {1, 4, 7, 7, 4, 3, 3, 2, 2, 1, 1, 1, 1, 2, 2, 4}, /* depthwise, stride 2, dilation 2 */
};

static int conv_dims(const conv_case *c, odl_window_dims *d)
{
    *d = odl_window_dims_simple(c->n, c->ci, c->h, c->w, c->co, 0, 0, c->kh, c->kw, c->sh, c->sw, c->pt, c->pl);
    d->pad_b = c->pb, d->pad_r = c->pr, d->dil_h = c->dh, d->dil_w = c->dw, d->groups = c->g;
    d->out_h = odl_window_out_size_ex(c->h, c->kh, c->sh, c->pt, c->pb, c->dh, 0);
    d->out_w = odl_window_out_size_ex(c->w, c->kw, c->sw, c->pl, c->pr, c->dw, 0);
    return d->out_h > 0 && d->out_w > 0;
}

static size_t x_len(const odl_window_dims *d) { return (size_t)d->batch * d->in_c * d->in_h * d->in_w; }
static size_t y_len(const odl_window_dims *d) { return (size_t)d->batch * d->out_c * d->out_h * d->out_w; }
static size_t w_len(const odl_window_dims *d)
{
    const int32_t g = d->groups > 1 ? d->groups : 1;
    return (size_t)d->out_c * (d->in_c / g) * d->k_h * d->k_w;
}

/* The convolution written from its definition, independently of the
 * kernels: y[n][co][oh][ow] = b[co] + sum over the group's input channels
 * and the taps inside the input; in double. */
static double conv_direct(const odl_window_dims *d, const float *x, const float *w, const float *b,
                          int32_t n, int32_t co, int32_t oh, int32_t ow)
{
    const int32_t g = d->groups > 1 ? d->groups : 1, cin_g = d->in_c / g, cout_g = d->out_c / g;
    double acc = b ? b[co] : 0.0;
    for (int32_t ci = 0; ci < cin_g; ci++)
        for (int32_t kh = 0; kh < d->k_h; kh++)
            for (int32_t kw = 0; kw < d->k_w; kw++) {
                const int32_t ih = oh * d->stride_h - d->pad_h + kh * d->dil_h;
                const int32_t iw = ow * d->stride_w - d->pad_w + kw * d->dil_w;
                if (ih < 0 || ih >= d->in_h || iw < 0 || iw >= d->in_w)
                    continue;
                const int32_t cx = co / cout_g * cin_g + ci;
                acc += (double)x[(((size_t)n * d->in_c + cx) * d->in_h + ih) * d->in_w + iw] *
                       w[(((size_t)co * cin_g + ci) * d->k_h + kh) * d->k_w + kw];
            }
    return acc;
}

typedef struct conv_ctx {
    const odl_window_dims *d;
    float *x, *w, *b, *y;
    const float *r;
    int depthwise;
} conv_ctx;

static double conv_loss(void *p)
{
    conv_ctx *c = p;
    if (c->depthwise)
        odl_depthwise_forward_f32(c->d, c->x, c->w, c->b, c->y);
    else
        odl_conv2d_forward_f32_ref(c->d, c->x, c->w, c->b, c->y);
    return dot_d(c->y, c->r, y_len(c->d));
}

static void test_conv_ref_vs_definition(odl_test_ctx *t)
{
    for (size_t ci = 0; ci < sizeof conv_cases / sizeof conv_cases[0]; ci++) {
        odl_window_dims d;
        REQUIRE(conv_dims(&conv_cases[ci], &d));
        float *x = fbuf(x_len(&d)), *w = fbuf(w_len(&d)), *b = fbuf((size_t)d.out_c), *y = fbuf(y_len(&d));
        float *yd = fbuf(y_len(&d));
        REQUIRE(x && w && b && y && yd);
        odl_conv2d_forward_f32_ref(&d, x, w, b, y);
        size_t i = 0;
        for (int32_t n = 0; n < d.batch; n++)
            for (int32_t co = 0; co < d.out_c; co++)
                for (int32_t oh = 0; oh < d.out_h; oh++)
                    for (int32_t ow = 0; ow < d.out_w; ow++)
                        yd[i++] = (float)conv_direct(&d, x, w, b, n, co, oh, ow);
        if (max_rel_err(y, yd, y_len(&d)) > 1e-5)
            odl_test_logf(t, "    conv case %zu", ci);
        CHECK_CLOSE(y, yd, y_len(&d), 1e-5);
        free(x), free(w), free(b), free(y), free(yd);
    }
}

static void test_conv_fast_vs_ref(odl_test_ctx *t)
{
    for (size_t ci = 0; ci < sizeof conv_cases / sizeof conv_cases[0]; ci++) {
        odl_window_dims d;
        REQUIRE(conv_dims(&conv_cases[ci], &d));
        const size_t nx = x_len(&d), ny = y_len(&d), nw = w_len(&d), nb = (size_t)d.out_c;
        float *x = fbuf(nx), *w = fbuf(nw), *b = fbuf(nb), *dy = fbuf(ny);
        float *y0 = fbuf(ny), *y1 = fbuf(ny), *scratch = fbuf(odl_conv2d_scratch_floats(&d));
        float *dx0 = fbuf(nx), *dx1 = fbuf(nx), *dw0 = fbuf(nw), *db0 = fbuf(nb);
        REQUIRE(x && w && b && dy && y0 && y1 && scratch && dx0 && dx1 && dw0 && db0);
        float *dw1 = fcopy(dw0, nw), *db1 = fcopy(db0, nb);
        REQUIRE(dw1 && db1);
        const int32_t failed_before = t->checks_failed;
        /* forward, with and without bias, and with the fused ReLU */
        odl_conv2d_forward_f32_ref(&d, x, w, b, y0);
        odl_conv2d_forward_f32(&d, x, w, b, y1, scratch);
        CHECK_CLOSE(y1, y0, ny, 1e-5);
        odl_conv2d_forward_f32_ex(&d, x, w, b, y1, scratch, ODL_FUSE_RELU);
        for (size_t i = 0; i < ny; i++)
            y0[i] = y0[i] > 0.0f ? y0[i] : 0.0f;
        CHECK_CLOSE(y1, y0, ny, 1e-5);
        odl_conv2d_forward_f32_ref(&d, x, w, NULL, y0);
        odl_conv2d_forward_f32(&d, x, w, NULL, y1, scratch);
        CHECK_CLOSE(y1, y0, ny, 1e-5);
        /* backward: dw, db accumulate onto what is there; dx is overwritten */
        odl_conv2d_backward_f32_ref(&d, x, w, dy, dx0, dw0, db0);
        odl_conv2d_backward_f32(&d, x, w, dy, dx1, dw1, db1, scratch);
        CHECK_CLOSE(dx1, dx0, nx, 1e-5);
        CHECK_CLOSE(dw1, dw0, nw, 1e-5);
        CHECK_CLOSE(db1, db0, nb, 1e-5);
        /* overwrite mode: the gradient alone */
        odl_conv2d_backward_f32_ex(&d, x, w, dy, NULL, dw1, db1, scratch, ODL_GRAD_OVERWRITE);
        memset(dw0, 0, sizeof(float) * nw), memset(db0, 0, sizeof(float) * nb);
        odl_conv2d_backward_f32_ref(&d, x, w, dy, NULL, dw0, db0);
        CHECK_CLOSE(dw1, dw0, nw, 1e-5);
        CHECK_CLOSE(db1, db0, nb, 1e-5);
        /* dx alone */
        for (size_t i = 0; i < nx; i++)
            dx1[i] = 1e9f; /* must be overwritten everywhere */
        odl_conv2d_backward_f32(&d, x, w, dy, dx1, NULL, NULL, scratch);
        CHECK_CLOSE(dx1, dx0, nx, 1e-5);
        if (t->checks_failed > failed_before)
            odl_test_logf(t, "    in conv case %zu", ci);
        free(x), free(w), free(b), free(dy), free(y0), free(y1), free(scratch);
        free(dx0), free(dx1), free(dw0), free(db0), free(dw1), free(db1);
    }
}

static void test_conv_backward_fd(odl_test_ctx *t)
{
    for (size_t ci = 0; ci < sizeof conv_cases / sizeof conv_cases[0]; ci++) {
        odl_window_dims d;
        REQUIRE(conv_dims(&conv_cases[ci], &d));
        const size_t nx = x_len(&d), ny = y_len(&d), nw = w_len(&d), nb = (size_t)d.out_c;
        float *x = fbuf(nx), *w = fbuf(nw), *b = fbuf(nb), *r = fbuf(ny), *y = fbuf(ny);
        float *dx = fbuf(nx), *dw = calloc(nw, sizeof(float)), *db = calloc(nb, sizeof(float));
        float *dx1 = fbuf(nx), *dw1 = calloc(nw, sizeof(float)), *db1 = calloc(nb, sizeof(float));
        float *scratch = fbuf(odl_conv2d_scratch_floats(&d));
        REQUIRE(x && w && b && r && y && dx && dw && db && dx1 && dw1 && db1 && scratch);
        odl_conv2d_backward_f32_ref(&d, x, w, r, dx, dw, db);
        odl_conv2d_backward_f32(&d, x, w, r, dx1, dw1, db1, scratch);
        conv_ctx c = {&d, x, w, b, y, r, 0};
        const int32_t failed_before = t->checks_failed;
        CHECK_FD(x, nx, dx, 0.25f, conv_loss, &c, 1e-4);
        CHECK_FD(w, nw, dw, 0.25f, conv_loss, &c, 1e-4);
        CHECK_FD(b, nb, db, 0.25f, conv_loss, &c, 1e-4);
        CHECK_FD(x, nx, dx1, 0.25f, conv_loss, &c, 1e-4);
        CHECK_FD(w, nw, dw1, 0.25f, conv_loss, &c, 1e-4);
        CHECK_FD(b, nb, db1, 0.25f, conv_loss, &c, 1e-4);
        if (t->checks_failed > failed_before)
            odl_test_logf(t, "    in conv case %zu", ci);
        free(x), free(w), free(b), free(r), free(y), free(dx), free(dw), free(db);
        free(dx1), free(dw1), free(db1), free(scratch);
    }
}

/* depthwise: (n, c, h, w, mult, kh, kw, sh, sw, pt, pl, pb, pr, dh, dw) */
static const int32_t dw_cases[][15] = {
    {2, 3, 7, 6, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1},
    {2, 3, 7, 6, 2, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1}, /* multiplier 2 */
    {1, 4, 9, 8, 1, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1}, /* stride 2 */
    {1, 2, 9, 9, 2, 3, 3, 1, 2, 2, 2, 2, 2, 2, 2}, /* dilation 2, multiplier 2 */
    {2, 3, 8, 7, 2, 3, 5, 2, 1, 0, 2, 1, 1, 1, 1}, /* asymmetric */
    {1, 2, 8, 8, 1, 3, 3, 2, 2, 0, 0, 1, 1, 2, 1}, /* TF "same" with dilation */
    {1, 2, 3, 4, 2, 3, 3, 2, 3, 2, 3, 2, 3, 1, 1}, /* pads wider than the input */
    {2, 3, 12, 13, 1, 5, 5, 1, 1, 2, 2, 2, 2, 1, 1}, /* 5x5 */
    /* rows wide enough for the 3x3 kernel's blocks of 8 outputs, their edges and tails */
    {1, 2, 6, 24, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1},  /* stride 1, MobileNet's 3x3 pad 1 */
    {1, 2, 5, 29, 2, 3, 3, 1, 1, 0, 0, 1, 1, 1, 1},  /* stride 1, TF "same", odd width, multiplier 2 */
    {1, 2, 7, 48, 1, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1},  /* stride 2, pad 1 */
    {1, 2, 6, 45, 1, 3, 3, 2, 2, 0, 0, 1, 1, 1, 1},  /* stride 2, TF "same", odd width */
    {1, 1, 4, 40, 1, 3, 3, 1, 2, 2, 3, 2, 3, 1, 1},  /* stride 2, pads wider than the kernel */
    {1, 1, 2, 30, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1},  /* two rows: every output row misses a kernel row */
    {1, 1, 5, 20, 1, 3, 3, 2, 1, 3, 0, 3, 0, 1, 1},  /* rows wholly in the padding: the bias alone */
};

static void test_depthwise(odl_test_ctx *t)
{
    for (size_t ci = 0; ci < sizeof dw_cases / sizeof dw_cases[0]; ci++) {
        const int32_t *c = dw_cases[ci];
        const conv_case cc = {c[0], c[1], c[2], c[3], c[1] * c[4], c[5], c[6], c[7], c[8], c[9], c[10], c[11],
                              c[12], c[13], c[14], c[1]};
        odl_window_dims d;
        REQUIRE(conv_dims(&cc, &d));
        /* the depthwise kernel takes the same dims with or without groups set */
        odl_window_dims dd = d;
        dd.groups = 1;
        const size_t nx = x_len(&d), ny = y_len(&d), nw = w_len(&d), nb = (size_t)d.out_c;
        float *x = fbuf(nx), *w = fbuf(nw), *b = fbuf(nb), *r = fbuf(ny), *y0 = fbuf(ny), *y1 = fbuf(ny);
        float *dx0 = fbuf(nx), *dw0 = fbuf(nw), *db0 = fbuf(nb), *dx1 = fbuf(nx);
        REQUIRE(x && w && b && r && y0 && y1 && dx0 && dw0 && db0 && dx1);
        float *dw1 = fcopy(dw0, nw), *db1 = fcopy(db0, nb);
        REQUIRE(dw1 && db1);
        const int32_t failed_before = t->checks_failed;
        /* the same layout as a conv with groups = in_c: the reference loop */
        odl_conv2d_forward_f32_ref(&d, x, w, b, y0);
        odl_depthwise_forward_f32(&dd, x, w, b, y1);
        CHECK_CLOSE(y1, y0, ny, 1e-5);
        /* the row-wise kernel sums in the direct loop's order: the same bits */
        odl_depthwise_forward_f32_ref(&dd, x, w, b, y0);
        CHECK(memcmp(y1, y0, sizeof(float) * ny) == 0);
        odl_depthwise_forward_f32_ref(&dd, x, w, NULL, y0);
        odl_depthwise_forward_f32(&dd, x, w, NULL, y1);
        CHECK(memcmp(y1, y0, sizeof(float) * ny) == 0);
        odl_conv2d_backward_f32_ref(&d, x, w, r, dx0, dw0, db0);
        odl_depthwise_backward_f32(&dd, x, w, r, dx1, dw1, db1);
        CHECK_CLOSE(dx1, dx0, nx, 1e-5);
        CHECK_CLOSE(dw1, dw0, nw, 1e-5);
        CHECK_CLOSE(db1, db0, nb, 1e-5);
        /* the row-wise backward keeps the direct loop's order: the same bits */
        memcpy(dw0, dw1, sizeof(float) * nw), memcpy(db0, db1, sizeof(float) * nb);
        odl_depthwise_backward_f32_ref(&dd, x, w, r, dx0, dw0, db0);
        odl_depthwise_backward_f32(&dd, x, w, r, dx1, dw1, db1);
        CHECK(memcmp(dx1, dx0, sizeof(float) * nx) == 0);
        CHECK(memcmp(dw1, dw0, sizeof(float) * nw) == 0);
        CHECK(memcmp(db1, db0, sizeof(float) * nb) == 0);
        odl_depthwise_backward_f32_ref(&dd, x, w, r, NULL, dw0, NULL);
        odl_depthwise_backward_f32(&dd, x, w, r, NULL, dw1, NULL);
        CHECK(memcmp(dw1, dw0, sizeof(float) * nw) == 0);
        memset(dw1, 0, sizeof(float) * nw), memset(db1, 0, sizeof(float) * nb);
        odl_depthwise_backward_f32(&dd, x, w, r, dx1, dw1, db1);
        conv_ctx cx = {&dd, x, w, b, y1, r, 1};
        CHECK_FD(x, nx, dx1, 0.25f, conv_loss, &cx, 1e-4);
        CHECK_FD(w, nw, dw1, 0.25f, conv_loss, &cx, 1e-4);
        CHECK_FD(b, nb, db1, 0.25f, conv_loss, &cx, 1e-4);
        if (t->checks_failed > failed_before)
            odl_test_logf(t, "    in depthwise case %zu", ci);
        free(x), free(w), free(b), free(r), free(y0), free(y1), free(dx0), free(dw0), free(db0);
        free(dx1), free(dw1), free(db1);
    }
}

/* ---- pooling ------------------------------------------------------------- */

/* Pooling from its definition on an explicitly padded plane: cells of the
 * plane are input (1), padding (2) or beyond the padding (0, where a
 * ceil-mode window is clipped). Max: over input cells, first maximum in
 * window order. Avg: sum of input cells / count of input cells, or of input
 * and padding cells with count_include_pad. Returns the output, and for max
 * the argmax plane index through arg. */
static float pool_direct(const odl_window_dims *d, const float *xc, int avg, int32_t oh, int32_t ow,
                         int32_t *arg)
{
    const int32_t ph = d->in_h + d->pad_h + d->pad_b, pw = d->in_w + d->pad_w + d->pad_r;
    const int32_t dh = d->dil_h > 1 ? d->dil_h : 1, dwl = d->dil_w > 1 ? d->dil_w : 1;
    double sum = 0.0;
    int32_t cnt = 0, best = -1;
    float bv = 0.0f;
    for (int32_t kh = 0; kh < d->k_h; kh++)
        for (int32_t kw = 0; kw < d->k_w; kw++) {
            const int32_t r = oh * d->stride_h + kh * dh, c = ow * d->stride_w + kw * dwl; /* padded plane */
            const int kind = r >= ph || c >= pw ? 0
                             : (r < d->pad_h || r >= d->pad_h + d->in_h || c < d->pad_w ||
                                c >= d->pad_w + d->in_w)
                                 ? 2
                                 : 1;
            if (kind == 1) {
                const int32_t i = (r - d->pad_h) * d->in_w + (c - d->pad_w);
                sum += xc[i];
                if (best < 0 || xc[i] > bv)
                    best = i, bv = xc[i];
            }
            if (kind == 1 || (kind == 2 && (d->flags & ODL_NODE_COUNT_PAD)))
                cnt++;
        }
    if (arg)
        *arg = best;
    return avg ? (float)(sum / cnt) : bv;
}

static odl_window_dims pool_dims(int32_t n, int32_t c, int32_t h, int32_t w, int32_t kh, int32_t kw,
                                 int32_t s, int32_t pt, int32_t pl, int32_t pb, int32_t pr, int32_t dil,
                                 uint32_t flags)
{
    odl_window_dims d = odl_window_dims_simple(n, c, h, w, c, 0, 0, kh, kw, s, s, pt, pl);
    d.pad_b = pb, d.pad_r = pr, d.dil_h = d.dil_w = dil, d.flags = flags;
    const int ceil_mode = (flags & ODL_NODE_CEIL_MODE) != 0;
    d.out_h = odl_window_out_size_ex(h, kh, s, pt, pb, dil, ceil_mode);
    d.out_w = odl_window_out_size_ex(w, kw, s, pl, pr, dil, ceil_mode);
    return d;
}

/* Hand cases PyTorch produced. Generated with torch 1.13 (CPU):
 *   x = ((torch.arange(25.).reshape(1,1,5,5) * 7) % 25) / 4 - 3
 *   F.max_pool2d(x, k, s, p, dilation=dil, ceil_mode=...)
 *   F.avg_pool2d(x, k, s, p, ceil_mode=..., count_include_pad=...)
 * and the same on x7 = ((torch.arange(42.).reshape(1,1,6,7) * 11) % 42) / 8 - 2.5 */
typedef struct pool_golden {
    int avg, on6x7;
    int32_t k, s, p, dil;
    uint32_t flags;
    int32_t oh, ow;
    float y[25];
} pool_golden;

static const pool_golden pool_goldens[] = {
    {0, 0, 3, 2, 1, 1, ODL_NODE_CEIL_MODE, 3, 3, {1.25f, 3.0f, 2.25f, 2.0f, 3.0f, 2.75f, 2.5f, 2.5f, 1.5f}},
    {0, 0, 3, 3, 1, 1, ODL_NODE_CEIL_MODE, 2, 2, {1.25f, 3.0f, 2.5f, 2.75f}},
    {0, 0, 2, 2, 0, 1, ODL_NODE_CEIL_MODE, 3, 3, {1.25f, 3.0f, 0.25f, 2.0f, 1.75f, 2.75f, 2.5f, -0.25f, 1.5f}},
    {0, 0, 2, 1, 1, 2, 0, 5, 5,
     {1.25f, 3.0f, 1.25f, 3.0f, -1.5f, -1.25f, 2.0f, 2.25f, 2.75f, 2.25f, 1.25f, 3.0f, 1.25f, 3.0f, -1.5f,
      2.5f, 2.0f, 2.5f, 2.75f, 1.0f, 0.0f, 1.75f, 0.0f, 1.75f, -2.75f}},
    {1, 0, 3, 2, 1, 1, ODL_NODE_CEIL_MODE | ODL_NODE_COUNT_PAD, 3, 3,
     {-0.3888889f, 0.47222221f, -0.1388889f, -0.16666667f, -0.055555556f, -0.1388889f, 0.16666667f,
      -0.083333336f, -0.27777779f}},
    {1, 0, 3, 2, 1, 1, ODL_NODE_CEIL_MODE, 3, 3,
     {-0.875f, 0.70833331f, -0.3125f, -0.25f, -0.055555556f, -0.20833333f, 0.375f, -0.125f, -0.625f}},
    {1, 0, 2, 2, 0, 1, ODL_NODE_CEIL_MODE | ODL_NODE_COUNT_PAD, 3, 3,
     {-0.875f, 1.0625f, -1.0f, -0.5625f, -0.1875f, 0.875f, 1.625f, -1.125f, 1.5f}},
    {1, 0, 3, 2, 1, 1, ODL_NODE_COUNT_PAD, 3, 3,
     {-0.3888889f, 0.47222221f, -0.1388889f, -0.16666667f, -0.055555556f, -0.1388889f, 0.16666667f,
      -0.083333336f, -0.27777779f}},
    {0, 1, 3, 2, 1, 1, ODL_NODE_CEIL_MODE, 4, 4,
     {1.875f, 1.625f, 2.125f, 0.5f, 2.375f, 2.375f, 2.625f, 2.625f, 1.5f, 2.5f, 2.5f, 2.25f, -0.25f, 2.5f, 2.5f,
      1.375f}},
    {1, 1, 3, 2, 1, 1, ODL_NODE_CEIL_MODE | ODL_NODE_COUNT_PAD, 4, 4,
     {-0.41666666f, -0.125f, -0.041666668f, -0.27777779f, 0.54166669f, -0.33333334f, 0.66666669f, -0.125f,
      -0.041666668f, 0.25f, 0.083333336f, 0.45833334f, -0.3125f, 0.5625f, 0.1875f, 0.22916667f}},
    {1, 1, 3, 2, 1, 1, ODL_NODE_CEIL_MODE, 4, 4,
     {-0.9375f, -0.1875f, -0.0625f, -0.625f, 0.8125f, -0.33333334f, 0.66666669f, -0.1875f, -0.0625f, 0.25f,
      0.083333336f, 0.6875f, -0.9375f, 1.125f, 0.375f, 0.6875f}},
    {1, 1, 2, 2, 1, 1, ODL_NODE_CEIL_MODE | ODL_NODE_COUNT_PAD, 4, 4,
     {-0.625f, -0.21875f, -0.15625f, -0.09375f, 0.71875f, -0.4375f, 1.0f, -0.1875f, -0.15625f, 0.4375f, -0.75f,
      0.6875f, -0.40625f, 0.21875f, 0.28125f, 0.34375f}},
};

static void test_pool_pytorch_goldens(odl_test_ctx *t)
{
    float x5[25], x7[42], y[25];
    for (int i = 0; i < 25; i++)
        x5[i] = (float)((i * 7) % 25) / 4.0f - 3.0f;
    for (int i = 0; i < 42; i++)
        x7[i] = (float)((i * 11) % 42) / 8.0f - 2.5f;
    for (size_t gi = 0; gi < sizeof pool_goldens / sizeof pool_goldens[0]; gi++) {
        const pool_golden *g = &pool_goldens[gi];
        const odl_window_dims d = pool_dims(1, 1, g->on6x7 ? 6 : 5, g->on6x7 ? 7 : 5, g->k, g->k, g->s, g->p,
                                            g->p, g->p, g->p, g->dil, g->flags);
        if (d.out_h != g->oh || d.out_w != g->ow)
            odl_test_logf(t, "    golden %zu: %dx%d, want %dx%d", gi, d.out_h, d.out_w, g->oh, g->ow);
        REQUIRE(d.out_h == g->oh && d.out_w == g->ow);
        if (g->avg)
            odl_avgpool_forward_f32(&d, g->on6x7 ? x7 : x5, y);
        else
            odl_maxpool_forward_f32(&d, g->on6x7 ? x7 : x5, y);
        for (int32_t i = 0; i < d.out_h * d.out_w; i++) {
            if (!(fabsf(y[i] - g->y[i]) <= 1e-6f))
                odl_test_logf(t, "    golden %zu [%d]: %g, want %g", gi, i, (double)y[i], (double)g->y[i]);
            CHECK_NEAR(y[i], g->y[i], 1e-6);
        }
    }
}

/* pool shapes: (n, c, h, w, kh, kw, s, pt, pl, pb, pr, dil, flags) */
static const int32_t pool_cases[][13] = {
    {2, 3, 8, 8, 2, 2, 2, 0, 0, 0, 0, 1, 0},                                   /* the fast 2x2 path */
    {2, 3, 9, 7, 2, 2, 2, 0, 0, 0, 0, 1, 0},                                   /* fast, odd sizes */
    {1, 2, 9, 7, 2, 2, 2, 0, 0, 0, 0, 1, ODL_NODE_CEIL_MODE},                  /* ceil: clipped windows */
    {2, 2, 7, 8, 3, 3, 2, 1, 1, 1, 1, 1, 0},
    {1, 3, 7, 8, 3, 3, 2, 1, 1, 1, 1, 1, ODL_NODE_CEIL_MODE},
    {1, 3, 6, 7, 3, 3, 2, 1, 1, 1, 1, 1, ODL_NODE_CEIL_MODE | ODL_NODE_COUNT_PAD},
    {1, 2, 7, 6, 3, 2, 2, 0, 1, 2, 0, 1, ODL_NODE_COUNT_PAD},                  /* asymmetric */
    {2, 2, 8, 9, 3, 3, 2, 1, 0, 2, 1, 1, ODL_NODE_CEIL_MODE | ODL_NODE_COUNT_PAD},
    {1, 2, 9, 9, 3, 3, 3, 1, 1, 1, 1, 1, ODL_NODE_CEIL_MODE | ODL_NODE_COUNT_PAD},
    {1, 2, 9, 8, 2, 3, 1, 1, 1, 1, 1, 2, 0},                                   /* dilation 2 */
    {1, 2, 9, 8, 3, 3, 2, 1, 1, 1, 1, 2, ODL_NODE_CEIL_MODE | ODL_NODE_COUNT_PAD},
};

static odl_window_dims pool_case_dims(const int32_t *c)
{
    return pool_dims(c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9], c[10], c[11], (uint32_t)c[12]);
}

/* inputs that are distinct and at least 1/64 apart, so a max has no ties
 * and +-eps of 1/256 never changes which element wins */
static void fill_distinct(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float)i / 64.0f;
    for (size_t i = n; i > 1; i--) { /* shuffle */
        g_seed = g_seed * 1664525u + 1013904223u;
        const size_t j = (g_seed >> 8) % i;
        const float v = x[i - 1];
        x[i - 1] = x[j], x[j] = v;
    }
}

typedef struct pool_ctx {
    const odl_window_dims *d;
    float *x, *y;
    const float *r;
    int avg;
} pool_ctx;

static double pool_loss(void *p)
{
    pool_ctx *c = p;
    if (c->avg)
        odl_avgpool_forward_f32(c->d, c->x, c->y);
    else
        odl_maxpool_forward_f32(c->d, c->x, c->y);
    return dot_d(c->y, c->r, y_len(c->d));
}

static void test_pool_vs_definition_and_fd(odl_test_ctx *t)
{
    for (size_t ci = 0; ci < sizeof pool_cases / sizeof pool_cases[0]; ci++) {
        const odl_window_dims d = pool_case_dims(pool_cases[ci]);
        REQUIRE(d.out_h > 0 && d.out_w > 0);
        const size_t nx = x_len(&d), ny = y_len(&d), in_pl = (size_t)d.in_h * d.in_w;
        float *x = fbuf(nx), *y = fbuf(ny), *want = fbuf(ny), *r = fbuf(ny), *dx = fbuf(nx), *dxw = fbuf(nx);
        REQUIRE(x && y && want && r && dx && dxw);
        fill_distinct(x, nx);
        const int32_t failed_before = t->checks_failed;
        for (int avg = 0; avg < 2; avg++) {
            /* forward against the definition; max backward against the
             * definition's argmax (the gradient goes to the first maximum) */
            memset(dxw, 0, sizeof(float) * nx);
            size_t i = 0;
            for (size_t pl = 0; pl < (size_t)d.batch * d.in_c; pl++)
                for (int32_t oh = 0; oh < d.out_h; oh++)
                    for (int32_t ow = 0; ow < d.out_w; ow++, i++) {
                        int32_t arg = -1;
                        want[i] = pool_direct(&d, x + pl * in_pl, avg, oh, ow, &arg);
                        if (!avg && arg >= 0)
                            dxw[pl * in_pl + (size_t)arg] += r[i];
                    }
            if (avg) {
                odl_avgpool_forward_f32(&d, x, y);
                CHECK_CLOSE(y, want, ny, 1e-6);
                for (size_t k = 0; k < nx; k++)
                    dx[k] = 1e9f; /* overwritten everywhere */
                odl_avgpool_backward_f32(&d, r, dx);
            } else {
                odl_maxpool_forward_f32(&d, x, y);
                CHECK(memcmp(y, want, sizeof(float) * ny) == 0); /* a max is exact */
                for (size_t k = 0; k < nx; k++)
                    dx[k] = 1e9f;
                odl_maxpool_backward_f32(&d, x, r, dx);
                CHECK_CLOSE(dx, dxw, nx, 1e-6);
            }
            pool_ctx c = {&d, x, y, r, avg};
            CHECK_FD(x, nx, dx, 1.0f / 256.0f, pool_loss, &c, 1e-3);
        }
        if (t->checks_failed > failed_before)
            odl_test_logf(t, "    in pool case %zu", ci);
        free(x), free(y), free(want), free(r), free(dx), free(dxw);
    }
}

/* The fast 2x2 max pool (and its fused-ReLU backward) against the
 * definition, on every size parity, with a tie (the first maximum wins). */
static void test_maxpool_fast_vs_general(odl_test_ctx *t)
{
    for (int32_t h = 2; h < 9; h++)
        for (int32_t w = 2; w < 9; w += 3) {
            const odl_window_dims d = pool_dims(2, 2, h, w, 2, 2, 2, 0, 0, 0, 0, 1, 0);
            const size_t nx = x_len(&d), ny = y_len(&d), in_pl = (size_t)h * w;
            float *x = fbuf(nx), *y = fbuf(ny), *r = fbuf(ny), *dx = fbuf(nx), *dxw = calloc(nx, sizeof(float));
            float *want = fbuf(ny);
            REQUIRE(x && y && r && dx && dxw && want);
            x[0] = x[1]; /* a tie: the first maximum in window order wins */
            size_t i = 0;
            for (size_t pl = 0; pl < 4; pl++)
                for (int32_t oh = 0; oh < d.out_h; oh++)
                    for (int32_t ow = 0; ow < d.out_w; ow++, i++) {
                        int32_t arg = -1;
                        want[i] = pool_direct(&d, x + pl * in_pl, 0, oh, ow, &arg);
                        /* fused ReLU: x is the ReLU's output, no gradient where it is 0 or less */
                        if (x[pl * in_pl + (size_t)arg] > 0.0f)
                            dxw[pl * in_pl + (size_t)arg] += r[i];
                    }
            odl_maxpool_forward_f32(&d, x, y);
            CHECK(memcmp(y, want, sizeof(float) * ny) == 0);
            for (size_t k = 0; k < nx; k++)
                dx[k] = 1e9f;
            odl_maxpool_backward_f32_ex(&d, x, r, dx, ODL_FUSE_RELU);
            CHECK(memcmp(dx, dxw, sizeof(float) * nx) == 0);
            free(x), free(y), free(r), free(dx), free(dxw), free(want);
        }
}

/* ---- activations --------------------------------------------------------- */

/* Generated with torch 1.13: xs below; y = f(xs), g = autograd of y.sum()
 * for relu, relu6, clamp(-1, 3), leaky_relu(0.1), sigmoid, hardsigmoid
 * (alpha 1/6, beta 1/2), hardswish, tanh. xs includes every kink. */
static const float act_xs[13] = {-4.0f, -3.0f, -2.5f, -1.0f, -0.25f, 0.0f, 0.5f, 1.0f, 2.75f, 3.0f, 4.0f, 6.0f, 7.5f};
typedef struct act_golden {
    int32_t type;
    float alpha, beta;
    float y[13], g[13];
} act_golden;
static const act_golden act_goldens[] = {
    {ODL_LAYER_RELU, 0, 0, {0, 0, 0, 0, 0, 0, 0.5f, 1, 2.75f, 3, 4, 6, 7.5f}, {0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1}},
    {ODL_LAYER_RELU6, 0, 0, {0, 0, 0, 0, 0, 0, 0.5f, 1, 2.75f, 3, 4, 6, 6}, {0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 0, 0}},
    {ODL_LAYER_CLIP, -1.0f, 3.0f, {-1, -1, -1, -1, -0.25f, 0, 0.5f, 1, 2.75f, 3, 3, 3, 3},
     {0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0}},
    {ODL_LAYER_LEAKY_RELU, 0.1f, 0, {-0.40000001f, -0.30000001f, -0.25f, -0.1f, -0.025f, 0, 0.5f, 1, 2.75f, 3, 4, 6, 7.5f},
     {0.1f, 0.1f, 0.1f, 0.1f, 0.1f, 0.1f, 1, 1, 1, 1, 1, 1, 1}},
    {ODL_LAYER_SIGMOID, 0, 0,
     {0.01798621f, 0.047425874f, 0.075858176f, 0.26894143f, 0.4378235f, 0.5f, 0.62245935f, 0.7310586f, 0.93991333f,
      0.95257413f, 0.98201376f, 0.99752742f, 0.99944717f},
     {0.017662706f, 0.045176659f, 0.070103712f, 0.19661194f, 0.24613407f, 0.25f, 0.23500371f, 0.19661193f,
      0.056476261f, 0.045176655f, 0.017662734f, 0.0024664658f, 0.00055252743f}},
    {ODL_LAYER_HARD_SIGMOID, 1.0f / 6.0f, 0.5f,
     {0, 0, 0.083333336f, 0.33333334f, 0.45833334f, 0.5f, 0.58333331f, 0.66666669f, 0.95833331f, 1, 1, 1, 1},
     {0, 0, 0.16666667f, 0.16666667f, 0.16666667f, 0.16666667f, 0.16666667f, 0.16666667f, 0.16666667f, 0, 0, 0, 0}},
    {ODL_LAYER_HARD_SWISH, 0, 0,
     {-0.0f, -0.0f, -0.20833333f, -0.33333334f, -0.11458334f, 0, 0.29166666f, 0.66666669f, 2.6354167f, 3, 4, 6, 7.5f},
     {0, -0.5f, -0.33333331f, 0.16666666f, 0.41666666f, 0.5f, 0.66666669f, 0.83333337f, 1.4166667f, 1.5f, 1, 1, 1}},
    {ODL_LAYER_TANH, 0, 0,
     {-0.99932933f, -0.99505478f, -0.98661429f, -0.76159418f, -0.24491866f, 0, 0.46211717f, 0.76159418f, 0.99185973f,
      0.99505478f, 0.99932933f, 0.99998772f, 0.9999994f},
     {0.0013408931f, 0.0098659815f, 0.026592249f, 0.4199743f, 0.94001484f, 1, 0.7864477f, 0.4199743f, 0.016214268f,
      0.0098659815f, 0.0013408931f, 2.4556963e-05f, 1.1920926e-06f}},
};

/* ReLU6's vector loop gives the scalar definition's bits, NaN, -0, the
 * infinities and 6 included, over a vector part and a tail, in place too. */
static void test_relu6_bits(odl_test_ctx *t)
{
    enum { N = 45 };
    float x[N], y[N], want[N];
    const float special[] = {NAN, -0.0f, 0.0f, INFINITY, -INFINITY, 6.0f, nextafterf(6.0f, 0.0f),
                             nextafterf(6.0f, 7.0f), 1e-45f, -1e-45f, 3.0f, -3.0f};
    odl_rng r;
    odl_rng_seed(&r, 11, 1);
    for (int i = 0; i < N; i++) {
        x[i] = i < (int)(sizeof special / sizeof special[0]) ? special[i] : 16.0f * odl_rng_uniform(&r) - 8.0f;
        const float v = x[i] > 0.0f ? x[i] : 0.0f;
        want[i] = v < 6.0f ? v : 6.0f;
    }
    for (int32_t n = 0; n <= N; n += 9) {
        odl_relu6_forward_f32((size_t)n, x, y);
        CHECK(memcmp(y, want, sizeof(float) * (size_t)n) == 0);
    }
    odl_relu6_forward_f32(N, x, x); /* in place */
    CHECK(memcmp(x, want, sizeof x) == 0);
}

static void test_act_pytorch_goldens(odl_test_ctx *t)
{
    float y[13], yr[13], dx[13], ones[13];
    for (int i = 0; i < 13; i++)
        ones[i] = 1.0f;
    for (size_t gi = 0; gi < sizeof act_goldens / sizeof act_goldens[0]; gi++) {
        const act_golden *a = &act_goldens[gi];
        odl_act_forward_f32(a->type, a->alpha, a->beta, 13, act_xs, y);
        odl_act_forward_f32_ref(a->type, a->alpha, a->beta, 13, act_xs, yr);
        odl_act_backward_f32(a->type, a->alpha, a->beta, 13, act_xs, y, ones, dx);
        for (int i = 0; i < 13; i++) {
            if (!(fabsf(y[i] - a->y[i]) <= 2e-7f * (1.0f + fabsf(a->y[i])) && fabsf(dx[i] - a->g[i]) <= 2e-6f))
                odl_test_logf(t, "    type %d at %g: y %.9g (want %.9g), grad %.9g (want %.9g)", (int)a->type,
                              (double)act_xs[i], (double)y[i], (double)a->y[i], (double)dx[i], (double)a->g[i]);
            CHECK_NEAR(y[i], a->y[i], 2e-7 * (1.0 + fabs((double)a->y[i])));
            CHECK_NEAR(yr[i], a->y[i], 2e-7 * (1.0 + fabs((double)a->y[i])));
            CHECK_NEAR(dx[i], a->g[i], 2e-6);
        }
    }
}

typedef struct act_ctx {
    int32_t type;
    float alpha, beta;
    size_t n;
    float *x, *y;
    const float *r;
} act_ctx;

static double act_loss(void *p)
{
    act_ctx *c = p;
    odl_act_forward_f32_ref(c->type, c->alpha, c->beta, c->n, c->x, c->y);
    return dot_d(c->y, c->r, c->n);
}

static void test_act_fast_vs_ref_and_fd(odl_test_ctx *t)
{
    static const struct { int32_t type; float alpha, beta; } acts[] = {
        {ODL_LAYER_RELU, 0, 0}, {ODL_LAYER_RELU6, 0, 0}, {ODL_LAYER_CLIP, -0.5f, 2.0f},
        {ODL_LAYER_LEAKY_RELU, 0.01f, 0}, {ODL_LAYER_SIGMOID, 0, 0}, {ODL_LAYER_HARD_SIGMOID, 0.2f, 0.5f},
        {ODL_LAYER_HARD_SWISH, 0, 0}, {ODL_LAYER_TANH, 0, 0},
    };
    enum { N = 203 };
    float x[N], y[N], yr[N], r[N], dx[N], dxi[N];
    for (size_t ai = 0; ai < sizeof acts / sizeof acts[0]; ai++) {
        /* points on [-8, 8] at least 0.02 from every kink (0, 6, -3, 3, the
         * clip and hard-sigmoid bounds), so eps = 1/128 stays on one piece */
        for (int i = 0; i < N; i++) {
            float v;
            do {
                v = 8.0f * frand();
            } while (fabsf(v) < 0.02f || fabsf(v - 6.0f) < 0.02f || fabsf(fabsf(v) - 3.0f) < 0.02f ||
                     fabsf(v + 0.5f) < 0.02f || fabsf(v - 2.0f) < 0.02f || fabsf(v - 2.5f) < 0.02f ||
                     fabsf(v + 2.5f) < 0.02f);
            x[i] = v;
            r[i] = frand();
        }
        odl_act_forward_f32(acts[ai].type, acts[ai].alpha, acts[ai].beta, N, x, y);
        odl_act_forward_f32_ref(acts[ai].type, acts[ai].alpha, acts[ai].beta, N, x, yr);
        CHECK(memcmp(y, yr, sizeof y) == 0);
        odl_act_backward_f32(acts[ai].type, acts[ai].alpha, acts[ai].beta, N, x, y, r, dx);
        act_ctx c = {acts[ai].type, acts[ai].alpha, acts[ai].beta, N, x, yr, r};
        const int32_t failed_before = t->checks_failed;
        CHECK_FD(x, N, dx, 1.0f / 128.0f, act_loss, &c, 2e-3);
        /* each reads only the tensor layers.h says (the other may be NULL) */
        const int32_t ty = acts[ai].type;
        const int reads_y = ty == ODL_LAYER_RELU || ty == ODL_LAYER_RELU6 || ty == ODL_LAYER_SIGMOID ||
                            ty == ODL_LAYER_TANH;
        odl_act_backward_f32(ty, acts[ai].alpha, acts[ai].beta, N, reads_y ? NULL : x, reads_y ? y : NULL, r, dxi);
        CHECK(memcmp(dxi, dx, sizeof dx) == 0);
        /* forward in place gives the same */
        memcpy(dxi, x, sizeof dxi);
        odl_act_forward_f32(ty, acts[ai].alpha, acts[ai].beta, N, dxi, dxi);
        CHECK(memcmp(dxi, y, sizeof dxi) == 0);
        /* in place (dx = dy) gives the same */
        memcpy(dxi, r, sizeof dxi);
        odl_act_backward_f32(acts[ai].type, acts[ai].alpha, acts[ai].beta, N, x, y, dxi, dxi);
        CHECK(memcmp(dxi, dx, sizeof dx) == 0);
        if (t->checks_failed > failed_before)
            odl_test_logf(t, "    in activation type %d", (int)acts[ai].type);
    }
}

/* ---- affine, add, mul, concat, pad, accumulate --------------------------- */

typedef struct affine_ctx {
    int32_t n, c, hw;
    float *x, *s, *b, *y;
    const float *r;
} affine_ctx;

static double affine_loss(void *p)
{
    affine_ctx *a = p;
    odl_affine_forward_f32(a->n, a->c, a->hw, a->x, a->s, a->b, a->y);
    return dot_d(a->y, a->r, (size_t)a->n * a->c * a->hw);
}

static void test_affine(odl_test_ctx *t)
{
    const int32_t n = 2, c = 3, hw = 5;
    const size_t len = (size_t)n * c * hw;
    float *x = fbuf(len), *y = fbuf(len), *r = fbuf(len), *dx = fbuf(len), *s = fbuf(3), *b = fbuf(3);
    float ds[3] = {0.5f, 0, 0}, db[3] = {0, 0, -1.0f};
    REQUIRE(x && y && r && dx && s && b);
    odl_affine_forward_f32(n, c, hw, x, s, b, y);
    for (size_t i = 0; i < len; i++)
        CHECK(y[i] == x[i] * s[(i / hw) % c] + b[(i / hw) % c]);
    odl_affine_backward_f32(n, c, hw, x, s, r, dx, ds, db);
    ds[0] -= 0.5f, db[2] += 1.0f; /* accumulated onto what was there */
    affine_ctx a = {n, c, hw, x, s, b, y, r};
    CHECK_FD(x, len, dx, 0.25f, affine_loss, &a, 1e-5);
    CHECK_FD(s, 3, ds, 0.25f, affine_loss, &a, 1e-5);
    CHECK_FD(b, 3, db, 0.25f, affine_loss, &a, 1e-5);
    odl_affine_backward_f32(n, c, hw, x, s, r, NULL, NULL, NULL); /* nothing wanted: no crash */
    free(x), free(y), free(r), free(dx), free(s), free(b);
}

typedef struct bin_ctx {
    int mul;
    int32_t n, c, hw, bc, bhw;
    float *a, *b, *y;
    const float *r;
} bin_ctx;

static double bin_loss(void *p)
{
    bin_ctx *k = p;
    if (k->mul)
        odl_mul_forward_f32(k->n, k->c, k->hw, k->a, k->b, k->bc, k->bhw, k->y);
    else
        odl_add_forward_f32(k->n, k->c, k->hw, k->a, k->b, k->bc, k->bhw, k->y);
    return dot_d(k->y, k->r, (size_t)k->n * k->c * k->hw);
}

static void test_add_mul_broadcast(odl_test_ctx *t)
{
    const int32_t n = 2, c = 3, hw = 6;
    static const int32_t shapes[3][2] = {{3, 6}, {3, 1}, {1, 1}};
    const size_t len = (size_t)n * c * hw;
    for (int mul = 0; mul < 2; mul++)
        for (int si = 0; si < 3; si++) {
            const int32_t bc = shapes[si][0], bhw = shapes[si][1];
            const size_t blen = (size_t)n * bc * bhw;
            float *a = fbuf(len), *b = fbuf(blen), *y = fbuf(len), *r = fbuf(len), *da = fbuf(len), *db = fbuf(blen);
            REQUIRE(a && b && y && r && da && db);
            const int32_t failed_before = t->checks_failed;
            if (mul)
                odl_mul_forward_f32(n, c, hw, a, b, bc, bhw, y);
            else
                odl_add_forward_f32(n, c, hw, a, b, bc, bhw, y);
            for (int32_t s = 0; s < n; s++)
                for (int32_t ch = 0; ch < c; ch++)
                    for (int32_t i = 0; i < hw; i++) {
                        const size_t k = ((size_t)s * c + ch) * hw + i;
                        const float bv = b[((size_t)s * bc + (bc == 1 ? 0 : ch)) * bhw + (bhw == 1 ? 0 : i)];
                        CHECK(y[k] == (mul ? a[k] * bv : a[k] + bv));
                    }
            if (mul)
                odl_mul_backward_f32(n, c, hw, a, b, bc, bhw, r, da, db);
            else
                odl_add_backward_f32(n, c, hw, bc, bhw, r, da, db);
            bin_ctx k = {mul, n, c, hw, bc, bhw, a, b, y, r};
            CHECK_FD(a, len, da, 0.25f, bin_loss, &k, 1e-5);
            CHECK_FD(b, blen, db, 0.25f, bin_loss, &k, 1e-5);
            /* in place: da = dy */
            float *dyi = fcopy(r, len);
            REQUIRE(dyi);
            if (mul)
                odl_mul_backward_f32(n, c, hw, a, b, bc, bhw, dyi, dyi, db);
            else
                odl_add_backward_f32(n, c, hw, bc, bhw, dyi, dyi, db);
            CHECK(memcmp(dyi, da, sizeof(float) * len) == 0);
            CHECK_FD(b, blen, db, 0.25f, bin_loss, &k, 1e-5);
            if (t->checks_failed > failed_before)
                odl_test_logf(t, "    in %s, b %dx%d", mul ? "mul" : "add", bc, bhw);
            free(a), free(b), free(y), free(r), free(da), free(db), free(dyi);
        }
}

static void test_concat(odl_test_ctx *t)
{
    const int32_t n = 2, hw = 4, c_in[3] = {2, 1, 3};
    float *x0 = fbuf(16), *x1 = fbuf(8), *x2 = fbuf(24), *y = fbuf(48), *dy = fbuf(48);
    float *d0 = fbuf(16), *d2 = fbuf(24);
    REQUIRE(x0 && x1 && x2 && y && dy && d0 && d2);
    const float *xs[3] = {x0, x1, x2};
    odl_concat_forward_f32(n, 3, xs, c_in, hw, y);
    for (int32_t s = 0; s < n; s++)
        for (int32_t ch = 0; ch < 6; ch++)
            for (int32_t i = 0; i < hw; i++) {
                const int src = ch < 2 ? 0 : ch < 3 ? 1 : 2, cc = ch < 2 ? ch : ch < 3 ? 0 : ch - 3;
                CHECK(y[((size_t)s * 6 + ch) * hw + i] == xs[src][((size_t)s * c_in[src] + cc) * hw + i]);
            }
    float *dxs[3] = {d0, NULL, d2}; /* the middle input wants no gradient */
    odl_concat_backward_f32(n, 3, c_in, hw, dy, dxs);
    for (int32_t s = 0; s < n; s++)
        for (int32_t i = 0; i < 2 * hw; i++)
            CHECK(d0[(size_t)s * 2 * hw + i] == dy[(size_t)s * 6 * hw + i]);
    for (int32_t s = 0; s < n; s++)
        for (int32_t i = 0; i < 3 * hw; i++)
            CHECK(d2[(size_t)s * 3 * hw + i] == dy[(size_t)s * 6 * hw + 3 * hw + i]);
    free(x0), free(x1), free(x2), free(y), free(dy), free(d0), free(d2);
}

typedef struct pad_ctx {
    const odl_window_dims *d;
    float *x, *y;
    const float *r;
} pad_ctx;

static double pad_loss(void *p)
{
    pad_ctx *c = p;
    odl_pad_forward_f32(c->d, 0.75f, c->x, c->y);
    return dot_d(c->y, c->r, y_len(c->d));
}

static void test_pad(odl_test_ctx *t)
{
    /* (pt, pl, pb, pr): growing, asymmetric, and cropping (negative, as ONNX allows) */
    static const int32_t pads[][4] = {{1, 2, 0, 3}, {0, 0, 2, 1}, {-1, 1, 2, -2}, {2, 2, 2, 2}};
    for (size_t pi = 0; pi < sizeof pads / sizeof pads[0]; pi++) {
        odl_window_dims d = odl_window_dims_simple(2, 3, 4, 5, 3, 0, 0, 1, 1, 1, 1, pads[pi][0], pads[pi][1]);
        d.pad_b = pads[pi][2], d.pad_r = pads[pi][3];
        d.out_h = d.in_h + d.pad_h + d.pad_b, d.out_w = d.in_w + d.pad_w + d.pad_r;
        const size_t nx = x_len(&d), ny = y_len(&d);
        float *x = fbuf(nx), *y = fbuf(ny), *r = fbuf(ny), *dx = fbuf(nx);
        REQUIRE(x && y && r && dx);
        odl_pad_forward_f32(&d, 0.75f, x, y);
        size_t k = 0;
        for (int32_t pl = 0; pl < 6; pl++)
            for (int32_t oh = 0; oh < d.out_h; oh++)
                for (int32_t ow = 0; ow < d.out_w; ow++, k++) {
                    const int32_t ih = oh - d.pad_h, iw = ow - d.pad_w;
                    const int inside = ih >= 0 && ih < d.in_h && iw >= 0 && iw < d.in_w;
                    CHECK(y[k] == (inside ? x[((size_t)pl * d.in_h + ih) * d.in_w + iw] : 0.75f));
                }
        odl_pad_backward_f32(&d, r, dx);
        pad_ctx c = {&d, x, y, r};
        CHECK_FD(x, nx, dx, 0.25f, pad_loss, &c, 1e-5);
        free(x), free(y), free(r), free(dx);
    }
}

static void test_accumulate(odl_test_ctx *t)
{
    float x[37], y[37], want[37];
    for (int i = 0; i < 37; i++)
        x[i] = frand(), y[i] = frand(), want[i] = x[i] + y[i];
    odl_accumulate_f32(37, x, y);
    CHECK(memcmp(y, want, sizeof y) == 0);
}

static const odl_test_case cases[] = {
    {"window_out_size", test_window_out_size},
    {"conv_ref_vs_definition", test_conv_ref_vs_definition},
    {"conv_fast_vs_ref", test_conv_fast_vs_ref},
    {"conv_backward_fd", test_conv_backward_fd},
    {"depthwise", test_depthwise},
    {"pool_pytorch_goldens", test_pool_pytorch_goldens},
    {"pool_vs_definition_and_fd", test_pool_vs_definition_and_fd},
    {"maxpool_fast_vs_general", test_maxpool_fast_vs_general},
    {"relu6_bits", test_relu6_bits},
    {"act_pytorch_goldens", test_act_pytorch_goldens},
    {"act_fast_vs_ref_and_fd", test_act_fast_vs_ref_and_fd},
    {"affine", test_affine},
    {"add_mul_broadcast", test_add_mul_broadcast},
    {"concat", test_concat},
    {"pad", test_pad},
    {"accumulate", test_accumulate},
};

TEST_MAIN(cases)
