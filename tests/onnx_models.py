#!/usr/bin/python3
"""Small ONNX models for odl's importer tests and fuzz seeds, written with
onnx.helper (python3-onnx): models odl must import, and models it must
refuse with a message naming the problem.

Usage: onnx_models.py OUTDIR
Writes OUTDIR/<name>.onnx for every model below, and OUTDIR/x_cnn.npy (a
batch of inputs for ok_cnn)."""
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

rng = np.random.default_rng(0)


def init(name, shape, scale=0.3):
    return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)


def ints(name, values):
    return numpy_helper.from_array(np.array(values, dtype=np.int64), name)


def model(nodes, inputs, outputs, inits, opset=13):
    g = helper.make_graph(nodes, "g", inputs, outputs, inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)],
                          producer_name="odl-tests")
    return m


def inp(name, dims):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, dims)


def cnn(opset=13):
    """Conv+BN+Relu, depthwise conv, pools, PyTorch's shape arithmetic
    (Shape, Gather, Unsqueeze, Concat -> Reshape), Gemm, Softmax. The same
    weights for every opset."""
    global rng
    rng = np.random.default_rng(1)
    n = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c1", "g1", "be1", "m1", "v1"], ["bn1"], name="bn1",
                         epsilon=1e-5),
        helper.make_node("Relu", ["bn1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "wd"], ["dw"], name="dwconv", group=4, strides=[2, 2],
                         pads=[0, 0, 1, 1]),
        helper.make_node("HardSigmoid", ["dw"], ["hs"], name="hsig", alpha=1 / 6, beta=0.5),
        helper.make_node("Mul", ["dw", "hs"], ["hsw"], name="hswish"),
        helper.make_node("AveragePool", ["hsw"], ["ap"], name="avg", kernel_shape=[3, 3],
                         pads=[1, 1, 1, 1], count_include_pad=0),
        helper.make_node("Add", ["ap", "hsw"], ["res"], name="residual"),
        helper.make_node("MaxPool", ["res"], ["mp"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Shape", ["mp"], ["shp"], name="shape"),
        helper.make_node("Gather", ["shp", "zero"], ["n"], name="gather", axis=0),
        helper.make_node("Unsqueeze", ["n", "axes0"], ["n1"], name="unsq"),
        helper.make_node("Concat", ["n1", "minus1"], ["tgt"], name="cat", axis=0),
        helper.make_node("Reshape", ["mp", "tgt"], ["flat"], name="reshape"),
        helper.make_node("Gemm", ["flat", "wf", "bf"], ["logits"], name="fc", transB=1),
        helper.make_node("Softmax", ["logits"], ["prob"], name="softmax", axis=1),
    ]
    inits = [
        init("w1", (4, 1, 3, 3)), init("b1", (4,)),
        numpy_helper.from_array(rng.uniform(0.5, 1.5, 4).astype(np.float32), "g1"),
        init("be1", (4,)), init("m1", (4,)),
        numpy_helper.from_array(rng.uniform(0.5, 2, 4).astype(np.float32), "v1"),
        init("wd", (4, 1, 3, 3)),
        ints("zero", 0), ints("axes0", [0]), ints("minus1", [-1]),
        init("wf", (5, 4 * 4 * 4)), init("bf", (5,)),
    ]
    if opset < 13:  # Unsqueeze took axes as an attribute
        n[11] = helper.make_node("Unsqueeze", ["n"], ["n1"], name="unsq", axes=[0])
    return model(n, [inp("x", ["N", 1, 16, 16])], [helper.make_tensor_value_info("prob", TensorProto.FLOAT, ["N", 5])],
                 inits, opset)


def mlp():
    n = [
        helper.make_node("MatMul", ["x", "w1"], ["h"], name="mm1"),
        helper.make_node("Add", ["h", "b1"], ["hb"], name="bias1"),
        helper.make_node("Tanh", ["hb"], ["t"], name="tanh"),
        helper.make_node("Gemm", ["t", "w2", "b2"], ["y"], name="fc2", alpha=0.5, beta=2.0),
    ]
    return model(n, [inp("x", [1, 6])], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
                 [init("w1", (6, 8)), init("b1", (8,)), init("w2", (8, 3)), init("b2", (3,))])


def single(op, extra_inits=(), opset=13, in_dims=(1, 2, 4, 4), **attrs):
    ins = ["x"] + [t.name for t in extra_inits]
    n = [helper.make_node(op, ins, ["y"], name="the_" + op.lower(), **attrs)]
    return model(n, [inp("x", list(in_dims))], [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                 list(extra_inits), opset)


def concat10():
    """Ten tensors concatenated (odl chains its 8-input concats)."""
    scales = [numpy_helper.from_array(np.array(k + 1, np.float32), f"k{k}") for k in range(10)]
    n = [helper.make_node("Mul", ["x", f"k{k}"], [f"m{k}"], name=f"scale{k}") for k in range(10)]
    n.append(helper.make_node("Concat", [f"m{k}" for k in range(10)], ["y"], name="cat10", axis=1))
    return model(n, [inp("x", ["N", 2, 3, 3])], [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                 scales)


def main():
    out = sys.argv[1]
    ms = {
        "ok_cnn": cnn(13),
        "ok_cnn_opset11": cnn(11),
        "ok_mlp": mlp(),
        "ok_concat10": concat10(),
        "bad_op": single("Erf"),
        "bad_attr": single("Conv", [init("w", (2, 2, 3, 3))], auto_pad="NOTSET", pads=[1, 1, 1, 1],
                           kernel_shape=[3, 3], foo=3),
        "bad_pool_dilation": single("MaxPool", opset=12, kernel_shape=[2, 2], dilations=[2, 2]),
        "bad_opset": single("Relu", opset=8),
        "bad_opset18": single("Relu", opset=18),
        "bad_dynamic": single("Relu", in_dims=("N", 3, "H", "W")),
        "bad_batch": single("Relu", in_dims=(8, 3, 4, 4)),
        "bad_huge": single("Relu", in_dims=(1, 3, 100000000, 100000000)),
        "bad_rank5": single("Relu", in_dims=(1, 2, 3, 4, 5)),
        "bad_matmul": model([helper.make_node("MatMul", ["x", "x"], ["y"], name="mm")],
                            [inp("x", [1, 4])], [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], []),
    }
    # a float16 weight
    w16 = numpy_helper.from_array(np.ones((2, 2, 1, 1), np.float16), "w16")
    ms["bad_float16"] = single("Conv", [w16])
    # external data: the weight lives in another file
    ext = init("wext", (2, 2, 1, 1))
    ext.ClearField("raw_data")
    ext.data_location = TensorProto.EXTERNAL
    ext.external_data.add(key="location", value="weights.bin")
    ms["bad_external"] = single("Conv", [ext])
    for name, m in ms.items():
        onnx.save(m, f"{out}/{name}.onnx")
    np.save(f"{out}/x_cnn.npy", rng.standard_normal((7, 1, 16, 16)).astype(np.float32))
    np.save(f"{out}/x_mlp.npy", rng.standard_normal((5, 6)).astype(np.float32))
    np.save(f"{out}/x_cat.npy", rng.standard_normal((4, 2, 3, 3)).astype(np.float32))


if __name__ == "__main__":
    main()
