"""ov-cpu's static-shape models against its dynamic one: the same network, calls alternating in one process.

    python benchmarks/ov_static_shapes.py BUNDLE [--network restorer] [--size 512] [--precision fp32] [--rounds 10]
    MMFIR_CPU_ISA=avx2 python benchmarks/ov_static_shapes.py BUNDLE     # as on an AVX2-only CPU

Two ov-cpu backends on the bundle, one with ``static_shapes=False``; both warmed up (two calls, so the
first has compiled its static model; here whatever the graph's size), then called in turn, the order
swapping every round. Prints the
median and fastest call of each and the ratio dynamic / static (above 1: static is faster).
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import mmfir.runtime  # noqa: F401  (applies MMFIR_CPU_ISA before OpenVINO starts)
from mmfir.measure.bench_worker import pipeline_values
from mmfir.measure.targets import square_photo
from mmfir.runtime.backends import create_backend
from mmfir.runtime.backends import ov as ov_backend
from mmfir.runtime.bundle import Bundle
from mmfir.runtime.spec import Precision


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle")
    parser.add_argument("--network", default="restorer")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    bundle, precision = Bundle.open(args.bundle), Precision.parse(args.precision)
    ov_backend.STATIC_MAX_BYTES = dict.fromkeys(Precision, float("inf"))  # any graph, also those kept dynamic
    values = pipeline_values(bundle, square_photo(args.size), 1)
    backends = {"static": create_backend("ov-cpu", bundle, precision),
                "dynamic": create_backend("ov-cpu", bundle, precision, static_shapes=False)}
    order = list(bundle.graph.order)
    values = bundle.graph.run(backends["dynamic"].run, values, order[:order.index(args.network)])
    feeds = bundle.graph.feeds(args.network, values)
    for backend in backends.values():
        for _ in range(2):
            backend.run(args.network, feeds)
    times = {name: [] for name in backends}
    for i in range(args.rounds):
        for name in (("static", "dynamic") if i % 2 else ("dynamic", "static")):
            start = time.perf_counter()
            backends[name].run(args.network, feeds)
            times[name].append((time.perf_counter() - start) * 1e3)
    for name, ms in times.items():
        print(f"{name:8s} median {np.median(ms):7.1f} ms  min {min(ms):7.1f} ms")
    print(f"dynamic / static: {np.median(times['dynamic']) / np.median(times['static']):.3f} "
          f"({args.network}, {args.size}², {precision.value}, {args.rounds} rounds)")


if __name__ == "__main__":
    main()
