#!/usr/bin/python3
"""PyTorch's outputs for the models of export_models.py, for odl to be compared with.

Usage: /usr/bin/python3 tests/torch/references.py DIR [--n 100] [--only NAME[,NAME]]

For each DIR/NAME.json written by export_models.py: NAME.x.npy, N inputs drawn from N(0, 1)
with a fixed seed, float32 (N, C, H, W), and NAME.torch.npy, the model's float32 outputs
(N, outputs; probabilities for the models that end in softmax). The model is rebuilt from the
same seed as the export (the ONNX file is not read back), and the float32 outputs are also
checked against a float64 run of the same model on the first 25 inputs: their gap, recorded as "torch_fp32_rel_err"
in NAME.json, shows how far two correct float32 implementations may differ, which the 1e-4
tolerance of compare.py must clear by a wide margin. Finally the ONNX file itself is run on the
first 4 inputs by onnx_numpy.py (plain numpy, float64) and must agree with PyTorch within 5e-5
of the largest output ("onnx_numpy_rel_err"): a fault of the export is reported here, not
mistaken for one of odl's.
"""
import argparse, json, os, sys, time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export_models as ex
import onnx_numpy

INPUT_SEED = 2024
FP64_N = 25
ONNX_CHECK_N = 4


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dir")
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--only", default=None)
    a = ap.parse_args()
    if a.n < 1:
        ap.error("--n must be at least 1")
    names = a.only.split(",") if a.only else list(ex.MODELS)
    torch.set_num_threads(1)
    print(f"{'model':<24} {'inputs':>16} {'max |out|':>10} {'fp32 vs fp64':>13} {'onnx vs torch':>14} "
          f"{'seconds':>8}")
    for n in names:
        jpath = os.path.join(a.dir, n + ".json")
        try:
            with open(jpath) as f:
                info = json.load(f)
        except OSError as e:
            sys.exit(f"references: {jpath}: {e.strerror} (run export_models.py {a.dir} first)")
        t0 = time.time()
        model, _ = ex.build(n)
        shape = (a.n,) + tuple(info["input_shape"])
        gen = torch.Generator().manual_seed(INPUT_SEED)
        x = torch.randn(shape, generator=gen, dtype=torch.float32)
        with torch.no_grad():
            y = torch.cat([model(x[i:i + 25]) for i in range(0, a.n, 25)])
            y64 = model.double()(x[:FP64_N].double())  # a subset: float64 is slow on the CPU
        if y.shape != (a.n, info["outputs"]) or not torch.isfinite(y).all():
            sys.exit(f"references: {n}: outputs {tuple(y.shape)} (finite: {bool(torch.isfinite(y).all())}), "
                     f"expected ({a.n}, {info['outputs']}) finite values")
        scale = y.abs().max().item()
        rel = (y[:FP64_N].double() - y64).abs().max().item() / y64.abs().max().item()
        onnx_rel = onnx_numpy.rel_err(os.path.join(a.dir, info["file"]), x[:ONNX_CHECK_N].numpy(),
                                      y[:ONNX_CHECK_N].numpy())
        if not onnx_rel <= 5e-5:  # PyTorch's own float32 error reaches 1e-5 (MobileNetV2)
            sys.exit(f"references: {n}: the exported ONNX file, run in numpy, differs from PyTorch by "
                     f"{onnx_rel:.3g} of the largest output (at most 5e-5): the export is wrong")
        np.save(os.path.join(a.dir, n + ".x.npy"), x.numpy().astype(np.float32))
        np.save(os.path.join(a.dir, n + ".torch.npy"), y.numpy().astype(np.float32))
        info["references"] = {"n": a.n, "input_seed": INPUT_SEED, "input_distribution": "N(0,1)",
                              "max_abs_output": round(scale, 6), "torch_fp32_rel_err": float(f"{rel:.3g}"),
                              "torch_fp32_rel_err_inputs": min(FP64_N, a.n),
                              "onnx_numpy_rel_err": float(f"{onnx_rel:.3g}"),
                              "seconds": round(time.time() - t0, 3)}
        with open(jpath, "w") as f:
            json.dump(info, f, indent=1)
            f.write("\n")
        print(f"{n:<24} {'x'.join(map(str, shape)):>16} {scale:>10.4g} {rel:>13.2e} {onnx_rel:>14.2e} "
              f"{time.time() - t0:>8.2f}", flush=True)


if __name__ == "__main__":
    main()
