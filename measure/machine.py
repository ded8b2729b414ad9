"""The machine a measurement ran on (CPU model, features, cores, library versions) and its matmul peaks.

Benchmarks record ``machine_info()`` next to every number. The peaks are measured, not looked up, and only
for what this CPU has: FP32 with numpy's BLAS, BF16 with an OpenVINO MatMul compiled with the bf16 hint
(the engine mmfir's BF16 path runs) where the CPU reports BF16 instructions; elsewhere the BF16 peak is
recorded as not measured, with the reason.
"""
from __future__ import annotations

import platform

import numpy as np

from mmfir.runtime import cpu
from mmfir.runtime.timing import time_calls

PACKAGES = ("onnxruntime", "onnxruntime-gpu", "openvino", "torch", "tensorrt", "numpy")


def versions() -> dict[str, str]:
    installed = {k: v for k, v in cpu.package_versions(PACKAGES).items() if v}
    return {"python": platform.python_version(), **installed}


def machine_info() -> dict:
    bf16, why = cpu.bf16_support()
    info = {"cpu": cpu.cpu_model(), "cores": cpu.usable_cores(), "isa": cpu.reported_features(),
            "bf16": bf16 or why, "system": platform.platform(), "versions": versions()}
    if cpu.isa_cap():
        info["isa_cap"] = {"cap": cpu.isa_cap(), "hidden": cpu.hidden_features(), "env": cpu.isa_cap_env(),
                           "not_capped": cpu.UNCAPPED}
    return info


def gflops(n: int, seconds: float) -> float:
    return round(2 * n ** 3 / seconds / 1e9, 1)


def best_seconds(fn, repeats: int = 3) -> float:
    return time_calls(fn, warmup=1, iters=repeats).min_ms / 1e3


def matmul_peak_fp32(n: int = 2048) -> dict:
    """FP32 GFLOP/s of an n x n matmul with numpy's BLAS (threads: the BLAS default)."""
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    b = np.random.default_rng(1).standard_normal((n, n), dtype=np.float32)
    return {"gflops": gflops(n, best_seconds(lambda: a @ b)), "how": f"numpy matmul {n}x{n} FP32 (BLAS)"}


def matmul_peak_bf16(n: int = 2048, threads: int | None = None) -> dict:
    """BF16 GFLOP/s of an OpenVINO MatMul with the bf16 hint; {"not_measured": why} where it cannot run."""
    ok, why = cpu.bf16_support()
    if not ok:
        return {"not_measured": why}
    try:
        from mmfir.runtime.backends.ov import import_openvino

        ov = import_openvino()
        import openvino.opset13 as ops
    except ImportError:
        return {"not_measured": "OpenVINO is not installed"}
    x = ops.parameter([n, n], np.float32)
    w = ops.constant(np.random.default_rng(0).standard_normal((n, n), dtype=np.float32))
    model = ov.Model([ops.matmul(x, w, False, False)], [x])
    cfg = {"INFERENCE_PRECISION_HINT": "bf16", **({"INFERENCE_NUM_THREADS": threads} if threads else {})}
    request = ov.Core().compile_model(model, "CPU", cfg).create_infer_request()
    feed = np.random.default_rng(1).standard_normal((n, n), dtype=np.float32)
    return {"gflops": gflops(n, best_seconds(lambda: request.infer([feed]))),
            "how": f"OpenVINO MatMul {n}x{n} BF16 hint"}


def matmul_peaks(threads: int | None = None) -> dict:
    return {"fp32": matmul_peak_fp32(), "bf16": matmul_peak_bf16(threads=threads)}
