"""What this machine is and can do, read from the operating system (never assumed): the CPU, its
features and cores, and the installed versions of the packages that decide speed.

Used by the backends (BF16 only where the CPU has it), by autotune's cache key and by the bench's
machine record. On Linux the flags come from /proc/cpuinfo; elsewhere they are empty, so a feature
is reported as absent rather than guessed.

ISA cap (``MMFIR_CPU_ISA=avx2``): run an AVX-512 machine as if it had AVX2 and FMA only, to measure
and tune the AVX2 path where no AVX2-only CPU is at hand. The cap hides the newer flags from
``cpu_flags()`` (so nothing picks BF16) and, through ``isa_cap_env()``, tells each library to stop at
AVX2: oneDNN inside torch and OpenVINO (``ONEDNN_MAX_CPU_ISA``), torch's ATen kernels and inductor's
generated C++ (``ATEN_CPU_CAPABILITY``), OpenBLAS (``OPENBLAS_CORETYPE``, numpy's FP32 peak) and MKL.
The libraries read these when they start, so they must be in the environment before the process
imports them: ``mmfir`` sets them at start-up and hands them to its bench workers. onnxruntime's MLAS
has no such switch and still runs its AVX-512 kernels: ort-cpu rows of a capped run are not AVX2
numbers. ``ONEDNN_MAX_CPU_ISA=AVX2`` alone counts as the cap too: OpenVINO under it fails to compile
a BF16 model ("object is not initialized"), so the BF16 decision must see it. An emulation, not an
AVX2 CPU: the same cores and caches, 256-bit instructions only.
"""
from __future__ import annotations

import functools
import os
import platform

# The instruction-set extensions worth naming in a benchmark record.
REPORTED_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile", "amx_bf16",
                  "amx_int8", "avx512_fp16")
BF16_FLAGS = ("avx512_bf16", "amx_bf16")

ISA_ENV = "MMFIR_CPU_ISA"
# cap -> (flag prefixes it hides, the environment that caps each library)
ISA_CAPS = {
    "avx2": (("avx512", "amx", "avx_vnni", "avx10"),
             {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2", "OPENBLAS_CORETYPE": "Haswell",
              "MKL_ENABLE_INSTRUCTIONS": "AVX2"}),
}
UNCAPPED = "onnxruntime (MLAS picks its kernels from CPUID; no switch)"


def _cpuinfo_field(name: str) -> str | None:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(name):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


@functools.lru_cache(maxsize=1)
def cpu_model() -> str:
    return _cpuinfo_field("model name") or platform.processor() or platform.machine()


def isa_cap() -> str | None:
    """The cap in force: ``MMFIR_CPU_ISA``, or ``avx2`` where oneDNN is capped to AVX2 by hand."""
    name = os.environ.get(ISA_ENV, "").strip().lower()
    if name:
        if name not in ISA_CAPS:
            from .errors import UsageError

            raise UsageError(f"{ISA_ENV}={name!r} is not a cap mmfir knows; use one of: {', '.join(ISA_CAPS)} "
                             f"(or unset it)")
        return name
    onednn = os.environ.get("ONEDNN_MAX_CPU_ISA", os.environ.get("DNNL_MAX_CPU_ISA", "")).strip().lower()
    return "avx2" if onednn.startswith(("avx2", "avx", "sse")) and not onednn.startswith("avx512") else None


def isa_cap_env() -> dict[str, str]:
    """The variables that make every library honour ``MMFIR_CPU_ISA`` (empty without it; a cap set only
    through ``ONEDNN_MAX_CPU_ISA`` hides flags but is not extended to the other libraries)."""
    cap = isa_cap()
    return dict(ISA_CAPS[cap][1]) if cap and os.environ.get(ISA_ENV, "").strip() else {}


def apply_isa_cap(strict: bool = True) -> dict[str, str]:
    """Put the cap's variables into this process's environment (call before torch or OpenVINO is
    imported; ``import mmfir.runtime`` does, non-strict); variables the user set keep their values.
    Returns what the cap asks for. ``strict=False`` ignores an unknown cap (the CLI reports it)."""
    from .errors import UsageError

    try:
        env = isa_cap_env()
    except UsageError:
        if strict:
            raise
        return {}
    for key, value in env.items():
        os.environ.setdefault(key, value)
    return env


@functools.lru_cache(maxsize=1)
def _all_flags() -> frozenset[str]:
    return frozenset((_cpuinfo_field("flags") or "").split())


def cpu_flags() -> frozenset[str]:
    """The CPU's flags, less those above the ISA cap when one is in force."""
    cap = isa_cap()
    if not cap:
        return _all_flags()
    hidden = ISA_CAPS[cap][0]
    return frozenset(f for f in _all_flags() if not f.startswith(hidden))


def hidden_features() -> list[str]:
    """The REPORTED_FLAGS this CPU has but the cap hides."""
    return [f for f in REPORTED_FLAGS if f in _all_flags() and f not in cpu_flags()]


def reported_features() -> list[str]:
    """The REPORTED_FLAGS this CPU has, in that order."""
    flags = cpu_flags()
    return [f for f in REPORTED_FLAGS if f in flags]


def bf16_support() -> tuple[bool, str]:
    """(the CPU computes BF16 natively, why not): AVX512_BF16 or AMX-BF16 in its flags."""
    if any(f in cpu_flags() for f in BF16_FLAGS):
        return True, ""
    if any(f in _all_flags() for f in BF16_FLAGS):
        return False, f"{ISA_ENV}={isa_cap()} hides this CPU's BF16 instructions"
    return False, f"this CPU ({cpu_model()}) reports no BF16 instructions ({' or '.join(BF16_FLAGS)})"


def package_versions(names) -> dict[str, str | None]:
    """Installed version of each distribution in ``names`` (None when not installed)."""
    import importlib.metadata

    out = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
