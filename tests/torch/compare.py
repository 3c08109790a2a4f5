#!/usr/bin/python3
"""Imports each exported model into odl, runs it on the reference inputs and compares with
PyTorch's outputs: max |odl - torch| <= 1e-4 * max |torch| per model.

Usage: /usr/bin/python3 tests/torch/compare.py ODL_BINARY DIR [--only NAME[,NAME]] [--tol 1e-4]

DIR holds what export_models.py and references.py wrote. For each model NAME runs
  odl import DIR/NAME.onnx -o DIR/NAME.odl --input-shape CxHxW
  odl predict DIR/NAME.odl --data DIR/NAME.x.npy -o DIR/NAME.odl.npy [--softmax]
(--softmax for the models that end in softmax: PyTorch's references are probabilities there),
prints a table and exits 1 if any model fails, is missing, or cannot be run.
"""
import argparse, json, os, subprocess, sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export_models import MODELS


def run(cmd):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return p.returncode, p.stdout.strip()


def check(odl, d, name, tol):
    """(row dict, failure message or None) for one model."""
    with open(os.path.join(d, name + ".json")) as f:
        info = json.load(f)
    row = {"model": name, "opset": info["opset"], "onnx_nodes": info["onnx_nodes"], "params": info["params"],
           "max_abs_err": float("nan"), "rel_err": float("nan"), "pass": False}
    base = os.path.join(d, name)
    shape = "x".join(map(str, info["input_shape"]))
    rc, out = run([odl, "import", base + ".onnx", "-o", base + ".odl", "--input-shape", shape])
    if rc != 0:
        return row, f"odl import failed (exit {rc}): {out[-2000:]}"
    cmd = [odl, "predict", base + ".odl", "--data", base + ".x.npy", "-o", base + ".odl.npy"]
    if info["softmax_output"]:
        cmd.append("--softmax")
    rc, out = run(cmd)
    if rc != 0:
        return row, f"odl predict failed (exit {rc}): {out[-2000:]}"
    ref = np.load(base + ".torch.npy")
    try:
        got = np.load(base + ".odl.npy")
    except (OSError, ValueError) as e:
        return row, f"{base}.odl.npy: not a readable .npy ({e})"
    if got.dtype != np.float32 or got.shape != ref.shape:
        return row, f"odl wrote {got.dtype} {got.shape}, expected float32 {ref.shape}"
    if not np.isfinite(got).all():
        return row, "odl's outputs are not all finite"
    err = float(np.abs(got.astype(np.float64) - ref.astype(np.float64)).max())
    scale = float(np.abs(ref).max())
    row["max_abs_err"], row["rel_err"] = err, err / scale
    row["pass"] = err <= tol * scale
    return row, None if row["pass"] else f"max |odl - torch| = {err:.3g} > {tol:g} * {scale:.4g}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("odl")
    ap.add_argument("dir")
    ap.add_argument("--only", default=None)
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--json", default=None, help="also write the table as JSON")
    ap.add_argument("--markdown", default=None, help="also write the table as markdown (for the docs)")
    a = ap.parse_args()
    names = a.only.split(",") if a.only else list(MODELS)
    rows, failures = [], []
    print(f"{'model':<24} {'opset':>5} {'onnx nodes':>10} {'params':>10} {'max abs err':>12} {'rel err':>10}  result")
    for n in names:
        try:
            row, why = check(a.odl, a.dir, n, a.tol)
        except OSError as e:
            row, why = {"model": n, "pass": False}, f"{e.filename}: {e.strerror}"
        rows.append(row)
        print(f"{n:<24} {row.get('opset', ''):>5} {row.get('onnx_nodes', ''):>10} {row.get('params', ''):>10} "
              f"{row.get('max_abs_err', float('nan')):>12.3g} {row.get('rel_err', float('nan')):>10.2e}  "
              f"{'pass' if row['pass'] else 'FAIL'}", flush=True)
        if why:
            failures.append(f"{n}: {why}")
    for f in failures:
        print("FAIL " + f)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"tolerance": a.tol, "rows": rows}, f, indent=1)
    if a.markdown:
        with open(a.markdown, "w") as f:
            f.write("| model | opset | ONNX nodes | parameters | max abs error | relative error | match |\n"
                    "|---|---|---|---|---|---|---|\n")
            for r in rows:
                f.write(f"| {r['model']} | {r.get('opset', '')} | {r.get('onnx_nodes', '')} | {r.get('params', '')} | "
                        f"{r.get('max_abs_err', float('nan')):.3g} | {r.get('rel_err', float('nan')):.2e} | "
                        f"{'yes' if r['pass'] else 'NO'} |\n")
    print(f"{len(rows) - len(failures)}/{len(rows)} models match PyTorch within {a.tol:g} of the largest output")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
