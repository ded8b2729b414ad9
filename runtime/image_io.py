"""Image files in and out (PIL only): modes, bit depth, alpha, EXIF orientation, atomic writes.

Decoding turns every supported file into a ``DecodedImage``: RGB pixels of the file's own bit depth
(uint8, or uint16 for 16-bit grayscale), plus the alpha channel and what is needed to write the
result back in kind:

- EXIF orientation is applied (pixels come out upright; the output carries no orientation tag).
- Grayscale (L, 1, I;16, I) is replicated to RGB for the networks and written back as grayscale
  (ITU-R 601 luma of the restored RGB), at its own bit depth: 16-bit stays 16-bit.
- Alpha (RGBA, LA, palette with transparency) is not restored; the original alpha is re-attached.
- CMYK, YCbCr, LAB, HSV are converted to RGB and written as RGB. Palette images are written as RGB(A).
- Pillow decodes 16-bit *RGB* PNGs to 8 bits, so those come out 8-bit (a Pillow limitation).

Writes go through ``files.atomic_write``. A file larger than ``max_pixels`` is refused before its pixels are decoded (decompression bombs).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageError
from .files import atomic_write

DEFAULT_MAX_PIXELS = 100_000_000  # 100 MP: 10000 x 10000
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp", ".gif", ".ppm", ".pgm", ".pnm")
# suffix -> PIL format written; suffixes not here are written as PNG
WRITE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF",
                 ".webp": "WEBP", ".bmp": "BMP"}
DEEP_OR_ALPHA_FORMATS = ("PNG", "TIFF")  # formats that keep 16-bit grayscale and alpha
_TO_RGB = {"CMYK", "YCbCr", "LAB", "HSV", "RGBX"}


@dataclass
class DecodedImage:
    pixels: np.ndarray             # H x W x 3, uint8 or uint16 (grayscale replicated to RGB)
    alpha: np.ndarray | None = None  # H x W, same dtype as pixels
    grayscale: bool = False
    icc_profile: bytes | None = None
    source: Path | None = None

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def max_value(self) -> int:
        return 65535 if self.pixels.dtype == np.uint16 else 255

    @property
    def bit_depth(self) -> int:
        return 16 if self.pixels.dtype == np.uint16 else 8

    def to_float(self) -> np.ndarray:
        """H x W x 3 float32 in [0, 1]."""
        return self.pixels.astype(np.float32) / np.float32(self.max_value)


def from_array(array: np.ndarray) -> DecodedImage:
    """An in-memory RGB image: uint8/uint16 H x W x 3, or float H x W x 3 in [0, 1] (stored as 16-bit)."""
    array = np.asarray(array)
    if array.ndim != 3 or array.shape[2] != 3:
        raise ImageError(f"expected an H x W x 3 RGB array, got shape {array.shape}")
    if array.dtype.kind == "f":
        array = np.round(np.clip(array, 0, 1) * 65535).astype(np.uint16)
    elif array.dtype not in (np.uint8, np.uint16):
        raise ImageError(f"unsupported pixel type {array.dtype}; use uint8, uint16 or float in [0, 1]")
    return DecodedImage(np.ascontiguousarray(array))


def open_checked(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Open an image lazily (header only) and refuse empty, non-image, 0-pixel or oversized files."""
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise ImageError(f"{path}: empty file")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path)
    except ImageError:
        raise
    except Image.DecompressionBombError:
        raise ImageError(f"{path}: image too large (decompression bomb guard); limit is "
                         f"{max_pixels / 1e6:g} MP") from None
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not an image or an unsupported format") from None
    except (OSError, SyntaxError, ValueError) as err:
        raise ImageError(f"{path}: cannot read image ({err})") from None
    w, h = img.size
    if w * h == 0:
        raise ImageError(f"{path}: image has no pixels ({w}x{h})")
    if w * h > max_pixels:
        raise ImageError(f"{path}: image is {w}x{h} = {w * h / 1e6:.0f} MP, more than the limit of "
                         f"{max_pixels / 1e6:g} MP (raise it with --max-pixels if the machine has the memory)")
    return img


def load_image(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> DecodedImage:
    """Decode a file into a DecodedImage; any problem is an ImageError naming the file."""
    img = open_checked(path, max_pixels)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img.load()
            img = ImageOps.exif_transpose(img)
        decoded = decode_pil(img)
    except ImageError as err:
        raise ImageError(f"{path}: {err}") from None
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        raise ImageError(f"{path}: corrupt or truncated image ({err})") from None
    decoded.source = Path(path)
    return decoded


def decode_pil(img: Image.Image) -> DecodedImage:
    """A loaded PIL image (any supported mode) as a DecodedImage."""
    icc = img.info.get("icc_profile")
    img = _canonical_mode(img)
    alpha = None
    if img.mode in ("LA", "RGBA"):
        alpha = np.asarray(img.getchannel("A"))
        img = img.convert("L" if img.mode == "LA" else "RGB")
    if img.mode == "RGB":
        return DecodedImage(np.asarray(img).copy(), alpha, False, icc)
    gray = np.asarray(img)
    gray = gray.astype(np.uint16) if img.mode != "L" else gray
    return DecodedImage(np.repeat(gray[..., None], 3, axis=2), alpha, True, icc)


def _canonical_mode(img: Image.Image) -> Image.Image:
    """Reduce PIL's modes to L, LA, RGB, RGBA and 16-bit grayscale (I;16)."""
    mode = img.mode
    if mode in ("L", "LA", "RGB", "RGBA", "I;16"):
        return img
    if mode in ("P", "PA"):
        return img.convert("RGBA" if mode == "PA" or "transparency" in img.info else "RGB")
    if mode == "1":
        return img.convert("L")
    if mode in ("La", "RGBa"):
        return img.convert(mode.upper())
    if mode in _TO_RGB:
        return img.convert("RGB")
    if mode in ("I", "I;16B", "I;16L", "I;16N"):
        arr = np.asarray(img).astype(np.int64)
        if arr.min() < 0 or arr.max() > 65535:
            raise ImageError(f"{mode} image has values outside 0..65535; save it as 8- or 16-bit")
        return Image.fromarray(arr.astype(np.uint16))
    raise ImageError(f"unsupported image mode {mode}; convert it to 8-bit or 16-bit RGB/grayscale")


def encode_result(restored: np.ndarray, like: DecodedImage) -> Image.Image:
    """The restored H x W x 3 float image in [0, 1] as a PIL image of the input's kind."""
    x = np.clip(restored, 0.0, 1.0, dtype=np.float32)  # the one full-size float copy (large images)
    if like.grayscale:
        x = x[..., 0] * 0.299 + x[..., 1] * 0.587 + x[..., 2] * 0.114
    x *= like.max_value
    x = np.rint(x, out=x).astype(like.pixels.dtype)
    img = Image.fromarray(x)
    if like.alpha is None:
        return img
    if like.bit_depth == 16:  # PIL has no 16-bit alpha modes; not produced by decode_pil
        raise ImageError("16-bit images with alpha are not supported")
    img = img.convert("L" if like.grayscale else "RGB")
    img.putalpha(Image.fromarray(like.alpha))
    return img


def output_name(input_path: Path, like: DecodedImage | None = None) -> str:
    """File name of the output for an input: same name, same format where it can hold the result."""
    suffix = input_path.suffix.lower()
    fmt = WRITE_FORMATS.get(suffix)
    needs_deep = like is not None and (like.alpha is not None or like.bit_depth == 16)
    if fmt is None or (needs_deep and fmt not in DEEP_OR_ALPHA_FORMATS):
        return input_path.stem + ".png"
    return input_path.name


def save_image(img: Image.Image, path: str | Path, icc_profile: bytes | None = None) -> Path:
    """Write atomically (temporary name in the same folder, then rename; mode per the umask); format
    from the suffix."""
    path = Path(path)
    fmt = WRITE_FORMATS.get(path.suffix.lower(), "PNG")
    options = {"quality": 95} if fmt in ("JPEG", "WEBP") else {}
    if icc_profile and fmt in ("PNG", "JPEG", "TIFF", "WEBP"):
        options["icc_profile"] = icc_profile
    return atomic_write(path, lambda f: img.save(f, format=fmt, **options))
