"""TensorRT engine cache, profiles, build command and backend.

Everything that needs no GPU runs here on a small bundle written into tmp_path (real manifest,
real files, real hashes); the machine facts (TensorRT version, GPU) are injected. Tests marked
``trt`` build and run real engines from the exported tiny bundle and skip without TensorRT + GPU.
"""
from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mmfir.runtime import engine_cache as ec
from mmfir.runtime.bundle import FORMAT, Bundle
from mmfir.runtime.files import sha256_file, write_json_atomic
from mmfir.runtime.errors import BackendUnavailable, BundleError, ConfigError, ImageError
from mmfir.runtime.spec import ENCODER, RESTORER, Precision, network_specs

NETWORKS = (ENCODER, RESTORER)  # the graph order of an mmfir bundle

CONFIG = Path(__file__).resolve().parents[3] / "models" / "configs" / "tiny.json"
H100 = ec.DeviceFacts("10.13.0.35", "NVIDIA H100 80GB HBM3", "9.0")
TRT_OK, TRT_WHY = ec.trt_status()
requires_trt = pytest.mark.skipif(not TRT_OK, reason=f"needs TensorRT and an NVIDIA GPU: {TRT_WHY}")


# --- a small bundle: manifest + hashed graph files (the engine cache reads hashes only) -------
@pytest.fixture
def bundle(tmp_path) -> Bundle:
    config = json.loads(CONFIG.read_text())
    specs = network_specs(config)
    files = write_graphs(tmp_path, specs, (Precision.FP32, Precision.FP16))
    manifest = {"format": FORMAT, "valid": True, "model": {"config": config},
                "class_names": config["encoder"]["class_names"], "preprocess": {},
                "networks": {n: s.to_json() for n, s in specs.items()}, "files": files}
    write_json_atomic(tmp_path / "manifest.json", manifest)
    (tmp_path / "engines").mkdir()
    return Bundle.open(tmp_path)


def write_graphs(root: Path, specs, precisions) -> dict:
    """Stand-in graph files for each network at each precision; their manifest ``files`` entries."""
    files = {}
    for name, spec in specs.items():
        for precision in precisions:
            path = root / spec.onnx_file(precision)
            path.write_bytes(f"{name} {precision.value} graph".encode())
            files[path.name] = {"sha256": sha256_file(path)}
    return files


def default_profile(bundle, network=RESTORER):
    return ec.derive_profile(bundle.specs[network])


def fake_build(bundle, key, seconds=1.5) -> Path:
    """What build_engine leaves behind, minus TensorRT: a plan file and its manifest record."""
    plan = bundle.engines_dir / key.file_name
    plan.write_bytes(b"plan " + key.digest.encode())
    ec.record_engine(bundle, key, plan, seconds)
    return plan


# --- versions and which graph an engine comes from ---------------------------------------------
@pytest.mark.parametrize("version, typed", [("10.11.0.33", False), ("10.12.0.36", True), ("10.3.0", False),
                                            ("11.0.0", True)])
def test_fp16_comes_from_fp16_onnx_only_when_strongly_typed(version, typed):
    assert ec.strongly_typed(version) is typed
    assert ec.onnx_precision(Precision.FP16, version) == (Precision.FP16 if typed else Precision.FP32)
    assert ec.onnx_precision(Precision.FP32, version) == Precision.FP32
    assert ec.onnx_precision(Precision.INT8, version) == Precision.INT8  # the QDQ graph, on every version


@pytest.mark.parametrize("version, precision, typed, flags", [
    ("10.13.0", "fp16", True, {}), ("10.13.0", "int8", True, {}),
    ("10.13.0", "fp32", False, {"fp16": False, "int8": False}),
    ("10.8.0", "fp16", False, {"fp16": True, "int8": False}),
    ("10.8.0", "int8", False, {"fp16": False, "int8": True}),  # no FP16 flag: unquantized layers stay FP32
])
def test_precision_flags_only_for_weakly_typed_builds(version, precision, typed, flags):
    assert ec.typed_build(precision, version) == (typed, flags)


def test_int8_engines_need_the_int8_graphs(bundle):
    profile = default_profile(bundle)
    with pytest.raises(BundleError, match=r"re-export with --int8"):
        ec.engine_key(bundle, RESTORER, "int8", H100, profile)
    out = run_cli("build", str(bundle.root), "--precision", "int8")  # before looking for TensorRT
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    assert "cannot build int8 engines" in out.stderr and "re-export with --int8" in out.stderr
    manifest = json.loads((bundle.root / "manifest.json").read_text())
    manifest["files"].update(write_graphs(bundle.root, bundle.specs, (Precision.INT8,)))
    write_json_atomic(bundle.root / "manifest.json", manifest)
    with_int8 = Bundle.open(bundle.root)
    for version in ("10.13.0", "10.8.0"):
        key = ec.engine_key(with_int8, RESTORER, "int8", dataclasses.replace(H100, trt_version=version), profile)
        assert key.onnx_file == "restorer.int8.onnx" and key.precision == "int8"
        assert key.onnx_sha256 == manifest["files"]["restorer.int8.onnx"]["sha256"]


def test_key_uses_the_graph_the_build_reads(bundle):
    profile = default_profile(bundle)
    new = ec.engine_key(bundle, RESTORER, "fp16", H100, profile)
    old = ec.engine_key(bundle, RESTORER, "fp16", dataclasses.replace(H100, trt_version="10.8.0"), profile)
    assert (new.onnx_file, old.onnx_file) == ("restorer.fp16.onnx", "restorer.onnx")
    assert new.onnx_sha256 == bundle.manifest["files"]["restorer.fp16.onnx"]["sha256"]


# --- keys -------------------------------------------------------------------------------------
def test_every_key_field_changes_the_plan_file_name(bundle):
    profile = default_profile(bundle)
    base = ec.engine_key(bundle, RESTORER, "fp16", H100, profile)
    assert base == ec.engine_key(bundle, RESTORER, "fp16", H100, dict(reversed(list(profile.items()))))
    bigger = {**profile, "image": (profile["image"][0], profile["image"][1], (8, 3, 2048, 2048))}
    variants = [
        ec.engine_key(bundle, RESTORER, "fp16", dataclasses.replace(H100, trt_version="10.13.1"), profile),
        ec.engine_key(bundle, RESTORER, "fp16", dataclasses.replace(H100, gpu_name="NVIDIA L4"), profile),
        ec.engine_key(bundle, RESTORER, "fp16", dataclasses.replace(H100, compute_capability="8.9"), profile),
        ec.engine_key(bundle, RESTORER, "fp32", H100, profile),
        ec.engine_key(bundle, RESTORER, "fp16", H100, bigger),
        dataclasses.replace(base, onnx_sha256="0" * 64),
    ]
    names = {base.file_name} | {k.file_name for k in variants}
    assert len(names) == len(variants) + 1
    assert base.file_name.startswith("restorer.fp16.") and base.file_name.endswith(".plan")


# --- records and staleness ----------------------------------------------------------------------
def test_record_is_written_to_the_manifest_and_found_fresh(bundle):
    key = ec.engine_key(bundle, RESTORER, "fp16", H100, default_profile(bundle))
    assert ec.check_engine(bundle, key).reason == "no engine has been built"
    plan = fake_build(bundle, key, seconds=2.25)
    on_disk = json.loads((bundle.root / "manifest.json").read_text())["engines"][RESTORER]["fp16"]
    assert on_disk["file"] == plan.name and on_disk["key"] == key.to_json()
    assert on_disk["plan_sha256"] == sha256_file(plan) and on_disk["build_seconds"] == 2.25
    assert "built_at" in on_disk
    reopened = Bundle.open(bundle.root)
    status = ec.check_engine(reopened, key)
    assert status.fresh and status.path == plan


@pytest.mark.parametrize("change, words", [
    (dict(trt_version="10.14.1"), "trt version was '10.13.0.35' at build, is '10.14.1' now"),
    (dict(gpu_name="NVIDIA A100-SXM4-40GB"), "gpu name"),
    (dict(compute_capability="8.0"), "compute capability"),
])
def test_foreign_machine_makes_the_engine_stale(bundle, change, words):
    profile = default_profile(bundle)
    fake_build(bundle, ec.engine_key(bundle, RESTORER, "fp16", H100, profile))
    foreign = dataclasses.replace(H100, **change)
    status = ec.check_engine(bundle, ec.engine_key(bundle, RESTORER, "fp16", foreign, profile))
    assert not status.fresh and words in status.reason and status.path is None


def test_changed_onnx_or_profile_makes_the_engine_stale(bundle):
    profile = default_profile(bundle)
    fake_build(bundle, ec.engine_key(bundle, RESTORER, "fp16", H100, profile))
    other = ec.profiles_from_options(bundle.specs, ["restorer:image=1x3x256x256/1x3x512x512/2x3x512x512"])[RESTORER]
    assert "profile was" in ec.check_engine(bundle, ec.engine_key(bundle, RESTORER, "fp16", H100, other)).reason
    graph = bundle.root / "restorer.fp16.onnx"
    graph.write_bytes(b"re-exported graph")
    bundle.manifest["files"][graph.name]["sha256"] = sha256_file(graph)
    assert "onnx sha256 was" in ec.check_engine(bundle, ec.engine_key(bundle, RESTORER, "fp16", H100, profile)).reason


def test_modified_or_missing_plan_is_stale(bundle):
    key = ec.engine_key(bundle, ENCODER, "fp32", H100, default_profile(bundle, ENCODER))
    plan = fake_build(bundle, key)
    plan.write_bytes(b"truncated")
    assert "was modified after the build" in ec.check_engine(bundle, key).reason
    plan.unlink()
    assert "is missing" in ec.check_engine(bundle, key).reason


def test_rebuild_replaces_the_old_plan_and_keeps_other_precisions(bundle):
    profile = default_profile(bundle)
    fp32 = fake_build(bundle, ec.engine_key(bundle, RESTORER, "fp32", H100, profile))
    old = fake_build(bundle, ec.engine_key(bundle, RESTORER, "fp16", H100, profile))
    new_facts = dataclasses.replace(H100, trt_version="10.14.1")
    new = fake_build(bundle, ec.engine_key(bundle, RESTORER, "fp16", new_facts, profile))
    assert new.is_file() and fp32.is_file() and not old.exists()
    assert set(bundle.manifest["engines"][RESTORER]) == {"fp16", "fp32"}
    assert ec.recorded_profile(bundle, RESTORER, "fp16") == profile


def test_no_build_refuses_a_stale_engine_with_one_line(bundle):
    from mmfir.runtime.engine_build import build_engines

    with pytest.raises(BundleError) as err:
        build_engines(bundle, "fp16", no_build=True, facts=H100)
    message = str(err.value)
    assert "\n" not in message and "encoder fp16 TensorRT engine cannot be used: no engine has been built" in message
    assert f"mmfir build {bundle.root} --precision fp16" in message


def test_fresh_engines_are_reused_without_tensorrt(bundle):
    from mmfir.runtime.engine_build import build_engines

    plans = {n: fake_build(bundle, ec.engine_key(bundle, n, "fp32", H100, default_profile(bundle, n)))
             for n in NETWORKS}
    results = build_engines(bundle, "fp32", no_build=True, facts=H100)
    assert [(r.network, r.built, r.path) for r in results] == [(n, False, plans[n]) for n in NETWORKS]
    assert str(results[0]).endswith("up to date -> " + str(plans[ENCODER]))


def test_timing_cache_is_per_machine(bundle):
    other = dataclasses.replace(H100, gpu_name="NVIDIA L4", compute_capability="8.9")
    assert ec.timing_cache_path(bundle, H100) != ec.timing_cache_path(bundle, other)
    assert ec.timing_cache_path(bundle, H100).parent == bundle.engines_dir


# --- profiles -----------------------------------------------------------------------------------
def test_default_profiles_are_the_specs_and_built_ones_are_sticky(bundle):
    assert ec.profiles_from_options(bundle.specs, []) == {}
    for network, spec in bundle.specs.items():
        assert ec.wanted_profile(bundle, network, "fp16") == spec.profile
    assert ec.wanted_profile(bundle, RESTORER, "fp16")["image"][2] == (8, 3, 1024, 1024)
    custom = ec.profiles_from_options(bundle.specs, ["restorer:image=1x3x256x256/1x3x256x256/2x3x512x512"])
    assert set(custom) == {RESTORER}
    fake_build(bundle, ec.engine_key(bundle, RESTORER, "fp16", H100, custom[RESTORER]))
    assert ec.wanted_profile(bundle, RESTORER, "fp16") == custom[RESTORER]
    assert ec.wanted_profile(bundle, RESTORER, "fp32") == bundle.specs[RESTORER].profile
    assert ec.wanted_profile(bundle, RESTORER, "fp16", default_profile(bundle)) == default_profile(bundle)


def test_mmf_batch_follows_the_image(bundle):
    option = "restorer:image=1x3x256x256/2x3x512x512/4x3x1024x1024"
    profile = ec.profiles_from_options(bundle.specs, [option])[RESTORER]
    assert profile["image"] == ((1, 3, 256, 256), (2, 3, 512, 512), (4, 3, 1024, 1024))
    assert [s[0] for s in profile["mmf"]] == [1, 2, 4]
    assert profile["mmf"][0][1:] == bundle.specs[RESTORER].profile["mmf"][0][1:]


def encoder_size(bundle) -> int:
    return bundle.specs[ENCODER].input("image").shape[2]


def test_single_shape_means_fixed(bundle):
    s = encoder_size(bundle)
    profile = ec.profiles_from_options(bundle.specs, [f"encoder:image=2x3x{s}x{s}"])[ENCODER]
    assert profile["image"] == ((2, 3, s, s),) * 3


@pytest.mark.parametrize("option, words", [
    ("restorer image=1x3x256x256", "expected NETWORK:INPUT=MIN/OPT/MAX"),
    ("restorer:image=1x3x256x256/1x3x512x512", "expected NETWORK:INPUT=MIN/OPT/MAX"),
    ("decoder:image=1x3x256x256", "unknown network 'decoder'"),
    ("restorer:mask=1x3x256x256", "has no input 'mask' (inputs: image, mmf)"),
    ("restorer:image=1x3x256/1x3x512/1x3x1024", "has rank 3, the input has rank 4"),
    ("encoder:image=1x3x224x224", "dim 2 must be {s} (fixed by the model), got 224"),
    ("restorer:image=1x3x250x256/1x3x512x512/4x3x1024x1024", "height 250 is not a multiple of 16"),
    ("restorer:image=1x3x512x512/1x3x256x256/4x3x1024x1024", "min <= opt <= max, got 512/256/1024"),
    ("restorer:image=0x3x256x256/1x3x512x512/4x3x1024x1024", "must be positive"),
])
def test_bad_profile_options_are_one_line_errors(bundle, option, words):
    with pytest.raises(ConfigError) as err:
        ec.profiles_from_options(bundle.specs, [option])
    assert words.format(s=encoder_size(bundle)) in str(err.value) and "\n" not in str(err.value)


def test_inputs_must_agree_on_a_shared_axis(bundle):
    options = ["restorer:image=1x3x256x256/1x3x512x512/4x3x1024x1024", "restorer:mmf=1x3x64/1x3x64/8x3x64"]
    with pytest.raises(ConfigError, match="inputs image and mmf disagree on axis 'batch'"):
        ec.profiles_from_options(bundle.specs, options)
    with pytest.raises(ConfigError, match="given twice"):
        ec.profiles_from_options(bundle.specs, options[:1] * 2)


def test_shapes_outside_the_profile_name_the_fix(bundle):
    from mmfir.runtime.errors import TileError

    spec, shapes = bundle.specs[RESTORER], default_profile(bundle)["image"]
    assert ec.profile_violation(spec, "image", (3, 3, 768, 512), shapes) is None
    big = ec.profile_violation(spec, "image", (1, 3, 1536, 1536), shapes)
    assert isinstance(big, TileError)  # the image's problem: that file fails, a smaller --tile fixes it
    assert str(big) == ("restorer: tile 1536x1536 exceeds the engine profile max 1024x1024: rebuild with "
                        "--profile restorer:image=1x3x64x64/1x3x512x512/8x3x1536x1536 or use --tile 1024")
    small = ec.profile_violation(spec, "image", (1, 3, 32, 256), shapes)
    assert isinstance(small, TileError) and "below the engine profile min 64x64" in str(small)
    batch = ec.profile_violation(spec, "image", (9, 3, 256, 256), shapes)
    assert isinstance(batch, BackendUnavailable) and not isinstance(batch, TileError)
    assert "batch 9 is outside the engine profile range 1..8" in str(batch)


def test_profile_becomes_a_polygraphy_profile(bundle):
    pytest.importorskip("polygraphy")
    from mmfir.runtime.engine_build import polygraphy_profile

    profile = ec.profiles_from_options(bundle.specs, ["restorer:image=1x3x256x256/2x3x512x512/4x3x768x768"])[RESTORER]
    converted = polygraphy_profile(profile)
    assert list(converted) == ["image", "mmf"]
    assert tuple(converted["mmf"]) == ((1, 3, 64), (2, 3, 64), (4, 3, 64))
    assert converted["image"].max == (4, 3, 768, 768)


# --- availability and the command line without TensorRT -----------------------------------------
@pytest.mark.skipif(TRT_OK, reason="TensorRT and a GPU are present")
def test_backend_is_unavailable_with_the_reason(bundle):
    from mmfir.runtime.backends.base import backend_status, create_backend
    from mmfir.runtime.backends.trt import TrtBackend

    ok, why = TrtBackend.available()
    assert not ok and ("pip install 'mmfir[trt]'" in why or "no CUDA GPU visible" in why)
    assert backend_status("trt") == (ok, why)
    with pytest.raises(BackendUnavailable, match="backend trt is not available here"):
        create_backend("trt", bundle, precision="fp16")


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "mmfir.cli", *args], capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(TRT_OK, reason="TensorRT and a GPU are present")
def test_build_without_tensorrt_fails_with_one_line(bundle):
    out = run_cli("build", str(bundle.root), "--precision", "fp16")
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1 and "Traceback" not in out.stderr
    assert lines[0].startswith("mmfir build: error: cannot build TensorRT engines here: ")
    assert "pip install 'mmfir[trt]'" in lines[0] or "no CUDA GPU visible" in lines[0]
    assert "engines" not in json.loads((bundle.root / "manifest.json").read_text())


def test_build_rejects_a_bad_profile_before_looking_for_tensorrt(bundle):
    out = run_cli("build", str(bundle.root), "--profile", "restorer:image=1x3x100x100")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip() == ("mmfir build: error: --profile restorer:image: min height 100 is not a multiple "
                                  "of 16 (the restorer runs on multiples of 16)")


def test_trt_modules_import_no_heavy_packages():
    code = ("import sys, mmfir.runtime.engine_cache, mmfir.runtime.backends.trt, mmfir.cli.commands.build, "
            "mmfir.runtime.engine_build; heavy = [m for m in ('torch', 'tensorrt', 'polygraphy') if m in sys.modules]; "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_build_rejects_a_bad_workspace(bundle):
    out = run_cli("build", str(bundle.root), "--workspace", "0")
    assert out.returncode == 2
    assert out.stderr.strip() == "mmfir build: error: --workspace must be a positive number of GiB, got 0.0"


def test_build_is_listed_in_help():
    out = run_cli("--help")
    assert out.returncode == 0 and "build" in out.stdout


@pytest.mark.slow
def test_exported_bundle_keys_and_refusals(tiny_bundle, tmp_path):
    """Against a real exported bundle (manifest of the export helper): keys hash the graph actually built from."""
    from mmfir.runtime.engine_build import build_engines

    shutil.copytree(tiny_bundle, tmp_path / "bundle")
    real = Bundle.open(tmp_path / "bundle")
    for version, graph in (("10.13.0", "restorer.fp16.onnx"), ("10.8.0", "restorer.onnx")):
        key = ec.engine_key(real, RESTORER, "fp16", dataclasses.replace(H100, trt_version=version),
                            ec.wanted_profile(real, RESTORER, "fp16"))
        assert key.onnx_file == graph and key.onnx_sha256 == sha256_file(real.root / graph)
    with pytest.raises(BundleError, match="no engine has been built"):
        build_engines(real, "fp32", no_build=True, facts=H100)
    if not TRT_OK:
        out = run_cli("build", str(real.root))
        assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr


# --- on an NVIDIA machine: real engines against onnxruntime FP32 ----------------------------------
@pytest.fixture
def gpu_bundle(request, tmp_path) -> Bundle:
    if not TRT_OK:
        pytest.skip(f"needs TensorRT and an NVIDIA GPU: {TRT_WHY}")
    try:
        source = Path(request.getfixturevalue("tiny_bundle"))
    except pytest.FixtureLookupError:
        pytest.skip("needs the tiny_bundle fixture (exported tiny bundle)")
    shutil.copytree(source, tmp_path / "bundle")  # engines and manifest records go into the copy
    return Bundle.open(tmp_path / "bundle")


def ort_fp32(bundle, network, feeds):
    import onnxruntime as ort

    session = ort.InferenceSession(str(bundle.onnx_path(network, "fp32")), providers=["CPUExecutionProvider"])
    names = bundle.specs[network].output_names
    return dict(zip(names, session.run(names, feeds)))


def sample_feeds(bundle, photos):
    from PIL import Image

    size = bundle.specs[ENCODER].inputs[0].shape[-1]
    photo = photos["astronaut"]
    small = np.asarray(Image.fromarray((photo * 255).astype(np.uint8)).resize((size, size)), np.float32) / 255
    encoder = {"image": ((small - 0.45) / 0.27).transpose(2, 0, 1)[None].astype(np.float32)}
    mmf = ort_fp32(bundle, ENCODER, encoder)["mmf"]
    tiles = np.stack([photo[:256, :256], photo[200:456, 100:356]]).transpose(0, 3, 1, 2)
    restorer = {"image": np.ascontiguousarray(tiles), "mmf": np.repeat(mmf, 2, axis=0)}
    return {ENCODER: encoder, RESTORER: restorer}


@pytest.mark.trt
@pytest.mark.parametrize("precision", ["fp16", "fp32"])
def test_trt_engines_meet_the_contract_against_ort_fp32(gpu_bundle, photos, precision):
    from mmfir.runtime.backends.trt import TrtBackend
    from mmfir.measure.checks import check_outputs, failures

    feeds = sample_feeds(gpu_bundle, photos)
    with TrtBackend(gpu_bundle, precision=precision) as backend:
        for network in NETWORKS:
            got = backend.run(network, feeds[network])
            again = backend.run(network, feeds[network])  # buffers reused: results must not alias
            np.testing.assert_array_equal(got[backend.specs[network].output_names[0]],
                                          again[backend.specs[network].output_names[0]])
            # each engine under its own precision's contract (an FP32 engine must meet FP32's bounds)
            checks = check_outputs(backend.specs[network], ort_fp32(gpu_bundle, network, feeds[network]), got,
                                   precision, pair=f"trt/{precision} vs ort-cpu/fp32")
            assert not failures(checks), "; ".join(map(str, failures(checks)))
        with pytest.raises(ImageError, match="exceeds the engine profile max 1024x1024"):
            backend.run(RESTORER, {"image": np.zeros((1, 3, 1040, 1040), np.float32),
                                   "mmf": feeds[RESTORER]["mmf"][:1]})


@pytest.mark.trt
def test_trt_build_cli_caches_and_detects_tampering(gpu_bundle):
    root = str(gpu_bundle.root)
    first = run_cli("build", root, "--precision", "fp16",
                    "--profile", "restorer:image=1x3x256x256/1x3x256x256/2x3x512x512")
    assert first.returncode == 0, first.stderr
    assert first.stdout.count("built in") == 2
    again = run_cli("build", root, "--precision", "fp16", "--no-build")  # the built profile is kept
    assert again.returncode == 0 and again.stdout.count("up to date") == 2, again.stderr
    record = Bundle.open(root).manifest["engines"][RESTORER]["fp16"]
    plan = Path(root) / "engines" / record["file"]
    plan.write_bytes(plan.read_bytes()[:-16])
    refused = run_cli("build", root, "--precision", "fp16", "--no-build")
    assert refused.returncode == 2 and "was modified after the build" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    from mmfir.runtime.backends.trt import TrtBackend

    with TrtBackend(Bundle.open(root), precision="fp16"):  # rebuilds the tampered engine, keeps its profile
        pass
    reopened = Bundle.open(root)
    rebuilt = reopened.manifest["engines"][RESTORER]["fp16"]
    assert rebuilt["key"] == record["key"] and ec.check_engine(reopened, ec.EngineKey(**rebuilt["key"])).fresh
