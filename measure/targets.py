"""What `compare` and `bench` run: backend targets (name + precision) and the photos they run on.

A target is written ``NAME`` (FP32) or ``NAME-PRECISION`` / ``NAME/PRECISION``: ``ort-cpu``,
``ort-cpu-fp16``, ``ov-cpu-bf16``, ``trt/fp16``. Names are the backend registry's
(``mmfir.runtime.backends``), so a backend another package registers is a target too.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmfir.runtime.backends.base import backend_class, backend_names, backend_status, deployable_backends
from mmfir.runtime.errors import ImageError, UsageError
from mmfir.runtime.image_io import IMAGE_SUFFIXES, DecodedImage, from_array, load_image
from mmfir.runtime.spec import Precision

from .photos import HELD_OUT_PHOTOS, load_photo

DEFAULT_PHOTOS = tuple(HELD_OUT_PHOTOS)
REFERENCE = "torch"


@dataclass(frozen=True)
class Target:
    backend: str
    precision: Precision = Precision.FP32

    @property
    def label(self) -> str:
        return f"{self.backend}/{self.precision.value}"

    def status(self) -> tuple[bool, str]:
        """(runnable here, why not), as the backend declares it."""
        return backend_status(self.backend, self.precision)


def parse_target(text: str) -> Target:
    """``ort-cpu-fp16`` / ``ort-cpu/fp16`` / ``ort-cpu`` -> Target; unknown names are a clear error."""
    text = text.strip()
    name, precision = text, Precision.FP32
    for sep in ("/", "-"):
        head, _, tail = text.rpartition(sep)
        if head and tail.lower() in {p.value for p in Precision}:
            name, precision = head, Precision.parse(tail)
            break
    if name not in backend_names():
        raise UsageError(f"unknown backend {text!r}; choose from {', '.join(backend_names())}, "
                         "optionally with -fp16 or -bf16 (e.g. ort-cpu-fp16, ov-cpu-bf16)")
    return Target(name, precision)


def parse_targets(text: str) -> list[Target]:
    targets = [parse_target(t) for t in text.split(",") if t.strip()]
    if not targets:
        raise UsageError("--backends is empty; name at least one backend, e.g. --backends ort-cpu")
    return list(dict.fromkeys(targets))  # drop repeats, keep order


def deployable_targets() -> list[Target]:
    """Every deployable backend at every precision it implements, highest priority first."""
    return [Target(name, p) for name in deployable_backends() for p in backend_class(name).precisions]


def runnable(targets: list[Target], bundle=None) -> tuple[list[Target], dict[str, str]]:
    """The targets that run here (on ``bundle``'s graphs, when given), and why each other one does not."""
    chosen, skipped = [], {}
    for target in targets:
        ok, why = target.status()
        if ok and bundle is not None:
            ok, why = bundle.has_graphs_for(target.precision)
        if ok:
            chosen.append(target)
        else:
            skipped[target.label] = why
    return chosen, skipped


def sample_photos(names: tuple[str, ...] = DEFAULT_PHOTOS) -> dict[str, DecodedImage]:
    """scikit-image's bundled photographs (real, offline), by name, as 8-bit images."""
    return {name: from_array(np.round(load_photo(name) * 255).astype(np.uint8)) for name in names}


def folder_images(folder: str | Path, limit: int | None = None) -> dict[str, DecodedImage]:
    """The images of a folder (not recursive), sorted by name; an unreadable one is an error naming it."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageError(f"--images {folder} is not a folder")
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[:limit]
    if not paths:
        raise ImageError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    return {p.name: load_image(p) for p in paths}


def square_photo(size: int, name: str = "astronaut") -> np.ndarray:
    """A real photo resized to size x size, as float32 HWC in [0, 1] (bench input)."""
    from PIL import Image

    image = np.round(load_photo(name) * 255).astype(np.uint8)
    pil = Image.fromarray(image).resize((size, size), Image.BICUBIC)
    return np.asarray(pil).astype(np.float32) / np.float32(255)
