"""Two or more backends on one bundle, their calls alternating in one process: the fair speed ratio.

    python benchmarks/backends_ab.py BUNDLE [--backends torch-compile,ov-cpu] [--network restorer] [--size 512]
    MMFIR_CPU_ISA=avx2 python benchmarks/backends_ab.py BUNDLE      # as on an AVX2-only CPU

`mmfir bench` runs each backend in its own process, one after the other, so a slow minute of this
noisy machine lands on one backend only. Here every round calls each backend once, in an order that
rotates, after three warm-up calls each (torch.compile compiles, ov-cpu builds its static model).
Targets are NAME[-PRECISION] as in `mmfir bench`. Run it with MALLOC_MMAP_MAX_=0
MALLOC_TRIM_THRESHOLD_=100000000000 in the environment for a fair torch (see measure/bench.py).
Prints each target's median and fastest call and every ratio to the first target.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import mmfir.runtime  # noqa: F401  (applies MMFIR_CPU_ISA before torch or OpenVINO start)
from mmfir.measure.bench_worker import pipeline_values
from mmfir.measure.targets import parse_targets, square_photo
from mmfir.runtime.backends import create_backend
from mmfir.runtime.bundle import Bundle


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle")
    parser.add_argument("--backends", default="torch-compile,ov-cpu")
    parser.add_argument("--network", default="restorer")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=16)
    args = parser.parse_args()
    bundle = Bundle.open(args.bundle)
    targets = parse_targets(args.backends)
    backends = {t.label: create_backend(t.backend, bundle, t.precision) for t in targets}
    order = list(bundle.graph.order)
    first = next(iter(backends.values()))
    values = bundle.graph.run(first.run, pipeline_values(bundle, square_photo(args.size), 1),
                              order[:order.index(args.network)])
    feeds = bundle.graph.feeds(args.network, values)
    for backend in backends.values():
        for _ in range(3):
            backend.run(args.network, feeds)
    labels, times = list(backends), {label: [] for label in backends}
    for i in range(args.rounds):
        for label in labels[i % len(labels):] + labels[:i % len(labels)]:
            start = time.perf_counter()
            backends[label].run(args.network, feeds)
            times[label].append((time.perf_counter() - start) * 1e3)
    ref = np.median(times[labels[0]])
    for label in labels:
        med = np.median(times[label])
        print(f"{label:22s} median {med:7.1f} ms  min {min(times[label]):7.1f} ms  {labels[0]} / this: {ref / med:.3f}")
    print(f"({args.network}, {args.size}², {args.rounds} rounds, alternating)")


if __name__ == "__main__":
    main()
