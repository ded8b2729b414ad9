"""`ov-cpu`: OpenVINO runtime on the bundle's FP32 ONNX graphs, FP32 or BF16 execution.

OpenVINO compiles the ONNX files directly (``Core.compile_model(path)``), keeps the dynamic batch/H/W dims, and caches
compiled blobs in ``CACHE_DIR`` so the second start is fast. Precision is an execution hint on the
FP32 graph: ``f32`` (OpenVINO's default on a BF16-capable CPU is BF16, so FP32 must be asked for)
or ``bf16`` (only where the CPU reports BF16). ``threads`` sets INFERENCE_NUM_THREADS; the restorer's
H/W and both networks' batch stay dynamic, so tiling and batching need no recompilation.

Static shapes for shapes that repeat: OpenVINO runs a dynamic-shape model slower than the same model
compiled for one shape: only a static model gets its "snippets", element-wise chains fused into one
generated kernel (79 ``Subgraph`` nodes in tiny's static restorer, none in the dynamic one), and it
skips shape inference and memory planning on every call. The first call at a shape runs the dynamic model; the second call at the same shape
compiles the network for exactly that shape (0.5 s for tiny's restorer, in memory, not in CACHE_DIR)
and every later call uses it. One-off shapes (a batch of photos of different sizes) cost nothing;
tiles, served sizes and benchmarks get the static model. At most ``STATIC_SHAPES`` shapes per network
are kept (least recently used goes). Measured on the restorer at 512², one process alternating static
and dynamic (AMD EPYC Zen 4, 2 cores; ``python benchmarks/ov_static_shapes.py BUNDLE``): tiny FP32
1.13x faster static, BF16 1.32x, FP32 under ``MMFIR_CPU_ISA=avx2`` 1.17x; base FP32 0.99x (its time is
in large FP32 convolutions, which do not care) but INT8 1.20x and BF16 1.17x, where the convolutions
run fast enough for the rest to show; DA-CLIP's denoiser FP32 1.01x (256²). Outputs 1.3e-6 apart. The
price is memory, a second compiled copy of the network: tiny's bench peak RSS 510 -> 623 MB, base's
2453 -> 4125 MB with static copies of all its graphs (the 733 MB encoder included). So only graphs up
to ``STATIC_MAX_BYTES`` get static models: 64 MB of ONNX and weights in FP32 (tiny's networks), 160 MB
in BF16 and INT8 (also base's restorer; never base's encoder or DA-CLIP's denoiser).
``static_shapes=False`` (a backend option) turns it off everywhere.
Under an ISA cap the model cache lives in a subfolder of its own.

Telemetry is off: ``import openvino`` initialises ``openvino_telemetry`` for its ``ovc`` converter, which
by default (no consent file) counts as consent and writes a client id and usage stats under ``~/intel``;
events are sent only by the converter, which mmfir never calls. ``import_openvino`` imports it the way
OpenVINO's own CI opt-out works (``CI=true`` during the import: consent declined, nothing written) and
then clears the consent of the process's telemetry object, so nothing can be sent even if openvino
was imported earlier by someone else. tests/runtime/backends/test_ov.py verifies both in a fresh process.
"""
from __future__ import annotations

import collections
import functools
import importlib.util
import logging
import os
from pathlib import Path

import numpy as np

from ..cpu import bf16_support, isa_cap
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
    """``BUNDLE/ov_cache`` when the bundle is writable, else a per-user cache folder; under an ISA cap
    (``MMFIR_CPU_ISA``) a subfolder of its own, so capped and full-ISA compilations never share blobs."""
    folder = local_or_cache(bundle_root, "ov_cache", "ov_cache", bundle_root.resolve().name)
    return folder / f"isa-{cap}" if (cap := isa_cap()) else folder


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


STATIC_SHAPES = 3
# Largest graph (ONNX + weights) that gets static models, per precision: above it a second compiled copy
# costs its size again for too little (measured, see the module docstring).
STATIC_MAX_BYTES = {Precision.FP32: 64 << 20, Precision.BF16: 160 << 20, Precision.INT8: 160 << 20}
log = logging.getLogger(__name__)  # the CLI shows mmfir.* warnings as one line


class OpenVinoBackend(Backend):
    name = "ov-cpu"
    precisions = (Precision.FP32, Precision.BF16, Precision.INT8)
    priority = 20

    def __init__(self, bundle, precision=Precision.FP32, threads=None, cache_dir=None, static_shapes=True,
                 **options):
        super().__init__(bundle, precision, threads, **options)
        self.static_shapes = bool(static_shapes)
        self._static: collections.OrderedDict[tuple, object] = collections.OrderedDict()
        self._seen: collections.Counter[tuple] = collections.Counter()
        self._sizes: dict[str, int] = {}
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

    def _onnx_bytes(self, network: str) -> int:
        if network not in self._sizes:
            path = Path(self.bundle.onnx_path(network, self.precision))
            data = path.with_name(path.name + ".data")  # external weights, where the graph has them
            self._sizes[network] = path.stat().st_size + (data.stat().st_size if data.exists() else 0)
        return self._sizes[network]

    def _static_request(self, network: str, feeds: dict[str, np.ndarray]):
        """The request compiled for these feeds' exact shapes once that shape is seen a second time; else None."""
        key = (network, *sorted((name, tuple(np.shape(v))) for name, v in feeds.items()))
        if key in self._static:
            self._static.move_to_end(key)
            return self._static[key]
        if self._onnx_bytes(network) > STATIC_MAX_BYTES[self.precision]:
            return None
        self._seen[key] += 1
        if self._seen[key] < 2:
            return None
        try:
            model = _core().read_model(str(self.bundle.onnx_path(network, self.precision)))
            model.reshape({name: list(shape) for name, shape in key[1:]})
            config = compile_config(self.precision, self.threads)  # no CACHE_DIR: a blob per shape would pile up
            request = _core().compile_model(model, "CPU", config).create_infer_request()
        except RuntimeError as err:  # the dynamic model still runs: keep it, say why once
            log.warning(f"ov-cpu: {network} at a static shape did not compile ({str(err).splitlines()[0]}); "
                        "running the dynamic-shape model")
            self.static_shapes = False
            return None
        mine = [k for k in self._static if k[0] == network]
        if len(mine) >= STATIC_SHAPES:
            del self._static[mine[0]]  # this network's least recently used shape
        if len(self._seen) > 10_000:  # a long stream of one-off shapes
            self._seen.clear()
        self._static[key] = request
        return request

    def run(self, network: str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        feeds = self.check_feeds(network, feeds)
        request = self._static_request(network, feeds) if self.static_shapes else None
        return infer(self._request(network) if request is None else request, feeds, self.specs[network].output_names)

    def close(self) -> None:
        self._requests.clear()
        self._static.clear()
        self._seen.clear()
