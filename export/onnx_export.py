"""torch -> ONNX (torch.onnx dynamo exporter), I/O named by the runtime's NetworkSpec, and the table of
which torch module, export wrapper and example inputs belong to each network.

``TORCH_NETWORKS`` is that table: export, export validation and the torch reference backend all run a
network through it (``torch_module(model, spec)``: inputs in spec order in, outputs in spec order out),
so a new network is one entry here plus its spec.

Pitfalls handled here (measured with torch's dynamo exporter): a batch-1 example silently fixes the
batch axis, so the examples have batch 2 and distinct H != W; ``dynamic_shapes`` declares every dynamic
axis of the spec; the restorer's H and W are multiples of ``spec.multiple`` (the runtime pads);
``external_data=False`` for single-file graphs.
"""
from __future__ import annotations

import contextlib
import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import onnx
import torch
from torch import nn

from mmfir.models.restorer import inference_form
from mmfir.runtime.spec import DENOISER, ENCODER, RESTORER, NetworkSpec

EXAMPLE_BATCH = 2  # >= 2, or the exporter fixes the batch axis to 1


class EncoderExport(nn.Module):
    """CLIP-preprocessed image -> the encoder's outputs as a tuple in spec order."""

    def __init__(self, encoder: nn.Module, output_names: list[str]):
        super().__init__()
        self.encoder = encoder
        self.output_names = list(output_names)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.encoder(image)
        return tuple(out[name] for name in self.output_names)


class RestorerExport(nn.Module):
    """(degraded image, mmf tokens) -> restored image; H and W already padded to the multiple."""

    def __init__(self, restorer: nn.Module):
        super().__init__()
        self.restorer = restorer

    def forward(self, image: torch.Tensor, mmf: torch.Tensor) -> torch.Tensor:
        return self.restorer(image, mmf)


class DenoiserExport(nn.Module):
    """(state, degraded image, time step, degradation and content embeddings) -> predicted noise."""

    def __init__(self, denoiser: nn.Module):
        super().__init__()
        self.denoiser = denoiser

    def forward(self, xt: torch.Tensor, cond: torch.Tensor, time: torch.Tensor, text_context: torch.Tensor,
                image_context: torch.Tensor) -> torch.Tensor:
        return self.denoiser(xt, cond, time, text_context, image_context)


def encoder_example(spec: NetworkSpec) -> tuple[torch.Tensor]:
    shape = [EXAMPLE_BATCH if isinstance(d, str) else d for d in spec.inputs[0].shape]
    return (torch.randn(*shape, generator=torch.Generator().manual_seed(0)),)


def spatial_example(spec: NetworkSpec) -> tuple[torch.Tensor, ...]:
    """Every input at batch 2, H = 4 * multiple, W = 5 * multiple (H != W so neither is specialised)."""
    g = torch.Generator().manual_seed(0)
    m = spec.multiple
    sizes = {"batch": EXAMPLE_BATCH, "height": 4 * m, "width": 5 * m}
    tensors = []
    for t in spec.inputs:
        shape = [sizes[d] if isinstance(d, str) else d for d in t.shape]
        tensors.append(torch.rand(*shape, generator=g))
    return tuple(tensors)


@dataclass(frozen=True)
class TorchNetwork:
    """How one network of an MMFIR model is run from torch and exported."""

    module: Callable[[nn.Module, NetworkSpec], nn.Module]   # (model, spec) -> wrapper in spec order
    example: Callable[[NetworkSpec], tuple]                  # spec -> example inputs for the exporter
    # (model, spec) -> the wrapper that is exported: the same function in a form the ONNX runtimes run
    # faster (folded weights); validation compares it with ``module``. None: export ``module`` itself.
    exported: Callable[[nn.Module, NetworkSpec], nn.Module] | None = None


TORCH_NETWORKS: dict[str, TorchNetwork] = {
    ENCODER: TorchNetwork(lambda model, spec: EncoderExport(model.encoder, spec.output_names), encoder_example),
    RESTORER: TorchNetwork(lambda model, spec: RestorerExport(model.restorer), spatial_example,
                           lambda model, spec: RestorerExport(inference_form(model.restorer))),
    DENOISER: TorchNetwork(lambda model, spec: DenoiserExport(model.denoiser), spatial_example),
}


def torch_module(model: nn.Module, spec: NetworkSpec) -> nn.Module:
    """The network as trained (the torch reference of compare and validation)."""
    return TORCH_NETWORKS[spec.name].module(model, spec)


def export_module(model: nn.Module, spec: NetworkSpec) -> nn.Module:
    """The module written to ONNX: the inference form where the network declares one."""
    network = TORCH_NETWORKS[spec.name]
    return (network.exported or network.module)(model, spec)


@torch.no_grad()
def run_torch(module: nn.Module, spec: NetworkSpec, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """One network (a ``torch_module``) on numpy feeds; float32 numpy outputs keyed by the spec's names."""
    out = module(*(torch.from_numpy(np.ascontiguousarray(feeds[n], dtype=np.float32)) for n in spec.input_names))
    out = out if isinstance(out, tuple) else (out,)
    return {name: t.detach().float().numpy() for name, t in zip(spec.output_names, out)}


def dynamic_shapes(spec: NetworkSpec) -> dict[str, dict[int, object]]:
    """torch.export Dims for every named axis of the spec's inputs; spatial axes as multiple * Dim."""
    dims: dict[str, object] = {}
    out: dict[str, dict[int, object]] = {}
    for t in spec.inputs:
        axes = {}
        for i, name in t.dynamic_axes.items():
            if name not in dims:
                spatial = spec.multiple > 1 and len(t.shape) == 4 and i >= 2  # NCHW image: H, W
                dim = torch.export.Dim(f"{name}_blocks" if spatial else name, min=1)
                dims[name] = spec.multiple * dim if spatial else dim
            axes[i] = dims[name]
        out[t.name] = axes
    return out


def export_network(module: nn.Module, example: tuple, spec: NetworkSpec, path: Path, opset: int) -> Path:
    """Export ``module`` to a single-file ONNX graph at ``path`` with the spec's names and dynamic axes."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            module.eval(), example, dynamo=True, input_names=spec.input_names, output_names=spec.output_names,
            dynamic_shapes=dynamic_shapes(spec), opset_version=opset, external_data=False, optimize=True,
            verbose=False)
    model = program.model_proto
    name_dynamic_axes(model, spec)
    model.doc_string = f"mmfir {spec.name}"
    onnx.save_model(model, str(path))
    return path


def name_dynamic_axes(model: onnx.ModelProto, spec: NetworkSpec) -> None:
    """Rename the exporter's axis names (e.g. ``16*height_blocks``) to the spec's (``height``), graph-wide."""
    rename: dict[str, str] = {}
    graph_io = {v.name: v for v in list(model.graph.input) + list(model.graph.output)}
    for t in spec.inputs + spec.outputs:
        dims = graph_io[t.name].type.tensor_type.shape.dim
        for i, name in t.dynamic_axes.items():
            if dims[i].dim_param and dims[i].dim_param != name:
                rename[dims[i].dim_param] = name
    for value in list(model.graph.input) + list(model.graph.output) + list(model.graph.value_info):
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param in rename:
                dim.dim_param = rename[dim.dim_param]
