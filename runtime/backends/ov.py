"""`ov-cpu`: OpenVINO runtime on the bundle's FP32 ONNX graphs, FP32 or BF16 execution.

OpenVINO compiles the ONNX files directly (``Core.compile_model(path)``), keeps the dynamic batch/H/W dims, and caches
compiled blobs in ``CACHE_DIR`` so the second start is fast. Precision is an execution hint on the
FP32 graph: ``f32`` (OpenVINO's default on a BF16-capable CPU is BF16, so FP32 must be asked for)
or ``bf16`` (only where the CPU reports BF16). ``threads`` sets INFERENCE_NUM_THREADS; the restorer's
H/W and both networks' batch stay dynamic, so tiling and batching need no recompilation.

Telemetry is off: ``import openvino`` initialises ``openvino_telemetry`` for its ``ovc`` converter, which
by default (no consent file) counts as consent and writes a client id and usage stats under ``~/intel``;
events are sent only by the converter, which mmfir never calls. ``import_openvino`` imports it the way
OpenVINO's own CI opt-out works (``CI=true`` during the import: consent declined, nothing written) and
then clears the consent of the process's telemetry object, so nothing can be sent even if openvino
was imported earlier by someone else. tests/runtime/backends/test_ov.py verifies both in a fresh process.
"""
from __future__ import annotations

import functools
import importlib.util
import os
from pathlib import Path

import numpy as np

from ..cpu import bf16_support
from ..errors import BackendUnavailable
from ..files import local_or_cache
from ..spec import Precision
from .base import Backend

# INT8 runs the bundle's QDQ graph: OpenVINO executes the quantized ops in int8, the rest in f32.
_HINT = {Precision.FP32: "f32", Precision.BF16: "bf16", Precision.INT8: "f32"}


def import_openvino():
    """``openvino`` with its telemetry declined (see the module docstring)."""
    import sys

    if "openvino" not in sys.modules:
        saved = os.environ.get("CI")
        os.environ["CI"] = "true"  # openvino_telemetry declines consent in CI (its disable_in_ci switch)
        try:
            import openvino  # noqa: F401
        finally:
            if saved is None:
                del os.environ["CI"]
            else:
                os.environ["CI"] = saved
    telemetry = sys.modules.get("openvino_telemetry.main")
    instance = getattr(getattr(telemetry, "Telemetry", None), "_SingletonMetaClass__single_instance", None)
    if instance is not None:
        instance.consent = False
    return sys.modules["openvino"]


@functools.lru_cache(maxsize=1)
def _core():
    return import_openvino().Core()


def default_cache_dir(bundle_root: Path) -> Path:
    """``BUNDLE/ov_cache`` when the bundle is writable, else a per-user cache folder."""
    return local_or_cache(bundle_root, "ov_cache", "ov_cache", bundle_root.resolve().name)


def compile_config(precision: Precision, threads: int | None = None, cache_dir: Path | None = None) -> dict:
    """OpenVINO CPU properties: the precision hint (explicit f32: the default on BF16 CPUs is BF16)."""
    cfg = {"INFERENCE_PRECISION_HINT": _HINT[Precision.parse(precision)], "PERFORMANCE_HINT": "LATENCY"}
    if threads:
        cfg["INFERENCE_NUM_THREADS"] = int(threads)
    if cache_dir is not None:
        try:
            cache_dir.mkdir(parents=True, exist_ok=True)
            cfg["CACHE_DIR"] = str(cache_dir)
        except OSError:
            pass  # no cache: compile every time
    return cfg


def compile_onnx(path: str | Path, precision: Precision, threads: int | None = None, cache_dir: Path | None = None):
    """An infer request for one ONNX file (used by the backend and by export validation alike)."""
    # compiling from the path lets a cache hit skip reading the ONNX graph altogether
    return _core().compile_model(str(path), "CPU", compile_config(precision, threads, cache_dir)).create_infer_request()


def infer(request, feeds: dict[str, np.ndarray], output_names: list[str]) -> dict[str, np.ndarray]:
    request.infer({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in feeds.items()})
    return {name: np.array(request.get_tensor(name).data, dtype=np.float32, copy=True) for name in output_names}


class OpenVinoBackend(Backend):
    name = "ov-cpu"
    precisions = (Precision.FP32, Precision.BF16, Precision.INT8)
    priority = 20

    def __init__(self, bundle, precision=Precision.FP32, threads=None, cache_dir=None, **options):
        super().__init__(bundle, precision, threads, **options)
        ok, why = self.supports(self.precision)
        if not ok:
            raise BackendUnavailable(f"ov-cpu cannot run {self.precision.value} here: {why}; use --precision fp32")
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir(bundle.root)
        self._requests: dict[str, object] = {}

    @classmethod
    def available(cls) -> tuple[bool, str]:
        if importlib.util.find_spec("openvino") is None:
            return False, "OpenVINO is not installed: pip install 'mmfir[openvino]'"
        return True, ""

    @classmethod
    def supports(cls, precision) -> tuple[bool, str]:
        ok, why = super().supports(precision)
        if ok and Precision.parse(precision) == Precision.BF16:
            ok, why = bf16_support()
        return ok, why

    def _request(self, network: str):
        if network not in self._requests:
            path = self.bundle.onnx_path(network, self.precision)  # BF16: the FP32 graph with the bf16 hint
            self._requests[network] = compile_onnx(path, self.precision, self.threads, self.cache_dir)
        return self._requests[network]

    def run(self, network: str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        feeds = self.check_feeds(network, feeds)
        return infer(self._request(network), feeds, self.specs[network].output_names)

    def close(self) -> None:
        self._requests.clear()
