"""`mmfir import daclip`: safe loading, exact key mapping, and outputs equal to DA-CLIP's own code.

tests/data/daclip_tiny.pt is a reduced-size DA-CLIP checkpoint (vision width 32, 2 blocks, patch 8,
image 32; text width 32, 1 block; embed 16) written by DA-CLIP's code (commit c2cc141) with random
weights, in the format DA-CLIP's training saves ({epoch, name, state_dict with ``module.`` keys,
optimizer with a numpy float64 lr, scaler}). tests/data/daclip_tiny_ref.npz holds DA-CLIP's outputs
for two photos: encode_image(x, control=True), encode_text of its ten class names, and
softmax(100 * cos); plus its CLIP preprocessing at 224 px sampled on three photos.
"""
from __future__ import annotations

import hashlib
import json
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("open_clip")

from mmfir.models import load_checkpoint  # noqa: E402
from mmfir.models.daclip import (DACLIP_CLASSES, daclip_name, import_daclip, infer_encoder_config,  # noqa: E402
                                 read_daclip_file)
from mmfir.runtime.errors import CheckpointError, ConfigError  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "data"  # tests/data
TINY = DATA / "daclip_tiny.pt"
REF = DATA / "daclip_tiny_ref.npz"
PHOTOS = ("astronaut", "chelsea")  # the two reference inputs, in order
# a small restorer keeps the export test fast; only its restorer section is used
MINI_RESTORER = {"name": "mini", "restorer": {"width": 8, "enc_blocks": [1, 1], "middle_blocks": 1,
                                              "dec_blocks": [1, 1], "attn_levels": 1, "attn_heads": 2}}


@pytest.fixture(scope="module")
def ref() -> dict[str, np.ndarray]:
    with np.load(REF) as f:
        return dict(f)


@pytest.fixture(scope="module")
def restorer_json(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cfg") / "mini.json"
    path.write_text(json.dumps(MINI_RESTORER))
    return path


@pytest.fixture(scope="module")
def converted(tmp_path_factory, restorer_json) -> Path:
    out = tmp_path_factory.mktemp("daclip") / "daclip.safetensors"
    return import_daclip(TINY, out, restorer_config=str(restorer_json))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def reference_outputs(ref) -> dict[str, np.ndarray]:
    """DA-CLIP's outputs named as the encoder spec's outputs (mmf built from them as MultiContentNet does)."""
    unit = lambda a: a / np.linalg.norm(a, axis=-1, keepdims=True)  # noqa: E731
    text_token = ref["probs"] @ ref["text_features"]
    mmf = np.stack([unit(ref["image_features"]), unit(ref["degra_features"]), unit(text_token)], axis=1)
    return {"content": ref["image_features"], "degradation": ref["degra_features"],
            "degradation_logits": ref["logits"], "mmf": mmf}


def assert_matches_daclip(outputs: dict[str, np.ndarray], ref, spec) -> None:
    from mmfir.measure.checks import check_outputs, failures
    from mmfir.runtime.spec import Precision

    expected = reference_outputs(ref)
    bad = failures(check_outputs(spec, expected, outputs, Precision.FP32, pair="daclip/torch-fp32"))
    assert not bad, "; ".join(map(str, bad))
    for name in ("content", "degradation", "mmf"):
        assert np.abs(outputs[name] - expected[name]).max() <= 1e-4, name
    probs = torch.from_numpy(outputs["degradation_logits"]).softmax(-1).numpy()
    assert np.abs(probs - ref["probs"]).max() <= 1e-5


def encoder_spec(model):
    from mmfir.runtime.spec import ENCODER, network_specs

    return network_specs(model.cfg.to_dict())[ENCODER]


# --- conversion -------------------------------------------------------------------------------------------


def test_conversion_infers_architecture_and_vocabulary(converted):
    model, meta = load_checkpoint(converted)
    e = model.cfg.encoder
    assert (e.embed_dim, e.vision.width, e.vision.layers, e.vision.heads, e.vision.patch_size,
            e.vision.image_size) == (16, 32, 2, 1, 8, 32)
    assert (e.text.width, e.text.layers, e.text.heads, e.text.context_length, e.text.vocab_size) == (
        32, 1, 1, 77, 49408)
    assert e.class_names == DACLIP_CLASSES and e.prompt_template == "{}"
    assert (e.preprocess, e.fixed_logit_scale, e.quick_gelu) == ("resize", 100.0, False)
    assert model.cfg.restorer.width == MINI_RESTORER["restorer"]["width"]
    assert meta["restorer_untrained"] == "true" and meta["source"] == "daclip"
    assert meta["source_sha256"] == sha256(TINY) and meta["daclip_epoch"] == "50"


def test_every_encoder_tensor_is_copied_exactly(converted):
    model, _ = load_checkpoint(converted)
    state = {k.removeprefix("module."): v for k, v in read_daclip_file(TINY)["state_dict"].items()}
    ours = model.encoder.state_dict()
    for key, value in ours.items():
        assert torch.equal(value, state[daclip_name(key)]), key
    used = {daclip_name(k) for k in ours} | {"logit_scale"} | {k for k in state if k.startswith("visual.")}
    assert used == set(state)


def test_outputs_equal_daclip_reference(converted, ref):
    model, _ = load_checkpoint(converted)
    with torch.no_grad():
        out = model.encoder(torch.from_numpy(ref["clip_input"]))
        text = model.encoder.class_text_features().numpy()
    assert np.abs(text - ref["text_features"]).max() <= 1e-5
    assert_matches_daclip({k: v.numpy() for k, v in out.items()}, ref, encoder_spec(model))


def test_reference_is_sensitive_to_control_order_and_logit_scale(converted, ref):
    """The reference catches a non-reversed control order and the CLIP's own logit scale."""
    model, _ = load_checkpoint(converted)
    x = torch.from_numpy(ref["clip_input"])
    with torch.no_grad():
        zero = model.encoder.controller.zero_modules
        zero[0], zero[1] = zero[1], zero[0]
        swapped = model.encoder(x)["content"].numpy()
        clip_scale = float(model.encoder.clip.logit_scale.exp())
    assert np.abs(swapped - ref["image_features"]).max() > 1e-2
    assert abs(clip_scale - 100.0) > 1.0  # the file's CLIP scale is not the 100 DA-CLIP's probabilities use
    with_clip_scale = torch.from_numpy(ref["logits"] / 100.0 * clip_scale).softmax(-1).numpy()
    assert np.abs(with_clip_scale - ref["probs"]).max() > 0.05


def test_full_size_layout_gives_vit_b32_with_open_clip_heads():
    """DA-CLIP's ViT-B-32 layout (631 keys, measured on its code) infers to the base encoder, heads = width // 64."""
    from mmfir.models.config import load_config
    from mmfir.models.encoder import MultiContentNet

    base = load_config("base").encoder
    with torch.device("meta"):
        encoder = MultiContentNet(base)
    state = {daclip_name(k): v for k, v in encoder.state_dict().items()}
    state.update({k.removeprefix("clip."): v for k, v in state.items() if k.startswith("clip.visual.")})
    state["logit_scale"] = torch.empty((), device="meta")
    assert len(state) == 631
    cfg = infer_encoder_config(state, "vit-b-32")
    assert cfg.vision == base.vision and cfg.text == base.text and cfg.embed_dim == base.embed_dim
    assert (cfg.vision.heads, cfg.text.heads) == (12, 8)


# --- export and runtime -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_exported_bundle_matches_daclip_reference(converted, ref, tmp_path, caplog):
    ort = pytest.importorskip("onnxruntime")
    from mmfir.export import export_bundle
    from mmfir.runtime.image_io import from_array
    from mmfir.runtime.preprocess import ClipPreprocess
    from mmfir.runtime.spec import ENCODER, Precision
    from skimage import data

    with caplog.at_level("WARNING", logger="mmfir"):
        bundle = export_bundle(converted, tmp_path / "bundle", fp16=False, progress=False)
    assert any("restorer is untrained" in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)
    assert tuple(bundle.class_names) == DACLIP_CLASSES
    pre = ClipPreprocess.from_bundle(bundle)
    images = np.stack([pre(from_array(getattr(data, n)()[..., :3])) for n in PHOTOS])
    assert np.abs(images - ref["clip_input"]).max() <= 1e-5  # runtime preprocessing = DA-CLIP's transform
    spec = bundle.specs[ENCODER]
    session = ort.InferenceSession(str(bundle.onnx_path(ENCODER, Precision.FP32)),
                                   providers=["CPUExecutionProvider"])
    values = session.run(spec.output_names, {spec.inputs[0].name: images})
    assert_matches_daclip(dict(zip(spec.output_names, values)), ref, spec)


def test_runtime_resize_preprocessing_equals_daclip_transform(ref):
    """DA-CLIP's clip_transform / open_clip val transform (PIL bicubic shorter side 224, centre crop, CLIP
    mean/std) vs the runtime's 'resize' mode on real photos, at 3 x 4096 sampled values."""
    preprocess = pytest.importorskip("mmfir.runtime.preprocess")
    from mmfir.runtime.image_io import from_array
    from skimage import data

    from mmfir.models.config import EncoderConfig

    e = EncoderConfig()
    pre = preprocess.ClipPreprocess(224, "resize", e.mean, e.std)
    for name in ("astronaut", "chelsea", "coffee"):
        x = pre(from_array(getattr(data, name)()[..., :3]))
        assert x.shape == (3, 224, 224)
        got = x.ravel()[ref[f"pre224_{name}_idx"]]
        assert np.abs(got - ref[f"pre224_{name}_val"]).max() <= 1e-5, name


# --- refusing bad input -----------------------------------------------------------------------------------


class RunsCode:
    """Unpickling this runs code (it writes a marker file): a stand-in for a malicious checkpoint."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').close()",))


def test_pickle_with_code_is_refused_without_running_it(tmp_path):
    marker, evil = tmp_path / "ran", tmp_path / "evil.pt"
    torch.save({"epoch": 1, "state_dict": {"module.logit_scale": RunsCode(marker)}}, evil)
    with zipfile.ZipFile(evil) as z:  # the file is armed: a plain unpickler runs its code
        pickle.loads(z.read(next(n for n in z.namelist() if n.endswith("data.pkl"))))
    assert marker.exists()
    marker.unlink()
    with pytest.raises(CheckpointError, match=r"refused to load: its pickle references exec") as err:
        read_daclip_file(evil)
    assert "\n" not in str(err.value)
    assert not marker.exists()


def test_numpy2_pickled_learning_rate_is_allowed(tmp_path):
    """The committed file names numpy 1.x's scalar reconstructor; a file saved under numpy 2 loads too."""
    path = tmp_path / "np2.pt"
    torch.save({"optimizer": {"param_groups": [{"lr": np.float64(3e-5)}]}, "state_dict": {}}, path)
    lr = read_daclip_file(path)["optimizer"]["param_groups"][0]["lr"]
    assert isinstance(lr, np.float64) and lr == 3e-5
    torch.save({"lr": np.float32(3e-5)}, path)  # not what DA-CLIP holds: refused
    with pytest.raises(CheckpointError, match="nothing in it was run"):
        read_daclip_file(path)


def edited_copy(tmp_path: Path, edit) -> Path:
    ckpt = read_daclip_file(TINY)
    state = ckpt["state_dict"]
    edit(state)
    path = tmp_path / "edited.pt"
    torch.save(ckpt, path)
    return path


def test_missing_unexpected_and_misshaped_keys_are_listed(tmp_path):
    def edit(state):
        del state["module.clip.ln_final.bias"]
        state["module.visual_control.transformer.zero_modules.1.weight"] = torch.zeros(32, 16)
        state["module.visual_control.extra.weight"] = torch.zeros(3)
        state["module.visual.proj"] = state["module.visual.proj"] + 1  # alias no longer equal

    path = edited_copy(tmp_path, edit)
    with pytest.raises(CheckpointError) as err:
        import_daclip(path, tmp_path / "out.safetensors")
    msg = str(err.value)
    assert "missing: clip.ln_final.bias" in msg
    assert "unexpected: visual_control.extra.weight" in msg
    assert "mis-shaped: visual_control.transformer.zero_modules.1.weight (32, 16) != (32, 32)" in msg
    assert "differing from clip.visual.*: visual.proj" in msg
    assert not (tmp_path / "out.safetensors").exists()


def test_other_models_are_refused(tmp_path):
    plain_clip = edited_copy(tmp_path, lambda s: [s.pop(k) for k in list(s) if "visual_control" in k])
    with pytest.raises(CheckpointError, match="is not a DA-CLIP checkpoint: no clip.visual.. and visual_control"):
        import_daclip(plain_clip, tmp_path / "out.safetensors")
    tensor = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), tensor)
    with pytest.raises(CheckpointError, match="expected a dict with 'state_dict', got Tensor"):
        import_daclip(tensor, tmp_path / "out.safetensors")
    with pytest.raises(ConfigError, match="--restorer-config nope"):
        import_daclip(TINY, tmp_path / "out.safetensors", restorer_config="nope")
    with pytest.raises(CheckpointError, match="is an input file"):
        import_daclip(TINY, TINY)


@pytest.mark.slow
def test_cli_converts_and_errors_in_one_line(tmp_path, restorer_json, capsys):
    from mmfir.cli.main import main

    out = tmp_path / "m.safetensors"
    assert main(["import", "daclip", str(TINY), "--out", str(out), "--restorer-config", str(restorer_json)]) == 0
    assert "untrained restorer" in capsys.readouterr().out and out.is_file()
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint" * 4)
    proc = subprocess.run([sys.executable, "-m", "mmfir.cli", "import", "daclip", str(junk), "--out",
                           str(tmp_path / "x.safetensors")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("mmfir import: error:")]
    assert len(errors) == 1 and "could not be read as a weights-only torch checkpoint" in errors[0]
    assert [ln for ln in proc.stderr.splitlines() if not ln.startswith("... ")] == errors
