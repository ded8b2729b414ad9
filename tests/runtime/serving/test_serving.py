"""Triton serving: repositories generated from the specs, and a real tritonserver on loopback.

Server tests need nvidia-pytriton's tritonserver and a Python environment with numpy<2 for the python
models (this one, or MMFIR_TRITON_PYTHON_ENV); they skip with the reason otherwise. Every server is
stopped by its process group in a finalizer.
"""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import triton_skip_reason

from mmfir.runtime.bundle import Bundle
from mmfir.measure.checks import check_outputs, failures
from mmfir.runtime.errors import MmfirError
from mmfir.runtime.serving.repo import BACKENDS, RepoOptions, write_repository
from mmfir.runtime.spec import CONTRACTS, ENCODER, RESTORER, Precision

MODELS = ("preprocess", "encoder", "restorer", "postprocess", "mmfir")
MAX_SIDE = 256  # small limit so the oversized-image request stays cheap


def parse_config(path: Path):
    """The config as Triton's own ModelConfig protobuf (fails on anything Triton would not parse)."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


@pytest.fixture(scope="module")
def bundle(tiny_bundle) -> Bundle:
    return tiny_bundle if isinstance(tiny_bundle, Bundle) else Bundle.open(tiny_bundle)


@pytest.fixture(scope="module")
def python_repo(bundle, tmp_path_factory) -> Path:
    """Written in one place, then moved: every server test below runs on a repository that was moved."""
    base = tmp_path_factory.mktemp("triton")
    repo, notes = write_repository(bundle, base / "written",
                                   RepoOptions(instances=1, max_batch=4, threads=1, max_side=MAX_SIDE))
    assert notes == []
    return repo.rename(base / "repo")


def test_repository_is_self_contained(python_repo, bundle):
    """No config names a path outside the repository; its bundle copy holds the served graphs."""
    for config in python_repo.glob("*/config.pbtxt"):
        text = config.read_text()
        assert str(bundle.root.resolve()) not in text and "/tmp" not in text, config
    copy = Bundle.open(python_repo / "mmfir" / "bundle")
    for network in copy.graph.order:
        copy.verify_file(copy.onnx_path(network, verify=False).name)  # present and hash-checked


# --- repository generation (no server) ---------------------------------------------------------------

def test_network_configs_follow_the_specs(python_repo, bundle):
    pytest.importorskip("tritonclient.grpc")
    for network in (ENCODER, RESTORER):
        spec, cfg = bundle.specs[network], parse_config(python_repo / network / "config.pbtxt")
        assert cfg.name == network and cfg.backend == "python" and cfg.max_batch_size == 4
        assert cfg.dynamic_batching.max_queue_delay_microseconds > 0
        for got, want in zip(list(cfg.input) + list(cfg.output), spec.inputs + spec.outputs):
            assert got.name == want.name
            assert list(got.dims) == [d if isinstance(d, int) else -1 for d in want.shape[1:]]
            assert got.data_type == 11  # TYPE_FP32
        assert [(g.count, g.kind) for g in cfg.instance_group] == [(1, 2)]  # KIND_CPU
        assert cfg.parameters["bundle"].string_value == "mmfir/bundle"  # relative to the repository
        assert cfg.parameters["network"].string_value == network
    model_py = (python_repo / "restorer" / "1" / "model.py").read_text()
    assert "class TritonPythonModel(NetworkModel)" in model_py and "parents[2]" in model_py


def test_ensemble_chains_the_models(python_repo, bundle):
    pytest.importorskip("tritonclient.grpc")
    cfg = parse_config(python_repo / "mmfir" / "config.pbtxt")
    assert cfg.platform == "ensemble"
    assert [s.model_name for s in cfg.ensemble_scheduling.step] == ["preprocess", "encoder", "restorer", "postprocess"]
    assert [i.name for i in cfg.input] == ["image"] and cfg.input[0].data_type == 2  # TYPE_UINT8
    assert [o.name for o in cfg.output] == ["restored", "degradation_class", "degradation_probs"]
    assert list(cfg.output[2].dims) == [len(bundle.class_names)]
    produced = {"image"}  # every step reads only tensors produced before it
    for s in cfg.ensemble_scheduling.step:
        assert set(s.input_map.values()) <= produced, s.model_name
        produced |= set(s.output_map.values())
    pre = parse_config(python_repo / "preprocess" / "config.pbtxt")
    assert list(pre.output[0].dims) == list(bundle.specs[ENCODER].inputs[0].shape[1:])
    assert pre.parameters["max_side"].string_value == str(MAX_SIDE)


def onnx_interface(path: Path) -> list[tuple[str, int]]:
    """(name, rank) of a graph's inputs and outputs, from a real onnxruntime session; all float32."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    tensors = session.get_inputs() + session.get_outputs()
    assert {t.type for t in tensors} == {"tensor(float)"}
    return [(t.name, len(t.shape)) for t in tensors]


def test_onnxruntime_and_tensorrt_repositories(bundle, tmp_path):
    pytest.importorskip("tritonclient.grpc")
    repo, notes = write_repository(bundle, tmp_path / "ort", RepoOptions(backend="onnxruntime", kind="gpu",
                                                                         instances=2, precision=Precision.FP16))
    assert notes == []
    for network in (ENCODER, RESTORER):
        cfg = parse_config(repo / network / "config.pbtxt")
        assert cfg.platform == "onnxruntime_onnx" and [(g.count, g.kind) for g in cfg.instance_group] == [(2, 1)]
        graph = repo / network / "1" / "model.onnx"
        assert graph.read_bytes() == bundle.onnx_path(network, Precision.FP16).read_bytes()
        assert onnx_interface(graph) == [(t.name, len(t.dims) + 1) for t in list(cfg.input) + list(cfg.output)]
        assert all(t.data_type == 11 for t in list(cfg.input) + list(cfg.output))  # FP32 I/O of the FP16 graph
    repo, notes = write_repository(bundle, tmp_path / "trt", RepoOptions(backend="tensorrt", max_batch=64))
    cfg = parse_config(repo / RESTORER / "config.pbtxt")
    assert cfg.platform == "tensorrt_plan" and cfg.instance_group[0].kind == 1  # KIND_GPU
    assert cfg.max_batch_size == bundle.specs[RESTORER].profile["image"][2][0]  # capped by the profile
    if not (repo / RESTORER / "1" / "model.plan").exists():
        assert len(notes) == 2 and all("mmfir build" in n for n in notes)


def test_bad_repository_requests(bundle, python_repo, tmp_path):
    with pytest.raises(MmfirError, match="not empty"):
        write_repository(bundle, python_repo)
    with pytest.raises(MmfirError, match="instances"):
        write_repository(bundle, tmp_path / "r", RepoOptions(instances=0))
    with pytest.raises(MmfirError, match="--steps must be at least 1"):
        write_repository(bundle, tmp_path / "r", RepoOptions(steps=0))
    with pytest.raises(MmfirError, match="GPUs only"):
        write_repository(bundle, tmp_path / "r", RepoOptions(backend="tensorrt", kind="cpu"))
    assert set(BACKENDS) == {"python", "onnxruntime", "tensorrt"} and not (tmp_path / "r").exists()


def test_serve_repo_cli(bundle, tmp_path, capsys):
    from mmfir.cli.main import main

    out = tmp_path / "repo"
    assert main(["serve-repo", str(bundle.root), "--out", str(out), "--instances", "2", "--max-batch", "2"]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(MODELS)
    assert "count: 2" in (out / "encoder" / "config.pbtxt").read_text()
    assert main(["serve-repo", str(bundle.root), "--out", str(out)]) == 2
    assert "pass --force" in capsys.readouterr().err


# --- a real server on loopback -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def server(python_repo, start_triton):
    return start_triton(python_repo)


@pytest.fixture(scope="module")
def images(photos) -> list[np.ndarray]:
    """8-bit crops of real photos, of different sizes (none a multiple of the restorer's 16)."""
    crops = [photos["astronaut"][:72, :100], photos["chelsea"][:50, :70], photos["coffee"][:97, :61]]
    return [np.round(c * 255).astype(np.uint8) for c in crops]


@pytest.fixture(scope="module")
def reference(bundle, images):
    from mmfir.runtime.backends import create_backend
    from mmfir.runtime.pipeline import Pipeline

    with create_backend("ort-cpu", bundle, Precision.FP32, threads=1) as backend:
        return Pipeline(backend, tile=0).restore(images)


@pytest.mark.triton
@pytest.mark.parametrize("scheme", ["http", "grpc"])
def test_server_matches_in_process_runtime(server, bundle, images, reference, scheme):
    from mmfir.runtime.serving.client import ServerClient, restore_via_server

    got = restore_via_server(server.http_url if scheme == "http" else server.grpc_url, images)
    for g, r in zip(got, reference):
        checks = check_outputs(bundle.specs[RESTORER], {"restored": r.restored}, {"restored": g.restored},
                               Precision.FP32, pair=f"triton-{scheme} vs ort-cpu")
        assert not failures(checks), failures(checks)
        assert g.label == r.label
        assert list(g.probabilities) == list(r.probabilities) == bundle.class_names
        assert np.allclose(list(g.probabilities.values()), list(r.probabilities.values()), atol=1e-6)
    with ServerClient(server.http_url if scheme == "http" else server.grpc_url) as client:  # a batch of 2
        out = client.infer({"image": np.stack([images[0], images[0]])}, ["restored", "degradation_class"])
    assert out["restored"].shape == (2, *images[0].shape)
    assert np.abs(out["restored"] - reference[0].restored).max() <= CONTRACTS[Precision.FP32].image_max_abs
    assert [c[0].decode() for c in out["degradation_class"]] == [reference[0].label] * 2


@pytest.mark.triton
def test_concurrent_load(server, images, record_property):
    """8 clients x 25 requests over HTTP, bounded by count and by a 60 s deadline."""
    from mmfir.runtime.serving.client import ServerClient

    clients, per_client, deadline = 8, 25, time.monotonic() + 60
    latencies, errors = [], []

    def worker(k: int) -> None:
        with ServerClient(server.http_url, timeout=30) as client:
            for i in range(per_client):
                if time.monotonic() > deadline:
                    return
                start = time.perf_counter()
                try:
                    result = client.restore(images[(k + i) % len(images)])
                    assert result.restored.shape == images[(k + i) % len(images)].shape
                except Exception as err:  # noqa: BLE001 - collected and asserted below
                    errors.append(repr(err))
                latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=max(0.0, deadline - time.monotonic()) + 5)
    wall = time.perf_counter() - start
    assert not errors, errors[:3]
    assert len(latencies) == clients * per_client
    throughput, p95 = len(latencies) / wall, float(np.percentile(latencies, 95)) * 1e3
    record_property("requests_per_s", round(throughput, 1))
    record_property("p95_ms", round(p95, 1))
    print(f"\n{len(latencies)} requests from {clients} clients in {wall:.1f}s: {throughput:.1f} req/s, "
          f"p50 {np.percentile(latencies, 50) * 1e3:.0f} ms, p95 {p95:.0f} ms")


@pytest.mark.triton
def test_bad_requests_get_errors_and_server_stays_up(server, images):
    from mmfir.runtime.serving.client import ServerClient
    from mmfir.runtime.errors import ServerError

    cases = [(np.zeros((1, 8, 8, 3), np.float32), "data-type is 'FP32'.*expects 'UINT8'"),
             (np.zeros((1, 8, 8), np.uint8), "shape"),
             (np.zeros((1, 0, 0, 3), np.uint8), "empty"),
             (np.zeros((1, MAX_SIDE + 1, 16, 3), np.uint8), f"exceeds.*limit of {MAX_SIDE}"),
             (np.zeros((5, 8, 8, 3), np.uint8), "batch")]
    for url in (server.http_url, server.grpc_url):
        with ServerClient(url, timeout=30) as client:
            for array, pattern in cases:
                with pytest.raises(ServerError, match=pattern):
                    client.infer({"image": array}, ["restored"])
                assert server.process.poll() is None and server.ready()
            assert client.restore(images[0]).restored.shape == images[0].shape  # still serving


@contextlib.contextmanager
def serve_cli(repo: Path):
    """`mmfir serve REPO` in a subprocess, ready: yields (process, tritonserver pid, ports); both killed after."""
    from mmfir.runtime.serving.server import free_port

    if reason := triton_skip_reason():
        pytest.skip(reason)
    ports = [free_port() for _ in range(3)]
    cmd = [sys.executable, "-m", "mmfir.cli", "serve", str(repo), "--http-port", str(ports[0]),
           "--grpc-port", str(ports[1]), "--metrics-port", str(ports[2]), "--timeout", "60"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, start_new_session=True)
    triton_pid = None
    try:
        ready = proc.stderr.readline() + proc.stderr.readline()  # "starting ...", then "ready ..." (or an error)
        assert "ready in" in ready, ready
        triton_pid = int(ready.split("tritonserver pid ")[1].split(")")[0])
        yield proc, triton_pid, ports
    finally:
        for pid in (proc.pid, triton_pid):
            if pid is not None:
                try:
                    os.killpg(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        proc.wait(timeout=10)


@pytest.mark.slow
@pytest.mark.triton
def test_mmfir_serve_cli_stops_on_ctrl_c(python_repo):
    with serve_cli(python_repo) as (proc, triton_pid, _):
        os.kill(proc.pid, signal.SIGINT)  # what Ctrl-C sends to the foreground process
        assert proc.wait(timeout=40) == 0
        assert "stopped" in proc.stderr.read()
        with pytest.raises(ProcessLookupError):
            os.killpg(triton_pid, 0)


@pytest.mark.slow
@pytest.mark.triton
def test_tritonserver_dies_with_a_killed_supervisor(python_repo):
    """SIGKILL leaves the supervisor no chance to clean up: the kernel must stop tritonserver (PDEATHSIG)."""
    import socket

    with serve_cli(python_repo) as (proc, triton_pid, ports):
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                os.killpg(triton_pid, 0)  # tritonserver and its python stubs
            except ProcessLookupError:
                break
            time.sleep(0.1)
        with pytest.raises(ProcessLookupError):
            os.killpg(triton_pid, 0)
        with socket.socket() as sock:  # nobody listens on the port any more: the next `mmfir serve` can
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers bind (TIME_WAIT is fine)
            sock.bind(("127.0.0.1", ports[0]))


@pytest.mark.triton
def test_restore_cli_through_server(server, images, tmp_path, capsys):
    """`mmfir restore --server URL`: good files restored by the server; a refused one fails alone."""
    from PIL import Image

    from mmfir.cli.main import main

    Image.fromarray(images[0]).save(tmp_path / "good.png")
    Image.fromarray(np.zeros((MAX_SIDE + 8, 16, 3), np.uint8)).save(tmp_path / "huge.png")
    out = tmp_path / "out"
    code = main(["restore", str(tmp_path / "good.png"), str(tmp_path / "huge.png"), "-o", str(out),
                 "--server", server.grpc_url, "--json"])
    captured = capsys.readouterr()
    assert code == 1
    assert (out / "good.png").is_file() and not (out / "huge.png").exists()
    assert "huge.png" in captured.err and "exceeds" in captured.err
    assert "Traceback" not in captured.err
