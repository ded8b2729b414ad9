"""One backend's measurements, run in its own process by `mmfir bench` (``python -m mmfir.measure.bench_worker``).

A process per backend gives honest peak-memory numbers (its RSS high-water mark) and lets the parent
set the malloc environment before the interpreter starts. The job comes as JSON on stdin; the result is
one JSON object on the last line of stdout.

Per (image size, batch) the photo resized to size x size gives the pipeline values (CLIP-preprocessed
and padded pixels, repeated to the batch); every network of the bundle's graph is timed on its feeds,
taken from those values and the outputs of the networks before it on this backend; end to end is
``Pipeline.restore`` of that many photos untiled (preprocess + encoder + restorer; for a diffusion
bundle the whole sample of ``steps`` steps, and its row records them).
"""
from __future__ import annotations

import json
import resource
import sys
import time

import numpy as np

from mmfir.runtime.backends.base import create_backend
from mmfir.runtime.bundle import Bundle
from mmfir.runtime.image_io import from_array
from mmfir.runtime.pipeline import Pipeline
from mmfir.runtime.preprocess import ClipPreprocess
from mmfir.runtime.sde import spatial_sources
from mmfir.runtime.spec import CLIP_IMAGE, output_ref
from mmfir.runtime.tiling import pad_to_multiple
from mmfir.runtime.timing import time_calls

from .bench import END_TO_END
from .targets import Target, square_photo


def make_backend(job: dict):
    target = Target(job["backend"], job["precision"])
    return create_backend(target.backend, Bundle.open(job["bundle"]), target.precision, job.get("threads"),
                          **dict(job.get("options") or {}))


def pipeline_values(bundle, photo: np.ndarray, batch: int) -> dict[str, np.ndarray]:
    """CLIP_IMAGE and PIXELS of ``batch`` copies of ``photo`` (HWC float in [0, 1])."""
    pre = ClipPreprocess.from_bundle(bundle)
    clip = pre(from_array(photo))[None]
    pixels = pad_to_multiple(np.moveaxis(photo, 2, 0)[None], bundle.graph.multiple)
    pixels = np.ascontiguousarray(np.repeat(pixels, batch, axis=0))
    return {CLIP_IMAGE: np.repeat(clip, batch, axis=0), **spatial_sources(bundle.graph, bundle.sde_settings, pixels)}


def measure_point(backend, size: int, batch: int, job: dict) -> list[dict]:
    """Rows for one (size, batch): each network of the graph, then end to end (those in job['networks'])."""
    bundle, warmup, iters, wanted = backend.bundle, job["warmup"], job["iters"], job["networks"]
    graph, photo = bundle.graph, square_photo(size)
    values, rows = pipeline_values(bundle, photo, batch), []
    for network in graph.order:
        feeds = graph.feeds(network, values)
        outputs = backend.run(network, feeds)
        values.update({output_ref(network, k): v for k, v in outputs.items()})
        if network in wanted:
            latency = time_calls(lambda: backend.run(network, feeds), warmup, iters)  # noqa: B023
            rows.append({"network": network, **latency.to_json()})
    if END_TO_END in wanted:
        pipeline = Pipeline(backend, tile=0, batch=batch, steps=job.get("steps"))
        images = [from_array((photo * 255).round().astype(np.uint8))] * batch
        sampled = {"steps": pipeline.sde.steps} if pipeline.sde else {}
        rows.append({"network": END_TO_END, **sampled,
                     **time_calls(lambda: pipeline.restore(images), warmup, iters).to_json()})
    return [{"size": size, "batch": batch, **r} for r in rows]


def peak_rss_mb() -> float:
    """This process's RSS high-water mark (VmHWM: per address space, so not inherited from the parent
    at fork as getrusage's ru_maxrss is)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def run_job(job: dict) -> dict:
    start = time.perf_counter()
    rss_before = peak_rss_mb()
    backend = make_backend(job)
    rows = []
    for batch in job["batches"]:
        for size in job["sizes"]:
            rows += measure_point(backend, size, batch, job)
            print(f"... {job['backend']}/{job['precision']} {size}px batch {batch} done", file=sys.stderr, flush=True)
    backend.close()
    return {"rows": rows, "peak_rss_mb": round(peak_rss_mb(), 1), "baseline_rss_mb": round(rss_before, 1),
            "seconds": round(time.perf_counter() - start, 1)}


def run_peak(job: dict) -> dict:
    from .machine import matmul_peaks

    return matmul_peaks(job.get("threads"))


def main() -> int:
    from mmfir.runtime.errors import MmfirError

    job = json.loads(sys.stdin.read())
    try:
        result = run_peak(job) if job.get("kind") == "peak" else run_job(job)
    except MmfirError as err:
        result = {"error": str(err)}
    except Exception as err:  # noqa: BLE001 - reported to the parent as this backend's error row
        result = {"error": f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
