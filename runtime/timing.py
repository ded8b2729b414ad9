"""Timing helpers: per-stage accumulation and repeated-call latency statistics (one of each)."""
from __future__ import annotations

import contextlib
import time
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np


@contextlib.contextmanager
def timed(timings: dict, stage: str):
    """Add the block's wall time (seconds) to ``timings[stage]``."""
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[stage] = timings.get(stage, 0.0) + time.perf_counter() - start


@dataclass(frozen=True)
class Latency:
    """Milliseconds of ``iters`` timed calls after warm-up; ``first_ms`` is the very first call."""

    p50_ms: float
    p95_ms: float
    mean_ms: float
    min_ms: float
    first_ms: float
    iters: int

    def to_json(self) -> dict:
        return asdict(self)


def time_calls(fn: Callable[[], object], warmup: int = 1, iters: int = 5) -> Latency:
    """Call ``fn`` once (timed as first_ms), ``warmup - 1`` more times untimed, then ``iters`` timed."""
    start = time.perf_counter()
    fn()
    first = time.perf_counter() - start
    for _ in range(max(0, warmup - 1)):
        fn()
    times = []
    for _ in range(max(1, iters)):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    ms = np.asarray(times) * 1e3
    return Latency(float(np.percentile(ms, 50)), float(np.percentile(ms, 95)), float(ms.mean()),
                   float(ms.min()), first * 1e3, len(times))
