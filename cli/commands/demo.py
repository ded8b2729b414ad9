"""`mmfir demo`: degrade held-out photos six ways, restore them with the shipped model, show the scores."""
from __future__ import annotations

import sys
from pathlib import Path

from ..common import add_backend_options


def add_parser(sub):
    p = sub.add_parser("demo", help="restore degraded sample photos with the shipped model and score them",
                       description="Degrade the photos the shipped model never saw with each degradation "
                                   "at three strengths (fixed seeds), restore them, write degraded | restored | clean "
                                   "PNGs and a contact sheet, print PSNR/SSIM before and after.")
    p.add_argument("--out", default="demo_out", help="output folder (default demo_out)")
    p.add_argument("--bundle", help="bundle folder (default: the shipped tiny model, exported on first use)")
    add_backend_options(p, "ort-cpu")
    p.add_argument("--photos", nargs="+", metavar="NAME", help="scikit-image photo names (default: held out)")
    p.add_argument("--json", action="store_true", help="print the scores as JSON on stdout")
    p.set_defaults(func=run)


def run(args) -> int:
    from mmfir.measure.demo import held_out_names, run_cases
    from mmfir.measure.evaluate import format_scores, make_cases, scores_json
    from mmfir.measure.photos import held_out_photos
    from mmfir.runtime.files import write_text_atomic
    from mmfir.runtime.pipeline import Pipeline

    from ..common import make_backend, open_bundle, prepare_out_dir

    out_dir = prepare_out_dir(Path(args.out))
    bundle = open_bundle(args.bundle)
    pipeline = Pipeline(make_backend(bundle, args))
    names = args.photos or held_out_names(bundle)
    print(f"mmfir demo: {len(names)} held-out photos ({', '.join(names)}) x 6 degradations x 3 strengths, "
          f"backend {pipeline.backend.label}", file=sys.stderr)
    scores = run_cases(pipeline, make_cases(held_out_photos(names)), out_dir)
    write_text_atomic(out_dir / "scores.json", scores_json(scores))
    print(scores_json(scores) if args.json else format_scores(scores))
    print(f"mmfir demo: wrote {len(scores)} side-by-side PNGs (degraded | restored | clean), contact_sheet.png "
          f"and scores.json to {out_dir}", file=sys.stderr)
    return 0
