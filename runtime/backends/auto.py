"""Resolve ``--backend auto`` to the fastest backend measured here, and say why.

The choice is made by ``autotune.choose_backend``: a short timing of every available backend that runs
the requested precision, on first use, cached per machine and bundle. If no measurement can be made
(every candidate failed), the fixed preference order below decides and the reason says so.
"""
from __future__ import annotations

from ..errors import BackendUnavailable
from ..spec import Precision
from .base import _backend_class, backend_status

PREFERENCE = ("trt", "ort-trt", "ort-cuda", "ov-cpu", "ort-cpu")


def resolve_auto(bundle, precision: Precision | str = Precision.FP32, threads: int | None = None) -> tuple[str, str]:
    """(backend name, reason): the fastest measured backend that runs ``precision`` here."""
    from .autotune import choose_backend

    try:
        name, _, reason = choose_backend(bundle, precision, threads=threads)
        return name, reason
    except BackendUnavailable as err:
        name, why = first_available(precision)
        return name, f"{why} (measurement failed: {err})"


def first_available(precision: Precision | str = Precision.FP32) -> tuple[str, str]:
    """The first backend in PREFERENCE that is available and runs ``precision``."""
    precision = Precision.parse(precision)
    skipped = []
    for name in PREFERENCE:
        ok, why = backend_status(name)
        if ok and precision not in _backend_class(name).precisions:
            ok, why = False, f"does not run {precision.value}"
        if ok:
            tail = f"; skipped: {'; '.join(skipped)}" if skipped else ""
            return name, f"auto chose {name} (first available of {' > '.join(PREFERENCE)}{tail})"
        skipped.append(f"{name} ({why})")
    raise BackendUnavailable(f"no backend runs {precision.value} here: " + "; ".join(skipped))
