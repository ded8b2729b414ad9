"""Autotune: measured choice, cache miss then hit, the 'why', and precision kept as asked."""
from __future__ import annotations

import importlib.util
import json
import shutil

import pytest

from mmfir.runtime.backends.auto import CACHE_FILE, choose_backend
from mmfir.runtime.bundle import Bundle
from mmfir.runtime.errors import BackendUnavailable
from mmfir.runtime.spec import Precision

HAVE_OV = importlib.util.find_spec("openvino") is not None


@pytest.fixture
def bundle(tiny_bundle, tmp_path):
    shutil.copytree(tiny_bundle, tmp_path / "b")
    return Bundle.open(tmp_path / "b")


def test_miss_measures_then_hit_reuses(bundle):
    candidates = ["ort-cpu", "ov-cpu"] if HAVE_OV else ["ort-cpu"]
    name, precision, why = choose_backend(bundle, "fp32", candidates)
    assert name in candidates and precision == Precision.FP32
    assert why.startswith(f"auto chose {name}/fp32: ") and "measured now" in why
    for c in candidates:
        assert f"{c}/fp32: " in why and " ms" in why
    cache = json.loads((bundle.root / CACHE_FILE).read_text())
    (entry,) = cache["entries"].values()
    times = {n: t["ms"] for n, t in entry["times"].items()}
    assert set(times) == set(candidates) and name == min(times, key=times.get)

    again = choose_backend(bundle, "fp32", candidates)
    assert again[:2] == (name, precision) and f"cached in {bundle.root / CACHE_FILE}" in again[2]

    fresh = choose_backend(bundle, "fp32", candidates, refresh=True)
    assert "measured now" in fresh[2]


def test_cache_is_per_precision_and_candidates(bundle):
    choose_backend(bundle, "fp32", ["ort-cpu"])
    name, precision, why = choose_backend(bundle, "fp16", ["ort-cpu"])
    assert (name, precision) == ("ort-cpu", Precision.FP16) and "measured now" in why
    assert len(json.loads((bundle.root / CACHE_FILE).read_text())["entries"]) == 2


def test_never_picks_a_backend_that_cannot_run_the_precision(bundle):
    from mmfir.runtime.backends.ov import OpenVinoBackend

    name, precision, why = choose_backend(bundle, "fp16", ["ort-cpu", "ov-cpu", "trt"])
    assert (name, precision) == ("ort-cpu", Precision.FP16)
    ok, reason = OpenVinoBackend.supports("fp16")
    assert not ok and f"ov-cpu ({reason})" in why
    if HAVE_OV:  # installed, so the reason is the precision, not the package
        assert reason == "ov-cpu does not run fp16 (it runs fp32, bf16, int8)"
    with pytest.raises(BackendUnavailable, match="no backend here runs fp16"):
        choose_backend(bundle, "fp16", ["ov-cpu"])
