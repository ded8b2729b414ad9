"""The backend interface (Polygraphy's runner life cycle) and the registry of backends.

A backend runs one bundle's networks: ``run(network, feeds) -> outputs`` with numpy arrays in
and out, bound by the network spec's names. Backends are created by name through
``create_backend``; each lives in its own module, imported only when asked for.
"""
from __future__ import annotations

import abc
import importlib

import numpy as np

from ..bundle import Bundle
from ..errors import BackendUnavailable
from ..spec import NETWORKS, Precision

# name -> "module:Class" (relative to mmfir.runtime.backends)
REGISTRY: dict[str, str] = {
    "ort-cpu": "ort:OrtCpuBackend",
    "ort-cuda": "ort:OrtCudaBackend",
    "ort-trt": "ort:OrtTensorrtBackend",
    "trt": "trt:TrtBackend",
    "ov-cpu": "ov:OpenVinoBackend",
    "torch": "torch_ref:TorchBackend",
}


class Backend(abc.ABC):
    """Runs the networks of one bundle at one precision."""

    name: str = "?"
    precisions: tuple[Precision, ...] = (Precision.FP32,)

    def __init__(self, bundle: Bundle, precision: Precision | str = Precision.FP32, threads: int | None = None,
                 **options):
        self.bundle = bundle
        self.precision = Precision.parse(precision)
        self.threads = threads
        self.options = options
        self.specs = bundle.specs
        if self.precision not in self.precisions:
            have = ", ".join(p.value for p in self.precisions)
            raise BackendUnavailable(f"backend {self.name} does not run {self.precision.value} (it runs: {have})")

    @classmethod
    def available(cls) -> tuple[bool, str]:
        """(usable here, reason when not). Must be cheap and never raise."""
        return True, ""

    @abc.abstractmethod
    def run(self, network: str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one network; feeds and outputs keyed by the spec's names, float32 numpy arrays."""

    def close(self) -> None:
        """Release sessions and device memory."""

    @property
    def label(self) -> str:
        return f"{self.name}/{self.precision.value}"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def check_feeds(self, network: str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Feeds as contiguous float32 in spec order; a wrong name or rank is a clear error."""
        if network not in NETWORKS:
            raise ValueError(f"unknown network {network!r}")
        spec = self.specs[network]
        out = {}
        for t in spec.inputs:
            if t.name not in feeds:
                raise ValueError(f"{network}: missing input {t.name!r}")
            arr = np.ascontiguousarray(feeds[t.name], dtype=np.float32)
            if arr.ndim != len(t.shape) or any(isinstance(d, int) and d != s for d, s in zip(t.shape, arr.shape)):
                raise ValueError(f"{network}: input {t.name!r} has shape {arr.shape}, spec says {t.shape}")
            out[t.name] = arr
        return out


def _backend_class(name: str) -> type[Backend]:
    if name not in REGISTRY:
        raise BackendUnavailable(f"unknown backend {name!r}; choose one of: auto, {', '.join(REGISTRY)}")
    module, cls = REGISTRY[name].split(":")
    try:
        mod = importlib.import_module(f"{__package__}.{module}")
    except ModuleNotFoundError as err:
        if err.name == f"{__package__}.{module}":
            raise BackendUnavailable(f"backend {name} is not implemented in this mmfir version") from None
        raise
    return getattr(mod, cls)


def backend_status(name: str) -> tuple[bool, str]:
    try:
        return _backend_class(name).available()
    except BackendUnavailable as err:
        return False, str(err)


def available_backends() -> dict[str, tuple[bool, str]]:
    return {name: backend_status(name) for name in REGISTRY}


def create_backend(name: str, bundle: Bundle, precision: Precision | str = Precision.FP32,
                   threads: int | None = None, **options) -> Backend:
    """A backend by name. ``auto`` is resolved by the caller (see ``mmfir.runtime.backends.auto``)."""
    cls = _backend_class(name)
    ok, why = cls.available()
    if not ok:
        raise BackendUnavailable(f"backend {name} is not available here: {why}")
    return cls(bundle, precision=precision, threads=threads, **options)
