#!/usr/bin/python3
"""Generate tests/golden/golden_classmean.h: NumPy reference values for odl's
nearest-class-mean (NCM) and streaming LDA heads (include/odl/classmean.h).

Run from anywhere with the system interpreter (needs NumPy):

    /usr/bin/python3 tests/golden/gen_classmean.py

Determinism: numpy.random.default_rng(SEED). Samples and test points are drawn
as float32 (exactly representable in the C arrays); all reference computation
is done in float64 and rounded to float32 once, when written. Nothing
time-dependent is embedded, so regenerating gives an identical file.

Besides writing the file, this script checks (and aborts if not):
  1. the streaming covariance update odl implements,
         Sigma <- (n Sigma + (n_y/(n_y+1)) d d^T) / (n+1),  d = z - mu_y(old),
     run sample by sample in the data's order, equals the BATCH biased (1/N)
     covariance of the data centred on their class means (pooled within-class
     covariance), to float64 rounding;
  2. Hayes & Kanan's literal form (weight n/(n+1) with n the total count,
     class means starting at 0) does NOT equal it (the difference is printed
     and recorded in the header), which is why odl uses the class count;
  3. no test point is a near tie between its two best classes, so the C test
     may compare predicted classes exactly.
"""
import os
import sys

import numpy as np

SEED = 20240611
N, D, C_SEEN, C_MAX, N_TEST = 60, 6, 4, 5, 10
SHRINK = 0.1  # large enough that (1-eps) Sigma + eps I differs visibly from Sigma + eps I
OUT_NAME = "golden_classmean.h"
REL_SCRIPT = "tests/golden/gen_classmean.py"

rng = np.random.default_rng(SEED)


def f32(a):
    return np.asarray(a, dtype=np.float32).astype(np.float64)


# ---- data: 4 classes with different centres, one shared correlated noise ----
centres = f32(rng.normal(0.0, 2.0, size=(C_SEEN, D)))
mix = rng.normal(0.0, 0.6, size=(D, D)) + np.eye(D) * 0.5
labels = np.concatenate([np.arange(C_SEEN), rng.integers(0, C_SEEN, size=N - C_SEEN)])
rng.shuffle(labels)
x = f32(centres[labels] + rng.normal(size=(N, D)) @ mix.T)
# test points: half near class centres, half anywhere in the cloud
tc = rng.integers(0, C_SEEN, size=N_TEST)
tx = f32(centres[tc] + rng.normal(size=(N_TEST, D)) @ mix.T * 1.2)

# ---- batch statistics ----
counts = np.array([(labels == c).sum() for c in range(C_MAX)], dtype=np.int64)
means = np.zeros((C_MAX, D))
for c in range(C_SEEN):
    means[c] = x[labels == c].mean(axis=0)
centred = x - means[labels]
cov_batch = centred.T @ centred / N  # biased (1/N) pooled within-class covariance

# ---- streaming: odl's form (class-count weight) ----
mu = np.zeros((C_MAX, D))
nc = np.zeros(C_MAX, dtype=np.int64)
sig = np.zeros((D, D))
for n, (z, y) in enumerate(zip(x, labels)):
    d = z - mu[y]
    sig = (n * sig + (nc[y] / (nc[y] + 1.0)) * np.outer(d, d)) / (n + 1.0)
    mu[y] += d / (nc[y] + 1.0)
    nc[y] += 1
err_stream = np.abs(sig - cov_batch).max() / np.abs(cov_batch).max()
err_means = np.abs(mu - means).max()
assert err_stream < 1e-12, err_stream
assert err_means < 1e-12, err_means

# ---- streaming: Hayes & Kanan's literal form (total-count weight, mu from 0) ----
mu_h = np.zeros((C_MAX, D))
nc_h = np.zeros(C_MAX, dtype=np.int64)
sig_h = np.zeros((D, D))
for n, (z, y) in enumerate(zip(x, labels)):
    d = z - mu_h[y]
    sig_h = (n * sig_h + (n / (n + 1.0)) * np.outer(d, d)) / (n + 1.0)
    mu_h[y] += d / (nc_h[y] + 1.0)
    nc_h[y] += 1
err_hayes = np.abs(sig_h - cov_batch).max() / np.abs(cov_batch).max()
assert err_hayes > 1e-3, err_hayes

# ---- SLDA: shrunk precision, W, b, scores ----
shrunk = (1.0 - SHRINK) * cov_batch + SHRINK * np.eye(D)
prec = np.linalg.inv(shrunk)
W = means[:C_SEEN] @ prec  # prec symmetric: row c = Lambda mu_c
b = -0.5 * np.einsum("cd,cd->c", W, means[:C_SEEN])
slda_scores = tx @ W.T + b
ncm_scores = -((tx[:, None, :] - means[None, :C_SEEN, :]) ** 2).sum(axis=2)
slda_pred = slda_scores.argmax(axis=1)
ncm_pred = ncm_scores.argmax(axis=1)


def margin(s):
    top = np.sort(s, axis=1)
    return ((top[:, -1] - top[:, -2]) / np.maximum(1.0, np.abs(top[:, -1]))).min()


assert margin(slda_scores) > 1e-3 and margin(ncm_scores) > 1e-3
cond = np.linalg.cond(shrunk)


# ---- write ----
def fmt(v):
    return "%.9g" % np.float32(v)


def arr(name, a, ctype="float"):
    a = np.asarray(a).ravel()
    if ctype == "float":
        items = [fmt(v) for v in a]
    else:
        items = ["%d" % v for v in a]
    lines = []
    for i in range(0, len(items), 6):
        lines.append("    " + ", ".join(items[i:i + 6]) + ",")
    return "static const %s %s[%d] = {\n%s\n};\n" % (ctype, name, len(items), "\n".join(lines))


out = []
out.append("""/* tests/golden/golden_classmean.h — GENERATED, do not edit by hand.
 *
 * Generator: %s
 * Regenerate (from the repository root):
 *     /usr/bin/python3 %s
 * NumPy %s, Python %s, numpy.random.default_rng(%d).
 * Samples and test points are float32; references computed in float64 and
 * rounded to float32 here.
 *
 * Generator checks (float64):
 *   odl's streaming covariance (class-count weight) vs batch biased (1/N)
 *     pooled within-class covariance: max rel. difference %.3g
 *   Hayes & Kanan's literal update (total-count weight, means from 0) vs the
 *     same batch covariance: max rel. difference %.3g (not equal)
 *   condition number of (1-eps) Sigma + eps I: %.4g
 *
 * Samples are added in array order. Class %d of %d is never seen. */
#ifndef ODL_GOLDEN_CLASSMEAN_H
#define ODL_GOLDEN_CLASSMEAN_H

#include <stdint.h>

#define GCM_N %d
#define GCM_DIM %d
#define GCM_CLASSES_SEEN %d
#define GCM_MAX_CLASSES %d
#define GCM_N_TEST %d
#define GCM_SHRINKAGE %sf
""" % (REL_SCRIPT, REL_SCRIPT, np.__version__, sys.version.split()[0], SEED, err_stream, err_hayes,
       cond, C_MAX - 1, C_MAX, N, D, C_SEEN, C_MAX, N_TEST, repr(SHRINK)))
out.append("/* inputs */\n")
out.append(arr("GCM_X", x))
out.append(arr("GCM_Y", labels, "int32_t"))
out.append(arr("GCM_TEST_X", tx))
out.append("/* statistics: counts and means (all GCM_MAX_CLASSES rows), covariance */\n")
out.append(arr("GCM_COUNTS", counts, "int32_t"))
out.append(arr("GCM_MEANS", means))
out.append(arr("GCM_COV", cov_batch))
out.append("/* SLDA with shrinkage GCM_SHRINKAGE: W rows and b of the seen classes */\n")
out.append(arr("GCM_PRECISION", prec))
out.append(arr("GCM_W", W))
out.append(arr("GCM_B", b))
out.append("/* scores of the seen classes per test point, and predictions */\n")
out.append(arr("GCM_NCM_SCORES", ncm_scores))
out.append(arr("GCM_NCM_PRED", ncm_pred, "int32_t"))
out.append(arr("GCM_SLDA_SCORES", slda_scores))
out.append(arr("GCM_SLDA_PRED", slda_pred, "int32_t"))
out.append("\n#endif\n")

path = os.path.join(os.path.dirname(os.path.abspath(__file__)), OUT_NAME)
with open(path, "w") as fh:
    fh.write("\n".join(out))
print("wrote %s (stream vs batch %.3g, Hayes literal vs batch %.3g, cond %.4g)" %
      (path, err_stream, err_hayes, cond))
