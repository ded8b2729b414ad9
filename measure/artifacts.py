"""Two artifacts a user sees without looking at a number: block patterns, and tiles that disagree.

``grid_report`` restores the held-out cases and reports each degradation's grid ratio (see
``metrics.grid_ratio``) before and after. ``tile_agreement`` restores one image whole and on
overlapping tiles and says how far apart the two results are: ``mmfir restore`` tiles large images
(``--tile 512`` by default) while a served pipeline or ``--tile 0`` may not, so a model whose output
depends on more than its receptive field gives users two different answers.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .degradations import degrade
from .metrics import grid_ratio, psnr


@dataclass
class TileAgreement:
    photo: str
    degradation: str
    size: tuple[int, int]
    tile: int
    psnr_db: float              # tiled output vs whole-image output
    over_2_255: float           # fraction of pixel values more than 2/255 apart
    max_diff_255: float

    def as_dict(self) -> dict:
        return asdict(self)


def square_photo(photo: np.ndarray, size: int) -> np.ndarray:
    """The photo resized (bicubic) to size x size, as float32 in [0, 1]."""
    from PIL import Image

    from .demo import to_pil

    return np.asarray(to_pil(photo).resize((size, size), Image.BICUBIC), dtype=np.float32) / 255.0


def tile_agreement(whole, tiled, image: np.ndarray, photo: str = "", degradation: str = "") -> TileAgreement:
    """``whole`` and ``tiled`` are pipelines over one bundle (``tile=0`` and e.g. ``tile=512``)."""
    a = np.clip(whole.restore([image])[0].restored, 0, 1)
    b = np.clip(tiled.restore([image])[0].restored, 0, 1)
    diff = np.abs(a.astype(np.float64) - b) * 255
    return TileAgreement(photo, degradation, tuple(image.shape[:2]), tiled.tile, psnr(a, b),
                         float(np.mean(diff > 2)), float(diff.max()))


def tile_agreements(whole, tiled, photos: dict[str, np.ndarray], degradations=("hazy", "low-light"),
                    size: int = 1024, strength: float = 0.5, seed: int = 0) -> list[TileAgreement]:
    out = []
    for i, (name, photo) in enumerate(photos.items()):
        square = square_photo(photo, size)
        for j, deg in enumerate(degradations):
            bad = degrade(square, deg, strength, np.random.default_rng([seed, i, j]))
            out.append(tile_agreement(whole, tiled, bad, name, deg))
    return out


def grid_report(scores_and_images) -> list[dict]:
    """Per degradation: mean grid ratio of the degraded and of the restored images.

    ``scores_and_images``: (degradation, degraded image, restored image) triples.
    """
    rows: dict[str, list[tuple[float, float]]] = {}
    for deg, degraded, restored in scores_and_images:
        rows.setdefault(deg, []).append((grid_ratio(degraded), grid_ratio(restored)))
    return [{"degradation": deg, "n": len(v), "grid_before": float(np.mean([a for a, _ in v])),
             "grid_after": float(np.mean([b for _, b in v])), "grid_after_max": float(max(b for _, b in v))}
            for deg, v in rows.items()]
