"""`mmfir bench`: latency, throughput, peak memory and FLOP efficiency of each backend, against torch eager.

Every backend is measured in its own subprocess (measure/bench_worker.py) started with
``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000``: with glibc's default malloc torch eager
page-faults gigabytes per U-Net inference and runs 2-5x slower, erratically (measured on these 2-core
machines), and the variables only act when set before the process starts. The same environment is given
to every backend. Ratios are ``torch eager FP32 p50 / backend p50`` from the same run; FLOPs are counted
on the ONNX graphs (measure/flops.py) and the achieved GFLOP/s is given as a fraction of this machine's
measured matmul peak. A peak is measured only for what the CPU has: no BF16 peak on a CPU without BF16.
Rows are per network of the bundle's graph (``encoder``, ``restorer``) plus ``end_to_end``.
"""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field

from mmfir.runtime import cpu
from mmfir.runtime.spec import Precision

from .targets import REFERENCE, Target, deployable_targets, runnable

MALLOC_ENV = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": "100000000000"}
END_TO_END = "end_to_end"
BASELINE = Target(REFERENCE)
SCHEMA = "mmfir-bench/1"


def measured_networks(bundle) -> tuple[str, ...]:
    """What a bench can time for this bundle: each network of its graph, then the whole pipeline."""
    return (*bundle.graph.order, END_TO_END)


def default_targets(bundle=None) -> list[Target]:
    """torch eager FP32 (the baseline) and every deployable target that runs here (on the bundle's graphs)."""
    return runnable([BASELINE, *deployable_targets()], bundle)[0]


@dataclass
class BenchSettings:
    sizes: list[int] = field(default_factory=lambda: [256, 512, 1024])
    batches: list[int] = field(default_factory=lambda: [1])
    warmup: int = 2
    iters: int = 10
    threads: int | None = None
    networks: tuple[str, ...] | None = None  # default: measured_networks(bundle)
    steps: int | None = None                  # a diffusion bundle's sampling steps end to end (default: its T)
    timeout_s: float = 3600.0


def worker_env() -> dict[str, str]:
    env = dict(os.environ, **MALLOC_ENV)
    for key, value in cpu.isa_cap_env().items():  # MMFIR_CPU_ISA: the libraries read it at start-up
        env.setdefault(key, value)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def run_worker(job: dict, timeout_s: float) -> dict:
    """Run one job in a fresh interpreter; its stderr (progress) passes through."""
    try:
        proc = subprocess.run([sys.executable, "-m", "mmfir.measure.bench_worker"], input=json.dumps(job),
                              capture_output=False, stdout=subprocess.PIPE, text=True, env=worker_env(),
                              timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout_s:.0f}s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    try:
        return json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        return {"error": f"worker exited with status {proc.returncode} and no result"}


def measure_target(bundle_path: str, target: Target, settings: BenchSettings, options: dict | None) -> dict:
    job = {"bundle": str(bundle_path), "backend": target.backend, "precision": target.precision.value,
           "sizes": settings.sizes, "batches": settings.batches, "warmup": settings.warmup,
           "iters": settings.iters, "threads": settings.threads, "networks": list(settings.networks or ()),
           "steps": settings.steps, "options": options or {}}
    return run_worker(job, settings.timeout_s)


def measure_peaks(threads: int | None, timeout_s: float = 600) -> dict:
    return run_worker({"kind": "peak", "threads": threads}, timeout_s)


def count_network_flops(bundle, settings: BenchSettings) -> dict:
    """FLOPs per (network, size, batch) from the FP32 ONNX graphs; {"error": ...} without onnx.

    Counted once at batch 1 per shape (Conv/MatMul/Gemm MACs are linear in the batch dimension). Inputs
    read from PIXELS take the padded size x size image; the others their spec's fixed shape at batch 1.
    """
    import importlib.util

    if importlib.util.find_spec("onnx") is None:
        return {"error": "onnx not installed (pip install 'mmfir[export]'): FLOPs not counted"}
    from .flops import count_flops

    graph, out = bundle.graph, {}
    for network in graph.order:
        sizes = settings.sizes if network in graph.spatial else [None]
        for size in sizes:
            count = count_flops(bundle.onnx_path(network), input_shapes(graph, network, size)).to_json()
            for batch in settings.batches:
                out[flops_key(network, size, batch)] = scaled(count, batch)
    return out


def input_shapes(graph, network: str, size: int | None) -> dict[str, tuple[int, ...]]:
    padded = size + (-size) % graph.multiple if size else None
    return {t.name: t.concrete({"batch": 1, "height": padded, "width": padded}) for t in graph[network].inputs}


def flops_key(network: str, size: int | None, batch: int) -> str:
    return f"{network}/{size}/{batch}" if size else f"{network}/{batch}"


def scaled(count: dict, batch: int) -> dict:
    return {**count, "flops": count["flops"] * batch, "by_op": {k: v * batch for k, v in count["by_op"].items()}}


def flops_of(flops: dict, graph, network: str, size: int, batch: int, steps: int | None = None) -> int | None:
    """FLOPs of one row: a network at (size, batch), or the sum over the graph for end to end (the
    sampler's network once per step)."""
    networks = graph.order if network == END_TO_END else (network,)
    counts = [flops.get(flops_key(n, size if n in graph.spatial else None, batch), {}).get("flops")
              for n in networks]
    if any(c is None for c in counts):
        return None
    return sum(c * (steps if steps and n == graph.sampler else 1) for n, c in zip(networks, counts))


def result_rows(label: Target, measured: dict, flops: dict, peaks: dict, graph) -> list[dict]:
    precision = label.precision
    # the matmul peak of the precision's arithmetic; none is measured for INT8, so no share is claimed
    peak = {Precision.BF16: peaks.get("bf16"), Precision.INT8: None}.get(precision, peaks.get("fp32")) or {}
    rows = []
    for r in measured.get("rows", []):
        count = flops_of(flops, graph, r["network"], r["size"], r["batch"], r.get("steps"))
        gflops = count / (r["p50_ms"] / 1e3) / 1e9 if count else None
        rows.append({"backend": label.backend, "precision": precision.value, **r,
                     "throughput_ips": r["batch"] / (r["mean_ms"] / 1e3), "flops": count,
                     "gflops_per_s": gflops,
                     "peak_fraction": gflops / peak["gflops"] if gflops and peak.get("gflops") else None})
    return rows


def add_ratios(rows: list[dict]) -> None:
    """speedup_vs_torch = torch eager FP32 p50 / row p50, for the same network, size and batch;
    speedup_vs_torch_min the same with the fastest runs (less sensitive to a machine shared with other jobs)."""
    base = {(r["network"], r["size"], r["batch"]): r for r in rows
            if r["backend"] == BASELINE.backend and r["precision"] == BASELINE.precision.value}
    for r in rows:
        ref = base.get((r["network"], r["size"], r["batch"]))
        r["speedup_vs_torch"] = ref["p50_ms"] / r["p50_ms"] if ref else None
        r["speedup_vs_torch_min"] = ref["min_ms"] / r["min_ms"] if ref else None


def run_bench(bundle, targets: list[Target], settings: BenchSettings, options: dict[str, dict] | None = None,
              progress=None) -> dict:
    """The whole report as a JSON-able dict (schema ``mmfir-bench/1``)."""
    from .machine import machine_info

    options = options or {}
    settings = dataclasses.replace(settings, networks=settings.networks or measured_networks(bundle))
    report = {"schema": SCHEMA, "machine": machine_info(), "environment": dict(MALLOC_ENV),
              "bundle": bundle_summary(bundle), "settings": settings_json(settings), "notes": notes(targets),
              "backends": {}, "results": [],
              "load_average_before": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}
    report["peak"] = measure_peaks(settings.threads)
    report["flops"] = count_network_flops(bundle, settings)
    for target in targets:
        measured = measure_target(str(bundle.root), target, settings, options.get(target.backend))
        report["backends"][target.label] = {k: v for k, v in measured.items() if k != "rows"}
        report["results"] += result_rows(target, measured, report["flops"], report["peak"], bundle.graph)
        if progress:
            progress.step(target.label)
    add_ratios(report["results"])
    report["load_average_after"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    return report


def settings_json(settings: BenchSettings) -> dict:
    return {"sizes": settings.sizes, "batches": settings.batches, "warmup": settings.warmup,
            "iters": settings.iters, "threads": settings.threads, "networks": list(settings.networks),
            "steps": settings.steps}


def bundle_summary(bundle) -> dict:
    from mmfir.runtime.backends.auto import bundle_key

    return {"path": str(bundle.root), "model": bundle.config.get("name"), "key": bundle_key(bundle)}


def notes(targets: list[Target]) -> list[str]:
    out = ["each backend ran in its own process with MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000 "
           "(fair torch baseline; same for all backends)",
           "latency after warm-up; speedup_vs_torch = torch eager FP32 p50 / backend p50, same run",
           "FLOPs: Conv/ConvTranspose/MatMul/Gemm MACs x 2 counted on the FP32 ONNX graph at the benchmarked shape",
           "peak_rss_mb: the backend process's RSS high-water mark over all its sizes and batches"]
    if any(t.backend == "torch-compile" for t in targets):
        out.append("torch-compile: torch.compile(mode='default', dynamic=False) with inductor freezing; "
                   "compile time excluded (the first call per shape is warm-up; see first_ms)")
    return out
