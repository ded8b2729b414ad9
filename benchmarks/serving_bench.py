"""Triton serving throughput vs client concurrency and instance count, against the in-process runtime.

    python benchmarks/serving_bench.py --bundle BUNDLE [--size 256] [--requests 96] [--threads 1]

For each instance count (1, 2) a python-backend repository is written and a tritonserver started on
loopback; for each concurrency (1, 4, 8) that many HTTP clients send ``--requests`` requests in all
(bounded by count and by ``--max-seconds``). The baseline is Pipeline.restore in this process, one
image at a time, with the same onnxruntime thread count. Needs mmfir[serve] and numpy<2 in the server's
Python environment (see runtime/serving/server.py).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np


def photo(size: int) -> np.ndarray:
    from skimage import data

    img = data.astronaut()
    return np.ascontiguousarray(img[:size, :size])


def run_load(url: str, image: np.ndarray, clients: int, requests: int, max_seconds: float) -> dict:
    from mmfir.runtime.serving.client import ServerClient

    latencies, errors, lock = [], [], threading.Lock()
    deadline = time.monotonic() + max_seconds
    counter = iter(range(requests))

    def worker() -> None:
        with ServerClient(url, timeout=60) as client:
            client.restore(image)  # warm connection and class names, not timed
            while time.monotonic() < deadline:
                with lock:
                    if next(counter, None) is None:
                        return
                start = time.perf_counter()
                try:
                    client.restore(image)
                    latencies.append(time.perf_counter() - start)
                except Exception as err:  # noqa: BLE001 - counted in the report
                    errors.append(repr(err))

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=max_seconds + 30)
    wall = time.perf_counter() - start
    return {"ok": len(latencies), "errors": len(errors), "req_s": len(latencies) / wall,
            "p50_ms": 1e3 * float(np.percentile(latencies, 50)) if latencies else float("nan"),
            "p95_ms": 1e3 * float(np.percentile(latencies, 95)) if latencies else float("nan")}


def in_process(bundle, image: np.ndarray, threads: int, requests: int) -> dict:
    from mmfir.runtime.backends import create_backend
    from mmfir.runtime.pipeline import Pipeline

    with create_backend("ort-cpu", bundle, "fp32", threads=threads) as backend:
        pipeline = Pipeline(backend, tile=0)
        pipeline.restore([image])
        latencies = []
        for _ in range(requests):
            start = time.perf_counter()
            pipeline.restore([image])
            latencies.append(time.perf_counter() - start)
    return {"ok": requests, "errors": 0, "req_s": requests / sum(latencies),
            "p50_ms": 1e3 * float(np.percentile(latencies, 50)), "p95_ms": 1e3 * float(np.percentile(latencies, 95))}


def main(argv=None) -> int:
    from mmfir.runtime.bundle import Bundle
    from mmfir.runtime.serving.repo import RepoOptions, write_repository
    from mmfir.runtime.serving.server import TritonServer

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", required=True)
    ap.add_argument("--size", type=int, default=256, help="square crop of the astronaut photo (pixels)")
    ap.add_argument("--requests", type=int, default=96, help="requests per configuration")
    ap.add_argument("--threads", type=int, default=1, help="onnxruntime threads per model instance")
    ap.add_argument("--instances", default="1,2")
    ap.add_argument("--concurrency", default="1,4,8")
    ap.add_argument("--max-seconds", type=float, default=120.0, help="time bound of each configuration")
    args = ap.parse_args(argv)
    bundle, image = Bundle.open(args.bundle), photo(args.size)
    print(f"image {image.shape[1]}x{image.shape[0]}, {args.requests} requests per row, {args.threads} ORT thread(s) "
          f"per instance, {os.cpu_count()} CPUs", file=sys.stderr)
    rows = [("in-process", "-", "1", in_process(bundle, image, args.threads, args.requests))]
    for instances in [int(x) for x in args.instances.split(",")]:
        with tempfile.TemporaryDirectory(prefix="mmfir-bench-") as tmp:
            repo, _ = write_repository(bundle, Path(tmp) / "repo",
                                       RepoOptions(instances=instances, threads=args.threads, max_batch=8))
            with TritonServer(repo) as server:
                for clients in [int(x) for x in args.concurrency.split(",")]:
                    result = run_load(server.http_url, image, clients, args.requests, args.max_seconds)
                    rows.append(("triton http", str(instances), str(clients), result))
                    print(f"  instances {instances}, clients {clients}: {result['req_s']:.1f} req/s", file=sys.stderr)
    print("| path | instances | clients | ok | errors | req/s | p50 ms | p95 ms |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for path, inst, clients, r in rows:
        print(f"| {path} | {inst} | {clients} | {r['ok']} | {r['errors']} | {r['req_s']:.1f} | {r['p50_ms']:.0f} "
              f"| {r['p95_ms']:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
