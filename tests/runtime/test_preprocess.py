"""CLIP preprocessing in numpy/PIL vs open_clip's own transform and MMFIR.clip_input."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from support import requires_torch
from mmfir.runtime.image_io import from_array
from mmfir.runtime.preprocess import ClipPreprocess, center_crop_or_pad

MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)


@pytest.fixture(scope="module")
def photos8() -> list[np.ndarray]:
    """Real photos (uint8), including odd sizes whose centre crop offsets need rounding."""
    data = pytest.importorskip("skimage.data")
    astro, coffee, chelsea = data.astronaut(), data.coffee(), data.chelsea()
    return [astro, coffee, chelsea, astro[:301, :517], coffee[:400, :233], chelsea[3:300, 10:451]]


@requires_torch
@pytest.mark.parametrize("size", [224, 128])
def test_resize_mode_equals_open_clip(photos8, size):
    import open_clip

    transform = open_clip.image_transform(size, is_train=False, mean=MEAN, std=STD)
    ours = ClipPreprocess(size, "resize", MEAN, STD)
    for img in photos8:
        img = np.ascontiguousarray(img)
        ref = transform(Image.fromarray(img)).numpy()
        got = ours(from_array(img))
        assert got.shape == ref.shape == (3, size, size)
        assert np.max(np.abs(got - ref)) <= 1e-5, img.shape


@requires_torch
def test_crop_mode_equals_mmfir_clip_input(tiny_model, photos8):
    import torch

    cfg = tiny_model.cfg.encoder
    assert cfg.preprocess == "crop"
    ours = ClipPreprocess(cfg.vision.image_size, "crop", cfg.mean, cfg.std)
    small = photos8[0][:97, :61]  # smaller than image_size: reflect-padded on both axes
    for img in photos8 + [small]:
        x = from_array(np.ascontiguousarray(img))
        ref = tiny_model.clip_input(torch.from_numpy(np.moveaxis(x.to_float(), 2, 0))[None])[0].numpy()
        assert np.max(np.abs(ours(x) - ref)) <= 1e-6, img.shape


def test_16bit_input_matches_8bit_closely(photos8):
    img8 = np.ascontiguousarray(photos8[1])
    img16 = img8.astype(np.uint16) * 257
    for mode in ("resize", "crop"):
        pre = ClipPreprocess(224, mode, MEAN, STD)
        diff = np.abs(pre(from_array(img8)) - pre(from_array(img16)))
        # 'resize' on 8 bits rounds after each of PIL's two passes (like open_clip); 16-bit does not
        assert diff.max() <= (4 / 255 / min(STD) if mode == "resize" else 1e-5)
        assert diff.mean() <= (0.5 / 255 / min(STD) if mode == "resize" else 1e-6)


def test_center_crop_or_pad_shapes():
    img = np.arange(5 * 7 * 3, dtype=np.float32).reshape(5, 7, 3)
    assert center_crop_or_pad(img, 3).shape == (3, 3, 3)
    assert center_crop_or_pad(img, 6).shape == (6, 6, 3)
    assert np.array_equal(center_crop_or_pad(img, 3), img[1:4, 2:5])
