"""Shared fixtures: tiny models with seeded random weights, real photos from scikit-image.

The whole session runs with its own empty ``MMFIR_CACHE`` (set before any test imports mmfir), so no
test can pass against a bundle, autotune record or compiled model that an earlier run or older code
left in the user's cache; subprocesses inherit it.
"""
from __future__ import annotations

import os
import shutil
import tempfile

import numpy as np
import pytest

_CACHE = tempfile.mkdtemp(prefix="mmfir-test-cache-")
os.environ["MMFIR_CACHE"] = _CACHE


def pytest_unconfigure(config):
    shutil.rmtree(_CACHE, ignore_errors=True)


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


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory):
    """A validated bundle (FP32 + FP16 ONNX) of build_model('tiny', seed=0); exported once per session.

    Takes about 30-90 s on 2 cores (torch.onnx dynamo export of both networks + validation).
    Treat it as read-only: copy it (shutil.copytree) before modifying files or the manifest.
    """
    pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from mmfir.export import export_bundle
    from mmfir.models import build_model

    out = tmp_path_factory.mktemp("bundles") / "tiny"
    export_bundle(build_model("tiny", seed=0), out, progress=False)
    return out
