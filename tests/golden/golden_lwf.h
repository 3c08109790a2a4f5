/* tests/golden/golden_lwf.h — GENERATED, do not edit by hand.
 *
 * Generator: tests/golden/gen_lwf.py
 * Regenerate (from the repository root):
 *     /usr/bin/python3 tests/golden/gen_lwf.py
 * PyTorch 1.13.0a0, Python 3.11.2, torch.manual_seed(20240607), 1 thread.
 * Inputs are drawn as float32; references are computed in float64 and
 * rounded to float32 here. The teacher's columns past c_old (stride 7)
 * are random and must be ignored. */
#ifndef ODL_GOLDEN_LWF_H
#define ODL_GOLDEN_LWF_H

#define G_LWF_N_CASES 4

/* LWF_A: batch 3, c 7, c_old 5, teacher_stride 5, T 2, weight 1 */
#define G_LWF_A_BATCH 3
#define G_LWF_A_C 7
#define G_LWF_A_C_OLD 5
#define G_LWF_A_STRIDE 5
#define G_LWF_A_T 2.0f
#define G_LWF_A_WEIGHT 1.0f
/* student logits [batch][c] */
static const float G_LWF_A_Z[21] = {
    -0.513961434, -2.33457327, 0.6543957, -2.44223118, -0.809028327, 2.66353202,
    -4.97144079, 2.24027753, 6.33093548, 1.1629467, 0.591125965, -2.32044768,
    0.565768659, -0.192800507, -3.24995303, -0.433691561, -0.259464115, -0.891613364,
    -0.18511121, 1.46362114, 3.19796467,
};
/* teacher logits [batch][teacher_stride] */
static const float G_LWF_A_TEACHER[15] = {
    -1.53798306, 1.29230332, -0.902750552, 4.02157688, 1.6560843, 0.560946941,
    2.32206607, 2.53375316, -1.449314, 1.7421881, 1.67205298, 0.0413139872,
    0.889734328, 1.63868845, -0.80208087,
};
/* F.kl_div(log_softmax(z[:, :c_old]/T), softmax(t[:, :c_old]/T), 'batchmean')*T*T*weight */
static const float G_LWF_A_LOSS[1] = {
    3.13234401,
};
/* d(loss)/d(z) [batch][c] */
static const float G_LWF_A_DZ[21] = {
    0.125944927, -0.039226003, 0.236041635, -0.332789958, 0.0100293849, 0,
    0, -0.0130207399, 0.328405976, -0.176830783, 0.000133314781, -0.13868776,
    0, 0, -0.158266753, 0.0694191381, 0.0377076268, -0.0688919872,
    0.120031975, 0, 0,
};

/* LWF_B: batch 3, c 7, c_old 5, teacher_stride 7, T 2, weight 1 */
#define G_LWF_B_BATCH 3
#define G_LWF_B_C 7
#define G_LWF_B_C_OLD 5
#define G_LWF_B_STRIDE 7
#define G_LWF_B_T 2.0f
#define G_LWF_B_WEIGHT 1.0f
/* student logits [batch][c] */
static const float G_LWF_B_Z[21] = {
    -0.114964768, 6.04614496, 3.64141273, -0.268108428, -1.83555603, 0.103858635,
    3.27278495, 1.3139199, 0.0538044795, 2.79929399, -1.35925722, 0.048508659,
    1.46355367, 2.09778857, 0.288367242, -0.0133395903, -3.16293955, 1.63564289,
    0.836531699, -2.88037229, 0.0706284493,
};
/* teacher logits [batch][teacher_stride] */
static const float G_LWF_B_TEACHER[21] = {
    -2.4693861, -2.25956225, 2.14218998, -4.23521614, -1.95124221, 1.33146834,
    -0.261805624, 2.20835543, -2.11279035, -2.03017211, 0.648161888, -0.339851975,
    2.01106811, 0.485508114, -0.12497472, 1.13839924, 0.151913285, 1.76731157,
    0.482136428, 2.70985699, 2.61045456,
};
/* F.kl_div(log_softmax(z[:, :c_old]/T), softmax(t[:, :c_old]/T), 'batchmean')*T*T*weight */
static const float G_LWF_B_LOSS[1] = {
    2.22988701,
};
/* d(loss)/d(z) [batch][c] */
static const float G_LWF_B_DZ[21] = {
    -0.0263850093, 0.419900447, -0.34058851, 0.000235588654, -0.0531625226, 0,
    0, -0.187266544, 0.0412431806, 0.27582559, -0.115287758, -0.0145144761,
    0, 0, 0.0416825823, -0.0496521369, -0.0738567486, 0.0302955061,
    0.0515307933, 0, 0,
};

/* LWF_C: batch 3, c 7, c_old 5, teacher_stride 5, T 2, weight 0.5 */
#define G_LWF_C_BATCH 3
#define G_LWF_C_C 7
#define G_LWF_C_C_OLD 5
#define G_LWF_C_STRIDE 5
#define G_LWF_C_T 2.0f
#define G_LWF_C_WEIGHT 0.5f
/* student logits [batch][c] */
static const float G_LWF_C_Z[21] = {
    -4.91137314, -1.08303189, -1.76502621, 2.25443268, 1.18332434, -0.269538373,
    -1.37514186, 4.09352779, -0.991120994, 0.811294794, 0.785746634, 0.781653881,
    1.87589395, -1.18347859, 2.43952203, -2.78377676, 0.896941602, -3.28111243,
    0.458080024, 3.65868139, 2.38317871,
};
/* teacher logits [batch][teacher_stride] */
static const float G_LWF_C_TEACHER[15] = {
    -2.49439621, -2.39499354, -3.75538683, 2.0281148, 3.12881041, -2.83832526,
    -0.731010556, -0.0997274742, 1.35828638, 2.06450844, 1.97548425, 0.210211083,
    1.06309724, -0.349964708, 0.598738253,
};
/* F.kl_div(log_softmax(z[:, :c_old]/T), softmax(t[:, :c_old]/T), 'batchmean')*T*T*weight */
static const float G_LWF_C_LOSS[1] = {
    0.806645453,
};
/* d(loss)/d(z) [batch][c] */
static const float G_LWF_C_DZ[21] = {
    -0.00678156922, 0.0203011278, 0.0169220846, 0.06121042, -0.0916520655, 0,
    0, 0.189354971, -0.0188413374, -0.00853392482, -0.0600705594, -0.101909153,
    0, 0, 0.0532359853, -0.0357177742, 0.00467183208, -0.0266920477,
    0.00450200122, 0, 0,
};

/* LWF_D: batch 3, c 7, c_old 5, teacher_stride 7, T 2, weight 0.5 */
#define G_LWF_D_BATCH 3
#define G_LWF_D_C 7
#define G_LWF_D_C_OLD 5
#define G_LWF_D_STRIDE 7
#define G_LWF_D_T 2.0f
#define G_LWF_D_WEIGHT 0.5f
/* student logits [batch][c] */
static const float G_LWF_D_Z[21] = {
    -2.18342543, -1.85265505, 0.0186415073, 0.127988696, -1.93468475, 0.992401183,
    0.853017688, 1.61011481, -2.20430994, -0.087873511, -0.270718455, -0.157529891,
    2.17134905, 3.7101922, 0.912347257, 1.81253362, 1.22615862, -0.321548045,
    -1.11945057, 0.0387898646, 1.2882942,
};
/* teacher logits [batch][teacher_stride] */
static const float G_LWF_D_TEACHER[21] = {
    -1.72192883, 4.57406616, -0.624144137, -0.76374042, 1.00314546, -2.81871128,
    2.97855783, 2.30332446, 2.02994704, 2.46235251, 0.0300196949, -1.28106701,
    5.49292994, -4.67100239, 0.211912677, 1.19828737, 0.195082963, -1.22656107,
    -0.511979222, 3.32536507, 0.183746472,
};
/* F.kl_div(log_softmax(z[:, :c_old]/T), softmax(t[:, :c_old]/T), 'batchmean')*T*T*weight */
static const float G_LWF_D_LOSS[1] = {
    0.951918542,
};
/* d(loss)/d(z) [batch][c] */
static const float G_LWF_D_DZ[21] = {
    0.0245350376, -0.204708502, 0.0872678012, 0.0944336355, -0.00152797636, 0,
    0, 0.0432265662, -0.0636610538, -0.0449206866, 0.0236152299, 0.0417399481,
    0, 0, 0.00257618469, -0.000743267243, 0.0153609524, 0.00502395723,
    -0.0222178269, 0, 0,
};

#endif /* ODL_GOLDEN_LWF_H */
