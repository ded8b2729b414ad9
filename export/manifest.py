"""The bundle's manifest.json as written by export (read by mmfir.runtime.bundle.Bundle)."""
from __future__ import annotations

import datetime
from pathlib import Path

from mmfir.runtime.bundle import FORMAT, MANIFEST
from mmfir.runtime.cpu import package_versions
from mmfir.runtime.files import sha256_file, write_json_atomic
from mmfir.runtime.spec import NetworkSpec

from .version import EXPORTER_VERSION

VERSIONED = ("mmfir", "torch", "onnx", "onnxscript", "onnxruntime", "open_clip_torch", "numpy")


def versions() -> dict[str, str | None]:
    return package_versions(VERSIONED)


def preprocess_entry(cfg) -> dict:
    enc = cfg.encoder
    return {"mode": enc.preprocess, "image_size": enc.vision.image_size, "mean": list(enc.mean),
            "std": list(enc.std)}


def manifest_for(model, record: dict | None, specs: dict[str, NetworkSpec], opset: int, validation: dict,
                 fp16_info: dict, int8_info: dict | None = None) -> dict:
    """Everything but ``files``, ``warnings`` and ``export_seconds`` (added when the files are final)."""
    cfg = model.cfg
    metadata = dict(record["metadata"]) if record else {}
    checkpoint = {"path": record["path"], "sha256": record["sha256"]} if record else None
    return {
        "format": FORMAT,
        "valid": bool(validation["passed"]),
        "validation": validation,
        "model": {"name": cfg.name, "config": cfg.to_dict(), "checkpoint": checkpoint, "metadata": metadata,
                  "restorer_untrained": str(metadata.get("restorer_untrained", "")).lower() == "true"},
        "class_names": list(cfg.encoder.class_names),
        "preprocess": preprocess_entry(cfg),
        "networks": {name: spec.to_json() for name, spec in specs.items()},
        "opset": opset,
        "exporter_version": EXPORTER_VERSION,
        "fp16": fp16_info,
        "int8": int8_info,
        "onnxruntime": {"graph_optimization_level": validation["ort_graph_optimization"]},
        "versions": versions(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def write_manifest(folder: Path, manifest: dict) -> None:
    """Hash every file in ``folder`` into ``manifest['files']`` and write manifest.json."""
    manifest["files"] = {p.name: {"sha256": sha256_file(p), "bytes": p.stat().st_size}
                         for p in sorted(folder.iterdir()) if p.is_file() and p.name != MANIFEST}
    write_json_atomic(folder / MANIFEST, manifest)
