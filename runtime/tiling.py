"""Overlapping tiles with raised-cosine blending, so large images restore in bounded memory.

Along each axis an image longer than the tile is covered by tiles of ``tile`` pixels whose starts
advance by ``tile - overlap`` (the last tile is aligned to the far edge). Each tile's weight is 1
inside and ramps as sin^2 over ``overlap`` pixels on the sides that have a neighbour (no ramp at
the image border); the output is sum(w * tile) / sum(w), continuous, hence seam-free. An axis not
longer than the tile is one tile, reflect-padded to the restorer's multiple like a whole-image run,
so a tile at least as large as the image gives exactly the whole-image result.

Memory: network activations are bounded by ``batch`` tiles of ``tile`` x ``tile`` pixels; the
image-size buffers are the decoded source (uint8/16), a float32 H x W x 3 accumulator and a
float32 H x W weight map (17 bytes per pixel with 8-bit input).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .errors import UsageError

# run(images [N, 3, h, w] float32) -> restored [N, 3, h, w]
RunTiles = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Tile:
    y: int
    x: int
    h: int
    w: int
    top: bool     # has a neighbour above (ramp on that side)
    bottom: bool
    left: bool
    right: bool


def axis_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start positions of tiles of ``tile`` pixels covering [0, length) with at least ``overlap``."""
    if tile <= 0 or length <= tile:
        return [0]
    step = max(1, tile - overlap)
    starts = list(range(0, length - tile, step))
    return starts + [length - tile]


def plan_tiles(height: int, width: int, tile: int, overlap: int) -> list[Tile]:
    ys, xs = axis_starts(height, tile, overlap), axis_starts(width, tile, overlap)
    th, tw = min(height, tile) if tile > 0 else height, min(width, tile) if tile > 0 else width
    return [Tile(y, x, th, tw, i > 0, i < len(ys) - 1, j > 0, j < len(xs) - 1)
            for i, y in enumerate(ys) for j, x in enumerate(xs)]


def ramp(length: int, overlap: int, lead: bool, trail: bool) -> np.ndarray:
    """1-D weights: 1, with sin^2 ramps over ``overlap`` samples at the leading/trailing end."""
    w = np.ones(length, dtype=np.float32)
    n = min(overlap, length // 2)
    if n <= 0:
        return w
    up = np.sin(0.5 * np.pi * (np.arange(n, dtype=np.float64) + 0.5) / n) ** 2
    if lead:
        w[:n] = up
    if trail:
        w[length - n:] = up[::-1]
    return w


def tile_weights(t: Tile, overlap: int) -> np.ndarray:
    return np.outer(ramp(t.h, overlap, t.top, t.bottom), ramp(t.w, overlap, t.left, t.right))


def round_tile(tile: int, multiple: int) -> int:
    """The tile size actually used: a multiple of the restorer's multiple (0 = whole image)."""
    if tile <= 0:
        return 0
    return max(multiple, tile - tile % multiple)


def check_tiling(tile: int, overlap: int, multiple: int) -> None:
    """Refuse tile settings that cannot work (or would run for hours), naming values that would.

    A tile must be 0 (whole image) or at least ``max(multiple, 2 * overlap)`` pixels: each tile ramps
    over ``overlap`` pixels on both sides, and tiles advance by ``tile - overlap``.
    """
    if overlap < 0:
        raise UsageError(f"--overlap must be 0 or more pixels, got {overlap}")
    if tile < 0:
        raise UsageError(f"--tile must be 0 (whole image) or a positive tile size, got {tile}")
    smallest = max(multiple, 2 * overlap)
    if tile > 0 and (tile < smallest or round_tile(tile, multiple) < 2 * overlap):
        why = [f"the restorer works on multiples of {multiple}"] if multiple > 1 else []
        why.append(f"--overlap {overlap} is blended on both sides")
        raise UsageError(f"--tile {tile} is too small: tiles must be at least {smallest} pixels ({', '.join(why)}); "
                         f"use --tile {max(smallest, 512)}, a smaller --overlap, or --tile 0 for the whole image")


def pad_to_multiple(images: np.ndarray, multiple: int) -> np.ndarray:
    """[N, C, H, W] reflect-padded at the bottom/right to multiples (as Restorer.pad_forward)."""
    h, w = images.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if not (ph or pw):
        return images
    return np.pad(images, ((0, 0), (0, 0), (0, ph), (0, pw)), mode="reflect")


def padded_batch(images, multiple: int) -> np.ndarray:
    """[N, 3, H', W'] float32 in [0, 1] of same-size DecodedImages, reflect-padded to the multiple."""
    return pad_to_multiple(np.stack([np.moveaxis(im.to_float(), 2, 0) for im in images]), multiple)


def tile_input(source: np.ndarray, t: Tile, scale: float) -> np.ndarray:
    """3 x h x w float32 in [0, 1] of one tile, from the H x W x 3 integer (or float) source."""
    crop = source[t.y:t.y + t.h, t.x:t.x + t.w]
    return np.moveaxis(crop.astype(np.float32) * np.float32(scale), 2, 0)


def run_padded(run: RunTiles, batch: np.ndarray, multiple: int) -> np.ndarray:
    h, w = batch.shape[-2:]
    return run(pad_to_multiple(batch, multiple))[..., :h, :w]


def restore_tiled(run: RunTiles, source: np.ndarray, scale: float, tile: int, overlap: int,
                  multiple: int, batch: int = 4) -> np.ndarray:
    """H x W x 3 float32 restored image from ``run`` applied to overlapping tiles of ``source``."""
    height, width = source.shape[:2]
    tiles = plan_tiles(height, width, round_tile(tile, multiple), overlap)
    if len(tiles) == 1:
        x = tile_input(source, tiles[0], scale)[None]
        return np.moveaxis(run_padded(run, x, multiple)[0], 0, 2)
    out = np.zeros((height, width, 3), dtype=np.float32)
    weight = np.zeros((height, width), dtype=np.float32)
    for i in range(0, len(tiles), batch):
        chunk = tiles[i:i + batch]
        restored = run_padded(run, np.stack([tile_input(source, t, scale) for t in chunk]), multiple)
        for t, r in zip(chunk, restored):
            w = tile_weights(t, overlap)
            out[t.y:t.y + t.h, t.x:t.x + t.w] += np.moveaxis(r, 0, 2) * w[..., None]
            weight[t.y:t.y + t.h, t.x:t.x + t.w] += w
    out /= weight[..., None]
    return out
