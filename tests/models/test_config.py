import json

import pytest

from mmfir.runtime.errors import ConfigError
from mmfir.runtime.spec import network_specs

pytest.importorskip("torch")
from mmfir.models.config import available_configs, config_from_dict, load_config  # noqa: E402


def test_shipped_configs_load():
    assert {"tiny", "base"} <= set(available_configs())
    for name in ("tiny", "base"):
        cfg = load_config(name)
        assert cfg.name == name
        assert config_from_dict(json.loads(cfg.to_json())) == cfg


def test_base_is_vit_b_32():
    v = load_config("base").encoder.vision
    assert (v.width, v.layers, v.heads, v.patch_size, v.image_size) == (768, 12, 12, 32, 224)


def test_unknown_key_named():
    data = load_config("tiny").to_dict()
    data["restorer"]["widht"] = 8
    with pytest.raises(ConfigError, match="restorer.widht"):
        config_from_dict(data)


def test_bad_value_named():
    data = load_config("tiny").to_dict()
    data["encoder"]["vision"]["heads"] = 7  # width 96 not divisible by 7
    with pytest.raises(ConfigError, match="encoder.vision.width"):
        config_from_dict(data)
    data = load_config("tiny").to_dict()
    data["restorer"]["width"] = "wide"
    with pytest.raises(ConfigError, match="restorer.width"):
        config_from_dict(data)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="no config named"):
        load_config("huge")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_config(bad)


def test_specs_follow_config():
    cfg = load_config("tiny")
    specs = network_specs(cfg.to_dict())
    enc, res = specs["encoder"], specs["restorer"]
    s = cfg.encoder.vision.image_size
    assert enc.input("image").shape == ("batch", 3, s, s)
    assert enc.output("degradation_logits").shape == ("batch", len(cfg.encoder.class_names))
    assert res.multiple == cfg.multiple
    assert res.input("mmf").shape == ("batch", cfg.num_tokens, cfg.encoder.embed_dim)


def test_configs_without_the_conditioning_keys_build_the_first_architecture():
    """Checkpoints saved before `conditioning`, `channel_attention`, `upsample` and `stem` existed keep their layout."""
    from mmfir.models.restorer import CrossAttention, Restorer, TokenModulation

    data = load_config("tiny").to_dict()
    for key in ("conditioning", "channel_attention", "upsample", "stem"):
        del data["restorer"][key]
    old = Restorer(config_from_dict(data).restorer, 64)
    new = Restorer(load_config("tiny").restorer, 64)
    kinds = lambda m: {type(x).__name__ for x in m.modules()}  # noqa: E731
    assert {"CrossAttention", "PixelShuffle", "AdaptiveAvgPool2d"} <= kinds(old)
    assert not {"TokenModulation", "PixelUnshuffle"} & kinds(old)
    assert {"TokenModulation", "Upsample"} <= kinds(new)
    assert not {"CrossAttention", "PixelShuffle", "AdaptiveAvgPool2d", "PixelUnshuffle"} & kinds(new)
    data["restorer"]["stem"] = "space-to-depth"
    cells = Restorer(config_from_dict(data).restorer, 64)
    assert {"PixelUnshuffle", "PixelShuffle"} <= kinds(cells)
    assert (new.multiple, cells.multiple) == (16, 32)  # the stem halves the resolution once more
    assert CrossAttention and TokenModulation  # both stay importable: old checkpoints need the first


def test_bad_conditioning_named():
    data = load_config("tiny").to_dict()
    data["restorer"]["conditioning"] = "telepathy"
    with pytest.raises(ConfigError, match="restorer.conditioning"):
        config_from_dict(data)


def test_diffusion_section_round_trips_and_is_checked():
    from mmfir.models.config import config_from_dict
    from mmfir.runtime.errors import ConfigError

    data = load_config("tiny").to_dict()
    assert "diffusion" not in data  # NAFNet models' configs read as before
    data["diffusion"] = {"unet": {"nf": 32, "ch_mult": [1, 2], "context_dim": data["encoder"]["embed_dim"]},
                         "sde": {"T": 50, "max_sigma": 30}}
    cfg = config_from_dict(data)
    assert cfg.diffusion.unet.ch_mult == (1, 2) and cfg.diffusion.sde.T == 50 and cfg.multiple == 4
    assert config_from_dict(cfg.to_dict()) == cfg
    for key, bad in (("unet", {"context_dim": 7}), ("unet", {"nf": 16}), ("sde", {"schedule": "quadratic"})):
        broken = {**data, "diffusion": {**data["diffusion"], key: {**data["diffusion"][key], **bad}}}
        with pytest.raises(ConfigError):
            config_from_dict(broken)
