"""The backend registry: built-ins, entry-point plugins (the torch reference), register_backend, and what
each backend declares (supports with the reason, priority, deployable) driving auto and the CLI help."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from mmfir.runtime.backends import base
from mmfir.runtime.backends.auto import first_available, usable_candidates
from mmfir.runtime.backends.base import (Backend, backend_class, backend_names, backend_status, create_backend,
                                         deployable_backends, register_backend)
from mmfir.runtime.bundle import Bundle
from mmfir.runtime.errors import BackendUnavailable
from mmfir.runtime.spec import Precision


class EchoBackend(Backend):
    """A plugin backend: the restorer returns its input (enough to show the registry wiring)."""

    name = "echo"
    precisions = (Precision.FP32,)
    priority = 1

    def run(self, network, feeds):
        feeds = self.check_feeds(network, feeds)
        return {t.name: np.zeros((1,), np.float32) for t in self.specs[network].outputs}


@pytest.fixture
def echo():
    register_backend("echo", EchoBackend)
    yield
    base._REGISTERED.pop("echo", None)
    backend_class.cache_clear()


def test_the_torch_reference_is_a_plugin_not_a_runtime_import():
    assert base._entry_points()["torch"] == "mmfir.export.torch_backend:TorchBackend"
    assert "torch" not in base._BUILTIN and "torch-compile" in backend_names()
    torch_cls = backend_class("torch")
    assert torch_cls.__module__ == "mmfir.export.torch_backend" and not torch_cls.deployable
    assert "torch" not in deployable_backends() and "torch-compile" not in deployable_backends()


def test_a_registered_backend_is_usable_everywhere(echo, tiny_bundle):
    assert "echo" in backend_names() and "echo" in deployable_backends()
    assert deployable_backends().index("ort-cpu") < deployable_backends().index("echo")  # priority 10 > 1
    with create_backend("echo", Bundle.open(tiny_bundle)) as backend:
        assert backend.label == "echo/fp32"
    ok, why = backend_status("echo", "fp16")
    assert not ok and why == "echo does not run fp16 (it runs fp32)"


def test_cli_help_lists_the_registry():
    out = subprocess.run([sys.executable, "-m", "mmfir.cli", "restore", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for name in ("ort-cpu", "ov-cpu", "trt", "torch", "torch-compile"):
        assert name in out.stdout


def test_no_bf16_cpu_means_no_bf16_anywhere(monkeypatch):
    """One capability check: OpenVINO's supports(), auto's candidates and its priority fallback all use it."""
    from mmfir.runtime.backends import ov

    monkeypatch.setattr(ov, "bf16_support", lambda: (False, "this CPU reports no BF16 instructions"))
    assert ov.OpenVinoBackend.supports(Precision.BF16) == (False, "this CPU reports no BF16 instructions")
    usable, skipped = usable_candidates(Precision.BF16)
    assert usable == [] and skipped["ov-cpu"] == "this CPU reports no BF16 instructions"
    with pytest.raises(BackendUnavailable, match="no backend runs bf16 here: .*ov-cpu \\(this CPU reports no BF16"):
        first_available(Precision.BF16)
    assert ov.OpenVinoBackend.supports(Precision.FP32)[0] == ov.OpenVinoBackend.available()[0]


def test_unknown_backend_names_the_choices():
    with pytest.raises(BackendUnavailable, match="unknown backend 'onnx'; choose one of: auto, ort-cpu"):
        backend_class("onnx")
