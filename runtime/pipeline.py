"""The restoration pipeline: CLIP preprocessing -> encoder -> restorer (padded or tiled) -> result.

The encoder sees each whole image once (preprocessed from the full image); the restorer runs on the
whole image (reflect-padded to its multiple, cropped back) or on overlapping tiles (runtime/tiling.py).
Images of the same size are batched through the encoder, and through the restorer when untiled.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from .backends.base import Backend
from .image_io import DecodedImage, from_array
from .preprocess import ClipPreprocess
from .spec import ENCODER, RESTORER
from .tiling import padded_batch, plan_tiles, restore_tiled, round_tile

DEFAULT_TILE = 512
DEFAULT_OVERLAP = 32
DEFAULT_BATCH = 4
STAGES = ("decode", "preprocess", "encoder", "restorer", "write")


@dataclass
class RestoreResult:
    restored: np.ndarray                 # H x W x 3 float32 in [0, 1] (unclipped network output)
    label: str                           # predicted degradation class
    probabilities: dict[str, float]      # softmax of degradation_logits, per class name
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage (batched stages shared)

    @property
    def confidence(self) -> float:
        return self.probabilities[self.label]


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64) - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


@contextmanager
def timed(timings: dict, stage: str):
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[stage] = timings.get(stage, 0.0) + time.perf_counter() - start


class Pipeline:
    def __init__(self, backend: Backend, tile: int = DEFAULT_TILE, overlap: int = DEFAULT_OVERLAP,
                 batch: int = DEFAULT_BATCH):
        self.backend = backend
        self.class_names = backend.bundle.class_names
        self.preprocess = ClipPreprocess.from_bundle(backend.bundle)
        self.multiple = backend.specs[RESTORER].multiple
        self.tile, self.overlap, self.batch = tile, overlap, max(1, batch)

    def restore(self, images: list[DecodedImage | np.ndarray]) -> list[RestoreResult]:
        """Restore images of any sizes; same-size images share batches. Results in input order."""
        images = [im if isinstance(im, DecodedImage) else from_array(im) for im in images]
        results: list[RestoreResult | None] = [None] * len(images)
        groups: dict[tuple[int, int], list[int]] = {}
        for i, im in enumerate(images):
            groups.setdefault((im.height, im.width), []).append(i)
        for idx in groups.values():
            for start in range(0, len(idx), self.batch):
                chunk = idx[start:start + self.batch]
                for i, res in zip(chunk, self.restore_same_size([images[i] for i in chunk])):
                    results[i] = res
        return results

    def restore_same_size(self, images: list[DecodedImage]) -> list[RestoreResult]:
        timings: dict[str, float] = {}
        with timed(timings, "preprocess"):
            clip = np.stack([self.preprocess(im) for im in images])
        with timed(timings, "encoder"):
            enc = self.backend.run(ENCODER, {"image": clip})
        with timed(timings, "restorer"):
            restored = self.run_restorer(images, enc["mmf"])
        share = {k: v / len(images) for k, v in timings.items()}
        probs = softmax(enc["degradation_logits"])
        return [RestoreResult(r, self.class_names[int(np.argmax(p))],
                              {n: float(v) for n, v in zip(self.class_names, p)}, dict(share))
                for r, p in zip(restored, probs)]

    def is_tiled(self, height: int, width: int) -> bool:
        return len(plan_tiles(height, width, round_tile(self.tile, self.multiple), self.overlap)) > 1

    def run_restorer(self, images: list[DecodedImage], mmf: np.ndarray) -> list[np.ndarray]:
        """Untiled: one batch; tiled: each image's tiles batched, with its own mmf tokens."""
        if not self.is_tiled(images[0].height, images[0].width):
            out = self.restorer_fn(mmf)(padded_batch(images, self.multiple))[..., :images[0].height, :images[0].width]
            return [np.moveaxis(o, 0, 2) for o in out]
        return [restore_tiled(self.restorer_fn(mmf[i:i + 1]), im.pixels, 1.0 / im.max_value, self.tile,
                              self.overlap, self.multiple, self.batch)
                for i, im in enumerate(images)]

    def restorer_fn(self, mmf: np.ndarray):
        """run(images [N, 3, h, w]) through the restorer with mmf (one row per image, or one for all)."""
        def run(x: np.ndarray) -> np.ndarray:
            tokens = mmf if mmf.shape[0] == x.shape[0] else np.repeat(mmf[:1], x.shape[0], axis=0)
            return self.backend.run(RESTORER, {"image": x, "mmf": tokens})["restored"]
        return run

