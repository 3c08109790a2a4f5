#!/usr/bin/python3
"""Speed and memory of adaptation on MobileNetV2-0.35 at 96x96, odl side, next to PyTorch's
(bench/torch_speed.py) in the same run: one thread, same seeded weights (the ONNX file of
tests/torch/export_models.py imported with --head auto), same 100 user images.

Usage: /usr/bin/python3 bench/odl_speed.py ODL_BINARY WORK_DIR [--repeats 20] [--json FILE]

What it measures through the command line (until a bench binary times odl in process):
  infer_b1_ms    marginal time of one sample in `odl predict`: (t(1 + K samples) - t(1 sample)) / K
                 over whole processes (so loading and start-up cancel), medians of --repeats;
                 predict's own batching decides the batch, so this approximates batch 1;
  adapt_*        wall time and peak RSS (/usr/bin/time's %M) of
                   odl adapt mnv2.odl --data user.csv --strategy naive --new-classes \\
                       --epochs 10 --batch 16 -o adapted.odl --quiet
                 on the 100 images torch_speed.py's adaptation process uses, labels 0-11
                 (the head grows 10 -> 12), median over --repeats/4 processes (at least 3).
The batch-1 head step from a raw image (frozen base forward to the cut, head forward, backward,
Adam step) needs a bench binary: odl_model_forward_range(0, cut) on one image then one
odl_adapt step on its latent, median of 200 after 20 warm-up steps. The activation plan (peak,
naive sum, lower bound) comes from `odl info`.
Then runs torch_speed.py and prints both as one JSON object with the ratios odl / PyTorch.
"""
import argparse, json, os, statistics, subprocess, sys, time

import numpy as np
import torch

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
sys.path.insert(0, os.path.join(here, "..", "tests", "torch"))
import torch_speed as ts

K = 50


def timed(cmd, tmp):
    """(wall seconds, peak RSS kB) of one process running CMD, through /usr/bin/time (see
    torch_speed.run_measured: a child of this large process would inherit its peak); exits on
    failure."""
    t0 = time.perf_counter()
    try:
        _, rss = ts.run_measured(cmd, tmp)
    except subprocess.CalledProcessError as e:
        sys.exit(f"odl_speed: {' '.join(cmd)} failed (exit {e.returncode})")
    return time.perf_counter() - t0, rss


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("odl")
    ap.add_argument("work_dir")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    w = a.work_dir
    os.makedirs(w, exist_ok=True)
    py = sys.executable
    subprocess.run([py, os.path.join(here, "..", "tests", "torch", "export_models.py"), w, "--only", ts.MODEL],
                   check=True, stdout=subprocess.DEVNULL)
    model = os.path.join(w, "mnv2.odl")
    subprocess.run([a.odl, "import", os.path.join(w, ts.MODEL + ".onnx"), "-o", model, "--head", "auto"], check=True)
    info = subprocess.run([a.odl, "info", model], check=True, stdout=subprocess.PIPE, text=True).stdout

    x, y = ts.user_data(torch.Generator().manual_seed(7))
    xs = x.numpy().astype(np.float32)
    np.save(os.path.join(w, "one.npy"), xs[:1])
    np.save(os.path.join(w, "many.npy"), xs[:1 + K])
    csv = os.path.join(w, "user.csv")
    with open(csv, "w") as f:
        for k in range(len(y)):
            f.write(str(int(y[k])) + "," + ",".join(f"{v:.9g}" for v in xs[k].ravel()) + "\n")

    pred = lambda data: timed([a.odl, "predict", model, "--data", os.path.join(w, data), "-o",
                               os.path.join(w, "out.npy")], w)[0]
    t1 = [pred("one.npy") for _ in range(a.repeats)]
    tk = [pred("many.npy") for _ in range(a.repeats)]
    infer = (statistics.median(tk) - statistics.median(t1)) / K * 1e3
    adapt = [timed([a.odl, "adapt", model, "--data", csv, "--strategy", "naive", "--new-classes", "--epochs", "10",
                    "--batch", "16", "-o", os.path.join(w, "adapted.odl"), "--quiet"], w)
             for _ in range(max(3, a.repeats // 4))]
    odl = {"infer_b1_ms_cli_marginal": round(infer, 3), "predict_1_sample_process_s": round(statistics.median(t1), 4),
           "adapt_seconds": round(statistics.median(t for t, _ in adapt), 3),
           "adapt_peak_rss_kb": statistics.median(r for _, r in adapt), "info": info}
    tj = os.path.join(w, "torch_speed.json")
    subprocess.run([py, os.path.join(here, "torch_speed.py"), "--json", tj], check=True, stdout=subprocess.DEVNULL)
    with open(tj) as f:
        pt = json.load(f)
    out = {"odl": odl, "pytorch": pt,
           "ratio_infer_b1": round(odl["infer_b1_ms_cli_marginal"] / pt["infer_b1_ms"], 3),
           "ratio_infer_b1_vs_jit": round(odl["infer_b1_ms_cli_marginal"] / pt["infer_b1_jit_ms"], 3),
           "ratio_adapt_peak_rss": round(odl["adapt_peak_rss_kb"] / pt["adapt_process"]["peak_rss_kb"], 3),
           "note": "the issue asks for odl <= 0.5x PyTorch's time at batch 1 (inference and head step)"}
    s = json.dumps(out, indent=1)
    print(s)
    if a.json:
        with open(a.json, "w") as f:
            f.write(s + "\n")


if __name__ == "__main__":
    main()
