"""The bundle `mmfir restore` and `mmfir demo` use without ``--bundle``: the shipped model's.

The shipped checkpoint (``mmfir/models/weights/tiny.safetensors``) is exported on first use into
``$MMFIR_CACHE/bundles/`` (default ``~/.cache/mmfir``); later runs reuse it. The folder name carries
the checkpoint's SHA-256, the bundle format version and the exporter's version, so a new checkpoint,
a new bundle format or an exporter whose output changed each get a fresh export: a cached bundle
can never be one that older code wrote. Exporting needs ``mmfir[export]`` (torch); running does not.
"""
from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

from mmfir.runtime.bundle import FORMAT_VERSION, MANIFEST, Bundle
from mmfir.runtime.errors import BundleError, CheckpointError, MmfirError
from mmfir.runtime.files import cache_dir, sha256_file
from mmfir.runtime.progress import step_log

log = logging.getLogger(__name__)

SHIPPED_NAME = "tiny"


def shipped_checkpoint() -> Path:
    """Path of the shipped tiny checkpoint inside the installed ``mmfir.models`` package (not imported)."""
    spec = importlib.util.find_spec("mmfir.models")
    if spec is None or not spec.submodule_search_locations:
        raise CheckpointError("the mmfir.models package is not installed, so there is no shipped checkpoint; "
                              "pass --bundle BUNDLE")
    path = Path(list(spec.submodule_search_locations)[0]) / "weights" / f"{SHIPPED_NAME}.safetensors"
    if not path.is_file():
        raise CheckpointError(f"shipped checkpoint missing: {path} (reinstall mmfir, or pass --bundle BUNDLE)")
    return path


def exporter_version() -> int:
    from mmfir.export.version import EXPORTER_VERSION  # a constant: no torch imported

    return EXPORTER_VERSION


def cache_folder(checkpoint: Path) -> Path:
    """``bundles/<stem>-<sha256[:12]>-b<format>-e<exporter>``."""
    tag = f"{checkpoint.stem}-{sha256_file(checkpoint)[:12]}-b{FORMAT_VERSION}-e{exporter_version()}"
    return cache_dir("bundles", tag)


def bundle_for_checkpoint(checkpoint: str | Path, progress: bool = True) -> Bundle:
    """The cached bundle of a checkpoint, exported (once) when missing or invalid."""
    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise CheckpointError(f"checkpoint not found: {checkpoint}")
    folder = cache_folder(checkpoint)
    if (folder / MANIFEST).is_file():
        try:
            return Bundle.open(folder)
        except BundleError as err:
            log.warning(f"cached bundle {folder} unusable ({err}); exporting again")
    try:
        from mmfir.export import export_bundle
    except ImportError as err:
        raise MmfirError(f"exporting {checkpoint.name} to a bundle needs mmfir[export] (missing {err.name}): "
                         "pip install 'mmfir[export]', or pass --bundle BUNDLE") from None
    step_log(f"exporting {checkpoint.name} into the cache {folder} (first use only)", progress)
    return export_bundle(checkpoint, folder, force=True, progress=progress)


def default_bundle(progress: bool = True) -> Bundle:
    """The bundle of the shipped tiny model (exported into the cache on first use)."""
    return bundle_for_checkpoint(shipped_checkpoint(), progress)
