"""FLOP counting on hand-built ONNX graphs with known MAC counts."""
from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from mmfir.measure.flops import count_flops  # noqa: E402


def tiny_graph() -> onnx.ModelProto:
    """x[N,3,8,8] -Conv(4x3x3x3, pad 1)-> [N,4,8,8] -Reshape(Shape-derived)-> [N,4,64] -MatMul(64x5)-> [N,4,5];
    g[3,4] -Gemm(B^T, B=[6,4])-> [3,6]."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w"),
             numpy_helper.from_array(rng.standard_normal((64, 5)).astype(np.float32), "m"),
             numpy_helper.from_array(rng.standard_normal((6, 4)).astype(np.float32), "b"),
             numpy_helper.from_array(np.array([0], np.int64), "zero"),
             numpy_helper.from_array(np.array([4, 64], np.int64), "tail")]
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Shape", ["c"], ["s"]),
             helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
             helper.make_node("Concat", ["n", "tail"], ["shape"], axis=0),
             helper.make_node("Reshape", ["c", "shape"], ["r"]),
             helper.make_node("MatMul", ["r", "m"], ["y"]),
             helper.make_node("Gemm", ["g", "b"], ["z"], transB=1)]
    graph = helper.make_graph(
        nodes, "flops", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8]),
                         helper.make_tensor_value_info("g", TensorProto.FLOAT, [3, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, 5]),
         helper.make_tensor_value_info("z", TensorProto.FLOAT, [3, 6])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    onnx.checker.check_model(model)
    return model


def test_exact_counts_at_the_given_batch():
    count = count_flops(tiny_graph(), {"x": (2, 3, 8, 8), "g": (3, 4)})
    conv = 2 * 4 * 8 * 8 * 3 * 3 * 3   # N * Cout * H * W * Cin * kh * kw
    matmul = 2 * 4 * 5 * 64             # N * 4 * 5 outputs, K = 64
    gemm = 3 * 6 * 4
    assert count.by_op == {"Conv": 2 * conv, "MatMul": 2 * matmul, "Gemm": 2 * gemm}
    assert count.flops == 2 * (conv + matmul + gemm) and count.uncounted == []


def test_counts_scale_with_the_dynamic_batch():
    one = count_flops(tiny_graph(), {"x": (1, 3, 8, 8)})
    three = count_flops(tiny_graph(), {"x": (3, 3, 8, 8)})
    assert three.by_op["Conv"] == 3 * one.by_op["Conv"] and three.by_op["MatMul"] == 3 * one.by_op["MatMul"]
