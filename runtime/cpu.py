"""What this machine is and can do, read from the operating system (never assumed): the CPU, its
features and cores, and the installed versions of the packages that decide speed.

Used by the backends (BF16 only where the CPU has it), by autotune's cache key and by the bench's
machine record. On Linux the flags come from /proc/cpuinfo; elsewhere they are empty, so a feature
is reported as absent rather than guessed.
"""
from __future__ import annotations

import functools
import os
import platform

# The instruction-set extensions worth naming in a benchmark record.
REPORTED_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile", "amx_bf16",
                  "amx_int8", "avx512_fp16")
BF16_FLAGS = ("avx512_bf16", "amx_bf16")


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


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    return frozenset((_cpuinfo_field("flags") or "").split())


def reported_features() -> list[str]:
    """The REPORTED_FLAGS this CPU has, in that order."""
    flags = cpu_flags()
    return [f for f in REPORTED_FLAGS if f in flags]


def bf16_support() -> tuple[bool, str]:
    """(the CPU computes BF16 natively, why not): AVX512_BF16 or AMX-BF16 in its flags."""
    if any(f in cpu_flags() for f in BF16_FLAGS):
        return True, ""
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
