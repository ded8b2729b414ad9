"""What several commands share: bundle and backend selection, output folders, option help from the registry."""
from __future__ import annotations

import sys
from pathlib import Path

from mmfir.runtime.errors import MmfirError


def backend_help(default: str) -> str:
    """`--backend` help listing the registry's names (read without importing any backend)."""
    from mmfir.runtime.backends.base import backend_names

    return f"auto (the fastest measured here), or one of {', '.join(backend_names())} (default {default})"


def add_backend_options(parser, default: str) -> None:
    """--backend, --precision and --threads: what ``make_backend`` reads."""
    from mmfir.runtime.spec import Precision

    parser.add_argument("--backend", default=default, help=backend_help(default))
    parser.add_argument("--precision", default="fp32", choices=[p.value for p in Precision],
                        help="fp32 (default), fp16, bf16 (CPUs with BF16), int8 (bundles exported with --int8)")
    parser.add_argument("--threads", type=int, help="CPU threads per network call (default: the backend's)")


def torch_options(checkpoint: str | None) -> dict[str, dict]:
    """Per-backend options naming the checkpoint the torch backends load (default: the bundle's record)."""
    return {name: {"checkpoint": checkpoint} for name in ("torch", "torch-compile")} if checkpoint else {}


def open_bundle(path: str | None, checkpoint: str | None = None):
    """``--bundle`` when given, else the (cached) bundle of ``checkpoint``, else the shipped model's."""
    from mmfir.runtime.bundle import Bundle

    from .default_bundle import bundle_for_checkpoint, default_bundle

    if path:
        return Bundle.open(path)
    return bundle_for_checkpoint(checkpoint) if checkpoint else default_bundle()


def make_backend(bundle, args, **options):
    """The backend ``args.backend`` names at ``args.precision``; ``auto`` is resolved and says why."""
    from mmfir.runtime.backends.auto import resolve_auto
    from mmfir.runtime.backends.base import create_backend

    name = args.backend
    if name == "auto":
        name, reason = resolve_auto(bundle, args.precision, args.threads)
        print(f"mmfir {args.command}: {reason}", file=sys.stderr)
    return create_backend(name, bundle, args.precision, args.threads, **options)


def prepare_out_dir(out_dir: Path) -> Path:
    """Create the output folder and check it is writable (a usage error, exit 2, when not)."""
    import tempfile

    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out_dir):
            pass
    except OSError as err:
        raise MmfirError(f"cannot write to output folder {out_dir}: {err.strerror or err}") from None
    return out_dir
