"""onnxruntime backends: ``ort-cpu`` (FP32 or FP16 graph), ``ort-cuda`` and ``ort-trt`` (onnxruntime-gpu).

Sessions are created lazily, one per network, from the bundle's hash-checked ONNX file, by
``ort_session`` (export validation creates its sessions with the same function, so what was validated
is what runs). A requested execution provider that onnxruntime dropped (it falls back to CPU silently
when a provider library cannot load) is a BackendUnavailable error, never a silent fallback.

Options (``create_backend(..., **options)``):
  optimization: "all" | "extended" | "basic" | "disable" (default: the level export validated with, from
                the manifest; else "extended": "all" only adds the NCHWc layout transform, which crashed
                ORT CPU on an FP16 ViT and made the tiny FP32 restorer 29 % slower here: 400 -> 284 ms
                at 512², 2 threads; base restorer and encoder unchanged within 2 %)
  disabled_optimizers: list of ORT optimizer names to switch off (e.g. ["NchwcTransformer"])
  mem_pattern: bool (default False: halves peak memory on dynamic tile shapes, same speed)
  inter_op_threads: int; provider_options: dict merged into the requested provider's options
"""
from __future__ import annotations

import base64
import functools
import importlib.metadata
import importlib.util
from pathlib import Path

import numpy as np

from ..errors import BackendUnavailable, UsageError
from ..spec import Precision
from .base import Backend

# A 69-byte ONNX model (y = Identity(x)) used to check that a provider really loads.
_PROBE_MODEL = base64.b64decode("CAg6OwoQCgF4EgF5IghJZGVudGl0eRIFcHJvYmVaDwoBeBIKCggIARIECgIIAWIPCgF5EgoK"
                                "CAgBEgQKAggBQgQKABAR")
LEVELS = ("disable", "basic", "extended", "all")
DEFAULT_LEVEL = "extended"


def _ort():
    import onnxruntime

    return onnxruntime


@functools.lru_cache(maxsize=None)
def provider_status(provider: str) -> tuple[bool, str]:
    """(usable, reason): onnxruntime-gpu installed, the provider listed, and a session really gets it."""
    if importlib.util.find_spec("onnxruntime") is None:
        return False, "onnxruntime is not installed (pip install onnxruntime)"
    if provider == "CPUExecutionProvider":
        return True, ""
    try:
        importlib.metadata.version("onnxruntime-gpu")
    except importlib.metadata.PackageNotFoundError:
        return False, "onnxruntime-gpu is not installed (pip install 'mmfir[gpu]')"
    ort = _ort()
    if provider not in ort.get_available_providers():
        return False, f"onnxruntime does not list {provider} (providers: {', '.join(ort.get_available_providers())})"
    try:
        opts = ort.SessionOptions()
        opts.log_severity_level = 4
        session = ort.InferenceSession(_PROBE_MODEL, opts, providers=[provider, "CPUExecutionProvider"])
    except Exception as err:  # noqa: BLE001 - any failure means the provider cannot be used
        return False, f"{provider} failed to load: {str(err).splitlines()[0] if str(err) else type(err).__name__}"
    if provider not in session.get_providers():
        return False, f"{provider} is listed but does not load (missing CUDA/cuDNN/TensorRT libraries or no GPU)"
    return True, ""


def session_options(level: str = DEFAULT_LEVEL, threads: int | None = None, mem_pattern: bool = False,
                    inter_op_threads: int | None = None):
    ort = _ort()
    level = str(level).lower()
    if level not in LEVELS:
        raise UsageError(f"unknown onnxruntime optimization level {level!r}; choose one of {', '.join(LEVELS)}")
    opts = ort.SessionOptions()
    opts.graph_optimization_level = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}[level]
    if threads:
        opts.intra_op_num_threads = int(threads)
    # ORT's memory pattern pre-plans one block per input shape: with dynamic tile shapes it doubled peak
    # RSS (4 x 512² restorer tiles: 1.6 GB -> 0.85 GB without it) at the same speed on this CPU
    opts.enable_mem_pattern = bool(mem_pattern)
    if inter_op_threads:
        opts.inter_op_num_threads = int(inter_op_threads)
    opts.log_severity_level = 3
    return opts


def ort_session(path: str | Path, options=None, providers=None, disabled_optimizers=None):
    """An InferenceSession on ``path``; the first requested provider must really be active."""
    options = options if options is not None else session_options()
    providers = providers or ["CPUExecutionProvider"]
    kwargs = {"disabled_optimizers": list(disabled_optimizers)} if disabled_optimizers else {}
    session = _ort().InferenceSession(str(path), options, providers=providers, **kwargs)
    wanted = providers[0][0] if isinstance(providers[0], tuple) else providers[0]
    if wanted not in session.get_providers():
        raise BackendUnavailable(f"onnxruntime dropped {wanted} for {Path(path).name} "
                                 f"(active: {', '.join(session.get_providers())}); not falling back")
    return session


class OrtBackend(Backend):
    provider = "CPUExecutionProvider"
    precisions = (Precision.FP32, Precision.FP16)

    def __init__(self, bundle, precision=Precision.FP32, threads=None, **options):
        super().__init__(bundle, precision, threads, **options)
        self.sessions: dict = {}

    @classmethod
    def available(cls) -> tuple[bool, str]:
        return provider_status(cls.provider)

    def default_optimization(self) -> str:
        """The level export validated with (manifest), else "extended"."""
        validated = (self.bundle.manifest.get("onnxruntime") or {}).get("graph_optimization_level") or {}
        return validated.get(self.precision.value) or DEFAULT_LEVEL

    def providers(self) -> list:
        """Providers requested for a session, most preferred first."""
        return [(self.provider, dict(self.options.get("provider_options") or {}))]

    def session_options(self):
        o = self.options
        return session_options(o.get("optimization") or self.default_optimization(), self.threads,
                               o.get("mem_pattern", False), o.get("inter_op_threads"))

    def session(self, network: str):
        if network not in self.sessions:
            self.sessions[network] = ort_session(self.bundle.onnx_path(network, self.precision),
                                                 self.session_options(), self.providers(),
                                                 self.options.get("disabled_optimizers"))
        return self.sessions[network]

    def run(self, network: str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        feeds = self.check_feeds(network, feeds)
        session = self.session(network)
        names = self.specs[network].output_names
        outputs = session.run(names, feeds)
        return {n: np.asarray(o, dtype=np.float32) for n, o in zip(names, outputs)}

    def close(self) -> None:
        self.sessions.clear()


class OrtCpuBackend(OrtBackend):
    name = "ort-cpu"
    provider = "CPUExecutionProvider"
    precisions = (Precision.FP32, Precision.FP16, Precision.INT8)  # INT8: the bundle's QDQ graphs
    priority = 10


class OrtCudaBackend(OrtBackend):
    name = "ort-cuda"
    provider = "CUDAExecutionProvider"
    priority = 30

    def providers(self) -> list:
        return super().providers() + ["CPUExecutionProvider"]


class OrtTensorrtBackend(OrtBackend):
    """TensorRT through onnxruntime; engines cached in BUNDLE/engines/ort-trt (ORT's own cache keys)."""

    name = "ort-trt"
    provider = "TensorrtExecutionProvider"
    priority = 40

    def providers(self) -> list:
        cache = self.bundle.engines_dir / "ort-trt"
        cache.mkdir(parents=True, exist_ok=True)
        opts = {"trt_engine_cache_enable": True, "trt_engine_cache_path": str(cache),
                "trt_timing_cache_enable": True, "trt_timing_cache_path": str(cache)}
        opts.update(self.options.get("provider_options") or {})
        return [(self.provider, opts), "CUDAExecutionProvider", "CPUExecutionProvider"]
