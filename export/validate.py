"""Export validation: graph checks on every file, then ORT CPU vs PyTorch FP32 on real photos.

Inputs are deterministic crops of scikit-image's bundled photographs. Each network is run at two
shapes that differ from the export example: the encoder at batch 1 and 3, the restorer at a batch-2
tile and at an odd-sized batch-1 crop reflect-padded to the multiple (as the runtime feeds it).
The restorer's mmf input comes from the PyTorch encoder on the same photos.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch

from mmfir.runtime.checks import Check, check_outputs
from mmfir.runtime.photos import load_photo
from mmfir.runtime.spec import ENCODER, RESTORER, NetworkSpec, Precision
from mmfir.runtime.tiling import pad_to_multiple

from .errors import ExportError

PHOTOS = ("astronaut", "coffee", "chelsea")
ODD_SIZE = (137, 171)  # not a multiple of anything useful: exercises the runtime's padding


def ort_optimization_level(precision: Precision) -> str:
    """Graph optimisation level for ORT CPU sessions: "extended" for every precision.

    FP16 ViTs crashed ORT CPU at "all" (NchwcTransformer, DESIGN pitfalls), and for FP32 "all" only
    adds the NCHWc layout transform, measured slower here: tiny restorer at 512², 2 threads,
    400 ms at "all" vs 284 ms at "extended"; base restorer and encoder unchanged (within 2 %).
    """
    Precision.parse(precision)
    return "extended"


def ort_session(path: Path, precision: Precision):
    import onnxruntime as ort

    levels = {"all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
              "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED}
    options = ort.SessionOptions()
    options.graph_optimization_level = levels[ort_optimization_level(precision)]
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def load_photos() -> list[np.ndarray]:
    """The validation photos as float32 CHW in [0, 1]."""
    return [np.ascontiguousarray(load_photo(n).transpose(2, 0, 1)) for n in PHOTOS]


def crop(image: np.ndarray, h: int, w: int) -> np.ndarray:
    _, H, W = image.shape
    top, left = (H - h) // 2, (W - w) // 2
    return image[:, top:top + h, left:left + w]


def restorer_cases(photos: list[np.ndarray], multiple: int) -> list[np.ndarray]:
    """A batch-2 tile (6 x 8 multiples) and an odd-sized crop padded to the multiple (batch 1)."""
    h, w = 6 * multiple, 8 * multiple
    tile = np.stack([crop(photos[0], h, w), crop(photos[1], h, w)])
    odd = pad_to_multiple(crop(photos[2], *ODD_SIZE)[None], multiple)
    return [tile, odd]


@torch.no_grad()
def torch_encoder(model, images: list[np.ndarray]) -> np.ndarray:
    """CLIP-preprocessed batch (torch preprocessing of the model) for a list of CHW photos."""
    return torch.cat([model.clip_input(torch.from_numpy(im)[None]) for im in images]).numpy()


@torch.no_grad()
def torch_outputs(model, spec: NetworkSpec, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    args = [torch.from_numpy(feeds[n]) for n in spec.input_names]
    if spec.name == ENCODER:
        out = model.encoder(*args)
        return {n: out[n].numpy() for n in spec.output_names}
    return {spec.output_names[0]: model.restorer(*args).numpy()}


def validation_feeds(model, specs: dict[str, NetworkSpec]) -> dict[str, list[dict[str, np.ndarray]]]:
    """Deterministic inputs per network: encoder batch 1 and 3, restorer two padded shapes."""
    photos = load_photos()
    enc_in = specs[ENCODER].input_names[0]
    enc_batch3 = torch_encoder(model, photos)
    encoder_feeds = [{enc_in: enc_batch3[:1].copy()}, {enc_in: enc_batch3}]
    image_name, mmf_name = specs[RESTORER].input_names
    restorer_feeds = []
    for images in restorer_cases(photos, specs[RESTORER].multiple):
        mmf = torch_outputs(model, specs[ENCODER], {enc_in: torch_encoder(model, list(images))})["mmf"]
        restorer_feeds.append({image_name: np.ascontiguousarray(images), mmf_name: mmf})
    return {ENCODER: encoder_feeds, RESTORER: restorer_feeds}


def shape_text(feeds: dict[str, np.ndarray]) -> str:
    return ",".join("x".join(map(str, a.shape)) for a in feeds.values())


def compare_network(spec: NetworkSpec, path: Path, precision: Precision,
                    feeds_list: list[dict[str, np.ndarray]], references: list[dict[str, np.ndarray]]) -> list[Check]:
    """ORT CPU (this precision's graph) vs the torch FP32 references at every validation shape."""
    session = ort_session(path, precision)
    checks: list[Check] = []
    for feeds, reference in zip(feeds_list, references):
        got = dict(zip(spec.output_names, session.run(spec.output_names, feeds)))
        pair = f"ort-cpu/{precision.value} vs torch/fp32 @ {shape_text(feeds)}"
        checks.extend(check_outputs(spec, reference, got, precision, pair=pair))
    return checks


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
