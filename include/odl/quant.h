/* odl/quant.h — INT8 inference for the frozen prefix of a model (the TFLite
 * scheme). The full description is docs/quant.md.
 *
 *   weights      int8, symmetric, per output channel: w = s_w[c] · q, zero point 0,
 *                s_w[c] = max|w_c| / 127
 *   biases       int32: round(b / (s_in · s_w[c])), zero point 0
 *   activations  int8, asymmetric, per tensor: x = s · (q − zp), s and zp from the
 *                min/max seen on calibration data (min ≤ 0 ≤ max, nudged so that
 *                0.0 is exactly q = zp)
 *   requantise   acc (int32) → zp_out + MultiplyByQuantizedMultiplier(acc, M0, shift),
 *                integer only; ReLU/ReLU6 after conv/depthwise/dense are fused
 *                into the output clamp
 *
 * An odl_qmodel is a quantised copy of layers [0, boundary) of an FP32 model.
 * Its forward takes float inputs (quantised on entry) and returns the float
 * latents of layer boundary−1 (dequantised on exit), so an FP32 head, a replay
 * buffer or any strategy of odl/adapt.h consumes them unchanged:
 *
 *   odl_qcalib c;                                   // 1. calibrate (host)
 *   odl_qcalib_begin(&c, desc, boundary, &diag);
 *   odl_qcalib_observe(&c, fp32_model, x, n, work, work_floats, &diag);  // per batch
 *   odl_qmodel_plan(desc, boundary, max_batch, &plan, &diag);            // 2. build
 *   odl_qmodel_init(&q, desc, boundary, max_batch, &arena, &diag);
 *   odl_qmodel_quantize(q, fp32_model, &c, &diag);
 *   odl_qmodel_forward(q, x, n, z, &diag);          // 3. run: z = latents
 *
 * On a device the quantised model comes from a file (odl_qfile_read_desc,
 * plan, init, odl_qmodel_load). Like the rest of the core: no malloc, no
 * stdio, exact plans, errors through odl_diag. */
#ifndef ODL_QUANT_H
#define ODL_QUANT_H

#include <stddef.h>
#include <stdint.h>
#include "odl/status.h"
#include "odl/arena.h"
#include "odl/layers.h"
#include "odl/model.h"
#include "odl/file.h"

#ifdef __cplusplus
extern "C" {
#endif

/* New chunk types (docs/quant.md); readers that do not know them skip them. */
#define ODL_CHUNK_QUANT  ODL_FOURCC('Q', 'N', 'T', ' ')
#define ODL_CHUNK_QLAYER ODL_FOURCC('Q', 'L', 'A', 'Y')
#define ODL_QUANT_VERSION 2 /* reads 1 and 2; writes 1 for what format 1 describes */

/* Largest reduction (inputs per output) a quantised layer may have: with
 * |x − zp| ≤ 255, |w| ≤ 128 and |bias| ≤ 2^30 no int32 sum can overflow. */
#define ODL_QUANT_MAX_REDUCTION 32768
#define ODL_QUANT_MAX_BIAS (1L << 30)

/* ---- scalar helpers ------------------------------------------------------ */

/* Affine parameters of an int8 tensor: real = scale · (q − zero_point). */
typedef struct odl_qparams {
    float scale;        /* > 0 */
    int32_t zero_point; /* −128..127 */
} odl_qparams;

/* TFLite's ChooseQuantizationParams for int8: the range is widened to
 * include 0, scale = (max − min) / 255, zero point rounded and clamped so
 * that 0.0 is exact. A zero range gives scale 1, zero point 0. min/max must
 * be finite (else scale 1, zero point 0 as well). */
odl_qparams odl_q_choose_params(float min, float max);

/* q = clamp(zp + round_half_away(x / scale), −128, 127); NaN gives zp. */
int8_t odl_q_quantize(float x, odl_qparams p);
float odl_q_dequantize(int8_t q, odl_qparams p);

/* M (> 0) as M0 · 2^(shift − 31) with M0 in [2^30, 2^31) (TFLite's
 * QuantizeMultiplier); M ≤ 0 or tiny gives (0, 0), huge M saturates at
 * (2^31 − 1, 30). */
void odl_q_quantize_multiplier(double m, int32_t *mult, int32_t *shift);

/* TFLite's MultiplyByQuantizedMultiplier: round(x · M0 · 2^(shift − 31)) with
 * gemmlowp's SaturatingRoundingDoublingHighMul (ties toward +inf) followed by
 * RoundingDivideByPOT (ties away from zero). The left shift for shift > 0
 * saturates at the int32 range instead of overflowing. */
int32_t odl_q_multiply(int32_t x, int32_t mult, int32_t shift);

/* ---- INT8 kernels --------------------------------------------------------
 * Layouts and dimensions as the FP32 kernels (odl/layers.h). Each optimised
 * kernel has a plain `_ref` loop; the two agree bit for bit. */
typedef struct odl_qrequant {
    int32_t in_zp;              /* zero point of the input */
    int32_t out_zp;             /* zero point of the output */
    int32_t act_min, act_max;   /* output clamp (fused ReLU/ReLU6), in −128..127 */
    const int32_t *bias;        /* per output channel, int32 (may be NULL) */
    const int32_t *mult;        /* per output channel requantisation multiplier */
    const int32_t *shift;       /* per output channel shift */
} odl_qrequant;

/* y[n][o] = requant_o(bias[o] + Σ_i (x[n][i] − in_zp) · w[o][i]). */
void odl_qdense_s8(const odl_dense_dims *d, const int8_t *x, const int8_t *w,
                   const odl_qrequant *r, int8_t *y);
void odl_qdense_s8_ref(const odl_dense_dims *d, const int8_t *x, const int8_t *w,
                       const odl_qrequant *r, int8_t *y);

/* Padding contributes (in_zp − in_zp) = 0, i.e. real zeros. The scratch is
 * two unfolded output pixels of one group (2 · (in_c / groups) · k_h · k_w
 * int16), whatever the image size: 288 bytes for a 3x3 conv over 8 channels. */
size_t odl_qconv2d_scratch_bytes(const odl_window_dims *d);
void odl_qconv2d_s8(const odl_window_dims *d, const int8_t *x, const int8_t *w,
                    const odl_qrequant *r, int8_t *y, void *scratch);
void odl_qconv2d_s8_ref(const odl_window_dims *d, const int8_t *x, const int8_t *w,
                        const odl_qrequant *r, int8_t *y);
void odl_qdepthwise_s8(const odl_window_dims *d, const int8_t *x, const int8_t *w,
                       const odl_qrequant *r, int8_t *y);
void odl_qdepthwise_s8_ref(const odl_window_dims *d, const int8_t *x, const int8_t *w,
                           const odl_qrequant *r, int8_t *y);

/* With ODL_USE_DSP (a core with the Armv7E-M DSP extension: Cortex-M4,
 * M7, M33; the Cortex-M port's build defines it) odl_qconv2d_s8,
 * odl_qdepthwise_s8, odl_qdense_s8, the 2x2/2 case of odl_qmaxpool_s8 and
 * the window sums of odl_qavgpool_s8 run these dual 16-bit MAC (and
 * four-byte sum) kernels, bit for bit equal to the `_ref` loops; the same
 * scratch. */
#if defined(ODL_USE_DSP)
void odl_qconv2d_s8_dsp(const odl_window_dims *d, const int8_t *x, const int8_t *w,
                        const odl_qrequant *r, int8_t *y, void *scratch);
void odl_qdense_s8_dsp(const odl_dense_dims *d, const int8_t *x, const int8_t *w,
                       const odl_qrequant *r, int8_t *y);
/* k 2x2, stride 2, no padding, 2·out ≤ in in both dimensions */
void odl_qmaxpool2x2_s8_dsp(const odl_window_dims *d, const int8_t *x, int8_t *y);
/* Returns 0 and writes nothing for a shape outside its limits (dilation;
 * more than 32 pairs of taps, k_h · ceil(k_w / 2); a band of k_h rows of
 * (out_w − 1)·stride_w + 2·ceil(k_w / 2) columns over 512 int16), which the
 * portable loop then runs; else 1. A 1 KB int16 band on the stack. */
int odl_qdepthwise_s8_dsp(const odl_window_dims *d, const int8_t *x, const int8_t *w,
                          const odl_qrequant *r, int8_t *y);
/* Σ x[i] over n bytes (|sum| < 2^31: n < 2^24). */
int32_t odl_qsum_s8_dsp(const int8_t *x, size_t n);
#endif

/* Pools keep the input's scale and zero point. Max pool ignores padding;
 * average pool sums the valid cells and divides with rounding half away from
 * zero (TFLite), padding not counted. */
void odl_qmaxpool_s8(const odl_window_dims *d, const int8_t *x, int8_t *y);
void odl_qmaxpool_s8_ref(const odl_window_dims *d, const int8_t *x, int8_t *y);
void odl_qavgpool_s8(const odl_window_dims *d, const int8_t *x, int8_t *y);
void odl_qavgpool_s8_ref(const odl_window_dims *d, const int8_t *x, int8_t *y);
void odl_qgap_s8(int32_t batch, int32_t c, int32_t hw, const int8_t *x, int8_t *y);
void odl_qgap_s8_ref(int32_t batch, int32_t c, int32_t hw, const int8_t *x, int8_t *y);
/* y = clamp(x, lo, hi): a ReLU/ReLU6 that could not be fused. */
void odl_qclamp_s8(size_t n, const int8_t *x, int32_t lo, int32_t hi, int8_t *y);

/* Add and mul (TFLite's requantisation), in[1] broadcast from b_c x b_hw
 * (b_c 1 or c, b_hw 1 or hw). Add: each input is shifted left by
 * left_shift (20), rescaled by its multiplier to a common scale
 * (s_x / (2 max(s_a, s_b))), summed and rescaled by out_mult/out_shift
 * (2 max(s_a, s_b) / (2^left_shift s_out)). Mul: (a − a_zp)(b − b_zp)
 * rescaled by out_mult/out_shift (s_a s_b / s_out). Then + out_zp, clamped
 * to act_min..act_max. y may be a. */
typedef struct odl_qbinary {
    int32_t a_zp, b_zp, out_zp;
    int32_t a_mult, a_shift, b_mult, b_shift; /* add only */
    int32_t out_mult, out_shift;
    int32_t left_shift;                       /* add only (20) */
    int32_t act_min, act_max;
} odl_qbinary;
void odl_qadd_s8(const odl_qbinary *p, int32_t batch, int32_t c, int32_t hw, const int8_t *a, const int8_t *b,
                 int32_t b_c, int32_t b_hw, int8_t *y);
void odl_qadd_s8_ref(const odl_qbinary *p, int32_t batch, int32_t c, int32_t hw, const int8_t *a, const int8_t *b,
                     int32_t b_c, int32_t b_hw, int8_t *y);
#if defined(ODL_USE_DSP)
/* odl_qadd_s8 with each input's rescaling tabulated (256 values, by the
 * reference's arithmetic; 2 KB of stack): what odl_qadd_s8 runs with
 * ODL_USE_DSP. Returns 0 and writes nothing under 512 outputs or for a
 * left_shift outside 0..22; else 1. */
int odl_qadd_s8_dsp(const odl_qbinary *p, int32_t batch, int32_t c, int32_t hw, const int8_t *a, const int8_t *b,
                    int32_t b_c, int32_t b_hw, int8_t *y);
#endif
void odl_qmul_s8(const odl_qbinary *p, int32_t batch, int32_t c, int32_t hw, const int8_t *a, const int8_t *b,
                 int32_t b_c, int32_t b_hw, int8_t *y);
void odl_qmul_s8_ref(const odl_qbinary *p, int32_t batch, int32_t c, int32_t hw, const int8_t *a, const int8_t *b,
                     int32_t b_c, int32_t b_hw, int8_t *y);

/* Concat on channels: input k is copied when mult is 0 (it has the output's
 * parameters), else requantised: out_zp + multiply(q − zp, mult, shift). */
typedef struct odl_qconcat_in {
    int32_t zp, mult, shift;
} odl_qconcat_in;
void odl_qconcat_s8(int32_t batch, int32_t n_in, const int8_t *const *xs, const int32_t *cs,
                    const odl_qconcat_in *rq, int32_t hw, int32_t out_zp, int8_t *y);
void odl_qconcat_s8_ref(int32_t batch, int32_t n_in, const int8_t *const *xs, const int32_t *cs,
                        const odl_qconcat_in *rq, int32_t hw, int32_t out_zp, int8_t *y);

/* y[i] = lut[(uint8_t)x[i]]: an activation tabulated per node (y may be x). */
void odl_qlut_s8(size_t n, const int8_t *x, const int8_t *lut, int8_t *y);
/* lut[(uint8_t)q] = quantize_out(f(dequantize_in(q))) with f the FP32
 * activation of that type (odl_act_forward_f32 or relu/relu6): exact with
 * respect to the float function of the dequantised input (TFLite's int8
 * LOGISTIC and TANH tables). Hard swish is TFLite's int8 kernel instead
 * (16-bit fixed point, within one step of the float function) whenever
 * TFLite takes the parameters (output multiplier s_in/128/s_out below 1).
 * Host or load time. */
odl_status odl_q_make_lut(int32_t type, float alpha, float beta, odl_qparams in, odl_qparams out, int8_t lut[256],
                          odl_diag *d);
/* ReLU/ReLU6 into other output parameters (TFLite's): out_zp +
 * multiply(max(q − in_zp, 0), mult, shift) clamped to lo..hi (relu6: hi =
 * 6 quantised). */
void odl_qrelu_requant_s8(size_t n, const int8_t *x, int32_t in_zp, int32_t out_zp, int32_t mult, int32_t shift,
                          int32_t lo, int32_t hi, int8_t *y);
/* Constant pad (window dims: pad_h/pad_w top/left, out_h/out_w the padded
 * size) with fill = the pad value quantised (the zero point for 0). */
void odl_qpad_s8(const odl_window_dims *d, int8_t fill, const int8_t *x, int8_t *y);
/* Mean over hw with requantisation to other parameters: out_zp +
 * multiply(Σ(q − in_zp), mult, shift), mult/shift for s_in / (hw s_out). */
void odl_qmean_s8(int32_t batch, int32_t c, int32_t hw, const int8_t *x, int32_t in_zp, int32_t out_zp, int32_t mult,
                  int32_t shift, int8_t *y);

/* ---- calibration --------------------------------------------------------- */

typedef struct odl_qcalib {
    int32_t boundary;
    int64_t samples;                /* samples observed */
    float in_min, in_max;           /* range of the model input */
    float *min, *max;               /* range of each layer's output, [0, boundary): the caller's storage */
} odl_qcalib;

/* Starts a calibration of layers [0, boundary) of desc (checked as
 * odl_qmodel_plan does); ranges: the caller's storage for 2 × boundary
 * floats (the minima, then the maxima), which must outlive c. */
odl_status odl_qcalib_begin(odl_qcalib *c, const odl_model_desc *desc, int32_t boundary, float *ranges,
                            odl_diag *d);
/* Floats of work memory odl_qcalib_observe needs for a batch of n. */
size_t odl_qcalib_work_floats(const odl_model_desc *desc, int32_t boundary, int32_t n);
/* Runs the FP32 model m (whose max_batch must be ≥ n) layer by layer on n
 * samples and widens every range. Non-finite values are ODL_ERR_NUMERIC. */
odl_status odl_qcalib_observe(odl_qcalib *c, odl_model *m, const float *x, int32_t n, float *work,
                              size_t work_floats, odl_diag *d);

/* ---- the quantised model ------------------------------------------------- */

typedef struct odl_qmodel odl_qmodel;

/* Exact bytes odl_qmodel_init takes: the handle (state), int8 weights and
 * int32/float per-channel data (params), two int8 ping-pong buffers of
 * max_batch samples and the conv scratch (scratch). boundary in 1..n_layers,
 * a cut point; every node below it must be a sequential node of an operator
 * INT8 supports (dense, conv2d with one group, depthwise, max/avg pool, gap,
 * relu, relu6, flatten, dropout; symmetric padding, no dilation, no ceil
 * mode), else ODL_ERR_UNSUPPORTED naming the node; every parameterised
 * layer below it must reduce over ≤ 32768 inputs. */
odl_status odl_qmodel_plan(const odl_model_desc *desc, int32_t boundary, int32_t max_batch,
                           odl_mem_plan *plan, odl_diag *d);
odl_status odl_qmodel_init(odl_qmodel **out, const odl_model_desc *desc, int32_t boundary,
                           int32_t max_batch, odl_arena *arena, odl_diag *d);

/* Quantises the weights of m (same topology as q's prefix) with the
 * activation ranges of a finished calibration (samples > 0). */
odl_status odl_qmodel_quantize(odl_qmodel *q, const odl_model *m, const odl_qcalib *c, odl_diag *d);

/* ---- building from given parameters (importers of INT8 models) -----------
 * Instead of calibrating, an importer that holds an INT8 model (TFLite)
 * gives every tensor's parameters and every parameterised node's int8
 * values, and odl_qmodel_set_params computes the rest (multipliers, clamps,
 * tables, requantisation) exactly as odl_qmodel_quantize would:
 *
 *   odl_qmodel_plan / odl_qmodel_init(&q, desc, boundary, max_batch, ...)
 *   odl_qnode_params p[boundary];             // one per node, in node order
 *   p[i].out = (scale, zero point) of tensor i+1, node i's output;
 *   for dense, conv2d, depthwise, batchnorm also
 *   p[i].w       int8 weights in odl's layout (odl/layers.h): dense [out][in],
 *                conv2d [out][in/groups][k_h][k_w], depthwise [out][k_h][k_w],
 *                batchnorm one per channel; symmetric (zero point 0)
 *   p[i].w_scale float per output channel (> 0): w_real = w_scale[c] · w
 *   p[i].bias    int32 per output channel at scale s_in · w_scale[c]
 *   odl_qmodel_set_params(q, input_params, p, &diag);
 *
 * A ReLU, ReLU6 or clip that is the only reader of the dense, conv2d,
 * depthwise or batch norm right before it is fused into that node's clamp
 * (TFLite's fused activations): the pair's output parameters are the
 * activation's (p[i].out of the conv is not used). Pools, pad, flatten,
 * reshape and dropout must keep their input's parameters (ODL_ERR_ARG
 * otherwise); relu/relu6 with other parameters, clip, leaky relu, sigmoid,
 * hard sigmoid, hard swish and tanh become 256-entry tables; add, mul,
 * concat and mean requantise to their output's parameters. The values are
 * copied; the model is ready to run and to save. Host or import time. */
typedef struct odl_qnode_params {
    odl_qparams out;
    const int8_t *w;
    const float *w_scale;
    const int32_t *bias;
} odl_qnode_params;
odl_status odl_qmodel_set_params(odl_qmodel *q, odl_qparams input, const odl_qnode_params *nodes, odl_diag *d);
/* The same values read back (exporters): node i's output parameters and,
 * for parameterised nodes, pointers into q (NULL otherwise). i in
 * [0, boundary); a fused activation reports its layer's parameters. */
odl_status odl_qmodel_node_params(const odl_qmodel *q, int32_t i, odl_qnode_params *out, odl_diag *d);

/* z (n × latent size floats) = the dequantised output of layer boundary−1 for
 * n float inputs x; any n ≥ 1 (processed max_batch at a time). */
odl_status odl_qmodel_forward(odl_qmodel *q, const float *x, int32_t n, float *z, odl_diag *d);
/* The same, stopping before dequantisation: y receives int8 latents, with
 * *p (may be NULL) their parameters. */
odl_status odl_qmodel_forward_s8(odl_qmodel *q, const float *x, int32_t n, int8_t *y,
                                 odl_qparams *p, odl_diag *d);

/* The same from int8 inputs (quantised with odl_qmodel_input_params): y
 * gets the int8 output, parameters odl_qmodel_output_params(q, boundary − 1).
 * Importers compare with a reference runtime on the int8 input it is given. */
odl_status odl_qmodel_run_s8(odl_qmodel *q, const int8_t *x, int32_t n, int8_t *y, odl_diag *d);

int32_t odl_qmodel_boundary(const odl_qmodel *q);
size_t odl_qmodel_latent_size(const odl_qmodel *q);
/* Parameters of the model input and of layer i's output (i in [0, boundary)). */
odl_qparams odl_qmodel_input_params(const odl_qmodel *q);
odl_qparams odl_qmodel_output_params(const odl_qmodel *q, int32_t i);

/* Parameter bytes of the prefix: INT8 (int8 weights + int32 biases + float
 * weight scales + int32 multipliers and shifts, unpadded) and the FP32
 * weights and biases it replaces. Either pointer may be NULL. */
void odl_qmodel_param_bytes(const odl_qmodel *q, size_t *int8_bytes, size_t *fp32_bytes);

/* ---- files ----------------------------------------------------------------
 * A quantised file is a complete FP32 .odl file (TOPO, every TENS, META)
 * with a QNT chunk and one QLAY chunk per prefix layer before END: every
 * existing reader still loads the FP32 model (the head, in particular),
 * and the INT8 path reads the Q chunks. */

/* Writes header, TOPO, m's tensors, meta, the Q chunks of q, END. Without
 * the Q chunks the bytes are exactly odl_model_save's. */
odl_status odl_qmodel_save(const odl_qmodel *q, const odl_model *m, const odl_meta_kv *meta,
                           int32_t n_meta, odl_writer *w, odl_diag *d);
/* Writes just the Q chunks (for callers assembling a file themselves). */
odl_status odl_qmodel_write_chunks(const odl_qmodel *q, odl_writer *w, odl_diag *d);

/* Checks a whole quantised file (odl_file_read_desc, then every Q chunk
 * against the topology) and returns its topology and boundary. A plain FP32
 * file is ODL_ERR_NOT_FOUND ("no INT8 layers"). */
odl_status odl_qfile_read_desc(const void *buf, size_t len, odl_model_desc *desc, int32_t *boundary,
                               odl_diag *d);
/* Loads the Q chunks into q (initialised for the file's topology and
 * boundary); the values are copied, buf may go afterwards. */
odl_status odl_qmodel_load(odl_qmodel *q, const void *buf, size_t len, odl_diag *d);

/* The same model with its parameters used in place from the file (flash on a
 * device): plan and init take no parameter bytes (only state and scratch),
 * and odl_qmodel_load_in_place checks the file as odl_qmodel_load does, then
 * points the layers at its Q chunks. buf must be 16-byte aligned (odl
 * export-c's arrays are), the target little-endian, and buf must outlive q.
 * Such a model cannot be quantised or loaded by copy. */
odl_status odl_qmodel_plan_in_place(const odl_model_desc *desc, int32_t boundary, int32_t max_batch,
                                    odl_mem_plan *plan, odl_diag *d);
odl_status odl_qmodel_init_in_place(odl_qmodel **out, const odl_model_desc *desc, int32_t boundary,
                                    int32_t max_batch, odl_arena *arena, odl_diag *d);
odl_status odl_qmodel_load_in_place(odl_qmodel *q, const void *buf, size_t len, odl_diag *d);

#ifdef __cplusplus
}
#endif
#endif
