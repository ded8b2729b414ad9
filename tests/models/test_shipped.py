"""The shipped tiny checkpoint: loads, records its held-out photos, and restores them (ORT CPU bundle)."""
from __future__ import annotations

import json

import pytest

from support import requires_torch

pytestmark = requires_torch

# measured on the held-out photos at mid strength: +4.0 dB mean, 94% accuracy (ORT CPU FP32)
MIN_MEAN_GAIN_DB = 3.0
MIN_ACCURACY = 0.85


@pytest.fixture(scope="module")
def shipped_bundle():
    from mmfir.cli.default_bundle import default_bundle

    return default_bundle(progress=False)


@pytest.fixture(scope="module")
def summary(shipped_bundle):
    pytest.importorskip("skimage")
    from mmfir.runtime.backends.base import create_backend
    from mmfir.measure.demo import held_out_names, run_cases
    from mmfir.measure.evaluate import make_cases, summarize
    from mmfir.measure.photos import held_out_photos
    from mmfir.runtime.pipeline import Pipeline

    pipeline = Pipeline(create_backend("ort-cpu", shipped_bundle))
    scores = run_cases(pipeline, make_cases(held_out_photos(held_out_names(shipped_bundle))), None, progress=False)
    return {row["degradation"]: row for row in summarize(scores)}


def test_shipped_checkpoint_loads_small_and_trained():
    from mmfir.models import load_checkpoint
    from mmfir.cli.default_bundle import shipped_checkpoint
    from mmfir.measure.photos import HELD_OUT_PHOTOS, TRAIN_PHOTOS

    path = shipped_checkpoint()
    assert path.stat().st_size < 12e6
    model, meta = load_checkpoint(path)
    assert model.cfg.name == "tiny"
    assert json.loads(meta["stage"]) == 2
    held, train = json.loads(meta["held_out_photos"]), json.loads(meta["train_photos"])
    assert held == list(HELD_OUT_PHOTOS) and train == list(TRAIN_PHOTOS) and not set(held) & set(train)


def test_bundle_is_cached_by_checkpoint_hash(shipped_bundle):
    from mmfir.runtime.files import sha256_file
    from mmfir.cli.default_bundle import default_bundle, shipped_checkpoint

    assert sha256_file(shipped_checkpoint())[:12] in shipped_bundle.root.name
    assert default_bundle(progress=False).root == shipped_bundle.root  # reused, not re-exported


def test_every_degradation_is_improved(summary):
    worse = {k: round(r["psnr_gain"], 2) for k, r in summary.items() if r["psnr_gain"] <= 0}
    assert not worse, f"restoration lowers PSNR for {worse}"


def test_mean_gain_and_accuracy(summary):
    mean = summary["mean"]
    assert mean["psnr_gain"] >= MIN_MEAN_GAIN_DB
    assert mean["ssim_after"] > mean["ssim_before"]
    assert mean["accuracy"] >= MIN_ACCURACY, {k: r["accuracy"] for k, r in summary.items()}
