"""FLOPs of an ONNX graph at concrete input shapes: Conv, ConvTranspose, MatMul and Gemm, 2 FLOPs per MAC.

Shapes come from ``onnx.shape_inference`` (with data propagation) after the graph's dynamic input dims
are replaced by the benchmarked ones; when that leaves a counted node's shapes unknown (reshapes fed by
``Shape`` ops, as torch's exporter writes them), onnxruntime's symbolic shape inference is run instead.
Element-wise ops, normalisations and softmax are not counted
(they are a few per cent of a conv/attention network's arithmetic); nodes whose shapes inference could
not determine are counted in ``FlopCount.uncounted`` so a short count is visible, never silent.
Needs the ``onnx`` package (mmfir[export]); the runtime never imports it at import time.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from math import prod
from pathlib import Path

from mmfir.runtime.errors import FeedError

COUNTED_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm")


@dataclass
class FlopCount:
    flops: int = 0
    by_op: dict[str, int] = field(default_factory=dict)
    uncounted: list[str] = field(default_factory=list)  # node names whose shapes were unknown

    def add(self, op: str, macs: int) -> None:
        self.flops += 2 * macs
        self.by_op[op] = self.by_op.get(op, 0) + 2 * macs

    def to_json(self) -> dict:
        return {"flops": self.flops, "by_op": dict(self.by_op), "uncounted_nodes": len(self.uncounted),
                "method": "ONNX graph: Conv/ConvTranspose/MatMul/Gemm MACs x 2, onnx shape inference"}


def with_input_shapes(model, shapes: dict[str, tuple[int, ...]]):
    """A copy of ``model`` whose graph inputs have the given concrete shapes."""
    import onnx

    model = onnx.ModelProto.FromString(model.SerializeToString())
    for value in model.graph.input:
        if value.name not in shapes:
            continue
        dims = value.type.tensor_type.shape.dim
        if len(dims) != len(shapes[value.name]):
            raise FeedError(f"input {value.name} has rank {len(dims)}, got shape {shapes[value.name]}")
        for dim, size in zip(dims, shapes[value.name]):
            dim.Clear()
            dim.dim_value = int(size)
    return model


def known_shapes(model) -> dict[str, tuple[int, ...]]:
    """name -> concrete shape of every value whose shape inference found all dims."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    graph = inferred.graph
    shapes = {init.name: tuple(init.dims) for init in graph.initializer}
    for value in list(graph.input) + list(graph.value_info) + list(graph.output):
        dims = value.type.tensor_type.shape.dim
        if value.type.tensor_type.HasField("shape") and all(d.HasField("dim_value") for d in dims):
            shapes[value.name] = tuple(d.dim_value for d in dims)
    return shapes


def node_macs(node, shapes: dict[str, tuple[int, ...]]) -> int | None:
    """Multiply-accumulates of one node, None when a needed shape is unknown or the op is not counted."""
    if node.op_type not in COUNTED_OPS or node.output[0] not in shapes:
        return None
    out = shapes[node.output[0]]
    ins = [shapes.get(name) for name in node.input[:2]]
    if any(s is None for s in ins):
        return None
    a, w = ins
    if node.op_type == "Conv":  # w: [Cout, Cin/groups, k...]; out: [N, Cout, spatial...]
        return prod(out) * prod(w[1:])
    if node.op_type == "ConvTranspose":  # w: [Cin, Cout/groups, k...]; every input pixel hits the kernel
        return prod(a) * prod(w[1:])
    if node.op_type == "MatMul":  # [..., M, K] @ [..., K, N]
        return prod(out) * (a[-1] if len(a) > 1 else a[0])
    trans_a = next((attr.i for attr in node.attribute if attr.name == "transA"), 0)
    return prod(out) * (a[0] if trans_a else a[1])  # Gemm


def symbolic_shapes(model) -> dict[str, tuple[int, ...]]:
    """Shapes by onnxruntime's symbolic shape inference (handles Shape->Reshape chains); {} if it fails."""
    try:
        from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

        return known_shapes(SymbolicShapeInference.infer_shapes(model, auto_merge=True))
    except Exception:  # noqa: BLE001 - a failed fallback leaves the nodes uncounted (reported)
        return {}


def count_flops(model_or_path, input_shapes: dict[str, tuple[int, ...]]) -> FlopCount:
    """FLOPs of one inference of an ONNX model (path or ModelProto) at ``input_shapes``."""
    import onnx

    model = onnx.load(str(model_or_path)) if isinstance(model_or_path, (str, Path)) else model_or_path
    concrete = with_input_shapes(model, input_shapes)
    shapes = known_shapes(concrete)
    if any(node_macs(n, shapes) is None for n in model.graph.node if n.op_type in COUNTED_OPS):
        shapes = {**shapes, **symbolic_shapes(concrete)}
    count = FlopCount()
    for node in model.graph.node:
        if node.op_type not in COUNTED_OPS:
            continue
        macs = node_macs(node, shapes)
        if macs is None:
            count.uncounted.append(node.name or node.output[0])
        else:
            count.add(node.op_type, macs)
    return count
