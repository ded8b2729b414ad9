"""``--backend auto``: the fastest backend measured on this machine, chosen on first use and cached.

Per candidate (every deployable backend that supports the requested precision here) the whole graph
runs once on a 256 x 256 image (the encoder at batch 1, the restorer on the image with that encoder's
tokens): one warm-up, a few timed runs, median. The choice is cached in a JSON file keyed by machine
(CPU model, core count, library versions), bundle (hash of its files' SHA-256s), precision and candidate
list: ``BUNDLE/autotune.json`` when the bundle folder is writable, else ``$MMFIR_CACHE/autotune/``.
Precision is the user's choice: auto only picks among backends that run it, never a reduced one. When
no measurement succeeds, the registry's priority order decides and the reason says so.
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np

from .. import cpu
from ..errors import BackendUnavailable, MmfirError
from ..files import local_or_cache, write_json_atomic
from ..sde import spatial_sources
from ..spec import CLIP_IMAGE, Precision
from ..timing import time_calls
from .base import backend_status, create_backend, deployable_backends

CACHE_FILE = "autotune.json"
MEASURE_SIZE = 256
MEASURE_ITERS = 3
VERSIONED = ("onnxruntime", "onnxruntime-gpu", "openvino", "tensorrt", "numpy")


def machine_key() -> str:
    """A short hash of CPU model, core count and inference library versions."""
    versions = {k: v for k, v in cpu.package_versions(VERSIONED).items() if v}
    text = json.dumps({"cpu": cpu.cpu_model(), "cores": cpu.usable_cores(), "versions": versions,
                       **({"isa_cap": cap} if (cap := cpu.isa_cap()) else {})}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def bundle_key(bundle) -> str:
    """Hash of the bundle's files' SHA-256s (changes when any graph changes, not with other manifest edits)."""
    files = {name: entry["sha256"] for name, entry in bundle.manifest["files"].items()}
    return hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()[:16]


def cache_path(bundle) -> Path:
    return local_or_cache(Path(bundle.root), CACHE_FILE, "autotune", f"{bundle_key(bundle)}.json")


def usable_candidates(precision: Precision, candidates=None) -> tuple[list[str], dict[str, str]]:
    names = list(candidates) if candidates else deployable_backends()
    usable, skipped = [], {}
    for name in names:
        ok, why = backend_status(name, precision)
        if ok:
            usable.append(name)
        else:
            skipped[name] = why
    return usable, skipped


def measurement_values(bundle) -> dict[str, np.ndarray]:
    """A smooth synthetic 256² image, CLIP-preprocessed and as pixels (timing does not depend on content);
    a diffusion graph also gets an example state and time step (auto times one sampling step)."""
    from ..image_io import from_array
    from ..preprocess import ClipPreprocess

    y, x = np.mgrid[0:MEASURE_SIZE, 0:MEASURE_SIZE].astype(np.float32) / MEASURE_SIZE
    noise = np.random.default_rng(0).random((MEASURE_SIZE, MEASURE_SIZE, 3), dtype=np.float32)
    image = np.clip(np.stack([x, y, (x + y) / 2], axis=2) * 0.8 + 0.2 * noise, 0, 1)
    pixels = np.ascontiguousarray(np.moveaxis(image, 2, 0)[None])
    clip = ClipPreprocess.from_bundle(bundle)(from_array(image))[None]
    return {CLIP_IMAGE: clip, **spatial_sources(bundle.graph, bundle.sde_settings, pixels)}


def measure_ms(name: str, bundle, precision: Precision, threads: int | None = None,
               iters: int = MEASURE_ITERS) -> float:
    """Median ms of the whole graph (encoder batch 1 + restorer 256²) after two warm-up calls (ov-cpu compiles
    its static-shape model on the second call at a shape)."""
    values = measurement_values(bundle)
    with create_backend(name, bundle, precision, threads) as backend:
        latency = time_calls(lambda: bundle.graph.run(backend.run, values), warmup=2, iters=iters)
    return latency.p50_ms


def load_cache(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data.get("entries"), dict) else {"entries": {}}
    except (OSError, ValueError, AttributeError):
        return {"entries": {}}


def save_cache(path: Path, data: dict) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, data)
    except OSError:
        pass  # an unwritable cache only costs a re-measurement next time


def entry_key(bundle, precision: Precision, candidates: list[str]) -> str:
    return f"{machine_key()}/{bundle_key(bundle)}/{precision.value}/{','.join(sorted(candidates))}"


def measure_all(bundle, precision: Precision, names: list[str], threads: int | None) -> dict:
    """name -> {"ms": float} or {"error": str}."""
    out = {}
    for name in names:
        try:
            out[name] = {"ms": round(measure_ms(name, bundle, precision, threads), 2)}
        except MmfirError as err:
            out[name] = {"error": str(err)}
    return out


def explain(choice: str, precision: Precision, times: dict, skipped: dict[str, str], source: str) -> str:
    """The 'why': e.g. "ov-cpu/fp32: 42 ms vs ort-cpu/fp32: 95 ms (encoder + restorer 256², ...)"."""
    ranked = sorted((t["ms"], n) for n, t in times.items() if "ms" in t)
    timed = " vs ".join(f"{n}/{precision.value}: {ms:.1f} ms" for ms, n in ranked)
    failed = [f"{n} failed ({t['error']})" for n, t in times.items() if "error" in t]
    unusable = [f"{n} ({why})" for n, why in skipped.items()]
    tail = "".join(f"; {label}: {', '.join(items)}" for label, items in
                   (("failed", failed), ("not available", unusable)) if items)
    return (f"auto chose {choice}/{precision.value}: {timed} (encoder + restorer {MEASURE_SIZE}², median of "
            f"{MEASURE_ITERS}, {source}){tail}")


def choose_backend(bundle, precision: Precision | str = Precision.FP32, candidates=None, *,
                   threads: int | None = None, refresh: bool = False) -> tuple[str, Precision, str]:
    """(backend name, precision, reason): the fastest measured backend that runs ``precision`` here."""
    precision = Precision.parse(precision)
    names, skipped = usable_candidates(precision, candidates)
    if not names:
        why = "; ".join(f"{n}: {w}" for n, w in skipped.items())
        raise BackendUnavailable(f"no backend here runs {precision.value} ({why})")
    path, key = cache_path(bundle), entry_key(bundle, precision, names)
    cache = load_cache(path)
    entry = None if refresh else cache["entries"].get(key)
    source = f"cached in {path}, measured {entry['measured_at']}" if entry else "measured now"
    if entry is None:
        times = measure_all(bundle, precision, names, threads)
        if not any("ms" in t for t in times.values()):
            raise BackendUnavailable("auto: every candidate failed: " + "; ".join(
                f"{n}: {t['error']}" for n, t in times.items()))
        entry = {"times": times, "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        cache["entries"][key] = entry
        save_cache(path, cache)
    choice = min((t["ms"], n) for n, t in entry["times"].items() if "ms" in t)[1]
    return choice, precision, explain(choice, precision, entry["times"], skipped, source)


def first_available(precision: Precision | str = Precision.FP32) -> tuple[str, str]:
    """The highest-priority deployable backend that runs ``precision`` here."""
    precision = Precision.parse(precision)
    order = deployable_backends()
    names, skipped = usable_candidates(precision, order)
    if not names:
        raise BackendUnavailable(f"no backend runs {precision.value} here: " +
                                 "; ".join(f"{n} ({w})" for n, w in skipped.items()))
    tail = f"; skipped: {'; '.join(f'{n} ({w})' for n, w in skipped.items())}" if skipped else ""
    return names[0], f"auto chose {names[0]} (first available of {' > '.join(order)}{tail})"


def resolve_auto(bundle, precision: Precision | str = Precision.FP32, threads: int | None = None) -> tuple[str, str]:
    """(backend name, reason): the fastest measured backend that runs ``precision`` here."""
    try:
        name, _, reason = choose_backend(bundle, precision, threads=threads)
        return name, reason
    except BackendUnavailable as err:
        name, why = first_available(precision)
        return name, f"{why} (measurement failed: {err})"
