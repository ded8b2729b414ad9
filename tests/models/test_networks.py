import dataclasses

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from mmfir.models import build_model, count_parameters  # noqa: E402
from mmfir.models.encoder import tower_head, tower_tokens  # noqa: E402
from mmfir.runtime.spec import network_specs  # noqa: E402


def _check_shapes(model, out, batch, h, w):
    specs = network_specs(model.cfg.to_dict())
    sizes = {"batch": batch, "height": h, "width": w}
    for net in specs.values():
        for t in net.outputs:
            want = tuple(sizes.get(d, d) for d in t.shape)
            assert tuple(out[t.name].shape) == want, t.name


@pytest.mark.parametrize("name", ["tiny", "base"])
def test_forward_odd_aspect(name):
    model = build_model(name)
    x = torch.rand(1, 3, 96, 128)
    with torch.no_grad():
        out = model(x)
    _check_shapes(model, out, 1, 96, 128)
    assert torch.isfinite(out["restored"]).all()


def test_sizes_are_as_designed():
    tiny, base = build_model("tiny"), build_model("base")
    assert count_parameters(tiny) < 6e6
    assert 20e6 <= count_parameters(base.restorer) <= 50e6


def test_restorer_dynamic_size_and_padding(tiny_model):
    mmf = torch.randn(2, tiny_model.cfg.num_tokens, tiny_model.cfg.encoder.embed_dim)
    with torch.no_grad():
        y = tiny_model.restorer.pad_forward(torch.rand(2, 3, 37, 53), mmf)
    assert y.shape == (2, 3, 37, 53)


def test_zero_init_controller_equals_plain_clip(tiny_model):
    """Untrained controller: the controlled tower's content embedding is plain CLIP's."""
    enc = tiny_model.encoder
    s = enc.cfg.vision.image_size
    x = torch.randn(2, 3, s, s)
    with torch.no_grad():
        out = enc(x)
        plain = enc.clip.encode_image(x)
        # the controller is a copy of the image tower, so degradation == plain CLIP too
        assert torch.allclose(out["content"], plain, atol=1e-5)
        assert torch.allclose(out["degradation"], plain, atol=1e-5)
        # and once the zero modules are non-zero, content moves away from plain CLIP
        for m in enc.controller.zero_modules:
            torch.nn.init.normal_(m.weight, std=0.05)
        moved = enc(x)["content"]
        for m in enc.controller.zero_modules:
            torch.nn.init.zeros_(m.weight)
    assert not torch.allclose(moved, plain, atol=1e-3)


def test_tower_helpers_match_open_clip(tiny_model):
    visual = tiny_model.encoder.clip.visual
    s = tiny_model.cfg.encoder.vision.image_size
    x = torch.randn(1, 3, s, s)
    with torch.no_grad():
        mine = tower_head(visual, visual.transformer(tower_tokens(visual, x)))
        assert torch.allclose(mine, visual(x), atol=1e-6)


def test_logits_are_scaled_cosines(tiny_model):
    enc = tiny_model.encoder
    with torch.no_grad():
        s = enc.cfg.vision.image_size
        out = enc(torch.randn(3, 3, s, s))
        text = enc.class_text_features()
        d = torch.nn.functional.normalize(out["degradation"], dim=-1)
        t = torch.nn.functional.normalize(text, dim=-1)
        expected = enc.clip.logit_scale.exp() * d @ t.T
    np.testing.assert_allclose(out["degradation_logits"].numpy(), expected.numpy(), atol=1e-5)
    assert out["mmf"].shape[1] == 3


def test_training_losses_decrease():
    from mmfir.models.losses import degradation_contrastive_loss, restoration_loss

    torch.manual_seed(0)
    model = build_model("tiny")
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-3)
    clean = torch.rand(4, 3, 64, 64)
    noisy = (clean + 0.2 * torch.randn_like(clean)).clamp(0, 1)
    labels = torch.tensor([1, 1, 1, 1])
    first = None
    for _ in range(8):
        out = model(noisy)
        loss = restoration_loss(out["restored"], clean) + degradation_contrastive_loss(out["degradation_logits"],
                                                                                       labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = first if first is not None else loss.item()
    assert loss.item() < first
    # the frozen CLIP towers did not move
    assert not any(p.requires_grad for p in model.encoder.clip.parameters())


def test_token_modulation_is_one_scale_and_shift_per_channel():
    """The conditioning reads the tokens only: x -> x * (1 + s) + t with s, t per image and channel, so no
    pixel (and no tile) of an image is conditioned differently from another."""
    from mmfir.models.restorer import TokenModulation

    torch.manual_seed(0)
    mod = TokenModulation(16, 64, heads=2)
    torch.nn.init.normal_(mod.film.weight)  # trained-like: not the zero init
    tokens = torch.randn(2, 3, 64)
    x = torch.randn(2, 16, 24, 40)
    with torch.no_grad():
        shift = mod(torch.zeros_like(x), tokens)
        gain = mod(torch.ones_like(x), tokens) - shift
        y = mod(x, tokens)
    assert torch.allclose(shift, shift[..., :1, :1].expand_as(shift))  # constant over pixels
    assert torch.allclose(y, x * gain + shift, atol=1e-5)
    assert not torch.allclose(gain[0], gain[1])  # ...but it does depend on the tokens
    zero = TokenModulation(16, 64, heads=2)
    with torch.no_grad():
        assert torch.equal(zero(x, tokens), x)  # zero-initialised: identity before training


@pytest.mark.parametrize("config", [
    {},  # the first architecture: channel attention, pixel cross-attention, PixelShuffle
    {"conditioning": "modulation", "channel_attention": False, "upsample": "bilinear"},
    {"conditioning": "modulation", "channel_attention": False, "upsample": "bilinear", "stem": "space-to-depth"},
])
def test_inference_form_is_the_same_function(config):
    """The exported form (LayerNorm affines, beta and gamma folded, SimpleGate's split as two convolutions)
    computes what the trained restorer does, on weights where every folded parameter matters."""
    from mmfir.models.config import RestorerConfig
    from mmfir.models.restorer import FusedNAFBlock, NAFBlock, Restorer, inference_form

    torch.manual_seed(0)
    cfg = RestorerConfig(width=8, enc_blocks=[1, 1], middle_blocks=1, dec_blocks=[1, 1], attn_levels=1,
                         attn_heads=2, **config)
    restorer = Restorer(cfg, token_dim=16).eval()
    with torch.no_grad():  # nothing zero- or one-initialised, so a dropped fold would show
        for p in restorer.parameters():
            p.add_(0.3 * torch.randn_like(p))
    fused = inference_form(restorer)
    assert not any(isinstance(m, NAFBlock) for m in fused.modules())
    assert sum(isinstance(m, FusedNAFBlock) for m in fused.modules()) == 5
    assert sum(isinstance(m, NAFBlock) for m in restorer.modules()) == 5  # the original is untouched
    image, tokens = torch.rand(2, 3, 24, 40), torch.randn(2, 3, 16)
    with torch.no_grad():
        want, got = restorer(image, tokens), fused(image, tokens)
    assert want.abs().max() > 1.0  # the blocks do something
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-4), (got - want).abs().max()


@pytest.mark.parametrize("stem", ["conv", "space-to-depth"])
def test_the_declared_multiple_is_what_the_network_needs(stem):
    """The runtime pads to ``restorer_multiple`` (read from the bundle's config): sizes of that multiple run,
    sizes of half of it do not, so the runtime neither under-pads nor pads more than it must."""
    from mmfir.models.config import RestorerConfig
    from mmfir.models.restorer import Restorer
    from mmfir.runtime.spec import network_specs

    cfg = RestorerConfig(width=8, enc_blocks=[1, 1], middle_blocks=1, dec_blocks=[1, 1], attn_heads=2,
                         conditioning="modulation", channel_attention=False, upsample="bilinear", stem=stem)
    restorer = Restorer(cfg, token_dim=16).eval()
    m = cfg.multiple
    assert m == (8 if stem == "space-to-depth" else 4)
    config = {"encoder": {"embed_dim": 16, "vision": {"image_size": 32}, "class_names": ["a"]},
              "restorer": dataclasses.asdict(cfg)}
    assert network_specs(config)["restorer"].multiple == m  # the torch-free runtime agrees
    tokens = torch.randn(1, 3, 16)
    with torch.no_grad():
        assert restorer(torch.rand(1, 3, 3 * m, 2 * m), tokens).shape == (1, 3, 3 * m, 2 * m)
        with pytest.raises(RuntimeError):
            restorer(torch.rand(1, 3, 3 * m + m // 2, 2 * m), tokens)
        odd = restorer.pad_forward(torch.rand(1, 3, 3 * m + 1, 2 * m + 3), tokens)
    assert odd.shape == (1, 3, 3 * m + 1, 2 * m + 3)
