"""Block patterns and tile-vs-whole agreement of a bundle (the shipped model's by default).

    python benchmarks/artifacts.py                               # shipped tiny, ort-cpu
    python benchmarks/artifacts.py --bundle bundles/base         # e.g. random base (benchmarks/random_bundle.py)
    python benchmarks/artifacts.py --json benchmarks/results/artifacts_tiny.json

Prints (1) the grid ratio (16-px boundaries, 1.0 = no grid) of the held-out cases before and after
restoration, (2) for each held-out photo resized to --size x --size, hazy and low-light: PSNR between
``--tile 512`` and ``--tile 0`` outputs, the share of values more than 2/255 apart and the largest gap.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mmfir.cli.common import open_bundle
from mmfir.measure.artifacts import grid_report, tile_agreements
from mmfir.measure.evaluate import make_cases
from mmfir.measure.photos import HELD_OUT_PHOTOS, held_out_photos
from mmfir.runtime.backends.base import create_backend
from mmfir.runtime.cpu import cpu_model
from mmfir.runtime.pipeline import Pipeline
from mmfir.runtime.progress import Progress


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bundle", help="bundle folder (default: the shipped model's)")
    p.add_argument("--checkpoint", help="or a checkpoint (exported into the cache on first use)")
    p.add_argument("--backend", default="ort-cpu")
    p.add_argument("--threads", type=int, help="backend threads (default: all cores)")
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--tile", type=int, default=512)
    p.add_argument("--photos", nargs="+", default=list(HELD_OUT_PHOTOS))
    p.add_argument("--skip-grid", action="store_true", help="only the tile agreement")
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args()
    bundle = open_bundle(args.bundle, args.checkpoint)
    backend = create_backend(args.backend, bundle, threads=args.threads)
    whole, tiled = Pipeline(backend, tile=0), Pipeline(backend, tile=args.tile)
    photos = held_out_photos(args.photos)
    result = {"bundle": str(bundle.root), "backend": args.backend, "cpu": cpu_model()}
    if not args.skip_grid:
        cases = make_cases(photos)
        bar, triples = Progress(len(cases), "grid"), []
        for case in cases:
            triples.append((case.degradation, case.degraded, whole.restore([case.degraded])[0].restored.clip(0, 1)))
            bar.step(case.degradation)
        result["grid"] = grid_report(triples)
        print(f"{'degradation':<16} {'n':>3} {'grid in':>8} {'grid out':>9} {'max out':>8}")
        for r in result["grid"]:
            print(f"{r['degradation']:<16} {r['n']:>3} {r['grid_before']:8.3f} {r['grid_after']:9.3f} "
                  f"{r['grid_after_max']:8.3f}")
    agreements = tile_agreements(whole, tiled, photos, size=args.size)
    result["tiles"] = [a.as_dict() for a in agreements]
    print(f"\n{'photo':<12} {'degradation':<10} {'size':>9} {'tile':>5} {'PSNR dB':>8} {'>2/255':>7} {'max/255':>8}")
    for a in agreements:
        print(f"{a.photo:<12} {a.degradation:<10} {a.size[0]:>4}x{a.size[1]:<4} {a.tile:>5} {a.psnr_db:8.2f} "
              f"{a.over_2_255:7.2%} {a.max_diff_255:8.1f}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
