"""Import DA-CLIP checkpoints (Luo et al., ICLR 2024, github.com/Algolzw/daclip-uir) into MultiContentNet.

DA-CLIP's training writes ``{epoch, name, state_dict, optimizer, scaler}`` with ``module.``-prefixed keys:
``clip.*`` (an open_clip CLIP), ``visual.*`` (aliases of ``clip.visual.*``), ``visual_control.*`` (the
controller: a copy of the image tower, its blocks under ``visual_control.transformer.transformer.resblocks``
and one zero Linear per block under ``visual_control.transformer.zero_modules``) and ``logit_scale``.
MultiContentNet follows the same controller, so the import is a renaming: no weight is changed.

The file is read with ``torch.load(weights_only=True)``; the only globals allowed besides torch's own are
the numpy scalar and dtype that DA-CLIP's optimizer state holds (its learning rate is a numpy float64).
Anything else in the pickle is refused before it can run.
"""
from __future__ import annotations

import math
import re
from pathlib import Path

import torch

from mmfir.runtime.files import sha256_file
from mmfir.runtime.errors import CheckpointError, ConfigError

from .checkpoint import save_checkpoint
from mmfir.runtime.sde import SDESettings

from .config import (DiffusionConfig, EncoderConfig, ModelConfig, RestorerConfig, TextConfig, VisionConfig, load_config,
                     validate)

# DA-CLIP's degradation vocabulary, in its order (da-clip/src/evaluate.py); prompts are the bare names.
DACLIP_CLASSES = ("motion-blurry", "hazy", "jpeg-compressed", "low-light", "noisy", "raindrop", "rainy",
                  "shadowed", "snowy", "uncompleted")
# DA-CLIP's probabilities are softmax(100 * cos(degradation, text)), whatever logit_scale the file holds.
DACLIP_LOGIT_SCALE = 100.0
# Attention heads are not visible in the tensors; open_clip's ViT configs use 64-wide heads.
HEAD_WIDTH = 64

VISION = "clip.visual."
TEXT_BLOCKS = "clip.transformer.resblocks."
# tensors the architecture is read from (DA-CLIP names, without the ``module.`` prefix)
SHAPE_KEYS = (VISION + "conv1.weight", VISION + "positional_embedding", VISION + "proj",
              VISION + "transformer.resblocks.0.mlp.c_fc.weight", "clip.token_embedding.weight",
              "clip.positional_embedding", "clip.text_projection", TEXT_BLOCKS + "0.mlp.c_fc.weight")


def allowed_globals() -> list:
    """The non-torch globals a DA-CLIP file references: its learning rate is a numpy float64, pickled with
    numpy's scalar reconstructor (numpy 1.x wrote ``numpy.core.multiarray.scalar``, numpy 2
    ``numpy._core.multiarray.scalar``), ``numpy.dtype`` and, in numpy >= 1.25, the dtype's class
    ``numpy.dtypes.Float64DType``."""
    import numpy as np

    try:
        from numpy._core.multiarray import scalar
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import scalar
    allowed = [(scalar, "numpy.core.multiarray.scalar"), (scalar, "numpy._core.multiarray.scalar"), np.dtype]
    float64_dtype = getattr(getattr(np, "dtypes", None), "Float64DType", None)
    return allowed + ([float64_dtype] if float64_dtype is not None else [])


def read_daclip_file(path: str | Path) -> object:
    """Unpickle a torch checkpoint without running code from it."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"DA-CLIP checkpoint not found: {path}")
    try:
        with torch.serialization.safe_globals(allowed_globals()):
            return torch.load(path, map_location="cpu", weights_only=True, mmap=_is_zip(path))
    except Exception as err:  # noqa: BLE001  (unpickling raises many types; all mean "cannot read")
        raise CheckpointError(_load_error(path, err)) from None


def _is_zip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == b"PK\x03\x04"


def _load_error(path: Path, err: Exception) -> str:
    text = str(err)
    found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
    if found:
        return (f"{path}: refused to load: its pickle references {found.group(1)}, which a DA-CLIP checkpoint "
                "does not hold (only tensors, numbers and numpy scalars are allowed; nothing in it was run)")
    detail = re.search(r"WeightsUnpickler error:\s*(.+?)\s*(?:\n\n|$)", text, re.S)
    first = detail.group(1) if detail else (text.strip().splitlines() or [type(err).__name__])[0]
    first = " ".join(first.split())[:160]
    return (f"{path} could not be read as a weights-only torch checkpoint ({first}); nothing in it was run. "
            "Pass the .pt file DA-CLIP's training writes")


def daclip_state_dict(obj: object, source: str) -> dict[str, torch.Tensor]:
    """The model weights of a DA-CLIP training checkpoint (or bare state dict), ``module.`` prefix removed."""
    state = obj.get("state_dict", obj) if isinstance(obj, dict) else None
    if not isinstance(state, dict) or not state:
        kind = type(obj).__name__ if not isinstance(obj, dict) else f"dict with keys {sorted(map(str, obj))[:6]}"
        raise CheckpointError(f"{source} is not a DA-CLIP checkpoint: expected a dict with 'state_dict', got {kind}")
    state = {str(k).removeprefix("module."): v for k, v in state.items()}
    others = sorted(k for k, v in state.items() if not isinstance(v, torch.Tensor))
    if others:
        raise CheckpointError(f"{source}: state_dict entries that are not tensors: {', '.join(others[:8])}")
    if not any(k.startswith("visual_control.") for k in state) or not any(k.startswith(VISION) for k in state):
        prefixes = sorted({k.split(".")[0] for k in state})
        raise CheckpointError(f"{source} is not a DA-CLIP checkpoint: no clip.visual.* and visual_control.* weights "
                              f"(top-level names: {', '.join(prefixes[:10])}); `mmfir import daclip` reads the "
                              "files DA-CLIP's training writes (e.g. daclip_ViT-B-32.pt)")
    return state


def _count_blocks(state: dict, prefix: str) -> int:
    found = {int(m.group(1)) for k in state if (m := re.match(re.escape(prefix) + r"(\d+)\.", k))}
    return max(found) + 1 if found else 0


def infer_encoder_config(state: dict[str, torch.Tensor], source: str) -> EncoderConfig:
    """Architecture from tensor shapes; heads = max(1, width // 64) (open_clip's head width)."""
    missing = [k for k in SHAPE_KEYS if k not in state]
    if missing:
        raise CheckpointError(f"{source}: DA-CLIP weights incomplete, missing: {', '.join(missing)}")
    conv, vpos = state[VISION + "conv1.weight"], state[VISION + "positional_embedding"]
    grid = math.isqrt(vpos.shape[0] - 1) if vpos.ndim == 2 and vpos.shape[0] > 1 else 0
    if conv.ndim != 4 or grid < 1 or grid * grid != vpos.shape[0] - 1:
        raise CheckpointError(f"{source}: unexpected image tower shapes conv1 {tuple(conv.shape)}, "
                              f"positional_embedding {tuple(vpos.shape)} (expected a square ViT patch grid)")
    width, patch = conv.shape[0], conv.shape[-1]
    vocab, text_width = state["clip.token_embedding.weight"].shape
    vision = VisionConfig(image_size=grid * patch, patch_size=patch, width=width,
                          layers=_count_blocks(state, VISION + "transformer.resblocks."),
                          heads=max(1, width // HEAD_WIDTH), mlp_ratio=_mlp_ratio(state, VISION + "transformer."))
    text = TextConfig(context_length=state["clip.positional_embedding"].shape[0], vocab_size=vocab,
                      width=text_width, layers=_count_blocks(state, TEXT_BLOCKS),
                      heads=max(1, text_width // HEAD_WIDTH))
    if _mlp_ratio(state, "clip.transformer.") != 4.0:
        raise CheckpointError(f"{source}: text tower MLP ratio {_mlp_ratio(state, 'clip.transformer.')} "
                              "is not supported (open_clip text towers use 4)")
    return EncoderConfig(embed_dim=state[VISION + "proj"].shape[1], vision=vision, text=text,
                         class_names=DACLIP_CLASSES, prompt_template="{}", preprocess="resize",
                         quick_gelu=False, fixed_logit_scale=DACLIP_LOGIT_SCALE)


def _mlp_ratio(state: dict, tower: str) -> float:
    hidden, width = state[tower + "resblocks.0.mlp.c_fc.weight"].shape
    return hidden / width


def daclip_name(key: str) -> str:
    """MultiContentNet state-dict key -> the DA-CLIP key that holds the same tensor."""
    if key.startswith("controller.zero_modules."):
        return "visual_control.transformer." + key.removeprefix("controller.")
    if key.startswith("controller.tower.transformer."):
        return "visual_control.transformer." + key.removeprefix("controller.tower.")
    if key.startswith("controller.tower."):
        return "visual_control." + key.removeprefix("controller.tower.")
    return key  # clip.*


def map_state_dict(state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor],
                   source: str) -> dict[str, torch.Tensor]:
    """DA-CLIP tensors renamed to MultiContentNet keys, as FP32; one error lists every key that does not fit."""
    names = {daclip_name(k): k for k in expected}
    aliases = {k for k in state if k.startswith("visual.") and "clip." + k in state}
    known = set(names) | aliases | {"logit_scale"}
    missing = sorted(set(names) - set(state))
    unexpected = sorted(set(state) - known)
    misshaped = sorted(f"{d} {tuple(state[d].shape)} != {tuple(expected[m].shape)}"
                       for d, m in names.items() if d in state and state[d].shape != expected[m].shape)
    differing = sorted(k for k in aliases if not torch.equal(state[k], state["clip." + k]))
    text = describe_mismatch([("missing", missing), ("unexpected", unexpected), ("mis-shaped", misshaped),
                              ("visual.* differing from clip.visual.*", differing)])
    if text:
        raise CheckpointError(f"{source} does not fit the DA-CLIP layout inferred from its tensors: {text}")
    return {m: state[d].detach().to(torch.float32).contiguous() for d, m in names.items()}


def describe_mismatch(problems: list[tuple[str, list[str]]]) -> str:
    """``"missing: a, b; mis-shaped: c (1, 2) != (3,)"`` for the non-empty lists, at most 8 keys each ("" if none)."""
    return "; ".join(f"{label}: " + ", ".join(keys[:8]) + (f", ... ({len(keys)} in all)" if len(keys) > 8 else "")
                     for label, keys in problems if keys)


def restorer_section(restorer_config: str) -> RestorerConfig:
    """The restorer section of a shipped config (name) or a JSON config file (path)."""
    try:
        return load_config(restorer_config).restorer
    except ConfigError as err:
        raise ConfigError(f"--restorer-config {restorer_config}: {err}") from None


def daclip_model_config(encoder: EncoderConfig, restorer: RestorerConfig | None, source: str,
                        diffusion: DiffusionConfig | None = None) -> ModelConfig:
    try:
        return validate(ModelConfig(name="daclip", encoder=encoder, restorer=restorer or RestorerConfig(),
                                    diffusion=diffusion))
    except ConfigError as err:
        raise CheckpointError(f"{source}: architecture inferred from the tensors is invalid: {err}") from None


def convert_daclip(path: str | Path, restorer_config: str = "base", seed: int = 0, restorer: str | Path | None = None):
    """Read a DA-CLIP file into an MMFIR model (encoder = DA-CLIP's weights).

    The restorer is freshly initialised from ``restorer_config`` (train it before use), or, with
    ``restorer`` (DA-CLIP's ``universal-ir.pth``), DA-CLIP's own diffusion U-Net, with the IR-SDE settings
    of DA-CLIP's universal-ir test options (``SDESettings()``). Returns (model, metadata for the checkpoint).
    """
    from .system import MMFIR

    path = Path(path)
    obj = read_daclip_file(path)
    state = daclip_state_dict(obj, str(path))
    encoder = infer_encoder_config(state, str(path))
    unet = None
    if restorer is not None:
        from .daclip_sde import load_daclip_restorer

        unet = load_daclip_restorer(restorer)
        if unet.cfg.context_dim != encoder.embed_dim:
            raise CheckpointError(f"{restorer} expects {unet.cfg.context_dim}-d embeddings but {path} has "
                                  f"{encoder.embed_dim}-d ones: pass the restorer trained with this DA-CLIP model")
        cfg = daclip_model_config(encoder, None, str(path), DiffusionConfig(unet=unet.cfg, sde=SDESettings()))
    else:
        cfg = daclip_model_config(encoder, restorer_section(restorer_config), str(path))
    with torch.random.fork_rng(devices=[]):  # seeded restorer init without touching the caller's RNG
        torch.manual_seed(seed)
        model = MMFIR(cfg)
    weights = map_state_dict(state, model.encoder.state_dict(), str(path))
    model.encoder.load_state_dict(weights, strict=True)
    meta = {"source": "daclip", "source_file": path.name, "source_sha256": sha256_file(path),
            "head_width": str(HEAD_WIDTH)}
    if unet is not None:
        model.denoiser.load_state_dict(unet.state_dict(), strict=True)
        meta.update({"restorer_untrained": "false", "restorer_file": Path(restorer).name,
                     "restorer_sha256": sha256_file(Path(restorer))})
    else:
        meta.update({"restorer_untrained": "true", "restorer_seed": str(seed)})
    model.eval()
    if isinstance(obj, dict):
        meta.update({f"daclip_{k}": str(obj[k]) for k in ("epoch", "name") if k in obj})
    if state.get("logit_scale", torch.empty(0)).numel() == 1:
        meta["daclip_logit_scale"] = f"{float(state['logit_scale']):.6g}"
    return model, meta


def import_daclip(path: str | Path, out: str | Path, restorer_config: str = "base", seed: int = 0,
                  restorer: str | Path | None = None) -> Path:
    """Convert a DA-CLIP checkpoint (and optionally its ``universal-ir.pth`` restorer) into one mmfir
    checkpoint (safetensors) at ``out``; never overwrites an input."""
    path, out = Path(path), Path(out)
    for source in (path, Path(restorer) if restorer else None):
        if source is not None and out.exists() and source.exists() and out.resolve() == source.resolve():
            raise CheckpointError(f"--out {out} is an input file; choose another output path")
    model, meta = convert_daclip(path, restorer_config, seed, restorer)
    return save_checkpoint(model, out, metadata=meta)
