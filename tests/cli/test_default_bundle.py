"""The default bundle's cache key: checkpoint hash, bundle format and exporter version (never stale)."""
from __future__ import annotations

import os
from pathlib import Path

from mmfir.cli.default_bundle import cache_folder, exporter_version, shipped_checkpoint
from mmfir.runtime.bundle import FORMAT_VERSION
from mmfir.runtime.files import sha256_file


def test_cache_folder_names_checkpoint_format_and_exporter(monkeypatch):
    ckpt = shipped_checkpoint()
    folder = cache_folder(ckpt)
    assert folder.name == f"tiny-{sha256_file(ckpt)[:12]}-b{FORMAT_VERSION}-e{exporter_version()}"
    assert folder.parent == Path(os.environ["MMFIR_CACHE"]) / "bundles"  # the suite's own cache, not ~/.cache
    import mmfir.export.version as version

    monkeypatch.setattr(version, "EXPORTER_VERSION", exporter_version() + 1)
    assert cache_folder(ckpt) != folder  # an exporter change is a new cache entry
