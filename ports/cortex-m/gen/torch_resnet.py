#!/usr/bin/python3
"""torch_resnet.py OUT.onnx [--data DIR] [--limit N] [--epochs E]: the imported graph model of
the Cortex-M build's residual firmware (ports/cortex-m/resnet.c). Trains tests/torch/models.py's
SmallResNet (conv stem, three residual stacks with additions, average pool, dense) on the first
N Fashion-MNIST training images, all 10 classes, with PyTorch (Adam 1e-3, batch 64, seed 0,
one thread), and exports it in eval mode to ONNX (opset 13), as users do; odl imports it."""
import argparse, os, sys, warnings

import torch
import torch.nn.functional as F

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "..", "..", "bench"))
sys.path.insert(0, os.path.join(here, "..", "..", "..", "tests", "torch"))
from torch_experiment import load_split  # noqa: E402
from models import SmallResNet  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--limit", type=int, default=12000)
    ap.add_argument("--epochs", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    x, y = load_split(a.data, "train")
    x, y = x[:a.limit], y[:a.limit]
    model = SmallResNet(10)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    for _ in range(a.epochs):
        perm = torch.randperm(len(x))
        for i in range(0, len(x), 64):
            b = perm[i:i + 64]
            opt.zero_grad()
            F.cross_entropy(model(x[b]), y[b]).backward()
            opt.step()
    model.eval()
    tmp = a.out + ".tmp"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, torch.zeros(1, 1, 28, 28), tmp, opset_version=13, input_names=["input"],
                          output_names=["logits"])
    os.replace(tmp, a.out)
    print("torch_resnet: SmallResNet, %d epoch(s) on %d images, torch %s -> %s" % (a.epochs, len(x),
                                                                                  torch.__version__, a.out))


if __name__ == "__main__":
    main()
