#!/usr/bin/python3
"""Speed and memory of adaptation on MobileNetV2-0.35 at 96x96 (10 outputs), PyTorch side, one
thread. The model is tests/torch/export_models.py's "mobilenet_v2_035" (same seeded weights as
the ONNX file odl imports), in eval mode; its head is the last dense layer (1280 -> 10), the
base everything before it (features, global average pool, flatten: odl's --head auto cut).

Measures (medians of repeated runs, after warm-up):
  infer_b1_ms   a forward pass of the whole model at batch 1 (no_grad, eager: how PyTorch
                models run by default); infer_b1_jit_ms the same traced, frozen and
                optimize_for_inference'd (BN folded), for reference;
  head_step_ms  one training step from a raw image at batch 1: frozen base forward (no_grad),
                head forward, cross-entropy, backward, Adam step (lr 1e-3); head_step_b1_jit_ms
                the same with the base traced, frozen and optimised as above (the head eager);
  adapt_*       a fresh process doing a whole head-only adaptation as `odl adapt --strategy
                naive --new-classes` would on 100 user images: latents of the 100 images at
                batch 8, head grown to 12 outputs, 10 epochs of Adam at batch 16; its peak RSS
                (/usr/bin/time's %M; the process's own getrusage agrees) and, for reference, the RSS of the same process once
                torch is imported (torch, torchvision, onnx, numpy: the interpreter's and the
                libraries' share) and once the model is loaded, before any work; medians over
                --rss-runs processes (0: no adaptation processes).
The image timed is bench_image(); the JSON carries the model's logits on it, so bench/odl_speed.py
checks that odl runs the same weights.

Usage: /usr/bin/python3 bench/torch_speed.py [--repeats 200] [--rss-runs 3] [--json FILE]
Prints one JSON object.
"""
import argparse, json, os, platform, resource, statistics, subprocess, sys, tempfile, time

import torch
import torch.nn as nn
import torch.nn.functional as F

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "tests", "torch"))
import export_models as ex

MODEL = "mobilenet_v2_035"
TIME = "/usr/bin/time"
USER_N, ADAPT_EPOCHS, ADAPT_BATCH, LATENT_BATCH, NEW_CLASSES = 100, 10, 16, 8, 12


def split(model):
    """(base, head): base = features + global average pool + flatten, head = the last Linear."""
    base = nn.Sequential(model.features, nn.AdaptiveAvgPool2d(1), nn.Flatten()).eval()
    return base, model.classifier[1]


def rss_kb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux


def median_ms(f, repeats, warmup):
    for _ in range(warmup):
        f()
    t = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        f()
        t.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(t), min(t)


def bench_image():
    """The image the batch-1 rows time: uniform [0, 1), seed 3."""
    return torch.rand(1, 3, 96, 96, generator=torch.Generator().manual_seed(3))


def user_data(gen):
    """The adaptation's 100 user images (8-bit pixels k/255, as a camera gives, so odl reads them
    exactly from an IDX file) and labels (0-11: two new classes), drawn first from GEN seeded 7;
    bench/odl_speed.py writes the same ones for odl."""
    x = torch.round(torch.rand((USER_N, 3, 96, 96), generator=gen) * 255) / 255
    y = torch.randint(0, NEW_CLASSES, (USER_N,), generator=gen)
    return x, y


def adapt_child(weights):
    """One whole adaptation in this (fresh) process, the model loaded from WEIGHTS (a state
    dict: building it anew would run export_models' BN calibration, whose peak is not the
    adaptation's); prints its RSS figures as JSON."""
    torch.set_num_threads(1)
    after_imports = rss_kb()
    model = ex.MODELS[MODEL][0]()
    model.load_state_dict(torch.load(weights))
    model.eval()
    base, head = split(model)
    for p in model.parameters():
        p.requires_grad_(False)
    gen = torch.Generator().manual_seed(7)
    x, y = user_data(gen)
    before = rss_kb()
    t0 = time.perf_counter()
    with torch.no_grad():
        z = torch.cat([base(x[i:i + LATENT_BATCH]) for i in range(0, USER_N, LATENT_BATCH)])
    # grow the head 10 -> 12 as odl does (old rows kept, new rows 0.01 N(0, 1), new biases 0)
    w = torch.cat([head.weight, 0.01 * torch.randn(NEW_CLASSES - head.out_features, head.in_features,
                                                    generator=gen)]).requires_grad_(True)
    b = torch.cat([head.bias, torch.zeros(NEW_CLASSES - head.out_features)]).requires_grad_(True)
    opt = torch.optim.Adam([w, b], lr=1e-3)
    for _ in range(ADAPT_EPOCHS):
        perm = torch.randperm(USER_N, generator=gen)
        for i in range(0, USER_N, ADAPT_BATCH):
            k = perm[i:i + ADAPT_BATCH]
            opt.zero_grad()
            F.cross_entropy(z[k] @ w.T + b, y[k]).backward()
            opt.step()
    print(json.dumps({"rss_after_imports_kb": after_imports, "rss_before_work_kb": before, "peak_rss_kb": rss_kb(),
                      "adapt_seconds": time.perf_counter() - t0}))


def run_measured(cmd, tmp):
    """Runs CMD under /usr/bin/time; (its stdout, its peak RSS in kB). Linux carries a process's
    peak RSS across execve, so a child forked straight from this (large) process would report
    at least this process's RSS; /usr/bin/time is small and reports its own child's peak."""
    if not os.access(TIME, os.X_OK):
        sys.exit(f"{TIME} is needed to measure a child's peak RSS (apt-get install time)")
    rss_file = os.path.join(tmp, "rss")
    p = subprocess.run([TIME, "-f", "%M", "-o", rss_file] + cmd, stdout=subprocess.PIPE, text=True, check=True)
    with open(rss_file) as f:
        return p.stdout, int(f.read().split()[-1])


def run_adapt_child(weights, tmp):
    out, rss = run_measured([sys.executable, os.path.abspath(__file__), "--adapt-child", weights], tmp)
    r = json.loads(out)
    r["peak_rss_kb_time"] = rss
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=200)
    ap.add_argument("--rss-runs", type=int, default=3)
    ap.add_argument("--json", default=None)
    ap.add_argument("--adapt-child", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.adapt_child:
        return adapt_child(a.adapt_child)
    torch.set_num_threads(1)
    model, _ = ex.build(MODEL)
    base, head = split(model)
    for p in base.parameters():
        p.requires_grad_(False)
    x = bench_image()
    with torch.no_grad():
        full = model(x)
        assert torch.allclose(head(base(x)), full, atol=1e-5), "base + head must equal the model"
        infer = median_ms(lambda: model(x), a.repeats, 20)

        # PyTorch's own inference optimisation (traced, frozen, Conv+BN folded), for reference
        jit = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(model, x)))
        assert torch.allclose(jit(x), full, atol=1e-4), "the optimised model must agree"
        infer_jit = median_ms(lambda: jit(x), a.repeats, 20)

    y = torch.tensor([3])
    opt = torch.optim.Adam(head.parameters(), lr=1e-3)

    def head_step():
        with torch.no_grad():
            z = base(x)
        opt.zero_grad()
        F.cross_entropy(head(z), y).backward()
        opt.step()

    step = median_ms(head_step, a.repeats, 20)

    with torch.no_grad():
        jit_base = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(base, x)))
        assert torch.allclose(jit_base(x), base(x), atol=1e-4), "the optimised base must agree"

    def head_step_jit():
        with torch.no_grad():
            z = jit_base(x)
        opt.zero_grad()
        F.cross_entropy(head(z), y).backward()
        opt.step()

    step_jit = median_ms(head_step_jit, a.repeats, 20)

    def only_head():
        opt.zero_grad()
        F.cross_entropy(head(z1), y).backward()
        opt.step()

    with torch.no_grad():
        z1 = base(x)
    head_only = median_ms(only_head, a.repeats, 20)

    children = []
    with tempfile.TemporaryDirectory() as tmp:
        weights = os.path.join(tmp, MODEL + ".pt")
        torch.save(model.state_dict(), weights)
        for _ in range(a.rss_runs):
            children.append(run_adapt_child(weights, tmp))
    med = lambda k: statistics.median(c[k] for c in children)
    adapt = None
    if children:
        adapt = {"user_images": USER_N, "epochs": ADAPT_EPOCHS, "batch": ADAPT_BATCH,
                 "latent_batch": LATENT_BATCH, "runs": a.rss_runs,
                 "peak_rss_kb": med("peak_rss_kb_time"), "rss_after_imports_kb": med("rss_after_imports_kb"),
                 "rss_before_work_kb": med("rss_before_work_kb"), "seconds": round(med("adapt_seconds"), 3)}
    out = {"model": MODEL + " (MobileNetV2 width 0.35, 96x96x3, 10 outputs)",
           "params": int(sum(p.numel() for p in model.parameters())),
           "head_params": int(sum(p.numel() for p in head.parameters())),
           "threads": torch.get_num_threads(), "repeats": a.repeats,
           "infer_b1_ms": round(infer[0], 3), "infer_b1_min_ms": round(infer[1], 3),
           "infer_b1_jit_ms": round(infer_jit[0], 3), "infer_b1_jit_min_ms": round(infer_jit[1], 3),
           "head_step_b1_ms": round(step[0], 3), "head_step_b1_min_ms": round(step[1], 3),
           "head_step_b1_jit_ms": round(step_jit[0], 3), "head_step_b1_jit_min_ms": round(step_jit[1], 3),
           "head_only_step_b1_ms": round(head_only[0], 4),
           "logits": [float(v) for v in full[0]],
           "adapt_process": adapt,
           "torch": torch.__version__, "python": platform.python_version(),
           "cpu": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")),
                       platform.machine()),
           "load_avg_1min": os.getloadavg()[0]}
    s = json.dumps(out, indent=1)
    print(s)
    if a.json:
        with open(a.json, "w") as f:
            f.write(s + "\n")


if __name__ == "__main__":
    main()
