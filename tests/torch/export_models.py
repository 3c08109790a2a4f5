#!/usr/bin/python3
"""Exports the architectures odl's ONNX import is checked on, with random weights, to ONNX.

Usage: /usr/bin/python3 tests/torch/export_models.py OUT_DIR [--only NAME[,NAME]]

Writes OUT_DIR/NAME.onnx and OUT_DIR/NAME.json (shape, opset, parameter count, seed, versions
of torch/torchvision/onnx/numpy, export time) for every model below, and prints one line per
model. Models are in eval mode and exported with their BatchNormalization nodes kept
(TrainingMode.PRESERVE skips PyTorch's own Conv+BN fusion), after their BN running statistics
and affine parameters were set to random, non-trivial values: default-initialised BN (mean 0,
var 1, scale 1, shift 0) is the identity and would not test the importer's folding.

Opsets: 13 by default, the opset most deployment tools accept (ONNX Runtime mobile, TFLite and
microcontroller converters) and the first with the input forms PyTorch now writes for Clip
(min/max as inputs, 11+), Pad (pads as an input, 11+, here computed by a constant subgraph the
importer must evaluate) and Squeeze/Unsqueeze (axes as inputs). The rest covers the range odl
claims (9 to 17): ResNet-18 at opset 9, the oldest; DS-CNN-S at 11; MobileNetV3-small at 17
(HardSwish as one node, 14+, where opset 13 would write HardSigmoid * x).
"""
import argparse, json, os, sys, time, warnings

import numpy as np
import onnx
import torch
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import models as tiny

SEED = 12345


def mobilenet_v2():
    return torchvision.models.mobilenet_v2(width_mult=0.35, num_classes=10)


def mobilenet_v3_small():
    return torchvision.models.mobilenet_v3_small(num_classes=10)


def resnet18():
    return torchvision.models.resnet18(num_classes=10)


# name: (builder, input C,H,W, opset, ends in softmax, why); every model keeps its BN nodes
# except those named *_fused, exported as users get by default (TrainingMode.EVAL: PyTorch folds
# each BN into its conv itself)
MODELS = {
    "mobilenet_v2_035": (mobilenet_v2, (3, 96, 96), 13, False,
                         "torchvision MobileNetV2, width 0.35, 96x96 (depthwise, ReLU6 as Clip, residual adds)"),
    "mobilenet_v2_035_fused": (mobilenet_v2, (3, 96, 96), 13, False,
                               "the same MobileNetV2 as exported by default (BN folded by PyTorch)"),
    # 96x96 rather than 224: the same graph (SE blocks, hard-swish, its 3x3 last map is still
    # spatial) at a fifth of the work, so CI stays fast
    "mobilenet_v3_small": (mobilenet_v3_small, (3, 96, 96), 17, False,
                           "torchvision MobileNetV3-small, 96x96 (squeeze-excitation mul, HardSwish, HardSigmoid)"),
    "resnet18_64": (resnet18, (3, 64, 64), 9, False,
                    "torchvision ResNet-18 at 64x64 (max pool, projection shortcuts), opset 9"),
    "resnet8_tiny": (tiny.ResNet8, (3, 32, 32), 13, True,
                     "MLPerf Tiny image classification ResNet-8, 32x32x3 (asymmetric 'same' pads, softmax)"),
    "dscnn_s": (tiny.DSCNN, (1, 49, 10), 11, True,
                "MLPerf Tiny keyword spotting DS-CNN-S, 49x10x1 (10x4 stride-2 conv, depthwise-separable)"),
}


def versions():
    return {"torch": torch.__version__, "torchvision": torchvision.__version__, "onnx": onnx.__version__,
            "numpy": np.__version__, "python": sys.version.split()[0]}


@torch.no_grad()
def randomise_bn(model, in_shape, gen):
    """Gives every BatchNorm running statistics and affine parameters far from the identity
    that still keep activations of order one through a deep network: in one eval-mode pass
    over random inputs, each BN, just before it runs, takes the statistics of its actual input
    (with every earlier BN already set), moved per channel (mean by up to half a standard
    deviation, variance scaled by 0.5-2); scale 0.5-1.5 and shift +-0.5 are random. Each
    layer is so roughly normalised and the perturbations do not compound."""
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]

    def pre_hook(m, inp):
        x = inp[0].double()
        c = m.num_features
        u = lambda lo, hi: (lo + (hi - lo) * torch.rand(c, generator=gen)).double()
        mean, var = x.mean((0, 2, 3)), x.var((0, 2, 3))
        m.running_mean.copy_(mean + (torch.rand(c, generator=gen).double() - 0.5) * var.sqrt())
        m.running_var.copy_(var * u(0.5, 2.0) + 1e-3)
        m.weight.copy_(u(0.5, 1.5))
        m.bias.copy_(u(-0.5, 0.5))

    hooks = [m.register_forward_pre_hook(pre_hook) for m in bns]
    model.eval()
    model(torch.randn((32,) + tuple(in_shape), generator=gen))
    for h in hooks:
        h.remove()
    return len(bns)


def build(name):
    """The model NAME in eval mode with its seeded random weights (the same on every run)."""
    builder, shape, opset, softmax, _ = MODELS[name]
    torch.manual_seed(SEED)  # the same seed for every model: *_fused equals its unfused twin
    model = builder()
    gen = torch.Generator().manual_seed(SEED + 1)
    n_bn = randomise_bn(model, shape, gen)
    model.eval()
    return model, n_bn


def export(name, out_dir):
    builder, shape, opset, softmax, what = MODELS[name]
    t0 = time.time()
    model, n_bn = build(name)
    path = os.path.join(out_dir, name + ".onnx")
    x = torch.zeros((1,) + tuple(shape))
    torch.onnx.export(model, x, path, opset_version=opset, input_names=["input"], output_names=["output"],
                      training=(torch.onnx.TrainingMode.EVAL if name.endswith("_fused") else
                                torch.onnx.TrainingMode.PRESERVE), do_constant_folding=True)
    seconds = time.time() - t0
    g = onnx.load(path)
    onnx.checker.check_model(g)
    ops = {}
    for node in g.graph.node:
        ops[node.op_type] = ops.get(node.op_type, 0) + 1
    info = {"name": name, "description": what, "file": name + ".onnx", "input_shape": list(shape),
            "outputs": int(model(x).shape[1]), "softmax_output": softmax, "opset": opset,
            "params": int(sum(p.numel() for p in model.parameters())), "batchnorm_layers": n_bn,
            "onnx_nodes": len(g.graph.node), "onnx_ops": dict(sorted(ops.items())), "seed": SEED,
            "export_seconds": round(seconds, 3), "versions": versions(),
            "bn_folded_by_pytorch": name.endswith("_fused"),
            "exported_by": "tests/torch/export_models.py"}
    with open(os.path.join(out_dir, name + ".json"), "w") as f:
        json.dump(info, f, indent=1)
        f.write("\n")
    return info


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out_dir")
    ap.add_argument("--only", default=None, help="comma-separated subset of: " + ", ".join(MODELS))
    a = ap.parse_args()
    names = a.only.split(",") if a.only else list(MODELS)
    for n in names:
        if n not in MODELS:
            ap.error(f"--only: unknown model '{n}' (known: {', '.join(MODELS)})")
    os.makedirs(a.out_dir, exist_ok=True)
    # PyTorch warns about constant folding in PRESERVE mode (harmless in eval mode: no
    # parameter is trained) and about shape inference of the pad subgraphs; the checker
    # below validates every file
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    v = versions()
    print(f"export_models: seed {SEED}; " + ", ".join(f"{k} {v[k]}" for k in v))
    print(f"{'model':<24} {'input':>10} {'opset':>5} {'params':>10} {'nodes':>6} {'BN':>4} {'export s':>9}")
    for n in names:
        i = export(n, a.out_dir)
        print(f"{n:<24} {'x'.join(map(str, i['input_shape'])):>10} {i['opset']:>5} {i['params']:>10} "
              f"{i['onnx_nodes']:>6} {i['batchnorm_layers']:>4} {i['export_seconds']:>9.2f}", flush=True)


if __name__ == "__main__":
    main()
