"""The machine record names the CPU features seen; no peak is measured for a feature the CPU lacks."""
from __future__ import annotations

import time

from mmfir.measure import machine
from mmfir.runtime import cpu


def test_record_names_cpu_features():
    info = machine.machine_info()
    assert info["cpu"] == cpu.cpu_model() and info["cores"] >= 1
    assert set(info["isa"]) <= set(cpu.REPORTED_FLAGS)
    assert ("avx512_bf16" in info["isa"] or "amx_bf16" in info["isa"]) == (info["bf16"] is True)


def test_no_bf16_peak_without_bf16(monkeypatch):
    monkeypatch.setattr(cpu, "bf16_support", lambda: (False, "this CPU reports no BF16 instructions"))
    start = time.perf_counter()
    peak = machine.matmul_peak_bf16()
    assert peak == {"not_measured": "this CPU reports no BF16 instructions"}
    assert time.perf_counter() - start < 1.0  # nothing was run
