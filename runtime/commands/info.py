"""`mmfir info`: versions, configs and available backends."""
from __future__ import annotations


def add_parser(sub):
    p = sub.add_parser("info", help="show versions, shipped configs and what is installed")
    p.set_defaults(func=run)


def run(args) -> int:
    import importlib.metadata as md
    import platform

    print(f"python {platform.python_version()} on {platform.machine()}")
    for pkg in ("mmfir", "numpy", "onnxruntime", "onnxruntime-gpu", "pillow", "torch", "open_clip_torch", "onnx",
                "openvino", "tensorrt", "polygraphy", "nvidia-pytriton"):
        try:
            print(f"  {pkg:<18} {md.version(pkg)}")
        except md.PackageNotFoundError:
            print(f"  {pkg:<18} -")
    import onnxruntime as ort

    print(f"onnxruntime providers: {', '.join(ort.get_available_providers())}")
    return 0
