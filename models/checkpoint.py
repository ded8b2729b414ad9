"""Checkpoint I/O: safetensors with the model config (and free-form metadata) in its header."""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from mmfir.runtime.errors import CheckpointError, ConfigError
from mmfir.runtime.files import atomic_path

from .config import ModelConfig, config_from_dict
from .system import MMFIR

FORMAT = "mmfir-checkpoint/1"


def save_checkpoint(model: MMFIR, path: str | Path, metadata: dict | None = None,
                    dtype: torch.dtype | None = None) -> Path:
    """Write the model's state dict with its config; atomic (temporary file, then rename).

    ``dtype=torch.float16`` stores floating tensors in half precision (the shipped tiny model);
    loading casts them back into the model's FP32 parameters.
    """
    path = Path(path)
    state = {}
    for k, v in model.state_dict().items():
        v = v.detach().cpu()
        state[k] = (v.to(dtype) if dtype is not None and v.is_floating_point() else v).contiguous()
    meta = {"format": FORMAT, "config": model.cfg.to_json()}
    meta.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in (metadata or {}).items()})
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata=meta)
    return path


def read_metadata(path: str | Path) -> dict[str, str]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        with open(path, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            if n <= 0 or n > 100_000_000 or n > path.stat().st_size:
                raise ValueError("bad header length")
            header = json.loads(f.read(n))
    except (ValueError, OSError) as err:
        raise CheckpointError(f"{path} is not a safetensors checkpoint ({err}); "
                              "pass a file written by mmfir (or `mmfir import`)") from None
    meta = header.get("__metadata__") or {}
    if meta.get("format") != FORMAT or "config" not in meta:
        raise CheckpointError(f"{path} is a safetensors file but not an mmfir checkpoint (no mmfir config in its "
                              "metadata); convert it with `mmfir import` or save it with save_checkpoint()")
    return meta


def read_config(path: str | Path) -> ModelConfig:
    meta = read_metadata(path)
    try:
        return config_from_dict(json.loads(meta["config"]))
    except (json.JSONDecodeError, ConfigError) as err:
        raise CheckpointError(f"{path}: config stored in the checkpoint is invalid: {err}") from None


def check_state_dict(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Strict key/shape check; one error naming every missing, unexpected and mis-shaped key."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    misshaped = sorted(f"{k} {tuple(state[k].shape)} != {tuple(expected[k].shape)}"
                       for k in set(expected) & set(state) if state[k].shape != expected[k].shape)
    if missing or unexpected or misshaped:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", misshaped)):
            if keys:
                shown = ", ".join(keys[:8]) + (f", ... ({len(keys)} in all)" if len(keys) > 8 else "")
                parts.append(f"{label}: {shown}")
        raise CheckpointError(f"{source} does not match the architecture: " + "; ".join(parts))


def load_checkpoint(path: str | Path, map_location: str = "cpu") -> tuple[MMFIR, dict[str, str]]:
    """Build the model from the stored config and load its weights strictly. Returns (model, metadata)."""
    meta = read_metadata(path)
    cfg = read_config(path)
    try:
        state = load_file(str(path), device=map_location)
    except (SafetensorError, OSError, RuntimeError) as err:
        raise CheckpointError(f"{path} is corrupt or truncated: {err}") from None
    model = MMFIR(cfg)
    check_state_dict(model, state, str(path))
    model.load_state_dict(state, strict=True)
    model.eval()
    return model, meta


def load_clip_weights(model: MMFIR, path: str | Path) -> None:
    """Load local open_clip CLIP weights (a state dict file) into the frozen towers and controller.

    Uses open_clip's own loader; nothing is downloaded. The controller starts as a copy of the
    loaded image tower (its zero modules stay zero, so outputs equal plain CLIP).
    """
    from open_clip import load_checkpoint as oc_load

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"CLIP weights not found: {path}")
    try:
        oc_load(model.encoder.clip, str(path), strict=True, weights_only=True)
    except (RuntimeError, AssertionError, KeyError, ValueError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise CheckpointError(f"{path} does not fit config '{model.cfg.name}' CLIP towers: {first}") from None
    model.encoder.controller.tower.load_state_dict(model.encoder.clip.visual.state_dict())
