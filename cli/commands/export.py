"""`mmfir export CHECKPOINT --out BUNDLE_DIR`: checkpoint -> validated ONNX bundle (needs mmfir[export])."""
from __future__ import annotations

from pathlib import Path


def add_parser(sub):
    p = sub.add_parser("export", help="export a checkpoint to a bundle (ONNX FP32 + FP16, validated)",
                       description="Export both networks to ONNX (and FP16 ONNX), validate them against PyTorch "
                                   "on real photos, and write a bundle the runtime can run without torch.")
    p.add_argument("checkpoint", type=Path, help="mmfir checkpoint (.safetensors)")
    p.add_argument("--out", required=True, type=Path, help="bundle folder to create")
    p.add_argument("--opset", type=int, default=18, help="ONNX opset (18-23; default 18)")
    p.add_argument("--no-fp16", dest="fp16", action="store_false", help="skip the FP16 graphs")
    p.add_argument("--int8", action="store_true",
                   help="also write INT8 QDQ graphs, calibrated on real photos and validated (onnxruntime, OpenVINO)")
    p.add_argument("--force", action="store_true", help="replace an existing bundle in --out (after success)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=run)


def run(args) -> int:
    from mmfir.export import export_bundle

    bundle = export_bundle(args.checkpoint, args.out, fp16=args.fp16, int8=args.int8, opset=args.opset,
                           force=args.force, progress=not args.quiet)
    sizes = ", ".join(f"{name} {entry['bytes'] / 1e6:.1f} MB" for name, entry in bundle.manifest["files"].items())
    print(f"{bundle.root}: {bundle.manifest['validation']['summary']}; {sizes}")
    return 0
