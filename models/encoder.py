"""MultiContentNet: the CLIP degradation encoder (stage 1).

An open_clip CLIP model (frozen image and text towers) plus a *controller*: a trainable copy of
the image tower whose block outputs pass through zero-initialised linear layers and are added
into the frozen tower's residual stream in reversed order (ControlNet style, as DA-CLIP).
"""
from __future__ import annotations

import copy

import open_clip
import torch
import torch.nn.functional as F
from torch import nn

from mmfir.runtime.spec import CONTENT, DEGRADATION, LOGITS, MMF

from .config import EncoderConfig


def build_clip(cfg: EncoderConfig) -> open_clip.CLIP:
    v, t = cfg.vision, cfg.text
    vision_cfg = open_clip.CLIPVisionCfg(layers=v.layers, width=v.width, head_width=v.width // v.heads,
                                         mlp_ratio=v.mlp_ratio, patch_size=v.patch_size, image_size=v.image_size)
    text_cfg = open_clip.CLIPTextCfg(context_length=t.context_length, vocab_size=t.vocab_size,
                                     width=t.width, heads=t.heads, layers=t.layers)
    return open_clip.CLIP(cfg.embed_dim, vision_cfg, text_cfg, quick_gelu=cfg.quick_gelu)


def tower_tokens(tower: nn.Module, image: torch.Tensor) -> torch.Tensor:
    """Patch embedding + class token + positions + ln_pre of an open_clip VisionTransformer."""
    x = tower.conv1(image)
    x = x.flatten(2).transpose(1, 2)
    cls = tower.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
    x = torch.cat([cls, x], dim=1) + tower.positional_embedding.to(x.dtype)
    return tower.ln_pre(x)


def tower_head(tower: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """CLS token -> ln_post -> proj."""
    return tower.ln_post(tokens[:, 0]) @ tower.proj


class Controller(nn.Module):
    """Trainable copy of the image tower; block i emits zero_modules[i](h_i) as a control signal."""

    def __init__(self, tower: nn.Module):
        super().__init__()
        self.tower = copy.deepcopy(tower)
        width = tower.conv1.out_channels
        layers = len(tower.transformer.resblocks)
        self.zero_modules = nn.ModuleList(nn.Linear(width, width) for _ in range(layers))
        for m in self.zero_modules:
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
        """Returns (degradation embedding, control signals, final tokens)."""
        x = tower_tokens(self.tower, image)
        controls = []
        for block, zero in zip(self.tower.transformer.resblocks, self.zero_modules):
            x = block(x)
            controls.append(zero(x))
        return tower_head(self.tower, x), controls, x


class MultiContentNet(nn.Module):
    """Degraded (CLIP-preprocessed) image -> content, degradation, logits, mmf tokens."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.cfg = cfg
        self.clip = build_clip(cfg)
        self.controller = Controller(self.clip.visual)
        self.register_buffer("class_tokens", self.tokenize(cfg.class_names), persistent=False)
        if cfg.patch_tokens:
            self.patch_proj = nn.Linear(cfg.vision.width, cfg.embed_dim)
        self.freeze_clip(True)
        self._class_text_cache: torch.Tensor | None = None

    def tokenize(self, names) -> torch.Tensor:
        prompts = [self.cfg.prompt_template.format(n) for n in names]
        return open_clip.tokenize(prompts, context_length=self.cfg.text.context_length)

    def freeze_clip(self, frozen: bool = True) -> None:
        for p in self.clip.parameters():
            p.requires_grad_(not frozen)

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.clip.encode_text(tokens)

    def class_text_features(self) -> torch.Tensor:
        """Text embeddings of the class prompts [K, D] (cached while the text tower is frozen)."""
        if self._class_text_cache is not None:
            return self._class_text_cache
        return self.encode_text(self.class_tokens)

    def cache_class_text(self, enabled: bool = True) -> None:
        """Compute the class text embeddings once (export, inference); ``False`` drops the cache."""
        self._class_text_cache = None
        if enabled:
            with torch.no_grad():
                self._class_text_cache = self.encode_text(self.class_tokens).detach()

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        degradation, controls, ctrl_tokens = self.controller(image)
        x = tower_tokens(self.clip.visual, image)
        blocks = self.clip.visual.transformer.resblocks
        for i, block in enumerate(blocks):
            x = block(x) + controls[len(blocks) - 1 - i]
        content = tower_head(self.clip.visual, x)

        text = self.class_text_features()
        scale = self.cfg.fixed_logit_scale or self.clip.logit_scale.exp()
        logits = scale * F.normalize(degradation, dim=-1) @ F.normalize(text, dim=-1).T
        probs = logits.softmax(dim=-1)
        tokens = [content, degradation, probs @ text]
        mmf = torch.stack([F.normalize(t, dim=-1) for t in tokens], dim=1)
        if self.cfg.patch_tokens:
            patches = F.normalize(self.patch_proj(ctrl_tokens[:, 1:1 + self.cfg.patch_tokens]), dim=-1)
            mmf = torch.cat([mmf, patches], dim=1)
        return {CONTENT: content, DEGRADATION: degradation, LOGITS: logits, MMF: mmf}
