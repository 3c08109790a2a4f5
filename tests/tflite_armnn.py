#!/usr/bin/env python3
"""ArmNN's reference backend (CpuRef) as the independent runtime for odl's
TFLite import and export. One model per process: ArmNN 20.08 allows one
IRuntime at a time.

  tflite_armnn.py run MODEL.tflite --n N --seed S --x X.npy --ref REF.npy [--qx QX.npy]
      draws N random inputs (float: N(0,1); int8: uniform over -128..127),
      runs ArmNN on each and writes X.npy (odl's layout, channel-major,
      float32: int8 inputs dequantised with the input's scale and zero point),
      REF.npy (ArmNN's outputs, as the model gives them) and, for int8
      models, QX.npy (the int8 inputs) and prints the output's scale/zero
      point as JSON.
  tflite_armnn.py compare REF.npy ODL.npy [--int8 SCALE ZP | --steps SCALE] [--tol T] [--rank X.npy]
      FP32: max |odl - ArmNN| must be <= T (default 1e-4) times the largest
      |ArmNN| output; --int8: odl's float outputs are quantised with the
      output's parameters and must be within T (default 1) steps of ArmNN's;
      --steps: both are floats from int8 layers, compared in steps of SCALE.
      --rank: the reconstruction error ||y - x||^2 of every sample (X the
      inputs) must rank the samples identically (Spearman = 1).
"""
import json
import sys

import numpy as np


def run(argv):
    import argparse
    import pyarmnn as ann
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--x", required=True)
    ap.add_argument("--ref", required=True)
    ap.add_argument("--qx")
    a = ap.parse_args(argv)
    p = ann.ITfLiteParser()
    net = p.CreateNetworkFromBinaryFile(a.model)
    ib = p.GetNetworkInputBindingInfo(0, p.GetSubgraphInputTensorNames(0)[0])
    ob = p.GetNetworkOutputBindingInfo(0, p.GetSubgraphOutputTensorNames(0)[0])
    rt = ann.IRuntime(ann.CreationOptions())
    opt, _ = ann.Optimize(net, [ann.BackendId("CpuRef")], rt.GetDeviceSpec(), ann.OptimizerOptions())
    nid, _ = rt.LoadNetwork(opt)
    ishape = tuple(ib[1].GetShape()[i] for i in range(ib[1].GetNumDimensions()))
    itype = ib[1].GetDataType()
    int8 = itype == ann.DataType_QAsymmS8
    rng = np.random.default_rng(a.seed)
    xs, qs, ys = [], [], []
    for _ in range(a.n):
        if int8:
            q = rng.integers(-128, 128, size=ishape).astype(np.int8)
            x = (q.astype(np.float64) - ib[1].GetQuantizationOffset()) * ib[1].GetQuantizationScale()
            qs.append(q)
            feed = q
        else:
            x = rng.standard_normal(ishape).astype(np.float32)
            feed = x
        out = ann.make_output_tensors([ob])
        rt.EnqueueWorkload(nid, ann.make_input_tensors([ib], [feed]), out)
        y = ann.workload_tensors_to_ndarray(out)[0]
        oshape = tuple(ob[1].GetShape()[i] for i in range(ob[1].GetNumDimensions()))
        if len(oshape) == 4:  # an NHWC output (a sliced model): odl's C x H x W order
            y = y.reshape(oshape).transpose(0, 3, 1, 2)
        ys.append(y.reshape(-1).copy())
        x = np.asarray(x, np.float32)
        if x.ndim == 4:  # NHWC -> odl's C x H x W
            x = x.transpose(0, 3, 1, 2)
        xs.append(x.reshape(-1))
    np.save(a.x, np.stack(xs).astype(np.float32))
    np.save(a.ref, np.stack(ys))
    if int8:
        np.save(a.qx, np.stack(qs))
    info = {"int8": bool(int8), "out_scale": ob[1].GetQuantizationScale(),
            "out_zp": ob[1].GetQuantizationOffset(), "in_shape": list(ishape)}
    print(json.dumps(info))
    del rt


def spearman_identical(a, b):
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    n = len(a)
    rho = 1 - 6 * np.sum((ra - rb) ** 2) / (n * (n * n - 1))
    return rho, bool(np.array_equal(np.argsort(a), np.argsort(b)))


def compare(argv):
    import argparse
    ap = argparse.ArgumentParser()
    ap.add_argument("ref")
    ap.add_argument("odl")
    ap.add_argument("--int8", nargs=2, type=float)
    ap.add_argument("--tol", type=float)
    ap.add_argument("--rank")
    ap.add_argument("--name", default="")
    ap.add_argument("--min-within1", type=float, help="int8: least fraction of elements within 1 step")
    ap.add_argument("--min-spearman", type=float, help="--rank: least Spearman (default: identical order)")
    ap.add_argument("--min-top1", type=float, help="least fraction of samples with the same top output")
    ap.add_argument("--steps", type=float, help="float outputs of int8 layers: errors in steps of this scale")
    a = ap.parse_args(argv)
    ref = np.load(a.ref)
    got = np.load(a.odl).astype(np.float64)
    if ref.shape != got.shape:
        print(f"FAIL {a.name}: shapes differ: ArmNN {ref.shape}, odl {got.shape}")
        return 1
    ok = True
    if a.int8:
        scale, zp = a.int8
        q = np.clip(np.round(got / scale) + zp, -128, 127)
        err = np.abs(q - ref.astype(np.float64))
        tol = 1 if a.tol is None else a.tol
        within1 = float(np.mean(err <= 1))
        print(f"{a.name}: int8 max |odl - ArmNN| = {err.max():.0f} steps (tolerance {tol:g}); "
              f"{100 * within1:.2f}% of elements within 1 step; mean {err.mean():.4f}")
        ok = err.max() <= tol
        if a.min_within1 is not None:
            ok = ok and within1 >= a.min_within1
        refr = (ref.astype(np.float64) - zp) * scale
    elif a.steps:
        err = np.abs(got - ref.astype(np.float64)) / a.steps
        tol = 1 if a.tol is None else a.tol
        within1 = float(np.mean(err <= 1.0001))
        print(f"{a.name}: max |odl - ArmNN| = {err.max():.2f} steps of {a.steps:g} (tolerance {tol:g}); "
              f"{100 * within1:.2f}% of elements within 1 step")
        ok = err.max() <= tol + 1e-3
        if a.min_within1 is not None:
            ok = ok and within1 >= a.min_within1
        refr = ref.astype(np.float64)
    else:
        big = float(np.abs(ref).max())
        err = float(np.abs(got - ref).max())
        tol = 1e-4 if a.tol is None else a.tol
        print(f"{a.name}: max |odl - ArmNN| = {err:.3g}, largest |output| {big:.3g}, "
              f"relative {err / big:.3g} (tolerance {tol:g})")
        ok = err <= tol * big
        refr = ref.astype(np.float64)
    if a.rank:
        x = np.load(a.rank).astype(np.float64)
        e_ref = np.sum((refr - x) ** 2, axis=1)
        e_odl = np.sum((got - x) ** 2, axis=1)
        rho, same = spearman_identical(e_ref, e_odl)
        ra, rb = np.argsort(np.argsort(e_ref)), np.argsort(np.argsort(e_odl))
        top = len(set(np.argsort(-e_ref)[:10]) & set(np.argsort(-e_odl)[:10]))
        print(f"{a.name}: reconstruction-error ranking of {len(x)} inputs: Spearman {rho:.6f}, "
              f"identical order: {same}, largest rank move {int(np.abs(ra - rb).max())}, "
              f"top-10 overlap {top}/10")
        ok = ok and (same if a.min_spearman is None else rho >= a.min_spearman)
    if a.min_top1 is not None:
        t1 = float(np.mean(ref.reshape(len(ref), -1).argmax(1) == got.reshape(len(got), -1).argmax(1)))
        print(f"{a.name}: same top output on {100 * t1:.1f}% of samples")
        ok = ok and t1 >= a.min_top1
    print("ok" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in ("run", "compare"):
        print(__doc__)
        sys.exit(2)
    if sys.argv[1] == "run":
        run(sys.argv[2:])
        sys.exit(0)
    sys.exit(compare(sys.argv[2:]))
