"""The sample photographs: scikit-image's bundled photos (needs scikit-image, no download).

``HELD_OUT_PHOTOS`` are never trained on by ``mmfir.models.train``: the demo and the shipped-model
tests evaluate on them. Each photo has a caption (the content text used in training).
"""
from __future__ import annotations

import numpy as np

from mmfir.runtime.errors import MmfirError

TRAIN_PHOTOS = {
    "rocket": "a photo of a rocket on a launch pad",
    "motorcycle_left": "a photo of a motorcycle",
    "motorcycle_right": "a photo of a motorcycle",
    "hubble_deep_field": "a photo of galaxies in deep space",
    "immunohistochemistry": "a microscope image of stained tissue",
    "retina": "a photo of the retina of an eye",
    "logo": "a logo on a white background",
    "colorwheel": "a colour wheel",
    "camera": "a black and white photo of a cameraman",
    "coins": "a black and white photo of coins",
    "moon": "a black and white photo of the moon",
    "brick": "a black and white photo of a brick wall",
    "gravel": "a black and white photo of gravel",
    "grass": "a black and white photo of grass",
    "clock": "a black and white photo of a clock",
    "text": "a black and white photo of text",
    "page": "a scanned page of text",
    "cell": "a microscope image of cells",
}
HELD_OUT_PHOTOS = {
    "astronaut": "a photo of an astronaut",
    "chelsea": "a photo of a cat",
    "coffee": "a photo of a cup of coffee",
}


def load_photo(name: str) -> np.ndarray:
    """A scikit-image photo as float32 HxWx3 in [0, 1] (grey repeated to RGB, alpha dropped)."""
    try:
        from skimage import data
    except ImportError:
        raise MmfirError("the sample photos come from scikit-image: pip install scikit-image "
                         "(or evaluate your own images with `mmfir evaluate --images DIR`)") from None
    if name.startswith("motorcycle_"):
        img = data.stereo_motorcycle()[0 if name.endswith("left") else 1]
    elif name in TRAIN_PHOTOS or name in HELD_OUT_PHOTOS:
        img = getattr(data, name)()
    else:
        raise MmfirError(f"unknown sample photo '{name}' (known: {', '.join([*TRAIN_PHOTOS, *HELD_OUT_PHOTOS])})")
    img = np.asarray(img)
    if img.dtype == bool:
        img = img.astype(np.uint8) * 255
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return img[..., :3].astype(np.float32) / 255.0


def held_out_photos(names=None) -> dict[str, np.ndarray]:
    return {name: load_photo(name) for name in (names or HELD_OUT_PHOTOS)}
