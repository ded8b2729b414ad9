"""CLIP preprocessing in numpy/PIL vs open_clip's own transform and MMFIR.clip_input."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from support import requires_torch
from mmfir.runtime.image_io import from_array
from mmfir.runtime.preprocess import ClipPreprocess, center_crop_or_pad, texture_window

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
@pytest.mark.parametrize("mode", ["crop", "texture"])
def test_native_modes_equal_mmfir_clip_input(mode, photos8):
    """The runtime's crop and texture windows are the torch model's, on odd sizes and a too-small image."""
    import torch
    from mmfir.models import build_model
    from mmfir.models.config import load_config

    cfg = load_config("tiny")
    model = build_model(replace(cfg, encoder=replace(cfg.encoder, preprocess=mode)), seed=0)
    enc = model.cfg.encoder
    ours = ClipPreprocess(enc.vision.image_size, mode, enc.mean, enc.std)
    small = photos8[0][:97, :61]  # smaller than image_size on one axis after padding: reflect-padded
    for img in photos8 + [small, photos8[1][:50, :40]]:
        x = from_array(np.ascontiguousarray(img))
        ref = model.clip_input(torch.from_numpy(np.moveaxis(x.to_float(), 2, 0))[None])[0].numpy()
        assert np.max(np.abs(ours(x) - ref)) <= 1e-6, img.shape


def test_texture_window_ranks_windows_by_detail():
    """A flat image with one detailed block and one more detailed block: rank 0 is flat, the top rank the
    busiest block, 0.75 of the ranking the detailed block; ties keep grid order."""
    rng = np.random.default_rng(0)
    img = np.full((128, 192, 3), 0.5, np.float32)
    img[64:128, 0:64] += rng.normal(0, 0.05, (64, 64, 3)).astype(np.float32)  # detailed
    img[0:64, 128:192] += rng.normal(0, 0.2, (64, 64, 3)).astype(np.float32)  # most detailed
    assert texture_window(img, 64, rank=0.0) == (0, 0)
    assert texture_window(img, 64, rank=0.99) == (0, 128)
    assert texture_window(np.full((128, 128, 3), 0.3, np.float32), 64) == (64, 0)  # ties: grid order, 4 windows
    # 15 windows: above rank 0.75 lie the three that hold half or all of the busiest block
    assert texture_window(img, 64) == (64, 0)


def test_16bit_input_matches_8bit_closely(photos8):
    img8 = np.ascontiguousarray(photos8[1])
    img16 = img8.astype(np.uint16) * 257
    for mode in ("resize", "crop", "texture"):
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
