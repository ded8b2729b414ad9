"""Training losses: contrastive (stage 1) and restoration (stage 2)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def clip_contrastive_loss(image_emb: torch.Tensor, text_emb: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE between matching rows of image and text embeddings (CLIP loss)."""
    image_emb = F.normalize(image_emb, dim=-1)
    text_emb = F.normalize(text_emb, dim=-1)
    logits = logit_scale * image_emb @ text_emb.T
    target = torch.arange(len(logits), device=logits.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def degradation_contrastive_loss(degradation_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Degradation embedding vs all class-prompt text embeddings: cross-entropy on the scaled cosines."""
    return F.cross_entropy(degradation_logits, labels)


def content_contrastive_loss(content: torch.Tensor, caption_emb: torch.Tensor, caption_ids: torch.Tensor,
                             logit_scale: torch.Tensor) -> torch.Tensor:
    """Content embedding vs the text embedding of each sample's clean-image caption.

    Several samples of a batch may share one caption (same photo, other degradations): the
    caption set is the unique captions, and each image's target is its own caption.
    """
    logits = logit_scale * F.normalize(content, dim=-1) @ F.normalize(caption_emb, dim=-1).T
    return F.cross_entropy(logits, caption_ids)


def psnr_loss(restored: torch.Tensor, clean: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Mean of per-sample -PSNR/10 (log-MSE): balances easy and hard degradations in one batch."""
    mse = (restored - clean).pow(2).flatten(1).mean(1)
    return torch.log10(mse + eps).mean()


def restoration_loss(restored: torch.Tensor, clean: torch.Tensor, l1_weight: float = 1.0) -> torch.Tensor:
    """Per-sample log-MSE (task balance) plus L1 (sharpness)."""
    return psnr_loss(restored, clean) + l1_weight * (restored - clean).abs().mean()
