"""A/B speed of two bundles (e.g. two model versions) through the same pipeline, alternating in one process.

    python benchmarks/speed_ab.py OLD_BUNDLE_OR_CHECKPOINT NEW_BUNDLE_OR_CHECKPOINT --size 512 --rounds 15
    python benchmarks/speed_ab.py bundles/a bundles/b --backends ov-cpu-int8,ort-cpu-int8   # any bench target

Each round restores one size x size held-out photo with A, then with B (order swapped every round), so
the machine's drift hits both alike; prints p50/min per bundle and backend and the ratio B/A of the p50s.
A path ending in .safetensors is exported into the cache on first use.
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from mmfir.cli.common import open_bundle
from mmfir.measure.artifacts import square_photo
from mmfir.measure.photos import load_photo
from mmfir.measure.targets import parse_targets
from mmfir.runtime.backends.base import create_backend
from mmfir.runtime.cpu import cpu_model, reported_features
from mmfir.runtime.pipeline import Pipeline


def open_any(path: str):
    return open_bundle(None, path) if path.endswith(".safetensors") else open_bundle(path)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--backends", default="ort-cpu,ov-cpu")
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--photo", default="astronaut")
    args = p.parse_args()
    image = square_photo(load_photo(args.photo), args.size)
    print(f"machine: {cpu_model()} ({', '.join(reported_features())}); {args.size}x{args.size} {args.photo}, "
          f"{args.rounds} rounds, alternating")
    for target in parse_targets(args.backends):
        name = target.label
        pipes = [Pipeline(create_backend(target.backend, open_any(path), target.precision))
                 for path in (args.a, args.b)]
        times = [[], []]
        for pipe in pipes:
            pipe.restore([image])  # warm-up
        for r in range(args.rounds):
            for k in ((0, 1) if r % 2 == 0 else (1, 0)):
                start = time.perf_counter()
                pipes[k].restore([image])
                times[k].append((time.perf_counter() - start) * 1e3)
        p50 = [float(np.median(t)) for t in times]
        print(f"{name:<12} A p50 {p50[0]:7.1f} ms (min {min(times[0]):7.1f})   B p50 {p50[1]:7.1f} ms "
              f"(min {min(times[1]):7.1f})   B/A {p50[1] / p50[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
