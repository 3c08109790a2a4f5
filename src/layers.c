/* FP32 layer kernels. The optimised conv2d and dense paths are two small
 * GEMM cores (below): portable register-blocked C that compilers vectorise
 * (`omp simd` reductions are enabled by -fopenmp-simd without any OpenMP
 * runtime), plus an AVX2+FMA version of each behind a compile-time switch
 * (x86-64 GCC/Clang; -DODL_NO_SIMD builds the portable path only) and a run-
 * time CPU check. The `_ref` loops beside them are the obvious definitions
 * the tests hold both paths to. Nothing here allocates. */
#include "odl/layers.h"
#include "odl/model.h" /* ODL_NODE_COUNT_PAD */

#include <float.h>
#include <math.h>
#include <string.h>

#if defined(_OPENMP) || defined(ODL_OMP_SIMD)
#define ODL_SIMD_REDUCE _Pragma("omp simd reduction(+:acc)")
#else
#define ODL_SIMD_REDUCE
#endif

/* ---- GEMM cores ---------------------------------------------------------
 * Two shapes cover every conv2d and dense pass (row-major, 32-bit sizes):
 *   nn: C[i][j] = (accumulate ? C[i][j] : bias ? bias[i] : 0)
 *                 + sum_k A[i*ars + k*acs] * B[k*ldb + j]
 *   nt: C[i][j] = (accumulate ? C[i][j] : 0) + sum_k A[i*lda + k] * B[j*ldb + k]
 * Only elements inside [0,M)x[0,N) and [0,K) are read or written, so no
 * operand needs padding. Each has a portable register-blocked C version and,
 * on x86-64 GCC/Clang (unless ODL_NO_SIMD is defined), an AVX2+FMA version
 * chosen at run time when the CPU has it. */

#if !defined(ODL_NO_SIMD) && (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
#define ODL_X86_AVX2 1
#include <immintrin.h>
#endif

typedef struct gemm_args {
    int32_t M, N, K;
    const float *A;
    size_t ars, acs; /* nn: A strides; nt: lda = ars */
    const float *B;
    size_t ldb;
    float *C;
    size_t ldc;
    const float *bias; /* nn only, per row i */
    int accumulate;
    int relu; /* nn only: C = max(C, 0) on the way out (bias+ReLU fused) */
} gemm_args;

/* Portable nn: 4 rows x 8 columns of C per block, kept in locals that the
 * compiler holds in vector registers. */
static void gemm_nn_c(const gemm_args *g)
{
    enum { MR = 4, NR = 8 };
    for (int32_t i0 = 0; i0 < g->M; i0 += MR) {
        const int32_t mr = g->M - i0 < MR ? g->M - i0 : MR;
        for (int32_t j0 = 0; j0 < g->N; j0 += NR) {
            const int32_t nr = g->N - j0 < NR ? g->N - j0 : NR;
            float acc[MR][NR];
            for (int32_t r = 0; r < MR; r++) {
                const int32_t ri = r < mr ? r : 0;
                const float *cr = g->C + (size_t)(i0 + ri) * g->ldc + j0;
                const float v = g->bias ? g->bias[i0 + ri] : 0.0f;
                for (int32_t c = 0; c < NR; c++)
                    acc[r][c] = g->accumulate ? (c < nr ? cr[c] : 0.0f) : v;
            }
            if (nr == NR) {
                for (int32_t k = 0; k < g->K; k++) {
                    const float *br = g->B + (size_t)k * g->ldb + j0;
                    for (int32_t r = 0; r < MR; r++) {
                        const float a = g->A[(size_t)(i0 + (r < mr ? r : 0)) * g->ars + (size_t)k * g->acs];
                        for (int32_t c = 0; c < NR; c++)
                            acc[r][c] += a * br[c];
                    }
                }
            } else {
                for (int32_t k = 0; k < g->K; k++) {
                    const float *br = g->B + (size_t)k * g->ldb + j0;
                    for (int32_t r = 0; r < mr; r++) {
                        const float a = g->A[(size_t)(i0 + r) * g->ars + (size_t)k * g->acs];
                        for (int32_t c = 0; c < nr; c++)
                            acc[r][c] += a * br[c];
                    }
                }
            }
            for (int32_t r = 0; r < mr; r++) {
                float *cr = g->C + (size_t)(i0 + r) * g->ldc + j0;
                if (g->relu)
                    for (int32_t c = 0; c < nr; c++)
                        cr[c] = acc[r][c] > 0.0f ? acc[r][c] : 0.0f;
                else
                    for (int32_t c = 0; c < nr; c++)
                        cr[c] = acc[r][c];
            }
        }
    }
}

/* Portable nt: dot products, two rows of A against one row of B at a time. */
static void gemm_nt_c(const gemm_args *g)
{
    const int32_t K = g->K;
    for (int32_t i = 0; i < g->M; i += 2) {
        const float *a0 = g->A + (size_t)i * g->ars;
        const float *a1 = i + 1 < g->M ? a0 + g->ars : a0;
        for (int32_t j = 0; j < g->N; j++) {
            const float *b = g->B + (size_t)j * g->ldb;
            float s0 = 0.0f, s1 = 0.0f;
#if defined(_OPENMP) || defined(ODL_OMP_SIMD)
#pragma omp simd reduction(+ : s0, s1)
#endif
            for (int32_t k = 0; k < K; k++) {
                s0 += a0[k] * b[k];
                s1 += a1[k] * b[k];
            }
            float *c0 = g->C + (size_t)i * g->ldc + j;
            *c0 = g->accumulate ? *c0 + s0 : s0;
            if (i + 1 < g->M) {
                float *c1 = c0 + g->ldc;
                *c1 = g->accumulate ? *c1 + s1 : s1;
            }
        }
    }
}

#ifdef ODL_X86_AVX2
#define ODL_AVX2_FN __attribute__((target("avx2,fma")))

static int have_avx2(void)
{
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

/* lanes [0, n) on (n clamped to 0..8) */
static ODL_AVX2_FN inline __m256i lane_mask(int32_t n)
{
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), idx);
}

/* One 4x16 block of nn; `full` (a constant at each call) drops the masks.
 * Named accumulators (not an array) so they stay in registers. */
static ODL_AVX2_FN inline __attribute__((always_inline)) void
nn_block_avx2(const gemm_args *g, int32_t i0, int32_t mr, int32_t j0, int32_t nr, int full)
{
    const __m256i m0 = lane_mask(nr), m1 = lane_mask(nr - 8);
    const size_t ars = g->ars, acs = g->acs, ldb = g->ldb, ldc = g->ldc;
    const int32_t K = g->K;
    const float *a0 = g->A + (size_t)i0 * ars;
    const float *a1 = mr > 1 ? a0 + ars : a0;
    const float *a2 = mr > 2 ? a0 + 2 * ars : a0;
    const float *a3 = mr > 3 ? a0 + 3 * ars : a0;
    float *c0 = g->C + (size_t)i0 * ldc + j0, *c1 = c0 + ldc, *c2 = c1 + ldc, *c3 = c2 + ldc;
    __m256 x00, x01, x10, x11, x20, x21, x30, x31;
#define LD(p, m) (full ? _mm256_loadu_ps(p) : _mm256_maskload_ps((p), (m)))
    if (g->accumulate) {
        x00 = LD(c0, m0); x01 = LD(c0 + 8, m1);
        x10 = mr > 1 ? LD(c1, m0) : x00; x11 = mr > 1 ? LD(c1 + 8, m1) : x01;
        x20 = mr > 2 ? LD(c2, m0) : x00; x21 = mr > 2 ? LD(c2 + 8, m1) : x01;
        x30 = mr > 3 ? LD(c3, m0) : x00; x31 = mr > 3 ? LD(c3 + 8, m1) : x01;
    } else {
        const float *bi = g->bias ? g->bias + i0 : NULL;
        x00 = x01 = _mm256_set1_ps(bi ? bi[0] : 0.0f);
        x10 = x11 = _mm256_set1_ps(bi && mr > 1 ? bi[1] : 0.0f);
        x20 = x21 = _mm256_set1_ps(bi && mr > 2 ? bi[2] : 0.0f);
        x30 = x31 = _mm256_set1_ps(bi && mr > 3 ? bi[3] : 0.0f);
    }
    const float *b = g->B + j0;
    size_t ka = 0;
    for (int32_t k = 0; k < K; k++, b += ldb, ka += acs) {
        const __m256 b0 = LD(b, m0), b1 = LD(b + 8, m1);
        __m256 x = _mm256_broadcast_ss(a0 + ka);
        x00 = _mm256_fmadd_ps(x, b0, x00);
        x01 = _mm256_fmadd_ps(x, b1, x01);
        x = _mm256_broadcast_ss(a1 + ka);
        x10 = _mm256_fmadd_ps(x, b0, x10);
        x11 = _mm256_fmadd_ps(x, b1, x11);
        x = _mm256_broadcast_ss(a2 + ka);
        x20 = _mm256_fmadd_ps(x, b0, x20);
        x21 = _mm256_fmadd_ps(x, b1, x21);
        x = _mm256_broadcast_ss(a3 + ka);
        x30 = _mm256_fmadd_ps(x, b0, x30);
        x31 = _mm256_fmadd_ps(x, b1, x31);
    }
#undef LD
    if (g->relu) { /* max(x, +0) is x > 0 ? x : +0, NaN and -0 included */
        const __m256 z = _mm256_setzero_ps();
        x00 = _mm256_max_ps(x00, z); x01 = _mm256_max_ps(x01, z);
        x10 = _mm256_max_ps(x10, z); x11 = _mm256_max_ps(x11, z);
        x20 = _mm256_max_ps(x20, z); x21 = _mm256_max_ps(x21, z);
        x30 = _mm256_max_ps(x30, z); x31 = _mm256_max_ps(x31, z);
    }
#define ST(p, m, v) (full ? _mm256_storeu_ps((p), (v)) : _mm256_maskstore_ps((p), (m), (v)))
    ST(c0, m0, x00); ST(c0 + 8, m1, x01);
    if (mr > 1) { ST(c1, m0, x10); ST(c1 + 8, m1, x11); }
    if (mr > 2) { ST(c2, m0, x20); ST(c2 + 8, m1, x21); }
    if (mr > 3) { ST(c3, m0, x30); ST(c3 + 8, m1, x31); }
#undef ST
}

static ODL_AVX2_FN void gemm_nn_avx2(const gemm_args *g)
{
    for (int32_t i0 = 0; i0 < g->M; i0 += 4) {
        const int32_t mr = g->M - i0 < 4 ? g->M - i0 : 4;
        int32_t j0 = 0;
        for (; j0 + 16 <= g->N; j0 += 16)
            nn_block_avx2(g, i0, mr, j0, 16, 1);
        if (j0 < g->N)
            nn_block_avx2(g, i0, mr, j0, g->N - j0, 0);
    }
}

/* the eight horizontal sums of v[0..7], in order */
static ODL_AVX2_FN inline __m256 hsum8(const __m256 *v)
{
    __m256 t0 = _mm256_hadd_ps(v[0], v[1]), t1 = _mm256_hadd_ps(v[2], v[3]);
    __m256 t2 = _mm256_hadd_ps(v[4], v[5]), t3 = _mm256_hadd_ps(v[6], v[7]);
    __m256 u0 = _mm256_hadd_ps(t0, t1), u1 = _mm256_hadd_ps(t2, t3);
    return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
}

/* nt: blocks of 2 rows of A x 4 rows of B (or 1 x 8 when A has one row
 * left); dot products along k in 8-wide steps, the last one masked. */
static ODL_AVX2_FN void gemm_nt_avx2(const gemm_args *g)
{
    const int32_t K = g->K, kfull = K & ~7;
    const __m256i mk = lane_mask(K - kfull);
    const size_t lda = g->ars, ldb = g->ldb;
    float out[8];
    int32_t i0 = 0;
    for (; i0 + 2 <= g->M; i0 += 2) {
        const float *a0 = g->A + (size_t)i0 * lda, *a1 = a0 + lda;
        for (int32_t j0 = 0; j0 < g->N; j0 += 4) {
            const int32_t nr = g->N - j0 < 4 ? g->N - j0 : 4;
            const float *b[4];
            for (int32_t r = 0; r < 4; r++)
                b[r] = g->B + (size_t)(j0 + (r < nr ? r : 0)) * ldb;
            __m256 acc[8];
            for (int r = 0; r < 8; r++)
                acc[r] = _mm256_setzero_ps();
            int32_t k = 0;
            for (; k < kfull; k += 8) {
                const __m256 x0 = _mm256_loadu_ps(a0 + k), x1 = _mm256_loadu_ps(a1 + k);
                for (int r = 0; r < 4; r++) {
                    const __m256 y = _mm256_loadu_ps(b[r] + k);
                    acc[r] = _mm256_fmadd_ps(x0, y, acc[r]);
                    acc[4 + r] = _mm256_fmadd_ps(x1, y, acc[4 + r]);
                }
            }
            if (k < K) {
                const __m256 x0 = _mm256_maskload_ps(a0 + k, mk), x1 = _mm256_maskload_ps(a1 + k, mk);
                for (int r = 0; r < 4; r++) {
                    const __m256 y = _mm256_maskload_ps(b[r] + k, mk);
                    acc[r] = _mm256_fmadd_ps(x0, y, acc[r]);
                    acc[4 + r] = _mm256_fmadd_ps(x1, y, acc[4 + r]);
                }
            }
            _mm256_storeu_ps(out, hsum8(acc));
            for (int32_t r = 0; r < nr; r++) {
                float *c0 = g->C + (size_t)i0 * g->ldc + j0 + r, *c1 = c0 + g->ldc;
                *c0 = g->accumulate ? *c0 + out[r] : out[r];
                *c1 = g->accumulate ? *c1 + out[4 + r] : out[4 + r];
            }
        }
    }
    if (i0 < g->M) {
        const float *a0 = g->A + (size_t)i0 * lda;
        for (int32_t j0 = 0; j0 < g->N; j0 += 8) {
            const int32_t nr = g->N - j0 < 8 ? g->N - j0 : 8;
            const float *b[8];
            for (int32_t r = 0; r < 8; r++)
                b[r] = g->B + (size_t)(j0 + (r < nr ? r : 0)) * ldb;
            __m256 acc[8];
            for (int r = 0; r < 8; r++)
                acc[r] = _mm256_setzero_ps();
            int32_t k = 0;
            for (; k < kfull; k += 8) {
                const __m256 x0 = _mm256_loadu_ps(a0 + k);
                for (int r = 0; r < 8; r++)
                    acc[r] = _mm256_fmadd_ps(x0, _mm256_loadu_ps(b[r] + k), acc[r]);
            }
            if (k < K) {
                const __m256 x0 = _mm256_maskload_ps(a0 + k, mk);
                for (int r = 0; r < 8; r++)
                    acc[r] = _mm256_fmadd_ps(x0, _mm256_maskload_ps(b[r] + k, mk), acc[r]);
            }
            _mm256_storeu_ps(out, hsum8(acc));
            float *c0 = g->C + (size_t)i0 * g->ldc + j0;
            for (int32_t r = 0; r < nr; r++)
                c0[r] = g->accumulate ? c0[r] + out[r] : out[r];
        }
    }
}
#endif /* ODL_X86_AVX2 */

static void gemm_nn(const gemm_args *g)
{
    if (g->M <= 0 || g->N <= 0)
        return;
#ifdef ODL_X86_AVX2
    if (have_avx2()) {
        gemm_nn_avx2(g);
        return;
    }
#endif
    gemm_nn_c(g);
}

static void gemm_nt(const gemm_args *g)
{
    if (g->M <= 0 || g->N <= 0)
        return;
#ifdef ODL_X86_AVX2
    if (have_avx2()) {
        gemm_nt_avx2(g);
        return;
    }
#endif
    gemm_nt_c(g);
}

/* ---- dense ------------------------------------------------------------- */

void odl_dense_forward_f32_ref(const odl_dense_dims *d, const float *x, const float *w,
                               const float *b, float *y)
{
    for (int32_t n = 0; n < d->batch; n++)
        for (int32_t o = 0; o < d->out; o++) {
            float acc = b ? b[o] : 0.0f;
            for (int32_t i = 0; i < d->in; i++)
                acc += x[(size_t)n * d->in + i] * w[(size_t)o * d->in + i];
            y[(size_t)n * d->out + o] = acc;
        }
}

void odl_dense_forward_f32_ex(const odl_dense_dims *d, const float *x, const float *w,
                              const float *b, float *y, unsigned flags)
{
    /* y = x w^T: dot products of rows of x and rows of w */
    const gemm_args g = {d->batch, d->out, d->in, x, (size_t)d->in, 1, w, (size_t)d->in,
                         y, (size_t)d->out, NULL, 0, 0};
    gemm_nt(&g);
    const int relu = (flags & ODL_FUSE_RELU) != 0;
    if (b || relu)
        for (int32_t n = 0; n < d->batch; n++) {
            float *yn = y + (size_t)n * d->out;
            if (b && relu)
                for (int32_t o = 0; o < d->out; o++) {
                    const float v = yn[o] + b[o];
                    yn[o] = v > 0.0f ? v : 0.0f;
                }
            else if (b)
                for (int32_t o = 0; o < d->out; o++)
                    yn[o] += b[o];
            else
                for (int32_t o = 0; o < d->out; o++)
                    yn[o] = yn[o] > 0.0f ? yn[o] : 0.0f;
        }
}

void odl_dense_forward_f32(const odl_dense_dims *d, const float *x, const float *w,
                           const float *b, float *y)
{
    odl_dense_forward_f32_ex(d, x, w, b, y, 0);
}

void odl_dense_backward_f32_ref(const odl_dense_dims *d, const float *x, const float *w,
                                const float *dy, float *dx, float *dw, float *db)
{
    const int32_t in = d->in, out = d->out;
    if (dx)
        for (int32_t n = 0; n < d->batch; n++)
            for (int32_t i = 0; i < in; i++) {
                float acc = 0.0f;
                for (int32_t o = 0; o < out; o++)
                    acc += dy[(size_t)n * out + o] * w[(size_t)o * in + i];
                dx[(size_t)n * in + i] = acc;
            }
    if (dw)
        for (int32_t o = 0; o < out; o++)
            for (int32_t i = 0; i < in; i++) {
                float acc = 0.0f;
                for (int32_t n = 0; n < d->batch; n++)
                    acc += dy[(size_t)n * out + o] * x[(size_t)n * in + i];
                dw[(size_t)o * in + i] += acc;
            }
    if (db)
        for (int32_t o = 0; o < out; o++) {
            float acc = 0.0f;
            for (int32_t n = 0; n < d->batch; n++)
                acc += dy[(size_t)n * out + o];
            db[o] += acc;
        }
}

void odl_dense_backward_f32_ex(const odl_dense_dims *d, const float *x, const float *w,
                               const float *dy, float *dx, float *dw, float *db, unsigned flags)
{
    const int32_t in = d->in, out = d->out;
    const int set = (flags & ODL_GRAD_OVERWRITE) != 0;
    if (dx) { /* dx = dy w */
        const gemm_args g = {d->batch, in, out, dy, (size_t)out, 1, w, (size_t)in,
                             dx, (size_t)in, NULL, 0, 0};
        gemm_nn(&g);
    }
    if (dw) { /* dw (+)= dy^T x */
        const gemm_args g = {out, in, d->batch, dy, 1, (size_t)out, x, (size_t)in,
                             dw, (size_t)in, NULL, !set, 0};
        gemm_nn(&g);
    }
    if (db)
        for (int32_t n = 0; n < d->batch; n++) {
            const float *dyn = dy + (size_t)n * out;
            if (set && n == 0)
                for (int32_t o = 0; o < out; o++)
                    db[o] = dyn[o];
            else
                for (int32_t o = 0; o < out; o++)
                    db[o] += dyn[o];
        }
}

void odl_dense_backward_f32(const odl_dense_dims *d, const float *x, const float *w,
                            const float *dy, float *dx, float *dw, float *db)
{
    odl_dense_backward_f32_ex(d, x, w, dy, dx, dw, db, 0);
}

/* ---- window helpers ---------------------------------------------------- */

int32_t odl_window_out_size(int32_t in, int32_t k, int32_t stride, int32_t pad)
{
    if (in <= 0 || k <= 0 || stride <= 0 || pad < 0)
        return -1;
    int32_t span = in + 2 * pad - k;
    if (span < 0)
        return -1;
    return span / stride + 1;
}

odl_window_dims odl_window_dims_simple(int32_t batch, int32_t in_c, int32_t in_h, int32_t in_w,
                                       int32_t out_c, int32_t out_h, int32_t out_w, int32_t k_h,
                                       int32_t k_w, int32_t stride_h, int32_t stride_w, int32_t pad_h,
                                       int32_t pad_w)
{
    odl_window_dims d;
    memset(&d, 0, sizeof d);
    d.batch = batch;
    d.in_c = in_c, d.in_h = in_h, d.in_w = in_w;
    d.out_c = out_c, d.out_h = out_h, d.out_w = out_w;
    d.k_h = k_h, d.k_w = k_w, d.stride_h = stride_h, d.stride_w = stride_w;
    d.pad_h = pad_h, d.pad_w = pad_w, d.pad_b = pad_h, d.pad_r = pad_w;
    d.dil_h = 1, d.dil_w = 1, d.groups = 1, d.flags = 0;
    return d;
}

/* In 64 bits so no valid int32 argument overflows; PyTorch's pooling_output_shape. */
int32_t odl_window_out_size_ex(int32_t in, int32_t k, int32_t stride, int32_t pad_begin,
                               int32_t pad_end, int32_t dilation, int ceil_mode)
{
    if (in <= 0 || k <= 0 || stride <= 0 || pad_begin < 0 || pad_end < 0 || dilation <= 0)
        return -1;
    const int64_t padded = (int64_t)in + pad_begin + pad_end;
    const int64_t extent = (int64_t)dilation * (k - 1) + 1;
    const int64_t span = padded - extent;
    if (span < 0)
        return -1;
    int64_t out = (span + (ceil_mode ? stride - 1 : 0)) / stride + 1;
    /* ceil mode: the last window must start inside the input or the leading padding */
    if (ceil_mode && (out - 1) * stride >= (int64_t)in + pad_begin)
        out--;
    return out > INT32_MAX ? -1 : (int32_t)out;
}

static size_t in_plane(const odl_window_dims *d) { return (size_t)d->in_h * d->in_w; }
static size_t out_plane(const odl_window_dims *d) { return (size_t)d->out_h * d->out_w; }
/* Zero (a struct filled before these fields existed) reads as 1. */
static int32_t dil_h(const odl_window_dims *d) { return d->dil_h > 1 ? d->dil_h : 1; }
static int32_t dil_w(const odl_window_dims *d) { return d->dil_w > 1 ? d->dil_w : 1; }
static int32_t n_groups(const odl_window_dims *d) { return d->groups > 1 ? d->groups : 1; }
/* The case the original fast paths were written (and benchmarked) for. */
static int conv_is_simple(const odl_window_dims *d)
{
    return dil_h(d) == 1 && dil_w(d) == 1 && n_groups(d) == 1;
}

/* ---- conv2d ------------------------------------------------------------ */

/* The im2col matrix of one sample, col[k][p]; backward reuses it for
 * d(col) once dw is done. */
size_t odl_conv2d_scratch_floats(const odl_window_dims *d)
{
    size_t k = (size_t)(d->in_c / n_groups(d)) * d->k_h * d->k_w; /* one group at a time */
    return k * out_plane(d);
}

void odl_conv2d_forward_f32_ref(const odl_window_dims *d, const float *x, const float *w,
                                const float *b, float *y)
{
    /* groups: output channel co reads input channels [g*cin_g, (g+1)*cin_g), g = co / cout_g */
    const int32_t cin_g = d->in_c / n_groups(d), cout_g = d->out_c / n_groups(d);
    const int32_t dh = dil_h(d), dwl = dil_w(d);
    for (int32_t n = 0; n < d->batch; n++)
        for (int32_t co = 0; co < d->out_c; co++)
            for (int32_t oh = 0; oh < d->out_h; oh++)
                for (int32_t ow = 0; ow < d->out_w; ow++) {
                    float acc = b ? b[co] : 0.0f;
                    const int32_t c0 = co / cout_g * cin_g;
                    for (int32_t ci = 0; ci < cin_g; ci++)
                        for (int32_t kh = 0; kh < d->k_h; kh++)
                            for (int32_t kw = 0; kw < d->k_w; kw++) {
                                int32_t ih = oh * d->stride_h - d->pad_h + kh * dh;
                                int32_t iw = ow * d->stride_w - d->pad_w + kw * dwl;
                                if (ih < 0 || ih >= d->in_h || iw < 0 || iw >= d->in_w)
                                    continue;
                                acc += x[(((size_t)n * d->in_c + c0 + ci) * d->in_h + ih) * d->in_w + iw] *
                                       w[(((size_t)co * cin_g + ci) * d->k_h + kh) * d->k_w + kw];
                            }
                    y[(((size_t)n * d->out_c + co) * d->out_h + oh) * d->out_w + ow] = acc;
                }
}

/* Row copies with restrict so the compiler vectorises them (col and x never
 * overlap). */
static inline void copy_row(float *restrict dst, const float *restrict src, int32_t n)
{
    for (int32_t i = 0; i < n; i++)
        dst[i] = src[i];
}

static inline void add_row(float *restrict dst, const float *restrict src, int32_t n)
{
    for (int32_t i = 0; i < n; i++)
        dst[i] += src[i];
}

/* col[k][p]: k = (ci, kh, kw), p = (oh, ow); zero where the window hangs
 * over the padding. */
static void im2col(const odl_window_dims *d, const float *xn, float *col)
{
    const int32_t oh_n = d->out_h, ow_n = d->out_w;
    if (d->stride_h == 1 && d->stride_w == 1 && ow_n == d->in_w) {
        /* "Same" width, stride 1: a tap's rows are the input shifted by
         * (kh - pad_h) rows and (kw - pad_w) columns, so the valid rows are
         * one contiguous copy; the columns that wrapped into the next or
         * previous row are zeroed afterwards. No per-row calls. */
        const int32_t W = ow_n;
        for (int32_t ci = 0; ci < d->in_c; ci++) {
            const float *xc = xn + (size_t)ci * in_plane(d);
            for (int32_t kh = 0; kh < d->k_h; kh++)
                for (int32_t kw = 0; kw < d->k_w; kw++) {
                    float *row = col + (((size_t)ci * d->k_h + kh) * d->k_w + kw) * out_plane(d);
                    const int32_t dh = kh - d->pad_h, dw = kw - d->pad_w; /* ih = oh + dh, iw = ow + dw */
                    int32_t lo = dh < 0 ? -dh : 0, hi = d->in_h - dh < oh_n ? d->in_h - dh : oh_n;
                    if (hi < lo)
                        hi = lo;
                    if (lo > 0)
                        memset(row, 0, sizeof(float) * (size_t)lo * W);
                    if (hi < oh_n)
                        memset(row + (size_t)hi * W, 0, sizeof(float) * (size_t)(oh_n - hi) * W);
                    if (hi == lo)
                        continue;
                    const int32_t a = dw < 0 ? -dw : 0, e = dw > 0 ? dw : 0; /* skipped at start / end */
                    const size_t cnt = (size_t)(hi - lo) * W - (size_t)a - (size_t)e;
                    float *dst = row + (size_t)lo * W + a;
                    const float *src = xc + (ptrdiff_t)(lo + dh) * W + dw + a;
                    if (a + e >= W) { /* a tap wholly outside the columns */
                        memset(row + (size_t)lo * W, 0, sizeof(float) * (size_t)(hi - lo) * W);
                        continue;
                    }
                    memcpy(dst, src, sizeof(float) * cnt);
                    for (int32_t oh = lo; oh < hi; oh++) {
                        float *r = row + (size_t)oh * W;
                        for (int32_t ow = 0; ow < a; ow++)
                            r[ow] = 0.0f;
                        for (int32_t ow = W - e; ow < W; ow++)
                            r[ow] = 0.0f;
                    }
                }
        }
        return;
    }
    for (int32_t ci = 0; ci < d->in_c; ci++) {
        const float *xc = xn + (size_t)ci * in_plane(d);
        for (int32_t kh = 0; kh < d->k_h; kh++)
            for (int32_t kw = 0; kw < d->k_w; kw++) {
                float *row = col + (((size_t)ci * d->k_h + kh) * d->k_w + kw) * out_plane(d);
                /* valid ow: 0 <= ow*stride_w - pad_w + kw < in_w, i.e. [lo, hi) */
                int32_t lo = 0, hi = ow_n;
                while (lo < ow_n && lo * d->stride_w - d->pad_w + kw < 0)
                    lo++;
                while (hi > lo && (hi - 1) * d->stride_w - d->pad_w + kw >= d->in_w)
                    hi--;
                const int32_t off = kw - d->pad_w;
                for (int32_t oh = 0; oh < oh_n; oh++) {
                    int32_t ih = oh * d->stride_h - d->pad_h + kh;
                    float *r = row + (size_t)oh * ow_n;
                    if (ih < 0 || ih >= d->in_h) {
                        memset(r, 0, sizeof(float) * (size_t)ow_n);
                        continue;
                    }
                    const float *xr = xc + (size_t)ih * d->in_w;
                    for (int32_t ow = 0; ow < lo; ow++)
                        r[ow] = 0.0f;
                    if (d->stride_w == 1)
                        copy_row(r + lo, xr + lo + off, hi - lo);
                    else
                        for (int32_t ow = lo; ow < hi; ow++)
                            r[ow] = xr[ow * d->stride_w + off];
                    for (int32_t ow = hi; ow < ow_n; ow++)
                        r[ow] = 0.0f;
                }
            }
    }
}

/* A 1x1, stride-1, unpadded convolution's im2col is its input. */
static int im2col_is_identity(const odl_window_dims *d)
{
    return d->k_h == 1 && d->k_w == 1 && d->stride_h == 1 && d->stride_w == 1 && d->pad_h == 0 &&
           d->pad_w == 0 && d->out_h == d->in_h && d->out_w == d->in_w; /* no trailing padding */
}

/* im2col with dilation (any padding, stride): row (ci, kh, kw) reads
 * input row oh*stride_h - pad_h + kh*dil_h, column ow*stride_w - pad_w + kw*dil_w. */
static void im2col_dilated(const odl_window_dims *d, const float *xn, float *col)
{
    const int32_t dh = dil_h(d), dwl = dil_w(d), ow_n = d->out_w;
    for (int32_t ci = 0; ci < d->in_c; ci++) {
        const float *xc = xn + (size_t)ci * in_plane(d);
        for (int32_t kh = 0; kh < d->k_h; kh++)
            for (int32_t kw = 0; kw < d->k_w; kw++) {
                float *row = col + (((size_t)ci * d->k_h + kh) * d->k_w + kw) * out_plane(d);
                const int32_t off = kw * dwl - d->pad_w;
                for (int32_t oh = 0; oh < d->out_h; oh++) {
                    const int32_t ih = oh * d->stride_h - d->pad_h + kh * dh;
                    float *r = row + (size_t)oh * ow_n;
                    if (ih < 0 || ih >= d->in_h) {
                        memset(r, 0, sizeof(float) * (size_t)ow_n);
                        continue;
                    }
                    const float *xr = xc + (size_t)ih * d->in_w;
                    for (int32_t ow = 0; ow < ow_n; ow++) {
                        const int32_t iw = ow * d->stride_w + off;
                        r[ow] = iw >= 0 && iw < d->in_w ? xr[iw] : 0.0f;
                    }
                }
            }
    }
}

/* dx = col2im of d(col), with dilation: zero, then add every tap. */
static void col2im_dilated_set(const odl_window_dims *d, const float *dcol, float *dxn)
{
    const int32_t dh = dil_h(d), dwl = dil_w(d), ow_n = d->out_w;
    memset(dxn, 0, sizeof(float) * (size_t)d->in_c * in_plane(d));
    for (int32_t ci = 0; ci < d->in_c; ci++) {
        float *dxc = dxn + (size_t)ci * in_plane(d);
        for (int32_t kh = 0; kh < d->k_h; kh++)
            for (int32_t kw = 0; kw < d->k_w; kw++) {
                const float *row = dcol + (((size_t)ci * d->k_h + kh) * d->k_w + kw) * out_plane(d);
                const int32_t off = kw * dwl - d->pad_w;
                for (int32_t oh = 0; oh < d->out_h; oh++) {
                    const int32_t ih = oh * d->stride_h - d->pad_h + kh * dh;
                    if (ih < 0 || ih >= d->in_h)
                        continue;
                    float *dxr = dxc + (size_t)ih * d->in_w;
                    const float *dr = row + (size_t)oh * ow_n;
                    for (int32_t ow = 0; ow < ow_n; ow++) {
                        const int32_t iw = ow * d->stride_w + off;
                        if (iw >= 0 && iw < d->in_w)
                            dxr[iw] += dr[ow];
                    }
                }
            }
    }
}

static size_t y_count(const odl_window_dims *d) { return (size_t)d->batch * d->out_c * out_plane(d); }

/* One group of a grouped/dilated conv as a plain conv over its in_c/groups
 * channels (the fast im2col when undilated). */
static odl_window_dims group_dims(const odl_window_dims *d)
{
    odl_window_dims s = *d;
    s.in_c = d->in_c / n_groups(d);
    s.out_c = d->out_c / n_groups(d);
    s.groups = 1;
    return s;
}

static const float *group_im2col(const odl_window_dims *s, const float *xg, float *scratch)
{
    if (dil_h(s) == 1 && dil_w(s) == 1) {
        if (im2col_is_identity(s))
            return xg;
        im2col(s, xg, scratch);
    } else {
        im2col_dilated(s, xg, scratch);
    }
    return scratch;
}

static void conv2d_forward_general(const odl_window_dims *d, const float *x, const float *w,
                                   const float *b, float *y, float *scratch, unsigned flags)
{
    if (d->in_c > 1 && n_groups(d) == d->in_c) { /* depthwise: the same weight layout */
        odl_depthwise_forward_f32(d, x, w, b, y);
        if (flags & ODL_FUSE_RELU)
            odl_relu_forward_f32(y_count(d), y, y);
        return;
    }
    const odl_window_dims s = group_dims(d);
    const size_t P = out_plane(d);
    const int32_t Kg = s.in_c * d->k_h * d->k_w, G = n_groups(d);
    for (int32_t n = 0; n < d->batch; n++)
        for (int32_t g = 0; g < G; g++) {
            const float *xg = x + ((size_t)n * d->in_c + (size_t)g * s.in_c) * in_plane(d);
            const float *col = group_im2col(&s, xg, scratch);
            const gemm_args ga = {s.out_c, (int32_t)P, Kg, w + (size_t)g * s.out_c * Kg, (size_t)Kg, 1,
                                  col, P, y + ((size_t)n * d->out_c + (size_t)g * s.out_c) * P, P,
                                  b ? b + (size_t)g * s.out_c : NULL, 0, (flags & ODL_FUSE_RELU) != 0};
            gemm_nn(&ga);
        }
}

static void col2im_set(const odl_window_dims *d, const float *dcol, float *dxn);

static void conv2d_backward_general(const odl_window_dims *d, const float *x, const float *w,
                                    const float *dy, float *dx, float *dw, float *db, float *scratch,
                                    unsigned flags)
{
    const int set = (flags & ODL_GRAD_OVERWRITE) != 0;
    if (d->in_c > 1 && n_groups(d) == d->in_c) { /* depthwise (accumulates dw, db) */
        if (set && dw)
            memset(dw, 0, sizeof(float) * (size_t)d->out_c * d->k_h * d->k_w);
        if (set && db)
            memset(db, 0, sizeof(float) * (size_t)d->out_c);
        odl_depthwise_backward_f32(d, x, w, dy, dx, dw, db);
        return;
    }
    const odl_window_dims s = group_dims(d);
    const size_t P = out_plane(d);
    const int32_t Kg = s.in_c * d->k_h * d->k_w, G = n_groups(d);
    const int dilated = dil_h(d) > 1 || dil_w(d) > 1;
    const int identity = !dilated && im2col_is_identity(&s);
    for (int32_t n = 0; n < d->batch; n++) {
        const float *dyn = dy + (size_t)n * d->out_c * P;
        if (db)
            for (int32_t co = 0; co < d->out_c; co++) {
                const float *gp = dyn + (size_t)co * P;
                float acc = 0.0f;
                for (size_t p = 0; p < P; p++)
                    acc += gp[p];
                db[co] = set && n == 0 ? acc : db[co] + acc;
            }
        for (int32_t g = 0; g < G; g++) {
            const size_t xoff = ((size_t)n * d->in_c + (size_t)g * s.in_c) * in_plane(d);
            const float *dyg = dyn + (size_t)g * s.out_c * P;
            const float *wg = w + (size_t)g * s.out_c * Kg;
            if (dw) { /* dw_g[co][k] (+)= sum_p dy_g[co][p] col_g[k][p] */
                const float *col = group_im2col(&s, x + xoff, scratch);
                const gemm_args ga = {s.out_c, Kg, (int32_t)P, dyg, P, 1, col, P,
                                      dw + (size_t)g * s.out_c * Kg, (size_t)Kg, NULL, !(set && n == 0), 0};
                gemm_nt(&ga);
            }
            if (dx) {
                float *dxg = dx + xoff;
                float *dcol = identity ? dxg : scratch;
                const gemm_args ga = {Kg, (int32_t)P, s.out_c, wg, 1, (size_t)Kg, dyg, P, dcol, P, NULL, 0, 0};
                gemm_nn(&ga);
                if (identity)
                    continue;
                if (dilated)
                    col2im_dilated_set(&s, dcol, dxg);
                else
                    col2im_set(&s, dcol, dxg);
            }
        }
    }
}

void odl_conv2d_forward_f32(const odl_window_dims *d, const float *x, const float *w,
                            const float *b, float *y, float *scratch)
{
    odl_conv2d_forward_f32_ex(d, x, w, b, y, scratch, 0);
}

void odl_conv2d_forward_f32_ex(const odl_window_dims *d, const float *x, const float *w,
                               const float *b, float *y, float *scratch, unsigned flags)
{
    if (!conv_is_simple(d)) {
        conv2d_forward_general(d, x, w, b, y, scratch, flags);
        return;
    }
    const size_t P = out_plane(d);
    const int32_t K = d->in_c * d->k_h * d->k_w;
    for (int32_t n = 0; n < d->batch; n++) {
        const float *xn = x + (size_t)n * d->in_c * in_plane(d);
        const float *col = xn;
        if (!im2col_is_identity(d)) {
            im2col(d, xn, scratch);
            col = scratch;
        }
        /* y[co][p] = b[co] + sum_k w[co][k] col[k][p] */
        const gemm_args g = {d->out_c, (int32_t)P, K, w, (size_t)K, 1, col, P,
                             y + (size_t)n * d->out_c * P, P, b, 0, (flags & ODL_FUSE_RELU) != 0};
        gemm_nn(&g);
    }
}

void odl_conv2d_backward_f32_ref(const odl_window_dims *d, const float *x, const float *w,
                                 const float *dy, float *dx, float *dw, float *db)
{
    const int32_t cin_g = d->in_c / n_groups(d), cout_g = d->out_c / n_groups(d);
    const int32_t dh = dil_h(d), dwl = dil_w(d);
    if (dx)
        memset(dx, 0, sizeof(float) * (size_t)d->batch * d->in_c * in_plane(d));
    for (int32_t n = 0; n < d->batch; n++)
        for (int32_t co = 0; co < d->out_c; co++)
            for (int32_t oh = 0; oh < d->out_h; oh++)
                for (int32_t ow = 0; ow < d->out_w; ow++) {
                    float g = dy[(((size_t)n * d->out_c + co) * d->out_h + oh) * d->out_w + ow];
                    if (db)
                        db[co] += g;
                    const int32_t c0 = co / cout_g * cin_g;
                    for (int32_t ci = 0; ci < cin_g; ci++)
                        for (int32_t kh = 0; kh < d->k_h; kh++)
                            for (int32_t kw = 0; kw < d->k_w; kw++) {
                                int32_t ih = oh * d->stride_h - d->pad_h + kh * dh;
                                int32_t iw = ow * d->stride_w - d->pad_w + kw * dwl;
                                if (ih < 0 || ih >= d->in_h || iw < 0 || iw >= d->in_w)
                                    continue;
                                size_t xi = (((size_t)n * d->in_c + c0 + ci) * d->in_h + ih) * d->in_w + iw;
                                size_t wi = (((size_t)co * cin_g + ci) * d->k_h + kh) * d->k_w + kw;
                                if (dw)
                                    dw[wi] += g * x[xi];
                                if (dx)
                                    dx[xi] += g * w[wi];
                            }
                }
}

/* dx = col2im of d(col). The first tap (kh = kw = 0) of each channel is
 * written, not added, with zeros where it does not reach: the same values
 * as zeroing dx and adding it, in the same order, with one pass less. */
static void col2im_set(const odl_window_dims *d, const float *dcol, float *dxn)
{
    const int32_t ow_n = d->out_w;
    for (int32_t ci = 0; ci < d->in_c; ci++) {
        float *dxc = dxn + (size_t)ci * in_plane(d);
        for (int32_t kh = 0; kh < d->k_h; kh++)
            for (int32_t kw = 0; kw < d->k_w; kw++) {
                const float *row = dcol + (((size_t)ci * d->k_h + kh) * d->k_w + kw) * out_plane(d);
                /* valid ow: 0 <= ow*stride_w - pad_w + kw < in_w */
                int32_t lo = 0, hi = ow_n;
                while (lo < ow_n && lo * d->stride_w - d->pad_w + kw < 0)
                    lo++;
                while (hi > lo && (hi - 1) * d->stride_w - d->pad_w + kw >= d->in_w)
                    hi--;
                if (kh == 0 && kw == 0) {
                    /* ih = oh*stride_h - pad_h; iw = ow*stride_w - pad_w */
                    for (int32_t ih = 0; ih < d->in_h; ih++) {
                        float *dxr = dxc + (size_t)ih * d->in_w;
                        const int32_t t = ih + d->pad_h, oh = t / d->stride_h;
                        if (t % d->stride_h || oh >= d->out_h || hi <= lo) {
                            memset(dxr, 0, sizeof(float) * (size_t)d->in_w);
                            continue;
                        }
                        const float *dr = row + (size_t)oh * ow_n;
                        if (d->stride_w == 1) {
                            const int32_t a = lo - d->pad_w, e = hi - d->pad_w; /* iw range */
                            for (int32_t iw = 0; iw < a; iw++)
                                dxr[iw] = 0.0f;
                            copy_row(dxr + a, dr + lo, hi - lo);
                            for (int32_t iw = e; iw < d->in_w; iw++)
                                dxr[iw] = 0.0f;
                        } else {
                            memset(dxr, 0, sizeof(float) * (size_t)d->in_w);
                            for (int32_t ow = lo; ow < hi; ow++)
                                dxr[ow * d->stride_w - d->pad_w] = dr[ow];
                        }
                    }
                    continue;
                }
                for (int32_t oh = 0; oh < d->out_h; oh++) {
                    int32_t ih = oh * d->stride_h - d->pad_h + kh;
                    if (ih < 0 || ih >= d->in_h)
                        continue;
                    float *dxr = dxc + (size_t)ih * d->in_w;
                    const float *dr = row + (size_t)oh * ow_n;
                    if (d->stride_w == 1) {
                        const int32_t off = kw - d->pad_w; /* iw = ow + off */
                        if (hi > lo)
                            add_row(dxr + lo + off, dr + lo, hi - lo);
                    } else {
                        for (int32_t ow = lo; ow < hi; ow++)
                            dxr[ow * d->stride_w - d->pad_w + kw] += dr[ow];
                    }
                }
            }
    }
}

void odl_conv2d_backward_f32(const odl_window_dims *d, const float *x, const float *w,
                             const float *dy, float *dx, float *dw, float *db, float *scratch)
{
    odl_conv2d_backward_f32_ex(d, x, w, dy, dx, dw, db, scratch, 0);
}

void odl_conv2d_backward_f32_ex(const odl_window_dims *d, const float *x, const float *w,
                                const float *dy, float *dx, float *dw, float *db, float *scratch,
                                unsigned flags)
{
    if (!conv_is_simple(d)) {
        conv2d_backward_general(d, x, w, dy, dx, dw, db, scratch, flags);
        return;
    }
    const int set = (flags & ODL_GRAD_OVERWRITE) != 0;
    const size_t P = out_plane(d);
    const int32_t K = d->in_c * d->k_h * d->k_w;
    const int identity = im2col_is_identity(d);
    for (int32_t n = 0; n < d->batch; n++) {
        const float *dyn = dy + (size_t)n * d->out_c * P;
        const float *xn = x + (size_t)n * d->in_c * in_plane(d);
        if (db)
            for (int32_t co = 0; co < d->out_c; co++) {
                const float *g = dyn + (size_t)co * P;
                float acc = 0.0f;
                ODL_SIMD_REDUCE
                for (size_t p = 0; p < P; p++)
                    acc += g[p];
                db[co] = set && n == 0 ? acc : db[co] + acc;
            }
        if (dw) { /* dw[co][k] (+)= sum_p dy[co][p] col[k][p] */
            const float *col = xn;
            if (!identity) {
                im2col(d, xn, scratch);
                col = scratch;
            }
            const gemm_args g = {d->out_c, K, (int32_t)P, dyn, P, 1, col, P, dw, (size_t)K, NULL,
                                 !(set && n == 0), 0};
            gemm_nt(&g);
        }
        if (dx) { /* d(col)[k][p] = sum_co w[co][k] dy[co][p], then col2im */
            float *dxn = dx + (size_t)n * d->in_c * in_plane(d);
            float *dcol = identity ? dxn : scratch;
            const gemm_args g = {K, (int32_t)P, d->out_c, w, 1, (size_t)K, dyn, P, dcol, P, NULL, 0, 0};
            gemm_nn(&g);
            if (!identity)
                col2im_set(d, dcol, dxn);
        }
    }
}

/* ---- depthwise conv2d: direct reference loops, row-wise fast kernels ---- */

void odl_depthwise_forward_f32_ref(const odl_window_dims *d, const float *x, const float *w,
                                   const float *b, float *y)
{
    const int32_t mult = d->out_c / d->in_c;
    const int32_t dh = dil_h(d), dwl = dil_w(d);
    for (int32_t n = 0; n < d->batch; n++)
        for (int32_t co = 0; co < d->out_c; co++) {
            const float *xc = x + ((size_t)n * d->in_c + co / mult) * in_plane(d);
            const float *wk = w + (size_t)co * d->k_h * d->k_w;
            float *yc = y + ((size_t)n * d->out_c + co) * out_plane(d);
            for (int32_t oh = 0; oh < d->out_h; oh++)
                for (int32_t ow = 0; ow < d->out_w; ow++) {
                    float acc = b ? b[co] : 0.0f;
                    for (int32_t kh = 0; kh < d->k_h; kh++) {
                        int32_t ih = oh * d->stride_h - d->pad_h + kh * dh;
                        if (ih < 0 || ih >= d->in_h)
                            continue;
                        for (int32_t kw = 0; kw < d->k_w; kw++) {
                            int32_t iw = ow * d->stride_w - d->pad_w + kw * dwl;
                            if (iw >= 0 && iw < d->in_w)
                                acc += xc[(size_t)ih * d->in_w + iw] * wk[kh * d->k_w + kw];
                        }
                    }
                    yc[(size_t)oh * d->out_w + ow] = acc;
                }
        }
}

static inline void axpy_row(float *restrict y, const float *restrict x, float a, int32_t n)
{
    for (int32_t i = 0; i < n; i++)
        y[i] += x[i] * a;
}

/* One output of a 3x3 depthwise plane with its taps' bounds checked: the
 * bias, then every in-bounds tap in (kh, kw) order, as the reference. */
static inline float dw3_one(const float *xc, int32_t in_h, int32_t in_w, const float *wk, float bv, int32_t ih0,
                            int32_t iw0)
{
    float acc = bv;
    for (int32_t kh = 0; kh < 3; kh++) {
        const int32_t ih = ih0 + kh;
        if (ih < 0 || ih >= in_h)
            continue;
        for (int32_t kw = 0; kw < 3; kw++) {
            const int32_t iw = iw0 + kw;
            if (iw >= 0 && iw < in_w)
                acc += xc[(size_t)ih * in_w + iw] * wk[kh * 3 + kw];
        }
    }
    return acc;
}

#ifdef ODL_X86_AVX2
/* 8 consecutive outputs' taps of one input row at stride 2: x[s + 2j + c]
 * for j < 8 (c = 0, 1, 2), from x[s .. s + 17]. */
static ODL_AVX2_FN inline __m256 even8(const float *p)
{
    const __m256 a = _mm256_loadu_ps(p), b = _mm256_loadu_ps(p + 8);
    const __m256 e = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0)); /* a0 a2 b0 b2 | a4 a6 b4 b6 */
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e), _MM_SHUFFLE(3, 1, 2, 0)));
}

/* A 3x3, dilation-1 depthwise plane at stride 1 or 2 (any padding), eight
 * outputs of a row at a time. Each output still starts at the bias and adds
 * its in-bounds taps in (kh, kw) order, each as a multiply then an add (no
 * FMA), so the results are the reference's bits: rows in the padding are
 * skipped for the whole row, and columns whose taps reach the padding (or
 * whose loads would leave the row) go through dw3_one. */
static ODL_AVX2_FN void dw3_plane_avx2(const odl_window_dims *d, const float *xc, const float *wk, float bv,
                                       float *yc)
{
    const int32_t in_h = d->in_h, in_w = d->in_w, ow_n = d->out_w, sw = d->stride_w;
    /* ow in [lo, hi): all three columns in bounds and every vector load inside the row */
    const int32_t lo = d->pad_w > 0 ? (d->pad_w + sw - 1) / sw : 0;
    /* the last element a block of 8 outputs loads, from its first column: x[s + 7 + 2] at stride 1,
     * x[s + 2 + 15] at stride 2 (even8 of the third column) */
    const int32_t reach = sw == 1 ? 9 : 17;
    for (int32_t oh = 0; oh < d->out_h; oh++) {
        const int32_t ih0 = oh * d->stride_h - d->pad_h;
        const int32_t kh0 = ih0 < 0 ? -ih0 : 0, kh1 = in_h - ih0 < 3 ? in_h - ih0 : 3;
        float *yr = yc + (size_t)oh * ow_n;
        int32_t ow = 0;
        for (; ow < lo && ow < ow_n; ow++)
            yr[ow] = dw3_one(xc, in_h, in_w, wk, bv, ih0, ow * sw - d->pad_w);
        if (kh0 < kh1) {
            const __m256 vb = _mm256_set1_ps(bv);
            for (; ow + 8 <= ow_n && ow * sw - d->pad_w + reach < in_w; ow += 8) {
                const int32_t s = ow * sw - d->pad_w;
                __m256 acc = vb;
                for (int32_t kh = kh0; kh < kh1; kh++) {
                    const float *xr = xc + (size_t)(ih0 + kh) * in_w + s;
                    const float *wr = wk + kh * 3;
                    if (sw == 1) {
                        acc = _mm256_add_ps(acc, _mm256_mul_ps(_mm256_loadu_ps(xr), _mm256_set1_ps(wr[0])));
                        acc = _mm256_add_ps(acc, _mm256_mul_ps(_mm256_loadu_ps(xr + 1), _mm256_set1_ps(wr[1])));
                        acc = _mm256_add_ps(acc, _mm256_mul_ps(_mm256_loadu_ps(xr + 2), _mm256_set1_ps(wr[2])));
                    } else {
                        acc = _mm256_add_ps(acc, _mm256_mul_ps(even8(xr), _mm256_set1_ps(wr[0])));
                        acc = _mm256_add_ps(acc, _mm256_mul_ps(even8(xr + 1), _mm256_set1_ps(wr[1])));
                        acc = _mm256_add_ps(acc, _mm256_mul_ps(even8(xr + 2), _mm256_set1_ps(wr[2])));
                    }
                }
                _mm256_storeu_ps(yr + ow, acc);
            }
            if (sw == 1 && ow + 4 <= ow_n && ow - d->pad_w + 5 < in_w) { /* one block of 4 */
                const int32_t s = ow - d->pad_w;
                __m128 acc = _mm_set1_ps(bv);
                for (int32_t kh = kh0; kh < kh1; kh++) {
                    const float *xr = xc + (size_t)(ih0 + kh) * in_w + s;
                    const float *wr = wk + kh * 3;
                    acc = _mm_add_ps(acc, _mm_mul_ps(_mm_loadu_ps(xr), _mm_set1_ps(wr[0])));
                    acc = _mm_add_ps(acc, _mm_mul_ps(_mm_loadu_ps(xr + 1), _mm_set1_ps(wr[1])));
                    acc = _mm_add_ps(acc, _mm_mul_ps(_mm_loadu_ps(xr + 2), _mm_set1_ps(wr[2])));
                }
                _mm_storeu_ps(yr + ow, acc);
                ow += 4;
            }
        }
        /* the rest of the columns whose three taps are in bounds: no checks */
        for (; ow < ow_n && ow * sw - d->pad_w + 2 < in_w; ow++) {
            /* from the first row in bounds: ih0 is negative in the top padding */
            const float *xr = xc + (size_t)(ih0 + kh0) * in_w + (ow * sw - d->pad_w);
            float acc = bv;
            for (int32_t kh = kh0; kh < kh1; kh++) {
                const float *r = xr + (size_t)(kh - kh0) * in_w;
                acc += r[0] * wk[kh * 3];
                acc += r[1] * wk[kh * 3 + 1];
                acc += r[2] * wk[kh * 3 + 2];
            }
            yr[ow] = acc;
        }
        for (; ow < ow_n; ow++)
            yr[ow] = dw3_one(xc, in_h, in_w, wk, bv, ih0, ow * sw - d->pad_w);
    }
}
#endif

/* Row by row: the output row starts at the bias and each tap adds its
 * in-bounds span (one vectorisable loop per tap when stride_w is 1). Every
 * output still sums its taps in the reference's order (kh, then kw, skipping
 * those in the padding), so the results are the reference's bits. */
void odl_depthwise_forward_f32(const odl_window_dims *d, const float *x, const float *w,
                               const float *b, float *y)
{
    const int32_t mult = d->out_c / d->in_c;
    const int32_t dh = dil_h(d), dwl = dil_w(d), sw = d->stride_w, ow_n = d->out_w;
#ifdef ODL_X86_AVX2
    const int dw3 = d->k_h == 3 && d->k_w == 3 && dh == 1 && dwl == 1 && (sw == 1 || sw == 2) && have_avx2();
#endif
    for (int32_t n = 0; n < d->batch; n++)
        for (int32_t co = 0; co < d->out_c; co++) {
            const float *xc = x + ((size_t)n * d->in_c + co / mult) * in_plane(d);
            const float *wk = w + (size_t)co * d->k_h * d->k_w;
            float *yc = y + ((size_t)n * d->out_c + co) * out_plane(d);
            const float bv = b ? b[co] : 0.0f;
#ifdef ODL_X86_AVX2
            if (dw3) {
                dw3_plane_avx2(d, xc, wk, bv, yc);
                continue;
            }
#endif
            for (int32_t oh = 0; oh < d->out_h; oh++) {
                float *yr = yc + (size_t)oh * ow_n;
                for (int32_t ow = 0; ow < ow_n; ow++)
                    yr[ow] = bv;
                for (int32_t kh = 0; kh < d->k_h; kh++) {
                    const int32_t ih = oh * d->stride_h - d->pad_h + kh * dh;
                    if (ih < 0 || ih >= d->in_h)
                        continue;
                    const float *xr = xc + (size_t)ih * d->in_w;
                    for (int32_t kw = 0; kw < d->k_w; kw++) {
                        /* iw = ow*sw + off; in bounds for ow in [lo, hi) */
                        const int32_t off = kw * dwl - d->pad_w, room = d->in_w - off;
                        int32_t lo = off >= 0 ? 0 : (-off + sw - 1) / sw;
                        int32_t hi = room <= 0 ? 0 : (room + sw - 1) / sw;
                        if (hi > ow_n)
                            hi = ow_n;
                        if (hi <= lo)
                            continue;
                        const float wv = wk[kh * d->k_w + kw];
                        if (sw == 1)
                            axpy_row(yr + lo, xr + lo + off, wv, hi - lo);
                        else
                            for (int32_t ow = lo; ow < hi; ow++)
                                yr[ow] += xr[ow * sw + off] * wv;
                    }
                }
            }
        }
}

void odl_depthwise_backward_f32_ref(const odl_window_dims *d, const float *x, const float *w,
                                    const float *dy, float *dx, float *dw, float *db)
{
    const int32_t mult = d->out_c / d->in_c;
    const int32_t dh = dil_h(d), dwl = dil_w(d);
    if (dx)
        memset(dx, 0, sizeof(float) * (size_t)d->batch * d->in_c * in_plane(d));
    for (int32_t n = 0; n < d->batch; n++)
        for (int32_t co = 0; co < d->out_c; co++) {
            size_t xoff = ((size_t)n * d->in_c + co / mult) * in_plane(d);
            const float *xc = x + xoff;
            const float *wk = w + (size_t)co * d->k_h * d->k_w;
            float *dwk = dw ? dw + (size_t)co * d->k_h * d->k_w : NULL;
            const float *gc = dy + ((size_t)n * d->out_c + co) * out_plane(d);
            for (int32_t oh = 0; oh < d->out_h; oh++)
                for (int32_t ow = 0; ow < d->out_w; ow++) {
                    float g = gc[(size_t)oh * d->out_w + ow];
                    if (db)
                        db[co] += g;
                    for (int32_t kh = 0; kh < d->k_h; kh++) {
                        int32_t ih = oh * d->stride_h - d->pad_h + kh * dh;
                        if (ih < 0 || ih >= d->in_h)
                            continue;
                        for (int32_t kw = 0; kw < d->k_w; kw++) {
                            int32_t iw = ow * d->stride_w - d->pad_w + kw * dwl;
                            if (iw < 0 || iw >= d->in_w)
                                continue;
                            size_t xi = (size_t)ih * d->in_w + iw;
                            if (dwk)
                                dwk[kh * d->k_w + kw] += g * xc[xi];
                            if (dx)
                                dx[xoff + xi] += g * wk[kh * d->k_w + kw];
                        }
                    }
                }
        }
}

/* Row-wise like the forward, in an order that keeps every sum the
 * reference's: each dw and db element still adds its outputs in (oh, ow)
 * order; a dx element gets one contribution per (oh, ow), so with oh outer,
 * and kw descending (ow ascending for a fixed input column), it too adds
 * them in (oh, ow) order. The same bits as the direct loop. */
void odl_depthwise_backward_f32(const odl_window_dims *d, const float *x, const float *w,
                                const float *dy, float *dx, float *dw, float *db)
{
    const int32_t mult = d->out_c / d->in_c;
    const int32_t dh = dil_h(d), dwl = dil_w(d), sw = d->stride_w, ow_n = d->out_w;
    if (dx)
        memset(dx, 0, sizeof(float) * (size_t)d->batch * d->in_c * in_plane(d));
    for (int32_t n = 0; n < d->batch; n++)
        for (int32_t co = 0; co < d->out_c; co++) {
            const size_t xoff = ((size_t)n * d->in_c + co / mult) * in_plane(d);
            const float *xc = x + xoff;
            float *dxc = dx ? dx + xoff : NULL;
            const float *wk = w + (size_t)co * d->k_h * d->k_w;
            float *dwk = dw ? dw + (size_t)co * d->k_h * d->k_w : NULL;
            const float *gc = dy + ((size_t)n * d->out_c + co) * out_plane(d);
            for (int32_t oh = 0; oh < d->out_h; oh++) {
                const float *gr = gc + (size_t)oh * ow_n;
                if (db) {
                    float acc = db[co];
                    for (int32_t ow = 0; ow < ow_n; ow++)
                        acc += gr[ow];
                    db[co] = acc;
                }
                for (int32_t kh = 0; kh < d->k_h; kh++) {
                    const int32_t ih = oh * d->stride_h - d->pad_h + kh * dh;
                    if (ih < 0 || ih >= d->in_h)
                        continue;
                    const float *xr = xc + (size_t)ih * d->in_w;
                    float *dxr = dxc ? dxc + (size_t)ih * d->in_w : NULL;
                    for (int32_t kw = d->k_w - 1; kw >= 0; kw--) {
                        const int32_t off = kw * dwl - d->pad_w, room = d->in_w - off;
                        int32_t lo = off >= 0 ? 0 : (-off + sw - 1) / sw;
                        int32_t hi = room <= 0 ? 0 : (room + sw - 1) / sw;
                        if (hi > ow_n)
                            hi = ow_n;
                        if (hi <= lo)
                            continue;
                        const int32_t k = kh * d->k_w + kw;
                        if (dwk) {
                            float acc = dwk[k];
                            for (int32_t ow = lo; ow < hi; ow++)
                                acc += gr[ow] * xr[ow * sw + off];
                            dwk[k] = acc;
                        }
                        if (dxr) {
                            const float wv = wk[k];
                            if (sw == 1)
                                axpy_row(dxr + lo + off, gr + lo, wv, hi - lo);
                            else
                                for (int32_t ow = lo; ow < hi; ow++)
                                    dxr[ow * sw + off] += gr[ow] * wv;
                        }
                    }
                }
            }
        }
}

/* ---- pooling ----------------------------------------------------------- */

/* 2x2, stride 2, unpadded, every window inside the input (ceil mode can add
 * a clipped last window): the fast pool path. */
static int pool2_is_tiled(const odl_window_dims *d)
{
    return d->k_h == 2 && d->k_w == 2 && d->stride_h == 2 && d->stride_w == 2 && d->pad_h == 0 &&
           d->pad_w == 0 && dil_h(d) == 1 && dil_w(d) == 1 && 2 * d->out_h <= d->in_h &&
           2 * d->out_w <= d->in_w;
}

/* Index (within the input plane) of the first maximum of one window, or -1
 * when the window lies wholly in padding (cannot happen for valid dims). */
static int64_t window_argmax(const odl_window_dims *d, const float *xc, int32_t oh, int32_t ow)
{
    int64_t best = -1;
    float bv = -FLT_MAX;
    for (int32_t kh = 0; kh < d->k_h; kh++) {
        int32_t ih = oh * d->stride_h - d->pad_h + kh * dil_h(d);
        if (ih < 0 || ih >= d->in_h)
            continue;
        for (int32_t kw = 0; kw < d->k_w; kw++) {
            int32_t iw = ow * d->stride_w - d->pad_w + kw * dil_w(d);
            if (iw < 0 || iw >= d->in_w)
                continue;
            size_t i = (size_t)ih * d->in_w + iw;
            if (best < 0 || xc[i] > bv) {
                bv = xc[i];
                best = (int64_t)i;
            }
        }
    }
    return best;
}

#ifdef ODL_X86_AVX2
/* One output row of the 2x2/stride-2 pool, eight outputs at a time, with the
 * scalar loop's rule (m = a; if (b > m) m = b; ...) as compare-and-blend, so
 * NaN and signed zeros come out the same. Returns the outputs done. */
static ODL_AVX2_FN int32_t maxpool2_row_avx2(const float *r0, const float *r1, float *y, int32_t ow_n)
{
    for (int32_t ow = 0; ow < ow_n; ow += 8) {
        const int32_t nr = ow_n - ow < 8 ? ow_n - ow : 8; /* the last block masked */
        const __m256i m0 = lane_mask(2 * nr), m1 = lane_mask(2 * nr - 8);
        const __m256 p0 = _mm256_maskload_ps(r0 + 2 * ow, m0), p1 = _mm256_maskload_ps(r0 + 2 * ow + 8, m1);
        const __m256 q0 = _mm256_maskload_ps(r1 + 2 * ow, m0), q1 = _mm256_maskload_ps(r1 + 2 * ow + 8, m1);
        /* even/odd columns, in output order 0 1 4 5 | 2 3 6 7 */
        const __m256 a = _mm256_shuffle_ps(p0, p1, 0x88), b = _mm256_shuffle_ps(p0, p1, 0xDD);
        const __m256 c = _mm256_shuffle_ps(q0, q1, 0x88), e = _mm256_shuffle_ps(q0, q1, 0xDD);
        __m256 m = a;
        m = _mm256_blendv_ps(m, b, _mm256_cmp_ps(b, m, _CMP_GT_OQ));
        m = _mm256_blendv_ps(m, c, _mm256_cmp_ps(c, m, _CMP_GT_OQ));
        m = _mm256_blendv_ps(m, e, _mm256_cmp_ps(e, m, _CMP_GT_OQ));
        m = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(m), 0xD8));
        _mm256_maskstore_ps(y + ow, lane_mask(nr), m);
    }
    return ow_n;
}
#endif

void odl_maxpool_forward_f32(const odl_window_dims *d, const float *x, float *y)
{
#ifdef ODL_X86_AVX2
    const int avx2 = have_avx2();
#else
    const int avx2 = 0;
#endif
    (void)avx2;
    const size_t planes = (size_t)d->batch * d->in_c;
    for (size_t pl = 0; pl < planes; pl++) {
        const float *xc = x + pl * in_plane(d);
        float *yc = y + pl * out_plane(d);
        if (pool2_is_tiled(d)) {
            /* the common case, without bounds checks */
            for (int32_t oh = 0; oh < d->out_h; oh++) {
                const float *r0 = xc + (size_t)(2 * oh) * d->in_w;
                const float *r1 = r0 + d->in_w;
                int32_t ow = 0;
#ifdef ODL_X86_AVX2
                if (avx2)
                    ow = maxpool2_row_avx2(r0, r1, yc + (size_t)oh * d->out_w, d->out_w);
#endif
                for (; ow < d->out_w; ow++) {
                    float a = r0[2 * ow], b = r0[2 * ow + 1], c = r1[2 * ow], e = r1[2 * ow + 1];
                    float m = a;
                    if (b > m) m = b;
                    if (c > m) m = c;
                    if (e > m) m = e;
                    yc[(size_t)oh * d->out_w + ow] = m;
                }
            }
            continue;
        }
        for (int32_t oh = 0; oh < d->out_h; oh++)
            for (int32_t ow = 0; ow < d->out_w; ow++) {
                int64_t i = window_argmax(d, xc, oh, ow);
                yc[(size_t)oh * d->out_w + ow] = i >= 0 ? xc[i] : 0.0f;
            }
    }
}

void odl_maxpool_backward_f32(const odl_window_dims *d, const float *x, const float *dy, float *dx)
{
    odl_maxpool_backward_f32_ex(d, x, dy, dx, 0);
}

void odl_maxpool_backward_f32_ex(const odl_window_dims *d, const float *x, const float *dy, float *dx,
                                 unsigned flags)
{
    const size_t planes = (size_t)d->batch * d->in_c;
    const int relu = (flags & ODL_FUSE_RELU) != 0;
    if (pool2_is_tiled(d)) {
        /* The common case. The windows tile the covered part of the plane
         * without overlap, so every element is written once (the gradient at
         * the first maximum in window order a b / c e, zero elsewhere) and
         * only the uncovered last row/column needs zeroing: no memset of dx. */
        const int32_t W = d->in_w, cw = 2 * d->out_w, ch = 2 * d->out_h;
        for (size_t pl = 0; pl < planes; pl++) {
            const float *xc = x + pl * in_plane(d);
            const float *gc = dy + pl * out_plane(d);
            float *dxc = dx + pl * in_plane(d);
            for (int32_t oh = 0; oh < d->out_h; oh++) {
                const size_t r0 = (size_t)(2 * oh) * W, r1 = r0 + W;
                const float *g = gc + (size_t)oh * d->out_w;
                for (int32_t ow = 0; ow < d->out_w; ow++) {
                    const size_t i0 = r0 + 2 * ow, i1 = i0 + 1, i2 = r1 + 2 * ow, i3 = i2 + 1;
                    size_t i = i0;
                    float m = xc[i0];
                    if (xc[i1] > m) m = xc[i = i1];
                    if (xc[i2] > m) m = xc[i = i2];
                    if (xc[i3] > m) m = xc[i = i3];
                    /* fused ReLU backward: x is the ReLU's output, relu'(x) = x > 0 */
                    const float v = relu && !(m > 0.0f) ? 0.0f : g[ow];
                    dxc[i0] = dxc[i1] = dxc[i2] = dxc[i3] = 0.0f;
                    dxc[i] = v;
                }
                if (cw < W) {
                    dxc[r0 + (size_t)cw] = 0.0f;
                    dxc[r1 + (size_t)cw] = 0.0f;
                }
            }
            if (ch < d->in_h)
                memset(dxc + (size_t)ch * W, 0, sizeof(float) * (size_t)W);
        }
        return;
    }
    memset(dx, 0, sizeof(float) * planes * in_plane(d));
    for (size_t pl = 0; pl < planes; pl++) {
        const float *xc = x + pl * in_plane(d);
        const float *gc = dy + pl * out_plane(d);
        float *dxc = dx + pl * in_plane(d);
        for (int32_t oh = 0; oh < d->out_h; oh++)
            for (int32_t ow = 0; ow < d->out_w; ow++) {
                int64_t i = window_argmax(d, xc, oh, ow);
                if (i >= 0 && !(relu && !(xc[i] > 0.0f)))
                    dxc[i] += gc[(size_t)oh * d->out_w + ow];
            }
    }
}

/* Taps of one axis of a window starting at p0 (step dil, k taps) that land
 * in [lo, hi). */
static int32_t taps_within(int32_t p0, int32_t k, int32_t dil, int32_t lo, int32_t hi)
{
    int32_t n = 0;
    for (int32_t i = 0; i < k; i++)
        n += p0 + i * dil >= lo && p0 + i * dil < hi;
    return n;
}

/* The average's divisor: the window's cells inside the input, or with
 * count_include_pad also those in the padding, but never those beyond the
 * trailing padding (a ceil-mode window clipped there), as PyTorch and ONNX. */
static int32_t window_count(const odl_window_dims *d, int32_t oh, int32_t ow)
{
    const int32_t h0 = oh * d->stride_h - d->pad_h, w0 = ow * d->stride_w - d->pad_w;
    if (d->flags & ODL_NODE_COUNT_PAD)
        return taps_within(h0, d->k_h, dil_h(d), -d->pad_h, d->in_h + d->pad_b) *
               taps_within(w0, d->k_w, dil_w(d), -d->pad_w, d->in_w + d->pad_r);
    return taps_within(h0, d->k_h, dil_h(d), 0, d->in_h) * taps_within(w0, d->k_w, dil_w(d), 0, d->in_w);
}

void odl_avgpool_forward_f32(const odl_window_dims *d, const float *x, float *y)
{
    const size_t planes = (size_t)d->batch * d->in_c;
    for (size_t pl = 0; pl < planes; pl++) {
        const float *xc = x + pl * in_plane(d);
        float *yc = y + pl * out_plane(d);
        for (int32_t oh = 0; oh < d->out_h; oh++)
            for (int32_t ow = 0; ow < d->out_w; ow++) {
                float acc = 0.0f;
                for (int32_t kh = 0; kh < d->k_h; kh++) {
                    int32_t ih = oh * d->stride_h - d->pad_h + kh * dil_h(d);
                    if (ih < 0 || ih >= d->in_h)
                        continue;
                    for (int32_t kw = 0; kw < d->k_w; kw++) {
                        int32_t iw = ow * d->stride_w - d->pad_w + kw * dil_w(d);
                        if (iw >= 0 && iw < d->in_w)
                            acc += xc[(size_t)ih * d->in_w + iw];
                    }
                }
                /* a window wholly in padding (only with pads wider than the window) averages nothing */
                const int32_t cnt = window_count(d, oh, ow);
                yc[(size_t)oh * d->out_w + ow] = cnt > 0 ? acc / (float)cnt : 0.0f;
            }
    }
}

void odl_avgpool_backward_f32(const odl_window_dims *d, const float *dy, float *dx)
{
    const size_t planes = (size_t)d->batch * d->in_c;
    memset(dx, 0, sizeof(float) * planes * in_plane(d));
    for (size_t pl = 0; pl < planes; pl++) {
        const float *gc = dy + pl * out_plane(d);
        float *dxc = dx + pl * in_plane(d);
        for (int32_t oh = 0; oh < d->out_h; oh++)
            for (int32_t ow = 0; ow < d->out_w; ow++) {
                const int32_t cnt = window_count(d, oh, ow);
                if (cnt <= 0)
                    continue;
                float g = gc[(size_t)oh * d->out_w + ow] / (float)cnt;
                for (int32_t kh = 0; kh < d->k_h; kh++) {
                    int32_t ih = oh * d->stride_h - d->pad_h + kh * dil_h(d);
                    if (ih < 0 || ih >= d->in_h)
                        continue;
                    for (int32_t kw = 0; kw < d->k_w; kw++) {
                        int32_t iw = ow * d->stride_w - d->pad_w + kw * dil_w(d);
                        if (iw >= 0 && iw < d->in_w)
                            dxc[(size_t)ih * d->in_w + iw] += g;
                    }
                }
            }
    }
}

void odl_gap_forward_f32(int32_t batch, int32_t c, int32_t hw, const float *x, float *y)
{
    for (size_t pl = 0; pl < (size_t)batch * c; pl++) {
        const float *xc = x + pl * hw;
        float acc = 0.0f;
        for (int32_t i = 0; i < hw; i++)
            acc += xc[i];
        y[pl] = acc / (float)hw;
    }
}

void odl_gap_backward_f32(int32_t batch, int32_t c, int32_t hw, const float *dy, float *dx)
{
    for (size_t pl = 0; pl < (size_t)batch * c; pl++) {
        float g = dy[pl] / (float)hw;
        for (int32_t i = 0; i < hw; i++)
            dx[pl * hw + i] = g;
    }
}

/* ---- elementwise ------------------------------------------------------- */

void odl_relu_forward_f32(size_t n, const float *x, float *y)
{
    for (size_t i = 0; i < n; i++)
        y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

void odl_relu_backward_f32(size_t n, const float *y, const float *dy, float *dx)
{
    for (size_t i = 0; i < n; i++)
        dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

#ifdef ODL_X86_AVX2
/* max_ps(x, 0) is x > 0 ? x : 0 (NaN and -0 give +0) and min_ps(v, 6) is
 * v < 6 ? v : 6: the scalar loop's bits. x may equal y. */
static ODL_AVX2_FN size_t relu6_avx2(size_t n, const float *x, float *y)
{
    const __m256 zero = _mm256_setzero_ps(), six = _mm256_set1_ps(6.0f);
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_min_ps(_mm256_max_ps(_mm256_loadu_ps(x + i), zero), six));
    return i;
}
#endif

void odl_relu6_forward_f32(size_t n, const float *x, float *y)
{
    size_t i = 0;
#ifdef ODL_X86_AVX2
    if (n >= 8 && have_avx2())
        i = relu6_avx2(n, x, y);
#endif
    for (; i < n; i++) {
        const float v = x[i] > 0.0f ? x[i] : 0.0f;
        y[i] = v < 6.0f ? v : 6.0f;
    }
}

void odl_relu6_backward_f32(size_t n, const float *y, const float *dy, float *dx)
{
    for (size_t i = 0; i < n; i++)
        dx[i] = (y[i] > 0.0f && y[i] < 6.0f) ? dy[i] : 0.0f;
}

void odl_dropout_forward_f32(size_t n, float p, odl_rng *r, const float *x, float *y)
{
    const float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
    for (size_t i = 0; i < n; i++)
        y[i] = odl_rng_uniform(r) < p ? 0.0f : x[i] * scale;
}

void odl_dropout_backward_f32(size_t n, float p, odl_rng *r_at_forward, const float *dy, float *dx)
{
    const float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
    odl_rng r = *r_at_forward;
    for (size_t i = 0; i < n; i++)
        dx[i] = odl_rng_uniform(&r) < p ? 0.0f : dy[i] * scale;
}

/* ---- Adam update -------------------------------------------------------- */

/* torch.optim.Adam's element update with the step's constants precomputed
 * (odl_adam_step_f32 in optim.c does the same arithmetic in the same order,
 * so all three agree bit for bit). */
void odl_adam_update_f32_ref(const odl_adam_coef *k, size_t n, float *w, const float *g, float *m,
                             float *v)
{
    for (size_t i = 0; i < n; i++) {
        float gi = g[i] + k->wd * w[i];
        m[i] = k->b1 * m[i] + k->one_m_b1 * gi;
        v[i] = k->b2 * v[i] + k->one_m_b2 * gi * gi;
        float denom = sqrtf(v[i]) * k->inv_sqrt_bc2 + k->eps;
        w[i] -= k->step_size * m[i] / denom;
    }
}

#ifdef ODL_X86_AVX2
/* Eight lanes at a time with the scalar loop's operations (mul, add, sqrt,
 * div: all correctly rounded, no FMA), so the result is the same bits. */
static ODL_AVX2_FN void adam_avx2(const odl_adam_coef *k, size_t n, float *w, const float *g, float *m,
                                  float *v)
{
    const __m256 b1 = _mm256_set1_ps(k->b1), b2 = _mm256_set1_ps(k->b2);
    const __m256 c1 = _mm256_set1_ps(k->one_m_b1), c2 = _mm256_set1_ps(k->one_m_b2);
    const __m256 wd = _mm256_set1_ps(k->wd), eps = _mm256_set1_ps(k->eps);
    const __m256 ss = _mm256_set1_ps(k->step_size), ib = _mm256_set1_ps(k->inv_sqrt_bc2);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 wi = _mm256_loadu_ps(w + i);
        const __m256 gi = _mm256_add_ps(_mm256_loadu_ps(g + i), _mm256_mul_ps(wd, wi));
        const __m256 mi = _mm256_add_ps(_mm256_mul_ps(b1, _mm256_loadu_ps(m + i)), _mm256_mul_ps(c1, gi));
        const __m256 vi = _mm256_add_ps(_mm256_mul_ps(b2, _mm256_loadu_ps(v + i)),
                                        _mm256_mul_ps(_mm256_mul_ps(c2, gi), gi));
        const __m256 den = _mm256_add_ps(_mm256_mul_ps(_mm256_sqrt_ps(vi), ib), eps);
        _mm256_storeu_ps(m + i, mi);
        _mm256_storeu_ps(v + i, vi);
        _mm256_storeu_ps(w + i, _mm256_sub_ps(wi, _mm256_div_ps(_mm256_mul_ps(ss, mi), den)));
    }
    if (i < n)
        odl_adam_update_f32_ref(k, n - i, w + i, g + i, m + i, v + i);
}
#endif

void odl_adam_update_f32(const odl_adam_coef *k, size_t n, float *w, const float *g, float *m, float *v)
{
#ifdef ODL_X86_AVX2
    if (have_avx2()) {
        adam_avx2(k, n, w, g, m, v);
        return;
    }
#endif
    odl_adam_update_f32_ref(k, n, w, g, m, v);
}
