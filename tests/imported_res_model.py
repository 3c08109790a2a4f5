"""A small residual network with batch norm, trained for a few seconds (STEPS
batches of 64, default 300) in PyTorch on Fashion-MNIST classes 0-7 and exported to ONNX as tests/torch
does (eval mode, opset 13, input "image" 1x28x28, 8 logits): the imported
model of tests/imported_flows_test.sh.

    python3 tests/imported_res_model.py FASHION_DIR OUT.onnx [STEPS]
"""
import gzip
import os
import sys

import numpy as np
import torch
import torch.nn as nn


def idx(path):
    op = gzip.open if path.endswith(".gz") else open
    with op(path, "rb") as f:
        b = f.read()
    nd = b[3]
    dims = [int.from_bytes(b[4 + 4 * k:8 + 4 * k], "big") for k in range(nd)]
    return np.frombuffer(b, np.uint8, offset=4 + 4 * nd).reshape(dims)


def find(d, stem):
    for ext in ("", ".gz"):
        p = os.path.join(d, stem + ext)
        if os.path.exists(p):
            return p
    raise SystemExit("no %s in %s" % (stem, d))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2))
        self.body = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                  nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8))
        self.down = nn.Sequential(nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.fc1 = nn.Linear(16 * 7 * 7, 32)
        self.fc = nn.Linear(32, 8)

    def forward(self, x):
        x = self.stem(x)
        x = torch.relu(x + self.body(x))
        x = self.down(x)
        return self.fc(torch.relu(self.fc1(torch.flatten(x, 1))))


def main():
    data, out = sys.argv[1], sys.argv[2]
    steps = int(sys.argv[3]) if len(sys.argv) > 3 else 300
    torch.manual_seed(0)
    torch.set_num_threads(1)
    x = idx(find(data, "train-images-idx3-ubyte")).astype(np.float32) / 255.0
    y = idx(find(data, "train-labels-idx1-ubyte")).astype(np.int64)
    keep = y < 8
    x, y = torch.from_numpy(x[keep][:, None]), torch.from_numpy(y[keep])
    m = Net()
    opt = torch.optim.Adam(m.parameters(), 2e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(steps):
        i = torch.randint(0, len(y), (64,), generator=g)
        loss = nn.functional.cross_entropy(m(x[i]), y[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
    m.eval()
    torch.onnx.export(m, torch.zeros(1, 1, 28, 28), out, opset_version=13, input_names=["image"],
                      output_names=["logits"])
    print("trained %d steps (torch %s)" % (steps, torch.__version__))


if __name__ == "__main__":
    main()
