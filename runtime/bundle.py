"""The bundle: a directory the runtime needs and nothing else.

    BUNDLE/
      manifest.json            format, config, class names, network specs, hashes, versions, validation
      encoder.onnx  restorer.onnx  encoder.fp16.onnx  restorer.fp16.onnx
      engines/                 TensorRT plans (+ timing cache), keyed by engine cache keys

Only a bundle whose manifest says ``"valid": true`` (export validation passed) is used, and every
file's SHA-256 is checked against the manifest before a session is created from it. Changes to the
manifest after export (engine records) are read-modify-writes under a lock on ``.manifest.lock``,
so two processes building engines at once both keep their records.
"""
from __future__ import annotations

import contextlib
import fcntl
import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .errors import BundleError
from .files import sha256_file, write_json_atomic
from .sde import SDESettings
from .spec import GRAPH_PRECISIONS, Graph, NetworkSpec, Precision

FORMAT_VERSION = 2  # 2: inputs declare their sources (the graph)
FORMAT = f"mmfir-bundle/{FORMAT_VERSION}"
MANIFEST = "manifest.json"
LOCK = ".manifest.lock"
ENGINES_DIR = "engines"


def read_manifest(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise BundleError(f"{path.parent} has no {MANIFEST}: not an mmfir bundle "
                          "(create one with `mmfir export`)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BundleError(f"{path} is corrupt ({err}); re-export the bundle with `mmfir export --force`") from None


@dataclass
class Bundle:
    root: Path
    manifest: dict
    _verified: set = field(default_factory=set, repr=False)

    @classmethod
    def open(cls, root: str | Path, require_valid: bool = True) -> "Bundle":
        root = Path(root)
        if not root.is_dir():
            raise BundleError(f"bundle not found: {root} (create one with `mmfir export CHECKPOINT --out {root}`)")
        manifest = read_manifest(root / MANIFEST)
        if manifest.get("format") != FORMAT:
            raise BundleError(f"{root / MANIFEST}: bundle format {manifest.get('format')!r}, this mmfir reads "
                              f"{FORMAT}; re-export it with `mmfir export --force`")
        if require_valid and not manifest.get("valid", False):
            summary = manifest.get("validation", {}).get("summary", "no validation recorded")
            raise BundleError(f"bundle {root} did not pass export validation ({summary}); "
                              "fix the model or re-export, do not deploy it")
        return cls(root, manifest)

    # --- what the manifest says -------------------------------------------------------------
    @property
    def config(self) -> dict:
        return self.manifest["model"]["config"]

    @property
    def sde_settings(self) -> SDESettings | None:
        """The diffusion sampler's settings stored with the model (None: not a diffusion model)."""
        diffusion = self.config.get("diffusion")
        return SDESettings(**diffusion["sde"]) if diffusion else None

    @property
    def class_names(self) -> list[str]:
        return list(self.manifest["class_names"])

    @property
    def preprocess(self) -> dict:
        return self.manifest["preprocess"]

    @functools.cached_property
    def specs(self) -> dict[str, NetworkSpec]:
        return {name: NetworkSpec.from_json(d) for name, d in self.manifest["networks"].items()}

    @functools.cached_property
    def graph(self) -> Graph:
        return Graph(self.specs)

    def precisions(self) -> list[Precision]:
        """Precisions whose ONNX graphs are in the bundle for every network."""
        return [p for p in GRAPH_PRECISIONS
                if all(spec.onnx_file(p) in self.manifest["files"] for spec in self.specs.values())]

    def has_graphs_for(self, precision: Precision | str) -> tuple[bool, str]:
        """(every network has the graph ``precision`` runs on, what to do when not)."""
        precision = Precision.parse(precision)
        if precision.graph in self.precisions():
            return True, ""
        how = {Precision.FP16: "re-export without --no-fp16", Precision.INT8: "re-export with --int8"}
        return False, f"bundle {self.root.name} has no {precision.graph.value} graphs ({how.get(precision.graph, 're-export')})"

    @property
    def engines_dir(self) -> Path:
        return self.root / ENGINES_DIR

    # --- files ------------------------------------------------------------------------------
    def onnx_path(self, network: str, precision: Precision = Precision.FP32, verify: bool = True) -> Path:
        """Path of a network's ONNX graph at a precision; checked against the manifest's SHA-256.

        BF16 (an execution-only precision) runs on the FP32 graph."""
        precision = Precision.parse(precision)
        name = self.specs[network].onnx_file(precision.graph)
        if name not in self.manifest["files"]:
            have = ", ".join(p.value for p in self.precisions())
            raise BundleError(f"{self.has_graphs_for(precision)[1]} for the {network} (it has: {have})")
        if verify:
            self.verify_file(name)
        return self.root / name

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

    @contextlib.contextmanager
    def locked(self):
        """An exclusive lock on the bundle's manifest (other processes wait)."""
        with open(self.root / LOCK, "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def edit_manifest(self, edit: Callable[[dict], None]) -> dict:
        """Re-read manifest.json under the lock, apply ``edit`` to it, write it back atomically."""
        with self.locked():
            manifest = read_manifest(self.root / MANIFEST)
            edit(manifest)
            write_json_atomic(self.root / MANIFEST, manifest)
        self.manifest = manifest
        return manifest

    def update_manifest(self, **entries) -> None:
        """Merge top-level entries into manifest.json (locked read-modify-write)."""
        self.edit_manifest(lambda manifest: manifest.update(entries))
