"""Export validation: graph checks on every file, then the runtime's own sessions vs PyTorch FP32 on photos.

Inputs are deterministic crops of scikit-image's bundled photographs, in two cases whose shapes differ
from the export example (batch 2): a batch of three tiles of 6 x 8 multiples, and one odd-sized crop
reflect-padded to the multiple as the runtime pads. For each case the pipeline values (CLIP input and
pixels) feed the bundle's graph in torch, which gives every network's reference outputs; each ONNX
network is then fed the same values by its declared sources (the restorer gets the torch encoder's
tokens), so the errors of one network never compound into another's check.

The sessions are made by the runtime's own factories (``ort_session`` with the level the runtime will
use, OpenVINO's ``compile_onnx``), so what is validated is what runs.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch

from mmfir.measure.checks import Check, check_outputs
from mmfir.measure.photos import load_photo
from mmfir.runtime.backends.ort import DEFAULT_LEVEL, ort_session, session_options
from mmfir.runtime.errors import ExportError
from mmfir.runtime.sde import spatial_sources
from mmfir.runtime.spec import CLIP_IMAGE, Graph, NetworkSpec, Precision, output_ref
from mmfir.runtime.tiling import pad_to_multiple

from .onnx_export import run_torch, torch_module

PHOTOS = ("astronaut", "coffee", "chelsea")
ODD_SIZE = (137, 171)  # not a multiple of anything useful: exercises the runtime's padding


def ort_optimization_level(precision: Precision) -> str:
    """Graph optimisation level for ORT CPU sessions: "extended" for every precision (see runtime/backends/ort.py)."""
    Precision.parse(precision)
    return DEFAULT_LEVEL


def load_photos() -> list[np.ndarray]:
    """The validation photos as float32 CHW in [0, 1]."""
    return [np.ascontiguousarray(load_photo(n).transpose(2, 0, 1)) for n in PHOTOS]


def crop(image: np.ndarray, h: int, w: int) -> np.ndarray:
    _, H, W = image.shape
    top, left = (H - h) // 2, (W - w) // 2
    return image[:, top:top + h, left:left + w]


def pixel_cases(photos: list[np.ndarray], multiple: int) -> list[np.ndarray]:
    """A batch-3 tile (6 x 8 multiples) and an odd-sized crop padded to the multiple (batch 1)."""
    h, w = 6 * multiple, 8 * multiple
    tiles = np.stack([crop(p, h, w) for p in photos])
    odd = pad_to_multiple(crop(photos[2], *ODD_SIZE)[None], multiple)
    return [np.ascontiguousarray(tiles), np.ascontiguousarray(odd)]


@torch.no_grad()
def clip_inputs(model, pixels: np.ndarray) -> np.ndarray:
    """The model's own (torch) CLIP preprocessing of a [N, 3, H, W] batch in [0, 1]."""
    return model.clip_input(torch.from_numpy(pixels)).numpy()


def torch_values(model, graph: Graph, batches) -> list[dict[str, np.ndarray]]:
    """Per [N, 3, H, W] pixel batch: the pipeline values and every network's torch FP32 outputs."""
    modules = {n: torch_module(model, graph[n]) for n in graph.order}
    run = lambda n, feeds: run_torch(modules[n], graph[n], feeds)  # noqa: E731
    return [graph.run(run, case_values(model, graph, pixels)) for pixels in batches]


def case_values(model, graph: Graph, pixels: np.ndarray) -> dict[str, np.ndarray]:
    """What the pipeline hands the graph for a pixel batch (with a sampler: states and time steps too)."""
    settings = model.cfg.diffusion.sde if model.cfg.diffusion else None
    return {CLIP_IMAGE: clip_inputs(model, pixels), **spatial_sources(graph, settings, pixels)}


def reference_values(model, graph: Graph) -> list[dict[str, np.ndarray]]:
    """Per validation case: the pipeline values and every network's torch FP32 outputs."""
    return torch_values(model, graph, pixel_cases(load_photos(), graph.multiple))


def references_of(spec: NetworkSpec, values: dict) -> dict[str, np.ndarray]:
    return {t.name: values[output_ref(spec.name, t.name)] for t in spec.outputs}


def shape_text(feeds: dict[str, np.ndarray]) -> str:
    return ",".join("x".join(map(str, a.shape)) for a in feeds.values())


def compare_network(graph: Graph, network: str, path: Path, precision: Precision, cases: list[dict],
                    run_factory, label: str) -> list[Check]:
    """One ONNX file on ``run_factory(path)`` (a feeds -> outputs callable) vs torch, at every case."""
    spec, run = graph[network], run_factory(path)
    checks: list[Check] = []
    for values in cases:
        feeds = graph.feeds(network, values)
        pair = f"{label}/{precision.value} vs torch/fp32 @ {shape_text(feeds)}"
        checks.extend(check_outputs(spec, references_of(spec, values), run(spec, feeds), precision, pair=pair))
    return checks


def ort_runner(precision: Precision):
    def factory(path: Path):
        session = ort_session(path, session_options(ort_optimization_level(precision)))
        return lambda spec, feeds: dict(zip(spec.output_names, session.run(spec.output_names, feeds)))
    return factory


def openvino_runner(precision: Precision):
    from mmfir.runtime.backends.ov import compile_onnx, infer

    def factory(path: Path):
        request = compile_onnx(path, precision)
        return lambda spec, feeds: infer(request, feeds, spec.output_names)
    return factory


def check_graph_file(path: Path, spec: NetworkSpec, opset: int) -> None:
    """onnx.checker (full: strict shape inference) + the graph's interface against the spec."""
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as err:
        first = (str(err).strip().splitlines() or ["invalid"])[0]
        raise ExportError(f"{path.name} fails onnx.checker: {first}") from None
    model = onnx.load(str(path), load_external_data=False)
    problems = interface_problems(model, spec, opset)
    if problems:
        raise ExportError(f"{path.name} does not match the {spec.name} spec: " + "; ".join(problems))


def interface_problems(model: onnx.ModelProto, spec: NetworkSpec, opset: int) -> list[str]:
    problems = []
    version = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if version != opset:
        problems.append(f"opset {version} != requested {opset}")
    initializers = {i.name for i in model.graph.initializer}
    inputs = [v for v in model.graph.input if v.name not in initializers]
    for label, values, tensors in (("inputs", inputs, spec.inputs), ("outputs", model.graph.output, spec.outputs)):
        if [v.name for v in values] != [t.name for t in tensors]:
            problems.append(f"{label} {[v.name for v in values]} != {[t.name for t in tensors]}")
            continue
        for v, t in zip(values, tensors):
            if value_shape(v) != list(t.shape) or v.type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
                problems.append(f"{v.name} is {value_shape(v)} of type {v.type.tensor_type.elem_type}, "
                                f"spec says {list(t.shape)} float32")
    return problems


def value_shape(value: onnx.ValueInfoProto) -> list:
    return [d.dim_param if d.dim_param else d.dim_value for d in value.type.tensor_type.shape.dim]
