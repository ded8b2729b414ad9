"""CLIP preprocessing in numpy/PIL, equal to what the encoder was trained and exported with.

- ``resize``: open_clip's inference transform (torchvision on a PIL image): shorter side to
  ``image_size`` with PIL bicubic (new long side truncated like torchvision), centre crop with
  torchvision's rounding, /255, (x - mean) / std. 16-bit images are resized per channel in
  PIL's float mode (no 8-bit rounding; clipped to [0, 1] like PIL's 8-bit resize).
- ``crop``: centre crop of ``image_size`` at native resolution, reflect-padded when smaller,
  equal to ``MMFIR.clip_input`` of the torch model.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from .errors import BundleError
from .image_io import DecodedImage

MODES = ("resize", "crop")


@dataclass(frozen=True)
class ClipPreprocess:
    image_size: int
    mode: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @classmethod
    def from_bundle(cls, bundle) -> "ClipPreprocess":
        """From the manifest's ``preprocess`` entry, falling back to the model config's encoder fields."""
        enc = bundle.config["encoder"]
        pre = dict(bundle.manifest.get("preprocess") or {})
        return cls(int(pre.get("image_size", enc["vision"]["image_size"])),
                   str(pre.get("mode", pre.get("preprocess", enc.get("preprocess", "resize")))),
                   tuple(pre.get("mean", enc["mean"])), tuple(pre.get("std", enc["std"])))

    def __call__(self, image: DecodedImage) -> np.ndarray:
        """3 x S x S float32, ready for the encoder."""
        if self.mode == "resize":
            x = resize_center_crop(image, self.image_size)
        elif self.mode == "crop":
            # crop the stored pixels first, then scale: no float copy of the whole image
            x = center_crop_or_pad(image.pixels, self.image_size).astype(np.float32) / np.float32(image.max_value)
        else:
            raise BundleError(f"unknown preprocess mode {self.mode!r} in the bundle; this mmfir knows "
                              f"{', '.join(MODES)}: re-export the bundle with this version")
        return normalize(x, self.mean, self.std)


def shorter_side_size(height: int, width: int, size: int) -> tuple[int, int]:
    """(new_h, new_w) with the shorter side = size; the longer side truncated (torchvision's rule)."""
    if height <= width:
        return size, int(size * width / height)
    return int(size * height / width), size


def center_crop_box(height: int, width: int, size: int) -> tuple[int, int]:
    """(top, left) of torchvision's CenterCrop (round half to even, as Python's round)."""
    return int(round((height - size) / 2.0)), int(round((width - size) / 2.0))


def resize_center_crop(image: DecodedImage, size: int) -> np.ndarray:
    """H x W x 3 float32 in [0, 1]: PIL bicubic shorter-side resize, then centre crop."""
    new_h, new_w = shorter_side_size(image.height, image.width, size)
    if image.pixels.dtype == np.uint8:
        pil = Image.fromarray(image.pixels, "RGB").resize((new_w, new_h), Image.BICUBIC)
        resized = np.asarray(pil).astype(np.float32) / np.float32(255)
    else:
        chans = [Image.fromarray(c, "F").resize((new_w, new_h), Image.BICUBIC)
                 for c in np.moveaxis(image.to_float(), 2, 0)]
        resized = np.clip(np.stack([np.asarray(c) for c in chans], axis=2), 0.0, 1.0)  # as 8-bit clips
    top, left = center_crop_box(new_h, new_w, size)
    return resized[top:top + size, left:left + size]


def center_crop_or_pad(image: np.ndarray, size: int) -> np.ndarray:
    """H x W x C: reflect-pad to at least size (split like MMFIR.clip_input), crop the centre."""
    h, w = image.shape[:2]
    ph, pw = max(0, size - h), max(0, size - w)
    if ph or pw:
        image = np.pad(image, ((ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)), mode="reflect")
    h, w = image.shape[:2]
    top, left = (h - size) // 2, (w - size) // 2
    return image[top:top + size, left:left + size]


def normalize(image: np.ndarray, mean, std) -> np.ndarray:
    """H x W x 3 float in [0, 1] -> 3 x H x W float32, (x - mean) / std per channel."""
    x = np.moveaxis(image.astype(np.float32, copy=False), 2, 0)
    mean = np.asarray(mean, dtype=np.float32).reshape(3, 1, 1)
    std = np.asarray(std, dtype=np.float32).reshape(3, 1, 1)
    return np.ascontiguousarray((x - mean) / std)
