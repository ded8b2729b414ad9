"""Would INT8 pay for a diffusion bundle's denoiser on this CPU? A probe, not an export path.

    python benchmarks/int8_denoiser_probe.py BUNDLE --size 256 --out /tmp/denoiser.int8.onnx

Quantizes the bundle's FP32 denoiser graph the way ``mmfir export --int8`` quantizes the restorer
(export/quantize.py: QDQ, convolutions only since 2026-12-07, when the recorded result was made with
MatMul/Gemm quantized too; weights per channel, MinMax activations, first and last convolution FP32),
calibrated on the 14 calibration crops with sampler states spread over t = T..1 and
the encoder's own contexts, then times one U-Net call at size x size on onnxruntime and OpenVINO, FP32
against INT8 alternating (3 rounds after a warm-up), and prints the INT8 output's relative L2 error
against FP32 on a held-out photo (the denoiser contract's INT8 bound would be 5e-2).
"""
from __future__ import annotations

import argparse
import functools
import sys
import time
from pathlib import Path

import numpy as np

from mmfir.export.quantize import calibration_pixels, quantize_graph
from mmfir.measure.artifacts import square_photo
from mmfir.measure.photos import load_photo
from mmfir.runtime.backends.ort import ort_session
from mmfir.runtime.bundle import Bundle
from mmfir.runtime.cpu import cpu_model, reported_features
from mmfir.runtime.image_io import from_array
from mmfir.runtime.preprocess import ClipPreprocess
from mmfir.runtime.sde import example_sampler_values
from mmfir.runtime.spec import (COND, CONTENT, DEGRADATION, DENOISER, ENCODER, IMAGE_CONTEXT, NOISE, SAMPLER_STATE,
                                SAMPLER_TIME, TEXT_CONTEXT, TIME, XT, Precision)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("bundle")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--out", type=Path, default=Path("denoiser.int8.onnx"))
    args = p.parse_args()
    bundle = Bundle.open(args.bundle)
    if not bundle.graph.sampler:
        raise SystemExit(f"error: {args.bundle} has no denoiser; this probe is for diffusion bundles")
    encoder = ort_session(bundle.onnx_path(ENCODER))
    names = [o.name for o in encoder.get_outputs()]
    clip = ClipPreprocess.from_bundle(bundle)

    def feeds(pixels: np.ndarray, seed: int) -> list[dict[str, np.ndarray]]:
        """One feed per row of pixels [N, 3, H, W], states from t = T down to 1."""
        states = example_sampler_values(pixels, bundle.sde_settings, seed)
        out = []
        for i, row in enumerate(pixels):
            image = (np.moveaxis(row, 0, 2) * 255).round().astype(np.uint8)
            emb = dict(zip(names, encoder.run(None, {"image": clip(from_array(image))[None]})))
            out.append({XT: states[SAMPLER_STATE][i:i + 1], COND: row[None].astype(np.float32),
                        TIME: states[SAMPLER_TIME][i:i + 1], TEXT_CONTEXT: emb[DEGRADATION],
                        IMAGE_CONTEXT: emb[CONTENT]})
        return out

    print(f"machine: {cpu_model()} ({', '.join(reported_features())}); denoiser of {bundle.root}", flush=True)
    start = time.perf_counter()
    calibration = feeds(calibration_pixels(bundle.graph.multiple).astype(np.float32), seed=0)
    print(quantize_graph(bundle.onnx_path(DENOISER), args.out, calibration),
          f"quantized in {time.perf_counter() - start:.0f} s", flush=True)
    photo = np.moveaxis(square_photo(load_photo("chelsea"), args.size), 2, 0)[None]
    test = feeds(np.repeat(photo, 3, axis=0), seed=99)[1]  # the middle time step
    # OpenVINO through the backend's own compile (explicit FP32 hint: on a BF16 CPU its default is BF16)
    from mmfir.runtime.backends.ov import compile_onnx, infer

    files = (("fp32", bundle.onnx_path(DENOISER)), ("int8", args.out))
    sessions = {"ort-cpu": {k: ort_session(f) for k, f in files},
                "ov-cpu": {k: compile_onnx(f, Precision.parse(k)) for k, f in files}}

    def run_once(session, backend: str) -> np.ndarray:
        return session.run([NOISE], test)[0] if backend == "ort-cpu" else infer(session, test, [NOISE])[NOISE]

    calls = {f"{b} {k}": functools.partial(run_once, s, b) for b, pair in sessions.items() for k, s in pair.items()}
    ref = calls["ort-cpu fp32"]()
    for name, call in calls.items():
        out = call()
        print(f"{name}: relative L2 vs ort-cpu fp32 {np.linalg.norm(out - ref) / np.linalg.norm(ref):.2e}", flush=True)
    times = {name: [] for name in calls}
    for _ in range(3):
        for name, call in calls.items():
            t0 = time.perf_counter()
            call()
            times[name].append((time.perf_counter() - t0) * 1e3)
    for backend in sessions:
        fp32, int8 = (float(np.median(times[f"{backend} {k}"])) for k in ("fp32", "int8"))
        print(f"{backend} {args.size}x{args.size}: fp32 {fp32:.0f} ms, int8 {int8:.0f} ms, int8 speed-up {fp32 / int8:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
