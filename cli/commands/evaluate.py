"""`mmfir evaluate`: the demo's table for any bundle or checkpoint, on a folder of clean images."""
from __future__ import annotations

import sys
from pathlib import Path

from ..common import add_backend_options


def add_parser(sub):
    p = sub.add_parser("evaluate", help="degrade clean images six ways, restore, report PSNR/SSIM and accuracy",
                       description="Each clean image is degraded with every degradation (fixed seed, given "
                                   "strength), restored, and scored against the clean image.")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--bundle", help="bundle folder")
    src.add_argument("--checkpoint", help="checkpoint (.safetensors); exported into the cache on first use")
    p.add_argument("--images", required=True, help="folder of clean images (PNG, JPEG, ...)")
    add_backend_options(p, "ort-cpu")
    p.add_argument("--strength", type=float, nargs="+", default=None, metavar="S",
                   help="degradation strengths in [0, 1] (default 0.25 0.5 0.75, as the demo)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="also write degraded | restored | clean PNGs and a contact sheet here")
    p.add_argument("--json", action="store_true", help="print cases and summary as JSON on stdout")
    p.set_defaults(func=run)


def run(args) -> int:
    from mmfir.measure.demo import run_cases
    from mmfir.measure.evaluate import DEMO_STRENGTHS, format_scores, make_cases, scores_json
    from mmfir.runtime.errors import UsageError
    from mmfir.runtime.pipeline import Pipeline

    from ..common import make_backend, open_bundle, prepare_out_dir

    strengths = args.strength or DEMO_STRENGTHS
    bad = [s for s in strengths if not 0.0 <= s <= 1.0]
    if bad:
        raise UsageError(f"--strength must be in [0, 1], got {bad[0]}")
    images = load_folder(Path(args.images))
    bundle = open_bundle(args.bundle, args.checkpoint)
    pipeline = Pipeline(make_backend(bundle, args))
    out_dir = prepare_out_dir(Path(args.out)) if args.out else None
    scores = run_cases(pipeline, make_cases(images, strengths=strengths, seed=args.seed), out_dir)
    print(scores_json(scores) if args.json else format_scores(scores))
    return 0


def load_folder(folder: Path) -> dict:
    """Every image in the folder (not recursive) as float RGB, keyed by file name; bad files are named."""
    from mmfir.runtime.errors import ImageError
    from mmfir.runtime.image_io import IMAGE_SUFFIXES, load_image

    if not folder.is_dir():
        raise ImageError(f"--images: no such folder: {folder}")
    files = sorted(f for f in folder.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ImageError(f"--images: no images in {folder} (looked for {', '.join(IMAGE_SUFFIXES)})")
    images = {}
    for f in files:
        try:
            img = load_image(f)
        except ImageError as err:
            print(f"mmfir evaluate: skipping {err}", file=sys.stderr)
            continue
        images[f.name] = img.to_float()
    if not images:
        raise ImageError(f"--images: none of the {len(files)} files in {folder} could be decoded")
    return images
