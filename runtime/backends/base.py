"""The backend interface (Polygraphy's runner life cycle) and the registry of backends.

A backend runs one bundle's networks: ``run(network, feeds) -> outputs`` with numpy arrays in and
out, bound by the network spec's names. Each backend declares what it can do: ``precisions`` it
implements, ``supports(precision)`` on this machine (with the reason when not), a ``priority`` (the
order ``auto`` falls back to when nothing can be measured) and whether it is ``deployable`` (the
torch reference is not: ``auto`` never picks it). ``auto``, ``compare``'s and ``bench``'s defaults and
the CLI's help all read the registry.

The registry maps names to ``"module:Class"`` and imports a backend only when it is asked for. The
runtime's own backends are listed here; other packages add theirs through the ``mmfir.backends``
entry-point group (mmfir's torch reference backend, which lives with the torch code in
``mmfir.export``, registers itself that way) or by calling ``register_backend``.
"""
from __future__ import annotations

import abc
import functools
import importlib
import importlib.metadata

import numpy as np

from ..bundle import Bundle
from ..errors import BackendUnavailable, FeedError
from ..spec import Precision

ENTRY_POINT_GROUP = "mmfir.backends"
_BUILTIN: dict[str, str] = {
    "ort-cpu": "mmfir.runtime.backends.ort:OrtCpuBackend",
    "ort-cuda": "mmfir.runtime.backends.ort:OrtCudaBackend",
    "ort-trt": "mmfir.runtime.backends.ort:OrtTensorrtBackend",
    "trt": "mmfir.runtime.backends.trt:TrtBackend",
    "ov-cpu": "mmfir.runtime.backends.ov:OpenVinoBackend",
}
_REGISTERED: dict[str, str | type] = {}


class Backend(abc.ABC):
    """Runs the networks of one bundle at one precision."""

    name: str = "?"
    precisions: tuple[Precision, ...] = (Precision.FP32,)
    priority: int = 0          # auto's fallback order, highest first
    deployable: bool = True    # False: a reference or measurement backend, never chosen by auto

    def __init__(self, bundle: Bundle, precision: Precision | str = Precision.FP32, threads: int | None = None,
                 **options):
        self.bundle = bundle
        self.precision = Precision.parse(precision)
        self.threads = threads
        self.options = options
        self.specs = bundle.specs
        if self.precision not in self.precisions:
            have = ", ".join(p.value for p in self.precisions)
            raise BackendUnavailable(f"{self.name} does not run {self.precision.value} (it runs {have})")

    @classmethod
    def available(cls) -> tuple[bool, str]:
        """(usable here at all, reason when not). Must be cheap and never raise."""
        return True, ""

    @classmethod
    def supports(cls, precision: Precision | str) -> tuple[bool, str]:
        """(runs ``precision`` on this machine, reason when not). Never raises."""
        precision = Precision.parse(precision)
        ok, why = cls.available()
        if not ok:
            return False, why
        if precision not in cls.precisions:
            return False, f"{cls.name} does not run {precision.value} (it runs {', '.join(p.value for p in cls.precisions)})"
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
        if network not in self.specs:
            raise FeedError(f"unknown network {network!r}; the bundle has {', '.join(self.specs)}")
        spec = self.specs[network]
        out = {}
        for t in spec.inputs:
            if t.name not in feeds:
                raise FeedError(f"{network}: missing input {t.name!r} (inputs: {', '.join(spec.input_names)})")
            arr = np.ascontiguousarray(feeds[t.name], dtype=np.float32)
            if arr.ndim != len(t.shape) or any(isinstance(d, int) and d != s for d, s in zip(t.shape, arr.shape)):
                raise FeedError(f"{network}: input {t.name!r} has shape {arr.shape}, spec says {t.shape}")
            out[t.name] = arr
        return out


# --- the registry -----------------------------------------------------------------------------------
def register_backend(name: str, target: str | type[Backend]) -> None:
    """Add (or replace) a backend: a Backend subclass or its ``"module:Class"`` path."""
    _REGISTERED[name] = target
    backend_class.cache_clear()


@functools.lru_cache(maxsize=1)
def _entry_points() -> dict[str, str]:
    return {ep.name: ep.value for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}


def registry() -> dict[str, str | type]:
    """Every backend name this installation knows (not imported)."""
    return {**_BUILTIN, **_entry_points(), **_REGISTERED}


def backend_names() -> list[str]:
    return list(registry())


@functools.lru_cache(maxsize=None)
def backend_class(name: str) -> type[Backend]:
    entries = registry()
    if name not in entries:
        raise BackendUnavailable(f"unknown backend {name!r}; choose one of: auto, {', '.join(entries)}")
    target = entries[name]
    if isinstance(target, type):
        return target
    module, cls = target.split(":")
    try:
        return getattr(importlib.import_module(module), cls)
    except ImportError as err:
        raise BackendUnavailable(f"backend {name} cannot be loaded ({err}); its package's extra may be "
                                 "missing (see `mmfir info`)") from None


def backend_status(name: str, precision: Precision | str | None = None) -> tuple[bool, str]:
    """(usable here, why not): at all, or at ``precision``. Never raises."""
    try:
        cls = backend_class(name)
    except BackendUnavailable as err:
        return False, str(err)
    return cls.available() if precision is None else cls.supports(precision)


def deployable_backends() -> list[str]:
    """Names of the deployment backends, highest priority first (loads each backend class)."""
    loaded = []
    for name in registry():
        try:
            loaded.append(backend_class(name))
        except BackendUnavailable:
            continue
    return [c.name for c in sorted(loaded, key=lambda c: -c.priority) if c.deployable]


def available_backends() -> dict[str, tuple[bool, str]]:
    return {name: backend_status(name) for name in registry()}


def create_backend(name: str, bundle: Bundle, precision: Precision | str = Precision.FP32,
                   threads: int | None = None, **options) -> Backend:
    """A backend by name. ``auto`` is resolved by the caller (see ``mmfir.runtime.backends.auto``)."""
    cls = backend_class(name)
    ok, why = cls.supports(precision)
    if not ok:
        raise BackendUnavailable(f"backend {name} is not available here: {why}")
    return cls(bundle, precision=precision, threads=threads, **options)
