"""Image quality metrics in numpy: PSNR and SSIM (Gaussian window, as scikit-image's defaults
with ``gaussian_weights=True, sigma=1.5, use_sample_covariance=False``).

Images are float HxW or HxWxC arrays with values in [0, ``data_range``].
"""
from __future__ import annotations

import numpy as np

from mmfir.runtime.errors import ImageError


def _pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ImageError(f"images to compare differ in shape: {a.shape} vs {b.shape}")
    return a, b


def psnr(reference: np.ndarray, image: np.ndarray, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB (inf for identical images)."""
    ref, img = _pair(reference, image)
    mse = float(np.mean((ref - img) ** 2))
    return float("inf") if mse == 0 else float(10.0 * np.log10(data_range ** 2 / mse))


def gaussian_kernel1d(sigma: float = 1.5, truncate: float = 3.5) -> np.ndarray:
    radius = int(truncate * sigma + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def gaussian_filter2d(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Separable filter of a 2-D array, symmetric ('reflect' in scipy's terms) boundary."""
    r = len(kernel) // 2
    out = np.pad(image, ((r, r), (0, 0)), mode="symmetric")
    out = sum(w * out[i:i + image.shape[0]] for i, w in enumerate(kernel))
    out = np.pad(out, ((0, 0), (r, r)), mode="symmetric")
    return sum(w * out[:, i:i + image.shape[1]] for i, w in enumerate(kernel))


def _ssim_channel(x: np.ndarray, y: np.ndarray, data_range: float, kernel: np.ndarray) -> float:
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    f = lambda z: gaussian_filter2d(z, kernel)  # noqa: E731
    ux, uy = f(x), f(y)
    vx, vy, vxy = f(x * x) - ux * ux, f(y * y) - uy * uy, f(x * y) - ux * uy
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    pad = len(kernel) // 2
    return float(s[pad:-pad, pad:-pad].mean())


def ssim(reference: np.ndarray, image: np.ndarray, data_range: float = 1.0, sigma: float = 1.5) -> float:
    """Structural similarity, mean over channels (HxWxC) or of one HxW channel."""
    ref, img = _pair(reference, image)
    kernel = gaussian_kernel1d(sigma)
    if min(ref.shape[:2]) < len(kernel):
        raise ImageError(f"SSIM needs images of at least {len(kernel)}x{len(kernel)} pixels, got {ref.shape[:2]}")
    if ref.ndim == 2:
        return _ssim_channel(ref, img, data_range, kernel)
    return float(np.mean([_ssim_channel(ref[..., c], img[..., c], data_range, kernel) for c in range(ref.shape[2])]))


def grid_ratio(image: np.ndarray, period: int = 16) -> float:
    """Block artifacts: the mean jump between neighbouring pixels across the lines of a ``period``-pixel grid
    (columns and rows ``period k - 1 | period k``, origin at the top left) over the mean jump elsewhere.

    1.0 means no grid; natural photos measure 0.97-1.05. A U-Net whose coarsest level works on
    ``period``-pixel cells and switches its output from cell to cell measures well above (the first shipped
    model: 1.8 on restored hazy photos). Channels are averaged first.
    """
    img = np.asarray(image, dtype=np.float64)
    if img.ndim == 3:
        img = img.mean(axis=2)
    if img.ndim != 2 or min(img.shape) < 2 * period:
        raise ImageError(f"grid_ratio needs an image of at least {2 * period}x{2 * period} pixels, got {img.shape}")
    dx, dy = np.abs(np.diff(img, axis=1)), np.abs(np.diff(img, axis=0))  # gap after column j / row i
    on_x = (np.arange(dx.shape[1]) + 1) % period == 0
    on_y = (np.arange(dy.shape[0]) + 1) % period == 0
    across = np.concatenate([dx[:, on_x].ravel(), dy[on_y].ravel()]).mean()
    rest = np.concatenate([dx[:, ~on_x].ravel(), dy[~on_y].ravel()]).mean()
    return float(across / max(rest, 1e-12))
