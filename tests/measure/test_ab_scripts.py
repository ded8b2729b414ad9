"""The alternating-in-one-process benchmark scripts run on a real bundle and print their ratios."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.openvino
pytest.importorskip("openvino", reason="needs mmfir[openvino]")
BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def run_script(name: str, *args: str) -> str:
    proc = subprocess.run([sys.executable, str(BENCHMARKS / name), *args], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_backends_ab_prints_a_ratio_per_backend(tiny_bundle):
    out = run_script("backends_ab.py", str(tiny_bundle), "--backends", "ort-cpu,ov-cpu", "--size", "64",
                     "--rounds", "2")
    ratios = re.findall(r"^(\S+)\s+median .* / this: ([0-9.]+)$", out, re.M)
    assert [label for label, _ in ratios] == ["ort-cpu/fp32", "ov-cpu/fp32"]
    assert float(ratios[0][1]) == 1.0 and float(ratios[1][1]) > 0


def test_ov_static_shapes_compares_static_and_dynamic(tiny_bundle):
    out = run_script("ov_static_shapes.py", str(tiny_bundle), "--network", "encoder", "--size", "64",
                     "--rounds", "2")
    assert re.search(r"^static\s+median", out, re.M) and re.search(r"^dynamic\s+median", out, re.M)
    assert float(re.search(r"dynamic / static: ([0-9.]+)", out).group(1)) > 0
