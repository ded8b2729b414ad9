"""``torch`` and ``torch-compile``: the PyTorch reference backends (need mmfir[export]).

They run the very networks the bundle was exported from, through the same table export uses
(``onnx_export.TORCH_NETWORKS``), with the same feeds as the ONNX backends, so ``torch`` is the reference
for `compare` and the baseline of `bench`. The model comes from the checkpoint recorded in the manifest
(``manifest["model"]["checkpoint"]``: ``path`` relative to the bundle or absolute, ``sha256``), or from
the ``checkpoint=PATH`` option, or (tests, export) ``model=`` an in-memory MMFIR.

``torch-compile`` is torch.compile(mode="default", dynamic=False) with inductor freezing on both
networks, for `bench` (compile time is its first call's warm-up). Neither is deployable: ``auto``
never picks them. They live here, with the torch code, and are registered in the runtime's backend
registry through the ``mmfir.backends`` entry points in pyproject.toml, so no runtime module imports torch.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from mmfir.runtime.backends.base import Backend
from mmfir.runtime.errors import BackendUnavailable, CheckpointError
from mmfir.runtime.files import sha256_file
from mmfir.runtime.spec import Precision


class TorchBackend(Backend):
    name = "torch"
    precisions = (Precision.FP32,)
    deployable = False

    def __init__(self, bundle, precision=Precision.FP32, threads=None, **options):
        super().__init__(bundle, precision, threads, **options)
        self._model = options.get("model")
        self._modules: dict = {}

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

    def module(self, network: str):
        """The network's export wrapper (spec-ordered inputs and outputs), made once."""
        if network not in self._modules:
            from .onnx_export import torch_module

            self._modules[network] = self.prepare(torch_module(self.model, self.specs[network]))
        return self._modules[network]

    def prepare(self, module):
        return module

    def run(self, network: str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        from .onnx_export import run_torch

        feeds = self.check_feeds(network, feeds)
        if self.threads:
            torch.set_num_threads(int(self.threads))
        with torch.inference_mode():
            return run_torch(self.module(network), self.specs[network], feeds)

    def close(self) -> None:
        self._model = None
        self._modules.clear()


class TorchCompileBackend(TorchBackend):
    name = "torch-compile"

    def prepare(self, module):
        import torch
        import torch._inductor.config as inductor_config

        inductor_config.freezing = True
        return torch.compile(module, dynamic=False)
