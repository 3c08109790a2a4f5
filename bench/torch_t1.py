#!/usr/bin/python3
"""PyTorch side of docs/protocol.md T1 (and the PyTorch process of M1), the same
work bench_core does for odl: edge-cnn 1x28x28, 10 classes, Adam lr 1e-3.

  /usr/bin/python3 bench/torch_t1.py [--threads N] [--reps R]   -> T1 rows, JSON
  /usr/bin/python3 bench/torch_t1.py --s1                       -> an S1-like
      replay adaptation (load base, user set of 100 shifted images, 200
      replayed latents, head-only, 10 epochs, batch 16); prints its peak RSS

Rows, as in bench_core: a head-only step (last dense trainable) from raw
images at batch 1 and 16 (frozen base under no_grad, head forward/backward,
Adam), the same from cached latents, inference at batch 1 (inference_mode),
a full training step at batch 16, and base training throughput at batch 64
(64 / the median step). Median of many calls after a warm-up, like odl.
"""
import argparse, gzip, json, resource, time
import numpy as np
import torch
import torch.nn as nn


def idx(path, limit=None):
    with gzip.open(path, "rb") as f:
        data = f.read()
    nd = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(nd)]
    a = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * nd).reshape(dims)
    return a[:limit] if limit else a


def edge_cnn(classes=10):
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, classes))


def median_us(fn, reps):
    for _ in range(reps // 10 + 1):
        fn()
    t = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        t.append(time.perf_counter() - t0)
    t.sort()
    return t[reps // 2] * 1e6


def load(data, limit):
    x = torch.tensor(idx(f"{data}/train-images-idx3-ubyte.gz", limit), dtype=torch.float32).unsqueeze(1) / 255
    y = torch.tensor(idx(f"{data}/train-labels-idx1-ubyte.gz", limit), dtype=torch.int64)
    return x, y


def t1(a):
    torch.manual_seed(0)
    x, y = load(a.data, 4096)
    lossf = nn.CrossEntropyLoss()

    # head-only: base = layers 0..8 frozen, head = layer 9
    m = edge_cnn()
    base, head = m[:9], m[9]
    for p in base.parameters():
        p.requires_grad_(False)
    hopt = torch.optim.Adam(head.parameters(), lr=1e-3)

    def head_raw(n):
        xb, yb = x[:n], y[:n]
        def f():
            hopt.zero_grad(set_to_none=True)
            with torch.no_grad():
                z = base(xb)
            lossf(head(z), yb).backward()
            hopt.step()
        return f

    with torch.no_grad():
        z16 = base(x[:16]).clone()

    def head_latent(n):
        zb, yb = z16[:n], y[:n]
        def f():
            hopt.zero_grad(set_to_none=True)
            lossf(head(zb), yb).backward()
            hopt.step()
        return f

    inf = edge_cnn()
    inf.eval()
    x1 = x[:1]
    def infer():
        with torch.inference_mode():
            inf(x1)

    full = edge_cnn()
    fopt = torch.optim.Adam(full.parameters(), lr=1e-3)
    def full_step(xb, yb):
        def f():
            fopt.zero_grad(set_to_none=True)
            lossf(full(xb), yb).backward()
            fopt.step()
        return f

    r = a.reps
    res = {
        "head_step_raw_b1": median_us(head_raw(1), r),
        "head_step_raw_b16": median_us(head_raw(16), r),
        "head_step_latent_b1": median_us(head_latent(1), r * 10),
        "head_step_latent_b16": median_us(head_latent(16), r * 10),
        "inference_b1": median_us(infer, r),
        "full_step_b16": median_us(full_step(x[:16], y[:16]), r),
    }
    # throughput: batch-64 steps over the loaded images, like bench_core
    nb = len(x) // 64
    for s in range(min(nb, 8)):
        full_step(x[s * 64:(s + 1) * 64], y[s * 64:(s + 1) * 64])()
    ts = []
    t_all = time.perf_counter()
    for s in range(64):
        b = s % nb
        f = full_step(x[b * 64:(b + 1) * 64], y[b * 64:(b + 1) * 64])
        t0 = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t0)
    t_all = time.perf_counter() - t_all
    ts.sort()
    print(json.dumps({"bench": "pytorch", "torch": torch.__version__, "threads": torch.get_num_threads(),
                      "reps": r, "median_us": res,
                      "base_training_images_per_second": 64 / ts[len(ts) // 2],
                      "base_training_images_per_second_wall": 64 * 64 / t_all}))


def s1(a):
    """What `odl adapt BASE --strategy replay --replay-from DATA` does, in
    PyTorch: load the original training set (for the replay buffer), build a
    reservoir of 200 latents, then 10 epochs of head-only Adam at batch 16
    over the 100 user images (gain-shifted) plus the replayed latents."""
    torch.manual_seed(0)
    xtr, ytr = load(a.data, None)
    m = edge_cnn()
    base, head = m[:9], m[9]
    for p in base.parameters():
        p.requires_grad_(False)
    g = torch.Generator().manual_seed(0)
    keep = torch.randperm(len(xtr), generator=g)[:200]
    with torch.no_grad():
        zr, yr = base(xtr[keep]), ytr[keep]
        xu = (0.8 * xtr[:100] + 0.1).clamp(0, 1)
        zu, yu = base(xu), ytr[:100]
    z, yy = torch.cat([zu, zr]), torch.cat([yu, yr])
    opt = torch.optim.Adam(head.parameters(), lr=1e-3)
    lossf = nn.CrossEntropyLoss()
    for _ in range(10):
        perm = torch.randperm(len(z), generator=g)
        for i in range(0, len(z), 16):
            b = perm[i:i + 16]
            opt.zero_grad(set_to_none=True)
            lossf(head(z[b]), yy[b]).backward()
            opt.step()
    print(json.dumps({"bench": "pytorch s1", "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--s1", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    s1(a) if a.s1 else t1(a)


if __name__ == "__main__":
    main()
