#!/usr/bin/python3
"""Speed and memory of adaptation on MobileNetV2-0.35 at 96x96: odl beside PyTorch in one run.

Both sides use one thread and the same seeded weights: tests/torch/export_models.py's
"mobilenet_v2_035" exported to ONNX and imported with `odl import --head auto` (odl), and the same
model built in PyTorch (bench/torch_speed.py, torch.set_num_threads(1)).

Usage: /usr/bin/python3 bench/odl_speed.py BUILD_DIR WORK_DIR [--rounds 5] [--reps 200]
                                           [--rss-runs 3] [--json FILE]

BUILD_DIR holds odl and bench/bench_graph (a Release build). In each of --rounds rounds, interleaved:
  odl      bench_graph: odl_model_forward at batch 1, and a head step from a raw image at batch 1
           (the frozen base to the cut in inference configuration, then the head's forward_train,
           backward and Adam step, as odl's learner does); the median of --reps calls each;
  PyTorch  torch_speed.py --rss-runs 0: the same rows, eager (the target) and traced/frozen
           (torch.jit.optimize_for_inference, for reference), medians of --reps calls.
The table shows the median over rounds of each side's medians, and the ratio odl / PyTorch.
Both time the same image (torch_speed.bench_image()); odl's logits on it must match PyTorch's.

Memory: the planner's activation figures come from bench_graph (odl_model_plan_activations).
Peak RSS (/usr/bin/time's %M) of an adaptation process, median of --rss-runs processes each:
  odl      odl adapt mnv2.odl --data user-images-idx3-ubyte --strategy naive --new-classes
               --epochs 10 --batch 16 -o adapted.odl --quiet
  PyTorch  torch_speed.py's adaptation child: the same work on the same 100 images (8-bit pixels,
           labels 0-11: the head grows 10 -> 12), latents at batch 8, 10 epochs of Adam at batch 16.
"""
import argparse, json, os, statistics, struct, subprocess, sys, tempfile, time

import numpy as np
import torch

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
sys.path.insert(0, os.path.join(here, "..", "tests", "torch"))
import torch_speed as ts
import export_models as ex

PY = "/usr/bin/python3"


def run(cmd, **kw):
    try:
        return subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True, **kw).stdout
    except subprocess.CalledProcessError as e:
        sys.exit(f"odl_speed: {' '.join(cmd)} failed (exit {e.returncode})")


def write_idx(prefix, x, y):
    """x (N, C, H, W) of values k/255 and labels y as an IDX pair (u8 images N x (C*H) x W)."""
    n, c, h, w = x.shape
    u8 = np.rint(x * 255).astype(np.uint8)
    assert np.array_equal(u8.astype(np.float32) / np.float32(255), x), "pixels must be k/255"
    with open(prefix + "-images-idx3-ubyte", "wb") as f:
        f.write(struct.pack(">IIII", 0x803, n, c * h, w) + u8.tobytes())
    with open(prefix + "-labels-idx1-ubyte", "wb") as f:
        f.write(struct.pack(">II", 0x801, n) + np.asarray(y, np.uint8).tobytes())
    return prefix + "-images-idx3-ubyte"


def med(xs):
    return statistics.median(xs)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("build")
    ap.add_argument("work_dir")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--rss-runs", type=int, default=3)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    w = os.path.abspath(a.work_dir)
    os.makedirs(w, exist_ok=True)
    odl = os.path.join(a.build, "odl")
    bench = os.path.join(a.build, "bench", "bench_graph")
    for b in (odl, bench):
        if not os.access(b, os.X_OK):
            sys.exit(f"odl_speed: {b} not found (build with cmake --build {a.build})")
    t_start = time.time()
    load0 = os.getloadavg()[0]

    # the model: exported once, imported with the head cut before the last dense layer
    run([PY, os.path.join(here, "..", "tests", "torch", "export_models.py"), w, "--only", ts.MODEL])
    model = os.path.join(w, "mnv2.odl")
    run([odl, "import", os.path.join(w, ts.MODEL + ".onnx"), "-o", model, "--head", "auto"])
    image = os.path.join(w, "image.f32")
    ts.bench_image().numpy().astype("<f4").tofile(image)

    # timing rounds, odl and PyTorch alternated
    odl_rounds, pt_rounds = [], []
    for r in range(a.rounds):
        odl_rounds.append(json.loads(run([bench, model, "--reps", str(a.reps), "--input", image])))
        tj = os.path.join(w, "torch_speed.json")
        run([PY, os.path.join(here, "torch_speed.py"), "--repeats", str(a.reps), "--rss-runs", "0", "--json", tj])
        with open(tj) as f:
            pt_rounds.append(json.load(f))
        print(f"round {r + 1}/{a.rounds}: odl infer {odl_rounds[-1]['infer_b1_ms']:.3f} ms, head "
              f"{odl_rounds[-1]['head_step_b1_ms']:.3f} ms; PyTorch eager {pt_rounds[-1]['infer_b1_ms']:.3f} / "
              f"{pt_rounds[-1]['head_step_b1_ms']:.3f} ms, traced {pt_rounds[-1]['infer_b1_jit_ms']:.3f} / "
              f"{pt_rounds[-1]['head_step_b1_jit_ms']:.3f} ms", file=sys.stderr)

    lo, lp = np.array(odl_rounds[0]["logits"]), np.array(pt_rounds[0]["logits"])
    logit_err = float(np.max(np.abs(lo - lp)))
    if logit_err > 1e-4 * max(1.0, float(np.max(np.abs(lp)))):
        sys.exit(f"odl_speed: odl's logits differ from PyTorch's by {logit_err:g}: not the same model")

    # peak RSS of one adaptation process each, the same 100 images
    x, y = ts.user_data(torch.Generator().manual_seed(7))
    data = write_idx(os.path.join(w, "user"), x.numpy(), y.numpy())
    adapt_cmd = [odl, "adapt", model, "--data", data, "--strategy", "naive", "--new-classes", "--epochs",
                 str(ts.ADAPT_EPOCHS), "--batch", str(ts.ADAPT_BATCH), "-o", os.path.join(w, "adapted.odl"),
                 "--quiet"]
    odl_rss, odl_secs = [], []
    for _ in range(a.rss_runs):
        t0 = time.perf_counter()
        odl_rss.append(ts.run_measured(adapt_cmd, w)[1])
        odl_secs.append(time.perf_counter() - t0)
    m, _ = ex.build(ts.MODEL)
    with tempfile.TemporaryDirectory() as tmp:
        weights = os.path.join(tmp, ts.MODEL + ".pt")
        torch.save(m.state_dict(), weights)
        pt_children = [ts.run_adapt_child(weights, tmp) for _ in range(a.rss_runs)]

    om = lambda k: med([o[k] for o in odl_rounds])
    pm = lambda k: med([p[k] for p in pt_rounds])
    acts = odl_rounds[0]["activations"]
    res = {
        "model": ts.MODEL, "rounds": a.rounds, "reps": a.reps, "threads": 1,
        "odl": {"infer_b1_ms": om("infer_b1_ms"), "head_step_b1_ms": om("head_step_b1_ms"),
                "infer_b1_ms_rounds": [o["infer_b1_ms"] for o in odl_rounds],
                "head_step_b1_ms_rounds": [o["head_step_b1_ms"] for o in odl_rounds],
                "infer_b1_min_ms": min(o["infer_b1_min_ms"] for o in odl_rounds),
                "head_step_b1_min_ms": min(o["head_step_b1_min_ms"] for o in odl_rounds),
                "memory_bytes": odl_rounds[0]["memory_bytes"], "activations": acts,
                "adapt_peak_rss_kb": med(odl_rss), "adapt_peak_rss_kb_runs": odl_rss,
                "adapt_process_s": round(med(odl_secs), 3)},
        "pytorch": {k: pm(k) for k in ("infer_b1_ms", "infer_b1_jit_ms", "head_step_b1_ms", "head_step_b1_jit_ms")},
        "logits_max_abs_diff": logit_err,
    }
    res["pytorch"].update({
        "infer_b1_ms_rounds": [p["infer_b1_ms"] for p in pt_rounds],
        "head_step_b1_ms_rounds": [p["head_step_b1_ms"] for p in pt_rounds],
        "infer_b1_min_ms": min(p["infer_b1_min_ms"] for p in pt_rounds),
        "infer_b1_jit_min_ms": min(p["infer_b1_jit_min_ms"] for p in pt_rounds),
        "head_step_b1_min_ms": min(p["head_step_b1_min_ms"] for p in pt_rounds),
        "head_step_b1_jit_min_ms": min(p["head_step_b1_jit_min_ms"] for p in pt_rounds),
        "adapt_peak_rss_kb": med([c["peak_rss_kb_time"] for c in pt_children]),
        "adapt_peak_rss_kb_runs": [c["peak_rss_kb_time"] for c in pt_children],
        "adapt_rss_after_imports_kb": med([c["rss_after_imports_kb"] for c in pt_children]),
        "torch": pt_rounds[0]["torch"], "cpu": pt_rounds[0]["cpu"]})
    o, p = res["odl"], res["pytorch"]
    res["ratios"] = {
        "infer_b1_vs_eager": round(o["infer_b1_ms"] / p["infer_b1_ms"], 3),
        "infer_b1_vs_traced": round(o["infer_b1_ms"] / p["infer_b1_jit_ms"], 3),
        "head_step_b1_vs_eager": round(o["head_step_b1_ms"] / p["head_step_b1_ms"], 3),
        "head_step_b1_vs_traced": round(o["head_step_b1_ms"] / p["head_step_b1_jit_ms"], 3),
        "adapt_peak_rss": round(o["adapt_peak_rss_kb"] / p["adapt_peak_rss_kb"], 3)}
    res["load_avg_1min"] = [load0, os.getloadavg()[0]]
    res["seconds"] = round(time.time() - t_start, 1)

    q = res["ratios"]
    print(f"MobileNetV2-0.35, 96x96x3, 10 outputs; one thread; median of {a.rounds} rounds, each a median of "
          f"{a.reps} calls; PyTorch {p['torch']}; load average {load0:.1f} -> {res['load_avg_1min'][1]:.1f}\n")
    print("| row | odl ms | PyTorch eager ms | PyTorch traced ms | odl / eager | odl / traced | target (/ eager) | met |")
    print("|---|---|---|---|---|---|---|---|")
    for name, ok, pk, pj, r in (("inference, batch 1", "infer_b1_ms", "infer_b1_ms", "infer_b1_jit_ms", "infer_b1"),
                                ("head step from a raw image, batch 1", "head_step_b1_ms", "head_step_b1_ms",
                                 "head_step_b1_jit_ms", "head_step_b1")):
        ratio = q[r + "_vs_eager"]
        print(f"| {name} | {o[ok]:.3f} | {p[pk]:.3f} | {p[pj]:.3f} | {ratio:.3f} | {q[r + '_vs_traced']:.3f} "
              f"| ≤ 0.5 | {'yes' if ratio <= 0.5 else 'no'} |")
    print("\nactivation planner (bytes): peak / naive sum / lower bound")
    for k, v in acts.items():
        print(f"  {k:16s} {v['peak']:>10,} / {v['naive_sum']:>10,} / {v['lower_bound']:>10,}  "
              f"(peak = {v['peak'] / v['naive_sum']:.3f} of naive, {v['peak'] / v['lower_bound']:.3f} of the bound)")
    print(f"\npeak RSS of an adaptation process (kB): odl {o['adapt_peak_rss_kb']:,}, PyTorch "
          f"{p['adapt_peak_rss_kb']:,} (ratio {q['adapt_peak_rss']:.3f}; PyTorch after its imports alone "
          f"{p['adapt_rss_after_imports_kb']:,})")
    print(f"logits: odl vs PyTorch max |diff| {logit_err:.2e}")
    s = json.dumps(res, indent=1)
    if a.json:
        with open(a.json, "w") as f:
            f.write(s + "\n")
    else:
        print(s)


if __name__ == "__main__":
    main()
