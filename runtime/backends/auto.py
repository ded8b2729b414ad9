"""Resolve ``--backend auto`` to the best backend available here, and say why.

For now a fixed preference order (fastest first where available); to be replaced by a measured choice.
"""
from __future__ import annotations

from ..spec import Precision
from .base import _backend_class, backend_status

PREFERENCE = ("trt", "ort-trt", "ort-cuda", "ov-cpu", "ort-cpu")


def resolve_auto(bundle, precision: Precision | str = Precision.FP32) -> tuple[str, str]:
    """(backend name, reason): the first backend in PREFERENCE that is available and runs ``precision``."""
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
    return "ort-cpu", "auto fell back to ort-cpu: " + "; ".join(skipped)
