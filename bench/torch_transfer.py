#!/usr/bin/python3
"""Transfer learning on an imported model, PyTorch side: trains a small residual network on
Fashion-MNIST classes 0-7, exports it to ONNX for odl, and runs on it in PyTorch the protocol
odl runs after import (bench/transfer_odl.py):

  odl adapt base8.odl --data D --classes 8,9 --limit 100 --new-classes --strategy replay \\
      --replay-balanced --replay-from D --seed S -o base10.odl

mirrored from tools/odl/cmd_adapt.c and tools/odl/learn.c:
  - user examples: the first 100 samples of the train split labelled 8 or 9, in file order
    (odl_data_load with a class set and a limit; labels kept as 8 and 9);
  - the base is frozen; the head is the last dense layer (--head auto, unfreeze 0), trained on
    latents (the 64 values the dense layer reads);
  - replay: 200 slots, class-balanced (src/replay.c), 32 classes of room, filled from the train
    split's classes 0-7 (the base's classes) in a seeded shuffled order;
  - growth 8 -> 10 outputs: old rows kept, new rows 0.01 N(0,1), new biases 0
    (odl_model_transfer_params); a fresh Adam (lr 1e-3), 10 epochs, batch 16 over the 100 new
    latents and the whole buffer shuffled together every epoch (src/adapt.c);
  - accuracy on the test split: all 10 classes, old (0-7) and new (8-9).
The model and the user examples are the same as odl's; the random draws (replay selection,
shuffles, new rows) follow odl's distributions but not its PCG32 stream, so per-seed values
differ and means over seeds are what compare.

Usage: /usr/bin/python3 bench/torch_transfer.py OUT_DIR [--seeds 3] [--epochs 3] [--threads 1] [--reuse]
Writes OUT_DIR/base8.onnx (opset 13, exported in eval mode as users do), OUT_DIR/base8.pt,
OUT_DIR/torch_transfer.json and prints a table.
"""
import argparse, json, os, sys, time, warnings

import numpy as np
import onnx
import torch
import torch.nn.functional as F

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
sys.path.insert(0, os.path.join(here, "..", "tests", "torch"))
from torch_experiment import Session, acc_range, load_split  # odl's replay buffer and head session
from models import SmallResNet
import onnx_numpy

BASE_SEED = 0
BASE_CLASSES = 8
USER_CLASSES = (8, 9)
USER_LIMIT = 100
MAX_CLASSES = 32  # cmd_adapt.c: a new buffer has room for 32 classes


def train_base(xtr, ytr, epochs, batch=64, lr=1e-3):
    torch.manual_seed(BASE_SEED)
    model = SmallResNet(BASE_CLASSES)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for ep in range(epochs):
        perm = torch.randperm(len(xtr))
        t0, tot = time.time(), 0.0
        for i in range(0, len(xtr), batch):
            b = perm[i:i + batch]
            opt.zero_grad()
            loss = F.cross_entropy(model(xtr[b]), ytr[b])
            loss.backward()
            opt.step()
            tot += loss.item() * len(b)
        print(f"base epoch {ep + 1}/{epochs}: loss {tot / len(xtr):.4f} ({time.time() - t0:.0f} s)",
              file=sys.stderr, flush=True)
    return model.eval()


@torch.no_grad()
def batched(f, x, bs=1000):
    return torch.cat([f(x[i:i + bs]) for i in range(0, len(x), bs)])


def mean_std(v):
    v = np.asarray(v, dtype=np.float64)
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out_dir")
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=3, help="base training epochs (default 3)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reuse", action="store_true", help="load OUT_DIR/base8.pt instead of training")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    os.makedirs(a.out_dir, exist_ok=True)
    t_start = time.time()
    xtr, ytr = load_split(a.data, "train")
    xte, yte = load_split(a.data, "t10k")
    old = ytr < BASE_CLASSES
    pt = os.path.join(a.out_dir, "base8.pt")
    t0 = time.time()
    if a.reuse:
        model = SmallResNet(BASE_CLASSES)
        model.load_state_dict(torch.load(pt))
        model.eval()
    else:
        model = train_base(xtr[old], ytr[old], a.epochs)
        torch.save(model.state_dict(), pt)
    train_s = time.time() - t0
    for p in model.parameters():
        p.requires_grad_(False)
    onnx_path = os.path.join(a.out_dir, "base8.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, torch.zeros(1, 1, 28, 28), onnx_path, opset_version=13, input_names=["input"],
                          output_names=["logits"])
    onnx.checker.check_model(onnx.load(onnx_path))
    with torch.no_grad():
        onnx_rel = onnx_numpy.rel_err(onnx_path, xte[:4].numpy(), model(xte[:4]).numpy())
    if not onnx_rel <= 5e-5:
        sys.exit(f"torch_transfer: {onnx_path} run in numpy differs from PyTorch by {onnx_rel:.3g} of the largest "
                 "output: the export is wrong")

    zte = batched(model.features, xte)
    base_pred = model.fc(zte).argmax(1)
    base_old = acc_range(base_pred, yte, 0, BASE_CLASSES - 1)
    print(f"base (classes 0-7, {a.epochs} epochs, {train_s:.0f} s): test accuracy on 0-7 {base_old:.2f}")

    # the user's examples: the first 100 train samples labelled 8 or 9, in file order
    user_ix = torch.nonzero((ytr == USER_CLASSES[0]) | (ytr == USER_CLASSES[1])).flatten()[:USER_LIMIT]
    xu, yu = xtr[user_ix], ytr[user_ix]
    zu = batched(model.features, xu)
    old_z, old_y = batched(model.features, xtr[old]), ytr[old]
    st = {"name": "replay balanced 200", "kind": "replay", "size": 200, "balanced": True}
    runs = []
    for seed in range(a.seeds):
        s = Session(st, [model.fc], MAX_CLASSES, old_z, old_y, seed)
        s.learn(xu, zu, yu, 10)
        pred = s.predict(zte)
        r = {"seed": seed, "all": acc_range(pred, yte, 0, 9), "old": acc_range(pred, yte, 0, 7),
             "new": acc_range(pred, yte, 8, 9)}
        runs.append(r)
        print(f"seed {seed}: all-10 {r['all']:.2f}  old 0-7 {r['old']:.2f}  new 8-9 {r['new']:.2f}", flush=True)
    summary = {k: mean_std([r[k] for r in runs]) for k in ("all", "old", "new")}
    print("PyTorch, mean ± std over %d seeds: all-10 %.2f ± %.2f, old %.2f ± %.2f, new %.2f ± %.2f" %
          ((a.seeds,) + summary["all"] + summary["old"] + summary["new"]))
    out = {"implementation": "pytorch", "torch": torch.__version__, "threads": a.threads,
           "base": {"arch": "SmallResNet (tests/torch/models.py)", "classes": "0-7", "epochs": a.epochs,
                    "seed": BASE_SEED, "params": int(sum(p.numel() for p in model.parameters())),
                    "test_acc_old": base_old, "train_seconds": round(train_s, 1), "onnx": "base8.onnx",
                    "onnx_numpy_rel_err": float(f"{onnx_rel:.3g}")},
           "protocol": {"user": f"first {USER_LIMIT} train samples labelled 8 or 9", "strategy":
                        "replay class-balanced 200, head only", "epochs": 10, "batch": 16, "lr": 1e-3},
           "runs": runs, "summary": {k: {"mean": v[0], "std": v[1]} for k, v in summary.items()},
           "user_indices_first5": user_ix[:5].tolist(), "seconds": round(time.time() - t_start, 1)}
    with open(os.path.join(a.out_dir, "torch_transfer.json"), "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
