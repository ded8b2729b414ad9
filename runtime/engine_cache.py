"""TensorRT engine cache: what an engine was built for, where its plan lies, whether it may be used.

An engine is only valid for the TensorRT version, GPU (name and compute capability), ONNX graph
(SHA-256 from the manifest), precision and optimisation profile it was built with. These fields
form the ``EngineKey``; its digest names the plan file in ``BUNDLE/engines/``. The manifest's
``engines`` entry records, per network and precision, the plan file, the key, the plan's SHA-256
and the build time. An engine whose key differs from the wanted one, whose plan is missing or
whose plan hash differs is stale: it is rebuilt, or refused under ``--no-build``; never used.

Optimisation profiles come from the network spec and may be overridden by options of the form
``restorer:image=1x3x256x256/1x3x512x512/4x3x1024x1024``; inputs sharing a named dynamic axis
(``batch``) follow the overridden input. Nothing here imports tensorrt at module import.
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import importlib.util
import json
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from .bundle import Bundle
from .errors import BackendUnavailable, ConfigError, MmfirError, TileError
from .files import sha256_file
from .spec import NetworkSpec, Precision

ENGINES = "engines"                 # manifest entry
STRONGLY_TYPED_SINCE = (10, 12)     # TensorRT builds FP16 from the FP16 ONNX's types from here on
INSTALL_HINT = "pip install 'mmfir[trt]' on an NVIDIA machine"
SPATIAL_AXES = ("height", "width")  # dynamic axes that must be multiples of spec.multiple; a "tile" in messages

Shapes = tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]  # (min, opt, max)
Profile = dict[str, Shapes]                                         # input name -> shapes


# --- the machine: TensorRT version and GPU ----------------------------------------------------
@dataclass(frozen=True)
class DeviceFacts:
    """What an engine is tied to besides its graph; injectable so keys can be tested anywhere."""

    trt_version: str
    gpu_name: str
    compute_capability: str  # "8.9"

    @classmethod
    def detect(cls) -> "DeviceFacts":
        """Facts of this machine (GPU 0 as the driver numbers it); BackendUnavailable when absent."""
        facts = _detect()
        if isinstance(facts, str):
            raise BackendUnavailable(facts)
        return facts


def tensorrt_version() -> str:
    try:
        import tensorrt
    except Exception as err:  # noqa: BLE001 - a stub or broken install counts as missing
        detail = "" if isinstance(err, ModuleNotFoundError) else f" (import failed: {err})"
        raise BackendUnavailable(f"TensorRT is not installed{detail}: {INSTALL_HINT}") from None
    return str(tensorrt.__version__)


def _cuda_driver():
    for name in ("libcuda.so.1", "libcuda.so", "nvcuda.dll"):
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    raise BackendUnavailable("no CUDA GPU visible: the NVIDIA driver (libcuda) is not installed; "
                             "TensorRT needs an NVIDIA GPU")


def cuda_gpu(ordinal: int = 0) -> tuple[str, str]:
    """(name, compute capability) of a GPU through the CUDA driver API (ctypes, no dependency)."""
    lib = _cuda_driver()
    count, device, major, minor = ctypes.c_int(0), ctypes.c_int(0), ctypes.c_int(0), ctypes.c_int(0)
    if lib.cuInit(0) != 0 or lib.cuDeviceGetCount(ctypes.byref(count)) != 0 or count.value <= ordinal:
        raise BackendUnavailable("no CUDA GPU visible (the driver reports none; check nvidia-smi and "
                                 "CUDA_VISIBLE_DEVICES)")
    name = ctypes.create_string_buffer(256)
    lib.cuDeviceGet(ctypes.byref(device), ordinal)
    lib.cuDeviceGetName(name, 256, device)
    lib.cuDeviceGetAttribute(ctypes.byref(major), 75, device)  # CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR
    lib.cuDeviceGetAttribute(ctypes.byref(minor), 76, device)  # ..._MINOR
    return name.value.decode(errors="replace"), f"{major.value}.{minor.value}"


@functools.lru_cache(maxsize=1)
def _detect() -> "DeviceFacts | str":
    try:
        version = tensorrt_version()
        if importlib.util.find_spec("polygraphy") is None:
            return f"polygraphy is not installed: {INSTALL_HINT}"
        gpu, capability = cuda_gpu()
    except BackendUnavailable as err:
        return str(err)
    return DeviceFacts(version, gpu, capability)


def trt_status() -> tuple[bool, str]:
    """(TensorRT engines can be built and run here, reason when not). Never raises."""
    try:
        facts = _detect()
    except Exception as err:  # noqa: BLE001 - available() must never raise
        return False, f"TensorRT/GPU detection failed: {err}"
    return (False, facts) if isinstance(facts, str) else (True, "")


def parse_version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text)[:3])


def strongly_typed(trt_version: str) -> bool:
    """TensorRT >= 10.12 takes FP16 from the FP16 ONNX's types (strongly typed network)."""
    return parse_version(trt_version) >= STRONGLY_TYPED_SINCE


def onnx_precision(precision: Precision, trt_version: str) -> Precision:
    """Which of the bundle's graphs an engine is built from: the FP16 graph only when strongly typed; INT8
    always from the INT8 (QDQ) graph, whose Q/DQ pairs are TensorRT's explicit quantization."""
    precision = Precision.parse(precision)
    typed, _ = typed_build(precision, trt_version)
    return precision if typed or precision == Precision.INT8 else Precision.FP32


def typed_build(precision: Precision | str, trt_version: str) -> tuple[bool, dict[str, bool]]:
    """(parse the ONNX as a strongly typed network, builder precision flags) for an engine at ``precision``.

    Strongly typed (TensorRT >= 10.12): the graph's own types decide (the FP16 graph's FP16, the QDQ
    graph's INT8 convolutions with everything else FP32), and no precision flag is set: TensorRT's docs
    say explicit quantization should not be combined with them. Older TensorRT parses weakly typed and
    needs the FP16 flag for FP16 and the INT8 flag before it honours the Q/DQ pairs; no FP16 flag with
    INT8, so the layers left unquantized stay FP32 as the INT8 contract was validated."""
    precision = Precision.parse(precision)
    if strongly_typed(trt_version) and precision in (Precision.FP16, Precision.INT8):
        return True, {}
    return False, {"fp16": precision == Precision.FP16, "int8": precision == Precision.INT8}


# --- optimisation profiles ----------------------------------------------------------------------
_OPTION = re.compile(r"^(?P<network>[\w-]+):(?P<input>[\w.-]+)=(?P<shapes>[0-9x/]+)$")
OPTION_FORM = "NETWORK:INPUT=MIN/OPT/MAX, e.g. restorer:image=1x3x256x256/1x3x512x512/4x3x1024x1024"


def format_shape(shape) -> str:
    return "x".join(str(d) for d in shape)


def format_shapes(shapes: Shapes) -> str:
    return "/".join(format_shape(s) for s in shapes)


def parse_profile_option(text: str) -> tuple[str, str, Shapes]:
    """``NET:INPUT=MIN/OPT/MAX`` (or one shape for min = opt = max) -> (network, input, shapes)."""
    match = _OPTION.match(text.replace(" ", ""))
    parts = match["shapes"].split("/") if match else []
    if not match or len(parts) not in (1, 3) or not all(re.fullmatch(r"\d+(x\d+)*", p) for p in parts):
        raise ConfigError(f"bad --profile {text!r}: expected {OPTION_FORM}")
    shapes = tuple(tuple(int(d) for d in p.split("x")) for p in parts)
    return match["network"], match["input"], (shapes * 3 if len(shapes) == 1 else shapes)


def validate_shapes(spec: NetworkSpec, name: str, shapes: Shapes) -> None:
    """A user's (min, opt, max) for one input must fit the spec: rank, fixed dims, order, multiple."""
    where = f"--profile {spec.name}:{name}"
    if name not in spec.input_names:
        raise ConfigError(f"{where}: the {spec.name} has no input {name!r} (inputs: {', '.join(spec.input_names)})")
    dims = spec.input(name).shape
    for label, shape in zip(("min", "opt", "max"), shapes):
        if len(shape) != len(dims):
            raise ConfigError(f"{where}: {label} shape {format_shape(shape)} has rank {len(shape)}, "
                              f"the input has rank {len(dims)} ({format_shape(dims)})")
        for i, (want, got) in enumerate(zip(dims, shape)):
            if isinstance(want, int) and got != want:
                raise ConfigError(f"{where}: {label} dim {i} must be {want} (fixed by the model), got {got}")
            if got < 1:
                raise ConfigError(f"{where}: {label} dim {i} must be positive, got {got}")
            if want in SPATIAL_AXES and got % spec.multiple:
                raise ConfigError(f"{where}: {label} {want} {got} is not a multiple of {spec.multiple} "
                                  f"(the {spec.name} runs on multiples of {spec.multiple})")
    for i in range(len(dims)):
        if not shapes[0][i] <= shapes[1][i] <= shapes[2][i]:
            raise ConfigError(f"{where}: dim {i} must satisfy min <= opt <= max, got "
                              f"{shapes[0][i]}/{shapes[1][i]}/{shapes[2][i]}")


def _axis_values(spec: NetworkSpec, overrides: dict[str, Shapes]) -> dict[str, tuple[int, int, int]]:
    axes: dict[str, tuple[int, int, int]] = {}
    owner: dict[str, str] = {}
    for name, shapes in overrides.items():
        for i, axis in spec.input(name).dynamic_axes.items():
            values = tuple(s[i] for s in shapes)
            if axis in axes and axes[axis] != values:
                raise ConfigError(f"--profile {spec.name}: inputs {owner[axis]} and {name} disagree on axis {axis!r} "
                                  f"({'/'.join(map(str, axes[axis]))} vs {'/'.join(map(str, values))})")
            axes[axis], owner[axis] = values, name
    return axes


def derive_profile(spec: NetworkSpec, overrides: dict[str, Shapes] | None = None) -> Profile:
    """The spec's profile with user overrides; other inputs follow the overridden named axes (batch)."""
    overrides = overrides or {}
    for name, shapes in overrides.items():
        validate_shapes(spec, name, shapes)
    axes = _axis_values(spec, overrides)
    profile: Profile = {}
    for t in spec.inputs:
        shapes = overrides.get(t.name) or spec.profile[t.name]
        shapes = [list(s) for s in shapes]
        for i, axis in t.dynamic_axes.items():
            for k, value in enumerate(axes.get(axis, ())):  # min, opt, max
                shapes[k][i] = value
        profile[t.name] = tuple(tuple(int(d) for d in s) for s in shapes)
    return profile


def profiles_from_options(specs: dict[str, NetworkSpec], options: list[str] | None = None) -> dict[str, Profile]:
    """Profiles of the networks named in ``--profile`` options (validated, over the specs' defaults)."""
    overrides: dict[str, dict[str, Shapes]] = {name: {} for name in specs}
    for text in options or []:
        network, name, shapes = parse_profile_option(text)
        if network not in specs:
            raise ConfigError(f"bad --profile {text!r}: unknown network {network!r} (networks: {', '.join(specs)})")
        if name in overrides[network]:
            raise ConfigError(f"--profile {network}:{name} is given twice")
        overrides[network][name] = shapes
    return {network: derive_profile(specs[network], given) for network, given in overrides.items() if given}


def wanted_profile(bundle: Bundle, network: str, precision: Precision | str, given: Profile | None = None) -> Profile:
    """The profile to build or load: the one given, else the cached engine's (profiles are sticky), else the spec's."""
    return given or recorded_profile(bundle, network, precision) or derive_profile(bundle.specs[network])


def canonical_profile(profile: Profile) -> str:
    return json.dumps({k: [list(s) for s in v] for k, v in profile.items()}, sort_keys=True, separators=(",", ":"))


def profile_from_json(text: str) -> Profile:
    return {k: tuple(tuple(s) for s in v) for k, v in json.loads(text).items()}


def _suggested(spec: NetworkSpec, name: str, shapes: Shapes, shape: tuple[int, ...]) -> str:
    lo = tuple(min(a, b) for a, b in zip(shapes[0], shape))
    hi = tuple(max(a, b) for a, b in zip(shapes[2], shape))
    return f"--profile {spec.name}:{name}={format_shapes((lo, shapes[1], hi))}"


def profile_violation(spec: NetworkSpec, name: str, shape: tuple[int, ...], shapes: Shapes) -> MmfirError | None:
    """The error to raise when ``shape`` lies outside the engine's (min, opt, max), else None.

    A tile that does not fit is the image's problem (TileError: a smaller --tile fixes it); a batch or
    other shape that does not fit is the caller's (BackendUnavailable: rebuild the engine)."""
    lo, _, hi = shapes
    if all(a <= d <= b for a, d, b in zip(lo, shape, hi)):
        return None
    axes = spec.input(name).dynamic_axes
    fix = _suggested(spec, name, shapes, shape)
    spatial = [i for i, a in axes.items() if a in SPATIAL_AXES]
    if spatial and any(not lo[i] <= shape[i] <= hi[i] for i in spatial):
        size = "x".join(str(shape[i]) for i in spatial)
        if any(shape[i] > hi[i] for i in spatial):
            bound = "x".join(str(hi[i]) for i in spatial)
            return TileError(f"{spec.name}: tile {size} exceeds the engine profile max {bound}: rebuild with {fix} "
                             f"or use --tile {min(hi[i] for i in spatial)}")
        bound = "x".join(str(lo[i]) for i in spatial)
        return TileError(f"{spec.name}: tile {size} is below the engine profile min {bound}: rebuild with {fix}")
    batch = [i for i, a in axes.items() if a == "batch"]
    if batch and not lo[batch[0]] <= shape[batch[0]] <= hi[batch[0]]:
        b = batch[0]
        return BackendUnavailable(f"{spec.name}: batch {shape[b]} is outside the engine profile range "
                                  f"{lo[b]}..{hi[b]}: rebuild with {fix} or run smaller batches")
    return BackendUnavailable(f"{spec.name}: input {name} shape {format_shape(shape)} is outside the engine "
                              f"profile {format_shape(lo)}..{format_shape(hi)}: rebuild with {fix}")


# --- keys, records, staleness ---------------------------------------------------------------------
@dataclass(frozen=True)
class EngineKey:
    """Everything an engine plan depends on; any difference makes a cached plan stale."""

    network: str
    precision: str
    trt_version: str
    gpu_name: str
    compute_capability: str
    onnx_file: str
    onnx_sha256: str
    profile: str  # canonical JSON

    def to_json(self) -> dict:
        return asdict(self)

    @property
    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_json(), sort_keys=True).encode()).hexdigest()

    @property
    def file_name(self) -> str:
        return f"{self.network}.{self.precision}.{self.digest[:16]}.plan"

    def differences(self, recorded: dict) -> list[str]:
        """What differs between a recorded key and this (wanted) one, one phrase per field."""
        out = []
        for f in fields(self):
            have, want = recorded.get(f.name), getattr(self, f.name)
            if have != want:
                if f.name == "onnx_sha256":
                    have, want = str(have)[:12], want[:12]
                out.append(f"{f.name.replace('_', ' ')} was {have!r} at build, is {want!r} now")
        return out


def engine_key(bundle: Bundle, network: str, precision: Precision | str, facts: DeviceFacts,
               profile: Profile) -> EngineKey:
    """The key of the engine wanted for ``network`` at ``precision`` on ``facts``' machine."""
    precision = Precision.parse(precision)
    onnx = bundle.onnx_path(network, onnx_precision(precision, facts.trt_version), verify=False)
    sha = bundle.manifest["files"][onnx.name]["sha256"]
    return EngineKey(network, precision.value, facts.trt_version, facts.gpu_name, facts.compute_capability,
                     onnx.name, sha, canonical_profile(profile))


def engine_record(bundle: Bundle, network: str, precision: Precision | str) -> dict | None:
    return bundle.manifest.get(ENGINES, {}).get(network, {}).get(Precision.parse(precision).value)


@dataclass(frozen=True)
class EngineStatus:
    key: EngineKey
    path: Path | None  # the plan, when fresh
    reason: str = ""   # why it may not be used

    @property
    def fresh(self) -> bool:
        return not self.reason


def check_engine(bundle: Bundle, key: EngineKey) -> EngineStatus:
    """Whether the recorded engine for ``key``'s network and precision may be used."""
    record = engine_record(bundle, key.network, key.precision)
    if record is None:
        return EngineStatus(key, None, "no engine has been built")
    diffs = key.differences(record.get("key", {}))
    if diffs:
        return EngineStatus(key, None, "; ".join(diffs))
    path = bundle.engines_dir / Path(record["file"]).name
    if not path.is_file():
        return EngineStatus(key, None, f"its plan file {path} is missing")
    if sha256_file(path) != record.get("plan_sha256"):
        return EngineStatus(key, None, f"its plan file {path} was modified after the build (SHA-256 differs)")
    return EngineStatus(key, path)


def stale_message(bundle: Bundle, status: EngineStatus) -> str:
    k = status.key
    return (f"the {k.network} {k.precision} TensorRT engine cannot be used: {status.reason}; "
            f"build it with `mmfir build {bundle.root} --precision {k.precision}` (or drop --no-build)")


def record_engine(bundle: Bundle, key: EngineKey, plan: Path, build_seconds: float, **extra) -> dict:
    """Write the engine's record into the manifest (locked read-modify-write: concurrent builds of other
    engines keep theirs); the plan it replaces is deleted."""
    import datetime

    record = {"file": plan.name, "key": key.to_json(), "plan_sha256": sha256_file(plan),
              "plan_bytes": plan.stat().st_size, "build_seconds": round(float(build_seconds), 3),
              "built_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), **extra}
    replaced = {}

    def edit(manifest: dict) -> None:
        records = manifest.setdefault(ENGINES, {}).setdefault(key.network, {})
        replaced["old"] = records.get(key.precision)
        records[key.precision] = record

    bundle.edit_manifest(edit)
    old = replaced["old"]
    if old and Path(old.get("file", "")).name not in ("", plan.name):
        (bundle.engines_dir / Path(old["file"]).name).unlink(missing_ok=True)
    return record


def recorded_profile(bundle: Bundle, network: str, precision: Precision | str) -> Profile | None:
    record = engine_record(bundle, network, precision)
    return profile_from_json(record["key"]["profile"]) if record and "key" in record else None


def timing_cache_path(bundle: Bundle, facts: DeviceFacts) -> Path:
    """One tactic timing cache per TensorRT version and GPU, kept in ``engines/`` across builds."""
    tag = hashlib.sha256(f"{facts.trt_version}|{facts.gpu_name}|{facts.compute_capability}".encode()).hexdigest()
    return bundle.engines_dir / f"timing.{tag[:12]}.cache"


def polygraphy_logging(verbose: bool = False):
    """Polygraphy/TensorRT log on stderr (INFO when verbose, silent otherwise)."""
    import contextlib
    import sys

    from polygraphy.logger import G_LOGGER

    stack = contextlib.ExitStack()
    stack.enter_context(contextlib.redirect_stdout(sys.stderr))
    stack.enter_context(G_LOGGER.verbosity(G_LOGGER.INFO if verbose else G_LOGGER.CRITICAL + 1))
    return stack

