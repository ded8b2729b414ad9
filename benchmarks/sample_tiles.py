"""Tiled vs whole-image sampling of a diffusion bundle: how much DA-CLIP's global LinearAttention costs tiles.

    python benchmarks/sample_tiles.py BUNDLE --size 384 --tile 256 --overlap 128 --steps 10 --seed 0

Samples one held-out photo (resized to size x size) twice with the same seed, whole (``--tile 0``) and
tiled (each step's noise prediction blended from tiles, the noise drawn for the whole image), and prints
the relative L2 error between the two final states and the PSNR between the two restored images
(clipped to [0, 1]), with each run's time. With random weights the states leave [0, 1] far, so read the
relative error; PSNR means something only with trained weights.
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from mmfir.measure.artifacts import square_photo
from mmfir.measure.metrics import psnr
from mmfir.measure.photos import load_photo
from mmfir.runtime.backends.base import create_backend
from mmfir.runtime.bundle import Bundle
from mmfir.runtime.cpu import cpu_model, reported_features
from mmfir.runtime.errors import MmfirError
from mmfir.runtime.pipeline import Pipeline


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("bundle")
    p.add_argument("--backend", default="ov-cpu")
    p.add_argument("--size", type=int, default=384)
    p.add_argument("--tile", type=int, default=256)
    p.add_argument("--overlap", type=int, default=128)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--photo", default="chelsea")
    args = p.parse_args()
    try:
        bundle = Bundle.open(args.bundle)
        image = (square_photo(load_photo(args.photo), args.size) * 255).round().astype(np.uint8)
        backend = create_backend(args.backend, bundle)
        print(f"machine: {cpu_model()} ({', '.join(reported_features())}); {args.size}x{args.size} {args.photo}, "
              f"{args.steps} steps, seed {args.seed}, {args.backend}", flush=True)
        finals = {}
        for tile in (0, args.tile):
            pipeline = Pipeline(backend, tile=tile, overlap=args.overlap, steps=args.steps, seed=args.seed)
            start = time.perf_counter()
            finals[tile] = pipeline.restore([image])[0].restored
            print(f"  tile {tile or 'whole'}: {time.perf_counter() - start:.1f} s"
                  + (" (tiled)" if pipeline.is_tiled(args.size, args.size) else ""), flush=True)
    except MmfirError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    whole, tiled = finals[0], finals[args.tile]
    rel = np.linalg.norm(tiled - whole) / np.linalg.norm(whole)
    print(f"tile {args.tile} overlap {args.overlap} vs whole: relative L2 {rel:.2e}, "
          f"PSNR of the clipped images {psnr(np.clip(tiled, 0, 1), np.clip(whole, 0, 1)):.1f} dB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
