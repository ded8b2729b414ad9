"""`mmfir build`: TensorRT engines for a bundle's networks into BUNDLE/engines/ (needs TensorRT + a GPU)."""
from __future__ import annotations

from mmfir.runtime.engine_cache import OPTION_FORM


def add_parser(sub):
    p = sub.add_parser("build", help="build TensorRT engines for a bundle (needs TensorRT and an NVIDIA GPU)",
                       description="Build (or check) the TensorRT engines of both networks. An engine is reused "
                                   "only when its TensorRT version, GPU, ONNX hash, precision and profile match.")
    p.add_argument("bundle", metavar="BUNDLE_DIR", help="bundle directory written by `mmfir export`")
    p.add_argument("--precision", choices=("fp16", "fp32", "int8"), default="fp16",
                   help="fp16: strongly typed from the FP16 ONNX on TensorRT >= 10.12, FP16 flag before (default); "
                        "int8: from the bundle's INT8 QDQ graphs (export --int8), explicit quantization")
    p.add_argument("--profile", action="append", default=[], metavar="NET:INPUT=MIN/OPT/MAX",
                   help=f"override an optimisation profile ({OPTION_FORM}); the other inputs' batch follows; "
                        "repeatable. Profiles are sticky: without this option a rebuild keeps the cached engine's")
    p.add_argument("--workspace", type=float, metavar="GiB", help="builder workspace limit in GiB")
    p.add_argument("--force", action="store_true", help="rebuild even when the cached engines are fresh")
    p.add_argument("--no-build", action="store_true",
                   help="only check the cached engines; fail when one is missing or stale")
    p.set_defaults(func=run)


def run(args) -> int:
    from mmfir.runtime.bundle import Bundle
    from mmfir.runtime.engine_build import build_engines
    from mmfir.runtime.engine_cache import DeviceFacts, profiles_from_options, trt_status
    from mmfir.runtime.errors import BackendUnavailable, BundleError, ConfigError

    bundle = Bundle.open(args.bundle)
    profiles = profiles_from_options(bundle.specs, args.profile)
    if args.workspace is not None and not args.workspace > 0:
        raise ConfigError(f"--workspace must be a positive number of GiB, got {args.workspace}")
    ok, why = bundle.has_graphs_for(args.precision)
    if not ok:
        raise BundleError(f"cannot build {args.precision} engines: {why}")
    ok, why = trt_status()
    if not ok:
        raise BackendUnavailable(f"cannot build TensorRT engines here: {why}")
    results = build_engines(bundle, args.precision, profiles, workspace_gib=args.workspace, force=args.force,
                            no_build=args.no_build, facts=DeviceFacts.detect(), verbose=args.verbose)
    for result in results:
        print(result)
    return 0
