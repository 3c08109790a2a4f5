#!/usr/bin/env python3
"""Why odl's INT8 outputs and ArmNN's differ by one step on single layers.

  bench/tflite_rounding.py PATH/TO/odl MODEL.tflite OP [OP ...]

For each FULLY_CONNECTED operator OP of an int8 .tflite, the operator alone
(tests/tflite_models.py slice) runs on 100 random int8 inputs in ArmNN's
CpuRef (tests/tflite_armnn.py) and in odl (odl import, odl predict --int8).
From the file's own int8 weights, int32 biases and scales the script then
computes, for every output, the exact int32 accumulator and the real value
v = acc * s_in * s_w / s_out in output steps, and counts in how many values

  - ArmNN differs from round(v) (rounding half away from zero, once),
  - odl differs from round(v),
  - odl differs from TFLite's integer requantisation emulated here
    (QuantizeMultiplier, then SaturatingRoundingDoublingHighMul, which rounds
    to an integer 2^rshift times finer than the output, then
    RoundingDivideByPOT by 2^rshift, which rounds again),

and how far from a .5 boundary the values odl and ArmNN disagree on lie
(TFLite's double rounding can move a value by at most 0.5 / 2^rshift steps
before the final rounding). Values clamped by the fused activation or the
int8 range are left out. Prints one JSON line per operator.
"""
import json
import math
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
import tflite_models as tm  # noqa: E402


def ivec(b, f, v):
    return [struct.unpack_from("<i", b, v + 4 + 4 * k)[0] for k in range(f.u32(v))]


def tensor(b, f, tens, bufs, i):
    tt = f.elem(tens, i)
    shape = ivec(b, f, f.ref(tt, 0))
    bi = f.u32(f.field(tt, 2)) if f.field(tt, 2) else 0
    sc = zp = None
    if f.field(tt, 4):
        q = f.ref(tt, 4)
        if f.field(q, 2):
            sv, zv = f.ref(q, 2), f.ref(q, 3)
            sc = np.frombuffer(b, "<f4", f.u32(sv), sv + 4)
            zp = np.frombuffer(b, "<i8", f.u32(zv), zv + 4)
    bt = f.elem(bufs, bi)
    data = None
    if f.field(bt, 0):
        dv = f.ref(bt, 0)
        data = b[dv + 4: dv + 4 + f.u32(dv)]
    return shape, sc, zp, data


def quantize_multiplier(m):
    q, e = math.frexp(m)
    qf = int(round(q * 2 ** 31))
    if qf == 2 ** 31:
        qf //= 2
        e += 1
    return qf, e


def srdhm(a, b):
    ab = a * b
    x = ab + ((1 << 30) if ab >= 0 else 1 - (1 << 30))
    return x // 2 ** 31 if x >= 0 else -((-x) // 2 ** 31)  # truncation toward zero, as C


def rdbpot(x, e):
    mask = (1 << e) - 1
    return (x >> e) + (1 if (x & mask) > (mask >> 1) + (1 if x < 0 else 0) else 0)


def tflite_requant(acc, m, zo):
    m0, sh = quantize_multiplier(m)
    left, right = (sh, 0) if sh > 0 else (0, -sh)
    return rdbpot(srdhm(acc * (1 << left), m0), right) + zo, right


def one(odl, model, op, work):
    sl = os.path.join(work, f"op{op}.tflite")
    subprocess.run([sys.executable, os.path.join(HERE, "..", "tests", "tflite_models.py"), "slice", model, sl,
                    str(op), str(op)], check=True, capture_output=True)
    x, ref, qx = (os.path.join(work, f"op{op}.{s}.npy") for s in ("x", "ref", "qx"))
    subprocess.run([sys.executable, os.path.join(HERE, "..", "tests", "tflite_armnn.py"), "run", sl, "--n", "100",
                    "--seed", "7", "--x", x, "--ref", ref, "--qx", qx], check=True, capture_output=True)
    od, y = os.path.join(work, f"op{op}.odl"), os.path.join(work, f"op{op}.y.npy")
    subprocess.run([odl, "import", sl, "-o", od], check=True, capture_output=True)
    subprocess.run([odl, "predict", od, "--int8", "--data", x, "-o", y], check=True, capture_output=True)

    b = open(sl, "rb").read()
    f = tm.FB(b)
    root = f.u32(0)
    sg = f.elem(f.ref(root, 2), 0)
    tens, ops, bufs = f.ref(sg, 0), f.ref(sg, 3), f.ref(root, 4)
    o = f.elem(ops, 0)
    ins, outs = ivec(b, f, f.ref(o, 1)), ivec(b, f, f.ref(o, 2))
    _, s_in, z_in, _ = tensor(b, f, tens, bufs, ins[0])
    wsh, s_w, _, wd = tensor(b, f, tens, bufs, ins[1])
    _, _, _, bd = tensor(b, f, tens, bufs, ins[2])
    _, s_out, z_out, _ = tensor(b, f, tens, bufs, outs[0])
    W = np.frombuffer(wd, np.int8).reshape(wsh).astype(np.int64)
    B = np.frombuffer(bd, "<i4").astype(np.int64)
    X = np.load(qx).reshape(len(np.load(qx)), -1).astype(np.int64)
    acc = (X - int(z_in[0])) @ W.T + B
    ms = np.float64(s_in[0]) * s_w.astype(np.float64) / np.float64(s_out[0])
    mcol = np.broadcast_to(ms if ms.size > 1 else ms[0], acc.shape)
    v = acc * mcol
    zo, so = int(z_out[0]), float(s_out[0])
    R = np.load(ref).astype(np.int64).reshape(acc.shape)
    O = (np.clip(np.round(np.load(y).astype(np.float64) / so) + zo, -128, 127)).astype(np.int64).reshape(acc.shape)
    ideal = np.where(v >= 0, np.floor(v + 0.5), np.ceil(v - 0.5)) + zo
    keep = (ideal > -128) & (ideal < 127) & (R > -128) & (R < 127) & (O > -128) & (O < 127)
    lo = int(R.min())  # a fused ReLU clamps at the zero point
    keep &= (ideal > lo) & (O > lo)
    emu = np.zeros_like(O)
    rshift = 0
    for i in range(acc.shape[0]):
        for j in range(acc.shape[1]):
            emu[i, j], rshift = tflite_requant(int(acc[i, j]), float(mcol[i, j]), zo)
    emu = np.clip(emu, -128, 127)
    dist = np.abs(v - np.floor(v) - 0.5)
    differ = (O != R) & keep
    return {"op": op, "values": int(keep.sum()), "odl_vs_armnn_differ": int(differ.sum()),
            "armnn_vs_exact_round": int(((R != ideal) & keep).sum()),
            "odl_vs_exact_round": int(((O != ideal) & keep).sum()),
            "odl_vs_tflite_emulated": int(((O != emu) & keep).sum()),
            "right_shift": rshift, "bound_0.5/2^rshift": 0.5 / 2 ** rshift,
            "max_distance_from_half_where_differ": round(float(dist[differ].max()), 6) if differ.any() else None}


def main():
    if len(sys.argv) < 4:
        print(__doc__)
        sys.exit(2)
    odl, model = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    with tempfile.TemporaryDirectory() as work:
        for op in sys.argv[3:]:
            print(json.dumps(one(odl, model, int(op), work)))


if __name__ == "__main__":
    main()
