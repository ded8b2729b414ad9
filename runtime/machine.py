"""The machine a measurement ran on (CPU model, cores, library versions) and its matmul peak.

Benchmarks record ``machine_info()`` next to every number; autotune keys its cache by ``machine_key()``.
The peaks are measured, not looked up: FP32 with numpy's BLAS (OpenBLAS here), BF16 with torch's bf16
matmul when torch is installed, else with an OpenVINO MatMul compiled with the bf16 hint.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform
import time

import numpy as np

PACKAGES = ("onnxruntime", "onnxruntime-gpu", "openvino", "torch", "tensorrt", "numpy")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def machine_info() -> dict:
    flags = cpu_flags()
    isa = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "avx512_fp16") if f in flags]
    return {"cpu": cpu_model(), "cores": usable_cores(), "isa": isa, "system": platform.platform(),
            "versions": versions()}


def machine_key() -> str:
    """A short hash of CPU model, core count and library versions (autotune cache key)."""
    info = machine_info()
    text = json.dumps({"cpu": info["cpu"], "cores": info["cores"], "versions": info["versions"]}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def best_seconds(fn, repeats: int = 3) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def matmul_peak_fp32(n: int = 2048) -> dict:
    """FP32 GFLOP/s of an n x n matmul with numpy's BLAS (threads: the BLAS default)."""
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    b = np.random.default_rng(1).standard_normal((n, n), dtype=np.float32)
    seconds = best_seconds(lambda: a @ b)
    return {"gflops": round(2 * n ** 3 / seconds / 1e9, 1), "how": f"numpy matmul {n}x{n} FP32 (BLAS)"}


def matmul_peak_bf16(n: int = 2048, threads: int | None = None) -> dict | None:
    """BF16 GFLOP/s: torch bf16 matmul, else OpenVINO MatMul with the bf16 hint; None when neither runs."""
    try:
        import torch

        if threads:
            torch.set_num_threads(threads)
        a = torch.randn(n, n, dtype=torch.bfloat16)
        b = torch.randn(n, n, dtype=torch.bfloat16)
        seconds = best_seconds(lambda: a @ b)
        return {"gflops": round(2 * n ** 3 / seconds / 1e9, 1), "how": f"torch matmul {n}x{n} BF16"}
    except ImportError:
        return openvino_matmul_peak_bf16(n, threads)


def openvino_matmul_peak_bf16(n: int, threads: int | None) -> dict | None:
    try:
        from .backends.ov import cpu_supports_bf16, import_openvino

        ov = import_openvino()
        import openvino.opset13 as ops
    except ImportError:
        return None

    if not cpu_supports_bf16():
        return None
    x = ops.parameter([n, n], np.float32)
    w = ops.constant(np.random.default_rng(0).standard_normal((n, n), dtype=np.float32))
    model = ov.Model([ops.matmul(x, w, False, False)], [x])
    cfg = {"INFERENCE_PRECISION_HINT": "bf16", **({"INFERENCE_NUM_THREADS": threads} if threads else {})}
    request = ov.Core().compile_model(model, "CPU", cfg).create_infer_request()
    feed = np.random.default_rng(1).standard_normal((n, n), dtype=np.float32)
    seconds = best_seconds(lambda: request.infer([feed]))
    return {"gflops": round(2 * n ** 3 / seconds / 1e9, 1), "how": f"OpenVINO MatMul {n}x{n} BF16 hint"}
