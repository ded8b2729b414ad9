"""Training smoke tests: both stages run on tiny at 64 px crops, losses fall, checkpoints load and resume."""
from __future__ import annotations

import json
import math

import pytest

from support import requires_torch

pytestmark = requires_torch


def make_args(out, *extra):
    from mmfir.models.train import parse_args

    return parse_args(["--config", "tiny", "--out", str(out), "--crop", "64", "--batch1", "4", "--batch2", "2",
                       "--threads", "1", "--log-every", "1", "--no-eval", "--photos", "skimage", *extra])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Two steps of each stage, saved every step."""
    from mmfir.models.train import Trainer

    out = tmp_path_factory.mktemp("train") / "t.safetensors"
    trainer = Trainer(make_args(out, "--stage1-steps", "2", "--stage2-steps", "2", "--save-every", "1"))
    trainer.run()
    return out, trainer


def test_run_writes_a_checkpoint_that_loads(trained):
    from mmfir.models import load_checkpoint
    from mmfir.models.data import HELD_OUT_PHOTOS, SKIMAGE_TRAIN_PHOTOS, TRAIN_PHOTOS

    out, trainer = trained
    model, meta = load_checkpoint(out)
    assert model.cfg.name == "tiny"
    assert json.loads(meta["stage"]) == 2 and json.loads(meta["step"]) == 2
    held = json.loads(meta["held_out_photos"])
    assert held == list(HELD_OUT_PHOTOS) and not set(held) & set(json.loads(meta["train_photos"]))
    assert set(TRAIN_PHOTOS).isdisjoint(HELD_OUT_PHOTOS)
    assert json.loads(meta["train_photos"]) == list(SKIMAGE_TRAIN_PHOTOS)  # --photos skimage
    assert meta["command"].startswith("python -m mmfir.models.train --config tiny")
    assert out.stat().st_size < 12e6  # stored as FP16
    assert all(math.isfinite(h["loss"]) for h in trainer.history if "loss" in h)


def test_stage2_keeps_the_encoder_frozen(trained):
    import torch

    _, trainer = trained
    assert not any(p.requires_grad for p in trainer.model.encoder.parameters())
    for (name, a), b in zip(trainer.model.encoder.state_dict().items(), trainer.ema.encoder.state_dict().values()):
        assert torch.equal(a, b), name


@pytest.mark.slow
def test_resume_continues_from_the_saved_state(tmp_path):
    """A run 'killed' after a save resumes at that step, with the optimizer state, and finishes."""
    import torch

    from mmfir.models.train import Trainer

    out = tmp_path / "r.safetensors"
    first = Trainer(make_args(out, "--stage1-steps", "3", "--stage2-steps", "1"))
    first.train_step()
    first.save()
    again = Trainer(make_args(out, "--stage1-steps", "3", "--stage2-steps", "1", "--resume"))
    assert (again.stage, again.step, again.total) == (1, 1, 3)
    for a, b in zip(first.ema.parameters(), again.ema.parameters()):
        assert torch.equal(a, b)
    again.run()
    assert (again.stage, again.step) == (2, 1)


@pytest.mark.slow
def test_losses_fall_on_a_fixed_batch(tmp_path):
    from mmfir.models.train import Trainer

    trainer = Trainer(make_args(tmp_path / "f.safetensors", "--stage1-steps", "20", "--stage2-steps", "20"))
    fixed = trainer.sampler.batch(8)
    trainer.sampler.batch = lambda size: fixed  # a one-batch dataset
    stage1 = [trainer.train_step()["loss"] for _ in range(8)]
    trainer._next_stage()
    stage2 = [trainer.train_step()["loss"] for _ in range(8)]
    for losses in (stage1, stage2):
        assert all(math.isfinite(v) for v in losses)
        assert min(losses[-3:]) < losses[0], losses


def test_clip_weights_keep_the_towers_frozen(tmp_path):
    import torch

    from mmfir.models import build_model
    from mmfir.models.train import Trainer

    weights = tmp_path / "clip.pt"
    torch.save(build_model("tiny", seed=5).encoder.clip.state_dict(), weights)
    trainer = Trainer(make_args(tmp_path / "c.safetensors", "--clip-weights", str(weights)))
    assert trainer.train_clip is False
    assert not any(p.requires_grad for p in trainer.model.encoder.clip.parameters())
    assert all(p.requires_grad for p in trainer.model.encoder.controller.parameters())
    trainer.train_step()


def test_sampler_skips_classes_without_a_synthetic_degradation():
    """DA-CLIP's vocabulary: its 'snowy', 'shadowed', ... are never sampled; 'motion-blurry' is blur."""
    from mmfir.models.daclip import DACLIP_CLASSES
    from mmfir.models.data import PhotoSampler
    from mmfir.runtime.errors import ConfigError

    sampler = PhotoSampler(DACLIP_CLASSES, crop=32, seed=0, photos={"astronaut": "an astronaut"})
    sampled = {DACLIP_CLASSES[sampler.sample()[2]] for _ in range(200)}
    assert "motion-blurry" in sampled and "noisy" in sampled
    assert not sampled & {"raindrop", "shadowed", "snowy", "uncompleted"}
    with pytest.raises(ConfigError, match="has a synthetic degradation"):
        PhotoSampler(["snowy", "shadowed"], crop=32, photos={"astronaut": "an astronaut"})


def test_stage3_trains_the_restorer_with_its_own_class_weights(tmp_path):
    """--stage3-steps adds a restorer stage that samples by --stage3-weights; the checkpoint says stage 3."""
    import torch

    from mmfir.models import load_checkpoint
    from mmfir.models.train import Trainer
    from mmfir.runtime.errors import MmfirError

    only_blur = "clean=0,noisy=0,jpeg-compressed=0,low-light=0,hazy=0,rainy=0,blurry=1"
    out = tmp_path / "s3.safetensors"
    trainer = Trainer(make_args(out, "--stage1-steps", "1", "--stage2-steps", "1", "--stage3-steps", "2",
                                "--stage3-weights", only_blur))
    trainer.run()
    names = trainer.model.cfg.encoder.class_names
    assert trainer.sampler.class_probs[names.index("blurry")] == 1.0
    assert [h["stage"] for h in trainer.history if "loss" in h] == [1, 2, 3, 3]
    assert not any(p.requires_grad for p in trainer.model.encoder.parameters())
    model, meta = load_checkpoint(out)
    assert json.loads(meta["stage"]) == 3 and json.loads(meta["step"]) == 2
    ema = trainer.ema.restorer.state_dict()
    assert all(torch.equal(v.half().float(), v2.float()) for v, v2 in
               zip(ema.values(), model.restorer.state_dict().values()))  # saved: stage 3's EMA
    with pytest.raises(MmfirError, match="--stage3-weights: unknown class fog"):
        Trainer(make_args(tmp_path / "x.safetensors", "--stage3-steps", "1", "--stage3-weights", "fog=1"))


def test_wrong_tokens_swap_a_fraction_of_the_rows():
    import torch

    from mmfir.models.train import swap_tokens

    torch.manual_seed(0)
    mmf = torch.randn(400, 3, 8)
    assert swap_tokens(mmf, 0.0) is mmf
    assert torch.equal(swap_tokens(mmf, 1.0), mmf.roll(1, dims=0))
    out = swap_tokens(mmf, 0.25)
    kept = (out == mmf).flatten(1).all(1)
    swapped = (out == mmf.roll(1, dims=0)).flatten(1).all(1)
    assert torch.all(kept ^ swapped)  # each row is its own or the next one's, whole
    assert 0.15 < swapped.float().mean() < 0.35
