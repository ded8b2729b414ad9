"""PSNR and SSIM in numpy against scikit-image's implementations."""
from __future__ import annotations

import numpy as np
import pytest

from mmfir.measure.degradations import DEGRADATIONS, degrade
from mmfir.runtime.errors import ImageError
from mmfir.measure.metrics import psnr, ssim

metrics = pytest.importorskip("skimage.metrics")


@pytest.fixture(scope="module")
def pairs(photos):
    clean = photos["chelsea"][:160, :200]
    return [(clean, degrade(clean, name, 0.5, np.random.default_rng(1)))
            for name in DEGRADATIONS]


def test_psnr_matches_skimage(pairs):
    for clean, bad in pairs:
        assert psnr(clean, bad) == pytest.approx(metrics.peak_signal_noise_ratio(clean, bad, data_range=1.0), abs=1e-6)


def test_ssim_matches_skimage_gaussian_window(pairs):
    for clean, bad in pairs:
        ref = metrics.structural_similarity(clean, bad, data_range=1.0, channel_axis=-1, gaussian_weights=True,
                                            sigma=1.5, use_sample_covariance=False)
        assert ssim(clean, bad) == pytest.approx(ref, abs=1e-6)


def test_ssim_single_channel_and_identity(pairs):
    clean, bad = pairs[0]
    ref = metrics.structural_similarity(clean[..., 1], bad[..., 1], data_range=1.0, gaussian_weights=True,
                                        sigma=1.5, use_sample_covariance=False)
    assert ssim(clean[..., 1], bad[..., 1]) == pytest.approx(ref, abs=1e-6)
    assert ssim(clean, clean) == pytest.approx(1.0)
    assert psnr(clean, clean) == float("inf")


def test_mismatched_or_tiny_images_are_errors(pairs):
    clean, bad = pairs[0]
    with pytest.raises(ImageError, match="differ in shape"):
        psnr(clean, bad[:-1])
    with pytest.raises(ImageError, match="at least"):
        ssim(clean[:8, :8], bad[:8, :8])


def test_grid_ratio_sees_blocks_and_not_photos(photos):
    from mmfir.measure.metrics import grid_ratio

    clean = photos["astronaut"][:256, :256]
    assert 0.9 < grid_ratio(clean) < 1.1
    cells = np.random.default_rng(0).uniform(-0.03, 0.03, (16, 16, 1))
    blocky = np.clip(clean + np.kron(cells, np.ones((16, 16, 1))), 0, 1)  # a 16-px cell pattern
    assert grid_ratio(blocky) > 1.3
    assert grid_ratio(blocky, period=8) < grid_ratio(blocky)  # half the 8-px lines are not cell edges
    with pytest.raises(ImageError):
        grid_ratio(clean[:20, :20])
