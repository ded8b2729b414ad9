"""FP32 ONNX -> FP16 ONNX: FP16 weights and compute, numerically fragile ops kept FP32, FP32 graph I/O.

LayerNorm, GroupNorm (exported as InstanceNormalization), Softmax and reductions overflow or lose too
much in FP16 (reported against TensorRT and onnxruntime many times over), so they stay FP32, and so do
the ``var + eps`` Add in front of each Sqrt and the channel-mean convolutions of the restorer's
LayerNorm2d. onnxruntime.transformers.float16 inserts the Casts; its output is not topologically sorted on
dynamo-exported graphs, so the graph is sorted before it is checked and saved.
"""
from __future__ import annotations

import heapq
from pathlib import Path

import onnx

from mmfir.runtime.errors import ExportError

# Op types that stay FP32 (inputs cast up, outputs cast back down).
FP32_OPS = (
    "LayerNormalization", "InstanceNormalization", "GroupNormalization", "Softmax", "LogSoftmax",
    "ReduceMean", "ReduceSum", "ReduceSumSquare", "ReduceL2", "ReduceL1", "ReduceLogSumExp", "ReduceProd",
    "GlobalAveragePool", "Pow", "Sqrt", "Exp", "Log",
)


def eps_adds_before_sqrt(graph: onnx.GraphProto) -> list[str]:
    """Names of Add nodes whose output feeds a Sqrt (the ``var + eps`` of a decomposed layer norm)."""
    sqrt_inputs = {i for n in graph.node if n.op_type == "Sqrt" for i in n.input}
    return [n.name for n in graph.node if n.op_type == "Add" and any(o in sqrt_inputs for o in n.output)]


def channel_mean_convs(graph: onnx.GraphProto) -> list[str]:
    """Names of the Conv nodes that compute a channel mean (a constant 1/C kernel of shape [1, C, 1, 1], as
    the restorer's LayerNorm2d does): kept FP32 like the ReduceMean they replace."""
    from onnx import numpy_helper

    kernels = {}
    for init in graph.initializer:
        dims = list(init.dims)
        if len(dims) == 4 and dims[0] == 1 and dims[2:] == [1, 1] and dims[1] > 1:
            w = numpy_helper.to_array(init)
            if abs(float(w.min()) - 1.0 / dims[1]) < 1e-9 and float(w.max()) == float(w.min()):
                kernels[init.name] = True
    return [n.name for n in graph.node if n.op_type == "Conv" and len(n.input) > 1 and n.input[1] in kernels]


def drop_initializer_value_info(graph: onnx.GraphProto) -> None:
    """Remove value_info entries of initializers: the converter retypes them to FP16 even where it
    kept the initializer FP32 (weights of blocked LayerNorms), which onnx.checker rejects."""
    initializers = {i.name for i in graph.initializer}
    kept = [v for v in graph.value_info if v.name not in initializers]
    del graph.value_info[:]
    graph.value_info.extend(kept)


def topological_sort(graph: onnx.GraphProto) -> None:
    """Reorder ``graph.node`` so every node comes after the producers of its inputs (stable, Kahn)."""
    produced_by = {out: idx for idx, n in enumerate(graph.node) for out in n.output if out}
    nodes = list(graph.node)
    waiting = [sum(1 for i in set(n.input) if i in produced_by) for n in nodes]
    consumers: dict[int, list[int]] = {}
    for idx, n in enumerate(nodes):
        for i in set(n.input):
            if i in produced_by:
                consumers.setdefault(produced_by[i], []).append(idx)
    ready = [idx for idx, w in enumerate(waiting) if w == 0]
    heapq.heapify(ready)
    order: list[int] = []
    while ready:
        idx = heapq.heappop(ready)
        order.append(idx)
        for c in consumers.get(idx, []):
            waiting[c] -= 1
            if waiting[c] == 0:
                heapq.heappush(ready, c)
    if len(order) != len(nodes):
        raise ExportError(f"graph {graph.name!r} has a cycle: {len(nodes) - len(order)} nodes cannot be ordered")
    del graph.node[:]
    graph.node.extend(nodes[i] for i in order)


def convert_to_fp16(src: Path, dst: Path) -> dict:
    """Write the FP16 version of ``src`` to ``dst``; returns what was kept FP32 (for the manifest)."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(src))
    keep_nodes = eps_adds_before_sqrt(model.graph) + channel_mean_convs(model.graph)
    model16 = convert_float_to_float16(model, keep_io_types=True, op_block_list=list(FP32_OPS),
                                       node_block_list=keep_nodes, disable_shape_infer=False)
    drop_initializer_value_info(model16.graph)
    topological_sort(model16.graph)
    onnx.save_model(model16, str(dst))
    present = sorted({n.op_type for n in model.graph.node} & set(FP32_OPS))
    return {"fp32_ops": present, "fp32_nodes": len(keep_nodes) + sum(
        1 for n in model.graph.node if n.op_type in FP32_OPS)}
