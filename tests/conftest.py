"""Shared fixtures: tiny models with seeded random weights, real photos from scikit-image."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest


def have(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


requires_torch = pytest.mark.skipif(not (have("torch") and have("open_clip")),
                                    reason="needs mmfir[export] (torch, open_clip)")


@pytest.fixture(scope="session")
def tiny_model():
    pytest.importorskip("torch")
    from mmfir.models import build_model

    return build_model("tiny", seed=0)


@pytest.fixture(scope="session")
def photos() -> dict[str, np.ndarray]:
    """A few real photographs as float32 HWC in [0, 1] (scikit-image's bundled data)."""
    data = pytest.importorskip("skimage.data")
    out = {}
    for name in ("astronaut", "chelsea", "coffee"):
        img = getattr(data, name)()
        out[name] = (img[..., :3].astype(np.float32) / 255.0)
    return out
