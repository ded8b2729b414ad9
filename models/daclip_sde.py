"""Read DA-CLIP's diffusion restorer (``universal-ir.pth``: the IR-SDE ConditionalUNet) into ``SDEUNet``.

DA-CLIP saves the U-Net as a plain state dict (``torch.save(network.state_dict())``, keys with a
``module.`` prefix when it was trained wrapped in DataParallel). The file is read as the encoder's is
(``read_daclip_file``: weights only, an explicit allow-list, nothing in the pickle runs); the
architecture (nf, ch_mult, context_dim, which contexts) is read from the tensors' shapes, and every
key must fit: one error lists the missing, unexpected and mis-shaped ones.
"""
from __future__ import annotations

from pathlib import Path

import torch

from mmfir.runtime.errors import CheckpointError

from .daclip import describe_mismatch, read_daclip_file
from .sde_unet import SDEUNet, SDEUNetConfig


def restorer_state_dict(obj: object, source: str) -> dict[str, torch.Tensor]:
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{source} is not a DA-CLIP restorer: expected a state dict of tensors "
                              f"(universal-ir.pth), got {type(obj).__name__}")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def infer_unet_config(state: dict[str, torch.Tensor], source: str) -> SDEUNetConfig:
    """The U-Net's settings from its tensors' shapes."""
    try:
        nf, two_in = state["init_conv.weight"].shape[:2]
        out_nc = state["final_conv.weight"].shape[0]
        depth = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("downs."))
        widths = [state[f"downs.{i}.0.block1.proj.weight"].shape[0] for i in range(depth)]
        widths.append(state[f"downs.{depth - 1}.3.weight"].shape[0])
    except (KeyError, ValueError) as err:
        raise CheckpointError(f"{source} is not a DA-CLIP restorer: no U-Net tensor {err}") from None
    if any(w % nf for w in widths):
        raise CheckpointError(f"{source}: level widths {widths} are not multiples of nf = {nf}")
    degra = "prompt" in state
    image = any(".transformer_blocks." in k for k in state)
    context = state["text_mlp.0.weight"].shape[1] if degra else (
        state["mid_attn.fn.fn.transformer_blocks.0.attn2.to_k.weight"].shape[1] if image else 0)
    return SDEUNetConfig(in_nc=two_in // 2, out_nc=out_nc, nf=nf, ch_mult=tuple(w // nf for w in widths[1:]),
                         context_dim=context, use_degra_context=degra, use_image_context=image)


def load_daclip_restorer(path: str | Path) -> SDEUNet:
    """``universal-ir.pth`` (or any ConditionalUNet state dict) as an ``SDEUNet`` in eval mode, FP32."""
    source = str(path)
    state = restorer_state_dict(read_daclip_file(path), source)
    cfg = infer_unet_config(state, source)
    net = SDEUNet(cfg)
    expected = net.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    misshaped = sorted(f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}" for k, v in expected.items()
                       if k in state and state[k].shape != v.shape)
    text = describe_mismatch([("missing", missing), ("unexpected", unexpected), ("mis-shaped", misshaped)])
    if text:
        raise CheckpointError(f"{source} does not fit the DA-CLIP restorer layout inferred from its tensors: {text}")
    net.load_state_dict({k: v.detach().to(torch.float32) for k, v in state.items()})
    return net.eval()
