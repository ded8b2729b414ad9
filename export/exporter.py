"""``export_bundle``: checkpoint (or in-memory model) -> validated bundle directory.

Everything is written into a temporary sibling of the output folder and renamed into place at the
end, so an interrupted or failed export leaves nothing half-written. An existing bundle is replaced
only with ``force=True`` and only after the new one passed validation. A bundle that fails
validation is still written (marked ``"valid": false``, which ``Bundle.open`` refuses) so it can be
inspected: into the output folder when that was free, else beside it as ``OUT.invalid``.
"""
from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

from mmfir.runtime.bundle import MANIFEST, Bundle
from mmfir.runtime.errors import ExportError, ExportValidationError, UsageError
from mmfir.runtime.files import make_staging_dir as staging_sibling
from mmfir.runtime.files import replace_dir, sha256_file
from mmfir.runtime.progress import step_log
from mmfir.runtime.spec import Graph, Precision, network_specs

from .manifest import manifest_for, write_manifest

log = logging.getLogger(__name__)

DEFAULT_OPSET = 18
# torch's dynamo exporter emits opset 18 at the lowest (it silently keeps 18 when asked for 17);
# 18-23 export, pass onnx.checker and load in onnxruntime (tests/export/test_exporter.py checks the bounds).
OPSETS = range(18, 24)


def check_opset(opset: int) -> int:
    if int(opset) not in OPSETS:
        raise ExportError(f"opset {opset} is not supported (choose {OPSETS.start}..{OPSETS.stop - 1}; "
                          f"torch's exporter emits >= {OPSETS.start})")
    return int(opset)


def is_occupied(path: Path) -> bool:
    return path.is_dir() and any(path.iterdir())


def check_destination(out: Path, force: bool) -> None:
    """Refuse before any work: a file in the way, a non-empty folder without force, or a non-bundle."""
    if out.exists() and not out.is_dir():
        raise ExportError(f"--out {out} is a file, not a folder; choose another output folder")
    if not is_occupied(out):
        return
    if not force:
        raise ExportError(f"output folder {out} is not empty; pass --force to replace it (nothing was written)")
    if not (out / MANIFEST).is_file():
        raise ExportError(f"output folder {out} is not empty and is not an mmfir bundle; refusing to replace it "
                          "even with --force (choose an empty or new folder)")


def make_staging_dir(out: Path) -> Path:
    """A temporary sibling of ``out`` (same file system, so the final rename is atomic)."""
    try:
        return staging_sibling(out)
    except OSError as err:
        raise ExportError(f"cannot write the bundle to {out}: {err.strerror or err} "
                          "(choose a writable output folder)") from None


def publish(staging: Path, out: Path, valid: bool) -> Path:
    """Rename the finished bundle into place (see the module docstring for where an invalid one goes)."""
    target = out if valid or not is_occupied(out) else out.with_name(out.name + ".invalid")
    if target != out and is_occupied(target) and not (target / MANIFEST).is_file():
        raise ExportError(f"validation failed and {target}, where the invalid bundle would go, is not an mmfir "
                          "bundle: move it away and export again")
    replace_dir(staging, target)
    return target


def resolve_model(checkpoint_or_model) -> tuple[object, dict | None]:
    """(model in eval mode, checkpoint record or None) from a path or an in-memory MMFIR model."""
    from mmfir.models import MMFIR, load_checkpoint

    if isinstance(checkpoint_or_model, MMFIR):
        if any(p.device.type != "cpu" for p in checkpoint_or_model.parameters()):
            raise ExportError("export needs the model on the CPU: pass model.cpu() (or a checkpoint path)")
        return checkpoint_or_model, None
    if not isinstance(checkpoint_or_model, (str, Path)):
        raise ExportError(f"expected a checkpoint path or an MMFIR model, got {type(checkpoint_or_model).__name__}")
    path = Path(checkpoint_or_model)
    model, meta = load_checkpoint(path)
    record = {"path": str(path.resolve()), "sha256": sha256_file(path),
              "metadata": {k: v for k, v in meta.items() if k not in ("format", "config")}}
    return model, record


def untrained_warning(record: dict | None) -> str | None:
    if record and str(record["metadata"].get("restorer_untrained", "")).lower() == "true":
        return ("the checkpoint's restorer is untrained (restorer_untrained=true, e.g. a DA-CLIP import): "
                "the bundle runs, but restored images are not meaningful until the restorer is trained")
    return None


def export_bundle(checkpoint_or_model, out_dir, *, fp16: bool = True, int8: bool = False, opset: int = DEFAULT_OPSET,
                  force: bool = False, progress: bool = True) -> Bundle:
    """Export a checkpoint (path) or an in-memory MMFIR model to a validated bundle at ``out_dir``.

    ``int8`` adds INT8 QDQ graphs, calibrated on real photos (``export/quantize.py``) and validated under
    the INT8 contract like the others.

    Raises ExportValidationError (after writing the bundle marked invalid) when ORT disagrees with
    PyTorch beyond the accuracy contract, and MmfirError subclasses for bad input.
    """
    start = time.perf_counter()
    opset, out = check_opset(opset), Path(out_dir)
    check_destination(out, force)
    is_path = isinstance(checkpoint_or_model, (str, Path))
    step_log(f"loading {checkpoint_or_model}" if is_path else "exporting the in-memory model", progress)
    model, record = resolve_model(checkpoint_or_model)
    warning = untrained_warning(record)
    if warning:
        log.warning(warning)
    precisions = [Precision.FP32] + ([Precision.FP16] if fp16 else []) + ([Precision.INT8] if int8 else [])
    if int8 and model.cfg.diffusion is not None:
        raise UsageError("--int8 is not available for diffusion restorers yet (no calibration of the sampler's "
                         "states); export FP32/FP16")
    manifest, target = staged_export(model, record, out, precisions, opset, progress,
                                     warnings=[warning] if warning else [], start=start)
    step_log(f"bundle written to {target} in {manifest['export_seconds']:.1f}s", progress)
    if not manifest["valid"]:
        raise ExportValidationError(failed_checks(manifest), target)
    return Bundle.open(target)


def staged_export(model, record, out: Path, precisions: list[Precision], opset: int, progress: bool, *,
                  warnings: list[str], start: float) -> tuple[dict, Path]:
    """Build the bundle in a temporary sibling of ``out`` and rename it into place; nothing stays behind."""
    staging = make_staging_dir(out)
    try:
        manifest = build_bundle(model, record, staging, precisions, opset, progress)
        manifest["warnings"] = warnings
        manifest["export_seconds"] = round(time.perf_counter() - start, 2)
        write_manifest(staging, manifest)
        return manifest, publish(staging, out, manifest["valid"])
    except OSError as err:
        shutil.rmtree(staging, ignore_errors=True)
        raise ExportError(f"writing the bundle failed: {err} (check free space and permissions of {out.parent})") \
            from err
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def build_bundle(model, record: dict | None, folder: Path, precisions: list[Precision], opset: int,
                 progress: bool) -> dict:
    """Export, convert, check and validate into ``folder``; returns the manifest (without files)."""
    from .validate import check_graph_file

    graph = Graph(network_specs(model.cfg.to_dict()))
    with prepared(model):
        fp16_info = write_graphs(model, graph, folder, precisions, opset, progress)
        int8_info = write_int8_graphs(model, graph, folder, progress) if Precision.INT8 in precisions else None
        for name in graph.order:
            for p in precisions:
                check_graph_file(folder / graph[name].onnx_file(p), graph[name], opset)
        step_log("onnx.checker and shape inference passed on every file", progress)
        validation = run_validation(model, graph, folder, precisions, progress)
    return manifest_for(model, record, graph.specs, opset, validation, fp16_info, int8_info)


def write_graphs(model, graph: Graph, folder: Path, precisions: list[Precision], opset: int, progress: bool) -> dict:
    from .fp16 import convert_to_fp16
    from .onnx_export import TORCH_NETWORKS, export_module, export_network

    fp16_info = {}
    for name in graph.order:
        spec = graph[name]
        step_log(f"exporting {name} to ONNX (opset {opset}, torch.onnx dynamo)", progress)
        path = folder / spec.onnx_file(Precision.FP32)
        try:
            export_network(export_module(model, spec), TORCH_NETWORKS[name].example(spec), spec, path, opset)
        except Exception as err:  # the exporter's many error types: one line, cause kept for --verbose
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise ExportError(f"torch.onnx export of the {name} failed: {type(err).__name__}: {first}") from err
        if Precision.FP16 in precisions:
            step_log(f"converting {name} to FP16 (LayerNorm, Softmax, reductions kept FP32)", progress)
            fp16_info[name] = convert_to_fp16(path, folder / spec.onnx_file(Precision.FP16))
    return fp16_info


def write_int8_graphs(model, graph: Graph, folder: Path, progress: bool) -> dict:
    """INT8 QDQ graphs of the spatial networks, calibrated on real photos; the per-image networks' INT8 file
    is their FP32 graph (see export/quantize.py). Returns the manifest's record."""
    from . import quantize

    step_log("calibrating INT8 on real photos (not the validation photos)", progress)
    feeds = quantize.calibration_feeds(model, graph)
    networks = {}
    for name in graph.order:
        src, dst = folder / graph[name].onnx_file(Precision.FP32), folder / graph[name].onnx_file(Precision.INT8)
        if name in graph.spatial:
            step_log(f"quantizing {name} to INT8 (QDQ; {'/'.join(quantize.QUANTIZED_OPS)} per channel)", progress)
            networks[name] = quantize.quantize_graph(src, dst, feeds[name])
        else:
            shutil.copyfile(src, dst)
            networks[name] = {"quantized_nodes": 0, "kept_fp32": "whole network (see export/quantize.py)"}
    return {**quantize.settings(), "networks": networks}


class prepared:
    """Context: model in eval mode with the class text embeddings cached; restored afterwards."""

    def __init__(self, model):
        self.model = model

    def __enter__(self):
        self.training = self.model.training
        self.had_cache = self.model.encoder._class_text_cache is not None
        self.model.eval()
        self.model.encoder.cache_class_text(True)
        return self.model

    def __exit__(self, *exc):
        if not self.had_cache:
            self.model.encoder.cache_class_text(False)
        self.model.train(self.training)
        return False


def run_validation(model, graph: Graph, folder: Path, precisions: list[Precision], progress: bool) -> dict:
    from .validate import compare_network, ort_optimization_level, ort_runner, reference_values

    cases = reference_values(model, graph)
    checks = []
    for p in precisions:
        for name in graph.order:
            step_log(f"validating {name} {p.value}: onnxruntime CPU vs PyTorch FP32 on photos", progress)
            checks += compare_network(graph, name, folder / graph[name].onnx_file(p), p, cases, ort_runner(p),
                                      "ort-cpu")
    ov_checks, ov_notes = openvino_validation(graph, folder, cases, precisions, progress)
    checks += ov_checks
    failed = [c for c in checks if not c.passed]
    bounded = [c for c in checks if c.bound is not None]
    summary = (f"all {len(bounded)} checks passed" if not failed else
               f"{len(failed)} of {len(bounded)} checks failed: " + "; ".join(str(c) for c in failed))
    step_log(f"validation: {summary}", progress)
    return {"passed": not failed, "summary": summary, "checks": [c.to_json() for c in checks],
            "shapes": {n: [{k: list(v.shape) for k, v in graph.feeds(n, c).items()} for c in cases]
                       for n in graph.order},
            "ort_graph_optimization": {p.value: ort_optimization_level(p) for p in precisions},
            "bf16": ov_notes[Precision.BF16.value],
            "openvino": ov_notes,
            "reference": "torch/fp32 on scikit-image photos (astronaut, coffee, chelsea)"}


def openvino_validation(graph: Graph, folder: Path, cases: list[dict], precisions: list[Precision],
                        progress: bool) -> tuple[list, dict[str, str]]:
    """OpenVINO vs PyTorch FP32 where it runs: BF16 on the FP32 graphs (CPUs with BF16), INT8 on the QDQ
    graphs when exported; each under its precision's contract. Returns (checks, note per precision)."""
    from mmfir.runtime.backends.ov import OpenVinoBackend

    from .validate import compare_network, openvino_runner

    checks, notes = [], {}
    for p in [Precision.BF16] + [q for q in precisions if q == Precision.INT8]:
        ok, why = OpenVinoBackend.supports(p)
        if not ok:
            notes[p.value] = f"not checked: {why}"
            continue
        for name in graph.order:
            step_log(f"validating {name} {p.value}: OpenVINO CPU vs PyTorch FP32 on photos", progress)
            checks += compare_network(graph, name, folder / graph[name].onnx_file(p.graph), p, cases,
                                      openvino_runner(p), "ov-cpu")
        notes[p.value] = f"checked with OpenVINO (ov-cpu/{p.value})"
    return checks, notes


def failed_checks(manifest: dict):
    from mmfir.measure.checks import Check

    return [Check(**c) for c in manifest["validation"]["checks"] if not c["passed"]]
