"""Tiling weights and seams, and the pipeline through real ORT sessions vs the torch reference."""
from __future__ import annotations

import numpy as np
import pytest

from support import requires_torch
from mmfir.runtime.backends import create_backend
from mmfir.runtime.bundle import Bundle
from mmfir.measure.metrics import psnr
from mmfir.runtime.pipeline import Pipeline
from mmfir.runtime.spec import CONTRACTS, Precision
from mmfir.runtime.tiling import plan_tiles, ramp, restore_tiled, tile_weights


@pytest.fixture(scope="module")
def bundle(tiny_bundle) -> Bundle:
    return Bundle.open(tiny_bundle)


def weight_sum(height: int, width: int, tile: int, overlap: int) -> np.ndarray:
    total = np.zeros((height, width))
    for t in plan_tiles(height, width, tile, overlap):
        total[t.y:t.y + t.h, t.x:t.x + t.w] += tile_weights(t, overlap)
    return total


def test_blend_weights_partition_of_unity():
    # regular spacing (length = tile + k * (tile - overlap)): sin^2 + cos^2 ramps sum to exactly 1
    total = weight_sum(64 + 2 * 48, 64 + 3 * 48, 64, 16)
    assert np.allclose(total, 1.0, atol=1e-6)
    # irregular (last tile aligned to the edge): every pixel covered, weights positive
    total = weight_sum(171, 137, 64, 16)
    assert total.min() > 0.05
    assert ramp(64, 16, True, False)[0] < 0.01 and ramp(64, 16, True, False)[16] == 1.0


def test_tiles_blend_without_seams(photos):
    """A tile runner whose output depends on the whole tile (a per-tile offset, like NAFNet's global
    pooling) must not leave steps at tile borders: the blended offset changes gradually."""
    src = photos["astronaut"][:300, :420]

    def offset_by_tile_mean(x: np.ndarray) -> np.ndarray:
        return x + x.mean(axis=(1, 2, 3), keepdims=True)

    overlap = 32
    out = restore_tiled(offset_by_tile_mean, src, 1.0, tile=128, overlap=overlap, multiple=16)
    residual = (out - src)[..., 0]
    offsets = [src[t.y:t.y + t.h, t.x:t.x + t.w].mean() for t in plan_tiles(300, 420, 128, overlap)]
    spread = max(offsets) - min(offsets)
    step = max(np.abs(np.diff(residual, axis=0)).max(), np.abs(np.diff(residual, axis=1)).max())
    assert spread > 0.05  # the tiles do disagree...
    assert step <= spread * np.pi / (2 * overlap) * 1.5  # ...but only by a smooth ramp
    hard = restore_tiled(offset_by_tile_mean, src, 1.0, tile=128, overlap=0, multiple=16)
    assert np.abs(np.diff((hard - src)[..., 0], axis=1)).max() > 3 * step  # without blending: steps


TILED_MIN_PSNR_DB = 40.0


@pytest.fixture(scope="module")
def ort32(bundle):
    with create_backend("ort-cpu", bundle, Precision.FP32, threads=2) as backend:
        yield backend


def test_tile_at_least_image_equals_whole_image(ort32, photos):
    img = photos["coffee"][:200, :300]
    whole = Pipeline(ort32, tile=0).restore([img])[0].restored
    big_tile = Pipeline(ort32, tile=512).restore([img])[0].restored
    assert np.array_equal(whole, big_tile)
    tiled = Pipeline(ort32, tile=128, overlap=32).restore([img])[0].restored
    assert tiled.shape == whole.shape == (200, 300, 3)
    # no global pooling and one conditioning per image: tiles differ only where the receptive field crosses
    # a tile border (the first architecture, with NAFNet's channel attention: 25-30 dB here)
    assert psnr(np.clip(whole, 0, 1), np.clip(tiled, 0, 1)) > TILED_MIN_PSNR_DB


def test_results_carry_label_probabilities_timings(ort32, bundle, photos):
    img = photos["chelsea"][:150, :170]  # odd size: padded to the restorer's multiple and cropped back
    res = Pipeline(ort32).restore([img])[0]
    assert res.restored.shape == img.shape and res.restored.dtype == np.float32
    assert set(res.probabilities) == set(bundle.class_names)
    assert abs(sum(res.probabilities.values()) - 1) < 1e-6
    assert res.label == max(res.probabilities, key=res.probabilities.get)
    assert {"preprocess", "encoder", "restorer"} <= set(res.timings)


def test_batched_equals_one_by_one(ort32, photos):
    imgs = [photos[n][:128, :160] for n in ("astronaut", "coffee", "chelsea")] + [photos["coffee"][:96, :96]]
    batched = Pipeline(ort32, batch=4).restore(imgs)
    single = [Pipeline(ort32, batch=1).restore([im])[0] for im in imgs]
    for b, s in zip(batched, single):
        assert b.label == s.label
        assert np.max(np.abs(b.restored - s.restored)) <= 1e-5


@requires_torch
def test_ort_matches_torch_backend(ort32, bundle, tiny_model, photos):
    """FP32 contract through the whole pipeline (tiled and untiled)."""
    torch_backend = create_backend("torch", bundle, model=tiny_model)
    img = photos["astronaut"][:200, :250]
    bound = CONTRACTS[Precision.FP32].image_max_abs
    for tile in (0, 128):
        ours = Pipeline(ort32, tile=tile, overlap=32).restore([img])[0]
        ref = Pipeline(torch_backend, tile=tile, overlap=32).restore([img])[0]
        assert ours.label == ref.label
        assert np.max(np.abs(ours.restored - ref.restored)) <= bound
        assert max(abs(ours.probabilities[k] - ref.probabilities[k]) for k in ref.probabilities) < 1e-4


def test_fp16_graph_runs_on_ort_cpu(ort32, bundle, photos):
    if Precision.FP16 not in bundle.precisions():
        pytest.skip("bundle has no FP16 graphs")
    img = photos["coffee"][:160, :192]
    with create_backend("ort-cpu", bundle, Precision.FP16, threads=2) as fp16:
        half = Pipeline(fp16).restore([img])[0]
    full = Pipeline(ort32).restore([img])[0]
    assert psnr(np.clip(full.restored, 0, 1), np.clip(half.restored, 0, 1)) >= CONTRACTS[Precision.FP16].image_psnr_db
