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
was imported earlier by someone else. tests/test_openvino.py verifies both in a fresh process.
"""
from __future__ import annotations

import functools
import importlib.util
import os
from pathlib import Path

import numpy as np

from ..errors import BackendUnavailable
from ..spec import Precision
from .base import Backend

_HINT = {Precision.FP32: "f32", Precision.BF16: "bf16"}


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


def _core():
    return import_openvino().Core()


@functools.lru_cache(maxsize=1)
def cpu_supports_bf16() -> bool:
    try:
        return "BF16" in _core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    except Exception:  # noqa: BLE001 - any failure means "no"
        return False


def default_cache_dir(bundle_root: Path) -> Path:
    """``BUNDLE/ov_cache`` when writable, else a per-user cache folder."""
    local = bundle_root / "ov_cache"
    if os.access(bundle_root, os.W_OK):
        return local
    base = Path(os.environ.get("MMFIR_CACHE", Path.home() / ".cache" / "mmfir"))
    return base / "ov_cache" / bundle_root.resolve().name


class OpenVinoBackend(Backend):
    name = "ov-cpu"
    precisions = (Precision.FP32, Precision.BF16)

    def __init__(self, bundle, precision=Precision.FP32, threads=None, cache_dir=None, **options):
        super().__init__(bundle, precision, threads, **options)
        if self.precision == Precision.BF16 and not cpu_supports_bf16():
            raise BackendUnavailable("ov-cpu bf16 needs a CPU with BF16 support (AVX512_BF16 or AMX); "
                                     "this CPU has none: use --precision fp32")
        self.core = _core()
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir(bundle.root)
        self._compiled: dict[str, object] = {}
        self._requests: dict[str, object] = {}

    @classmethod
    def available(cls) -> tuple[bool, str]:
        if importlib.util.find_spec("openvino") is None:
            return False, "OpenVINO is not installed: pip install 'mmfir[openvino]'"
        return True, ""

    def _config(self) -> dict:
        cfg = {"INFERENCE_PRECISION_HINT": _HINT[self.precision], "PERFORMANCE_HINT": "LATENCY"}
        if self.threads:
            cfg["INFERENCE_NUM_THREADS"] = int(self.threads)
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            cfg["CACHE_DIR"] = str(self.cache_dir)
        except OSError:
            pass  # no cache: compile every time
        return cfg

    def _request(self, network: str):
        if network not in self._requests:
            path = self.bundle.onnx_path(network, Precision.FP32)  # BF16 is an execution hint on FP32
            # compiling from the path lets a cache hit skip reading the ONNX graph altogether
            compiled = self.core.compile_model(str(path), "CPU", self._config())
            self._compiled[network] = compiled
            self._requests[network] = compiled.create_infer_request()
        return self._requests[network]

    def run(self, network: str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        feeds = self.check_feeds(network, feeds)
        request = self._request(network)
        request.infer(feeds)
        return {name: np.array(request.get_tensor(name).data, dtype=np.float32, copy=True)
                for name in self.specs[network].output_names}

    def close(self) -> None:
        self._requests.clear()
        self._compiled.clear()


def check_onnx_file(path, spec, feeds_list, reference, precision=Precision.BF16, threads=None) -> list:
    """Export-validation hook: OpenVINO on one ONNX file vs a reference, per ``precision``'s contract.

    ``reference(feeds) -> outputs`` (e.g. torch FP32 on the same feeds); returns every Check (see
    runtime/checks.py). BF16 on a CPU without BF16 is a BackendUnavailable error, never a silent FP32 run.
    """
    from ..checks import check_outputs

    precision = Precision.parse(precision)
    if precision == Precision.BF16 and not cpu_supports_bf16():
        raise BackendUnavailable("OpenVINO BF16 validation needs a CPU with BF16 support (AVX512_BF16 or AMX)")
    config = {"INFERENCE_PRECISION_HINT": _HINT[precision], **({"INFERENCE_NUM_THREADS": threads} if threads else {})}
    request = _core().compile_model(str(path), "CPU", config).create_infer_request()
    checks = []
    for feeds in feeds_list:
        request.infer({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in feeds.items()})
        got = {n: np.array(request.get_tensor(n).data, copy=True) for n in spec.output_names}
        shapes = ",".join("x".join(map(str, v.shape)) for v in feeds.values())
        checks += check_outputs(spec, reference(feeds), got, precision,
                                pair=f"ov-cpu/{precision.value} vs torch/fp32 @ {shapes}")
    return checks
