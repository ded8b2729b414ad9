"""One backend's measurements, run in its own process by `mmfir bench` (``python -m mmfir.runtime.bench_worker``).

A process per backend gives honest peak-memory numbers (its RSS high-water mark) and lets the parent
set the malloc environment before the interpreter starts. The job comes as JSON on stdin; the result is
one JSON object on the last line of stdout.

Per batch size the encoder runs on the CLIP-preprocessed photo; per image size and batch the restorer
runs on the photo resized to size x size (padded to its multiple) with the backend's own mmf tokens,
and end to end is ``Pipeline.restore`` of that many photos untiled (preprocess + encoder + restorer).
"""
from __future__ import annotations

import json
import resource
import sys
import time

import numpy as np

from .bundle import Bundle
from .image_io import from_array
from .pipeline import Pipeline
from .preprocess import ClipPreprocess
from .spec import ENCODER, RESTORER
from .targets import Target, square_photo
from .tiling import pad_to_multiple


def timings(fn, warmup: int, iters: int) -> dict:
    """Latency statistics (ms) of ``fn()`` after ``warmup`` calls; the first call's time is kept apart."""
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
    return {"p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95)),
            "mean_ms": float(ms.mean()), "min_ms": float(ms.min()), "first_ms": first * 1e3, "iters": len(times)}


def make_backend(job: dict):
    from .backends.base import create_backend

    target = Target(job["backend"], job["precision"])
    options = dict(job.get("options") or {})
    if target.backend == "torch-compile":
        return compiled_torch_backend(Bundle.open(job["bundle"]), job.get("threads"), options)
    return create_backend(target.backend, Bundle.open(job["bundle"]), target.precision, job.get("threads"), **options)


def compiled_torch_backend(bundle, threads, options):
    """The torch backend with torch.compile(mode='default') on both networks and inductor freezing on."""
    import torch
    import torch._inductor.config as inductor_config

    from .backends.torch_ref import TorchBackend

    inductor_config.freezing = True
    backend = TorchBackend(bundle, threads=threads, **options)
    model = backend.model
    model.encoder = torch.compile(model.encoder, dynamic=False)
    model.restorer = torch.compile(model.restorer, dynamic=False)
    backend.name = "torch-compile"
    return backend


def encoder_feed(bundle, batch: int, size: int) -> dict[str, np.ndarray]:
    pre = ClipPreprocess.from_bundle(bundle)
    one = pre(from_array(square_photo(max(size, pre.image_size))))
    return {"image": np.ascontiguousarray(np.repeat(one[None], batch, axis=0))}


def measure_point(backend, size: int, batch: int, job: dict) -> list[dict]:
    """Rows for one (size, batch): encoder, restorer, end to end (those in job['networks'])."""
    bundle, w, n = backend.bundle, job["warmup"], job["iters"]
    networks = job["networks"]
    enc_feed = encoder_feed(bundle, batch, size)
    mmf = backend.run(ENCODER, enc_feed)["mmf"]
    photo = square_photo(size)
    image = pad_to_multiple(np.repeat(np.moveaxis(photo, 2, 0)[None], batch, axis=0),
                            backend.specs[RESTORER].multiple)
    rows = []
    if "encoder" in networks:
        rows.append({"network": "encoder", **timings(lambda: backend.run(ENCODER, enc_feed), w, n)})
    if "restorer" in networks:
        feed = {"image": np.ascontiguousarray(image), "mmf": mmf}
        rows.append({"network": "restorer", **timings(lambda: backend.run(RESTORER, feed), w, n)})
    if "end_to_end" in networks:
        pipeline = Pipeline(backend, tile=0, batch=batch)
        images = [from_array((photo * 255).round().astype(np.uint8))] * batch
        rows.append({"network": "end_to_end", **timings(lambda: pipeline.restore(images), w, n)})
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
    from .machine import matmul_peak_bf16, matmul_peak_fp32

    return {"fp32": matmul_peak_fp32(), "bf16": matmul_peak_bf16(threads=job.get("threads"))}


def main() -> int:
    from .errors import MmfirError

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
