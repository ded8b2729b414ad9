"""The whole model: MultiContentNet (stage 1) + Restorer (stage 2), and the preprocessing glue."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mmfir.runtime.errors import UsageError
from mmfir.runtime.preprocess import texture_window
from mmfir.runtime.spec import MMF, RESTORED

from .config import ModelConfig
from .encoder import MultiContentNet
from .restorer import Restorer


class MMFIR(nn.Module):
    """MultiContentNet + the restorer: NAFNet-style ``restorer``, or with ``cfg.diffusion`` DA-CLIP's
    conditional U-Net as ``denoiser`` (sampled by IR-SDE in the runtime; no ``restorer`` then)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = MultiContentNet(cfg.encoder)
        if cfg.diffusion is None:
            self.restorer = Restorer(cfg.restorer, cfg.encoder.embed_dim)
        else:
            from .sde_unet import SDEUNet

            self.denoiser = SDEUNet(cfg.diffusion.unet)
        mean = torch.tensor(cfg.encoder.mean).view(1, 3, 1, 1)
        std = torch.tensor(cfg.encoder.std).view(1, 3, 1, 1)
        self.register_buffer("clip_mean", mean, persistent=False)
        self.register_buffer("clip_std", std, persistent=False)

    def clip_input(self, image: torch.Tensor) -> torch.Tensor:
        """Torch version of the runtime's CLIP preprocessing for training, on [0, 1] images.

        ``resize``: shorter side to image_size (bicubic, antialiased), centre crop (close to, not bit-equal
        with, open_clip's PIL resize that the runtime uses).
        ``crop``: centre crop at native resolution (reflect-padded when smaller).
        ``texture``: the window at native resolution that ``runtime.preprocess.texture_window`` picks (the
        detail rank of each image's own windows), per image of the batch, by that same function.
        The runtime's numpy/PIL preprocessing is the reference at inference time.
        """
        s = self.cfg.encoder.vision.image_size
        h, w = image.shape[-2:]
        if self.cfg.encoder.preprocess == "resize":
            scale = s / min(h, w)
            size = (max(s, round(h * scale)), max(s, round(w * scale)))
            image = F.interpolate(image, size=size, mode="bicubic", align_corners=False, antialias=True)
        else:
            ph, pw = max(0, s - h), max(0, s - w)
            if ph or pw:
                image = F.pad(image, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2), mode="reflect")
        h, w = image.shape[-2:]
        if self.cfg.encoder.preprocess == "texture":
            boxes = texture_windows(image, s)
            image = torch.stack([im[:, t:t + s, l:l + s] for im, (t, l) in zip(image, boxes)])
        else:
            top, left = (h - s) // 2, (w - s) // 2
            image = image[..., top:top + s, left:left + s]
        return (image - self.clip_mean) / self.clip_std

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.cfg.diffusion is not None:
            raise UsageError("a diffusion model restores by sampling (IR-SDE in mmfir.runtime), not in one "
                             "forward call: export it and run `mmfir restore`")
        feats = self.encoder(self.clip_input(image))
        feats[RESTORED] = self.restorer.pad_forward(image, feats[MMF])
        return feats


def texture_windows(image: torch.Tensor, size: int) -> list[tuple[int, int]]:
    """(top, left) per image of an [N, 3, H, W] batch: the runtime's own ``texture_window`` on each image (a
    choice of window, no gradient; a few milliseconds for a training batch)."""
    pixels = image.detach().float().cpu().permute(0, 2, 3, 1).numpy()
    return [texture_window(im, size) for im in pixels]


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
