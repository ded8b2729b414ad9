"""Image decode/encode: modes, bit depth, alpha, EXIF orientation, bad files, atomic writes."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from mmfir.runtime.errors import ImageError
from mmfir.runtime.image_io import (decode_pil, encode_result, load_image, open_checked, output_name,
                                    save_image)


@pytest.fixture(scope="module")
def rgb8() -> np.ndarray:
    data = pytest.importorskip("skimage.data")
    return data.astronaut()[100:260, 120:330]  # 160 x 210, not square


def roundtrip(tmp_path, img: Image.Image, name: str):
    """Save img, load it, encode the decoded pixels back unchanged, save and reopen the output."""
    src = tmp_path / name
    img.save(src)
    decoded = load_image(src)
    out = tmp_path / ("out_" + output_name(src, decoded))
    save_image(encode_result(decoded.to_float(), decoded), out, decoded.icc_profile)
    return decoded, Image.open(out)


def test_rgb_roundtrip_is_lossless(tmp_path, rgb8):
    decoded, out = roundtrip(tmp_path, Image.fromarray(rgb8), "a.png")
    assert decoded.pixels.dtype == np.uint8 and not decoded.grayscale and decoded.alpha is None
    assert out.mode == "RGB" and np.array_equal(np.asarray(out), rgb8)


def test_rgba_alpha_is_kept(tmp_path, rgb8):
    alpha = np.tile(np.linspace(0, 255, rgb8.shape[1]).astype(np.uint8), (rgb8.shape[0], 1))
    decoded, out = roundtrip(tmp_path, Image.fromarray(np.dstack([rgb8, alpha])), "a.png")
    assert decoded.alpha is not None and decoded.pixels.shape == rgb8.shape
    assert out.mode == "RGBA"
    assert np.array_equal(np.asarray(out)[..., 3], alpha)
    assert np.array_equal(np.asarray(out)[..., :3], rgb8)


def test_16bit_gray_stays_16bit(tmp_path):
    gray16 = (np.linspace(0, 65535, 97 * 61).reshape(97, 61)).astype(np.uint16)
    decoded, out = roundtrip(tmp_path, Image.fromarray(gray16), "g.png")
    assert decoded.bit_depth == 16 and decoded.grayscale
    assert out.mode == "I;16"
    assert np.array_equal(np.asarray(out), gray16)


def test_gray_la_palette_cmyk(tmp_path, rgb8):
    gray = Image.fromarray(rgb8).convert("L")
    _, out = roundtrip(tmp_path, gray, "g.png")
    assert out.mode == "L" and np.max(np.abs(np.asarray(out).astype(int) - np.asarray(gray))) <= 1
    _, out = roundtrip(tmp_path, gray.convert("LA"), "la.png")
    assert out.mode == "LA"
    decoded, out = roundtrip(tmp_path, Image.fromarray(rgb8).convert("P"), "p.png")
    assert out.mode == "RGB" and not decoded.grayscale
    decoded = decode_pil(Image.fromarray(rgb8).convert("CMYK"))
    assert decoded.pixels.shape == rgb8.shape and decoded.pixels.dtype == np.uint8


def test_exif_orientation_is_applied(tmp_path, rgb8):
    img = Image.fromarray(rgb8)
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    img.save(tmp_path / "o.jpg", exif=exif, quality=100)
    decoded = load_image(tmp_path / "o.jpg")
    assert (decoded.height, decoded.width) == (rgb8.shape[1], rgb8.shape[0])
    upright = np.rot90(rgb8, k=-1)
    assert np.mean(np.abs(decoded.pixels.astype(int) - upright)) < 3  # JPEG loss only


@pytest.mark.parametrize("content, reason", [
    (b"", "empty file"),
    (b"this is not an image", "not an image"),
])
def test_bad_files_name_the_file(tmp_path, content, reason):
    path = tmp_path / "bad.png"
    path.write_bytes(content)
    with pytest.raises(ImageError, match=reason) as err:
        load_image(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_truncated_file(tmp_path, rgb8):
    Image.fromarray(rgb8).save(tmp_path / "full.png")
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="truncated"):
        load_image(tmp_path / "cut.png")


def test_pixel_limit_refuses_before_decoding(tmp_path, rgb8):
    Image.fromarray(rgb8).save(tmp_path / "a.png")
    with pytest.raises(ImageError, match="more than the limit"):
        open_checked(tmp_path / "a.png", max_pixels=1000)


def test_output_name_and_atomic_write(tmp_path, rgb8):
    decoded = decode_pil(Image.fromarray(np.dstack([rgb8, rgb8[..., 0]])))
    from pathlib import Path

    assert output_name(Path("x/photo.jpg")) == "photo.jpg"
    assert output_name(Path("x/photo.jpg"), decoded) == "photo.png"  # JPEG cannot hold alpha
    assert output_name(Path("x/anim.gif")) == "anim.png"
    save_image(encode_result(decoded.to_float(), decoded), tmp_path / "w.png")
    assert [p.name for p in tmp_path.iterdir()] == ["w.png"]  # no temporary file left
