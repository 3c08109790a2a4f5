#!/usr/bin/python3
"""Generate tests/golden/golden_data.h: PyTorch reference vectors for odl's
layer kernels, the softmax cross-entropy loss and the SGD / Adam optimizers.

Run from anywhere (needs PyTorch; on this machine that is Debian's
python3-torch, so use the system interpreter):

    /usr/bin/python3 tests/golden/gen_golden.py

Determinism: torch.manual_seed(GOLDEN_SEED), one CPU thread, deterministic
algorithms. Every input (x, w, b, dy, logits, gradients, initial parameters)
is drawn as float32 so it is exactly representable in the C arrays; all
reference computation (forward, autograd backward, optimizer steps) is then
done in float64 and the results are rounded to float32 once, when written.
Nothing time-dependent is embedded, so regenerating gives an identical file.

Backward vectors are d(sum(y * dy))/d(x, w, b) for a random upstream dy.
"""
import os
import sys

import torch
import torch.nn.functional as F

GOLDEN_SEED = 20240531
OUT_NAME = "golden_data.h"
REL_SCRIPT = "tests/golden/gen_golden.py"

torch.manual_seed(GOLDEN_SEED)
torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)

F32 = torch.float32
F64 = torch.float64


def randn(*shape, scale=1.0):
    """float32 draw (exactly representable in C), returned as float64."""
    return (torch.randn(*shape, dtype=F32) * scale).to(F32).to(F64)


def fmt_float(v):
    return "%.9g" % float(torch.tensor(float(v), dtype=F64).to(F32).item())


class Out:
    def __init__(self):
        self.parts = []

    def line(self, s=""):
        self.parts.append(s + "\n")

    def define(self, name, value):
        self.line("#define %s %s" % (name, value))

    def farr(self, name, t, comment=None):
        vals = t.detach().reshape(-1).to(F32).tolist()
        if comment:
            self.line("/* %s */" % comment)
        self.line("static const float %s[%d] = {" % (name, len(vals)))
        for i in range(0, len(vals), 6):
            self.line("    " + ", ".join(fmt_float(v) for v in vals[i:i + 6]) + ",")
        self.line("};")

    def iarr(self, name, vals):
        self.line("static const int32_t %s[%d] = {%s};"
                  % (name, len(vals), ", ".join(str(int(v)) for v in vals)))


def window_dims_macro(o, name, batch, cin, h, w, cout, oh, ow, kh, kw, sh, sw, ph, pw):
    o.define(name + "_DIMS",
             "{ .batch = %d, .in_c = %d, .in_h = %d, .in_w = %d, "
             ".out_c = %d, .out_h = %d, .out_w = %d, .k_h = %d, .k_w = %d, "
             ".stride_h = %d, .stride_w = %d, .pad_h = %d, .pad_w = %d, .pad_b = %d, .pad_r = %d, "
             ".dil_h = 1, .dil_w = 1, .groups = 1, .flags = 0 }"
             % (batch, cin, h, w, cout, oh, ow, kh, kw, sh, sw, ph, pw, ph, pw))


def backward(y, dy, *leaves):
    for leaf in leaves:
        leaf.grad = None
    (y * dy).sum().backward()
    return [leaf.grad for leaf in leaves]


# ---------------------------------------------------------------------------
def gen_dense(o):
    B, I, O = 3, 7, 5
    x = randn(B, I).requires_grad_()
    w = randn(O, I, scale=0.5).requires_grad_()
    b = randn(O, scale=0.1).requires_grad_()
    y = F.linear(x, w, b)
    dy = randn(B, O)
    dx, dw, db = backward(y, dy, x, w, b)
    o.line("/* ---- dense: y = x w^T + b, w[out][in] ---- */")
    o.define("G_DENSE_BATCH", B)
    o.define("G_DENSE_IN", I)
    o.define("G_DENSE_OUT", O)
    for n, t in (("X", x), ("W", w), ("B", b), ("DY", dy), ("Y", y),
                 ("DX", dx), ("DW", dw), ("DB", db)):
        o.farr("G_DENSE_" + n, t)
    o.line()


def gen_conv(o, tag, B, cin, H, W, cout, kh, kw, s, p, groups=1, desc=""):
    x = randn(B, cin, H, W).requires_grad_()
    w = randn(cout, cin // groups, kh, kw, scale=0.4).requires_grad_()
    b = randn(cout, scale=0.1).requires_grad_()
    y = F.conv2d(x, w, b, stride=s, padding=p, groups=groups)
    oh, ow = y.shape[2], y.shape[3]
    dy = randn(*y.shape)
    dx, dw, db = backward(y, dy, x, w, b)
    name = "G_" + tag
    o.line("/* ---- %s: %s ---- */" % (tag.lower(), desc))
    window_dims_macro(o, name, B, cin, H, W, cout, oh, ow, kh, kw, s, s, p, p)
    for n, t in (("X", x), ("W", w), ("B", b), ("DY", dy), ("Y", y),
                 ("DX", dx), ("DW", dw), ("DB", db)):
        o.farr(name + "_" + n, t)
    o.line()


def assert_no_max_ties(x, k, s, p):
    """odl routes the max-pool gradient to the first maximum, PyTorch to its
    own choice; make sure every window has a unique maximum."""
    xp = F.pad(x, (p, p, p, p), value=float("-inf"))
    cols = F.unfold(xp, kernel_size=k, stride=s)  # [B, C*k*k, L]
    Bn, C = x.shape[0], x.shape[1]
    cols = cols.view(Bn, C, k * k, -1)
    top2 = cols.topk(2, dim=2).values
    gap = (top2[:, :, 0] - top2[:, :, 1])
    assert bool((gap > 1e-3).all()), "tie (or near tie) in a max-pool window"


def gen_pool(o, tag, kind, B, C, H, W, k, s, p, desc):
    x = randn(B, C, H, W).requires_grad_()
    if kind == "max":
        assert_no_max_ties(x.detach(), k, s, p)
        y = F.max_pool2d(x, k, stride=s, padding=p)
    else:
        y = F.avg_pool2d(x, k, stride=s, padding=p, count_include_pad=False)
    oh, ow = y.shape[2], y.shape[3]
    dy = randn(*y.shape)
    (dx,) = backward(y, dy, x)
    name = "G_" + tag
    o.line("/* ---- %s: %s ---- */" % (tag.lower(), desc))
    window_dims_macro(o, name, B, C, H, W, C, oh, ow, k, k, s, s, p, p)
    for n, t in (("X", x), ("DY", dy), ("Y", y), ("DX", dx)):
        o.farr(name + "_" + n, t)
    o.line()


def gen_gap(o):
    B, C, H, W = 2, 3, 5, 4
    x = randn(B, C, H, W).requires_grad_()
    y = F.adaptive_avg_pool2d(x, 1).flatten(1)
    dy = randn(*y.shape)
    (dx,) = backward(y, dy, x)
    o.line("/* ---- global average pool: adaptive_avg_pool2d(x, 1).flatten(1) ---- */")
    o.define("G_GAP_BATCH", B)
    o.define("G_GAP_C", C)
    o.define("G_GAP_HW", H * W)
    for n, t in (("X", x), ("DY", dy), ("Y", y), ("DX", dx)):
        o.farr("G_GAP_" + n, t)
    o.line()


def act_input(n):
    """Values in [-4, 10) that stay clear of the kinks at 0 and 6."""
    v = (torch.rand(n, dtype=F32) * 14.0 - 4.0).to(F64)
    for i in range(n):
        while abs(v[i].item()) < 0.05 or abs(v[i].item() - 6.0) < 0.05:
            v[i] = float((torch.rand(1, dtype=F32) * 14.0 - 4.0).item())
    assert bool((v < 0).any()) and bool((v > 6).any()) and bool(((v > 0) & (v < 6)).any())
    return v


def gen_act(o):
    n = 29
    o.line("/* ---- relu / relu6 (inputs in [-4, 10), none within 0.05 of 0 or 6) ---- */")
    o.define("G_ACT_N", n)
    for tag, fn in (("RELU", F.relu), ("RELU6", F.relu6)):
        x = act_input(n).requires_grad_()
        y = fn(x)
        dy = randn(n)
        (dx,) = backward(y, dy, x)
        for nm, t in (("X", x), ("DY", dy), ("Y", y), ("DX", dx)):
            o.farr("G_%s_%s" % (tag, nm), t)
    o.line()


def gen_xent(o):
    B, C = 4, 5
    logits = randn(B, C, scale=2.0).requires_grad_()
    labels = torch.randint(0, C, (B,))
    loss = F.cross_entropy(logits, labels, reduction="mean")
    probs = F.softmax(logits, dim=1)
    loss.backward()
    o.line("/* ---- softmax cross-entropy, mean over the batch ---- */")
    o.define("G_XENT_BATCH", B)
    o.define("G_XENT_C", C)
    o.farr("G_XENT_LOGITS", logits)
    o.iarr("G_XENT_LABELS", labels.tolist())
    o.farr("G_XENT_LOSS", loss.reshape(1), "F.cross_entropy(logits, labels) (mean)")
    o.farr("G_XENT_PROBS", probs)
    o.farr("G_XENT_DLOGITS", logits.grad, "d(mean loss)/d(logits)")
    o.line()


OPT_N = 11
OPT_STEPS = 3


def run_optim(make_opt):
    p0 = randn(OPT_N)
    grads = randn(OPT_STEPS, OPT_N)
    p = p0.clone().requires_grad_()
    opt = make_opt([p])
    hist = []
    for s in range(OPT_STEPS):
        p.grad = grads[s].clone()
        opt.step()
        hist.append(p.detach().clone())
    return p0, grads, torch.stack(hist)


def gen_optim(o):
    o.line("/* ---- optimizers: %d parameters, %d steps; G_*_G[step][n] is the gradient"
           " set as p.grad before step s+1, G_*_W[step][n] the parameters after it ---- */"
           % (OPT_N, OPT_STEPS))
    o.define("G_OPT_N", OPT_N)
    o.define("G_OPT_STEPS", OPT_STEPS)
    cases = [
        ("SGDM", "torch.optim.SGD(lr=0.1, momentum=0.9, weight_decay=0.01)",
         {"lr": 0.1, "momentum": 0.9, "wd": 0.01},
         lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.01)),
        ("SGD", "torch.optim.SGD(lr=0.1) (momentum 0, weight_decay 0)",
         {"lr": 0.1, "momentum": 0.0, "wd": 0.0},
         lambda ps: torch.optim.SGD(ps, lr=0.1)),
        ("ADAM", "torch.optim.Adam(lr=0.01, betas=(0.9, 0.999), eps=1e-8, weight_decay=0)",
         {"lr": 0.01, "wd": 0.0},
         lambda ps: torch.optim.Adam(ps, lr=0.01, betas=(0.9, 0.999), eps=1e-8,
                                     weight_decay=0.0)),
        ("ADAMWD", "torch.optim.Adam(lr=0.01, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)",
         {"lr": 0.01, "wd": 0.01},
         lambda ps: torch.optim.Adam(ps, lr=0.01, betas=(0.9, 0.999), eps=1e-8,
                                     weight_decay=0.01)),
    ]
    for tag, desc, hp, mk in cases:
        p0, grads, hist = run_optim(mk)
        o.line("/* %s */" % desc)
        o.define("G_%s_LR" % tag, "%sf" % repr(hp["lr"]))
        if "momentum" in hp:
            o.define("G_%s_MOMENTUM" % tag, "%sf" % repr(hp["momentum"]))
        o.define("G_%s_WD" % tag, "%sf" % repr(hp["wd"]))
        o.farr("G_%s_W0" % tag, p0)
        o.farr("G_%s_G" % tag, grads)
        o.farr("G_%s_W" % tag, hist)
    o.line()


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    o = Out()
    o.line("/* tests/golden/golden_data.h — GENERATED, do not edit by hand.")
    o.line(" *")
    o.line(" * Generator: %s" % REL_SCRIPT)
    o.line(" * Regenerate (from the repository root):")
    o.line(" *     /usr/bin/python3 %s" % REL_SCRIPT)
    o.line(" * PyTorch %s, Python %s, torch.manual_seed(%d), 1 thread."
           % (torch.__version__, sys.version.split()[0], GOLDEN_SEED))
    o.line(" * Inputs are drawn as float32; references are computed in float64 and")
    o.line(" * rounded to float32 here. Layout NCHW, weights as PyTorch (see odl/layers.h).")
    o.line(" * Backward arrays are d(sum(y * dy)) with respect to x, w, b. */")
    o.line("#ifndef ODL_GOLDEN_DATA_H")
    o.line("#define ODL_GOLDEN_DATA_H")
    o.line()
    o.line("#include <stdint.h>")
    o.line()
    gen_dense(o)
    gen_conv(o, "CONV_A", 2, 3, 7, 6, 4, 3, 3, 1, 1,
             desc="conv2d 3->4, 7x6 input, k3x3, stride 1, pad 1")
    gen_conv(o, "CONV_B", 2, 3, 9, 8, 4, 3, 3, 2, 0,
             desc="conv2d 3->4, 9x8 input, k3x3, stride 2, pad 0")
    gen_conv(o, "CONV_C", 2, 3, 7, 6, 4, 3, 2, 1, 0,
             desc="conv2d 3->4, 7x6 input, k3x2 (kh != kw), stride 1, pad 0")
    gen_conv(o, "CONV_D", 3, 2, 7, 6, 3, 3, 3, 2, 1,
             desc="conv2d 2->3, batch 3, 7x6 input, k3x3, stride 2, pad 1")
    gen_conv(o, "DW_A", 2, 3, 7, 6, 6, 3, 3, 1, 1, groups=3,
             desc="depthwise (groups = cin) 3 ch, multiplier 2 -> 6, 7x6, k3, stride 1, pad 1")
    gen_conv(o, "DW_B", 2, 3, 7, 6, 3, 3, 3, 2, 1, groups=3,
             desc="depthwise (groups = cin) 3 ch, multiplier 1, 7x6, k3, stride 2, pad 1")
    gen_pool(o, "MAXPOOL_A", "max", 2, 3, 7, 7, 2, 2, 0,
             "max_pool2d k2 stride 2, 7x7 input (floor drops the last row/col)")
    gen_pool(o, "MAXPOOL_B", "max", 2, 3, 7, 6, 3, 2, 1,
             "max_pool2d k3 stride 2 pad 1 (padding = -inf), 7x6 input")
    gen_pool(o, "AVGPOOL_A", "avg", 2, 3, 7, 7, 2, 2, 0,
             "avg_pool2d k2 stride 2, 7x7 input")
    gen_pool(o, "AVGPOOL_B", "avg", 2, 3, 7, 6, 3, 2, 1,
             "avg_pool2d k3 stride 2 pad 1, count_include_pad=False, 7x6 input")
    gen_gap(o)
    gen_act(o)
    gen_xent(o)
    gen_optim(o)
    o.line("#endif /* ODL_GOLDEN_DATA_H */")
    path = os.path.join(here, OUT_NAME)
    with open(path, "w", encoding="utf-8") as f:
        f.write("".join(o.parts))
    print("wrote", path)


if __name__ == "__main__":
    main()
