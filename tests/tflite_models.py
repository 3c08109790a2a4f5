#!/usr/bin/env python3
"""Test files for tests/tflite_test.sh.

  tflite_models.py torch-cnn OUT.onnx
      a small CNN for 1x28x28 inputs (conv, ReLU, max pool, depthwise conv,
      a residual add, flatten of a 7x7 map, dense, ReLU, dense to 8
      classes) in PyTorch with random weights, exported to ONNX (opset 13):
      its flatten of a [C,H,W] map is where TFLite's NHWC order and odl's
      channel-major order differ.
  tflite_models.py torch-mix OUT.onnx
      a 3-channel model with the other exportable operators (see torch_mix).
  tflite_models.py torch-res OUT.onnx
      a 1x28x28 CNN with a residual add, a concatenation of two branches and
      a product of two feature maps (the graph operators an INT8 .tflite
      has), then a dense layer to 10 classes: quantised by odl and exported
      in int8 it is the fixture for INT8 ADD, MUL and CONCATENATION.
  tflite_models.py torch-single KIND OUT.onnx
      one layer on a 3x12x12 input (KIND: conv, depthwise, dense, add, mul,
      avgpool, concat), for per-layer INT8 comparisons.
  tflite_models.py calib-csv OUT.csv N SIZE SEED
      N rows of a label and SIZE N(0,1) values: calibration data.
  tflite_models.py hostile SRC.tflite OUTDIR
      malformed variants of a valid .tflite: truncated at several lengths,
      root offset past the end, a vtable offset out of range, a vector
      length past the end, schema version 2, an operator code changed to
      SPLIT (an operator odl does not import), an operator's opcode index
      out of range, a constant's zero point of -2^63.
  tflite_models.py repoint SRC.tflite OUT.tflite TENSOR
      the same model with its subgraph output moved to tensor TENSOR (to
      read an intermediate tensor, e.g. logits before a softmax).
  tflite_models.py slice SRC.tflite OUT.tflite FIRST LAST
      the operators FIRST..LAST of the model alone: the input is operator
      FIRST's first input, the output operator LAST's output (per-layer
      comparisons on a model's own weights). Prints the operator codes.
  tflite_models.py int8-out SRC.tflite OUT.tflite
      the same model with its output moved to the int8 tensor its last
      DEQUANTIZE reads (the int8 result of an all-int8 model).
"""
import os
import struct
import sys


def torch_mix(out):
    """3x16x16 input: conv + hard swish, average pool, two branches (1x1
    conv, depthwise) concatenated, squeeze-and-excitation (global average,
    1x1 conv, sigmoid, multiply), a strided conv with padding TFLite's SAME
    cannot express, flatten, dense to 5."""
    import torch
    import torch.nn as nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1 = nn.Conv2d(3, 8, 3, padding=1)
            self.a = nn.Conv2d(8, 4, 1)
            self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
            self.se = nn.Conv2d(12, 12, 1)
            self.c2 = nn.Conv2d(12, 6, 3, stride=2, padding=1)
            self.fc = nn.Linear(6 * 4 * 4, 5)

        def forward(self, x):
            x = nn.functional.avg_pool2d(nn.functional.hardswish(self.c1(x)), 2)
            x = torch.cat([torch.relu(self.a(x)), self.dw(x)], 1)
            x = x * torch.sigmoid(self.se(nn.functional.adaptive_avg_pool2d(x, 1)))
            return self.fc(torch.flatten(torch.relu(self.c2(x)), 1))

    torch.manual_seed(5)
    m = Net().eval()
    torch.onnx.export(m, torch.zeros(1, 3, 16, 16), out, opset_version=14,
                      input_names=["image"], output_names=["logits"])


def torch_cnn(out):
    import torch
    import torch.nn as nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1 = nn.Conv2d(1, 8, 3, padding=1)
            self.p1 = nn.MaxPool2d(2)
            self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
            self.c2 = nn.Conv2d(8, 6, 3, stride=2, padding=1)
            self.fc1 = nn.Linear(6 * 7 * 7, 32)
            self.fc2 = nn.Linear(32, 8)

        def forward(self, x):
            x = self.p1(torch.relu(self.c1(x)))
            x = x + torch.relu(self.dw(x))
            x = torch.relu(self.c2(x))
            x = torch.flatten(x, 1)
            return self.fc2(torch.relu(self.fc1(x)))

    torch.manual_seed(3)
    m = Net().eval()
    torch.onnx.export(m, torch.zeros(1, 1, 28, 28), out, opset_version=13,
                      input_names=["image"], output_names=["logits"])


def torch_res(out):
    import torch
    import torch.nn as nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1 = nn.Conv2d(1, 8, 3, padding=1)
            self.p1 = nn.MaxPool2d(2)
            self.r = nn.Conv2d(8, 8, 3, padding=1)
            self.a = nn.Conv2d(8, 4, 1)
            self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
            self.g = nn.Conv2d(12, 12, 1)
            self.c2 = nn.Conv2d(12, 6, 3, stride=2, padding=1)
            self.fc = nn.Linear(6 * 7 * 7, 10)

        def forward(self, x):
            x = self.p1(torch.relu(self.c1(x)))
            x = x + torch.relu(self.r(x))
            x = torch.cat([torch.relu(self.a(x)), self.dw(x)], 1)
            x = x * torch.relu(self.g(x))
            return self.fc(torch.flatten(torch.relu(self.c2(x)), 1))

    torch.manual_seed(11)
    m = Net().eval()
    torch.onnx.export(m, torch.zeros(1, 1, 28, 28), out, opset_version=13,
                      input_names=["image"], output_names=["logits"])


def torch_single(kind, out):
    """One layer on a 3x12x12 input."""
    import torch
    import torch.nn as nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1)
            self.dw = nn.Conv2d(3, 6, 3, padding=1, groups=3)
            self.fc = nn.Linear(3 * 12 * 12, 16)

        def forward(self, x):
            if kind == "conv":
                return self.conv(x)
            if kind == "depthwise":  # multiplier 2
                return self.dw(x)
            if kind == "dense":
                return self.fc(torch.flatten(x, 1))
            if kind == "add":
                return x + x
            if kind == "mul":
                return x * x
            if kind == "avgpool":
                return nn.functional.avg_pool2d(x, 2)
            if kind == "concat":
                return torch.cat([x, x], 1)
            if kind == "sigmoid":
                return torch.sigmoid(x)
            if kind == "tanh":
                return torch.tanh(x)
            if kind == "hardswish":
                return nn.functional.hardswish(x)
            raise SystemExit("unknown kind " + kind)

    torch.manual_seed(13)
    m = Net().eval()
    # opset 14 has HardSwish (13 spells it HardSigmoid then Mul)
    torch.onnx.export(m, torch.zeros(1, 3, 12, 12), out, opset_version=14 if kind == "hardswish" else 13,
                      input_names=["image"], output_names=["y"])


def calib_csv(out, n, size, seed):
    """n rows 'label,v1..v_size' of N(0,1) values (calibration data)."""
    import numpy as np
    rng = np.random.default_rng(int(seed))
    with open(out, "w") as f:
        for i in range(int(n)):
            f.write(",".join([str(i % 2)] + ["%.5f" % v for v in rng.standard_normal(int(size))]) + "\n")


class FB:
    def __init__(self, b):
        self.b = b

    def u32(self, p):
        return struct.unpack_from("<I", self.b, p)[0]

    def vt(self, tab):
        return tab - struct.unpack_from("<i", self.b, tab)[0]

    def field(self, tab, i):
        vt = self.vt(tab)
        vl = struct.unpack_from("<H", self.b, vt)[0]
        if 4 + 2 * i + 2 > vl:
            return None
        o = struct.unpack_from("<H", self.b, vt + 4 + 2 * i)[0]
        return tab + o if o else None

    def ref(self, tab, i):
        f = self.field(tab, i)
        return f + self.u32(f)

    def elem(self, vec, k):
        p = vec + 4 + 4 * k
        return p + self.u32(p)


def hostile(src, outdir):
    b = open(src, "rb").read()
    os.makedirs(outdir, exist_ok=True)

    def put(name, data):
        open(os.path.join(outdir, name + ".tflite"), "wb").write(bytes(data))

    for n in (8, 12, 64, len(b) // 2, len(b) - 1):
        put(f"truncated_{n}", b[:n])
    bad = bytearray(b)
    struct.pack_into("<I", bad, 0, len(b) + 100)
    put("root_past_end", bad)
    f = FB(bytearray(b))
    root = f.u32(0)
    bad = bytearray(b)
    struct.pack_into("<i", bad, root, -(1 << 30))
    put("vtable_out_of_range", bad)
    f = FB(bytearray(b))
    sg0 = f.elem(f.ref(root, 2), 0)
    tv = f.ref(sg0, 0)
    bad = bytearray(b)
    struct.pack_into("<I", bad, tv, 0x3FFFFFFF)
    put("vector_past_end", bad)
    bad = bytearray(b)
    struct.pack_into("<I", bad, f.field(root, 0), 2)
    put("schema_version_2", bad)
    # the last operator's code becomes SPLIT (49)
    ops = f.ref(sg0, 3)
    nops = f.u32(ops)
    last = f.elem(ops, nops - 1)
    code_index = f.u32(f.field(last, 0)) if f.field(last, 0) else 0
    codes = f.ref(root, 1)
    ct = f.elem(codes, code_index)
    bad = bytearray(b)
    fd = f.field(ct, 0)
    if fd is not None:
        bad[fd] = 49
    f3 = f.field(ct, 3)
    if f3 is not None:
        struct.pack_into("<i", bad, f3, 49)
    put("unsupported_op", bad)
    # a constant's zero point of -2^63 (q - zero point must not overflow)
    tens = f.ref(sg0, 0)
    bufs = f.ref(root, 4)
    for k in range(f.u32(tens)):
        tt = f.elem(tens, k)
        bi = f.u32(f.field(tt, 2)) if f.field(tt, 2) else 0
        bt = f.elem(bufs, bi)
        if not f.field(bt, 0) or not f.field(tt, 4) or not f.field(f.ref(tt, 4), 3):
            continue
        zv = f.ref(f.ref(tt, 4), 3)
        if f.u32(zv):
            bad = bytearray(b)
            struct.pack_into("<q", bad, zv + 4, -(1 << 63))
            put("zero_point_out_of_range", bad)
            break
    bad = bytearray(b)
    if f.field(last, 0) is not None:
        struct.pack_into("<I", bad, f.field(last, 0), 1000)
        put("opcode_index_out_of_range", bad)
    print(nops - 1)


def repoint(src, out, tensor):
    b = bytearray(open(src, "rb").read())
    f = FB(b)
    sg0 = f.elem(f.ref(f.u32(0), 2), 0)
    outv = f.ref(sg0, 2)
    struct.pack_into("<I", b, outv + 4, int(tensor))
    open(out, "wb").write(b)


def slice_ops(src, out, first, last):
    b = bytearray(open(src, "rb").read())
    f = FB(b)
    root = f.u32(0)
    sg0 = f.elem(f.ref(root, 2), 0)
    ops = f.ref(sg0, 3)
    n = f.u32(ops)
    assert 0 <= first <= last < n, f"operators {first}..{last} of {n}"
    tabs = [f.elem(ops, k) for k in range(first, last + 1)]
    struct.pack_into("<I", b, ops, len(tabs))
    for j, tab in enumerate(tabs):  # offsets are relative to their own slot
        slot = ops + 4 + 4 * j
        struct.pack_into("<I", b, slot, tab - slot)
    first_in = f.u32(f.ref(tabs[0], 1) + 4)
    last_out = f.u32(f.ref(tabs[-1], 2) + 4)
    struct.pack_into("<I", b, f.ref(sg0, 1) + 4, first_in)
    struct.pack_into("<I", b, f.ref(sg0, 2) + 4, last_out)
    open(out, "wb").write(b)
    codes = f.ref(root, 1)
    names = []
    for tab in tabs:
        fi = f.field(tab, 0)
        ct = f.elem(codes, f.u32(fi) if fi else 0)
        fd, f3 = f.field(ct, 0), f.field(ct, 3)
        c = max(b[fd] if fd else 0, struct.unpack_from("<i", b, f3)[0] if f3 else 0)
        names.append(str(c))
    print(" ".join(names))


def last_input(src):
    """The input of the model's last DEQUANTIZE (else of its last operator)."""
    b = open(src, "rb").read()
    f = FB(b)
    root = f.u32(0)
    sg0 = f.elem(f.ref(root, 2), 0)
    ops = f.ref(sg0, 3)
    codes = f.ref(root, 1)
    n = f.u32(ops)
    for k in range(n - 1, -1, -1):
        tab = f.elem(ops, k)
        fi = f.field(tab, 0)
        ct = f.elem(codes, f.u32(fi) if fi else 0)
        fd, f3 = f.field(ct, 0), f.field(ct, 3)
        c = max(b[fd] if fd else 0, struct.unpack_from("<i", b, f3)[0] if f3 else 0)
        if c == 6:
            return f.u32(f.ref(tab, 1) + 4)
    return f.u32(f.ref(f.elem(ops, n - 1), 1) + 4)


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "torch-cnn":
        torch_cnn(sys.argv[2])
    elif cmd == "torch-mix":
        torch_mix(sys.argv[2])
    elif cmd == "torch-res":
        torch_res(sys.argv[2])
    elif cmd == "torch-single":
        torch_single(sys.argv[2], sys.argv[3])
    elif cmd == "calib-csv":
        calib_csv(*sys.argv[2:6])
    elif cmd == "slice":
        slice_ops(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    elif cmd == "int8-out":
        repoint(sys.argv[2], sys.argv[3], last_input(sys.argv[2]))
    elif cmd == "hostile":
        hostile(sys.argv[2], sys.argv[3])
    elif cmd == "repoint":
        repoint(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        print(__doc__)
        sys.exit(2)
