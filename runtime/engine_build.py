"""TensorRT engines for a bundle's networks, built with Polygraphy's loaders.

    NetworkFromOnnxPath -> CreateConfig(profiles, memory pool, timing cache) -> EngineFromNetwork -> SaveEngine

FP16: TensorRT >= 10.12 builds a strongly typed network from the bundle's FP16 ONNX (the types
in the graph decide; LayerNorm/Softmax stay FP32 as exported); older 10.x builds the FP32 ONNX
with the FP16 builder flag. INT8 is built from the bundle's QDQ graph (``export --int8``: symmetric, the
only form TensorRT's explicit quantization takes), strongly typed where FP16 is, else with the INT8 flag
alone (``engine_cache.typed_build``). Profiles come from the network spec or the user's overrides and are
sticky (a rebuild keeps the cached engine's profile unless told otherwise; see ``engine_cache``).
One tactic timing cache per TensorRT version and GPU is kept in ``engines/``; each plan is
written atomically and recorded in the manifest with its cache key (``runtime.engine_cache``).
It needs no torch, so it is part of the runtime; tensorrt and polygraphy are imported only inside functions.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from .bundle import Bundle
from .engine_cache import (DeviceFacts, EngineKey, Profile, check_engine, engine_key, polygraphy_logging, record_engine,
                           stale_message, timing_cache_path, typed_build, wanted_profile)
from .errors import BackendUnavailable, BundleError
from .files import atomic_path
from .progress import step_log
from .spec import Precision

GIB = 1 << 30


@dataclass(frozen=True)
class BuildResult:
    network: str
    precision: str
    path: Path
    built: bool
    seconds: float
    reason: str  # why it was (re)built, or "up to date"

    def __str__(self) -> str:
        what = f"built in {self.seconds:.1f} s ({self.reason})" if self.built else "up to date"
        return f"{self.network} {self.precision}: {what} -> {self.path}"


def polygraphy_profile(profile: Profile):
    from polygraphy.backend.trt import Profile as TrtProfile

    out = TrtProfile()
    for name, (lo, opt, hi) in profile.items():
        out.add(name, min=tuple(lo), opt=tuple(opt), max=tuple(hi))
    return out


def builder_config(key: EngineKey, profile: Profile, timing_cache: Path, workspace_gib: float | None):
    """CreateConfig: one profile, precision flags only for weakly typed builds (``typed_build``), optional
    workspace limit."""
    import tensorrt as trt
    from polygraphy.backend.trt import CreateConfig

    _, flags = typed_build(key.precision, key.trt_version)
    pools = {trt.MemoryPoolType.WORKSPACE: int(workspace_gib * GIB)} if workspace_gib else None
    return CreateConfig(**flags, profiles=[polygraphy_profile(profile)], memory_pool_limits=pools,
                        load_timing_cache=str(timing_cache))


def _first_line(err: Exception) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


def require_writable(bundle: Bundle) -> None:
    if not os.access(bundle.root, os.W_OK):
        raise BundleError(f"bundle {bundle.root} is not writable, so its TensorRT engines cannot be built there; "
                          "copy the bundle to a writable folder and run `mmfir build` on the copy")


def build_engine(bundle: Bundle, key: EngineKey, profile: Profile, facts: DeviceFacts,
                 workspace_gib: float | None = None, verbose: bool = False) -> tuple[Path, float]:
    """Build one engine for ``key`` and record it; returns (plan path, build seconds)."""
    from polygraphy.backend.trt import EngineFromNetwork, NetworkFromOnnxPath, SaveEngine
    from polygraphy.exception import PolygraphyException

    bundle.verify_file(key.onnx_file)
    require_writable(bundle)
    onnx = bundle.root / key.onnx_file
    typed, _ = typed_build(key.precision, key.trt_version)
    bundle.engines_dir.mkdir(exist_ok=True)
    cache = timing_cache_path(bundle, facts)
    final = bundle.engines_dir / key.file_name
    start = time.perf_counter()
    try:
        with polygraphy_logging(verbose), atomic_path(final) as tmp:
            network = NetworkFromOnnxPath(str(onnx), strongly_typed=typed)
            config = builder_config(key, profile, cache, workspace_gib)
            engine = EngineFromNetwork(network, config=config, save_timing_cache=str(cache))()
            SaveEngine(engine, str(tmp))()
            del engine
    except (PolygraphyException, RuntimeError, TypeError, ValueError) as err:
        raise BackendUnavailable(f"TensorRT could not build the {key.network} {key.precision} engine from "
                                 f"{onnx.name}: {_first_line(err)} (`mmfir -v build` shows TensorRT's log)") from err
    seconds = time.perf_counter() - start
    record_engine(bundle, key, final, seconds, strongly_typed=typed, workspace_gib=workspace_gib)
    return final, seconds


def build_engines(bundle: Bundle, precision: Precision | str = Precision.FP16,
                  profiles: dict[str, Profile] | None = None, workspace_gib: float | None = None,
                  force: bool = False, no_build: bool = False, facts: DeviceFacts | None = None,
                  verbose: bool = False, networks: tuple[str, ...] | None = None) -> list[BuildResult]:
    """Make sure every network has a fresh engine: reuse it, (re)build it, or (``no_build``) refuse.

    ``profiles`` holds the overridden networks only; the others keep their cached engine's profile.
    """
    precision = Precision.parse(precision)
    facts = facts or DeviceFacts.detect()
    profiles = profiles or {}
    results = []
    for network in networks or bundle.graph.order:
        profile = wanted_profile(bundle, network, precision, profiles.get(network))
        key = engine_key(bundle, network, precision, facts, profile)
        status = check_engine(bundle, key)
        if status.fresh and not force:
            results.append(BuildResult(network, precision.value, status.path, False, 0.0, "up to date"))
            continue
        if no_build:
            raise BundleError(stale_message(bundle, status))
        reason = "--force" if status.fresh else status.reason
        step_log(f"building the {network} {precision.value} TensorRT engine on {facts.gpu_name} ({reason})")
        path, seconds = build_engine(bundle, key, profile, facts, workspace_gib, verbose)
        results.append(BuildResult(network, precision.value, path, True, seconds, reason))
    return results
