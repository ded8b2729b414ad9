"""``torch``: the PyTorch reference backend (needs mmfir[export]).

Runs the very networks the bundle was exported from: the encoder on the CLIP-preprocessed image and
the restorer on the padded image, with the same feeds as the ONNX backends, so it is the reference
for `compare`. The model comes from the checkpoint recorded in the manifest
(``manifest["model"]["checkpoint"]``: ``path`` relative to the bundle or absolute, ``sha256``), or
from the ``checkpoint=PATH`` option, or (tests, export) ``model=`` an in-memory MMFIR.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from ..bundle import sha256_file
from ..errors import BackendUnavailable, CheckpointError
from ..spec import ENCODER, Precision
from .base import Backend


class TorchBackend(Backend):
    name = "torch"
    precisions = (Precision.FP32,)

    def __init__(self, bundle, precision=Precision.FP32, threads=None, **options):
        super().__init__(bundle, precision, threads, **options)
        self._model = options.get("model")

    @classmethod
    def available(cls) -> tuple[bool, str]:
        missing = [m for m in ("torch", "open_clip") if importlib.util.find_spec(m) is None]
        if missing:
            return False, f"{', '.join(missing)} not installed (pip install 'mmfir[export]')"
        return True, ""

    def checkpoint_path(self) -> Path:
        """The checkpoint to load: the option, else the manifest's record (SHA-256 checked)."""
        if self.options.get("checkpoint"):
            path = Path(self.options["checkpoint"])
            if not path.is_file():
                raise CheckpointError(f"checkpoint not found: {path}")
            return path
        record = (self.bundle.manifest.get("model") or {}).get("checkpoint") or {}
        if not record.get("path"):
            raise BackendUnavailable(f"bundle {self.bundle.root} records no checkpoint; pass the torch backend "
                                     "a checkpoint (--checkpoint PATH)")
        path = Path(record["path"])
        path = path if path.is_absolute() else self.bundle.root / path
        if not path.is_file():
            raise CheckpointError(f"checkpoint recorded in {self.bundle.root} not found: {path}; pass --checkpoint")
        if record.get("sha256") and sha256_file(path) != record["sha256"]:
            raise CheckpointError(f"checkpoint {path} does not match the SHA-256 recorded in the bundle "
                                  "(it changed since export); re-export or pass --checkpoint")
        return path

    @property
    def model(self):
        if self._model is None:
            from mmfir.models import load_checkpoint

            self._model, _ = load_checkpoint(self.checkpoint_path())
        self._model.eval()
        return self._model

    def run(self, network: str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        feeds = self.check_feeds(network, feeds)
        if self.threads:
            torch.set_num_threads(int(self.threads))
        tensors = {k: torch.from_numpy(v) for k, v in feeds.items()}
        with torch.inference_mode():
            if network == ENCODER:
                out = self.model.encoder(tensors["image"])
            else:
                out = {"restored": self.model.restorer(tensors["image"], tensors["mmf"])}
        names = self.specs[network].output_names
        return {n: out[n].detach().float().numpy() for n in names}

    def close(self) -> None:
        self._model = None
