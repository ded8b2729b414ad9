"""Where a network's time goes on onnxruntime and OpenVINO: kernel time by op type, and the slowest nodes.

    python benchmarks/profile_backends.py BUNDLE [--network restorer] [--size 512] [--precision fp32|int8] [--iters 5]

Feeds are the bundle's own pipeline values for a photo resized to SIZE x SIZE (as `mmfir bench` builds them).
onnxruntime: its session profiler (``enable_profiling``), kernel events ("Node" category) summed per op type
over the timed calls. OpenVINO: the compiled model's performance counters (``PERF_COUNT``), real time per
executed node, grouped by the node's layer type and by the kernel it ran (``exec_type``, e.g. ``jit_avx2_FP32``).
Shares are of the summed node time; the wall time per call is printed beside it.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from mmfir.measure.bench_worker import pipeline_values
from mmfir.measure.targets import square_photo
from mmfir.runtime.backends.ort import ort_session, session_options
from mmfir.runtime.backends.ov import _core, compile_config
from mmfir.runtime.bundle import Bundle
from mmfir.runtime.spec import Precision, output_ref


def network_feeds(bundle: Bundle, network: str, size: int) -> dict[str, np.ndarray]:
    """The feeds of ``network``, the networks before it run on onnxruntime FP32."""
    graph, values = bundle.graph, pipeline_values(bundle, square_photo(size), 1)
    for name in graph.order:
        feeds = graph.feeds(name, values)
        if name == network:
            return feeds
        session = ort_session(bundle.onnx_path(name, Precision.FP32))
        out_names = [o.name for o in session.get_outputs()]
        values.update({output_ref(name, k): v for k, v in zip(out_names, session.run(None, feeds))})
    raise SystemExit(f"{network!r} is not a network of this bundle: {', '.join(graph.order)}")


def table(title: str, totals: dict[str, float], top: int) -> str:
    whole = sum(totals.values()) or 1.0
    rows = sorted(totals.items(), key=lambda kv: -kv[1])[:top]
    return "\n".join([title] + [f"  {100 * t / whole:5.1f} %  {t:9.2f} ms  {k}" for k, t in rows])


def profile_ort(path: Path, feeds: dict, threads: int, iters: int, top: int) -> str:
    opts = session_options(threads=threads)
    opts.enable_profiling = True
    with tempfile.TemporaryDirectory() as tmp:
        opts.profile_file_prefix = os.path.join(tmp, "ort")
        session = ort_session(path, opts)
        session.run(None, feeds)  # warm-up (its events are dropped below by the run count)
        start = time.perf_counter()
        for _ in range(iters):
            session.run(None, feeds)
        wall = (time.perf_counter() - start) / iters * 1e3
        events = json.loads(Path(session.end_profiling()).read_text())
    runs = [e for e in events if e.get("name") == "model_run"]
    first = runs[0]["ts"] + runs[0]["dur"] if runs else 0  # skip the warm-up call's kernels
    by_op, by_node = collections.Counter(), collections.Counter()
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time") and e["ts"] >= first:
            op = e.get("args", {}).get("op_name", "?")
            by_op[op] += e["dur"] / 1e3 / iters
            by_node[f"{op} {e['name'][:-len('_kernel_time')]}"] += e["dur"] / 1e3 / iters
    return "\n".join([f"onnxruntime: {wall:.1f} ms per call (wall), {sum(by_op.values()):.1f} ms in kernels",
                      table(" by op type:", by_op, top), table(" slowest nodes:", by_node, top)])


def profile_ov(path: Path, feeds: dict, precision: Precision, threads: int, iters: int, top: int) -> str:
    cfg = {**compile_config(precision, threads), "PERF_COUNT": "YES"}
    request = _core().compile_model(str(path), "CPU", cfg).create_infer_request()
    feeds = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in feeds.items()}
    request.infer(feeds)
    by_type, by_exec, by_node = collections.Counter(), collections.Counter(), collections.Counter()
    wall = 0.0
    for _ in range(iters):
        start = time.perf_counter()
        request.infer(feeds)
        wall += (time.perf_counter() - start) * 1e3 / iters
        for info in request.get_profiling_info():
            ms = info.real_time.total_seconds() * 1e3 / iters
            if ms > 0:
                by_type[info.node_type] += ms
                by_exec[f"{info.node_type} [{info.exec_type}]"] += ms
                by_node[f"{info.node_type} {info.node_name}"] += ms
    return "\n".join([f"OpenVINO: {wall:.1f} ms per call (wall), {sum(by_type.values()):.1f} ms in nodes",
                      table(" by layer type:", by_type, top), table(" by kernel:", by_exec, top),
                      table(" slowest nodes:", by_node, top)])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("bundle", type=Path)
    p.add_argument("--network", default="restorer")
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "int8", "bf16"])
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--top", type=int, default=12)
    p.add_argument("--backends", default="ort-cpu,ov-cpu")
    args = p.parse_args()
    bundle = Bundle.open(args.bundle)
    precision = Precision.parse(args.precision)
    feeds = network_feeds(bundle, args.network, args.size)
    shapes = ", ".join(f"{k} {list(v.shape)}" for k, v in feeds.items())
    print(f"{args.bundle} {args.network} {precision.value} ({shapes}), {args.threads} threads, {args.iters} calls")
    backends = args.backends.split(",")
    if "ort-cpu" in backends:
        print(profile_ort(bundle.onnx_path(args.network, precision), feeds, args.threads, args.iters, args.top))
    if "ov-cpu" in backends:
        ov_precision = precision if precision != Precision.FP16 else Precision.FP32
        path = bundle.onnx_path(args.network, Precision.FP32 if ov_precision == Precision.BF16 else ov_precision)
        print(profile_ov(path, feeds, ov_precision, args.threads, args.iters, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
