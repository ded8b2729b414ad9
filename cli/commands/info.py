"""`mmfir info`: versions, and which backend runs which precision here (with the reason when not)."""
from __future__ import annotations


PACKAGES = ("mmfir", "numpy", "onnxruntime", "onnxruntime-gpu", "pillow", "torch", "open_clip_torch", "onnx",
            "openvino", "tensorrt", "polygraphy", "nvidia-pytriton")


def add_parser(sub):
    p = sub.add_parser("info", help="show versions, installed backends and what each runs on this machine")
    p.set_defaults(func=run)


def run(args) -> int:
    import platform

    from mmfir.runtime import cpu
    from mmfir.runtime.backends.base import backend_class, backend_names, backend_status
    from mmfir.runtime.errors import BackendUnavailable

    print(f"python {platform.python_version()} on {platform.machine()}; CPU {cpu.cpu_model()}, "
          f"{cpu.usable_cores()} cores, features: {', '.join(cpu.reported_features()) or 'none reported'}")
    if cpu.isa_cap():
        print(f"  capped to {cpu.isa_cap().upper()} by {cpu.ISA_ENV} (hidden: {', '.join(cpu.hidden_features())}); "
              f"not capped: {cpu.UNCAPPED}")
    for pkg, version in cpu.package_versions(PACKAGES).items():
        print(f"  {pkg:<18} {version or '-'}")
    print("backends:")
    for name in backend_names():
        try:
            cls = backend_class(name)
        except BackendUnavailable as err:
            print(f"  {name:<14} not loadable: {err}")
            continue
        cells = []
        for p in cls.precisions:
            ok, why = backend_status(name, p)
            cells.append(f"{p.value} yes" if ok else f"{p.value} no ({why})")
        role = "" if cls.deployable else " [reference/measurement only]"
        print(f"  {name:<14} {'; '.join(cells)}{role}")
    return 0
