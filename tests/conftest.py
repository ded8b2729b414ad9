"""Shared fixtures: tiny models with seeded random weights, real photos from scikit-image.

The whole session runs with its own empty ``MMFIR_CACHE`` (set before any test imports mmfir), so no
test can pass against a bundle, autotune record or compiled model that an earlier run or older code
left in the user's cache; subprocesses inherit it.
"""
from __future__ import annotations

import os
import shutil
import tempfile

import numpy as np
import pytest

_CACHE = tempfile.mkdtemp(prefix="mmfir-test-cache-")
os.environ["MMFIR_CACHE"] = _CACHE


def pytest_unconfigure(config):
    shutil.rmtree(_CACHE, ignore_errors=True)


@pytest.fixture(scope="session")
def tiny_model():
    pytest.importorskip("torch")
    from mmfir.models import build_model

    return build_model("tiny", seed=0)


@pytest.fixture(scope="session")
def photos() -> dict[str, np.ndarray]:
    """A few real photographs as float32 HWC in [0, 1] (scikit-image's bundled data)."""
    data = pytest.importorskip("skimage.data")
    out = {}
    for name in ("astronaut", "chelsea", "coffee"):
        img = getattr(data, name)()
        out[name] = (img[..., :3].astype(np.float32) / 255.0)
    return out


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory):
    """A validated bundle (FP32 + FP16 ONNX) of build_model('tiny', seed=0); exported once per session.

    Takes about 30-90 s on 2 cores (torch.onnx dynamo export of both networks + validation).
    Treat it as read-only: copy it (shutil.copytree) before modifying files or the manifest.
    """
    pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from mmfir.export import export_bundle
    from mmfir.models import build_model

    out = tmp_path_factory.mktemp("bundles") / "tiny"
    export_bundle(build_model("tiny", seed=0), out, progress=False)
    return out


# --- a real Triton server on loopback ------------------------------------------------------------------

def triton_skip_reason() -> str | None:
    """Why no server test can run here (tritonclient, nvidia-pytriton's tritonserver, a numpy<2 python env)."""
    from mmfir.runtime.errors import MmfirError
    from mmfir.runtime.serving.server import PythonEnv, find_triton

    try:
        import tritonclient.grpc  # noqa: F401
        import tritonclient.http  # noqa: F401
    except ImportError as err:
        return f"tritonclient missing ({err.name}): pip install 'mmfir[serve]'"
    try:
        find_triton()
        return PythonEnv.probe().problem()
    except MmfirError as err:
        return str(err)


@pytest.fixture(scope="module")
def start_triton(request):
    """start_triton(repo) -> a ready TritonServer on loopback (or a skip with the reason); each is stopped by
    its process group when the module ends, and the group is checked to be gone."""
    import time

    from mmfir.runtime.serving.server import TritonServer

    def stop_and_check(server) -> None:
        pid = server.pid
        server.stop()
        server.cleanup()
        if pid is not None:
            with pytest.raises(ProcessLookupError):
                os.killpg(pid, 0)

    def start(repo):
        if reason := triton_skip_reason():
            pytest.skip(reason)
        server = TritonServer(repo)
        request.addfinalizer(lambda: stop_and_check(server))
        started = time.monotonic()
        server.start(timeout=60)
        print(f"\ntritonserver ready in {time.monotonic() - started:.1f}s (pid {server.pid})")
        return server

    return start
