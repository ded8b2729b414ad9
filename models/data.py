"""Training and evaluation data: scikit-image's bundled photographs, synthetically degraded.

The held-out photos are never trained on; they are what ``mmfir demo`` and the shipped-model
tests evaluate. Batches are random crops (with flips) degraded at random strengths.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mmfir.measure.degradations import ALL_CLASSES, degrade
from mmfir.measure.photos import HELD_OUT_PHOTOS, SKIMAGE_TRAIN_PHOTOS, TRAIN_PHOTOS, held_out_photos, load_photo
from mmfir.runtime.errors import ConfigError

__all__ = ["HELD_OUT_PHOTOS", "SKIMAGE_TRAIN_PHOTOS", "TRAIN_PHOTOS", "Batch", "PhotoSampler", "held_out_photos", "load_photo"]


@dataclass
class Batch:
    degraded: np.ndarray  # B, 3, H, W float32
    clean: np.ndarray     # B, 3, H, W float32
    labels: np.ndarray    # B int64: index into class_names
    captions: np.ndarray  # B int64: index into PhotoSampler.captions


class PhotoSampler:
    """Random crops of the training photos, flipped, degraded with a random class and strength."""

    def __init__(self, class_names, crop: int = 128, seed: int = 0, photos: dict[str, str] | None = None,
                 margin: int = 16, min_strength: float = 0.1, class_weights: dict[str, float] | None = None):
        photos = photos or TRAIN_PHOTOS
        self.class_names = list(class_names)
        self.set_class_weights(class_weights)
        self.crop, self.margin, self.min_strength = crop, margin, min_strength
        self.rng = np.random.default_rng(seed)
        self.captions = sorted(set(photos.values()))
        self.images, self.caption_ids = [], []
        for name, caption in photos.items():
            for img in _pyramid(load_photo(name), crop + margin):
                self.images.append(img)
                self.caption_ids.append(self.captions.index(caption))

    def set_class_weights(self, class_weights: dict[str, float] | None) -> None:
        """Sampling weight per class name (default 1 each); classes without a synthetic degradation here
        (e.g. DA-CLIP's "snowy") are never sampled."""
        weights = np.array([(class_weights or {}).get(n, 1.0) if n in ALL_CLASSES else 0.0
                            for n in self.class_names], dtype=np.float64)
        if weights.sum() <= 0:
            raise ConfigError(f"none of the classes {self.class_names} has a synthetic degradation "
                             f"(known: {', '.join(ALL_CLASSES)}) or a weight above 0")
        self.class_probs = weights / weights.sum()

    def sample(self) -> tuple[np.ndarray, np.ndarray, int, int]:
        rng, big = self.rng, self.crop + self.margin
        i = int(rng.integers(len(self.images)))
        img = self.images[i]
        top, left = int(rng.integers(img.shape[0] - big + 1)), int(rng.integers(img.shape[1] - big + 1))
        patch = img[top:top + big, left:left + big]
        if rng.random() < 0.5:
            patch = patch[:, ::-1]
        if rng.random() < 0.5:
            patch = patch[::-1]
        label = int(rng.choice(len(self.class_names), p=self.class_probs))
        strength = float(rng.uniform(self.min_strength, 1.0))
        bad = degrade(np.ascontiguousarray(patch), self.class_names[label], strength, rng)
        # crop after degrading: borders stay realistic and the JPEG grid lands at any offset
        t, l = (int(v) for v in rng.integers(self.margin + 1, size=2))
        sl = (slice(t, t + self.crop), slice(l, l + self.crop))
        return bad[sl], patch[sl], label, self.caption_ids[i]

    def batch(self, size: int) -> Batch:
        items = [self.sample() for _ in range(size)]
        chw = lambda k: np.stack([it[k].transpose(2, 0, 1) for it in items]).astype(np.float32)  # noqa: E731
        return Batch(chw(0), chw(1), np.array([it[2] for it in items], dtype=np.int64),
                     np.array([it[3] for it in items], dtype=np.int64))


def _pyramid(img: np.ndarray, min_side: int) -> list[np.ndarray]:
    """The photo at full size and, when large enough, at half size (more content per crop)."""
    from PIL import Image

    out = [img] if min(img.shape[:2]) >= min_side else []
    h, w = img.shape[:2]
    if min(h, w) // 2 >= min_side:
        pil = Image.fromarray(np.round(img * 255).astype(np.uint8)).resize((w // 2, h // 2), Image.BICUBIC)
        out.append(np.asarray(pil, dtype=np.float32) / 255.0)
    if not out:  # too small: upscale so a crop fits
        s = min_side / min(h, w)
        pil = Image.fromarray(np.round(img * 255).astype(np.uint8)).resize((round(w * s) + 1, round(h * s) + 1))
        out.append(np.asarray(pil, dtype=np.float32) / 255.0)
    return out
