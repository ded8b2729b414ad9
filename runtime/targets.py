"""What `compare`, `bench` and autotune run: backend targets (name + precision) and sample photos.

A target is written ``NAME`` (FP32) or ``NAME-PRECISION`` / ``NAME/PRECISION``: ``ort-cpu``,
``ort-cpu-fp16``, ``ov-cpu-bf16``, ``trt/fp16``. ``torch-compile`` is the bench-only torch.compile row.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ImageError, MmfirError
from .image_io import IMAGE_SUFFIXES, DecodedImage, from_array, load_image
from .spec import Precision

DEFAULT_PHOTOS = ("astronaut", "chelsea", "coffee")
BENCH_ONLY = ("torch-compile",)


@dataclass(frozen=True)
class Target:
    backend: str
    precision: Precision = Precision.FP32

    @property
    def label(self) -> str:
        return f"{self.backend}/{self.precision.value}"


def parse_target(text: str) -> Target:
    """``ort-cpu-fp16`` / ``ort-cpu/fp16`` / ``ort-cpu`` -> Target; unknown names are a clear error."""
    from .backends.base import REGISTRY

    text = text.strip()
    name, precision = text, Precision.FP32
    for sep in ("/", "-"):
        head, _, tail = text.rpartition(sep)
        if head and tail.lower() in {p.value for p in Precision}:
            name, precision = head, Precision.parse(tail)
            break
    if name not in REGISTRY and name not in BENCH_ONLY:
        raise MmfirError(f"unknown backend {text!r}; choose from {', '.join(list(REGISTRY) + list(BENCH_ONLY))}, "
                         "optionally with -fp16 or -bf16 (e.g. ort-cpu-fp16, ov-cpu-bf16)")
    return Target(name, precision)


def parse_targets(text: str) -> list[Target]:
    targets = [parse_target(t) for t in text.split(",") if t.strip()]
    if not targets:
        raise MmfirError("--backends is empty; name at least one backend, e.g. --backends ort-cpu")
    return list(dict.fromkeys(targets))  # drop repeats, keep order


def sample_photos(names: tuple[str, ...] = DEFAULT_PHOTOS) -> dict[str, DecodedImage]:
    """scikit-image's bundled photographs (real, offline), by name."""
    try:
        from skimage import data
    except ImportError:
        raise MmfirError("the default photos come from scikit-image (pip install scikit-image); "
                         "or pass --images DIR") from None
    return {name: from_array(getattr(data, name)()[..., :3].astype(np.uint8)) for name in names}


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

    image = sample_photos((name,))[name].pixels if _have_skimage() else _gradient(512)
    pil = Image.fromarray(image).resize((size, size), Image.BICUBIC)
    return np.asarray(pil).astype(np.float32) / np.float32(255)


def _have_skimage() -> bool:
    import importlib.util

    return importlib.util.find_spec("skimage") is not None


def _gradient(size: int) -> np.ndarray:
    y, x = np.mgrid[0:size, 0:size] / size
    return (np.stack([x, y, (x + y) / 2], axis=2) * 255).astype(np.uint8)
