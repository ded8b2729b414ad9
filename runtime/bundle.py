"""The bundle: a directory the runtime needs and nothing else.

    BUNDLE/
      manifest.json            format, config, class names, IO specs, hashes, versions, validation
      encoder.onnx  restorer.onnx  encoder.fp16.onnx  restorer.fp16.onnx
      engines/                 TensorRT plans (+ timing cache), keyed by engine cache keys

Only a bundle whose manifest says ``"valid": true`` (export validation passed) is used, and every
file's SHA-256 is checked against the manifest before a session is created from it.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .errors import BundleError
from .spec import NETWORKS, NetworkSpec, Precision

FORMAT = "mmfir-bundle/1"
MANIFEST = "manifest.json"


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def write_json_atomic(path: str | Path, data: dict) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2, sort_keys=True)
            f.write("\n")
        os.chmod(tmp, 0o644)  # mkstemp creates 0600
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@dataclass
class Bundle:
    root: Path
    manifest: dict
    _verified: set = field(default_factory=set, repr=False)

    @classmethod
    def open(cls, root: str | Path, require_valid: bool = True) -> "Bundle":
        root = Path(root)
        path = root / MANIFEST
        if not root.is_dir():
            raise BundleError(f"bundle not found: {root} (create one with `mmfir export CHECKPOINT --out {root}`)")
        try:
            manifest = json.loads(path.read_text())
        except FileNotFoundError:
            raise BundleError(f"{root} has no {MANIFEST}: not an mmfir bundle (create one with `mmfir export`)") from None
        except json.JSONDecodeError as err:
            raise BundleError(f"{path} is corrupt ({err}); re-export the bundle with `mmfir export --force`") from None
        if manifest.get("format") != FORMAT:
            raise BundleError(f"{path}: unsupported bundle format {manifest.get('format')!r} (expected {FORMAT}); "
                              "re-export with this mmfir version")
        if require_valid and not manifest.get("valid", False):
            raise BundleError(f"bundle {root} did not pass export validation ({manifest.get('validation', {}).get('summary', 'no validation recorded')}); "
                              "fix the model or re-export, do not deploy it")
        return cls(root, manifest)

    # --- what the manifest says -------------------------------------------------------------
    @property
    def config(self) -> dict:
        return self.manifest["model"]["config"]

    @property
    def class_names(self) -> list[str]:
        return list(self.manifest["class_names"])

    @property
    def preprocess(self) -> dict:
        return self.manifest["preprocess"]

    @functools.cached_property
    def specs(self) -> dict[str, NetworkSpec]:
        return {name: NetworkSpec.from_json(d) for name, d in self.manifest["networks"].items()}

    def precisions(self) -> list[Precision]:
        """Precisions whose ONNX graphs are in the bundle for every network."""
        out = []
        for p in (Precision.FP32, Precision.FP16):
            if all(self.specs[n].onnx_file(p) in self.manifest["files"] for n in NETWORKS):
                out.append(p)
        return out

    @property
    def engines_dir(self) -> Path:
        return self.root / "engines"

    # --- files ------------------------------------------------------------------------------
    def onnx_path(self, network: str, precision: Precision = Precision.FP32, verify: bool = True) -> Path:
        """Path of a network's ONNX graph at a precision; checked against the manifest's SHA-256."""
        precision = Precision.parse(precision)
        name = self.specs[network].onnx_file(Precision.FP32 if precision == Precision.BF16 else precision)
        if name not in self.manifest["files"]:
            have = ", ".join(p.value for p in self.precisions())
            raise BundleError(f"bundle {self.root} has no {precision.value} graph for the {network} "
                              f"(it has: {have}); re-export without --no-fp16")
        path = self.root / name
        if verify:
            self.verify_file(name)
        return path

    def verify_file(self, name: str) -> None:
        if name in self._verified:
            return
        entry = self.manifest["files"].get(name)
        path = self.root / name
        if entry is None:
            raise BundleError(f"{path} is not listed in the bundle manifest")
        if not path.is_file():
            raise BundleError(f"bundle file missing: {path}; re-export the bundle with `mmfir export --force`")
        if sha256_file(path) != entry["sha256"]:
            raise BundleError(f"bundle file {path} does not match the manifest's SHA-256 (modified or stale); "
                              "re-export the bundle with `mmfir export --force`")
        self._verified.add(name)

    def verify(self) -> None:
        for name in self.manifest["files"]:
            self.verify_file(name)

    def update_manifest(self, **entries) -> None:
        """Merge top-level entries into manifest.json (atomic rewrite)."""
        self.manifest.update(entries)
        write_json_atomic(self.root / MANIFEST, self.manifest)
