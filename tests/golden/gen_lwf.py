#!/usr/bin/python3
"""Generate tests/golden/golden_lwf.h: PyTorch reference vectors for odl's
Learning-without-Forgetting distillation loss (odl_lwf_loss_f32).

Run from anywhere (needs PyTorch; on this machine that is Debian's
python3-torch, so use the system interpreter):

    /usr/bin/python3 tests/golden/gen_lwf.py

Reference, for student logits z (batch x c) and teacher logits t
(batch x teacher_stride), over the first c_old columns:

    loss = F.kl_div(F.log_softmax(z[:, :c_old] / T, 1),
                    F.softmax(t[:, :c_old] / T, 1),
                    reduction='batchmean') * T * T * weight

and its autograd gradient d(loss)/dz over all c columns (zero past c_old).
Inputs are drawn as float32 (exactly representable in C); the reference is
computed in float64 and rounded to float32 once, when written. Nothing
time-dependent is embedded, so regenerating gives an identical file.
"""
import os
import sys

import torch
import torch.nn.functional as F

LWF_SEED = 20240607
OUT_NAME = "golden_lwf.h"
REL_SCRIPT = "tests/golden/gen_lwf.py"

torch.manual_seed(LWF_SEED)
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


def lwf_reference(z, t, c_old, T, weight):
    z = z.clone().requires_grad_()
    loss = F.kl_div(F.log_softmax(z[:, :c_old] / T, dim=1),
                    F.softmax(t[:, :c_old] / T, dim=1),
                    reduction="batchmean") * T * T * weight
    loss.backward()
    return loss.detach(), z.grad.detach()


def gen_case(o, tag, B, C, c_old, stride, T, weight):
    z = randn(B, C, scale=2.0)
    t = randn(B, stride, scale=2.0)
    loss, grad = lwf_reference(z, t, c_old, T, weight)
    assert torch.all(grad[:, c_old:] == 0)
    o.line("/* %s: batch %d, c %d, c_old %d, teacher_stride %d, T %g, weight %g */"
           % (tag, B, C, c_old, stride, T, weight))
    o.define("G_%s_BATCH" % tag, B)
    o.define("G_%s_C" % tag, C)
    o.define("G_%s_C_OLD" % tag, c_old)
    o.define("G_%s_STRIDE" % tag, stride)
    o.define("G_%s_T" % tag, "%sf" % repr(float(T)))
    o.define("G_%s_WEIGHT" % tag, "%sf" % repr(float(weight)))
    o.farr("G_%s_Z" % tag, z, "student logits [batch][c]")
    o.farr("G_%s_TEACHER" % tag, t, "teacher logits [batch][teacher_stride]")
    o.farr("G_%s_LOSS" % tag, loss.reshape(1),
           "F.kl_div(log_softmax(z[:, :c_old]/T), softmax(t[:, :c_old]/T), 'batchmean')*T*T*weight")
    o.farr("G_%s_DZ" % tag, grad, "d(loss)/d(z) [batch][c]")
    o.line()


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    o = Out()
    o.line("/* tests/golden/golden_lwf.h — GENERATED, do not edit by hand.")
    o.line(" *")
    o.line(" * Generator: %s" % REL_SCRIPT)
    o.line(" * Regenerate (from the repository root):")
    o.line(" *     /usr/bin/python3 %s" % REL_SCRIPT)
    o.line(" * PyTorch %s, Python %s, torch.manual_seed(%d), 1 thread."
           % (torch.__version__, sys.version.split()[0], LWF_SEED))
    o.line(" * Inputs are drawn as float32; references are computed in float64 and")
    o.line(" * rounded to float32 here. The teacher's columns past c_old (stride 7)")
    o.line(" * are random and must be ignored. */")
    o.line("#ifndef ODL_GOLDEN_LWF_H")
    o.line("#define ODL_GOLDEN_LWF_H")
    o.line()
    o.define("G_LWF_N_CASES", 4)
    o.line()
    gen_case(o, "LWF_A", 3, 7, 5, 5, 2.0, 1.0)
    gen_case(o, "LWF_B", 3, 7, 5, 7, 2.0, 1.0)
    gen_case(o, "LWF_C", 3, 7, 5, 5, 2.0, 0.5)
    gen_case(o, "LWF_D", 3, 7, 5, 7, 2.0, 0.5)
    o.line("#endif /* ODL_GOLDEN_LWF_H */")
    path = os.path.join(here, OUT_NAME)
    with open(path, "w", encoding="utf-8") as f:
        f.write("".join(o.parts))
    print("wrote", path)


if __name__ == "__main__":
    main()
