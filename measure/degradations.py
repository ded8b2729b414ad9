"""Synthetic degradations of [0, 1] float32 HWC RGB images (numpy + PIL only).

Each degradation takes ``(image, strength, rng)``: ``strength`` in [0, 1] scales how strong it is
(the evaluation uses 0.25, 0.5 and 0.75), ``rng`` is a seeded ``numpy.random.Generator`` for the
random parts (noise, kernel shape, streak positions). The output has the input's shape, dtype
float32, values in [0, 1]. Names match the class names of the shipped configs. Training and
evaluation use these same functions; the ranges (strength 0 .. 1) are the kinds users meet:

==================  ================================================================================
noisy               additive white Gaussian noise, sigma 15/255 .. 50/255
blurry              defocus (disk, radius 1 .. 3 px) or linear motion (length 3 .. 11 px, any angle)
jpeg-compressed     JPEG (PIL, 4:2:0), quality 40 .. 10
low-light           gamma 1.2 .. 2.2 (x0.8-1.2), gain 0.5 .. 0.1 (x0.85-1.15), sensor noise 1 .. 2/255
hazy                I = J t + A (1 - t), t = exp(-beta depth), beta 0.4 .. 2.0, airlight A 0.7 .. 1.0
                    with a tint of up to 0.04 per channel, depth a ramp in a random direction
rainy               streaks of density 0.2 % .. 1.2 % of pixels, length 8-14 + 16 x strength px,
                    within 20 degrees of vertical, screen-blended
==================  ================================================================================
"""
from __future__ import annotations

import io
from typing import Callable

import numpy as np
from PIL import Image

from mmfir.runtime.errors import ImageError

Degradation = Callable[[np.ndarray, float, np.random.Generator], np.ndarray]


def _check(image: np.ndarray) -> np.ndarray:
    if image.ndim != 3 or image.shape[2] != 3:
        raise ImageError(f"degradations need an HxWx3 RGB image, got shape {image.shape}")
    return np.asarray(image, dtype=np.float32)


def _finish(image: np.ndarray) -> np.ndarray:
    return np.clip(image, 0.0, 1.0).astype(np.float32)


def convolve(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Same-size 2-D convolution of each channel with ``kernel`` (FFT, symmetric padding)."""
    kh, kw = kernel.shape
    ph, pw = kh // 2, kw // 2
    padded = np.pad(image, ((ph, kh - 1 - ph), (pw, kw - 1 - pw), (0, 0)), mode="symmetric")
    h, w = padded.shape[:2]
    spectrum = np.fft.rfft2(padded, axes=(0, 1)) * np.fft.rfft2(kernel, s=(h, w))[..., None]
    full = np.fft.irfft2(spectrum, s=(h, w), axes=(0, 1))
    return full[kh - 1:, kw - 1:][:image.shape[0], :image.shape[1]].astype(np.float32)


def disk_kernel(radius: float) -> np.ndarray:
    """Defocus blur: a uniform disk (anti-aliased edge) of the given radius in pixels."""
    r = int(np.ceil(radius))
    y, x = np.mgrid[-r:r + 1, -r:r + 1]
    k = np.clip(radius + 0.5 - np.hypot(x, y), 0.0, 1.0)
    return k / k.sum()


def line_kernel(length: float, angle_deg: float, thickness: float = 1.0) -> np.ndarray:
    """Motion blur: a line segment of ``length`` pixels at ``angle_deg``, anti-aliased."""
    r = int(np.ceil(length / 2)) + 1
    y, x = np.mgrid[-r:r + 1, -r:r + 1].astype(np.float64)
    a = np.deg2rad(angle_deg)
    along = x * np.cos(a) + y * np.sin(a)
    across = -x * np.sin(a) + y * np.cos(a)
    k = np.clip(thickness / 2 + 0.5 - np.abs(across), 0, 1) * np.clip(length / 2 + 0.5 - np.abs(along), 0, 1)
    return k / k.sum()


def add_noise(image: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Additive white Gaussian noise, sigma 15/255 .. 50/255."""
    sigma = (15.0 + 35.0 * strength) / 255.0
    return _finish(image + rng.normal(0.0, sigma, image.shape).astype(np.float32))


def blur(image: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Defocus (disk, radius 1 .. 3 px) or linear motion blur (length 3 .. 11 px, any angle)."""
    if rng.random() < 0.5:
        kernel = disk_kernel(1.0 + 2.0 * strength)
    else:
        kernel = line_kernel(3.0 + 8.0 * strength, rng.uniform(0.0, 180.0))
    return _finish(convolve(image, kernel))


def jpeg(image: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """JPEG compression (PIL, 4:2:0), quality 40 .. 10."""
    quality = int(round(40 - 30 * strength))
    pil = Image.fromarray(np.round(np.clip(image, 0, 1) * 255).astype(np.uint8))
    buf = io.BytesIO()
    pil.save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    return _finish(np.asarray(Image.open(buf).convert("RGB"), dtype=np.float32) / 255.0)


def low_light(image: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Under-exposure: gamma 1.2 .. 2.2 then gain 0.5 .. 0.1, plus faint sensor noise."""
    gamma = 1.2 + 1.0 * strength * rng.uniform(0.8, 1.2)
    gain = (0.5 - 0.4 * strength) * rng.uniform(0.85, 1.15)
    dark = gain * np.power(image, gamma)
    sigma = 0.004 * (1 + strength)
    return _finish(dark + rng.normal(0.0, sigma, image.shape).astype(np.float32))


def _depth_ramp(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A smooth pseudo-depth map in [0, 1]: a ramp in a random direction (far side at the top)."""
    h, w = shape
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    a = rng.uniform(-0.6, 0.6) + np.pi / 2
    d = -(x / max(w, 1) * np.cos(a) + y / max(h, 1) * np.sin(a))
    return (d - d.min()) / max(float(d.max() - d.min()), 1e-6)


def haze(image: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Atmospheric scattering I = J t + A (1 - t), t = exp(-beta * depth), bright greyish airlight."""
    airlight = rng.uniform(0.7, 1.0) + rng.uniform(-0.04, 0.04, 3)
    beta = 0.4 + 1.6 * strength
    depth = 0.3 + 0.7 * _depth_ramp(image.shape[:2], rng)
    t = np.exp(-beta * depth)[..., None]
    return _finish(image * t + airlight.astype(np.float32) * (1 - t))


def rain(image: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Rain streaks: sparse drops smeared along a near-vertical direction, screen-blended."""
    h, w = image.shape[:2]
    density = 0.002 + 0.01 * strength
    drops = (rng.random((h, w)) < density).astype(np.float32) * rng.uniform(0.5, 1.0, (h, w)).astype(np.float32)
    length = rng.uniform(8, 14) + 16 * strength
    kernel = line_kernel(length, 90 + rng.uniform(-20, 20))
    streaks = convolve(drops[..., None], kernel)[..., 0]
    streaks = np.clip(streaks * length * rng.uniform(0.5, 0.8), 0, 1)[..., None]
    return _finish(1 - (1 - image) * (1 - streaks))


def identity(image: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    return image.astype(np.float32, copy=True)


DEGRADATIONS: dict[str, Degradation] = {
    "noisy": add_noise,
    "blurry": blur,
    "jpeg-compressed": jpeg,
    "low-light": low_light,
    "hazy": haze,
    "rainy": rain,
}
# other vocabularies' names for the same synthetic degradations (DA-CLIP's classes, see `mmfir import`)
ALIASES = {"motion-blurry": "blurry"}
ALL_CLASSES: dict[str, Degradation] = {"clean": identity, **DEGRADATIONS,
                                       **{alias: DEGRADATIONS[name] for alias, name in ALIASES.items()}}


def degrade(image: np.ndarray, name: str, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Apply the degradation called ``name`` (one of ``ALL_CLASSES``) at ``strength`` in [0, 1]."""
    if name not in ALL_CLASSES:
        raise ImageError(f"unknown degradation '{name}' (known: {', '.join(ALL_CLASSES)})")
    if not 0.0 <= strength <= 1.0:
        raise ImageError(f"degradation strength must be in [0, 1], got {strength}")
    return ALL_CLASSES[name](_check(image), float(strength), rng)
