"""mmfir.models: the networks, configs, checkpoint I/O and training (needs torch, open_clip)."""
from .checkpoint import load_checkpoint, load_clip_weights, read_config, save_checkpoint
from .config import ModelConfig, available_configs, config_from_dict, load_config
from .system import MMFIR, count_parameters


def build_model(config: str | ModelConfig, seed: int | None = 0) -> MMFIR:
    """A model with random (seeded) weights from a config name, path or object."""
    import torch

    cfg = config if isinstance(config, ModelConfig) else load_config(config)
    if seed is not None:
        torch.manual_seed(seed)
    return MMFIR(cfg).eval()


__all__ = ["MMFIR", "ModelConfig", "available_configs", "build_model", "config_from_dict", "count_parameters",
           "load_checkpoint", "load_clip_weights", "load_config", "read_config", "save_checkpoint"]
