"""``auto`` by measurement: time each available backend briefly on first use, keep the fastest, cache it.

The measurement is short: per candidate, the encoder at batch 1 plus the restorer at 256 x 256 (a real
photo), one warm-up and a few timed runs, median. The choice is cached in a JSON file keyed by machine
(CPU model, core count, library versions), bundle (hash of its files' SHA-256s), precision and candidate
list: ``BUNDLE/autotune.json`` when the bundle folder is writable, else ``~/.cache/mmfir/autotune/``
(``MMFIR_CACHE`` overrides ``~/.cache/mmfir``). Precision is the user's choice: auto only picks among
backends that run the requested precision, never a reduced one.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np

from ..bundle import write_json_atomic
from ..errors import BackendUnavailable, MmfirError
from ..spec import ENCODER, RESTORER, Precision
from .base import REGISTRY, _backend_class, backend_status, create_backend

CACHE_FILE = "autotune.json"
NOT_CANDIDATES = ("torch",)  # the reference, not a deployment path
MEASURE_SIZE = 256
MEASURE_ITERS = 3


def bundle_key(bundle) -> str:
    """Hash of the bundle's files' SHA-256s (changes when any graph changes, not with other manifest edits)."""
    files = {name: entry["sha256"] for name, entry in bundle.manifest["files"].items()}
    return hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()[:16]


def cache_path(bundle) -> Path:
    if os.access(bundle.root, os.W_OK):
        return Path(bundle.root) / CACHE_FILE
    base = Path(os.environ.get("MMFIR_CACHE", Path.home() / ".cache" / "mmfir"))
    return base / "autotune" / f"{bundle_key(bundle)}.json"


def runs_precision(name: str, precision: Precision) -> tuple[bool, str]:
    """(can run here at this precision, why not)."""
    ok, why = backend_status(name)
    if not ok:
        return False, why
    if precision not in _backend_class(name).precisions:
        return False, f"does not run {precision.value}"
    if name == "ov-cpu" and precision == Precision.BF16:
        from .ov import cpu_supports_bf16

        return (True, "") if cpu_supports_bf16() else (False, "CPU reports no BF16")
    return True, ""


def usable_candidates(precision: Precision, candidates=None) -> tuple[list[str], dict[str, str]]:
    names = list(candidates) if candidates else [n for n in REGISTRY if n not in NOT_CANDIDATES]
    usable, skipped = [], {}
    for name in names:
        ok, why = runs_precision(name, precision)
        if ok:
            usable.append(name)
        else:
            skipped[name] = why
    return usable, skipped


def measurement_feeds(bundle) -> tuple[dict, dict]:
    from ..image_io import from_array
    from ..preprocess import ClipPreprocess
    from ..targets import square_photo

    photo = square_photo(MEASURE_SIZE)
    pre = ClipPreprocess.from_bundle(bundle)
    encoder = {"image": pre(from_array((photo * 255).round().astype(np.uint8)))[None]}
    restorer = {"image": np.ascontiguousarray(np.moveaxis(photo, 2, 0)[None])}
    return encoder, restorer


def measure_ms(name: str, bundle, precision: Precision, threads: int | None = None,
               iters: int = MEASURE_ITERS) -> float:
    """Median ms of encoder (batch 1) + restorer (256², its own mmf) after one warm-up."""
    encoder_feed, restorer_feed = measurement_feeds(bundle)
    with create_backend(name, bundle, precision, threads) as backend:
        def once() -> None:
            mmf = backend.run(ENCODER, encoder_feed)["mmf"]
            backend.run(RESTORER, {**restorer_feed, "mmf": mmf})

        once()
        times = []
        for _ in range(iters):
            start = time.perf_counter()
            once()
            times.append((time.perf_counter() - start) * 1e3)
    return float(np.median(times))


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
    from ..machine import machine_key

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
