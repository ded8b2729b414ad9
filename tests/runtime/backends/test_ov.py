"""`ov-cpu` on the tiny bundle: FP32 and BF16 contracts against torch, dynamic shapes, cache, telemetry."""
from __future__ import annotations

import sys

import numpy as np
import pytest

from mmfir.runtime.backends import create_backend
from mmfir.runtime.bundle import Bundle
from mmfir.measure.compare import compare
from mmfir.runtime.errors import BackendUnavailable
from mmfir.runtime.image_io import from_array
from mmfir.runtime.spec import RESTORER, Precision
from mmfir.measure.targets import Target

pytestmark = pytest.mark.openvino
ov = pytest.importorskip("openvino", reason="needs mmfir[openvino]")


def bf16_cpu() -> bool:
    from mmfir.runtime.cpu import bf16_support

    return bf16_support()[0]


@pytest.fixture(scope="module")
def images(photos):
    return {name: from_array(photos[name][:96, :112]) for name in ("astronaut", "coffee")}


@pytest.fixture(scope="module")
def report(tiny_bundle, tiny_model, images):
    targets = [Target("ov-cpu"), Target("ort-cpu")] + ([Target("ov-cpu", Precision.BF16)] if bf16_cpu() else [])
    return compare(Bundle.open(tiny_bundle), images, targets, end_to_end=True,
                   options={"torch": {"model": tiny_model}})


def result(report, target):
    return next(r for r in report.results if r.target == target)


def test_fp32_within_the_fp32_contract(report):
    ov32 = result(report, Target("ov-cpu"))
    assert ov32.error is None and ov32.passed, report.failures()
    max_abs = [c.value for c in ov32.checks if c.network == RESTORER and c.metric == "max_abs"]
    assert len(max_abs) == 2 and max(max_abs) <= 1e-4
    assert result(report, Target("ort-cpu")).passed


def test_bf16_within_the_bf16_contract_and_really_reduced(report):
    if not bf16_cpu():
        pytest.skip("this CPU reports no BF16")
    bf16 = result(report, Target("ov-cpu", Precision.BF16))
    assert bf16.passed, report.failures()
    psnr = min(c.value for c in bf16.checks if c.network == RESTORER and c.metric == "psnr_db")
    cosine = min(c.value for c in bf16.checks if c.metric == "cosine")
    assert 40 <= psnr < 120  # meets the contract, and is not secretly FP32 (FP32 gives ~150 dB)
    assert 0.999 <= cosine < 0.9999999


def test_dynamic_batch_and_size_and_compiled_cache(tiny_bundle, tmp_path):
    bundle = Bundle.open(tiny_bundle)
    with create_backend("ov-cpu", bundle, threads=1, cache_dir=tmp_path / "cache") as backend:
        tokens = bundle.specs[RESTORER].inputs[1].shape[1:]
        for shape in ((2, 3, 64, 96), (1, 3, 48, 32)):
            x = np.random.default_rng(0).random(shape, dtype=np.float32)
            out = backend.run(RESTORER, {"image": x, "mmf": np.zeros((shape[0], *tokens), np.float32)})
            assert out["restored"].shape == shape
        compiled = backend._requests[RESTORER].get_compiled_model()
        assert compiled.get_property("INFERENCE_NUM_THREADS") == 1
        assert str(compiled.get_property("INFERENCE_PRECISION_HINT")) in ("<Type: 'float32'>", "f32", "float32")
    assert any(p.suffix == ".blob" for p in (tmp_path / "cache").iterdir())


def test_a_repeated_shape_runs_a_static_model_with_the_same_result(tiny_bundle, tmp_path, monkeypatch):
    from mmfir.runtime.backends import ov as ov_backend

    monkeypatch.setattr(ov_backend, "STATIC_SHAPES", 2)
    bundle = Bundle.open(tiny_bundle)
    tokens = bundle.specs[RESTORER].inputs[1].shape[1:]
    rng = np.random.default_rng(1)

    def feeds(h, w):
        return {"image": rng.random((1, 3, h, w), dtype=np.float32),
                "mmf": rng.standard_normal((1, *tokens), dtype=np.float32)}

    with create_backend("ov-cpu", bundle, threads=1, cache_dir=tmp_path / "cache") as backend:
        first = feeds(64, 96)
        dynamic = backend.run(RESTORER, first)["restored"]
        assert not backend._static  # a shape seen once runs the dynamic model
        static = backend.run(RESTORER, first)["restored"]
        [(key, request)] = backend._static.items()
        shapes = [tuple(i.get_partial_shape().to_shape()) for i in request.get_compiled_model().inputs]
        assert (1, 3, 64, 96) in shapes  # compiled for exactly this shape
        np.testing.assert_allclose(static, dynamic, atol=1e-5)
        assert backend.run(RESTORER, feeds(64, 96))["restored"].shape == (1, 3, 64, 96)
        for h in (32, 48, 80):  # three more repeated shapes: only the two most recent stay
            backend.run(RESTORER, feeds(h, 32))
            backend.run(RESTORER, feeds(h, 32))
        assert [dict(k[1:])["image"] for k in backend._static] == [(1, 3, 48, 32), (1, 3, 80, 32)]
    with create_backend("ov-cpu", bundle, threads=1, static_shapes=False) as backend:
        for _ in range(3):
            backend.run(RESTORER, first)
        assert not backend._static
    monkeypatch.setattr(ov_backend, "STATIC_MAX_BYTES", {Precision.FP32: 1 << 20})  # the restorer is larger
    with create_backend("ov-cpu", bundle, threads=1) as backend:
        for _ in range(3):
            backend.run(RESTORER, first)
        assert not backend._static


def test_a_static_shape_that_fails_to_compile_falls_back_to_the_dynamic_model(tiny_bundle, monkeypatch, caplog):
    from mmfir.runtime.backends import ov as ov_backend

    core = ov_backend._core()

    class NoReshapeCore:  # compiles from a path (the dynamic model) but cannot read a model to reshape
        def compile_model(self, *args, **kwargs):
            return core.compile_model(*args, **kwargs)

        def read_model(self, *args, **kwargs):
            raise RuntimeError("Check 'DimType::merge' failed\nmore detail")

    monkeypatch.setattr(ov_backend, "_core", NoReshapeCore)
    bundle = Bundle.open(tiny_bundle)
    tokens = bundle.specs[RESTORER].inputs[1].shape[1:]
    feeds = {"image": np.zeros((1, 3, 32, 32), np.float32), "mmf": np.zeros((1, *tokens), np.float32)}
    with caplog.at_level("WARNING"), create_backend("ov-cpu", bundle, threads=1) as backend:
        outs = [backend.run(RESTORER, feeds)["restored"] for _ in range(3)]
        assert not backend._static and not backend.static_shapes
    np.testing.assert_array_equal(outs[0], outs[2])
    [record] = [r for r in caplog.records if "static shape" in r.getMessage()]
    assert "DimType::merge" in record.getMessage() and "more detail" not in record.getMessage()


def test_fp16_is_refused_clearly(tiny_bundle):
    with pytest.raises(BackendUnavailable, match="ov-cpu does not run fp16"):
        create_backend("ov-cpu", Bundle.open(tiny_bundle), "fp16")


TELEMETRY_PROBE = """
import sys, numpy as np
from mmfir.runtime.backends import create_backend
from mmfir.runtime.bundle import Bundle
backend = create_backend("ov-cpu", Bundle.open(sys.argv[1]), cache_dir=sys.argv[2])
backend.run("restorer", {"image": np.zeros((1, 3, 32, 32), np.float32),
                         "mmf": np.zeros((1, *backend.specs["restorer"].inputs[1].shape[1:]), np.float32)})
import openvino_telemetry.main as tm
print("consent", tm.Telemetry().consent)
"""


def test_telemetry_is_declined_and_writes_nothing(tiny_bundle, tmp_path):
    """In a fresh process with an empty HOME: no consent, no ~/intel client id or stats written."""
    import os
    import subprocess

    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "TF_BUILD", "JENKINS_URL")}
    env["HOME"] = str(home)
    proc = subprocess.run([sys.executable, "-c", TELEMETRY_PROBE, str(tiny_bundle), str(tmp_path / "cache")],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "consent False" in proc.stdout
    assert not (home / "intel").exists(), list((home / "intel").iterdir())


def test_export_validation_hook_checks_bf16(tiny_bundle, tiny_model):
    """What export validation runs for BF16 (the backend's own compile_onnx): torch FP32 reference, BF16 contract."""
    if not bf16_cpu():
        pytest.skip("this CPU reports no BF16")
    from mmfir.export.validate import compare_network, openvino_runner, reference_values

    graph = Bundle.open(tiny_bundle).graph
    cases = reference_values(tiny_model, graph)
    for name in graph.order:
        checks = compare_network(graph, name, tiny_bundle / graph[name].onnx_file(), Precision.BF16, cases,
                                 openvino_runner(Precision.BF16), "ov-cpu")
        assert checks and all(c.passed for c in checks), [str(c) for c in checks if not c.passed]
        assert all("ov-cpu/bf16 vs torch/fp32" in c.pair for c in checks)
        assert any(c.metric == "psnr_db" or c.metric == "cosine" for c in checks)


def test_tiled_batched_pipeline_matches_ort(tiny_bundle, photos):
    """Tiles (batched, dynamic tile shapes at the edges) through ov-cpu give ort-cpu's image."""
    from mmfir.runtime.pipeline import Pipeline

    bundle = Bundle.open(tiny_bundle)
    image = from_array(photos["chelsea"][:100, :150])
    results = {}
    for name in ("ov-cpu", "ort-cpu"):
        with create_backend(name, bundle) as backend:
            pipeline = Pipeline(backend, tile=64, overlap=16, batch=3)
            assert pipeline.is_tiled(image.height, image.width)
            results[name] = pipeline.restore([image])[0].restored
    assert results["ov-cpu"].shape == (100, 150, 3)
    assert np.max(np.abs(results["ov-cpu"] - results["ort-cpu"])) <= 1e-4


def test_export_validation_checks_bf16(tiny_bundle):
    """Export validation runs OpenVINO BF16 against torch FP32 under the BF16 contract where it can."""
    from mmfir.runtime.bundle import Bundle

    validation = Bundle.open(tiny_bundle).manifest["validation"]
    bf16 = [c for c in validation["checks"] if "ov-cpu/bf16" in c["pair"]]
    if not bf16_cpu():
        assert validation["bf16"].startswith("not checked") and not bf16
        return
    assert {c["network"] for c in bf16} == {"encoder", "restorer"}
    assert all(c["passed"] for c in bf16)
    assert any(c["metric"] == "psnr_db" and c["bound"] == 40.0 for c in bf16)
