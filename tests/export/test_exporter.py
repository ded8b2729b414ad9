"""mmfir.export: real dynamo exports, real onnxruntime sessions, real photos (no mocks).

The session's ``tiny_bundle`` (conftest) is the main subject; extra exports use a ``micro`` config
(one ViT block, one U-Net level) to keep this file fast.
"""
from __future__ import annotations

import dataclasses
import json
import random
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("open_clip")
onnx = pytest.importorskip("onnx")


def micro_config():
    from mmfir.models import load_config

    cfg = load_config("tiny")
    enc = cfg.encoder
    return dataclasses.replace(
        cfg, name="micro",
        encoder=dataclasses.replace(
            enc, embed_dim=16, text=dataclasses.replace(enc.text, width=16, heads=2, layers=1),
            vision=dataclasses.replace(enc.vision, image_size=32, patch_size=16, width=16, layers=1, heads=2)),
        restorer=dataclasses.replace(cfg.restorer, width=8, enc_blocks=(1,), dec_blocks=(1,), middle_blocks=1,
                                     attn_levels=1))


def wake_zero_init(model, seed: int = 0, std: float = 0.05):
    """Random values for the zero-initialised parameters (controller zero modules, NAF beta/gamma,
    cross-attention outputs) so validation exercises every path, as a trained model would."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if not p.any():
                p.copy_(torch.randn(p.shape, generator=g) * std)
    return model


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "mmfir.cli", *map(str, args)], capture_output=True, text=True)


def assert_one_line_error(proc):
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.strip().splitlines() if not line.startswith("... ")]  # progress
    assert len(lines) == 1 and lines[0].startswith("mmfir export: error: "), proc.stderr
    assert "Traceback" not in proc.stderr


def leftovers(folder):
    """Hidden staging/old folders export may have left behind."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# --- the tiny bundle -----------------------------------------------------------------------------

def test_manifest_describes_the_bundle(tiny_bundle, tiny_model):
    from mmfir.runtime.bundle import Bundle
    from mmfir.runtime.files import sha256_file
    from mmfir.runtime.spec import Precision, network_specs

    bundle = Bundle.open(tiny_bundle)
    m = bundle.manifest
    assert m["valid"] and m["validation"]["passed"] and m["opset"] == 18
    assert set(m["files"]) == {"encoder.onnx", "restorer.onnx", "encoder.fp16.onnx", "restorer.fp16.onnx"}
    for name, entry in m["files"].items():
        assert sha256_file(tiny_bundle / name) == entry["sha256"]
        assert (tiny_bundle / name).stat().st_size == entry["bytes"]
    assert m["networks"] == {k: s.to_json() for k, s in network_specs(tiny_model.cfg.to_dict()).items()}
    assert m["model"]["checkpoint"] is None and m["model"]["config"] == json.loads(tiny_model.cfg.to_json())
    assert m["class_names"] == list(tiny_model.cfg.encoder.class_names)
    assert m["preprocess"]["mode"] == "crop" and m["preprocess"]["image_size"] == tiny_model.cfg.encoder.vision.image_size
    assert m["onnxruntime"]["graph_optimization_level"] == {"fp32": "extended", "fp16": "extended"}
    assert all(m["versions"][k] for k in ("torch", "onnx", "onnxruntime", "open_clip_torch"))
    assert bundle.precisions() == [Precision.FP32, Precision.FP16]
    assert not leftovers(tiny_bundle.parent)


def test_every_file_passes_checker_and_matches_spec(tiny_bundle):
    from mmfir.export.validate import interface_problems, value_shape
    from mmfir.runtime.bundle import Bundle

    bundle = Bundle.open(tiny_bundle)
    for name, spec in bundle.specs.items():
        for precision in bundle.precisions():
            path = bundle.onnx_path(name, precision)
            onnx.checker.check_model(str(path), full_check=True)
            model = onnx.load(str(path))
            assert interface_problems(model, spec, 18) == []
    restorer = onnx.load(str(bundle.onnx_path("restorer")))
    assert value_shape(restorer.graph.input[0]) == ["batch", 3, "height", "width"]


def test_class_text_embeddings_are_graph_constants(tiny_bundle, tiny_model):
    """The text tower is not in the encoder graph: its only input is the image."""
    model = onnx.load(str(tiny_bundle / "encoder.onnx"))
    assert [i.name for i in model.graph.input] == ["image"]
    assert not any(n.op_type == "Gather" and "token_embedding" in "".join(n.input) for n in model.graph.node)
    assert tiny_model.encoder._class_text_cache is None  # export restored the model's state


def session(path, precision):
    """The session the runtime and export validation make (same factory, same optimisation level)."""
    from mmfir.export.validate import ort_optimization_level
    from mmfir.runtime.backends.ort import ort_session, session_options

    return ort_session(path, session_options(ort_optimization_level(precision)))


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_onnxruntime_matches_torch_at_new_shapes(tiny_bundle, tiny_model, photos, precision):
    """Shapes the export validation did not use: encoder batch 2, restorer 3x3x32x48."""
    import torch

    from mmfir.runtime.bundle import Bundle
    from mmfir.measure.checks import check_outputs, failures

    bundle = Bundle.open(tiny_bundle)
    enc, res = bundle.specs["encoder"], bundle.specs["restorer"]
    images = [torch.from_numpy(p.transpose(2, 0, 1).copy())[None] for p in photos.values()]
    with torch.no_grad():
        clip_in = torch.cat([tiny_model.clip_input(x) for x in images[:2]])
        ref_enc = {k: v.numpy() for k, v in tiny_model.encoder(clip_in).items()}
        tiles = torch.cat([x[..., 100:132, 50:98] for x in images])
        mmf = torch.cat([torch.from_numpy(ref_enc["mmf"]), torch.from_numpy(ref_enc["mmf"][:1])])
        ref_res = {"restored": tiny_model.restorer(tiles, mmf).numpy()}
    got_enc = session(bundle.onnx_path("encoder", precision), precision).run(None, {"image": clip_in.numpy()})
    got_res = session(bundle.onnx_path("restorer", precision), precision).run(
        None, {"image": tiles.numpy(), "mmf": mmf.numpy()})
    checks = check_outputs(enc, ref_enc, dict(zip(enc.output_names, got_enc)), precision)
    checks += check_outputs(res, ref_res, dict(zip(res.output_names, got_res)), precision)
    assert got_res[0].shape == (3, 3, 32, 48) and got_res[0].dtype == np.float32
    assert failures(checks) == []


def producer_types(model):
    """Element type of every tensor of a graph (shape inference over the saved model)."""
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {v.name: v.type.tensor_type.elem_type
             for v in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output)}
    types.update({i.name: i.data_type for i in inferred.graph.initializer})
    return types


@pytest.mark.parametrize("network", ["encoder", "restorer"])
def test_fp16_graph_keeps_fragile_ops_fp32(tiny_bundle, network):
    FLOAT, FLOAT16 = onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16
    model = onnx.load(str(tiny_bundle / f"{network}.fp16.onnx"))
    types = producer_types(model)
    fragile = {"LayerNormalization", "Softmax", "ReduceMean", "ReduceL2", "Pow", "Sqrt"}
    checked = 0
    for node in model.graph.node:
        if node.op_type in fragile:
            assert types[node.input[0]] == FLOAT, f"{node.op_type} {node.name} computes in FP16"
            checked += 1
        if node.op_type == "Sqrt":  # the eps Add of LayerNorm2d stays FP32 too
            assert types[node.input[0]] == FLOAT
    assert checked >= 5
    from mmfir.export.fp16 import channel_mean_convs

    means = set(channel_mean_convs(onnx.load(str(tiny_bundle / f"{network}.onnx")).graph))
    assert bool(means) == (network == "restorer")  # LayerNorm2d's two means per norm, restorer only
    for node in model.graph.node:
        if node.name in means:
            assert types[node.input[0]] == FLOAT and types[node.input[1]] == FLOAT, f"{node.name} computes in FP16"
    heavy = [n for n in model.graph.node if n.op_type in ("Conv", "MatMul", "Gemm") and n.name not in means]
    assert sum(types[n.input[0]] == FLOAT16 for n in heavy) >= 0.8 * len(heavy)
    assert all(v.type.tensor_type.elem_type == FLOAT for v in list(model.graph.input) + list(model.graph.output))
    fp32_bytes = (tiny_bundle / f"{network}.onnx").stat().st_size
    assert (tiny_bundle / f"{network}.fp16.onnx").stat().st_size < 0.65 * fp32_bytes


def test_topological_sort_repairs_a_shuffled_graph(tiny_bundle):
    from mmfir.export.fp16 import topological_sort

    model = onnx.load(str(tiny_bundle / "restorer.fp16.onnx"))
    nodes = list(model.graph.node)
    random.Random(0).shuffle(nodes)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    with pytest.raises(onnx.checker.ValidationError):
        onnx.checker.check_model(model)
    topological_sort(model.graph)
    onnx.checker.check_model(model, full_check=True)


# --- refusals and bad input (fail fast, write nothing) ------------------------------------------

def test_refuses_non_empty_output_without_force(tmp_path, tiny_model):
    from mmfir.export import export_bundle
    from mmfir.runtime.errors import ExportError

    out = tmp_path / "bundle"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(ExportError, match="--force"):
        export_bundle(tiny_model, out, progress=False)
    with pytest.raises(ExportError, match="not an mmfir bundle"):
        export_bundle(tiny_model, out, force=True, progress=False)
    assert [p.name for p in tmp_path.iterdir()] == ["bundle"] and (out / "keep.txt").read_text() == "mine"


@pytest.mark.parametrize("opset", [16, 17, 24, 99])
def test_unsupported_opset_is_refused(tmp_path, tiny_model, opset):
    from mmfir.export import OPSETS, export_bundle
    from mmfir.runtime.errors import ExportError

    assert opset not in OPSETS
    with pytest.raises(ExportError, match=f"opset {opset} is not supported"):
        export_bundle(tiny_model, tmp_path / "b", opset=opset, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_output_under_a_file_is_refused(tmp_path, tiny_model):
    from mmfir.export import export_bundle
    from mmfir.runtime.errors import ExportError

    (tmp_path / "file").write_text("x")
    with pytest.raises(ExportError, match="cannot write the bundle"):
        export_bundle(tiny_model, tmp_path / "file" / "bundle", progress=False)


def test_checkpoint_of_another_architecture_is_refused(tmp_path):
    from safetensors.torch import load_file, save_file

    from mmfir.export import export_bundle
    from mmfir.models import build_model, load_config, save_checkpoint
    from mmfir.runtime.errors import CheckpointError

    path = save_checkpoint(build_model(micro_config()), tmp_path / "micro.safetensors")
    meta = {"format": "mmfir-checkpoint/1", "config": load_config("tiny").to_json()}  # claims to be tiny
    save_file(load_file(str(path)), str(tmp_path / "liar.safetensors"), metadata=meta)
    with pytest.raises(CheckpointError, match="does not match the architecture"):
        export_bundle(tmp_path / "liar.safetensors", tmp_path / "b", progress=False)
    assert not (tmp_path / "b").exists()


@pytest.mark.slow
def test_cli_corrupt_checkpoint_is_one_line_error(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    proc = run_cli("export", bad, "--out", tmp_path / "b")
    assert_one_line_error(proc)
    assert "bad.safetensors" in proc.stderr and not (tmp_path / "b").exists()
    proc = run_cli("export", tmp_path / "missing.safetensors", "--out", tmp_path / "b", "--opset", "99")
    assert_one_line_error(proc)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.safetensors"]


# --- end to end from a checkpoint, then --force with a model that fails validation ---------------

@pytest.fixture(scope="module")
def micro_cli_bundle(tmp_path_factory):
    """`mmfir export` of a micro checkpoint (every path active) marked restorer_untrained, at the highest opset."""
    from mmfir.export import OPSETS
    from mmfir.models import build_model, save_checkpoint

    folder = tmp_path_factory.mktemp("micro")
    ckpt = save_checkpoint(wake_zero_init(build_model(micro_config(), seed=1)), folder / "micro.safetensors",
                           metadata={"restorer_untrained": "true"})
    out = folder / "bundle"
    proc = run_cli("export", ckpt, "--out", out, "--opset", OPSETS.stop - 1, "--quiet")
    return ckpt, out, proc


@pytest.mark.slow
def test_cli_exports_a_checkpoint(micro_cli_bundle):
    from mmfir.export import OPSETS
    from mmfir.runtime.bundle import Bundle
    from mmfir.runtime.files import sha256_file

    ckpt, out, proc = micro_cli_bundle
    assert proc.returncode == 0, proc.stderr
    assert "all" in proc.stdout and "checks passed" in proc.stdout
    assert proc.stderr.count("\n") == 1 and "warning: the checkpoint's restorer is untrained" in proc.stderr
    m = Bundle.open(out).manifest
    assert m["opset"] == OPSETS.stop - 1 and len(m["files"]) == 4
    assert m["model"]["checkpoint"]["sha256"] == sha256_file(ckpt) and m["model"]["restorer_untrained"] is True
    assert m["warnings"] and m["model"]["metadata"] == {"restorer_untrained": "true"}


@pytest.mark.slow
def test_cli_refuses_existing_bundle_without_force(micro_cli_bundle):
    ckpt, out, _ = micro_cli_bundle
    before = (out / "manifest.json").read_bytes()
    proc = run_cli("export", ckpt, "--out", out, "--no-fp16")
    assert_one_line_error(proc)
    assert "--force" in proc.stderr and (out / "manifest.json").read_bytes() == before


@pytest.mark.slow
def test_failing_validation_keeps_the_old_bundle_and_writes_an_invalid_one(micro_cli_bundle):
    """A restorer whose activations exceed the FP16 range (~65504) really fails FP16 validation."""
    import torch

    from mmfir.export import ExportValidationError, export_bundle
    from mmfir.models import build_model
    from mmfir.runtime.bundle import Bundle
    from mmfir.runtime.errors import BundleError

    _, out, _ = micro_cli_bundle
    before = (out / "manifest.json").read_bytes()
    model = build_model(micro_config(), seed=2)
    with torch.no_grad():
        model.restorer.intro.weight.mul_(1e6)
    with pytest.raises(ExportValidationError) as err:
        export_bundle(model, out, force=True, progress=False)
    message = str(err.value)
    assert "restorer.restored [ort-cpu/fp16" in message and "psnr_db=" in message and "bound >= 45" in message
    assert "\n" not in message
    assert (out / "manifest.json").read_bytes() == before  # the valid bundle was not replaced
    invalid = out.with_name(out.name + ".invalid")
    assert err.value.path == invalid and str(invalid) in message
    with pytest.raises(BundleError, match="did not pass export validation"):
        Bundle.open(invalid)
    m = Bundle.open(invalid, require_valid=False).manifest
    assert m["valid"] is False and not m["validation"]["passed"]
    assert any(c["network"] == "restorer" and not c["passed"] and "fp16" in c["pair"]
               for c in m["validation"]["checks"])
    Bundle.open(invalid, require_valid=False).verify()  # files hashed even when invalid
    assert not leftovers(out.parent)


def staged(folder, version):
    folder.mkdir()
    (folder / "manifest.json").write_text(json.dumps({"v": version}))
    return folder


def test_publish_replaces_a_bundle_only_when_the_new_one_is_valid(tmp_path):
    from mmfir.export.exporter import publish

    out = staged(tmp_path / "bundle", 1)
    assert publish(staged(tmp_path / ".bundle.a.tmp", 2), out, valid=False) == tmp_path / "bundle.invalid"
    assert json.loads((out / "manifest.json").read_text()) == {"v": 1}
    assert publish(staged(tmp_path / ".bundle.b.tmp", 3), out, valid=True) == out
    assert json.loads((out / "manifest.json").read_text()) == {"v": 3}
    fresh = tmp_path / "fresh"
    assert publish(staged(tmp_path / ".fresh.c.tmp", 4), fresh, valid=False) == fresh  # free: goes in place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle", "bundle.invalid", "fresh"]


def test_force_replaces_engines_with_their_records(tmp_path):
    """export --force: the old bundle's TensorRT plans go with the manifest that recorded them."""
    from mmfir.export.exporter import publish

    out = staged(tmp_path / "bundle", 1)
    (out / "engines").mkdir()
    (out / "engines" / "restorer.fp16.0123456789abcdef.plan").write_bytes(b"plan")
    publish(staged(tmp_path / ".bundle.x.tmp", 2), out, valid=True)
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]


def test_cli_defaults_match_the_api():
    from mmfir.export import DEFAULT_OPSET
    from mmfir.cli.main import build_parser

    args = build_parser().parse_args(["export", "ckpt.safetensors", "--out", "b"])
    assert (args.opset, args.fp16, args.force, args.quiet) == (DEFAULT_OPSET, True, False, False)
