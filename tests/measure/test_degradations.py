"""Synthetic degradations: shape, range, determinism per seed, and that each one changes the image."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mmfir.measure.degradations import ALIASES, ALL_CLASSES, DEGRADATIONS, convolve, degrade, disk_kernel, line_kernel
from mmfir.runtime.errors import ImageError
from mmfir.measure.metrics import psnr

CONFIGS = Path(__file__).resolve().parents[2] / "models" / "configs"


def config_classes(name: str) -> list[str]:
    return json.loads((CONFIGS / f"{name}.json").read_text())["encoder"]["class_names"]


@pytest.fixture(scope="module")
def image(photos) -> np.ndarray:
    return photos["astronaut"][100:260, 120:320]  # 160 x 200, not square


def test_names_match_the_config_classes():
    """Every class of the shipped configs has its degradation, in the configs' order (read, not copied)."""
    classes = config_classes("tiny")
    assert config_classes("base") == classes and classes[0] == "clean"
    assert [n for n in ALL_CLASSES if n not in ALIASES] == classes
    assert list(DEGRADATIONS) == classes[1:]


@pytest.mark.parametrize("name", list(DEGRADATIONS))
def test_degradation_changes_image_keeps_shape_and_range(image, name):
    out = degrade(image, name, 0.5, np.random.default_rng(0))
    assert out.shape == image.shape and out.dtype == np.float32
    assert 0.0 <= out.min() and out.max() <= 1.0
    assert psnr(image, out) < 35.0, f"{name} barely changed the image"


@pytest.mark.parametrize("name", list(DEGRADATIONS))
def test_deterministic_per_seed(image, name):
    a = degrade(image, name, 0.7, np.random.default_rng(3))
    b = degrade(image, name, 0.7, np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", ["noisy", "rainy", "hazy"])
def test_other_seed_other_result(image, name):
    a = degrade(image, name, 0.7, np.random.default_rng(3))
    b = degrade(image, name, 0.7, np.random.default_rng(4))
    assert not np.array_equal(a, b)


@pytest.mark.parametrize("name", list(DEGRADATIONS))
def test_stronger_is_worse(image, name):
    weak = np.mean([psnr(image, degrade(image, name, 0.1, np.random.default_rng(s))) for s in range(3)])
    strong = np.mean([psnr(image, degrade(image, name, 0.9, np.random.default_rng(s))) for s in range(3)])
    assert strong < weak


def test_clean_is_identity_copy(image):
    out = degrade(image, "clean", 0.5, np.random.default_rng(0))
    np.testing.assert_array_equal(out, image)
    assert out is not image


def test_input_not_modified(image):
    before = image.copy()
    for name in DEGRADATIONS:
        degrade(image, name, 1.0, np.random.default_rng(0))
    np.testing.assert_array_equal(image, before)


def test_kernels_are_normalised_and_convolution_keeps_flat_images():
    for k in (disk_kernel(2.5), line_kernel(9, 30)):
        assert abs(k.sum() - 1) < 1e-9
    flat = np.full((20, 30, 3), 0.25, dtype=np.float32)
    np.testing.assert_allclose(convolve(flat, line_kernel(7, 45)), flat, atol=1e-6)


def test_bad_input_is_one_line_error(image):
    with pytest.raises(ImageError, match="unknown degradation 'foggy'"):
        degrade(image, "foggy", 0.5, np.random.default_rng(0))
    with pytest.raises(ImageError, match="strength"):
        degrade(image, "noisy", 1.5, np.random.default_rng(0))
    with pytest.raises(ImageError, match="HxWx3"):
        degrade(image[..., 0], "noisy", 0.5, np.random.default_rng(0))


def test_missing_training_photos_say_how_to_fetch_them():
    from mmfir.measure.photos import WALLPAPERS, load_photo, missing_wallpapers
    from mmfir.runtime.errors import MmfirError

    name = next(iter(WALLPAPERS))
    assert name in missing_wallpapers()  # the suite's own empty cache
    with pytest.raises(MmfirError, match="python -m mmfir.measure.photos --fetch"):
        load_photo(name)
