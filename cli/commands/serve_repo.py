"""`mmfir serve-repo BUNDLE --out REPO`: write a Triton model repository for a bundle."""
from __future__ import annotations

import sys

from mmfir.runtime.spec import GRAPH_PRECISIONS


def add_parser(sub):
    p = sub.add_parser("serve-repo", help="write a Triton Inference Server model repository for a bundle",
                       description="Models: preprocess, encoder, restorer, postprocess, and the ensemble `mmfir` "
                                   "(UINT8 image in; restored image, degradation class and probabilities out). A diffusion "
                                   "bundle's denoiser model runs the whole sampling loop (--steps, --seed).")
    p.add_argument("bundle", metavar="BUNDLE", help="bundle folder (from `mmfir export`)")
    p.add_argument("--out", required=True, metavar="REPO", help="model repository folder to write")
    p.add_argument("--backend", default="python", choices=("python", "onnxruntime", "tensorrt"),
                   help="Triton backend of encoder and restorer (default python: mmfir's runtime; onnxruntime "
                        "and tensorrt are for NVIDIA's containers and are not tested here)")
    p.add_argument("--instances", type=int, default=1, help="instances per model (default 1)")
    p.add_argument("--max-batch", type=int, default=4, help="max_batch_size of every model (default 4)")
    p.add_argument("--kind", choices=("cpu", "gpu"), help="instance kind (default: gpu for tensorrt, else cpu)")
    p.add_argument("--precision", default="fp32", choices=[p.value for p in GRAPH_PRECISIONS],
                   help="which ONNX graphs to serve (int8: bundles exported with --int8)")
    p.add_argument("--threads", type=int, help="onnxruntime threads per instance (python backend)")
    p.add_argument("--max-side", type=int, help="refuse images larger than this per side "
                                                 "(default: the restorer profile's largest tile)")
    p.add_argument("--steps", type=int, help="a diffusion bundle's sampling steps (default: its T)")
    p.add_argument("--seed", type=int, help="a diffusion bundle's noise seed, the same for every request "
                                            "(default: fresh noise per request)")
    p.add_argument("--force", action="store_true", help="replace REPO if it exists")
    p.set_defaults(func=run)


def run(args) -> int:
    from mmfir.runtime.serving.repo import RepoOptions, write_repository
    from mmfir.runtime.spec import Precision

    options = RepoOptions(backend=args.backend, instances=args.instances, max_batch=args.max_batch, kind=args.kind,
                          precision=Precision.parse(args.precision), threads=args.threads, max_side=args.max_side,
                          steps=args.steps, seed=args.seed)
    repo, notes = write_repository(args.bundle, args.out, options, force=args.force)
    for note in notes:
        print(f"mmfir serve-repo: note: {note}", file=sys.stderr)
    print(f"model repository written to {repo} ({args.backend} backend); start it with `mmfir serve {repo}`")
    return 0
