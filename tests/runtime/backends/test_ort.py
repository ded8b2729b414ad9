"""onnxruntime backends on real sessions: laziness, options, hash checks, dropped providers, auto."""
from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from mmfir.runtime.backends import backend_status, create_backend, deployable_backends
from mmfir.runtime.backends.auto import first_available, resolve_auto
from mmfir.runtime.backends.ort import OrtCudaBackend, provider_status
from mmfir.runtime.bundle import Bundle
from mmfir.runtime.errors import BackendUnavailable, BundleError, UsageError
from mmfir.runtime.spec import ENCODER, RESTORER, Precision


@pytest.fixture(scope="module")
def bundle(tiny_bundle) -> Bundle:
    return Bundle.open(tiny_bundle)


def encoder_feeds(bundle: Bundle, batch: int = 2) -> dict[str, np.ndarray]:
    s = bundle.specs[ENCODER].input("image").shape[-1]
    return {"image": np.random.default_rng(0).standard_normal((batch, 3, s, s)).astype(np.float32)}


def test_sessions_are_lazy_and_outputs_follow_the_spec(bundle):
    with create_backend("ort-cpu", bundle, threads=1) as backend:
        assert backend.sessions == {}
        out = backend.run(ENCODER, encoder_feeds(bundle))
        assert list(backend.sessions) == [ENCODER]
        spec = bundle.specs[ENCODER]
        assert list(out) == spec.output_names
        assert out["mmf"].shape[0] == 2 and out["mmf"].dtype == np.float32
        restored = backend.run(RESTORER, {"image": np.full((2, 3, 48, 64), 0.5, np.float32), "mmf": out["mmf"]})
        assert restored["restored"].shape == (2, 3, 48, 64)


def test_session_options(bundle):
    import onnxruntime as ort

    backend = create_backend("ort-cpu", bundle, threads=1, optimization="disable")
    opts = backend.session_options()
    assert opts.intra_op_num_threads == 1
    assert opts.graph_optimization_level == ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    if Precision.FP16 in bundle.precisions():
        fp16 = create_backend("ort-cpu", bundle, Precision.FP16)
        assert fp16.session_options().graph_optimization_level != ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    with pytest.raises(UsageError, match="optimization level"):
        create_backend("ort-cpu", bundle, optimization="fastest").session_options()
    backend = create_backend("ort-cpu", bundle, disabled_optimizers=["NchwcTransformer"])
    assert backend.run(ENCODER, encoder_feeds(bundle, 1))["mmf"].shape[0] == 1


def test_tampered_graph_is_refused(bundle, tmp_path):
    copy = tmp_path / "bundle"
    shutil.copytree(str(bundle.root), copy)
    with open(copy / "restorer.onnx", "ab") as f:
        f.write(b"\0")
    backend = create_backend("ort-cpu", Bundle.open(copy))
    backend.run(ENCODER, encoder_feeds(bundle))  # the encoder file is intact
    with pytest.raises(BundleError, match="SHA-256"):
        backend.run(RESTORER, {"image": np.zeros((1, 3, 32, 32), np.float32),
                               "mmf": np.zeros((1, *bundle.specs[RESTORER].input("mmf").shape[1:]), np.float32)})


def test_dropped_provider_is_an_error_not_a_fallback(bundle):
    if provider_status("CUDAExecutionProvider")[0]:
        pytest.skip("CUDA provider usable here")
    ok, why = backend_status("ort-cuda")
    assert not ok and why
    with pytest.raises(BackendUnavailable, match="not available"):
        create_backend("ort-cuda", bundle)
    backend = OrtCudaBackend(bundle)  # bypass the availability check: ORT would fall back to CPU
    with warnings.catch_warnings(), pytest.raises(BackendUnavailable, match="dropped CUDAExecutionProvider"):
        warnings.simplefilter("ignore")
        backend.run(ENCODER, encoder_feeds(bundle))


def test_first_available_follows_the_registry_priorities():
    order = deployable_backends()
    assert "torch" not in order and order.index("trt") < order.index("ov-cpu") < order.index("ort-cpu")
    name, reason = first_available(Precision.FP32)
    assert name in order and backend_status(name, Precision.FP32)[0]
    assert name in reason
    better = order[:order.index(name)]
    assert not any(backend_status(n, Precision.FP32)[0] for n in better)


def test_auto_measures_once_then_uses_the_cache(bundle, tmp_path):
    copy = Path(shutil.copytree(bundle.root, tmp_path / "bundle"))
    measured = Bundle.open(copy)
    name, reason = resolve_auto(measured, Precision.FP32, threads=1)
    assert backend_status(name)[0] and name in reason and "measured now" in reason
    assert (copy / "autotune.json").is_file()
    again, reason = resolve_auto(Bundle.open(copy), Precision.FP32, threads=1)
    assert again == name and "cached" in reason


@pytest.mark.ort_gpu
def test_ort_cuda_runs_when_usable(bundle):
    if not provider_status("CUDAExecutionProvider")[0]:
        pytest.skip(provider_status("CUDAExecutionProvider")[1])
    feeds = encoder_feeds(bundle)
    with create_backend("ort-cuda", bundle) as gpu, create_backend("ort-cpu", bundle) as cpu:
        a, b = gpu.run(ENCODER, feeds), cpu.run(ENCODER, feeds)
        assert np.allclose(a["degradation_logits"], b["degradation_logits"], atol=1e-3)
