/* bench_qkernels.c — instructions of each INT8 kernel call of the edge-cnn
 * base's prefix on the Cortex-M4F (QEMU -icount, target.h's counter), with
 * the shapes of the firmware's model and random int8 data and weights (the
 * counts hardly depend on the values); then the KWS DS-CNN's depthwise 3x3
 * (64 channels at 25x5, padding 1), its pointwise 1x1 conv (64 -> 64), its
 * 25x5 average pool and an INT8 add of that size (the residual network's
 * operator). run.sh adds its COST lines to the
 * measured costs (baseline.txt). The kernels are whichever the build selects
 * (Makefile: DSP=1, the default, the dual-MAC kernels; DSP=0 the portable
 * loops). */
#include <string.h>

#include "odl/odl.h"
#include "odl/quant.h"
#include "target.h"

#define REPS 4

static int8_t x0[28 * 28], a1[8 * 28 * 28], p1[8 * 14 * 14], a2[16 * 14 * 14], p2[16 * 7 * 7], z[64];
static int8_t w1[8 * 9], w2[16 * 8 * 9], w3[64 * 784];
static int32_t bias[64], mult[64], shift[64];
static int16_t scratch[2 * 8 * 9]; /* conv 8->16 3x3: 288 bytes; the pointwise 64->64 needs 256 */
static int8_t kx[64 * 25 * 5], ky[64 * 25 * 5], ka[64 * 25 * 5], kw[64 * 64], kp[64];
static float img[28 * 28];

static void fill(odl_rng *r, int8_t *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        v[i] = (int8_t)(odl_rng_u32(r) & 0xff);
}

/* requantisation as a trained layer's: M ~ 2^-9 .. 2^-7, ReLU fused */
static odl_qrequant requant(odl_rng *r, int32_t in_zp)
{
    for (int i = 0; i < 64; i++) {
        bias[i] = (int32_t)(odl_rng_below(r, 4001)) - 2000;
        mult[i] = (int32_t)(0x40000000u + (odl_rng_u32(r) >> 2));
        shift[i] = -7 - (int32_t)odl_rng_below(r, 3);
    }
    odl_qrequant q = {in_zp, -128, -128, 127, bias, mult, shift};
    return q;
}

static uint64_t since(uint64_t t0) { return (target_instructions() - t0) / REPS; }

int main(void)
{
    target_counter_start();
    odl_rng r;
    odl_rng_seed(&r, 14, 1);
    for (int i = 0; i < 28 * 28; i++)
        img[i] = odl_rng_uniform(&r);
    fill(&r, w1, sizeof w1);
    fill(&r, w2, sizeof w2);
    fill(&r, w3, sizeof w3);
    const odl_qparams in_q = {1.0f / 255.0f, -128};
    const odl_window_dims c1 = odl_window_dims_simple(1, 1, 28, 28, 8, 28, 28, 3, 3, 1, 1, 1, 1);
    const odl_window_dims m1 = odl_window_dims_simple(1, 8, 28, 28, 8, 14, 14, 2, 2, 2, 2, 0, 0);
    const odl_window_dims c2 = odl_window_dims_simple(1, 8, 14, 14, 16, 14, 14, 3, 3, 1, 1, 1, 1);
    const odl_window_dims m2 = odl_window_dims_simple(1, 16, 14, 14, 16, 7, 7, 2, 2, 2, 2, 0, 0);
    const odl_dense_dims d3 = {1, 784, 64};
    if (odl_qconv2d_scratch_bytes(&c1) > sizeof scratch || odl_qconv2d_scratch_bytes(&c2) > sizeof scratch) {
        target_log("bench: conv scratch too small");
        target_exit(1);
    }
    uint64_t t0 = target_instructions();
    for (int k = 0; k < REPS; k++)
        for (int i = 0; i < 28 * 28; i++)
            x0[i] = odl_q_quantize(img[i], in_q);
    const uint64_t n_quant = since(t0);
    odl_qrequant q1 = requant(&r, -128);
    t0 = target_instructions();
    for (int k = 0; k < REPS; k++)
        odl_qconv2d_s8(&c1, x0, w1, &q1, a1, scratch);
    const uint64_t n_conv1 = since(t0);
    t0 = target_instructions();
    for (int k = 0; k < REPS; k++)
        odl_qmaxpool_s8(&m1, a1, p1);
    const uint64_t n_pool1 = since(t0);
    odl_qrequant q2 = requant(&r, -128);
    t0 = target_instructions();
    for (int k = 0; k < REPS; k++)
        odl_qconv2d_s8(&c2, p1, w2, &q2, a2, scratch);
    const uint64_t n_conv2 = since(t0);
    t0 = target_instructions();
    for (int k = 0; k < REPS; k++)
        odl_qmaxpool_s8(&m2, a2, p2);
    const uint64_t n_pool2 = since(t0);
    odl_qrequant q3 = requant(&r, -128);
    t0 = target_instructions();
    for (int k = 0; k < REPS; k++)
        odl_qdense_s8(&d3, p2, w3, &q3, z);
    const uint64_t n_dense = since(t0);
    /* the KWS DS-CNN's depthwise layers and average pool */
    const odl_window_dims dw = odl_window_dims_simple(1, 64, 25, 5, 64, 25, 5, 3, 3, 1, 1, 1, 1);
    const odl_window_dims ap = odl_window_dims_simple(1, 64, 25, 5, 64, 1, 1, 25, 5, 1, 1, 0, 0);
    fill(&r, kx, sizeof kx);
    fill(&r, kw, sizeof kw);
    odl_qrequant q4 = requant(&r, 3);
    q4.out_zp = -20;
    t0 = target_instructions();
    for (int k = 0; k < REPS; k++)
        odl_qdepthwise_s8(&dw, kx, kw, &q4, ky);
    const uint64_t n_kws_dw = since(t0);
    /* the pointwise 1x1 conv after each depthwise layer (64 -> 64) */
    const odl_window_dims pw = odl_window_dims_simple(1, 64, 25, 5, 64, 25, 5, 1, 1, 1, 1, 0, 0);
    fill(&r, kw, sizeof kw);
    odl_qrequant q5 = requant(&r, -20);
    if (odl_qconv2d_scratch_bytes(&pw) > sizeof scratch) {
        target_log("bench: conv scratch too small");
        target_exit(1);
    }
    t0 = target_instructions();
    for (int k = 0; k < REPS; k++)
        odl_qconv2d_s8(&pw, ky, kw, &q5, ka, scratch);
    const uint64_t n_kws_pw = since(t0);
    t0 = target_instructions();
    for (int k = 0; k < REPS; k++)
        odl_qavgpool_s8(&ap, ky, kp);
    const uint64_t n_kws_pool = since(t0);
    /* add (a residual connection) over 64x25x5: TFLite's parameters for
     * input scales 0.05 and 0.08 into an output scale of 0.1 */
    odl_qbinary ab = {3, -7, -2, 0, 0, 0, 0, 0, 0, 20, -128, 127};
    odl_q_quantize_multiplier(0.05 / (2 * 0.08), &ab.a_mult, &ab.a_shift);
    odl_q_quantize_multiplier(0.08 / (2 * 0.08), &ab.b_mult, &ab.b_shift);
    odl_q_quantize_multiplier(2 * 0.08 / ((1 << 20) * 0.1), &ab.out_mult, &ab.out_shift);
    t0 = target_instructions();
    for (int k = 0; k < REPS; k++)
        odl_qadd_s8(&ab, 1, 64, 25 * 5, kx, ky, 64, 25 * 5, ka);
    const uint64_t n_add = since(t0);
#if defined(ODL_USE_DSP)
    target_log("bench: INT8 kernels: Armv7E-M DSP (dual 16-bit MACs)");
#else
    target_log("bench: INT8 kernels: portable loops");
#endif
    target_logf("COST insn_int8_quantize_input %lu", (unsigned long)n_quant);
    target_logf("COST insn_int8_conv1 %lu", (unsigned long)n_conv1);
    target_logf("COST insn_int8_pool1 %lu", (unsigned long)n_pool1);
    target_logf("COST insn_int8_conv2 %lu", (unsigned long)n_conv2);
    target_logf("COST insn_int8_pool2 %lu", (unsigned long)n_pool2);
    target_logf("COST insn_int8_dense %lu", (unsigned long)n_dense);
    target_logf("COST insn_int8_kws_depthwise %lu", (unsigned long)n_kws_dw);
    target_logf("COST insn_int8_kws_pointwise %lu", (unsigned long)n_kws_pw);
    target_logf("COST insn_int8_kws_avgpool %lu", (unsigned long)n_kws_pool);
    target_logf("COST insn_int8_add %lu", (unsigned long)n_add);
    target_logf("bench: layers %lu instructions (input quantisation included)",
                (unsigned long)(n_quant + n_conv1 + n_pool1 + n_conv2 + n_pool2 + n_dense));
    int32_t check = 0; /* the outputs are used: nothing optimised away */
    for (int i = 0; i < 64; i++)
        check += z[i] + kp[i] + ka[i * 125];
    target_logf("bench: checksum %d", (int)check);
    target_exit(0);
}
