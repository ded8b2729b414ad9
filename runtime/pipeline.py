"""The restoration pipeline: CLIP preprocessing -> per-image networks -> spatial networks (padded or tiled).

The wiring comes from the bundle's graph (``runtime/spec.py``): the per-image networks (the encoder)
see each whole image once, CLIP-preprocessed; the spatial networks (the restorer) run on the whole
image reflect-padded to their multiple, or on overlapping tiles (``runtime/tiling.py``), each tile fed
its image's per-image outputs (the mmf tokens). Images of the same size share batches.

A diffusion graph (DA-CLIP's restorer) is sampled instead: IR-SDE (``runtime/sde.py``) starts from the
degraded image plus noise and calls the denoiser once per step. The noise is drawn for the whole image
and only the network is tiled: each step's noise prediction is assembled from the tiles (blended as the
restorer's are), so tiling changes the network's view, never the sampler's arithmetic or its draws.
``steps`` samples with fewer steps (DA-CLIP's ``sample_T``), ``seed`` makes runs repeatable, ``noise``
replaces the generator (a callable shape -> standard-normal array, called in DA-CLIP's order).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .backends.base import Backend
from .errors import UsageError
from .image_io import DecodedImage, from_array
from .preprocess import ClipPreprocess
from .sde import IRSDE, NoiseSource
from .spec import CLIP_IMAGE, PIXELS, SAMPLER_STATE, SAMPLER_TIME, rows
from .tiling import check_tiling, pad_to_multiple, padded_batch, plan_tiles, restore_tiled, round_tile
from .timing import timed

DEFAULT_TILE = 512
DEFAULT_OVERLAP = 128  # blended; wide enough that tiles match the whole image (see README "Restore")
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


def check_sampling(bundle, steps=None, seed=None, noise=None) -> IRSDE | None:
    """The bundle's sampler for these options, None where its restorer runs once per image. A one-line error
    before any work when sampling options reach a bundle that does not sample, or steps are outside 1..T."""
    if bundle.graph.sampler is None:
        if (steps, seed, noise) != (None, None, None):
            raise UsageError("--steps and --seed apply to diffusion restorers; this bundle's restorer runs once "
                             "per image")
        return None
    return IRSDE(bundle.sde_settings, steps)


class Pipeline:
    def __init__(self, backend: Backend, tile: int = DEFAULT_TILE, overlap: int = DEFAULT_OVERLAP,
                 batch: int = DEFAULT_BATCH, steps: int | None = None, seed: int | None = None,
                 noise: NoiseSource | None = None, on_step=None):
        self.backend = backend
        self.graph = backend.bundle.graph
        self.sde = check_sampling(backend.bundle, steps, seed, noise)
        self.seed, self.noise, self.on_step = seed, noise, on_step
        self.class_names = backend.bundle.class_names
        self.preprocess = ClipPreprocess.from_bundle(backend.bundle)
        self.multiple = self.graph.multiple
        if batch < 1:
            raise UsageError(f"--batch must be at least 1, got {batch}")
        check_tiling(tile, overlap, self.multiple)
        self.tile, self.overlap, self.batch = tile, overlap, batch

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
            values = {CLIP_IMAGE: np.stack([self.preprocess(im) for im in images])}
        with timed(timings, "encoder"):
            values = self.graph.run(self.backend.run, values, self.graph.per_image)
        with timed(timings, "restorer"):
            restored = self.run_sampler(images, values) if self.sde else self.run_spatial(images, values)
        share = {k: v / len(images) for k, v in timings.items()}
        probs = softmax(values[self.graph.logits])
        return [RestoreResult(r, self.class_names[int(np.argmax(p))],
                              {n: float(v) for n, v in zip(self.class_names, p)}, dict(share))
                for r, p in zip(restored, probs)]

    def is_tiled(self, height: int, width: int) -> bool:
        return len(plan_tiles(height, width, round_tile(self.tile, self.multiple), self.overlap)) > 1

    def run_spatial(self, images: list[DecodedImage], values: dict) -> list[np.ndarray]:
        """Untiled: one batch; tiled: each image's tiles batched, with its own per-image values."""
        h, w = images[0].height, images[0].width
        if not self.is_tiled(h, w):
            out = self.spatial_fn(values)(padded_batch(images, self.multiple))[..., :h, :w]
            return [np.moveaxis(o, 0, 2) for o in out]
        return [restore_tiled(self.spatial_fn(rows(values, i)), im.pixels, 1.0 / im.max_value, self.tile,
                              self.overlap, self.multiple, self.batch)
                for i, im in enumerate(images)]

    def run_sampler(self, images: list[DecodedImage], values: dict) -> list[np.ndarray]:
        """IR-SDE for a batch of same-size images (H x W x 3 results)."""
        mu = np.stack([np.moveaxis(im.to_float(), 2, 0) for im in images])  # [N, 3, H, W], the SDE's mean
        return [np.moveaxis(x, 0, 2) for x in self.sample(mu, values)]

    def sample(self, mu: np.ndarray, values: dict) -> np.ndarray:
        """The sampler's final states [N, 3, H, W] from the degraded images ``mu`` [N, 3, H, W] in [0, 1] and
        the per-image values (the encoder's outputs); the noise prediction per step untiled or from tiles."""
        n, _, h, w = mu.shape
        tiled = self.is_tiled(h, w)

        def predict(state: np.ndarray, t: float) -> np.ndarray:
            if not tiled:
                fn = self.spatial_fn(values, time=t)
                both = pad_to_multiple(np.concatenate([mu, state], axis=1), self.multiple)
                return fn(both)[..., :h, :w]
            return np.stack([np.moveaxis(restore_tiled(self.spatial_fn(rows(values, i), time=t),
                                                       np.concatenate([mu[i], state[i]]).transpose(1, 2, 0),
                                                       1.0, self.tile, self.overlap, self.multiple, self.batch), 2, 0)
                             for i in range(n)])

        on_step = (lambda t, x: self.on_step(self.sde.steps - t + 1, self.sde.steps)) if self.on_step else None
        return self.sde.sample(mu, predict, noise=self.noise, seed=self.seed, on_step=on_step)

    def spatial_fn(self, values: dict, time: float | None = None):
        """run(pixels [N, 3, h, w]) -> restored, with ``values`` (one row per pixel row, or one for all).

        With a sampler (``time`` given) the input is [N, 6, h, w]: the degraded image, then the state."""
        def run(pixels: np.ndarray) -> np.ndarray:
            n = pixels.shape[0]
            given = {k: v for k, v in values.items() if k != CLIP_IMAGE}
            fed = given if all(v.shape[0] == n for v in given.values()) else rows(given, 0, n)
            if time is None:
                out = self.graph.run(self.backend.run, {**fed, PIXELS: pixels}, self.graph.spatial)
                return out[self.graph.restored]
            sources = {PIXELS: np.ascontiguousarray(pixels[:, :3]), SAMPLER_STATE: np.ascontiguousarray(pixels[:, 3:]),
                       SAMPLER_TIME: np.full(n, time, dtype=np.float32)}
            return self.graph.run(self.backend.run, {**fed, **sources}, self.graph.spatial)[self.graph.noise]
        return run
