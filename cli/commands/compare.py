"""`mmfir compare BUNDLE`: accuracy of every backend against PyTorch FP32 (or a chosen reference).

Prints one table (rows: backend x output, pass/fail per the precision's contract), optionally writes
JSON, and exits 3 when any check fails, naming each failed check on stderr.
"""
from __future__ import annotations

import sys


def add_parser(sub):
    p = sub.add_parser("compare", help="accuracy of each backend against PyTorch FP32",
                       description="Run the same real photos through each backend and check every output "
                                   "against the reference under the accuracy contract of its precision.")
    p.add_argument("bundle", help="bundle folder")
    p.add_argument("--backends", help="comma-separated targets NAME[-PRECISION], e.g. ort-cpu,ort-cpu-fp16,ov-cpu-bf16 "
                                      "(default: every deployable backend at every precision it runs here)")
    p.add_argument("--reference", default="torch",
                   help="reference backend (default torch FP32; e.g. ort-cpu where torch is not installed)")
    p.add_argument("--images", help="folder of images (default: scikit-image's astronaut, chelsea, coffee)")
    p.add_argument("--max-images", type=int, default=8, help="use at most this many images of --images")
    p.add_argument("--end-to-end", action="store_true",
                   help="also run each backend's own encoder -> restorer chain (reported, not checked)")
    p.add_argument("--checkpoint", help="checkpoint for the torch backend (default: the one recorded in the bundle)")
    p.add_argument("--threads", type=int, help="CPU threads per backend")
    p.add_argument("--json", dest="json_out", metavar="OUT", help="write the full report as JSON to OUT")
    p.set_defaults(func=run)


def run(args) -> int:
    from mmfir.measure.compare import candidate_targets, compare, format_table
    from mmfir.measure.targets import folder_images, parse_target, parse_targets, sample_photos
    from mmfir.runtime.bundle import Bundle
    from mmfir.runtime.files import write_json_atomic
    from mmfir.runtime.progress import Progress

    from ..common import torch_options

    bundle = Bundle.open(args.bundle)
    reference = parse_target(args.reference)
    targets = parse_targets(args.backends) if args.backends else None
    images = folder_images(args.images, args.max_images) if args.images else sample_photos()
    options = torch_options(args.checkpoint)
    progress = Progress(len(candidate_targets(targets, reference, bundle)[0]), "compare")
    report = compare(bundle, images, targets, reference, args.end_to_end, args.threads, options, progress)
    print(format_table(report))
    if args.json_out:
        write_json_atomic(args.json_out, report.to_json())
    failed = report.failures()
    for line in failed:
        print(f"mmfir compare: FAILED {line}", file=sys.stderr)
    if not report.results:
        print("mmfir compare: error: no backend to compare (none available besides the reference)", file=sys.stderr)
        return 2
    return 3 if failed else 0
