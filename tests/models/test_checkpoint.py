import pytest

torch = pytest.importorskip("torch")
from safetensors.torch import load_file, save_file  # noqa: E402

from mmfir.models import build_model, load_checkpoint, load_clip_weights, save_checkpoint  # noqa: E402
from mmfir.runtime.errors import CheckpointError  # noqa: E402


def test_round_trip_bit_exact(tmp_path, tiny_model):
    path = save_checkpoint(tiny_model, tmp_path / "m.safetensors", metadata={"note": "x"})
    model, meta = load_checkpoint(path)
    assert meta["note"] == "x"
    a, b = tiny_model.state_dict(), model.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_renamed_key_is_named(tmp_path, tiny_model):
    path = save_checkpoint(tiny_model, tmp_path / "m.safetensors")
    state = load_file(str(path))
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    state["restorer.intro.weight_renamed"] = state.pop("restorer.intro.weight")
    save_file(state, str(path), metadata=meta)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    msg = str(err.value)
    assert "missing: restorer.intro.weight" in msg
    assert "unexpected: restorer.intro.weight_renamed" in msg


def test_other_architecture_is_refused(tmp_path, tiny_model):
    path = save_checkpoint(tiny_model, tmp_path / "m.safetensors")
    state = load_file(str(path))
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    state["restorer.intro.weight"] = torch.zeros(8, 3, 3, 3)
    save_file(state, str(path), metadata=meta)
    with pytest.raises(CheckpointError, match=r"mis-shaped: restorer.intro.weight \(8, 3, 3, 3\)"):
        load_checkpoint(path)


def test_bad_files(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 3 + b"garbage" * 10)
    with pytest.raises(CheckpointError, match="not a safetensors checkpoint"):
        load_checkpoint(junk)
    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(plain))
    with pytest.raises(CheckpointError, match="not an mmfir checkpoint"):
        load_checkpoint(plain)


def test_truncated_file(tmp_path, tiny_model):
    path = save_checkpoint(tiny_model, tmp_path / "m.safetensors")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError):
        load_checkpoint(path)


def test_half_storage_loads_into_fp32(tmp_path, tiny_model):
    path = save_checkpoint(tiny_model, tmp_path / "h.safetensors", dtype=torch.float16)
    model, _ = load_checkpoint(path)
    w = model.restorer.intro.weight
    assert w.dtype == torch.float32
    assert torch.allclose(w, tiny_model.restorer.intro.weight, atol=1e-3)


@pytest.mark.slow
def test_local_clip_weights(tmp_path):
    """Weights of an open_clip CLIP from a local file go into the towers and the controller copy."""
    donor = build_model("tiny", seed=1).encoder.clip
    path = tmp_path / "clip.pt"
    torch.save(donor.state_dict(), path)
    model = build_model("tiny", seed=2)
    load_clip_weights(model, path)
    s = model.cfg.encoder.vision.image_size
    x = torch.randn(1, 3, s, s)
    with torch.no_grad():
        out = model.encoder(x)
        assert torch.allclose(out["content"], donor.encode_image(x), atol=1e-5)
        assert torch.allclose(out["degradation"], donor.encode_image(x), atol=1e-5)
    with pytest.raises(CheckpointError, match="not found"):
        load_clip_weights(model, tmp_path / "missing.pt")
    torch.save(build_model("base").encoder.clip.visual.state_dict(), tmp_path / "wrong.pt")
    with pytest.raises(CheckpointError, match="does not fit"):
        load_clip_weights(model, tmp_path / "wrong.pt")
