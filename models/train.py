"""Train an MMFIR model on degraded photos (CPU friendly).

The photos are scikit-image's and 14 CC-licensed Debian wallpapers (``python -m mmfir.measure.photos
--fetch`` installs them; ``--photos skimage`` trains without them); the held-out photos of
``mmfir.measure.photos`` are never trained on.

Stage 1 (contrastive): the controller's degradation embedding against the class-prompt text
embeddings, and the content embedding against a caption of the clean photo. With ``--clip-weights``
the CLIP towers stay frozen (as designed); without (random towers, e.g. ``tiny``) they train too.
Stage 2: the restorer with cross-attention to the frozen encoder's mmf tokens, per-sample log-MSE
+ L1 loss (balances easy and hard degradations). Optional stage 3 (``--stage3-minutes``): the same
loss with other class weights (``--stage3-weights``) and a fresh, lower learning-rate schedule. The
degradations whose gain is small (blur, JPEG) are learned last: on the shipped model, 6 more minutes
on blur and JPEG alone took the held-out JPEG gain from +0.01 to +0.4 dB while the others were
forgotten; stage 3 keeps the others in the mix. Measured from scratch (20 + 60 + 15 minutes, stage 3
``--stage3-weights blurry=4,jpeg-compressed=4``, ``texture`` preprocessing): JPEG +0.05 dB, correctly
classified blur +0.6 dB; not enough to ship (see ``mmfir.runtime.preprocess``). ``--wrong-tokens 0.1`` (a tenth of
the samples restored from another sample's tokens) did not make a wrong class harmless in one 95-minute
run: held-out blurred and JPEG photos read as low-light still lost 15-21 dB.

    python -m mmfir.models.train --config tiny --out models/weights/tiny.safetensors

Saves every ``--save-every`` steps (EMA weights) so a killed run leaves a usable checkpoint;
``--resume`` continues from ``OUT.train.pt``.
"""
from __future__ import annotations

import argparse
import copy
import json
import logging
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

from mmfir.runtime.errors import MmfirError, UsageError
from mmfir.runtime.files import atomic_path
from mmfir.runtime.spec import CONTENT, LOGITS, MMF, RESTORED
from mmfir.measure.evaluate import evaluate_cases, format_summary, make_cases, summarize

from . import build_model, load_checkpoint, load_clip_weights, save_checkpoint
from .data import HELD_OUT_PHOTOS, SKIMAGE_TRAIN_PHOTOS, TRAIN_PHOTOS, PhotoSampler, held_out_photos
from .losses import content_contrastive_loss, degradation_contrastive_loss, restoration_loss
from .system import MMFIR

log = logging.getLogger("mmfir.models.train")  # also when run as __main__


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m mmfir.models.train", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="tiny", help="config name or JSON path")
    p.add_argument("--out", required=True, type=Path, help="checkpoint to write (.safetensors)")
    p.add_argument("--clip-weights", type=Path, help="local open_clip weights for the (then frozen) towers")
    p.add_argument("--init", type=Path, help="start from this mmfir checkpoint (its config and weights; fine-tune)")
    p.add_argument("--train-clip", action=argparse.BooleanOptionalAction, default=None,
                   help="train the CLIP towers in stage 1 (default: on without --clip-weights)")
    p.add_argument("--stage1-steps", type=int, default=500)
    p.add_argument("--stage2-steps", type=int, default=3000)
    p.add_argument("--stage1-minutes", type=float, help="fit stage 1's step count to this time (measured rate)")
    p.add_argument("--stage2-minutes", type=float, help="fit stage 2's step count to this time (measured rate)")
    p.add_argument("--batch1", type=int, default=16, help="stage 1 batch size")
    p.add_argument("--batch2", type=int, default=8, help="stage 2 batch size")
    p.add_argument("--crop", type=int, default=128)
    p.add_argument("--photos", choices=("all", "skimage"), default="all",
                   help="training photos: scikit-image's and the Debian wallpapers (default), or scikit-image's only")
    p.add_argument("--class-weights", type=parse_weights, default=None, metavar="NAME=W,...",
                   help="sampling weight per degradation class (default 1 each), e.g. blurry=3,jpeg-compressed=2")
    p.add_argument("--stage3-steps", type=int, default=0, help="stage 3 steps (0: no stage 3)")
    p.add_argument("--stage3-minutes", type=float, help="fit stage 3's step count to this time (measured rate)")
    p.add_argument("--stage3-weights", type=parse_weights, default=None, metavar="NAME=W,...",
                   help="class sampling weights of stage 3 (default: --class-weights)")
    p.add_argument("--wrong-tokens", type=float, default=0.0, metavar="P",
                   help="stages 2-3: give this fraction of the samples another sample's mmf tokens, meant to keep "
                        "a wrong class from brightening or dehazing the image (0.1 did not, in one measured run)")
    p.add_argument("--lr1", type=float, default=5e-4)
    p.add_argument("--lr2", type=float, default=1e-3)
    p.add_argument("--lr3", type=float, default=5e-4)
    p.add_argument("--content-weight", type=float, default=0.5)
    p.add_argument("--ema", type=float, default=0.999)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save-every", type=int, default=200)
    p.add_argument("--eval-every", type=int, default=0, help="held-out evaluation every N stage-2 steps (0: end)")
    p.add_argument("--log-every", type=int, default=20)
    p.add_argument("--resume", action="store_true", help="continue from OUT.train.pt")
    p.add_argument("--fp16", action=argparse.BooleanOptionalAction, default=True, help="store weights as FP16")
    p.add_argument("--no-eval", action="store_true", help="skip the held-out evaluation at the end")
    args = p.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # recorded in the checkpoint as the command
    return args


def parse_weights(text: str) -> dict[str, float]:
    try:
        pairs = [item.split("=") for item in text.split(",") if item]
        return {name.strip(): float(w) for name, w in pairs}
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected NAME=WEIGHT,... got {text!r}") from None


class Trainer:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        torch.set_num_threads(args.threads)
        torch.manual_seed(args.seed)
        # --init: the checkpoint's own config and weights (e.g. a converted DA-CLIP model), else --config
        self.model = load_checkpoint(args.init)[0] if args.init else build_model(args.config, seed=args.seed)
        if self.model.cfg.diffusion is not None:
            raise UsageError("this trainer trains the NAFNet restorer; a diffusion restorer (DA-CLIP's U-Net) is "
                             "used as trained: export it with `mmfir export`")
        if args.clip_weights:
            load_clip_weights(self.model, args.clip_weights)
        self.train_clip = args.train_clip if args.train_clip is not None else args.clip_weights is None
        names = self.model.cfg.encoder.class_names
        for flag, weights in (("--class-weights", args.class_weights), ("--stage3-weights", args.stage3_weights)):
            unknown = sorted(set(weights or {}) - set(names))
            if unknown:
                raise MmfirError(f"{flag}: unknown class {unknown[0]} (classes: {', '.join(names)})")
        self.last_stage = 3 if (args.stage3_steps > 0 or args.stage3_minutes) else 2
        self.photos = TRAIN_PHOTOS if args.photos == "all" else SKIMAGE_TRAIN_PHOTOS
        self.sampler = PhotoSampler(names, args.crop, args.seed, photos=self.photos, class_weights=args.class_weights)
        self.caption_tokens = self.model.encoder.tokenize(self.sampler.captions)
        self.stage, self.step, self.seconds = 1, 0, 0.0
        self.state_path = args.out.with_name(args.out.name + ".train.pt")
        self.history: list[dict] = []
        if args.resume:
            self._load_state()
        else:
            self._setup_stage()

    # ----- stages
    def _setup_stage(self) -> None:
        m = self.model
        if self.stage == 1:
            m.encoder.freeze_clip(not self.train_clip)
            if self.train_clip:
                if self.step == 0 and not self.args.init:
                    self.warm_up_text()
                # fixed, distinct text anchors: with a trainable text tower the contrastive loss collapses the
                # class prompts that the images cannot yet tell apart onto one embedding (a symmetric saddle)
                for p in text_parameters(m.encoder.clip):
                    p.requires_grad_(False)
            params = [p for p in m.encoder.parameters() if p.requires_grad]
            self.opt = torch.optim.AdamW(params, lr=self.args.lr1, weight_decay=0.05)
            self.total, self.lr, self.minutes = self.args.stage1_steps, self.args.lr1, self.args.stage1_minutes
        else:
            m.encoder.requires_grad_(False)
            m.encoder.cache_class_text(True)
            params = list(m.restorer.parameters())
            a = self.args
            if self.stage == 2:
                self.total, self.lr, self.minutes = a.stage2_steps, a.lr2, a.stage2_minutes
            else:
                self.total, self.lr, self.minutes = a.stage3_steps, a.lr3, a.stage3_minutes
                self.sampler.set_class_weights(a.stage3_weights or a.class_weights)
            self.opt = torch.optim.AdamW(params, lr=self.lr, betas=(0.9, 0.9), weight_decay=0.0)
        self.params = params
        if self.minutes:
            self.total = 10 ** 6  # until the rate is measured
        self.ema = copy.deepcopy(m).requires_grad_(False)
        self.stage_seconds: list[float] = []  # training seconds at each step of this stage (for --stageN-minutes)

    def _next_stage(self) -> None:
        self.model.load_state_dict(self.ema.state_dict())  # each stage builds on the previous one's EMA weights
        self.stage, self.step = self.stage + 1, 0
        self._setup_stage()

    def lr_at(self, step: int) -> float:
        warm = min(50, max(1, self.total // 10))
        if step < warm:
            return self.lr * (step + 1) / warm
        t = (step - warm) / max(1, self.total - warm)
        return 1e-6 + 0.5 * (self.lr - 1e-6) * (1 + math.cos(math.pi * min(1.0, t)))

    # ----- steps
    def stage1_loss(self, batch) -> tuple[torch.Tensor, dict]:
        enc = self.model.encoder
        x = torch.from_numpy(batch.degraded)
        out = enc(self.model.clip_input(x))
        labels = torch.from_numpy(batch.labels)
        deg = degradation_contrastive_loss(out[LOGITS], labels)
        captions = enc.encode_text(self.caption_tokens)
        scale = enc.clip.logit_scale.exp()
        con = content_contrastive_loss(out[CONTENT], captions, torch.from_numpy(batch.captions), scale)
        acc = (out[LOGITS].argmax(1) == labels).float().mean()
        loss = deg + self.args.content_weight * con
        info = {"deg": deg.item(), "content": con.item(), "acc": acc.item()}
        return loss, info

    def warm_up_text(self, steps: int = 300) -> None:
        """Random text tower only: spread the class prompts' and captions' embeddings apart."""
        enc = self.model.encoder
        tokens = torch.cat([enc.class_tokens, self.caption_tokens])
        params = text_parameters(enc.clip)
        opt = torch.optim.AdamW(params, lr=1e-3)
        for _ in range(steps):
            loss = text_spread_loss(enc.encode_text(tokens))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        log.info(f"text warm-up: mean squared cosine between prompts {loss.item():.2e}")

    def stage2_loss(self, batch) -> tuple[torch.Tensor, dict]:
        x, clean = torch.from_numpy(batch.degraded), torch.from_numpy(batch.clean)
        with torch.no_grad():
            mmf = swap_tokens(self.model.encoder(self.model.clip_input(x))[MMF], self.args.wrong_tokens)
        restored = self.model.restorer(x, mmf)
        loss = restoration_loss(restored, clean)
        with torch.no_grad():  # PSNR gain over the degraded samples (clean ones have no input error)
            mse_out = (restored.clamp(0, 1) - clean).pow(2).flatten(1).mean(1).clamp_min(1e-10)
            mse_in = (x - clean).pow(2).flatten(1).mean(1)
            bad = mse_in > 1e-8
            gain = 10 * torch.log10(mse_in[bad] / mse_out[bad]).mean() if bad.any() else torch.zeros(())
        return loss, {"psnr_gain": gain.item()}

    def train_step(self) -> dict:
        for group in self.opt.param_groups:
            group["lr"] = self.lr_at(self.step)
        batch = self.sampler.batch(self.args.batch1 if self.stage == 1 else self.args.batch2)
        self.model.train()
        loss, info = (self.stage1_loss if self.stage == 1 else self.stage2_loss)(batch)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        self.opt.step()
        with torch.no_grad():
            self.model.encoder.clip.logit_scale.clamp_(0, math.log(100))
        self.update_ema()
        self.step += 1
        return {"loss": loss.item(), **info}

    @torch.no_grad()
    def update_ema(self) -> None:
        decay = min(self.args.ema, (1 + self.step) / (10 + self.step))
        for e, p in zip(self.ema.parameters(), self.model.parameters()):
            if p.requires_grad:
                e.lerp_(p.detach(), 1 - decay)

    # ----- loop
    def run(self) -> None:
        while True:
            self.run_stage()
            if self.stage == self.last_stage:
                break
            self._next_stage()
            self.save()
        self.ema.encoder.cache_class_text(True)
        if not self.args.no_eval:
            self.history.append({"final_eval": self.evaluate()})
        self.save()

    def run_stage(self) -> None:
        a, running, t0 = self.args, {}, time.perf_counter()
        while self.step < self.total:
            start = time.perf_counter()
            info = self.train_step()
            self.seconds += time.perf_counter() - start
            self.stage_seconds.append(self.seconds)
            self.retarget()
            for k, v in info.items():
                running[k] = running.get(k, 0.0) + v
            if self.step % a.log_every == 0 or self.step == self.total:
                n = a.log_every if self.step % a.log_every == 0 else self.step % a.log_every
                self.log({k: v / n for k, v in running.items()}, t0)
                running = {}
            if self.stage >= 2 and a.eval_every and self.step % a.eval_every == 0 and self.step < self.total:
                self.history.append({"stage": self.stage, "step": self.step, "eval": self.evaluate()})
            if self.step % a.save_every == 0 and self.step < self.total:
                self.save()

    def retarget(self) -> None:
        """With a time budget: set the stage's step count from the rate measured after warm-up."""
        n = len(self.stage_seconds)
        if not self.minutes or n < 30 or n % 10 or self.step > 0.3 * self.total:
            return
        per_step = (self.stage_seconds[-1] - self.stage_seconds[9]) / (n - 10)
        left = self.minutes * 60 - (self.stage_seconds[-1] - self.stage_seconds[0])
        self.total = max(self.step + 1, self.step + int(left / per_step))

    def log(self, info: dict, t0: float) -> None:
        rate = self.step / max(1e-6, time.perf_counter() - t0)
        eta = (self.total - self.step) / max(rate, 1e-6)
        parts = " ".join(f"{k} {v:.4f}" for k, v in info.items())
        log.info(f"stage {self.stage} step {self.step}/{self.total} lr {self.lr_at(self.step - 1):.2e} {parts} "
                 f"| {rate:.2f} step/s eta {eta / 60:.1f} min | train {self.seconds / 60:.1f} min")
        self.history.append({"stage": self.stage, "step": self.step, **{k: round(v, 5) for k, v in info.items()}})

    def evaluate(self) -> list[dict]:
        """The 72 held-out cases (4 photos x 6 degradations x 3 strengths), restored by the EMA model."""
        cases = make_cases(held_out_photos())
        rows = summarize(evaluate_cases(cases, lambda imgs: restore_with_torch(self.ema, imgs)))
        log.info(format_summary(rows))
        return rows

    # ----- persistence
    def metadata(self) -> dict:
        command = "python -m mmfir.models.train " + " ".join(getattr(self.args, "argv", []))
        return {"trained_by": "mmfir.models.train", "command": command, "train_photos": list(self.photos),
                "held_out_photos": list(HELD_OUT_PHOTOS), "stage": self.stage, "step": self.step,
                "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(self.args).items()},
                "train_clip": self.train_clip, "train_minutes": round(self.seconds / 60, 2),
                "history": self.history[-400:]}

    def save(self) -> None:
        save_checkpoint(self.ema, self.args.out, metadata=self.metadata(),
                        dtype=torch.float16 if self.args.fp16 else None)
        state = {"stage": self.stage, "step": self.step, "total": self.total, "seconds": self.seconds,
                 "history": self.history, "model": self.model.state_dict(), "ema": self.ema.state_dict(),
                 "opt": self.opt.state_dict(),
                 "rng": self.sampler.rng.bit_generator.state, "torch_rng": torch.get_rng_state()}
        with atomic_path(self.state_path) as tmp:
            torch.save(state, tmp)
        log.info(f"saved {self.args.out} (stage {self.stage} step {self.step})")

    def _load_state(self) -> None:
        if not self.state_path.is_file():
            raise MmfirError(f"--resume: no training state at {self.state_path}")
        state = torch.load(self.state_path, weights_only=False)
        self.stage, self.step, self.seconds = state["stage"], state["step"], state["seconds"]
        self.history = state["history"]
        self.model.load_state_dict(state["model"])
        self._setup_stage()  # step > 0 in stage 1: no text warm-up
        self.total, self.minutes = state["total"], None
        self.ema.load_state_dict(state["ema"])
        self.opt.load_state_dict(state["opt"])
        self.sampler.rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
        log.info(f"resumed stage {self.stage} step {self.step}")


def swap_tokens(mmf: torch.Tensor, rate: float) -> torch.Tensor:
    """A random ``rate`` of the rows take the next row's tokens (another photo, usually another degradation).

    The restorer then meets the encoder's mistakes in training (on the training photos the encoder is
    nearly always right): measured on a model trained without it, two held-out blurred photos read as
    low-light were brightened by 15-20 dB of error, pulling the blur mean to -3.3 dB. At rate 0.1 it did
    not cure that (module docstring).
    """
    if rate <= 0 or len(mmf) < 2:
        return mmf
    wrong = torch.rand(len(mmf)) < rate
    return torch.where(wrong[:, None, None], mmf.roll(1, dims=0), mmf)


def text_parameters(clip: torch.nn.Module) -> list[torch.nn.Parameter]:
    """The text tower's parameters of an open_clip CLIP (everything but the image tower and logit scale)."""
    visual = {id(p) for p in clip.visual.parameters()} | {id(clip.logit_scale)}
    return [p for p in clip.parameters() if id(p) not in visual]


def text_spread_loss(text: torch.Tensor) -> torch.Tensor:
    """Mean squared cosine between different prompts' text embeddings.

    Random text towers map prompts that differ in one word to nearly the same embedding; with equal
    class texts the contrastive loss has no gradient that separates those classes' images (a symmetric
    saddle). Spreading them before stage 1 (text warm-up), then freezing them, breaks the tie.
    """
    t = torch.nn.functional.normalize(text, dim=-1)
    cos = t @ t.T
    off = cos - torch.diag_embed(torch.diagonal(cos))
    return off.pow(2).sum() / (len(t) * (len(t) - 1))


@torch.no_grad()
def restore_with_torch(model: MMFIR, images: list[np.ndarray]) -> tuple[list[np.ndarray], list[str], list[float]]:
    """Reference restoration of HxWx3 float images, one at a time (any size)."""
    model.eval()
    names = model.cfg.encoder.class_names
    out, labels, confs = [], [], []
    for img in images:
        x = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))[None]
        res = model(x)
        probs = res[LOGITS].softmax(-1)[0]
        out.append(res[RESTORED][0].clamp(0, 1).permute(1, 2, 0).numpy())
        labels.append(names[int(probs.argmax())])
        confs.append(float(probs.max()))
    return out, labels, confs


def main(argv=None) -> int:
    """``python -m mmfir.models.train``: the training command. Progress goes to stderr through logging,
    the result (checkpoint path, minutes) to stdout as JSON, an error as one line."""
    args = parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    logging.getLogger("mmfir").addHandler(handler)
    logging.getLogger("mmfir").setLevel(logging.INFO)
    try:
        trainer = Trainer(args)
        budget = lambda steps, minutes: f"{minutes:g} min" if minutes else f"{steps} steps"  # noqa: E731
        stage3 = f", stage 3 {budget(args.stage3_steps, args.stage3_minutes)}" if trainer.last_stage == 3 else ""
        log.info(f"training {trainer.model.cfg.name}: stage 1 {budget(args.stage1_steps, args.stage1_minutes)} "
                 f"(train CLIP: {trainer.train_clip}), stage 2 {budget(args.stage2_steps, args.stage2_minutes)}"
                 f"{stage3} -> {args.out}")
        trainer.run()
    except MmfirError as err:
        log.error(f"train: error: {err}")
        return err.exit_code
    finally:
        logging.getLogger("mmfir").removeHandler(handler)
    sys.stdout.write(json.dumps({"out": str(args.out), "train_minutes": round(trainer.seconds / 60, 2)}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
