"""mmfir's SDEUNet against DA-CLIP's own ConditionalUNet: same state-dict layout (224 keys, same shapes), and
outputs within 1e-4 relative at three time steps on an odd-sized input (tests/data/sde_unet_ref.npz, made by
tests/data/make_sde_unet_ref.py from DA-CLIP commit c2cc141 with seeded weights)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from mmfir.models.sde_unet import SDEUNet, SDEUNetConfig  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "data"
REF = np.load(DATA / "sde_unet_ref.npz")


def reference_weights() -> dict[str, np.ndarray]:
    """The reference's seeded weights (tests/data/sde_unet_weights.py, shared with the script that made it)."""
    sys.path.insert(0, str(DATA))
    try:
        from sde_unet_weights import seeded_weights
    finally:
        sys.path.remove(str(DATA))
    return seeded_weights({k: tuple(v) for k, v in json.loads(str(REF["keys"])).items()})


@pytest.fixture(scope="module")
def unet() -> SDEUNet:
    settings = json.loads(str(REF["settings"]))
    cfg = SDEUNetConfig(**{**settings, "ch_mult": tuple(settings["ch_mult"])})
    net = SDEUNet(cfg).eval()
    net.load_state_dict({k: torch.from_numpy(v) for k, v in reference_weights().items()}, strict=True)
    return net


def test_state_dict_layout_is_daclips(unet):
    ref = {k: tuple(v) for k, v in json.loads(str(REF["keys"])).items()}
    ours = {k: tuple(v.shape) for k, v in unet.state_dict().items()}
    assert len(ref) == 224 and ours == ref


@pytest.mark.parametrize("t", [1, 37, 100])
def test_output_matches_daclip(unet, t):
    with torch.no_grad():
        y = unet(torch.from_numpy(REF["xt"]), torch.from_numpy(REF["cond"]), torch.tensor([float(t)]),
                 torch.from_numpy(REF["text_context"]), torch.from_numpy(REF["image_context"])).numpy()
    ref = REF[f"noise_t{t}"]
    assert y.shape == ref.shape == (1, 3, 37, 45)
    assert np.linalg.norm(y - ref) / np.linalg.norm(ref) < 1e-4


def test_contexts_and_time_change_the_output(unet):
    args = [torch.from_numpy(REF[k]) for k in ("xt", "cond")]
    text, image = torch.from_numpy(REF["text_context"]), torch.from_numpy(REF["image_context"])
    with torch.no_grad():
        base = unet(*args, torch.tensor([37.0]), text, image)
        for other in (unet(*args, torch.tensor([80.0]), text, image), unet(*args, torch.tensor([37.0]), -text, image),
                      unet(*args, torch.tensor([37.0]), text, -image)):
            assert (other - base).abs().max() > 1e-3


def daclip_file(path: Path, prefix: str = "module.", edit=None) -> Path:
    """A state dict saved as DA-CLIP's training saves it (torch.save of the dict), seeded weights."""
    state = {prefix + k: torch.from_numpy(v) for k, v in reference_weights().items()}
    if edit:
        edit(state)
    torch.save(state, path)
    return path


def test_daclip_restorer_file_loads_with_its_architecture_and_outputs(tmp_path):
    from mmfir.models.daclip_sde import load_daclip_restorer

    net = load_daclip_restorer(daclip_file(tmp_path / "universal-ir.pth"))
    settings = json.loads(str(REF["settings"]))
    assert net.cfg == SDEUNetConfig(**{**settings, "ch_mult": tuple(settings["ch_mult"])})
    with torch.no_grad():
        y = net(torch.from_numpy(REF["xt"]), torch.from_numpy(REF["cond"]), torch.tensor([37.0]),
                torch.from_numpy(REF["text_context"]), torch.from_numpy(REF["image_context"])).numpy()
    assert np.linalg.norm(y - REF["noise_t37"]) / np.linalg.norm(REF["noise_t37"]) < 1e-4


def test_daclip_restorer_mismatches_are_listed(tmp_path):
    from mmfir.models.daclip_sde import load_daclip_restorer
    from mmfir.runtime.errors import CheckpointError

    def damage(state):
        del state["module.mid_block1.block1.proj.weight"]
        state["module.extra.weight"] = torch.zeros(3)
        state["module.final_res_block.mlp.1.bias"] = torch.zeros(5)

    with pytest.raises(CheckpointError) as err:
        load_daclip_restorer(daclip_file(tmp_path / "bad.pth", edit=damage))
    text = str(err.value)
    assert "missing: mid_block1.block1.proj.weight" in text and "unexpected: extra.weight" in text
    assert "mis-shaped: final_res_block.mlp.1.bias (5,) != (64,)" in text
    (tmp_path / "evil.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        load_daclip_restorer(tmp_path / "evil.pth")
