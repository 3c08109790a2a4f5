#!/usr/bin/python3
"""A plain numpy (float64) evaluator of the ONNX operators the exported models use, so that
references.py can check each ONNX file computes what PyTorch computed (an export fault must not
be mistaken for an odl fault), independently of odl and of any ONNX runtime.

Usage: /usr/bin/python3 tests/torch/onnx_numpy.py MODEL.onnx INPUT.npy REFERENCE.npy [--n 4]
(prints the largest difference relative to the largest reference output)."""
import sys

import numpy as np
import onnx
from onnx import numpy_helper


def attrs(node):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def conv(x, w, b, a):
    n, c, h, wd = x.shape
    m, cg, kh, kw = w.shape
    g = a.get("group", 1)
    sh, sw = a.get("strides", [1, 1])
    dh, dw = a.get("dilations", [1, 1])
    pt, pl, pb, pr = a.get("pads", [0, 0, 0, 0])
    if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise NotImplementedError("Conv auto_pad")
    x = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    oh = (x.shape[2] - dh * (kh - 1) - 1) // sh + 1
    ow = (x.shape[3] - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((n, m, oh, ow))
    mg = m // g
    for gi in range(g):
        xs = x[:, gi * cg:(gi + 1) * cg]
        cols = np.empty((n, cg, kh, kw, oh, ow))
        for i in range(kh):
            for j in range(kw):
                cols[:, :, i, j] = xs[:, :, i * dh:i * dh + sh * (oh - 1) + 1:sh, j * dw:j * dw + sw * (ow - 1) + 1:sw]
        wg = w[gi * mg:(gi + 1) * mg].reshape(mg, -1)
        out[:, gi * mg:(gi + 1) * mg] = np.einsum("mk,nkhw->nmhw", wg, cols.reshape(n, cg * kh * kw, oh, ow))
    if b is not None:
        out += b.reshape(1, -1, 1, 1)
    return out


def pool(x, a, kind):
    kh, kw = a["kernel_shape"]
    sh, sw = a.get("strides", [1, 1])
    pt, pl, pb, pr = a.get("pads", [0, 0, 0, 0])
    if a.get("ceil_mode", 0):
        raise NotImplementedError("ceil_mode")
    fill = -np.inf if kind == "max" else 0.0
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)), constant_values=fill)
    ones = np.pad(np.ones(x.shape[2:]), ((pt, pb), (pl, pr)))
    oh = (xp.shape[2] - kh) // sh + 1
    ow = (xp.shape[3] - kw) // sw + 1
    out = np.empty(x.shape[:2] + (oh, ow))
    for i in range(oh):
        for j in range(ow):
            win = xp[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw]
            if kind == "max":
                out[:, :, i, j] = win.max((2, 3))
            else:
                cnt = kh * kw if a.get("count_include_pad", 0) else ones[i * sh:i * sh + kh, j * sw:j * sw + kw].sum()
                out[:, :, i, j] = win.sum((2, 3)) / cnt
    return out


def run(model, x):
    g = model.graph
    v = {t.name: numpy_helper.to_array(t).astype(np.float64) if t.data_type == onnx.TensorProto.FLOAT
         else numpy_helper.to_array(t) for t in g.initializer}
    v[g.input[0].name] = x.astype(np.float64)
    for node in g.node:
        a = attrs(node)
        i = [v[n] if n else None for n in node.input]
        op = node.op_type
        if op == "Conv":
            r = conv(i[0], i[1], i[2] if len(i) > 2 else None, a)
        elif op == "BatchNormalization":
            x0, s, bb, m, var = i[:5]
            sh = (1, -1, 1, 1)
            r = (x0 - m.reshape(sh)) / np.sqrt(var.reshape(sh) + a.get("epsilon", 1e-5)) * s.reshape(sh) + bb.reshape(sh)
        elif op == "Relu":
            r = np.maximum(i[0], 0)
        elif op == "Clip":
            lo = a.get("min", i[1] if len(i) > 1 and i[1] is not None else -np.inf)
            hi = a.get("max", i[2] if len(i) > 2 and i[2] is not None else np.inf)
            r = np.clip(i[0], lo, hi)
        elif op == "HardSigmoid":
            r = np.clip(a.get("alpha", 0.2) * i[0] + a.get("beta", 0.5), 0, 1)
        elif op == "HardSwish":
            r = i[0] * np.clip(i[0] / 6 + 0.5, 0, 1)
        elif op in ("Add", "Mul"):
            r = i[0] + i[1] if op == "Add" else i[0] * i[1]
        elif op == "GlobalAveragePool":
            r = i[0].mean((2, 3), keepdims=True)
        elif op in ("AveragePool", "MaxPool"):
            r = pool(i[0], a, "max" if op == "MaxPool" else "avg")
        elif op == "Flatten":
            ax = a.get("axis", 1)
            r = i[0].reshape(int(np.prod(i[0].shape[:ax])), -1)
        elif op == "Gemm":
            A = i[0].T if a.get("transA", 0) else i[0]
            B = i[1].T if a.get("transB", 0) else i[1]
            r = a.get("alpha", 1.0) * A @ B + (a.get("beta", 1.0) * i[2] if len(i) > 2 else 0)
        elif op == "Softmax":
            e = np.exp(i[0] - i[0].max(a.get("axis", -1), keepdims=True))
            r = e / e.sum(a.get("axis", -1), keepdims=True)
        elif op == "Identity":
            r = i[0]
        elif op == "Constant":
            r = numpy_helper.to_array(a["value"])
        elif op == "ConstantOfShape":
            val = numpy_helper.to_array(a["value"]) if "value" in a else np.zeros(1, np.float32)
            r = np.full(tuple(int(s) for s in i[0]), val.ravel()[0], dtype=val.dtype)
        elif op == "Concat":
            r = np.concatenate(i, a["axis"])
        elif op == "Reshape":
            r = i[0].reshape(tuple(int(s) for s in i[1]))
        elif op == "Transpose":
            r = np.transpose(i[0], a.get("perm"))
        elif op == "Cast":
            r = i[0].astype({onnx.TensorProto.INT64: np.int64, onnx.TensorProto.FLOAT: np.float64,
                             onnx.TensorProto.INT32: np.int32}[a["to"]])
        elif op == "Slice":
            starts, ends = i[1], i[2]
            axes = i[3] if len(i) > 3 and i[3] is not None else range(len(starts))
            steps = i[4] if len(i) > 4 and i[4] is not None else [1] * len(starts)
            sl = [slice(None)] * i[0].ndim
            for s, e, ax, st in zip(starts, ends, axes, steps):
                sl[int(ax)] = slice(int(s), int(max(min(e, 2 ** 62), -2 ** 62)), int(st))
            r = i[0][tuple(sl)]
        elif op == "Pad":
            mode = a.get("mode", b"constant")
            if mode not in (b"constant", "constant"):
                raise NotImplementedError("Pad mode " + str(mode))
            pads = a["pads"] if "pads" in a else [int(p) for p in i[1]]
            val = a.get("value", float(i[2]) if len(i) > 2 and i[2] is not None else 0.0)
            nd = i[0].ndim
            r = np.pad(i[0], [(pads[k], pads[k + nd]) for k in range(nd)], constant_values=val)
        else:
            raise NotImplementedError(f"node {node.name}: op {op}")
        v[node.output[0]] = r
    return v[g.output[0].name]


def rel_err(path, x, ref):
    """max |numpy(ONNX) - ref| / max |ref| over the samples of x."""
    out = run(onnx.load(path), x)
    return float(np.abs(out - ref.astype(np.float64)).max() / np.abs(ref).max())


if __name__ == "__main__":
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model")
    ap.add_argument("x")
    ap.add_argument("ref")
    ap.add_argument("--n", type=int, default=4)
    a = ap.parse_args()
    print(f"{rel_err(a.model, np.load(a.x)[:a.n], np.load(a.ref)[:a.n]):.3e}")
